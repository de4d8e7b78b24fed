/* test_fork.c: the cache across fork(), from a process whose one thread has used it a lot.
 *
 * What it tests: the parent fills the global cache and finds every entry (thousands of calls,
 * its reader slot's log filled and replayed many times), then forks. The child:
 * - finds every entry the parent inserted, with its size (the copy of the cache is intact);
 * - starts a thread that inserts and finds, while its main thread keeps using the cache (the
 *   child's lock words, freed by the fork handlers, work for new threads: they take other
 *   reader slots, and hits are stamped from then on);
 * - joins it, then checks every entry of both threads from the main thread.
 * The parent keeps using its own cache meanwhile (the child's calls must not touch it), checks
 * it, and then the child's exit status.
 *
 * A fork while other threads are inside pixcache calls is test_fork_threads.c's subject.
 */
#undef NDEBUG
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pixcache.h"

#define NAMES 2000
#define ROUNDS 4

static void name_of(char *buf, size_t n, const char *who, int i) {
    snprintf(buf, n, "%s:/icons/%d.png", who, i);
}

/* Inserts NAMES pixmaps of width i % 61 + 1 under who's names, then finds them all ROUNDS times,
 * checking each width. */
static void fill_and_check(PixcacheCache *c, const char *who, int insert) {
    char name[64];
    if (insert) {
        for (int i = 0; i < NAMES; ++i) {
            PixcachePixmap *pm = pixcache_pixmap_new((uint32_t)(i % 61 + 1), 1,
                                                     PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
            assert(pm);
            name_of(name, sizeof name, who, i);
            assert(pixcache_insert(c, name, pm));
            pixcache_pixmap_free(pm);
        }
    }
    PixcachePixmap *out = pixcache_pixmap_new_null();
    for (int r = 0; r < ROUNDS; ++r) {
        for (int i = 0; i < NAMES; ++i) {
            name_of(name, sizeof name, who, i);
            if (!pixcache_find(c, name, out)) {
                fprintf(stderr, "%d: %s is missing\n", (int)getpid(), name);
                exit(1);
            }
            assert(pixcache_pixmap_width(out) == (uint32_t)(i % 61 + 1));
        }
    }
    pixcache_pixmap_free(out);
}

static void *child_thread(void *arg) {
    fill_and_check((PixcacheCache *)arg, "thread", 1);
    return NULL;
}

int main(void) {
    PixcacheCache *c = pixcache_global();
    /* Room for everything: 4 x 2000 entries of at most 1 KB each. */
    pixcache_set_cache_limit(c, 64 * 1024);
    fill_and_check(c, "parent", 1);

    pid_t pid = fork();
    assert(pid >= 0);
    if (pid == 0) {
        fill_and_check(c, "parent", 0);
        pthread_t t;
        assert(pthread_create(&t, NULL, child_thread, c) == 0);
        fill_and_check(c, "child", 1);
        assert(pthread_join(t, NULL) == 0);
        fill_and_check(c, "parent", 0);
        fill_and_check(c, "thread", 0);
        fill_and_check(c, "child", 0);
        PixcacheStats s = pixcache_stats(c);
        assert(s.entries == 3 * NAMES);
        _exit(0);
    }
    /* The parent's cache is its own: the child's entries never appear in it. */
    fill_and_check(c, "parent", 0);
    int status = 0;
    assert(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the child failed (status %#x)\n", status);
        return 1;
    }
    char name[64];
    name_of(name, sizeof name, "child", 0);
    assert(!pixcache_find(c, name, NULL));
    assert(pixcache_stats(c).entries == NAMES);
    printf("test_fork: parent and child caches intact, threads in the child work\n");
    return 0;
}

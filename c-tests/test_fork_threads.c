/* test_fork_threads.c: fork() while other threads use the cache; the child uses it.
 *
 * A multi-threaded host may fork at any moment (to run a helper program, say), while its other
 * threads are in the middle of pixcache calls. The child has only the forking thread: every
 * lock another thread held then would stay held for good. pixcache's pthread_atfork handlers
 * take every cache's locks before the fork and free them after it (as glibc's malloc does), so
 * the child must find the cache whole and usable. Three workers hammer the global cache while
 * the main thread forks, in three modes:
 *   0  finds and inserts, continuously;
 *   1  one worker busy, the others waking briefly now and then;
 *   2  finds, inserts and visits whose callback takes a while (long read sections).
 * Each child checks the parent's entries it finds, then inserts and finds from its main thread
 * and from a new thread, and exits; alarm() turns a hang into SIGALRM. Every child of every mode
 * must exit 0. (An earlier design hung in 19–25 of 40 children in mode 0.)
 * Under valgrind or the sanitizers (PIXCACHE_TEST_UNDER_TOOL) 3 forks a mode instead of 40, and a
 * child has 60 s instead of 5: under valgrind a child took up to 4.5 s, and fork() itself up to
 * 10 s (the handlers retry until they can take every lock, and valgrind runs one thread at a
 * time), so that 5 forks a mode took 144 s.
 * Not under AddressSanitizer: its own allocator is not fork-safe in a multi-threaded process
 * (clang 14: a child hung in 1 of 5 forks, its first thread waiting in ASan's allocator lock,
 * which another thread of the parent held at the fork); valgrind runs it instead.
 */
#undef NDEBUG
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pixcache.h"

static int checks;
#define CHECK(cond)   \
    do {              \
        assert(cond); \
        ++checks;     \
    } while (0)

enum { WORKERS = 3, KEYS = 200 };
static PixcacheCache *cache;
static atomic_int stop;
static int mode;

static PixcachePixmap *holding(int v) {
    PixcachePixmap *pm = pixcache_pixmap_new(8, 8, PIXCACHE_FORMAT_RGBA8888);
    memcpy(pixcache_pixmap_pixels_mut(pm), &v, sizeof v);
    return pm;
}

static int value(const PixcachePixmap *pm) {
    int v;
    memcpy(&v, pixcache_pixmap_pixels(pm), sizeof v);
    return v;
}

static void sleep_us(long us) {
    struct timespec t = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&t, NULL);
}

static void slow_visit(void *user_data, const PixcachePixmap *found, void *unused) {
    (void)user_data, (void)found, (void)unused;
    for (volatile int k = 0; k < 2000; ++k) {
    }
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char name[32];
    unsigned s = (unsigned)id * 7919u + 1u;
    while (!atomic_load(&stop)) {
        if (mode == 1 && id != 0) {
            sleep_us(20000);
            for (int k = 0; k < 50; ++k) {
                s = s * 1103515245u + 12345u;
                snprintf(name, sizeof name, "k%u", (s >> 8) % KEYS);
                pixcache_find(cache, name, out);
            }
            continue;
        }
        for (int k = 0; k < 100; ++k) {
            s = s * 1103515245u + 12345u;
            int i = (int)((s >> 8) % KEYS);
            snprintf(name, sizeof name, "k%d", i);
            if ((s >> 20) % 10 == 0) {
                PixcachePixmap *pm = holding(i);
                pixcache_insert(cache, name, pm);
                pixcache_pixmap_free(pm);
            } else if (mode == 2 && (s >> 24) % 2) {
                pixcache_find_visit(cache, name, slow_visit, NULL);
            } else if (pixcache_find(cache, name, out) && value(out) != i) {
                fprintf(stderr, "parent: wrong content for %s\n", name);
                abort();
            }
        }
    }
    pixcache_pixmap_free(out);
    return NULL;
}

/* In the child: inserts and finds 50 keys of its own, 2,000 times; exits with `code` on a
 * wrong answer. */
static void finish(char code);

static void use_in_child(const char *prefix, int base, int code) {
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char name[32];
    for (int i = 0; i < 2000; ++i) {
        snprintf(name, sizeof name, "%s%d", prefix, i % 50);
        PixcachePixmap *pm = holding(base + i % 50);
        int inserted = pixcache_insert(cache, name, pm);
        pixcache_pixmap_free(pm);
        if (!inserted || !pixcache_find(cache, name, out) || value(out) != base + i % 50) finish((char)code);
    }
    pixcache_pixmap_free(out);
}

static void *child_thread(void *arg) {
    (void)arg;
    use_in_child("c", 1000, 3);
    return NULL;
}

/* The child's verdict, written to this pipe before it exits: under valgrind a child of a
 * multi-threaded process exits with valgrind's error code for the memory the threads it lost
 * held (their handles), which says nothing about pixcache. */
static int verdict[2];

static void finish(char code) {
    if (write(verdict[1], &code, 1) != 1) _exit(7);
    _exit(code);
}

static unsigned child_seconds = 5;

static void child(void) {
    alarm(child_seconds);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char name[32];
    for (int i = 0; i < KEYS; ++i) {
        snprintf(name, sizeof name, "k%d", i);
        if (pixcache_find(cache, name, out) && value(out) != i) finish(4);
    }
    pixcache_pixmap_free(out);
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) finish(6);
    use_in_child("m", 2000, 5);
    pthread_join(t, NULL);
    finish(0);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#endif

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef UNDER_ASAN
    printf("AddressSanitizer's allocator is not fork-safe in a multi-threaded process: nothing to test under ASan\n");
    return 0;
#endif
    int forks = 40;
    if (getenv("PIXCACHE_TEST_UNDER_TOOL")) forks = 3, child_seconds = 60;
    cache = pixcache_global();
    pixcache_set_cache_limit(cache, 100000);
    for (int i = 0; i < KEYS; ++i) {
        char name[32];
        snprintf(name, sizeof name, "k%d", i);
        PixcachePixmap *pm = holding(i);
        CHECK(pixcache_insert(cache, name, pm));
        pixcache_pixmap_free(pm);
    }
    for (mode = 0; mode < 3; ++mode) {
        atomic_store(&stop, 0);
        pthread_t workers[WORKERS];
        for (int i = 0; i < WORKERS; ++i)
            CHECK(pthread_create(&workers[i], NULL, worker, (void *)(intptr_t)i) == 0);
        int ok = 0, hung = 0, died = 0, wrong = 0;
        for (int f = 0; f < forks; ++f) {
            sleep_us(2000 + (f * 7919) % 5000);
            CHECK(pipe(verdict) == 0);
            pid_t pid = fork();
            CHECK(pid >= 0);
            if (pid == 0) child();
            close(verdict[1]);
            char code = -1;
            if (read(verdict[0], &code, 1) != 1) code = -1;
            close(verdict[0]);
            int status = 0;
            CHECK(waitpid(pid, &status, 0) == pid);
            if (code == 0)
                ++ok;
            else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
                ++hung;
            else if (WIFSIGNALED(status))
                ++died, fprintf(stderr, "a child died of signal %d\n", WTERMSIG(status));
            else
                ++wrong, fprintf(stderr, "a child failed its check %d\n", code);
        }
        atomic_store(&stop, 1);
        for (int i = 0; i < WORKERS; ++i) CHECK(pthread_join(workers[i], NULL) == 0);
        printf("/fork_threads/mode_%d: %d of %d children worked (hung %d, died %d, wrong %d)\n", mode, ok,
               forks, hung, died, wrong);
        CHECK(ok == forks);
    }
    printf("%d checks passed\n", checks);
    return 0;
}

/* test_sandbox.c: a sandbox installed after start-up takes membarrier(2) away.
 *
 * The cache's lock may be biased to a thread that uses it alone: that thread then enters with
 * no atomic instruction, and any other thread revokes the bias with membarrier(2) (src/lock.rs,
 * src/barrier.rs). A seccomp filter installed later (as browser-style sandboxes do) makes
 * membarrier fail with EPERM. What it tests:
 * - the main thread earns the bias (10,000 calls alone), a filter then refuses membarrier for
 *   every thread, and another thread's lookup revokes the bias: the process neither aborts nor
 *   hangs, and the lookup works (the revocation falls back to a TLB shootdown on x86, where
 *   /proc/cpuinfo lists no interrupt-free remote TLB flush: elsewhere the process stops by
 *   design, and this test has nothing to test);
 * - afterwards both threads use the cache at once for a while (finds, inserts, removes): every
 *   call succeeds and the cache ends consistent (no bias is granted again, as none could be
 *   revoked safely without membarrier on other targets).
 * Linux only (seccomp); elsewhere it prints that it has nothing to test. A hang fails the test
 * through alarm().
 */
#undef NDEBUG
#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pixcache.h"

static int checks;
#define CHECK(cond)   \
    do {              \
        assert(cond); \
        ++checks;     \
    } while (0)

#if defined(__linux__)
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static PixcacheCache *cache;
static atomic_int failures;

static void *take_the_bias(void *arg) {
    (void)arg;
    /* The bias belongs to the main thread: this lookup has to take it away. */
    if (!pixcache_find(cache, "a", NULL)) atomic_fetch_add(&failures, 1);
    return NULL;
}

static void *work(void *arg) {
    int id = *(int *)arg;
    PixcachePixmap *pm = pixcache_pixmap_new(2, 2, PIXCACHE_FORMAT_GRAY8);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char key[32];
    for (int i = 0; i < 20000; ++i) {
        snprintf(key, sizeof key, "t%d:%d", id, i % 50);
        if (!pixcache_insert(cache, key, pm)) atomic_fetch_add(&failures, 1);
        if (!pixcache_find(cache, key, out)) atomic_fetch_add(&failures, 1);
        if (!pixcache_find(cache, "a", NULL)) atomic_fetch_add(&failures, 1);
        if (i % 7 == 0) pixcache_remove(cache, key);
    }
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    return NULL;
}

/* True when /proc/cpuinfo lists a way to flush remote TLBs without interrupting the CPUs
 * (AMD's INVLPGB, Intel's RAR), or cannot be read: the library's fallback is no barrier there,
 * so revoking without membarrier stops the process by design (src/barrier.rs). */
static int shootdown_is_no_barrier(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 1;
    char line[8192];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0) continue;
        for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"))
            if (strcmp(tok, "invlpgb") == 0 || strcmp(tok, "rar") == 0) found = 1;
        break;
    }
    fclose(f);
    return found;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(120);
#if !defined(__x86_64__) && !defined(__i386__)
    printf("no TLB-shootdown fallback off x86 (a revocation without membarrier stops the process): nothing to test\n");
    return 0;
#endif
    if (shootdown_is_no_barrier()) {
        printf("this CPU flushes remote TLBs without interrupts: no fallback here, nothing to test\n");
        return 0;
    }
    printf("/sandbox/membarrier_taken_away_after_the_bias\n");
    cache = pixcache_cache_new(100000);
    PixcachePixmap *a = pixcache_pixmap_new(1, 1, PIXCACHE_FORMAT_GRAY8);
    CHECK(pixcache_insert(cache, "a", a));
    /* Earns the bias: 10,000 write sections in a row by this thread alone (a lookup takes the
     * write lock only every 1024th time; pixcache_total_used always does). */
    for (int i = 0; i < 10000; ++i) CHECK(pixcache_total_used(cache) == 1);

    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
        /* Some tools (valgrind) cannot run seccomp filters: nothing to test then. */
        printf("seccomp is not available here (%s): nothing to test\n", strerror(errno));
        pixcache_pixmap_free(a);
        pixcache_cache_free(cache);
        return 0;
    }
    /* membarrier is refused from now on, for every thread. */
    CHECK(syscall(__NR_membarrier, 0, 0, 0) == -1 && errno == EPERM);

    pthread_t t;
    pthread_create(&t, NULL, take_the_bias, NULL);
    pthread_join(t, NULL);
    CHECK(atomic_load(&failures) == 0);

    printf("/sandbox/two_threads_afterwards\n");
    int ids[2] = {1, 2};
    pthread_t w[2];
    for (int i = 0; i < 2; ++i) pthread_create(&w[i], NULL, work, &ids[i]);
    for (int i = 0; i < 2; ++i) pthread_join(w[i], NULL);
    CHECK(atomic_load(&failures) == 0);
    PixcacheStats st = pixcache_stats(cache);
    CHECK(st.entries <= 101 && st.entries >= 1); /* "a" and what each thread left of its 50 keys */
    CHECK(pixcache_find(cache, "a", NULL));

    pixcache_pixmap_free(a);
    pixcache_cache_free(cache);
    printf("%d checks passed\n", checks);
    return 0;
}
#else
int main(void) {
    printf("seccomp is Linux only: nothing to test\n");
    return 0;
}
#endif

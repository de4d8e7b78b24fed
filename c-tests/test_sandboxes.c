/* test_sandboxes.c: pixcache under seccomp sandboxes that forbid membarrier(2).
 *
 * Browser-style sandboxes allow a list of system calls and kill the process (or fail the call)
 * for the rest; membarrier is rarely on such lists. pixcache must never be the reason a
 * sandboxed process dies or stops: it makes no such call. Each case runs in a child process, so
 * that the parent sees a SIGSYS, an abort or a hang (alarm: SIGALRM) as a failure:
 * - /sandboxes/kill_before_the_first_cache: a filter that kills on membarrier is installed
 *   before any cache exists; a cache is made and used (an earlier design registered for
 *   membarrier in pixcache_cache_new and died of SIGSYS);
 * - /sandboxes/refused_while_busy and /sandboxes/killed_while_busy: four caches, each used
 *   alone by its own busy thread for half a second (an earlier design then biased each lock to
 *   its thread and revoked with membarrier), then a filter that refuses membarrier (EPERM) or
 *   kills on it, for every thread; four other threads then use every cache beside the owners,
 *   with content checks. The refusing case also hides /proc/cpuinfo in a mount namespace of its
 *   own when it can (root): that earlier design read it to choose a fallback barrier and
 *   aborted without one.
 * Linux only; where seccomp cannot be installed (valgrind), the case says so and passes.
 */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <string.h>

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
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Exit codes of a child. */
enum { PASSED = 0, FAILED = 1, NO_SECCOMP = 77 };

/* Installs, for every thread of the process, a filter that answers membarrier with `action`.
 * False if seccomp is not available here. */
static int forbid_membarrier(unsigned action) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0;
}

static PixcachePixmap *filled(uint32_t v) {
    PixcachePixmap *pm = pixcache_pixmap_new(8, 8, PIXCACHE_FORMAT_RGBA8888);
    uint8_t *p = pixcache_pixmap_pixels_mut(pm);
    for (int i = 0; i < 64; ++i) memcpy(p + 4 * i, &v, 4);
    return pm;
}

static int holds(const PixcachePixmap *pm, uint32_t v) {
    const uint8_t *p = pixcache_pixmap_pixels(pm);
    if (!p) return 0;
    for (int i = 0; i < 64; ++i)
        if (memcmp(p + 4 * i, &v, 4) != 0) return 0;
    return 1;
}

/* Runs `body` in a child with a time limit; returns its exit code, or reports its signal and
 * returns FAILED. */
static int in_child(const char *name, int (*body)(void)) {
    printf("%s\n", name);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(60);
        _exit(body());
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) {
        printf("  FAILED: the child died of signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
        return FAILED;
    }
    int code = WEXITSTATUS(status);
    if (code == NO_SECCOMP) printf("  seccomp is not available here: nothing to test\n");
    return code == NO_SECCOMP ? PASSED : code;
}

enum { CACHES = 4, OTHERS = 4, KEYS = 64 };
static PixcacheCache *caches[CACHES];
static atomic_int stop, failures;
static atomic_long owner_ops, other_ops;

static PixcacheCache *first;

/* A second thread's finds, while the main thread keeps using the cache. */
static void *second(void *arg) {
    (void)arg;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    for (int i = 0; i < 20000; ++i)
        if (!pixcache_find(first, "a", out) || !holds(out, 7)) atomic_fetch_add(&failures, 1);
    pixcache_pixmap_free(out);
    return NULL;
}

static int kill_before_the_first_cache(void) {
    if (!forbid_membarrier(SECCOMP_RET_KILL_PROCESS)) return NO_SECCOMP;
    first = pixcache_cache_new(1000);
    if (!first) return FAILED;
    PixcachePixmap *pm = filled(7), *out = pixcache_pixmap_new_null();
    int ok = pixcache_insert(first, "a", pm) && pixcache_find(first, "a", out) && holds(out, 7);
    pthread_t t;
    pthread_create(&t, NULL, second, NULL);
    for (int i = 0; i < 20000; ++i) ok &= pixcache_insert(first, i % 2 ? "b" : "c", pm);
    pthread_join(t, NULL);
    ok &= atomic_load(&failures) == 0;
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(first);
    return ok ? PASSED : FAILED;
}

/* Owner i: uses cache i alone at first; inserts "o<j>" holding i * 1000 + j, finds and checks. */
static void *owner(void *arg) {
    int i = (int)(intptr_t)arg;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char name[32];
    unsigned s = (unsigned)i + 1;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        s = s * 1103515245u + 12345u;
        int j = (int)((s >> 8) % KEYS);
        snprintf(name, sizeof name, "o%d", j);
        if ((s >> 20) % 8 == 0) {
            PixcachePixmap *pm = filled((uint32_t)(i * 1000 + j));
            if (!pixcache_insert(caches[i], name, pm)) atomic_fetch_add(&failures, 1);
            pixcache_pixmap_free(pm);
        } else if (pixcache_find(caches[i], name, out) && !holds(out, (uint32_t)(i * 1000 + j))) {
            atomic_fetch_add(&failures, 1);
        }
        ++n;
    }
    atomic_fetch_add(&owner_ops, n);
    pixcache_pixmap_free(out);
    return NULL;
}

/* The other threads: every cache, beside its owner. */
static void *other(void *arg) {
    int id = (int)(intptr_t)arg;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char name[32];
    unsigned s = (unsigned)id * 31u + 7u;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        s = s * 1103515245u + 12345u;
        int i = (int)((s >> 4) % CACHES), j = (int)((s >> 12) % KEYS);
        snprintf(name, sizeof name, "o%d", j);
        if ((s >> 24) % 16 == 0) {
            PixcachePixmap *pm = filled((uint32_t)(i * 1000 + j));
            if (!pixcache_insert(caches[i], name, pm)) atomic_fetch_add(&failures, 1);
            pixcache_pixmap_free(pm);
        } else if (pixcache_find(caches[i], name, out) && !holds(out, (uint32_t)(i * 1000 + j))) {
            atomic_fetch_add(&failures, 1);
        }
        ++n;
    }
    atomic_fetch_add(&other_ops, n);
    pixcache_pixmap_free(out);
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int forbidden_while_busy(unsigned action) {
    for (int i = 0; i < CACHES; ++i) caches[i] = pixcache_cache_new(100000);
    pthread_t owners[CACHES], others[OTHERS];
    for (int i = 0; i < CACHES; ++i) pthread_create(&owners[i], NULL, owner, (void *)(intptr_t)i);
    sleep_ms(500); /* each cache used by its owner alone */
    if (!forbid_membarrier(action)) {
        atomic_store(&stop, 1);
        for (int i = 0; i < CACHES; ++i) pthread_join(owners[i], NULL);
        return NO_SECCOMP;
    }
    for (int k = 0; k < OTHERS; ++k) pthread_create(&others[k], NULL, other, (void *)(intptr_t)k);
    sleep_ms(1000);
    atomic_store(&stop, 1);
    for (int i = 0; i < CACHES; ++i) pthread_join(owners[i], NULL);
    for (int k = 0; k < OTHERS; ++k) pthread_join(others[k], NULL);
    printf("  %ld calls by the owners, %ld by the others, %d failures\n", atomic_load(&owner_ops),
           atomic_load(&other_ops), atomic_load(&failures));
    for (int i = 0; i < CACHES; ++i) pixcache_cache_free(caches[i]);
    return atomic_load(&failures) == 0 && atomic_load(&other_ops) > 0 ? PASSED : FAILED;
}

static int refused_while_busy(void) {
    /* Hide /proc/cpuinfo where a mount namespace of our own can be had (root). Not under
     * valgrind, which cannot install seccomp filters anyway. */
    if (getenv("PIXCACHE_TEST_UNDER_TOOL"))
        printf("  under a tool: /proc/cpuinfo not hidden\n");
    else if (unshare(CLONE_NEWNS) == 0 && mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0 &&
             mount("/dev/null", "/proc/cpuinfo", "none", MS_BIND, NULL) == 0)
        printf("  /proc/cpuinfo hidden\n");
    else
        printf("  /proc/cpuinfo not hidden (%s): not root?\n", strerror(errno));
    return forbidden_while_busy(SECCOMP_RET_ERRNO | EPERM);
}

static int killed_while_busy(void) { return forbidden_while_busy(SECCOMP_RET_KILL_PROCESS); }

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    CHECK(in_child("/sandboxes/kill_before_the_first_cache", kill_before_the_first_cache) == PASSED);
    CHECK(in_child("/sandboxes/refused_while_busy", refused_while_busy) == PASSED);
    CHECK(in_child("/sandboxes/killed_while_busy", killed_while_busy) == PASSED);
    printf("%d checks passed\n", checks);
    return 0;
}
#else
int main(void) {
    printf("seccomp is Linux only: nothing to test\n");
    return 0;
}
#endif

/* test_fork_deadlocks.c: fork() never deadlocks with a thread that is inside a visit callback,
 * and never leaves the child a half-made object. (Found by review of the fork handlers.)
 *
 * Each case has a thread inside a visit callback on cache A (which sleeps, so the fork happens
 * meanwhile) and then, from inside the callback:
 * - /fork_deadlocks/visit_finds_in_another_cache: finds in cache B, made before A. A prepare
 *   handler that took B, then waited for A's reader, waited for ever: the reader waited for B.
 * - /fork_deadlocks/visit_makes_a_cache: makes a new cache (which registers it with the fork
 *   handlers). A prepare handler holding the registry while it waited for A waited for ever.
 * - /fork_deadlocks/global_made_during_the_fork: (no call from the callback) another thread
 *   makes the global cache for the first time while the fork waits for the visit. Made under a
 *   `OnceLock`, the child's copy stayed "being made" and pixcache_global() hung in the child.
 * The parent's fork() must return (alarm: 5 s) and the child must use the caches it has.
 */
#undef NDEBUG
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
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

static PixcacheCache *a, *b;
static atomic_int in_visit;
static int scenario;

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void visit(void *user_data, const PixcachePixmap *found, void *unused) {
    (void)user_data, (void)found, (void)unused;
    atomic_store(&in_visit, 1);
    sleep_ms(150); /* the fork starts meanwhile */
    if (scenario == 0) {
        CHECK(pixcache_find(b, "b", NULL));
    } else if (scenario == 1) {
        PixcacheCache *c = pixcache_cache_new(64);
        CHECK(c != NULL);
        pixcache_cache_free(c);
    }
}

static void *visitor(void *arg) {
    (void)arg;
    CHECK(pixcache_find_visit(a, "a", visit, NULL));
    return NULL;
}

static void *first_global(void *arg) {
    (void)arg;
    sleep_ms(50);
    CHECK(pixcache_global() != NULL);
    return NULL;
}

static void parent_hung(int sig) {
    (void)sig;
    static const char message[] = "FAILED: the parent's fork() did not return\n";
    if (write(2, message, sizeof message - 1)) {}
    _exit(2);
}

static void run(const char *name) {
    printf("%s\n", name);
    atomic_store(&in_visit, 0);
    b = pixcache_cache_new(1024);
    a = pixcache_cache_new(1024);
    PixcachePixmap *pm = pixcache_pixmap_new(8, 8, PIXCACHE_FORMAT_RGBA8888);
    CHECK(pixcache_insert(a, "a", pm) && pixcache_insert(b, "b", pm));
    pthread_t t, g;
    CHECK(pthread_create(&t, NULL, visitor, NULL) == 0);
    while (!atomic_load(&in_visit)) sleep_ms(1);
    if (scenario == 2) CHECK(pthread_create(&g, NULL, first_global, NULL) == 0);
    int verdict[2]; /* the child's answer: under valgrind its exit code also counts what the
                       threads it lost held, which says nothing about pixcache */
    CHECK(pipe(verdict) == 0);
    signal(SIGALRM, parent_hung);
    alarm(5);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(5);
        signal(SIGALRM, SIG_DFL);
        PixcachePixmap *out = pixcache_pixmap_new_null();
        int ok = pixcache_find(b, "b", out) && pixcache_insert(b, "c", pm) &&
                 pixcache_insert(pixcache_global(), "g", pm) && pixcache_find(pixcache_global(), "g", out);
        pixcache_pixmap_free(out);
        char answer = ok ? 'k' : 'x';
        if (write(verdict[1], &answer, 1) != 1) _exit(3);
        _exit(ok ? 0 : 1);
    }
    alarm(0);
    close(verdict[1]);
    char answer = 0;
    if (read(verdict[0], &answer, 1) != 1) answer = 0;
    close(verdict[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (answer != 'k')
        printf("  FAILED: the child %s %d\n", WIFSIGNALED(status) ? "died of signal" : "exited with",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    CHECK(answer == 'k');
    CHECK(pthread_join(t, NULL) == 0);
    if (scenario == 2) CHECK(pthread_join(g, NULL) == 0);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(a);
    pixcache_cache_free(b);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    scenario = 0;
    run("/fork_deadlocks/visit_finds_in_another_cache");
    scenario = 1;
    run("/fork_deadlocks/visit_makes_a_cache");
    scenario = 2;
    run("/fork_deadlocks/global_made_during_the_fork");
    printf("%d checks passed\n", checks);
    return 0;
}

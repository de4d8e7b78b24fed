/* test_pressure.c: the opt-in memory-pressure watcher (pixcache_watch_memory_pressure) through
 * the C API, driven by a FIFO line source.
 *
 * What it tests:
 * - a watcher on a cache of 64 entries (1024 KB): writing "low\n" to its FIFO trims the cache
 *   to at most a quarter (polled for up to 5 s), and pixcache_pressure_watch_trims is then 1;
 *   a line that is no level word trims nothing; "complete\n" empties the cache;
 * - NULL cache: NULL and PIXCACHE_RESULT_NULL_ARGUMENT naming "cache"; a source that does not
 *   exist: NULL, PIXCACHE_RESULT_IO and a message naming the path; NULL for
 *   pixcache_pressure_watch_trims and pixcache_pressure_watch_stop;
 * - pixcache_cache_free while the watcher runs, then a trim on the freed cache through the FIFO,
 *   then stop: safe (the watcher holds the cache until it stops; valgrind checks no leak and no
 *   use after free: PIXCACHE_TEST_WRAPPER="valgrind ...");
 * - a watcher on the global cache starts and stops;
 * - stopping a watcher that never got an event returns within 1 s;
 * - PSI (source NULL): either a watcher (stopped at once) or NULL with
 *   PIXCACHE_RESULT_UNSUPPORTED / PIXCACHE_RESULT_IO and a message naming /proc/pressure/memory.
 *
 * What it does not test: real memory pressure (it cannot be made on demand), the regular-file
 * line source and fork (src/pressure.rs tests the former).
 */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pixcache.h"

static int checks;
#define CHECK(cond)   \
    do {              \
        assert(cond); \
        ++checks;     \
    } while (0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A cache with `n` entries of 16 KB each. */
static PixcacheCache *filled(int n) {
    PixcacheCache *cache = pixcache_cache_new(100000);
    CHECK(cache != NULL);
    for (int i = 0; i < n; ++i) {
        PixcachePixmap *pm = pixcache_pixmap_new(64, 64, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
        CHECK(pm != NULL);
        char key[32];
        snprintf(key, sizeof key, "entry-%d", i);
        CHECK(pixcache_insert(cache, key, pm));
        pixcache_pixmap_free(pm);
    }
    CHECK(pixcache_total_used(cache) == 16 * n);
    return cache;
}

/* Writes `line` to the FIFO at `path` in one write (opening it blocks until a reader exists:
 * the watcher opened it when it started). */
static void send(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    size_t n = strlen(line);
    CHECK(write(fd, line, n) == (ssize_t)n);
    close(fd);
}

/* Polls for up to 5 s until `watch` has run `trims` trims; true if it did. */
static int wait_trims(const PixcachePressureWatch *watch, size_t trims) {
    double end = now() + 5.0;
    while (now() < end) {
        if (pixcache_pressure_watch_trims(watch) >= trims) return 1;
        usleep(2000);
    }
    return pixcache_pressure_watch_trims(watch) >= trims;
}

static void fifo_trims(const char *fifo) {
    PixcacheCache *cache = filled(64); /* 1024 KB */
    PixcachePressureWatch *watch = pixcache_watch_memory_pressure(cache, fifo);
    if (watch == NULL) fprintf(stderr, "watch: %s\n", pixcache_last_error());
    CHECK(watch != NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    CHECK(pixcache_pressure_watch_trims(watch) == 0);

    send(fifo, "low\n");
    /* Poll the total itself (up to 5 s), as a host would see it. */
    double end = now() + 5.0;
    while (pixcache_total_used(cache) > 1024 / 4 && now() < end) usleep(2000);
    CHECK(pixcache_total_used(cache) <= 1024 / 4);
    CHECK(pixcache_total_used(cache) == 256);
    CHECK(pixcache_pressure_watch_trims(watch) == 1);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);

    /* Not a level word: nothing trimmed. The next word, after it, is. */
    send(fifo, "squeeze\nmoderate\n");
    CHECK(wait_trims(watch, 2));
    CHECK(pixcache_pressure_watch_trims(watch) == 2);
    CHECK(pixcache_total_used(cache) == 128);

    send(fifo, "complete\n");
    CHECK(wait_trims(watch, 3));
    CHECK(pixcache_total_used(cache) == 0);

    pixcache_pressure_watch_stop(watch);
    pixcache_cache_free(cache);
}

static void bad_arguments(const char *dir) {
    CHECK(pixcache_watch_memory_pressure(NULL, "/tmp/whatever") == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "cache") != NULL);
    CHECK(pixcache_watch_memory_pressure(NULL, NULL) == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);

    PixcacheCache *cache = filled(2);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-fifo", dir);
    CHECK(pixcache_watch_memory_pressure(cache, missing) == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_IO);
    CHECK(strstr(pixcache_last_error(), missing) != NULL);
    CHECK(strchr(pixcache_last_error(), '\n') == NULL);
    CHECK(pixcache_total_used(cache) == 32);

    CHECK(pixcache_pressure_watch_trims(NULL) == 0);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    /* stop(NULL) is ignored and, like the frees, leaves the last error alone. */
    pixcache_pressure_watch_stop(NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    pixcache_cache_free(cache);
}

/* The cache is freed while its watcher runs; the watcher still trims it and stopping it drops
 * it. Under valgrind: no invalid access, no leak. */
static void free_before_stop(const char *fifo) {
    PixcacheCache *cache = filled(8);
    PixcachePressureWatch *watch = pixcache_watch_memory_pressure(cache, fifo);
    CHECK(watch != NULL);
    pixcache_cache_free(cache);
    send(fifo, "critical\n");
    CHECK(wait_trims(watch, 1));
    CHECK(pixcache_pressure_watch_trims(watch) == 1);
    pixcache_pressure_watch_stop(watch);
}

static void global_and_prompt_stop(const char *fifo) {
    PixcachePressureWatch *watch = pixcache_watch_memory_pressure(pixcache_global(), fifo);
    CHECK(watch != NULL);
    usleep(20000);
    double start = now();
    pixcache_pressure_watch_stop(watch);
    double took = now() - start;
    if (took >= 1.0) fprintf(stderr, "stop took %.3f s\n", took);
    CHECK(took < 1.0);
}

static void psi(void) {
    PixcacheCache *cache = filled(2);
    PixcachePressureWatch *watch = pixcache_watch_memory_pressure(cache, NULL);
    if (watch != NULL) {
        printf("PSI: watching /proc/pressure/memory\n");
        pixcache_pressure_watch_stop(watch);
    } else {
        printf("PSI unavailable: %s\n", pixcache_last_error());
        CHECK(pixcache_last_result() == PIXCACHE_RESULT_UNSUPPORTED ||
              pixcache_last_result() == PIXCACHE_RESULT_IO);
        CHECK(strstr(pixcache_last_error(), "/proc/pressure/memory") != NULL);
    }
    pixcache_cache_free(cache);
}

int main(void) {
    char dir[] = "/tmp/pixcache-pressure-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    CHECK(mkfifo(fifo, 0600) == 0);

    fifo_trims(fifo);
    bad_arguments(dir);
    free_before_stop(fifo);
    global_and_prompt_stop(fifo);
    psi();

    unlink(fifo);
    rmdir(dir);
    printf("test_pressure: %d checks passed\n", checks);
    return 0;
}

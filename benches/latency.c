/* latency.c: how long single calls take when threads contend, write-heavy (a figure, not a test).
 *
 * THREADS threads share a cache of 2,000 keys' worth of room; each loops over its own random
 * keys from 4,000 names: find, and on a miss insert a 16x16 pixmap (about half the calls insert
 * and evict). Every call is timed with CLOCK_MONOTONIC; prints, per thread count, the total
 * throughput and the latency percentiles over all calls (p50, p99, p99.9, max). With more
 * threads than cores, a lock whose waiters spin and yield stretches the tail (a waiter burns the
 * time slice of the holder it waits for); one whose waiters sleep keeps it short.
 * Usage: latency [seconds-per-run [max-threads]]   (default 1 s, 1 2 4 threads) */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pixcache.h>

#define NAMES 4000
#define BUCKETS 64 /* latency histogram: bucket b holds [2^(b/2) .. 2^((b+1)/2)) ns, roughly */

static char names[NAMES][32];
static volatile int stop;

struct worker {
    PixcacheCache *cache;
    unsigned seed;
    long ops;
    uint64_t max_ns;
    uint64_t hist[BUCKETS * 4];
    pthread_t thread;
};

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Quarter-octave buckets: 4 per power of two. */
static int bucket_of(uint64_t ns) {
    if (ns < 4) return 0;
    int log2 = 63 - __builtin_clzll(ns);
    int quarter = (int)((ns >> (log2 - 2)) & 3);
    int b = log2 * 4 + quarter;
    return b < BUCKETS * 4 ? b : BUCKETS * 4 - 1;
}

static uint64_t bucket_top(int b) {
    int log2 = b / 4, quarter = b % 4;
    return ((uint64_t)(4 + quarter + 1) << log2) / 4;
}

static void *run(void *arg) {
    struct worker *w = arg;
    PixcachePixmap *pm = pixcache_pixmap_new(16, 16, PIXCACHE_FORMAT_RGBA8888);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    unsigned s = w->seed;
    while (!stop) {
        s = s * 1103515245u + 12345u;
        const char *key = names[(s >> 8) % NAMES];
        uint64_t t0 = now_ns();
        if (!pixcache_find(w->cache, key, out)) pixcache_insert(w->cache, key, pm);
        uint64_t ns = now_ns() - t0;
        w->hist[bucket_of(ns)]++;
        if (ns > w->max_ns) w->max_ns = ns;
        w->ops++;
    }
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    return NULL;
}

static uint64_t percentile(const uint64_t *hist, long total, double p) {
    long want = (long)(p * (double)total), seen = 0;
    for (int b = 0; b < BUCKETS * 4; ++b) {
        seen += (long)hist[b];
        if (seen > want) return bucket_top(b);
    }
    return bucket_top(BUCKETS * 4 - 1);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    int max_threads = argc > 2 ? atoi(argv[2]) : 4;
    for (int i = 0; i < NAMES; ++i) snprintf(names[i], sizeof names[i], ":/icons/%d.png", i);
    printf("write-heavy: find, insert on a miss (~50%% inserts); latency of single calls, ns\n");
    printf("threads   Mops/s      p50      p99    p99.9        max\n");
    for (int n = 1; n <= max_threads; n *= 2) {
        PixcacheCache *cache = pixcache_cache_new(2000); /* 2,000 1 KB pixmaps */
        struct worker *ws = calloc((size_t)n, sizeof *ws);
        stop = 0;
        uint64_t t0 = now_ns();
        for (int i = 0; i < n; ++i) {
            ws[i].cache = cache;
            ws[i].seed = 7919u * (unsigned)(i + 1);
            pthread_create(&ws[i].thread, NULL, run, &ws[i]);
        }
        struct timespec d = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
        nanosleep(&d, NULL);
        stop = 1;
        static uint64_t hist[BUCKETS * 4];
        memset(hist, 0, sizeof hist);
        long ops = 0;
        uint64_t max_ns = 0;
        for (int i = 0; i < n; ++i) {
            pthread_join(ws[i].thread, NULL);
            ops += ws[i].ops;
            if (ws[i].max_ns > max_ns) max_ns = ws[i].max_ns;
            for (int b = 0; b < BUCKETS * 4; ++b) hist[b] += ws[i].hist[b];
        }
        double elapsed = (double)(now_ns() - t0) / 1e9;
        printf("%7d %8.2f %8llu %8llu %8llu %10llu\n", n, (double)ops / elapsed / 1e6,
               (unsigned long long)percentile(hist, ops, 0.50),
               (unsigned long long)percentile(hist, ops, 0.99),
               (unsigned long long)percentile(hist, ops, 0.999), (unsigned long long)max_ns);
        free(ws);
        pixcache_cache_free(cache);
    }
    return 0;
}

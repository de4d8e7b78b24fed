/* threads.c: multi-thread throughput of pixcache's global cache on the Zipf(0.9) read-through
 * (find; on a miss insert a 64x64 pixmap) over 20,000 keys with the default 10 MB limit.
 * Each thread replays its own trace (different seed) for a fixed time; prints total ops/s for
 * 1, 2, 4, 8 threads and the ratio to 1 thread. As in an application, every entry has pixels of
 * its own: a miss inserts a new pixmap (a foreign 64x64 one, so the benchmark measures the cache,
 * not pixel allocation). Inserting one shared pixmap everywhere instead would make every lookup
 * that switches entries update one of a few shared reference counts, which no application does
 * (it measured half the 2-thread throughput, all of it in those two atomics). For reference it
 * also runs the same with a private cache per thread (no sharing at all: the scaling ceiling of
 * the host). Qt's QPixmapCache cannot be used from more than one thread at all.
 * Usage: threads [seconds-per-run [read-through|read-mostly]]   (default 2, both) */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pixcache.h>

#define KEYS 20000
#define TRACE (1 << 20)

static char keys[KEYS][32];
static double cdf[KEYS];
static volatile int stop;

struct worker {
    PixcacheCache *cache;
    unsigned seed;
    int *trace;
    long ops, hits;
    pthread_t thread;
};

static void *run(void *arg) {
    struct worker *w = arg;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    long i = 0, hits = 0;
    while (!stop) {
        for (int j = 0; j < 1024; ++j, ++i) {
            const char *k = keys[w->trace[i & (TRACE - 1)]];
            if (pixcache_find(w->cache, k, out)) ++hits;
            else {
                PixcachePixmap *pm = pixcache_pixmap_wrap(64, 64, 32, NULL, NULL);
                pixcache_insert(w->cache, k, pm);
                pixcache_pixmap_free(pm);
            }
        }
    }
    w->ops = i;
    w->hits = hits;
    pixcache_pixmap_free(out);
    return NULL;
}

static int limit_kb = 10240;

static double measure(int threads, int private_caches, double seconds, struct worker *ws) {
    PixcacheCache *global = pixcache_global();
    pixcache_clear(global);
    pixcache_set_cache_limit(global, limit_kb);
    stop = 0;
    for (int t = 0; t < threads; ++t) {
        ws[t].cache = private_caches ? pixcache_cache_new(limit_kb) : global;
        pthread_create(&ws[t].thread, NULL, run, &ws[t]);
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    stop = 1;
    long ops = 0;
    for (int t = 0; t < threads; ++t) {
        pthread_join(ws[t].thread, NULL);
        ops += ws[t].ops;
        if (private_caches) pixcache_cache_free(ws[t].cache);
    }
    return (double)ops / seconds;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    double sum = 0, acc = 0;
    for (int i = 0; i < KEYS; ++i) {
        snprintf(keys[i], sizeof keys[i], "zipf:/theme/%d@2x", i);
        sum += 1.0 / pow(i + 1, 0.9);
    }
    for (int i = 0; i < KEYS; ++i) cdf[i] = (acc += 1.0 / pow(i + 1, 0.9) / sum);
    struct worker ws[8];
    for (int t = 0; t < 8; ++t) {
        ws[t].trace = malloc(sizeof(int) * TRACE);
        unsigned s = 1234u + (unsigned)t * 7919u;
        for (int i = 0; i < TRACE; ++i) {
            s = s * 1103515245u + 12345u;
            double u = (double)(s >> 8) / (double)(1u << 24);
            int lo = 0, hi = KEYS - 1;
            while (lo < hi) {
                int mid = (lo + hi) / 2;
                if (cdf[mid] < u) lo = mid + 1; else hi = mid;
            }
            ws[t].trace[i] = lo;
        }
    }
    int counts[] = {1, 2, 4, 8};
    /* 10 MB holds 640 of the 20,000 64x64 pixmaps (hit ratio ~0.42: read-through with eviction);
     * 320 MB holds them all (hit ratio ~1 once warm: read-mostly). */
    int limits[] = {10240, 20000 * 16};
    const char *names[] = {"read-through, 10 MB (hit ratio ~0.42)", "read-mostly, all keys fit (hit ratio ~1)"};
    const char *only = argc > 2 ? argv[2] : NULL;
    if (only && strcmp(only, "read-through") != 0 && strcmp(only, "read-mostly") != 0) {
        fprintf(stderr, "usage: threads [seconds-per-run [read-through|read-mostly]]\n");
        return 2;
    }
    for (int l = 0; l < 2; ++l) {
        if (only && strncmp(names[l], only, strlen(only)) != 0) continue;
        limit_kb = limits[l];
        double base = 0, pbase = 0;
        printf("%s\n%-8s %16s %8s %22s %8s\n", names[l], "threads", "shared Mops/s", "vs 1", "private-per-thread", "vs 1");
        for (int c = 0; c < 4; ++c) {
            double shared = measure(counts[c], 0, seconds, ws);
            double priv = measure(counts[c], 1, seconds, ws);
            if (c == 0) { base = shared; pbase = priv; }
            printf("%-8d %16.2f %7.2fx %22.2f %7.2fx\n", counts[c], shared / 1e6, shared / base, priv / 1e6, priv / pbase);
        }
    }
    for (int t = 0; t < 8; ++t) free(ws[t].trace);
    return 0;
}

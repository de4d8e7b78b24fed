/* threads.c: multi-thread throughput of pixcache's global cache on the Zipf(0.9) read-through
 * (find; on a miss insert a 64x64 pixmap) over 20,000 keys with the default 10 MB limit.
 * Each thread replays its own trace (different seed) for a fixed time; prints total ops/s for
 * 1, 2, 4, 8 threads and the ratio to 1 thread, medians over rounds. As in an application, every entry has pixels of
 * its own: a miss inserts a new pixmap (a foreign 64x64 one, so the benchmark measures the cache,
 * not pixel allocation). Inserting one shared pixmap everywhere instead would make every lookup
 * that switches entries update one of a few shared reference counts, which no application does
 * (it measured half the 2-thread throughput, all of it in those two atomics). For reference it
 * also runs the same with a private cache per thread (no sharing at all: the scaling ceiling of
 * the host). Qt's QPixmapCache cannot be used from more than one thread at all. Each round also
 * prints how long a cache line takes to move between two cores, before and after it.
 * Usage: threads [seconds-per-run [read-through|read-mostly|paint|both|all [rounds]]]   (default 2 s,
 * both = read-through and read-mostly, 3 rounds; medians over the rounds) */
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

/* Set for the paint workload: misses insert raster pixmaps, and every hit reads all the found
 * pixmap's pixels, as painting it would. */
static int paint;
static volatile unsigned long sink;

/* Reads every byte of a 64x64 32-bit pixmap: what a blit of it reads. */
static unsigned long read_pixels(const PixcachePixmap *pm) {
    const unsigned char *p = pixcache_pixmap_pixels(pm);
    size_t stride = pixcache_pixmap_stride(pm);
    unsigned long sum = 0;
    for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64 * 4; x += 8) {
            unsigned long w;
            memcpy(&w, p + (size_t)y * stride + (size_t)x, sizeof w);
            sum += w;
        }
    return sum;
}

static void *run(void *arg) {
    struct worker *w = arg;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    long i = 0, hits = 0;
    unsigned long painted = 0;
    while (!stop) {
        for (int j = 0; j < 1024; ++j, ++i) {
            const char *k = keys[w->trace[i & (TRACE - 1)]];
            if (pixcache_find(w->cache, k, out)) {
                ++hits;
                if (paint) painted += read_pixels(out);
            } else {
                PixcachePixmap *pm = paint ? pixcache_pixmap_new(64, 64, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED)
                                           : pixcache_pixmap_wrap(64, 64, 32, NULL, NULL);
                pixcache_insert(w->cache, k, pm);
                pixcache_pixmap_free(pm);
            }
        }
    }
    w->ops = i;
    w->hits = hits;
    sink += painted; /* so that the reads are not optimised away */
    pixcache_pixmap_free(out);
    return NULL;
}

static int limit_kb = 10240;

/* How long one cache line takes to move between two cores, in ns: two threads bounce a counter
 * 100,000 times. Printed with every round: on the VM this is measured on, it is either ~60 ns or
 * ~200 ns (the host moves the two virtual CPUs between nearby and distant physical cores), and
 * which one a round ran in decides much of what sharing costs (docs/PERFORMANCE.md §2). */
static _Alignas(64) volatile long ball;
enum { BOUNCES = 100000 };

static void *bounce_back(void *arg) {
    (void)arg;
    for (long i = 1; i < 2 * BOUNCES; i += 2) {
        while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) != i) {}
        __atomic_store_n(&ball, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static double line_transfer_ns(void) {
    pthread_t t;
    ball = 0;
    if (pthread_create(&t, NULL, bounce_back, NULL) != 0) return 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < 2 * BOUNCES; i += 2) {
        while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) != i) {}
        __atomic_store_n(&ball, i + 1, __ATOMIC_RELEASE);
    }
    while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) != 2 * BOUNCES) {}
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (2.0 * BOUNCES);
}

/* The median of n values (sorts them). */
static double median(double *v, int n) {
    for (int i = 1; i < n; ++i)
        for (int j = i; j > 0 && v[j - 1] > v[j]; --j) { double t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

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
     * 320 MB holds them all (hit ratio ~1 once warm: read-mostly). "paint" is read-mostly with
     * work outside the cache: every hit reads the found pixmap's 16 KB of pixels, as a blit
     * would (not part of "both": it measures how a program that uses what it finds scales). */
    struct { const char *arg, *name; int limit_kb, paint; } loads[] = {
        {"read-through", "read-through, 10 MB (hit ratio ~0.42)", 10240, 0},
        {"read-mostly", "read-mostly, all keys fit (hit ratio ~1)", 20000 * 16, 0},
        {"paint", "paint: read-mostly, and every hit reads the pixmap's 16 KB of pixels", 20000 * 16, 1},
    };
    const char *only = argc > 2 ? argv[2] : "both";
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    int known = strcmp(only, "both") == 0 || strcmp(only, "all") == 0;
    for (int l = 0; l < 3; ++l) known |= strcmp(only, loads[l].arg) == 0;
    if (!known || rounds < 1 || rounds > 15 || seconds <= 0) {
        fprintf(stderr, "usage: threads [seconds-per-run [read-through|read-mostly|paint|both|all [rounds (1-15)]]]\n");
        return 2;
    }
    /* The VM this is measured on switches, for seconds to minutes at a time, between its two
     * vCPUs near each other (a cache line moves in 40-100 ns) and far apart (190-330 ns), and
     * what threads share costs several times more in the second: every round measures every
     * thread count once, each ratio compares figures of one round (measured seconds apart), the
     * table gives medians over the rounds, and the line after it splits the 2-thread ratio by
     * the rounds' cache-line transfers. */
    enum { MAX_ROUNDS = 15 };
    double shared[MAX_ROUNDS][4], priv[MAX_ROUNDS][4], transfer[MAX_ROUNDS][2];
    for (int l = 0; l < 3; ++l) {
        int wanted = strcmp(only, "all") == 0 || strcmp(only, loads[l].arg) == 0 ||
                     (strcmp(only, "both") == 0 && !loads[l].paint);
        if (!wanted) continue;
        limit_kb = loads[l].limit_kb;
        paint = loads[l].paint;
        printf("%s: %d rounds of %.1f s per figure\n", loads[l].name, rounds, seconds);
        for (int r = 0; r < rounds; ++r) {
            double before = line_transfer_ns();
            for (int c = 0; c < 4; ++c) {
                shared[r][c] = measure(counts[c], 0, seconds, ws);
                priv[r][c] = measure(counts[c], 1, seconds, ws);
            }
            double after = line_transfer_ns();
            transfer[r][0] = before;
            transfer[r][1] = after;
            printf("  round %d: 2 threads vs 1: shared %.2fx, private %.2fx (cache-line transfer %.0f ns before, %.0f after)\n",
                   r + 1, shared[r][1] / shared[r][0], priv[r][1] / priv[r][0], before, after);
            fflush(stdout);
        }
        printf("%-8s %16s %8s %13s %22s %8s\n", "threads", "shared Mops/s", "vs 1", "(range)", "private-per-thread", "vs 1");
        for (int c = 0; c < 4; ++c) {
            double sm[MAX_ROUNDS], sr[MAX_ROUNDS], pm[MAX_ROUNDS], pr[MAX_ROUNDS];
            for (int r = 0; r < rounds; ++r) {
                sm[r] = shared[r][c];
                sr[r] = shared[r][c] / shared[r][0];
                pm[r] = priv[r][c];
                pr[r] = priv[r][c] / priv[r][0];
            }
            double lo = sr[0], hi = sr[0];
            for (int r = 1; r < rounds; ++r) { lo = sr[r] < lo ? sr[r] : lo; hi = sr[r] > hi ? sr[r] : hi; }
            char range[32];
            snprintf(range, sizeof range, "%.2f-%.2f", lo, hi);
            printf("%-8d %16.2f %7.2fx %13s %22.2f %7.2fx\n", counts[c], median(sm, rounds) / 1e6,
                   median(sr, rounds), range, median(pm, rounds) / 1e6, median(pr, rounds));
        }
        /* Rounds whose two probes were both under FAR_NS count as near, both at or over as far;
         * a round that changed in between counts as neither. */
        enum { FAR_NS = 150 };
        double near[MAX_ROUNDS], far[MAX_ROUNDS];
        int n_near = 0, n_far = 0;
        for (int r = 0; r < rounds; ++r) {
            double ratio = shared[r][1] / shared[r][0];
            if (transfer[r][0] < FAR_NS && transfer[r][1] < FAR_NS) near[n_near++] = ratio;
            else if (transfer[r][0] >= FAR_NS && transfer[r][1] >= FAR_NS) far[n_far++] = ratio;
        }
        char near_s[32] = "-", far_s[32] = "-";
        if (n_near) snprintf(near_s, sizeof near_s, "%.2fx", median(near, n_near));
        if (n_far) snprintf(far_s, sizeof far_s, "%.2fx", median(far, n_far));
        printf("2 threads vs 1, median by cache-line transfer: under %d ns %s (%d rounds), %d ns or more %s (%d rounds), changing %d\n",
               FAR_NS, near_s, n_near, FAR_NS, far_s, n_far, rounds - n_near - n_far);
    }
    for (int t = 0; t < 8; ++t) free(ws[t].trace);
    return 0;
}

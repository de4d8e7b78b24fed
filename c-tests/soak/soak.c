/* soak.c: a long-running stress program for pixcache.
 *
 *   soak [SECONDS [THREADS]]      defaults: 20 s, 4 threads per core
 *
 * THREADS threads mix every operation (string and generated keys, find with and without an out
 * pixmap, replace, remove, clear, limits, flush, tick, stats, find-or-insert with a producer,
 * foreign pixmaps, clone/assign/detach, conversion) on the global cache, on two private caches
 * they share, and on a private cache each, for SECONDS seconds. While running, every stats
 * snapshot must be consistent (total within the limit) and no call may report a caught panic.
 * Afterwards it verifies:
 *   - every cache: total within its limit, entries counted;
 *   - every generated key a thread still holds: valid in at most one cache (its own), and if
 *     valid, finding it gives the pixmap it was inserted with;
 *   - no pixmap leaked: after clearing every cache and freeing every handle, the library's count
 *     of live pixel buffers is back to its starting value and every foreign pixmap was released
 *     exactly once.
 * It prints the operations done and the checks made; exit status 0 means every check passed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pixcache.h>

#define RING 64
#define NAMES 96

static PixcacheCache *shared[3]; /* global, and two private caches every thread uses */
static atomic_int stop;
static atomic_long wraps, releases, total_ops, total_checks, failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        atomic_fetch_add(&total_checks, 1);                                \
        if (!(cond)) {                                                     \
            atomic_fetch_add(&failures, 1);                                \
            fprintf(stderr, "CHECK FAILED %s:%d: ", __FILE__, __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

static void release(void *user_data) {
    (void)user_data;
    atomic_fetch_add(&releases, 1);
}

struct held {
    PixcacheKey key;
    int cache;     /* index into the thread's cache table */
    uint64_t pm;   /* cache key (pixel identity) of what was inserted */
};

struct worker {
    pthread_t thread;
    unsigned seed;
    PixcacheCache *own;
    struct held ring[RING];
    long ops;
};

static unsigned next(unsigned *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static bool produce(void *user_data, PixcachePixmap *out) {
    unsigned n = (unsigned)(size_t)user_data;
    PixcachePixmap *pm = pixcache_pixmap_new(8 + n % 24, 8, PIXCACHE_FORMAT_GRAY8);
    if (!pm) return false;
    pixcache_pixmap_assign(out, pm);
    pixcache_pixmap_free(pm);
    return n % 17 != 0; /* sometimes fail, so failures and retries are exercised too */
}

static PixcachePixmap *make(unsigned r) {
    switch (r % 5) {
    case 0: return pixcache_pixmap_new_null();
    case 1: return pixcache_pixmap_new(1 + r % 64, 1 + (r >> 8) % 64, PIXCACHE_FORMAT_RGBA8888);
    case 2: return pixcache_pixmap_new(1 + r % 200, 1 + (r >> 8) % 200, PIXCACHE_FORMAT_RGB888);
    case 3: atomic_fetch_add(&wraps, 1);
            return pixcache_pixmap_wrap(1 + r % 128, 1 + (r >> 8) % 128, 32, NULL, release);
    default: return pixcache_pixmap_new(1 + r % 32, 1 + r % 32, PIXCACHE_FORMAT_GRAY8);
    }
}

static void check_stats(PixcacheCache *c) {
    PixcacheStats st = pixcache_stats(c);
    CHECK(st.limit_kb <= 0 ? st.total_kb == 0 : st.total_kb <= st.limit_kb, "total %d over limit %d", st.total_kb, st.limit_kb);
    CHECK(st.total_kb == 0 || st.entries > 0, "total %d with no entries", st.total_kb);
}

static void *run(void *arg) {
    struct worker *w = arg;
    PixcacheCache *caches[4] = {shared[0], shared[1], shared[2], w->own};
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char name[32];
    while (!atomic_load(&stop)) {
        unsigned r = next(&w->seed);
        int ci = (int)((r >> 4) % 4);
        PixcacheCache *c = caches[ci];
        snprintf(name, sizeof name, "soak:%u", (r >> 8) % NAMES);
        struct held *h = &w->ring[(r >> 12) % RING];
        switch (r % 16) {
        case 0: case 1: {
            PixcachePixmap *pm = make(next(&w->seed));
            pixcache_insert(c, name, pm);
            pixcache_pixmap_free(pm);
            break;
        }
        case 2: case 3: {
            PixcachePixmap *pm = make(next(&w->seed));
            PixcacheKey k = pixcache_insert_key(c, pm);
            if (pixcache_key_is_valid(c, k)) {
                h->key = k;
                h->cache = ci;
                h->pm = pixcache_pixmap_cache_key(pm);
            }
            pixcache_pixmap_free(pm);
            break;
        }
        case 4: case 5:
            pixcache_find(c, name, (r & 0x100) ? out : NULL);
            break;
        case 6:
            if (pixcache_find_key(caches[h->cache], h->key, out))
                CHECK(pixcache_pixmap_cache_key(out) == h->pm, "key found another pixmap");
            break;
        case 7: {
            PixcachePixmap *pm = make(next(&w->seed));
            PixcacheKey k = h->key;
            if (pixcache_replace(caches[h->cache], &k, pm)) {
                h->key = k;
                h->pm = pixcache_pixmap_cache_key(pm);
            }
            pixcache_pixmap_free(pm);
            break;
        }
        case 8:
            pixcache_remove(c, name);
            pixcache_remove_key(caches[h->cache], h->key);
            break;
        case 9:
            if ((r >> 20) % 64 == 0) pixcache_clear(c);
            else if (ci != 0 && (r >> 20) % 8 == 0) pixcache_set_cache_limit(c, (int)((r >> 24) % 3000) - 100);
            else pixcache_flush_detached(c);
            break;
        case 10:
            pixcache_tick(c);
            check_stats(c);
            break;
        case 11:
            pixcache_find_or_insert_with(c, name, produce, (void *)(size_t)((r >> 8) % NAMES), (r & 0x100) ? out : NULL);
            break;
        case 12: {
            PixcachePixmap *copy = pixcache_pixmap_clone(out);
            uint8_t *px = pixcache_pixmap_pixels_mut(copy); /* detaches: the cache never sees it */
            if (px) px[0] ^= 0xff;
            pixcache_pixmap_assign(out, copy);
            pixcache_pixmap_free(copy);
            break;
        }
        case 13: {
            PixcachePixmap *conv = pixcache_pixmap_convert(out, 1 + (r >> 8) % 4);
            pixcache_pixmap_free(conv);
            break;
        }
        case 14:
            /* A key from another cache, or a forged one, is never valid here. */
            if (h->key.id && ci != h->cache && !(ci == 3 && h->cache == 3))
                CHECK(!pixcache_key_is_valid(c, h->key) || caches[ci] == caches[h->cache], "foreign key valid");
            CHECK(!pixcache_key_is_valid(c, (PixcacheKey){r | 1}) , "forged key valid");
            break;
        default:
            check_stats(c);
            break;
        }
        CHECK(pixcache_last_result() != PIXCACHE_RESULT_PANIC, "caught panic: %s", pixcache_last_error());
        w->ops++;
    }
    pixcache_pixmap_free(out);
    return NULL;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 20;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = argc > 2 ? atoi(argv[2]) : (int)(cores > 0 ? cores * 4 : 8);
    if (threads < 1) threads = 1;
    /* Alive throughout, so that the baseline is not 0: a count taken down once too often would
     * read as 0 (the count never reads below it), the same as a correct count from 0. */
    PixcachePixmap *sentinel = pixcache_pixmap_new(1, 1, PIXCACHE_FORMAT_GRAY8);
    CHECK(sentinel != NULL, "no sentinel pixmap");
    size_t live_before = pixcache_live_pixmaps();
    CHECK(live_before >= 1, "the sentinel is not counted");
    shared[0] = pixcache_global();
    pixcache_set_cache_limit(shared[0], 4096);
    shared[1] = pixcache_cache_new(1024);
    shared[2] = pixcache_cache_new(200);
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    for (int t = 0; t < threads; ++t) {
        ws[t].seed = 0x9E3779B9u * (unsigned)(t + 1);
        ws[t].own = pixcache_cache_new(512);
        pthread_create(&ws[t].thread, NULL, run, &ws[t]);
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int t = 0; t < threads; ++t) {
        pthread_join(ws[t].thread, NULL);
        atomic_fetch_add(&total_ops, ws[t].ops);
    }

    /* Quiescent checks: totals, and every held key against its entry. */
    PixcachePixmap *out = pixcache_pixmap_new_null();
    for (int i = 0; i < 3; ++i) check_stats(shared[i]);
    for (int t = 0; t < threads; ++t) {
        check_stats(ws[t].own);
        PixcacheCache *caches[4] = {shared[0], shared[1], shared[2], ws[t].own};
        for (int i = 0; i < RING; ++i) {
            struct held *h = &ws[t].ring[i];
            if (!h->key.id) continue;
            int valid_in = 0;
            for (int c = 0; c < 4; ++c) valid_in += pixcache_key_is_valid(caches[c], h->key);
            for (int u = 0; u < threads; ++u)
                if (u != t) valid_in += pixcache_key_is_valid(ws[u].own, h->key);
            CHECK(valid_in <= 1, "a key valid in %d caches", valid_in);
            if (pixcache_key_is_valid(caches[h->cache], h->key)) {
                CHECK(pixcache_find_key(caches[h->cache], h->key, out), "valid key not found");
                CHECK(pixcache_pixmap_cache_key(out) == h->pm, "valid key finds another pixmap");
            }
        }
    }
    pixcache_pixmap_free(out);

    /* Leak check. */
    for (int i = 0; i < 3; ++i) pixcache_clear(shared[i]);
    pixcache_cache_free(shared[1]);
    pixcache_cache_free(shared[2]);
    for (int t = 0; t < threads; ++t) pixcache_cache_free(ws[t].own);
    free(ws);
    size_t live_after = pixcache_live_pixmaps();
    CHECK(live_after == live_before, "%zu pixel buffers alive after cleanup (%zu before)", live_after, live_before);
    pixcache_pixmap_free(sentinel);
    CHECK(pixcache_live_pixmaps() == live_before - 1, "the sentinel's buffer is still counted");
    CHECK(atomic_load(&wraps) == atomic_load(&releases), "%ld foreign pixmaps, %ld released",
          atomic_load(&wraps), atomic_load(&releases));

    printf("soak: %d threads, %.0f s: %ld operations, %ld checks, %ld failed; %ld foreign pixmaps all released; live pixel buffers %zu -> %zu\n",
           threads, seconds, atomic_load(&total_ops), atomic_load(&total_checks), atomic_load(&failures),
           atomic_load(&wraps), live_before, live_after);
    return atomic_load(&failures) == 0 ? 0 : 1;
}

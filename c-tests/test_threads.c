/* test_threads.c: a multi-threaded stress run of every cache call, then the invariants.
 *
 * What it tests: 8 pthreads, each running a seeded random mix (xorshift, so a failure replays
 * with the same seed) of find, find_key (NULL and non-NULL out), insert, insert_key, replace,
 * remove (find / insert / remove also through their (ptr, len) variants), remove_key,
 * key_is_valid, set_cache_limit (200..2000 KB), cache_limit, total_used, stats, flush_detached,
 * tick and, rarely, clear, on pixcache_global() and on one shared private cache at once, with
 * raster pixmaps of many sizes and formats and foreign pixmaps whose release functions count
 * themselves (and re-enter the caches). Each thread owns its pixmap handles; only the caches
 * share pixels between threads. Checked while running:
 * - every result code and message of every call is the calling thread's own;
 * - an insert of a pixmap costing at most 200 KB (the lowest limit) always succeeds; a refused
 *   one is REFUSED and its key never becomes valid;
 * - every pixmap found carries the pixels or user_data it was made with, and a found foreign
 *   pixmap has not been released;
 * - a key is never valid in the other cache; a removed or replaced key never becomes valid again;
 *   after a clear, every key the clearing thread held is invalid;
 * - each stats snapshot has total <= limit and at least 1 KB per entry.
 * Checked afterwards: total_used <= limit, stats equal to total_used and cache_limit, the hit /
 * miss / insert / refused counters equal to what the threads counted, the entry count equal to
 * the names present plus the logged keys still valid; after pixcache_clear, total_used == 0,
 * entries == 0 and every key any thread held or logged is invalid; once every handle is freed,
 * each foreign pixmap was released exactly once (wraps == releases).
 *
 * What it does not test: exact eviction order (test_rules.c), single-threaded error cases
 * (test_errors.c), release timing (test_foreign.c), or throughput.
 *
 * Usage: test_threads [ops-per-thread [seed]]; PIXCACHE_STRESS_OPS and PIXCACHE_STRESS_SEED
 * do the same. The default (20000 operations per thread) runs in well under 2 s natively.
 */
#undef NDEBUG
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pixcache.h"

#define NTHREADS 8
#define DEFAULT_OPS 20000
#define NSLOTS 6        /* pixmap handles per thread */
#define NNAMES 48       /* string keys, shared by all threads */
#define NKEYS 16        /* generated keys per thread and cache */
#define MIN_LIMIT 200   /* KB: every limit set is in MIN_LIMIT..MAX_LIMIT */
#define MAX_LIMIT 2000
#define FOREIGN_MAGIC 0x466f7267u

static _Thread_local long tl_checks;
static atomic_long total_checks;

/* Counts one passed check; assert() reports the failing expression. */
#define CHECK(cond)      \
    do {                 \
        assert(cond);    \
        ++tl_checks;     \
    } while (0)

/* ---- foreign pixmaps ----------------------------------------------------------------------- */

typedef struct {
    uint32_t magic;
    uint32_t w, h, depth;
    atomic_int released;
} Foreign;

static atomic_long g_wraps, g_releases;
static atomic_int g_reenter = 1;    /* releases call back into the caches while set */
static PixcacheCache *g_shared;     /* the shared private cache */

static void foreign_release(void *user_data) {
    Foreign *f = user_data;
    CHECK(f->magic == FOREIGN_MAGIC);
    CHECK(atomic_exchange(&f->released, 1) == 0); /* exactly once */
    atomic_fetch_add(&g_releases, 1);
    if (atomic_load(&g_reenter) && (f->w & 1)) {
        /* Re-enter both caches (calls that succeed, as a host's release would make). */
        PixcacheKey forged = {((uint64_t)f->w << 32) | f->h};
        CHECK(pixcache_total_used(g_shared) >= 0);
        CHECK(!pixcache_key_is_valid(pixcache_global(), forged));
        CHECK(pixcache_cache_limit(g_shared) >= MIN_LIMIT);
    }
}

/* ---- per-thread state ---------------------------------------------------------------------- */

typedef struct {
    PixcacheKey *keys;
    size_t len, cap;
} KeyLog;

static void log_key(KeyLog *log, PixcacheKey k) {
    if (log->len == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 256;
        log->keys = realloc(log->keys, log->cap * sizeof *log->keys);
        CHECK(log->keys != NULL);
    }
    log->keys[log->len++] = k;
}

typedef struct {
    int id;
    uint64_t rng;
    long ops;
    pthread_barrier_t *start;
    PixcacheCache *cache[2]; /* [0] the global cache, [1] the shared one */
    PixcachePixmap *slot[NSLOTS];
    PixcacheKey keys[2][NKEYS];
    KeyLog issued[2];  /* every key this thread got from a successful insert_key / replace */
    KeyLog refused_keys;
    Foreign **foreign;
    size_t nforeign, capforeign;
    uint64_t hits[2], misses[2], inserts[2], refused[2];
    long clears;
} Worker;

static uint64_t next_rand(Worker *w) {
    /* xorshift64* */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545f4914f6cdd1dULL;
}

static uint32_t below(Worker *w, uint32_t n) {
    return (uint32_t)((next_rand(w) >> 32) % n);
}

/* What the last call left: exactly `code`, with a message that is empty exactly on success. */
static void expect_result(PixcacheResult code) {
    PixcacheResult got = pixcache_last_result();
    const char *msg = pixcache_last_error();
    if (got != code) fprintf(stderr, "expected result %d, got %d (%s)\n", code, got, msg);
    CHECK(got == code);
    CHECK(msg != NULL);
    CHECK((code == PIXCACHE_RESULT_OK) == (msg[0] == '\0'));
}

/* Cost in KB of what `pm` is, as pixcache computes it. */
static int64_t cost_of(const PixcachePixmap *pm) {
    uint64_t bits = (uint64_t)pixcache_pixmap_width(pm) * pixcache_pixmap_height(pm) *
                    pixcache_pixmap_depth(pm);
    uint64_t kb = bits / 8 / 1024;
    return kb < 1 ? 1 : (int64_t)kb;
}

/* The tag a raster pixmap of this size and format carries in its first and last four bytes. */
static uint32_t tag_of(uint32_t w, uint32_t h, uint32_t fmt) {
    uint32_t t = w * 2654435761u ^ h * 40503u ^ fmt * 0x9e3779b9u;
    return t ^ (t >> 15);
}

static void write_tag(PixcachePixmap *pm) {
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    CHECK(px != NULL);
    size_t len = pixcache_pixmap_stride(pm) * pixcache_pixmap_height(pm);
    CHECK(len >= 4);
    uint32_t tag = tag_of(pixcache_pixmap_width(pm), pixcache_pixmap_height(pm),
                          pixcache_pixmap_format(pm));
    memcpy(px, &tag, 4);
    memcpy(px + len - 4, &tag, 4);
}

/* A pixmap made by any thread is what it was made as: its tag, or its live foreign record. */
static void verify(const PixcachePixmap *pm) {
    uint32_t fmt = pixcache_pixmap_format(pm);
    if (pixcache_pixmap_is_null(pm) && fmt != PIXCACHE_FORMAT_FOREIGN) {
        CHECK(fmt == PIXCACHE_FORMAT_INVALID);
        return;
    }
    if (fmt == PIXCACHE_FORMAT_FOREIGN) {
        Foreign *f = pixcache_pixmap_user_data(pm);
        CHECK(f != NULL);
        CHECK(f->magic == FOREIGN_MAGIC);
        CHECK(atomic_load(&f->released) == 0); /* it is alive: we hold a share */
        CHECK(pixcache_pixmap_is_null(pm) == (f->w == 0 || f->h == 0));
        if (!pixcache_pixmap_is_null(pm)) { /* (what a null one reports is not specified) */
            CHECK(pixcache_pixmap_width(pm) == f->w);
            CHECK(pixcache_pixmap_height(pm) == f->h);
            CHECK(pixcache_pixmap_depth(pm) == f->depth);
        }
        return;
    }
    CHECK(fmt >= PIXCACHE_FORMAT_RGBA8888 && fmt <= PIXCACHE_FORMAT_GRAY8);
    const uint8_t *px = pixcache_pixmap_pixels(pm);
    CHECK(px != NULL);
    size_t len = pixcache_pixmap_stride(pm) * pixcache_pixmap_height(pm);
    uint32_t want = tag_of(pixcache_pixmap_width(pm), pixcache_pixmap_height(pm), fmt), a, b;
    memcpy(&a, px, 4);
    memcpy(&b, px + len - 4, 4);
    CHECK(a == want);
    CHECK(b == want);
}

static PixcachePixmap *make_raster(Worker *w) {
    static const uint32_t sizes[][2] = {
        {1, 1}, {3, 5}, {16, 16}, {33, 17}, {48, 48}, {64, 64}, {128, 128}, {300, 300},
    };
    /* Mostly small (zeroing pixels is most of the run time under valgrind); 300x300 (up to
     * 351 KB) is refused by limits below its cost. Foreign pixmaps give the other big ones. */
    uint32_t i = below(w, 100);
    i = i < 50 ? i % 4 : i < 88 ? 4 + i % 2 : i < 98 ? 6 : 7;
    uint32_t fmt = 1 + below(w, 4);
    PixcachePixmap *pm = pixcache_pixmap_new(sizes[i][0], sizes[i][1], fmt);
    CHECK(pm != NULL);
    expect_result(PIXCACHE_RESULT_OK);
    write_tag(pm);
    return pm;
}

static PixcachePixmap *make_foreign(Worker *w) {
    static const uint32_t depths[] = {1, 8, 16, 24, 32, 32, 32, 64, 128};
    Foreign *f = malloc(sizeof *f);
    CHECK(f != NULL);
    f->magic = FOREIGN_MAGIC;
    uint32_t r = below(w, 100);
    f->w = r < 5 ? 0 : r < 90 ? below(w, 200) + 1 : 1000 + below(w, 3000); /* some huge */
    f->h = r < 5 ? below(w, 9) : below(w, 200) + 1;
    f->depth = depths[below(w, sizeof depths / sizeof depths[0])];
    atomic_init(&f->released, 0);
    if (w->nforeign == w->capforeign) {
        w->capforeign = w->capforeign ? w->capforeign * 2 : 64;
        w->foreign = realloc(w->foreign, w->capforeign * sizeof *w->foreign);
        CHECK(w->foreign != NULL);
    }
    w->foreign[w->nforeign++] = f;
    PixcachePixmap *pm = pixcache_pixmap_wrap(f->w, f->h, f->depth, f, foreign_release);
    CHECK(pm != NULL);
    atomic_fetch_add(&g_wraps, 1);
    CHECK(pixcache_pixmap_user_data(pm) == f);
    return pm;
}

static void set_slot(Worker *w, uint32_t i, PixcachePixmap *pm) {
    pixcache_pixmap_free(w->slot[i]);
    expect_result(PIXCACHE_RESULT_OK);
    w->slot[i] = pm;
}

static void name_of(uint32_t i, char *buf) {
    snprintf(buf, 16, "n%02u", (unsigned)i);
}

/* ---- one random operation ------------------------------------------------------------------ */

static void do_insert_result(Worker *w, int c, const PixcachePixmap *pm, bool ok) {
    if (ok) {
        expect_result(PIXCACHE_RESULT_OK);
        ++w->inserts[c];
    } else {
        expect_result(PIXCACHE_RESULT_REFUSED);
        CHECK(cost_of(pm) > MIN_LIMIT); /* anything that fits the lowest limit fits */
        ++w->refused[c];
    }
}

static void one_op(Worker *w) {
    int c = (int)below(w, 2);
    PixcacheCache *cache = w->cache[c];
    PixcacheCache *other = w->cache[1 - c];
    uint32_t s = below(w, NSLOTS);
    uint32_t k = below(w, NKEYS);
    char name[16];
    name_of(below(w, NNAMES), name);
    uint32_t op = below(w, 100);

    if (below(w, 4000) == 0) {
        pixcache_clear(cache);
        expect_result(PIXCACHE_RESULT_OK);
        ++w->clears;
        for (int j = 0; j < NKEYS; ++j) CHECK(!pixcache_key_is_valid(cache, w->keys[c][j]));
        return;
    }

    size_t name_len = strlen(name);
    bool n_variant = below(w, 2) == 0; /* the (ptr, len) key variants reach the same entries */

    if (op < 14) { /* find, with out */
        bool hit = n_variant ? pixcache_find_n(cache, name, name_len, w->slot[s])
                             : pixcache_find(cache, name, w->slot[s]);
        expect_result(PIXCACHE_RESULT_OK);
        if (hit) {
            ++w->hits[c];
            verify(w->slot[s]);
        } else {
            ++w->misses[c];
        }
    } else if (op < 20) { /* find, NULL out */
        bool hit = n_variant ? pixcache_find_n(cache, name, name_len, NULL)
                             : pixcache_find(cache, name, NULL);
        expect_result(PIXCACHE_RESULT_OK);
        ++*(hit ? &w->hits[c] : &w->misses[c]);
    } else if (op < 34) { /* find_key, with or without out */
        PixcachePixmap *out = op < 30 ? w->slot[s] : NULL;
        bool hit = pixcache_find_key(cache, w->keys[c][k], out);
        if (hit) {
            expect_result(PIXCACHE_RESULT_OK);
            ++w->hits[c];
            if (out != NULL) verify(out);
        } else {
            expect_result(PIXCACHE_RESULT_INVALID_KEY);
            ++w->misses[c];
        }
    } else if (op < 46) { /* insert under a shared name */
        bool ok = n_variant ? pixcache_insert_n(cache, name, name_len, w->slot[s])
                            : pixcache_insert(cache, name, w->slot[s]);
        do_insert_result(w, c, w->slot[s], ok);
    } else if (op < 54) { /* insert_key */
        PixcacheKey key = pixcache_insert_key(cache, w->slot[s]);
        CHECK(key.id != 0);
        bool ok = pixcache_last_result() == PIXCACHE_RESULT_OK;
        do_insert_result(w, c, w->slot[s], ok);
        if (ok) {
            log_key(&w->issued[c], key);
            w->keys[c][k] = key;
        } else {
            CHECK(!pixcache_key_is_valid(cache, key));
            log_key(&w->refused_keys, key);
        }
        CHECK(!pixcache_key_is_valid(other, key));
    } else if (op < 59) { /* replace */
        PixcacheKey old = w->keys[c][k];
        bool ok = pixcache_replace(cache, &w->keys[c][k], w->slot[s]);
        if (ok) {
            expect_result(PIXCACHE_RESULT_OK);
            ++w->inserts[c];
            CHECK(!pixcache_key_equal(old, w->keys[c][k]));
            CHECK(w->keys[c][k].id != 0);
            log_key(&w->issued[c], w->keys[c][k]);
        } else {
            PixcacheResult r = pixcache_last_result();
            CHECK(r == PIXCACHE_RESULT_INVALID_KEY || r == PIXCACHE_RESULT_REFUSED);
            expect_result(r);
            CHECK(pixcache_key_equal(old, w->keys[c][k]));
            if (r == PIXCACHE_RESULT_REFUSED) {
                CHECK(cost_of(w->slot[s]) > MIN_LIMIT);
                ++w->refused[c];
            }
        }
        CHECK(!pixcache_key_is_valid(cache, old)); /* replaced, refused, or already invalid */
    } else if (op < 64) { /* remove a name */
        (void)(n_variant ? pixcache_remove_n(cache, name, name_len) : pixcache_remove(cache, name));
        expect_result(PIXCACHE_RESULT_OK);
    } else if (op < 68) { /* remove_key */
        bool ok = pixcache_remove_key(cache, w->keys[c][k]);
        expect_result(ok ? PIXCACHE_RESULT_OK : PIXCACHE_RESULT_INVALID_KEY);
        CHECK(!pixcache_key_is_valid(cache, w->keys[c][k]));
    } else if (op < 72) { /* key_is_valid, here and in the other cache */
        (void)pixcache_key_is_valid(cache, w->keys[c][k]);
        expect_result(PIXCACHE_RESULT_OK);
        CHECK(!pixcache_key_is_valid(other, w->keys[c][k]));
        expect_result(PIXCACHE_RESULT_OK);
        PixcacheKey copy = w->keys[c][k];
        CHECK(pixcache_key_equal(copy, w->keys[c][k]));
    } else if (op < 74) { /* set_cache_limit */
        int32_t limit = MIN_LIMIT + (int32_t)below(w, MAX_LIMIT - MIN_LIMIT + 1);
        pixcache_set_cache_limit(cache, limit);
        expect_result(PIXCACHE_RESULT_OK);
    } else if (op < 76) { /* total_used, cache_limit */
        int32_t used = pixcache_total_used(cache);
        expect_result(PIXCACHE_RESULT_OK);
        CHECK(used >= 0 && used <= MAX_LIMIT);
        int32_t limit = pixcache_cache_limit(cache);
        CHECK(limit >= MIN_LIMIT && limit <= MAX_LIMIT);
    } else if (op < 79) { /* stats: one consistent snapshot */
        PixcacheStats st = pixcache_stats(cache);
        expect_result(PIXCACHE_RESULT_OK);
        CHECK(st.limit_kb >= MIN_LIMIT && st.limit_kb <= MAX_LIMIT);
        CHECK(st.total_kb >= 0 && st.total_kb <= st.limit_kb);
        CHECK(st.entries <= (size_t)st.total_kb); /* every entry costs at least 1 KB */
        CHECK((st.entries == 0) == (st.total_kb == 0));
    } else if (op < 80) {
        pixcache_flush_detached(cache);
        expect_result(PIXCACHE_RESULT_OK);
    } else if (op < 81) {
        (void)pixcache_tick(cache);
        expect_result(PIXCACHE_RESULT_OK);
    } else if (op < 84) { /* a new raster pixmap */
        set_slot(w, s, make_raster(w));
    } else if (op < 89) { /* a new foreign pixmap */
        set_slot(w, s, make_foreign(w));
    } else if (op < 92) { /* clone another slot */
        PixcachePixmap *cl = pixcache_pixmap_clone(w->slot[below(w, NSLOTS)]);
        CHECK(cl != NULL);
        set_slot(w, s, cl);
    } else if (op < 95) { /* assign another slot (maybe itself) */
        pixcache_pixmap_assign(w->slot[s], w->slot[below(w, NSLOTS)]);
        expect_result(PIXCACHE_RESULT_OK);
        verify(w->slot[s]);
    } else if (op < 98) { /* write: detaches if shared */
        PixcachePixmap *pm = w->slot[s];
        uint32_t fmt = pixcache_pixmap_format(pm);
        if (fmt == PIXCACHE_FORMAT_FOREIGN) {
            CHECK(pixcache_pixmap_pixels_mut(pm) == NULL);
            expect_result(PIXCACHE_RESULT_UNSUPPORTED);
        } else if (pixcache_pixmap_is_null(pm)) {
            CHECK(pixcache_pixmap_pixels_mut(pm) == NULL);
            expect_result(PIXCACHE_RESULT_OK);
        } else {
            uint8_t *px = pixcache_pixmap_pixels_mut(pm);
            CHECK(px != NULL);
            CHECK(pixcache_pixmap_is_detached(pm));
            size_t len = pixcache_pixmap_stride(pm) * pixcache_pixmap_height(pm);
            px[below(w, (uint32_t)len)] ^= 0x5a; /* scribble, then restore the tag */
            write_tag(pm);
            verify(pm);
        }
    } else { /* drop a handle */
        set_slot(w, s, pixcache_pixmap_new_null());
    }
}

static void *worker(void *arg) {
    Worker *w = arg;
    for (int i = 0; i < NSLOTS; ++i) w->slot[i] = pixcache_pixmap_new_null();
    /* A fresh thread starts with no error. */
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    pthread_barrier_wait(w->start);
    for (long i = 0; i < w->ops; ++i) one_op(w);
    for (int i = 0; i < NSLOTS; ++i) {
        pixcache_pixmap_free(w->slot[i]);
        w->slot[i] = NULL;
    }
    atomic_fetch_add(&total_checks, tl_checks);
    return NULL;
}

/* ---- the invariants afterwards ------------------------------------------------------------- */

static void check_cache_after(const char *label, PixcacheCache *cache, int c, Worker *ws,
                              const PixcacheStats *base) {
    printf("/threads/after/%s\n", label);
    PixcacheStats st = pixcache_stats(cache);
    CHECK(st.limit_kb == pixcache_cache_limit(cache));
    CHECK(st.total_kb == pixcache_total_used(cache));
    CHECK(st.limit_kb >= MIN_LIMIT && st.limit_kb <= MAX_LIMIT);
    CHECK(st.total_kb <= st.limit_kb);

    uint64_t hits = 0, misses = 0, inserts = 0, refused = 0;
    for (int t = 0; t < NTHREADS; ++t) {
        hits += ws[t].hits[c];
        misses += ws[t].misses[c];
        inserts += ws[t].inserts[c];
        refused += ws[t].refused[c];
    }
    printf("  %zu entries, %d/%d KB; %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
           " inserts, %" PRIu64 " refused, %" PRIu64 " evictions\n",
           st.entries, st.total_kb, st.limit_kb, st.hits - base->hits,
           st.misses - base->misses, st.inserts - base->inserts, st.refused - base->refused,
           st.evictions - base->evictions);
    CHECK(st.hits - base->hits == hits);
    CHECK(st.misses - base->misses == misses);
    CHECK(st.inserts - base->inserts == inserts);
    CHECK(st.refused - base->refused == refused);
    if (ws[0].ops >= 1000) CHECK(hits > 0 && misses > 0 && inserts > 0 && refused > 0);

    /* Every entry is under a name or under a key some thread logged. */
    size_t named = 0, keyed = 0;
    for (uint32_t i = 0; i < NNAMES; ++i) {
        char name[16];
        name_of(i, name);
        PixcacheStats before = pixcache_stats(cache);
        PixcachePixmap *out = pixcache_pixmap_new_null();
        if (pixcache_find(cache, name, out)) {
            ++named;
            verify(out);
        }
        pixcache_pixmap_free(out);
        /* find refreshes recency, evicts nothing */
        CHECK(pixcache_stats(cache).entries == before.entries);
    }
    for (int t = 0; t < NTHREADS; ++t) {
        for (size_t i = 0; i < ws[t].issued[c].len; ++i) {
            if (pixcache_key_is_valid(cache, ws[t].issued[c].keys[i])) ++keyed;
            CHECK(!pixcache_key_is_valid(ws[t].cache[1 - c], ws[t].issued[c].keys[i]));
        }
    }
    CHECK(st.entries == named + keyed);
}

static void check_cleared(const char *label, PixcacheCache *cache, int c, Worker *ws) {
    printf("/threads/clear/%s\n", label);
    pixcache_clear(cache);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    CHECK(pixcache_total_used(cache) == 0);
    PixcacheStats st = pixcache_stats(cache);
    CHECK(st.entries == 0 && st.total_kb == 0);
    for (int t = 0; t < NTHREADS; ++t) {
        for (int j = 0; j < NKEYS; ++j) CHECK(!pixcache_key_is_valid(cache, ws[t].keys[c][j]));
        for (size_t i = 0; i < ws[t].issued[c].len; ++i)
            CHECK(!pixcache_key_is_valid(cache, ws[t].issued[c].keys[i]));
        for (size_t i = 0; i < ws[t].refused_keys.len; ++i)
            CHECK(!pixcache_key_is_valid(cache, ws[t].refused_keys.keys[i]));
    }
    for (uint32_t i = 0; i < NNAMES; ++i) {
        char name[16];
        name_of(i, name);
        CHECK(!pixcache_find(cache, name, NULL));
    }
}

static long parse_count(const char *s, long fallback) {
    if (s == NULL || *s == '\0') return fallback;
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v > 0 ? v : fallback;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(300); /* a deadlock fails the test instead of hanging it */
    long ops = parse_count(getenv("PIXCACHE_STRESS_OPS"), DEFAULT_OPS);
    long seed = parse_count(getenv("PIXCACHE_STRESS_SEED"), 20240601);
    if (argc > 1) ops = parse_count(argv[1], ops);
    if (argc > 2) seed = parse_count(argv[2], seed);
    printf("/threads/stress: %d threads x %ld operations, seed %ld\n", NTHREADS, ops, seed);

    PixcacheCache *global = pixcache_global();
    g_shared = pixcache_cache_new(1000);
    CHECK(g_shared != NULL);
    pixcache_set_cache_limit(global, 1000);
    PixcacheStats base[2] = {pixcache_stats(global), pixcache_stats(g_shared)};

    static Worker ws[NTHREADS];
    pthread_t th[NTHREADS];
    pthread_barrier_t start;
    CHECK(pthread_barrier_init(&start, NULL, NTHREADS) == 0);
    for (int t = 0; t < NTHREADS; ++t) {
        memset(&ws[t], 0, sizeof ws[t]);
        ws[t].id = t;
        ws[t].rng = (uint64_t)seed * 0x9e3779b97f4a7c15ULL + (uint64_t)t * 0xbf58476d1ce4e5b9ULL;
        ws[t].rng |= 1; /* xorshift needs a non-zero state */
        ws[t].ops = ops;
        ws[t].start = &start;
        ws[t].cache[0] = global;
        ws[t].cache[1] = g_shared;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int t = 0; t < NTHREADS; ++t) CHECK(pthread_create(&th[t], NULL, worker, &ws[t]) == 0);
    for (int t = 0; t < NTHREADS; ++t) CHECK(pthread_join(th[t], NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(pthread_barrier_destroy(&start) == 0);
    long clears = 0;
    for (int t = 0; t < NTHREADS; ++t) clears += ws[t].clears;
    printf("  ran in %.3f s; %ld clears, %ld foreign wraps, %ld released so far\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, clears,
           atomic_load(&g_wraps), atomic_load(&g_releases));

    check_cache_after("global", global, 0, ws, &base[0]);
    check_cache_after("shared", g_shared, 1, ws, &base[1]);

    /* Every handle is freed: what is still unreleased is held by the caches alone. */
    CHECK(atomic_load(&g_releases) <= atomic_load(&g_wraps));
    check_cleared("global", global, 0, ws);
    check_cleared("shared", g_shared, 1, ws);

    printf("/threads/foreign_released_once\n");
    if (ops >= 1000) CHECK(atomic_load(&g_wraps) > 0);
    CHECK(atomic_load(&g_releases) == atomic_load(&g_wraps));
    atomic_store(&g_reenter, 0);
    pixcache_cache_free(g_shared);
    CHECK(atomic_load(&g_releases) == atomic_load(&g_wraps));
    for (int t = 0; t < NTHREADS; ++t) {
        for (size_t i = 0; i < ws[t].nforeign; ++i) {
            CHECK(atomic_load(&ws[t].foreign[i]->released) == 1);
            free(ws[t].foreign[i]);
        }
        free(ws[t].foreign);
        free(ws[t].issued[0].keys);
        free(ws[t].issued[1].keys);
        free(ws[t].refused_keys.keys);
    }
    pixcache_set_cache_limit(global, 10240);

    printf("%ld checks passed\n", atomic_load(&total_checks) + tl_checks);
    return 0;
}

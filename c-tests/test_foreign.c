/* test_foreign.c: foreign pixmaps (pixcache_pixmap_wrap), whose pixels a toolkit owns.
 *
 * What it tests:
 * - the release function runs exactly once, at the moment the LAST share goes, whoever holds
 *   it: handles, clones, assign, find's `out`, and cache entries dropped by eviction, remove,
 *   remove_key, replace, re-insert under the same string, clear, a refused insert, a lowered
 *   limit, flush_detached, tick and pixcache_cache_free; a pixmap in two caches at once;
 * - it runs on the thread that drops the last share;
 * - user_data round-trips through pixcache_pixmap_user_data, clones and finds (string and key);
 *   the other getters of a foreign pixmap;
 * - the cost, max(1, width * height * depth / 8 / 1024) KB, for small, odd, null and huge sizes;
 * - a release function that re-enters the same cache (find, insert, remove, key calls, clear)
 *   and frees other pixmaps (whose own releases re-enter in turn) neither deadlocks nor breaks
 *   the cache, on every path that can drop a share; and the last error the caller sees is that
 *   of the call it made (or, for the *_free functions, the one from before), not that of a
 *   call the release function made;
 * - a NULL release function is allowed;
 * - pixcache_insert_wrapped_n, pixcache_insert_key_wrapped and pixcache_replace_wrapped (a
 *   foreign pixmap made on the spot, no handle): the entry is the foreign pixmap (size, cost,
 *   user data), released exactly once when the cache drops it; on every failure (NULL cache,
 *   key or key pointer, a depth over 128, refused, an invalid key to replace) the release runs
 *   exactly once before the call returns, after the cache is unlocked (a release that calls
 *   the same cache works), with the failure's result code; a NULL release is allowed;
 *
 * - a release function that reads the very handle whose old pixmap it releases (assign, find's
 *   and find_key's and find_or_insert_with's `out`) sees the handle's new pixmap, never the one
 *   being released;
 * - releases that pixcache_cache_free runs may use that cache, even insert into it again (with
 *   foreign pixmaps whose releases insert again): every release runs exactly once.
 * A deadlock fails the test through alarm().
 *
 * What it does not test: NULL and out-of-range arguments of wrap (test_errors.c), concurrent
 * releases under load (test_threads.c), and a release that keeps inserting into a cache being
 * freed for more than 64 rounds (its last entries are dropped with the cache, whose releases
 * must not use it).
 */
#undef NDEBUG
#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixcache.h"

static atomic_int checks; /* release functions run on other threads too */

/* Counts one passed check; assert() reports the failing expression. */
#define CHECK(cond)      \
    do {                 \
        assert(cond);    \
        ++checks;        \
    } while (0)

/* ---- a release counter --------------------------------------------------------------------- */

typedef struct {
    int releases;
    pthread_t thread; /* the thread that ran the release */
} Tracker;

static void track_release(void *user_data) {
    Tracker *t = user_data;
    ++t->releases;
    t->thread = pthread_self();
}

/* A foreign pixmap of width x height x depth counting its releases in `t`. */
static PixcachePixmap *wrap(uint32_t w, uint32_t h, uint32_t depth, Tracker *t) {
    PixcachePixmap *pm = pixcache_pixmap_wrap(w, h, depth, t, track_release);
    CHECK(pm != NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    return pm;
}

/* A 64x64x32 foreign pixmap: 16 KB. */
static PixcachePixmap *wrap16(Tracker *t) {
    return wrap(64, 64, 32, t);
}

static PixcachePixmap *raster(uint32_t w, uint32_t h) {
    PixcachePixmap *pm = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGBA8888);
    CHECK(pm != NULL);
    return pm;
}

/* ---- handles ------------------------------------------------------------------------------- */

static void test_handle_free(void) {
    printf("/foreign/handle/free\n");
    Tracker t = {0};
    PixcachePixmap *pm = wrap16(&t);
    CHECK(t.releases == 0);
    pixcache_pixmap_free(pm);
    CHECK(t.releases == 1);
    CHECK(pthread_equal(t.thread, pthread_self()));
}

static void test_handle_clones(void) {
    printf("/foreign/handle/clones\n");
    Tracker t = {0};
    PixcachePixmap *a = wrap16(&t);
    PixcachePixmap *b = pixcache_pixmap_clone(a);
    PixcachePixmap *c = pixcache_pixmap_clone(b);
    CHECK(b != NULL && c != NULL);
    CHECK(!pixcache_pixmap_is_detached(a));
    CHECK(pixcache_pixmap_cache_key(a) == pixcache_pixmap_cache_key(c));
    pixcache_pixmap_free(a);
    CHECK(t.releases == 0);
    pixcache_pixmap_free(c);
    CHECK(t.releases == 0);
    CHECK(pixcache_pixmap_is_detached(b));
    pixcache_pixmap_free(b);
    CHECK(t.releases == 1);
}

static void test_handle_assign(void) {
    printf("/foreign/handle/assign\n");
    Tracker t = {0}, u = {0};
    PixcachePixmap *f = wrap16(&t);
    PixcachePixmap *dst = raster(2, 2);
    pixcache_pixmap_assign(dst, f); /* dst shares f's pixels */
    CHECK(pixcache_pixmap_user_data(dst) == &t);
    pixcache_pixmap_free(f);
    CHECK(t.releases == 0); /* dst still holds a share */

    /* Self-assignment keeps the share. */
    pixcache_pixmap_assign(dst, dst);
    CHECK(t.releases == 0);
    CHECK(pixcache_pixmap_user_data(dst) == &t);

    /* Assigning another foreign pixmap over the last share releases the first one only. */
    PixcachePixmap *g = wrap16(&u);
    pixcache_pixmap_assign(dst, g);
    CHECK(t.releases == 1);
    CHECK(u.releases == 0);
    pixcache_pixmap_free(g);
    CHECK(u.releases == 0);

    /* Assigning a raster over it releases it. */
    PixcachePixmap *r = raster(1, 1);
    pixcache_pixmap_assign(dst, r);
    CHECK(u.releases == 1);
    pixcache_pixmap_free(r);
    pixcache_pixmap_free(dst);
    CHECK(t.releases == 1 && u.releases == 1);
}

static void test_find_overwrites_out(void) {
    printf("/foreign/handle/find_out_overwritten\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *r = raster(2, 2);
    CHECK(pixcache_insert(c, "r", r));
    PixcacheKey k = pixcache_insert_key(c, r);
    Tracker t = {0}, u = {0};

    PixcachePixmap *out = wrap16(&t);
    CHECK(!pixcache_find(c, "missing", out)); /* a miss leaves out alone */
    CHECK(t.releases == 0);
    CHECK(pixcache_pixmap_user_data(out) == &t);
    CHECK(pixcache_find(c, "r", out)); /* a hit drops what out held: the last share */
    CHECK(t.releases == 1);
    CHECK(pixcache_pixmap_user_data(out) == NULL);
    CHECK(pixcache_pixmap_width(out) == 2);
    pixcache_pixmap_free(out);

    out = wrap16(&u);
    CHECK(pixcache_find_key(c, k, out));
    CHECK(u.releases == 1);
    pixcache_pixmap_free(out);

    pixcache_pixmap_free(r);
    pixcache_cache_free(c);
    CHECK(t.releases == 1 && u.releases == 1);
}

static void test_thread_of_release(void *(*body)(void *), void *arg) {
    pthread_t th;
    CHECK(pthread_create(&th, NULL, body, arg) == 0);
    CHECK(pthread_join(th, NULL) == 0);
}

struct thread_free_arg {
    PixcachePixmap *pm;
    pthread_t self;
};

static void *free_on_thread(void *arg) {
    struct thread_free_arg *a = arg;
    a->self = pthread_self();
    pixcache_pixmap_free(a->pm);
    return NULL;
}

static void test_release_on_dropping_thread(void) {
    printf("/foreign/handle/release_on_dropping_thread\n");
    Tracker t = {0};
    PixcachePixmap *pm = wrap16(&t);
    PixcachePixmap *share = pixcache_pixmap_clone(pm);
    pixcache_pixmap_free(pm);
    struct thread_free_arg a = {share, pthread_self()};
    test_thread_of_release(free_on_thread, &a);
    CHECK(t.releases == 1);
    CHECK(pthread_equal(t.thread, a.self));
    CHECK(!pthread_equal(t.thread, pthread_self()));
}

/* ---- user_data and getters ----------------------------------------------------------------- */

static void test_user_data(void) {
    printf("/foreign/user_data\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    Tracker t = {0};
    PixcachePixmap *f = wrap(30, 20, 24, &t);

    CHECK(pixcache_pixmap_user_data(f) == &t);
    CHECK(pixcache_pixmap_format(f) == PIXCACHE_FORMAT_FOREIGN);
    CHECK(pixcache_pixmap_width(f) == 30);
    CHECK(pixcache_pixmap_height(f) == 20);
    CHECK(pixcache_pixmap_depth(f) == 24);
    CHECK(pixcache_pixmap_stride(f) == 0);
    CHECK(!pixcache_pixmap_is_null(f));
    CHECK(pixcache_pixmap_is_detached(f));
    CHECK(pixcache_pixmap_cache_key(f) != 0);

    PixcachePixmap *cl = pixcache_pixmap_clone(f);
    CHECK(pixcache_pixmap_user_data(cl) == &t);
    pixcache_pixmap_free(cl);

    CHECK(pixcache_insert(c, "f", f));
    CHECK(!pixcache_pixmap_is_detached(f)); /* the cache shares it */
    PixcacheKey k = pixcache_insert_key(c, f);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find(c, "f", out));
    CHECK(pixcache_pixmap_user_data(out) == &t);
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(f));
    CHECK(pixcache_pixmap_format(out) == PIXCACHE_FORMAT_FOREIGN);
    CHECK(pixcache_pixmap_depth(out) == 24);
    pixcache_pixmap_free(out);
    out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_user_data(out) == &t);
    CHECK(pixcache_pixmap_width(out) == 30 && pixcache_pixmap_height(out) == 20);
    pixcache_pixmap_free(out);

    /* Arbitrary user_data values come back bit for bit, and are never dereferenced. */
    void *odd = (void *)(uintptr_t)0xdeadbeefu;
    PixcachePixmap *o = pixcache_pixmap_wrap(1, 1, 8, odd, NULL);
    CHECK(o != NULL && pixcache_pixmap_user_data(o) == odd);
    CHECK(pixcache_insert(c, "odd", o));
    pixcache_pixmap_free(o);
    out = pixcache_pixmap_new_null();
    CHECK(pixcache_find(c, "odd", out));
    CHECK(pixcache_pixmap_user_data(out) == odd);
    pixcache_pixmap_free(out);

    /* Raster and null pixmaps have none. */
    PixcachePixmap *r = raster(1, 1);
    PixcachePixmap *n = pixcache_pixmap_new_null();
    CHECK(pixcache_pixmap_user_data(r) == NULL);
    CHECK(pixcache_pixmap_user_data(n) == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    pixcache_pixmap_free(r);
    pixcache_pixmap_free(n);

    pixcache_pixmap_free(f);
    CHECK(t.releases == 0); /* two cache entries still share it */
    pixcache_cache_free(c);
    CHECK(t.releases == 1);
}

/* ---- cost ---------------------------------------------------------------------------------- */

static void test_cost(void) {
    printf("/foreign/cost\n");
    static const struct {
        uint32_t w, h, depth;
        int32_t kb;
    } cases[] = {
        {64, 64, 32, 16},        {64, 65, 32, 16},         {10, 10, 32, 1},
        {100, 100, 24, 29},      {1, 1, 1, 1},             {8, 8, 0, 1},
        {0, 0, 32, 1},           {0, 7, 32, 1},            {7, 0, 128, 1},
        {1024, 1024, 128, 16384}, {3000, 3000, 128, 140625}, {65536, 65536, 1, 524288},
        {256, 256, 16, 128},     {40000, 40000, 128, 25000000},
    };
    PixcacheCache *c = pixcache_cache_new(INT32_MAX);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        Tracker t = {0};
        PixcachePixmap *pm = wrap(cases[i].w, cases[i].h, cases[i].depth, &t);
        CHECK(pixcache_pixmap_is_null(pm) == (cases[i].w == 0 || cases[i].h == 0));
        CHECK(pixcache_insert(c, "x", pm));
        if (pixcache_total_used(c) != cases[i].kb) {
            fprintf(stderr, "%ux%ux%u: cost %d KB, expected %d\n", cases[i].w, cases[i].h,
                    cases[i].depth, pixcache_total_used(c), cases[i].kb);
        }
        CHECK(pixcache_total_used(c) == cases[i].kb);
        CHECK(pixcache_stats(c).total_kb == cases[i].kb);
        pixcache_pixmap_free(pm);
        CHECK(pixcache_remove(c, "x"));
        CHECK(t.releases == 1);
        CHECK(pixcache_total_used(c) == 0);
    }

    /* Bigger than any limit: refused, released once its handle goes. */
    Tracker t = {0};
    PixcachePixmap *huge = wrap(UINT32_MAX, UINT32_MAX, 128, &t);
    CHECK(!pixcache_insert(c, "huge", huge));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_REFUSED);
    CHECK(t.releases == 0);
    pixcache_pixmap_free(huge);
    CHECK(t.releases == 1);

    /* Exactly the limit fits; one KB more does not. */
    Tracker u = {0};
    PixcachePixmap *f = wrap16(&u);
    pixcache_set_cache_limit(c, 16);
    CHECK(pixcache_insert(c, "fits", f));
    CHECK(pixcache_total_used(c) == 16);
    pixcache_set_cache_limit(c, 15);
    CHECK(pixcache_total_used(c) == 0);
    CHECK(!pixcache_insert(c, "fits", f));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_REFUSED);
    CHECK(u.releases == 0);
    pixcache_pixmap_free(f);
    CHECK(u.releases == 1);
    pixcache_cache_free(c);
}

/* ---- cache paths --------------------------------------------------------------------------- */

static void test_cache_eviction(void) {
    printf("/foreign/cache/eviction\n");
    PixcacheCache *c = pixcache_cache_new(32);
    Tracker t1 = {0}, t2 = {0}, t3 = {0};
    PixcachePixmap *f1 = wrap16(&t1), *f2 = wrap16(&t2), *f3 = wrap16(&t3);
    CHECK(pixcache_insert(c, "1", f1));
    pixcache_pixmap_free(f1);
    CHECK(t1.releases == 0); /* the cache holds the last share */
    CHECK(pixcache_insert(c, "2", f2));
    CHECK(t1.releases == 0);
    CHECK(pixcache_insert(c, "3", f3)); /* evicts "1" */
    CHECK(t1.releases == 1);
    CHECK(!pixcache_find(c, "1", NULL));
    CHECK(pixcache_stats(c).evictions == 1);

    /* "2" is evicted as well, but f2's handle still shares it. */
    PixcacheKey k = pixcache_insert_key(c, f3);
    CHECK(pixcache_key_is_valid(c, k));
    CHECK(!pixcache_find(c, "2", NULL));
    CHECK(t2.releases == 0);
    pixcache_pixmap_free(f2);
    CHECK(t2.releases == 1);

    pixcache_pixmap_free(f3);
    CHECK(t3.releases == 0); /* "3" and k */
    pixcache_clear(c);
    CHECK(t3.releases == 1);
    CHECK(t1.releases == 1 && t2.releases == 1);
    pixcache_cache_free(c);
}

static void test_cache_remove(void) {
    printf("/foreign/cache/remove\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    Tracker t = {0}, u = {0};
    PixcachePixmap *f = wrap16(&t);
    CHECK(pixcache_insert(c, "f", f));
    pixcache_pixmap_free(f);
    CHECK(!pixcache_remove(c, "other"));
    CHECK(t.releases == 0);
    CHECK(pixcache_remove(c, "f"));
    CHECK(t.releases == 1);
    CHECK(!pixcache_remove(c, "f"));
    CHECK(t.releases == 1);

    PixcachePixmap *g = wrap16(&u);
    PixcacheKey k = pixcache_insert_key(c, g);
    pixcache_pixmap_free(g);
    CHECK(u.releases == 0);
    CHECK(pixcache_remove_key(c, k));
    CHECK(u.releases == 1);
    CHECK(!pixcache_remove_key(c, k));
    CHECK(u.releases == 1);
    pixcache_cache_free(c);
}

static void test_cache_replace(void) {
    printf("/foreign/cache/replace\n");
    PixcacheCache *c = pixcache_cache_new(100);
    Tracker t = {0}, u = {0}, v = {0};
    PixcachePixmap *f = wrap16(&t);
    PixcacheKey k = pixcache_insert_key(c, f);
    pixcache_pixmap_free(f);
    PixcachePixmap *g = wrap16(&u);
    CHECK(pixcache_replace(c, &k, g)); /* the old entry (f's last share) goes */
    CHECK(t.releases == 1);
    pixcache_pixmap_free(g);
    CHECK(u.releases == 0);

    /* A refused replace drops the old entry too. */
    PixcachePixmap *too_big = wrap(1024, 1024, 32, &v); /* 4096 KB */
    CHECK(!pixcache_replace(c, &k, too_big));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_REFUSED);
    CHECK(u.releases == 1);
    CHECK(v.releases == 0);
    pixcache_pixmap_free(too_big);
    CHECK(v.releases == 1);

    /* A replace through an invalid key drops nothing. */
    Tracker w = {0};
    PixcachePixmap *h = wrap16(&w);
    CHECK(!pixcache_replace(c, &k, h));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_INVALID_KEY);
    pixcache_pixmap_free(h);
    CHECK(w.releases == 1);
    CHECK(pixcache_stats(c).entries == 0);
    pixcache_cache_free(c);
    CHECK(t.releases == 1 && u.releases == 1 && v.releases == 1);
}

static void test_cache_reinsert(void) {
    printf("/foreign/cache/reinsert_same_string\n");
    PixcacheCache *c = pixcache_cache_new(100);
    Tracker t = {0}, u = {0};
    PixcachePixmap *f = wrap16(&t);
    CHECK(pixcache_insert(c, "k", f));
    CHECK(pixcache_insert(c, "k", f)); /* same pixmap again: stays alive */
    pixcache_pixmap_free(f);
    CHECK(t.releases == 0);
    PixcachePixmap *g = wrap16(&u);
    CHECK(pixcache_insert(c, "k", g));
    CHECK(t.releases == 1);
    pixcache_pixmap_free(g);
    CHECK(pixcache_stats(c).entries == 1);
    pixcache_cache_free(c);
    CHECK(u.releases == 1 && t.releases == 1);
}

static void test_cache_clear(void) {
    printf("/foreign/cache/clear\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    Tracker t[5] = {{0}};
    PixcachePixmap *kept = NULL;
    for (int i = 0; i < 5; ++i) {
        PixcachePixmap *f = wrap16(&t[i]);
        char name[8];
        snprintf(name, sizeof name, "c%d", i);
        CHECK(pixcache_insert(c, name, f));
        if (i == 2) {
            kept = f;
        } else {
            pixcache_pixmap_free(f);
        }
    }
    pixcache_clear(c);
    for (int i = 0; i < 5; ++i) CHECK(t[i].releases == (i == 2 ? 0 : 1));
    pixcache_clear(c); /* clearing an empty cache releases nothing more */
    pixcache_pixmap_free(kept);
    for (int i = 0; i < 5; ++i) CHECK(t[i].releases == 1);
    pixcache_cache_free(c);
}

static void test_cache_refused(void) {
    printf("/foreign/cache/refused\n");
    PixcacheCache *c = pixcache_cache_new(8);
    Tracker t = {0}, u = {0};
    PixcachePixmap *f = wrap16(&t);
    CHECK(!pixcache_insert(c, "f", f));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_REFUSED);
    PixcacheKey k = pixcache_insert_key(c, f);
    CHECK(!pixcache_key_is_valid(c, k));
    CHECK(t.releases == 0); /* the handle still holds it */
    CHECK(pixcache_pixmap_is_detached(f)); /* the cache kept no share */
    pixcache_pixmap_free(f);
    CHECK(t.releases == 1);

    /* A refused insert under a used key drops the previous entry (Qt's rule). */
    PixcachePixmap *small = wrap(16, 16, 32, &u); /* 1 KB */
    CHECK(pixcache_insert(c, "s", small));
    pixcache_pixmap_free(small);
    Tracker v = {0};
    PixcachePixmap *big = wrap16(&v);
    CHECK(!pixcache_insert(c, "s", big));
    CHECK(u.releases == 1);
    CHECK(v.releases == 0);
    pixcache_pixmap_free(big);
    CHECK(v.releases == 1);

    /* A cache with limit 0 refuses even 1 KB. */
    pixcache_set_cache_limit(c, 0);
    Tracker w = {0};
    PixcachePixmap *tiny = wrap(1, 1, 1, &w);
    CHECK(!pixcache_insert(c, "t", tiny));
    CHECK(w.releases == 0);
    pixcache_pixmap_free(tiny);
    CHECK(w.releases == 1);
    pixcache_cache_free(c);
}

/* A release that also looks a key up in the cache it was dropped from: it must run with the
 * cache unlocked (else the lookup would fail with PIXCACHE_RESULT_REENTRANT). */
typedef struct {
    Tracker t;
    PixcacheCache *cache;
    int lookups_ok;
} Probe;

static void probe_release(void *user_data) {
    Probe *p = user_data;
    track_release(&p->t);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    (void)pixcache_find(p->cache, "anything", out);
    if (pixcache_last_result() == PIXCACHE_RESULT_OK) ++p->lookups_ok;
    pixcache_pixmap_free(out);
}

static void test_cache_wrapped_inserts(void) {
    printf("/foreign/cache/wrapped\n");
    PixcacheCache *c = pixcache_cache_new(64);
    Probe a = {.cache = c}, k = {.cache = c}, r = {.cache = c};

    /* Inserted: the entry is the foreign pixmap; released once when the cache drops it. */
    CHECK(pixcache_insert_wrapped_n(c, "a", 1, 64, 64, 32, &a, probe_release));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    CHECK(pixcache_total_used(c) == 16);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find(c, "a", out) && pixcache_pixmap_user_data(out) == &a);
    CHECK(pixcache_pixmap_width(out) == 64 && pixcache_pixmap_depth(out) == 32);
    PixcacheKey key = pixcache_insert_key_wrapped(c, 32, 32, 32, &k, probe_release); /* 4 KB */
    CHECK(pixcache_key_is_valid(c, key));
    CHECK(pixcache_find_key(c, key, out) && pixcache_pixmap_user_data(out) == &k);
    pixcache_pixmap_free(out); /* out held k's share last */
    CHECK(a.t.releases == 0 && k.t.releases == 0);
    PixcacheKey old = key;
    CHECK(pixcache_replace_wrapped(c, &key, 16, 16, 32, &r, probe_release));
    CHECK(!pixcache_key_equal(key, old) && pixcache_key_is_valid(c, key));
    CHECK(k.t.releases == 1 && k.lookups_ok == 1); /* the replaced entry went, unlocked */
    CHECK(pixcache_remove(c, "a"));
    CHECK(a.t.releases == 1 && a.lookups_ok == 1);
    pixcache_clear(c);
    CHECK(r.t.releases == 1 && r.lookups_ok == 1);

    /* Every failure releases at once, unlocked, and reports its own code. */
    struct {
        const char *what;
        PixcacheResult code;
    } failures[] = {
        {"NULL cache", PIXCACHE_RESULT_NULL_ARGUMENT},       {"NULL key", PIXCACHE_RESULT_NULL_ARGUMENT},
        {"depth 129", PIXCACHE_RESULT_INVALID_ARGUMENT},     {"refused", PIXCACHE_RESULT_REFUSED},
        {"key NULL cache", PIXCACHE_RESULT_NULL_ARGUMENT},   {"key depth 129", PIXCACHE_RESULT_INVALID_ARGUMENT},
        {"key refused", PIXCACHE_RESULT_REFUSED},            {"replace invalid key", PIXCACHE_RESULT_INVALID_KEY},
        {"replace NULL key", PIXCACHE_RESULT_NULL_ARGUMENT}, {"replace refused", PIXCACHE_RESULT_REFUSED},
        {"not UTF-8", PIXCACHE_RESULT_INVALID_UTF8},
    };
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; ++i) {
        Probe f = {.cache = c};
        PixcacheKey valid = pixcache_insert_key_wrapped(c, 1, 1, 32, NULL, NULL); /* NULL release */
        CHECK(pixcache_key_is_valid(c, valid));
        PixcacheKey stale = {12345}, refused = {0};
        bool ok = true;
        switch (i) {
        case 0: ok = pixcache_insert_wrapped_n(NULL, "f", 1, 8, 8, 32, &f, probe_release); break;
        case 1: ok = pixcache_insert_wrapped_n(c, NULL, 1, 8, 8, 32, &f, probe_release); break;
        case 2: ok = pixcache_insert_wrapped_n(c, "f", 1, 8, 8, 129, &f, probe_release); break;
        case 3: ok = pixcache_insert_wrapped_n(c, "f", 1, 1024, 1024, 32, &f, probe_release); break;
        case 4: ok = pixcache_insert_key_wrapped(NULL, 8, 8, 32, &f, probe_release).id != 0; break;
        case 5: ok = pixcache_insert_key_wrapped(c, 8, 8, 129, &f, probe_release).id != 0; break;
        case 6: refused = pixcache_insert_key_wrapped(c, 1024, 1024, 32, &f, probe_release); ok = false; break;
        case 7: ok = pixcache_replace_wrapped(c, &stale, 8, 8, 32, &f, probe_release); break;
        case 8: ok = pixcache_replace_wrapped(c, NULL, 8, 8, 32, &f, probe_release); break;
        case 9: ok = pixcache_replace_wrapped(c, &valid, 1024, 1024, 32, &f, probe_release); break;
        case 10: ok = pixcache_insert_wrapped_n(c, "\xff", 1, 8, 8, 32, &f, probe_release); break;
        }
        PixcacheResult code = pixcache_last_result();
        if (i == 6) CHECK(refused.id != 0 && !pixcache_key_is_valid(c, refused)); /* as Qt: fresh, never valid */
        if (code != failures[i].code || f.t.releases != 1)
            fprintf(stderr, "%s: result %d, %d releases\n", failures[i].what, (int)code, f.t.releases);
        CHECK(!ok);
        CHECK(code == failures[i].code);
        CHECK(f.t.releases == 1);
        CHECK(f.lookups_ok == 1); /* released with the cache unlocked */
        CHECK(!pixcache_find(c, "f", NULL));
    }
    pixcache_cache_free(c);
}

static void test_cache_lowered_limit(void) {
    printf("/foreign/cache/lowered_limit\n");
    PixcacheCache *c = pixcache_cache_new(64);
    Tracker t[4] = {{0}};
    for (int i = 0; i < 4; ++i) {
        PixcachePixmap *f = wrap16(&t[i]);
        char name[8];
        snprintf(name, sizeof name, "l%d", i);
        CHECK(pixcache_insert(c, name, f));
        pixcache_pixmap_free(f);
    }
    pixcache_set_cache_limit(c, 100); /* raising evicts nothing */
    for (int i = 0; i < 4; ++i) CHECK(t[i].releases == 0);
    pixcache_set_cache_limit(c, 40); /* 64 -> 32: the two oldest go */
    CHECK(t[0].releases == 1 && t[1].releases == 1);
    CHECK(t[2].releases == 0 && t[3].releases == 0);
    pixcache_set_cache_limit(c, -5); /* holds nothing */
    CHECK(t[2].releases == 1 && t[3].releases == 1);
    CHECK(pixcache_total_used(c) == 0);
    pixcache_cache_free(c);
    for (int i = 0; i < 4; ++i) CHECK(t[i].releases == 1);
}

static void test_cache_flush_and_tick(void) {
    printf("/foreign/cache/flush_detached_and_tick\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    Tracker t[8] = {{0}};
    for (int i = 0; i < 8; ++i) {
        PixcachePixmap *f = wrap16(&t[i]);
        CHECK(pixcache_insert_key(c, f).id != 0);
        pixcache_pixmap_free(f);
    }
    pixcache_flush_detached(c); /* 128 KB -> 96 KB: the two oldest go */
    CHECK(pixcache_total_used(c) == 96);
    CHECK(t[0].releases == 1 && t[1].releases == 1);
    for (int i = 2; i < 8; ++i) CHECK(t[i].releases == 0);

    /* The total is unchanged since the trim: a tick trims to 3/4 again (96 -> 72). */
    CHECK(pixcache_tick(c) == 2);
    CHECK(t[2].releases == 1 && t[3].releases == 1);
    for (int i = 4; i < 8; ++i) CHECK(t[i].releases == 0);

    /* After a change, a tick drops only the least recently used entry. */
    PixcachePixmap *r = raster(2, 2);
    CHECK(pixcache_insert(c, "r", r));
    pixcache_pixmap_free(r);
    CHECK(pixcache_tick(c) == 1);
    CHECK(t[4].releases == 1);
    for (int i = 5; i < 8; ++i) CHECK(t[i].releases == 0);

    pixcache_cache_free(c);
    for (int i = 0; i < 8; ++i) CHECK(t[i].releases == 1);
}

static void test_cache_free(void) {
    printf("/foreign/cache/cache_free\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    Tracker t = {0}, u = {0};
    PixcachePixmap *f = wrap16(&t);
    PixcachePixmap *g = wrap16(&u);
    CHECK(pixcache_insert(c, "f", f));
    CHECK(pixcache_insert_key(c, f).id != 0);
    CHECK(pixcache_insert(c, "g", g));
    pixcache_pixmap_free(f);
    pixcache_cache_free(c);
    CHECK(t.releases == 1);
    CHECK(u.releases == 0); /* the handle outlives the cache */
    CHECK(pixcache_pixmap_user_data(g) == &u);
    CHECK(pixcache_pixmap_is_detached(g));
    pixcache_pixmap_free(g);
    CHECK(u.releases == 1);
}

/* A release that reads the handle whose old pixmap it releases: it must find the handle already
 * holding its new pixmap (a release running mid-assignment saw a pixmap whose last share was
 * going, and cloning it revived freed pixels: a double free under ASan). */
static PixcachePixmap *watched;  /* the handle the release reads */
static PixcachePixmap *grabbed;  /* what it cloned from there */
static int grab_releases;

static void grab_watched(void *user_data) {
    (void)user_data;
    ++grab_releases;
    pixcache_pixmap_free(grabbed);
    grabbed = pixcache_pixmap_clone(watched);
}

static bool produce_small(void *user_data, PixcachePixmap *pm) {
    (void)user_data;
    PixcachePixmap *r = pixcache_pixmap_new(5, 5, PIXCACHE_FORMAT_GRAY8);
    pixcache_pixmap_assign(pm, r);
    pixcache_pixmap_free(r);
    return true;
}

static void test_release_reads_the_handle_it_leaves(void) {
    printf("/foreign/handle/release_reads_the_handle_it_leaves\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    PixcachePixmap *src = raster(3, 3);
    CHECK(pixcache_insert(c, "s", src));
    PixcacheKey k = pixcache_insert_key(c, src);
    grab_releases = 0;
    for (int path = 0; path < 4; ++path) {
        watched = pixcache_pixmap_wrap(8, 8, 32, NULL, grab_watched);
        CHECK(watched != NULL);
        switch (path) {
        case 0: pixcache_pixmap_assign(watched, src); break;
        case 1: CHECK(pixcache_find(c, "s", watched)); break;
        case 2: CHECK(pixcache_find_key(c, k, watched)); break;
        case 3: CHECK(pixcache_find_or_insert_with(c, "made", produce_small, NULL, watched)); break;
        }
        CHECK(grab_releases == path + 1);
        /* The release saw the new pixmap. */
        CHECK(grabbed != NULL);
        CHECK(pixcache_pixmap_user_data(grabbed) == NULL);
        CHECK(pixcache_pixmap_width(grabbed) == (path == 3 ? 5u : 3u));
        CHECK(pixcache_pixmap_cache_key(grabbed) == pixcache_pixmap_cache_key(watched));
        pixcache_pixmap_free(watched);
    }
    pixcache_pixmap_free(grabbed);
    grabbed = NULL;
    pixcache_pixmap_free(src);
    pixcache_cache_free(c);
}

/* Releases run by pixcache_cache_free use the cache being freed, and put entries back. */
typedef struct {
    PixcacheCache *cache;
    int generation; /* a release of generation g < 2 inserts a foreign pixmap of generation g+1 */
    atomic_int *releases;
} Refill;

static void refill_release(void *user_data) {
    Refill *r = user_data;
    atomic_fetch_add(r->releases, 1);
    CHECK(pixcache_stats(r->cache).entries < 1000);
    CHECK(!pixcache_find(r->cache, "no such key", NULL));
    PixcachePixmap *plain = raster(2, 2);
    CHECK(pixcache_insert(r->cache, "plain", plain));
    pixcache_pixmap_free(plain);
    if (r->generation < 2) {
        Refill *next = malloc(sizeof *next);
        CHECK(next != NULL);
        *next = (Refill){r->cache, r->generation + 1, r->releases};
        PixcachePixmap *f = pixcache_pixmap_wrap(4, 4, 32, next, refill_release);
        CHECK(pixcache_insert_key(r->cache, f).id != 0);
        pixcache_pixmap_free(f);
    }
    free(r);
}

static void test_cache_free_releases_use_the_cache(void) {
    printf("/foreign/cache/cache_free_releases_use_the_cache\n");
    atomic_int releases = 0;
    PixcacheCache *c = pixcache_cache_new(1000);
    for (int i = 0; i < 10; ++i) {
        Refill *r = malloc(sizeof *r);
        CHECK(r != NULL);
        *r = (Refill){c, 0, &releases};
        PixcachePixmap *f = pixcache_pixmap_wrap(4, 4, 32, r, refill_release);
        char key[16];
        snprintf(key, sizeof key, "f%d", i);
        CHECK(pixcache_insert(c, key, f));
        pixcache_pixmap_free(f);
    }
    pixcache_cache_free(c);
    /* 10 of generation 0, each making one of generation 1, each making one of generation 2. */
    CHECK(atomic_load(&releases) == 30);
}

static void test_two_caches(void) {
    printf("/foreign/cache/two_caches_and_global\n");
    PixcacheCache *a = pixcache_cache_new(100);
    PixcacheCache *b = pixcache_cache_new(100);
    PixcacheCache *g = pixcache_global();
    Tracker t = {0};
    PixcachePixmap *f = wrap16(&t);
    CHECK(pixcache_insert(a, "f", f));
    CHECK(pixcache_insert(b, "f", f));
    CHECK(pixcache_insert(g, "foreign:f", f));
    pixcache_pixmap_free(f);
    pixcache_cache_free(a);
    CHECK(t.releases == 0);
    CHECK(pixcache_remove(b, "f"));
    CHECK(t.releases == 0);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find(g, "foreign:f", out));
    CHECK(pixcache_remove(g, "foreign:f"));
    CHECK(t.releases == 0); /* out still shares it */
    pixcache_pixmap_free(out);
    CHECK(t.releases == 1);
    pixcache_cache_free(b);
    CHECK(t.releases == 1);
}

static void test_null_release(void) {
    printf("/foreign/null_release\n");
    PixcacheCache *c = pixcache_cache_new(100);
    int token = 7;
    PixcachePixmap *f = pixcache_pixmap_wrap(64, 64, 32, &token, NULL);
    CHECK(f != NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    CHECK(pixcache_pixmap_user_data(f) == &token);
    PixcachePixmap *cl = pixcache_pixmap_clone(f);
    CHECK(pixcache_insert(c, "a", f));
    PixcacheKey k = pixcache_insert_key(c, f);
    pixcache_pixmap_free(f);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_user_data(out) == &token);
    CHECK(pixcache_remove(c, "a"));
    pixcache_clear(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(cl);
    CHECK(token == 7);
    pixcache_cache_free(c);
}

/* ---- re-entrant release functions ---------------------------------------------------------- */

/* What a re-entrant release does, and what it saw. */
typedef struct Reenter {
    int releases;
    PixcacheCache *cache;        /* the cache it calls back into */
    PixcachePixmap *insert_pm;   /* inserted under "re:added" */
    PixcachePixmap *to_free;     /* a handle it frees (maybe foreign, maybe re-entrant too) */
    const char *remove_name;     /* removed from the cache (maybe a foreign entry) */
    int clear_cache;             /* also clears the cache at the end */
    int failing_call;            /* also makes a call that fails (leaving an error) */
    /* what it saw */
    int found, found_width, found_null_out, inserted, removed, key_valid, key_found;
    int32_t total, limit;
    PixcacheKey key;             /* a key it inserted into the cache */
} Reenter;

static void reenter_release(void *user_data) {
    Reenter *r = user_data;
    ++r->releases;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    r->found = pixcache_find(r->cache, "re:probe", out);
    r->found_width = (int)pixcache_pixmap_width(out);
    pixcache_pixmap_free(out);
    r->found_null_out = pixcache_find(r->cache, "re:probe", NULL);
    r->inserted = r->insert_pm != NULL && pixcache_insert(r->cache, "re:added", r->insert_pm);
    if (r->insert_pm != NULL) {
        r->key = pixcache_insert_key(r->cache, r->insert_pm);
        r->key_valid = pixcache_key_is_valid(r->cache, r->key);
        r->key_found = pixcache_find_key(r->cache, r->key, NULL);
    }
    if (r->remove_name != NULL) r->removed = pixcache_remove(r->cache, r->remove_name);
    r->total = pixcache_total_used(r->cache);
    r->limit = pixcache_cache_limit(r->cache);
    PixcacheStats st = pixcache_stats(r->cache);
    CHECK(st.total_kb == r->total);
    if (r->to_free != NULL) {
        PixcachePixmap *pm = r->to_free;
        r->to_free = NULL;
        pixcache_pixmap_free(pm);
    }
    if (r->clear_cache) pixcache_clear(r->cache);
    if (r->failing_call) {
        PixcacheKey zero = {0};
        CHECK(!pixcache_find_key(r->cache, zero, NULL));
        CHECK(pixcache_last_result() == PIXCACHE_RESULT_INVALID_KEY);
    }
}

enum path {
    PATH_REMOVE,
    PATH_REMOVE_KEY,
    PATH_EVICT_ON_INSERT,
    PATH_LOWER_LIMIT,
    PATH_FLUSH,
    PATH_TICK,
    PATH_REPLACE,
    PATH_REINSERT,
    PATH_REFUSED_REINSERT,
    PATH_CLEAR,
    PATH_HANDLE_FREE,
    PATH_FIND_OUT,
    PATH_ASSIGN,
    PATH_CACHE_FREE,
    PATH_COUNT
};

static const char *const path_names[PATH_COUNT] = {
    "remove",  "remove_key", "evict_on_insert", "lower_limit",     "flush_detached",
    "tick",    "replace",    "reinsert",        "refused_reinsert", "clear",
    "handle_free", "find_out", "assign",        "cache_free",
};

/* Drops the last share of a re-entrant foreign pixmap F by `path`. The cache (limit 1000) holds,
 * from least to most recently used: F (16 KB, under "re:f" or a key), "re:probe" (a 2x2
 * raster, 1 KB) and "re:victim" (1 KB). F's release finds "re:probe", inserts "re:added" and a
 * key entry, removes "re:victim", and frees the last handle of another foreign pixmap G. */
static void run_reentrant_path(enum path path) {
    printf("/foreign/reentrant/%s\n", path_names[path]);
    PixcacheCache *c = pixcache_cache_new(1000);
    PixcacheCache *other = pixcache_cache_new(1000); /* for PATH_CACHE_FREE */
    PixcachePixmap *probe = raster(2, 2);
    PixcachePixmap *victim = raster(1, 1);
    PixcachePixmap *added = raster(3, 3);
    Tracker g_tracker = {0};
    PixcachePixmap *g = wrap16(&g_tracker);

    Reenter r;
    memset(&r, 0, sizeof r);
    r.cache = path == PATH_CACHE_FREE ? other : c;
    r.insert_pm = added;
    r.to_free = g;
    r.remove_name = "re:victim";
    PixcachePixmap *f = pixcache_pixmap_wrap(64, 64, 32, &r, reenter_release);
    CHECK(f != NULL);

    PixcacheKey fk = {0};
    if (path == PATH_REMOVE_KEY || path == PATH_REPLACE) {
        fk = pixcache_insert_key(c, f);
        CHECK(pixcache_key_is_valid(c, fk));
    } else if (path != PATH_HANDLE_FREE && path != PATH_FIND_OUT && path != PATH_ASSIGN) {
        CHECK(pixcache_insert(c, "re:f", f));
    }
    CHECK(pixcache_insert(c, "re:probe", probe));
    CHECK(pixcache_insert(c, "re:victim", victim));
    if (path == PATH_CACHE_FREE) {
        CHECK(pixcache_insert(other, "re:probe", probe));
        CHECK(pixcache_insert(other, "re:victim", victim));
    }
    if (path != PATH_HANDLE_FREE && path != PATH_FIND_OUT && path != PATH_ASSIGN) {
        pixcache_pixmap_free(f); /* the cache holds the last share */
        f = NULL;
    }
    CHECK(r.releases == 0);

    PixcachePixmap *big = NULL, *refused = NULL, *out = NULL, *dst = NULL;
    Tracker big_tracker = {0}, refused_tracker = {0};
    switch (path) {
    case PATH_REMOVE:
        CHECK(pixcache_remove(c, "re:f"));
        break;
    case PATH_REMOVE_KEY:
        CHECK(pixcache_remove_key(c, fk));
        break;
    case PATH_EVICT_ON_INSERT:
        big = wrap(990 * 256, 1, 32, &big_tracker); /* 990 KB: 18 + 990 > 1000, F goes */
        CHECK(pixcache_insert(c, "re:big", big));
        break;
    case PATH_LOWER_LIMIT:
        pixcache_set_cache_limit(c, 17); /* 18 KB -> F goes */
        break;
    case PATH_FLUSH:
        pixcache_flush_detached(c); /* 18 -> at most 13: F goes */
        break;
    case PATH_TICK:
        CHECK(pixcache_tick(c) == 1); /* total changed since the last tick: only F goes */
        break;
    case PATH_REPLACE: {
        PixcacheKey before = fk;
        CHECK(pixcache_replace(c, &fk, victim));
        CHECK(!pixcache_key_equal(before, fk));
        CHECK(pixcache_key_is_valid(c, fk));
        break;
    }
    case PATH_REINSERT:
        CHECK(pixcache_insert(c, "re:f", victim));
        break;
    case PATH_REFUSED_REINSERT:
        refused = wrap(2048, 1024, 32, &refused_tracker); /* 8192 KB > 1000 */
        CHECK(!pixcache_insert(c, "re:f", refused));
        CHECK(pixcache_last_result() == PIXCACHE_RESULT_REFUSED);
        break;
    case PATH_CLEAR:
        pixcache_clear(c);
        break;
    case PATH_HANDLE_FREE:
        pixcache_pixmap_free(f);
        f = NULL;
        break;
    case PATH_FIND_OUT:
        out = f; /* the last share of F is the out handle */
        f = NULL;
        CHECK(pixcache_find(c, "re:victim", out));
        CHECK(pixcache_pixmap_width(out) == 1);
        break;
    case PATH_ASSIGN:
        dst = f;
        f = NULL;
        pixcache_pixmap_assign(dst, victim);
        CHECK(pixcache_pixmap_width(dst) == 1);
        break;
    case PATH_CACHE_FREE:
        pixcache_cache_free(c);
        c = NULL;
        break;
    case PATH_COUNT:
        assert(0);
    }

    /* F was released exactly once, and so was G, from inside F's release. */
    CHECK(r.releases == 1);
    CHECK(g_tracker.releases == 1);
    CHECK(r.to_free == NULL);

    /* What the release saw and did. */
    int cleared = path == PATH_CLEAR;
    CHECK(r.found == !cleared);
    CHECK(r.found_width == (cleared ? 0 : 2));
    CHECK(r.found_null_out == !cleared);
    CHECK(r.inserted == 1);
    CHECK(r.key.id != 0);
    CHECK(r.key_valid == 1);
    CHECK(r.key_found == 1);
    CHECK(r.removed == !cleared);
    CHECK(r.limit == (path == PATH_LOWER_LIMIT ? 17 : 1000));

    /* And the cache is consistent afterwards. */
    PixcacheCache *seen = r.cache;
    PixcacheStats st = pixcache_stats(seen);
    CHECK(st.total_kb == pixcache_total_used(seen));
    CHECK(st.total_kb <= st.limit_kb);
    CHECK(pixcache_find(seen, "re:added", NULL));
    CHECK(pixcache_key_is_valid(seen, r.key));
    CHECK(!pixcache_find(seen, "re:victim", NULL));
    CHECK(pixcache_find(seen, "re:f", NULL) == (path == PATH_REINSERT));
    CHECK(pixcache_find(seen, "re:probe", NULL) == !cleared);
    if (path == PATH_EVICT_ON_INSERT) {
        CHECK(pixcache_find(seen, "re:big", NULL));
        CHECK(st.total_kb == 1 + 990 + 1 + 1); /* probe + big + "re:added" + r.key */
    }

    /* Releasing everything else releases nothing of F again. */
    if (c != NULL) pixcache_clear(c);
    pixcache_pixmap_free(big);
    pixcache_pixmap_free(refused);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(dst);
    pixcache_pixmap_free(probe);
    pixcache_pixmap_free(victim);
    pixcache_pixmap_free(added);
    pixcache_cache_free(c);
    pixcache_cache_free(other);
    CHECK(r.releases == 1);
    CHECK(g_tracker.releases == 1);
    CHECK(big_tracker.releases == (big != NULL));
    CHECK(refused_tracker.releases == (refused != NULL));
}

static void test_reentrant_paths(void) {
    for (int p = 0; p < PATH_COUNT; ++p) run_reentrant_path((enum path)p);
}

/* A chain: F's release frees G's last handle; G's release removes H's entry and clears the
 * cache; H's release inserts into the cache. Three nested releases, all re-entering one cache. */
static void test_reentrant_chain(void) {
    printf("/foreign/reentrant/chain\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    PixcachePixmap *probe = raster(2, 2);
    PixcachePixmap *added = raster(3, 3);
    CHECK(pixcache_insert(c, "re:probe", probe));

    Reenter rf, rg, rh;
    memset(&rf, 0, sizeof rf);
    memset(&rg, 0, sizeof rg);
    memset(&rh, 0, sizeof rh);
    rf.cache = rg.cache = rh.cache = c;
    rh.insert_pm = added;
    PixcachePixmap *h = pixcache_pixmap_wrap(8, 8, 32, &rh, reenter_release);
    CHECK(pixcache_insert(c, "re:h", h));
    pixcache_pixmap_free(h);
    rg.remove_name = "re:h";
    rg.clear_cache = 1;
    PixcachePixmap *g = pixcache_pixmap_wrap(8, 8, 32, &rg, reenter_release);
    rf.to_free = g;
    PixcachePixmap *f = pixcache_pixmap_wrap(8, 8, 32, &rf, reenter_release);
    CHECK(pixcache_insert(c, "re:f", f));
    pixcache_pixmap_free(f);
    CHECK(rf.releases == 0 && rg.releases == 0 && rh.releases == 0);

    CHECK(pixcache_remove(c, "re:f"));
    CHECK(rf.releases == 1 && rg.releases == 1 && rh.releases == 1);
    CHECK(rf.found && rg.found && rh.found);
    CHECK(rg.removed == 1);
    CHECK(rh.inserted == 1 && rh.key_valid == 1);
    /* G cleared the cache after H had inserted: nothing is left. */
    CHECK(pixcache_stats(c).entries == 0);
    CHECK(pixcache_total_used(c) == 0);
    CHECK(!pixcache_key_is_valid(c, rh.key));

    pixcache_pixmap_free(probe);
    pixcache_pixmap_free(added);
    pixcache_cache_free(c);
    CHECK(rf.releases == 1 && rg.releases == 1 && rh.releases == 1);
}

/* A release re-entering the global cache from another thread while this one uses it. */
struct global_arg {
    Tracker *t;
    int rounds;
    const char *name;
};

static void global_release(void *user_data) {
    Tracker *t = user_data;
    ++t->releases;
    PixcachePixmap *pm = pixcache_pixmap_new(2, 2, PIXCACHE_FORMAT_GRAY8);
    CHECK(pixcache_insert(pixcache_global(), "foreign:from_release", pm));
    CHECK(pixcache_find(pixcache_global(), "foreign:from_release", NULL));
    pixcache_pixmap_free(pm);
}

static void *global_worker(void *arg) {
    struct global_arg *a = arg;
    for (int i = 0; i < a->rounds; ++i) {
        PixcachePixmap *f = pixcache_pixmap_wrap(64, 64, 32, &a->t[i], global_release);
        CHECK(pixcache_insert(pixcache_global(), a->name, f));
        pixcache_pixmap_free(f);
        CHECK(pixcache_remove(pixcache_global(), a->name));
    }
    return NULL;
}

static void test_reentrant_global_two_threads(void) {
    printf("/foreign/reentrant/global_two_threads\n");
    enum { ROUNDS = 200 };
    static Tracker t[2][ROUNDS];
    memset(t, 0, sizeof t);
    struct global_arg a = {t[0], ROUNDS, "foreign:worker0"}, b = {t[1], ROUNDS, "foreign:worker1"};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, global_worker, &a) == 0);
    global_worker(&b);
    CHECK(pthread_join(th, NULL) == 0);
    for (int i = 0; i < ROUNDS; ++i) CHECK(t[0][i].releases == 1 && t[1][i].releases == 1);
    pixcache_clear(pixcache_global());
    CHECK(pixcache_total_used(pixcache_global()) == 0);
}

/* The last error the caller sees after a call is that call's, not that of a call which a
 * release function it triggered made. The header: a successful call clears the error ("" exactly
 * when the last call succeeded), and the *_free functions leave it as it was before them. Here
 * every release makes a failing call (find_key of the zero key: INVALID_KEY). */
struct seen_error {
    int result;
    char message[256];
};

static void remember_error(struct seen_error *e) {
    e->result = (int)pixcache_last_result();
    snprintf(e->message, sizeof e->message, "%s", pixcache_last_error());
}

static Reenter failing_reenter(PixcacheCache *cache) {
    Reenter r;
    memset(&r, 0, sizeof r);
    r.cache = cache;
    r.failing_call = 1;
    return r;
}

static void test_reentrant_last_error(void) {
    printf("/foreign/reentrant/last_error_is_the_callers\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    PixcacheCache *other = pixcache_cache_new(1000);
    struct seen_error after_remove, after_clear, after_free, after_cache_free;

    /* A successful remove whose release failed a call: the error should be "". */
    Reenter r1 = failing_reenter(c);
    PixcachePixmap *f = pixcache_pixmap_wrap(8, 8, 32, &r1, reenter_release);
    CHECK(pixcache_insert(c, "re:f", f));
    pixcache_pixmap_free(f);
    CHECK(pixcache_remove(c, "re:f"));
    CHECK(r1.releases == 1);
    remember_error(&after_remove);

    /* The same through pixcache_clear. */
    Reenter r2 = failing_reenter(c);
    f = pixcache_pixmap_wrap(8, 8, 32, &r2, reenter_release);
    CHECK(pixcache_insert(c, "re:f", f));
    pixcache_pixmap_free(f);
    pixcache_clear(c);
    CHECK(r2.releases == 1);
    remember_error(&after_clear);

    /* pixcache_pixmap_free after a failed call of the caller's own: that error should stay. */
    Reenter r3 = failing_reenter(c);
    f = pixcache_pixmap_wrap(8, 8, 32, &r3, reenter_release);
    CHECK(pixcache_pixmap_new(1, 1, 99) == NULL); /* INVALID_ARGUMENT */
    pixcache_pixmap_free(f);
    CHECK(r3.releases == 1);
    remember_error(&after_free);

    /* pixcache_cache_free likewise (its release re-enters another cache). */
    Reenter r4 = failing_reenter(other);
    f = pixcache_pixmap_wrap(8, 8, 32, &r4, reenter_release);
    CHECK(pixcache_insert(c, "re:f", f));
    pixcache_pixmap_free(f);
    CHECK(pixcache_pixmap_new(1, 1, 99) == NULL); /* INVALID_ARGUMENT */
    pixcache_cache_free(c);
    CHECK(r4.releases == 1);
    remember_error(&after_cache_free);

    pixcache_cache_free(other);
    const struct {
        const char *call;
        const struct seen_error *seen;
        int want;
    } rows[] = {
        {"pixcache_remove (succeeded)", &after_remove, PIXCACHE_RESULT_OK},
        {"pixcache_clear (succeeded)", &after_clear, PIXCACHE_RESULT_OK},
        {"pixcache_pixmap_free (after INVALID_ARGUMENT)", &after_free,
         PIXCACHE_RESULT_INVALID_ARGUMENT},
        {"pixcache_cache_free (after INVALID_ARGUMENT)", &after_cache_free,
         PIXCACHE_RESULT_INVALID_ARGUMENT},
    };
    int wrong = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; ++i) {
        if (rows[i].seen->result != rows[i].want) {
            fprintf(stderr, "after %s the last result is %d (\"%s\"), expected %d\n",
                    rows[i].call, rows[i].seen->result, rows[i].seen->message, rows[i].want);
            ++wrong;
        }
    }
    if (wrong) fprintf(stderr, "a release function's failing call reached the caller's error\n");
    CHECK(after_remove.result == PIXCACHE_RESULT_OK);
    CHECK(strcmp(after_remove.message, "") == 0);
    CHECK(after_clear.result == PIXCACHE_RESULT_OK);
    CHECK(strcmp(after_clear.message, "") == 0);
    CHECK(after_free.result == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(after_free.message, "99") != NULL); /* the format's message */
    CHECK(after_cache_free.result == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(after_cache_free.message, "99") != NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the test names reach the log even if an assert fires */
    alarm(120);                       /* a deadlock fails the test instead of hanging it */

    test_handle_free();
    test_handle_clones();
    test_handle_assign();
    test_find_overwrites_out();
    test_release_on_dropping_thread();
    test_user_data();
    test_cost();
    test_cache_eviction();
    test_cache_remove();
    test_cache_replace();
    test_cache_reinsert();
    test_cache_clear();
    test_cache_refused();
    test_cache_wrapped_inserts();
    test_cache_lowered_limit();
    test_cache_flush_and_tick();
    test_cache_free();
    test_cache_free_releases_use_the_cache();
    test_release_reads_the_handle_it_leaves();
    test_two_caches();
    test_null_release();
    test_reentrant_paths();
    test_reentrant_chain();
    test_reentrant_global_two_threads();
    test_reentrant_last_error();

    printf("%d checks passed\n", atomic_load(&checks));
    return 0;
}

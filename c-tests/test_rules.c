/* test_rules.c: the observable QPixmapCache rules of docs/spec.md, checked
 * through the C API only.
 *
 * What it tests, section by section of the spec:
 * - "Units and cost": the default limit of the global cache (10240 KB); the cost formula
 *   max(1, w * h * depth / 8 / 1024) KB in 64-bit integer arithmetic for every raster format,
 *   for the null pixmap and for foreign pixmaps of any depth; the exact-fit rule
 *   (total + cost <= limit); cacheLimit() returning what was set (INT_MAX, 0, negatives);
 *   limits <= 0 refusing everything; lowering the limit evicting LRU entries at once and raising
 *   it evicting nothing; totalUsed() exact in KB (the deliberate fix: 128 KB reports 128).
 * - "Eviction": exact LRU order; find (string, key, and with a NULL out) refreshing; re-insert
 *   under the same string and replace refreshing; remove and key validity checks not refreshing;
 *   eviction on insert until the new entry fits (and no further); a pixmap larger than the limit
 *   refused without evicting anything; a pixmap equal to the limit accepted, evicting the rest.
 * - "String keys": insert removes first (a failed insert leaves the key empty); the empty string
 *   is a key; find shares on a hit and leaves `out` untouched on a miss; remove of a missing key
 *   is a no-op and not an error.
 * - "Generated keys": valid / invalid / equal rules for default, fresh, refused, copied, evicted,
 *   removed, cleared and limit-evicted keys; replace (new key, copies invalid and unequal, too
 *   large, through an invalid key); stale keys never finding later entries (100000 inserts);
 *   keys of one cache invalid in another; forged key values finding nothing.
 * - "clear, idle flush": clear on a fresh and a full cache; pixcache_flush_detached (3/4 trim,
 *   least recently used first, regardless of whether the host holds the pixmaps); pixcache_tick
 *   (one entry when the total changed since the previous tick, 3/4 trim when unchanged).
 * - "Pixmaps and sharing": insert shares pixels; writes detach; the cached pixels never change;
 *   every way the cache drops an entry (evicted, lowered limit, flush, tick, removed, replaced,
 *   re-inserted, cleared, refused, cache freed) leaves the caller's pixmap detached again.
 * - pixcache_stats: entries, total_kb, limit_kb, hits, misses, inserts, evictions, refused.
 *
 * What it does not test: the thread rules (test_threads.c); NULL arguments, invalid UTF-8 and
 * other error paths beyond the result codes the rules name (test_errors.c); foreign pixmaps'
 * release callbacks beyond "released once" (test_foreign.c); image decoding.
 *
 * Every test makes its own cache with pixcache_cache_new; only the default-limit check uses the
 * global cache, and clears it afterwards. Every pixmap and cache is freed (valgrind-clean).
 */
#undef NDEBUG
#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pixcache.h"

static unsigned long checks;

#include "check.h"

#define KEY0 ((PixcacheKey){0})

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static PixcacheCache *new_cache(int32_t limit_kb) {
    PixcacheCache *c = pixcache_cache_new(limit_kb);
    assert(c != NULL);
    return c;
}

static PixcachePixmap *pixmap(uint32_t w, uint32_t h, PixcacheFormat format) {
    PixcachePixmap *pm = pixcache_pixmap_new(w, h, format);
    assert(pm != NULL);
    return pm;
}

/* 32-bit RGBA: 64x64 costs 16 KB, 10x10 costs 1 KB. */
static PixcachePixmap *rgba(uint32_t w, uint32_t h) {
    return pixmap(w, h, PIXCACHE_FORMAT_RGBA8888);
}

/* The cost of `pm` in KB, as a cache with an unbounded limit accounts it (string and key insert
 * must agree). */
static int32_t cost_of(const PixcachePixmap *pm) {
    PixcacheCache *c = new_cache(INT_MAX);
    CHECK(pixcache_insert(c, "cost", pm));
    int32_t kb = pixcache_total_used(c);
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 1);
    CHECK_EQ(st.total_kb, kb);
    pixcache_clear(c);
    PixcacheKey k = pixcache_insert_key(c, pm);
    CHECK(pixcache_key_is_valid(c, k));
    CHECK_EQ(pixcache_total_used(c), kb);
    pixcache_cache_free(c);
    return kb;
}

static size_t entries(const PixcacheCache *c) {
    return pixcache_stats(c).entries;
}

/* Asserts that `c` holds exactly the string entries `names`, least recently used first, each
 * costing `each_kb`. It lowers the limit one entry at a time (which evicts the least recently
 * used entry at once) and looks the survivors up oldest first (which keeps their relative
 * order), so it empties the cache: call it last. */
static void expect_order(PixcacheCache *c, const char *const names[], size_t n, int32_t each_kb) {
    CHECK_EQ(entries(c), n);
    CHECK_EQ(pixcache_total_used(c), (long long)n * each_kb);
    for (size_t i = 0; i < n; ++i) {
        pixcache_set_cache_limit(c, (int32_t)(n - i - 1) * each_kb);
        CHECK_EQ(entries(c), n - i - 1);
        CHECK(!pixcache_find(c, names[i], NULL));
        for (size_t j = i + 1; j < n; ++j) CHECK(pixcache_find(c, names[j], NULL));
    }
}

/* The same for generated keys; validity checks do not refresh, so no care is needed. */
static void expect_key_order(PixcacheCache *c, const PixcacheKey keys[], size_t n,
                             int32_t each_kb) {
    CHECK_EQ(entries(c), n);
    CHECK_EQ(pixcache_total_used(c), (long long)n * each_kb);
    for (size_t i = 0; i < n; ++i) {
        pixcache_set_cache_limit(c, (int32_t)(n - i - 1) * each_kb);
        CHECK_EQ(entries(c), n - i - 1);
        CHECK(!pixcache_key_is_valid(c, keys[i]));
        for (size_t j = i + 1; j < n; ++j) CHECK(pixcache_key_is_valid(c, keys[j]));
    }
}

static int releases;
static void count_release(void *user_data) {
    (void)user_data;
    ++releases;
}

/* ---------------------------------------------------------------------------------------------
 * Units and cost
 * ------------------------------------------------------------------------------------------- */

static void units_default_limit(void) {
    printf("/rules/units/default_limit_is_10240\n");
    PixcacheCache *g = pixcache_global();
    CHECK(g != NULL);
    CHECK(pixcache_global() == g);
    CHECK_EQ(pixcache_cache_limit(g), 10240);
    CHECK_EQ(pixcache_stats(g).limit_kb, 10240);
    pixcache_clear(g);

    /* 10240 KB hold exactly 640 pixmaps of 16 KB: the 641st evicts the oldest. */
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheKey keys[641];
    for (int i = 0; i < 640; ++i) {
        keys[i] = pixcache_insert_key(g, pm);
        CHECK(pixcache_key_is_valid(g, keys[i]));
    }
    CHECK_EQ(pixcache_total_used(g), 10240);
    CHECK_EQ(entries(g), 640);
    keys[640] = pixcache_insert_key(g, pm);
    CHECK(pixcache_key_is_valid(g, keys[640]));
    CHECK(!pixcache_key_is_valid(g, keys[0]));
    CHECK(pixcache_key_is_valid(g, keys[1]));
    CHECK_EQ(entries(g), 640);
    CHECK_EQ(pixcache_total_used(g), 10240);

    pixcache_cache_free(g); /* ignored for the global cache */
    CHECK_EQ(pixcache_cache_limit(g), 10240);
    pixcache_clear(g);
    CHECK_EQ(entries(g), 0);
    CHECK_EQ(pixcache_total_used(g), 0);
    CHECK(pixcache_pixmap_is_detached(pm));
    pixcache_pixmap_free(pm);
}

static void cost_formula(void) {
    printf("/rules/cost/formula_rgba\n");
    static const struct {
        uint32_t w, h;
        int32_t kb;
    } cases[] = {
        {10, 10, 1},   /* 400 bytes: max(1, 0) */
        {1, 1, 1},     /* 4 bytes */
        {16, 16, 1},   /* exactly 1024 bytes */
        {17, 16, 1},   /* 1088 bytes: rounds down */
        {32, 32, 4},   /* 4096 bytes */
        {64, 64, 16},  /* 16384 bytes */
        {64, 65, 16},  /* 16640 bytes: rounds down */
        {65, 64, 16},  /* 16640 bytes */
        {100, 100, 39}, /* 40000 bytes */
        {128, 129, 64}, /* 66048 bytes */
        {128, 130, 65}, /* 66560 bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        PixcachePixmap *a = rgba(cases[i].w, cases[i].h);
        PixcachePixmap *b = pixmap(cases[i].w, cases[i].h, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
        CHECK_EQ(pixcache_pixmap_depth(a), 32);
        CHECK_EQ(pixcache_pixmap_depth(b), 32);
        CHECK_EQ(cost_of(a), cases[i].kb);
        CHECK_EQ(cost_of(b), cases[i].kb);
        pixcache_pixmap_free(a);
        pixcache_pixmap_free(b);
    }
}

static void cost_null_pixmap(void) {
    printf("/rules/cost/null_pixmap_costs_1_and_is_insertable\n");
    PixcachePixmap *null = pixcache_pixmap_new_null();
    PixcachePixmap *zero_w = pixcache_pixmap_new(0, 64, PIXCACHE_FORMAT_RGBA8888);
    PixcachePixmap *zero_h = pixcache_pixmap_new(64, 0, PIXCACHE_FORMAT_GRAY8);
    assert(null && zero_w && zero_h);
    CHECK(pixcache_pixmap_is_null(null));
    CHECK(pixcache_pixmap_is_null(zero_w));
    CHECK(pixcache_pixmap_is_null(zero_h));
    /* Null pixmaps are never detached (QPixmap().isDetached() is false). */
    CHECK(!pixcache_pixmap_is_detached(null));
    CHECK(!pixcache_pixmap_is_detached(zero_w));
    CHECK(!pixcache_pixmap_is_detached(zero_h));
    CHECK_EQ(pixcache_pixmap_depth(null), 0);
    CHECK_EQ(cost_of(null), 1);
    CHECK_EQ(cost_of(zero_w), 1);
    CHECK_EQ(cost_of(zero_h), 1);

    /* A 1 KB cache holds one null pixmap; a second replaces the first. */
    PixcacheCache *c = new_cache(1);
    CHECK(pixcache_insert(c, "null", null));
    PixcachePixmap *out = rgba(2, 2);
    CHECK(pixcache_find(c, "null", out));
    CHECK(pixcache_pixmap_is_null(out));
    CHECK_EQ(pixcache_pixmap_width(out), 0);
    PixcacheKey k = pixcache_insert_key(c, null);
    CHECK(pixcache_key_is_valid(c, k));
    CHECK(!pixcache_find(c, "null", NULL));
    CHECK_EQ(entries(c), 1);
    CHECK_EQ(pixcache_total_used(c), 1);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(null);
    pixcache_pixmap_free(zero_w);
    pixcache_pixmap_free(zero_h);
}

static void cost_depths(void) {
    printf("/rules/cost/rgb888_is_depth_24_gray8_is_depth_8\n");
    static const struct {
        PixcacheFormat format;
        uint32_t w, h, depth;
        int32_t kb;
    } cases[] = {
        {PIXCACHE_FORMAT_RGB888, 64, 64, 24, 12},
        {PIXCACHE_FORMAT_RGB888, 10, 10, 24, 1},
        {PIXCACHE_FORMAT_RGB888, 100, 100, 24, 29},  /* 30000 bytes */
        {PIXCACHE_FORMAT_RGB888, 1, 1024, 24, 3},    /* 3 bytes a pixel, not the padded stride */
        {PIXCACHE_FORMAT_GRAY8, 64, 64, 8, 4},
        {PIXCACHE_FORMAT_GRAY8, 10, 10, 8, 1},
        {PIXCACHE_FORMAT_GRAY8, 128, 128, 8, 16},
        {PIXCACHE_FORMAT_GRAY8, 1, 1024, 8, 1},      /* 1024 bytes, not the padded 4096 */
        {PIXCACHE_FORMAT_GRAY8, 1, 4096, 8, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        PixcachePixmap *pm = pixmap(cases[i].w, cases[i].h, cases[i].format);
        CHECK_EQ(pixcache_pixmap_depth(pm), cases[i].depth);
        CHECK_EQ(cost_of(pm), cases[i].kb);
        pixcache_pixmap_free(pm);
    }
}

static void cost_foreign(void) {
    printf("/rules/cost/foreign_pixmaps_costed_from_their_depth\n");
    releases = 0;
    static const struct {
        uint32_t w, h, depth;
        int32_t kb;
    } cases[] = {
        {64, 64, 32, 16},
        {64, 64, 24, 12},
        {64, 64, 16, 8},
        {64, 64, 8, 4},
        {64, 64, 1, 1},      /* 512 bytes */
        {64, 64, 128, 64},
        {64, 65, 32, 16},
        {0, 0, 32, 1},       /* a null foreign pixmap */
        {65536, 65536, 32, 16777216}, /* 2^37 bits: needs 64-bit arithmetic */
        {65536, 65536, 8, 4194304},
    };
    int wrapped = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        PixcachePixmap *pm =
            pixcache_pixmap_wrap(cases[i].w, cases[i].h, cases[i].depth, &releases, count_release);
        assert(pm != NULL);
        ++wrapped;
        CHECK_EQ(pixcache_pixmap_format(pm), PIXCACHE_FORMAT_FOREIGN);
        if (cases[i].w == 0) {
            CHECK(pixcache_pixmap_is_null(pm));
        } else {
            CHECK_EQ(pixcache_pixmap_depth(pm), cases[i].depth);
        }
        CHECK_EQ(cost_of(pm), cases[i].kb);
        pixcache_pixmap_free(pm);
    }

    /* Costs beyond INT_MAX KB are refused even by an INT_MAX cache, not truncated to 32 bits
     * (2^20 x 2^20 x 32 bits = 2^32 KB, which is 0 modulo 2^32). */
    PixcacheCache *c = new_cache(INT_MAX);
    const uint32_t huge[][3] = {{1u << 20, 1u << 20, 32}, {UINT32_MAX, UINT32_MAX, 128}};
    for (size_t i = 0; i < 2; ++i) {
        PixcachePixmap *pm =
            pixcache_pixmap_wrap(huge[i][0], huge[i][1], huge[i][2], &releases, count_release);
        assert(pm != NULL);
        ++wrapped;
        CHECK(!pixcache_insert(c, "huge", pm));
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
        PixcacheKey k = pixcache_insert_key(c, pm);
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
        CHECK(!pixcache_key_is_valid(c, k));
        CHECK_EQ(entries(c), 0);
        CHECK(pixcache_pixmap_is_detached(pm));
        pixcache_pixmap_free(pm);
    }
    pixcache_cache_free(c);
    CHECK_EQ(releases, wrapped);
}

static void cost_exact_fit(void) {
    printf("/rules/cost/exact_fit\n");
    PixcachePixmap *p16 = rgba(64, 64);
    PixcachePixmap *p8 = rgba(64, 32);
    PixcachePixmap *p1 = rgba(10, 10);

    PixcacheCache *c16 = new_cache(16);
    CHECK(pixcache_insert(c16, "a", p16));
    CHECK(pixcache_find(c16, "a", NULL));
    CHECK_EQ(pixcache_total_used(c16), 16);

    PixcacheCache *c15 = new_cache(15);
    CHECK(!pixcache_insert(c15, "a", p16));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
    CHECK(!pixcache_key_is_valid(c15, pixcache_insert_key(c15, p16)));
    CHECK_EQ(entries(c15), 0);

    /* total + cost <= limit: two 8 KB entries fill 16 KB exactly; a 1 KB one then evicts one. */
    pixcache_clear(c16);
    CHECK(pixcache_insert(c16, "x", p8));
    CHECK(pixcache_insert(c16, "y", p8));
    CHECK_EQ(entries(c16), 2);
    CHECK_EQ(pixcache_stats(c16).evictions, 0);
    CHECK(pixcache_insert(c16, "z", p1));
    CHECK_EQ(entries(c16), 2);
    CHECK(!pixcache_find(c16, "x", NULL));
    CHECK_EQ(pixcache_total_used(c16), 9);

    /* 16 + 1 fits 17, and not 16. */
    PixcacheCache *c17 = new_cache(17);
    CHECK(pixcache_insert(c17, "a", p16));
    CHECK(pixcache_insert(c17, "b", p1));
    CHECK_EQ(entries(c17), 2);
    CHECK_EQ(pixcache_total_used(c17), 17);
    pixcache_set_cache_limit(c17, 16);
    CHECK_EQ(entries(c17), 1);
    CHECK(pixcache_find(c17, "b", NULL));

    pixcache_cache_free(c15);
    pixcache_cache_free(c16);
    pixcache_cache_free(c17);
    pixcache_pixmap_free(p16);
    pixcache_pixmap_free(p8);
    pixcache_pixmap_free(p1);
}

static void limit_returns_what_was_set(void) {
    printf("/rules/limit/returns_what_was_set\n");
    const int32_t values[] = {123, INT_MAX, -50, 0, INT_MIN, -1, 1, 10240};
    PixcacheCache *c = new_cache(77);
    CHECK_EQ(pixcache_cache_limit(c), 77);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; ++i) {
        pixcache_set_cache_limit(c, values[i]);
        CHECK_EQ(pixcache_cache_limit(c), values[i]);
        CHECK_EQ(pixcache_stats(c).limit_kb, values[i]);
        PixcacheCache *d = new_cache(values[i]);
        CHECK_EQ(pixcache_cache_limit(d), values[i]);
        CHECK_EQ(pixcache_stats(d).limit_kb, values[i]);
        pixcache_cache_free(d);
    }
    pixcache_cache_free(c);
}

static void limit_nonpositive_refuses_everything(void) {
    printf("/rules/limit/nonpositive_holds_nothing\n");
    const int32_t limits[] = {0, -1, -50, INT_MIN};
    PixcachePixmap *null = pixcache_pixmap_new_null();
    PixcachePixmap *p1 = rgba(1, 1);
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; ++i) {
        PixcacheCache *c = new_cache(limits[i]);
        CHECK(!pixcache_insert(c, "n", null));
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
        CHECK(!pixcache_insert(c, "p", p1));
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
        CHECK(!pixcache_insert(c, "", p1));
        PixcacheKey k = pixcache_insert_key(c, p1);
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
        CHECK(!pixcache_key_is_valid(c, k));
        CHECK(!pixcache_key_equal(k, KEY0));
        CHECK(!pixcache_find(c, "p", NULL));
        CHECK(!pixcache_find_key(c, k, NULL));
        PixcacheStats st = pixcache_stats(c);
        CHECK_EQ(st.entries, 0);
        CHECK_EQ(st.total_kb, 0);
        CHECK_EQ(st.inserts, 0);
        CHECK_EQ(st.refused, 4);
        CHECK(pixcache_pixmap_is_detached(p1));
        pixcache_cache_free(c);
    }

    /* A used cache whose limit drops to 0 or below empties, and then refuses. */
    PixcacheCache *c = new_cache(64);
    CHECK(pixcache_insert(c, "a", p1));
    CHECK(pixcache_insert(c, "b", p1));
    pixcache_set_cache_limit(c, 0);
    CHECK_EQ(entries(c), 0);
    CHECK_EQ(pixcache_total_used(c), 0);
    CHECK(!pixcache_insert(c, "a", p1));
    pixcache_set_cache_limit(c, 1);
    CHECK(pixcache_insert(c, "a", p1));
    pixcache_set_cache_limit(c, -1);
    CHECK_EQ(entries(c), 0);
    CHECK(!pixcache_insert(c, "a", null));
    pixcache_cache_free(c);
    pixcache_pixmap_free(null);
    pixcache_pixmap_free(p1);
}

static void limit_lowering_evicts_lru_at_once(void) {
    printf("/rules/limit/lowering_evicts_lru_at_once\n");
    PixcacheCache *c = new_cache(128);
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheKey k[8], copies[8];
    for (int i = 0; i < 8; ++i) copies[i] = k[i] = pixcache_insert_key(c, pm);
    CHECK_EQ(pixcache_total_used(c), 128);
    CHECK(pixcache_find_key(c, k[0], NULL)); /* order: 1..7, 0 */

    pixcache_set_cache_limit(c, 64);
    CHECK_EQ(entries(c), 4);
    CHECK_EQ(pixcache_total_used(c), 64);
    CHECK_EQ(pixcache_stats(c).evictions, 4);
    for (int i = 1; i <= 4; ++i) {
        CHECK(!pixcache_key_is_valid(c, k[i]));
        CHECK(!pixcache_key_is_valid(c, copies[i]));
    }
    for (int i = 5; i <= 7; ++i) CHECK(pixcache_key_is_valid(c, k[i]));
    CHECK(pixcache_key_is_valid(c, k[0]));

    pixcache_set_cache_limit(c, 64); /* the same limit: nothing */
    pixcache_set_cache_limit(c, 100); /* above the total: nothing */
    CHECK_EQ(entries(c), 4);
    CHECK_EQ(pixcache_stats(c).evictions, 4);

    pixcache_set_cache_limit(c, 63); /* one KB short: exactly one entry (k5) goes */
    CHECK_EQ(entries(c), 3);
    CHECK_EQ(pixcache_total_used(c), 48);
    CHECK(!pixcache_key_is_valid(c, k[5]));
    const PixcacheKey rest[] = {k[6], k[7], k[0]};
    expect_key_order(c, rest, 3, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void limit_raising_never_evicts(void) {
    printf("/rules/limit/raising_never_evicts\n");
    PixcacheCache *c = new_cache(64);
    PixcachePixmap *pm = rgba(64, 64);
    const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (int i = 0; i < 4; ++i) CHECK(pixcache_insert(c, names[i], pm));
    const int32_t up[] = {65, 1000, INT_MAX};
    for (size_t i = 0; i < 3; ++i) {
        pixcache_set_cache_limit(c, up[i]);
        CHECK_EQ(entries(c), 4);
        CHECK_EQ(pixcache_total_used(c), 64);
        CHECK_EQ(pixcache_stats(c).evictions, 0);
    }
    for (int i = 4; i < 8; ++i) CHECK(pixcache_insert(c, names[i], pm));
    CHECK_EQ(pixcache_stats(c).evictions, 0);
    expect_order(c, names, 8, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void total_used_exact(void) {
    printf("/rules/total_used/exact_kb\n");
    PixcacheCache *c = new_cache(10240);
    CHECK_EQ(pixcache_total_used(c), 0);
    PixcachePixmap *p16 = rgba(64, 64);
    PixcachePixmap *p1 = rgba(10, 10);
    PixcachePixmap *p12 = pixmap(64, 64, PIXCACHE_FORMAT_RGB888);
    char name[16];
    for (int i = 0; i < 8; ++i) {
        snprintf(name, sizeof name, "%d", i);
        CHECK(pixcache_insert(c, name, p16));
    }
    CHECK_EQ(pixcache_total_used(c), 128); /* Qt 6.4 reports 1 here: the deliberate fix */
    CHECK_EQ(pixcache_stats(c).total_kb, 128);
    CHECK(pixcache_insert(c, "one", p1));
    PixcacheKey k = pixcache_insert_key(c, p12);
    CHECK_EQ(pixcache_total_used(c), 141);
    CHECK(pixcache_remove(c, "3"));
    CHECK_EQ(pixcache_total_used(c), 125);
    CHECK(pixcache_remove_key(c, k));
    CHECK_EQ(pixcache_total_used(c), 113);
    CHECK(pixcache_insert(c, "one", p16)); /* re-insert: 1 KB out, 16 KB in */
    CHECK_EQ(pixcache_total_used(c), 128);
    CHECK_EQ(pixcache_stats(c).total_kb, 128);
    pixcache_clear(c);
    CHECK_EQ(pixcache_total_used(c), 0);
    pixcache_cache_free(c);
    pixcache_pixmap_free(p16);
    pixcache_pixmap_free(p1);
    pixcache_pixmap_free(p12);
}

/* ---------------------------------------------------------------------------------------------
 * Eviction
 * ------------------------------------------------------------------------------------------- */

/* A 64 KB cache holding "a".."d" at 16 KB each, inserted in that order. */
static PixcacheCache *abcd(const PixcachePixmap *pm) {
    PixcacheCache *c = new_cache(64);
    CHECK(pixcache_insert(c, "a", pm));
    CHECK(pixcache_insert(c, "b", pm));
    CHECK(pixcache_insert(c, "c", pm));
    CHECK(pixcache_insert(c, "d", pm));
    return c;
}

/* The same with four generated keys. */
static PixcacheCache *four_keys(const PixcachePixmap *pm, PixcacheKey k[4]) {
    PixcacheCache *c = new_cache(64);
    for (int i = 0; i < 4; ++i) {
        k[i] = pixcache_insert_key(c, pm);
        CHECK(pixcache_key_is_valid(c, k[i]));
    }
    return c;
}

static void eviction_lru_order_exact(void) {
    printf("/rules/eviction/lru_order_exact\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheCache *c = abcd(pm);
    CHECK(pixcache_insert(c, "e", pm));
    CHECK_EQ(pixcache_stats(c).evictions, 1);
    CHECK(!pixcache_find(c, "a", NULL));
    CHECK(pixcache_insert(c, "f", pm));
    CHECK_EQ(pixcache_stats(c).evictions, 2);
    const char *const order[] = {"c", "d", "e", "f"};
    expect_order(c, order, 4, 16);
    pixcache_cache_free(c);

    PixcacheKey k[6];
    c = four_keys(pm, k);
    k[4] = pixcache_insert_key(c, pm);
    CHECK(!pixcache_key_is_valid(c, k[0]));
    k[5] = pixcache_insert_key(c, pm);
    CHECK(!pixcache_key_is_valid(c, k[1]));
    expect_key_order(c, k + 2, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void eviction_find_refreshes(void) {
    printf("/rules/eviction/find_refreshes\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = abcd(pm);
    CHECK(pixcache_find(c, "a", out));
    CHECK(pixcache_insert(c, "e", pm));
    CHECK(!pixcache_find(c, "b", NULL));
    const char *const order[] = {"c", "d", "a", "e"};
    expect_order(c, order, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

static void eviction_find_key_refreshes(void) {
    printf("/rules/eviction/find_key_refreshes\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheKey k[5];
    PixcacheCache *c = four_keys(pm, k);
    CHECK(pixcache_find_key(c, k[0], out));
    CHECK(pixcache_find_key(c, k[1], out));
    k[4] = pixcache_insert_key(c, pm);
    CHECK(!pixcache_key_is_valid(c, k[2]));
    const PixcacheKey order[] = {k[3], k[0], k[1], k[4]};
    expect_key_order(c, order, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

static void eviction_find_null_out_refreshes(void) {
    printf("/rules/eviction/find_null_out_refreshes\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheCache *c = abcd(pm);
    CHECK(pixcache_find(c, "b", NULL));
    CHECK(pixcache_find(c, "a", NULL));
    CHECK(pixcache_insert(c, "e", pm));
    CHECK(!pixcache_find(c, "c", NULL));
    const char *const order[] = {"d", "b", "a", "e"};
    expect_order(c, order, 4, 16);
    pixcache_cache_free(c);

    PixcacheKey k[5];
    c = four_keys(pm, k);
    CHECK(pixcache_find_key(c, k[0], NULL));
    k[4] = pixcache_insert_key(c, pm);
    CHECK(pixcache_key_is_valid(c, k[0]));
    CHECK(!pixcache_key_is_valid(c, k[1]));
    const PixcacheKey korder[] = {k[2], k[3], k[0], k[4]};
    expect_key_order(c, korder, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void eviction_reinsert_refreshes(void) {
    printf("/rules/eviction/reinsert_refreshes\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *other = rgba(64, 64);
    PixcacheCache *c = abcd(pm);
    CHECK(pixcache_insert(c, "a", other));
    CHECK_EQ(entries(c), 4);
    CHECK_EQ(pixcache_total_used(c), 64);
    CHECK_EQ(pixcache_stats(c).evictions, 0);
    CHECK(pixcache_insert(c, "e", pm));
    CHECK(!pixcache_find(c, "b", NULL));
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find(c, "c", out)); /* oldest first, to keep the order */
    CHECK(pixcache_find(c, "d", out));
    CHECK(pixcache_find(c, "a", out));
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(other));
    CHECK(pixcache_find(c, "e", NULL));
    const char *const order[] = {"c", "d", "a", "e"};
    expect_order(c, order, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(other);
    pixcache_pixmap_free(pm);
}

static void eviction_replace_refreshes(void) {
    printf("/rules/eviction/replace_refreshes\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *other = rgba(64, 64);
    PixcacheKey k[5];
    PixcacheCache *c = four_keys(pm, k);
    CHECK(pixcache_replace(c, &k[0], other));
    CHECK(pixcache_key_is_valid(c, k[0]));
    CHECK_EQ(entries(c), 4);
    CHECK_EQ(pixcache_stats(c).evictions, 0);
    k[4] = pixcache_insert_key(c, pm);
    CHECK(pixcache_key_is_valid(c, k[0]));
    CHECK(!pixcache_key_is_valid(c, k[1]));
    const PixcacheKey order[] = {k[2], k[3], k[0], k[4]};
    expect_key_order(c, order, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(other);
    pixcache_pixmap_free(pm);
}

static void eviction_remove_does_not_refresh(void) {
    printf("/rules/eviction/remove_does_not_refresh\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheCache *c = abcd(pm);
    PixcacheKey stale = pixcache_insert_key(c, pm); /* evicts "a" */
    CHECK(pixcache_remove_key(c, stale));
    CHECK(!pixcache_remove_key(c, stale));
    CHECK(!pixcache_remove(c, "a"));
    CHECK(!pixcache_remove(c, "zzz"));
    CHECK(pixcache_remove(c, "c"));
    /* b and d keep their ages: b is still the oldest. */
    CHECK(pixcache_insert(c, "e", pm));
    CHECK(pixcache_insert(c, "f", pm));
    CHECK_EQ(entries(c), 4);
    CHECK(pixcache_insert(c, "g", pm));
    CHECK(!pixcache_find(c, "b", NULL));
    const char *const order[] = {"d", "e", "f", "g"};
    expect_order(c, order, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void eviction_validity_check_does_not_refresh(void) {
    printf("/rules/eviction/key_is_valid_does_not_refresh\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheKey k[5];
    PixcacheCache *c = four_keys(pm, k);
    for (int i = 0; i < 3; ++i) CHECK(pixcache_key_is_valid(c, k[0]));
    (void)pixcache_stats(c);
    (void)pixcache_total_used(c);
    (void)pixcache_cache_limit(c);
    k[4] = pixcache_insert_key(c, pm);
    CHECK(!pixcache_key_is_valid(c, k[0]));
    expect_key_order(c, k + 1, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void eviction_until_the_new_entry_fits(void) {
    printf("/rules/eviction/until_the_new_entry_fits\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *p32 = rgba(64, 128);
    PixcachePixmap *p1 = rgba(1, 1);
    CHECK_EQ(cost_of(p32), 32);
    PixcacheCache *c = abcd(pm);
    CHECK(pixcache_insert(c, "big", p32));
    CHECK_EQ(pixcache_stats(c).evictions, 2);
    CHECK_EQ(entries(c), 3);
    CHECK_EQ(pixcache_total_used(c), 64);
    CHECK(!pixcache_find(c, "a", NULL));
    CHECK(!pixcache_find(c, "b", NULL));
    CHECK(pixcache_find(c, "c", NULL)); /* oldest first: order stays c, d, big */
    CHECK(pixcache_find(c, "d", NULL));
    CHECK(pixcache_find(c, "big", NULL));
    /* 1 KB more evicts the LRU entry (16 KB), and only it. */
    CHECK(pixcache_insert(c, "tiny", p1));
    CHECK_EQ(pixcache_stats(c).evictions, 3);
    CHECK_EQ(entries(c), 3);
    CHECK_EQ(pixcache_total_used(c), 49);
    CHECK(!pixcache_find(c, "c", NULL));
    CHECK(pixcache_find(c, "d", NULL));
    /* Now big is the oldest: a 16 KB insert evicts it (32 KB) and leaves d and tiny. */
    CHECK(pixcache_insert(c, "e", pm));
    CHECK_EQ(pixcache_stats(c).evictions, 4);
    CHECK(!pixcache_find(c, "big", NULL));
    CHECK_EQ(entries(c), 3);
    CHECK_EQ(pixcache_total_used(c), 33);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
    pixcache_pixmap_free(p32);
    pixcache_pixmap_free(p1);
}

static void eviction_too_large_refused_evicts_nothing(void) {
    printf("/rules/eviction/too_large_is_refused_and_evicts_nothing\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *huge = rgba(128, 130); /* 65 KB */
    PixcacheCache *c = abcd(pm);
    CHECK(!pixcache_insert(c, "huge", huge));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
    PixcacheKey k = pixcache_insert_key(c, huge);
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
    CHECK(!pixcache_key_is_valid(c, k));
    CHECK(!pixcache_find(c, "huge", NULL));
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 4);
    CHECK_EQ(st.total_kb, 64);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.refused, 2);
    CHECK_EQ(st.inserts, 4);
    CHECK(pixcache_pixmap_is_detached(huge));
    const char *const order[] = {"a", "b", "c", "d"};
    expect_order(c, order, 4, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(huge);
    pixcache_pixmap_free(pm);
}

static void eviction_equal_to_limit_evicts_everything_else(void) {
    printf("/rules/eviction/equal_to_limit_evicts_everything_else\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *whole = rgba(128, 129); /* 64 KB */
    PixcachePixmap *p1 = rgba(1, 1);
    PixcacheCache *c = abcd(pm);
    CHECK(pixcache_insert(c, "whole", whole));
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 1);
    CHECK_EQ(st.total_kb, 64);
    CHECK_EQ(st.evictions, 4);
    CHECK(pixcache_find(c, "whole", NULL));
    CHECK(pixcache_insert(c, "one", p1)); /* the new entry never is the victim */
    CHECK(!pixcache_find(c, "whole", NULL));
    CHECK(pixcache_find(c, "one", NULL));
    CHECK_EQ(pixcache_total_used(c), 1);
    pixcache_cache_free(c);

    PixcacheKey k[4];
    c = four_keys(pm, k);
    PixcacheKey w = pixcache_insert_key(c, whole);
    CHECK(pixcache_key_is_valid(c, w));
    for (int i = 0; i < 4; ++i) CHECK(!pixcache_key_is_valid(c, k[i]));
    CHECK_EQ(entries(c), 1);
    pixcache_cache_free(c);
    pixcache_pixmap_free(p1);
    pixcache_pixmap_free(whole);
    pixcache_pixmap_free(pm);
}

/* ---------------------------------------------------------------------------------------------
 * String keys
 * ------------------------------------------------------------------------------------------- */

static void string_reinsert_removes_first(void) {
    printf("/rules/string/reinsert_removes_first\n");
    PixcachePixmap *p16 = rgba(64, 64);
    PixcachePixmap *p1 = rgba(10, 10);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = new_cache(100);
    CHECK(pixcache_insert(c, "x", p16));
    CHECK(pixcache_insert(c, "x", p1));
    CHECK_EQ(entries(c), 1);
    CHECK_EQ(pixcache_total_used(c), 1);
    CHECK(pixcache_find(c, "x", out));
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(p1));
    CHECK_EQ(pixcache_pixmap_width(out), 10);
    /* The same pixmap again: still one entry. */
    CHECK(pixcache_insert(c, "x", p1));
    CHECK_EQ(entries(c), 1);
    CHECK_EQ(pixcache_total_used(c), 1);
    /* In a 16 KB cache, re-inserting a 16 KB pixmap under its own key fits (the old one goes
     * first) and evicts nothing else. */
    PixcacheCache *d = new_cache(17);
    CHECK(pixcache_insert(d, "x", p16));
    CHECK(pixcache_insert(d, "y", p1));
    CHECK(pixcache_insert(d, "x", p16));
    CHECK_EQ(entries(d), 2);
    CHECK_EQ(pixcache_stats(d).evictions, 0);
    CHECK(pixcache_find(d, "y", NULL));
    pixcache_cache_free(d);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(p16);
    pixcache_pixmap_free(p1);
}

static void string_failed_insert_empties_key(void) {
    printf("/rules/string/failed_insert_leaves_the_key_empty\n");
    PixcachePixmap *p10 = rgba(10, 10);
    PixcachePixmap *big = rgba(256, 256); /* 256 KB */
    PixcachePixmap *out = rgba(3, 3);
    uint64_t out_id = pixcache_pixmap_cache_key(out);
    PixcacheCache *c = new_cache(20);
    CHECK(pixcache_insert(c, "y", p10));
    CHECK(pixcache_insert(c, "x", p10));
    CHECK(!pixcache_insert(c, "x", big));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
    CHECK(!pixcache_find(c, "x", out));
    CHECK(pixcache_pixmap_cache_key(out) == out_id);
    CHECK(pixcache_find(c, "y", NULL));
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 1);
    CHECK_EQ(st.total_kb, 1);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.refused, 1);
    /* A refused insert under an unused key changes nothing. */
    CHECK(!pixcache_insert(c, "z", big));
    CHECK_EQ(entries(c), 1);
    CHECK(pixcache_find(c, "y", NULL));
    CHECK(pixcache_pixmap_is_detached(big));
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(p10);
    pixcache_pixmap_free(big);
}

static void string_empty_key_is_valid(void) {
    printf("/rules/string/empty_string_is_a_key\n");
    PixcachePixmap *pm = rgba(10, 10);
    PixcachePixmap *other = rgba(10, 10);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = new_cache(100);
    CHECK(!pixcache_find(c, "", NULL));
    CHECK(pixcache_insert(c, "", pm));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_OK);
    CHECK(pixcache_insert(c, " ", other));
    CHECK_EQ(entries(c), 2);
    CHECK(pixcache_find(c, "", out));
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(pm));
    CHECK(pixcache_find(c, "", NULL));
    CHECK(pixcache_remove(c, ""));
    CHECK(!pixcache_find(c, "", NULL));
    CHECK(pixcache_find(c, " ", NULL));
    CHECK_EQ(entries(c), 1);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(other);
    pixcache_pixmap_free(pm);
}

static void string_keys_are_exact(void) {
    printf("/rules/string/keys_compare_exactly\n");
    PixcachePixmap *pm[4] = {rgba(1, 1), rgba(2, 2), rgba(3, 3), rgba(4, 4)};
    const char *const names[4] = {"icon", "Icon", "icon ", "ic\xc3\xb4n"};
    PixcacheCache *c = new_cache(100);
    for (int i = 0; i < 4; ++i) CHECK(pixcache_insert(c, names[i], pm[i]));
    CHECK_EQ(entries(c), 4);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    for (int i = 0; i < 4; ++i) {
        CHECK(pixcache_find(c, names[i], out));
        CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(pm[i]));
    }
    CHECK(!pixcache_find(c, "ico", NULL));
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    for (int i = 0; i < 4; ++i) pixcache_pixmap_free(pm[i]);
}

static void string_find_hit_shares(void) {
    printf("/rules/string/find_hit_makes_out_the_cached_pixmap\n");
    PixcachePixmap *pm = rgba(20, 30);
    PixcachePixmap *held = rgba(5, 5);
    PixcachePixmap *out = pixcache_pixmap_clone(held); /* out shares held's pixels */
    CHECK(!pixcache_pixmap_is_detached(held));
    PixcacheCache *c = new_cache(100);
    CHECK(pixcache_insert(c, "k", pm));
    CHECK(pixcache_find(c, "k", out));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_OK);
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(pm));
    CHECK_EQ(pixcache_pixmap_width(out), 20);
    CHECK_EQ(pixcache_pixmap_height(out), 30);
    CHECK_EQ(pixcache_pixmap_depth(out), 32);
    CHECK(pixcache_pixmap_pixels(out) == pixcache_pixmap_pixels(pm));
    CHECK(pixcache_pixmap_is_detached(held)); /* out let go of what it held */
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(held);
    pixcache_pixmap_free(pm);
}

static void string_find_miss_leaves_out_untouched(void) {
    printf("/rules/string/find_miss_leaves_out_untouched\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcachePixmap *out = rgba(10, 10);
    pixcache_pixmap_pixels_mut(out)[0] = 42;
    uint64_t id = pixcache_pixmap_cache_key(out);
    const uint8_t *px = pixcache_pixmap_pixels(out);
    PixcacheCache *c = new_cache(16);

    CHECK(!pixcache_find(c, "missing", out)); /* empty cache */
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_OK); /* a miss is not an error */
    CHECK(strcmp(pixcache_last_error(), "") == 0);
    CHECK(pixcache_insert(c, "a", pm));
    CHECK(!pixcache_find(c, "missing", out));
    CHECK(!pixcache_find(c, "missing", NULL));
    PixcacheKey k = pixcache_insert_key(c, pm); /* evicts "a" */
    CHECK(!pixcache_find(c, "a", out));
    CHECK(pixcache_remove_key(c, k));
    CHECK(!pixcache_find_key(c, k, out)); /* a stale key */
    CHECK(!pixcache_find_key(c, KEY0, out));

    CHECK(pixcache_pixmap_cache_key(out) == id);
    CHECK(pixcache_pixmap_pixels(out) == px);
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 42);
    CHECK_EQ(pixcache_pixmap_width(out), 10);
    CHECK(pixcache_pixmap_is_detached(out));
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

static void string_remove_missing_is_noop(void) {
    printf("/rules/string/remove_missing_is_a_noop\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheCache *c = abcd(pm);
    PixcacheStats before = pixcache_stats(c);
    CHECK(!pixcache_remove(c, "nope"));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_OK);
    CHECK(strcmp(pixcache_last_error(), "") == 0);
    CHECK(!pixcache_remove(c, ""));
    PixcacheStats after = pixcache_stats(c);
    CHECK_EQ(after.entries, before.entries);
    CHECK_EQ(after.total_kb, before.total_kb);
    CHECK_EQ(after.hits, before.hits);
    CHECK_EQ(after.misses, before.misses);
    CHECK_EQ(after.evictions, before.evictions);
    CHECK(pixcache_remove(c, "b"));
    CHECK(!pixcache_remove(c, "b"));
    const char *const order[] = {"a", "c", "d"};
    expect_order(c, order, 3, 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

/* ---------------------------------------------------------------------------------------------
 * Generated keys
 * ------------------------------------------------------------------------------------------- */

static void keys_insert_returns_a_valid_key(void) {
    printf("/rules/keys/insert_returns_a_valid_key\n");
    PixcachePixmap *pm = rgba(8, 8);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = new_cache(100);
    PixcacheKey k = pixcache_insert_key(c, pm);
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_OK);
    CHECK(k.id != 0);
    CHECK(!pixcache_key_equal(k, KEY0));
    CHECK(pixcache_key_is_valid(c, k));
    CHECK(pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(pm));
    PixcacheKey copy = k;
    CHECK(pixcache_key_equal(k, copy));
    CHECK(pixcache_key_equal(k, k));
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

static void keys_refused_insert_is_invalid_but_not_default(void) {
    printf("/rules/keys/refused_insert_key_is_invalid_yet_not_default\n");
    PixcachePixmap *pm = rgba(64, 64);
    const int32_t limits[] = {15, 0, -3};
    PixcacheKey prev = KEY0;
    for (size_t i = 0; i < 3; ++i) {
        PixcacheCache *c = new_cache(limits[i]);
        PixcacheKey k = pixcache_insert_key(c, pm);
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
        CHECK(!pixcache_key_is_valid(c, k));
        CHECK(k.id != 0);
        CHECK(!pixcache_key_equal(k, KEY0));
        CHECK(!pixcache_key_equal(k, prev)); /* two inserts never give equal keys */
        CHECK(!pixcache_find_key(c, k, NULL));
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_INVALID_KEY);
        /* never valid later either */
        pixcache_set_cache_limit(c, 100);
        PixcacheKey later = pixcache_insert_key(c, pm);
        CHECK(pixcache_key_is_valid(c, later));
        CHECK(!pixcache_key_is_valid(c, k));
        CHECK(!pixcache_key_equal(k, later));
        prev = k;
        pixcache_cache_free(c);
    }
    pixcache_pixmap_free(pm);
}

static void keys_default_and_distinct(void) {
    printf("/rules/keys/default_keys_equal_inserted_keys_never\n");
    PixcacheKey d1 = KEY0, d2 = {0};
    CHECK(pixcache_key_equal(d1, d2));
    PixcachePixmap *pm = rgba(4, 4);
    PixcacheCache *c = new_cache(100);
    PixcacheCache *other = new_cache(100);
    CHECK(!pixcache_key_is_valid(c, d1));
    CHECK(!pixcache_find_key(c, d1, NULL));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_INVALID_KEY);
    CHECK(!pixcache_remove_key(c, d1));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_INVALID_KEY);

    PixcacheKey k[6];
    k[0] = pixcache_insert_key(c, pm);
    k[1] = pixcache_insert_key(c, pm); /* the same pixmap twice */
    k[2] = pixcache_insert_key(other, pm);
    k[3] = pixcache_insert_key(c, pm);
    CHECK(pixcache_remove_key(c, k[3]));
    k[4] = pixcache_insert_key(c, pm); /* after a remove: no reuse */
    pixcache_clear(c);
    k[5] = pixcache_insert_key(c, pm); /* after a clear: no reuse */
    for (int i = 0; i < 6; ++i) {
        CHECK(!pixcache_key_equal(k[i], d1));
        for (int j = 0; j < 6; ++j) CHECK(pixcache_key_equal(k[i], k[j]) == (i == j));
    }
    CHECK_EQ(entries(c), 1);
    pixcache_cache_free(c);
    pixcache_cache_free(other);
    pixcache_pixmap_free(pm);
}

static void keys_invalidated_with_every_copy(void) {
    printf("/rules/keys/eviction_remove_clear_and_lowered_limit_invalidate_every_copy\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheKey k[4], copy;

    /* eviction */
    PixcacheCache *c = four_keys(pm, k);
    copy = k[0];
    (void)pixcache_insert_key(c, pm);
    CHECK(!pixcache_key_is_valid(c, k[0]));
    CHECK(!pixcache_key_is_valid(c, copy));
    CHECK(!pixcache_find_key(c, copy, NULL));
    CHECK(pixcache_key_equal(k[0], copy)); /* still the same (invalid) key */
    pixcache_cache_free(c);

    /* remove */
    c = four_keys(pm, k);
    copy = k[1];
    CHECK(pixcache_remove_key(c, k[1]));
    CHECK(!pixcache_key_is_valid(c, k[1]));
    CHECK(!pixcache_key_is_valid(c, copy));
    CHECK(!pixcache_remove_key(c, copy));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_INVALID_KEY);
    CHECK_EQ(entries(c), 3);
    pixcache_cache_free(c);

    /* clear */
    c = four_keys(pm, k);
    PixcacheKey copies[4];
    memcpy(copies, k, sizeof k);
    pixcache_clear(c);
    for (int i = 0; i < 4; ++i) {
        CHECK(!pixcache_key_is_valid(c, k[i]));
        CHECK(!pixcache_key_is_valid(c, copies[i]));
        CHECK(!pixcache_find_key(c, copies[i], NULL));
    }
    pixcache_cache_free(c);

    /* lowered limit */
    c = four_keys(pm, k);
    copy = k[0];
    pixcache_set_cache_limit(c, 48);
    CHECK(!pixcache_key_is_valid(c, k[0]));
    CHECK(!pixcache_key_is_valid(c, copy));
    pixcache_set_cache_limit(c, 64); /* raising it again brings nothing back */
    CHECK(!pixcache_key_is_valid(c, copy));
    for (int i = 1; i < 4; ++i) CHECK(pixcache_key_is_valid(c, k[i]));
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void keys_replace_gives_a_new_key(void) {
    printf("/rules/keys/replace_gives_a_new_key\n");
    PixcachePixmap *p16 = rgba(64, 64);
    PixcachePixmap *p1 = rgba(10, 10);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = new_cache(100);
    PixcacheKey k = pixcache_insert_key(c, p16);
    PixcacheKey copy = k;
    CHECK(pixcache_replace(c, &k, p1));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_OK);
    CHECK(!pixcache_key_equal(k, copy));
    CHECK(!pixcache_key_equal(k, KEY0));
    CHECK(pixcache_key_is_valid(c, k));
    CHECK(!pixcache_key_is_valid(c, copy));
    CHECK(!pixcache_find_key(c, copy, out));
    CHECK(pixcache_pixmap_is_null(out));
    CHECK(pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(p1));
    CHECK_EQ(pixcache_pixmap_width(out), 10);
    CHECK_EQ(entries(c), 1);
    CHECK_EQ(pixcache_total_used(c), 1);
    /* Replacing again through the stale copy fails and inserts nothing. */
    PixcacheKey stale = copy;
    CHECK(!pixcache_replace(c, &stale, p16));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_INVALID_KEY);
    CHECK(pixcache_key_equal(stale, copy));
    CHECK_EQ(entries(c), 1);
    /* A second replace gives yet another key. */
    PixcacheKey second = k;
    CHECK(pixcache_replace(c, &k, p16));
    CHECK(!pixcache_key_equal(k, second));
    CHECK(!pixcache_key_equal(k, copy));
    CHECK(!pixcache_key_is_valid(c, second));
    CHECK_EQ(pixcache_total_used(c), 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(p16);
    pixcache_pixmap_free(p1);
}

static void keys_replace_too_large(void) {
    printf("/rules/keys/replace_too_large_leaves_the_key_invalid\n");
    PixcachePixmap *p10 = rgba(10, 10);
    PixcachePixmap *big = rgba(256, 256);
    PixcachePixmap *out = rgba(2, 2);
    uint64_t out_id = pixcache_pixmap_cache_key(out);
    PixcacheCache *c = new_cache(20);
    PixcacheKey other = pixcache_insert_key(c, p10);
    PixcacheKey k = pixcache_insert_key(c, p10);
    PixcacheKey copy = k;
    CHECK(!pixcache_replace(c, &k, big));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_REFUSED);
    CHECK(pixcache_key_equal(k, copy)); /* unchanged ... */
    CHECK(!pixcache_key_is_valid(c, k)); /* ... and invalid: the old entry is gone */
    CHECK(!pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_cache_key(out) == out_id);
    CHECK(pixcache_key_is_valid(c, other));
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 1);
    CHECK_EQ(st.total_kb, 1);
    CHECK_EQ(st.evictions, 0);
    CHECK(pixcache_pixmap_is_detached(big));
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(p10);
    pixcache_pixmap_free(big);
}

static void keys_replace_through_invalid_key(void) {
    printf("/rules/keys/replace_through_an_invalid_key_inserts_nothing\n");
    PixcachePixmap *pm = rgba(10, 10);
    PixcacheCache *c = new_cache(100);
    PixcacheCache *other = new_cache(100);
    PixcacheKey live = pixcache_insert_key(c, pm);
    PixcacheKey removed = pixcache_insert_key(c, pm);
    CHECK(pixcache_remove_key(c, removed));
    PixcacheKey foreign = pixcache_insert_key(other, pm);
    PixcacheKey refused;
    {
        PixcacheCache *zero = new_cache(0);
        refused = pixcache_insert_key(zero, pm);
        pixcache_cache_free(zero);
    }
    PixcacheKey bad[] = {KEY0, removed, foreign, refused, {1}, {UINT64_MAX}};
    PixcacheStats before = pixcache_stats(c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        PixcacheKey k = bad[i];
        CHECK(!pixcache_replace(c, &k, pm));
        CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_INVALID_KEY);
        CHECK(k.id == bad[i].id);
        CHECK(!pixcache_key_is_valid(c, k));
    }
    PixcacheStats after = pixcache_stats(c);
    CHECK_EQ(after.entries, 1);
    CHECK_EQ(after.entries, before.entries);
    CHECK_EQ(after.inserts, before.inserts);
    CHECK_EQ(after.refused, before.refused);
    CHECK_EQ(after.total_kb, before.total_kb);
    CHECK(pixcache_key_is_valid(c, live));
    CHECK(pixcache_key_is_valid(other, foreign));
    CHECK_EQ(entries(other), 1);
    pixcache_cache_free(c);
    pixcache_cache_free(other);
    pixcache_pixmap_free(pm);
}

static void keys_stale_never_finds_a_later_entry(void) {
    printf("/rules/keys/stale_key_never_finds_a_later_entry\n");
    PixcachePixmap *pm = rgba(1, 1);
    PixcacheCache *c = new_cache(16);
    PixcacheKey removed = pixcache_insert_key(c, pm);
    PixcacheKey evicted = pixcache_insert_key(c, pm);
    PixcacheKey replaced = pixcache_insert_key(c, pm);
    PixcacheKey replacement = replaced;
    CHECK(pixcache_replace(c, &replacement, pm));
    CHECK(pixcache_remove_key(c, removed));
    for (int i = 0; i < 16; ++i) (void)pixcache_insert_key(c, pm);
    PixcacheKey stale[] = {removed, evicted, replaced};
    for (int s = 0; s < 3; ++s) CHECK(!pixcache_key_is_valid(c, stale[s]));
    unsigned long bad = 0;
    for (int i = 0; i < 100000; ++i) {
        PixcacheKey k = pixcache_insert_key(c, pm);
        if (!pixcache_key_is_valid(c, k)) ++bad;
        for (int s = 0; s < 3; ++s) {
            if (pixcache_key_equal(k, stale[s])) ++bad;
            if (i % 97 == 0 && (pixcache_key_is_valid(c, stale[s]) ||
                                pixcache_find_key(c, stale[s], NULL)))
                ++bad;
        }
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(entries(c), 16);
    PixcachePixmap *out = rgba(2, 2);
    for (int s = 0; s < 3; ++s) {
        CHECK(!pixcache_key_is_valid(c, stale[s]));
        CHECK(!pixcache_find_key(c, stale[s], out));
        CHECK(!pixcache_remove_key(c, stale[s]));
    }
    CHECK_EQ(pixcache_pixmap_width(out), 2);
    CHECK_EQ(entries(c), 16);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

static void keys_belong_to_their_cache(void) {
    printf("/rules/keys/keys_of_one_cache_are_invalid_in_another\n");
    PixcachePixmap *pm = rgba(10, 10);
    PixcachePixmap *out = rgba(2, 2);
    uint64_t out_id = pixcache_pixmap_cache_key(out);
    PixcacheCache *a = new_cache(100);
    PixcacheCache *b = new_cache(100);
    PixcacheKey ka = pixcache_insert_key(a, pm);
    PixcacheKey kb = pixcache_insert_key(b, pm);
    CHECK(pixcache_key_is_valid(a, ka));
    CHECK(pixcache_key_is_valid(b, kb));
    CHECK(!pixcache_key_is_valid(b, ka));
    CHECK(!pixcache_key_is_valid(a, kb));
    CHECK(!pixcache_find_key(b, ka, out));
    CHECK_EQ(pixcache_last_result(), PIXCACHE_RESULT_INVALID_KEY);
    CHECK(pixcache_pixmap_cache_key(out) == out_id);
    CHECK(!pixcache_remove_key(b, ka));
    CHECK_EQ(entries(b), 1);
    CHECK(pixcache_key_is_valid(a, ka));
    /* The global cache does not know them either. */
    CHECK(!pixcache_key_is_valid(pixcache_global(), ka));
    pixcache_cache_free(a);
    pixcache_cache_free(b);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

static uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void keys_forged_find_nothing(void) {
    printf("/rules/keys/forged_keys_find_nothing\n");
    PixcachePixmap *pm = rgba(1, 1);
    PixcachePixmap *out = rgba(2, 2);
    uint64_t out_id = pixcache_pixmap_cache_key(out);
    PixcacheCache *c = new_cache(1000);
    PixcacheKey live[100];
    for (int i = 0; i < 100; ++i) live[i] = pixcache_insert_key(c, pm);

    uint64_t seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u ^ (uint64_t)(uintptr_t)&seed;
    if (seed == 0) seed = 1;
    printf("  (random seed %llu)\n", (unsigned long long)seed);
    PixcacheKey forged[8 + 32 + 300];
    size_t n = 0;
    forged[n++] = (PixcacheKey){1};
    forged[n++] = (PixcacheKey){2};
    forged[n++] = (PixcacheKey){3};
    forged[n++] = (PixcacheKey){100};
    forged[n++] = (PixcacheKey){UINT64_MAX};
    forged[n++] = (PixcacheKey){UINT64_MAX - 1};
    forged[n++] = (PixcacheKey){(uint64_t)INT64_MAX};
    forged[n++] = (PixcacheKey){(uint64_t)1 << 63};
    for (int i = 0; i < 32; ++i) forged[n++] = (PixcacheKey){xorshift64(&seed)};
    for (int i = 0; i < 100; ++i) { /* neighbours of live keys */
        forged[n++] = (PixcacheKey){live[i].id + 1};
        forged[n++] = (PixcacheKey){live[i].id - 1};
        forged[n++] = (PixcacheKey){live[i].id ^ 0x100};
    }
    unsigned long bad = 0;
    for (size_t i = 0; i < n; ++i) {
        int is_live = 0;
        for (int j = 0; j < 100; ++j) is_live |= forged[i].id == live[j].id;
        if (is_live) continue; /* a neighbour that happens to be another live key */
        if (pixcache_key_is_valid(c, forged[i])) ++bad;
        if (pixcache_find_key(c, forged[i], out)) ++bad;
        if (pixcache_remove_key(c, forged[i])) ++bad;
        PixcacheKey k = forged[i];
        if (pixcache_replace(c, &k, pm)) ++bad;
    }
    CHECK_EQ(bad, 0);
    CHECK(pixcache_pixmap_cache_key(out) == out_id);
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 100);
    CHECK_EQ(st.inserts, 100);
    CHECK_EQ(st.hits, 0);
    for (int i = 0; i < 100; ++i) CHECK(pixcache_key_is_valid(c, live[i]));
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

/* ---------------------------------------------------------------------------------------------
 * clear, idle flush
 * ------------------------------------------------------------------------------------------- */

static void clear_fresh_cache(void) {
    printf("/rules/clear/fresh_cache_is_fine\n");
    PixcacheCache *c = new_cache(64);
    pixcache_clear(c);
    pixcache_clear(c);
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 0);
    CHECK_EQ(st.total_kb, 0);
    CHECK_EQ(st.limit_kb, 64);
    CHECK_EQ(st.hits + st.misses + st.inserts + st.evictions + st.refused, 0);
    CHECK_EQ(pixcache_tick(c), 0);
    pixcache_flush_detached(c);
    CHECK_EQ(entries(c), 0);
    PixcachePixmap *pm = rgba(64, 64);
    CHECK(pixcache_insert(c, "a", pm));
    CHECK(pixcache_find(c, "a", NULL));
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void clear_removes_everything(void) {
    printf("/rules/clear/removes_every_entry_and_key\n");
    PixcachePixmap *pm = rgba(32, 32);
    PixcacheCache *c = new_cache(100);
    PixcacheKey k[5];
    char name[16];
    for (int i = 0; i < 5; ++i) {
        snprintf(name, sizeof name, "s%d", i);
        CHECK(pixcache_insert(c, name, pm));
        k[i] = pixcache_insert_key(c, pm);
    }
    CHECK_EQ(entries(c), 10);
    pixcache_clear(c);
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 0);
    CHECK_EQ(st.total_kb, 0);
    CHECK_EQ(st.evictions, 0); /* clears are not evictions */
    CHECK_EQ(st.limit_kb, 100);
    for (int i = 0; i < 5; ++i) {
        snprintf(name, sizeof name, "s%d", i);
        CHECK(!pixcache_find(c, name, NULL));
        CHECK(!pixcache_key_is_valid(c, k[i]));
    }
    CHECK(pixcache_pixmap_is_detached(pm));
    /* Usable afterwards, with the same limit. */
    CHECK(pixcache_insert(c, "s0", pm));
    CHECK(pixcache_find(c, "s0", NULL));
    CHECK(!pixcache_key_is_valid(c, k[0]));
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void flush_detached_trims_to_three_quarters(void) {
    printf("/rules/flush/trims_to_three_quarters_oldest_first\n");
    PixcachePixmap *pm = rgba(64, 64); /* held by the test all along: flush ignores that */
    PixcacheCache *c = new_cache(10240);
    PixcacheKey k[100];
    for (int i = 0; i < 100; ++i) k[i] = pixcache_insert_key(c, pm);
    CHECK_EQ(pixcache_total_used(c), 1600);
    pixcache_flush_detached(c);
    CHECK_EQ(pixcache_total_used(c), 1200);
    CHECK_EQ(entries(c), 75);
    CHECK_EQ(pixcache_stats(c).evictions, 25);
    for (int i = 0; i < 100; ++i) CHECK(pixcache_key_is_valid(c, k[i]) == (i >= 25));
    pixcache_cache_free(c);

    /* With strings, as the spec's probe does; and recency counts. */
    c = new_cache(10240);
    char name[16];
    for (int i = 0; i < 100; ++i) {
        snprintf(name, sizeof name, "%d", i);
        CHECK(pixcache_insert(c, name, pm));
    }
    CHECK(pixcache_find(c, "0", NULL)); /* "0" is now the newest */
    pixcache_flush_detached(c);
    CHECK_EQ(pixcache_total_used(c), 1200);
    CHECK(pixcache_find(c, "0", NULL));
    for (int i = 1; i <= 25; ++i) {
        snprintf(name, sizeof name, "%d", i);
        CHECK(!pixcache_find(c, name, NULL));
    }
    CHECK(pixcache_find(c, "26", NULL));
    CHECK(pixcache_find(c, "99", NULL));
    pixcache_cache_free(c);

    /* 48 KB -> at most 36: one 16 KB entry goes; 16 KB -> 12: the only entry goes. */
    c = new_cache(100);
    for (int i = 0; i < 3; ++i) k[i] = pixcache_insert_key(c, pm);
    pixcache_flush_detached(c);
    CHECK_EQ(entries(c), 2);
    CHECK_EQ(pixcache_total_used(c), 32);
    CHECK(!pixcache_key_is_valid(c, k[0]));
    pixcache_clear(c);
    CHECK(pixcache_insert(c, "only", pm));
    pixcache_flush_detached(c);
    CHECK_EQ(entries(c), 0);
    pixcache_flush_detached(c); /* empty: nothing to do */
    CHECK_EQ(entries(c), 0);
    CHECK(pixcache_pixmap_is_detached(pm));
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void tick_follows_qt_6_4(void) {
    printf("/rules/tick/one_entry_when_busy_a_quarter_when_idle\n");
    PixcachePixmap *pm = rgba(64, 64);
    PixcacheCache *c = new_cache(10240);
    CHECK_EQ(pixcache_tick(c), 0); /* empty */
    CHECK_EQ(pixcache_tick(NULL), 0);
    PixcacheKey k[9];
    for (int i = 0; i < 8; ++i) k[i] = pixcache_insert_key(c, pm);

    /* 0 -> 128: changed, so only the LRU entry goes. */
    CHECK_EQ(pixcache_tick(c), 1);
    CHECK_EQ(pixcache_total_used(c), 112);
    CHECK(!pixcache_key_is_valid(c, k[0]));
    CHECK(pixcache_key_is_valid(c, k[1]));
    /* unchanged (112): trim to 84 -> two go, 80 left. */
    CHECK_EQ(pixcache_tick(c), 2);
    CHECK_EQ(pixcache_total_used(c), 80);
    CHECK(!pixcache_key_is_valid(c, k[2]));
    /* unchanged (80): trim to 60 -> two go, 48 left. */
    CHECK_EQ(pixcache_tick(c), 2);
    CHECK_EQ(pixcache_total_used(c), 48);
    CHECK(!pixcache_key_is_valid(c, k[4]));
    CHECK(pixcache_key_is_valid(c, k[5]));
    /* an insert changes the total (48 -> 64): one entry (k5) goes. */
    k[8] = pixcache_insert_key(c, pm);
    CHECK_EQ(pixcache_tick(c), 1);
    CHECK_EQ(pixcache_total_used(c), 48);
    CHECK(!pixcache_key_is_valid(c, k[5]));
    /* recency counts: refresh k6, so k7 is the oldest. unchanged (48): trim to 36 -> one. */
    CHECK(pixcache_find_key(c, k[6], NULL));
    CHECK_EQ(pixcache_tick(c), 1);
    CHECK(!pixcache_key_is_valid(c, k[7]));
    CHECK(pixcache_key_is_valid(c, k[8]));
    CHECK(pixcache_key_is_valid(c, k[6]));
    CHECK_EQ(pixcache_total_used(c), 32);
    /* a remove also changes the total (32 -> 16): one entry goes, the cache is empty. */
    CHECK(pixcache_remove_key(c, k[8]));
    CHECK_EQ(pixcache_tick(c), 1);
    CHECK_EQ(entries(c), 0);
    CHECK_EQ(pixcache_tick(c), 0);
    CHECK_EQ(pixcache_stats(c).evictions, 8);
    CHECK(pixcache_pixmap_is_detached(pm));
    pixcache_cache_free(c);

    /* Busy ticks: one entry each, however large the cache. */
    c = new_cache(10240);
    for (int i = 0; i < 8; ++i) CHECK(pixcache_insert_key(c, pm).id != 0);
    CHECK_EQ(pixcache_tick(c), 1);
    PixcachePixmap *p1 = rgba(1, 1);
    CHECK(pixcache_insert(c, "x", p1)); /* 112 -> 113 */
    CHECK_EQ(pixcache_tick(c), 1);
    CHECK_EQ(pixcache_total_used(c), 97);
    CHECK(pixcache_insert(c, "y", p1)); /* 97 -> 98 */
    CHECK_EQ(pixcache_tick(c), 1);
    CHECK_EQ(pixcache_total_used(c), 82);
    CHECK_EQ(entries(c), 7);
    pixcache_cache_free(c);
    pixcache_pixmap_free(p1);
    pixcache_pixmap_free(pm);
}

/* ---------------------------------------------------------------------------------------------
 * Pixmaps and sharing
 * ------------------------------------------------------------------------------------------- */

static void sharing_insert_shares_pixels(void) {
    printf("/rules/sharing/insert_shares_pixels\n");
    PixcachePixmap *pm = rgba(16, 16);
    PixcachePixmap *pk = rgba(16, 16);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = new_cache(100);
    CHECK(pixcache_pixmap_is_detached(pm));
    uint64_t id = pixcache_pixmap_cache_key(pm);
    CHECK(id != 0);
    CHECK(pixcache_insert(c, "s", pm));
    CHECK(!pixcache_pixmap_is_detached(pm));
    CHECK(pixcache_pixmap_cache_key(pm) == id); /* inserting copies nothing */
    CHECK(pixcache_find(c, "s", out));
    CHECK(pixcache_pixmap_cache_key(out) == id);
    CHECK(pixcache_pixmap_pixels(out) == pixcache_pixmap_pixels(pm));

    PixcacheKey k = pixcache_insert_key(c, pk);
    CHECK(!pixcache_pixmap_is_detached(pk));
    CHECK(pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(pk));
    CHECK(pixcache_pixmap_pixels(out) == pixcache_pixmap_pixels(pk));
    pixcache_cache_free(c);
    /* Freeing the cache dropped its shares; out still shares pk. */
    CHECK(pixcache_pixmap_is_detached(pm));
    CHECK(!pixcache_pixmap_is_detached(pk));
    pixcache_pixmap_free(out);
    CHECK(pixcache_pixmap_is_detached(pk));
    pixcache_pixmap_free(pm);
    pixcache_pixmap_free(pk);
}

static void sharing_writes_detach(void) {
    printf("/rules/sharing/writing_detaches_and_the_cache_never_changes\n");
    PixcachePixmap *pm = rgba(16, 16);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = new_cache(100);
    pixcache_pixmap_pixels_mut(pm)[0] = 7;
    uint64_t id = pixcache_pixmap_cache_key(pm);
    CHECK(pixcache_insert(c, "w", pm));
    PixcacheKey k = pixcache_insert_key(c, pm);

    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    assert(px != NULL);
    px[0] = 0xAB;
    px[255] = 0xCD;
    CHECK(pixcache_pixmap_cache_key(pm) != id);
    CHECK(pixcache_pixmap_is_detached(pm));
    CHECK_EQ(pixcache_pixmap_pixels(pm)[0], 0xAB);

    CHECK(pixcache_find(c, "w", out));
    CHECK(pixcache_pixmap_cache_key(out) == id);
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 7);
    CHECK_EQ(pixcache_pixmap_pixels(out)[255], 0);
    CHECK(pixcache_pixmap_pixels(out) != pixcache_pixmap_pixels(pm));

    /* Writing to a found copy detaches it too: the cache still has the old pixels. */
    pixcache_pixmap_pixels_mut(out)[0] = 0x11;
    CHECK(pixcache_pixmap_cache_key(out) != id);
    CHECK(pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_cache_key(out) == id);
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 7);
    CHECK(pixcache_find(c, "w", out));
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 7);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
}

static void sharing_dropped_entries_detach(void) {
    printf("/rules/sharing/dropped_entries_leave_the_pixmap_detached\n");
    PixcachePixmap *pm = rgba(64, 64); /* 16 KB */
    PixcachePixmap *filler = rgba(64, 64);
    PixcachePixmap *huge = rgba(256, 256);
    PixcacheCache *c = new_cache(32);
    PixcacheKey k;

    /* evicted by an insert */
    CHECK(pixcache_insert(c, "pm", pm));
    CHECK(!pixcache_pixmap_is_detached(pm));
    (void)pixcache_insert_key(c, filler);
    (void)pixcache_insert_key(c, filler);
    CHECK(!pixcache_find(c, "pm", NULL));
    CHECK(pixcache_pixmap_is_detached(pm));
    pixcache_clear(c);

    /* evicted by a lowered limit */
    k = pixcache_insert_key(c, pm);
    pixcache_set_cache_limit(c, 0);
    CHECK(pixcache_pixmap_is_detached(pm));
    pixcache_set_cache_limit(c, 32);

    /* evicted by a flush and by a tick */
    k = pixcache_insert_key(c, pm);
    CHECK(!pixcache_pixmap_is_detached(pm));
    pixcache_flush_detached(c);
    CHECK(!pixcache_key_is_valid(c, k));
    CHECK(pixcache_pixmap_is_detached(pm));
    k = pixcache_insert_key(c, pm);
    CHECK_EQ(pixcache_tick(c), 1);
    CHECK(pixcache_pixmap_is_detached(pm));

    /* removed, by string and by key */
    CHECK(pixcache_insert(c, "pm", pm));
    CHECK(pixcache_remove(c, "pm"));
    CHECK(pixcache_pixmap_is_detached(pm));
    k = pixcache_insert_key(c, pm);
    CHECK(pixcache_remove_key(c, k));
    CHECK(pixcache_pixmap_is_detached(pm));

    /* replaced, through the key and by a string re-insert */
    k = pixcache_insert_key(c, pm);
    CHECK(pixcache_replace(c, &k, filler));
    CHECK(pixcache_pixmap_is_detached(pm));
    CHECK(!pixcache_pixmap_is_detached(filler));
    CHECK(pixcache_insert(c, "pm", pm));
    CHECK(pixcache_insert(c, "pm", filler));
    CHECK(pixcache_pixmap_is_detached(pm));

    /* replaced by a pixmap too large: the old one is dropped, the huge one not kept */
    k = pixcache_insert_key(c, pm);
    CHECK(!pixcache_replace(c, &k, huge));
    CHECK(pixcache_pixmap_is_detached(pm));
    CHECK(pixcache_pixmap_is_detached(huge));

    /* a failed string insert drops the old entry under that key */
    CHECK(pixcache_insert(c, "pm", pm));
    CHECK(!pixcache_insert(c, "pm", huge));
    CHECK(pixcache_pixmap_is_detached(pm));

    /* cleared */
    CHECK(pixcache_insert(c, "pm", pm));
    pixcache_clear(c);
    CHECK(pixcache_pixmap_is_detached(pm));
    CHECK(pixcache_pixmap_is_detached(filler));

    /* refused: never kept */
    CHECK(!pixcache_insert(c, "huge", huge));
    CHECK(pixcache_pixmap_is_detached(huge));
    CHECK(!pixcache_key_is_valid(c, pixcache_insert_key(c, huge)));
    CHECK(pixcache_pixmap_is_detached(huge));

    /* the cache freed */
    CHECK(pixcache_insert(c, "pm", pm));
    pixcache_cache_free(c);
    CHECK(pixcache_pixmap_is_detached(pm));

    pixcache_pixmap_free(pm);
    pixcache_pixmap_free(filler);
    pixcache_pixmap_free(huge);
}

/* ---------------------------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------------------------- */

static void stats_count_what_they_say(void) {
    printf("/rules/stats/counters\n");
    PixcachePixmap *pm = rgba(64, 64);   /* 16 KB */
    PixcachePixmap *huge = rgba(128, 130); /* 65 KB */
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcacheCache *c = new_cache(64);
    PixcacheStats st = pixcache_stats(c);
    CHECK_EQ(st.entries, 0);
    CHECK_EQ(st.total_kb, 0);
    CHECK_EQ(st.limit_kb, 64);
    CHECK_EQ(st.hits, 0);
    CHECK_EQ(st.misses, 0);
    CHECK_EQ(st.inserts, 0);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.refused, 0);

    CHECK(pixcache_insert(c, "a", pm));
    CHECK(pixcache_insert(c, "b", pm));
    CHECK(pixcache_insert(c, "c", pm));
    CHECK(pixcache_insert(c, "d", pm)); /* order: a b c d */
    CHECK(pixcache_find(c, "a", out));  /* hit */
    CHECK(!pixcache_find(c, "zz", out)); /* miss */
    CHECK(pixcache_find(c, "b", NULL)); /* hit */
    CHECK(!pixcache_find_key(c, KEY0, NULL)); /* miss */
    CHECK(!pixcache_find_key(c, (PixcacheKey){12345}, out)); /* miss; order: c d a b */
    st = pixcache_stats(c);
    CHECK_EQ(st.hits, 2);
    CHECK_EQ(st.misses, 3);
    CHECK_EQ(st.inserts, 4);
    CHECK_EQ(st.entries, 4);
    CHECK_EQ(st.total_kb, 64);

    PixcacheKey k = pixcache_insert_key(c, pm); /* evicts c; order: d a b k */
    CHECK(!pixcache_find(c, "c", NULL)); /* miss */
    CHECK(pixcache_find_key(c, k, NULL)); /* hit */
    st = pixcache_stats(c);
    CHECK_EQ(st.inserts, 5);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.hits, 3);
    CHECK_EQ(st.misses, 4);

    CHECK(pixcache_replace(c, &k, pm)); /* an insert, not an eviction; order: d a b k' */
    CHECK(pixcache_insert(c, "a", pm)); /* an insert, not an eviction; order: d b k' a */
    st = pixcache_stats(c);
    CHECK_EQ(st.inserts, 7);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.entries, 4);

    CHECK(!pixcache_insert(c, "huge", huge));
    CHECK(!pixcache_key_is_valid(c, pixcache_insert_key(c, huge)));
    CHECK(!pixcache_replace(c, &k, huge)); /* refused; k' is gone (not an eviction) */
    st = pixcache_stats(c);
    CHECK_EQ(st.refused, 3);
    CHECK_EQ(st.inserts, 7);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.entries, 3);
    CHECK(!pixcache_replace(c, &k, pm)); /* invalid key: counts nothing */
    CHECK(!pixcache_find_key(c, k, NULL)); /* miss */
    CHECK(pixcache_remove(c, "d")); /* not an eviction; order: b a */
    CHECK(!pixcache_remove(c, "d"));
    st = pixcache_stats(c);
    CHECK_EQ(st.refused, 3);
    CHECK_EQ(st.inserts, 7);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.misses, 5);
    CHECK_EQ(st.hits, 3);
    CHECK_EQ(st.entries, 2);
    CHECK_EQ(st.total_kb, 32);

    CHECK(pixcache_insert(c, "e", pm));
    CHECK(pixcache_insert(c, "f", pm)); /* order: b a e f */
    pixcache_set_cache_limit(c, 32); /* evicts b, a */
    st = pixcache_stats(c);
    CHECK_EQ(st.inserts, 9);
    CHECK_EQ(st.evictions, 3);
    CHECK_EQ(st.limit_kb, 32);
    CHECK_EQ(st.entries, 2);
    pixcache_set_cache_limit(c, 64);
    CHECK(pixcache_insert(c, "g", pm));
    CHECK(pixcache_insert(c, "h", pm)); /* order: e f g h */
    pixcache_flush_detached(c); /* 64 -> 48: e goes */
    st = pixcache_stats(c);
    CHECK_EQ(st.inserts, 11);
    CHECK_EQ(st.evictions, 4);
    CHECK_EQ(st.entries, 3);
    CHECK(pixcache_insert(c, "i", pm)); /* total changed: the next tick takes one */
    CHECK_EQ(pixcache_tick(c), 1);
    st = pixcache_stats(c);
    CHECK_EQ(st.inserts, 12);
    CHECK_EQ(st.evictions, 5);
    CHECK_EQ(st.entries, 3);
    CHECK_EQ(st.total_kb, 48);
    pixcache_clear(c); /* not an eviction */
    st = pixcache_stats(c);
    CHECK_EQ(st.entries, 0);
    CHECK_EQ(st.total_kb, 0);
    CHECK_EQ(st.limit_kb, 64);
    CHECK_EQ(st.hits, 3);
    CHECK_EQ(st.misses, 5);
    CHECK_EQ(st.inserts, 12);
    CHECK_EQ(st.evictions, 5);
    CHECK_EQ(st.refused, 3);

    /* Caches count separately. */
    PixcacheCache *d = new_cache(64);
    st = pixcache_stats(d);
    CHECK_EQ(st.hits + st.misses + st.inserts + st.evictions + st.refused, 0);
    pixcache_cache_free(d);
    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(huge);
    pixcache_pixmap_free(pm);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the test's path shows even when an assertion aborts */
    /* Units and cost */
    units_default_limit();
    cost_formula();
    cost_null_pixmap();
    cost_depths();
    cost_foreign();
    cost_exact_fit();
    limit_returns_what_was_set();
    limit_nonpositive_refuses_everything();
    limit_lowering_evicts_lru_at_once();
    limit_raising_never_evicts();
    total_used_exact();
    /* Eviction */
    eviction_lru_order_exact();
    eviction_find_refreshes();
    eviction_find_key_refreshes();
    eviction_find_null_out_refreshes();
    eviction_reinsert_refreshes();
    eviction_replace_refreshes();
    eviction_remove_does_not_refresh();
    eviction_validity_check_does_not_refresh();
    eviction_until_the_new_entry_fits();
    eviction_too_large_refused_evicts_nothing();
    eviction_equal_to_limit_evicts_everything_else();
    /* String keys */
    string_reinsert_removes_first();
    string_failed_insert_empties_key();
    string_empty_key_is_valid();
    string_keys_are_exact();
    string_find_hit_shares();
    string_find_miss_leaves_out_untouched();
    string_remove_missing_is_noop();
    /* Generated keys */
    keys_insert_returns_a_valid_key();
    keys_refused_insert_is_invalid_but_not_default();
    keys_default_and_distinct();
    keys_invalidated_with_every_copy();
    keys_replace_gives_a_new_key();
    keys_replace_too_large();
    keys_replace_through_invalid_key();
    keys_stale_never_finds_a_later_entry();
    keys_belong_to_their_cache();
    keys_forged_find_nothing();
    /* clear, idle flush */
    clear_fresh_cache();
    clear_removes_everything();
    flush_detached_trims_to_three_quarters();
    tick_follows_qt_6_4();
    /* Pixmaps and sharing */
    sharing_insert_shares_pixels();
    sharing_writes_detach();
    sharing_dropped_entries_detach();
    /* Statistics */
    stats_count_what_they_say();

    printf("%lu checks passed\n", checks);
    return 0;
}

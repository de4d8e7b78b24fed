/* test_extras.c: the opt-in features of 0.2 beside Qt's rules, checked through the C API only
 * (the Rust core's cases are tests/extras.rs; this proves the C layer passes them on intact).
 *
 * What it tests:
 * - pixcache_set_removal_callback: called exactly once per entry that leaves, with the right
 *   reason (EVICTED, TRIMMED by trim / trim_to / tick / flush_detached, LIMIT_LOWERED by either
 *   limit, REMOVED by string and key, REPLACED by a string re-insert and pixcache_replace,
 *   CLEARED least recently used first, TAKEN), key (NUL-terminated copy and key_len; NULL, 0
 *   and the stale generated key for generated keys), cost (computed and explicit) and a pixmap
 *   that can be read during the call and cloned and kept after it (its pixels survive the
 *   cache and the caller's handles); never for the pixmap of a refused insert; in the order
 *   the entries left; after the cache is unlocked (a callback calling pixcache_find,
 *   pixcache_insert, pixcache_stats and pixcache_contains on the same cache works, without a
 *   deadlock or PIXCACHE_RESULT_REENTRANT); on the thread whose call caused it (two threads
 *   inserting); replaced by another callback, and stopped by NULL. Keys with embedded NUL bytes
 *   and keys longer than 128 bytes through the *_n functions.
 * - pixcache_contains[_n|_key], pixcache_peek[_n|_key]: find what is there, share the cached
 *   pixels, leave `out` alone on a miss, accept a NULL `out`, and touch neither recency (the
 *   next eviction order proves it, with pixcache_find as the control) nor hits/misses.
 * - pixcache_take[_n|_key]: the pixmap goes to `out` (same pixels as inserted), the entry and a
 *   generated key are gone, a second take misses (string: not an error; key: INVALID_KEY, as
 *   peek_key of a stale key), NULL `out` lets the pixmap go.
 * - pixcache_set_count_limit / pixcache_count_limit: off by default, lowering evicts LRU
 *   entries at once and returns how many, inserts evict until both limits hold, 0 turns it off.
 * - pixcache_insert_with_cost[_n], pixcache_insert_key_with_cost: the explicit cost is what is
 *   accounted (and reported), 0 is allowed, negative is INVALID_ARGUMENT changing nothing (not
 *   even the entry already under that key), above the limit is REFUSED evicting nothing.
 * - pixcache_trim: each level's exact total on 64 entries of 10 KB (320, 160, 80, 0), which
 *   entries survive, the return value, the limit unchanged; levels 0 and 5 give 0 and
 *   INVALID_ARGUMENT changing nothing. pixcache_trim_to.
 * - pixcache_set_live_images / pixcache_live_images: off by default; on, an evicted pixmap that
 *   a handle still holds stays visible to contains/peek/find (string and generated keys),
 *   counted in live_kb/live_entries and not in total_kb; find puts it back as the most recent
 *   entry; once the last handle is freed it is gone; remove forgets it; turning it off too.
 * - PixcacheStats (pixcache_stats, the v2 macro): removals by reason, evictions, peak_kb,
 *   count_limit; pixcache_reset_stats (also lookups counted on another thread).
 * - Errors: NULL cache gives PIXCACHE_RESULT_NULL_ARGUMENT for every new function; NULL key or
 *   pixmap too; a *_n key may be NULL with length 0; invalid UTF-8 keys give
 *   PIXCACHE_RESULT_INVALID_UTF8 and change nothing; misses are not errors.
 *
 * What it does not test: the memory-pressure watcher (test_pressure.c); programs built against
 * 0.1's header (test_abi_v1.c); Qt's rules themselves (test_rules.c).
 *
 * Every test makes its own cache with pixcache_cache_new. Every pixmap and cache is freed
 * (valgrind-clean).
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

#include "pixcache.h"

static atomic_ulong checks;

#include "check.h"

/* The calling thread's last result is `code` (and a failure has a message). */
#define CHECK_RESULT(code)                                                                         \
    do {                                                                                           \
        CHECK_EQ(pixcache_last_result(), (code));                                                  \
        if ((code) == PIXCACHE_RESULT_OK) {                                                        \
            CHECK(pixcache_last_error()[0] == '\0');                                               \
        } else {                                                                                   \
            CHECK(pixcache_last_error()[0] != '\0');                                               \
        }                                                                                          \
    } while (0)

#define KEY0 ((PixcacheKey){0})

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static PixcacheCache *new_cache(int32_t limit_kb) {
    PixcacheCache *c = pixcache_cache_new(limit_kb);
    assert(c != NULL);
    return c;
}

static PixcachePixmap *rgba(uint32_t w, uint32_t h) {
    PixcachePixmap *pm = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGBA8888);
    assert(pm != NULL);
    return pm;
}

/* A 64x64 RGBA pixmap (16 KB) whose first and last bytes are `tag`. */
static PixcachePixmap *tagged(uint8_t tag) {
    PixcachePixmap *pm = rgba(64, 64);
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    assert(px != NULL);
    px[0] = tag;
    px[64 * 64 * 4 - 1] = tag;
    return pm;
}

static PixcacheStats stats(const PixcacheCache *c) {
    PixcacheStats st = pixcache_stats(c);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    return st;
}

static uint64_t removals_total(const PixcacheStats *st) {
    uint64_t n = 0;
    for (int i = 0; i < PIXCACHE_REMOVAL_REASON_COUNT; ++i) n += st->removals[i];
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * A removal callback that records what it is told
 * ------------------------------------------------------------------------------------------- */

#define MAX_SEEN 256
#define MAX_KEY 512

typedef struct {
    PixcacheRemovalReason reason;
    int32_t cost_kb;
    bool key_null;
    char key[MAX_KEY + 1];
    size_t key_len;
    uint64_t generated;
    uint64_t pixels;    /* pixcache_pixmap_cache_key of the pixmap, read during the call */
    int first_byte;     /* its first pixel byte, -1 when it has no pixels */
    uint32_t width;
    PixcachePixmap *kept; /* a clone made during the call (when Log::keep) */
    pthread_t thread;
} Seen;

typedef struct {
    Seen seen[MAX_SEEN];
    size_t n;
    bool keep;
} Log;

static void record(void *user_data, const PixcacheRemoval *r) {
    Log *log = user_data;
    CHECK(log != NULL);
    CHECK(r != NULL);
    CHECK(log->n < MAX_SEEN);
    Seen *s = &log->seen[log->n++];
    memset(s, 0, sizeof *s);
    s->reason = r->reason;
    CHECK(r->reason < PIXCACHE_REMOVAL_REASON_COUNT);
    s->cost_kb = r->cost_kb;
    s->key_null = r->key == NULL;
    if (r->key != NULL) {
        CHECK(r->key_len <= MAX_KEY);
        CHECK_EQ(r->key[r->key_len], '\0'); /* NUL-terminated */
        memcpy(s->key, r->key, r->key_len);
        CHECK_EQ(r->generated_key.id, 0);
    } else {
        CHECK_EQ(r->key_len, 0);
        CHECK(r->generated_key.id != 0);
    }
    s->key_len = r->key_len;
    s->generated = r->generated_key.id;
    CHECK(r->pixmap != NULL);
    s->pixels = pixcache_pixmap_cache_key(r->pixmap);
    s->width = pixcache_pixmap_width(r->pixmap);
    const uint8_t *px = pixcache_pixmap_pixels(r->pixmap);
    s->first_byte = px != NULL ? px[0] : -1;
    if (log->keep) {
        s->kept = pixcache_pixmap_clone(r->pixmap);
        CHECK(s->kept != NULL);
    }
    s->thread = pthread_self();
}

static void log_reset(Log *log) {
    for (size_t i = 0; i < log->n; ++i) pixcache_pixmap_free(log->seen[i].kept);
    memset(log, 0, sizeof *log);
}

/* Event `i` of `log` was for the string key `key` (NUL-terminated here) or, `key` NULL, for the
 * generated key `generated`, for `reason`, costing `cost_kb`, on this thread. */
static void expect_seen_line(const Log *log, size_t i, PixcacheRemovalReason reason, const char *key,
                             uint64_t generated, int32_t cost_kb, int line) {
    if (i >= log->n) fprintf(stderr, "line %d: event %zu of %zu\n", line, i, log->n);
    CHECK(i < log->n);
    const Seen *s = &log->seen[i];
    if (s->reason != reason || (key != NULL) != !s->key_null ||
        (key != NULL && (s->key_len != strlen(key) || memcmp(s->key, key, s->key_len) != 0)))
        fprintf(stderr, "line %d: event %zu is reason %u key %s, expected reason %u key %s\n",
                line, i, (unsigned)s->reason, s->key_null ? "(null)" : s->key, (unsigned)reason,
                key ? key : "(null)");
    CHECK_EQ(s->reason, reason);
    if (key != NULL) {
        CHECK(!s->key_null);
        CHECK_EQ(s->key_len, strlen(key));
        CHECK(memcmp(s->key, key, s->key_len) == 0);
        CHECK_EQ(s->generated, 0);
    } else {
        CHECK(s->key_null);
        CHECK_EQ(s->key_len, 0);
        CHECK_EQ(s->generated, generated);
    }
    CHECK_EQ(s->cost_kb, cost_kb);
    CHECK(pthread_equal(s->thread, pthread_self()));
}
#define expect_seen(log, i, reason, key, generated, cost)                                          \
    expect_seen_line(log, i, reason, key, generated, cost, __LINE__)

static Log log_a, log_b;

/* ---------------------------------------------------------------------------------------------
 * Removal callback
 * ------------------------------------------------------------------------------------------- */

static void callback_every_reason_once(void) {
    printf("/extras/callback/every_removal_once_with_reason_key_cost_and_pixmap\n");
    Log *log = &log_a;
    log_reset(log);
    log->keep = true;
    PixcacheCache *c = new_cache(64);
    CHECK(pixcache_set_removal_callback(c, record, log));
    CHECK_RESULT(PIXCACHE_RESULT_OK);

    PixcachePixmap *pa = tagged('a'), *pb = tagged('b'), *pc = tagged('c'), *pd = tagged('d');
    PixcachePixmap *pe = tagged('e'), *pb2 = tagged('B'), *pk = tagged('k'), *pk2 = tagged('K');
    PixcachePixmap *pf = tagged('f'), *pg = tagged('g'), *ph = tagged('h'), *px = tagged('x');
    PixcachePixmap *huge = rgba(256, 256); /* 256 KB */
    const uint64_t id_a = pixcache_pixmap_cache_key(pa), id_b = pixcache_pixmap_cache_key(pb);
    const uint64_t id_k = pixcache_pixmap_cache_key(pk), id_k2 = pixcache_pixmap_cache_key(pk2);

    CHECK(pixcache_insert(c, "a", pa));
    CHECK(pixcache_insert(c, "b", pb));
    CHECK(pixcache_insert(c, "c", pc));
    CHECK(pixcache_insert(c, "d", pd)); /* a b c d: full */
    CHECK_EQ(log->n, 0);
    CHECK(pixcache_insert(c, "e", pe)); /* evicts a */
    CHECK_EQ(log->n, 1);
    expect_seen(log, 0, PIXCACHE_REMOVAL_EVICTED, "a", 0, 16);
    CHECK_EQ(log->seen[0].pixels, id_a);
    CHECK_EQ(log->seen[0].first_byte, 'a');
    CHECK_EQ(log->seen[0].width, 64);

    CHECK(pixcache_insert(c, "b", pb2)); /* replaces b: c d e b */
    CHECK_EQ(log->n, 2);
    expect_seen(log, 1, PIXCACHE_REMOVAL_REPLACED, "b", 0, 16);
    CHECK_EQ(log->seen[1].pixels, id_b);
    CHECK_EQ(log->seen[1].first_byte, 'b');

    CHECK(pixcache_remove(c, "c")); /* d e b */
    CHECK(!pixcache_remove(c, "c"));
    CHECK_EQ(log->n, 3);
    expect_seen(log, 2, PIXCACHE_REMOVAL_REMOVED, "c", 0, 16);
    CHECK_EQ(log->seen[2].first_byte, 'c');

    PixcacheKey k = pixcache_insert_key(c, pk); /* d e b k: fits */
    CHECK(pixcache_key_is_valid(c, k));
    CHECK_EQ(log->n, 3);
    const PixcacheKey k_old = k;
    CHECK(pixcache_replace(c, &k, pk2)); /* d e b k' */
    CHECK(!pixcache_key_equal(k, k_old));
    CHECK_EQ(log->n, 4);
    expect_seen(log, 3, PIXCACHE_REMOVAL_REPLACED, NULL, k_old.id, 16);
    CHECK_EQ(log->seen[3].pixels, id_k);
    CHECK_EQ(log->seen[3].first_byte, 'k');

    PixcachePixmap *taken = pixcache_pixmap_new_null();
    CHECK(pixcache_take(c, "b", taken)); /* d e k' */
    CHECK_EQ(log->n, 5);
    expect_seen(log, 4, PIXCACHE_REMOVAL_TAKEN, "b", 0, 16);
    CHECK_EQ(log->seen[4].pixels, pixcache_pixmap_cache_key(pb2));
    CHECK_EQ(pixcache_pixmap_cache_key(taken), pixcache_pixmap_cache_key(pb2));

    pixcache_set_cache_limit(c, 16); /* d and e go */
    CHECK_EQ(log->n, 7);
    expect_seen(log, 5, PIXCACHE_REMOVAL_LIMIT_LOWERED, "d", 0, 16);
    expect_seen(log, 6, PIXCACHE_REMOVAL_LIMIT_LOWERED, "e", 0, 16);
    pixcache_set_cache_limit(c, 64); /* raising evicts nothing */
    CHECK_EQ(log->n, 7);

    CHECK(pixcache_insert(c, "f", pf));
    CHECK(pixcache_insert(c, "g", pg));
    CHECK(pixcache_insert(c, "h", ph)); /* k' f g h */
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_MODERATE), 2); /* 64 -> 32: k' and f */
    CHECK_EQ(log->n, 9);
    expect_seen(log, 7, PIXCACHE_REMOVAL_TRIMMED, NULL, k.id, 16);
    CHECK_EQ(log->seen[7].pixels, id_k2);
    expect_seen(log, 8, PIXCACHE_REMOVAL_TRIMMED, "f", 0, 16);

    pixcache_clear(c); /* g, then h */
    CHECK_EQ(log->n, 11);
    expect_seen(log, 9, PIXCACHE_REMOVAL_CLEARED, "g", 0, 16);
    expect_seen(log, 10, PIXCACHE_REMOVAL_CLEARED, "h", 0, 16);

    /* A refused insert: the entry it removed is reported, the refused pixmap never. */
    CHECK(pixcache_insert(c, "x", px));
    CHECK(!pixcache_insert(c, "x", huge));
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    CHECK_EQ(log->n, 12);
    expect_seen(log, 11, PIXCACHE_REMOVAL_REPLACED, "x", 0, 16);
    CHECK_EQ(log->seen[11].first_byte, 'x');
    PixcacheKey refused = pixcache_insert_key(c, huge);
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    CHECK(!pixcache_key_is_valid(c, refused));
    CHECK(!pixcache_insert_with_cost(c, "y", px, 65));
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    k = pixcache_insert_key(c, pk);
    CHECK(!pixcache_replace(c, &k, huge)); /* the old entry is replaced, huge refused */
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    CHECK_EQ(log->n, 13);
    expect_seen(log, 12, PIXCACHE_REMOVAL_REPLACED, NULL, k.id, 16);
    for (size_t i = 0; i < log->n; ++i)
        CHECK(log->seen[i].pixels != pixcache_pixmap_cache_key(huge));
    CHECK_EQ(stats(c).entries, 0);

    PixcacheStats st = stats(c);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_EVICTED], 1);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_TRIMMED], 2);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_LIMIT_LOWERED], 2);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_REMOVED], 1);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_REPLACED], 4);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_CLEARED], 2);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_TAKEN], 1);
    CHECK_EQ(removals_total(&st), log->n);
    CHECK_EQ(st.evictions, 5); /* evicted + lowered + trimmed */
    CHECK_EQ(st.refused, 4);
    CHECK_EQ(st.peak_kb, 64);

    /* The clones kept from inside the callback outlive the cache and every caller handle. */
    pixcache_cache_free(c);
    PixcachePixmap *mine[] = {pa, pb, pc, pd, pe, pb2, pk, pk2, pf, pg, ph, px, huge, taken};
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; ++i) pixcache_pixmap_free(mine[i]);
    const char tags[] = "abckBdeKfghxk";
    for (size_t i = 0; i < log->n; ++i) {
        const PixcachePixmap *kept = log->seen[i].kept;
        CHECK(kept != NULL);
        CHECK_EQ(pixcache_pixmap_cache_key(kept), log->seen[i].pixels);
        size_t twins = 0; /* pk was in the cache twice: its two clones share pixels */
        for (size_t j = 0; j < log->n; ++j) twins += log->seen[j].pixels == log->seen[i].pixels;
        CHECK_EQ(pixcache_pixmap_is_detached(kept), twins == 1); /* the last share */
        const uint8_t *p = pixcache_pixmap_pixels(kept);
        CHECK(p != NULL);
        CHECK_EQ(p[0], tags[i]);
        CHECK_EQ(p[64 * 64 * 4 - 1], tags[i]);
    }
    log_reset(log);
}

static void callback_other_paths(void) {
    printf("/extras/callback/keys_ticks_flushes_trim_to_and_count_limits\n");
    Log *log = &log_a;
    log_reset(log);
    PixcacheCache *c = new_cache(1000);
    CHECK(pixcache_set_removal_callback(c, record, log));
    PixcachePixmap *pm = tagged(1);

    PixcacheKey k1 = pixcache_insert_key(c, pm);
    PixcacheKey k2 = pixcache_insert_key_with_cost(c, pm, 7);
    CHECK(pixcache_remove_key(c, k1));
    expect_seen(log, 0, PIXCACHE_REMOVAL_REMOVED, NULL, k1.id, 16);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_take_key(c, k2, out));
    expect_seen(log, 1, PIXCACHE_REMOVAL_TAKEN, NULL, k2.id, 7);
    CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pm));
    CHECK(pixcache_insert_with_cost_n(c, "take\0n", 6, pm, 3));
    CHECK(pixcache_take_n(c, "take\0n", 6, NULL));
    CHECK_EQ(log->n, 3);
    CHECK_EQ(log->seen[2].reason, PIXCACHE_REMOVAL_TAKEN);
    CHECK_EQ(log->seen[2].key_len, 6);
    CHECK(memcmp(log->seen[2].key, "take\0n", 7) == 0);
    CHECK_EQ(log->seen[2].cost_kb, 3);

    /* flush_detached, tick, trim_to: TRIMMED */
    CHECK(pixcache_insert_with_cost(c, "t1", pm, 10));
    CHECK(pixcache_insert_with_cost(c, "t2", pm, 10));
    CHECK(pixcache_insert_with_cost(c, "t3", pm, 10));
    CHECK(pixcache_insert_with_cost(c, "t4", pm, 10));
    pixcache_flush_detached(c); /* 40 -> 30: t1 */
    CHECK_EQ(log->n, 4);
    expect_seen(log, 3, PIXCACHE_REMOVAL_TRIMMED, "t1", 0, 10);
    CHECK_EQ(pixcache_tick(c), 1); /* the total changed since the last tick: one entry, t2 */
    expect_seen(log, 4, PIXCACHE_REMOVAL_TRIMMED, "t2", 0, 10);
    CHECK_EQ(pixcache_trim_to(c, 10), 1); /* t3 */
    CHECK_EQ(log->n, 6);
    expect_seen(log, 5, PIXCACHE_REMOVAL_TRIMMED, "t3", 0, 10);

    /* count limit: lowered -> LIMIT_LOWERED; an insert beyond it -> EVICTED */
    CHECK(pixcache_insert_with_cost(c, "u1", pm, 1));
    CHECK(pixcache_insert_with_cost(c, "u2", pm, 1)); /* t4 u1 u2 */
    CHECK_EQ(pixcache_set_count_limit(c, 2), 1);
    CHECK_EQ(log->n, 7);
    expect_seen(log, 6, PIXCACHE_REMOVAL_LIMIT_LOWERED, "t4", 0, 10);
    CHECK(pixcache_insert_with_cost(c, "u3", pm, 1));
    CHECK_EQ(log->n, 8);
    expect_seen(log, 7, PIXCACHE_REMOVAL_EVICTED, "u1", 0, 1);
    PixcacheStats st = stats(c);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_TRIMMED], 3);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_LIMIT_LOWERED], 1);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_EVICTED], 1);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_TAKEN], 2);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_REMOVED], 1);
    CHECK_EQ(removals_total(&st), 8);

    /* Freeing the cache reports nothing. */
    pixcache_cache_free(c);
    CHECK_EQ(log->n, 8);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    log_reset(log);
}

static void callback_clear_order(void) {
    printf("/extras/callback/clear_reports_least_recently_used_first\n");
    Log *log = &log_a;
    log_reset(log);
    PixcacheCache *c = new_cache(1000);
    CHECK(pixcache_set_removal_callback(c, record, log));
    PixcachePixmap *pm = rgba(1, 1);
    CHECK(pixcache_insert(c, "a", pm));
    CHECK(pixcache_insert(c, "b", pm));
    PixcacheKey k = pixcache_insert_key(c, pm);
    CHECK(pixcache_insert(c, "c", pm));
    CHECK(pixcache_insert(c, "d", pm)); /* a b k c d */
    CHECK(pixcache_find(c, "a", NULL));
    CHECK(pixcache_find_key(c, k, NULL));
    CHECK(pixcache_find(c, "c", NULL)); /* b d a k c */
    CHECK(pixcache_insert(c, "b", pm)); /* re-insert refreshes: d a k c b (and reports b) */
    CHECK_EQ(log->n, 1);
    expect_seen(log, 0, PIXCACHE_REMOVAL_REPLACED, "b", 0, 1);
    pixcache_clear(c);
    CHECK_EQ(log->n, 6);
    expect_seen(log, 1, PIXCACHE_REMOVAL_CLEARED, "d", 0, 1);
    expect_seen(log, 2, PIXCACHE_REMOVAL_CLEARED, "a", 0, 1);
    expect_seen(log, 3, PIXCACHE_REMOVAL_CLEARED, NULL, k.id, 1);
    expect_seen(log, 4, PIXCACHE_REMOVAL_CLEARED, "c", 0, 1);
    expect_seen(log, 5, PIXCACHE_REMOVAL_CLEARED, "b", 0, 1);
    pixcache_clear(c); /* empty: nothing */
    CHECK_EQ(log->n, 6);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
    log_reset(log);
}

/* A callback that uses the cache it is called for. */
typedef struct {
    PixcacheCache *cache;
    PixcachePixmap *small;
    int calls;
    int depth, max_depth;
    bool insert_on_clear;
} Reentry;

static void reenter(void *user_data, const PixcacheRemoval *r) {
    Reentry *re = user_data;
    ++re->calls;
    ++re->depth;
    if (re->depth > re->max_depth) re->max_depth = re->depth;
    CHECK(r->key != NULL);
    /* The entry is already gone: a find misses, and that is no error (not REENTRANT). */
    CHECK(!pixcache_find(re->cache, r->key, NULL));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK(!pixcache_contains(re->cache, r->key));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    PixcacheStats st = pixcache_stats(re->cache);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(st.limit_kb, 32);
    if (r->reason == PIXCACHE_REMOVAL_EVICTED && strncmp(r->key, "old-", 4) != 0) {
        char name[64];
        snprintf(name, sizeof name, "old-%s", r->key);
        CHECK(pixcache_insert(re->cache, name, re->small)); /* may evict again: nested call */
        CHECK_RESULT(PIXCACHE_RESULT_OK);
        CHECK(pixcache_find(re->cache, name, NULL));
        CHECK_RESULT(PIXCACHE_RESULT_OK);
    }
    if (r->reason == PIXCACHE_REMOVAL_CLEARED && re->insert_on_clear) {
        re->insert_on_clear = false;
        CHECK(pixcache_insert(re->cache, "after-clear", re->small));
        CHECK_RESULT(PIXCACHE_RESULT_OK);
    }
    --re->depth;
}

static void callback_may_use_the_cache(void) {
    printf("/extras/callback/runs_unlocked_and_may_use_the_same_cache\n");
    PixcacheCache *c = new_cache(32);
    PixcachePixmap *p16 = rgba(64, 64);
    Reentry re = {.cache = c, .small = rgba(1, 1)};
    CHECK(pixcache_set_removal_callback(c, reenter, &re));
    CHECK(pixcache_insert(c, "a", p16));
    CHECK(pixcache_insert(c, "b", p16));
    /* c evicts a; the callback inserts old-a (1 KB), which evicts b; that nested callback
     * inserts old-b. */
    CHECK(pixcache_insert(c, "c", p16));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(re.calls, 2);
    CHECK_EQ(re.max_depth, 2);
    CHECK_EQ(re.depth, 0);
    CHECK(pixcache_contains(c, "old-a"));
    CHECK(pixcache_contains(c, "old-b"));
    CHECK(pixcache_contains(c, "c"));
    CHECK(!pixcache_contains(c, "a"));
    CHECK(!pixcache_contains(c, "b"));
    PixcacheStats st = stats(c);
    CHECK_EQ(st.entries, 3);
    CHECK_EQ(st.total_kb, 18);

    /* A callback called by clear may insert: that insert comes after the clear. */
    re.insert_on_clear = true;
    re.calls = 0;
    pixcache_clear(c);
    CHECK_EQ(re.calls, 3);
    CHECK(pixcache_contains(c, "after-clear"));
    CHECK_EQ(stats(c).entries, 1);

    CHECK(pixcache_set_removal_callback(c, NULL, NULL));
    pixcache_cache_free(c);
    pixcache_pixmap_free(re.small);
    pixcache_pixmap_free(p16);
}

static void callback_replaced_and_stopped(void) {
    printf("/extras/callback/replaced_by_another_and_stopped_by_null\n");
    log_reset(&log_a);
    log_reset(&log_b);
    PixcacheCache *c = new_cache(16);
    PixcachePixmap *pm = rgba(64, 64);
    CHECK(pixcache_set_removal_callback(c, record, &log_a));
    CHECK(pixcache_insert(c, "1", pm));
    CHECK(pixcache_insert(c, "2", pm)); /* evicts 1 */
    CHECK_EQ(log_a.n, 1);
    CHECK(pixcache_set_removal_callback(c, record, &log_b));
    CHECK(pixcache_insert(c, "3", pm)); /* evicts 2: told to the new callback only */
    CHECK_EQ(log_a.n, 1);
    CHECK_EQ(log_b.n, 1);
    expect_seen(&log_b, 0, PIXCACHE_REMOVAL_EVICTED, "2", 0, 16);
    CHECK(pixcache_set_removal_callback(c, NULL, &log_b));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK(pixcache_insert(c, "4", pm));
    CHECK(pixcache_remove(c, "4"));
    CHECK(pixcache_insert(c, "5", pm));
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_COMPLETE), 1);
    pixcache_clear(c);
    CHECK_EQ(log_a.n, 1);
    CHECK_EQ(log_b.n, 1);
    /* Still counted in the statistics. */
    PixcacheStats st = stats(c);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_EVICTED], 3);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_REMOVED], 1);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_TRIMMED], 1);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
    log_reset(&log_a);
    log_reset(&log_b);
}

/* Two threads insert; each callback must run on a thread that is inside its own insert. */
static _Thread_local bool tl_inserting;
static _Thread_local unsigned long tl_callbacks;
static atomic_ulong mt_callbacks;
static pthread_t main_thread;

static void on_thread(void *user_data, const PixcacheRemoval *r) {
    (void)user_data;
    CHECK(tl_inserting);
    CHECK(!pthread_equal(pthread_self(), main_thread));
    CHECK_EQ(r->reason, PIXCACHE_REMOVAL_EVICTED);
    CHECK(r->key != NULL);
    CHECK_EQ(r->cost_kb, 16);
    ++tl_callbacks;
    atomic_fetch_add(&mt_callbacks, 1);
}

#define MT_INSERTS 300

typedef struct {
    PixcacheCache *cache;
    int index;
    unsigned long callbacks;
    pthread_t self;
} Worker;

static void *worker(void *arg) {
    Worker *w = arg;
    w->self = pthread_self();
    PixcachePixmap *pm = rgba(64, 64);
    for (int i = 0; i < MT_INSERTS; ++i) {
        char key[32];
        snprintf(key, sizeof key, "t%d-%d", w->index, i);
        tl_inserting = true;
        CHECK(pixcache_insert(w->cache, key, pm));
        tl_inserting = false;
    }
    pixcache_pixmap_free(pm);
    w->callbacks = tl_callbacks;
    return NULL;
}

static void callback_on_the_causing_thread(void) {
    printf("/extras/callback/runs_on_the_thread_that_caused_the_removal\n");
    main_thread = pthread_self();
    atomic_store(&mt_callbacks, 0);
    PixcacheCache *c = new_cache(64); /* four 16 KB entries */
    CHECK(pixcache_set_removal_callback(c, on_thread, NULL));
    Worker w[2] = {{.cache = c, .index = 0}, {.cache = c, .index = 1}};
    pthread_t t[2];
    for (int i = 0; i < 2; ++i) CHECK(pthread_create(&t[i], NULL, worker, &w[i]) == 0);
    for (int i = 0; i < 2; ++i) CHECK(pthread_join(t[i], NULL) == 0);
    /* Every insert after the first four evicts exactly one entry, told to its own thread. */
    CHECK_EQ(atomic_load(&mt_callbacks), 2 * MT_INSERTS - 4);
    CHECK_EQ(w[0].callbacks + w[1].callbacks, 2 * MT_INSERTS - 4);
    for (int i = 0; i < 2; ++i) {
        CHECK(w[i].callbacks <= MT_INSERTS);
        CHECK(w[i].callbacks + 4 >= MT_INSERTS);
    }
    CHECK(!pthread_equal(w[0].self, w[1].self));
    PixcacheStats st = stats(c);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_EVICTED], 2 * MT_INSERTS - 4);
    CHECK_EQ(st.entries, 4);
    CHECK(pixcache_set_removal_callback(c, NULL, NULL));
    pixcache_clear(c); /* on this thread, with no callback: nothing runs */
    CHECK_EQ(atomic_load(&mt_callbacks), 2 * MT_INSERTS - 4);
    pixcache_cache_free(c);
}

static void callback_keys_with_nul_and_long_keys(void) {
    printf("/extras/callback/keys_with_nul_bytes_and_long_keys\n");
    Log *log = &log_a;
    log_reset(log);
    PixcacheCache *c = new_cache(1000);
    CHECK(pixcache_set_removal_callback(c, record, log));
    PixcachePixmap *pm = rgba(10, 10);
    PixcachePixmap *out = pixcache_pixmap_new_null();

    CHECK(pixcache_insert_n(c, "a\0b", 3, pm));
    CHECK(pixcache_insert_with_cost_n(c, "a\0c", 3, pm, 5));
    CHECK(!pixcache_contains(c, "a")); /* "a" is another key */
    CHECK(pixcache_contains_n(c, "a\0b", 3));
    CHECK(pixcache_contains_n(c, "a\0c", 3));
    CHECK(!pixcache_contains_n(c, "a\0d", 3));
    CHECK(!pixcache_contains_n(c, "a", 1));
    CHECK(pixcache_peek_n(c, "a\0c", 3, out));
    CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pm));
    CHECK(pixcache_remove_n(c, "a\0b", 3));
    CHECK_EQ(log->n, 1);
    CHECK_EQ(log->seen[0].reason, PIXCACHE_REMOVAL_REMOVED);
    CHECK_EQ(log->seen[0].key_len, 3);
    CHECK(memcmp(log->seen[0].key, "a\0b", 3) == 0);
    CHECK_EQ(log->seen[0].cost_kb, 1);
    CHECK(pixcache_take_n(c, "a\0c", 3, out));
    CHECK_EQ(log->n, 2);
    CHECK_EQ(log->seen[1].reason, PIXCACHE_REMOVAL_TAKEN);
    CHECK_EQ(log->seen[1].key_len, 3);
    CHECK(memcmp(log->seen[1].key, "a\0c", 3) == 0);
    CHECK_EQ(log->seen[1].cost_kb, 5);

    /* A key longer than 128 bytes (copied to the heap for the call), with a NUL inside. */
    char longkey[300];
    for (size_t i = 0; i < sizeof longkey; ++i) longkey[i] = (char)('a' + i % 26);
    longkey[150] = '\0';
    CHECK(pixcache_insert_n(c, longkey, sizeof longkey, pm));
    CHECK(pixcache_contains_n(c, longkey, sizeof longkey));
    CHECK(!pixcache_contains(c, longkey)); /* the first 150 bytes only */
    pixcache_set_cache_limit(c, 0);
    CHECK_EQ(log->n, 3);
    CHECK_EQ(log->seen[2].reason, PIXCACHE_REMOVAL_LIMIT_LOWERED);
    CHECK_EQ(log->seen[2].key_len, sizeof longkey);
    CHECK(memcmp(log->seen[2].key, longkey, sizeof longkey) == 0);

    /* The empty key: "" (key_len 0, not NULL). */
    pixcache_set_cache_limit(c, 1000);
    CHECK(pixcache_insert_n(c, NULL, 0, pm));
    CHECK(pixcache_contains(c, ""));
    CHECK(pixcache_remove(c, ""));
    CHECK_EQ(log->n, 4);
    CHECK(!log->seen[3].key_null);
    CHECK_EQ(log->seen[3].key_len, 0);

    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    log_reset(log);
}

/* ---------------------------------------------------------------------------------------------
 * contains, peek, take
 * ------------------------------------------------------------------------------------------- */

static void contains_and_peek_touch_nothing(void) {
    printf("/extras/peek/contains_and_peek_touch_neither_recency_nor_statistics\n");
    PixcacheCache *c = new_cache(64);
    PixcachePixmap *pa = tagged('a'), *pb = tagged('b'), *pk = tagged('k'), *pc = tagged('c');
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_insert(c, "a", pa));
    CHECK(pixcache_insert(c, "b", pb));
    PixcacheKey k = pixcache_insert_key(c, pk); /* a b k: 48 of 64 */
    CHECK(pixcache_find(c, "b", NULL));            /* one hit */
    CHECK(!pixcache_find(c, "zz", NULL));          /* one miss; order: a k b */
    const PixcacheStats before = stats(c);
    CHECK_EQ(before.hits, 1);
    CHECK_EQ(before.misses, 1);

    for (int round = 0; round < 3; ++round) {
        CHECK(pixcache_contains(c, "a"));
        CHECK_RESULT(PIXCACHE_RESULT_OK);
        CHECK(pixcache_contains_n(c, "a", 1));
        CHECK(pixcache_contains_key(c, k));
        CHECK(!pixcache_contains(c, "zz"));
        CHECK_RESULT(PIXCACHE_RESULT_OK); /* a miss is no error */
        CHECK(!pixcache_contains_key(c, KEY0));
        CHECK_RESULT(PIXCACHE_RESULT_OK);
        CHECK(pixcache_peek(c, "a", out));
        CHECK_RESULT(PIXCACHE_RESULT_OK);
        CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pa));
        CHECK(pixcache_pixmap_pixels(out) == pixcache_pixmap_pixels(pa)); /* shared, not copied */
        CHECK(pixcache_peek_n(c, "a", 1, NULL));
        CHECK(pixcache_peek(c, "a", NULL));
        CHECK(pixcache_peek_key(c, k, out));
        CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pk));
        CHECK(pixcache_peek_key(c, k, NULL));
        /* misses leave out untouched */
        CHECK(!pixcache_peek(c, "zz", out));
        CHECK_RESULT(PIXCACHE_RESULT_OK);
        CHECK(!pixcache_peek_n(c, "zz", 2, out));
        CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pk));
        CHECK(!pixcache_peek_key(c, KEY0, out));
        CHECK_RESULT(PIXCACHE_RESULT_INVALID_KEY);
        CHECK(!pixcache_peek_key(c, (PixcacheKey){k.id + 1000}, out));
        CHECK_RESULT(PIXCACHE_RESULT_INVALID_KEY);
        CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pk));
    }
    PixcacheStats after = stats(c);
    CHECK_EQ(after.hits, before.hits);
    CHECK_EQ(after.misses, before.misses);
    CHECK_EQ(after.inserts, before.inserts);
    CHECK_EQ(after.entries, 3);

    /* "a" is still the least recently used despite every look: the next insert that needs room
     * evicts it, then k. */
    CHECK(pixcache_insert(c, "c", pc)); /* 64: fits */
    CHECK(pixcache_insert(c, "d", pc)); /* evicts a */
    CHECK(!pixcache_contains(c, "a"));
    CHECK(pixcache_contains_key(c, k));
    CHECK(!pixcache_peek(c, "a", out));
    CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pk));
    /* The control: a find does refresh. Order k b c d; find k -> b c d k; the next goes b. */
    CHECK(pixcache_find_key(c, k, NULL));
    CHECK(pixcache_insert(c, "e", pc));
    CHECK(!pixcache_contains(c, "b"));
    CHECK(pixcache_contains_key(c, k));
    /* And peeking k did not save it once it is the oldest: c d k e -> peek k, insert f -> c. */
    CHECK(pixcache_peek(c, "c", NULL));
    CHECK(pixcache_contains(c, "c"));
    CHECK(pixcache_insert(c, "f", pc)); /* evicts c despite the peek */
    CHECK(!pixcache_contains(c, "c"));
    CHECK(pixcache_contains(c, "d"));

    pixcache_cache_free(c);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pa);
    pixcache_pixmap_free(pb);
    pixcache_pixmap_free(pk);
    pixcache_pixmap_free(pc);
}

static void take_hands_the_pixmap_over(void) {
    printf("/extras/take/gives_the_pixmap_and_invalidates_the_key\n");
    PixcacheCache *c = new_cache(64);
    PixcachePixmap *pa = tagged('a');
    PixcachePixmap *out = pixcache_pixmap_new_null();
    const uint64_t id = pixcache_pixmap_cache_key(pa);
    CHECK(pixcache_insert(c, "a", pa));
    PixcacheKey k = pixcache_insert_key(c, pa);
    CHECK(pixcache_insert_n(c, "n\0", 2, pa));
    CHECK_EQ(pixcache_total_used(c), 48);

    CHECK(pixcache_take(c, "a", out));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_pixmap_cache_key(out), id); /* the inserted pixels, not a copy */
    CHECK(pixcache_pixmap_pixels(out) == pixcache_pixmap_pixels(pa));
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 'a');
    CHECK(!pixcache_contains(c, "a"));
    CHECK(!pixcache_find(c, "a", NULL));
    CHECK_EQ(pixcache_total_used(c), 32);
    /* A second take misses: false, not an error, out untouched. */
    PixcachePixmap *other = rgba(2, 2);
    pixcache_pixmap_assign(out, other);
    CHECK(!pixcache_take(c, "a", out));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(other));

    CHECK(pixcache_take_n(c, "n\0", 2, out));
    CHECK_EQ(pixcache_pixmap_cache_key(out), id);
    CHECK(!pixcache_take_n(c, "n\0", 2, out));
    CHECK_RESULT(PIXCACHE_RESULT_OK);

    /* Generated key: NULL out lets the pixmap go; the key is invalid afterwards. */
    CHECK(pixcache_take_key(c, k, NULL));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK(!pixcache_key_is_valid(c, k));
    CHECK(!pixcache_contains_key(c, k));
    CHECK(!pixcache_take_key(c, k, out));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_KEY);
    CHECK(!pixcache_peek_key(c, k, out));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_KEY);
    CHECK(!pixcache_find_key(c, k, out));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_KEY);
    CHECK(!pixcache_take_key(c, KEY0, out));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_KEY);
    CHECK_EQ(pixcache_pixmap_cache_key(out), id);
    CHECK_EQ(pixcache_total_used(c), 0);
    CHECK_EQ(stats(c).entries, 0);
    CHECK_EQ(stats(c).removals[PIXCACHE_REMOVAL_TAKEN], 3);

    /* A taken key into a live handle: take_key into out, compared with the inserted pixels. */
    PixcachePixmap *pk = tagged('k');
    k = pixcache_insert_key(c, pk);
    CHECK(pixcache_take_key(c, k, out));
    CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pk));
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 'k');
    /* Nothing else shares pa now: only pa and nothing in the cache. */
    CHECK(pixcache_pixmap_is_detached(pa));
    pixcache_cache_free(c);
    CHECK(!pixcache_pixmap_is_detached(pk)); /* out shares it */
    pixcache_pixmap_free(out);
    CHECK(pixcache_pixmap_is_detached(pk));
    pixcache_pixmap_free(other);
    pixcache_pixmap_free(pk);
    pixcache_pixmap_free(pa);
}

/* ---------------------------------------------------------------------------------------------
 * Count limit and explicit costs
 * ------------------------------------------------------------------------------------------- */

static void count_limit_with_the_kb_limit(void) {
    printf("/extras/limits/count_limit_and_kb_limit_both_hold\n");
    PixcacheCache *c = new_cache(1000);
    PixcachePixmap *pm = rgba(1, 1); /* 1 KB */
    CHECK_EQ(pixcache_count_limit(c), 0);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(stats(c).count_limit, 0);
    char key[16];
    for (int i = 0; i < 5; ++i) {
        snprintf(key, sizeof key, "%d", i);
        CHECK(pixcache_insert(c, key, pm));
    }
    CHECK_EQ(pixcache_set_count_limit(c, 3), 2);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_count_limit(c), 3);
    PixcacheStats st = stats(c);
    CHECK_EQ(st.entries, 3);
    CHECK_EQ(st.count_limit, 3);
    CHECK_EQ(st.total_kb, 3);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_LIMIT_LOWERED], 2);
    CHECK(!pixcache_contains(c, "0"));
    CHECK(!pixcache_contains(c, "1"));
    CHECK(pixcache_contains(c, "2"));
    CHECK(pixcache_contains(c, "4"));

    CHECK(pixcache_find(c, "2", NULL)); /* 3 4 2 */
    CHECK(pixcache_insert(c, "5", pm)); /* the count limit evicts 3 */
    CHECK_EQ(stats(c).entries, 3);
    CHECK(!pixcache_contains(c, "3"));
    CHECK(pixcache_contains(c, "2"));
    CHECK_EQ(stats(c).removals[PIXCACHE_REMOVAL_EVICTED], 1);
    PixcacheKey k = pixcache_insert_key(c, pm); /* generated keys count too: evicts 4 */
    CHECK(pixcache_key_is_valid(c, k));
    CHECK(!pixcache_contains(c, "4"));
    CHECK_EQ(stats(c).entries, 3);

    /* The KB limit still evicts on its own: 3 + 999 > 1000 -> two go (2, 5). */
    CHECK(pixcache_insert_with_cost(c, "big", pm, 999));
    st = stats(c);
    CHECK_EQ(st.entries, 2);
    CHECK_EQ(st.total_kb, 1000);
    CHECK(!pixcache_contains(c, "2"));
    CHECK(!pixcache_contains(c, "5"));
    CHECK(pixcache_contains_key(c, k));

    /* Raising the count limit evicts nothing; 0 turns it off. */
    CHECK_EQ(pixcache_set_count_limit(c, 10), 0);
    CHECK_EQ(stats(c).entries, 2);
    CHECK_EQ(pixcache_set_count_limit(c, 0), 0);
    CHECK_EQ(pixcache_count_limit(c), 0);
    for (int i = 0; i < 20; ++i) {
        snprintf(key, sizeof key, "z%d", i);
        CHECK(pixcache_insert_with_cost(c, key, pm, 0));
    }
    CHECK_EQ(stats(c).entries, 22);
    CHECK_EQ(pixcache_total_used(c), 1000);
    /* Lowering to 1 leaves the most recent entry only. */
    CHECK_EQ(pixcache_set_count_limit(c, 1), 21);
    CHECK(pixcache_contains(c, "z19"));
    CHECK_EQ(pixcache_total_used(c), 0);
    /* The KB limit is unaffected by the count limit and vice versa. */
    CHECK_EQ(pixcache_cache_limit(c), 1000);
    pixcache_set_cache_limit(c, 500);
    CHECK_EQ(pixcache_count_limit(c), 1);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

static void explicit_costs(void) {
    printf("/extras/costs/explicit_costs_zero_negative_and_too_large\n");
    Log *log = &log_a;
    log_reset(log);
    PixcacheCache *c = new_cache(100);
    CHECK(pixcache_set_removal_callback(c, record, log));
    PixcachePixmap *pm = rgba(64, 64); /* would cost 16 */
    CHECK(pixcache_insert_with_cost(c, "tex", pm, 60));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_total_used(c), 60);
    PixcacheKey k = pixcache_insert_key_with_cost(c, pm, 30);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK(pixcache_key_is_valid(c, k));
    CHECK_EQ(pixcache_total_used(c), 90);
    CHECK(pixcache_insert_with_cost_n(c, "more\0", 5, pm, 10)); /* exactly 100: fits */
    CHECK_EQ(pixcache_total_used(c), 100);
    CHECK_EQ(log->n, 0);
    CHECK(pixcache_insert_with_cost(c, "zero", pm, 0)); /* 0 fits a full cache */
    CHECK_EQ(log->n, 0);
    CHECK_EQ(pixcache_total_used(c), 100);
    CHECK_EQ(stats(c).entries, 4);
    CHECK(pixcache_insert_with_cost(c, "more", pm, 20)); /* evicts tex (60) */
    CHECK_EQ(log->n, 1);
    expect_seen(log, 0, PIXCACHE_REMOVAL_EVICTED, "tex", 0, 60);
    CHECK(!pixcache_contains(c, "tex"));
    CHECK(pixcache_key_is_valid(c, k));
    CHECK_EQ(pixcache_total_used(c), 60);

    /* Negative costs: INVALID_ARGUMENT and nothing changes, not even the entry under the key. */
    const PixcacheStats before = stats(c);
    CHECK(!pixcache_insert_with_cost(c, "neg", pm, -1));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(!pixcache_insert_with_cost(c, "more", pm, -1));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(!pixcache_insert_with_cost(c, "more", pm, INT32_MIN));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(!pixcache_insert_with_cost_n(c, "zero", 4, pm, -7));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    PixcacheKey bad = pixcache_insert_key_with_cost(c, pm, -5);
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(bad.id, 0);
    CHECK(!pixcache_contains(c, "neg"));
    CHECK(pixcache_contains(c, "more"));
    CHECK(pixcache_contains(c, "zero"));
    CHECK_EQ(log->n, 1);
    PixcacheStats after = stats(c);
    CHECK_EQ(after.entries, before.entries);
    CHECK_EQ(after.total_kb, before.total_kb);
    CHECK_EQ(after.inserts, before.inserts);
    CHECK_EQ(after.refused, before.refused);
    CHECK_EQ(removals_total(&after), removals_total(&before));

    /* Above the limit: REFUSED, nothing evicted for it. */
    CHECK(!pixcache_insert_with_cost(c, "huge", pm, 101));
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    PixcacheKey refused = pixcache_insert_key_with_cost(c, pm, INT32_MAX);
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    CHECK(!pixcache_key_is_valid(c, refused));
    CHECK(refused.id != 0); /* as pixcache_insert_key: fresh, invalid, not the all-zero key */
    CHECK_EQ(pixcache_total_used(c), 60);
    CHECK(pixcache_key_is_valid(c, k));
    CHECK_EQ(stats(c).refused, before.refused + 2);
    CHECK_EQ(log->n, 1);
    /* Exactly the limit: accepted, evicting everything else, each reported with its cost. */
    CHECK(pixcache_insert_with_cost(c, "all", pm, 100));
    CHECK_EQ(stats(c).entries, 1);
    CHECK_EQ(pixcache_total_used(c), 100);
    CHECK_EQ(log->n, 5); /* in LRU order: k (30), "more\0" (10), zero (0), more (20) */
    expect_seen(log, 1, PIXCACHE_REMOVAL_EVICTED, NULL, k.id, 30);
    CHECK_EQ(log->seen[2].reason, PIXCACHE_REMOVAL_EVICTED);
    CHECK_EQ(log->seen[2].key_len, 5);
    CHECK(memcmp(log->seen[2].key, "more\0", 6) == 0);
    CHECK_EQ(log->seen[2].cost_kb, 10);
    expect_seen(log, 3, PIXCACHE_REMOVAL_EVICTED, "zero", 0, 0);
    expect_seen(log, 4, PIXCACHE_REMOVAL_EVICTED, "more", 0, 20);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
    log_reset(log);
}

/* ---------------------------------------------------------------------------------------------
 * Trims
 * ------------------------------------------------------------------------------------------- */

static void fill_64x10(PixcacheCache *c, PixcachePixmap *pm) {
    pixcache_clear(c);
    char key[16];
    for (int i = 0; i < 64; ++i) {
        snprintf(key, sizeof key, "%d", i);
        CHECK(pixcache_insert_with_cost(c, key, pm, 10));
    }
    CHECK_EQ(pixcache_total_used(c), 640);
}

static bool has(PixcacheCache *c, int i) {
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    return pixcache_contains(c, key);
}

static void trim_levels(void) {
    printf("/extras/trim/levels_keep_half_quarter_eighth_nothing\n");
    PixcacheCache *c = new_cache(10000);
    PixcachePixmap *pm = rgba(1, 1);
    static const struct {
        PixcacheTrimLevel level;
        int32_t left;
    } cases[] = {
        {PIXCACHE_TRIM_MODERATE, 320},
        {PIXCACHE_TRIM_LOW, 160},
        {PIXCACHE_TRIM_CRITICAL, 80},
        {PIXCACHE_TRIM_COMPLETE, 0},
    };
    uint64_t trimmed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        fill_64x10(c, pm);
        CHECK(pixcache_find(c, "0", NULL)); /* order: 1 2 ... 63 0 */
        size_t gone = pixcache_trim(c, cases[i].level);
        CHECK_RESULT(PIXCACHE_RESULT_OK);
        trimmed += gone;
        const int kept = cases[i].left / 10;
        CHECK_EQ(pixcache_total_used(c), cases[i].left);
        CHECK_EQ(gone, 64 - kept);
        CHECK_EQ(stats(c).entries, kept);
        CHECK_EQ(pixcache_cache_limit(c), 10000);
        CHECK_EQ(has(c, 0), kept > 0); /* the most recent survives every level but complete */
        if (kept > 0) {
            CHECK(has(c, 65 - kept));  /* the oldest survivor */
            CHECK(!has(c, 64 - kept)); /* the newest casualty */
            CHECK(has(c, 63));
        }
        CHECK(!has(c, 1));
    }
    CHECK_EQ(trimmed, 32 + 48 + 56 + 64);

    /* Unknown levels: 0, nothing changes. */
    fill_64x10(c, pm);
    const PixcacheStats before = stats(c);
    const PixcacheTrimLevel unknown[] = {0, 5, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
        CHECK_EQ(pixcache_trim(c, unknown[i]), 0);
        CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    }
    PixcacheStats after = stats(c);
    CHECK_EQ(after.total_kb, 640);
    CHECK_EQ(after.entries, 64);
    CHECK_EQ(removals_total(&after), removals_total(&before));

    /* trim_to: down to at most kb, the limit unchanged. */
    CHECK_EQ(pixcache_trim_to(c, 640), 0);
    CHECK_EQ(pixcache_trim_to(c, 1000000), 0);
    CHECK_EQ(pixcache_trim_to(c, 95), 55);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_total_used(c), 90);
    CHECK(has(c, 55));
    CHECK(!has(c, 54));
    CHECK_EQ(pixcache_cache_limit(c), 10000);
    CHECK_EQ(pixcache_trim_to(c, -3), 9);
    CHECK_EQ(pixcache_total_used(c), 0);
    CHECK_EQ(pixcache_trim_to(c, 0), 0); /* empty */
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_COMPLETE), 0);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    PixcacheStats st = stats(c);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_TRIMMED], 32 + 48 + 56 + 64 + 55 + 9);
    CHECK_EQ(st.limit_kb, 10000);

    /* A cache below its limit is trimmed too (a fraction of the current total). */
    pixcache_set_cache_limit(c, INT32_MAX);
    CHECK(pixcache_insert_with_cost(c, "a", pm, 3));
    CHECK(pixcache_insert_with_cost(c, "b", pm, 3));
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_MODERATE), 1); /* 6 -> at most 3 */
    CHECK_EQ(pixcache_total_used(c), 3);
    CHECK(pixcache_contains(c, "b"));
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
}

/* ---------------------------------------------------------------------------------------------
 * Live images
 * ------------------------------------------------------------------------------------------- */

static void live_images_off_by_default(void) {
    printf("/extras/live/off_by_default\n");
    PixcacheCache *c = new_cache(16);
    CHECK(!pixcache_live_images(c));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    PixcachePixmap *held = tagged('h');
    PixcachePixmap *other = tagged('o');
    CHECK(pixcache_insert(c, "a", held));
    CHECK(pixcache_insert(c, "b", other)); /* evicts a, which `held` still shares */
    CHECK(!pixcache_contains(c, "a"));
    CHECK(!pixcache_peek(c, "a", NULL));
    CHECK(!pixcache_find(c, "a", NULL));
    PixcacheStats st = stats(c);
    CHECK_EQ(st.live_entries, 0);
    CHECK_EQ(st.live_kb, 0);
    CHECK(pixcache_pixmap_is_detached(held));
    pixcache_cache_free(c);
    pixcache_pixmap_free(held);
    pixcache_pixmap_free(other);
}

/* Inserts a fresh 16 KB pixmap that nothing but the cache holds afterwards. */
static void insert_fresh(PixcacheCache *c, const char *key) {
    PixcachePixmap *pm = tagged((uint8_t)key[0]);
    CHECK(pixcache_insert(c, key, pm));
    pixcache_pixmap_free(pm);
}

static void live_images_while_held(void) {
    printf("/extras/live/evicted_pixmaps_stay_findable_while_held\n");
    PixcacheCache *c = new_cache(32);
    pixcache_set_live_images(c, true);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK(pixcache_live_images(c));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    PixcachePixmap *held = tagged('h');
    const uint64_t held_id = pixcache_pixmap_cache_key(held);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    PixcachePixmap *none = pixcache_pixmap_new_null();

    CHECK(pixcache_insert(c, "held", held));
    insert_fresh(c, "dropped");
    insert_fresh(c, "x"); /* evicts held (still held here): live */
    insert_fresh(c, "y"); /* evicts dropped (nobody holds it): gone */
    CHECK(!pixcache_contains(c, "dropped"));
    CHECK(!pixcache_peek(c, "dropped", out));
    CHECK(!pixcache_find(c, "dropped", out));
    PixcacheStats st = stats(c);
    CHECK_EQ(st.entries, 2);
    CHECK_EQ(st.total_kb, 32);
    CHECK_EQ(st.live_entries, 1);
    CHECK_EQ(st.live_kb, 16);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_EVICTED], 2);

    /* contains and peek see it without moving it back. */
    CHECK(pixcache_contains(c, "held"));
    CHECK(pixcache_contains_n(c, "held", 4));
    CHECK(pixcache_peek(c, "held", out));
    CHECK_EQ(pixcache_pixmap_cache_key(out), held_id);
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 'h');
    pixcache_pixmap_assign(out, none);
    st = stats(c);
    CHECK_EQ(st.live_entries, 1);
    CHECK_EQ(st.entries, 2);
    CHECK(pixcache_contains(c, "x"));

    /* find puts it back as the most recent entry (evicting x, which nobody holds). */
    CHECK(pixcache_find(c, "held", out));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_pixmap_cache_key(out), held_id);
    pixcache_pixmap_assign(out, none);
    st = stats(c);
    CHECK_EQ(st.live_entries, 0);
    CHECK_EQ(st.live_kb, 0);
    CHECK_EQ(st.entries, 2);
    CHECK_EQ(st.total_kb, 32);
    CHECK(!pixcache_contains(c, "x"));
    CHECK(pixcache_contains(c, "y"));

    /* Evicted again, then the caller's last handle freed: gone. */
    insert_fresh(c, "z"); /* evicts y */
    insert_fresh(c, "w"); /* evicts held -> live */
    st = stats(c);
    CHECK_EQ(st.live_entries, 1);
    CHECK_EQ(st.live_kb, 16);
    pixcache_pixmap_free(held);
    CHECK(!pixcache_contains(c, "held"));
    CHECK(!pixcache_peek(c, "held", out));
    CHECK(!pixcache_find(c, "held", out));
    st = stats(c);
    CHECK_EQ(st.live_entries, 0);
    CHECK_EQ(st.live_kb, 0);
    CHECK_EQ(st.entries, 2);

    /* Generated keys: a trim or a lowered limit makes them live too. */
    PixcachePixmap *pk = tagged('k');
    PixcacheKey k = pixcache_insert_key(c, pk); /* evicts z: w k */
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_COMPLETE), 2);
    st = stats(c);
    CHECK_EQ(st.total_kb, 0);
    CHECK_EQ(st.entries, 0);
    CHECK_EQ(st.live_entries, 1);
    CHECK_EQ(st.live_kb, 16);
    CHECK(pixcache_contains_key(c, k));
    CHECK(pixcache_peek_key(c, k, out));
    CHECK_EQ(pixcache_pixmap_cache_key(out), pixcache_pixmap_cache_key(pk));
    pixcache_pixmap_assign(out, none);
    CHECK(pixcache_find_key(c, k, out)); /* back in the cache */
    pixcache_pixmap_assign(out, none);
    st = stats(c);
    CHECK_EQ(st.live_entries, 0);
    CHECK_EQ(st.entries, 1);
    CHECK_EQ(st.total_kb, 16);
    CHECK(pixcache_key_is_valid(c, k));
    pixcache_set_cache_limit(c, 0); /* lowered limit: live again */
    CHECK_EQ(stats(c).entries, 0);
    CHECK_EQ(stats(c).live_entries, 1);
    CHECK(pixcache_contains_key(c, k));
    pixcache_set_cache_limit(c, 32);

    /* remove, take, clear and an insert under its key forget a live image. */
    PixcachePixmap *again = tagged('r');
    CHECK(pixcache_insert(c, "r", again));
    CHECK(pixcache_insert(c, "t", again));
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_COMPLETE), 2);
    CHECK(pixcache_contains(c, "r"));
    CHECK(pixcache_contains(c, "t"));
    CHECK_EQ(stats(c).live_entries, 3);
    CHECK_EQ(stats(c).live_kb, 48); /* beyond the 32 KB limit: live images are outside it */
    (void)pixcache_remove(c, "r");
    CHECK(!pixcache_contains(c, "r"));
    (void)pixcache_take(c, "t", NULL);
    CHECK(!pixcache_contains(c, "t"));
    CHECK_EQ(stats(c).live_entries, 1);
    CHECK(pixcache_insert(c, "s", again));
    CHECK(pixcache_insert(c, "q", again));
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_COMPLETE), 2);
    CHECK(pixcache_contains(c, "q"));
    insert_fresh(c, "q"); /* a new entry under q: the live one is forgotten */
    CHECK(pixcache_peek(c, "q", out));
    CHECK_EQ(pixcache_pixmap_pixels(out)[0], 'q');
    CHECK(pixcache_pixmap_cache_key(out) != pixcache_pixmap_cache_key(again));
    pixcache_pixmap_assign(out, none);
    CHECK(pixcache_contains(c, "s"));
    pixcache_clear(c);
    CHECK(!pixcache_contains(c, "s"));
    CHECK(!pixcache_contains(c, "q"));
    CHECK(!pixcache_contains_key(c, k));
    CHECK_EQ(stats(c).live_entries, 0);

    /* Turning it off lets go of every live image. */
    CHECK(pixcache_insert(c, "s", again));
    k = pixcache_insert_key(c, pk);
    CHECK_EQ(pixcache_trim(c, PIXCACHE_TRIM_COMPLETE), 2);
    CHECK_EQ(stats(c).live_entries, 2);
    pixcache_set_live_images(c, false);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK(!pixcache_live_images(c));
    CHECK(!pixcache_contains(c, "s"));
    CHECK(!pixcache_contains_key(c, k));
    CHECK_EQ(stats(c).live_entries, 0);
    CHECK(pixcache_pixmap_is_detached(again));
    CHECK(pixcache_pixmap_is_detached(pk));

    pixcache_cache_free(c);
    pixcache_pixmap_free(again);
    pixcache_pixmap_free(pk);
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(none);
}

/* ---------------------------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------------------------- */

static void *find_a(void *cache) {
    CHECK(pixcache_find(cache, "a", NULL));
    return NULL;
}

static void stats_peak_and_reset(void) {
    printf("/extras/stats/removals_peak_and_reset\n");
    PixcacheCache *c = new_cache(64);
    PixcacheStats st = stats(c);
    CHECK_EQ(st.peak_kb, 0);
    CHECK_EQ(removals_total(&st), 0);
    CHECK_EQ(st.live_entries, 0);
    CHECK_EQ(st.live_kb, 0);
    CHECK_EQ(st.count_limit, 0);
    insert_fresh(c, "a");
    insert_fresh(c, "b");
    CHECK(pixcache_find(c, "a", NULL));
    CHECK(!pixcache_find(c, "zz", NULL));
    CHECK(pixcache_remove(c, "b"));
    st = stats(c);
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.misses, 1);
    CHECK_EQ(st.inserts, 2);
    CHECK_EQ(st.peak_kb, 32);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_REMOVED], 1);
    CHECK_EQ(st.entries, 1);
    CHECK_EQ(st.total_kb, 16);

    insert_fresh(c, "c");
    insert_fresh(c, "d");
    insert_fresh(c, "e"); /* 64 */
    insert_fresh(c, "f"); /* evicts a: 64 */
    CHECK(pixcache_remove(c, "c"));
    CHECK(pixcache_remove(c, "d")); /* 32 */
    CHECK_EQ(pixcache_set_count_limit(c, 10), 0);
    st = stats(c);
    CHECK_EQ(st.peak_kb, 64);
    CHECK_EQ(st.total_kb, 32);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_EVICTED], 1);
    CHECK_EQ(st.removals[PIXCACHE_REMOVAL_REMOVED], 3);

    pixcache_reset_stats(c);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    st = stats(c);
    CHECK_EQ(st.hits, 0);
    CHECK_EQ(st.misses, 0);
    CHECK_EQ(st.inserts, 0);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.refused, 0);
    CHECK_EQ(removals_total(&st), 0);
    CHECK_EQ(st.entries, 2);
    CHECK_EQ(st.total_kb, 32);
    CHECK_EQ(st.limit_kb, 64);
    CHECK_EQ(st.peak_kb, 32); /* the current total */
    CHECK_EQ(st.count_limit, 10);
    insert_fresh(c, "g"); /* 48 */
    CHECK_EQ(stats(c).peak_kb, 48);
    CHECK_EQ(stats(c).inserts, 1);

    /* Lookups counted on another thread are reset too. */
    insert_fresh(c, "a");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, find_a, c) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ(stats(c).hits, 1);
    pixcache_reset_stats(c);
    CHECK_EQ(stats(c).hits, 0);
    pixcache_cache_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

static PixcacheCache *ok_cache;

/* Runs `call` after a successful call (so a stale error cannot pass for its own), then checks
 * the last result is `code`. */
#define EXPECT(call, code)                                                                         \
    do {                                                                                           \
        (void)pixcache_total_used(ok_cache);                                                       \
        CHECK_RESULT(PIXCACHE_RESULT_OK);                                                          \
        call;                                                                                      \
        CHECK_RESULT(code);                                                                        \
    } while (0)

static void errors_null_and_invalid_utf8(void) {
    printf("/extras/errors/null_arguments_and_invalid_utf8\n");
    ok_cache = new_cache(100);
    PixcacheCache *c = ok_cache;
    PixcachePixmap *pm = rgba(1, 1);
    PixcachePixmap *out = rgba(2, 2);
    const uint64_t out_id = pixcache_pixmap_cache_key(out);
    CHECK(pixcache_insert(c, "a", pm));
    PixcacheKey k = pixcache_insert_key(c, pm);
    const int NA = PIXCACHE_RESULT_NULL_ARGUMENT;

    /* NULL cache, for every new function. */
    EXPECT(CHECK(!pixcache_set_removal_callback(NULL, record, &log_a)), NA);
    EXPECT(CHECK(!pixcache_set_removal_callback(NULL, NULL, NULL)), NA);
    EXPECT(CHECK(!pixcache_contains(NULL, "a")), NA);
    EXPECT(CHECK(!pixcache_contains_n(NULL, "a", 1)), NA);
    EXPECT(CHECK(!pixcache_contains_key(NULL, k)), NA);
    EXPECT(CHECK(!pixcache_peek(NULL, "a", out)), NA);
    EXPECT(CHECK(!pixcache_peek_n(NULL, "a", 1, out)), NA);
    EXPECT(CHECK(!pixcache_peek_key(NULL, k, out)), NA);
    EXPECT(CHECK(!pixcache_take(NULL, "a", out)), NA);
    EXPECT(CHECK(!pixcache_take_n(NULL, "a", 1, out)), NA);
    EXPECT(CHECK(!pixcache_take_key(NULL, k, out)), NA);
    EXPECT(CHECK_EQ(pixcache_set_count_limit(NULL, 3), 0), NA);
    EXPECT(CHECK_EQ(pixcache_count_limit(NULL), 0), NA);
    EXPECT(CHECK(!pixcache_insert_with_cost(NULL, "a", pm, 1)), NA);
    EXPECT(CHECK(!pixcache_insert_with_cost_n(NULL, "a", 1, pm, 1)), NA);
    EXPECT(CHECK_EQ(pixcache_insert_key_with_cost(NULL, pm, 1).id, 0), NA);
    EXPECT(CHECK_EQ(pixcache_trim(NULL, PIXCACHE_TRIM_MODERATE), 0), NA);
    EXPECT(CHECK_EQ(pixcache_trim(NULL, PIXCACHE_TRIM_COMPLETE), 0), NA);
    EXPECT(CHECK_EQ(pixcache_trim_to(NULL, 0), 0), NA);
    EXPECT(pixcache_set_live_images(NULL, true), NA);
    EXPECT(CHECK(!pixcache_live_images(NULL)), NA);
    EXPECT(pixcache_reset_stats(NULL), NA);
    PixcacheStats st;
    memset(&st, 0x5A, sizeof st);
    EXPECT(st = pixcache_stats(NULL), NA);
    CHECK_EQ(st.entries, 0);
    CHECK_EQ(st.total_kb, 0);
    CHECK_EQ(st.limit_kb, 0);
    CHECK_EQ(st.hits + st.misses + st.inserts + st.evictions + st.refused, 0);
    CHECK_EQ(removals_total(&st), 0);
    CHECK_EQ(st.peak_kb, 0);
    CHECK_EQ(st.live_kb, 0);
    CHECK_EQ(st.live_entries, 0);
    CHECK_EQ(st.count_limit, 0);

    /* NULL key and NULL pixmap. */
    EXPECT(CHECK(!pixcache_contains(c, NULL)), NA);
    EXPECT(CHECK(!pixcache_contains_n(c, NULL, 1)), NA);
    EXPECT(CHECK(!pixcache_peek(c, NULL, out)), NA);
    EXPECT(CHECK(!pixcache_peek_n(c, NULL, 1, out)), NA);
    EXPECT(CHECK(!pixcache_take(c, NULL, out)), NA);
    EXPECT(CHECK(!pixcache_take_n(c, NULL, 1, out)), NA);
    EXPECT(CHECK(!pixcache_insert_with_cost(c, NULL, pm, 1)), NA);
    EXPECT(CHECK(!pixcache_insert_with_cost_n(c, NULL, 1, pm, 1)), NA);
    EXPECT(CHECK(!pixcache_insert_with_cost(c, "n", NULL, 1)), NA);
    EXPECT(CHECK(!pixcache_insert_with_cost_n(c, "n", 1, NULL, 1)), NA);
    EXPECT(CHECK_EQ(pixcache_insert_key_with_cost(c, NULL, 1).id, 0), NA);
    CHECK_EQ(pixcache_pixmap_cache_key(out), out_id);
    CHECK(!pixcache_contains(c, "n"));
    /* A *_n key may be NULL when its length is 0: the empty string. */
    EXPECT(CHECK(!pixcache_contains_n(c, NULL, 0)), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(pixcache_insert_with_cost_n(c, NULL, 0, pm, 1)), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(pixcache_contains(c, "")), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(pixcache_peek_n(c, NULL, 0, NULL)), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(pixcache_take_n(c, NULL, 0, NULL)), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(!pixcache_contains(c, "")), PIXCACHE_RESULT_OK);

    /* Invalid UTF-8 keys: an error, and nothing changes. */
    const PixcacheStats before = stats(c);
    const int U8 = PIXCACHE_RESULT_INVALID_UTF8;
    static const char bad[] = "a\xff\xfe";
    static const char cut[] = "\xc3"; /* a truncated two-byte sequence */
    EXPECT(CHECK(!pixcache_contains(c, bad)), U8);
    EXPECT(CHECK(!pixcache_contains_n(c, cut, 1)), U8);
    EXPECT(CHECK(!pixcache_peek(c, bad, out)), U8);
    EXPECT(CHECK(!pixcache_peek_n(c, cut, 1, out)), U8);
    EXPECT(CHECK(!pixcache_take(c, bad, out)), U8);
    EXPECT(CHECK(!pixcache_take_n(c, cut, 1, out)), U8);
    EXPECT(CHECK(!pixcache_insert_with_cost(c, bad, pm, 1)), U8);
    EXPECT(CHECK(!pixcache_insert_with_cost_n(c, cut, 1, pm, 1)), U8);
    EXPECT(CHECK(!pixcache_insert_with_cost_n(c, "ok\xc3\xa9", 3, pm, 1)), U8); /* cut é */
    EXPECT(CHECK(pixcache_insert_with_cost_n(c, "ok\xc3\xa9", 4, pm, 1)), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(pixcache_take(c, "ok\xc3\xa9", NULL)), PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_pixmap_cache_key(out), out_id);
    PixcacheStats after = stats(c);
    CHECK_EQ(after.entries, before.entries);
    CHECK_EQ(after.total_kb, before.total_kb);
    CHECK_EQ(after.inserts, before.inserts + 1);
    CHECK_EQ(after.removals[PIXCACHE_REMOVAL_TAKEN], before.removals[PIXCACHE_REMOVAL_TAKEN] + 1);
    CHECK_EQ(after.hits, before.hits);
    CHECK_EQ(after.misses, before.misses);

    /* The cache is intact: a and k are still there. */
    EXPECT(CHECK(pixcache_contains(c, "a")), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(pixcache_contains_key(c, k)), PIXCACHE_RESULT_OK);
    EXPECT(CHECK_EQ(pixcache_count_limit(c), 0), PIXCACHE_RESULT_OK);
    EXPECT(CHECK(!pixcache_live_images(c)), PIXCACHE_RESULT_OK);
    pixcache_cache_free(c);
    ok_cache = NULL;
    pixcache_pixmap_free(pm);
    pixcache_pixmap_free(out);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the test's path shows even when an assertion aborts */
    const size_t baseline = pixcache_live_pixmaps();
    /* Removal callback */
    callback_every_reason_once();
    callback_other_paths();
    callback_clear_order();
    callback_may_use_the_cache();
    callback_replaced_and_stopped();
    callback_on_the_causing_thread();
    callback_keys_with_nul_and_long_keys();
    /* contains, peek, take */
    contains_and_peek_touch_nothing();
    take_hands_the_pixmap_over();
    /* Limits and costs */
    count_limit_with_the_kb_limit();
    explicit_costs();
    /* Trims */
    trim_levels();
    /* Live images */
    live_images_off_by_default();
    live_images_while_held();
    /* Statistics */
    stats_peak_and_reset();
    /* Errors */
    errors_null_and_invalid_utf8();
    /* Every pixel buffer made here was let go of (kept clones, live images, taken pixmaps). */
    CHECK_EQ(pixcache_live_pixmaps(), baseline);

    printf("%lu checks passed\n", (unsigned long)atomic_load(&checks));
    return 0;
}

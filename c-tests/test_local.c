/* test_local.c: thread-affine caches (pixcache_local_*) through the C API, as a C host uses
 * them (the Rust core is compared with the thread-safe cache by tests/local.rs).
 *
 * What it tests:
 * - values: inserted by copy, found as a pointer to the same 32 bytes, released exactly once
 *   each (evicted, removed, replaced, cleared, refused, passed with an error, left at free),
 *   never while still held;
 * - Qt's rules: least recently used first, a find refreshes, a string re-insert replaces, a
 *   refused insert (cost above the limit) leaves the old entry removed, limit 0 holds nothing,
 *   lowering the limit evicts, replace re-keys (the old key and its copies become invalid),
 *   stale keys find nothing, clear invalidates every key, the idle tick and flush_detached trim
 *   as Qt 6.4 does, statistics;
 * - keys are bytes: embedded NULs and bytes that are not UTF-8 (UTF-16 code units) are keys;
 * - one thread at a time: the thread that made the cache owns it; other threads get
 *   PIXCACHE_RESULT_WRONG_THREAD and change nothing (their values are released on their own
 *   thread), even once the owner let it go, until one claims it; pixcache_local_key_is_valid
 *   answers on every thread; free, release and claim from a non-owner are refused;
 * - a release function may call the cache (a find from inside an eviction's release works),
 *   but not free it or let it go (refused, not a use after free);
 * - errors: NULL arguments, a negative limit or cost, each with its code and a message.
 *
 * Every cache is freed; valgrind-clean.
 */
#undef NDEBUG
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pixcache.h"

static atomic_ulong checks;

#include "check.h"

#define CHECK_RESULT(code)                                                                         \
    do {                                                                                           \
        CHECK_EQ(pixcache_last_result(), (code));                                                  \
        CHECK((pixcache_last_error()[0] == '\0') == ((code) == PIXCACHE_RESULT_OK));               \
    } while (0)

/* ---- values: tagged, each release counted per tag ------------------------------------------- */

#define TAGS 4096
static atomic_int released[TAGS];
static atomic_ulong releases;
/* Set by a release function that calls the cache; see release_calls_the_cache. */
static PixcacheLocal *reenter_cache;
static atomic_int reentered_ok;
/* release_cannot_free_the_cache: a release function that tries to free the cache or let it go;
 * what those calls returned. */
static PixcacheLocal *free_from_release;
static int inner_free_result = -1, inner_free_code = -1, inner_let_go_result = -1, inner_let_go_code = -1;

static void release(PixcacheValue *value) {
    uint64_t tag = value->words[0];
    assert(tag < TAGS);
    /* The other words are what was inserted with it. */
    assert(value->words[1] == ~tag && value->words[2] == tag * 3 && value->words[3] == 7);
    atomic_fetch_add(&released[tag], 1);
    atomic_fetch_add(&releases, 1);
    if (reenter_cache) {
        (void)pixcache_local_find_n(reenter_cache, "a", 1);
        if (pixcache_last_result() == PIXCACHE_RESULT_OK) atomic_fetch_add(&reentered_ok, 1);
    }
    if (free_from_release) {
        PixcacheLocal *l = free_from_release;
        free_from_release = NULL; /* once */
        inner_free_result = pixcache_local_free(l);
        inner_free_code = pixcache_last_result();
        inner_let_go_result = pixcache_local_release_thread(l);
        inner_let_go_code = pixcache_last_result();
    }
}

static PixcacheValue value(uint64_t tag) {
    PixcacheValue v = {{tag, ~tag, tag * 3, 7}};
    return v;
}

static int times_released(uint64_t tag) { return atomic_load(&released[tag]); }

static void reset_releases(void) {
    for (int i = 0; i < TAGS; ++i) atomic_store(&released[i], 0);
    atomic_store(&releases, 0);
}

static PixcacheLocal *new_local(int32_t limit) {
    PixcacheLocal *l = pixcache_local_new(limit, release);
    CHECK(l != NULL);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    return l;
}

static bool insert(PixcacheLocal *l, const char *key, uint64_t tag, int64_t cost) {
    PixcacheValue v = value(tag);
    return pixcache_local_insert_n(l, key, strlen(key), &v, cost);
}

static PixcacheKey insert_key(PixcacheLocal *l, uint64_t tag, int64_t cost) {
    PixcacheValue v = value(tag);
    return pixcache_local_insert_key(l, &v, cost);
}

/* The tag of the value under `key`, or -1 on a miss. */
static long long found(PixcacheLocal *l, const char *key) {
    const PixcacheValue *v = pixcache_local_find_n(l, key, strlen(key));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    return v ? (long long)v->words[0] : -1;
}

static long long found_key(PixcacheLocal *l, PixcacheKey key) {
    const PixcacheValue *v = pixcache_local_find_key(l, key);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    return v ? (long long)v->words[0] : -1;
}

/* ---- Qt's rules ---------------------------------------------------------------------------- */

static void lru_order_and_releases(void) {
    printf("/local/lru_order_and_releases\n");
    reset_releases();
    PixcacheLocal *l = new_local(3);
    CHECK(insert(l, "a", 1, 1));
    CHECK(insert(l, "b", 2, 1));
    CHECK(insert(l, "c", 3, 1));
    CHECK_EQ(found(l, "a"), 1); /* a is now the most recent: b goes next */
    CHECK(insert(l, "d", 4, 1));
    CHECK_EQ(found(l, "b"), -1);
    CHECK_EQ(times_released(2), 1);
    CHECK_EQ(atomic_load(&releases), 1);
    CHECK_EQ(found(l, "a"), 1);
    CHECK_EQ(found(l, "c"), 3);
    /* The found pointer holds the 32 bytes inserted. */
    const PixcacheValue *v = pixcache_local_find_n(l, "d", 1);
    CHECK(v != NULL);
    PixcacheValue want = value(4);
    CHECK(memcmp(v, &want, sizeof want) == 0);
    /* A string re-insert replaces (the old value released), and refreshes. */
    CHECK(insert(l, "a", 5, 1));
    CHECK_EQ(times_released(1), 1);
    CHECK_EQ(found(l, "a"), 5);
    /* Costlier than the limit: refused, the old entry under the key gone, nothing evicted. */
    CHECK(!insert(l, "c", 6, 4));
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    CHECK_EQ(times_released(6), 1);
    CHECK_EQ(times_released(3), 1);
    CHECK_EQ(found(l, "c"), -1);
    CHECK_EQ(found(l, "d"), 4);
    /* Lowering the limit evicts least recently used first: a (then d, most recent, stays). */
    CHECK(pixcache_local_set_cache_limit(l, 1));
    CHECK_EQ(pixcache_local_cache_limit(l), 1);
    CHECK_EQ(found(l, "a"), -1);
    CHECK_EQ(found(l, "d"), 4);
    /* Limit 0 holds nothing. */
    CHECK(pixcache_local_set_cache_limit(l, 0));
    CHECK(!insert(l, "z", 7, 0));
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    CHECK_EQ(pixcache_local_total_used(l), 0);
    PixcacheStats s = pixcache_local_stats(l);
    CHECK_EQ(s.entries, 0);
    CHECK_EQ(s.inserts, 5);
    CHECK_EQ(s.refused, 2);
    CHECK_EQ(s.evictions, 3); /* b; a and d by the lowered limits */
    CHECK_EQ(s.hits, 7);
    CHECK_EQ(s.misses, 3);
    CHECK(pixcache_local_free(l));
    CHECK_EQ(atomic_load(&releases), 7); /* every value passed, once */
}

static void generated_keys(void) {
    printf("/local/generated_keys\n");
    reset_releases();
    PixcacheLocal *l = new_local(10);
    PixcacheKey k1 = insert_key(l, 1, 2);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    PixcacheKey k2 = insert_key(l, 2, 2);
    CHECK(k1.id != 0 && k2.id != 0 && k1.id != k2.id);
    CHECK(pixcache_local_key_is_valid(l, k1));
    CHECK_EQ(found_key(l, k1), 1);
    /* replace: a new key, the old one (and every copy) invalid, the old value released. */
    PixcacheKey copy = k1, k3 = k1;
    PixcacheValue v = value(3);
    CHECK(pixcache_local_replace(l, &k3, &v, 2));
    CHECK(k3.id != k1.id);
    CHECK(!pixcache_local_key_is_valid(l, copy));
    CHECK_EQ(found_key(l, copy), -1);
    CHECK_EQ(found_key(l, k3), 3);
    CHECK_EQ(times_released(1), 1);
    /* Replacing through a stale key: INVALID_KEY, nothing inserted, the value released. */
    PixcacheKey stale = copy;
    v = value(4);
    CHECK(!pixcache_local_replace(l, &stale, &v, 2));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_KEY);
    CHECK_EQ(stale.id, copy.id);
    CHECK_EQ(times_released(4), 1);
    /* A refused key insert returns a key that was never valid, and REFUSED. */
    PixcacheKey refused = insert_key(l, 5, 11);
    CHECK_RESULT(PIXCACHE_RESULT_REFUSED);
    CHECK(refused.id != 0);
    CHECK(!pixcache_local_key_is_valid(l, refused));
    CHECK_EQ(times_released(5), 1);
    /* Forged keys find nothing. */
    CHECK_EQ(found_key(l, (PixcacheKey){k2.id ^ 1}), -1);
    CHECK_EQ(found_key(l, (PixcacheKey){0}), -1);
    /* remove_key, then clear invalidates the rest. */
    CHECK(pixcache_local_remove_key(l, k2));
    CHECK(!pixcache_local_remove_key(l, k2));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(times_released(2), 1);
    PixcacheKey k6 = insert_key(l, 6, 1);
    CHECK(pixcache_local_clear(l));
    CHECK(!pixcache_local_key_is_valid(l, k3) && !pixcache_local_key_is_valid(l, k6));
    CHECK_EQ(times_released(3), 1);
    CHECK_EQ(times_released(6), 1);
    /* Keys from another local cache find nothing here. */
    PixcacheLocal *other = new_local(10);
    PixcacheKey foreign = insert_key(other, 7, 1);
    CHECK(!pixcache_local_key_is_valid(l, foreign));
    CHECK_EQ(found_key(l, foreign), -1);
    CHECK(pixcache_local_free(other));
    CHECK_EQ(times_released(7), 1);
    CHECK(pixcache_local_free(l));
    CHECK_EQ(atomic_load(&releases), 7);
}

static void idle_tick_and_flush(void) {
    printf("/local/idle_tick_and_flush\n");
    reset_releases();
    PixcacheLocal *l = new_local(100);
    char key[16];
    for (int i = 0; i < 8; ++i) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK(insert(l, key, (uint64_t)i, 10));
    }
    CHECK_EQ(pixcache_local_tick(l), 1); /* busy since the last tick: the LRU entry only */
    CHECK_EQ(times_released(0), 1);
    CHECK_EQ(pixcache_local_tick(l), 2); /* idle: three quarters of 70 */
    CHECK_EQ(pixcache_local_total_used(l), 50);
    CHECK_EQ(pixcache_local_flush_detached(l), 2);
    CHECK_EQ(pixcache_local_total_used(l), 30);
    CHECK_EQ(pixcache_local_stats(l).removals[PIXCACHE_REMOVAL_TRIMMED], 5);
    CHECK(pixcache_local_free(l));
    CHECK_EQ(atomic_load(&releases), 8);
}

static void keys_are_bytes(void) {
    printf("/local/keys_are_bytes\n");
    reset_releases();
    PixcacheLocal *l = new_local(100);
    const char nul[] = {'a', 0, 'b'};
    const uint16_t utf16[] = {0x0069, 0xD800, 0x0063}; /* a lone surrogate: not UTF-8 anywhere */
    PixcacheValue v1 = value(1), v2 = value(2), v3 = value(3);
    CHECK(pixcache_local_insert_n(l, nul, sizeof nul, &v1, 1));
    CHECK(pixcache_local_insert_n(l, (const char *)utf16, sizeof utf16, &v2, 1));
    CHECK(pixcache_local_insert_n(l, NULL, 0, &v3, 1)); /* the empty key */
    const PixcacheValue *f = pixcache_local_find_n(l, nul, sizeof nul);
    CHECK(f && f->words[0] == 1);
    CHECK(pixcache_local_find_n(l, nul, 1) == NULL); /* "a" is another key */
    f = pixcache_local_find_n(l, (const char *)utf16, sizeof utf16);
    CHECK(f && f->words[0] == 2);
    f = pixcache_local_find_n(l, "", 0);
    CHECK(f && f->words[0] == 3);
    CHECK(pixcache_local_remove_n(l, nul, sizeof nul));
    CHECK(!pixcache_local_remove_n(l, nul, sizeof nul));
    CHECK_EQ(times_released(1), 1);
    CHECK(pixcache_local_free(l));
    CHECK_EQ(atomic_load(&releases), 3);
}

/* ---- threads ------------------------------------------------------------------------------- */

struct elsewhere {
    PixcacheLocal *l;
    PixcacheKey valid, invalid;
    /* Results, read by the main thread after the join. */
    int find_result, insert_result, release_result, free_result, claim_result, valid_result;
    bool inserted, valid_answer, invalid_answer, found_something;
    bool take_over; /* second phase: the main thread let go of it */
    int unclaimed_result;
    long long taken_over_find;
};

static void *other_thread(void *arg) {
    struct elsewhere *e = arg;
    if (e->take_over) {
        /* Let go of, but not this thread's until it claims it. */
        (void)pixcache_local_find_n(e->l, "mine", 4);
        e->unclaimed_result = pixcache_last_result();
        CHECK(pixcache_local_claim(e->l));
        CHECK(pixcache_local_claim(e->l)); /* again: it owns it already */
        e->taken_over_find = found(e->l, "mine");
        e->inserted = insert(e->l, "theirs", 20, 1);
        CHECK(pixcache_local_release_thread(e->l));
        return NULL;
    }
    e->found_something = pixcache_local_find_n(e->l, "mine", 4) != NULL;
    e->find_result = pixcache_last_result();
    e->inserted = insert(e->l, "theirs", 10, 1);
    e->insert_result = pixcache_last_result();
    e->valid_answer = pixcache_local_key_is_valid(e->l, e->valid);
    e->valid_result = pixcache_last_result();
    e->invalid_answer = pixcache_local_key_is_valid(e->l, e->invalid);
    (void)pixcache_local_release_thread(e->l);
    e->release_result = pixcache_last_result();
    e->claim_result = pixcache_local_claim(e->l) ? 0 : pixcache_last_result();
    e->free_result = pixcache_local_free(e->l) ? 0 : pixcache_last_result();
    return NULL;
}

static void one_thread_at_a_time(void) {
    printf("/local/one_thread_at_a_time\n");
    reset_releases();
    PixcacheLocal *l = new_local(100); /* this thread owns it */
    CHECK(insert(l, "mine", 1, 1));
    struct elsewhere e = {.l = l};
    e.valid = insert_key(l, 2, 1);
    e.invalid = insert_key(l, 3, 1);
    CHECK(pixcache_local_remove_key(l, e.invalid));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, &e) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(!e.found_something);
    CHECK_EQ(e.find_result, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK(!e.inserted);
    CHECK_EQ(e.insert_result, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK_EQ(times_released(10), 1); /* the refused value went back on its own thread */
    /* Validity answers on every thread. */
    CHECK(e.valid_answer && !e.invalid_answer);
    CHECK_EQ(e.valid_result, PIXCACHE_RESULT_OK);
    CHECK_EQ(e.release_result, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK_EQ(e.claim_result, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK_EQ(e.free_result, PIXCACHE_RESULT_WRONG_THREAD);
    /* Nothing changed here. */
    CHECK_EQ(found(l, "mine"), 1);
    CHECK_EQ(found(l, "theirs"), -1);
    CHECK_EQ(pixcache_local_stats(l).misses, 1);
    /* The owner lets go: not even this thread may use it now, until a thread claims it. */
    CHECK(pixcache_local_release_thread(l));
    CHECK(pixcache_local_find_n(l, "mine", 4) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_WRONG_THREAD);
    e.take_over = true;
    CHECK(pthread_create(&t, NULL, other_thread, &e) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ(e.unclaimed_result, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK_EQ(e.taken_over_find, 1);
    CHECK(e.inserted);
    CHECK(pixcache_local_claim(l));
    CHECK_EQ(found(l, "theirs"), 20);
    CHECK(pixcache_local_free(l));
    CHECK_EQ(atomic_load(&releases), 5); /* 1, 2, 3, 10, 20 */
}

static void *hold_it(void *arg) {
    PixcacheLocal *l = arg;
    CHECK(pixcache_local_claim(l));
    CHECK(insert(l, "held", 1, 1));
    return NULL; /* exits owning it */
}

/* A cache whose owner exited without letting it go; reachable from here, so not a leak. */
PixcacheLocal *test_local_stuck; /* external: the store cannot be optimised away */

static void a_dead_owner_is_not_this_thread(void) {
    printf("/local/a_dead_owner_is_not_this_thread\n");
    reset_releases();
    PixcacheLocal *l = test_local_stuck = new_local(100);
    CHECK(pixcache_local_release_thread(l));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, hold_it, l) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    /* This (live) thread is not the owner, and cannot claim or free it. */
    CHECK(pixcache_local_find_n(l, "held", 4) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_WRONG_THREAD);
    CHECK(!pixcache_local_claim(l));
    CHECK_RESULT(PIXCACHE_RESULT_WRONG_THREAD);
    CHECK(!pixcache_local_free(l));
    CHECK_RESULT(PIXCACHE_RESULT_WRONG_THREAD);
    /* Left as it is (`test_local_stuck`): its value is released only by a thread that owns it
     * (a thread given the dead one's thread block may). */
    CHECK_EQ(times_released(1), 0);
}

/* ---- release functions that call the cache --------------------------------------------------- */

static void release_calls_the_cache(void) {
    printf("/local/release_calls_the_cache\n");
    reset_releases();
    PixcacheLocal *l = new_local(2);
    CHECK(insert(l, "a", 1, 1));
    CHECK(insert(l, "b", 2, 1));
    reenter_cache = l;
    atomic_store(&reentered_ok, 0);
    /* Evicts a; its release finds "a" (a miss, but a successful call on the same cache). */
    CHECK(insert(l, "c", 3, 1));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(atomic_load(&reentered_ok), 1);
    CHECK(pixcache_local_clear(l));
    CHECK_EQ(atomic_load(&reentered_ok), 3);
    reenter_cache = NULL;
    CHECK(pixcache_local_free(l));
    CHECK_EQ(atomic_load(&releases), 3);
}

static void release_cannot_free_the_cache(void) {
    printf("/local/release_cannot_free_the_cache\n");
    reset_releases();
    PixcacheLocal *l = new_local(100);
    CHECK(insert(l, "a", 1, 1));
    CHECK(insert(l, "b", 2, 1));
    /* From an eviction's release: refused, the cache still works. */
    free_from_release = l;
    CHECK(pixcache_local_remove_n(l, "a", 1));
    CHECK(!inner_free_result && !inner_let_go_result);
    CHECK_EQ(inner_free_code, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK_EQ(inner_let_go_code, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK_EQ(found(l, "b"), 2);
    /* From a release run by pixcache_local_free itself: refused too, and the outer free ends
     * the cache once (valgrind and ASan would see a use after free). */
    free_from_release = l;
    inner_free_result = -1;
    CHECK(pixcache_local_free(l));
    CHECK_EQ(inner_free_result, 0);
    CHECK_EQ(inner_free_code, PIXCACHE_RESULT_WRONG_THREAD);
    CHECK_EQ(atomic_load(&releases), 2);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void errors(void) {
    printf("/local/errors\n");
    reset_releases();
    CHECK(pixcache_local_new(10, NULL) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(pixcache_local_new(-1, release) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    PixcacheValue v = value(1);
    CHECK(pixcache_local_find_n(NULL, "a", 1) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_local_insert_n(NULL, "a", 1, &v, 1));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK_EQ(pixcache_local_insert_key(NULL, &v, 1).id, 0);
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK_EQ(pixcache_local_cache_limit(NULL), -1);
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK_EQ(pixcache_local_total_used(NULL), -1);
    CHECK(!pixcache_local_release_thread(NULL));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(pixcache_local_free(NULL));
    CHECK_EQ(atomic_load(&releases), 0); /* no cache, so no release function to call */

    PixcacheLocal *l = new_local(10);
    CHECK(!pixcache_local_insert_n(l, "a", 1, NULL, 1));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_local_insert_n(l, NULL, 3, &v, 1));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK_EQ(times_released(1), 1); /* the value was passed: released */
    v = value(2);
    CHECK(!pixcache_local_insert_n(l, "a", 1, &v, -1));
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "-1") != NULL);
    CHECK_EQ(times_released(2), 1);
    v = value(3);
    PixcacheKey k = insert_key(l, 4, 1);
    CHECK(!pixcache_local_replace(l, NULL, &v, 1));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK_EQ(times_released(3), 1);
    CHECK(pixcache_local_key_is_valid(l, k));
    CHECK_EQ(pixcache_local_total_used(l), 1);
    CHECK(pixcache_local_free(l));
    CHECK_EQ(atomic_load(&releases), 4);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    lru_order_and_releases();
    generated_keys();
    idle_tick_and_flush();
    keys_are_bytes();
    one_thread_at_a_time();
    release_calls_the_cache();
    release_cannot_free_the_cache();
    errors();
    a_dead_owner_is_not_this_thread(); /* last: leaves its cache (and one value) unfreed */
    printf("%lu checks passed\n", (unsigned long)atomic_load(&checks));
    return 0;
}

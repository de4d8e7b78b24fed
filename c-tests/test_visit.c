/* test_visit.c: pixcache_find_visit, pixcache_find_visit_n and pixcache_find_key_visit, through
 * the C API only.
 *
 * What it tests:
 * - a hit calls the callback exactly once, before returning true, with the caller's user_data,
 *   the cached pixmap itself (its size, its cache key: the same pixels a find would share) and,
 *   for a foreign pixmap, its user data as foreign_data (NULL for a raster pixmap); a share
 *   taken inside with pixcache_pixmap_clone outlives the call and the entry;
 * - a miss returns false without calling it and is not an error; string and generated keys,
 *   NUL-terminated and counted (with a NUL byte inside) keys; a stale key is INVALID_KEY;
 * - bad arguments (NULL cache, key or callback; a key that is not UTF-8) fail with their codes
 *   and never call the callback;
 * - a visit counts as a hit or a miss and refreshes recency exactly as pixcache_find does
 *   (which entry a later insert evicts);
 * - from inside the callback, every cache function on the same cache (find, find_visit, insert,
 *   insert_key, remove, clear, set_cache_limit, cache_limit, total_used, stats, key_is_valid)
 *   fails with PIXCACHE_RESULT_REENTRANT and changes nothing, instead of deadlocking; checked
 *   hundreds of times on a cache used by this thread alone (its first visit under the write
 *   lock, the rest through its reader slot) and while another thread hammers the same cache
 *   (shared reads, the other thread's writes); the outer call still succeeds with a clean last
 *   error;
 * - from inside the callback, another cache works normally.
 * A deadlock fails the test through alarm().
 *
 * What it does not test: callbacks that throw or longjmp (undefined behaviour, documented), a
 * callback that calls another cache whose own visit calls back into the first (may deadlock,
 * documented), and timing (how long a visit holds writers up).
 */
#undef NDEBUG
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pixcache.h"

static atomic_int checks;

#define CHECK(cond)      \
    do {                 \
        assert(cond);    \
        ++checks;        \
    } while (0)

static void expect_result(PixcacheResult code) {
    PixcacheResult got = pixcache_last_result();
    const char *msg = pixcache_last_error();
    if (got != code) fprintf(stderr, "expected result %d, got %d (\"%s\")\n", code, got, msg);
    CHECK(got == code);
    CHECK((code == PIXCACHE_RESULT_OK) == (msg[0] == '\0'));
}

/* What a callback saw. */
typedef struct {
    int calls;
    void *user_data;
    uint32_t width, height;
    uint64_t cache_key;
    void *foreign_data;
    void *user_data_of_found;
    PixcachePixmap *share; /* a clone taken inside, if asked for */
    bool take_share;
} Seen;

static void record(void *user_data, const PixcachePixmap *found, void *foreign_data) {
    Seen *seen = user_data;
    ++seen->calls;
    seen->user_data = user_data;
    seen->width = pixcache_pixmap_width(found);
    seen->height = pixcache_pixmap_height(found);
    seen->cache_key = pixcache_pixmap_cache_key(found);
    seen->foreign_data = foreign_data;
    seen->user_data_of_found = pixcache_pixmap_user_data(found);
    if (seen->take_share) seen->share = pixcache_pixmap_clone(found);
}

static int released;
static void count_release(void *token) {
    (void)token;
    ++released;
}

static void test_hit_miss_and_arguments(void) {
    printf("hit, miss and arguments\n");
    PixcacheCache *c = pixcache_cache_new(1024);
    PixcachePixmap *raster = pixcache_pixmap_new(12, 7, PIXCACHE_FORMAT_RGBA8888);
    static int token;
    PixcachePixmap *foreign = pixcache_pixmap_wrap(30, 20, 32, &token, count_release);
    CHECK(pixcache_insert(c, "raster", raster));
    CHECK(pixcache_insert(c, "foreign", foreign));
    const char counted[] = {'n', 0, 'u', 'l'};
    CHECK(pixcache_insert_n(c, counted, sizeof counted, raster));
    PixcacheKey key = pixcache_insert_key(c, foreign);
    CHECK(pixcache_key_is_valid(c, key));

    Seen seen = {0};
    CHECK(pixcache_find_visit(c, "raster", record, &seen));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(seen.calls == 1 && seen.user_data == &seen);
    CHECK(seen.width == 12 && seen.height == 7);
    CHECK(seen.cache_key == pixcache_pixmap_cache_key(raster)); /* the very pixels inserted */
    CHECK(seen.foreign_data == NULL && seen.user_data_of_found == NULL);

    memset(&seen, 0, sizeof seen);
    CHECK(pixcache_find_visit(c, "foreign", record, &seen));
    CHECK(seen.calls == 1 && seen.width == 30 && seen.height == 20);
    CHECK(seen.foreign_data == &token && seen.user_data_of_found == &token);

    memset(&seen, 0, sizeof seen);
    CHECK(pixcache_find_visit_n(c, counted, sizeof counted, record, &seen));
    CHECK(seen.calls == 1 && seen.width == 12);
    CHECK(!pixcache_find_visit_n(c, counted, 1, record, &seen)); /* "n" alone is another key */
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(seen.calls == 1);

    memset(&seen, 0, sizeof seen);
    CHECK(pixcache_find_key_visit(c, key, record, &seen));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(seen.calls == 1 && seen.foreign_data == &token);

    /* Misses: false, no call, no error. */
    memset(&seen, 0, sizeof seen);
    CHECK(!pixcache_find_visit(c, "absent", record, &seen));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(seen.calls == 0);

    /* A share taken inside outlives the call and the entry. */
    memset(&seen, 0, sizeof seen);
    seen.take_share = true;
    CHECK(pixcache_find_key_visit(c, key, record, &seen));
    CHECK(seen.share != NULL && pixcache_pixmap_user_data(seen.share) == &token);
    CHECK(pixcache_remove_key(c, key));
    CHECK(pixcache_remove(c, "foreign"));
    pixcache_pixmap_free(foreign);
    CHECK(released == 0);
    CHECK(pixcache_pixmap_width(seen.share) == 30);
    pixcache_pixmap_free(seen.share);
    CHECK(released == 1);

    /* A stale key, and bad arguments: the callback is never called. */
    memset(&seen, 0, sizeof seen);
    CHECK(!pixcache_find_key_visit(c, key, record, &seen));
    expect_result(PIXCACHE_RESULT_INVALID_KEY);
    CHECK(!pixcache_find_visit(NULL, "raster", record, &seen));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_visit(c, NULL, record, &seen));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_visit(c, "raster", NULL, &seen));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_visit_n(c, NULL, 3, record, &seen));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_key_visit(c, key, NULL, &seen));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_key_visit(NULL, key, record, &seen));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_visit(c, "bad \xff utf-8", record, &seen));
    expect_result(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(!pixcache_find_visit_n(c, "\xc3", 1, record, &seen));
    expect_result(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(seen.calls == 0);

    pixcache_pixmap_free(raster);
    pixcache_cache_free(c);
}

static void ignore(void *user_data, const PixcachePixmap *found, void *foreign_data) {
    (void)user_data;
    (void)found;
    (void)foreign_data;
}

static void test_counts_and_recency_as_find(void) {
    printf("counts and recency as pixcache_find\n");
    /* Three 1 KB entries fill a 3 KB cache; visiting the oldest saves it from the next insert. */
    PixcacheCache *c = pixcache_cache_new(3);
    PixcachePixmap *pm = pixcache_pixmap_new(10, 10, PIXCACHE_FORMAT_RGBA8888);
    CHECK(pixcache_insert(c, "a", pm) && pixcache_insert(c, "b", pm) && pixcache_insert(c, "c", pm));
    CHECK(pixcache_find_visit(c, "a", ignore, NULL));
    CHECK(pixcache_insert(c, "d", pm));
    CHECK(pixcache_find(c, "a", NULL));
    CHECK(!pixcache_find(c, "b", NULL)); /* b was the least recently used */
    /* The same with a generated key, in a 2 KB cache (most recent first: a d). */
    pixcache_set_cache_limit(c, 2);
    PixcacheKey k = pixcache_insert_key(c, pm); /* k a */
    CHECK(pixcache_insert(c, "e", pm));         /* e k */
    CHECK(pixcache_find_key_visit(c, k, ignore, NULL)); /* k e */
    CHECK(pixcache_insert(c, "f", pm));                 /* f k: e went, not the visited k */
    CHECK(pixcache_key_is_valid(c, k));
    CHECK(!pixcache_find(c, "e", NULL));

    PixcacheStats before = pixcache_stats(c);
    CHECK(pixcache_find_visit(c, "f", ignore, NULL));
    CHECK(!pixcache_find_visit(c, "zz", ignore, NULL));
    CHECK(pixcache_find_key_visit(c, k, ignore, NULL));
    PixcacheStats after = pixcache_stats(c);
    CHECK(after.hits == before.hits + 2);
    CHECK(after.misses == before.misses + 1);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

/* ---- calls from inside the callback ---------------------------------------------------------- */

enum { INNER_CALLS = 12 };

typedef struct {
    PixcacheCache *cache;
    PixcacheCache *other;
    PixcachePixmap *pm;
    PixcacheKey key;
    PixcacheResult results[INNER_CALLS];
    bool other_ok;
} Reenter;

static void reenter(void *user_data, const PixcachePixmap *found, void *foreign_data) {
    (void)found;
    (void)foreign_data;
    Reenter *r = user_data;
    PixcacheCache *c = r->cache;
    int i = 0;
    pixcache_find(c, "x", NULL);
    r->results[i++] = pixcache_last_result();
    pixcache_find_visit(c, "x", ignore, NULL);
    r->results[i++] = pixcache_last_result();
    pixcache_find_key(c, r->key, NULL);
    r->results[i++] = pixcache_last_result();
    pixcache_insert(c, "new", r->pm);
    r->results[i++] = pixcache_last_result();
    pixcache_insert_key(c, r->pm);
    r->results[i++] = pixcache_last_result();
    pixcache_remove(c, "x");
    r->results[i++] = pixcache_last_result();
    pixcache_clear(c);
    r->results[i++] = pixcache_last_result();
    pixcache_set_cache_limit(c, 1);
    r->results[i++] = pixcache_last_result();
    (void)pixcache_cache_limit(c);
    r->results[i++] = pixcache_last_result();
    (void)pixcache_total_used(c);
    r->results[i++] = pixcache_last_result();
    (void)pixcache_stats(c);
    r->results[i++] = pixcache_last_result();
    (void)pixcache_key_is_valid(c, r->key);
    r->results[i++] = pixcache_last_result();
    assert(i == INNER_CALLS);
    /* Another cache is not locked by this thread: it works. */
    r->other_ok = pixcache_insert(r->other, "y", r->pm) && pixcache_find(r->other, "y", NULL);
}

/* One visit whose callback calls the cache; every inner call must fail with REENTRANT and leave
 * the cache as it was. */
static void visit_reentering(Reenter *r, bool by_key) {
    memset(r->results, 0xff, sizeof r->results);
    r->other_ok = false;
    bool hit = by_key ? pixcache_find_key_visit(r->cache, r->key, reenter, r)
                      : pixcache_find_visit(r->cache, "x", reenter, r);
    CHECK(hit);
    expect_result(PIXCACHE_RESULT_OK);
    for (int i = 0; i < INNER_CALLS; ++i) {
        if (r->results[i] != PIXCACHE_RESULT_REENTRANT)
            fprintf(stderr, "inner call %d: result %d\n", i, (int)r->results[i]);
        CHECK(r->results[i] == PIXCACHE_RESULT_REENTRANT);
    }
    CHECK(r->other_ok);
    CHECK(pixcache_cache_limit(r->cache) == 1024);
    CHECK(pixcache_find(r->cache, "x", NULL) && !pixcache_find(r->cache, "new", NULL));
    CHECK(pixcache_key_is_valid(r->cache, r->key));
}

static atomic_bool stop;

static void *hammer(void *arg) {
    PixcacheCache *c = arg;
    PixcachePixmap *pm = pixcache_pixmap_new(4, 4, PIXCACHE_FORMAT_GRAY8);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    for (unsigned i = 0; !atomic_load(&stop); ++i) {
        char key[32];
        snprintf(key, sizeof key, "other %u", i % 64);
        if (!pixcache_find(c, key, out)) pixcache_insert(c, key, pm);
        pixcache_find(c, "x", out);
    }
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    return NULL;
}

static void test_reentrant_calls_fail(void) {
    printf("calls from inside the callback\n");
    Reenter r = {0};
    r.cache = pixcache_cache_new(1024);
    r.other = pixcache_cache_new(1024);
    r.pm = pixcache_pixmap_new(4, 4, PIXCACHE_FORMAT_GRAY8);
    CHECK(pixcache_insert(r.cache, "x", r.pm));
    r.key = pixcache_insert_key(r.cache, r.pm);

    /* This thread alone: the first visit runs under the write lock (admitting this thread's
     * reader slot), the rest through the slot. */
    for (int i = 0; i < 400; ++i) visit_reentering(&r, i % 2);

    /* With another thread using the cache at the same time: shared reads, its writes. */
    pthread_t t;
    atomic_store(&stop, false);
    CHECK(pthread_create(&t, NULL, hammer, r.cache) == 0);
    for (int i = 0; i < 400; ++i) visit_reentering(&r, i % 2);
    atomic_store(&stop, true);
    CHECK(pthread_join(t, NULL) == 0);

    /* And alone again. */
    for (int i = 0; i < 400; ++i) visit_reentering(&r, i % 2);

    pixcache_pixmap_free(r.pm);
    pixcache_cache_free(r.cache);
    pixcache_cache_free(r.other);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(120); /* a deadlock fails the test instead of hanging it */
    test_hit_miss_and_arguments();
    test_counts_and_recency_as_find();
    test_reentrant_calls_fail();
    printf("%d checks passed\n", atomic_load(&checks));
    return 0;
}

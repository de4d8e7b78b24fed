/* test_flight.c: single flight (pixcache_find_or_insert_with, pixcache_find_or_load), decoding,
 * encoding and format conversion, through the C API only.
 *
 * What it tests:
 * - 8 threads started together asking one private cache for the same 50 missing keys, each in
 *   its own order: every key is produced exactly once, every call succeeds with `out` holding
 *   that key's pixels, and the cache ends with 50 entries (50 inserts); the producer gets a null
 *   pixmap handle and may fill it by assign, or by assign then pixels_mut;
 * - a failing producer: every caller of the flight (the producer's thread and the waiters) gets
 *   false and the same result and message, which names the key; nothing is inserted; a later
 *   call with a working producer produces again and succeeds; a producer that fails because its
 *   own pixcache call failed (pixcache_pixmap_new with format 99) gets that error's code and
 *   text into the message (on the waiters too); a producer that sets no error is
 *   PRODUCER_FAILED; an error left from before the call is not taken for the producer's own
 *   (checked last, so that everything else has run if it fails);
 * - the producer's own result code reaches every caller: a producer whose pixcache_pixmap_load
 *   fails gives IO (missing file) or DECODE (garbage) with the loader's message to its caller
 *   and to waiters on other threads (one by find_or_insert_with, one by find_or_load, each
 *   holding a different error of its own); find_or_load alone gives IO / DECODE with the
 *   loader's message; a producer's pixcache_set_error sets the code and message (NULL message:
 *   the code's text; unknown code: INVALID_ARGUMENT), and a later successful call or
 *   PIXCACHE_RESULT_OK clears it (PRODUCER_FAILED);
 * - a producer may call pixcache_find_or_insert_with for another key (produced and inserted) and
 *   gets PIXCACHE_RESULT_INVALID_ARGUMENT, not a deadlock, for its own key (also through
 *   find_or_load), while the same key in another cache is produced there; the outer call then
 *   still succeeds with a clean last error;
 * - while a producer runs, another thread's find_or_insert_with, insert, find and remove of other
 *   keys of the same cache complete (the producer holds its flight open until they have);
 * - a hit does not call the producer, counts as a hit and refreshes recency as pixcache_find
 *   does, and `out` shares the cached pixels; on a miss `out` shares the inserted pixels; `out`
 *   may be NULL on a hit and on a miss; NULL cache / key / produce
 *   are NULL_ARGUMENT, a key that is not UTF-8 is INVALID_UTF8 (a find_or_load path may be any bytes), and the
 *   producer is not called for a bad argument; a pixmap too large for the cache (64x64 RGBA in a
 *   1 KB cache) is still returned in `out`, is not cached, and a later call produces again;
 * - producers that need each other's keys fail with INVALID_ARGUMENT (the message says "cycle")
 *   instead of deadlocking; a release callback that find_or_insert_with runs (the caller's `out`
 *   held a foreign pixmap's last share) may call find_or_insert_with on the same cache;
 * - pixcache_find_or_insert_with_n: a key with a NUL byte is cached whole (not cut at the NUL),
 *   a prefix is another key, the empty key works, and bad arguments produce nothing;
 * - pixcache_find_or_load: 20 PNGs written with pixcache_pixmap_save, loaded by 8 threads at
 *   once: exact RGBA8888 pixels back, each path inserted once (stats.inserts == 20), cached under
 *   its path (and a pixmap inserted under a path is found without reading a file); a missing
 *   file is IO and garbage bytes are DECODE, for all 8 threads at once (and, for a missing file,
 *   a later call once the file exists loads it); garbage without a .png name is DECODE too, a
 *   truncated PNG is DECODE (from a file and from memory); nothing failed is cached;
 * - pixcache_set_decode_limits: width, height (each bound inclusive) and allocation limits give
 *   TOO_LARGE from pixcache_pixmap_load and pixcache_find_or_load; 0 restores the defaults;
 * - pixcache_pixmap_convert between every pair of the 4 raster formats, byte-exact on known
 *   pixels (premultiplying as Qt, unpremultiplying, alpha dropped without alpha, qGray of the
 *   straight colour, grey replicated, row padding), same format shares the pixels; bad
 *   format codes, NULL and foreign pixmaps fail; pixcache_pixmap_save: PNG is straight RGBA
 *   (a premultiplied pixmap saves unpremultiplied), BMP is RGB composited over black, JPEG loads
 *   back at the right size; ".tga" and foreign are UNSUPPORTED, the null pixmap is
 *   INVALID_ARGUMENT, a missing directory is IO, NULL arguments are NULL_ARGUMENT, and a failed
 *   save leaves no file.
 * A deadlock fails the test through alarm().
 *
 * What it does not test: eviction and the LRU order (test_rules.c), other single-threaded error
 * cases (test_errors.c), foreign release timing (test_foreign.c), throughput, formats other
 * than PNG / BMP / JPEG, decoding bombs (unit tests in src/images/decode.rs), a producer that panics
 * (impossible from C), and whether a caller arriving after a failed flight finished waits or
 * produces again (timing: the test only requires that at least one caller did wait).
 */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pixcache.h"

static atomic_int checks; /* producers and worker threads check too */

/* Counts one passed check; assert() reports the failing expression. */
#define CHECK(cond)      \
    do {                 \
        assert(cond);    \
        ++checks;        \
    } while (0)

/* ---- helpers ------------------------------------------------------------------------------- */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* What the last call left: exactly `code`, with a message that is empty exactly on success. */
static void expect_result(PixcacheResult code) {
    PixcacheResult got = pixcache_last_result();
    const char *msg = pixcache_last_error();
    if (got != code) fprintf(stderr, "expected result %d, got %d (\"%s\")\n", code, got, msg);
    CHECK(got == code);
    CHECK(msg != NULL);
    CHECK((code == PIXCACHE_RESULT_OK) == (msg[0] == '\0'));
}

/* The last error, copied (it is only valid until the next call). */
typedef struct {
    int result;
    char message[512];
} Outcome;

static void capture(Outcome *o) {
    o->result = (int)pixcache_last_result();
    snprintf(o->message, sizeof o->message, "%s", pixcache_last_error());
}

static PixcachePixmap *new_pixmap(uint32_t w, uint32_t h, PixcacheFormat fmt) {
    PixcachePixmap *pm = pixcache_pixmap_new(w, h, fmt);
    CHECK(pm != NULL);
    return pm;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

/* Fills order[0..n) with a permutation of 0..n-1 that depends on `seed`. */
static void shuffle(int *order, int n, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (int i = 0; i < n; ++i) order[i] = i;
    for (int i = n - 1; i > 0; --i) {
        int j = (int)(xorshift(&s) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static bool file_exists(const char *path) {
    return access(path, F_OK) == 0;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

/* A fresh temporary directory; `dir` receives its path. */
static void make_temp_dir(char *dir, size_t size) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/pixcache-flight-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
}

/* ---- 1. eight threads, fifty keys ---------------------------------------------------------- */

#define NTHREADS 8
#define NKEYS 50

typedef struct {
    PixcacheCache *cache;
    pthread_barrier_t start;
    int produced[NKEYS]; /* producer calls per key, __atomic_fetch_add */
} Fifty;

typedef struct {
    Fifty *shared;
    int key; /* the key being asked for: the producer's user_data is this */
} FiftyAsk;

static void fifty_name(char *buf, size_t size, int key) {
    snprintf(buf, size, "flight:fifty:%02d", key);
}

/* The pixmap of key k: (k+1) x 2 RGBA, pixel (x, y) = (k, x, y, 255 - k). */
static void fifty_fill(uint8_t *px, size_t stride, int k) {
    for (uint32_t y = 0; y < 2; ++y) {
        for (uint32_t x = 0; x < (uint32_t)k + 1; ++x) {
            uint8_t *p = px + y * stride + x * 4;
            p[0] = (uint8_t)k;
            p[1] = (uint8_t)x;
            p[2] = (uint8_t)y;
            p[3] = (uint8_t)(255 - k);
        }
    }
}

static void fifty_verify(const PixcachePixmap *pm, int k) {
    CHECK(pixcache_pixmap_width(pm) == (uint32_t)k + 1);
    CHECK(pixcache_pixmap_height(pm) == 2);
    CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_RGBA8888);
    const uint8_t *px = pixcache_pixmap_pixels(pm);
    CHECK(px != NULL);
    size_t stride = pixcache_pixmap_stride(pm);
    for (uint32_t y = 0; y < 2; ++y) {
        for (uint32_t x = 0; x < (uint32_t)k + 1; ++x) {
            const uint8_t *p = px + y * stride + x * 4;
            CHECK(p[0] == (uint8_t)k && p[1] == (uint8_t)x && p[2] == (uint8_t)y &&
                  p[3] == (uint8_t)(255 - k));
        }
    }
}

static bool fifty_produce(void *user_data, PixcachePixmap *pixmap) {
    FiftyAsk *ask = user_data;
    int k = ask->key;
    __atomic_fetch_add(&ask->shared->produced[k], 1, __ATOMIC_SEQ_CST);
    CHECK(pixmap != NULL);
    CHECK(pixcache_pixmap_is_null(pixmap)); /* the handle pixcache gives is a null pixmap */
    sleep_ms(1); /* the other threads arrive while this runs */
    PixcachePixmap *tmp = new_pixmap((uint32_t)k + 1, 2, PIXCACHE_FORMAT_RGBA8888);
    if (k % 2 == 0) {
        /* Fill a temporary, then assign it to the handle. */
        fifty_fill(pixcache_pixmap_pixels_mut(tmp), pixcache_pixmap_stride(tmp), k);
        pixcache_pixmap_assign(pixmap, tmp);
        pixcache_pixmap_free(tmp);
    } else {
        /* Assign a blank one, free it, then write the handle's own pixels. */
        pixcache_pixmap_assign(pixmap, tmp);
        pixcache_pixmap_free(tmp);
        uint8_t *px = pixcache_pixmap_pixels_mut(pixmap);
        CHECK(px != NULL);
        fifty_fill(px, pixcache_pixmap_stride(pixmap), k);
    }
    return true;
}

typedef struct {
    Fifty *shared;
    int id;
} FiftyWorker;

static void *fifty_worker(void *arg) {
    FiftyWorker *w = arg;
    int order[NKEYS];
    shuffle(order, NKEYS, (uint64_t)w->id + 1);
    if (w->id == 0) { /* and one plain ascending, one descending */
        for (int i = 0; i < NKEYS; ++i) order[i] = i;
    } else if (w->id == 1) {
        for (int i = 0; i < NKEYS; ++i) order[i] = NKEYS - 1 - i;
    }
    PixcachePixmap *out = pixcache_pixmap_new_null();
    FiftyAsk ask = {w->shared, 0};
    char name[64];
    int rc = pthread_barrier_wait(&w->shared->start);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
    for (int i = 0; i < NKEYS; ++i) {
        ask.key = order[i];
        fifty_name(name, sizeof name, ask.key);
        bool ok = pixcache_find_or_insert_with(w->shared->cache, name, fifty_produce, &ask, out);
        if (!ok) fprintf(stderr, "%s failed: %s\n", name, pixcache_last_error());
        CHECK(ok);
        expect_result(PIXCACHE_RESULT_OK);
        fifty_verify(out, ask.key);
    }
    pixcache_pixmap_free(out);
    return NULL;
}

static void test_eight_threads_fifty_keys(void) {
    printf("/flight/eight_threads_fifty_keys\n");
    static Fifty f;
    memset(&f, 0, sizeof f);
    f.cache = pixcache_cache_new(1000);
    CHECK(pthread_barrier_init(&f.start, NULL, NTHREADS) == 0);
    pthread_t th[NTHREADS];
    FiftyWorker w[NTHREADS];
    for (int t = 0; t < NTHREADS; ++t) {
        w[t] = (FiftyWorker){&f, t};
        CHECK(pthread_create(&th[t], NULL, fifty_worker, &w[t]) == 0);
    }
    for (int t = 0; t < NTHREADS; ++t) CHECK(pthread_join(th[t], NULL) == 0);
    CHECK(pthread_barrier_destroy(&f.start) == 0);

    int wrong = 0;
    for (int k = 0; k < NKEYS; ++k) {
        int n = __atomic_load_n(&f.produced[k], __ATOMIC_SEQ_CST);
        if (n != 1) {
            fprintf(stderr, "key %d was produced %d times\n", k, n);
            ++wrong;
        }
    }
    CHECK(wrong == 0);
    PixcacheStats st = pixcache_stats(f.cache);
    CHECK(st.entries == NKEYS);
    CHECK(st.inserts == NKEYS);
    CHECK(st.refused == 0);
    /* Every key is cached with its pixels (a find now, not a flight). */
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char name[64];
    for (int k = 0; k < NKEYS; ++k) {
        fifty_name(name, sizeof name, k);
        CHECK(pixcache_find(f.cache, name, out));
        fifty_verify(out, k);
    }
    pixcache_pixmap_free(out);
    pixcache_cache_free(f.cache);
}

/* ---- 2. a failing producer ----------------------------------------------------------------- */

enum { FAIL_PLAIN, FAIL_OWN_CALL };

typedef struct {
    int mode;
    int calls;              /* __atomic */
    int entered;            /* threads about to call find_or_insert_with, __atomic */
    int nthreads;
    char inner_error[512];  /* FAIL_OWN_CALL: the text of the producer's failed call */
} Failing;

static _Thread_local int tl_produced; /* the producer ran on this thread */

static bool failing_produce(void *user_data, PixcachePixmap *pixmap) {
    Failing *f = user_data;
    (void)pixmap;
    tl_produced = 1;
    __atomic_fetch_add(&f->calls, 1, __ATOMIC_SEQ_CST);
    /* Let the other threads reach the flight: wait until all have entered their call (bounded),
     * then a little more. */
    for (int i = 0; i < 2000 && __atomic_load_n(&f->entered, __ATOMIC_SEQ_CST) < f->nthreads; ++i)
        sleep_ms(1);
    sleep_ms(20);
    if (f->mode == FAIL_OWN_CALL) {
        PixcachePixmap *pm = pixcache_pixmap_new(1, 1, 99);
        CHECK(pm == NULL);
        CHECK(pixcache_last_result() == PIXCACHE_RESULT_INVALID_ARGUMENT);
        snprintf(f->inner_error, sizeof f->inner_error, "%s", pixcache_last_error());
    }
    return false;
}

static bool working_produce(void *user_data, PixcachePixmap *pixmap) {
    int *calls = user_data;
    __atomic_fetch_add(calls, 1, __ATOMIC_SEQ_CST);
    PixcachePixmap *pm = new_pixmap(3, 3, PIXCACHE_FORMAT_GRAY8);
    pixcache_pixmap_pixels_mut(pm)[0] = 42;
    pixcache_pixmap_assign(pixmap, pm);
    pixcache_pixmap_free(pm);
    return true;
}

/* A producer that makes no pixcache call and fails. */
static bool silent_fail(void *user_data, PixcachePixmap *pixmap) {
    (void)pixmap;
    ++*(int *)user_data;
    return false;
}

#define NFAIL 4

typedef struct {
    PixcacheCache *cache;
    Failing *failing;
    pthread_barrier_t *start;
    const char *key;
    bool ok;
    bool produced;
    bool out_kept;
    Outcome outcome;
} FailWorker;

static void *fail_worker(void *arg) {
    FailWorker *w = arg;
    tl_produced = 0;
    PixcachePixmap *out = new_pixmap(5, 5, PIXCACHE_FORMAT_RGB888);
    uint64_t before = pixcache_pixmap_cache_key(out);
    int rc = pthread_barrier_wait(w->start);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
    __atomic_fetch_add(&w->failing->entered, 1, __ATOMIC_SEQ_CST);
    w->ok = pixcache_find_or_insert_with(w->cache, w->key, failing_produce, w->failing, out);
    capture(&w->outcome);
    w->produced = tl_produced;
    w->out_kept = pixcache_pixmap_cache_key(out) == before;
    pixcache_pixmap_free(out);
    return NULL;
}

/* Runs NFAIL threads on `key` with a failing producer in `mode` until at least one of them
 * waited for another's production (almost always the first round). */
static void run_failing_flight(PixcacheCache *cache, const char *key, int mode, Failing *f,
                               FailWorker *w) {
    for (int round = 0; round < 5; ++round) {
        memset(f, 0, sizeof *f);
        f->mode = mode;
        f->nthreads = NFAIL;
        pthread_barrier_t start;
        CHECK(pthread_barrier_init(&start, NULL, NFAIL) == 0);
        pthread_t th[NFAIL];
        for (int t = 0; t < NFAIL; ++t) {
            memset(&w[t], 0, sizeof w[t]);
            w[t].cache = cache;
            w[t].failing = f;
            w[t].start = &start;
            w[t].key = key;
            CHECK(pthread_create(&th[t], NULL, fail_worker, &w[t]) == 0);
        }
        for (int t = 0; t < NFAIL; ++t) CHECK(pthread_join(th[t], NULL) == 0);
        CHECK(pthread_barrier_destroy(&start) == 0);
        int producers = 0;
        for (int t = 0; t < NFAIL; ++t) producers += w[t].produced;
        CHECK(producers == __atomic_load_n(&f->calls, __ATOMIC_SEQ_CST));
        CHECK(producers >= 1);
        if (producers < NFAIL) return; /* someone waited */
        fprintf(stderr, "round %d: every thread produced (nobody waited); again\n", round);
    }
    CHECK(!"no thread ever waited for another's production");
}

static void check_failed_flight(PixcacheCache *cache, const char *key, const FailWorker *w) {
    for (int t = 0; t < NFAIL; ++t) {
        if (w[t].ok || w[t].outcome.result == PIXCACHE_RESULT_OK)
            fprintf(stderr, "thread %d: ok=%d result=%d \"%s\"\n", t, w[t].ok, w[t].outcome.result,
                    w[t].outcome.message);
        CHECK(!w[t].ok);
        CHECK(w[t].outcome.result != PIXCACHE_RESULT_OK);
        CHECK(w[t].outcome.message[0] != '\0');
        CHECK(strstr(w[t].outcome.message, key) != NULL); /* the message names the key */
        /* Waiters fail with the same error as the producer's own call. */
        CHECK(w[t].outcome.result == w[0].outcome.result);
        CHECK(strcmp(w[t].outcome.message, w[0].outcome.message) == 0);
        CHECK(w[t].out_kept); /* out untouched, as pixcache_find leaves it on a miss */
    }
    /* Nothing was inserted. */
    CHECK(!pixcache_find(cache, key, NULL));
    PixcacheStats st = pixcache_stats(cache);
    CHECK(st.entries == 0);
    CHECK(st.inserts == 0);
}

static void test_failing_producer(void) {
    printf("/flight/failing_producer\n");
    PixcacheCache *cache = pixcache_cache_new(1000);
    static Failing f;
    FailWorker w[NFAIL];

    /* A producer that just returns false, having set no error: PRODUCER_FAILED for all. */
    const char *key = "flight:broken";
    run_failing_flight(cache, key, FAIL_PLAIN, &f, w);
    check_failed_flight(cache, key, w);
    CHECK(w[0].outcome.result == PIXCACHE_RESULT_PRODUCER_FAILED);

    /* A later call with a working producer produces again, and succeeds. */
    int calls = 0;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_or_insert_with(cache, key, working_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(calls == 1);
    CHECK(pixcache_pixmap_width(out) == 3 && pixcache_pixmap_pixels(out)[0] == 42);
    CHECK(pixcache_find(cache, key, NULL));
    CHECK(pixcache_stats(cache).inserts == 1);
    pixcache_clear(cache);

    /* A producer that fails because one of its own pixcache calls failed: the message (the
     * producer's thread's and the waiters') includes that call's error text. */
    PixcacheCache *cache2 = pixcache_cache_new(1000);
    const char *key2 = "flight:broken-inside";
    run_failing_flight(cache2, key2, FAIL_OWN_CALL, &f, w);
    check_failed_flight(cache2, key2, w);
    CHECK(f.inner_error[0] != '\0');
    /* ... and that call's code: pixcache_pixmap_new's INVALID_ARGUMENT, on every thread. */
    CHECK(w[0].outcome.result == PIXCACHE_RESULT_INVALID_ARGUMENT);
    for (int t = 0; t < NFAIL; ++t) {
        if (!strstr(w[t].outcome.message, f.inner_error))
            fprintf(stderr, "thread %d: \"%s\" lacks the producer's error \"%s\"\n", t,
                    w[t].outcome.message, f.inner_error);
        CHECK(strstr(w[t].outcome.message, f.inner_error) != NULL);
    }
    pixcache_cache_free(cache2);

    /* Single-threaded, a producer that makes no pixcache call: the message names the key. */
    calls = 0;
    CHECK(!pixcache_find_or_insert_with(cache, "flight:silent", silent_fail, &calls, out));
    CHECK(calls == 1);
    expect_result(PIXCACHE_RESULT_PRODUCER_FAILED);
    CHECK(strstr(pixcache_last_error(), "flight:silent") != NULL);

    CHECK(pixcache_stats(cache).entries == 0);
    pixcache_pixmap_free(out);
    pixcache_cache_free(cache);
}

/* ---- 2b. an earlier error is not the producer's --------------------------------------------- */

/* Last, so that when it fails everything else has already run. The header: "the message includes
 * the producer's own last pixcache error, if it set one". A producer that made no pixcache call
 * set none, so an error left on the thread by the caller's earlier, unrelated call must not
 * appear in the message. */
static void test_stale_error_is_not_the_producers(void) {
    printf("/flight/failing_producer/stale_error_is_not_the_producers\n");
    PixcacheCache *cache = pixcache_cache_new(1000);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    int calls = 0;
    /* An error left on this thread by an earlier call is not the producer's: a producer that
     * made no pixcache call set no error, so the message must not include the stale one. */
    CHECK(pixcache_pixmap_new(1, 1, 77) == NULL); /* "77 is not ..." left as the last error */
    Outcome stale;
    capture(&stale);
    CHECK(stale.result == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(!pixcache_find_or_insert_with(cache, "flight:silent", silent_fail, &calls, out));
    CHECK(calls == 1);
    Outcome after;
    capture(&after);
    CHECK(after.result == PIXCACHE_RESULT_PRODUCER_FAILED); /* not the stale INVALID_ARGUMENT */
    CHECK(strstr(after.message, "flight:silent") != NULL);
    if (strstr(after.message, stale.message))
        fprintf(stderr,
                "BUG: a producer that made no pixcache call failed, yet the message includes "
                "the caller's earlier error: \"%s\"\n",
                after.message);
    CHECK(strstr(after.message, stale.message) == NULL);

    CHECK(pixcache_stats(cache).entries == 0);
    pixcache_pixmap_free(out);
    pixcache_cache_free(cache);
}

/* ---- 2c. the producer's own result code ---------------------------------------------------- */

/* Under valgrind or sanitizers (c_harness.rs): timing-only waits are made longer. */
static bool under_tool(void) {
    const char *v = getenv("PIXCACHE_TEST_UNDER_TOOL");
    return v && *v && strcmp(v, "0") != 0;
}

/* A producer that fails because its pixcache_pixmap_load failed: the caller and every waiter get
 * the loader's result code (IO for a missing file, DECODE for garbage), not a generic one, and
 * a message with the loader's message and the key in it. The waiters run on other threads,
 * each of which first leaves an error of its own (INVALID_ARGUMENT) on itself: what they get
 * must be the producer thread's code and message, not their own thread-local state.
 *
 * The waiters are started from inside the producer, so the flight is open when they arrive;
 * the producer fails only after both have missed (pixcache_stats) and a little longer. A waiter
 * that still came after the flight ended (timing only) would produce itself: the
 * find_or_insert_with waiter's producer records that, and the find_or_load waiter then loads
 * the file itself, giving the loader's bare message instead of the flight's; such a round is
 * run again. */
#define NIO_WAITERS 2

struct IoFlight;

typedef struct {
    struct IoFlight *flight;
    bool by_load;  /* pixcache_find_or_load; else pixcache_find_or_insert_with */
    bool ok;
    bool produced; /* its own producer ran: it did not wait */
    Outcome outcome;
} IoWaiter;

typedef struct IoFlight {
    PixcacheCache *cache;
    const char *path; /* the file the producer loads */
    const char *key;  /* the flight's key: the file's (pixcache_file_key), or the path if none */
    IoWaiter waiters[NIO_WAITERS];
    pthread_t threads[NIO_WAITERS];
    int started;
    PixcacheResult loader_result; /* what pixcache_pixmap_load left, on the producer's thread */
    char loader_error[512];
} IoFlight;

static bool late_produce(void *user_data, PixcachePixmap *pixmap) {
    (void)pixmap;
    *(bool *)user_data = true;
    return false;
}

static void *io_waiter(void *arg) {
    IoWaiter *w = arg;
    CHECK(pixcache_pixmap_new(1, 1, 77) == NULL); /* this thread's own, different, error */
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_INVALID_ARGUMENT);
    if (w->by_load)
        w->ok = pixcache_find_or_load(w->flight->cache, w->flight->path, NULL);
    else
        w->ok = pixcache_find_or_insert_with(w->flight->cache, w->flight->key, late_produce,
                                             &w->produced, NULL);
    capture(&w->outcome);
    return NULL;
}

static bool io_produce(void *user_data, PixcachePixmap *pixmap) {
    IoFlight *f = user_data;
    (void)pixmap;
    uint64_t misses = pixcache_stats(f->cache).misses;
    for (int i = 0; i < NIO_WAITERS; ++i) {
        CHECK(pthread_create(&f->threads[i], NULL, io_waiter, &f->waiters[i]) == 0);
        ++f->started;
    }
    for (int i = 0; i < 10000 && pixcache_stats(f->cache).misses < misses + NIO_WAITERS; ++i)
        sleep_ms(1);
    sleep_ms(under_tool() ? 300 : 30);
    /* The failing call comes last: any pixcache call after it would settle the error again. */
    PixcachePixmap *pm = pixcache_pixmap_load(f->path);
    CHECK(pm == NULL);
    f->loader_result = pixcache_last_result();
    snprintf(f->loader_error, sizeof f->loader_error, "%s", pixcache_last_error());
    return false;
}

static void check_io_outcome(const char *who, bool ok, const Outcome *o, const IoFlight *f,
                             PixcacheResult expected) {
    if (ok || o->result != (int)expected || !strstr(o->message, f->loader_error) ||
        !strstr(o->message, f->path))
        fprintf(stderr, "%s: ok=%d result=%d (expected %d) \"%s\"; the loader said \"%s\"\n", who,
                ok, o->result, expected, o->message, f->loader_error);
    CHECK(!ok);
    CHECK(o->result == (int)expected);
    CHECK(strstr(o->message, f->loader_error) != NULL);
    CHECK(strstr(o->message, f->path) != NULL);
}

static void run_io_flight(const char *path, PixcacheResult expected) {
    /* find_or_load's key is the file's identity: a find_or_load waiter joins a flight under that
     * key. A missing file has none (find_or_load fails before any flight): then both waiters
     * use find_or_insert_with under the path. */
    static char file_key[1200];
    const bool exists = pixcache_file_key(path, PIXCACHE_FORMAT_INVALID, file_key, sizeof file_key) > 0;
    for (int round = 0; round < 5; ++round) {
        IoFlight f;
        memset(&f, 0, sizeof f);
        f.cache = pixcache_cache_new(1000);
        f.path = path;
        f.key = exists ? file_key : path;
        for (int i = 0; i < NIO_WAITERS; ++i) {
            f.waiters[i].flight = &f;
            f.waiters[i].by_load = exists && i == 1;
        }
        /* The caller's own stale error must not matter either. */
        CHECK(pixcache_pixmap_new(1, 1, 77) == NULL);
        bool ok = pixcache_find_or_insert_with(f.cache, f.key, io_produce, &f, NULL);
        Outcome mine;
        capture(&mine);
        for (int i = 0; i < f.started; ++i) CHECK(pthread_join(f.threads[i], NULL) == 0);
        CHECK(f.started == NIO_WAITERS);
        CHECK(f.loader_result == expected);
        check_io_outcome("the producer's caller", ok, &mine, &f, expected);
        check_io_outcome("the find_or_insert_with waiter", f.waiters[0].ok, &f.waiters[0].outcome,
                         &f, expected);
        check_io_outcome(exists ? "the find_or_load waiter" : "the second waiter", f.waiters[1].ok,
                         &f.waiters[1].outcome, &f, expected);
        /* Nothing failed is cached. */
        CHECK(!pixcache_find(f.cache, f.key, NULL));
        CHECK(pixcache_stats(f.cache).inserts == 0);
        pixcache_cache_free(f.cache);
        bool waited = !f.waiters[0].produced && !f.waiters[1].produced &&
                      strcmp(f.waiters[1].outcome.message, mine.message) == 0;
        if (waited) {
            /* A waiter's outcome is the producer's caller's, to the byte. */
            CHECK(strcmp(f.waiters[0].outcome.message, mine.message) == 0);
            return;
        }
        fprintf(stderr, "round %d: a waiter came after the flight ended; again\n", round);
    }
    CHECK(!"a waiter never waited for the producer");
}

/* pixcache_set_error from a producer: its code and message are the flight's. */
typedef struct {
    int code;
    const char *message;
    bool then_succeed; /* a successful pixcache call after pixcache_set_error */
} Explicit;

static bool explicit_produce(void *user_data, PixcachePixmap *pixmap) {
    Explicit *e = user_data;
    pixcache_set_error(e->code, e->message);
    (void)pixmap;
    if (e->then_succeed) {
        (void)pixcache_stats(pixcache_global()); /* a call that succeeds clears the error */
        expect_result(PIXCACHE_RESULT_OK);
    }
    return false;
}

static void test_producer_result_codes(void) {
    printf("/flight/failing_producer/result_codes\n");
    char dir[512], missing[600], garbage[600];
    make_temp_dir(dir, sizeof dir);
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    snprintf(garbage, sizeof garbage, "%s/garbage.png", dir);
    static const char junk[] = "not an image at all, though its name says png\n";
    write_file(garbage, junk, sizeof junk - 1);

    /* Alone: a missing file is IO, a corrupt one DECODE, with the loader's message. */
    PixcacheCache *cache = pixcache_cache_new(1000);
    const char *paths[2] = {missing, garbage};
    const PixcacheResult codes[2] = {PIXCACHE_RESULT_IO, PIXCACHE_RESULT_DECODE};
    for (int i = 0; i < 2; ++i) {
        PixcachePixmap *pm = pixcache_pixmap_load(paths[i]);
        CHECK(pm == NULL);
        expect_result(codes[i]);
        char loader[512];
        snprintf(loader, sizeof loader, "%s", pixcache_last_error());
        CHECK(!pixcache_find_or_load(cache, paths[i], NULL));
        expect_result(codes[i]);
        CHECK(strstr(pixcache_last_error(), loader) != NULL);
    }

    /* With waiters on other threads, for a producer of the caller's and for find_or_load. */
    run_io_flight(missing, PIXCACHE_RESULT_IO);
    run_io_flight(garbage, PIXCACHE_RESULT_DECODE);

    /* pixcache_set_error: the producer's own code and message, with the key. */
    Explicit e = {PIXCACHE_RESULT_DECODE, "my codec rejects this file", false};
    CHECK(!pixcache_find_or_insert_with(cache, "flight:explicit", explicit_produce, &e, NULL));
    expect_result(PIXCACHE_RESULT_DECODE);
    CHECK(strstr(pixcache_last_error(), "my codec rejects this file") != NULL);
    CHECK(strstr(pixcache_last_error(), "flight:explicit") != NULL);
    /* Any code may be reported, PRODUCER_FAILED included; a NULL message is the code's text. */
    e = (Explicit){PIXCACHE_RESULT_UNSUPPORTED, NULL, false};
    CHECK(!pixcache_find_or_insert_with(cache, "flight:explicit", explicit_produce, &e, NULL));
    expect_result(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(strstr(pixcache_last_error(), pixcache_result_str(PIXCACHE_RESULT_UNSUPPORTED)) != NULL);
    /* An unknown code is the producer's mistake: INVALID_ARGUMENT, naming the number. */
    e = (Explicit){99, "never seen", false};
    CHECK(!pixcache_find_or_insert_with(cache, "flight:explicit", explicit_produce, &e, NULL));
    expect_result(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "99") != NULL);
    CHECK(strstr(pixcache_last_error(), "never seen") == NULL);
    /* It is the producer's *last* result that counts: a success after it, or OK, clears it. */
    e = (Explicit){PIXCACHE_RESULT_IO, "gone", true};
    CHECK(!pixcache_find_or_insert_with(cache, "flight:explicit", explicit_produce, &e, NULL));
    expect_result(PIXCACHE_RESULT_PRODUCER_FAILED);
    CHECK(strstr(pixcache_last_error(), "gone") == NULL);
    e = (Explicit){PIXCACHE_RESULT_OK, "fine", false};
    CHECK(!pixcache_find_or_insert_with(cache, "flight:explicit", explicit_produce, &e, NULL));
    expect_result(PIXCACHE_RESULT_PRODUCER_FAILED);
    CHECK(strstr(pixcache_last_error(), "flight:explicit") != NULL);

    CHECK(pixcache_stats(cache).entries == 0);
    pixcache_cache_free(cache);
    CHECK(unlink(garbage) == 0);
    CHECK(rmdir(dir) == 0);
}

/* ---- 3. a re-entrant producer -------------------------------------------------------------- */

typedef struct {
    PixcacheCache *cache;
    PixcacheCache *other; /* another cache: the same key there is not this flight's */
    int outer_calls, inner_calls;
    bool inner_ok;
    bool own_ok;
    Outcome own;
    uint64_t inner_key; /* cache_key of what the nested call returned */
} Reentrant;

static bool inner_produce(void *user_data, PixcachePixmap *pixmap) {
    Reentrant *r = user_data;
    ++r->inner_calls;
    PixcachePixmap *pm = new_pixmap(2, 2, PIXCACHE_FORMAT_RGBA8888);
    pixcache_pixmap_pixels_mut(pm)[0] = 11;
    pixcache_pixmap_assign(pixmap, pm);
    pixcache_pixmap_free(pm);
    return true;
}

static bool outer_produce(void *user_data, PixcachePixmap *pixmap) {
    Reentrant *r = user_data;
    ++r->outer_calls;
    PixcachePixmap *tmp = pixcache_pixmap_new_null();
    /* Another key: produced (by this thread, nested) and inserted. */
    r->inner_ok = pixcache_find_or_insert_with(r->cache, "flight:inner", inner_produce, r, tmp);
    r->inner_key = pixcache_pixmap_cache_key(tmp);
    CHECK(r->inner_ok);
    expect_result(PIXCACHE_RESULT_OK);
    /* Its own key: an error, not a deadlock, and the nested producer is not called. */
    r->own_ok = pixcache_find_or_insert_with(r->cache, "flight:outer", outer_produce, r, tmp);
    capture(&r->own);
    CHECK(pixcache_pixmap_cache_key(tmp) == r->inner_key); /* untouched by the failed call */
    /* find_or_load's key is a file's identity, never a hand-made key: a path that names no
     * file is an IO error (the flight "flight:outer" is not joined). */
    CHECK(!pixcache_find_or_load(r->cache, "flight:outer", tmp));
    expect_result(PIXCACHE_RESULT_IO);
    /* The same key in another cache is another flight: produced there. */
    CHECK(pixcache_find_or_insert_with(r->other, "flight:outer", inner_produce, r, tmp));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(r->inner_calls == 2);
    pixcache_pixmap_free(tmp);

    PixcachePixmap *pm = new_pixmap(4, 1, PIXCACHE_FORMAT_RGBA8888);
    pixcache_pixmap_pixels_mut(pm)[0] = 22;
    pixcache_pixmap_assign(pixmap, pm);
    pixcache_pixmap_free(pm);
    return true;
}

static void test_reentrant_producer(void) {
    printf("/flight/reentrant_producer\n");
    alarm(60); /* a deadlock here fails the test */
    Reentrant r;
    memset(&r, 0, sizeof r);
    r.cache = pixcache_cache_new(1000);
    r.other = pixcache_cache_new(1000);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_or_insert_with(r.cache, "flight:outer", outer_produce, &r, out));
    expect_result(PIXCACHE_RESULT_OK); /* the nested failure does not reach the caller */
    CHECK(r.outer_calls == 1);
    CHECK(r.inner_calls == 2);
    CHECK(r.inner_ok);
    CHECK(!r.own_ok);
    if (r.own.result != PIXCACHE_RESULT_INVALID_ARGUMENT)
        fprintf(stderr, "own key from its producer: %d \"%s\"\n", r.own.result, r.own.message);
    CHECK(r.own.result == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(r.own.message[0] != '\0');
    CHECK(pixcache_pixmap_width(out) == 4 && pixcache_pixmap_pixels(out)[0] == 22);

    /* Both are cached, once each. */
    PixcachePixmap *found = pixcache_pixmap_new_null();
    CHECK(pixcache_find(r.cache, "flight:inner", found));
    CHECK(pixcache_pixmap_cache_key(found) == r.inner_key);
    CHECK(pixcache_pixmap_pixels(found)[0] == 11);
    CHECK(pixcache_find(r.cache, "flight:outer", found));
    CHECK(pixcache_pixmap_cache_key(found) == pixcache_pixmap_cache_key(out));
    PixcacheStats st = pixcache_stats(r.cache);
    CHECK(st.entries == 2);
    CHECK(st.inserts == 2);

    /* Asked again, neither producer runs. */
    CHECK(pixcache_find_or_insert_with(r.cache, "flight:outer", outer_produce, &r, NULL));
    CHECK(r.outer_calls == 1 && r.inner_calls == 2);
    CHECK(pixcache_find(r.other, "flight:outer", found));
    CHECK(pixcache_pixmap_pixels(found)[0] == 11);
    CHECK(pixcache_stats(r.other).entries == 1);

    pixcache_pixmap_free(found);
    pixcache_pixmap_free(out);
    pixcache_cache_free(r.cache);
    pixcache_cache_free(r.other);
    alarm(120);
}

/* ---- 3b. a production does not block other keys --------------------------------------------- */

typedef struct {
    PixcacheCache *cache;
    int other_done;  /* __atomic: the other thread's calls on other keys all returned */
    int producing;   /* __atomic: the slow producer has started */
    int fast_calls;
} Blocking;

static bool fast_produce(void *user_data, PixcachePixmap *pixmap) {
    Blocking *b = user_data;
    ++b->fast_calls;
    PixcachePixmap *pm = new_pixmap(1, 1, PIXCACHE_FORMAT_GRAY8);
    pixcache_pixmap_assign(pixmap, pm);
    pixcache_pixmap_free(pm);
    return true;
}

/* Holds its flight open until the other thread has finished its work on other keys (at most
 * ~20 s: if that work were blocked by this flight, the flag never comes and the test fails). */
static bool slow_produce(void *user_data, PixcachePixmap *pixmap) {
    Blocking *b = user_data;
    __atomic_store_n(&b->producing, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 20000 && !__atomic_load_n(&b->other_done, __ATOMIC_SEQ_CST); ++i)
        sleep_ms(1);
    PixcachePixmap *pm = new_pixmap(2, 1, PIXCACHE_FORMAT_GRAY8);
    pixcache_pixmap_assign(pixmap, pm);
    pixcache_pixmap_free(pm);
    return true;
}

static void *other_keys_worker(void *arg) {
    Blocking *b = arg;
    while (!__atomic_load_n(&b->producing, __ATOMIC_SEQ_CST)) sleep_ms(1);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_or_insert_with(b->cache, "flight:fast", fast_produce, b, out));
    CHECK(pixcache_pixmap_width(out) == 1);
    CHECK(pixcache_insert(b->cache, "flight:plain", out));
    CHECK(pixcache_find(b->cache, "flight:plain", NULL));
    CHECK(!pixcache_find(b->cache, "flight:slow", NULL)); /* in flight: not cached yet */
    CHECK(pixcache_remove(b->cache, "flight:plain"));
    pixcache_pixmap_free(out);
    __atomic_store_n(&b->other_done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_other_keys_not_blocked(void) {
    printf("/flight/other_keys_not_blocked\n");
    Blocking b;
    memset(&b, 0, sizeof b);
    b.cache = pixcache_cache_new(1000);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_keys_worker, &b) == 0);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_or_insert_with(b.cache, "flight:slow", slow_produce, &b, out));
    CHECK(pthread_join(th, NULL) == 0);
    if (!__atomic_load_n(&b.other_done, __ATOMIC_SEQ_CST))
        fprintf(stderr, "calls on other keys did not finish while a producer ran\n");
    CHECK(__atomic_load_n(&b.other_done, __ATOMIC_SEQ_CST));
    CHECK(b.fast_calls == 1);
    CHECK(pixcache_pixmap_width(out) == 2);
    CHECK(pixcache_stats(b.cache).entries == 2); /* slow and fast */
    pixcache_pixmap_free(out);
    pixcache_cache_free(b.cache);
}

/* ---- 4. hits, NULL out, bad arguments, too large ------------------------------------------- */

static bool counting_produce(void *user_data, PixcachePixmap *pixmap) {
    int *calls = user_data;
    ++*calls;
    PixcachePixmap *pm = new_pixmap(64, 64, PIXCACHE_FORMAT_RGBA8888); /* 16 KB */
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    px[0] = 1, px[1] = 2, px[2] = 3, px[3] = 4;
    pixcache_pixmap_assign(pixmap, pm);
    pixcache_pixmap_free(pm);
    return true;
}

static void test_hit_and_arguments(void) {
    printf("/flight/hit_does_not_produce\n");
    PixcacheCache *cache = pixcache_cache_new(1000);
    int calls = 0;

    /* A hit: no production, out shares the cached pixels. */
    PixcachePixmap *cached = new_pixmap(8, 8, PIXCACHE_FORMAT_GRAY8);
    CHECK(pixcache_insert(cache, "flight:hit", cached));
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_or_insert_with(cache, "flight:hit", counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(calls == 0);
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(cached));
    CHECK(pixcache_find_or_insert_with(cache, "flight:hit", counting_produce, &calls, NULL));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(calls == 0);
    CHECK(pixcache_stats(cache).hits == 2); /* a hit "is pixcache_find" */

    /* ... including recency: in a 3 KB cache of a, b, c (1 KB each), a hit on a makes b the
     * least recently used, so inserting d evicts b. */
    PixcacheCache *three = pixcache_cache_new(3);
    PixcachePixmap *one = new_pixmap(4, 4, PIXCACHE_FORMAT_GRAY8);
    CHECK(pixcache_insert(three, "a", one));
    CHECK(pixcache_insert(three, "b", one));
    CHECK(pixcache_insert(three, "c", one));
    CHECK(pixcache_find_or_insert_with(three, "a", counting_produce, &calls, NULL));
    CHECK(calls == 0);
    CHECK(pixcache_insert(three, "d", one));
    CHECK(pixcache_find(three, "a", NULL));
    CHECK(!pixcache_find(three, "b", NULL));
    CHECK(pixcache_find(three, "c", NULL));
    pixcache_pixmap_free(one);
    pixcache_cache_free(three);

    /* A miss: out shares what was inserted. */
    CHECK(pixcache_find_or_insert_with(cache, "flight:miss", counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(calls == 1);
    CHECK(pixcache_pixmap_width(out) == 64 && pixcache_pixmap_pixels(out)[3] == 4);
    PixcachePixmap *found = pixcache_pixmap_new_null();
    CHECK(pixcache_find(cache, "flight:miss", found));
    CHECK(pixcache_pixmap_cache_key(found) == pixcache_pixmap_cache_key(out));
    pixcache_pixmap_free(found);

    /* A miss with out == NULL: produced and inserted all the same. */
    printf("/flight/null_out\n");
    CHECK(pixcache_find_or_insert_with(cache, "flight:miss-null", counting_produce, &calls, NULL));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(calls == 2);
    CHECK(pixcache_find(cache, "flight:miss-null", NULL));
    CHECK(pixcache_stats(cache).entries == 3);

    printf("/flight/bad_arguments\n");
    calls = 0;
    CHECK(!pixcache_find_or_insert_with(NULL, "flight:x", counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "cache") != NULL);
    CHECK(!pixcache_find_or_insert_with(cache, NULL, counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "key") != NULL);
    CHECK(!pixcache_find_or_insert_with(cache, "flight:x", NULL, &calls, out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "produce") != NULL);
    CHECK(!pixcache_find_or_insert_with(cache, "flight:\xff\xfe", counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(!pixcache_find_or_insert_with(cache, "\xc3", counting_produce, &calls, NULL));
    expect_result(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(calls == 0); /* no production for a bad argument */
    CHECK(pixcache_pixmap_width(out) == 64); /* out untouched */
    CHECK(!pixcache_find_or_load(NULL, "/nonexistent.png", out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_or_load(cache, NULL, out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "path") != NULL);
    /* A path need not be UTF-8: this one names no file. */
    CHECK(!pixcache_find_or_load(cache, "/nonexistent/\xff.png", out));
    expect_result(PIXCACHE_RESULT_IO);
    PixcacheStats st = pixcache_stats(cache);
    CHECK(st.entries == 3);
    CHECK(st.inserts == 3);

    printf("/flight/too_large_still_returned\n");
    PixcacheCache *tiny = pixcache_cache_new(1); /* 1 KB: a 64x64 RGBA pixmap is 16 KB */
    calls = 0;
    pixcache_pixmap_assign(out, cached); /* something else, to see it replaced */
    CHECK(pixcache_find_or_insert_with(tiny, "flight:big", counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_OK); /* too large to cache is not a failure */
    CHECK(calls == 1);
    CHECK(pixcache_pixmap_width(out) == 64 && pixcache_pixmap_height(out) == 64);
    CHECK(pixcache_pixmap_format(out) == PIXCACHE_FORMAT_RGBA8888);
    const uint8_t *px = pixcache_pixmap_pixels(out);
    CHECK(px[0] == 1 && px[1] == 2 && px[2] == 3 && px[3] == 4);
    CHECK(!pixcache_find(tiny, "flight:big", NULL));
    CHECK(pixcache_stats(tiny).entries == 0);
    CHECK(pixcache_total_used(tiny) == 0);
    /* Not cached, so the next call produces again (here with out == NULL). */
    CHECK(pixcache_find_or_insert_with(tiny, "flight:big", counting_produce, &calls, NULL));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(calls == 2);
    CHECK(pixcache_stats(tiny).entries == 0);
    pixcache_cache_free(tiny);

    pixcache_pixmap_free(out);
    pixcache_pixmap_free(cached);
    pixcache_cache_free(cache);
}

/* pixcache_find_or_insert_with_n: the key is `len` bytes, NUL bytes included. */
static void test_length_taking_key(void) {
    printf("/flight/key_with_length\n");
    PixcacheCache *cache = pixcache_cache_new(1000);
    int calls = 0;
    PixcachePixmap *out = pixcache_pixmap_new_null();
    static const char nul_key[] = {'a', '\0', 'b'};
    CHECK(pixcache_find_or_insert_with_n(cache, nul_key, sizeof nul_key, counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(calls == 1);
    CHECK(pixcache_pixmap_width(out) == 64);
    /* Cached under all three bytes, not cut at the NUL. */
    CHECK(pixcache_find_n(cache, nul_key, sizeof nul_key, NULL));
    CHECK(!pixcache_find(cache, "a", NULL));
    /* A hit through the same key does not produce again; a prefix of it is another key. */
    CHECK(pixcache_find_or_insert_with_n(cache, nul_key, sizeof nul_key, counting_produce, &calls, NULL));
    CHECK(calls == 1);
    CHECK(pixcache_find_or_insert_with_n(cache, "abc", 1, counting_produce, &calls, NULL));
    CHECK(calls == 2);
    CHECK(pixcache_find(cache, "a", NULL));
    CHECK(pixcache_stats(cache).entries == 2);
    /* The empty key is a key (as in the other _n functions, NULL with length 0 is the empty key). */
    CHECK(pixcache_find_or_insert_with_n(cache, "", 0, counting_produce, &calls, NULL));
    CHECK(calls == 3);
    CHECK(pixcache_find(cache, "", NULL));
    CHECK(pixcache_find_or_insert_with_n(cache, NULL, 0, counting_produce, &calls, NULL));
    CHECK(calls == 3);
    /* Bad arguments: no production, out untouched. */
    calls = 0;
    CHECK(!pixcache_find_or_insert_with_n(cache, NULL, 3, counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "key") != NULL);
    CHECK(!pixcache_find_or_insert_with_n(cache, "a\xff", 2, counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(!pixcache_find_or_insert_with_n(NULL, "a", 1, counting_produce, &calls, out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find_or_insert_with_n(cache, "zz", 2, NULL, &calls, out));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "produce") != NULL);
    CHECK(calls == 0);
    CHECK(pixcache_pixmap_width(out) == 64);
    CHECK(!pixcache_find(cache, "zz", NULL));
    pixcache_pixmap_free(out);
    pixcache_cache_free(cache);
}

/* Producers that need each other's keys: whichever would close the cycle of waits gets an
 * error (INVALID_ARGUMENT), so both productions fail instead of waiting forever. */
typedef struct {
    PixcacheCache *cache;
    const char *mine, *other;
    pthread_barrier_t *barrier;
    bool ok;
    PixcacheResult code;
    char message[512];
} CycleArm;

static bool cycle_leaf(void *user_data, PixcachePixmap *pm) {
    (void)user_data;
    (void)pm;
    return true;
}

static bool cycle_produce(void *user_data, PixcachePixmap *pm) {
    CycleArm *a = user_data;
    (void)pm;
    pthread_barrier_wait(a->barrier); /* both producers are running */
    return pixcache_find_or_insert_with(a->cache, a->other, cycle_leaf, NULL, NULL);
}

static void *cycle_arm(void *arg) {
    CycleArm *a = arg;
    a->ok = pixcache_find_or_insert_with(a->cache, a->mine, cycle_produce, a, NULL);
    a->code = pixcache_last_result();
    snprintf(a->message, sizeof a->message, "%s", pixcache_last_error());
    return NULL;
}

static void test_producers_in_a_cycle(void) {
    printf("/flight/producers_in_a_cycle_fail_instead_of_deadlocking\n");
    for (int round = 0; round < 20; ++round) {
        PixcacheCache *cache = pixcache_cache_new(1000);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, 2);
        CycleArm arms[2] = {{cache, "cycle:a", "cycle:b", &barrier, false, 0, ""},
                            {cache, "cycle:b", "cycle:a", &barrier, false, 0, ""}};
        pthread_t t[2];
        for (int i = 0; i < 2; ++i) pthread_create(&t[i], NULL, cycle_arm, &arms[i]);
        for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
        int said_why = 0;
        for (int i = 0; i < 2; ++i) {
            CHECK(!arms[i].ok);
            CHECK(arms[i].code == PIXCACHE_RESULT_INVALID_ARGUMENT);
            said_why += strstr(arms[i].message, "cycle") != NULL;
        }
        CHECK(said_why >= 1);
        CHECK(pixcache_stats(cache).entries == 0);
        pthread_barrier_destroy(&barrier);
        pixcache_cache_free(cache);
    }
}

/* A release callback run by find_or_insert_with (the caller's `out` held the last share of a
 * foreign pixmap, and the key turned up in the re-check made under the flights table's lock)
 * may call find_or_insert_with on the same cache: it must not run under that lock. Racy by
 * nature (another thread inserts and removes the key), so it runs for 1.5 s; a release run
 * under the lock deadlocked within well under that (alarm). */
static PixcacheCache *relock_cache;
static atomic_bool relock_stop;

static bool relock_produce(void *user_data, PixcachePixmap *pm) {
    (void)user_data;
    (void)pm;
    return true;
}

static void relock_release(void *user_data) {
    (void)user_data;
    CHECK(pixcache_find_or_insert_with(relock_cache, "relock:other", relock_produce, NULL, NULL));
    pixcache_remove(relock_cache, "relock:other");
}

static void *relock_toggler(void *arg) {
    (void)arg;
    PixcachePixmap *r = new_pixmap(1, 1, PIXCACHE_FORMAT_GRAY8);
    while (!atomic_load(&relock_stop)) {
        pixcache_insert(relock_cache, "relock:k", r);
        pixcache_remove(relock_cache, "relock:k");
    }
    pixcache_pixmap_free(r);
    return NULL;
}

static void test_release_not_under_the_flights_lock(void) {
    printf("/flight/release_not_run_under_the_flights_lock\n");
    relock_cache = pixcache_cache_new(1000);
    atomic_store(&relock_stop, false);
    pthread_t t;
    pthread_create(&t, NULL, relock_toggler, NULL);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0;; ++i) {
        if (i % 1024 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec + (now.tv_nsec - start.tv_nsec) / 1e9 > 1.5) break;
        }
        PixcachePixmap *out = pixcache_pixmap_wrap(1, 1, 32, NULL, relock_release);
        CHECK(pixcache_find_or_insert_with(relock_cache, "relock:k", relock_produce, NULL, out));
        pixcache_pixmap_free(out);
        pixcache_remove(relock_cache, "relock:k");
    }
    atomic_store(&relock_stop, true);
    pthread_join(t, NULL);
    pixcache_cache_free(relock_cache);
}

/* ---- 5. find_or_load ----------------------------------------------------------------------- */

#define NFILES 20

/* Image i: (2 + i % 5) x (1 + i / 5) RGBA8888, every one with some non-opaque pixel (alpha
 * cycles through 255, 170, 85, 0, transparent pixels keep their colour). */
static uint32_t file_w(int i) { return 2 + (uint32_t)i % 5; }
static uint32_t file_h(int i) { return 1 + (uint32_t)i / 5; }

static void file_pixel(int i, uint32_t x, uint32_t y, uint8_t p[4]) {
    p[0] = (uint8_t)(i * 12 + x * 3);
    p[1] = (uint8_t)(x * 40 + y);
    p[2] = (uint8_t)(y * 50 + (uint32_t)i);
    p[3] = (uint8_t)(255 - ((x * 7 + y * 11 + (uint32_t)i) % 4) * 85);
}

static PixcachePixmap *file_pixmap(int i) {
    PixcachePixmap *pm = new_pixmap(file_w(i), file_h(i), PIXCACHE_FORMAT_RGBA8888);
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    size_t stride = pixcache_pixmap_stride(pm);
    for (uint32_t y = 0; y < file_h(i); ++y)
        for (uint32_t x = 0; x < file_w(i); ++x) file_pixel(i, x, y, px + y * stride + x * 4);
    return pm;
}

static void file_verify(const PixcachePixmap *pm, int i) {
    CHECK(pixcache_pixmap_width(pm) == file_w(i));
    CHECK(pixcache_pixmap_height(pm) == file_h(i));
    CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_RGBA8888);
    const uint8_t *px = pixcache_pixmap_pixels(pm);
    CHECK(px != NULL);
    size_t stride = pixcache_pixmap_stride(pm);
    for (uint32_t y = 0; y < file_h(i); ++y) {
        for (uint32_t x = 0; x < file_w(i); ++x) {
            uint8_t want[4];
            file_pixel(i, x, y, want);
            CHECK(memcmp(px + y * stride + x * 4, want, 4) == 0);
        }
    }
}

typedef struct {
    PixcacheCache *cache;
    pthread_barrier_t *start;
    char (*paths)[600];
    const char *missing, *garbage; /* fail for every thread: IO, DECODE */
    int id;
} LoadWorker;

static void *load_worker(void *arg) {
    LoadWorker *w = arg;
    int order[NFILES];
    shuffle(order, NFILES, (uint64_t)w->id + 100);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    int rc = pthread_barrier_wait(w->start);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD);
    for (int n = 0; n < NFILES; ++n) {
        int i = order[n];
        if (n == w->id) {
            CHECK(!pixcache_find_or_load(w->cache, w->missing, out));
            expect_result(PIXCACHE_RESULT_IO);
            CHECK(!pixcache_find_or_load(w->cache, w->garbage, NULL));
            expect_result(PIXCACHE_RESULT_DECODE);
        }
        bool ok = pixcache_find_or_load(w->cache, w->paths[i], out);
        if (!ok) fprintf(stderr, "%s: %s\n", w->paths[i], pixcache_last_error());
        CHECK(ok);
        expect_result(PIXCACHE_RESULT_OK);
        file_verify(out, i);
    }
    pixcache_pixmap_free(out);
    return NULL;
}

static void test_find_or_load(void) {
    printf("/flight/find_or_load\n");
    char dir[512];
    make_temp_dir(dir, sizeof dir);
    static char paths[NFILES][600];
    for (int i = 0; i < NFILES; ++i) {
        snprintf(paths[i], sizeof paths[i], "%s/image-%02d.png", dir, i);
        PixcachePixmap *pm = file_pixmap(i);
        CHECK(pixcache_pixmap_save(pm, paths[i]));
        expect_result(PIXCACHE_RESULT_OK);
        pixcache_pixmap_free(pm);
        CHECK(file_exists(paths[i]));
    }

    char missing[600], garbage[600], garbage_noext[600], truncated[600];
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    snprintf(garbage, sizeof garbage, "%s/garbage.png", dir);
    snprintf(garbage_noext, sizeof garbage_noext, "%s/garbage", dir);
    snprintf(truncated, sizeof truncated, "%s/truncated.png", dir);
    static const char junk[] = "this is not an image, just some bytes in a file\n";
    write_file(garbage, junk, sizeof junk - 1);
    write_file(garbage_noext, junk, sizeof junk - 1);

    PixcacheCache *cache = pixcache_cache_new(1000);
    pthread_barrier_t start;
    CHECK(pthread_barrier_init(&start, NULL, NTHREADS) == 0);
    pthread_t th[NTHREADS];
    LoadWorker w[NTHREADS];
    for (int t = 0; t < NTHREADS; ++t) {
        w[t] = (LoadWorker){cache, &start, paths, missing, garbage, t};
        CHECK(pthread_create(&th[t], NULL, load_worker, &w[t]) == 0);
    }
    for (int t = 0; t < NTHREADS; ++t) CHECK(pthread_join(th[t], NULL) == 0);
    CHECK(pthread_barrier_destroy(&start) == 0);

    PixcacheStats st = pixcache_stats(cache);
    if (st.inserts != NFILES) fprintf(stderr, "inserts: %llu\n", (unsigned long long)st.inserts);
    CHECK(st.inserts == NFILES); /* each file decoded and inserted once */
    CHECK(st.entries == NFILES);
    /* Cached under the file's key (its absolute path, size and time), not the path. */
    PixcachePixmap *out = pixcache_pixmap_new_null();
    char key[1200];
    for (int i = 0; i < NFILES; ++i) {
        CHECK(!pixcache_find(cache, paths[i], NULL));
        size_t n = pixcache_file_key(paths[i], PIXCACHE_FORMAT_INVALID, key, sizeof key);
        CHECK(n > strlen(paths[i]) && n < sizeof key && strlen(key) == n);
        CHECK(strstr(key, paths[i]) != NULL);
        CHECK(pixcache_file_key(paths[i], PIXCACHE_FORMAT_INVALID, NULL, 0) == n);
        CHECK(pixcache_find(cache, key, out));
        file_verify(out, i);
    }

    /* A missing file: IO, nothing cached; once the file exists, a later call loads it. */
    printf("/flight/find_or_load/errors\n");
    CHECK(!pixcache_find_or_load(cache, missing, out));
    expect_result(PIXCACHE_RESULT_IO);
    CHECK(pixcache_file_key(missing, PIXCACHE_FORMAT_INVALID, key, sizeof key) == 0);
    expect_result(PIXCACHE_RESULT_IO);
    CHECK(pixcache_pixmap_width(out) == file_w(NFILES - 1)); /* out untouched */
    PixcachePixmap *pm = file_pixmap(3);
    CHECK(pixcache_pixmap_save(pm, missing));
    pixcache_pixmap_free(pm);
    CHECK(pixcache_find_or_load(cache, missing, out));
    expect_result(PIXCACHE_RESULT_OK);
    file_verify(out, 3);
    CHECK(pixcache_file_key(missing, PIXCACHE_FORMAT_INVALID, key, sizeof key) > 0);
    CHECK(pixcache_find(cache, key, NULL));

    /* Edited (another image, another size): loaded again, not found stale. */
    pm = file_pixmap(5);
    CHECK(pixcache_pixmap_save(pm, missing));
    pixcache_pixmap_free(pm);
    CHECK(pixcache_find_or_load(cache, missing, out));
    file_verify(out, 5);
    CHECK(pixcache_find(cache, key, NULL)); /* the old entry, under the old identity */
    char key2[1200];
    CHECK(pixcache_file_key(missing, PIXCACHE_FORMAT_INVALID, key2, sizeof key2) > 0);
    CHECK(strcmp(key, key2) != 0);
    CHECK(pixcache_remove(cache, key)); /* a caller can drop the stale one by its key */

    /* In a named format: another entry, in that format. */
    CHECK(pixcache_find_or_load_as(cache, missing, PIXCACHE_FORMAT_GRAY8, out));
    CHECK(pixcache_pixmap_format(out) == PIXCACHE_FORMAT_GRAY8);
    CHECK(pixcache_file_key(missing, PIXCACHE_FORMAT_GRAY8, key, sizeof key) > 0);
    CHECK(strcmp(key, key2) != 0 && pixcache_find(cache, key, NULL));
    CHECK(pixcache_remove(cache, key));
    CHECK(!pixcache_find_or_load_as(cache, missing, 999, out));
    expect_result(PIXCACHE_RESULT_INVALID_ARGUMENT);
    /* A key cut to fit a small buffer, as snprintf. */
    char small[8];
    size_t full = pixcache_file_key(missing, PIXCACHE_FORMAT_INVALID, small, sizeof small);
    CHECK(full > sizeof small && strlen(small) == sizeof small - 1);
    CHECK(pixcache_file_key(missing, PIXCACHE_FORMAT_INVALID, NULL, 4) == 0);
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);

    /* A file whose name is not UTF-8 loads, under a key of its own. */
    char odd[600];
    snprintf(odd, sizeof odd, "%s/odd-\xfe\xff.png", dir);
    pm = file_pixmap(4);
    CHECK(pixcache_pixmap_save(pm, odd));
    pixcache_pixmap_free(pm);
    CHECK(pixcache_find_or_load(cache, odd, out));
    expect_result(PIXCACHE_RESULT_OK);
    file_verify(out, 4);
    CHECK(pixcache_file_key(odd, PIXCACHE_FORMAT_INVALID, key, sizeof key) > 0);
    CHECK(strstr(key, "%FE%FF") != NULL && pixcache_find(cache, key, NULL));
    CHECK(pixcache_remove(cache, key));
    CHECK(unlink(odd) == 0);

    /* Garbage bytes: DECODE, with or without a .png name. */
    CHECK(!pixcache_find_or_load(cache, garbage, out));
    expect_result(PIXCACHE_RESULT_DECODE);
    CHECK(!pixcache_find_or_load(cache, garbage_noext, out));
    expect_result(PIXCACHE_RESULT_DECODE);
    CHECK(pixcache_pixmap_load(garbage) == NULL);
    expect_result(PIXCACHE_RESULT_DECODE);

    /* A truncated PNG (the first half of a real one) fails too. */
    FILE *f = fopen(paths[NFILES - 1], "rb");
    CHECK(f != NULL);
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    CHECK(fclose(f) == 0);
    CHECK(len > 40 && len < sizeof buf);
    write_file(truncated, buf, len / 2);
    CHECK(!pixcache_find_or_load(cache, truncated, out));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_DECODE); /* the bytes are wrong, not the reading */
    CHECK(pixcache_last_error()[0] != '\0');
    PixcachePixmap *none = pixcache_pixmap_load(truncated);
    CHECK(none == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_DECODE);
    none = pixcache_pixmap_load_from_memory(buf, 20); /* a PNG signature and a cut header */
    CHECK(none == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_DECODE);

    /* What is cached under a file's key is found without decoding the file. */
    PixcachePixmap *placed = new_pixmap(7, 7, PIXCACHE_FORMAT_GRAY8);
    CHECK(pixcache_file_key(paths[0], PIXCACHE_FORMAT_INVALID, key, sizeof key) > 0);
    CHECK(pixcache_insert(cache, key, placed));
    CHECK(pixcache_find_or_load(cache, paths[0], out));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(placed));
    CHECK(pixcache_remove(cache, key));
    pixcache_pixmap_free(placed);

    /* None of the failures was cached. */
    CHECK(!pixcache_find(cache, garbage, NULL));
    CHECK(!pixcache_find(cache, garbage_noext, NULL));
    CHECK(!pixcache_find(cache, truncated, NULL));
    st = pixcache_stats(cache);
    /* The files, the edited one under its new identity; image 0's entry went with the placed
     * one that replaced it. */
    CHECK(st.entries == NFILES);
    /* + missing, its edit, its GRAY8 form, the odd name, the placed one */
    CHECK(st.inserts == NFILES + 5);

    pixcache_pixmap_free(out);
    pixcache_cache_free(cache);
    for (int i = 0; i < NFILES; ++i) CHECK(unlink(paths[i]) == 0);
    CHECK(unlink(missing) == 0);
    CHECK(unlink(garbage) == 0);
    CHECK(unlink(garbage_noext) == 0);
    CHECK(unlink(truncated) == 0);
    CHECK(rmdir(dir) == 0);
}

/* ---- 6. decode limits ---------------------------------------------------------------------- */

static void test_decode_limits(void) {
    printf("/flight/decode_limits\n");
    char dir[512], path[600];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/sixteen.png", dir);
    PixcachePixmap *pm = new_pixmap(16, 16, PIXCACHE_FORMAT_RGBA8888);
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    for (size_t i = 0; i < 16 * 16 * 4; ++i) px[i] = (uint8_t)(i * 7);
    CHECK(pixcache_pixmap_save(pm, path));

    PixcachePixmap *loaded = pixcache_pixmap_load(path); /* defaults: loads */
    CHECK(loaded != NULL);
    CHECK(pixcache_pixmap_width(loaded) == 16);
    pixcache_pixmap_free(loaded);

    PixcacheCache *cache = pixcache_cache_new(1000);
    pixcache_set_decode_limits(8, 8, 0);
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(pixcache_pixmap_load(path) == NULL);
    expect_result(PIXCACHE_RESULT_TOO_LARGE);
    CHECK(pixcache_pixmap_load_as(path, PIXCACHE_FORMAT_GRAY8) == NULL);
    expect_result(PIXCACHE_RESULT_TOO_LARGE);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(!pixcache_find_or_load(cache, path, out));
    expect_result(PIXCACHE_RESULT_TOO_LARGE);
    CHECK(pixcache_pixmap_is_null(out));
    CHECK(pixcache_stats(cache).entries == 0);

    /* Width alone, height alone (0 restores that one's default), and the bound is inclusive. */
    pixcache_set_decode_limits(8, 0, 0);
    CHECK(pixcache_pixmap_load(path) == NULL);
    expect_result(PIXCACHE_RESULT_TOO_LARGE);
    pixcache_set_decode_limits(0, 15, 0);
    CHECK(pixcache_pixmap_load(path) == NULL);
    expect_result(PIXCACHE_RESULT_TOO_LARGE);
    pixcache_set_decode_limits(16, 16, 0);
    loaded = pixcache_pixmap_load(path);
    if (!loaded) fprintf(stderr, "16x16 under 16x16 limits: %s\n", pixcache_last_error());
    CHECK(loaded != NULL);
    pixcache_pixmap_free(loaded);

    /* The allocation limit: 16 x 16 RGBA is 1024 bytes of pixels. */
    pixcache_set_decode_limits(0, 0, 512);
    loaded = pixcache_pixmap_load(path);
    if (loaded) fprintf(stderr, "a 1024-byte image decoded under a 512-byte allocation limit\n");
    CHECK(loaded == NULL);
    expect_result(PIXCACHE_RESULT_TOO_LARGE);

    /* 0, 0, 0 restores the defaults: it loads, and find_or_load produces again. */
    pixcache_set_decode_limits(0, 0, 0);
    expect_result(PIXCACHE_RESULT_OK);
    loaded = pixcache_pixmap_load(path);
    CHECK(loaded != NULL);
    CHECK(pixcache_pixmap_width(loaded) == 16 && pixcache_pixmap_height(loaded) == 16);
    CHECK(memcmp(pixcache_pixmap_pixels(loaded), pixcache_pixmap_pixels(pm), 16 * 16 * 4) == 0);
    pixcache_pixmap_free(loaded);
    CHECK(pixcache_find_or_load(cache, path, out));
    expect_result(PIXCACHE_RESULT_OK);
    CHECK(pixcache_pixmap_width(out) == 16);
    CHECK(pixcache_stats(cache).entries == 1);

    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(cache);
    CHECK(unlink(path) == 0);
    CHECK(rmdir(dir) == 0);
}

/* ---- 7. convert and save ------------------------------------------------------------------- */

/* A 3 x 2 source, row 0 = P0 P1 P2, row 1 = P3 P0 P1, given as straight RGBA:
 * P0 opaque red, P1 half-transparent green, P2 fully transparent with a colour, P3 opaque. */
static const uint8_t SRC[6][4] = {
    {255, 0, 0, 255}, {0, 255, 0, 128}, {10, 20, 30, 0},
    {200, 100, 50, 255}, {255, 0, 0, 255}, {0, 255, 0, 128},
};

/* What each format holds of SRC, read back as straight RGBA (by the header's rules): */
static const uint8_t AS_STRAIGHT[5][6][4] = {
    [PIXCACHE_FORMAT_RGBA8888] = {{255, 0, 0, 255}, {0, 255, 0, 128}, {10, 20, 30, 0},
                                  {200, 100, 50, 255}, {255, 0, 0, 255}, {0, 255, 0, 128}},
    /* premultiplied (0,128,0,128) unpremultiplies to (0,255,0,128); transparent becomes 0 */
    [PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED] = {{255, 0, 0, 255}, {0, 255, 0, 128},
                                                {0, 0, 0, 0}, {200, 100, 50, 255},
                                                {255, 0, 0, 255}, {0, 255, 0, 128}},
    /* alpha dropped (not composited over black), as Qt's ARGB32 -> RGB32 */
    [PIXCACHE_FORMAT_RGB888] = {{255, 0, 0, 255}, {0, 255, 0, 255}, {10, 20, 30, 255},
                                {200, 100, 50, 255}, {255, 0, 0, 255}, {0, 255, 0, 255}},
    /* qGray of the straight colour: 255*11/32 = 87, 255*16/32 = 127,
     * (10*11 + 20*16 + 30*5)/32 = 18, (200*11 + 100*16 + 50*5)/32 = 126 */
    [PIXCACHE_FORMAT_GRAY8] = {{87, 87, 87, 255}, {127, 127, 127, 255}, {18, 18, 18, 255},
                               {126, 126, 126, 255}, {87, 87, 87, 255}, {127, 127, 127, 255}},
};

/* SRC composited over black (what saving to BMP writes), as opaque straight RGBA. */
static const uint8_t OVER_BLACK[6][4] = {
    {255, 0, 0, 255}, {0, 128, 0, 255}, {0, 0, 0, 255},
    {200, 100, 50, 255}, {255, 0, 0, 255}, {0, 128, 0, 255},
};

static const uint32_t BPP[5] = {0, 4, 4, 3, 1};

static uint8_t premul(uint8_t c, uint8_t a) {
    unsigned t = (unsigned)c * a; /* Qt's qPremultiply */
    return (uint8_t)((t + (t >> 8) + 0x80) >> 8);
}

/* Straight RGBA written as one pixel of `fmt`. */
static void encode_pixel(PixcacheFormat fmt, const uint8_t s[4], uint8_t *out) {
    switch (fmt) {
    case PIXCACHE_FORMAT_RGBA8888:
        memcpy(out, s, 4);
        break;
    case PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED:
        out[0] = premul(s[2], s[3]);
        out[1] = premul(s[1], s[3]);
        out[2] = premul(s[0], s[3]);
        out[3] = s[3];
        break;
    case PIXCACHE_FORMAT_RGB888: /* alpha dropped */
        memcpy(out, s, 3);
        break;
    case PIXCACHE_FORMAT_GRAY8:
        out[0] = (uint8_t)((s[0] * 11 + s[1] * 16 + s[2] * 5) / 32);
        break;
    default:
        CHECK(!"not a raster format");
    }
}

/* The pixels of a 3 x 2 pixmap equal `want` (straight RGBA per pixel) encoded as its format. */
static void check_pixels(const PixcachePixmap *pm, PixcacheFormat fmt, const uint8_t want[6][4],
                         const char *what) {
    CHECK(pixcache_pixmap_width(pm) == 3 && pixcache_pixmap_height(pm) == 2);
    CHECK(pixcache_pixmap_format(pm) == fmt);
    size_t stride = pixcache_pixmap_stride(pm);
    CHECK(stride == ((3 * BPP[fmt] + 3) & ~3u)); /* rows padded to 4 bytes */
    const uint8_t *px = pixcache_pixmap_pixels(pm);
    CHECK(px != NULL);
    for (int i = 0; i < 6; ++i) {
        uint8_t exp[4] = {0};
        encode_pixel(fmt, want[i], exp);
        const uint8_t *got = px + (size_t)(i / 3) * stride + (size_t)(i % 3) * BPP[fmt];
        if (memcmp(got, exp, BPP[fmt]) != 0) {
            fprintf(stderr, "%s: pixel %d is", what, i);
            for (uint32_t b = 0; b < BPP[fmt]; ++b) fprintf(stderr, " %u", got[b]);
            fprintf(stderr, ", expected");
            for (uint32_t b = 0; b < BPP[fmt]; ++b) fprintf(stderr, " %u", exp[b]);
            fprintf(stderr, "\n");
        }
        CHECK(memcmp(got, exp, BPP[fmt]) == 0);
    }
}

static const char *FORMAT_NAME[5] = {"INVALID", "RGBA8888", "BGRA8888_PREMULTIPLIED", "RGB888",
                                     "GRAY8"};

static void test_convert(void) {
    printf("/flight/convert_and_save/convert\n");
    PixcachePixmap *src = new_pixmap(3, 2, PIXCACHE_FORMAT_RGBA8888);
    uint8_t *px = pixcache_pixmap_pixels_mut(src);
    size_t stride = pixcache_pixmap_stride(src);
    for (int i = 0; i < 6; ++i) memcpy(px + (size_t)(i / 3) * stride + (size_t)(i % 3) * 4, SRC[i], 4);

    /* The spot values the header's rules give. */
    PixcachePixmap *bgra = pixcache_pixmap_convert(src, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    CHECK(bgra != NULL);
    expect_result(PIXCACHE_RESULT_OK);
    const uint8_t *b = pixcache_pixmap_pixels(bgra);
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 255 && b[3] == 255);   /* (255,0,0,255) */
    CHECK(b[4] == 0 && b[5] == 128 && b[6] == 0 && b[7] == 128);   /* (0,255,0,128) */
    CHECK(b[8] == 0 && b[9] == 0 && b[10] == 0 && b[11] == 0);     /* transparent */
    PixcachePixmap *gray = pixcache_pixmap_convert(src, PIXCACHE_FORMAT_GRAY8);
    CHECK(gray != NULL);
    const uint8_t *g = pixcache_pixmap_pixels(gray);
    CHECK(g[0] == (255 * 11) / 32);  /* 87 */
    CHECK(g[1] == (255 * 16) / 32);  /* 127: of the straight green, alpha dropped */
    CHECK(g[2] == 18);               /* a transparent pixel keeps its colour */
    PixcachePixmap *rgb = pixcache_pixmap_convert(src, PIXCACHE_FORMAT_RGB888);
    CHECK(rgb != NULL);
    const uint8_t *r = pixcache_pixmap_pixels(rgb);
    CHECK(r[3] == 0 && r[4] == 255 && r[5] == 0); /* alpha dropped, as Qt's ARGB32 -> RGB32 */
    pixcache_pixmap_free(bgra);
    pixcache_pixmap_free(gray);
    pixcache_pixmap_free(rgb);

    /* Every pair: from each format's version of SRC to every format. */
    for (PixcacheFormat from = PIXCACHE_FORMAT_RGBA8888; from <= PIXCACHE_FORMAT_GRAY8; ++from) {
        PixcachePixmap *a = pixcache_pixmap_convert(src, from);
        CHECK(a != NULL);
        char what[96];
        snprintf(what, sizeof what, "RGBA8888 -> %s", FORMAT_NAME[from]);
        check_pixels(a, from, SRC, what);
        for (PixcacheFormat to = PIXCACHE_FORMAT_RGBA8888; to <= PIXCACHE_FORMAT_GRAY8; ++to) {
            PixcachePixmap *c = pixcache_pixmap_convert(a, to);
            if (!c) fprintf(stderr, "%s -> %s: %s\n", FORMAT_NAME[from], FORMAT_NAME[to],
                            pixcache_last_error());
            CHECK(c != NULL);
            expect_result(PIXCACHE_RESULT_OK);
            snprintf(what, sizeof what, "%s -> %s", FORMAT_NAME[from], FORMAT_NAME[to]);
            check_pixels(c, to, AS_STRAIGHT[from], what);
            /* Converting to the same format shares the pixels; otherwise they are new ones. */
            CHECK((pixcache_pixmap_cache_key(c) == pixcache_pixmap_cache_key(a)) == (from == to));
            pixcache_pixmap_free(c);
        }
        pixcache_pixmap_free(a);
    }
    CHECK(pixcache_pixmap_is_detached(src));

    /* Bad arguments. */
    CHECK(pixcache_pixmap_convert(src, 99) == NULL);
    expect_result(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(pixcache_pixmap_convert(src, PIXCACHE_FORMAT_INVALID) == NULL);
    expect_result(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(pixcache_pixmap_convert(src, PIXCACHE_FORMAT_FOREIGN) == NULL);
    expect_result(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(pixcache_pixmap_convert(NULL, PIXCACHE_FORMAT_RGBA8888) == NULL);
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    static int token;
    PixcachePixmap *foreign = pixcache_pixmap_wrap(4, 4, 32, &token, NULL);
    CHECK(foreign != NULL);
    for (PixcacheFormat to = PIXCACHE_FORMAT_RGBA8888; to <= PIXCACHE_FORMAT_GRAY8; ++to) {
        CHECK(pixcache_pixmap_convert(foreign, to) == NULL);
        expect_result(PIXCACHE_RESULT_UNSUPPORTED);
    }
    pixcache_pixmap_free(foreign);
    pixcache_pixmap_free(src);
}

static void test_save(void) {
    printf("/flight/convert_and_save/save\n");
    char dir[512], path[600];
    make_temp_dir(dir, sizeof dir);
    PixcachePixmap *src = new_pixmap(3, 2, PIXCACHE_FORMAT_RGBA8888);
    uint8_t *px = pixcache_pixmap_pixels_mut(src);
    size_t stride = pixcache_pixmap_stride(src);
    for (int i = 0; i < 6; ++i) memcpy(px + (size_t)(i / 3) * stride + (size_t)(i % 3) * 4, SRC[i], 4);

    /* PNG is straight RGBA: a premultiplied pixmap comes back unpremultiplied. */
    PixcachePixmap *bgra = pixcache_pixmap_convert(src, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    snprintf(path, sizeof path, "%s/premultiplied.png", dir);
    CHECK(pixcache_pixmap_save(bgra, path));
    expect_result(PIXCACHE_RESULT_OK);
    PixcachePixmap *back = pixcache_pixmap_load(path);
    CHECK(back != NULL);
    check_pixels(back, PIXCACHE_FORMAT_RGBA8888,
                 AS_STRAIGHT[PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED], "BGRA -> .png -> load");
    pixcache_pixmap_free(back);
    /* load_as converts what it loads. */
    back = pixcache_pixmap_load_as(path, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    CHECK(back != NULL);
    check_pixels(back, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED,
                 AS_STRAIGHT[PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED], ".png -> load_as BGRA");
    pixcache_pixmap_free(back);
    CHECK(unlink(path) == 0);
    pixcache_pixmap_free(bgra);

    /* BMP is RGB composited over black: opaque colour, so it loads as RGB888. */
    snprintf(path, sizeof path, "%s/over-black.bmp", dir);
    CHECK(pixcache_pixmap_save(src, path));
    expect_result(PIXCACHE_RESULT_OK);
    back = pixcache_pixmap_load(path);
    CHECK(back != NULL);
    check_pixels(back, PIXCACHE_FORMAT_RGB888, OVER_BLACK, "RGBA -> .bmp -> load");
    pixcache_pixmap_free(back);
    CHECK(unlink(path) == 0);

    /* JPEG is lossy: it loads back at the right size. */
    snprintf(path, sizeof path, "%s/lossy.JPG", dir);
    CHECK(pixcache_pixmap_save(src, path));
    expect_result(PIXCACHE_RESULT_OK);
    back = pixcache_pixmap_load(path);
    CHECK(back != NULL);
    CHECK(pixcache_pixmap_width(back) == 3 && pixcache_pixmap_height(back) == 2);
    pixcache_pixmap_free(back);
    CHECK(unlink(path) == 0);

    /* Failures, none of which leaves a file. */
    snprintf(path, sizeof path, "%s/image.tga", dir);
    CHECK(!pixcache_pixmap_save(src, path));
    expect_result(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(!file_exists(path));
    snprintf(path, sizeof path, "%s/no-extension", dir);
    CHECK(!pixcache_pixmap_save(src, path));
    expect_result(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(!file_exists(path));

    PixcachePixmap *null = pixcache_pixmap_new_null();
    snprintf(path, sizeof path, "%s/null.png", dir);
    CHECK(!pixcache_pixmap_save(null, path));
    expect_result(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(!file_exists(path));
    pixcache_pixmap_free(null);

    static int token;
    PixcachePixmap *foreign = pixcache_pixmap_wrap(4, 4, 32, &token, NULL);
    snprintf(path, sizeof path, "%s/foreign.png", dir);
    CHECK(!pixcache_pixmap_save(foreign, path));
    expect_result(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(!file_exists(path));
    pixcache_pixmap_free(foreign);

    snprintf(path, sizeof path, "%s/no/such/dir/image.png", dir);
    CHECK(!pixcache_pixmap_save(src, path));
    expect_result(PIXCACHE_RESULT_IO);

    /* A pixmap the format cannot hold (JPEG is at most 65,535 pixels wide): UNSUPPORTED, no
     * file, and an existing file under that name is left as it was. */
    PixcachePixmap *wide = pixcache_pixmap_new(70000, 1, PIXCACHE_FORMAT_RGB888);
    CHECK(wide != NULL);
    snprintf(path, sizeof path, "%s/wide.jpg", dir);
    CHECK(!pixcache_pixmap_save(wide, path));
    expect_result(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(!file_exists(path));
    write_file(path, "keep", 4);
    CHECK(!pixcache_pixmap_save(wide, path));
    expect_result(PIXCACHE_RESULT_UNSUPPORTED);
    FILE *kept = fopen(path, "rb");
    CHECK(kept != NULL);
    char four[8] = {0};
    CHECK(fread(four, 1, sizeof four, kept) == 4 && memcmp(four, "keep", 4) == 0);
    CHECK(fclose(kept) == 0);
    CHECK(unlink(path) == 0);
    pixcache_pixmap_free(wide);

    CHECK(!pixcache_pixmap_save(NULL, path));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_pixmap_save(src, NULL));
    expect_result(PIXCACHE_RESULT_NULL_ARGUMENT);

    pixcache_pixmap_free(src);
    CHECK(rmdir(dir) == 0);
}

static void test_convert_and_save(void) {
    printf("/flight/convert_and_save\n");
    test_convert();
    test_save();
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the test names reach the log even if an assert fires */
    alarm(120);                       /* a deadlock fails the test instead of hanging it */

    test_eight_threads_fifty_keys();
    test_failing_producer();
    test_producer_result_codes();
    test_reentrant_producer();
    test_other_keys_not_blocked();
    test_hit_and_arguments();
    test_length_taking_key();
    test_producers_in_a_cycle();
    test_release_not_under_the_flights_lock();
    test_find_or_load();
    test_decode_limits();
    test_convert_and_save();
    test_stale_error_is_not_the_producers();

    printf("%d checks passed\n", atomic_load(&checks));
    return 0;
}

/* test_errors.c: bad input through the C API gives a documented failure value, a result code and
 * a message, and never a crash.
 *
 * What it tests:
 * - NULL for every pointer argument of every function (the (ptr, len) key variants too): the
 *   documented return value, PIXCACHE_RESULT_NULL_ARGUMENT, and a message naming the argument;
 *   the NULL-tolerant frees; pixcache_cache_free(pixcache_global()) is ignored;
 * - string keys that are not UTF-8 (invalid bytes, overlong forms, surrogates, truncated
 *   sequences) are refused by find / insert / remove and their _n variants and insert nothing;
 *   _n keys with embedded NUL bytes are keys of their own;
 * - pixcache_pixmap_new with unknown formats and absurd sizes; zero sizes give the null pixmap;
 *   pixcache_pixmap_wrap with a depth above 128 fails without calling its release function;
 * - stale, forged, all-zero and other-cache keys given to find_key / remove_key / replace;
 * - refused inserts (string, key, replace) and their codes, messages and counters;
 * - the last-error rules of the header: success clears to "", the text is never NULL, the
 *   getters, pixcache_key_equal, pixcache_version and the *_free functions leave it as it was,
 *   a find miss is not an error, and errors are per thread;
 * - pixcache_result_str for every code and for unknown ones;
 * - pixcache_set_error: every code with its message; OK clears; NULL or "" gives the code's
 *   text; invalid UTF-8 keeps the code (U+FFFD in the text), newlines become spaces; unknown
 *   codes are INVALID_ARGUMENT; a success clears it, a free keeps it; it is per thread;
 * - pixel access on foreign and null pixmaps;
 * - pixcache_pixmap_load / load_from_memory on missing files, garbage, empty and truncated data
 *   (and, as the control, a tiny valid PNG that decodes to the right pixel).
 *
 * What it does not test: eviction order and Qt's cache rules (test_rules.c), foreign release
 * timing (test_foreign.c), concurrency beyond the per-thread last error (test_threads.c), and
 * real out-of-memory conditions (they cannot be provoked portably).
 */
#undef NDEBUG
#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixcache.h"

static int checks;

/* Counts one passed check; assert() reports the failing expression. */
#define CHECK(cond)      \
    do {                 \
        assert(cond);    \
        ++checks;        \
    } while (0)

/* True when `msg` contains `word` as a whole word (not inside a longer identifier). */
static int names_word(const char *msg, const char *word) {
    size_t n = strlen(word);
    for (const char *at = strstr(msg, word); at != NULL; at = strstr(at + 1, word)) {
        int before_ok = at == msg || !(isalnum((unsigned char)at[-1]) || at[-1] == '_');
        int after_ok = !(isalnum((unsigned char)at[n]) || at[n] == '_');
        if (before_ok && after_ok) return 1;
    }
    return 0;
}

/* The last call failed with NULL_ARGUMENT and its message names `arg`. */
static void expect_null_arg(const char *arg) {
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    const char *msg = pixcache_last_error();
    CHECK(msg != NULL);
    if (!names_word(msg, arg)) {
        fprintf(stderr, "message \"%s\" does not name the argument \"%s\"\n", msg, arg);
    }
    CHECK(names_word(msg, arg));
    CHECK(strchr(msg, '\n') == NULL);
}

/* The last call failed with `code` and a non-empty, one-line message. */
static void expect_error(PixcacheResult code) {
    if (pixcache_last_result() != code) {
        fprintf(stderr, "expected result %d, got %d (%s)\n", (int)code,
                (int)pixcache_last_result(), pixcache_last_error());
    }
    CHECK(pixcache_last_result() == code);
    const char *msg = pixcache_last_error();
    CHECK(msg != NULL && msg[0] != '\0');
    CHECK(strchr(msg, '\n') == NULL);
}

/* The last call succeeded: code OK and an empty (never NULL) message. */
static void expect_ok(void) {
    if (pixcache_last_result() != PIXCACHE_RESULT_OK) {
        fprintf(stderr, "expected success, got %d (%s)\n", (int)pixcache_last_result(),
                pixcache_last_error());
    }
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    CHECK(pixcache_last_error() != NULL);
    CHECK(strcmp(pixcache_last_error(), "") == 0);
}

/* Leaves a known error behind, so the next check can see that a call cleared it. */
static void make_an_error(void) {
    CHECK(pixcache_pixmap_new(1, 1, 99) == NULL);
    expect_error(PIXCACHE_RESULT_INVALID_ARGUMENT);
}

static PixcachePixmap *raster(uint32_t w, uint32_t h) {
    PixcachePixmap *pm = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGBA8888);
    CHECK(pm != NULL);
    return pm;
}

static int released_count;
static void count_release(void *user_data) {
    CHECK(user_data == &released_count);
    ++released_count;
}

/* ---- NULL arguments ------------------------------------------------------------------------ */

static void test_null_cache_functions(void) {
    printf("/errors/null/cache_functions\n");
    PixcacheKey k = {0};

    CHECK(pixcache_cache_limit(NULL) == 0);
    expect_null_arg("cache");
    make_an_error();
    pixcache_set_cache_limit(NULL, 100);
    expect_null_arg("cache");
    CHECK(pixcache_total_used(NULL) == 0);
    expect_null_arg("cache");
    make_an_error();
    pixcache_clear(NULL);
    expect_null_arg("cache");
    make_an_error();
    pixcache_flush_detached(NULL);
    expect_null_arg("cache");
    CHECK(pixcache_tick(NULL) == 0);
    expect_null_arg("cache");
    CHECK(!pixcache_key_is_valid(NULL, k));
    expect_null_arg("cache");

    PixcacheStats st = pixcache_stats(NULL);
    expect_null_arg("cache");
    CHECK(st.entries == 0 && st.total_kb == 0 && st.limit_kb == 0 && st.hits == 0 &&
          st.misses == 0 && st.inserts == 0 && st.evictions == 0 && st.refused == 0);
}

static void test_null_find(void) {
    printf("/errors/null/find\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);
    CHECK(pixcache_insert(c, "a", pm));
    PixcachePixmap *out = pixcache_pixmap_new_null();

    CHECK(!pixcache_find(NULL, "a", out));
    expect_null_arg("cache");
    CHECK(pixcache_pixmap_is_null(out)); /* untouched */
    CHECK(!pixcache_find(c, NULL, out));
    expect_null_arg("key");
    CHECK(pixcache_pixmap_is_null(out));
    CHECK(!pixcache_find(NULL, NULL, NULL));
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    /* NULL out is allowed: a presence test, not an error. */
    make_an_error();
    CHECK(pixcache_find(c, "a", NULL));
    expect_ok();

    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_null_find_key(void) {
    printf("/errors/null/find_key\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);
    PixcacheKey k = pixcache_insert_key(c, pm);
    CHECK(pixcache_key_is_valid(c, k));

    CHECK(!pixcache_find_key(NULL, k, pm));
    expect_null_arg("cache");
    make_an_error();
    CHECK(pixcache_find_key(c, k, NULL)); /* NULL out is allowed */
    expect_ok();
    CHECK(pixcache_key_is_valid(c, k));

    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_null_insert(void) {
    printf("/errors/null/insert\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);

    CHECK(!pixcache_insert(NULL, "a", pm));
    expect_null_arg("cache");
    CHECK(!pixcache_insert(c, NULL, pm));
    expect_null_arg("key");
    CHECK(!pixcache_insert(c, "a", NULL));
    expect_null_arg("pm");
    CHECK(pixcache_stats(c).entries == 0);
    CHECK(pixcache_stats(c).inserts == 0);
    CHECK(!pixcache_find(c, "a", NULL));

    /* A NULL pm must not empty a used key either: the argument check comes first. */
    CHECK(pixcache_insert(c, "b", pm));
    CHECK(!pixcache_insert(c, "b", NULL));
    expect_null_arg("pm");
    CHECK(pixcache_find(c, "b", NULL));

    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_null_insert_key(void) {
    printf("/errors/null/insert_key\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);
    PixcacheKey zero = {0};

    PixcacheKey k = pixcache_insert_key(NULL, pm);
    expect_null_arg("cache");
    CHECK(k.id == 0);
    CHECK(pixcache_key_equal(k, zero));
    k = pixcache_insert_key(c, NULL);
    expect_null_arg("pm");
    CHECK(k.id == 0);
    CHECK(pixcache_stats(c).entries == 0);

    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_null_replace(void) {
    printf("/errors/null/replace\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);
    PixcachePixmap *other = raster(3, 3);
    PixcacheKey k = pixcache_insert_key(c, pm);
    PixcacheKey copy = k;

    CHECK(!pixcache_replace(NULL, &k, other));
    expect_null_arg("cache");
    CHECK(!pixcache_replace(c, NULL, other));
    expect_null_arg("key");
    CHECK(!pixcache_replace(c, &k, NULL));
    expect_null_arg("pm");
    /* Nothing changed: the key, its entry and its pixmap. */
    CHECK(pixcache_key_equal(k, copy));
    CHECK(pixcache_key_is_valid(c, k));
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_find_key(c, k, out));
    CHECK(pixcache_pixmap_width(out) == 2);
    CHECK(pixcache_stats(c).entries == 1);

    pixcache_pixmap_free(out);
    pixcache_pixmap_free(other);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_null_remove(void) {
    printf("/errors/null/remove\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);
    CHECK(pixcache_insert(c, "a", pm));
    PixcacheKey k = pixcache_insert_key(c, pm);

    CHECK(!pixcache_remove(NULL, "a"));
    expect_null_arg("cache");
    CHECK(!pixcache_remove(c, NULL));
    expect_null_arg("key");
    CHECK(!pixcache_remove_key(NULL, k));
    expect_null_arg("cache");
    CHECK(pixcache_stats(c).entries == 2);
    CHECK(pixcache_key_is_valid(c, k));

    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_null_pixmap_functions(void) {
    printf("/errors/null/pixmap_functions\n");
    CHECK(pixcache_pixmap_clone(NULL) == NULL);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_is_null(NULL) == true);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_is_detached(NULL) == false);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_width(NULL) == 0);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_height(NULL) == 0);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_depth(NULL) == 0);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_format(NULL) == PIXCACHE_FORMAT_INVALID);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_stride(NULL) == 0);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_pixels(NULL) == NULL);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_pixels_mut(NULL) == NULL);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_cache_key(NULL) == 0);
    expect_null_arg("pm");
    CHECK(pixcache_pixmap_user_data(NULL) == NULL);
    expect_null_arg("pm");
}

static void test_null_assign(void) {
    printf("/errors/null/assign\n");
    PixcachePixmap *a = raster(2, 2);
    uint64_t key_before = pixcache_pixmap_cache_key(a);
    pixcache_pixmap_assign(NULL, a);
    expect_null_arg("dst");
    CHECK(pixcache_pixmap_is_detached(a)); /* no share was leaked */
    pixcache_pixmap_assign(a, NULL);
    expect_null_arg("src");
    CHECK(pixcache_pixmap_width(a) == 2); /* dst unchanged */
    CHECK(pixcache_pixmap_cache_key(a) == key_before);
    pixcache_pixmap_assign(NULL, NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    pixcache_pixmap_free(a);
}

static void test_null_load(void) {
    printf("/errors/null/load\n");
    CHECK(pixcache_pixmap_load(NULL) == NULL);
    expect_null_arg("path");
    CHECK(pixcache_pixmap_load_from_memory(NULL, 0) == NULL);
    expect_null_arg("data");
    CHECK(pixcache_pixmap_load_from_memory(NULL, 16) == NULL);
    expect_null_arg("data");
}

static void test_null_wrap_arguments_are_allowed(void) {
    printf("/errors/null/wrap_user_data_and_release_allowed\n");
    make_an_error();
    PixcachePixmap *pm = pixcache_pixmap_wrap(4, 4, 32, NULL, NULL);
    CHECK(pm != NULL);
    expect_ok();
    CHECK(pixcache_pixmap_user_data(pm) == NULL);
    CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_FOREIGN);
    pixcache_pixmap_free(pm);
}

/* The *_free functions leave the last error as it was (header: so cleanup can run between a
 * failing call and reading its error). */
static void expect_error_kept(const char *before) {
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strcmp(pixcache_last_error(), before) == 0);
}

static void test_free_null_is_a_no_op(void) {
    printf("/errors/null/free\n");
    char before[256];
    make_an_error();
    snprintf(before, sizeof before, "%s", pixcache_last_error());
    pixcache_pixmap_free(NULL);
    expect_error_kept(before);
    pixcache_cache_free(NULL);
    expect_error_kept(before);

    PixcachePixmap *n = pixcache_pixmap_new_null();
    expect_ok();
    pixcache_pixmap_free(NULL);
    expect_ok();
    pixcache_cache_free(NULL);
    expect_ok();
    pixcache_pixmap_free(n);
    expect_ok();
}

static void test_free_keeps_the_last_error(void) {
    printf("/errors/last_error/free_keeps_it\n");
    char before[256];
    PixcachePixmap *pm = raster(4, 4);
    PixcacheCache *c = pixcache_cache_new(100);
    CHECK(pixcache_insert(c, "a", pm));
    PixcachePixmap *clone = pixcache_pixmap_clone(pm);
    PixcacheCache *g = pixcache_global(); /* (itself a call that clears the error) */

    make_an_error();
    snprintf(before, sizeof before, "%s", pixcache_last_error());
    pixcache_pixmap_free(clone); /* a share */
    expect_error_kept(before);
    pixcache_cache_free(c); /* drops the cache's share */
    expect_error_kept(before);
    pixcache_pixmap_free(pm); /* the last share: the pixels go */
    expect_error_kept(before);
    pixcache_cache_free(g); /* ignored */
    expect_error_kept(before);
}

static void test_null_n_variants(void) {
    printf("/errors/null/n_variants\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);
    CHECK(pixcache_insert(c, "abc", pm));
    PixcachePixmap *out = pixcache_pixmap_new_null();

    CHECK(!pixcache_find_n(NULL, "abc", 3, out));
    expect_null_arg("cache");
    CHECK(!pixcache_find_n(c, NULL, 3, out));
    expect_null_arg("key");
    CHECK(pixcache_pixmap_is_null(out));
    CHECK(!pixcache_insert_n(NULL, "abc", 3, pm));
    expect_null_arg("cache");
    CHECK(!pixcache_insert_n(c, NULL, 3, pm));
    expect_null_arg("key");
    CHECK(!pixcache_insert_n(c, "xyz", 3, NULL));
    expect_null_arg("pm");
    CHECK(!pixcache_remove_n(NULL, "abc", 3));
    expect_null_arg("cache");
    CHECK(!pixcache_remove_n(c, NULL, 3));
    expect_null_arg("key");
    CHECK(pixcache_stats(c).entries == 1);
    CHECK(pixcache_find(c, "abc", NULL));

    /* NULL out is allowed. */
    make_an_error();
    CHECK(pixcache_find_n(c, "abcdef", 3, NULL));
    expect_ok();

    /* (NULL, 0) is what an empty C++ std::string_view passes. The header does not say whether
     * it is the empty key or a NULL argument; it must be one of the two, never a crash. */
    bool found = pixcache_find_n(c, NULL, 0, NULL);
    CHECK(!found);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK ||
          pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    bool inserted = pixcache_insert_n(c, NULL, 0, pm);
    CHECK(inserted == (pixcache_last_result() == PIXCACHE_RESULT_OK));
    CHECK(inserted || pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(pixcache_find(c, "", NULL) == inserted);
    (void)pixcache_remove_n(c, NULL, 0);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK ||
          pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_find(c, "", NULL));

    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_free_global_is_ignored(void) {
    printf("/errors/global/free_is_ignored\n");
    PixcacheCache *g = pixcache_global();
    CHECK(g != NULL);
    PixcachePixmap *pm = raster(8, 8);
    CHECK(pixcache_insert(g, "errors:global", pm));
    int32_t limit = pixcache_cache_limit(g);
    CHECK(limit > 0);

    pixcache_cache_free(g);
    pixcache_cache_free(pixcache_global());

    CHECK(pixcache_global() == g);
    CHECK(pixcache_cache_limit(g) == limit);
    CHECK(pixcache_find(g, "errors:global", NULL));
    CHECK(pixcache_total_used(g) >= 1);
    CHECK(pixcache_insert(g, "errors:global2", pm));
    CHECK(pixcache_remove(g, "errors:global"));
    CHECK(pixcache_remove(g, "errors:global2"));
    pixcache_pixmap_free(pm);
}

/* ---- invalid UTF-8 ------------------------------------------------------------------------- */

static const char *const bad_utf8[] = {
    "\xff\xfe",         /* never valid bytes */
    "\xc0\xaf",         /* overlong '/' */
    "\xe0\x80\xaf",     /* overlong '/' in three bytes */
    "\xed\xa0\x80",     /* lone high surrogate U+D800 */
    "\xed\xbf\xbf",     /* lone low surrogate U+DFFF */
    "\xf4\x90\x80\x80", /* above U+10FFFF */
    "\x80",             /* lone continuation byte */
    "abc\xe2\x82",      /* truncated sequence at the end */
    "icon:\xc3(",       /* bad continuation in the middle */
};

static void test_invalid_utf8_keys(void) {
    printf("/errors/utf8/find_insert_remove\n");
    PixcacheCache *c = pixcache_cache_new(1000);
    PixcachePixmap *pm = raster(4, 4);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    CHECK(pixcache_insert(c, "ok", pm));
    PixcacheStats before = pixcache_stats(c);

    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; ++i) {
        const char *key = bad_utf8[i];
        CHECK(!pixcache_insert(c, key, pm));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
        CHECK(names_word(pixcache_last_error(), "key"));
        CHECK(!pixcache_find(c, key, out));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
        CHECK(pixcache_pixmap_is_null(out));
        CHECK(!pixcache_find(c, key, NULL));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
        CHECK(!pixcache_remove(c, key));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
        size_t len = strlen(key);
        CHECK(!pixcache_insert_n(c, key, len, pm));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
        CHECK(names_word(pixcache_last_error(), "key"));
        CHECK(!pixcache_find_n(c, key, len, out));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
        CHECK(pixcache_pixmap_is_null(out));
        CHECK(!pixcache_find_n(c, key, len, NULL));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
        CHECK(!pixcache_remove_n(c, key, len));
        expect_error(PIXCACHE_RESULT_INVALID_UTF8);
    }
    /* With _n, bytes after an embedded NUL count: "ok\0\xff" is not UTF-8 ... */
    CHECK(!pixcache_insert_n(c, "ok\0\xff", 4, pm));
    expect_error(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(!pixcache_find_n(c, "ok\0\xff", 4, NULL));
    expect_error(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(!pixcache_remove_n(c, "ok\0\xff", 4));
    expect_error(PIXCACHE_RESULT_INVALID_UTF8);
    /* ... and a cut through a multi-byte sequence is caught even if the bytes continue. */
    CHECK(!pixcache_insert_n(c, "\xc3\xa9", 1, pm));
    expect_error(PIXCACHE_RESULT_INVALID_UTF8);

    /* Nothing was inserted, looked up (hits/misses) or refused; the good entry is intact. */
    PixcacheStats after = pixcache_stats(c);
    CHECK(after.entries == before.entries && after.entries == 1);
    CHECK(after.total_kb == before.total_kb);
    CHECK(after.inserts == before.inserts);
    CHECK(after.refused == before.refused);
    CHECK(after.hits == before.hits && after.misses == before.misses);
    CHECK(pixcache_find(c, "ok", NULL));

    /* Valid multi-byte keys, and the empty key, are accepted. */
    CHECK(pixcache_insert(c, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x96\xbc", pm)); /* "été 🖼" */
    expect_ok();
    CHECK(pixcache_insert(c, "", pm));
    expect_ok();
    CHECK(pixcache_find(c, "", NULL));
    CHECK(pixcache_stats(c).entries == 3);

    /* _n keys may hold NUL bytes: "ok\0x" is its own key, not "ok"; a short len is a prefix. */
    CHECK(pixcache_insert_n(c, "ok\0x", 4, pm));
    expect_ok();
    CHECK(pixcache_stats(c).entries == 4);
    CHECK(pixcache_find_n(c, "ok\0x", 4, NULL));
    CHECK(!pixcache_find_n(c, "ok\0y", 4, NULL));
    CHECK(pixcache_find_n(c, "okay", 2, NULL)); /* "ok" */
    CHECK(pixcache_remove_n(c, "ok\0x", 4));
    CHECK(pixcache_find(c, "ok", NULL));
    CHECK(pixcache_find_n(c, "", 0, NULL)); /* the empty key, via _n */
    CHECK(pixcache_stats(c).entries == 3);

    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_invalid_utf8_on_global(void) {
    printf("/errors/utf8/global\n");
    PixcacheCache *g = pixcache_global();
    PixcachePixmap *pm = raster(1, 1);
    size_t entries = pixcache_stats(g).entries;
    CHECK(!pixcache_insert(g, "\xed\xa0\x80", pm));
    expect_error(PIXCACHE_RESULT_INVALID_UTF8);
    CHECK(pixcache_stats(g).entries == entries);
    pixcache_pixmap_free(pm);
}

/* ---- pixmap construction ------------------------------------------------------------------- */

static void test_unknown_formats(void) {
    printf("/errors/pixmap/unknown_format\n");
    const uint32_t formats[] = {0, PIXCACHE_FORMAT_FOREIGN, 9, 99, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; ++i) {
        PixcachePixmap *n = pixcache_pixmap_new_null(); /* clears the last error */
        expect_ok();
        pixcache_pixmap_free(n);
        CHECK(pixcache_pixmap_new(16, 16, formats[i]) == NULL);
        expect_error(PIXCACHE_RESULT_INVALID_ARGUMENT);
        CHECK(pixcache_pixmap_new(1u << 30, 1u << 30, formats[i]) == NULL); /* either error */
        CHECK(pixcache_last_result() == PIXCACHE_RESULT_INVALID_ARGUMENT ||
              pixcache_last_result() == PIXCACHE_RESULT_TOO_LARGE);
    }
}

static void test_absurd_sizes(void) {
    printf("/errors/pixmap/too_large\n");
    const uint32_t fmts[] = {PIXCACHE_FORMAT_RGBA8888, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED,
                             PIXCACHE_FORMAT_RGB888, PIXCACHE_FORMAT_GRAY8};
    for (size_t i = 0; i < 4; ++i) {
        CHECK(pixcache_pixmap_new(1u << 30, 1u << 30, fmts[i]) == NULL);
        expect_error(PIXCACHE_RESULT_TOO_LARGE);
        CHECK(pixcache_pixmap_new(UINT32_MAX, UINT32_MAX, fmts[i]) == NULL);
        expect_error(PIXCACHE_RESULT_TOO_LARGE);
        CHECK(pixcache_pixmap_new(UINT32_MAX, 1u << 20, fmts[i]) == NULL);
        expect_error(PIXCACHE_RESULT_TOO_LARGE);
    }
}

static void check_null_pixmap(PixcachePixmap *pm) {
    CHECK(pm != NULL);
    CHECK(pixcache_pixmap_is_null(pm));
    CHECK(pixcache_pixmap_width(pm) == 0);
    CHECK(pixcache_pixmap_height(pm) == 0);
    CHECK(pixcache_pixmap_depth(pm) == 0);
    CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_INVALID);
    CHECK(pixcache_pixmap_stride(pm) == 0);
    CHECK(pixcache_pixmap_cache_key(pm) == 0);
}

static void test_zero_sizes_give_null(void) {
    printf("/errors/pixmap/zero_size_is_null\n");
    const uint32_t sizes[][2] = {{0, 5}, {5, 0}, {0, 0}, {0, UINT32_MAX}, {UINT32_MAX, 0}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        make_an_error();
        PixcachePixmap *pm = pixcache_pixmap_new(sizes[i][0], sizes[i][1], PIXCACHE_FORMAT_GRAY8);
        expect_ok();
        check_null_pixmap(pm);
        pixcache_pixmap_free(pm);
    }
}

static void test_wrap_bad_depth(void) {
    printf("/errors/wrap/depth_above_128\n");
    released_count = 0;
    const uint32_t depths[] = {129, 256, UINT32_MAX};
    for (size_t i = 0; i < 3; ++i) {
        PixcachePixmap *pm = pixcache_pixmap_wrap(8, 8, depths[i], &released_count, count_release);
        CHECK(pm == NULL);
        expect_error(PIXCACHE_RESULT_INVALID_ARGUMENT);
        CHECK(released_count == 0);
    }
    /* 128 is the maximum and is accepted; its release then runs once. */
    PixcachePixmap *pm = pixcache_pixmap_wrap(8, 8, 128, &released_count, count_release);
    CHECK(pm != NULL);
    expect_ok();
    CHECK(pixcache_pixmap_depth(pm) == 128);
    pixcache_pixmap_free(pm);
    CHECK(released_count == 1);
    released_count = 0;
}

/* ---- invalid keys -------------------------------------------------------------------------- */

static void expect_invalid_key_everywhere(PixcacheCache *c, PixcacheKey bad, PixcachePixmap *pm) {
    PixcacheStats before = pixcache_stats(c);
    PixcachePixmap *out = pixcache_pixmap_new_null();

    CHECK(!pixcache_find_key(c, bad, out));
    expect_error(PIXCACHE_RESULT_INVALID_KEY);
    CHECK(pixcache_pixmap_is_null(out)); /* untouched */
    CHECK(!pixcache_find_key(c, bad, NULL));
    expect_error(PIXCACHE_RESULT_INVALID_KEY);
    CHECK(!pixcache_remove_key(c, bad));
    expect_error(PIXCACHE_RESULT_INVALID_KEY);
    PixcacheKey k = bad;
    CHECK(!pixcache_replace(c, &k, pm));
    expect_error(PIXCACHE_RESULT_INVALID_KEY);
    CHECK(k.id == bad.id); /* unchanged */
    make_an_error();
    CHECK(!pixcache_key_is_valid(c, bad));
    expect_ok(); /* an invalid key is not an error for key_is_valid */

    PixcacheStats after = pixcache_stats(c);
    CHECK(after.entries == before.entries);
    CHECK(after.total_kb == before.total_kb);
    CHECK(after.inserts == before.inserts);
    CHECK(after.hits == before.hits);
    pixcache_pixmap_free(out);
}

static void test_invalid_keys(void) {
    printf("/errors/keys/stale_forged_invalid\n");
    PixcacheCache *c = pixcache_cache_new(32);
    PixcacheCache *other = pixcache_cache_new(100);
    PixcachePixmap *small = raster(4, 4);   /* 1 KB */
    PixcachePixmap *big = raster(64, 64);   /* 16 KB */
    PixcacheKey zero = {0};

    PixcacheKey live = pixcache_insert_key(c, small);
    CHECK(pixcache_key_is_valid(c, live));

    /* The all-zero key. */
    expect_invalid_key_everywhere(c, zero, small);

    /* Removed. */
    PixcacheKey removed = pixcache_insert_key(c, small);
    CHECK(pixcache_remove_key(c, removed));
    expect_ok();
    expect_invalid_key_everywhere(c, removed, small);

    /* Replaced: the old copy. */
    PixcacheKey replaced = pixcache_insert_key(c, small);
    PixcacheKey old_copy = replaced;
    CHECK(pixcache_replace(c, &replaced, small));
    CHECK(!pixcache_key_equal(replaced, old_copy));
    expect_invalid_key_everywhere(c, old_copy, small);
    CHECK(pixcache_remove_key(c, replaced));

    /* Evicted: three 16 KB entries in a 32 KB cache. */
    PixcacheKey e1 = pixcache_insert_key(c, big);
    PixcacheKey e2 = pixcache_insert_key(c, big);
    PixcacheKey e3 = pixcache_insert_key(c, big);
    CHECK(!pixcache_key_is_valid(c, live)); /* 1 + 16 + 16 > 32: the oldest went first */
    CHECK(!pixcache_key_is_valid(c, e1));   /* then e1, for e3 */
    CHECK(pixcache_key_is_valid(c, e2));
    CHECK(pixcache_key_is_valid(c, e3));
    expect_invalid_key_everywhere(c, e1, small);
    expect_invalid_key_everywhere(c, live, small);

    /* From another cache: valid there, not here, and not the other way round. */
    PixcacheKey theirs = pixcache_insert_key(other, small);
    CHECK(pixcache_key_is_valid(other, theirs));
    expect_invalid_key_everywhere(c, theirs, small);
    expect_invalid_key_everywhere(other, e3, small);
    CHECK(pixcache_key_is_valid(other, theirs));
    CHECK(pixcache_key_is_valid(c, e3));

    /* Forged values, including near-misses of live ones. */
    const uint64_t forged[] = {1, 2, 3, 42, UINT64_MAX, UINT64_MAX - 1, 0x8000000000000000u,
                               e3.id + 1, e3.id - 1, e3.id ^ 1, theirs.id ^ 0x100};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; ++i) {
        PixcacheKey f = {forged[i]};
        expect_invalid_key_everywhere(c, f, small);
    }
    CHECK(pixcache_key_is_valid(c, e3));

    /* Cleared. */
    pixcache_clear(c);
    expect_invalid_key_everywhere(c, e3, small);

    /* Lowered limit. */
    PixcacheKey lowered = pixcache_insert_key(c, big);
    CHECK(pixcache_key_is_valid(c, lowered));
    pixcache_set_cache_limit(c, 8);
    expect_invalid_key_everywhere(c, lowered, small);

    pixcache_pixmap_free(big);
    pixcache_pixmap_free(small);
    pixcache_cache_free(other);
    pixcache_cache_free(c);
}

/* ---- refused inserts ----------------------------------------------------------------------- */

static void test_refused(void) {
    printf("/errors/refused/insert_insert_key_replace\n");
    PixcacheCache *c = pixcache_cache_new(15);
    PixcachePixmap *big = raster(64, 64); /* 16 KB > 15 KB */
    PixcachePixmap *small = raster(4, 4); /* 1 KB */

    CHECK(pixcache_insert(c, "small", small));
    CHECK(!pixcache_insert(c, "big", big));
    expect_error(PIXCACHE_RESULT_REFUSED);
    CHECK(!pixcache_find(c, "big", NULL));
    CHECK(pixcache_find(c, "small", NULL)); /* nothing evicted for it */

    /* A refused insert under a used key leaves the key empty (Qt's rule). */
    CHECK(!pixcache_insert(c, "small", big));
    expect_error(PIXCACHE_RESULT_REFUSED);
    CHECK(!pixcache_find(c, "small", NULL));

    PixcacheKey zero = {0};
    PixcacheKey k = pixcache_insert_key(c, big);
    expect_error(PIXCACHE_RESULT_REFUSED);
    CHECK(k.id != 0);
    CHECK(!pixcache_key_equal(k, zero));
    CHECK(!pixcache_key_is_valid(c, k));

    PixcacheKey r = pixcache_insert_key(c, small);
    CHECK(pixcache_key_is_valid(c, r));
    PixcacheKey r_before = r;
    CHECK(!pixcache_replace(c, &r, big));
    expect_error(PIXCACHE_RESULT_REFUSED);
    CHECK(pixcache_key_equal(r, r_before)); /* unchanged ... */
    CHECK(!pixcache_key_is_valid(c, r));    /* ... and invalid: the old entry is gone */

    PixcacheStats st = pixcache_stats(c);
    CHECK(st.refused == 4);
    CHECK(st.entries == 0);
    CHECK(st.total_kb == 0);

    /* A limit of 0 or less refuses everything, even the null pixmap. */
    PixcachePixmap *null_pm = pixcache_pixmap_new_null();
    const int32_t limits[] = {0, -1, INT32_MIN};
    for (size_t i = 0; i < 3; ++i) {
        pixcache_set_cache_limit(c, limits[i]);
        CHECK(pixcache_cache_limit(c) == limits[i]);
        CHECK(!pixcache_insert(c, "n", null_pm));
        expect_error(PIXCACHE_RESULT_REFUSED);
        PixcacheKey nk = pixcache_insert_key(c, small);
        expect_error(PIXCACHE_RESULT_REFUSED);
        CHECK(nk.id != 0 && !pixcache_key_is_valid(c, nk));
    }
    CHECK(pixcache_total_used(c) == 0);

    pixcache_pixmap_free(null_pm);
    pixcache_pixmap_free(small);
    pixcache_pixmap_free(big);
    pixcache_cache_free(c);
}

/* ---- last-error rules ---------------------------------------------------------------------- */

/* Success clears the error whatever happened in between: frees that keep it, several errors in a
 * row, and errors on other threads (cleared before the thread exits, or held when it does). A
 * success skips clearing while no thread can hold an error, so each block ends with a success
 * that must clear: if the library's count of threads holding an error ever reached zero while
 * this thread held one, that success would leave the error in place. It runs first in main, in
 * a fresh process (no count is off yet), and its last block is the one that leaves a thread
 * exited holding an error (after which the count never returns to zero and cannot be tested). */
static void *fail_and_exit(void *cleared) {
    make_an_error();
    if (cleared) {
        PixcachePixmap *n = pixcache_pixmap_new_null();
        expect_ok();
        pixcache_pixmap_free(n);
    }
    return NULL;
}

static void run_in_a_thread(void *cleared) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fail_and_exit, cleared) == 0);
    CHECK(pthread_join(t, NULL) == 0);
}

static void test_success_clears_after_anything(void) {
    printf("/errors/last_error/success_clears_after_anything\n");
    PixcachePixmap *pm = raster(2, 2);

    /* Two errors in a row (counted once), then a success. */
    make_an_error();
    make_an_error();
    CHECK(pixcache_pixmap_width(pm) == 2);
    expect_ok();

    /* A free takes the error out and puts it back (it must be counted again), then a success. */
    PixcachePixmap *clone = pixcache_pixmap_clone(pm);
    make_an_error();
    pixcache_pixmap_free(clone);
    expect_error(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(pixcache_pixmap_width(pm) == 2);
    expect_ok();

    /* The same with two frees in a row, one of them of NULL. */
    clone = pixcache_pixmap_clone(pm);
    make_an_error();
    pixcache_pixmap_free(NULL);
    pixcache_pixmap_free(clone);
    expect_error(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(pixcache_pixmap_width(pm) == 2);
    expect_ok();

    /* A free while no error is held keeps Ok. */
    pixcache_pixmap_free(pixcache_pixmap_clone(pm));
    expect_ok();

    /* Another thread fails, then succeeds; then this one fails and succeeds. */
    run_in_a_thread((void *)1);
    make_an_error();
    CHECK(pixcache_pixmap_width(pm) == 2);
    expect_ok();

    /* Another thread fails and succeeds while this one holds an error. */
    make_an_error();
    run_in_a_thread((void *)1);
    CHECK(pixcache_pixmap_width(pm) == 2);
    expect_ok();

    /* Last: another thread exits holding an error; this one still clears. */
    make_an_error();
    run_in_a_thread(NULL);
    CHECK(pixcache_pixmap_width(pm) == 2);
    expect_ok();

    pixcache_pixmap_free(pm);
}

static void test_success_clears(void) {
    printf("/errors/last_error/success_clears\n");
    PixcacheCache *c = pixcache_cache_new(100);
    PixcachePixmap *pm = raster(2, 2);

    make_an_error();
    CHECK(pixcache_cache_limit(c) == 100);
    expect_ok();

    make_an_error();
    CHECK(!pixcache_find(c, "missing", NULL)); /* a miss is not an error */
    expect_ok();

    make_an_error();
    PixcacheKey k = pixcache_insert_key(c, pm);
    expect_ok();

    make_an_error();
    CHECK(pixcache_remove_key(c, k));
    expect_ok();

    make_an_error();
    CHECK(!pixcache_remove(c, "missing")); /* not an error either */
    expect_ok();

    make_an_error();
    PixcachePixmap *n = pixcache_pixmap_new_null();
    expect_ok();
    pixcache_pixmap_free(n);

    /* pixcache_global() cannot fail: like the getters of the last error it leaves it alone. */
    make_an_error();
    PixcacheResult before = pixcache_last_result();
    CHECK(pixcache_global() != NULL);
    CHECK(pixcache_last_result() == before && before != PIXCACHE_RESULT_OK);

    make_an_error();
    pixcache_pixmap_free(pixcache_pixmap_clone(pm));
    expect_ok();

    pixcache_pixmap_free(pm);
    pixcache_cache_free(c);
}

static void test_getters_do_not_clear(void) {
    printf("/errors/last_error/getters_do_not_clear\n");
    CHECK(pixcache_pixmap_new(1u << 30, 1u << 30, PIXCACHE_FORMAT_RGBA8888) == NULL);
    char copy[512];
    snprintf(copy, sizeof copy, "%s", pixcache_last_error());
    CHECK(copy[0] != '\0');
    for (int i = 0; i < 3; ++i) {
        CHECK(pixcache_last_result() == PIXCACHE_RESULT_TOO_LARGE);
        CHECK(strcmp(pixcache_last_error(), copy) == 0);
        CHECK(pixcache_result_str(i) != NULL);
    }
    /* pixcache_key_equal and pixcache_version cannot fail either (header conventions). */
    PixcacheKey zero = {0};
    CHECK(pixcache_key_equal(zero, zero));
    CHECK(strcmp(pixcache_version(), PIXCACHE_VERSION_STRING) == 0);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_TOO_LARGE);
    CHECK(strcmp(pixcache_last_error(), copy) == 0);
    /* A different failure replaces the message and code. */
    CHECK(pixcache_pixmap_clone(NULL) == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(strcmp(pixcache_last_error(), copy) != 0);
}

struct thread_report {
    int result_at_start;
    int error_empty_at_start;
    int result_after_own_error;
    char own_error[256];
};

static void *error_thread(void *arg) {
    struct thread_report *r = arg;
    /* A fresh thread has no error yet, whatever the main thread did. */
    r->result_at_start = (int)pixcache_last_result();
    const char *e = pixcache_last_error();
    r->error_empty_at_start = e != NULL && e[0] == '\0';
    /* Make an error of a different kind here. */
    pixcache_find_key(pixcache_global(), (PixcacheKey){0}, NULL);
    r->result_after_own_error = (int)pixcache_last_result();
    snprintf(r->own_error, sizeof r->own_error, "%s", pixcache_last_error());
    return NULL;
}

static void test_errors_are_per_thread(void) {
    printf("/errors/last_error/per_thread\n");
    CHECK(pixcache_pixmap_new(4, 4, 77) == NULL);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", pixcache_last_error());

    struct thread_report r;
    memset(&r, 0, sizeof r);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, error_thread, &r) == 0);
    CHECK(pthread_join(t, NULL) == 0);

    CHECK(r.result_at_start == PIXCACHE_RESULT_OK);
    CHECK(r.error_empty_at_start);
    CHECK(r.result_after_own_error == PIXCACHE_RESULT_INVALID_KEY);
    CHECK(r.own_error[0] != '\0');
    /* The other thread's error did not reach this one. */
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strcmp(pixcache_last_error(), mine) == 0);
    CHECK(strcmp(pixcache_last_error(), r.own_error) != 0);
}

/* ---- pixcache_set_error -------------------------------------------------------------------- */

static void *set_error_elsewhere(void *arg) {
    (void)arg;
    pixcache_set_error(PIXCACHE_RESULT_IO, "another thread's error");
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_IO);
    return NULL;
}

static void test_set_error(void) {
    printf("/errors/set_error\n");
    /* Every code but OK: that code, that message. */
    for (int code = 1; code <= PIXCACHE_RESULT_WRONG_THREAD; ++code) {
        pixcache_set_error(code, "my own words");
        expect_error((PixcacheResult)code);
        CHECK(strcmp(pixcache_last_error(), "my own words") == 0);
    }
    /* A success clears it, as it clears any error; a free keeps it. */
    pixcache_set_error(PIXCACHE_RESULT_IO, "cannot read the theme");
    PixcachePixmap *pm = raster(1, 1);
    expect_ok();
    pixcache_set_error(PIXCACHE_RESULT_IO, "cannot read the theme");
    pixcache_pixmap_free(pm);
    expect_error(PIXCACHE_RESULT_IO);
    CHECK(strcmp(pixcache_last_error(), "cannot read the theme") == 0);
    /* OK clears, whatever the message. */
    pixcache_set_error(PIXCACHE_RESULT_OK, "ignored");
    expect_ok();
    pixcache_set_error(PIXCACHE_RESULT_OK, NULL);
    expect_ok();
    /* NULL or "" for the message: the code's own text (an error's message is never ""). */
    pixcache_set_error(PIXCACHE_RESULT_DECODE, NULL);
    expect_error(PIXCACHE_RESULT_DECODE);
    CHECK(strcmp(pixcache_last_error(), pixcache_result_str(PIXCACHE_RESULT_DECODE)) == 0);
    pixcache_set_error(PIXCACHE_RESULT_UNSUPPORTED, "");
    expect_error(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(strcmp(pixcache_last_error(), pixcache_result_str(PIXCACHE_RESULT_UNSUPPORTED)) == 0);
    /* Invalid UTF-8 keeps the code; each bad sequence becomes U+FFFD. Newlines become spaces. */
    pixcache_set_error(PIXCACHE_RESULT_IO, "bad \xff\xfe bytes\nsecond line");
    expect_error(PIXCACHE_RESULT_IO);
    CHECK(strcmp(pixcache_last_error(), "bad \xef\xbf\xbd\xef\xbf\xbd bytes second line") == 0);
    /* An unknown code is a mistake of the caller's: INVALID_ARGUMENT naming the number, and its
     * message is not used. */
    const int unknown[] = {-1, PIXCACHE_RESULT_WRONG_THREAD + 1, 100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
        pixcache_set_error(unknown[i], "should not appear");
        expect_error(PIXCACHE_RESULT_INVALID_ARGUMENT);
        char number[32];
        snprintf(number, sizeof number, "%d", unknown[i]);
        CHECK(strstr(pixcache_last_error(), number) != NULL);
        CHECK(strstr(pixcache_last_error(), "should not appear") == NULL);
    }
    /* Per thread: another thread's call does not touch this one's. */
    pixcache_set_error(PIXCACHE_RESULT_DECODE, "mine");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, set_error_elsewhere, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    expect_error(PIXCACHE_RESULT_DECODE);
    CHECK(strcmp(pixcache_last_error(), "mine") == 0);
    pixcache_set_error(PIXCACHE_RESULT_OK, NULL);
    expect_ok();
}

/* ---- result strings ------------------------------------------------------------------------ */

static void test_result_strings(void) {
    printf("/errors/result_str\n");
    const char *s[15];
    for (int code = 0; code <= 14; ++code) {
        s[code] = pixcache_result_str(code);
        CHECK(s[code] != NULL);
        CHECK(s[code][0] != '\0');
        CHECK(strcmp(s[code], "unknown result code") != 0);
        CHECK(pixcache_result_str(code) == s[code]); /* static */
        for (int j = 0; j < code; ++j) CHECK(strcmp(s[code], s[j]) != 0);
    }
    CHECK(pixcache_result_str(PIXCACHE_RESULT_PANIC) == s[11]);
    CHECK(pixcache_result_str(PIXCACHE_RESULT_REENTRANT) == s[12]);
    CHECK(pixcache_result_str(PIXCACHE_RESULT_PRODUCER_FAILED) == s[13]);
    CHECK(pixcache_result_str(PIXCACHE_RESULT_WRONG_THREAD) == s[14]);
    const int unknown[] = {-1, 15, 16, 100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
        const char *u = pixcache_result_str(unknown[i]);
        CHECK(u != NULL);
        CHECK(strcmp(u, "unknown result code") == 0);
    }
}

/* ---- pixel access -------------------------------------------------------------------------- */

static void test_pixels_of_foreign_and_null(void) {
    printf("/errors/pixels/foreign_and_null\n");
    PixcachePixmap *f = pixcache_pixmap_wrap(8, 8, 32, NULL, NULL);
    CHECK(f != NULL);
    CHECK(pixcache_pixmap_pixels(f) == NULL);
    expect_error(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(pixcache_pixmap_pixels_mut(f) == NULL);
    expect_error(PIXCACHE_RESULT_UNSUPPORTED);
    /* Also when shared (the detach path). */
    PixcachePixmap *share = pixcache_pixmap_clone(f);
    CHECK(pixcache_pixmap_pixels_mut(f) == NULL);
    expect_error(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(pixcache_pixmap_cache_key(f) == pixcache_pixmap_cache_key(share)); /* not detached */
    CHECK(pixcache_pixmap_stride(f) == 0);
    pixcache_pixmap_free(share);
    pixcache_pixmap_free(f);

    PixcachePixmap *n = pixcache_pixmap_new_null();
    make_an_error();
    CHECK(pixcache_pixmap_pixels(n) == NULL);
    expect_ok();
    make_an_error();
    CHECK(pixcache_pixmap_pixels_mut(n) == NULL);
    expect_ok();
    pixcache_pixmap_free(n);

    PixcachePixmap *z = pixcache_pixmap_new(0, 9, PIXCACHE_FORMAT_RGB888);
    make_an_error();
    CHECK(pixcache_pixmap_pixels_mut(z) == NULL);
    expect_ok();
    pixcache_pixmap_free(z);

    /* A null foreign pixmap is still foreign: no pixels, an error. */
    PixcachePixmap *nf = pixcache_pixmap_wrap(0, 4, 32, NULL, NULL);
    CHECK(nf != NULL && pixcache_pixmap_is_null(nf));
    CHECK(pixcache_pixmap_pixels(nf) == NULL);
    pixcache_pixmap_free(nf);
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* A 1x1 RGBA PNG whose one pixel is (0x12, 0x34, 0x56, 0x78). Layout: signature (0..7), IHDR
 * chunk (8..32), IDAT chunk (33..57, its zlib data at 41..53), IEND chunk (58..69). */
static const uint8_t png_1x1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
    0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
    0xda, 0x63, 0x10, 0x32, 0x09, 0xab, 0x00, 0x00, 0x02, 0x0d, 0x01, 0x15, 0x76, 0x20,
    0xb7, 0xd6, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};
/* Up to here the zlib stream of the only IDAT chunk is incomplete. */
#define PNG_IDAT_DATA_END 54

static void check_decoded_1x1(PixcachePixmap *pm) {
    CHECK(pm != NULL);
    expect_ok();
    CHECK(pixcache_pixmap_width(pm) == 1);
    CHECK(pixcache_pixmap_height(pm) == 1);
    CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_RGBA8888);
    CHECK(pixcache_pixmap_depth(pm) == 32);
    CHECK(pixcache_pixmap_stride(pm) == 4);
    const uint8_t *px = pixcache_pixmap_pixels(pm);
    CHECK(px != NULL);
    CHECK(px[0] == 0x12 && px[1] == 0x34 && px[2] == 0x56 && px[3] == 0x78);
}

static void expect_decode_failure(void) {
    PixcacheResult r = pixcache_last_result();
    if (r != PIXCACHE_RESULT_DECODE && r != PIXCACHE_RESULT_IO) {
        fprintf(stderr, "expected DECODE or IO, got %d (%s)\n", (int)r, pixcache_last_error());
    }
    CHECK(r == PIXCACHE_RESULT_DECODE || r == PIXCACHE_RESULT_IO);
    CHECK(pixcache_last_error()[0] != '\0');
}

static void test_load_from_memory(void) {
    printf("/errors/decode/memory\n");
    /* The control: the whole PNG decodes to the right pixel. */
    PixcachePixmap *pm = pixcache_pixmap_load_from_memory(png_1x1, sizeof png_1x1);
    check_decoded_1x1(pm);
    pixcache_pixmap_free(pm);

    /* Garbage. */
    static const uint8_t garbage[] = "this is certainly not an image, just some text bytes";
    CHECK(pixcache_pixmap_load_from_memory(garbage, sizeof garbage) == NULL);
    expect_error(PIXCACHE_RESULT_DECODE);
    uint8_t noise[256];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof noise; ++i) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        noise[i] = (uint8_t)x;
    }
    CHECK(pixcache_pixmap_load_from_memory(noise, sizeof noise) == NULL);
    expect_decode_failure();

    /* Empty (a non-NULL pointer with length 0). */
    CHECK(pixcache_pixmap_load_from_memory(png_1x1, 0) == NULL);
    expect_decode_failure();

    /* Every truncation that cuts the image data short. */
    for (size_t len = 1; len < PNG_IDAT_DATA_END; ++len) {
        uint8_t *copy = malloc(len); /* exactly len bytes: valgrind sees any over-read */
        CHECK(copy != NULL);
        memcpy(copy, png_1x1, len);
        PixcachePixmap *t = pixcache_pixmap_load_from_memory(copy, len);
        if (t != NULL) fprintf(stderr, "a PNG truncated to %zu bytes decoded\n", len);
        CHECK(t == NULL);
        expect_decode_failure();
        free(copy);
    }

    /* A PNG signature followed by garbage. */
    uint8_t sig_garbage[64];
    memcpy(sig_garbage, png_1x1, 8);
    memset(sig_garbage + 8, 0xab, sizeof sig_garbage - 8);
    CHECK(pixcache_pixmap_load_from_memory(sig_garbage, sizeof sig_garbage) == NULL);
    expect_decode_failure();

    /* A corrupted IHDR CRC or a zero width is refused, not decoded into nonsense. */
    uint8_t bad_dims[sizeof png_1x1];
    memcpy(bad_dims, png_1x1, sizeof png_1x1);
    bad_dims[19] = 0; /* width 0 (CRC now wrong as well) */
    CHECK(pixcache_pixmap_load_from_memory(bad_dims, sizeof bad_dims) == NULL);
    CHECK(pixcache_last_result() != PIXCACHE_RESULT_OK);
    CHECK(pixcache_last_result() != PIXCACHE_RESULT_PANIC);
}

static void test_load_file(void) {
    printf("/errors/decode/file\n");
    CHECK(pixcache_pixmap_load("/nonexistent-pixcache-dir/no-such-file.png") == NULL);
    expect_error(PIXCACHE_RESULT_IO);
    CHECK(pixcache_pixmap_load("") == NULL);
    expect_error(PIXCACHE_RESULT_IO);

    /* A directory is not an image: an error, never a crash. */
    CHECK(pixcache_pixmap_load("/") == NULL);
    expect_decode_failure();

    /* A real file: valid, then garbage, then truncated. */
    char path[] = "/tmp/pixcache-test-errors-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, png_1x1, sizeof png_1x1) == (ssize_t)sizeof png_1x1);
    CHECK(close(fd) == 0);
    PixcachePixmap *pm = pixcache_pixmap_load(path);
    check_decoded_1x1(pm);
    pixcache_pixmap_free(pm);

    CHECK(truncate(path, 40) == 0);
    CHECK(pixcache_pixmap_load(path) == NULL);
    expect_decode_failure();

    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fputs("plain text, not an image at all", f) >= 0);
    CHECK(fclose(f) == 0);
    CHECK(pixcache_pixmap_load(path) == NULL);
    expect_error(PIXCACHE_RESULT_DECODE);

    /* A GIF signature with a garbage header: whatever the decoder makes of the bogus screen
     * size (here 0x6220 x 0x7475 pixels), it is an error, not a crash or a huge allocation. */
    f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fputs("GIF89a but not really", f) >= 0);
    CHECK(fclose(f) == 0);
    CHECK(pixcache_pixmap_load(path) == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_DECODE ||
          pixcache_last_result() == PIXCACHE_RESULT_IO ||
          pixcache_last_result() == PIXCACHE_RESULT_TOO_LARGE);
    CHECK(pixcache_last_error()[0] != '\0');

    CHECK(truncate(path, 0) == 0);
    CHECK(pixcache_pixmap_load(path) == NULL);
    expect_decode_failure();

    CHECK(unlink(path) == 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* the test names reach the log even if an assert fires */
    /* Fresh process: no error yet, and the message is "" rather than NULL. */
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OK);
    CHECK(pixcache_last_error() != NULL && pixcache_last_error()[0] == '\0');

    test_success_clears_after_anything(); /* first: see its comment */
    test_null_cache_functions();
    test_null_find();
    test_null_find_key();
    test_null_insert();
    test_null_insert_key();
    test_null_replace();
    test_null_remove();
    test_null_pixmap_functions();
    test_null_assign();
    test_null_load();
    test_null_wrap_arguments_are_allowed();
    test_null_n_variants();
    test_free_null_is_a_no_op();
    test_free_keeps_the_last_error();
    test_free_global_is_ignored();
    test_invalid_utf8_keys();
    test_invalid_utf8_on_global();
    test_unknown_formats();
    test_absurd_sizes();
    test_zero_sizes_give_null();
    test_wrap_bad_depth();
    test_invalid_keys();
    test_refused();
    test_success_clears();
    test_getters_do_not_clear();
    test_errors_are_per_thread();
    test_result_strings();
    test_set_error();
    test_pixels_of_foreign_and_null();
    test_load_from_memory();
    test_load_file();

    pixcache_clear(pixcache_global());
    CHECK(pixcache_total_used(pixcache_global()) == 0);
    printf("%d checks passed\n", checks);
    return 0;
}

/* test_abi_v1.c: a program built against 0.1's header keeps working with this library.
 *
 * 0.2 grew PixcacheStats and made `pixcache_stats` a macro for pixcache_stats_v2; the library
 * still exports the `pixcache_stats` symbol with 0.1's layout. This program is what a 0.1
 * binary is: it does NOT include pixcache.h, declares the few functions it uses as 0.1's header
 * declared them, and calls `pixcache_stats` by that name, getting 0.1's struct back.
 *
 * What it tests:
 * - the returned struct lands in a frame followed by 64 guard bytes (0xAB): 0.1's caller sets
 *   aside room for 0.1's struct only, so a library writing the longer 0.2 struct would
 *   overwrite the guard. The call is made both as declared (the compiler picks the return
 *   slot) and, on x86-64 System V, with the hidden return pointer passed explicitly, so the
 *   callee is sure to write straight into the guarded frame;
 * - the values are right: entries, total_kb, limit_kb, hits, misses, inserts, evictions and
 *   refused after a known sequence of operations, on a fresh cache and after clear;
 * - NULL gives the all-zero struct (and still respects the guard).
 *
 * Every pixmap and cache is freed (valgrind-clean).
 */
#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- 0.1's declarations, as a 0.1 program saw them ---------------------------------------- */

typedef struct PixcacheCache PixcacheCache;
typedef struct PixcachePixmap PixcachePixmap;
typedef struct PixcacheKey {
    uint64_t id;
} PixcacheKey;

/* 0.1's PixcacheStats, under a name of this program's own. */
typedef struct Stats01 {
    size_t entries;
    int32_t total_kb;
    int32_t limit_kb;
    uint64_t hits;
    uint64_t misses;
    uint64_t inserts;
    uint64_t evictions;
    uint64_t refused;
} Stats01;

#define FORMAT_RGBA8888 1u

PixcacheCache *pixcache_cache_new(int32_t limit_kb);
void pixcache_cache_free(PixcacheCache *cache);
void pixcache_set_cache_limit(PixcacheCache *cache, int32_t limit_kb);
Stats01 pixcache_stats(const PixcacheCache *cache);
PixcachePixmap *pixcache_pixmap_new(uint32_t width, uint32_t height, uint32_t format);
void pixcache_pixmap_free(PixcachePixmap *pm);
bool pixcache_insert(PixcacheCache *cache, const char *key, const PixcachePixmap *pm);
bool pixcache_find(PixcacheCache *cache, const char *key, PixcachePixmap *out);
bool pixcache_remove(PixcacheCache *cache, const char *key);
void pixcache_clear(PixcacheCache *cache);
PixcacheKey pixcache_insert_key(PixcacheCache *cache, const PixcachePixmap *pm);
int32_t pixcache_total_used(const PixcacheCache *cache);
const char *pixcache_version(void);

/* ---- checks ------------------------------------------------------------------------------- */

static unsigned long checks;

#include "check.h"

#define GUARD 64

/* The struct and, right after it, the guard bytes. */
typedef struct {
    Stats01 stats;
    unsigned char guard[GUARD];
} Frame;

_Static_assert(sizeof(Stats01) == 56, "0.1's PixcacheStats is 56 bytes on LP64");
_Static_assert(offsetof(Frame, guard) == sizeof(Stats01), "the guard follows the struct");

static void check_guard(const Frame *f, const char *how) {
    for (size_t i = 0; i < GUARD; ++i) {
        if (f->guard[i] != 0xAB) {
            fprintf(stderr, "%s: guard byte %zu after the 0.1 struct is 0x%02X: overwritten\n",
                    how, i, f->guard[i]);
        }
        CHECK_EQ(f->guard[i], 0xAB);
    }
}

/* The call as a 0.1 program compiles it: into a frame whose address does not escape before the
 * call, so the compiler may (and GCC/Clang do) pass the frame itself as the return slot. */
static Stats01 stats_declared(const PixcacheCache *c) {
    Frame f;
    memset(&f, 0xAB, sizeof f);
    f.stats = pixcache_stats(c);
    check_guard(&f, "declared call");
    return f.stats;
}

#if defined(__x86_64__) && !defined(_WIN32)
/* x86-64 System V: a 56-byte struct is returned through a hidden pointer passed as the first
 * argument (and given back in rax). Calling the symbol with that pointer explicit makes the
 * library write straight into the guarded frame, whatever the compiler would have chosen. */
typedef void *(*StatsSret)(Stats01 *ret, const PixcacheCache *c);

static Stats01 stats_explicit(const PixcacheCache *c) {
    Frame f;
    memset(&f, 0xAB, sizeof f);
    StatsSret fn = (StatsSret)(void (*)(void))pixcache_stats;
    void *ret = fn(&f.stats, c);
    CHECK(ret == (void *)&f.stats);
    check_guard(&f, "explicit return pointer");
    return f.stats;
}
#define HAVE_EXPLICIT 1
#else
#define HAVE_EXPLICIT 0
#endif

static void expect(const PixcacheCache *c, size_t entries, int32_t total_kb, int32_t limit_kb,
                   uint64_t hits, uint64_t misses, uint64_t inserts, uint64_t evictions,
                   uint64_t refused) {
    Stats01 got[2];
    int n = 0;
    got[n++] = stats_declared(c);
#if HAVE_EXPLICIT
    got[n++] = stats_explicit(c);
#endif
    for (int i = 0; i < n; ++i) {
        CHECK_EQ(got[i].entries, entries);
        CHECK_EQ(got[i].total_kb, total_kb);
        CHECK_EQ(got[i].limit_kb, limit_kb);
        CHECK_EQ(got[i].hits, hits);
        CHECK_EQ(got[i].misses, misses);
        CHECK_EQ(got[i].inserts, inserts);
        CHECK_EQ(got[i].evictions, evictions);
        CHECK_EQ(got[i].refused, refused);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("/abi_v1/stats_returns_0_1_struct_within_its_frame (library %s, explicit sret: %s)\n",
           pixcache_version(), HAVE_EXPLICIT ? "yes" : "no");
    CHECK(pixcache_version() != NULL);

    PixcacheCache *c = pixcache_cache_new(48);
    assert(c != NULL);
    expect(c, 0, 0, 48, 0, 0, 0, 0, 0);

    PixcachePixmap *p16 = pixcache_pixmap_new(64, 64, FORMAT_RGBA8888); /* 16 KB */
    PixcachePixmap *huge = pixcache_pixmap_new(128, 130, FORMAT_RGBA8888); /* 65 KB */
    assert(p16 != NULL && huge != NULL);
    CHECK(pixcache_insert(c, "a", p16));
    CHECK(pixcache_insert(c, "b", p16));
    PixcacheKey k = pixcache_insert_key(c, p16); /* a b k: 48 */
    CHECK(k.id != 0);
    CHECK(pixcache_find(c, "a", NULL));   /* hit; b k a */
    CHECK(pixcache_find(c, "a", NULL));   /* hit */
    CHECK(!pixcache_find(c, "zz", NULL)); /* miss */
    expect(c, 3, 48, 48, 2, 1, 3, 0, 0);

    CHECK(pixcache_insert(c, "c", p16)); /* evicts b */
    CHECK(!pixcache_find(c, "b", NULL)); /* miss */
    CHECK(!pixcache_insert(c, "h", huge)); /* refused */
    expect(c, 3, 48, 48, 2, 2, 4, 1, 1);

    pixcache_set_cache_limit(c, 16); /* evicts k and a */
    expect(c, 1, 16, 16, 2, 2, 4, 3, 1);
    CHECK(pixcache_remove(c, "c"));
    pixcache_set_cache_limit(c, 1000);
    CHECK(pixcache_insert(c, "d", p16));
    CHECK_EQ(pixcache_total_used(c), 16);
    expect(c, 1, 16, 1000, 2, 2, 5, 3, 1);
    pixcache_clear(c);
    expect(c, 0, 0, 1000, 2, 2, 5, 3, 1);

    /* NULL: the all-zero struct, and the guard still intact. */
    expect(NULL, 0, 0, 0, 0, 0, 0, 0, 0);

    pixcache_cache_free(c);
    pixcache_pixmap_free(p16);
    pixcache_pixmap_free(huge);
    printf("%lu checks passed\n", checks);
    return 0;
}

/* demo.c: the find-or-render idiom of QPixmapCache, in C, against libpixcache.
 *
 * Build and run it with `scripts/demo.sh` (README, first command). It renders a few "icons",
 * caches them in the process-wide cache, finds them again, overflows a small private cache to
 * show least-recently-used eviction, and prints the statistics. It exits non-zero if anything
 * the cache promises does not hold, so the test suite runs it too.
 */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "pixcache.h"

/* Looks an icon up; on a miss renders it (here: fills it with a colour) and caches it. */
static PixcachePixmap *icon(PixcacheCache *cache, const char *name, uint8_t shade, int *rendered) {
    PixcachePixmap *pm = pixcache_pixmap_new_null();
    if (pixcache_find(cache, name, pm)) {
        return pm; /* shares the cached pixels: no copy */
    }
    pixcache_pixmap_free(pm);
    pm = pixcache_pixmap_new(64, 64, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    if (pm == NULL) {
        fprintf(stderr, "cannot make a pixmap: %s\n", pixcache_last_error());
        return NULL;
    }
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    memset(px, shade, pixcache_pixmap_stride(pm) * pixcache_pixmap_height(pm));
    ++*rendered;
    if (!pixcache_insert(cache, name, pm)) {
        fprintf(stderr, "not cached: %s\n", pixcache_last_error());
    }
    return pm;
}

int main(void) {
    printf("pixcache %s (header %s)\n", pixcache_version(), PIXCACHE_VERSION_STRING);
    PixcacheCache *global = pixcache_global();
    printf("global cache limit: %d KB\n", pixcache_cache_limit(global));

    const char *names[] = {"icon:open", "icon:save", "icon:quit"};
    int rendered = 0;
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 3; ++i) {
            PixcachePixmap *pm = icon(global, names[i], (uint8_t)(40 * i), &rendered);
            assert(pm != NULL);
            assert(pixcache_pixmap_pixels(pm)[0] == (uint8_t)(40 * i));
            pixcache_pixmap_free(pm);
        }
    }
    printf("3 icons drawn 3 times: rendered %d times, total %d KB\n", rendered,
           pixcache_total_used(global));
    assert(rendered == 3);
    assert(pixcache_total_used(global) == 3 * 16);

    /* A private cache of 64 KB holds four 64x64 pixmaps (16 KB each): the fifth evicts the
     * least recently used one. */
    PixcacheCache *small = pixcache_cache_new(64);
    PixcachePixmap *tile = pixcache_pixmap_new(64, 64, PIXCACHE_FORMAT_RGBA8888);
    PixcacheKey keys[5];
    for (int i = 0; i < 4; ++i) keys[i] = pixcache_insert_key(small, tile);
    pixcache_find_key(small, keys[0], NULL); /* touch the oldest: now the newest */
    keys[4] = pixcache_insert_key(small, tile);
    printf("after a fifth insert into 64 KB: key0 %s, key1 %s\n",
           pixcache_key_is_valid(small, keys[0]) ? "kept" : "evicted",
           pixcache_key_is_valid(small, keys[1]) ? "kept" : "evicted");
    assert(pixcache_key_is_valid(small, keys[0]));
    assert(!pixcache_key_is_valid(small, keys[1]));
    assert(pixcache_key_is_valid(small, keys[4]));

    PixcacheStats st = pixcache_stats(small);
    printf("small cache: %zu entries, %d/%d KB, %llu hits, %llu inserts, %llu evictions\n",
           st.entries, st.total_kb, st.limit_kb, (unsigned long long)st.hits,
           (unsigned long long)st.inserts, (unsigned long long)st.evictions);
    assert(st.entries == 4 && st.evictions == 1);

    /* Errors are values plus a message, never a crash. */
    assert(pixcache_pixmap_new(1u << 30, 1u << 30, PIXCACHE_FORMAT_RGBA8888) == NULL);
    printf("a 2^30 x 2^30 pixmap: %s (%s)\n", pixcache_last_error(),
           pixcache_result_str(pixcache_last_result()));

    pixcache_pixmap_free(tile);
    pixcache_cache_free(small);
    pixcache_clear(global);
    printf("demo OK\n");
    return 0;
}

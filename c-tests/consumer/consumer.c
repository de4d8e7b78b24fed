/* A C program built against the installed pixcache (CMake find_package or pkg-config). It checks
 * that the header and the library it runs with agree, then exercises the cache once. */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include <pixcache.h>

int main(void) {
    assert(strcmp(pixcache_version(), PIXCACHE_VERSION_STRING) == 0);
    PixcacheCache *cache = pixcache_cache_new(64);
    PixcachePixmap *pm = pixcache_pixmap_new(64, 64, PIXCACHE_FORMAT_RGBA8888);
    assert(pm != NULL);
    assert(pixcache_insert(cache, "a", pm));
    assert(pixcache_total_used(cache) == 16);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    assert(pixcache_find(cache, "a", out));
    assert(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(pm));
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(cache);
    printf("consumer_c: pixcache %s OK\n", pixcache_version());
    return 0;
}

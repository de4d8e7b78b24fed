// The generated header compiles as C++17 (with -Wall -Wextra -Werror -pedantic) and its
// functions link from C++ (extern "C").
#undef NDEBUG
#include <cassert>
#include <cstring>
#include <type_traits>

#include "pixcache.h"

static_assert(std::is_trivially_copyable<PixcacheKey>::value, "keys are plain values");
static_assert(sizeof(PixcacheKey) == 8, "a key is one uint64_t");
static_assert(PIXCACHE_VERSION_NUMBER == PIXCACHE_VERSION_MAJOR * 10000 + PIXCACHE_VERSION_MINOR * 100 + PIXCACHE_VERSION_PATCH,
              "version number is computed from its parts");

int main() {
    assert(std::strcmp(pixcache_version(), PIXCACHE_VERSION_STRING) == 0);
    PixcacheCache *cache = pixcache_cache_new(100);
    PixcachePixmap *pm = pixcache_pixmap_new(8, 8, PIXCACHE_FORMAT_RGBA8888);
    PixcacheKey key = pixcache_insert_key(cache, pm);
    assert(pixcache_key_is_valid(cache, key));
    pixcache_pixmap_free(pm);
    pixcache_cache_free(cache);
    return 0;
}

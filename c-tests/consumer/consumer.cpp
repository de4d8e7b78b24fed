// A C++17 program built against the installed pixcache, using pixcache.hpp.
#undef NDEBUG
#include <cassert>
#include <cstdio>

#include <pixcache.hpp>

int main() {
    pixcache::Pixmap pm(64, 64);
    pixcache::PixmapCache::Key key = pixcache::PixmapCache::insert(pm);
    assert(key.isValid());
    pixcache::Pixmap out;
    assert(pixcache::PixmapCache::find(key, &out) && out.cacheKey() == pm.cacheKey());
    pixcache::PixmapCache::clear();
    assert(!key.isValid());
    std::printf("consumer_cpp: pixcache %s OK\n", pixcache_version());
    return 0;
}

// app_lifetime.cpp: destroying the application object clears the cache, as it clears
// QPixmapCache: entries and generated keys made while one QGuiApplication lived are gone once it
// is destroyed and another is made, in QPixmapCache and in pixcache::qt::PixmapCache alike; the
// adapter does it again for every later application object; and the process-wide pixcache
// cache is cleared as a whole (entries put there through the C API too), with every cached
// QPixmap copy deleted before the application finishes tearing down.
#undef NDEBUG
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>
#include <cassert>
#include <cstdio>

#include "pixcache_qt.hpp"

using PC = pixcache::qt::PixmapCache;

static int checks = 0;
#define CHECK(c) (assert(c), ++checks)

int main(int argc, char **argv) {
    QPixmapCache::Key kq;
    PC::Key kp;
    for (int round = 0; round < 3; ++round) {
        QGuiApplication app(argc, argv);
        // What the previous application object left is gone, in Qt and in the adapter.
        CHECK(QPixmapCache::find("a", nullptr) == PC::find("a", nullptr));
        CHECK(!PC::find("a", nullptr));
        CHECK(kq.isValid() == kp.isValid());
        CHECK(!kp.isValid());
        CHECK(pixcache_stats(pixcache_global()).entries == 0);

        QPixmap pm(8, 8);
        pm.fill(Qt::red);
        CHECK(QPixmapCache::insert("a", pm) && PC::insert("a", pm));
        kq = QPixmapCache::insert(pm);
        kp = PC::insert(pm);
        CHECK(kq.isValid() && kp.isValid());
        CHECK(QPixmapCache::find("a", nullptr) && PC::find("a", nullptr));
        // An entry put into the same process-wide cache through the C API.
        PixcachePixmap *c = pixcache_pixmap_new(4, 4, PIXCACHE_FORMAT_RGBA8888);
        CHECK(pixcache_insert(pixcache_global(), "c-api", c));
        pixcache_pixmap_free(c);
        CHECK(pixcache_stats(pixcache_global()).entries == 3);
        // The adapter's copies of pm (two entries) share its pixels, so pm is not detached.
        CHECK(!pm.isDetached());
    }
    // After the last application object: nothing left, every QPixmap copy deleted.
    CHECK(pixcache_stats(pixcache_global()).entries == 0);
    CHECK(pixcache_total_used(pixcache_global()) == 0);
    CHECK(!kp.isValid());
    std::printf("%d checks passed\n", checks);
    return 0;
}

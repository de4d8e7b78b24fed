// consumer_qt: inserts a QPixmap through pixcache::qt::PixmapCache and finds it again, sharing
// the same pixels. Exits 0 and prints "OK" when everything holds.
#include <QGuiApplication>
#include <QImage>
#include <QPixmap>
#include <cstdio>

#include <pixcache_qt.hpp>

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    using pixcache::qt::PixmapCache;
    QPixmap pm(32, 16);
    pm.fill(QColor(10, 200, 30));
    if (!PixmapCache::insert(QStringLiteral("consumer"), pm)) {
        std::fprintf(stderr, "insert failed: %s\n", pixcache_last_error());
        return 1;
    }
    QPixmap found;
    const bool hit = PixmapCache::find(QStringLiteral("consumer"), &found);
    const bool same = hit && found.cacheKey() == pm.cacheKey() && found.toImage().pixel(5, 5) == qRgb(10, 200, 30);
    const bool costed = PixmapCache::totalUsed() == 2;  // 32 x 16 x 32 bits = 2 KB
    std::printf("%s: hit %d, same pixels %d, %d KB\n", hit && same && costed ? "OK" : "FAILED", hit, same,
                PixmapCache::totalUsed());
    return hit && same && costed ? 0 : 1;
}

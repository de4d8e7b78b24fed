// adapter_api.cpp: pixcache::qt::PixmapCache beyond the differential test: findOrInsert (render
// once, hits do not render, exceptions rethrown and nothing cached), and that find hands back a
// QPixmap sharing the cached one (same cacheKey, the inserted QPixmap's data is shared).
#undef NDEBUG
#include <QGuiApplication>
#include <QPixmap>
#include <cassert>
#include <cstdio>
#include <stdexcept>

#include "pixcache_qt.hpp"

using PC = pixcache::qt::PixmapCache;

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    int checks = 0;
#define CHECK(c) (assert(c), ++checks)
    PC::clear();
    int renders = 0;
    auto render = [&] {
        ++renders;
        QPixmap pm(40, 20);
        pm.fill(Qt::blue);
        return pm;
    };
    QPixmap a, b;
    CHECK(PC::findOrInsert("button", &a, render));
    CHECK(PC::findOrInsert("button", &b, render));
    CHECK(renders == 1 && a.width() == 40 && a.cacheKey() == b.cacheKey());
    CHECK(PC::findOrInsert("button", nullptr, render) && renders == 1);
    bool thrown = false;
    try {
        PC::findOrInsert("broken", &a, []() -> QPixmap { throw std::runtime_error("no"); });
    } catch (const std::runtime_error &) {
        thrown = true;
    }
    CHECK(thrown && !PC::find("broken", nullptr));
    QPixmap original(16, 16);
    original.fill(Qt::red);
    CHECK(PC::insert("shared", original));
    QPixmap found;
    CHECK(PC::find("shared", &found) && found.cacheKey() == original.cacheKey());
    CHECK(PC::totalUsed() == 1 + 3);  // 16x16x32 = 1 KB, 40x20x32 = 3 KB
    PC::clear();
    std::printf("%d checks passed\n", checks);
    return 0;
}

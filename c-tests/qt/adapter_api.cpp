// adapter_api.cpp: pixcache::qt::PixmapCache beyond the differential test: findOrInsert (render
// once, hits do not render, exceptions rethrown and nothing cached, the whole key used, NUL
// characters included), that find hands back a QPixmap sharing the cached one (same cacheKey,
// the inserted QPixmap's data is shared), and that keys QPixmapCache tells apart (it compares
// UTF-16) stay apart although toUtf8() would merge them (lone surrogates), side by side with
// QPixmapCache.
#undef NDEBUG
#include <QGuiApplication>
#include <QPixmap>
#include <cassert>
#include <QPixmapCache>
#include <cstdio>
#include <stdexcept>
#include <vector>

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

    // findOrInsert keys are whole QStrings: "a\0b" is not "a".
    const QString nulKey = QString::fromLatin1("a\0b", 3);
    renders = 0;
    CHECK(PC::findOrInsert(nulKey, &a, render) && renders == 1);
    CHECK(PC::find(nulKey, nullptr) && !PC::find("a", nullptr));
    CHECK(PC::findOrInsert(nulKey, nullptr, render) && renders == 1);
    PC::clear();

    // Keys that toUtf8() would merge (a lone surrogate becomes a replacement character) or that
    // look like the adapter's escapes: Qt keeps them apart, and so must the adapter.
    const std::vector<QString> keys = {
        QString("icon?"),
        QString("icon") + QChar(char16_t(0xDBFF)),  // lone high surrogate at the end
        QString("icon") + QChar(char16_t(0xFFFD)),  // the replacement character itself
        QString(QChar(char16_t(0xD800))),           // lone high
        QString(QChar(char16_t(0xDC00))),           // lone low
        QString(QChar(char16_t(0xDC00))) + QChar(char16_t(0xD800)),  // reversed pair: two lone ones
        QString(QChar(char16_t(0xFDD0))) + QChar(char16_t(0xE000)),  // what 0xD800 is escaped to
        QString(QChar(char16_t(0xFDD0))),
        QString(QChar(char16_t(0xFDD0))) + QChar(char16_t(0xFDD0)),
        QString("x") + QChar(char16_t(0xD83D)) + QChar(char16_t(0xDE00)),  // a valid pair (U+1F600)
        QString::fromUtf8("x\xf0\x9f\x98\x80"),  // the same key, spelled as UTF-8: equal in both
    };
    QPixmapCache::clear();
    for (size_t i = 0; i < keys.size(); ++i) {
        QPixmap pm(int(i) + 1, 1);
        pm.fill(Qt::green);
        CHECK(QPixmapCache::insert(keys[i], pm));
        CHECK(PC::insert(keys[i], pm));
    }
    for (size_t i = 0; i < keys.size(); ++i) {
        QPixmap q, p;
        CHECK(QPixmapCache::find(keys[i], &q) && PC::find(keys[i], &p));
        if (q.width() != p.width())
            std::fprintf(stderr, "key %zu: Qt finds width %d, pixcache %d\n", i, q.width(), p.width());
        CHECK(q.width() == p.width());
    }
    // The last two keys are one key: 10 distinct entries of 1 KB each.
    CHECK(PC::totalUsed() == 10);
    for (size_t i = 0; i < keys.size(); ++i) {
        QPixmapCache::remove(keys[i]);
        PC::remove(keys[i]);
        for (size_t j = i + 1; j < keys.size(); ++j)
            CHECK(QPixmapCache::find(keys[j], nullptr) == PC::find(keys[j], nullptr));
    }
    CHECK(PC::totalUsed() == 0);
    // findOrInsert through such a key finds what insert put there.
    CHECK(PC::insert(keys[1], original));
    renders = 0;
    CHECK(PC::findOrInsert(keys[1], &a, render) && renders == 0 && a.cacheKey() == original.cacheKey());
    CHECK(PC::findOrInsert(keys[0], &a, render) && renders == 1);
    PC::clear();
    QPixmapCache::clear();

    // A null C string is the empty key in both (QString(nullptr) is the null, empty string).
    const char *volatile opaque = nullptr;
    const char *nullKey = opaque;
    CHECK(!QPixmapCache::find(nullKey, nullptr) && !PC::find(nullKey, nullptr));
    CHECK(QPixmapCache::insert(nullKey, original) && PC::insert(nullKey, original));
    CHECK(QPixmapCache::find("", nullptr) && PC::find("", nullptr));
    CHECK(PC::find(nullptr, &found) && found.cacheKey() == original.cacheKey());
    PC::clear();
    QPixmapCache::clear();
    std::printf("%d checks passed\n", checks);
    return 0;
}

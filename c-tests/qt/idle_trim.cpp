// idle_trim.cpp: the Qt adapter's idle trimming against Qt 6's own.
//
// Part 1, against Qt (about 95 s: Qt's interval is 30 s and cannot be changed): the same
// operations go to QPixmapCache and to pixcache::qt::PixmapCache (at Qt's interval) at the same
// moments, the event loop runs past each firing, and after each phase the entries left in the
// two caches must be the same:
//   A. eight 16 KB entries inserted: at the firing the total changed since the previous tick, so
//      only the least recently used entry goes;
//   B. nothing inserted for another interval: Qt 6.4's timer stopped after firing, nothing goes;
//   C. an entry re-inserted with the same cost (the total unchanged since the last tick): the
//      cache is trimmed to three quarters.
// Part 2, the adapter alone at a short interval (200 ms): the same three phases; an insert made
// on another thread does not arm the timer; clear() stops it; an interval of 0 turns it off.
//
// Usage: idle_trim [--quick]   (--quick: part 2 only)
#define Q_TEST_QPIXMAPCACHE
#include <QElapsedTimer>
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "pixcache_qt.hpp"

using PC = pixcache::qt::PixmapCache;
using namespace std::chrono_literals;

static int failures = 0;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                    \
        }                                                                  \
    } while (0)

static void runFor(std::chrono::milliseconds ms) {
    QElapsedTimer t;
    t.start();
    while (t.elapsed() < ms.count()) QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
}

static QPixmap pixmap16kb() {
    QPixmap pm(64, 64);
    pm.fill(Qt::gray);
    return pm;
}

// "x" for each of keys e0..e{n-1} present, "." for each absent, probed without changing order
// (a probe of every key, oldest first, refreshes them in their existing order).
template <typename Find>
static std::string survivors(int n, Find find) {
    std::string s;
    for (int i = 0; i < n; ++i) s += find(QStringLiteral("e%1").arg(i)) ? 'x' : '.';
    return s;
}

static std::string qtState(int n) {
    return survivors(n, [](const QString &k) { return QPixmapCache::find(k, nullptr); });
}
static std::string pxState(int n) {
    return survivors(n, [](const QString &k) { return PC::find(k, nullptr); });
}

static void againstQt() {
    const QPixmap pm = pixmap16kb();
    QPixmapCache::clear();
    PC::clear();
    PC::setIdleTrimInterval(30s);  // Qt's own
    for (int i = 0; i < 8; ++i) {
        QPixmapCache::insert(QStringLiteral("e%1").arg(i), pm);
        PC::insert(QStringLiteral("e%1").arg(i), pm);
    }
    std::printf("A. 8 entries, waiting for Qt's timer (31 s)...\n");
    runFor(31s);
    const std::string qa = qtState(8), pa = pxState(8);
    std::printf("   Qt: %s  pixcache: %s\n", qa.c_str(), pa.c_str());
    CHECK(qa == pa);
    CHECK(qa == ".xxxxxxx");  // the least recently used entry went

    std::printf("B. nothing inserted, another 31 s...\n");
    runFor(31s);
    const std::string qb = qtState(8), pb = pxState(8);
    std::printf("   Qt: %s  pixcache: %s\n", qb.c_str(), pb.c_str());
    CHECK(qb == pb);

    std::printf("C. e7 re-inserted at the same cost (total unchanged), 31 s...\n");
    QPixmapCache::insert(QStringLiteral("e7"), pm);
    PC::insert(QStringLiteral("e7"), pm);
    runFor(31s);
    const std::string qc = qtState(8), pc = pxState(8);
    std::printf("   Qt: %s  pixcache: %s (Qt totalUsed %d, pixcache %d KB)\n", qc.c_str(), pc.c_str(),
                QPixmapCache::totalUsed(), PC::totalUsed());
    CHECK(qc == pc);
    QPixmapCache::clear();
    PC::clear();
}

static void adapterAlone() {
    const QPixmap pm = pixmap16kb();
    PC::clear();
    PC::setIdleTrimInterval(200ms);
    CHECK(PC::idleTrimInterval() == 200ms);
    for (int i = 0; i < 8; ++i) PC::insert(QStringLiteral("e%1").arg(i), pm);
    runFor(400ms);
    CHECK(pxState(8) == ".xxxxxxx");  // changed since the last tick: one entry
    runFor(400ms);
    CHECK(pxState(8) == ".xxxxxxx");  // single shot: nothing more without an insert
    PC::insert(QStringLiteral("e7"), pm);  // same cost: the total is unchanged
    runFor(400ms);
    CHECK(PC::totalUsed() <= 112 * 3 / 4);  // trimmed to three quarters
    CHECK(pxState(8) == "...xxxxx");  // e1 and e2 went: 112 KB -> 80 KB

    // An insert on another thread does not arm the timer (in Qt it would not even insert).
    PC::clear();
    runFor(400ms);
    std::thread([&] {
        for (int i = 0; i < 4; ++i) PC::insert(QStringLiteral("e%1").arg(i), QPixmap());
    }).join();
    runFor(400ms);
    CHECK(pxState(4) == "xxxx");

    // clear() stops a running timer.
    PC::clear();
    PC::insert(QStringLiteral("e0"), pm);
    PC::clear();
    PC::insert(QStringLiteral("e1"), pm);  // armed again: fires 200 ms from now
    runFor(100ms);
    PC::clear();                           // stops it
    PC::insert(QStringLiteral("e2"), pm);  // arms a new 200 ms
    runFor(150ms);                         // past the first timer's time, before the second's
    CHECK(pxState(3) == "..x");

    // An interval of 0 turns it off.
    runFor(400ms);
    PC::clear();
    PC::setIdleTrimInterval(0ms);
    for (int i = 0; i < 4; ++i) PC::insert(QStringLiteral("e%1").arg(i), pm);
    runFor(400ms);
    CHECK(pxState(4) == "xxxx");
    PC::setIdleTrimInterval(30s);
    PC::clear();
}

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    adapterAlone();
    std::printf("adapter alone (200 ms interval): %s\n", failures ? "FAILED" : "ok");
    if (!quick) againstQt();
    std::printf("%s\n", failures ? "FAILED" : "idle trimming: same as Qt");
    return failures ? 1 : 0;
}

// lifecycle.cpp: QPixmapCache across the application object's life, built against Qt only.
// scripts/test-qt6-replace.sh runs each scenario with Qt's own cache and with libpixcache-qt6.so
// preloaded and requires identical transcripts. Each scenario ends by checking that the thread
// of the (last) application object is served: inserts, finds, keys and the limit.
//
// Scenarios (one per process: application objects are made and destroyed):
//   worker-total    a worker thread calls totalUsed(), which Qt serves on any thread
//   worker-flush    a worker thread calls flushDetachedPixmaps(), likewise
//   before-app      totalUsed() and flushDetachedPixmaps() before any application object, then
//                   an application object on another thread
//   recreate        QGuiApplication on main, destroyed, then one on another thread
//   recreate-widgets  the same with QApplication (whose destructor calls QPixmapCache::clear())
//   clear-between   QPixmapCache::clear() on main between two application objects, the second
//                   on another thread
//   same-thread     two QApplications, one after the other, on main
#define Q_TEST_QPIXMAPCACHE  // flushDetachedPixmaps() and totalUsed(), exported by Qt
#include <QApplication>
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>

#include <cstdio>
#include <cstring>
#include <thread>

namespace {

int argc_ = 1;
char arg0[] = "lifecycle";
char *argv_[] = {arg0, nullptr};

// What the current thread is served: each line must read 1 where Qt serves it.
void served(const char *tag) {
    QPixmap pm(8, 8);
    pm.fill(Qt::red);
    const bool inserted = QPixmapCache::insert(QStringLiteral("a"), pm);
    QPixmap out;
    const bool found = QPixmapCache::find(QStringLiteral("a"), &out);
    const QPixmapCache::Key k = QPixmapCache::insert(pm);
    const bool valid = k.isValid();
    const bool foundKey = QPixmapCache::find(k, &out);
    bool validElsewhere = false;
    std::thread([&] { validElsewhere = k.isValid(); }).join();
    std::printf("%s: insert=%d find=%d key valid=%d find key=%d valid elsewhere=%d limit=%d total=%d\n", tag,
                inserted, found, valid, foundKey, validElsewhere, QPixmapCache::cacheLimit(),
                QPixmapCache::totalUsed());
}

}  // namespace

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "";
    if (!std::strcmp(which, "worker-total")) {
        QGuiApplication app(argc_, argv_);
        // First of all, before the application's thread has made a call.
        std::thread([] { std::printf("worker totalUsed=%d\n", QPixmapCache::totalUsed()); }).join();
        served("after the worker");
        std::thread([] { std::printf("worker totalUsed=%d\n", QPixmapCache::totalUsed()); }).join();
    } else if (!std::strcmp(which, "worker-flush")) {
        QGuiApplication app(argc_, argv_);
        std::thread([] { QPixmapCache::flushDetachedPixmaps(); }).join();
        served("after the worker");
    } else if (!std::strcmp(which, "before-app")) {
        std::printf("no application: totalUsed=%d\n", QPixmapCache::totalUsed());
        QPixmapCache::flushDetachedPixmaps();
        std::thread([] {
            QGuiApplication app(argc_, argv_);
            served("application on a thread");
        }).join();
    } else if (!std::strcmp(which, "recreate")) {
        {
            QGuiApplication app(argc_, argv_);
            served("first (main)");
        }
        std::thread([] {
            QGuiApplication app(argc_, argv_);
            served("second (thread)");
        }).join();
    } else if (!std::strcmp(which, "recreate-widgets")) {
        {
            QApplication app(argc_, argv_);
            served("first (main)");
        }
        std::thread([] {
            QApplication app(argc_, argv_);
            served("second (thread)");
        }).join();
    } else if (!std::strcmp(which, "clear-between")) {
        {
            QGuiApplication app(argc_, argv_);
            served("first (main)");
        }
        QPixmapCache::clear();
        std::thread([] {
            QGuiApplication app(argc_, argv_);
            served("second (thread)");
        }).join();
    } else if (!std::strcmp(which, "same-thread")) {
        {
            QApplication app(argc_, argv_);
            served("first (main)");
        }
        {
            QApplication app(argc_, argv_);
            served("second (main)");
        }
    } else {
        std::fprintf(stderr, "usage: lifecycle SCENARIO (see the source)\n");
        return 2;
    }
    return 0;
}

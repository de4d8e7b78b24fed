// idle_trim.cpp: Qt's idle trimming, in real time, through QPixmapCache only. Built against Qt
// only; scripts/test-qt6-replace.sh runs each scenario with Qt's own cache and through
// pixcache-run and compares what they print.
//
// Qt 6.4 starts a single-shot 30 s timer on a successful insert or replace when none runs.
// When it fires, the cache loses its least recently used entry if the total changed since the
// previous firing, else down to three quarters of it; clear() stops the timer. Qt fires it on a
// whole second, 29.5 s to 30.5 s after it started, so each checkpoint keeps 1.5 s away.
//
// Usage: idle_trim A|B|C|D|E   (one scenario, about 35 s; prints its checkpoints' states)
//   A  string keys: 8 entries, one re-inserted halfway (the running timer keeps its time)
//   B  string keys: flushDetachedPixmaps(), then the timer
//   C  string keys: clear() early stops the first timer, new entries start another
//   D  generated keys: 8 entries, one more halfway (states by Key::isValid())
//   E  generated keys: a refused insert (costlier than the whole cache) starts no timer; the
//      entries inserted 3 s later start it
#define Q_TEST_QPIXMAPCACHE  // declares flushDetachedPixmaps(), which libQt6Gui exports
#include <QElapsedTimer>
#include <QEventLoop>
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>
#include <QTimer>

#include <cstdio>
#include <string>
#include <vector>

static QPixmap pixmap(int side) {
    QPixmap pm(side, side);  // 64 x 64 x 32 bits = 16 KB
    pm.fill(Qt::gray);
    return pm;
}

static QString key(int i) { return QStringLiteral("e%1").arg(i); }

// Runs the event loop until `ms` after `clock` started.
static void runUntil(const QElapsedTimer &clock, qint64 ms) {
    while (clock.elapsed() < ms) {
        QEventLoop loop;
        QTimer::singleShot(int(ms - clock.elapsed()), Qt::PreciseTimer, &loop, &QEventLoop::quit);
        loop.exec();
    }
}

// "x" for each of e0..e7 present, "." for each absent (found in key order: every scenario's
// entries are already in that order, so the probe changes nothing).
static std::string strings() {
    std::string s;
    for (int i = 0; i < 8; ++i) s += QPixmapCache::find(key(i), nullptr) ? 'x' : '.';
    return s;
}

static std::string valid(const std::vector<QPixmapCache::Key> &keys) {
    std::string s;
    for (const auto &k : keys) s += k.isValid() ? 'x' : '.';
    return s;
}

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    if (argc != 2) {
        std::fprintf(stderr, "usage: idle_trim A|B|C|D|E\n");
        return 2;
    }
    const QPixmap pm = pixmap(64);
    QPixmapCache::setCacheLimit(10240);
    QElapsedTimer clock;
    clock.start();
    std::string out;
    switch (argv[1][0]) {
    case 'A':
        for (int i = 0; i < 8; ++i) QPixmapCache::insert(key(i), pm);
        runUntil(clock, 15000);
        QPixmapCache::insert(key(7), pm);
        runUntil(clock, 28000);
        out = strings();
        runUntil(clock, 32000);
        out += " " + strings();
        break;
    case 'B':
        for (int i = 0; i < 8; ++i) QPixmapCache::insert(key(i), pm);
        QPixmapCache::flushDetachedPixmaps();
        out = strings();
        runUntil(clock, 32000);
        out += " " + strings();
        break;
    case 'C':
        for (int i = 0; i < 8; ++i) QPixmapCache::insert(key(i), pm);
        runUntil(clock, 3000);
        QPixmapCache::clear();
        for (int i = 0; i < 4; ++i) QPixmapCache::insert(key(i), pm);
        runUntil(clock, 31750);
        out = strings();
        runUntil(clock, 35000);
        out += " " + strings();
        break;
    case 'D': {
        std::vector<QPixmapCache::Key> keys;
        for (int i = 0; i < 8; ++i) keys.push_back(QPixmapCache::insert(pm));
        runUntil(clock, 15000);
        keys.push_back(QPixmapCache::insert(pm));  // the timer runs: it keeps its time
        runUntil(clock, 28000);
        out = valid(keys);
        runUntil(clock, 32000);
        out += " " + valid(keys);
        break;
    }
    case 'E': {
        QPixmapCache::setCacheLimit(100);
        const QPixmapCache::Key refused = QPixmapCache::insert(pixmap(256));  // 256 KB > 100 KB
        QPixmapCache::setCacheLimit(10240);
        std::vector<QPixmapCache::Key> keys{refused};
        runUntil(clock, 3000);
        for (int i = 0; i < 8; ++i) keys.push_back(QPixmapCache::insert(pm));
        runUntil(clock, 31750);  // a timer the refused insert started would have fired
        out = valid(keys);
        runUntil(clock, 35000);  // the one the entries started has
        out += " " + valid(keys);
        break;
    }
    default:
        std::fprintf(stderr, "usage: idle_trim A|B|C|D|E\n");
        return 2;
    }
    QPixmapCache::clear();
    std::printf("%s %s\n", argv[1], out.c_str());
    return 0;
}

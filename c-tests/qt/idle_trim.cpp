// idle_trim.cpp: the Qt adapter's idle trimming against Qt 6's own, in real time.
//
// Qt 6.4's idle timer runs 30 s after an arming insert and its interval cannot be changed, so
// the Qt side of each scenario runs in a child process of its own (this program, with --qt X),
// all three at once: about 35 s in all. Meanwhile this process runs the same scenarios on
// pixcache::qt::PixmapCache with a 4 s interval, and then compares the entries left at each
// checkpoint with what Qt left (and with what Qt 6.4.2's rule says, written out below):
//   A. eight 16 KB entries, and half an interval later the last one again (the running timer
//      keeps its time): before the timer fires nothing goes; when it fires the total has changed
//      since the previous trim (none: 0), so only the least recently used entry goes;
//   B. eight 16 KB entries, then flushDetachedPixmaps() (Qt's exported 3/4 trim, which also sets
//      the "previous total"): six left; when the timer fires the total is unchanged, so the cache
//      is trimmed to three quarters (96 KB -> 72 KB: four left);
//   C. eight entries, then (before the timer fires) clear() and four new entries: clear() killed
//      the first timer, so when it would have fired nothing goes; the second insert armed a new
//      one, which then takes the least recently used entry.
// The rest runs on the adapter alone, at 400 ms (Qt cannot do it): an insert made on another
// thread does not arm the timer (Qt's would fail); a clear() made on another thread stops it;
// an interval of 0 turns it off, also for a running timer; the timer fires once per arming.
// c-tests/qt/idle_trim_clock.cpp checks the same rule against Qt step by step on a virtual clock.
//
// Usage: idle_trim [--quick]   (--quick: the adapter alone, no Qt comparison: a few seconds)
//        idle_trim --qt A|B|C  (one scenario on QPixmapCache, printed; run by the above)
#define Q_TEST_QPIXMAPCACHE
#include <QElapsedTimer>
#include <QEventLoop>
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>
#include <QProcess>
#include <QTimer>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "pixcache_qt.hpp"

using PC = pixcache::qt::PixmapCache;
using namespace std::chrono_literals;

static int failures = 0;
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                    \
        }                                                                  \
    } while (0)

static QPixmap pixmap16kb() {
    QPixmap pm(64, 64);  // 64 * 64 * 32 bits = 16 KB
    pm.fill(Qt::gray);
    return pm;
}

static QString key(int i) { return QStringLiteral("e%1").arg(i); }

// One side of a scenario: QPixmapCache or the adapter.
struct QtSide {
    static bool insert(int i, const QPixmap &pm) { return QPixmapCache::insert(key(i), pm); }
    static bool find(int i) { return QPixmapCache::find(key(i), nullptr); }
    static void clear() { QPixmapCache::clear(); }
    static void flushDetachedPixmaps() { QPixmapCache::flushDetachedPixmaps(); }
};
struct AdapterSide {
    static bool insert(int i, const QPixmap &pm) { return PC::insert(key(i), pm); }
    static bool find(int i) { return PC::find(key(i), nullptr); }
    static void clear() { PC::clear(); }
    static void flushDetachedPixmaps() { PC::flushDetachedPixmaps(); }
};

// "x" for each of e0..e7 present, "." for each absent. The probe refreshes the entries it finds
// in key order; every scenario's entries are already in that order, so it changes nothing.
template <typename Side>
static std::string state() {
    std::string s;
    for (int i = 0; i < 8; ++i) s += Side::find(i) ? 'x' : '.';
    return s;
}

// Runs the event loop (sleeping while there is nothing to do) until `ms` after `clock` started.
static void runUntil(const QElapsedTimer &clock, qint64 ms) {
    while (clock.elapsed() < ms) {
        QEventLoop loop;
        QTimer::singleShot(int(ms - clock.elapsed()), Qt::PreciseTimer, &loop, &QEventLoop::quit);
        loop.exec();
    }
}

// When things happen, in ms from the first insert. Qt's 30 s timer is a very coarse one (it fires
// on a whole second, between 29.5 s and 30.5 s after arming); the adapter's 4 s one is coarse
// (within 5%: 3.8 s to 4.2 s). Each checkpoint keeps at least 0.2 s from any possible firing.
struct Times {
    qint64 interval;
    qint64 midway;   // A: an insert while the timer runs
    qint64 before;   // A: before the timer can fire
    qint64 after;    // A, B: after it surely fired
    qint64 restart;  // C: clear() and new entries, well before the first timer's time
    qint64 between;  // C: after the first timer's time, before the second's
    qint64 last;     // C: after the second timer's time
};
static constexpr Times kQt{30000, 15000, 28000, 32000, 3000, 31750, 35000};
static constexpr Times kAdapter{4000, 2000, 3600, 4500, 1000, 4450, 5750};

// Runs scenario `name` on `Side` and returns its checkpoints' states, space-separated.
template <typename Side>
static std::string scenario(char name, const Times &t) {
    const QPixmap pm = pixmap16kb();
    Side::clear();
    QElapsedTimer clock;
    clock.start();
    for (int i = 0; i < 8; ++i) Side::insert(i, pm);
    std::string out;
    switch (name) {
    case 'A':
        runUntil(clock, t.midway);
        Side::insert(7, pm);
        runUntil(clock, t.before);
        out = state<Side>();
        runUntil(clock, t.after);
        out += " " + state<Side>();
        break;
    case 'B':
        Side::flushDetachedPixmaps();
        out = state<Side>();
        runUntil(clock, t.after);
        out += " " + state<Side>();
        break;
    case 'C':
        runUntil(clock, t.restart);
        Side::clear();
        for (int i = 0; i < 4; ++i) Side::insert(i, pm);
        runUntil(clock, t.between);
        out = state<Side>();
        runUntil(clock, t.last);
        out += " " + state<Side>();
        break;
    }
    Side::clear();
    return out;
}

// What Qt 6.4.2's rule gives (see the top of this file).
static const std::map<char, std::string> kExpected = {
    {'A', "xxxxxxxx .xxxxxxx"},
    {'B', "..xxxxxx ....xxxx"},
    {'C', "xxxx.... .xxx...."},
};

// The adapter alone, at a short interval (400 ms): what Qt has no counterpart for.
static void adapterAlone() {
    const QPixmap pm = pixmap16kb();
    QElapsedTimer clock;
    PC::clear();
    PC::setIdleTrimInterval(400ms);
    CHECK(PC::idleTrimInterval() == 400ms);

    // It fires once per arming: nothing more goes without another insert.
    clock.start();
    for (int i = 0; i < 8; ++i) PC::insert(key(i), pm);  // armed: fires at 400 ms
    runUntil(clock, 800);
    CHECK(state<AdapterSide>() == ".xxxxxxx");
    runUntil(clock, 1600);
    CHECK(state<AdapterSide>() == ".xxxxxxx");
    PC::insert(key(7), pm);  // the same cost: the total is unchanged since the last trim
    runUntil(clock, 2400);
    CHECK(state<AdapterSide>() == "...xxxxx");  // three quarters: 112 KB -> 84 KB, so 80 KB

    // An insert made on another thread does not arm the timer (in Qt it would not even insert).
    PC::clear();
    clock.restart();
    std::thread([&] {
        for (int i = 0; i < 8; ++i) PC::insert(key(i), pm);
    }).join();
    runUntil(clock, 1000);
    CHECK(state<AdapterSide>() == "xxxxxxxx");

    // A clear() made on another thread stops the timer: it trims nothing when it fires, and the
    // next insert on this thread arms a new one.
    PC::clear();
    clock.restart();
    for (int i = 0; i < 8; ++i) PC::insert(key(i), pm);  // armed: would fire at 400 ms
    runUntil(clock, 200);
    std::thread([] { PC::clear(); }).join();
    for (int i = 0; i < 8; ++i) PC::insert(key(i), pm);  // armed anew: fires at 600 ms
    runUntil(clock, 500);
    CHECK(state<AdapterSide>() == "xxxxxxxx");
    runUntil(clock, 1100);
    CHECK(state<AdapterSide>() == ".xxxxxxx");

    // An interval of 0 turns it off: nothing arms it, and a running timer trims nothing, whether
    // it is turned off on this thread or on another.
    for (bool elsewhere : {false, true}) {
        PC::setIdleTrimInterval(400ms);
        PC::clear();
        clock.restart();
        for (int i = 0; i < 8; ++i) PC::insert(key(i), pm);  // armed: fires at 400 ms
        if (elsewhere) std::thread([] { PC::setIdleTrimInterval(0ms); }).join();
        else PC::setIdleTrimInterval(0ms);
        CHECK(PC::idleTrimInterval() == 0ms);
        PC::insert(key(7), pm);
        runUntil(clock, 1000);
        CHECK(state<AdapterSide>() == "xxxxxxxx");
    }
    PC::setIdleTrimInterval(30s);
    PC::clear();
}

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    if (argc == 3 && std::strcmp(argv[1], "--qt") == 0) {  // a child: one scenario on Qt
        std::printf("%s\n", scenario<QtSide>(argv[2][0], kQt).c_str());
        return 0;
    }
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;

    std::map<char, QProcess *> children;
    if (!quick) {
        std::printf("Qt's side: scenarios A, B, C at Qt's 30 s interval, in parallel (about 35 s)\n");
        std::fflush(stdout);
        for (char name : {'A', 'B', 'C'}) {
            auto *child = new QProcess(&app);
            child->setProcessChannelMode(QProcess::ForwardedErrorChannel);
            child->start(QCoreApplication::applicationFilePath(), {QStringLiteral("--qt"), QString(QChar(name))});
            children[name] = child;
        }
    }

    PC::setIdleTrimInterval(std::chrono::milliseconds(kAdapter.interval));
    std::map<char, std::string> adapter;
    for (char name : {'A', 'B', 'C'}) {
        adapter[name] = scenario<AdapterSide>(name, kAdapter);
        std::printf("%c  adapter (4 s): %s   Qt 6.4.2's rule: %s\n", name, adapter[name].c_str(),
                    kExpected.at(name).c_str());
        CHECK(adapter[name] == kExpected.at(name));
    }
    adapterAlone();
    std::printf("adapter alone (400 ms): off-thread inserts do not arm, off-thread clear() and 0 stop it: %s\n",
                failures ? "FAILED" : "ok");

    for (auto &[name, child] : children) {
        CHECK(child->waitForFinished(90000));
        CHECK(child->exitStatus() == QProcess::NormalExit && child->exitCode() == 0);
        const std::string qt = child->readAllStandardOutput().trimmed().toStdString();
        std::printf("%c  Qt (30 s):      %s   adapter: %s\n", name, qt.c_str(), adapter[name].c_str());
        CHECK(qt == adapter[name]);
        CHECK(qt == kExpected.at(name));
    }
    std::printf("%s\n", failures ? "FAILED" : quick ? "idle trimming (adapter alone): ok" : "idle trimming: same as Qt");
    return failures ? 1 : 0;
}

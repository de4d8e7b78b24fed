// idle_trim_clock.cpp: Qt 6.4's idle timer and the adapter's, step by step, on a virtual clock.
//
// Qt's idle timer lives in QPMCache (private to Qt) and runs 30 s, so in real time a test sees
// a firing or two per minute (c-tests/qt/idle_trim.cpp does that, with Qt's real event loop).
// Here the main thread's event dispatcher is a VirtualClock, installed before the application
// object through Qt's public API (QCoreApplication::setEventDispatcher): every timer started on
// this thread is registered with it, and time moves only when the test advances it, delivering
// each due timer's QTimerEvent as Qt's own dispatchers do. Qt's QPMCache code runs unchanged;
// the test sees its timer (registered by the object of class "QPMCache") and the adapter's
// (pixcache::qt::detail::idleTimer()), both at 30 s, in one process on one clock.
//
// Part 1, scripted: each rule of Qt 6.4.2's timer (see pixcache_qt.hpp), on both caches, with
// the expected outcome written out: the trim of the least recently used entry when the total
// changed since the previous trim, the trim to three quarters when it did not (also when the
// previous total was left by flushDetachedPixmaps(), or before a clear(), which keeps it); one
// firing per arming; arming only by a successful insert, key insert or replace, and only when
// no timer runs; clear() stopping it; inserts made on another thread not arming it; the
// adapter's interval setting.
// Part 2, differential: seeded random sequences of inserts, key inserts, replaces, removes,
// finds, clears, limit changes, flushDetachedPixmaps() and clock advances (some exactly to the
// firing time, or a millisecond before it) on both caches; after every step the return values,
// the validity of every generated key, and both timers (running or not, interval, type, time
// left) must be the same, and after every firing (and every 16 steps) what each string key
// finds.
//
// Usage: idle_trim_clock [--seeds N] [--ops N]   (default 1000 x 500: about a second)
#define Q_TEST_QPIXMAPCACHE
#include <QAbstractEventDispatcher>
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>
#include <QTimer>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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

namespace {

// The main thread's event dispatcher: timers on a virtual clock (ms), posted events delivered
// when the test advances the clock. Never waits.
class VirtualClock : public QAbstractEventDispatcher {
public:
    struct Timer {
        int id;
        qint64 interval;
        Qt::TimerType type;
        QObject *object;
        qint64 due;
    };

    qint64 now() const { return now_; }
    const std::vector<Timer> &timers() const { return timers_; }

    // Moves the clock `ms` on, firing every timer that falls due on the way, in time order; a
    // timer that is not killed meanwhile is due again one interval later (as QObject timers).
    // Returns how many timer events it delivered.
    int advance(qint64 ms) {
        const qint64 target = now_ + ms;
        int fired = 0;
        QCoreApplication::sendPostedEvents();  // what a real event loop delivers before it waits
        for (;;) {
            const Timer *next = nullptr;
            for (const Timer &t : timers_)
                if (t.due <= target && (!next || t.due < next->due)) next = &t;
            if (!next) break;
            now_ = next->due;
            const int id = next->id;
            QObject *object = next->object;
            const_cast<Timer *>(next)->due += next->interval;
            QTimerEvent event(id);  // the object may kill or start timers: `next` is not used after
            QCoreApplication::sendEvent(object, &event);
            QCoreApplication::sendPostedEvents();
            ++fired;
        }
        now_ = target;
        QCoreApplication::sendPostedEvents();
        return fired;
    }

    bool processEvents(QEventLoop::ProcessEventsFlags) override {
        emit awake();
        QCoreApplication::sendPostedEvents();
        return false;
    }
    void registerSocketNotifier(QSocketNotifier *) override {}
    void unregisterSocketNotifier(QSocketNotifier *) override {}
    void registerTimer(int id, qint64 interval, Qt::TimerType type, QObject *object) override {
        timers_.push_back({id, interval, type, object, now_ + interval});
    }
    bool unregisterTimer(int id) override {
        for (auto it = timers_.begin(); it != timers_.end(); ++it) {
            if (it->id == id) {
                timers_.erase(it);
                return true;
            }
        }
        return false;
    }
    bool unregisterTimers(QObject *object) override {
        const auto before = timers_.size();
        for (auto it = timers_.begin(); it != timers_.end();) it = it->object == object ? timers_.erase(it) : it + 1;
        return timers_.size() != before;
    }
    QList<TimerInfo> registeredTimers(QObject *object) const override {
        QList<TimerInfo> list;
        for (const Timer &t : timers_)
            if (t.object == object) list.append(TimerInfo(t.id, int(t.interval), t.type));
        return list;
    }
    int remainingTime(int id) override {
        for (const Timer &t : timers_)
            if (t.id == id) return int(t.due - now_);
        return -1;
    }
    void wakeUp() override {}
    void interrupt() override {}

private:
    qint64 now_ = 0;
    std::vector<Timer> timers_;
};

VirtualClock *clock_ = nullptr;

// A running idle timer, as the clock sees it.
struct Running {
    qint64 interval;
    Qt::TimerType type;
    qint64 left;  // ms until it fires
    bool operator==(const Running &o) const { return interval == o.interval && type == o.type && left == o.left; }
};

std::optional<Running> find(bool (*match)(const QObject *)) {
    std::optional<Running> found;
    for (const VirtualClock::Timer &t : clock_->timers()) {
        if (!match(t.object)) continue;
        if (found) std::printf("FAILED: two idle timers\n"), ++failures;
        found = Running{t.interval, t.type, t.due - clock_->now()};
    }
    return found;
}

// Qt's idle timer: the one QPMCache started.
std::optional<Running> qtTimer() {
    return find([](const QObject *o) { return std::strcmp(o->metaObject()->className(), "QPMCache") == 0; });
}
// The adapter's.
std::optional<Running> pxTimer() {
    return find([](const QObject *o) { return o == pixcache::qt::detail::idleTimer().data(); });
}

std::string describe(const std::optional<Running> &t) {
    if (!t) return "stopped";
    char buf[96];
    std::snprintf(buf, sizeof buf, "%lld ms left of %lld (type %d)", (long long)t->left, (long long)t->interval,
                  int(t->type));
    return buf;
}

QPixmap pixmap(int side) {
    QPixmap pm(side, side);
    pm.fill(Qt::gray);
    return pm;
}
const QPixmap &kb16() {
    static const QPixmap pm = pixmap(64);  // 64 * 64 * 32 bits = 16 KB
    return pm;
}

QString key(int i) { return QStringLiteral("e%1").arg(i); }

// "x" for each of e0..e{n-1} that `find` finds, "." for the others.
template <typename Find>
std::string survivors(int n, Find find) {
    std::string s;
    for (int i = 0; i < n; ++i) s += find(key(i)) ? 'x' : '.';
    return s;
}
std::string qtState(int n = 8) {
    return survivors(n, [](const QString &k) { return QPixmapCache::find(k, nullptr); });
}
std::string pxState(int n = 8) {
    return survivors(n, [](const QString &k) { return PC::find(k, nullptr); });
}

void insertBoth(int i, const QPixmap &pm = kb16()) {
    CHECK(QPixmapCache::insert(key(i), pm));
    CHECK(PC::insert(key(i), pm));
}
void clearBoth() {
    QPixmapCache::clear();
    PC::clear();
}

// Both timers: the same, and as `expected` (nullopt: stopped).
#define TIMERS(expected)                                                                              \
    do {                                                                                              \
        const auto q = qtTimer(), p = pxTimer();                                                      \
        const std::optional<Running> e = (expected);                                                  \
        if (!(q == e && p == e)) {                                                                    \
            std::printf("FAILED %s:%d: timers: Qt %s, adapter %s, expected %s\n", __FILE__, __LINE__, \
                        describe(q).c_str(), describe(p).c_str(), describe(e).c_str());               \
            ++failures;                                                                               \
        }                                                                                             \
    } while (0)
// Both caches hold exactly the entries `expected` shows ("x" present, "." absent, for e0...).
#define STATE(expected)                                                                              \
    do {                                                                                             \
        const std::string e = (expected);                                                            \
        const std::string q = qtState(int(e.size())), p = pxState(int(e.size()));                    \
        if (!(q == e && p == e)) {                                                                   \
            std::printf("FAILED %s:%d: entries: Qt %s, adapter %s, expected %s\n", __FILE__, __LINE__, \
                        q.c_str(), p.c_str(), e.c_str());                                            \
            ++failures;                                                                              \
        }                                                                                            \
    } while (0)

constexpr qint64 kInterval = 30000;
const std::optional<Running> kStopped;
std::optional<Running> running(qint64 left, qint64 interval = kInterval) {
    return Running{interval, Qt::CoarseTimer, left};
}

void scripted() {
    clearBoth();
    clock_->advance(1000);
    TIMERS(kStopped);

    // A successful insert starts a 30 s timer; when it fires, the total has changed since the
    // previous trim (there was none: 0), so the least recently used entry goes; then it stops.
    for (int i = 0; i < 8; ++i) insertBoth(i);
    TIMERS(running(30000));
    clock_->advance(29999);
    TIMERS(running(1));
    STATE("xxxxxxxx");
    clock_->advance(1);
    TIMERS(kStopped);
    STATE(".xxxxxxx");
    clock_->advance(600000);  // one firing per arming: nothing more
    TIMERS(kStopped);
    STATE(".xxxxxxx");

    // What does not arm it: finds, removes, limit changes, a failed replace or insert, flush.
    QPixmapCache::Key qk;
    PC::Key pk;
    CHECK(!QPixmapCache::replace(qk, kb16()) && !PC::replace(pk, kb16()));
    QPixmapCache::remove(key(1));
    PC::remove(key(1));
    QPixmapCache::setCacheLimit(8);
    PC::setCacheLimit(8);  // evicts everything (16 KB entries)
    CHECK(!QPixmapCache::insert(key(1), kb16()) && !PC::insert(key(1), kb16()));
    CHECK(!QPixmapCache::insert(kb16()).isValid() && !PC::insert(kb16()).isValid());
    QPixmapCache::setCacheLimit(10240);
    PC::setCacheLimit(10240);
    QPixmapCache::flushDetachedPixmaps();
    PC::flushDetachedPixmaps();
    TIMERS(kStopped);
    STATE("........");

    // An insert while the timer runs does not restart it. The total the last trim left (0, by
    // flushDetachedPixmaps on the empty cache) is 128 KB again at the firing only if nothing
    // changed it: here 7 entries, 112 KB, changed: one entry goes.
    for (int i = 0; i < 7; ++i) insertBoth(i);
    TIMERS(running(30000));
    clock_->advance(10000);
    insertBoth(6);
    TIMERS(running(20000));
    clock_->advance(20000);
    TIMERS(kStopped);
    STATE(".xxxxxx.");  // 96 KB left
    // Unchanged since that trim when it fires (re-inserting e6 keeps 96 KB): three quarters.
    insertBoth(6);
    TIMERS(running(30000));
    clock_->advance(30000);
    STATE("...xxxx.");  // 96 KB -> 72 KB, so 64 KB

    // clear() stops it; the next insert starts a new one; clear() keeps the previous total.
    insertBoth(7);  // 80 KB
    clock_->advance(5000);
    clearBoth();
    TIMERS(kStopped);
    clock_->advance(60000);
    for (int i = 0; i < 4; ++i) insertBoth(i);  // 64 KB: what the last trim left
    TIMERS(running(30000));
    clock_->advance(30000);
    STATE(".xxx");  // 64 KB, unchanged: 48 KB (three quarters) -- the least recently used went

    // flushDetachedPixmaps() sets the previous total as a trim does.
    clearBoth();
    for (int i = 0; i < 8; ++i) insertBoth(i);
    QPixmapCache::flushDetachedPixmaps();
    PC::flushDetachedPixmaps();
    STATE("..xxxxxx");  // 128 KB -> 96 KB
    clock_->advance(30000);
    STATE("....xxxx");  // unchanged at the firing: 96 KB -> 72 KB, so 64 KB

    // A generated-key insert and a replace arm it too.
    clearBoth();
    clock_->advance(1000);
    QPixmapCache::Key qk1 = QPixmapCache::insert(kb16());
    PC::Key pk1 = PC::insert(kb16());
    TIMERS(running(30000));
    clock_->advance(30000);
    CHECK(!qk1.isValid() && !pk1.isValid());  // the only entry: changed since 64 KB, it goes
    qk1 = QPixmapCache::insert(kb16());
    pk1 = PC::insert(kb16());
    QPixmapCache::Key qk2 = QPixmapCache::insert(kb16());
    PC::Key pk2 = PC::insert(kb16());
    clock_->advance(30000);  // 32 KB: changed; qk1 (least recently used) goes
    CHECK(!qk1.isValid() && !pk1.isValid() && qk2.isValid() && pk2.isValid());
    TIMERS(kStopped);
    CHECK(QPixmapCache::replace(qk2, kb16()) && PC::replace(pk2, kb16()));
    TIMERS(running(30000));
    clock_->advance(30000);  // 16 KB, unchanged: three quarters (12 KB): it goes
    CHECK(!qk2.isValid() && !pk2.isValid());

    // Inserts made on another thread arm nothing: Qt refuses them; the adapter makes them.
    clearBoth();
    const QPixmap pm = kb16();
    bool qtInserted = true, pxInserted = false;
    std::thread([&] {
        qtInserted = QPixmapCache::insert(key(0), pm);
        pxInserted = PC::insert(key(0), pm);
    }).join();
    CHECK(!qtInserted && pxInserted);
    TIMERS(kStopped);
    clock_->advance(60000);
    TIMERS(kStopped);
    CHECK(PC::find(key(0), nullptr));
    PC::clear();

    // The adapter's own: a clear() made on another thread stops the timer too. Qt's timer is
    // stopped by its clear() here on this thread; the adapter's QTimer cannot be touched from
    // there, so it still runs, but trims nothing, and the next insert here starts it anew.
    for (int i = 0; i < 8; ++i) insertBoth(i);
    clock_->advance(10000);
    QPixmapCache::clear();
    std::thread([] { PC::clear(); }).join();
    CHECK(!qtTimer() && pxTimer());
    clock_->advance(5000);
    for (int i = 0; i < 8; ++i) insertBoth(i);
    TIMERS(running(30000));
    clock_->advance(30000);
    STATE(".xxxxxxx");  // the new timer's firing: 128 KB, changed since the last trim (0 KB)

    // The adapter's interval: any length; zero turns it off, also for a running timer.
    clearBoth();
    QPixmapCache::setCacheLimit(10240);
    PC::setIdleTrimInterval(250ms);
    PC::insert(key(0), kb16());
    CHECK(pxTimer() == running(250, 250));
    clock_->advance(250);
    CHECK(!pxTimer() && !PC::find(key(0), nullptr));
    PC::insert(key(0), kb16());
    PC::setIdleTrimInterval(0ms);
    CHECK(!pxTimer());  // turned off here: stopped at once
    PC::insert(key(1), kb16());
    CHECK(!pxTimer());  // and nothing arms it
    PC::setIdleTrimInterval(250ms);
    PC::insert(key(2), kb16());
    std::thread([] { PC::setIdleTrimInterval(0ms); }).join();
    CHECK(pxTimer());  // turned off on another thread: it still runs...
    clock_->advance(1000);
    CHECK(!pxTimer() && PC::find(key(0), nullptr));  // ...but trims nothing
    PC::setIdleTrimInterval(30s);
    clearBoth();
    clock_->advance(60000);
}

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x7F4A7C15ull) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    int below(int n) { return int(next() % uint64_t(n)); }
};

struct Stats {
    long firings = 0, unchanged = 0, steps = 0;
};

// One seeded sequence; false (having printed why) at the first difference.
bool differential(uint64_t seed, int ops, Stats &stats) {
    Rng rng(seed);
    clearBoth();
    QPixmapCache::setCacheLimit(10240);
    PC::setCacheLimit(10240);
    clock_->advance(100000);
    static const QPixmap pms[] = {pixmap(8), pixmap(32), pixmap(64), pixmap(100)};  // 1, 4, 16, 39 KB
    struct KeyPair {
        QPixmapCache::Key q;
        PC::Key p;
    };
    std::vector<KeyPair> keys;
    std::string op;
    long long previousTotal = -1;  // for the statistics only: what the last trim left
    auto fail = [&](const char *what, const std::string &qt, const std::string &px) {
        std::printf("MISMATCH seed=%llu step op=\"%s\" at %lld ms: %s: Qt %s, adapter %s\n",
                    (unsigned long long)seed, op.c_str(), (long long)clock_->now(), what, qt.c_str(), px.c_str());
        return false;
    };
    auto strings = [&] {
        std::string q, p;
        for (int i = 0; i < 10; ++i) {
            q += QPixmapCache::find(key(i), nullptr) ? 'x' : '.';
            p += PC::find(key(i), nullptr) ? 'x' : '.';
        }
        return std::make_pair(q, p);
    };
    for (int step = 0; step < ops; ++step) {
        ++stats.steps;
        const int r = rng.below(100);
        bool q = false, p = false, compareStrings = step % 16 == 0;
        char buf[80];
        if (r < 18) {
            const int k = rng.below(10), s = rng.below(4);
            std::snprintf(buf, sizeof buf, "insert(e%d, %d KB)", k, s == 0 ? 1 : s == 1 ? 4 : s == 2 ? 16 : 39);
            q = QPixmapCache::insert(key(k), pms[s]);
            p = PC::insert(key(k), pms[s]);
        } else if (r < 30) {
            const int s = rng.below(4);
            std::snprintf(buf, sizeof buf, "insert(pixmap %d)", s);
            keys.push_back({QPixmapCache::insert(pms[s]), PC::insert(pms[s])});
            if (keys.size() > 48) keys.erase(keys.begin());
            q = keys.back().q.isValid();
            p = keys.back().p.isValid();
        } else if (r < 36) {
            if (keys.empty()) continue;
            const int i = rng.below(int(keys.size())), s = rng.below(4);
            std::snprintf(buf, sizeof buf, "replace(key %d, pixmap %d)", i, s);
            q = QPixmapCache::replace(keys[i].q, pms[s]);
            p = PC::replace(keys[i].p, pms[s]);
        } else if (r < 41) {
            const int k = rng.below(10);
            std::snprintf(buf, sizeof buf, "remove(e%d)", k);
            QPixmapCache::remove(key(k));
            PC::remove(key(k));
        } else if (r < 45) {
            if (keys.empty()) continue;
            const int i = rng.below(int(keys.size()));
            std::snprintf(buf, sizeof buf, "remove(key %d)", i);
            QPixmapCache::remove(keys[i].q);
            PC::remove(keys[i].p);
        } else if (r < 55) {
            const int k = rng.below(10);
            std::snprintf(buf, sizeof buf, "find(e%d)", k);
            q = QPixmapCache::find(key(k), nullptr);
            p = PC::find(key(k), nullptr);
        } else if (r < 60) {
            if (keys.empty()) continue;
            const int i = rng.below(int(keys.size()));
            std::snprintf(buf, sizeof buf, "find(key %d)", i);
            q = QPixmapCache::find(keys[i].q, nullptr);
            p = PC::find(keys[i].p, nullptr);
        } else if (r < 62) {
            std::snprintf(buf, sizeof buf, "clear()");
            clearBoth();
        } else if (r < 65) {
            static const int limits[] = {40, 64, 100, 200, 10240, 10240};
            const int limit = limits[rng.below(6)];
            std::snprintf(buf, sizeof buf, "setCacheLimit(%d)", limit);
            QPixmapCache::setCacheLimit(limit);
            PC::setCacheLimit(limit);
        } else if (r < 68) {
            std::snprintf(buf, sizeof buf, "flushDetachedPixmaps()");
            QPixmapCache::flushDetachedPixmaps();
            PC::flushDetachedPixmaps();
            previousTotal = PC::totalUsed();
        } else {
            static const qint64 steps[] = {1, 1000, 5000, 9999, 10000, 15000, 29999, 30000, 30001, 45000, 61000, 300000};
            qint64 dt = steps[rng.below(12)];
            const auto t = qtTimer();
            if (t && rng.below(4) == 0) dt = t->left - rng.below(2);  // to the firing, or 1 ms before
            std::snprintf(buf, sizeof buf, "advance(%lld ms)", (long long)dt);
            const bool fires = t && t->left <= dt;
            const long long total = PC::totalUsed();
            clock_->advance(dt);
            if (fires) {
                ++stats.firings;
                if (total == previousTotal) ++stats.unchanged;
                previousTotal = PC::totalUsed();
                compareStrings = true;
            }
        }
        op = buf;
        if (q != p) return fail("result", q ? "true" : "false", p ? "true" : "false");
        const auto qt = qtTimer(), px = pxTimer();
        if (!(qt == px)) return fail("timer", describe(qt), describe(px));
        for (std::size_t i = 0; i < keys.size(); ++i) {
            if (keys[i].q.isValid() != keys[i].p.isValid())
                return fail(("validity of key " + std::to_string(i)).c_str(), keys[i].q.isValid() ? "valid" : "invalid",
                            keys[i].p.isValid() ? "valid" : "invalid");
        }
        if (compareStrings) {
            const auto [qs, ps] = strings();
            if (qs != ps) return fail("string keys e0..e9", qs, ps);
        }
    }
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    int seeds = 1000, ops = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--seeds") == 0) seeds = std::atoi(argv[i + 1]);
        else if (std::strcmp(argv[i], "--ops") == 0) ops = std::atoi(argv[i + 1]);
    }
    clock_ = new VirtualClock;
    QCoreApplication::setEventDispatcher(clock_);  // before the application object: it uses this one
    QGuiApplication app(argc, argv);
    if (QAbstractEventDispatcher::instance() != clock_) {
        std::printf("FAILED: the virtual clock is not the main thread's event dispatcher\n");
        return 1;
    }
    PC::setIdleTrimInterval(30s);  // Qt's own (the default)

    scripted();
    std::printf("scripted: %s\n", failures ? "FAILED" : "ok (Qt 6.4.2's timer rule, on both caches)");

    Stats stats;
    for (int seed = 1; seed <= seeds && !failures; ++seed)
        if (!differential(uint64_t(seed), ops, stats)) ++failures;
    if (!failures)
        std::printf("differential: %d seeds x %d operations: %ld firings (%ld with the total unchanged since the last trim), "
                    "the same in Qt and in the adapter\n",
                    seeds, ops, stats.firings, stats.unchanged);
    clearBoth();
    std::printf("%s\n", failures ? "FAILED" : "idle timer: same as Qt");
    return failures ? 1 : 0;
}

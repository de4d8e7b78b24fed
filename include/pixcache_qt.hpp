// pixcache_qt.hpp: QPixmapCache's exact static API for Qt 6 applications and Qt forks, backed by
// pixcache's process-wide cache. Header-only; needs no private Qt headers.
//
// Switching a Qt program is one include and one class name:
//
//     #include <QPixmapCache>               ->   #include <pixcache_qt.hpp>
//     QPixmapCache::find(key, &pm)          ->   pixcache::qt::PixmapCache::find(key, &pm)
//
// (or `using PixmapCache = pixcache::qt::PixmapCache;`). Everything else is unchanged: QString
// keys, QPixmap values, PixmapCache::Key with isValid, ==, !=, swap, copy and move.
//
// To keep the name QPixmapCache, alias it in your own namespace, e.g. in a project-wide header:
//
//     namespace myapp {
//     using QPixmapCache = pixcache::qt::PixmapCache;  // in myapp, QPixmapCache is pixcache's
//     }
//
// Code in namespace myapp then calls pixcache with unqualified QPixmapCache::find(...), whether
// Qt's headers come before or after. A global alias does not compile where Qt's own class
// ::QPixmapCache is declared (<QPixmapCache>, <QtGui>, <QtWidgets>): it is the same name.
//
// How it works: a QPixmap is stored as a *foreign* pixmap (pixcache_pixmap_wrap) holding a
// shallow copy of it (sharing Qt's pixel data, as QPixmapCache does), costed from its width,
// height and depth exactly as Qt costs it. When pixcache lets go of the entry (eviction, remove,
// replace, clear), the copy is deleted. find() hands back a QPixmap that shares the cached one
// (same cacheKey()).
//
// Differences from QPixmapCache, all deliberate (docs/spec.md): calls from any thread work (Qt's
// fail silently off the GUI thread; QPixmap itself remains a GUI-thread class, so keep using it
// there); totalUsed() is exact KB; evicted string keys are forgotten; stale keys never alias.
//
// Idle trimming, as in Qt 6.4 (on by default, as in Qt). Qt 6.4.2's rule (qpixmapcache.cpp):
// a successful insert (string or generated key) or replace starts QPMCache's 30 s timer unless
// it is running ("if (!theid) theid = startTimer(flush_time)"); clear() kills it. When it fires,
// timerEvent trims once: if the total cost equals the total the previous trim left ("nt =
// totalCost() == ps"), to three quarters of the total, otherwise by the least recently used
// entry ("total - 1"); then, as flushDetachedPixmaps() reports nothing released (in 6.4 it
// counts only string keys still valid but no longer cached, and an evicted entry's key is
// always invalid by then), the timer is killed: it fires once per arming, and the next arming
// insert starts it again (its 10 s "soon_time" branch is never reached in 6.4). Qt only does
// this for calls made on the GUI thread: off it, Qt's calls fail and arm nothing.
//
// The adapter does the same: an insert or replace that succeeds on the application object's
// thread starts a single-shot coarse QTimer (a child of the application object, so it lives on
// that thread and goes with it) if none is running; when it fires, pixcache_tick() applies the
// trim rule above (the "previous total" is the one the last tick or flushDetachedPixmaps()
// left, as Qt's ps). Inserts made on other threads (which pixcache allows) do not arm it.
// clear() stops it, from any thread: on the application's thread at once; from another, the
// timer does nothing when it fires, and the next arming insert starts a new one.
// PixmapCache::setIdleTrimInterval() sets the interval (30 s by default); zero turns idle
// trimming off (a running timer then trims nothing); PixmapCache::tick() runs one firing now.
//
// As in Qt, destroying the QCoreApplication/QGuiApplication clears the cache (the whole
// process-wide pixcache cache, also entries put there through the C API), so no QPixmap outlives
// the platform integration it may depend on. Entries made before any application object exists
// (Qt cannot make them) stay until the first application object is destroyed.
//
// Keys: QPixmapCache compares QString keys as UTF-16; pixcache keys are UTF-8. A key holding a
// lone surrogate (which has no UTF-8 form) is stored escaped, so that it never meets another
// key: each lone surrogate u becomes U+FDD0 followed by U+E000 + (u - 0xD800), and U+FDD0 itself
// (a noncharacter) is doubled. Such keys therefore do not match the same text given to the C
// API; every other key does.
#ifndef PIXCACHE_QT_HPP
#define PIXCACHE_QT_HPP

#include <QByteArray>
#include <QCoreApplication>
#include <QPixmap>
#include <QPointer>
#include <QString>
#include <QThread>
#include <QTimer>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "pixcache.h"

namespace pixcache {
namespace qt {

namespace detail {

extern "C" inline void pixcache_qt_release_qpixmap(void *copy) noexcept { delete static_cast<QPixmap *>(copy); }

// A heap shallow copy of `pm` for the cache to own (nullptr if out of memory), and the size Qt
// costs it by. The *_wrapped calls take the copy in every case: pixcache deletes it (through
// pixcache_qt_release_qpixmap) when the entry goes, or at once if the insert fails.
inline QPixmap *copy(const QPixmap &pm) noexcept { return new (std::nothrow) QPixmap(pm); }
inline uint32_t width(const QPixmap &pm) noexcept { return static_cast<uint32_t>(pm.width()); }
inline uint32_t height(const QPixmap &pm) noexcept { return static_cast<uint32_t>(pm.height()); }
inline uint32_t depth(const QPixmap &pm) noexcept { return static_cast<uint32_t>(pm.depth()); }

// A foreign pixcache pixmap owning a shallow copy of `pm` (nullptr if out of memory).
inline PixcachePixmap *wrap(const QPixmap &pm) noexcept {
    QPixmap *copy = detail::copy(pm);
    if (!copy) return nullptr;
    PixcachePixmap *wrapped = pixcache_pixmap_wrap(width(pm), height(pm), depth(pm), copy, &pixcache_qt_release_qpixmap);
    if (!wrapped) delete copy;  // on failure pixcache_pixmap_wrap never calls release
    return wrapped;
}

// The character that escapes what UTF-8 cannot carry: U+FDD0, a noncharacter ("for internal use",
// never meant to appear in interchanged text).
constexpr char16_t kEscape = 0xFDD0;

// True when `key` has a lone surrogate (which toUtf8() would turn into a replacement character,
// so two different QString keys could give the same bytes) or the escape character.
inline bool needsEscape(const QString &key) noexcept {
    const qsizetype n = key.size();
    const QChar *in = key.constData();
    for (qsizetype i = 0; i < n; ++i) {
        const char16_t c = in[i].unicode();
        if (c == kEscape) return true;
        if (QChar::isHighSurrogate(c)) {
            if (i + 1 < n && QChar::isLowSurrogate(in[i + 1].unicode())) {
                ++i;
                continue;
            }
            return true;
        }
        if (QChar::isLowSurrogate(c)) return true;
    }
    return false;
}

// `key` with every lone surrogate u written as U+FDD0 followed by U+E000 + (u - 0xD800), and
// every U+FDD0 written twice: valid UTF-16 that differs for any two different keys (QPixmapCache
// compares keys as UTF-16), so its UTF-8 does too.
inline QString escaped(const QString &key) {
    QString out;
    out.reserve(key.size() + 8);
    const qsizetype n = key.size();
    const QChar *in = key.constData();
    for (qsizetype i = 0; i < n; ++i) {
        const char16_t c = in[i].unicode();
        if (QChar::isHighSurrogate(c) && i + 1 < n && QChar::isLowSurrogate(in[i + 1].unicode())) {
            out.append(in[i]);
            out.append(in[++i]);
        } else if (QChar::isSurrogate(c)) {
            out.append(QChar(kEscape));
            out.append(QChar(char16_t(0xE000 + (c - 0xD800))));
        } else if (c == kEscape) {
            out.append(QChar(kEscape));
            out.append(QChar(kEscape));
        } else {
            out.append(in[i]);
        }
    }
    return out;
}

// A QString key as UTF-8, for the length of one call: short ASCII keys (the common case: icon
// names, file paths) are narrowed into a stack buffer; anything else goes through toUtf8(),
// escaped first if it holds a lone surrogate or U+FDD0 (see escaped()).
class Utf8Key {
public:
    explicit Utf8Key(const QString &key) {
        const qsizetype n = key.size();
        if (n <= qsizetype(sizeof buf_)) {
            const QChar *in = key.constData();
            qsizetype i = 0;
            for (; i < n && in[i].unicode() < 0x80; ++i) buf_[i] = char(in[i].unicode());
            if (i == n) {
                data_ = buf_;
                size_ = size_t(n);
                return;
            }
        }
        heap_ = needsEscape(key) ? escaped(key).toUtf8() : key.toUtf8();
        data_ = heap_.constData();
        size_ = size_t(heap_.size());
    }
    Utf8Key(const Utf8Key &) = delete;
    Utf8Key &operator=(const Utf8Key &) = delete;
    const char *data() const noexcept { return data_; }
    size_t size() const noexcept { return size_; }

private:
    char buf_[256];
    QByteArray heap_;
    const char *data_ = buf_;
    size_t size_ = 0;
};

// Owns a wrapped pixmap for the length of one call.
struct Wrapped {
    explicit Wrapped(const QPixmap &pm) noexcept : p(wrap(pm)) {}
    ~Wrapped() { pixcache_pixmap_free(p); }
    Wrapped(const Wrapped &) = delete;
    Wrapped &operator=(const Wrapped &) = delete;
    PixcachePixmap *p;
};

// A per-thread handle that lookups write into; emptied after each use so it never keeps an
// entry's pixels alive.
struct Scratch {
    PixcachePixmap *p = pixcache_pixmap_new_null();
    PixcachePixmap *empty = pixcache_pixmap_new_null();
    ~Scratch() {
        pixcache_pixmap_free(p);
        pixcache_pixmap_free(empty);
    }
};

inline Scratch &scratch() noexcept {
    thread_local Scratch s;
    return s;
}

// The process-wide cache, looked up once.
inline PixcacheCache *global() noexcept {
    static PixcacheCache *const cache = pixcache_global();
    return cache;
}

// QGuiApplication's destructor clears QPixmapCache, while the platform integration that QPixmaps
// may depend on still exists. The adapter does the same: when a QCoreApplication is constructed
// it registers a post routine (run at the start of the application's destruction) that clears
// the process-wide cache. Registered once per application object, however many translation
// units include this header.
inline std::atomic<bool> clearAtExitRegistered{false};  // constant-initialised, trivially destructible

// Qt's idle timer (see the top of this file). The QTimer and armedStop are touched only on the
// application object's thread: the timer is made there (a child of the application object, so
// it goes with it) and armed only by calls made there.
inline std::atomic<int> idleTrimMs{30000};
inline std::atomic<Qt::HANDLE> idleTrimThread{nullptr};  // the application's thread, once seen
// Counts the stops (clear(), turning idle trimming off), made on any thread. A timer armed
// before the latest stop trims nothing, and the next arming starts a new one: a clear() made on
// another thread stops the timer as Qt's clear() kills it, without touching the QTimer there.
inline std::atomic<unsigned> idleTrimStops{0};
inline unsigned armedStop = 0;  // idleTrimStops when the running timer was armed

inline QPointer<QTimer> &idleTimer() {
    static QPointer<QTimer> timer;
    return timer;
}

// True on the thread the application object lives in.
inline bool onAppThread() noexcept {
    const Qt::HANDLE seen = idleTrimThread.load(std::memory_order_relaxed);
    if (seen) return seen == QThread::currentThreadId();
    QCoreApplication *app = QCoreApplication::instance();
    if (!app || QThread::currentThread() != app->thread()) return false;
    idleTrimThread.store(QThread::currentThreadId(), std::memory_order_relaxed);
    return true;
}

// The timer fired (on the application's thread): one tick of Qt's rule, unless the timer was
// stopped meanwhile from another thread.
inline void idleTrimFired() noexcept {
    if (idleTrimMs.load() <= 0 || armedStop != idleTrimStops.load()) return;
    pixcache_tick(global());
}

// After a successful insert or replace: starts the idle timer unless it is running (Qt's rule).
inline void armIdleTrim() {
    const int ms = idleTrimMs.load(std::memory_order_relaxed);
    if (ms <= 0 || !onAppThread()) return;
    QPointer<QTimer> &timer = idleTimer();
    if (!timer) {
        QCoreApplication *app = QCoreApplication::instance();
        if (!app) return;
        timer = new QTimer(app);
        timer->setSingleShot(true);  // Qt 6.4 kills its timer after one firing, see above
        timer->setTimerType(Qt::CoarseTimer);  // as QObject::startTimer's default, which Qt uses
        QObject::connect(timer, &QTimer::timeout, [] { idleTrimFired(); });
    }
    const unsigned stops = idleTrimStops.load();
    if (timer->isActive() && armedStop == stops) return;
    armedStop = stops;
    timer->start(ms);
}

// clear() and turning idle trimming off, on any thread.
inline void stopIdleTrim() {
    idleTrimStops.fetch_add(1);
    if (!onAppThread()) return;
    if (QPointer<QTimer> &timer = idleTimer(); timer) timer->stop();
}

inline void clearAtAppExit() {
    clearAtExitRegistered.store(false);
    stopIdleTrim();
    idleTrimThread.store(nullptr, std::memory_order_relaxed);  // the next application may live elsewhere
    pixcache_clear(global());
}

inline void pixcache_qt_app_started() {
    if (!clearAtExitRegistered.exchange(true)) qAddPostRoutine(&clearAtAppExit);
}

// Runs pixcache_qt_app_started when each QCoreApplication is constructed (at once if one exists
// when this translation unit is initialised).
Q_COREAPP_STARTUP_FUNCTION(pixcache_qt_app_started)

// Takes the post routine back when the code that registered it goes away: a plugin built with
// hidden visibility has its own copy of these functions, and unloading it must not leave Qt a
// pointer into unmapped code. (Qt cannot take back the startup function: a plugin including
// this header must not be unloaded while the process goes on to make another application.)
struct PostRoutineGuard {
    PostRoutineGuard() = default;
    PostRoutineGuard(const PostRoutineGuard &) = delete;
    PostRoutineGuard &operator=(const PostRoutineGuard &) = delete;
    ~PostRoutineGuard() {
        if (clearAtExitRegistered.exchange(false)) qRemovePostRoutine(&clearAtAppExit);
    }
};
inline PostRoutineGuard postRoutineGuard;

// The visit callback of a lookup: copies the cached QPixmap (the foreign pixmap's user data)
// into the QPixmap `out` points to, while the cache is locked, as QPixmapCache::find assigns.
// What *out held before is let go of there too: if that was the last reference to its pixels,
// Qt frees them with the cache locked, which only holds up other threads' writes a little
// (Qt's pixmap cleanup never calls pixcache). Moving the old value out to destroy it after the
// lookup cost a QPixmap constructed and destroyed per find (+12 ns: QPaintDevice's destructor
// is not trivial).
extern "C" inline void pixcache_qt_copy_found(void *out, const PixcachePixmap *, void *cached) noexcept {
    if (cached) *static_cast<QPixmap *>(out) = *static_cast<const QPixmap *>(cached);
}

// Copies what a lookup found into `out`, then lets go of the scratch share.
inline void takeFound(QPixmap *out) noexcept {
    Scratch &s = scratch();
    if (auto *found = static_cast<const QPixmap *>(pixcache_pixmap_user_data(s.p)); found && out) *out = *found;
    pixcache_pixmap_assign(s.p, s.empty);
}

}  // namespace detail

/// QPixmapCache, backed by pixcache's process-wide cache (detail::global()).
class PixmapCache {
public:
    /// QPixmapCache::Key: a value; default keys are invalid and equal; keys from two inserts never
    /// compare equal; replace() updates a key in place, leaving its copies invalid and unequal.
    class Key {
    public:
        Key() noexcept = default;
        Key(const Key &) noexcept = default;
        Key(Key &&other) noexcept : k_(std::exchange(other.k_, PixcacheKey{0})) {}
        Key &operator=(const Key &) noexcept = default;
        Key &operator=(Key &&other) noexcept {
            k_ = std::exchange(other.k_, PixcacheKey{0});
            return *this;
        }
        ~Key() = default;

        bool operator==(const Key &other) const noexcept { return pixcache_key_equal(k_, other.k_); }
        bool operator!=(const Key &other) const noexcept { return !(*this == other); }
        void swap(Key &other) noexcept { std::swap(k_, other.k_); }
        /// True while the entry is in the cache.
        bool isValid() const noexcept { return pixcache_key_is_valid(detail::global(), k_); }

        /// The pixcache key value (for pixcache's C API).
        PixcacheKey raw() const noexcept { return k_; }
        /// The Key holding a pixcache key value (from raw(), or from pixcache's C API).
        static Key fromRaw(PixcacheKey k) noexcept { return Key(k); }

    private:
        friend class PixmapCache;
        explicit Key(PixcacheKey k) noexcept : k_(k) {}
        mutable PixcacheKey k_{0};  // mutable: replace(const Key &) updates it, as in Qt
    };

    PixmapCache() = delete;

    static int cacheLimit() { return pixcache_cache_limit(detail::global()); }
    static void setCacheLimit(int n) { pixcache_set_cache_limit(detail::global(), n); }

    static bool find(const QString &key, QPixmap *pixmap) {
        const detail::Utf8Key utf8(key);
        if (!pixmap) return pixcache_find_n(detail::global(), utf8.data(), utf8.size(), nullptr);
        return pixcache_find_visit_n(detail::global(), utf8.data(), utf8.size(), &detail::pixcache_qt_copy_found, pixmap);
    }

    static bool find(const Key &key, QPixmap *pixmap) {
        if (!pixmap) return pixcache_find_key(detail::global(), key.k_, nullptr);
        return pixcache_find_key_visit(detail::global(), key.k_, &detail::pixcache_qt_copy_found, pixmap);
    }

    static bool insert(const QString &key, const QPixmap &pixmap) {
        const detail::Utf8Key utf8(key);
        QPixmap *copy = detail::copy(pixmap);
        const bool ok = copy && pixcache_insert_wrapped_n(detail::global(), utf8.data(), utf8.size(), detail::width(pixmap),
                                                          detail::height(pixmap), detail::depth(pixmap), copy,
                                                          &detail::pixcache_qt_release_qpixmap);
        if (ok) detail::armIdleTrim();
        return ok;
    }

    static Key insert(const QPixmap &pixmap) {
        QPixmap *copy = detail::copy(pixmap);
        if (!copy) return Key();
        const Key key(pixcache_insert_key_wrapped(detail::global(), detail::width(pixmap), detail::height(pixmap),
                                                  detail::depth(pixmap), copy, &detail::pixcache_qt_release_qpixmap));
        if (pixcache_last_result() == PIXCACHE_RESULT_OK) detail::armIdleTrim();
        return key;
    }

    static bool replace(const Key &key, const QPixmap &pixmap) {
        QPixmap *copy = detail::copy(pixmap);
        const bool ok = copy && pixcache_replace_wrapped(detail::global(), &key.k_, detail::width(pixmap),
                                                         detail::height(pixmap), detail::depth(pixmap), copy,
                                                         &detail::pixcache_qt_release_qpixmap);
        if (ok) detail::armIdleTrim();
        return ok;
    }

    static void remove(const QString &key) {
        const detail::Utf8Key utf8(key);
        pixcache_remove_n(detail::global(), utf8.data(), utf8.size());
    }

    static void remove(const Key &key) { pixcache_remove_key(detail::global(), key.k_); }

    /// Removes every entry and stops the idle timer (Qt's clear() kills it).
    static void clear() {
        pixcache_clear(detail::global());
        detail::stopIdleTrim();
    }

    /// Finds `key`, or calls `render()` (returning a QPixmap) and caches the result — once across
    /// threads: others asking for the same key meanwhile wait for this render instead of
    /// rendering again. On success `*pixmap` (if not null) shares the result and it returns true.
    /// An exception thrown by `render` is rethrown here (waiting threads get false).
    template <typename Render>
    static bool findOrInsert(const QString &key, QPixmap *pixmap, Render &&render) {
        struct Context {
            std::remove_reference_t<Render> *render;
            std::exception_ptr error;
        } ctx{&render, nullptr};
        auto trampoline = [](void *user_data, PixcachePixmap *out) noexcept -> bool {
            auto *c = static_cast<Context *>(user_data);
            try {
                detail::Wrapped w((*c->render)());
                if (!w.p) return false;
                pixcache_pixmap_assign(out, w.p);
                return true;
            } catch (...) {
                c->error = std::current_exception();
                return false;
            }
        };
        const detail::Utf8Key utf8(key);
        if (!pixcache_find_or_insert_with_n(detail::global(), utf8.data(), utf8.size(), trampoline, &ctx,
                                            detail::scratch().p)) {
            if (ctx.error) std::rethrow_exception(ctx.error);
            return false;
        }
        if (pixmap) detail::takeFound(pixmap);
        else detail::takeFound(nullptr);
        return true;
    }

    /// QPixmapCache::flushDetachedPixmaps() (Qt exports it only for its tests): trims the cache to
    /// three quarters of its total at once.
    static void flushDetachedPixmaps() { pixcache_flush_detached(detail::global()); }

    /// One firing of Qt's idle timer, now (pixcache_tick): if the total is unchanged since the
    /// previous tick (or flushDetachedPixmaps()), trims to three quarters of it, else evicts the
    /// least recently used entry. Returns how many entries went. Independent of the idle timer.
    static std::size_t tick() { return pixcache_tick(detail::global()); }

    /// Idle trimming (as Qt 6.4's idle timer, see the top of this file): the delay between an
    /// arming insert or replace on the application's thread and the trim. 30 s by default, as in
    /// Qt. Zero (or less) turns idle trimming off: nothing arms the timer and a running one trims
    /// nothing when it fires. Callable from any thread; a new interval applies from the next
    /// arming (a running timer keeps its time). Values above INT_MAX ms are clamped.
    static void setIdleTrimInterval(std::chrono::milliseconds interval) {
        const auto ms = interval.count();
        detail::idleTrimMs.store(ms <= 0 ? 0 : ms > INT32_MAX ? INT32_MAX : int(ms));
        if (ms <= 0) detail::stopIdleTrim();
    }
    /// The idle trim interval (zero when idle trimming is off).
    static std::chrono::milliseconds idleTrimInterval() {
        return std::chrono::milliseconds(detail::idleTrimMs.load());
    }

    /// Sum of the entries' costs in KB (exact; Qt 6.4's divides by 1024 once too often).
    static int totalUsed() { return pixcache_total_used(detail::global()); }
};

inline void swap(PixmapCache::Key &a, PixmapCache::Key &b) noexcept { a.swap(b); }

}  // namespace qt
}  // namespace pixcache

#endif  // PIXCACHE_QT_HPP

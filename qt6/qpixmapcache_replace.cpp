// libpixcache-qt6.so: Qt 6's own QPixmapCache symbols, served by pixcache.
//
// An unmodified Qt 6 program that loads this library before libQt6Gui (LD_PRELOAD, as
// `pixcache-run` does, or linked first: the CMake target pixcache::qt6_replace) has its
// QPixmapCache calls, and those of Qt Widgets (styles, item delegates, graphics effects, cached
// graphics items), answered by pixcache instead of Qt's cache. The library defines exactly the
// QPixmapCache member functions libQt6Gui exports, under Qt's `Qt_6` version node
// (qpixmapcache.map), and exports nothing else: pixcache itself is linked in statically, hidden.
//
// Behaviour is Qt's, rule for rule (docs/spec.md), with Qt's own restrictions kept so that a
// program sees what it saw before. By default, as in Qt, only the application object's thread is
// served, and it is served by a thread-affine pixcache cache (pixcache_local_*: no lock, the
// QString's UTF-16 hashed as it is, each QPixmap held in place in the cache's 32-byte value);
// with PIXCACHE_QT6_ANY_THREAD=1, every thread is served by the process-wide cache through the
// Qt adapter (pixcache_qt.hpp). In both:
//   - calls off the thread that owns the application object (or before it exists) fail silently,
//     as in Qt 6, unless PIXCACHE_QT6_ANY_THREAD=1 (then every thread is served);
//   - totalUsed() rounds as Qt 6.4's does (KB / 1024, rounded up);
//   - the idle trim runs on Qt's timer, and destroying the application object clears the cache.
// What it does not change: libQt6Gui's calls to its own cache (QIcon, QPixmap::load, ...) are
// bound inside libQt6Gui and cannot be reached. So that the two caches stay aligned,
// setCacheLimit() and clear() are also forwarded to Qt's own implementation.
//
// Safety at load: if the Qt in the process is not the major.minor version this library was
// built against, or one of Qt's QPixmapCache symbols cannot be found, every call is forwarded to
// Qt's own implementation (decided before any Key exists) and one line on stderr says why.
//
// Environment (read once, when the library is loaded):
//   PIXCACHE_QT6_ANY_THREAD=1   serve calls from any thread
//   PIXCACHE_QT6_STATS=1        print one line of statistics on stderr at exit ("pixcache: ...")
//   PIXCACHE_QT6_QT_VERSION=X   test seam: pretend the running Qt is version X
//   PIXCACHE_QT6_TEST_HIDE_SYMBOL=NAME  test seam: pretend Qt lacks the mangled symbol NAME
//   PIXCACHE_RUN_PRELOAD=PATH   set by pixcache-run: PATH is removed from LD_PRELOAD at load, so
//                               that the program's children do not inherit the library
//                               (PIXCACHE_RUN_INHERIT=1 keeps it)
#define Q_TEST_QPIXMAPCACHE  // declares flushDetachedPixmaps() and totalUsed(), exported by Qt
#include <QCoreApplication>
#include <QPixmapCache>
#include <QThread>

#include <QPointer>
#include <QTimer>

#include <dlfcn.h>
#include <unistd.h>  // environ

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "pixcache_qt.hpp"

namespace {

using Key = QPixmapCache::Key;
using Adapter = pixcache::qt::PixmapCache;
namespace detail = pixcache::qt::detail;

// ---- Qt's own implementation, for forwarding ---------------------------------------------

// The mangled names of the 18 functions (21 symbols with the constructors' and destructor's
// second variants, which share their addresses) libQt6Gui 6.x exports for QPixmapCache.
struct QtOwn {
    int (*cacheLimit)() = nullptr;
    void (*setCacheLimit)(int) = nullptr;
    bool (*findString)(const QString &, QPixmap *) = nullptr;
    bool (*findKey)(const Key &, QPixmap *) = nullptr;
    bool (*insertString)(const QString &, const QPixmap &) = nullptr;
    Key (*insertPixmap)(const QPixmap &) = nullptr;
    bool (*replace)(const Key &, const QPixmap &) = nullptr;
    void (*removeString)(const QString &) = nullptr;
    void (*removeKey)(const Key &) = nullptr;
    void (*clear)() = nullptr;
    void (*flushDetachedPixmaps)() = nullptr;
    int (*totalUsed)() = nullptr;
    // Key's members take `this` as their first argument (the Itanium C++ ABI).
    void (*keyConstruct)(Key *) = nullptr;
    void (*keyCopy)(Key *, const Key *) = nullptr;
    void (*keyDestroy)(Key *) = nullptr;
    Key *(*keyAssign)(Key *, const Key *) = nullptr;
    bool (*keyEqual)(const Key *, const Key *) = nullptr;
    bool (*keyIsValid)(const Key *) = nullptr;
};

template <typename F>
bool resolve(F &fn, const char *name, std::string &missing) {
    // The next definition after this library's: libQt6Gui's. A test seam hides one, as a Qt
    // lacking it would.
    static const char *hidden = std::getenv("PIXCACHE_QT6_TEST_HIDE_SYMBOL");
    void *sym = hidden && std::strcmp(hidden, name) == 0 ? nullptr : dlvsym(RTLD_NEXT, name, "Qt_6");
    if (!sym) {
        if (!missing.empty()) missing += ", ";
        missing += name;
        return false;
    }
    fn = reinterpret_cast<F>(sym);
    return true;
}

// ---- What was decided at load ---------------------------------------------------------------

enum class Mode { Pixcache, Forward };

// ---- The thread-affine cache (the default: Qt's one-thread rule) ------------------------------

// A QPixmap lives in the cache's value in place: it is 32 bytes, and Qt declares it relocatable
// (Q_DECLARE_SHARED), which is what the cache's memcpy moves need.
static_assert(sizeof(QPixmap) <= sizeof(PixcacheValue) && alignof(QPixmap) <= alignof(PixcacheValue),
              "a QPixmap must fit a PixcacheValue");
static_assert(QTypeInfo<QPixmap>::isRelocatable, "the cache moves its values with memcpy");

extern "C" void releaseQPixmap(PixcacheValue *value) noexcept {
    std::launder(reinterpret_cast<QPixmap *>(value))->~QPixmap();
}

inline const QPixmap &asPixmap(const PixcacheValue *value) noexcept {
    return *std::launder(reinterpret_cast<const QPixmap *>(value));
}

// A shallow copy of `pm`, made in a value for the cache to take over (the cache releases it).
struct Held {
    explicit Held(const QPixmap &pm) noexcept { new (&value) QPixmap(pm); }
    PixcacheValue value;
};

// Qt's cost of a pixmap: max(1, width * height * depth / 8 / 1024) KB.
inline int64_t costOf(const QPixmap &pm) noexcept {
    const int64_t kb = int64_t(pm.width()) * pm.height() * pm.depth() / (8 * 1024);
    return kb < 1 ? 1 : kb;
}

// A QString key as the cache's bytes: its UTF-16 code units, unconverted.
inline const char *keyData(const QString &key) noexcept { return reinterpret_cast<const char *>(key.constData()); }
inline size_t keySize(const QString &key) noexcept { return size_t(key.size()) * sizeof(char16_t); }

struct State {
    Mode mode = Mode::Pixcache;
    bool anyThread = false;
    bool stats = false;
    QtOwn qt;
    // The thread-affine cache, unless every thread is served (then the process-wide cache is,
    // through the adapter) or calls are forwarded.
    PixcacheLocal *local = nullptr;
};

bool envFlag(const char *name) {
    const char *v = std::getenv(name);
    return v && *v && std::strcmp(v, "0") != 0;
}

// "6.4.2" -> major 6, minor 4; false if it does not parse.
bool majorMinor(const char *version, int &major, int &minor) {
    return version && std::sscanf(version, "%d.%d", &major, &minor) == 2;
}

// Removes `path` from LD_PRELOAD (entries are separated by ':' or ' '). The variable is
// rewritten in place, in the string the environment already holds (the result is never
// longer), so that programs which pass on main()'s `envp` rather than `environ` (shells) drop
// it too.
void removeFromPreload(const char *path) {
    if (!path || !*path) return;
    static const char kName[] = "LD_PRELOAD=";
    for (char **env = environ; env && *env; ++env) {
        if (std::strncmp(*env, kName, sizeof kName - 1) != 0) continue;
        char *value = *env + sizeof kName - 1;
        std::string kept, entry;
        for (const char *p = value;; ++p) {
            if (*p == ':' || *p == ' ' || *p == '\0') {
                if (!entry.empty() && entry != path) kept += (kept.empty() ? "" : ":") + entry;
                entry.clear();
                if (*p == '\0') break;
            } else {
                entry += *p;
            }
        }
        std::memcpy(value, kept.c_str(), kept.size() + 1);
    }
}

std::atomic<unsigned long long> calls{0};
std::atomic<unsigned long long> insertedKb{0};

inline State &state();

void printStats() {
    // Only a process that used QPixmapCache reports (not every shell or helper process that
    // inherited the preload on the way to the program).
    if (calls.load() == 0) return;
    // The thread-affine cache answers the thread that owns it, or one that claims it once its
    // owner let it go (the application object's post routine does); otherwise its figures are
    // zero.
    PixcacheLocal *local = state().local;
    if (local) pixcache_local_claim(local);  // let go of by the application object, if it went
    const PixcacheStats s = local ? pixcache_local_stats(local) : pixcache_stats(detail::global());
    std::fprintf(stderr,
                 "pixcache: %llu calls, %llu hits, %llu misses, %llu inserts, %llu evictions, %llu KB inserted, "
                 "%d KB cached at exit\n",
                 calls.load(), (unsigned long long)s.hits, (unsigned long long)s.misses,
                 (unsigned long long)s.inserts, (unsigned long long)s.evictions, insertedKb.load(), s.total_kb);
}

State makeState() {
    State s;
    std::string missing;
    QtOwn &q = s.qt;
    bool all = true;
    all &= resolve(q.cacheLimit, "_ZN12QPixmapCache10cacheLimitEv", missing);
    all &= resolve(q.setCacheLimit, "_ZN12QPixmapCache13setCacheLimitEi", missing);
    all &= resolve(q.findString, "_ZN12QPixmapCache4findERK7QStringP7QPixmap", missing);
    all &= resolve(q.findKey, "_ZN12QPixmapCache4findERKNS_3KeyEP7QPixmap", missing);
    all &= resolve(q.insertString, "_ZN12QPixmapCache6insertERK7QStringRK7QPixmap", missing);
    all &= resolve(q.insertPixmap, "_ZN12QPixmapCache6insertERK7QPixmap", missing);
    all &= resolve(q.replace, "_ZN12QPixmapCache7replaceERKNS_3KeyERK7QPixmap", missing);
    all &= resolve(q.removeString, "_ZN12QPixmapCache6removeERK7QString", missing);
    all &= resolve(q.removeKey, "_ZN12QPixmapCache6removeERKNS_3KeyE", missing);
    all &= resolve(q.clear, "_ZN12QPixmapCache5clearEv", missing);
    all &= resolve(q.flushDetachedPixmaps, "_ZN12QPixmapCache20flushDetachedPixmapsEv", missing);
    all &= resolve(q.totalUsed, "_ZN12QPixmapCache9totalUsedEv", missing);
    all &= resolve(q.keyConstruct, "_ZN12QPixmapCache3KeyC1Ev", missing);
    all &= resolve(q.keyCopy, "_ZN12QPixmapCache3KeyC1ERKS0_", missing);
    all &= resolve(q.keyDestroy, "_ZN12QPixmapCache3KeyD1Ev", missing);
    all &= resolve(q.keyAssign, "_ZN12QPixmapCache3KeyaSERKS0_", missing);
    all &= resolve(q.keyEqual, "_ZNK12QPixmapCache3KeyeqERKS0_", missing);
    all &= resolve(q.keyIsValid, "_ZNK12QPixmapCache3Key7isValidEv", missing);

    const char *running = std::getenv("PIXCACHE_QT6_QT_VERSION");
    if (!running || !*running) running = qVersion();
    int major = 0, minor = 0;
    const bool parsed = majorMinor(running, major, minor);
    if (!parsed || major != QT_VERSION_MAJOR || minor != QT_VERSION_MINOR) {
        s.mode = Mode::Forward;
        std::fprintf(stderr,
                     "pixcache: libpixcache-qt6 was built for Qt %d.%d but this program runs Qt %s; "
                     "QPixmapCache stays Qt's own\n",
                     QT_VERSION_MAJOR, QT_VERSION_MINOR, running ? running : "(unknown)");
    } else if (!all) {
        s.mode = Mode::Forward;
        // A Key's reference to Qt's key data is counted by these three together: without one of
        // them, none is used, and Keys copy the pointer and never free it (a leak, not a double
        // free).
        if (!q.keyCopy || !q.keyAssign || !q.keyDestroy) {
            q.keyCopy = nullptr;
            q.keyAssign = nullptr;
            q.keyDestroy = nullptr;
        }
        std::fprintf(stderr,
                     "pixcache: Qt %s lacks QPixmapCache symbols (%s); QPixmapCache stays Qt's own "
                     "(calls to those do nothing)\n",
                     running, missing.c_str());
    }
    s.anyThread = envFlag("PIXCACHE_QT6_ANY_THREAD");
    s.stats = envFlag("PIXCACHE_QT6_STATS") && s.mode == Mode::Pixcache;
    if (s.mode == Mode::Pixcache && !s.anyThread) {
        // Made by whichever thread loads the library; the application's thread claims it when
        // its first call is served (served()).
        s.local = pixcache_local_new(pixcache::qt::PixmapCache::cacheLimit(), &releaseQPixmap);
        if (s.local) pixcache_local_release_thread(s.local);
        if (!s.local) {
            s.mode = Mode::Forward;
            std::fprintf(stderr, "pixcache: cannot make the cache (%s); QPixmapCache stays Qt's own\n",
                         pixcache_last_error());
        }
    }
    return s;
}

// Inline: every exported function asks for it, several times a call (an out-of-line call here
// was 5% of a key insert's profile).
inline State &state() {
    // (Declared above, for printStats.)
    // Made by the load-time constructor below, before the program's own static initialisers
    // (which may construct Keys) run; the function-local static also covers a call that comes
    // earlier than that (another library's constructor).
    static State s = makeState();
    return s;
}

__attribute__((constructor)) void atLoad() {
    if (const char *lib = std::getenv("PIXCACHE_RUN_PRELOAD"); lib && !envFlag("PIXCACHE_RUN_INHERIT")) {
        removeFromPreload(lib);
    }
    State &s = state();
    if (s.stats) std::atexit(printStats);
}

// ---- Qt's thread rule --------------------------------------------------------------------------

// The thread the application object lives in, remembered for the last application object seen
// (Qt's own test, QThread::currentThread() == app->thread(), looks up the thread's data a call;
// QThread::currentThreadId() is one load of the thread pointer).
std::atomic<QCoreApplication *> seenApp{nullptr};
std::atomic<Qt::HANDLE> seenThread{nullptr};

// True if this call may be served: Qt 6 serves only the application object's thread.
inline bool served(const State &s) noexcept {
    if (s.anyThread) return true;
    QCoreApplication *app = QCoreApplication::instance();
    if (!app) return false;
    if (seenApp.load(std::memory_order_acquire) == app &&
        seenThread.load(std::memory_order_relaxed) == QThread::currentThreadId())
        return true;
    if (QThread::currentThread() != app->thread()) return false;
    // The application's thread takes the thread-affine cache (the previous application object
    // let it go when it went). Only here: no other call moves it, so a worker's totalUsed() or
    // a clear() at shutdown cannot carry it away.
    if (s.local) pixcache_local_claim(s.local);
    seenThread.store(QThread::currentThreadId(), std::memory_order_relaxed);
    seenApp.store(app, std::memory_order_release);
    return true;
}

inline bool served() noexcept { return served(state()); }

// Forgets the application object when it is destroyed: the next one may live on another thread
// (even at the same address).
void forgetApp() {
    seenApp.store(nullptr, std::memory_order_release);
    seenThread.store(nullptr, std::memory_order_relaxed);
}
void rememberToForget() { qAddPostRoutine(forgetApp); }
Q_COREAPP_STARTUP_FUNCTION(rememberToForget)

inline void count(const State &s) noexcept {
    if (s.stats) calls.fetch_add(1, std::memory_order_relaxed);
}
inline void count() noexcept { count(state()); }

inline void countInsert(const QPixmap &pm) noexcept {
    if (!state().stats) return;
    const long long kb = (long long)pm.width() * pm.height() * pm.depth() / 8 / 1024;
    insertedKb.fetch_add(kb < 1 ? 1 : (unsigned long long)kb, std::memory_order_relaxed);
}

inline bool forwarding() noexcept { return state().mode == Mode::Forward; }

// In forwarding mode, Qt's own function, or `fallback` when this Qt lacks it: the call then does
// nothing, as a refused call does, rather than jump to nowhere.
template <typename R, typename... Params, typename... Args>
inline R forward(R (*fn)(Params...), R fallback, Args &&...args) {
    return fn ? fn(std::forward<Args>(args)...) : fallback;
}
template <typename... Params, typename... Args>
inline void forward(void (*fn)(Params...), Args &&...args) {
    if (fn) fn(std::forward<Args>(args)...);
}
inline const QtOwn &qt() noexcept { return state().qt; }

// The pixcache key a QPixmapCache::Key carries in its one pointer-sized member (null: invalid).
inline PixcacheKey raw(QPixmapCache::KeyData *d) noexcept { return PixcacheKey{reinterpret_cast<uintptr_t>(d)}; }
inline QPixmapCache::KeyData *data(PixcacheKey k) noexcept { return reinterpret_cast<QPixmapCache::KeyData *>(uintptr_t(k.id)); }

// ---- The thread-affine cache's idle trim and clean-up -----------------------------------------

// Qt 6.4's idle timer, for the thread-affine cache (the adapter runs its own for the
// process-wide one): a single-shot 30 s timer, a child of the application object, started by a
// successful insert or replace when none is running, stopped by clear(), firing one tick. Every
// call that reaches it is on the application's thread (served()).
constexpr int kIdleTrimMs = 30000;
QPointer<QTimer> &idleTimer() {
    static QPointer<QTimer> timer;
    return timer;
}

// True while the timer runs: set when it is started, cleared when it fires or is stopped (the
// application object's post routine stops it before the timer goes with the object). Only the
// application's thread reads or writes it. Asking the timer itself (QPointer, isActive()) on
// every insert was ~1.5 ns of a generated-key insert.
bool idleArmed = false;

void startIdleTrim(PixcacheLocal *local) {
    QPointer<QTimer> &timer = idleTimer();
    if (!timer) {
        QCoreApplication *app = QCoreApplication::instance();
        if (!app) return;
        timer = new QTimer(app);
        timer->setSingleShot(true);
        timer->setTimerType(Qt::CoarseTimer);
        QObject::connect(timer, &QTimer::timeout, [local] {
            idleArmed = false;
            pixcache_local_tick(local);
        });
    }
    if (!timer->isActive()) timer->start(kIdleTrimMs);
    idleArmed = true;
}

// Qt starts its idle timer on a successful insert or replace when it is not running.
inline void armIdleTrim(PixcacheLocal *local) {
    if (!idleArmed) startIdleTrim(local);
}

void stopIdleTrim() {
    idleArmed = false;
    if (QPointer<QTimer> &timer = idleTimer(); timer) timer->stop();
}

// When the application object goes (its destructor runs the post routines, on its thread): the
// cache is emptied while Qt can still free pixmaps, and let go of, so that an application object
// made later, perhaps on another thread, gets it.
void localAtAppExit() {
    PixcacheLocal *local = state().local;
    stopIdleTrim();
    pixcache_local_clear(local);
    pixcache_local_release_thread(local);
}
void localAppStarted() {
    if (state().local) qAddPostRoutine(localAtAppExit);
}
Q_COREAPP_STARTUP_FUNCTION(localAppStarted)

inline PixcacheLocal *local() noexcept { return state().local; }

}  // namespace

// ---- The exported definitions ------------------------------------------------------------------

QPixmapCache::Key::Key() : d(nullptr) {
    if (forwarding()) forward(qt().keyConstruct, this);
}

QPixmapCache::Key::Key(const Key &other) : d(other.d) {
    if (forwarding()) forward(qt().keyCopy, this, &other);
}

QPixmapCache::Key::~Key() {
    if (forwarding()) forward(qt().keyDestroy, this);
}

QPixmapCache::Key &QPixmapCache::Key::operator=(const Key &other) {
    if (forwarding() && qt().keyAssign) return *qt().keyAssign(this, &other);
    d = other.d;
    return *this;
}

bool QPixmapCache::Key::operator==(const Key &key) const {
    if (forwarding()) return forward(qt().keyEqual, d == key.d, this, &key);
    return d == key.d;
}

bool QPixmapCache::Key::isValid() const noexcept {
    const State &s = state();
    if (s.mode == Mode::Forward) return forward(s.qt.keyIsValid, false, this);
    if (!d) return false;
    // Answered on every thread, as Qt does (the thread-affine cache's validity cells).
    if (PixcacheLocal *l = s.local) return pixcache_local_key_is_valid(l, raw(d));
    return pixcache_key_is_valid(detail::global(), raw(d));
}

int QPixmapCache::cacheLimit() {
    if (forwarding()) return forward(qt().cacheLimit, 0);
    count();
    if (!served()) return 0;
    if (PixcacheLocal *l = local()) return pixcache_local_cache_limit(l);
    return Adapter::cacheLimit();
}

void QPixmapCache::setCacheLimit(int n) {
    if (forwarding()) return forward(qt().setCacheLimit, n);
    count();
    if (!served()) return;
    if (PixcacheLocal *l = local()) {
        pixcache_local_set_cache_limit(l, n);
    } else {
        Adapter::setCacheLimit(n);
    }
    if (qt().setCacheLimit) qt().setCacheLimit(n);  // Qt's own cache (QIcon, QPixmap::load) follows
}

// The hot calls (finds, inserts) read the state once: each state() call checks its guard again.
bool QPixmapCache::find(const QString &key, QPixmap *pixmap) {
    const State &s = state();
    if (s.mode == Mode::Forward) return forward(s.qt.findString, false, key, pixmap);
    count(s);
    if (!served(s)) return false;
    if (PixcacheLocal *l = s.local) {
        const PixcacheValue *found = pixcache_local_find_n(l, keyData(key), keySize(key));
        if (found && pixmap) *pixmap = asPixmap(found);  // before any other call on the cache
        return found != nullptr;
    }
    return Adapter::find(key, pixmap);
}

bool QPixmapCache::find(const Key &key, QPixmap *pixmap) {
    const State &s = state();
    if (s.mode == Mode::Forward) return forward(s.qt.findKey, false, key, pixmap);
    count(s);
    if (!served(s)) return false;
    if (PixcacheLocal *l = s.local) {
        const PixcacheValue *found = pixcache_local_find_key(l, raw(key.d));
        if (found && pixmap) *pixmap = asPixmap(found);
        return found != nullptr;
    }
    return Adapter::find(Adapter::Key::fromRaw(raw(key.d)), pixmap);
}

bool QPixmapCache::insert(const QString &key, const QPixmap &pixmap) {
    const State &s = state();
    if (s.mode == Mode::Forward) return forward(s.qt.insertString, false, key, pixmap);
    count(s);
    if (!served(s)) return false;
    bool ok;
    if (PixcacheLocal *l = s.local) {
        const Held held(pixmap);
        ok = pixcache_local_insert_n(l, keyData(key), keySize(key), &held.value, costOf(pixmap));
        if (ok) armIdleTrim(l);
    } else {
        ok = Adapter::insert(key, pixmap);
    }
    if (ok) countInsert(pixmap);
    return ok;
}

QPixmapCache::Key QPixmapCache::insert(const QPixmap &pixmap) {
    const State &s = state();
    if (s.mode == Mode::Forward) return forward(s.qt.insertPixmap, Key(), pixmap);
    count(s);
    Key key;
    if (!served(s)) return key;
    if (PixcacheLocal *l = s.local) {
        const Held held(pixmap);
        const PixcacheKey k = pixcache_local_insert_key(l, &held.value, costOf(pixmap));
        key.d = data(k);
        // Whether it was inserted matters only to a timer not yet running, and to statistics
        // (the last result is a thread-local: a call, worth skipping on the common path).
        if ((!idleArmed || s.stats) && pixcache_last_result() == PIXCACHE_RESULT_OK) {
            armIdleTrim(l);
            countInsert(pixmap);
        }
        return key;
    }
    const PixcacheKey k = Adapter::insert(pixmap).raw();
    key.d = data(k);
    if (state().stats && pixcache_key_is_valid(detail::global(), k)) countInsert(pixmap);
    return key;
}

bool QPixmapCache::replace(const Key &key, const QPixmap &pixmap) {
    if (forwarding()) return forward(qt().replace, false, key, pixmap);
    count();
    if (!served()) return false;
    PixcacheKey k = raw(key.d);
    bool ok;
    if (PixcacheLocal *l = local()) {
        const Held held(pixmap);
        ok = pixcache_local_replace(l, &k, &held.value, costOf(pixmap));
        if (ok) armIdleTrim(l);
    } else {
        Adapter::Key ak = Adapter::Key::fromRaw(k);
        ok = Adapter::replace(ak, pixmap);
        k = ak.raw();
    }
    // Qt updates the caller's key in place (through its const reference) when it succeeds; a
    // failed replace leaves it as it was, unwritten (another thread may be reading it).
    if (ok && key.d != data(k)) const_cast<Key &>(key).d = data(k);
    if (ok) countInsert(pixmap);
    return ok;
}

void QPixmapCache::remove(const QString &key) {
    if (forwarding()) return forward(qt().removeString, key);
    count();
    if (!served()) return;
    if (PixcacheLocal *l = local()) {
        pixcache_local_remove_n(l, keyData(key), keySize(key));
    } else {
        Adapter::remove(key);
    }
}

void QPixmapCache::remove(const Key &key) {
    if (forwarding()) return forward(qt().removeKey, key);
    count();
    if (!served()) return;
    if (PixcacheLocal *l = local()) {
        pixcache_local_remove_key(l, raw(key.d));
    } else {
        Adapter::remove(Adapter::Key::fromRaw(raw(key.d)));
    }
}

void QPixmapCache::clear() {
    if (forwarding()) return forward(qt().clear);
    count();
    // As Qt: refused off the application's thread, except while the application shuts down
    // (then the thread-affine cache clears only on its owning thread; the application object's
    // post routine clears it anyway).
    if (!QCoreApplication::closingDown() && !served()) return;
    if (PixcacheLocal *l = local()) {
        if (pixcache_local_clear(l)) stopIdleTrim();
    } else {
        Adapter::clear();
    }
    if (qt().clear) qt().clear();
}

void QPixmapCache::flushDetachedPixmaps() {
    if (forwarding()) return forward(qt().flushDetachedPixmaps);
    count();
    if (PixcacheLocal *l = local()) {
        pixcache_local_flush_detached(l);
    } else {
        Adapter::flushDetachedPixmaps();
    }
}

int QPixmapCache::totalUsed() {
    if (forwarding()) return forward(qt().totalUsed, 0);
    count();
    // Qt 6.4 divides its total, already in KB, by 1024 again, rounding up; programs built
    // against Qt see that figure, so this library reports it too (pixcache's own API is exact).
    int64_t kb;
    if (PixcacheLocal *l = local()) {
        kb = pixcache_local_total_used(l);  // -1 off the owning thread
        if (kb < 0) kb = 0;
    } else {
        kb = Adapter::totalUsed();
    }
    return int((kb + 1023) / 1024);
}

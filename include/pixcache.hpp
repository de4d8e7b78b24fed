// pixcache.hpp: a header-only C++17 layer over pixcache's C API (pixcache.h), shaped like Qt's
// QPixmapCache so that moving from Qt is a rename.
//
//   pixcache::Pixmap       a value type like QPixmap (copies share pixels, writes detach)
//   pixcache::PixmapCache  QPixmapCache's static API over the process-wide cache
//   pixcache::Cache        the same operations on an independent cache (RAII), and beyond Qt:
//                          removal callbacks, contains/peek/take, count limit, explicit costs,
//                          trims, live images
//   pixcache::PressureWatch  a running memory-pressure watcher (RAII; Cache::watchMemoryPressure)
//   pixcache::Error        thrown by constructors that cannot succeed (carries the library's message)
//
// Error policy: the Qt-shaped functions never throw (they are noexcept and return what Qt returns;
// pixcache::lastError() tells why a call failed); so do the functions beyond Qt, which return
// bool, a count or std::optional. Constructors that can fail (a pixmap too large to allocate, a
// file that does not decode, a watcher that cannot start) throw pixcache::Error; the pixmap ones
// have a non-throwing factory (Pixmap::create, Pixmap::tryLoad) returning std::optional instead.
//
// Hand-written (pixcache.h is generated): keep it in step with src/ffi/.
#ifndef PIXCACHE_HPP
#define PIXCACHE_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "pixcache.h"

namespace pixcache {

/// The message of this thread's last failed pixcache call ("" if the last call succeeded).
inline std::string lastError() { return pixcache_last_error(); }

/// The result code of this thread's last pixcache call.
inline PixcacheResult lastResult() noexcept { return pixcache_last_result(); }

/// Thrown by constructors that cannot succeed; carries the library's result code and message.
class Error : public std::runtime_error {
public:
    Error(PixcacheResult code, const std::string &message)
        : std::runtime_error(message), code_(code) {}
    /// A null message is the empty one.
    Error(PixcacheResult code, const char *message)
        : std::runtime_error(message ? message : ""), code_(code) {}

    /// The library's result code (PIXCACHE_RESULT_*).
    PixcacheResult code() const noexcept { return code_; }

    /// An Error from this thread's last failed call.
    static Error fromLastError() { return Error(pixcache_last_result(), pixcache_last_error()); }

private:
    PixcacheResult code_;
};

class Cache;
class PixmapCache;

/// A string key argument: a `std::string_view`, a `std::string` or a C string (UTF-8; a view may
/// hold NUL bytes). A null `const char *` is the empty key, as a null pointer is an empty QString
/// in Qt: `PixmapCache::find(nullptr, &pm)` looks up "" instead of crashing.
class KeyArg {
public:
    KeyArg(std::string_view key) noexcept : s_(key) {}
    KeyArg(const std::string &key) noexcept : s_(key) {}
    KeyArg(const char *key) noexcept : s_(key ? std::string_view(key) : std::string_view()) {}
    const char *data() const noexcept { return s_.data(); }
    std::size_t size() const noexcept { return s_.size(); }

private:
    std::string_view s_;
};

/// A file path argument: a `std::string` or a C string. A null `const char *` is reported as an
/// error (PIXCACHE_RESULT_NULL_ARGUMENT) by the function it is given to, never dereferenced.
class PathArg {
public:
    PathArg(const std::string &path) noexcept : p_(path.c_str()) {}
    PathArg(const char *path) noexcept : p_(path) {}
    const char *c_str() const noexcept { return p_; }

private:
    const char *p_;
};

/// A pixmap value, like QPixmap: copying shares the pixels (no pixel copy), writing through
/// bits() detaches first, so a cached pixmap never changes behind the cache. A moved-from Pixmap
/// is a null pixmap.
class Pixmap {
public:
    /// The null pixmap (0x0), like QPixmap().
    Pixmap() noexcept = default;

    /// A zeroed width x height pixmap in `format`; throws pixcache::Error if it cannot be made
    /// (unknown format, size too large, out of memory). A zero width or height gives a null pixmap.
    Pixmap(uint32_t width, uint32_t height,
           PixcacheFormat format = PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED)
        : p_(pixcache_pixmap_new(width, height, format)) {
        if (!p_) throw Error::fromLastError();
    }

    /// Non-throwing factory: std::nullopt (and pixcache::lastError()) when it cannot be made.
    static std::optional<Pixmap> create(uint32_t width, uint32_t height,
                                        PixcacheFormat format = PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED) noexcept {
        PixcachePixmap *p = pixcache_pixmap_new(width, height, format);
        if (!p) return std::nullopt;
        return Pixmap(p);
    }

    /// Decodes an image file (PNG, JPEG, GIF, BMP, WebP, ICO); throws pixcache::Error on failure.
    static Pixmap load(PathArg path) {
        PixcachePixmap *p = pixcache_pixmap_load(path.c_str());
        if (!p) throw Error::fromLastError();
        return Pixmap(p);
    }

    /// Non-throwing load: std::nullopt (and pixcache::lastError()) on failure.
    static std::optional<Pixmap> tryLoad(PathArg path) noexcept {
        PixcachePixmap *p = pixcache_pixmap_load(path.c_str());
        if (!p) return std::nullopt;
        return Pixmap(p);
    }

    /// A foreign pixmap (see pixcache_pixmap_wrap): pixels owned by a toolkit, costed from
    /// width x height x depth; `release(user_data)` runs once when the last share goes. `release`
    /// must not throw. Throws pixcache::Error (and never calls `release`) on failure.
    static Pixmap wrap(uint32_t width, uint32_t height, uint32_t depth, void *user_data,
                       PixcacheReleaseFn release) {
        PixcachePixmap *p = pixcache_pixmap_wrap(width, height, depth, user_data, release);
        if (!p) throw Error::fromLastError();
        return Pixmap(p);
    }

    /// Takes ownership of a C handle (which must come from pixcache; NULL gives a null pixmap).
    static Pixmap adopt(PixcachePixmap *handle) noexcept { return Pixmap(handle); }

    Pixmap(const Pixmap &other) noexcept
        : p_(other.p_ ? pixcache_pixmap_clone(other.p_) : nullptr) {}
    Pixmap(Pixmap &&other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    Pixmap &operator=(const Pixmap &other) noexcept {
        if (this != &other) {
            if (!other.p_) {
                reset();
            } else if (p_) {
                pixcache_pixmap_assign(p_, other.p_);
            } else {
                p_ = pixcache_pixmap_clone(other.p_);
            }
        }
        return *this;
    }
    Pixmap &operator=(Pixmap &&other) noexcept {
        if (this != &other) {
            reset();
            p_ = std::exchange(other.p_, nullptr);
        }
        return *this;
    }
    ~Pixmap() { pixcache_pixmap_free(p_); }

    void swap(Pixmap &other) noexcept { std::swap(p_, other.p_); }

    bool isNull() const noexcept { return !p_ || pixcache_pixmap_is_null(p_); }
    /// True when it has pixels and nothing else (another Pixmap, a cache) shares them. False for
    /// a null pixmap, as QPixmap::isDetached() is.
    bool isDetached() const noexcept { return p_ && pixcache_pixmap_is_detached(p_); }
    uint32_t width() const noexcept { return p_ ? pixcache_pixmap_width(p_) : 0; }
    uint32_t height() const noexcept { return p_ ? pixcache_pixmap_height(p_) : 0; }
    uint32_t depth() const noexcept { return p_ ? pixcache_pixmap_depth(p_) : 0; }
    PixcacheFormat format() const noexcept {
        return p_ ? pixcache_pixmap_format(p_) : PIXCACHE_FORMAT_INVALID;
    }
    /// Bytes per row (0 for null and foreign pixmaps).
    std::size_t stride() const noexcept { return p_ ? pixcache_pixmap_stride(p_) : 0; }
    /// Equal for pixmaps sharing pixels, like QPixmap::cacheKey(); 0 for the null pixmap.
    uint64_t cacheKey() const noexcept { return p_ ? pixcache_pixmap_cache_key(p_) : 0; }
    /// Read-only pixels (nullptr for null and foreign pixmaps).
    const uint8_t *constBits() const noexcept { return p_ ? pixcache_pixmap_pixels(p_) : nullptr; }
    /// Writable pixels; detaches first (nullptr for null and foreign pixmaps, or out of memory).
    uint8_t *bits() noexcept { return p_ ? pixcache_pixmap_pixels_mut(p_) : nullptr; }
    /// A foreign pixmap's user data (nullptr otherwise).
    void *userData() const noexcept { return p_ ? pixcache_pixmap_user_data(p_) : nullptr; }

    /// The C handle (nullptr for a default-constructed or moved-from null pixmap).
    const PixcachePixmap *handle() const noexcept { return p_; }

private:
    explicit Pixmap(PixcachePixmap *p) noexcept : p_(p) {}
    void reset() noexcept { pixcache_pixmap_free(std::exchange(p_, nullptr)); }

    /// A handle to write a lookup into; makes one for a null Pixmap (nullptr if out of memory).
    PixcachePixmap *outHandle() noexcept {
        if (!p_) p_ = pixcache_pixmap_new_null();
        return p_;
    }
    friend class Cache;
    friend class PixmapCache;

    PixcachePixmap *p_ = nullptr;
};

/// A generated key, like QPixmapCache::Key: a value; default-constructed keys are invalid and
/// equal to each other; keys from two inserts never compare equal; replace() updates a key in
/// place (copies of the old key become invalid and unequal to it).
class Key {
public:
    Key() noexcept = default;
    explicit Key(PixcacheKey raw) noexcept : k_(raw) {}

    /// True while the entry is in the process-wide cache (QPixmapCache::Key::isValid). For a key
    /// of an independent cache, ask that cache: Cache::isValid(key).
    bool isValid() const noexcept { return pixcache_key_is_valid(pixcache_global(), k_); }

    bool operator==(const Key &other) const noexcept { return pixcache_key_equal(k_, other.k_); }
    bool operator!=(const Key &other) const noexcept { return !(*this == other); }
    void swap(Key &other) noexcept { std::swap(k_, other.k_); }

    /// The C value.
    PixcacheKey raw() const noexcept { return k_; }

private:
    friend class Cache;
    // mutable: QPixmapCache::replace takes `const Key &` and updates it, and so does ours.
    mutable PixcacheKey k_{0};
};

/// The key under which findOrLoad(path[, format]) caches the file now (pixcache_file_key), to
/// find, peek at or remove its entry by key; std::nullopt if the file's metadata cannot be read.
inline std::optional<std::string> fileKey(PathArg path, PixcacheFormat format = PIXCACHE_FORMAT_INVALID) {
    const std::size_t n = pixcache_file_key(path.c_str(), format, nullptr, 0);
    if (n == 0) return std::nullopt;
    std::string key(n, '\0');
    if (pixcache_file_key(path.c_str(), format, key.data(), n + 1) != n) return std::nullopt;  // changed meanwhile
    return key;
}

inline void swap(Key &a, Key &b) noexcept { a.swap(b); }
inline void swap(Pixmap &a, Pixmap &b) noexcept { a.swap(b); }

/// Why an entry left a cache (PIXCACHE_REMOVAL_*); also the index into PixcacheStats::removals.
enum class RemovalReason : uint32_t {
    Evicted = PIXCACHE_REMOVAL_EVICTED,             ///< for room for an insert (KB or count limit)
    Trimmed = PIXCACHE_REMOVAL_TRIMMED,             ///< trim, trimTo, tick, flushDetachedPixmaps, a PressureWatch
    LimitLowered = PIXCACHE_REMOVAL_LIMIT_LOWERED,  ///< setCacheLimit or setCountLimit lowered a limit
    Removed = PIXCACHE_REMOVAL_REMOVED,             ///< remove
    Replaced = PIXCACHE_REMOVAL_REPLACED,           ///< an insert under the same string key, or replace
    Cleared = PIXCACHE_REMOVAL_CLEARED,             ///< clear
    Taken = PIXCACHE_REMOVAL_TAKEN,                 ///< take (its pixmap went to the caller)
};

/// How much Cache::trim lets go of: each level keeps a fraction of the cache's current total,
/// least recently used entries first (PIXCACHE_TRIM_*; the table in pixcache.h maps them to
/// Android's onTrimMemory, Glide and Flutter).
enum class TrimLevel : uint32_t {
    Moderate = PIXCACHE_TRIM_MODERATE,  ///< keep 1/2
    Low = PIXCACHE_TRIM_LOW,            ///< keep 1/4
    Critical = PIXCACHE_TRIM_CRITICAL,  ///< keep 1/8
    Complete = PIXCACHE_TRIM_COMPLETE,  ///< keep nothing
};

/// What a removal callback (Cache::setRemovalCallback) is told about one entry that left a cache.
struct Removal {
    RemovalReason reason;
    /// Its string key (may hold NUL bytes); empty for a generated key. Points into pixcache's
    /// buffer, valid only during the call: copy it into a std::string to keep it.
    std::string_view key;
    /// Its generated key (no longer valid), or Key() for a string key.
    Key generatedKey;
    /// A share of its pixmap (no pixel copy): yours to keep. Null only if out of memory.
    Pixmap pixmap;
    /// What it cost, in KB.
    int costKb;

    /// True for an entry under a generated key (the empty string key "" is a string key).
    bool isGenerated() const noexcept { return generatedKey.raw().id != 0; }
};

/// A removal callback: see Cache::setRemovalCallback.
using RemovalCallback = std::function<void(const Removal &)>;

namespace detail {

/// What a cache's C removal callback points to (its `user_data`): the current std::function and
/// the first exception a call of it threw. It has a stable address: owned by a Cache (through a
/// shared_ptr that a PressureWatch of that cache shares, since the watcher's thread may be in a
/// callback when the Cache goes), or, for the process-wide cache, made once and never freed.
struct RemovalHook {
    std::mutex setting;  // serializes setters, so that the C callback and `fn` agree
    std::mutex mutex;    // guards `fn` and `error`; never held while the user's callback runs
    std::shared_ptr<const RemovalCallback> fn;
    std::exception_ptr error;
    bool installed = false;  // the C callback is set (under `setting`)

    /// The PixcacheRemovalFn: calls a copy of `fn` (so replacing it while a call runs is safe);
    /// an exception is caught and kept in `error` (it must not unwind into pixcache).
    static void trampoline(void *self, const PixcacheRemoval *r) noexcept {
        auto *hook = static_cast<RemovalHook *>(self);
        std::shared_ptr<const RemovalCallback> fn;
        try {
            {
                std::lock_guard<std::mutex> lock(hook->mutex);
                fn = hook->fn;
            }
            if (!fn) return;
            const Removal removal{
                static_cast<RemovalReason>(r->reason),
                r->key ? std::string_view(r->key, r->key_len) : std::string_view(),
                Key(r->generated_key),
                Pixmap::adopt(r->pixmap ? pixcache_pixmap_clone(r->pixmap) : nullptr),
                int(r->cost_kb),
            };
            (*fn)(removal);
        } catch (...) {
            std::lock_guard<std::mutex> lock(hook->mutex);
            if (!hook->error) hook->error = std::current_exception();
        }
    }

    /// Sets (or, with NULL, removes) the C callback of `cache`, leaving this thread's last error
    /// as it was (for destructors, as pixcache's *_free functions do).
    static void setKeepingError(PixcacheCache *cache, PixcacheRemovalFn f, void *user_data) noexcept {
        const PixcacheResult code = pixcache_last_result();
        if (code == PIXCACHE_RESULT_OK) {
            pixcache_set_removal_callback(cache, f, user_data);
            return;
        }
        try {
            const std::string message = pixcache_last_error();
            pixcache_set_removal_callback(cache, f, user_data);
            pixcache_set_error(code, message.c_str());
        } catch (...) {
            pixcache_set_removal_callback(cache, f, user_data);
        }
    }
};

/// The process-wide cache's hook: made on first use, never freed (the global cache is never
/// freed either, and callbacks may run on any thread until the process ends). nullptr only if
/// that first allocation failed.
inline RemovalHook *globalRemovalHook() noexcept {
    static RemovalHook *const hook = new (std::nothrow) RemovalHook;
    return hook;
}

}  // namespace detail

/// A running memory-pressure watcher (Cache::watchMemoryPressure): a pixcache thread that trims
/// one cache when memory runs short. Move-only; the destructor (or stop()) stops it and waits for
/// its thread. It may outlive its Cache (the watcher keeps the C cache, emptied, until stopped).
class PressureWatch {
public:
    /// No watcher (what a moved-from or stopped one is).
    PressureWatch() noexcept = default;
    PressureWatch(const PressureWatch &) = delete;
    PressureWatch &operator=(const PressureWatch &) = delete;
    PressureWatch(PressureWatch &&other) noexcept
        : w_(std::exchange(other.w_, nullptr)), hook_(std::move(other.hook_)) {}
    PressureWatch &operator=(PressureWatch &&other) noexcept {
        if (this != &other) {
            stop();
            w_ = std::exchange(other.w_, nullptr);
            hook_ = std::move(other.hook_);
        }
        return *this;
    }
    ~PressureWatch() { stop(); }

    /// Stops the watcher and waits for its thread (a trim under way finishes first). Idempotent.
    /// Keeps this thread's last error. May be called from a removal callback its own trim runs
    /// only while its Cache still exists (the callback's state would otherwise go with it).
    void stop() noexcept {
        pixcache_pressure_watch_stop(std::exchange(w_, nullptr));
        hook_.reset();  // after the thread is gone: no callback of it can be running
    }

    /// How many trims it has run (one per event). 0, with the last error set, for no watcher;
    /// for a watcher that stopped by itself (its source failed) the count, with the last error
    /// saying why.
    std::size_t trims() const noexcept { return pixcache_pressure_watch_trims(w_); }

    /// True until stop() (or a move): a watcher was started and is owned by this object.
    explicit operator bool() const noexcept { return w_ != nullptr; }

    /// The C handle (nullptr when there is no watcher).
    PixcachePressureWatch *handle() const noexcept { return w_; }

private:
    friend class Cache;
    PixcachePressureWatch *w_ = nullptr;
    std::shared_ptr<detail::RemovalHook> hook_;
};

/// A pixmap cache: the QPixmapCache operations on one cache, and more. `Cache` owns an
/// independent cache (freed by its destructor); `Cache::global()` refers to the process-wide one
/// (never freed). Every function is thread-safe, and noexcept except findOrInsert (which rethrows
/// its producer's exception) and watchMemoryPressure (which throws pixcache::Error).
class Cache {
public:
    /// An independent cache of `limitKb` KB; throws pixcache::Error (or std::bad_alloc) if it
    /// cannot be made.
    explicit Cache(int limitKb = 10240)
        : c_(pixcache_cache_new(limitKb)), owned_(true) {
        if (!c_) throw Error::fromLastError();
        try {
            hook_ = std::make_shared<detail::RemovalHook>();
        } catch (...) {
            pixcache_cache_free(c_);
            throw;
        }
    }
    Cache(const Cache &) = delete;
    Cache &operator=(const Cache &) = delete;
    /// The moved-to Cache keeps the cache, and its removal callback.
    Cache(Cache &&other) noexcept
        : c_(std::exchange(other.c_, nullptr)), owned_(std::exchange(other.owned_, false)),
          hook_(std::move(other.hook_)) {}
    Cache &operator=(Cache &&other) noexcept {
        if (this != &other) {
            release();
            c_ = std::exchange(other.c_, nullptr);
            owned_ = std::exchange(other.owned_, false);
            hook_ = std::move(other.hook_);
        }
        return *this;
    }
    /// Frees an owned cache (without calling its removal callback for the entries freed), after
    /// removing its callback; keeps this thread's last error. No other thread may be using it.
    ~Cache() { release(); }

    /// The process-wide cache (what PixmapCache uses).
    static Cache global() noexcept { return Cache(pixcache_global(), false); }

    int cacheLimit() const noexcept { return pixcache_cache_limit(c_); }
    void setCacheLimit(int limitKb) noexcept { pixcache_set_cache_limit(c_, limitKb); }

    bool find(KeyArg key, Pixmap *pixmap) const noexcept {
        if (!pixmap) return pixcache_find_n(c_, key.data(), key.size(), nullptr);
        PixcachePixmap *out = pixmap->outHandle();
        return out && pixcache_find_n(c_, key.data(), key.size(), out);
    }
    bool find(const Key &key, Pixmap *pixmap) const noexcept {
        if (!pixmap) return pixcache_find_key(c_, key.k_, nullptr);
        PixcachePixmap *out = pixmap->outHandle();
        return out && pixcache_find_key(c_, key.k_, out);
    }
    bool insert(KeyArg key, const Pixmap &pixmap) noexcept {
        Holder h(pixmap);
        return h.p && pixcache_insert_n(c_, key.data(), key.size(), h.p);
    }
    Key insert(const Pixmap &pixmap) noexcept {
        Holder h(pixmap);
        return h.p ? Key(pixcache_insert_key(c_, h.p)) : Key();
    }
    /// Replaces the pixmap of a valid key; on success `key` (and only it, not its copies) names
    /// the new entry. False, inserting nothing, for an invalid key; false, with the old entry
    /// gone, for a pixmap costing more than the limit.
    bool replace(const Key &key, const Pixmap &pixmap) noexcept {
        Holder h(pixmap);
        return h.p && pixcache_replace(c_, &key.k_, h.p);
    }
    void remove(KeyArg key) noexcept { pixcache_remove_n(c_, key.data(), key.size()); }
    void remove(const Key &key) noexcept { pixcache_remove_key(c_, key.k_); }
    void clear() noexcept { pixcache_clear(c_); }
    bool isValid(const Key &key) const noexcept { return pixcache_key_is_valid(c_, key.k_); }
    /// Sum of the entries' costs in KB (exact).
    int totalUsed() const noexcept { return pixcache_total_used(c_); }
    /// QPixmapCache::flushDetachedPixmaps(): trims to three quarters of the total.
    void flushDetachedPixmaps() noexcept { pixcache_flush_detached(c_); }
    /// One firing of Qt 6.4's idle timer (pixcache_tick): if the total is what the previous
    /// tick (or flushDetachedPixmaps()) left, trims to three quarters of it, else evicts the
    /// least recently used entry. Returns how many entries went. pixcache runs no timer: for
    /// Qt's idle trimming, call it from a single-shot 30 s timer of your event loop that a
    /// successful insert or replace starts when it is not running and clear() stops (what
    /// pixcache_qt.hpp does for Qt programs).
    std::size_t tick() noexcept { return pixcache_tick(c_); }
    /// Counters and sizes in one snapshot (pixcache_stats: the 0.2 struct, with
    /// `removals[reason]` (index with removals(RemovalReason)), `peak_kb`, `live_kb`,
    /// `live_entries` and `count_limit`).
    PixcacheStats stats() const noexcept { return pixcache_stats(c_); }
    /// How many entries left for `reason` (stats().removals) since the cache was made or resetStats().
    uint64_t removals(RemovalReason reason) const noexcept {
        const auto i = static_cast<std::size_t>(reason);
        return i < PIXCACHE_REMOVAL_REASON_COUNT ? stats().removals[i] : 0;
    }
    /// Zeroes the counters (hits, misses, inserts, evictions, refused, removals) and sets
    /// `peak_kb` to the current total; sizes and limits stay.
    void resetStats() noexcept { pixcache_reset_stats(c_); }

    /// True when a string key is in the cache (or is a live image); touches neither recency nor
    /// the statistics.
    bool contains(KeyArg key) const noexcept { return pixcache_contains_n(c_, key.data(), key.size()); }
    /// True while a generated key's entry is in the cache (or is a live image); as isValid().
    bool contains(const Key &key) const noexcept { return pixcache_contains_key(c_, key.k_); }
    /// find() that touches neither recency nor the statistics: a share of the pixmap, or
    /// std::nullopt on a miss.
    std::optional<Pixmap> peek(KeyArg key) const noexcept {
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle || !pixcache_peek_n(c_, key.data(), key.size(), handle)) return std::nullopt;
        return out;
    }
    /// peek() for a generated key; std::nullopt (with PIXCACHE_RESULT_INVALID_KEY) for a key
    /// that is not valid here.
    std::optional<Pixmap> peek(const Key &key) const noexcept {
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle || !pixcache_peek_key(c_, key.k_, handle)) return std::nullopt;
        return out;
    }
    /// Takes the entry out of the cache and returns its pixmap (the removal callback hears
    /// RemovalReason::Taken); std::nullopt if there was none.
    std::optional<Pixmap> take(KeyArg key) noexcept {
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle || !pixcache_take_n(c_, key.data(), key.size(), handle)) return std::nullopt;
        return out;
    }
    /// take() for a generated key, which (with its copies) becomes invalid; std::nullopt (with
    /// PIXCACHE_RESULT_INVALID_KEY) for a key that is not valid here.
    std::optional<Pixmap> take(const Key &key) noexcept {
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle || !pixcache_take_key(c_, key.k_, handle)) return std::nullopt;
        return out;
    }

    /// The count limit (0: none, the default).
    std::size_t countLimit() const noexcept { return pixcache_count_limit(c_); }
    /// Limits the number of entries beside the KB limit (0: none). Lowering it evicts least
    /// recently used entries at once (RemovalReason::LimitLowered); returns how many went.
    std::size_t setCountLimit(std::size_t n) noexcept { return pixcache_set_count_limit(c_, n); }

    /// insert() costing `costKb` KB instead of width x height x depth (GPU textures, foreign
    /// pixmaps). False for a negative cost (PIXCACHE_RESULT_INVALID_ARGUMENT) or one above the
    /// limit (refused); 0 is allowed.
    bool insertWithCost(KeyArg key, const Pixmap &pixmap, int costKb) noexcept {
        Holder h(pixmap);
        return h.p && pixcache_insert_with_cost_n(c_, key.data(), key.size(), h.p, costKb);
    }
    /// insert(pixmap) costing `costKb` KB; an invalid Key on failure (see above).
    Key insertWithCost(const Pixmap &pixmap, int costKb) noexcept {
        Holder h(pixmap);
        return h.p ? Key(pixcache_insert_key_with_cost(c_, h.p, costKb)) : Key();
    }

    /// Trims for memory pressure (RemovalReason::Trimmed); the limit stays. Returns how many
    /// entries went (0, with PIXCACHE_RESULT_INVALID_ARGUMENT, for an unknown level).
    std::size_t trim(TrimLevel level) noexcept {
        return pixcache_trim(c_, static_cast<PixcacheTrimLevel>(level));
    }
    /// Evicts least recently used entries until the total is at most `kb` KB (0 or less: empty);
    /// the limit stays. Returns how many entries went.
    std::size_t trimTo(int kb) noexcept { return pixcache_trim_to(c_, kb); }

    /// Live images (off by default): an entry evicted while some Pixmap still shares it stays
    /// findable, outside the limit, as long as it is shared (pixcache_set_live_images).
    void setLiveImages(bool on) noexcept { pixcache_set_live_images(c_, on); }
    bool liveImages() const noexcept { return pixcache_live_images(c_); }

    /// Calls `callback` once for every entry that leaves the cache from now on (not for those a
    /// destructor frees), in the order they left, on the thread whose call made them leave (a
    /// PressureWatch's own thread for its trims), after the cache is unlocked: it may use the
    /// cache. It may run on several threads at once. Replaces any previous callback; an empty
    /// std::function removes it (then pixcache keeps no keys for it). False (with the last
    /// error) only for a moved-from Cache or out of memory.
    ///
    /// Lifetime: the Cache owns the callback (through a heap object with a stable address that
    /// the C callback points to, and that moves with the Cache). A call under way keeps its own
    /// reference to the std::function it started with, so a replaced callback is destroyed when
    /// the last call running it returns (or at once). The destructor removes the callback and
    /// destroys it; a call still running on another thread then is a use of the cache during
    /// its destruction, which is not allowed (except from a PressureWatch's thread, which keeps
    /// the callback's state alive until it is stopped). Do not destroy the Cache from inside its
    /// own callback.
    ///
    /// Exceptions: one thrown by the callback does not unwind into pixcache: it is caught, the
    /// removal stands, later removals are reported as usual, and the first such exception is
    /// kept for takeRemovalCallbackException().
    bool setRemovalCallback(RemovalCallback callback) noexcept {
        if (!c_) return pixcache_set_removal_callback(nullptr, nullptr, nullptr);
        std::shared_ptr<const RemovalCallback> old;  // destroyed last, outside the locks
        try {
            detail::RemovalHook *hook = removalHook();
            if (!hook) throw std::bad_alloc();
            std::shared_ptr<const RemovalCallback> fresh;
            if (callback) fresh = std::make_shared<const RemovalCallback>(std::move(callback));
            std::lock_guard<std::mutex> setting(hook->setting);
            bool ok = true;
            if (fresh) {
                {
                    std::lock_guard<std::mutex> lock(hook->mutex);
                    old = std::exchange(hook->fn, std::move(fresh));
                }
                ok = pixcache_set_removal_callback(c_, &detail::RemovalHook::trampoline, hook);
                hook->installed = ok;
            } else {
                ok = pixcache_set_removal_callback(c_, nullptr, nullptr);
                hook->installed = false;
                std::lock_guard<std::mutex> lock(hook->mutex);
                old = std::exchange(hook->fn, nullptr);
            }
            return ok;
        } catch (...) {
            pixcache_set_error(PIXCACHE_RESULT_OUT_OF_MEMORY, "setRemovalCallback: out of memory");
            return false;
        }
    }

    /// The first exception a removal callback threw since the last call (nullptr if none),
    /// cleared: rethrow it with std::rethrow_exception where it suits you.
    std::exception_ptr takeRemovalCallbackException() noexcept {
        detail::RemovalHook *hook = c_ ? removalHook() : nullptr;
        if (!hook) return nullptr;
        std::lock_guard<std::mutex> lock(hook->mutex);
        return std::exchange(hook->error, nullptr);
    }

    /// Starts a thread that trims this cache when the system runs short of memory, until the
    /// returned PressureWatch is stopped or destroyed (pixcache_watch_memory_pressure). `source`
    /// nullptr, or a path under /proc/pressure/, watches Linux PSI (a moderate trim on `some`
    /// pressure, a critical one on `full`); any other path is a FIFO or file of level words
    /// (`moderate`, `low`, `critical`, `complete`, one a line). Throws pixcache::Error on failure
    /// (PIXCACHE_RESULT_UNSUPPORTED without PSI, PIXCACHE_RESULT_IO for a source that cannot be
    /// opened, PIXCACHE_RESULT_NULL_ARGUMENT for a moved-from Cache).
    PressureWatch watchMemoryPressure(const char *source = nullptr) {
        PressureWatch watch;
        watch.hook_ = hook_;  // set before the thread starts: it may call the removal callback
        watch.w_ = pixcache_watch_memory_pressure(c_, source);
        if (!watch.w_) throw Error::fromLastError();
        return watch;
    }

    /// Finds `key`, or calls `produce()` and caches what it returns — once across threads: other
    /// threads asking for the same key meanwhile wait for this result (pixcache_find_or_insert_with).
    /// `produce` returns a Pixmap, or a std::optional<Pixmap> where std::nullopt means failure.
    /// Returns std::nullopt if production failed (pixcache::lastError() says why); an exception
    /// thrown by `produce` is rethrown here, on the producing thread (waiters get std::nullopt).
    template <typename Produce>
    std::optional<Pixmap> findOrInsert(KeyArg key, Produce &&produce) {
        struct Context {
            std::remove_reference_t<Produce> *produce;
            std::exception_ptr error;
        } ctx{&produce, nullptr};
        auto trampoline = [](void *user_data, PixcachePixmap *out) noexcept -> bool {
            auto *c = static_cast<Context *>(user_data);
            try {
                using Result = std::decay_t<decltype((*c->produce)())>;
                if constexpr (std::is_same_v<Result, std::optional<Pixmap>>) {
                    std::optional<Pixmap> pm = (*c->produce)();
                    if (!pm) return false;
                    if (pm->handle()) pixcache_pixmap_assign(out, pm->handle());
                } else {
                    Pixmap pm = (*c->produce)();
                    if (pm.handle()) pixcache_pixmap_assign(out, pm.handle());
                }
                return true;
            } catch (const std::exception &e) {
                c->error = std::current_exception();
                // Waiting threads get this reason (the exception itself reaches only this one).
                pixcache_set_error(PIXCACHE_RESULT_PRODUCER_FAILED, e.what());
                return false;
            } catch (...) {
                c->error = std::current_exception();
                pixcache_set_error(PIXCACHE_RESULT_PRODUCER_FAILED, "the producer threw an exception");
                return false;
            }
        };
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle) return std::nullopt;
        if (!pixcache_find_or_insert_with_n(c_, key.data(), key.size(), trampoline, &ctx, handle)) {
            if (ctx.error) std::rethrow_exception(ctx.error);
            return std::nullopt;
        }
        return out;
    }

    /// Finds the image file `path`, or decodes and caches it — once across threads
    /// (pixcache_find_or_load). The key is the file's identity (absolute path, size, modification
    /// time: fileKey()), so an edited file is loaded again. std::nullopt if it cannot be read or
    /// decoded.
    std::optional<Pixmap> findOrLoad(PathArg path) noexcept {
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle || !pixcache_find_or_load(c_, path.c_str(), handle)) return std::nullopt;
        return out;
    }

    /// findOrLoad() converting to `format` (pixcache_find_or_load_as): another entry per format.
    std::optional<Pixmap> findOrLoad(PathArg path, PixcacheFormat format) noexcept {
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle || !pixcache_find_or_load_as(c_, path.c_str(), format, handle)) return std::nullopt;
        return out;
    }

    /// The C handle.
    PixcacheCache *handle() const noexcept { return c_; }

private:
    Cache(PixcacheCache *c, bool owned) noexcept : c_(c), owned_(owned) {}

    /// The removal hook: the Cache's own, or (for the process-wide cache) the global one.
    detail::RemovalHook *removalHook() const noexcept {
        return owned_ ? hook_.get() : detail::globalRemovalHook();
    }

    void release() noexcept {
        if (!owned_) return;
        std::shared_ptr<const RemovalCallback> old;  // destroyed after the hook's lock is let go
        if (hook_) {
            {
                std::lock_guard<std::mutex> setting(hook_->setting);
                if (hook_->installed) {
                    detail::RemovalHook::setKeepingError(c_, nullptr, nullptr);
                    hook_->installed = false;
                }
            }
            std::lock_guard<std::mutex> lock(hook_->mutex);
            old = std::exchange(hook_->fn, nullptr);
        }
        pixcache_cache_free(c_);
        c_ = nullptr;
        owned_ = false;
        hook_.reset();  // freed now, or by the last PressureWatch of this cache
    }

    /// A C handle for a pixmap argument: its own, or a temporary null one for a null Pixmap.
    struct Holder {
        explicit Holder(const Pixmap &pm) noexcept
            : tmp(pm.p_ ? nullptr : pixcache_pixmap_new_null()), p(pm.p_ ? pm.p_ : tmp) {}
        ~Holder() { pixcache_pixmap_free(tmp); }
        Holder(const Holder &) = delete;
        Holder &operator=(const Holder &) = delete;
        PixcachePixmap *tmp;
        const PixcachePixmap *p;
    };

    PixcacheCache *c_;
    bool owned_;
    // The removal callback's state (owned caches; nullptr for the global cache, which uses
    // detail::globalRemovalHook(), and for a moved-from Cache).
    std::shared_ptr<detail::RemovalHook> hook_;
};

/// QPixmapCache's static API over the process-wide cache: `QPixmapCache::` becomes
/// `pixcache::PixmapCache::`, `QPixmap` becomes `pixcache::Pixmap`. Keys are any string
/// (KeyArg: UTF-8; a null C string is the empty key).
class PixmapCache {
public:
    using Key = pixcache::Key;

    PixmapCache() = delete;

    static int cacheLimit() noexcept { return Cache::global().cacheLimit(); }
    static void setCacheLimit(int limitKb) noexcept { Cache::global().setCacheLimit(limitKb); }
    static bool find(KeyArg key, Pixmap *pixmap) noexcept {
        return Cache::global().find(key, pixmap);
    }
    static bool find(const Key &key, Pixmap *pixmap) noexcept {
        return Cache::global().find(key, pixmap);
    }
    static bool insert(KeyArg key, const Pixmap &pixmap) noexcept {
        return Cache::global().insert(key, pixmap);
    }
    static Key insert(const Pixmap &pixmap) noexcept { return Cache::global().insert(pixmap); }
    static bool replace(const Key &key, const Pixmap &pixmap) noexcept {
        return Cache::global().replace(key, pixmap);
    }
    static void remove(KeyArg key) noexcept { Cache::global().remove(key); }
    static void remove(const Key &key) noexcept { Cache::global().remove(key); }
    static void clear() noexcept { Cache::global().clear(); }
    /// Sum of the entries' costs in KB (exact; Qt 6.4's private totalUsed() is off by 1024x).
    static int totalUsed() noexcept { return Cache::global().totalUsed(); }
    /// Qt's idle trim (QPixmapCache::flushDetachedPixmaps): call it from your own idle timer.
    static void flushDetachedPixmaps() noexcept { Cache::global().flushDetachedPixmaps(); }
    /// Cache::tick on the process-wide cache: one firing of Qt's idle timer, now. Returns how
    /// many entries went.
    static std::size_t tick() noexcept { return Cache::global().tick(); }
    /// Cache::findOrInsert on the process-wide cache.
    template <typename Produce>
    static std::optional<Pixmap> findOrInsert(KeyArg key, Produce &&produce) {
        return Cache::global().findOrInsert(key, std::forward<Produce>(produce));
    }
    /// Cache::findOrLoad on the process-wide cache.
    static std::optional<Pixmap> findOrLoad(PathArg path) noexcept {
        return Cache::global().findOrLoad(path);
    }

    // Beyond QPixmapCache: the Cache functions of the same names, on the process-wide cache.

    /// Cache::setRemovalCallback on the process-wide cache: the callback lives until replaced
    /// (or the process ends); an empty std::function removes it.
    static bool setRemovalCallback(RemovalCallback callback) noexcept {
        return Cache::global().setRemovalCallback(std::move(callback));
    }
    static std::exception_ptr takeRemovalCallbackException() noexcept {
        return Cache::global().takeRemovalCallbackException();
    }
    static bool contains(KeyArg key) noexcept { return Cache::global().contains(key); }
    static bool contains(const Key &key) noexcept { return Cache::global().contains(key); }
    static std::optional<Pixmap> peek(KeyArg key) noexcept { return Cache::global().peek(key); }
    static std::optional<Pixmap> peek(const Key &key) noexcept { return Cache::global().peek(key); }
    static std::optional<Pixmap> take(KeyArg key) noexcept { return Cache::global().take(key); }
    static std::optional<Pixmap> take(const Key &key) noexcept { return Cache::global().take(key); }
    static std::size_t countLimit() noexcept { return Cache::global().countLimit(); }
    static std::size_t setCountLimit(std::size_t n) noexcept { return Cache::global().setCountLimit(n); }
    static bool insertWithCost(KeyArg key, const Pixmap &pixmap, int costKb) noexcept {
        return Cache::global().insertWithCost(key, pixmap, costKb);
    }
    static Key insertWithCost(const Pixmap &pixmap, int costKb) noexcept {
        return Cache::global().insertWithCost(pixmap, costKb);
    }
    static std::size_t trim(TrimLevel level) noexcept { return Cache::global().trim(level); }
    static std::size_t trimTo(int kb) noexcept { return Cache::global().trimTo(kb); }
    static void setLiveImages(bool on) noexcept { Cache::global().setLiveImages(on); }
    static bool liveImages() noexcept { return Cache::global().liveImages(); }
    static PixcacheStats stats() noexcept { return Cache::global().stats(); }
    static uint64_t removals(RemovalReason reason) noexcept { return Cache::global().removals(reason); }
    static void resetStats() noexcept { Cache::global().resetStats(); }
    /// Cache::watchMemoryPressure on the process-wide cache.
    static PressureWatch watchMemoryPressure(const char *source = nullptr) {
        return Cache::global().watchMemoryPressure(source);
    }
};

}  // namespace pixcache

#endif  // PIXCACHE_HPP

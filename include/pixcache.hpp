// pixcache.hpp: a header-only C++17 layer over pixcache's C API (pixcache.h), shaped like Qt's
// QPixmapCache so that moving from Qt is a rename.
//
//   pixcache::Pixmap       a value type like QPixmap (copies share pixels, writes detach)
//   pixcache::PixmapCache  QPixmapCache's static API over the process-wide cache
//   pixcache::Cache        the same operations on an independent cache (RAII)
//   pixcache::Error        thrown by constructors that cannot succeed (carries the library's message)
//
// Error policy: the Qt-shaped functions never throw (they are noexcept and return what Qt returns;
// pixcache::lastError() tells why a call failed). Constructors that can fail (a pixmap too large
// to allocate, a file that does not decode) throw pixcache::Error; each has a non-throwing
// factory (Pixmap::create, Pixmap::tryLoad) returning std::optional instead.
//
// Hand-written (pixcache.h is generated): keep it in step with src/ffi/.
#ifndef PIXCACHE_HPP
#define PIXCACHE_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
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

inline void swap(Key &a, Key &b) noexcept { a.swap(b); }
inline void swap(Pixmap &a, Pixmap &b) noexcept { a.swap(b); }

/// A pixmap cache: the QPixmapCache operations on one cache. `Cache` owns an independent cache
/// (freed by its destructor); `Cache::global()` refers to the process-wide one (never freed).
/// Every function is noexcept and thread-safe.
class Cache {
public:
    /// An independent cache of `limitKb` KB; throws pixcache::Error if it cannot be made.
    explicit Cache(int limitKb = 10240) : c_(pixcache_cache_new(limitKb)), owned_(true) {
        if (!c_) throw Error::fromLastError();
    }
    Cache(const Cache &) = delete;
    Cache &operator=(const Cache &) = delete;
    Cache(Cache &&other) noexcept
        : c_(std::exchange(other.c_, nullptr)), owned_(std::exchange(other.owned_, false)) {}
    Cache &operator=(Cache &&other) noexcept {
        if (this != &other) {
            if (owned_) pixcache_cache_free(c_);
            c_ = std::exchange(other.c_, nullptr);
            owned_ = std::exchange(other.owned_, false);
        }
        return *this;
    }
    ~Cache() {
        if (owned_) pixcache_cache_free(c_);
    }

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
    PixcacheStats stats() const noexcept { return pixcache_stats(c_); }

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
    /// (pixcache_find_or_load). std::nullopt if it cannot be read or decoded.
    std::optional<Pixmap> findOrLoad(PathArg path) noexcept {
        Pixmap out;
        PixcachePixmap *handle = out.outHandle();
        if (!handle || !pixcache_find_or_load(c_, path.c_str(), handle)) return std::nullopt;
        return out;
    }

    /// The C handle.
    PixcacheCache *handle() const noexcept { return c_; }

private:
    Cache(PixcacheCache *c, bool owned) noexcept : c_(c), owned_(owned) {}

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
};

}  // namespace pixcache

#endif  // PIXCACHE_HPP

// test_cpp_api.cpp: the C++ layer (include/pixcache.hpp) used the way Qt code uses QPixmapCache.
//
// Covers: the find-or-render idiom through PixmapCache's static API, keys kept in "widgets" and
// revalidated on paint, replace() updating the caller's key (and not its copies), Key value
// semantics (default, ==, !=, swap, copy, move), Pixmap value semantics (copy shares, bits()
// detaches, move leaves a null pixmap), an independent Cache (RAII), and the error policy
// (throwing constructor + non-throwing factory, noexcept Qt-shaped calls).
// Not covered here: the C rules themselves (test_rules.c), threads (test_threads.c).
#undef NDEBUG
#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pixcache.hpp"

using pixcache::Pixmap;
using pixcache::PixmapCache;
using pixcache::Cache;

static int checks = 0;
#define CHECK(cond) (assert(cond), ++checks)

static int renders = 0;

// The idiom from Qt's documentation of QPixmapCache::find.
static Pixmap cachedIcon(const std::string &name, uint32_t size) {
    Pixmap pm;
    if (!PixmapCache::find(name, &pm)) {
        pm = Pixmap(size, size);
        std::memset(pm.bits(), 0x7f, pm.stride() * pm.height());
        ++renders;
        PixmapCache::insert(name, pm);
    }
    return pm;
}

static void test_find_or_render() {
    std::puts("/cpp/find_or_render");
    PixmapCache::clear();
    renders = 0;
    for (int i = 0; i < 5; ++i) {
        Pixmap a = cachedIcon("icon:open", 32);
        Pixmap b = cachedIcon("icon:save", 32);
        CHECK(a.width() == 32 && b.height() == 32);
        CHECK(a.constBits()[0] == 0x7f);
        CHECK(!a.isDetached());  // shared with the cache
    }
    CHECK(renders == 2);
    CHECK(PixmapCache::totalUsed() == 2 * 4);
    PixmapCache::clear();
}

// A widget that keeps a generated key and re-renders when the cache dropped its pixmap.
struct Widget {
    PixmapCache::Key key;
    int paints = 0, renders = 0;
    void paint() {
        ++paints;
        Pixmap pm;
        if (!PixmapCache::find(key, &pm)) {
            pm = Pixmap(64, 64);
            ++renders;
            key = PixmapCache::insert(pm);
        }
        assert(pm.width() == 64);
    }
};

static void test_keys_in_widgets() {
    std::puts("/cpp/keys_stored_in_widgets");
    PixmapCache::clear();
    int limit = PixmapCache::cacheLimit();
    CHECK(limit == 10240);
    std::vector<Widget> widgets(4);
    for (auto &w : widgets) w.paint();
    for (auto &w : widgets) w.paint();
    for (auto &w : widgets) CHECK(w.renders == 1 && w.key.isValid());
    PixmapCache::setCacheLimit(32);  // room for two 16 KB pixmaps: the two oldest go
    CHECK(!widgets[0].key.isValid() && !widgets[1].key.isValid());
    CHECK(widgets[2].key.isValid() && widgets[3].key.isValid());
    widgets[0].paint();
    CHECK(widgets[0].renders == 2 && widgets[0].key.isValid());
    CHECK(!widgets[2].key.isValid());  // least recently used when widget 0 re-inserted
    PixmapCache::setCacheLimit(limit);
    PixmapCache::clear();
    for (auto &w : widgets) CHECK(!w.key.isValid());
}

static void test_replace_updates_key() {
    std::puts("/cpp/replace_updates_the_key_not_its_copies");
    PixmapCache::clear();
    Pixmap big(64, 64), small(10, 10);
    PixmapCache::Key key = PixmapCache::insert(big);
    PixmapCache::Key copy = key;
    CHECK(key == copy);
    CHECK(PixmapCache::replace(key, small));
    CHECK(key != copy);
    CHECK(key.isValid() && !copy.isValid());
    Pixmap out;
    CHECK(PixmapCache::find(key, &out) && out.width() == 10);
    CHECK(out.cacheKey() == small.cacheKey());
    CHECK(!PixmapCache::find(copy, &out));
    CHECK(!PixmapCache::replace(copy, big));  // invalid key: nothing inserted
    CHECK(PixmapCache::totalUsed() == 1);
    PixmapCache::clear();
}

static void test_key_semantics() {
    std::puts("/cpp/key_value_semantics");
    PixmapCache::Key a, b;
    CHECK(a == b && !a.isValid());
    Pixmap pm(1, 1);
    PixmapCache::Key k1 = PixmapCache::insert(pm), k2 = PixmapCache::insert(pm);
    CHECK(k1 != k2 && k1 != a);
    PixmapCache::Key s1 = k1, s2 = k2;
    s1.swap(s2);
    CHECK(s1 == k2 && s2 == k1);
    using std::swap;
    swap(s1, s2);
    CHECK(s1 == k1);
    PixmapCache::Key moved = std::move(s1);
    CHECK(moved == k1 && moved.isValid());
    PixmapCache::remove(k1);
    CHECK(!moved.isValid() && k2.isValid());
    PixmapCache::clear();
}

static void test_pixmap_semantics() {
    std::puts("/cpp/pixmap_value_semantics");
    Pixmap a(4, 4, PIXCACHE_FORMAT_RGBA8888);
    CHECK(a.isDetached() && a.depth() == 32 && a.format() == PIXCACHE_FORMAT_RGBA8888);
    Pixmap b = a;
    CHECK(!a.isDetached() && a.cacheKey() == b.cacheKey());
    b.bits()[0] = 9;
    CHECK(a.isDetached() && b.isDetached() && a.constBits()[0] == 0 && b.constBits()[0] == 9);
    Pixmap c = std::move(b);
    CHECK(b.isNull() && c.constBits()[0] == 9);
    b = c;  // assign into a moved-from pixmap
    CHECK(b.cacheKey() == c.cacheKey());
    c = Pixmap();
    CHECK(c.isNull() && b.isDetached());
    Pixmap null;
    CHECK(null.isNull() && null.cacheKey() == 0 && null.width() == 0);
    CHECK(!null.isDetached() && !Pixmap(0, 5).isDetached());  // as QPixmap().isDetached()
    CHECK(PixmapCache::insert("null", null));  // a null pixmap is cacheable, costing 1 KB
    Pixmap out(2, 2);
    CHECK(PixmapCache::find("null", &out) && out.isNull());
    CHECK(!PixmapCache::find("missing", &out) && out.isNull());
    PixmapCache::clear();
}

static void test_independent_cache() {
    std::puts("/cpp/independent_cache");
    pixcache::Cache cache(32);
    Pixmap pm(64, 64);  // 16 KB
    CHECK(cache.insert("a", pm) && cache.insert("b", pm));
    Pixmap out;
    CHECK(cache.find("a", &out));  // a is now the most recent
    CHECK(cache.insert("c", pm));  // evicts b
    CHECK(!cache.find("b", nullptr) && cache.find("a", nullptr));
    CHECK(!PixmapCache::find("a", nullptr));  // the global cache is another cache
    pixcache::Key k = cache.insert(pm);
    CHECK(cache.isValid(k) && !k.isValid());  // Key::isValid asks the global cache
    PixcacheStats st = cache.stats();
    CHECK(st.entries == 2 && st.evictions == 2 && st.limit_kb == 32);
    pixcache::Cache moved = std::move(cache);
    CHECK(moved.totalUsed() == 32);
    std::string with_nul("x\0y", 3);
    CHECK(moved.insert(with_nul, Pixmap(1, 1)) && moved.find(with_nul, nullptr));
    CHECK(!moved.find(std::string_view("x"), nullptr));
}

static void test_errors() {
    std::puts("/cpp/errors_throw_only_from_constructors");
    bool thrown = false;
    try {
        Pixmap huge(1u << 30, 1u << 30);
    } catch (const pixcache::Error &e) {
        thrown = true;
        CHECK(e.code() == PIXCACHE_RESULT_TOO_LARGE);
        CHECK(std::strlen(e.what()) > 0);
    }
    CHECK(thrown);
    CHECK(!Pixmap::create(1u << 30, 1u << 30).has_value());
    CHECK(pixcache::lastResult() == PIXCACHE_RESULT_TOO_LARGE);
    CHECK(!Pixmap::tryLoad("/nonexistent/file.png").has_value());
    CHECK(pixcache::lastResult() == PIXCACHE_RESULT_IO);
    thrown = false;
    try {
        Pixmap::load("/nonexistent/file.png");
    } catch (const pixcache::Error &) {
        thrown = true;
    }
    CHECK(thrown);
    PixmapCache::setCacheLimit(10);
    CHECK(!PixmapCache::insert("big", Pixmap(64, 64)));  // refused, no exception
    CHECK(pixcache::lastResult() == PIXCACHE_RESULT_REFUSED);
    CHECK(!PixmapCache::insert(Pixmap(64, 64)).isValid());
    PixmapCache::setCacheLimit(10240);
    static_assert(noexcept(PixmapCache::find(std::string_view(), nullptr)), "Qt-shaped calls are noexcept");
    static_assert(noexcept(PixmapCache::insert(Pixmap())), "Qt-shaped calls are noexcept");
}

static void test_find_or_insert() {
    std::puts("/cpp/find_or_insert_single_flight");
    pixcache::Cache cache(4096);
    std::atomic<int> produced{0};
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int k = 0; k < 20; ++k) {
                auto pm = cache.findOrInsert("tile:" + std::to_string(k), [&] {
                    ++produced;
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    return Pixmap(uint32_t(8 + k), 8);
                });
                if (pm && pm->width() == uint32_t(8 + k)) ++ok;
            }
        });
    for (auto &t : threads) t.join();
    CHECK(ok == 160);
    CHECK(produced == 20);  // each key produced once across 8 threads
    CHECK(cache.stats().entries == 20);

    // std::nullopt from the producer is a failure; nothing is cached.
    auto none = cache.findOrInsert("bad", []() -> std::optional<Pixmap> { return std::nullopt; });
    CHECK(!none && !cache.find("bad", nullptr));
    // An exception from the producer is rethrown to the caller, and nothing is cached.
    bool thrown = false;
    try {
        cache.findOrInsert("throws", []() -> Pixmap { throw std::runtime_error("render failed"); });
    } catch (const std::runtime_error &e) {
        thrown = std::string(e.what()) == "render failed";
    }
    CHECK(thrown && !cache.find("throws", nullptr));
    // An lvalue producer works too.
    auto make = [] { return Pixmap(2, 2); };
    CHECK(cache.findOrInsert("lvalue", make).has_value());
    // A hit does not call the producer.
    auto hit = cache.findOrInsert("tile:3", []() -> Pixmap { throw std::logic_error("not called"); });
    CHECK(hit && hit->width() == 11);
    CHECK(!cache.findOrLoad("/nonexistent/x.png"));
    CHECK(pixcache::lastResult() == PIXCACHE_RESULT_IO);
    // The key is the whole string_view, NUL bytes included (not cut at the first NUL).
    using namespace std::string_view_literals;
    CHECK(cache.findOrInsert("nul\0key"sv, [] { return Pixmap(3, 3); }).has_value());
    CHECK(cache.find("nul\0key"sv, nullptr) && !cache.find("nul"sv, nullptr));
}

// A null C string is the empty key everywhere (as a null pointer is an empty QString in Qt), a
// null path an error: never a crash. `opaque` keeps the compiler from seeing the null.
static void test_null_strings() {
    volatile const char *opaque = nullptr;
    const char *null_key = const_cast<const char *>(opaque);
    Cache cache(1024);
    CHECK(!cache.find(null_key, nullptr));
    CHECK(cache.insert(null_key, Pixmap(4, 4)));
    CHECK(cache.find("", nullptr) && cache.find(null_key, nullptr));
    Pixmap out;
    CHECK(cache.find(null_key, &out) && out.width() == 4);
    cache.remove(null_key);
    CHECK(!cache.find("", nullptr));
    auto produced = cache.findOrInsert(null_key, [] { return Pixmap(2, 2); });
    CHECK(produced && cache.find("", nullptr));
    // The process-wide cache, Qt-style, with literal null pointers.
    PixmapCache::remove("");
    CHECK(!PixmapCache::find(nullptr, &out));
    CHECK(!PixmapCache::find(0, nullptr));
    CHECK(PixmapCache::insert(nullptr, Pixmap(1, 1)) && PixmapCache::find("", nullptr));
    PixmapCache::remove(NULL);
    CHECK(!PixmapCache::find("", nullptr));
    // Paths: a null one fails with NULL_ARGUMENT, in every form.
    CHECK(!Pixmap::tryLoad(null_key) && pixcache::lastResult() == PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!cache.findOrLoad(null_key) && pixcache::lastResult() == PIXCACHE_RESULT_NULL_ARGUMENT);
    bool thrown = false;
    try {
        (void)Pixmap::load(null_key);
    } catch (const pixcache::Error &e) {
        thrown = e.code() == PIXCACHE_RESULT_NULL_ARGUMENT;
    }
    CHECK(thrown);
    // An Error made with a null message has the empty one.
    const pixcache::Error made(PIXCACHE_RESULT_IO, null_key);
    CHECK(made.code() == PIXCACHE_RESULT_IO && std::string(made.what()).empty());
}

// tick(): one firing of Qt's idle timer. Changed since the last tick: the least recently used
// entry goes; unchanged: a trim to three quarters.
static void test_tick() {
    Cache cache(10240);
    for (int i = 0; i < 8; ++i) cache.insert("t" + std::to_string(i), Pixmap(64, 64));  // 16 KB each
    CHECK(cache.tick() == 1);  // changed since the (never run) previous tick
    CHECK(!cache.find("t0", nullptr) && cache.totalUsed() == 112);
    CHECK(cache.tick() == 2);  // unchanged: 112 KB -> 84 KB, two 16 KB entries
    CHECK(cache.totalUsed() == 80);
    PixmapCache::clear();
    PixmapCache::insert("g", Pixmap(64, 64));
    CHECK(PixmapCache::tick() == 1 && !PixmapCache::find("g", nullptr));
}

// A producer's exception reaches the threads waiting for it as PRODUCER_FAILED with its text.
static void test_producer_exception_reason() {
    Cache cache(1024);
    std::atomic<bool> waiting{false};
    std::optional<Pixmap> waiter_result;
    PixcacheResult waiter_code = PIXCACHE_RESULT_OK;
    std::string waiter_message;
    std::thread waiter;
    bool thrown = false;
    try {
        cache.findOrInsert("slow", [&]() -> Pixmap {
            waiter = std::thread([&] {
                waiting = true;
                waiter_result = cache.findOrInsert("slow", [] { return Pixmap(1, 1); });
                waiter_code = pixcache::lastResult();
                waiter_message = pixcache::lastError();
            });
            while (!waiting) std::this_thread::yield();
            std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it start waiting
            throw std::runtime_error("disk on fire");
        });
    } catch (const std::runtime_error &) {
        thrown = true;
    }
    waiter.join();
    CHECK(thrown);
    // The waiter either waited (and got the reason) or came after the failure and produced.
    if (!waiter_result) {
        CHECK(waiter_code == PIXCACHE_RESULT_PRODUCER_FAILED);
        CHECK(waiter_message.find("disk on fire") != std::string::npos);
    }
}

int main() {
    test_null_strings();
    test_tick();
    test_producer_exception_reason();
    test_find_or_render();
    test_keys_in_widgets();
    test_replace_updates_key();
    test_key_semantics();
    test_pixmap_semantics();
    test_independent_cache();
    test_errors();
    test_find_or_insert();
    std::printf("%d checks passed\n", checks);
    return 0;
}

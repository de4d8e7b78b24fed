// test_cpp_api.cpp: the C++ layer (include/pixcache.hpp) used the way Qt code uses QPixmapCache.
//
// Covers: the find-or-render idiom through PixmapCache's static API, keys kept in "widgets" and
// revalidated on paint, replace() updating the caller's key (and not its copies), Key value
// semantics (default, ==, !=, swap, copy, move), Pixmap value semantics (copy shares, bits()
// detaches, move leaves a null pixmap), an independent Cache (RAII), and the error policy
// (throwing constructor + non-throwing factory, noexcept Qt-shaped calls). Beyond Qt: contains/
// peek/take, count limit, explicit costs, trims, live images, stats v2, removal callbacks
// (reasons, keys, reentry, exceptions, lifetime across moves, replacement and destruction,
// threads), and the PressureWatch RAII wrapper.
// Not covered here: the C rules themselves (test_rules.c), threads (test_threads.c).
#undef NDEBUG
#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "pixcache.hpp"

using pixcache::Pixmap;
using pixcache::PixmapCache;
using pixcache::Cache;
using pixcache::Key;
using pixcache::Removal;
using pixcache::RemovalReason;
using pixcache::TrimLevel;

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


// contains/peek/take, count limit, explicit costs, trims, live images and stats v2 on a Cache.
static void test_beyond_qt() {
    std::puts("/cpp/contains_peek_take_limits_costs_trims_live_stats");
    Cache cache(32);
    Pixmap pm(64, 64);  // 16 KB
    CHECK(cache.insert("a", pm) && cache.insert("b", pm));
    PixcacheStats before = cache.stats();
    CHECK(cache.contains("a") && !cache.contains("zz"));
    auto seen = cache.peek("a");
    CHECK(seen && seen->cacheKey() == pm.cacheKey());
    CHECK(!cache.peek("zz"));
    PixcacheStats after = cache.stats();
    CHECK(after.hits == before.hits && after.misses == before.misses);  // a look is not a use
    CHECK(cache.insert("c", pm));  // peek did not make "a" recent: "a" goes, not "b"
    CHECK(!cache.contains("a") && cache.contains("b") && cache.contains("c"));

    // take: the pixmap leaves the cache and becomes the caller's.
    CHECK(cache.insert("solo", Pixmap(8, 8)));
    auto taken = cache.take("solo");
    CHECK(taken && taken->width() == 8 && taken->isDetached() && !cache.contains("solo"));
    CHECK(!cache.take("solo"));
    Key k = cache.insert(Pixmap(4, 4));
    CHECK(cache.contains(k));
    auto pk = cache.peek(k);
    CHECK(pk && pk->width() == 4);
    auto tk = cache.take(k);
    CHECK(tk && tk->width() == 4 && !cache.contains(k) && !cache.isValid(k));
    CHECK(!cache.take(k) && pixcache::lastResult() == PIXCACHE_RESULT_INVALID_KEY);
    CHECK(!cache.peek(k) && pixcache::lastResult() == PIXCACHE_RESULT_INVALID_KEY);
    using namespace std::string_view_literals;
    CHECK(cache.insert("n\0ul"sv, Pixmap(1, 1)) && cache.contains("n\0ul"sv) && !cache.contains("n"sv));
    CHECK(cache.take("n\0ul"sv).has_value());

    // Count limit.
    cache.clear();
    cache.setCacheLimit(10240);
    for (int i = 0; i < 3; ++i) cache.insert("n" + std::to_string(i), Pixmap(8, 8));
    CHECK(cache.countLimit() == 0);
    CHECK(cache.setCountLimit(2) == 1 && cache.countLimit() == 2);
    CHECK(cache.stats().count_limit == 2 && !cache.contains("n0"));
    CHECK(cache.insert("n3", Pixmap(8, 8)) && cache.stats().entries == 2 && !cache.contains("n1"));
    CHECK(cache.setCountLimit(0) == 0);

    // Explicit costs.
    cache.clear();
    CHECK(cache.insertWithCost("gpu", Pixmap(1, 1), 100) && cache.totalUsed() == 100);
    CHECK(cache.insertWithCost("free", Pixmap(64, 64), 0) && cache.totalUsed() == 100);
    CHECK(!cache.insertWithCost("neg", pm, -1) && pixcache::lastResult() == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(!cache.insertWithCost("huge", pm, 20000) && pixcache::lastResult() == PIXCACHE_RESULT_REFUSED);
    Key ck = cache.insertWithCost(pm, 5);
    CHECK(ck.raw().id != 0 && cache.isValid(ck) && cache.totalUsed() == 105);
    CHECK(cache.insertWithCost(pm, -1) == Key() && pixcache::lastResult() == PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(cache.insertWithCost("nullpm", Pixmap(), 3) && cache.totalUsed() == 108);

    // Trims.
    cache.clear();
    for (int i = 0; i < 8; ++i) cache.insert("t" + std::to_string(i), Pixmap(64, 64));
    CHECK(cache.totalUsed() == 128);
    CHECK(cache.trim(TrimLevel::Moderate) == 4 && cache.totalUsed() == 64);
    CHECK(cache.contains("t7") && !cache.contains("t3"));  // least recently used first
    CHECK(cache.trim(static_cast<TrimLevel>(99)) == 0);
    CHECK(pixcache::lastResult() == PIXCACHE_RESULT_INVALID_ARGUMENT && cache.totalUsed() == 64);
    CHECK(cache.trimTo(32) == 2 && cache.totalUsed() == 32);
    CHECK(cache.trim(TrimLevel::Complete) == 2 && cache.totalUsed() == 0);
    CHECK(cache.cacheLimit() == 10240);  // the limit stays

    // Live images: an evicted entry still shared stays findable, outside the limit.
    cache.setCacheLimit(32);
    CHECK(!cache.liveImages());
    cache.setLiveImages(true);
    CHECK(cache.liveImages());
    Pixmap held(64, 64);
    CHECK(cache.insert("live", held) && cache.insert("x", pm) && cache.insert("y", pm));
    PixcacheStats live = cache.stats();
    CHECK(live.entries == 2 && live.live_entries == 1 && live.live_kb == 16);
    CHECK(cache.contains("live"));
    auto lp = cache.peek("live");
    CHECK(lp && lp->cacheKey() == held.cacheKey());
    cache.setLiveImages(false);
    CHECK(!cache.liveImages() && !cache.contains("live") && cache.stats().live_entries == 0);

    // Stats v2 and resetStats.
    Pixmap out;
    CHECK(cache.find("x", &out) && !cache.find("nothing", &out));
    PixcacheStats st = cache.stats();
    CHECK(st.hits >= 1 && st.misses >= 1 && st.peak_kb >= st.total_kb && st.peak_kb >= 108);
    CHECK(cache.removals(RemovalReason::Evicted) == st.removals[PIXCACHE_REMOVAL_EVICTED]);
    CHECK(cache.removals(RemovalReason::Trimmed) == 8 && cache.removals(RemovalReason::Taken) == 3);
    cache.resetStats();
    st = cache.stats();
    CHECK(st.hits == 0 && st.misses == 0 && st.inserts == 0 && st.evictions == 0 && st.refused == 0);
    for (uint64_t n : st.removals) CHECK(n == 0);
    CHECK(st.peak_kb == st.total_kb && st.total_kb == 32 && st.entries == 2);
    static_assert(noexcept(cache.peek(std::string_view())), "non-Qt calls are noexcept too");
    static_assert(noexcept(cache.trim(TrimLevel::Low)), "non-Qt calls are noexcept too");
}

// The same calls on the process-wide cache, through PixmapCache.
static void test_beyond_qt_global() {
    std::puts("/cpp/beyond_qt_on_the_global_cache");
    PixmapCache::clear();
    PixmapCache::resetStats();
    Pixmap pm(64, 64);
    CHECK(PixmapCache::insert("g", pm) && PixmapCache::contains("g"));
    auto p = PixmapCache::peek("g");
    CHECK(p && p->cacheKey() == pm.cacheKey() && PixmapCache::stats().hits == 0);
    CHECK(PixmapCache::take("g") && !PixmapCache::contains("g"));
    PixmapCache::Key k = PixmapCache::insertWithCost(pm, 7);
    CHECK(PixmapCache::contains(k) && PixmapCache::peek(k) && PixmapCache::totalUsed() == 7);
    CHECK(PixmapCache::take(k) && !k.isValid());
    CHECK(PixmapCache::insertWithCost("c", pm, 3) && PixmapCache::totalUsed() == 3);
    CHECK(PixmapCache::setCountLimit(1) == 0 && PixmapCache::countLimit() == 1);
    CHECK(PixmapCache::insert("d", pm) && !PixmapCache::contains("c"));
    CHECK(PixmapCache::setCountLimit(0) == 0);
    CHECK(PixmapCache::trim(TrimLevel::Complete) == 1 && PixmapCache::totalUsed() == 0);
    for (int i = 0; i < 4; ++i) PixmapCache::insert("t" + std::to_string(i), pm);
    CHECK(PixmapCache::trimTo(32) == 2);
    PixmapCache::setLiveImages(true);
    CHECK(PixmapCache::liveImages());
    PixmapCache::setLiveImages(false);
    CHECK(PixmapCache::removals(RemovalReason::Taken) == 2);
    PixmapCache::resetStats();
    CHECK(PixmapCache::removals(RemovalReason::Taken) == 0);
    PixmapCache::clear();
}

struct Seen {
    RemovalReason reason;
    std::string key;
    bool generated;
    Key generatedKey;
    uint64_t cacheKey;
    int costKb;
    Pixmap kept;
};

// Every removal reaches the callback once, with its reason, its key and a share of its pixmap.
static void test_removal_callback_reasons() {
    std::puts("/cpp/removal_callback_reasons_and_keys");
    Cache cache(32);
    std::vector<Seen> seen;
    CHECK(cache.setRemovalCallback([&](const Removal &r) {
        seen.push_back({r.reason, std::string(r.key), r.isGenerated(), r.generatedKey,
                        r.pixmap.cacheKey(), r.costKb, r.pixmap});
    }));
    Pixmap a(64, 64), b(64, 64), c(64, 64);
    auto last = [&]() -> const Seen & { return seen.back(); };
    CHECK(cache.insert("a", a) && cache.insert("b", b) && seen.empty());
    CHECK(cache.insert("c", c) && seen.size() == 1);  // a evicted
    CHECK(last().reason == RemovalReason::Evicted && last().key == "a" && !last().generated);
    CHECK(last().cacheKey == a.cacheKey() && last().costKb == 16 && last().generatedKey == Key());
    CHECK(cache.insert("b", a) && seen.size() == 2);
    CHECK(last().reason == RemovalReason::Replaced && last().key == "b" && last().cacheKey == b.cacheKey());
    cache.remove("c");
    CHECK(seen.size() == 3 && last().reason == RemovalReason::Removed && last().key == "c");
    CHECK(cache.take("b") && seen.size() == 4);
    CHECK(last().reason == RemovalReason::Taken && last().key == "b" && last().cacheKey == a.cacheKey());
    cache.remove("nothing");  // no entry, no call
    CHECK(seen.size() == 4);

    // Generated keys: the key as it was, the string key empty.
    Key k = cache.insert(Pixmap(2, 2));
    const Key old = k;
    CHECK(cache.replace(k, Pixmap(3, 3)) && seen.size() == 5);
    CHECK(last().reason == RemovalReason::Replaced && last().generated && last().key.empty());
    CHECK(last().generatedKey == old && last().generatedKey != k && last().kept.width() == 2);
    cache.remove(k);
    CHECK(seen.size() == 6 && last().reason == RemovalReason::Removed && last().generatedKey == k);
    CHECK(last().kept.width() == 3);

    // Limit lowered, trimmed, cleared; keys with NUL bytes and longer than a stack buffer; ""
    // is a string key, not a generated one.
    using namespace std::string_view_literals;
    const std::string longKey(300, 'k');
    CHECK(cache.insert("x\0y"sv, Pixmap(1, 1)) && cache.insert(longKey, Pixmap(1, 1)));
    CHECK(cache.insert("", Pixmap(1, 1)) && cache.insert("big", c));
    cache.setCacheLimit(18);  // 19 KB > 18: "x\0y" goes (least recent)
    CHECK(seen.size() == 7 && last().reason == RemovalReason::LimitLowered && last().key == "x\0y"sv);
    CHECK(cache.setCountLimit(2) == 1 && seen.size() == 8);
    CHECK(last().reason == RemovalReason::LimitLowered && last().key == longKey);
    cache.setCountLimit(0);
    CHECK(cache.trimTo(16) == 1 && seen.size() == 9 && last().reason == RemovalReason::Trimmed);
    CHECK(last().key.empty() && !last().generated);  // the "" key
    cache.setCacheLimit(1024);
    cache.insert(Pixmap(1, 1));
    cache.insert("z", Pixmap(1, 1));
    cache.clear();
    CHECK(seen.size() == 12 && seen[10].reason == RemovalReason::Cleared && seen[11].reason == RemovalReason::Cleared);
    CHECK(seen[10].generated && seen[11].key == "z");  // least recently used first
    CHECK(seen[9].reason == RemovalReason::Cleared && seen[9].key == "big");
    // Each removal once: the callback's tally is the statistics'.
    PixcacheStats st = cache.stats();
    uint64_t total = 0;
    for (uint64_t n : st.removals) total += n;
    CHECK(total == seen.size());
    for (uint32_t r = 0; r < PIXCACHE_REMOVAL_REASON_COUNT; ++r) {
        std::size_t n = 0;
        for (const Seen &s : seen) n += static_cast<uint32_t>(s.reason) == r;
        CHECK(st.removals[r] == n);
    }
    // The pixmaps kept from the callback are still good shares.
    CHECK(seen[0].kept.cacheKey() == a.cacheKey() && seen[0].kept.width() == 64);
    // An empty std::function removes the callback.
    CHECK(cache.setRemovalCallback(nullptr));
    cache.insert("after", Pixmap(1, 1));
    cache.clear();
    CHECK(seen.size() == 12);
}

// The callback may use the cache (it runs after the cache is unlocked), and replace itself.
static void test_removal_callback_reenters() {
    std::puts("/cpp/removal_callback_calls_the_cache");
    Cache cache(1024);
    std::vector<std::string> log;
    CHECK(cache.setRemovalCallback([&](const Removal &r) {
        CHECK(!cache.contains(r.key));  // already gone
        if (r.reason == RemovalReason::Removed) {
            CHECK(cache.insert("again:" + std::string(r.key), r.pixmap));  // put back elsewhere
            log.push_back(std::string(r.key));
        }
    }));
    Pixmap pm(8, 8);
    cache.insert("a", pm);
    cache.remove("a");
    CHECK(log.size() == 1 && cache.contains("again:a"));
    auto back = cache.peek("again:a");
    CHECK(back && back->cacheKey() == pm.cacheKey());

    // A callback that replaces itself while running: it stays alive until it returns.
    auto token = std::make_shared<int>(1);
    std::weak_ptr<int> watch = token;
    int firstCalls = 0, secondCalls = 0;
    CHECK(cache.setRemovalCallback([&, token](const Removal &) {
        ++firstCalls;
        CHECK(cache.setRemovalCallback([&](const Removal &) { ++secondCalls; }));
        CHECK(*token == 1);  // our captures are still here
    }));
    token.reset();
    CHECK(!watch.expired());  // owned by the Cache
    cache.remove("again:a");
    CHECK(firstCalls == 1 && secondCalls == 0);
    CHECK(watch.expired());  // destroyed when its last call returned
    cache.insert("b", pm);
    cache.remove("b");
    CHECK(firstCalls == 1 && secondCalls == 1);
}

// An exception from the callback does not cross into pixcache: caught, kept, reported later.
static void test_removal_callback_throws() {
    std::puts("/cpp/removal_callback_exception_is_caught");
    Cache cache(1024);
    int calls = 0;
    CHECK(cache.setRemovalCallback([&](const Removal &r) {
        ++calls;
        if (r.key == "boom") throw std::runtime_error("callback failed");
        if (r.key == "int") throw 42;
    }));
    CHECK(!cache.takeRemovalCallbackException());
    for (const char *k : {"boom", "int", "fine"}) cache.insert(k, Pixmap(1, 1));
    cache.remove("boom");
    CHECK(calls == 1 && !cache.contains("boom"));
    cache.clear();  // throws again ("int") in the middle: the rest are still reported
    CHECK(calls == 3 && cache.stats().entries == 0);
    std::exception_ptr e = cache.takeRemovalCallbackException();
    CHECK(e != nullptr);
    bool rethrown = false;
    try {
        std::rethrow_exception(e);
    } catch (const std::runtime_error &err) {
        rethrown = std::string(err.what()) == "callback failed";  // the first one is kept
    }
    CHECK(rethrown);
    CHECK(!cache.takeRemovalCallbackException());  // taken
    cache.insert("int", Pixmap(1, 1));
    cache.remove("int");
    e = cache.takeRemovalCallbackException();
    bool isInt = false;
    try {
        std::rethrow_exception(e);
    } catch (int v) {
        isInt = v == 42;
    }
    CHECK(isInt);
}

// The callback's lifetime: moves keep it, replacing and destroying let go of it, a destroyed
// cache reports nothing for the entries it frees.
static void test_removal_callback_lifetime() {
    std::puts("/cpp/removal_callback_lifetime");
    int calls = 0;
    auto token = std::make_shared<int>(7);
    std::weak_ptr<int> alive = token;
    std::optional<Cache> moved;
    {
        Cache cache(1024);
        CHECK(cache.setRemovalCallback([&calls, token](const Removal &) { ++calls; }));
        cache.insert("a", Pixmap(1, 1));
        moved.emplace(std::move(cache));
        CHECK(!cache.setRemovalCallback([](const Removal &) {}));  // moved-from: no cache
        CHECK(pixcache::lastResult() == PIXCACHE_RESULT_NULL_ARGUMENT);
        CHECK(!cache.takeRemovalCallbackException());
    }
    token.reset();
    CHECK(!alive.expired());
    moved->remove("a");
    CHECK(calls == 1);  // the moved-to Cache kept the callback
    moved->insert("b", Pixmap(1, 1));
    moved->insert("c", Pixmap(1, 1));
    // Move-assigning over it frees its cache: no calls for "b" and "c", and the callback goes.
    *moved = Cache(64);
    CHECK(calls == 1 && alive.expired());
    moved->insert("d", Pixmap(1, 1));
    moved->remove("d");  // the new cache has no callback
    CHECK(calls == 1);

    // Replacing lets go of the old callback; destroying with a callback set calls nothing and
    // lets go of it, keeping this thread's last error.
    auto t2 = std::make_shared<int>(2);
    std::weak_ptr<int> alive2 = t2;
    {
        Cache cache(1024);
        CHECK(cache.setRemovalCallback([t2](const Removal &) {}));
        t2.reset();
        CHECK(!alive2.expired());
        CHECK(cache.setRemovalCallback([&calls](const Removal &) { ++calls; }));
        CHECK(alive2.expired());
        for (int i = 0; i < 5; ++i) cache.insert("e" + std::to_string(i), Pixmap(4, 4));
        CHECK(!Pixmap::tryLoad("/nonexistent/y.png"));
    }
    CHECK(calls == 1);
    CHECK(pixcache::lastResult() == PIXCACHE_RESULT_IO);  // the destructor kept the error
    moved.reset();
}

// Removals on many threads, while the callback is being replaced: each reported exactly once.
static void test_removal_callback_threads() {
    std::puts("/cpp/removal_callback_threads");
    Cache cache(64);  // four 16 KB pixmaps
    std::atomic<uint64_t> calls{0};
    CHECK(cache.setRemovalCallback([&](const Removal &) { ++calls; }));
    std::atomic<bool> done{false};
    std::thread replacer([&] {
        int n = 0;
        while (!done) {
            auto token = std::make_shared<int>(++n);
            cache.setRemovalCallback([&calls, token](const Removal &r) {
                ++calls;
                assert(*token > 0 && r.pixmap.width() == 64);
            });
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            Pixmap pm(64, 64);
            for (int i = 0; i < 300; ++i) {
                std::string key = "t" + std::to_string(t) + ":" + std::to_string(i % 20);
                cache.insert(key, pm);
                if (i % 7 == 0) cache.remove(key);
                if (i % 11 == 0) (void)cache.take("t" + std::to_string((t + 1) % 4) + ":" + std::to_string(i % 20));
            }
        });
    for (auto &t : threads) t.join();
    done = true;
    replacer.join();
    cache.clear();
    PixcacheStats st = cache.stats();
    uint64_t total = 0;
    for (uint64_t n : st.removals) total += n;
    CHECK(total > 0 && calls == total);
    CHECK(!cache.takeRemovalCallbackException());
}

// PixmapCache::setRemovalCallback: the process-wide cache's callback.
static void test_global_removal_callback() {
    std::puts("/cpp/global_removal_callback");
    PixmapCache::clear();
    std::vector<std::pair<RemovalReason, std::string>> seen;
    CHECK(PixmapCache::setRemovalCallback([&](const Removal &r) {
        seen.emplace_back(r.reason, std::string(r.key));
        if (r.key == "throw") throw std::logic_error("global");
    }));
    PixmapCache::insert("g1", Pixmap(1, 1));
    PixmapCache::remove("g1");
    PixmapCache::insert("throw", Pixmap(1, 1));
    PixmapCache::clear();
    CHECK(seen.size() == 2 && seen[0].first == RemovalReason::Removed && seen[0].second == "g1");
    CHECK(seen[1].first == RemovalReason::Cleared);
    CHECK(PixmapCache::takeRemovalCallbackException() != nullptr);
    CHECK(!PixmapCache::takeRemovalCallbackException());
    // Set through one Cache::global() object, seen through another.
    CHECK(Cache::global().setRemovalCallback([&](const Removal &r) { seen.emplace_back(r.reason, "via global"); }));
    PixmapCache::insert("g2", Pixmap(1, 1));
    CHECK(PixmapCache::take("g2"));
    CHECK(seen.size() == 3 && seen[2].first == RemovalReason::Taken && seen[2].second == "via global");
    CHECK(PixmapCache::setRemovalCallback({}));
    PixmapCache::insert("g3", Pixmap(1, 1));
    PixmapCache::clear();
    CHECK(seen.size() == 3);
}

static bool eventually(const std::function<bool()> &cond) {
    for (int i = 0; i < 1000; ++i) {  // 10 s
        if (cond()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
}

static void appendLine(const std::string &path, const char *line) {
    FILE *f = std::fopen(path.c_str(), "a");
    assert(f);
    std::fputs(line, f);
    std::fclose(f);
}

// PressureWatch: a watcher fed by a file of level words trims on its own thread, reports
// through the removal callback, and may outlive its Cache.
static void test_pressure_watch() {
    std::puts("/cpp/pressure_watch");
    char path[] = "/tmp/pixcache-cpp-pressure-XXXXXX";
    int fd = mkstemp(path);
    assert(fd >= 0);
    close(fd);
    const std::string source = path;

    bool thrown = false;
    try {
        Cache cache(64);
        (void)cache.watchMemoryPressure("/nonexistent/dir/levels");
    } catch (const pixcache::Error &e) {
        thrown = e.code() == PIXCACHE_RESULT_IO;
    }
    CHECK(thrown);
    thrown = false;
    try {
        Cache cache(64);
        Cache other = std::move(cache);
        (void)cache.watchMemoryPressure(path);
    } catch (const pixcache::Error &e) {
        thrown = e.code() == PIXCACHE_RESULT_NULL_ARGUMENT;
    }
    CHECK(thrown);

    pixcache::PressureWatch outlives;
    {
        Cache cache(1024);
        std::mutex m;
        std::vector<RemovalReason> reasons;
        std::atomic<int> otherThread{0};
        const auto self = std::this_thread::get_id();
        CHECK(cache.setRemovalCallback([&](const Removal &r) {
            std::lock_guard<std::mutex> lock(m);
            reasons.push_back(r.reason);
            if (std::this_thread::get_id() != self) ++otherThread;
        }));
        for (int i = 0; i < 8; ++i) cache.insert("p" + std::to_string(i), Pixmap(64, 64));
        pixcache::PressureWatch watch = cache.watchMemoryPressure(path);
        CHECK(bool(watch) && watch.trims() == 0);
        appendLine(source, "moderate\n");
        CHECK(eventually([&] { return watch.trims() == 1; }));
        CHECK(cache.totalUsed() == 64 && cache.removals(RemovalReason::Trimmed) == 4);
        {
            std::lock_guard<std::mutex> lock(m);
            CHECK(reasons.size() == 4 && otherThread == 4);
            for (RemovalReason r : reasons) CHECK(r == RemovalReason::Trimmed);
        }
        pixcache::PressureWatch moved = std::move(watch);
        CHECK(!watch && bool(moved) && moved.trims() == 1);
        watch.stop();  // nothing to stop
        outlives = std::move(moved);
        // The Cache goes first: its watcher keeps the callback's state until stopped.
    }
    appendLine(source, "complete\n");
    CHECK(eventually([&] { return outlives.trims() == 2; }));  // on the emptied, freed cache
    outlives.stop();
    CHECK(!outlives && outlives.trims() == 0);
    CHECK(pixcache::lastResult() == PIXCACHE_RESULT_NULL_ARGUMENT);

    // The process-wide cache.
    PixmapCache::clear();
    for (int i = 0; i < 4; ++i) PixmapCache::insert("w" + std::to_string(i), Pixmap(64, 64));
    {
        pixcache::PressureWatch watch = PixmapCache::watchMemoryPressure(path);  // reads both lines
        CHECK(eventually([&] { return watch.trims() == 2; }));
        CHECK(PixmapCache::totalUsed() == 0);
    }
    std::remove(path);
}

// findOrLoad keys a file by its identity: fileKey() names the entry; an edited file loads again;
// each format is an entry of its own.
static void test_find_or_load_identity() {
    char dir[] = "/tmp/pixcache-cpp-XXXXXX";
    CHECK(mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/icon.png";
    Pixmap red(3, 2, PIXCACHE_FORMAT_RGBA8888);
    std::memset(red.bits(), 0xff, red.stride() * red.height());
    CHECK(pixcache_pixmap_save(red.handle(), path.c_str()));
    Cache cache(1000);
    auto first = cache.findOrLoad(path);
    CHECK(first && first->width() == 3);
    const auto key = pixcache::fileKey(path);
    CHECK(key && key->find(path) != std::string::npos);
    CHECK(cache.contains(*key) && !cache.contains(path));
    Pixmap wide(5, 2, PIXCACHE_FORMAT_RGBA8888);
    std::memset(wide.bits(), 0x40, wide.stride() * wide.height());
    CHECK(pixcache_pixmap_save(wide.handle(), path.c_str()));
    auto edited = cache.findOrLoad(path);
    CHECK(edited && edited->width() == 5);
    CHECK(pixcache::fileKey(path) != key);
    auto gray = cache.findOrLoad(path, PIXCACHE_FORMAT_GRAY8);
    CHECK(gray && gray->format() == PIXCACHE_FORMAT_GRAY8);
    CHECK(cache.contains(*pixcache::fileKey(path, PIXCACHE_FORMAT_GRAY8)));
    CHECK(!pixcache::fileKey(std::string(dir) + "/missing.png"));
    CHECK(unlink(path.c_str()) == 0 && rmdir(dir) == 0);
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
    test_beyond_qt();
    test_beyond_qt_global();
    test_removal_callback_reasons();
    test_removal_callback_reenters();
    test_removal_callback_throws();
    test_removal_callback_lifetime();
    test_removal_callback_threads();
    test_global_removal_callback();
    test_pressure_watch();
    test_find_or_load_identity();
    std::printf("%d checks passed\n", checks);
    return 0;
}

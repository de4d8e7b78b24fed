// qt_vs_pixcache.cpp: Qt 6's QPixmapCache against pixcache (through the C API, and through the
// Qt adapter pixcache_qt.hpp) on QPixmapCache's own workloads, in one process, one after the
// other, ROUNDS times; prints the median ns/op of each and the ratio pixcache / Qt.
//
// Workloads (docs/PERFORMANCE.md, section 1):
//   string find hit      500 hot keys, cycled
//   string find miss     500 absent keys, cycled
//   string insert+evict  200,000 distinct keys through the default 10 MB cache, 64x64 pixmaps
//   key insert+evict     the same with generated keys
//   key find hit         500 hot generated keys, cycled
//   zipf read-through    Zipf(0.9) over 20,000 keys: find, on a miss insert (64x64, 10 MB);
//                        the hit ratios of Qt and pixcache must be identical (same eviction order)
//
// Build and run: scripts/bench.sh
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>
#include <QString>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "pixcache.h"
#include "pixcache_qt.hpp"

namespace {

using Clock = std::chrono::steady_clock;
int ROUNDS = 5;

double nsPerOp(long ops, const std::function<void()> &body) {
    auto t0 = Clock::now();
    body();
    auto t1 = Clock::now();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / double(ops);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

volatile long sink = 0;

struct Keys {
    std::vector<std::string> utf8;
    std::vector<QString> q;
    explicit Keys(int n, const char *prefix) {
        for (int i = 0; i < n; ++i) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%s:/theme/%d@2x", prefix, i);
            utf8.push_back(buf);
            q.push_back(QString::fromUtf8(buf));
        }
    }
};

// A precomputed Zipf(s) trace over n keys.
std::vector<int> zipfTrace(int n, double s, long len, uint64_t seed) {
    std::vector<double> cdf(static_cast<size_t>(n));
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += 1.0 / std::pow(double(i + 1), s);
    double acc = 0;
    for (int i = 0; i < n; ++i) {
        acc += 1.0 / std::pow(double(i + 1), s) / sum;
        cdf[size_t(i)] = acc;
    }
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<int> trace(static_cast<size_t>(len));
    for (auto &t : trace) t = int(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    return trace;
}

struct Row {
    const char *name;
    std::vector<double> qt, capi, adapter;
    double qtHit = -1, capiHit = -1, adapterHit = -1;
};

// Prints the table and the hit ratios; false if a hit ratio differs (the eviction order does).
bool print(const std::vector<Row> &rows) {
    std::printf("\n%-24s %10s %12s %8s %14s %8s\n", "workload (ns/op)", "Qt 6", "pixcache C", "C/Qt", "pixcache_qt", "qt/Qt");
    for (const auto &r : rows) {
        double q = median(r.qt), c = median(r.capi), a = median(r.adapter);
        std::printf("%-24s %10.1f %12.1f %7.2fx %14.1f %7.2fx\n", r.name, q, c, c / q, a, a / q);
    }
    // The same figures as the Markdown rows of the README's performance table and
    // docs/PERFORMANCE.md section 1 (scripts/test-readme.sh checks that the two agree).
    std::printf("\n| workload | Qt 6.4 | pixcache (C API) | ratio |\n|---|---:|---:|---:|\n");
    for (const auto &r : rows) {
        double q = median(r.qt), c = median(r.capi);
        std::printf("| %s | %.1f | %.1f | %.2fx |\n", r.name, q, c, c / q);
    }
    bool identical = true;
    for (const auto &r : rows)
        if (r.qtHit >= 0) {
            bool same = r.qtHit == r.capiHit && r.qtHit == r.adapterHit;
            identical = identical && same;
            std::printf("%s hit ratio: Qt %.4f, pixcache C %.4f, pixcache_qt %.4f%s\n", r.name, r.qtHit, r.capiHit,
                        r.adapterHit, same ? " (identical)" : "  MISMATCH");
        }
    return identical;
}

}  // namespace

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    if (argc > 1) ROUNDS = std::atoi(argv[1]);
    using PQ = pixcache::qt::PixmapCache;
    PixcacheCache *g = pixcache_global();

    QPixmap qpm(64, 64);
    qpm.fill(Qt::red);
    PixcachePixmap *cpm = pixcache_pixmap_new(64, 64, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    PixcachePixmap *out = pixcache_pixmap_new_null();
    QPixmap qout;

    const Keys hot(500, "icon"), miss(500, "absent"), many(200000, "thumb");
    const long LOOKUPS = 2000000;
    const std::vector<int> zipf = zipfTrace(20000, 0.9, 1000000, 42);
    const Keys zkeys(20000, "zipf");

    // The names are the README's and docs/PERFORMANCE.md's (the Markdown table below is theirs).
    std::vector<Row> rows = {{"string find hit", {}, {}, {}}, {"string find miss", {}, {}, {}},
                             {"string insert + evict", {}, {}, {}}, {"key insert + evict", {}, {}, {}},
                             {"key find hit", {}, {}, {}}, {"Zipf(0.9) read-through", {}, {}, {}}};

    auto resetAll = [&] {
        QPixmapCache::clear();
        QPixmapCache::setCacheLimit(10240);
        pixcache_clear(g);
        pixcache_set_cache_limit(g, 10240);
    };

    for (int round = 0; round < ROUNDS; ++round) {
        // string find hit
        resetAll();
        for (const auto &k : hot.q) QPixmapCache::insert(k, qpm);
        rows[0].qt.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += QPixmapCache::find(hot.q[size_t(i % 500)], &qout);
        }));
        for (const auto &k : hot.utf8) pixcache_insert(g, k.c_str(), cpm);
        rows[0].capi.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += pixcache_find(g, hot.utf8[size_t(i % 500)].c_str(), out);
        }));
        pixcache_clear(g);
        for (const auto &k : hot.q) PQ::insert(k, qpm);
        rows[0].adapter.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += PQ::find(hot.q[size_t(i % 500)], &qout);
        }));

        // string find miss (the hot keys stay cached)
        rows[1].qt.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += QPixmapCache::find(miss.q[size_t(i % 500)], &qout);
        }));
        pixcache_clear(g);
        for (const auto &k : hot.utf8) pixcache_insert(g, k.c_str(), cpm);
        rows[1].capi.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += pixcache_find(g, miss.utf8[size_t(i % 500)].c_str(), out);
        }));
        rows[1].adapter.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += PQ::find(miss.q[size_t(i % 500)], &qout);
        }));

        // string insert with eviction
        resetAll();
        rows[2].qt.push_back(nsPerOp(long(many.q.size()), [&] {
            for (const auto &k : many.q) sink += QPixmapCache::insert(k, qpm);
        }));
        rows[2].capi.push_back(nsPerOp(long(many.utf8.size()), [&] {
            for (const auto &k : many.utf8) sink += pixcache_insert(g, k.c_str(), cpm);
        }));
        pixcache_clear(g);
        rows[2].adapter.push_back(nsPerOp(long(many.q.size()), [&] {
            for (const auto &k : many.q) sink += PQ::insert(k, qpm);
        }));

        // key insert with eviction
        resetAll();
        const long N = 200000;
        rows[3].qt.push_back(nsPerOp(N, [&] {
            for (long i = 0; i < N; ++i) sink += QPixmapCache::insert(qpm).isValid();
        }));
        rows[3].capi.push_back(nsPerOp(N, [&] {
            for (long i = 0; i < N; ++i) sink += long(pixcache_insert_key(g, cpm).id & 1);
        }));
        pixcache_clear(g);
        rows[3].adapter.push_back(nsPerOp(N, [&] {
            for (long i = 0; i < N; ++i) sink += PQ::insert(qpm).raw().id & 1 ? 1 : 0;
        }));

        // key find hit
        resetAll();
        std::vector<QPixmapCache::Key> qk;
        std::vector<PixcacheKey> ck;
        std::vector<PQ::Key> ak;
        for (int i = 0; i < 500; ++i) qk.push_back(QPixmapCache::insert(qpm));
        for (int i = 0; i < 500; ++i) ck.push_back(pixcache_insert_key(g, cpm));
        rows[4].qt.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += QPixmapCache::find(qk[size_t(i % 500)], &qout);
        }));
        rows[4].capi.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += pixcache_find_key(g, ck[size_t(i % 500)], out);
        }));
        pixcache_clear(g);
        for (int i = 0; i < 500; ++i) ak.push_back(PQ::insert(qpm));
        rows[4].adapter.push_back(nsPerOp(LOOKUPS, [&] {
            for (long i = 0; i < LOOKUPS; ++i) sink += PQ::find(ak[size_t(i % 500)], &qout);
        }));

        // zipf read-through
        resetAll();
        long hits = 0;
        rows[5].qt.push_back(nsPerOp(long(zipf.size()), [&] {
            for (int z : zipf)
                if (QPixmapCache::find(zkeys.q[size_t(z)], &qout)) ++hits;
                else QPixmapCache::insert(zkeys.q[size_t(z)], qpm);
        }));
        rows[5].qtHit = double(hits) / double(zipf.size());
        hits = 0;
        rows[5].capi.push_back(nsPerOp(long(zipf.size()), [&] {
            for (int z : zipf)
                if (pixcache_find(g, zkeys.utf8[size_t(z)].c_str(), out)) ++hits;
                else pixcache_insert(g, zkeys.utf8[size_t(z)].c_str(), cpm);
        }));
        rows[5].capiHit = double(hits) / double(zipf.size());
        pixcache_clear(g);
        hits = 0;
        rows[5].adapter.push_back(nsPerOp(long(zipf.size()), [&] {
            for (int z : zipf)
                if (PQ::find(zkeys.q[size_t(z)], &qout)) ++hits;
                else PQ::insert(zkeys.q[size_t(z)], qpm);
        }));
        rows[5].adapterHit = double(hits) / double(zipf.size());
        std::fprintf(stderr, "round %d/%d done\n", round + 1, ROUNDS);
    }
    bool identical = print(rows);
    resetAll();
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(cpm);
    return identical ? 0 : 1;
}

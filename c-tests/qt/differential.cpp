// differential.cpp: runs the same seeded random operation sequences against Qt 6's own
// QPixmapCache and against pixcache::qt::PixmapCache (pixcache_qt.hpp), side by side, and
// compares after every step:
//   - every return value (find, insert, replace, cacheLimit, key equality with the default key);
//   - the validity of every generated key handed out so far (Key::isValid never touches recency),
//     including copies kept from before a replace and the never-valid keys of refused inserts;
//   - for every string key of the pool, whether it finds a pixmap and whether it is the *same*
//     pixmap (QPixmap::cacheKey of what each side returns against what was inserted);
//   - the total cost: pixcache's exact totalUsed against the sum of the costs of what Qt holds.
// The string checks use find(), which refreshes recency: both sides get exactly the same calls
// (in a per-step shuffled order), so the check is part of the sequence both caches see.
//
// Deliberate differences the test knows about (docs/spec.md):
//   - totalUsed: Qt 6.4 reports ceil(total KB / 1024); pixcache reports total KB. The test
//     checks pixcache against the exact sum, and Qt's figure against ceil(sum / 1024).
//   - threads: not exercised here (Qt refuses off-thread calls; pixcache's thread tests are in
//     c-tests/test_threads.c).
//
// Usage: differential [--seeds N] [--ops N] [--first-seed S]
// On the first mismatch it prints the seed, the step, the operation and both answers, and exits 1.
#define Q_TEST_QPIXMAPCACHE
#include <QGuiApplication>
#include <QPixmap>
#include <QPixmapCache>
#include <QString>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pixcache_qt.hpp"

using PC = pixcache::qt::PixmapCache;

namespace {

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    int below(int n) { return int(next() % uint64_t(n)); }
    bool chance(int percent) { return below(100) < percent; }
};

long long qtCost(const QPixmap &pm) {
    long long kb = (long long)pm.width() * pm.height() * pm.depth() / (8 * 1024);
    return kb < 1 ? 1 : kb;
}

struct KeyPair {
    QPixmapCache::Key qt;
    PC::Key pix;
    int pixmap;  // index into the pixmap pool of what was inserted under it
};

struct Failure {};

// What the runs exercised (printed at the end, so a run that tests nothing shows it).
struct Tally {
    long long insertsOk = 0, insertsRefused = 0, findHits = 0, findMisses = 0, replacesOk = 0,
              replacesFailed = 0;
} tally;

class Run {
public:
    Run(uint64_t seed, int ops, const std::vector<QPixmap> &pool, const std::vector<QString> &names)
        : seed_(seed), ops_(ops), rng_(seed), pool_(pool), names_(names), stringPixmap_(names.size(), -1) {}

    bool go() {
        QPixmapCache::clear();
        PC::clear();
        static const int limits[] = {0, -16, 16, 64, 100, 200, 300, 1000, 2000, 10240, 10240, 10240};
        setLimit(limits[rng_.below(12)]);
        try {
            for (step_ = 0; step_ < ops_; ++step_) {
                doOp();
                check();
            }
        } catch (Failure &) {
            return false;
        }
        return true;
    }

private:
    template <typename A, typename B>
    void expect(bool same, const char *what, A qt, B pix) {
        if (same) return;
        std::printf("MISMATCH seed=%llu step=%d op=\"%s\": %s: Qt=%lld pixcache=%lld\n",
                    (unsigned long long)seed_, step_, op_.c_str(), what, (long long)qt, (long long)pix);
        throw Failure{};
    }

    void setLimit(int kb) {
        QPixmapCache::setCacheLimit(kb);
        PC::setCacheLimit(kb);
        limit_ = kb;
    }

    int randomPixmap() {
        // Mostly small, sometimes null, sometimes larger than the limit.
        return rng_.below(int(pool_.size()));
    }

    // Mostly one of the newest keys (likely still valid), sometimes any key handed out (stale).
    size_t randomKeyIndex() {
        int n = int(keys_.size());
        if (n > 8 && rng_.chance(65)) return size_t(n - 1 - rng_.below(8));
        return size_t(rng_.below(n));
    }

    void doOp() {
        int r = rng_.below(100);
        char buf[160];
        if (r < 22) {  // insert under a string key
            int n = rng_.below(int(names_.size())), p = randomPixmap();
            std::snprintf(buf, sizeof buf, "insert(\"%s\", pixmap#%d)", names_[n].toUtf8().constData(), p);
            op_ = buf;
            bool q = QPixmapCache::insert(names_[n], pool_[p]);
            bool x = PC::insert(names_[n], pool_[p]);
            expect(q == x, "insert(string) result", q, x);
            stringPixmap_[size_t(n)] = q ? p : -1;
            (q ? tally.insertsOk : tally.insertsRefused)++;
        } else if (r < 36) {  // insert -> generated key
            int p = randomPixmap();
            std::snprintf(buf, sizeof buf, "insert(pixmap#%d) -> key", p);
            op_ = buf;
            KeyPair k{QPixmapCache::insert(pool_[p]), PC::insert(pool_[p]), p};
            expect(k.qt.isValid() == k.pix.isValid(), "inserted key valid", k.qt.isValid(), k.pix.isValid());
            expect((k.qt == QPixmapCache::Key()) == (k.pix == PC::Key()), "inserted key == default key",
                   k.qt == QPixmapCache::Key(), k.pix == PC::Key());
            if (!keys_.empty()) {
                const KeyPair &last = keys_.back();
                expect((k.qt == last.qt) == (k.pix == last.pix), "new key == previous key", k.qt == last.qt,
                       k.pix == last.pix);
            }
            (k.qt.isValid() ? tally.insertsOk : tally.insertsRefused)++;
            addKey(k);
        } else if (r < 56) {  // find by string, with or without an out pixmap
            int n = rng_.below(int(names_.size()));
            bool withOut = rng_.chance(70);
            std::snprintf(buf, sizeof buf, "find(\"%s\", %s)", names_[n].toUtf8().constData(), withOut ? "&out" : "nullptr");
            op_ = buf;
            QPixmap qo = pool_[0], xo = pool_[0];  // a sentinel: a miss must leave it alone
            bool q = QPixmapCache::find(names_[n], withOut ? &qo : nullptr);
            bool x = PC::find(names_[n], withOut ? &xo : nullptr);
            expect(q == x, "find(string) result", q, x);
            expect(qo.cacheKey() == xo.cacheKey(), "find(string) pixmap cacheKey", qo.cacheKey(), xo.cacheKey());
            (q ? tally.findHits : tally.findMisses)++;
        } else if (r < 70) {  // find by key
            if (keys_.empty()) return doDefaultKeyFind();
            size_t i = randomKeyIndex();
            bool withOut = rng_.chance(70);
            std::snprintf(buf, sizeof buf, "find(key#%zu, %s)", i, withOut ? "&out" : "nullptr");
            op_ = buf;
            QPixmap qo = pool_[0], xo = pool_[0];
            bool q = QPixmapCache::find(keys_[i].qt, withOut ? &qo : nullptr);
            bool x = PC::find(keys_[i].pix, withOut ? &xo : nullptr);
            expect(q == x, "find(key) result", q, x);
            (q ? tally.findHits : tally.findMisses)++;
            expect(qo.cacheKey() == xo.cacheKey(), "find(key) pixmap cacheKey", qo.cacheKey(), xo.cacheKey());
            if (q && withOut)
                expect(qo.cacheKey() == pool_[size_t(keys_[i].pixmap)].cacheKey(), "find(key) finds what was inserted",
                       qo.cacheKey(), pool_[size_t(keys_[i].pixmap)].cacheKey());
        } else if (r < 80) {  // replace through a kept key (keeping a copy of the old key)
            if (keys_.empty()) return doDefaultKeyFind();
            size_t i = randomKeyIndex();
            int p = randomPixmap();
            std::snprintf(buf, sizeof buf, "replace(key#%zu, pixmap#%d)", i, p);
            op_ = buf;
            KeyPair copy = keys_[i];
            bool q = QPixmapCache::replace(keys_[i].qt, pool_[p]);
            bool x = PC::replace(keys_[i].pix, pool_[p]);
            expect(q == x, "replace result", q, x);
            (q ? tally.replacesOk : tally.replacesFailed)++;
            expect((keys_[i].qt == copy.qt) == (keys_[i].pix == copy.pix), "replaced key == its old copy",
                   keys_[i].qt == copy.qt, keys_[i].pix == copy.pix);
            if (q) keys_[i].pixmap = p;
            addKey(copy);  // the old copy stays tracked: it must now be invalid on both sides
        } else if (r < 86) {  // remove by string
            int n = rng_.below(int(names_.size()));
            std::snprintf(buf, sizeof buf, "remove(\"%s\")", names_[n].toUtf8().constData());
            op_ = buf;
            QPixmapCache::remove(names_[n]);
            PC::remove(names_[n]);
            stringPixmap_[size_t(n)] = -1;
        } else if (r < 92) {  // remove by key
            if (keys_.empty()) return doDefaultKeyFind();
            size_t i = randomKeyIndex();
            std::snprintf(buf, sizeof buf, "remove(key#%zu)", i);
            op_ = buf;
            QPixmapCache::remove(keys_[i].qt);
            PC::remove(keys_[i].pix);
        } else if (r < 95) {  // change the limit mid-run
            static const int limits[] = {0, -1, 16, 48, 100, 300, 1000, 2000, 10240, 10240, INT_MAX};
            int kb = limits[rng_.below(11)];
            std::snprintf(buf, sizeof buf, "setCacheLimit(%d)", kb);
            op_ = buf;
            setLimit(kb);
            expect(QPixmapCache::cacheLimit() == PC::cacheLimit(), "cacheLimit", QPixmapCache::cacheLimit(),
                   PC::cacheLimit());
        } else if (r < 98) {  // Qt's idle trim
            op_ = "flushDetachedPixmaps()";
            QPixmapCache::flushDetachedPixmaps();
            PC::flushDetachedPixmaps();
        } else if (r < 99) {
            op_ = "clear()";
            QPixmapCache::clear();
            PC::clear();
        } else {  // key value semantics: swap two kept keys on both sides
            if (keys_.size() < 2) return doDefaultKeyFind();
            size_t i = randomKeyIndex(), j = randomKeyIndex();
            std::snprintf(buf, sizeof buf, "swap(key#%zu, key#%zu)", i, j);
            op_ = buf;
            keys_[i].qt.swap(keys_[j].qt);
            keys_[i].pix.swap(keys_[j].pix);
            std::swap(keys_[i].pixmap, keys_[j].pixmap);
        }
    }

    void doDefaultKeyFind() {
        op_ = "find(Key(), &out)";
        QPixmap qo, xo;
        bool q = QPixmapCache::find(QPixmapCache::Key(), &qo);
        bool x = PC::find(PC::Key(), &xo);
        expect(q == x, "find(default key)", q, x);
    }

    void addKey(const KeyPair &k) { keys_.push_back(k); }

    void check() {
        long long heldKb = 0;
        // Every key handed out this run: validity never touches recency. Two tracked keys are
        // equal only when a replace through an invalid key kept a copy, so valid keys are distinct
        // entries and their costs add up.
        for (size_t i = 0; i < keys_.size(); ++i) {
            bool q = keys_[i].qt.isValid(), x = keys_[i].pix.isValid();
            if (q != x) {
                std::snprintf(checkWhat_, sizeof checkWhat_, "key#%zu isValid", i);
                expect(false, checkWhat_, q, x);
            }
            if (q) heldKb += qtCost(pool_[size_t(keys_[i].pixmap)]);
        }
        // String keys, in a shuffled order (the same on both sides).
        std::vector<size_t> order(names_.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng_.below(int(i)))]);
        for (size_t n : order) {
            QPixmap qo, xo;
            bool q = QPixmapCache::find(names_[n], &qo);
            bool x = PC::find(names_[n], &xo);
            if (q != x || qo.cacheKey() != xo.cacheKey()) {
                std::snprintf(checkWhat_, sizeof checkWhat_, "check: find(\"%s\") (result, then cacheKey %lld vs %lld)",
                              names_[n].toUtf8().constData(), (long long)qo.cacheKey(), (long long)xo.cacheKey());
                expect(false, checkWhat_, q, x);
            }
            if (q) {
                int p = stringPixmap_[n];
                if (p < 0 || qo.cacheKey() != pool_[size_t(p)].cacheKey()) {
                    std::snprintf(checkWhat_, sizeof checkWhat_, "check: \"%s\" holds what was inserted", names_[n].toUtf8().constData());
                    expect(false, checkWhat_, qo.cacheKey(), p < 0 ? -1 : pool_[size_t(p)].cacheKey());
                }
                heldKb += qtCost(qo);
            } else {
                stringPixmap_[n] = -1;
            }
        }
        int qtTotal = QPixmapCache::totalUsed();
        int pixTotal = PC::totalUsed();
        expect(pixTotal == heldKb, "totalUsed (pixcache exact KB vs sum of what Qt holds)", heldKb, pixTotal);
        expect(qtTotal == int((pixTotal + 1023) / 1024), "Qt's totalUsed vs ceil(pixcache KB / 1024)", qtTotal, pixTotal);
        if (limit_ > 0) expect(pixTotal <= limit_, "total within the limit", limit_, pixTotal);
    }

    uint64_t seed_;
    int ops_;
    Rng rng_;
    const std::vector<QPixmap> &pool_;
    const std::vector<QString> &names_;
    std::vector<KeyPair> keys_;
    std::vector<int> stringPixmap_;
    int limit_ = 0;
    int step_ = 0;
    std::string op_;
    char checkWhat_[256] = {0};
};

}  // namespace

int main(int argc, char **argv) {
    QGuiApplication app(argc, argv);
    int seeds = 200, ops = 2000;
    uint64_t first = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--seeds")) seeds = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--ops")) ops = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--first-seed")) first = std::strtoull(argv[i + 1], nullptr, 10);
    }
    // The pixmap pool: null, 1x1, 10x10, 64x64, 64x65, mid sizes, and ones larger than the small
    // limits (300x300 = 351 KB) and than the default limit (1700x1700 = 11289 KB).
    const int sizes[][2] = {{0, 0}, {1, 1}, {10, 10}, {64, 64}, {64, 65}, {64, 64}, {32, 32},
                            {100, 100}, {128, 128}, {300, 300}, {1700, 1700}};
    std::vector<QPixmap> pool;
    for (const auto &s : sizes) {
        QPixmap pm(s[0], s[1]);
        if (!pm.isNull()) pm.fill(QColor::fromRgb(uint(pool.size()) * 0x101010u));
        pool.push_back(pm);
    }
    std::vector<QString> names = {QString(), "a", "b", "c", "icon:open", "icon:save", "icon:quit", "theme/dark/x@2x",
                                  QString::fromUtf8("\xc3\xa9t\xc3\xa9"), "k1", "k2", "k3",
                                  // keys toUtf8() would merge (lone surrogates) and the adapter's escape
                                  QString("k?"), QString("k") + QChar(char16_t(0xD800)),
                                  QString("k") + QChar(char16_t(0xDFFF)),
                                  QString("k") + QChar(char16_t(0xFDD0)) + QChar(char16_t(0xE000))};
    long long steps = 0;
    for (int s = 0; s < seeds; ++s) {
        Run run(first + uint64_t(s), ops, pool, names);
        if (!run.go()) {
            std::printf("FAILED after %lld matching steps\n", steps);
            return 1;
        }
        steps += ops;
    }
    std::printf("exercised: %lld inserts ok, %lld refused; %lld find hits, %lld misses; %lld replaces ok, %lld failed\n",
                tally.insertsOk, tally.insertsRefused, tally.findHits, tally.findMisses, tally.replacesOk,
                tally.replacesFailed);
    std::printf("differential: %d seeds x %d ops = %lld steps, 0 mismatches between Qt %s and pixcache %s\n",
                seeds, ops, steps, qVersion(), pixcache_version());
    return 0;
}

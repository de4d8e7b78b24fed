// behaviour.cpp: a QPixmapCache program built against Qt only (<QPixmapCache>, nothing of
// pixcache). It prints a transcript of what the cache answers: the rules of docs/spec.md one by
// one, Qt's thread rule, then seeded random operation sequences. scripts/test-qt6-replace.sh runs
// it with Qt's own cache and with libpixcache-qt6.so preloaded (pixcache-run) and requires the
// two transcripts to be identical, line for line.
//
// Pixmaps are told apart by their contents (each insert fills its pixmap with a colour numbered
// by the insert), never by addresses or QPixmap::cacheKey, so that the transcript depends only
// on what the cache keeps.
//
// Usage: behaviour [SEEDS] [OPS]   (default 50 x 1000)
#define Q_TEST_QPIXMAPCACHE  // flushDetachedPixmaps() and totalUsed(), exported by Qt
#include <QGuiApplication>
#include <QImage>
#include <QPixmap>
#include <QPixmapCache>

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

int painted = 0;

// A w x h pixmap of a colour numbered by how many were made so far (its "id").
QPixmap make(int w, int h) {
    QPixmap pm(w, h);
    ++painted;
    pm.fill(QColor::fromRgb(QRgb(0xff000000u | unsigned(painted * 2654435761u >> 8))));
    return pm;
}

// What a found pixmap is: its size and its colour's id (0 for the null pixmap).
QString describe(const QPixmap &pm) {
    if (pm.isNull()) return QStringLiteral("null");
    const QRgb c = pm.toImage().pixel(0, 0);
    return QStringLiteral("%1x%2#%3").arg(pm.width()).arg(pm.height()).arg(c & 0xffffff, 6, 16, QLatin1Char('0'));
}

void line(const char *what, const QString &result) { std::printf("%s = %s\n", what, qPrintable(result)); }
void line(const char *what, long long v) { std::printf("%s = %lld\n", what, v); }

QString found(const QString &key) {
    QPixmap pm;
    return QPixmapCache::find(key, &pm) ? describe(pm) : QStringLiteral("miss");
}
QString found(const QPixmapCache::Key &key) {
    QPixmap pm;
    return QPixmapCache::find(key, &pm) ? describe(pm) : QStringLiteral("miss");
}

void rules() {
    line("default cacheLimit", QPixmapCache::cacheLimit());
    QPixmap p64 = make(64, 64), p10 = make(10, 10);
    line("insert a 64x64", QPixmapCache::insert("a", p64));
    line("find a", found("a"));
    line("totalUsed", QPixmapCache::totalUsed());
    line("find missing", found("missing"));
    QPixmap untouched = make(2, 2);
    line("a miss leaves out alone", QPixmapCache::find("missing", &untouched) ? QStringLiteral("hit") : describe(untouched));
    line("find with nullptr", QPixmapCache::find("a", nullptr));
    line("empty key insert", QPixmapCache::insert("", p10));
    line("empty key find", found(""));
    line("null pixmap insert", QPixmapCache::insert("null", QPixmap()));
    line("null pixmap find", found("null"));

    // Limits and costs.
    QPixmapCache::clear();
    QPixmapCache::setCacheLimit(16);
    line("16 KB fits a 16 KB limit", QPixmapCache::insert("fit", make(64, 64)));
    QPixmapCache::setCacheLimit(15);
    line("lowering to 15 evicts it", found("fit"));
    line("a 16 KB pixmap is refused by 15", QPixmapCache::insert("big", make(64, 64)));
    line("refused insert under a used key empties it", (QPixmapCache::insert("k", make(8, 8)), QPixmapCache::insert("k", make(64, 64))));
    line("k after", found("k"));
    QPixmapCache::setCacheLimit(0);
    line("limit 0 refuses", QPixmapCache::insert("zero", make(1, 1)));
    QPixmapCache::setCacheLimit(-5);
    line("negative limit kept", QPixmapCache::cacheLimit());
    QPixmapCache::setCacheLimit(128);
    for (int i = 0; i < 20; ++i) QPixmapCache::insert(QString::number(i), make(64, 64));
    QString survivors;
    for (int i = 0; i < 20; ++i) survivors += found(QString::number(i)) == "miss" ? '.' : 'x';
    line("64x64 survivors in 128 KB", survivors);
    line("totalUsed (Qt rounds KB / 1024 up)", QPixmapCache::totalUsed());

    // LRU order: a find refreshes; remove and validity checks do not.
    QPixmapCache::clear();
    QPixmapCache::setCacheLimit(64);
    for (const char *k : {"l0", "l1", "l2", "l3"}) QPixmapCache::insert(k, make(64, 64));
    found("l0");
    QPixmapCache::insert("l4", make(64, 64));
    QString order;
    for (const char *k : {"l0", "l1", "l2", "l3", "l4"}) order += QStringLiteral("%1:%2 ").arg(k, found(k));
    line("after refreshing l0 and inserting l4", order);

    // Generated keys.
    QPixmapCache::clear();
    QPixmapCache::setCacheLimit(10240);
    QPixmapCache::Key none, none2;
    line("default keys equal", none == none2);
    line("default key valid", none.isValid());
    QPixmapCache::Key k1 = QPixmapCache::insert(make(16, 16));
    QPixmapCache::Key k2 = QPixmapCache::insert(make(16, 16));
    line("key valid", k1.isValid());
    line("two keys differ", k1 != k2);
    line("find key", found(k1));
    QPixmapCache::Key copy = k1;
    line("replace", QPixmapCache::replace(k1, make(32, 32)));
    line("replaced key finds", found(k1));
    line("copy of the old key valid", copy.isValid());
    line("copy equals the replaced key", copy == k1);
    QPixmapCache::remove(k2);
    line("removed key valid", k2.isValid());
    line("replace through an invalid key", QPixmapCache::replace(k2, make(4, 4)));
    QPixmapCache::setCacheLimit(4);
    QPixmapCache::Key refused = QPixmapCache::insert(make(64, 64));
    line("refused key valid", refused.isValid());
    line("refused key equals a default key", refused == none);
    QPixmapCache::setCacheLimit(10240);
    QPixmapCache::Key k3 = QPixmapCache::insert(make(8, 8));
    QPixmapCache::Key moved = std::move(k3);
    line("moved-to key valid", moved.isValid());
    QPixmapCache::Key swapped;
    swapped.swap(moved);
    line("swapped key valid", swapped.isValid());
    QPixmapCache::clear();
    line("cleared key valid", swapped.isValid());

    // flushDetachedPixmaps: the three-quarter trim.
    QPixmapCache::setCacheLimit(10240);
    for (int i = 0; i < 100; ++i) QPixmapCache::insert(QStringLiteral("f%1").arg(i), make(64, 64));
    QPixmapCache::flushDetachedPixmaps();
    int left = 0;
    for (int i = 0; i < 100; ++i) left += QPixmapCache::find(QStringLiteral("f%1").arg(i), nullptr);
    line("entries left of 100 after flushDetachedPixmaps", left);
    line("f0 (oldest) left", QPixmapCache::find("f0", nullptr));
    QPixmapCache::clear();
}

// Qt 6 serves only the application object's thread: elsewhere calls fail silently.
void threads() {
    QPixmapCache::insert("main", make(4, 4));
    QPixmapCache::Key mainKey = QPixmapCache::insert(make(4, 4));
    std::thread([&] {
        QPixmap pm;
        line("thread: cacheLimit", QPixmapCache::cacheLimit());
        line("thread: find", QPixmapCache::find("main", &pm));
        line("thread: find key", QPixmapCache::find(mainKey, &pm));
        line("thread: insert", QPixmapCache::insert("thread", QPixmap(4, 4)));
        line("thread: key insert valid", QPixmapCache::insert(QPixmap(4, 4)).isValid());
        QPixmapCache::remove("main");
        QPixmapCache::setCacheLimit(1);
        QPixmapCache::clear();
        line("thread: key valid", mainKey.isValid());
    }).join();
    line("after the thread: limit", QPixmapCache::cacheLimit());
    line("after the thread: main", found("main"));
    line("after the thread: thread", found("thread"));
    QPixmapCache::clear();
}

// libQt6Gui's own cache, which its own calls (QIcon, QPixmap::load) use whoever serves the
// program's: setCacheLimit() and clear() reach it too. Its definitions are looked up in libQt6Gui
// itself, so that these lines print the same with Qt alone (where they are QPixmapCache's).
void qtOwnCache() {
    void *gui = dlopen("libQt6Gui.so.6", RTLD_NOW | RTLD_NOLOAD);
    auto limit = gui ? reinterpret_cast<int (*)()>(dlvsym(gui, "_ZN12QPixmapCache10cacheLimitEv", "Qt_6")) : nullptr;
    auto insert = gui ? reinterpret_cast<bool (*)(const QString &, const QPixmap &)>(
                            dlvsym(gui, "_ZN12QPixmapCache6insertERK7QStringRK7QPixmap", "Qt_6"))
                      : nullptr;
    auto find = gui ? reinterpret_cast<bool (*)(const QString &, QPixmap *)>(
                          dlvsym(gui, "_ZN12QPixmapCache4findERK7QStringP7QPixmap", "Qt_6"))
                    : nullptr;
    if (!limit || !insert || !find) {
        line("qt's own cache", QStringLiteral("unreachable"));
        return;
    }
    QPixmapCache::setCacheLimit(1234);
    line("qt's own cache: limit after setCacheLimit(1234)", limit());
    line("qt's own cache: insert", insert(QStringLiteral("own"), make(8, 8)));
    QPixmapCache::clear();
    line("qt's own cache: found after clear()", find(QStringLiteral("own"), nullptr));
    QPixmapCache::setCacheLimit(10240);
    line("qt's own cache: limit after setCacheLimit(10240)", limit());
}

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
};

void randomSequences(int seeds, int ops) {
    static const int sizes[][2] = {{1, 1}, {10, 10}, {32, 32}, {64, 64}, {64, 65}, {100, 40}, {128, 128}};
    static const int limits[] = {0, 16, 64, 100, 256, 1024, 10240};
    for (int seed = 1; seed <= seeds; ++seed) {
        Rng r{uint64_t(seed)};
        QPixmapCache::clear();
        QPixmapCache::setCacheLimit(limits[1 + r.below(6)]);
        std::vector<QPixmapCache::Key> keys;
        std::printf("seed %d\n", seed);
        for (int op = 0; op < ops; ++op) {
            const QString name = QStringLiteral("n%1").arg(r.below(40));
            const auto &sz = sizes[r.below(7)];
            const int pick = keys.empty() ? 0 : r.below(int(keys.size()));
            switch (r.below(12)) {
            case 0:
            case 1:
                std::printf("%d ins %s %d\n", op, qPrintable(name), QPixmapCache::insert(name, make(sz[0], sz[1])));
                break;
            case 2:
            case 3:
                std::printf("%d find %s %s\n", op, qPrintable(name), qPrintable(found(name)));
                break;
            case 4:
                keys.push_back(QPixmapCache::insert(make(sz[0], sz[1])));
                std::printf("%d kins %d\n", op, keys.back().isValid());
                break;
            case 5:
                if (!keys.empty()) std::printf("%d kfind %d %s\n", op, pick, qPrintable(found(keys[pick])));
                break;
            case 6:
                if (!keys.empty()) std::printf("%d repl %d %d\n", op, pick, QPixmapCache::replace(keys[pick], make(sz[0], sz[1])));
                break;
            case 7:
                QPixmapCache::remove(name);
                std::printf("%d rm %s\n", op, qPrintable(name));
                break;
            case 8:
                if (!keys.empty()) QPixmapCache::remove(keys[pick]);
                std::printf("%d krm %d\n", op, pick);
                break;
            case 9:
                if (r.below(10) == 0) {
                    QPixmapCache::setCacheLimit(limits[r.below(7)]);
                    std::printf("%d limit %d\n", op, QPixmapCache::cacheLimit());
                } else if (r.below(20) == 0) {
                    QPixmapCache::clear();
                    std::printf("%d clear\n", op);
                }
                break;
            case 10:
                if (keys.size() > 1) std::printf("%d keq %d\n", op, keys[pick] == keys[(pick + 1) % keys.size()]);
                break;
            default: {
                QString valid;
                for (const auto &k : keys) valid += k.isValid() ? '1' : '0';
                std::printf("%d valid %s used %d\n", op, qPrintable(valid), QPixmapCache::totalUsed());
            }
            }
        }
    }
    QPixmapCache::clear();
}

}  // namespace

int main(int argc, char **argv) {
    // Before the application object exists, Qt refuses every call too (no QPixmap can be made
    // yet, so this asks what needs none).
    line("before the application: cacheLimit", QPixmapCache::cacheLimit());
    line("before the application: find", QPixmapCache::find("early", nullptr));
    QGuiApplication app(argc, argv);
    rules();
    threads();
    qtOwnCache();
    randomSequences(argc > 1 ? std::atoi(argv[1]) : 50, argc > 2 ? std::atoi(argv[2]) : 1000);
    std::printf("done\n");
    return 0;
}

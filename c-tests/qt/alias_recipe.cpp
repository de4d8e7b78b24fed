// alias_recipe.cpp: the README's recipe for keeping the name QPixmapCache, in a file that includes
// <QtWidgets> (which declares Qt's own ::QPixmapCache) and <QPixmapCache>: the alias lives in the
// project's namespace (alias_recipe.h), and unqualified QPixmapCache:: calls there, in free
// functions, in a nested namespace and in a QWidget subclass's members, go to pixcache's
// adapter, while ::QPixmapCache stays Qt's. alias_recipe_first.cpp includes the recipe's header
// before Qt's. It runs: entries made through the alias are in pixcache's cache, not in Qt's.
// (alias_global.cpp, the global alias, must not compile: scripts/test-qt.sh checks it.)
#include <QtWidgets>
#include <QPixmapCache>

#include "alias_recipe.h"

#include <cstdio>
#include <type_traits>

namespace myapp {

static_assert(std::is_same_v<QPixmapCache, pixcache::qt::PixmapCache>, "in myapp, QPixmapCache is pixcache's");
static_assert(std::is_same_v<QPixmapCache::Key, pixcache::qt::PixmapCache::Key>, "and so is its Key");

bool cached(const QString &key) { return QPixmapCache::find(key, nullptr); }

namespace widgets {
// A nested namespace sees the alias too.
QPixmap swatch(const QColor &color) {
    const QString key = QStringLiteral("swatch:%1").arg(color.name());
    QPixmap pm;
    if (!QPixmapCache::find(key, &pm)) {
        pm = QPixmap(16, 16);
        pm.fill(color);
        QPixmapCache::insert(key, pm);
    }
    return pm;
}
}  // namespace widgets

// Member functions of a Qt subclass: class scope first (no QPixmapCache member in QWidget), then
// myapp.
class Badge : public QWidget {
public:
    QPixmap render() {
        if (QPixmapCache::find(key_, &cached_)) return cached_;
        cached_ = QPixmap(24, 24);
        cached_.fill(Qt::darkRed);
        key_ = QPixmapCache::insert(cached_);
        return cached_;
    }
    bool valid() const { return key_.isValid(); }

private:
    QPixmapCache::Key key_;
    QPixmap cached_;
};

}  // namespace myapp

// Outside myapp, the name is Qt's class.
static_assert(!std::is_same_v<QPixmapCache, pixcache::qt::PixmapCache>, "::QPixmapCache is Qt's");

int main(int argc, char **argv) {
    QApplication app(argc, argv);
    int failures = 0;
    auto check = [&](bool ok, const char *what) {
        if (!ok) {
            std::printf("FAILED: %s\n", what);
            ++failures;
        }
    };
    const QPixmap red = myapp::widgets::swatch(Qt::red);
    const QString key = QStringLiteral("swatch:%1").arg(QColor(Qt::red).name());
    check(myapp::cached(key), "an entry made through the alias is found through it");
    check(pixcache::qt::PixmapCache::find(key, nullptr), "it is in pixcache's cache");
    check(!QPixmapCache::find(key, nullptr), "not in Qt's");
    check(myapp::iconCachedFirst(key), "the file that includes the recipe before Qt's headers sees it too");
    myapp::Badge badge;
    const QPixmap first = badge.render();
    check(badge.valid() && badge.render().cacheKey() == first.cacheKey(), "a widget's member functions use it");
    std::printf("%s\n", failures ? "FAILED" : "alias recipe: QPixmapCache in myapp is pixcache's, ::QPixmapCache is Qt's");
    return failures ? 1 : 0;
}

// alias_recipe_first.cpp: the recipe's header (alias_recipe.h) included *before* Qt's headers
// that declare ::QPixmapCache: the alias in myapp still compiles and still wins in myapp.
#include "alias_recipe.h"

#include <QPixmapCache>
#include <QtWidgets>

#include <type_traits>

namespace myapp {
static_assert(std::is_same_v<QPixmapCache, pixcache::qt::PixmapCache>, "myapp::QPixmapCache is pixcache's");

bool iconCachedFirst(const QString &key) {
    QPixmapCache::Key none;  // the adapter's Key type, through the alias
    return QPixmapCache::find(key, nullptr) && !QPixmapCache::find(none, nullptr);
}
}  // namespace myapp

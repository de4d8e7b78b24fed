// alias_recipe.h: a project-wide header keeping the name QPixmapCache for pixcache's adapter,
// as the README's recipe does (tested by alias_recipe.cpp and alias_recipe_first.cpp).
//
// A global `using QPixmapCache = pixcache::qt::PixmapCache;` does not compile in a file that
// also sees Qt's own class ::QPixmapCache (<QtWidgets>, <QtGui>, <QPixmapCache>, before or after
// it: alias_global.cpp, which scripts/test-qt.sh checks fails). In the project's own namespace
// the alias hides Qt's class from that namespace's code: there an unqualified
// `QPixmapCache::find(...)` is pixcache's, wherever Qt's headers are included.
#ifndef ALIAS_RECIPE_H
#define ALIAS_RECIPE_H

#include <pixcache_qt.hpp>

namespace myapp {
using QPixmapCache = pixcache::qt::PixmapCache;  // in myapp, QPixmapCache is pixcache's
}  // namespace myapp

namespace myapp {
bool iconCachedFirst(const QString &key);  // defined in alias_recipe_first.cpp
}  // namespace myapp

#endif

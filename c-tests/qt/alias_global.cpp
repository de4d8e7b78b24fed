// alias_global.cpp: NOT built. The alias at global scope, which the README warns against: with
// Qt's own class ::QPixmapCache declared (here by <QtWidgets>), it is a conflicting declaration
// of the same name and the file does not compile. scripts/test-qt.sh checks that it fails (and
// that alias_recipe.cpp, compiled the same way, does not). Use alias_recipe.h's recipe instead.
#include <QtWidgets>
#include <pixcache_qt.hpp>

using QPixmapCache = pixcache::qt::PixmapCache;  // error: conflicts with Qt's class

bool cached(const QString &key) { return QPixmapCache::find(key, nullptr); }

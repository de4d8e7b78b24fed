# pixcache::qt6_replace (included by pixcacheConfig.cmake when libpixcache-qt6.so is installed):
# link an unmodified Qt 6 program against pixcache's QPixmapCache instead of preloading it.
#
#   target_link_libraries(app PRIVATE pixcache::qt6_replace Qt6::Widgets)   # pixcache first
#
# The library must come before libQt6Gui among the program's libraries (its definitions then
# win): list it first. It is linked with --no-as-needed: a program that calls QPixmapCache only
# through Qt Widgets references none of its symbols itself, and a toolchain defaulting to
# --as-needed would drop it. (The option is placed before the program's libraries, so with such
# a toolchain the libraries the program names directly are all kept too.)
get_filename_component(_pixcache_qt6_libdir "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET pixcache::qt6_replace AND EXISTS "${_pixcache_qt6_libdir}/libpixcache-qt6.so")
    add_library(pixcache::qt6_replace SHARED IMPORTED)
    set_target_properties(pixcache::qt6_replace PROPERTIES
        IMPORTED_LOCATION "${_pixcache_qt6_libdir}/libpixcache-qt6.so"
        IMPORTED_SONAME "libpixcache-qt6.so"
        INTERFACE_LINK_OPTIONS "LINKER:--no-as-needed")
endif()
unset(_pixcache_qt6_libdir)

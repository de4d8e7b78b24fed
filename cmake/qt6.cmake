# Drop-in without recompiling (included by CMakeLists.txt): when Qt 6 is found, builds and
# installs
#   lib/libpixcache-qt6.so        Qt's QPixmapCache symbols, served by pixcache (qt6/), with
#                                 pixcache linked in statically and hidden
#   bin/pixcache-run              runs a program with it preloaded
#   lib/cmake/pixcache/pixcacheQt6Replace.cmake   the pixcache::qt6_replace target
# One build serves the Qt minor version it was built against (the library checks at load time).
# -DPIXCACHE_QT6_REPLACE=OFF skips it; without Qt 6 it is skipped with a message.
option(PIXCACHE_QT6_REPLACE "build libpixcache-qt6.so and pixcache-run when Qt 6 is found" ON)
if(NOT PIXCACHE_QT6_REPLACE)
    return()
endif()
include(CheckLanguage)
check_language(CXX)
if(NOT CMAKE_CXX_COMPILER)
    message(STATUS "no C++ compiler: libpixcache-qt6.so and pixcache-run are not built")
    return()
endif()
enable_language(CXX)
find_package(Qt6 QUIET COMPONENTS Gui)
if(NOT Qt6Gui_FOUND)
    message(STATUS "Qt 6 (Gui) not found: libpixcache-qt6.so and pixcache-run are not built")
    return()
endif()

# The library defines the QPixmapCache symbols of qt6/qpixmapcache.map: built only for a Qt whose
# libQt6Gui exports exactly those (Qt 6.6 adds Key::hash and inlines replace, for instance).
get_target_property(_qt_gui_location Qt6::Gui LOCATION)
if(CMAKE_NM AND _qt_gui_location)
    execute_process(COMMAND "${CMAKE_NM}" -D --defined-only "${_qt_gui_location}"
                    OUTPUT_VARIABLE _qt_gui_symbols RESULT_VARIABLE _nm_rc)
    string(REGEX MATCHALL "_ZN?K?12QPixmapCache[A-Za-z0-9_]+" _qt_pixmapcache "${_qt_gui_symbols}")
    list(REMOVE_DUPLICATES _qt_pixmapcache)
    list(SORT _qt_pixmapcache)
    file(READ "${PIXCACHE_SOURCE_DIR}/qt6/qpixmapcache.map" _map)
    string(REGEX MATCHALL "_ZN?K?12QPixmapCache[A-Za-z0-9_]+" _ours "${_map}")
    list(SORT _ours)
    if(NOT _nm_rc EQUAL 0 OR NOT _qt_pixmapcache STREQUAL _ours)
        message(STATUS "Qt ${Qt6Gui_VERSION}'s QPixmapCache symbols are not those libpixcache-qt6 defines "
                       "(qt6/qpixmapcache.map, Qt 6.4's): libpixcache-qt6.so and pixcache-run are not built")
        return()
    endif()
endif()

add_library(pixcache_built_static STATIC IMPORTED)
set_target_properties(pixcache_built_static PROPERTIES IMPORTED_LOCATION "${_built}/libpixcache.a")

add_library(pixcache-qt6 SHARED "${PIXCACHE_SOURCE_DIR}/qt6/qpixmapcache_replace.cpp")
add_dependencies(pixcache-qt6 pixcache_cargo_build)
set_target_properties(pixcache-qt6 PROPERTIES
    CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${PIXCACHE_SOURCE_DIR}/qt6/qpixmapcache.map;${_built}/libpixcache.a")
# Calls between the library's own definitions (insert() making a Key, say) go straight to them
# rather than through the PLT: the library is the interposer, its definitions are the ones meant.
target_compile_options(pixcache-qt6 PRIVATE -O2 -fno-semantic-interposition)
target_include_directories(pixcache-qt6 PRIVATE "${PIXCACHE_SOURCE_DIR}/include")
target_link_libraries(pixcache-qt6 PRIVATE Qt6::Gui pixcache_built_static ${PIXCACHE_NATIVE_STATIC_LIBS_CMAKE})
target_link_options(pixcache-qt6 PRIVATE
    # Exactly Qt's QPixmapCache symbols, under Qt_6; pixcache and Rust's std stay hidden.
    "LINKER:--version-script=${PIXCACHE_SOURCE_DIR}/qt6/qpixmapcache.map"
    "LINKER:--exclude-libs,ALL"
    "LINKER:-z,defs"
    "LINKER:-Bsymbolic-functions"
    # No debug info: the library is preloaded into other people's programs; keep it small.
    "LINKER:--strip-debug"
    "LINKER:--gc-sections")
install(TARGETS pixcache-qt6 LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}")

# pixcache-run finds the library relative to itself, so the prefix can be moved.
file(RELATIVE_PATH PIXCACHE_BIN_TO_LIBDIR "/${CMAKE_INSTALL_BINDIR}" "/${CMAKE_INSTALL_LIBDIR}")
set(PIXCACHE_QT_MAJOR_MINOR "${Qt6Gui_VERSION_MAJOR}.${Qt6Gui_VERSION_MINOR}")
configure_file("${PIXCACHE_SOURCE_DIR}/qt6/pixcache-run.in" "${CMAKE_CURRENT_BINARY_DIR}/pixcache-run" @ONLY)
install(PROGRAMS "${CMAKE_CURRENT_BINARY_DIR}/pixcache-run" DESTINATION "${CMAKE_INSTALL_BINDIR}")

install(FILES pixcacheQt6Replace.cmake DESTINATION "${_cmake_dir}")

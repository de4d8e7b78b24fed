/* cairo_gallery.c: a grid of thumbnails drawn with cairo straight from pixcache's pixmaps.
 *
 *   cairo_gallery OUTPUT.png [IMAGE ...]
 *
 * Each image is found in (or loaded into) a pixcache cache with pixcache_find_or_load_as in
 * PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED, which is cairo's CAIRO_FORMAT_ARGB32 byte for byte on
 * a little-endian host: cairo reads the cached pixels in place
 * (cairo_image_surface_create_for_data), with no copy and no conversion, and scales them into
 * a cell of the grid. The page is written with cairo_surface_write_to_png.
 *
 * Without IMAGE arguments it first writes a demo set: GALLERY_DEMO_IMAGES (12) PNGs in a
 * temporary directory, each one solid colour (see demo_colour: one of them half transparent), so
 * that a test can check the cells' pixels (scripts/test-cairo.sh does).
 *
 * Build: cc cairo_gallery.c $(pkg-config --cflags --libs pixcache cairo)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cairo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pixcache.h>

#define COLS 4
#define CELL 64   /* a cell of the grid, in pixels */
#define MARGIN 4  /* around each thumbnail in its cell */
#define GALLERY_DEMO_IMAGES 12

/* The colour of demo image i (straight alpha); image 5 is half transparent. */
static void demo_colour(int i, uint8_t rgba[4]) {
    rgba[0] = (uint8_t)(i * 40);
    rgba[1] = (uint8_t)(255 - i * 20);
    rgba[2] = (uint8_t)(i * 90);
    rgba[3] = i == 5 ? 128 : 255;
}

/* Writes the demo images into dir; their paths go to paths[]. */
static int write_demo(const char *dir, char paths[][512], int n) {
    for (int i = 0; i < n; ++i) {
        uint32_t w = 40 + (uint32_t)(i % 3) * 30, h = 30 + (uint32_t)(i % 4) * 20;
        PixcachePixmap *pm = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGBA8888);
        if (!pm) return -1;
        uint8_t rgba[4];
        demo_colour(i, rgba);
        uint8_t *px = pixcache_pixmap_pixels_mut(pm);
        size_t stride = pixcache_pixmap_stride(pm);
        for (uint32_t y = 0; y < h; ++y)
            for (uint32_t x = 0; x < w; ++x) memcpy(px + y * stride + x * 4, rgba, 4);
        snprintf(paths[i], 512, "%s/demo-%02d.png", dir, i);
        int ok = pixcache_pixmap_save(pm, paths[i]);
        pixcache_pixmap_free(pm);
        if (!ok) {
            fprintf(stderr, "cannot write %s: %s\n", paths[i], pixcache_last_error());
            return -1;
        }
    }
    return 0;
}

/* Draws pm, scaled to fit the cell at (col, row) and centred in it. */
static int draw_cell(cairo_t *cr, const PixcachePixmap *pm, int col, int row) {
    int w = (int)pixcache_pixmap_width(pm), h = (int)pixcache_pixmap_height(pm);
    int stride = (int)pixcache_pixmap_stride(pm);
    if (stride != cairo_format_stride_for_width(CAIRO_FORMAT_ARGB32, w)) {
        fprintf(stderr, "unexpected stride %d for width %d\n", stride, w);
        return -1;
    }
    /* In place: cairo only reads a source surface; the pixmap outlives the surface. */
    cairo_surface_t *src = cairo_image_surface_create_for_data(
        (unsigned char *)(uintptr_t)pixcache_pixmap_pixels(pm), CAIRO_FORMAT_ARGB32, w, h, stride);
    if (cairo_surface_status(src) != CAIRO_STATUS_SUCCESS) return -1;
    double box = CELL - 2 * MARGIN;
    double scale = box / (w > h ? w : h);
    cairo_save(cr);
    cairo_translate(cr, col * CELL + (CELL - w * scale) / 2, row * CELL + (CELL - h * scale) / 2);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, src, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
    cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD); /* no blurred edges */
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_finish(src); /* cairo lets go of the pixels here */
    cairo_surface_destroy(src);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTPUT.png [IMAGE ...]\n", argv[0]);
        return 2;
    }
    const char *output = argv[1];
    static char demo[GALLERY_DEMO_IMAGES][512];
    const char *images[256];
    int n = 0;
    char dir[] = "/tmp/cairo-gallery-XXXXXX";
    int made_demo = argc == 2;
    if (made_demo) {
        if (!mkdtemp(dir) || write_demo(dir, demo, GALLERY_DEMO_IMAGES) != 0) return 1;
        for (int i = 0; i < GALLERY_DEMO_IMAGES; ++i) images[n++] = demo[i];
    } else {
        for (int i = 2; i < argc && n < 256; ++i) images[n++] = argv[i];
    }

    PixcacheCache *cache = pixcache_cache_new(16 * 1024);
    int rows = (n + COLS - 1) / COLS;
    cairo_surface_t *page = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, COLS * CELL, rows * CELL);
    cairo_t *cr = cairo_create(page);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    PixcachePixmap *pm = pixcache_pixmap_new_null();
    int drawn = 0;
    /* Twice: the second pass finds every image in the cache (no decode). */
    for (int pass = 0; pass < 2; ++pass)
        for (int i = 0; i < n; ++i) {
            if (!pixcache_find_or_load_as(cache, images[i], PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED, pm)) {
                fprintf(stderr, "%s: %s\n", images[i], pixcache_last_error());
                continue;
            }
            if (pass == 1 && draw_cell(cr, pm, i % COLS, i / COLS) == 0) ++drawn;
        }
    PixcacheStats st = pixcache_stats(cache);
    printf("%d of %d images drawn; cache: %zu entries, %d KB, %llu hits, %llu misses\n", drawn, n,
           st.entries, st.total_kb, (unsigned long long)st.hits, (unsigned long long)st.misses);

    cairo_destroy(cr);
    cairo_status_t written = cairo_surface_write_to_png(page, output);
    cairo_surface_destroy(page);
    pixcache_pixmap_free(pm);
    pixcache_cache_free(cache);
    if (made_demo) {
        for (int i = 0; i < GALLERY_DEMO_IMAGES; ++i) unlink(demo[i]);
        rmdir(dir);
    }
    if (written != CAIRO_STATUS_SUCCESS) {
        fprintf(stderr, "cannot write %s: %s\n", output, cairo_status_to_string(written));
        return 1;
    }
    printf("wrote %s\n", output);
    return drawn == n ? 0 : 1;
}

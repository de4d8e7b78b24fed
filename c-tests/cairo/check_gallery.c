/* check_gallery.c: checks the page examples/cairo_gallery.c drew from its demo images.
 *
 *   check_gallery PAGE.png
 *
 * The page is a grid of 4 columns of 64x64 cells on white; demo image i (a solid colour, see
 * demo_colour, the same rule as the example's) is scaled into cell i. The centre of each cell
 * must be that colour (opaque images exactly; the half-transparent one as cairo composites it
 * over white, within 2 levels), and each cell's corner must still be white (the thumbnail fits
 * inside its margin). Reading the page back through pixcache also checks that cairo's PNG and
 * pixcache's decoder agree. Exit status 0 when every check holds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <pixcache.h>

#define COLS 4
#define CELL 64
#define IMAGES 12

static void demo_colour(int i, uint8_t rgba[4]) {
    rgba[0] = (uint8_t)(i * 40);
    rgba[1] = (uint8_t)(255 - i * 20);
    rgba[2] = (uint8_t)(i * 90);
    rgba[3] = i == 5 ? 128 : 255;
}

static int failures;

static void expect(int i, const char *where, const uint8_t *got, const int want[3], int tolerance) {
    for (int c = 0; c < 3; ++c) {
        if (abs(got[c] - want[c]) > tolerance || got[3] != 255) {
            fprintf(stderr, "cell %d %s: got %u,%u,%u,%u, want %d,%d,%d,255 (within %d)\n", i, where,
                    got[0], got[1], got[2], got[3], want[0], want[1], want[2], tolerance);
            ++failures;
            return;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PAGE.png\n", argv[0]);
        return 2;
    }
    PixcachePixmap *page = pixcache_pixmap_load_as(argv[1], PIXCACHE_FORMAT_RGBA8888);
    if (!page) {
        fprintf(stderr, "%s: %s\n", argv[1], pixcache_last_error());
        return 1;
    }
    uint32_t w = pixcache_pixmap_width(page), h = pixcache_pixmap_height(page);
    if (w != COLS * CELL || h != (IMAGES + COLS - 1) / COLS * CELL) {
        fprintf(stderr, "page is %ux%u, want %dx%d\n", w, h, COLS * CELL, (IMAGES + COLS - 1) / COLS * CELL);
        return 1;
    }
    const uint8_t *px = pixcache_pixmap_pixels(page);
    size_t stride = pixcache_pixmap_stride(page);
    static const int white[3] = {255, 255, 255};
    for (int i = 0; i < IMAGES; ++i) {
        int x0 = i % COLS * CELL, y0 = i / COLS * CELL;
        uint8_t c[4];
        demo_colour(i, c);
        int want[3];
        for (int k = 0; k < 3; ++k) {
            /* Opaque: the colour itself. Else premultiplied source over white:
             * c·a/255 + 255·(255 − a)/255. */
            want[k] = c[3] == 255 ? c[k] : (c[k] * c[3] + 255 * (255 - c[3]) + 127) / 255;
        }
        expect(i, "centre", px + (size_t)(y0 + CELL / 2) * stride + (size_t)(x0 + CELL / 2) * 4, want,
               c[3] == 255 ? 0 : 2);
        expect(i, "corner", px + (size_t)(y0 + 1) * stride + (size_t)(x0 + 1) * 4, white, 0);
    }
    pixcache_pixmap_free(page);
    if (failures) return 1;
    printf("check_gallery: %d cells as drawn\n", IMAGES);
    return 0;
}

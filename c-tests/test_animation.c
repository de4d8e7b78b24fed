/* test_animation.c: animated images (pixcache_image_frames, pixcache_pixmap_load_frame) and
 * thumbnails (pixcache_pixmap_load_scaled).
 *
 * What it tests:
 * - the fixtures in tests/fixtures/ (scripts/make-fixtures.sh): anim.gif, anim.png (APNG),
 *   anim.webp, 8x6, frames red / green / green with a blue 4x2 rectangle (at (2,1); (2,0) in
 *   the WebP), delays 100, 50, 250 ms: the counts, delays (also into a short buffer), the
 *   composited canvases, frame 3 is INVALID_ARGUMENT, a still PNG has one frame;
 * - load_scaled: a 400x300 image fits 100x100 as 100x75, a 300x400 one as 75x100; a small one
 *   is not upscaled; a 0 bound is no bound; a conversion; a flat image stays flat; errors.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixcache.h"

static int checks;
#define CHECK(cond)   \
    do {              \
        assert(cond); \
        ++checks;     \
    } while (0)

static void expect(PixcacheResult code) {
    if (pixcache_last_result() != code) {
        fprintf(stderr, "expected result %d, got %d: %s\n", (int)code, (int)pixcache_last_result(),
                pixcache_last_error());
    }
    CHECK(pixcache_last_result() == code);
}

static char fixtures[1024];

/* tests/fixtures, found from this file's own path (the harness compiles it by absolute path). */
static void find_fixtures(void) {
    snprintf(fixtures, sizeof fixtures, "%s", __FILE__);
    char *slash = strrchr(fixtures, '/');
    CHECK(slash != NULL);
    *slash = '\0'; /* .../c-tests */
    slash = strrchr(fixtures, '/');
    CHECK(slash != NULL);
    strcpy(slash, "/tests/fixtures");
}

static const uint8_t *pixel(const PixcachePixmap *pm, uint32_t x, uint32_t y) {
    return pixcache_pixmap_pixels(pm) + y * pixcache_pixmap_stride(pm) + x * 4;
}

static void test_animation(const char *name, uint32_t blue_y) {
    printf("/animation/%s\n", name);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    size_t count = 0;
    uint32_t delays[5] = {7, 7, 7, 7, 7};
    CHECK(pixcache_image_frames(path, &count, delays, 5));
    expect(PIXCACHE_RESULT_OK);
    CHECK(count == 3);
    CHECK(delays[0] == 100 && delays[1] == 50 && delays[2] == 250 && delays[3] == 7);
    uint32_t two[2] = {0, 0};
    uint32_t guard = 7;
    CHECK(pixcache_image_frames(path, &count, two, 2) && count == 3);
    CHECK(two[0] == 100 && two[1] == 50 && guard == 7);
    CHECK(pixcache_image_frames(path, &count, NULL, 0) && count == 3);

    static const uint8_t red[4] = {255, 0, 0, 255}, green[4] = {0, 255, 0, 255},
                         blue[4] = {0, 0, 255, 255};
    for (size_t n = 0; n < 3; ++n) {
        PixcachePixmap *pm = pixcache_pixmap_load_frame(path, n, 0);
        CHECK(pm != NULL);
        CHECK(pixcache_pixmap_width(pm) == 8 && pixcache_pixmap_height(pm) == 6);
        CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_RGBA8888);
        const uint8_t *corner = n == 0 ? red : green;
        CHECK(memcmp(pixel(pm, 0, 0), corner, 4) == 0);
        CHECK(memcmp(pixel(pm, 7, 5), corner, 4) == 0);
        CHECK(memcmp(pixel(pm, 3, blue_y), n == 2 ? blue : corner, 4) == 0);
        CHECK(memcmp(pixel(pm, 5, blue_y + 1), n == 2 ? blue : corner, 4) == 0);
        CHECK(memcmp(pixel(pm, 6, blue_y), corner, 4) == 0);
        pixcache_pixmap_free(pm);
    }
    PixcachePixmap *pm = pixcache_pixmap_load_frame(path, 2, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    CHECK(pm != NULL && pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    CHECK(memcmp(pixel(pm, 3, blue_y), "\xff\x00\x00\xff", 4) == 0);
    pixcache_pixmap_free(pm);
    CHECK(pixcache_pixmap_load_frame(path, 3, 0) == NULL);
    expect(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(pixcache_last_error(), "3 frames") != NULL);
}

static void make_temp_dir(char *dir, size_t size) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/pixcache-anim-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
}

/* Saves a flat w x h RGB image of one colour. */
static void save_flat(const char *path, uint32_t w, uint32_t h) {
    PixcachePixmap *pm = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGB888);
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    size_t stride = pixcache_pixmap_stride(pm);
    for (uint32_t y = 0; y < h; ++y)
        for (uint32_t x = 0; x < w; ++x) memcpy(px + y * stride + x * 3, "\x20\x80\xe0", 3);
    CHECK(pixcache_pixmap_save(pm, path));
    pixcache_pixmap_free(pm);
}

static void test_still_and_scaled(void) {
    printf("/animation/still_and_scaled\n");
    char dir[512], wide[600], tall[600];
    make_temp_dir(dir, sizeof dir);
    snprintf(wide, sizeof wide, "%s/wide.png", dir);
    snprintf(tall, sizeof tall, "%s/tall.bmp", dir);
    save_flat(wide, 400, 300);
    save_flat(tall, 300, 400);

    size_t count = 9;
    uint32_t delay = 9;
    CHECK(pixcache_image_frames(wide, &count, &delay, 1) && count == 1 && delay == 0);
    CHECK(pixcache_pixmap_load_frame(wide, 1, 0) == NULL);
    expect(PIXCACHE_RESULT_INVALID_ARGUMENT);

    PixcachePixmap *pm = pixcache_pixmap_load_scaled(wide, 100, 100, 0);
    CHECK(pm != NULL);
    CHECK(pixcache_pixmap_width(pm) == 100 && pixcache_pixmap_height(pm) == 75);
    CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_RGB888);
    /* A flat image stays flat: the filter's weights sum to one. */
    const uint8_t *px = pixcache_pixmap_pixels(pm) + 40 * pixcache_pixmap_stride(pm) + 50 * 3;
    CHECK(memcmp(px, "\x20\x80\xe0", 3) == 0);
    pixcache_pixmap_free(pm);
    pm = pixcache_pixmap_load_scaled(tall, 100, 100, PIXCACHE_FORMAT_RGBA8888);
    CHECK(pm != NULL);
    CHECK(pixcache_pixmap_width(pm) == 75 && pixcache_pixmap_height(pm) == 100);
    CHECK(pixcache_pixmap_format(pm) == PIXCACHE_FORMAT_RGBA8888);
    pixcache_pixmap_free(pm);
    /* Never upscaled; 0 is no bound. */
    pm = pixcache_pixmap_load_scaled(wide, 1000, 1000, 0);
    CHECK(pm != NULL && pixcache_pixmap_width(pm) == 400 && pixcache_pixmap_height(pm) == 300);
    pixcache_pixmap_free(pm);
    pm = pixcache_pixmap_load_scaled(wide, 200, 0, 0);
    CHECK(pm != NULL && pixcache_pixmap_width(pm) == 200 && pixcache_pixmap_height(pm) == 150);
    pixcache_pixmap_free(pm);
    pm = pixcache_pixmap_load_scaled(wide, 0, 0, 0);
    CHECK(pm != NULL && pixcache_pixmap_width(pm) == 400);
    pixcache_pixmap_free(pm);
    /* Errors. */
    CHECK(pixcache_pixmap_load_scaled(wide, 10, 10, 77) == NULL);
    expect(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(pixcache_pixmap_load_scaled(NULL, 10, 10, 0) == NULL);
    expect(PIXCACHE_RESULT_NULL_ARGUMENT);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    CHECK(pixcache_pixmap_load_scaled(missing, 10, 10, 0) == NULL);
    expect(PIXCACHE_RESULT_IO);
    CHECK(!pixcache_image_frames(missing, &count, NULL, 0) && count == 0);
    expect(PIXCACHE_RESULT_IO);
    CHECK(!pixcache_image_frames(wide, NULL, NULL, 0));
    expect(PIXCACHE_RESULT_NULL_ARGUMENT);

    CHECK(unlink(wide) == 0 && unlink(tall) == 0 && rmdir(dir) == 0);
}

int main(void) {
    find_fixtures();
    test_animation("anim.gif", 1);
    test_animation("anim.png", 1);
    test_animation("anim.webp", 0);
    test_still_and_scaled();
    CHECK(pixcache_live_pixmaps() == 0);
    printf("test_animation: %d checks passed\n", checks);
    return 0;
}

/* test_image_info.c: image files beyond pixcache_pixmap_load, through the C API only (the Rust
 * side's cases are tests/image_options.rs).
 *
 * What it tests:
 * - pixcache_decode_limits: reads the defaults and what pixcache_set_decode_limits set; any
 *   pointer may be NULL.
 * - pixcache_load_options_default: the natural format, orientation on, the limits in force.
 * - pixcache_pixmap_load_with / pixcache_pixmap_load_from_memory_with: NULL options are the
 *   defaults; the format option converts (an unknown one is INVALID_ARGUMENT); limits for one
 *   call (tighter and looser than the process-wide ones; 0 = the process-wide one); NULL path or
 *   data (NULL_ARGUMENT), missing file (IO), garbage (DECODE).
 * - TOO_LARGE from the header before decoding, the size named in the message: a BMP claiming
 *   100000x100000 (which the BMP decoder alone would call a decoding error), a PNG IHDR and a
 *   GIF screen claiming more than the limits.
 * - EXIF orientation: a JPEG written with pixcache_pixmap_save, an APP1 Exif segment spliced
 *   in saying "rotate 90 clockwise" (6): loads turned (48x32, the stored top-left block now at
 *   the top right), and as stored with apply_orientation = false.
 * - pixcache_image_info / pixcache_image_info_from_memory: format, size after and before the
 *   orientation, alpha, orientation; a header beyond every limit still reports its size, a file
 *   cut after its header too (no pixel is read); NULL arguments, missing file (IO) and garbage
 *   (DECODE) fail, leaving `out` zeroed (format UNKNOWN, has_alpha -1).
 *
 * Every pixmap is freed (valgrind-clean); temporary files are removed.
 */
#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pixcache.h"

static unsigned long checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        ++checks;                                                                                  \
        assert(cond);                                                                              \
    } while (0)

#define CHECK_EQ(got, want)                                                                        \
    do {                                                                                           \
        long long got_ = (long long)(got), want_ = (long long)(want);                              \
        ++checks;                                                                                  \
        if (got_ != want_) {                                                                       \
            fprintf(stderr, "%s:%d: %s is %lld, expected %s = %lld (last error: %s)\n", __FILE__,  \
                    __LINE__, #got, got_, #want, want_, pixcache_last_error());                    \
        }                                                                                          \
        assert(got_ == want_);                                                                     \
    } while (0)

#define CHECK_RESULT(code)                                                                         \
    do {                                                                                           \
        CHECK_EQ(pixcache_last_result(), (code));                                                  \
        if ((code) == PIXCACHE_RESULT_OK) {                                                        \
            CHECK(pixcache_last_error()[0] == '\0');                                               \
        } else {                                                                                   \
            CHECK(pixcache_last_error()[0] != '\0');                                               \
        }                                                                                          \
    } while (0)

/* ---- test images --------------------------------------------------------------------------- */

/* A 1x1 RGBA PNG (pixel 0x12, 0x34, 0x56, 0x78). */
static const uint8_t png_1x1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
    0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
    0xda, 0x63, 0x10, 0x32, 0x09, 0xab, 0x00, 0x00, 0x02, 0x0d, 0x01, 0x15, 0x76, 0x20,
    0xb7, 0xd6, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* A PNG signature and an IHDR (RGBA) claiming w x h, nothing else: 33 bytes. */
static void png_claiming(uint8_t out[33], uint32_t w, uint32_t h) {
    memcpy(out, png_1x1, 33);
    be32(out + 16, w);
    be32(out + 20, h);
    be32(out + 29, crc32(out + 12, 17));
}

/* A BMP file header and BITMAPINFOHEADER claiming w x h (24 bits), no pixels: 54 bytes. */
static void bmp_claiming(uint8_t out[54], int32_t w, int32_t h) {
    memset(out, 0, 54);
    out[0] = 'B', out[1] = 'M';
    le32(out + 2, 54);
    le32(out + 10, 54);
    le32(out + 14, 40);
    le32(out + 18, (uint32_t)w);
    le32(out + 22, (uint32_t)h);
    out[26] = 1;
    out[28] = 24;
}

/* A GIF header whose logical screen is w x h, one 1x1 frame. */
static const uint8_t gif_65535[] = {
    'G', 'I', 'F', '8', '9', 'a', 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
    0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4c, 0x01, 0, 0x3b,
};

static const char garbage[] = "certainly not an image, only text";

static char *temp_file(const void *bytes, size_t len) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/pixcache-test-image-info-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, bytes, len) == (ssize_t)len);
    CHECK(close(fd) == 0);
    return path;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n > 0);
    rewind(f);
    uint8_t *bytes = malloc((size_t)n);
    CHECK(bytes != NULL);
    CHECK(fread(bytes, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return bytes;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_limits(void) {
    printf("/image/limits\n");
    uint32_t w = 0, h = 0;
    uint64_t a = 0;
    pixcache_decode_limits(&w, &h, &a);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(w, 16384);
    CHECK_EQ(h, 16384);
    CHECK_EQ(a, 512ull << 20);
    pixcache_decode_limits(NULL, NULL, NULL);
    CHECK_RESULT(PIXCACHE_RESULT_OK);

    pixcache_set_decode_limits(100, 200, 300000);
    w = h = 0;
    pixcache_decode_limits(&w, NULL, NULL);
    pixcache_decode_limits(NULL, &h, &a);
    CHECK_EQ(w, 100);
    CHECK_EQ(h, 200);
    CHECK_EQ(a, 300000);
    PixcacheLoadOptions o = pixcache_load_options_default();
    CHECK_EQ(o.format, PIXCACHE_FORMAT_INVALID);
    CHECK(o.apply_orientation);
    CHECK_EQ(o.max_width, 100);
    CHECK_EQ(o.max_height, 200);
    CHECK_EQ(o.max_alloc, 300000);

    /* A 1x1 image under limits of 0x0 in the options means the process-wide ones. */
    uint8_t big[33];
    png_claiming(big, 150, 150);
    CHECK(pixcache_pixmap_load_from_memory_with(big, sizeof big, NULL) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
    CHECK(strstr(pixcache_last_error(), "150x150") != NULL);
    /* Looser limits of its own: past the size check, then the missing data is the error. */
    o.max_width = o.max_height = 1000;
    CHECK(pixcache_pixmap_load_from_memory_with(big, sizeof big, &o) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_DECODE);

    pixcache_set_decode_limits(0, 0, 0);
    pixcache_decode_limits(&w, &h, &a);
    CHECK_EQ(w, 16384);
    CHECK_EQ(a, 512ull << 20);
    /* Tighter limits of its own. */
    o = pixcache_load_options_default();
    o.max_width = 100;
    CHECK(pixcache_pixmap_load_from_memory_with(big, sizeof big, &o) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
}

static void test_load_with(void) {
    printf("/image/load_with\n");
    PixcachePixmap *pm = pixcache_pixmap_load_from_memory_with(png_1x1, sizeof png_1x1, NULL);
    CHECK(pm != NULL);
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(pixcache_pixmap_format(pm), PIXCACHE_FORMAT_RGBA8888);
    const uint8_t *px = pixcache_pixmap_pixels(pm);
    CHECK(px[0] == 0x12 && px[3] == 0x78);
    pixcache_pixmap_free(pm);

    PixcacheLoadOptions o = pixcache_load_options_default();
    o.format = PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED;
    pm = pixcache_pixmap_load_from_memory_with(png_1x1, sizeof png_1x1, &o);
    CHECK(pm != NULL);
    CHECK_EQ(pixcache_pixmap_format(pm), PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    pixcache_pixmap_free(pm);
    o.format = 999;
    CHECK(pixcache_pixmap_load_from_memory_with(png_1x1, sizeof png_1x1, &o) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_INVALID_ARGUMENT);

    char *path = temp_file(png_1x1, sizeof png_1x1);
    pm = pixcache_pixmap_load_with(path, NULL);
    CHECK(pm != NULL);
    CHECK_EQ(pixcache_pixmap_width(pm), 1);
    pixcache_pixmap_free(pm);
    unlink(path);

    CHECK(pixcache_pixmap_load_with(NULL, NULL) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(pixcache_pixmap_load_from_memory_with(NULL, 0, NULL) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(pixcache_pixmap_load_with("/nonexistent-pixcache-dir/x.png", NULL) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_IO);
    CHECK(pixcache_pixmap_load_from_memory_with((const uint8_t *)garbage, sizeof garbage, NULL) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_DECODE);
}

static void test_too_large(void) {
    printf("/image/too_large\n");
    uint8_t bmp[54];
    bmp_claiming(bmp, 100000, 100000);
    CHECK(pixcache_pixmap_load_from_memory(bmp, sizeof bmp) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
    CHECK(strstr(pixcache_last_error(), "100000x100000") != NULL);
    /* Even with limits above it: the BMP decoder's own cap is a size refusal too. */
    PixcacheLoadOptions o = pixcache_load_options_default();
    o.max_width = o.max_height = 200000;
    o.max_alloc = UINT64_MAX;
    CHECK(pixcache_pixmap_load_from_memory_with(bmp, sizeof bmp, &o) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
    bmp_claiming(bmp, 100000, -100000); /* top-down */
    char *path = temp_file(bmp, sizeof bmp);
    CHECK(pixcache_pixmap_load(path) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
    CHECK(pixcache_pixmap_load_with(path, NULL) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
    unlink(path);

    uint8_t png[33];
    png_claiming(png, 60000, 60000);
    CHECK(pixcache_pixmap_load_from_memory(png, sizeof png) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
    CHECK(strstr(pixcache_last_error(), "60000x60000") != NULL);
    CHECK(pixcache_pixmap_load_from_memory(gif_65535, sizeof gif_65535) == NULL);
    CHECK_RESULT(PIXCACHE_RESULT_TOO_LARGE);
    CHECK(strstr(pixcache_last_error(), "65535x65535") != NULL);
}

/* The colour of stored 16x16 block (bx, by) of the 32x48 test picture. */
static const uint8_t colours[6][3] = {
    {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {0, 255, 255}, {255, 0, 255},
};

static bool near(const uint8_t *px, const uint8_t *want) {
    for (int i = 0; i < 3; ++i) {
        int d = (int)px[i] - (int)want[i];
        if (d < -40 || d > 40) return false;
    }
    return true;
}

static const uint8_t *pixel(const PixcachePixmap *pm, uint32_t x, uint32_t y) {
    CHECK_EQ(pixcache_pixmap_format(pm), PIXCACHE_FORMAT_RGB888);
    return pixcache_pixmap_pixels(pm) + y * pixcache_pixmap_stride(pm) + x * 3;
}

static void test_orientation(void) {
    printf("/image/orientation\n");
    PixcachePixmap *src = pixcache_pixmap_new(32, 48, PIXCACHE_FORMAT_RGB888);
    CHECK(src != NULL);
    uint8_t *px = pixcache_pixmap_pixels_mut(src);
    size_t stride = pixcache_pixmap_stride(src);
    for (uint32_t y = 0; y < 48; ++y)
        for (uint32_t x = 0; x < 32; ++x) memcpy(px + y * stride + x * 3, colours[(y / 16) * 2 + x / 16], 3);
    char path[] = "/tmp/pixcache-test-image-info-XXXXXX.jpg";
    int fd = mkstemps(path, 4);
    CHECK(fd >= 0);
    close(fd);
    CHECK(pixcache_pixmap_save(src, path));
    pixcache_pixmap_free(src);
    size_t len;
    uint8_t *jpeg = read_file(path, &len);

    /* APP1: "Exif\0\0", then a big-endian TIFF header with one IFD entry, Orientation = 6. */
    static const uint8_t app1[] = {
        0xff, 0xe1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8,
        0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
    };
    uint8_t *oriented = malloc(len + sizeof app1);
    CHECK(oriented != NULL);
    memcpy(oriented, jpeg, 2);
    memcpy(oriented + 2, app1, sizeof app1);
    memcpy(oriented + 2 + sizeof app1, jpeg + 2, len - 2);
    size_t olen = len + sizeof app1;
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(oriented, 1, olen, f) == olen);
    fclose(f);

    /* Turned 90 degrees clockwise: 48x32, the stored top-left block (red) at the top right, the
     * stored bottom-left block (cyan) at the top left. */
    PixcachePixmap *pms[3] = {
        pixcache_pixmap_load_from_memory(oriented, olen),
        pixcache_pixmap_load(path),
        pixcache_pixmap_load_with(path, NULL),
    };
    for (int i = 0; i < 3; ++i) {
        CHECK(pms[i] != NULL);
        CHECK_EQ(pixcache_pixmap_width(pms[i]), 48);
        CHECK_EQ(pixcache_pixmap_height(pms[i]), 32);
        CHECK(near(pixel(pms[i], 40, 8), colours[0]));
        CHECK(near(pixel(pms[i], 8, 8), colours[4]));
        CHECK(near(pixel(pms[i], 40, 24), colours[1]));
        pixcache_pixmap_free(pms[i]);
    }
    PixcacheLoadOptions o = pixcache_load_options_default();
    o.apply_orientation = false;
    PixcachePixmap *stored = pixcache_pixmap_load_from_memory_with(oriented, olen, &o);
    CHECK(stored != NULL);
    CHECK_EQ(pixcache_pixmap_width(stored), 32);
    CHECK_EQ(pixcache_pixmap_height(stored), 48);
    CHECK(near(pixel(stored, 8, 8), colours[0]));
    CHECK(near(pixel(stored, 24, 40), colours[5]));
    pixcache_pixmap_free(stored);

    PixcacheImageInfo info;
    CHECK(pixcache_image_info(path, &info));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(info.format, PIXCACHE_IMAGE_JPEG);
    CHECK_EQ(info.orientation, 6);
    CHECK_EQ(info.width, 48);
    CHECK_EQ(info.height, 32);
    CHECK_EQ(info.stored_width, 32);
    CHECK_EQ(info.stored_height, 48);
    CHECK_EQ(info.has_alpha, 0);
    /* The unmodified JPEG: upright. */
    CHECK(pixcache_image_info_from_memory(jpeg, len, &info));
    CHECK_EQ(info.orientation, 1);
    CHECK_EQ(info.width, 32);

    free(oriented);
    free(jpeg);
    unlink(path);
}

static void check_unknown(const PixcacheImageInfo *info) {
    CHECK_EQ(info->format, PIXCACHE_IMAGE_UNKNOWN);
    CHECK_EQ(info->width, 0);
    CHECK_EQ(info->height, 0);
    CHECK_EQ(info->has_alpha, -1);
}

static void test_info(void) {
    printf("/image/info\n");
    PixcacheImageInfo info;
    CHECK(pixcache_image_info_from_memory(png_1x1, sizeof png_1x1, &info));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(info.format, PIXCACHE_IMAGE_PNG);
    CHECK_EQ(info.width, 1);
    CHECK_EQ(info.height, 1);
    CHECK_EQ(info.has_alpha, 1);
    CHECK_EQ(info.orientation, 1);

    /* A header beyond every limit: no load takes it, its size is still reported. */
    uint8_t png[33];
    png_claiming(png, 60000, 60000);
    CHECK(pixcache_image_info_from_memory(png, sizeof png, &info));
    CHECK_EQ(info.width, 60000);
    CHECK_EQ(info.height, 60000);
    uint8_t bmp[54];
    bmp_claiming(bmp, 100000, -100000);
    CHECK(pixcache_image_info_from_memory(bmp, sizeof bmp, &info));
    CHECK_EQ(info.format, PIXCACHE_IMAGE_BMP);
    CHECK_EQ(info.width, 100000);
    CHECK_EQ(info.height, 100000);
    CHECK(pixcache_image_info_from_memory(gif_65535, sizeof gif_65535, &info));
    CHECK_EQ(info.format, PIXCACHE_IMAGE_GIF);
    CHECK_EQ(info.width, 65535);

    /* A file cut short inside its image data: it does not load, its header reads. */
    char *path = temp_file(png_1x1, 45);
    CHECK(pixcache_pixmap_load(path) == NULL);
    CHECK(pixcache_image_info(path, &info));
    CHECK_RESULT(PIXCACHE_RESULT_OK);
    CHECK_EQ(info.format, PIXCACHE_IMAGE_PNG);
    CHECK_EQ(info.width, 1);
    unlink(path);

    /* Failures leave `out` unknown. */
    CHECK(!pixcache_image_info("/nonexistent-pixcache-dir/x.png", &info));
    CHECK_RESULT(PIXCACHE_RESULT_IO);
    check_unknown(&info);
    CHECK(!pixcache_image_info_from_memory((const uint8_t *)garbage, sizeof garbage, &info));
    CHECK_RESULT(PIXCACHE_RESULT_DECODE);
    check_unknown(&info);
    path = temp_file(garbage, sizeof garbage);
    CHECK(!pixcache_image_info(path, &info));
    CHECK_RESULT(PIXCACHE_RESULT_DECODE);
    unlink(path);
    CHECK(!pixcache_image_info_from_memory(png_1x1, 0, &info));
    CHECK_RESULT(PIXCACHE_RESULT_DECODE);
    CHECK(!pixcache_image_info(NULL, &info));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    check_unknown(&info);
    CHECK(!pixcache_image_info("/x.png", NULL));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_image_info_from_memory(NULL, 10, &info));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_image_info_from_memory(png_1x1, sizeof png_1x1, NULL));
    CHECK_RESULT(PIXCACHE_RESULT_NULL_ARGUMENT);
}

int main(void) {
    size_t live = pixcache_live_pixmaps();
    test_limits();
    test_load_with();
    test_too_large();
    test_orientation();
    test_info();
    CHECK_EQ(pixcache_live_pixmaps(), live);
    printf("test_image_info: %lu checks passed\n", checks);
    return 0;
}

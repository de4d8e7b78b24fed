/* test_encode.c: pixcache_pixmap_encode / pixcache_bytes_free and the atomic saves
 * (pixcache_pixmap_save, pixcache_pixmap_save_as).
 *
 * What it tests:
 * - round trips through pixcache_pixmap_load_from_memory: PNG and lossless WebP give the same
 *   pixels for RGBA8888, RGB888 and GRAY8 (WebP grey comes back as RGB, r = g = b), and the
 *   straight pixels of a premultiplied pixmap; BMP gives the same RGB888 pixels;
 * - JPEG: PSNR of a smooth image at quality 95 (and a bound on its largest error), quality 10
 *   smaller than 95, quality 0 is 90, alpha composited over black;
 * - errors: GIF/ICO (UNSUPPORTED), unknown formats and qualities (INVALID_ARGUMENT), the null
 *   pixmap (INVALID_ARGUMENT), foreign pixmaps (UNSUPPORTED), NULL arguments; the outputs are
 *   NULL / 0 after a failure;
 * - saving is atomic: a pixmap that cannot be encoded, a write that fails half way (a child
 *   process with RLIMIT_FSIZE below the image's size), a read-only directory (skipped as root)
 *   leave the old file's content and no temporary file; a replaced file keeps its mode; save_as
 *   ignores the extension; non-UTF-8 file names work.
 */
#undef NDEBUG
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* A pixmap of `format` with a pattern (varied alpha where there is alpha). */
static PixcachePixmap *pattern(uint32_t w, uint32_t h, PixcacheFormat format) {
    PixcachePixmap *rgba = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGBA8888);
    CHECK(rgba != NULL);
    uint8_t *px = pixcache_pixmap_pixels_mut(rgba);
    size_t stride = pixcache_pixmap_stride(rgba);
    for (uint32_t y = 0; y < h; ++y) {
        for (uint32_t x = 0; x < w; ++x) {
            uint8_t *p = px + y * stride + x * 4;
            p[0] = (uint8_t)(x * 29 + y);
            p[1] = (uint8_t)(y * 41);
            p[2] = (uint8_t)(x * y * 3);
            p[3] = (uint8_t)(x * 13 + y * 5 + 1);
        }
    }
    if (format == PIXCACHE_FORMAT_RGBA8888) return rgba;
    PixcachePixmap *out = pixcache_pixmap_convert(rgba, format);
    CHECK(out != NULL);
    pixcache_pixmap_free(rgba);
    return out;
}

static int same_pixels(const PixcachePixmap *a, const PixcachePixmap *b) {
    if (pixcache_pixmap_width(a) != pixcache_pixmap_width(b) ||
        pixcache_pixmap_height(a) != pixcache_pixmap_height(b) ||
        pixcache_pixmap_format(a) != pixcache_pixmap_format(b))
        return 0;
    size_t bytes = pixcache_pixmap_stride(a) * pixcache_pixmap_height(a);
    return memcmp(pixcache_pixmap_pixels(a), pixcache_pixmap_pixels(b), bytes) == 0;
}

static PixcachePixmap *round_trip(const PixcachePixmap *pm, PixcacheImageFormat f, int quality,
                                  size_t *size) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    CHECK(pixcache_pixmap_encode(pm, f, quality, &bytes, &len));
    expect(PIXCACHE_RESULT_OK);
    CHECK(bytes != NULL && len > 0);
    PixcachePixmap *back = pixcache_pixmap_load_from_memory(bytes, len);
    CHECK(back != NULL);
    pixcache_bytes_free(bytes, len);
    if (size) *size = len;
    return back;
}

static void test_lossless(void) {
    printf("/encode/lossless\n");
    const PixcacheFormat formats[] = {PIXCACHE_FORMAT_RGBA8888, PIXCACHE_FORMAT_RGB888,
                                      PIXCACHE_FORMAT_GRAY8};
    for (size_t i = 0; i < 3; ++i) {
        PixcachePixmap *pm = pattern(37, 19, formats[i]);
        PixcachePixmap *png = round_trip(pm, PIXCACHE_IMAGE_PNG, 0, NULL);
        CHECK(same_pixels(png, pm));
        PixcachePixmap *webp = round_trip(pm, PIXCACHE_IMAGE_WEBP, 0, NULL);
        if (formats[i] == PIXCACHE_FORMAT_GRAY8) {
            CHECK(pixcache_pixmap_format(webp) == PIXCACHE_FORMAT_RGB888);
            PixcachePixmap *grey = pixcache_pixmap_convert(webp, PIXCACHE_FORMAT_GRAY8);
            CHECK(same_pixels(grey, pm));
            pixcache_pixmap_free(grey);
        } else {
            CHECK(same_pixels(webp, pm));
        }
        pixcache_pixmap_free(png);
        pixcache_pixmap_free(webp);
        pixcache_pixmap_free(pm);
    }
    /* BMP: RGB exactly. */
    PixcachePixmap *rgb = pattern(37, 19, PIXCACHE_FORMAT_RGB888);
    PixcachePixmap *bmp = round_trip(rgb, PIXCACHE_IMAGE_BMP, 0, NULL);
    CHECK(same_pixels(bmp, rgb));
    pixcache_pixmap_free(bmp);
    pixcache_pixmap_free(rgb);
    /* Premultiplied: encoded straight, so it decodes to the straight pixels. */
    PixcachePixmap *bgra = pattern(37, 19, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
    PixcachePixmap *straight = pixcache_pixmap_convert(bgra, PIXCACHE_FORMAT_RGBA8888);
    PixcachePixmap *back = round_trip(bgra, PIXCACHE_IMAGE_PNG, 0, NULL);
    CHECK(same_pixels(back, straight));
    pixcache_pixmap_free(back);
    back = round_trip(bgra, PIXCACHE_IMAGE_WEBP, 0, NULL);
    CHECK(same_pixels(back, straight));
    pixcache_pixmap_free(back);
    pixcache_pixmap_free(straight);
    pixcache_pixmap_free(bgra);
}

static void test_jpeg(void) {
    printf("/encode/jpeg\n");
    /* A smooth image (JPEG's good case): PSNR at quality 95. */
    const uint32_t w = 96, h = 64;
    PixcachePixmap *pm = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGB888);
    uint8_t *px = pixcache_pixmap_pixels_mut(pm);
    size_t stride = pixcache_pixmap_stride(pm);
    for (uint32_t y = 0; y < h; ++y)
        for (uint32_t x = 0; x < w; ++x) {
            uint8_t *p = px + y * stride + x * 3;
            p[0] = (uint8_t)(x * 255 / w);
            p[1] = (uint8_t)(y * 255 / h);
            p[2] = (uint8_t)((x - 48) * (x - 48) / 12 + (y * y) / 20);
        }
    size_t size95, size10, size0, size90;
    PixcachePixmap *back = round_trip(pm, PIXCACHE_IMAGE_JPEG, 95, &size95);
    CHECK(pixcache_pixmap_format(back) == PIXCACHE_FORMAT_RGB888);
    const uint8_t *bp = pixcache_pixmap_pixels(back);
    double se = 0;
    int worst = 0;
    for (uint32_t y = 0; y < h; ++y)
        for (uint32_t x = 0; x < w * 3; ++x) {
            int d = (int)px[y * stride + x] - (int)bp[y * stride + x];
            se += d * d;
            if (abs(d) > worst) worst = abs(d);
        }
    /* PSNR = 10 log10(255^2 / MSE) > 38 dB  <=>  MSE < 255^2 / 10^3.8 = 10.3 (no libm here). */
    double mse = se / (w * h * 3);
    printf("  JPEG q95: %zu bytes, MSE %.2f (PSNR > 38 dB iff MSE < 10.3), largest error %d\n",
           size95, mse, worst);
    CHECK(mse < 10.3);
    CHECK(worst <= 24);
    pixcache_pixmap_free(back);
    back = round_trip(pm, PIXCACHE_IMAGE_JPEG, 10, &size10);
    pixcache_pixmap_free(back);
    CHECK(size10 < size95);
    back = round_trip(pm, PIXCACHE_IMAGE_JPEG, 0, &size0);
    pixcache_pixmap_free(back);
    back = round_trip(pm, PIXCACHE_IMAGE_JPEG, 90, &size90);
    pixcache_pixmap_free(back);
    CHECK(size0 == size90);
    pixcache_pixmap_free(pm);

    /* Alpha is composited over black: a transparent white image is black. */
    PixcachePixmap *clear = pixcache_pixmap_new(16, 16, PIXCACHE_FORMAT_RGBA8888);
    px = pixcache_pixmap_pixels_mut(clear);
    for (size_t i = 0; i < 16 * 16; ++i) memcpy(px + i * 4, "\xff\xff\xff\x00", 4);
    back = round_trip(clear, PIXCACHE_IMAGE_JPEG, 95, NULL);
    CHECK(pixcache_pixmap_format(back) == PIXCACHE_FORMAT_RGB888);
    CHECK(pixcache_pixmap_pixels(back)[0] < 8);
    pixcache_pixmap_free(back);
    pixcache_pixmap_free(clear);
}

static void expect_encode_fails(const PixcachePixmap *pm, PixcacheImageFormat f, int quality,
                                PixcacheResult code) {
    uint8_t *bytes = (uint8_t *)&checks;
    size_t len = 99;
    CHECK(!pixcache_pixmap_encode(pm, f, quality, &bytes, &len));
    expect(code);
    CHECK(bytes == NULL && len == 0);
    CHECK(strlen(pixcache_last_error()) > 0);
}

static void test_errors(void) {
    printf("/encode/errors\n");
    PixcachePixmap *pm = pattern(4, 4, PIXCACHE_FORMAT_RGBA8888);
    expect_encode_fails(pm, PIXCACHE_IMAGE_GIF, 0, PIXCACHE_RESULT_UNSUPPORTED);
    expect_encode_fails(pm, PIXCACHE_IMAGE_ICO, 0, PIXCACHE_RESULT_UNSUPPORTED);
    expect_encode_fails(pm, 0, 0, PIXCACHE_RESULT_INVALID_ARGUMENT);
    expect_encode_fails(pm, 7, 0, PIXCACHE_RESULT_INVALID_ARGUMENT);
    expect_encode_fails(pm, PIXCACHE_IMAGE_JPEG, 101, PIXCACHE_RESULT_INVALID_ARGUMENT);
    expect_encode_fails(pm, PIXCACHE_IMAGE_JPEG, -1, PIXCACHE_RESULT_INVALID_ARGUMENT);
    expect_encode_fails(NULL, PIXCACHE_IMAGE_PNG, 0, PIXCACHE_RESULT_NULL_ARGUMENT);
    PixcachePixmap *null = pixcache_pixmap_new_null();
    expect_encode_fails(null, PIXCACHE_IMAGE_PNG, 0, PIXCACHE_RESULT_INVALID_ARGUMENT);
    pixcache_pixmap_free(null);
    static int token;
    PixcachePixmap *foreign = pixcache_pixmap_wrap(4, 4, 32, &token, NULL);
    expect_encode_fails(foreign, PIXCACHE_IMAGE_PNG, 0, PIXCACHE_RESULT_UNSUPPORTED);
    pixcache_pixmap_free(foreign);
    size_t len = 5;
    CHECK(!pixcache_pixmap_encode(pm, PIXCACHE_IMAGE_PNG, 0, NULL, &len));
    expect(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(len == 0);
    uint8_t *bytes = NULL;
    CHECK(!pixcache_pixmap_encode(pm, PIXCACHE_IMAGE_PNG, 0, &bytes, NULL));
    expect(PIXCACHE_RESULT_NULL_ARGUMENT);
    /* Other formats ignore the quality. */
    CHECK(pixcache_pixmap_encode(pm, PIXCACHE_IMAGE_PNG, 500, &bytes, &len));
    /* Freeing keeps the last error. */
    pixcache_set_error(PIXCACHE_RESULT_IO, "kept");
    pixcache_bytes_free(bytes, len);
    pixcache_bytes_free(NULL, 0);
    expect(PIXCACHE_RESULT_IO);
    pixcache_pixmap_free(pm);
}

/* ---- atomic saves ------------------------------------------------------------------------- */

static void make_temp_dir(char *dir, size_t size) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/pixcache-encode-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(text, 1, strlen(text), f) == strlen(text));
    CHECK(fclose(f) == 0);
}

static int has_content(const char *path, const char *text) {
    char buf[64] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

static size_t entries(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) ++n;
    closedir(d);
    return n;
}

static void test_atomic_save(void) {
    printf("/encode/atomic_save\n");
    char dir[512], path[600];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/image.jpg", dir);
    write_file(path, "old content");

    /* An image the format cannot hold: the old file stays, nothing else appears. */
    PixcachePixmap *wide = pixcache_pixmap_new(70000, 1, PIXCACHE_FORMAT_RGB888);
    CHECK(!pixcache_pixmap_save(wide, path));
    expect(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(!pixcache_pixmap_save_as(wide, path, PIXCACHE_IMAGE_JPEG, 80));
    expect(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(has_content(path, "old content") && entries(dir) == 1);
    pixcache_pixmap_free(wide);

    /* A write that fails half way: a child whose file size limit is below the image's size. */
    PixcachePixmap *noisy = pattern(128, 128, PIXCACHE_FORMAT_RGBA8888);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {.rlim_cur = 1024, .rlim_max = RLIM_INFINITY};
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(2);
        int ok = pixcache_pixmap_save(noisy, path);
        _exit(ok ? 3 : pixcache_last_result() == PIXCACHE_RESULT_IO ? 0 : 4);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(has_content(path, "old content") && entries(dir) == 1);

    /* A read-only directory (root writes anyway, so only checked for others). */
    if (geteuid() != 0) {
        CHECK(chmod(dir, 0555) == 0);
        CHECK(!pixcache_pixmap_save(noisy, path));
        expect(PIXCACHE_RESULT_IO);
        CHECK(chmod(dir, 0755) == 0);
        CHECK(has_content(path, "old content") && entries(dir) == 1);
    } else {
        printf("  (read-only directory case skipped: running as root)\n");
    }

    /* Success replaces it, keeping the old file's mode. */
    CHECK(chmod(path, 0640) == 0);
    CHECK(pixcache_pixmap_save(noisy, path));
    expect(PIXCACHE_RESULT_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
    CHECK(entries(dir) == 1);
    PixcachePixmap *back = pixcache_pixmap_load(path);
    CHECK(back != NULL && pixcache_pixmap_width(back) == 128);
    pixcache_pixmap_free(back);
    CHECK(unlink(path) == 0);

    /* save_as names the format; the extension does not matter. Non-UTF-8 names work. */
    snprintf(path, sizeof path, "%s/\xff\xfe-bild.dat", dir);
    CHECK(pixcache_pixmap_save_as(noisy, path, PIXCACHE_IMAGE_WEBP, 0));
    expect(PIXCACHE_RESULT_OK);
    back = pixcache_pixmap_load(path);
    CHECK(back != NULL && same_pixels(back, noisy));
    pixcache_pixmap_free(back);
    CHECK(unlink(path) == 0);
    snprintf(path, sizeof path, "%s/\xc3\x28.png", dir);
    CHECK(pixcache_pixmap_save(noisy, path));
    back = pixcache_pixmap_load(path);
    CHECK(back != NULL && same_pixels(back, noisy));
    pixcache_pixmap_free(back);
    CHECK(unlink(path) == 0);
    /* .webp by extension. */
    snprintf(path, sizeof path, "%s/x.WebP", dir);
    CHECK(pixcache_pixmap_save(noisy, path));
    back = pixcache_pixmap_load(path);
    CHECK(back != NULL && same_pixels(back, noisy));
    pixcache_pixmap_free(back);
    CHECK(unlink(path) == 0);
    /* Formats save_as cannot write; NULLs. */
    CHECK(!pixcache_pixmap_save_as(noisy, path, PIXCACHE_IMAGE_GIF, 0));
    expect(PIXCACHE_RESULT_UNSUPPORTED);
    CHECK(!pixcache_pixmap_save_as(noisy, path, 42, 0));
    expect(PIXCACHE_RESULT_INVALID_ARGUMENT);
    CHECK(!pixcache_pixmap_save_as(noisy, NULL, PIXCACHE_IMAGE_PNG, 0));
    expect(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(!pixcache_pixmap_save_as(NULL, path, PIXCACHE_IMAGE_PNG, 0));
    expect(PIXCACHE_RESULT_NULL_ARGUMENT);
    CHECK(entries(dir) == 0);
    pixcache_pixmap_free(noisy);
    CHECK(rmdir(dir) == 0);
}

int main(void) {
    test_lossless();
    test_jpeg();
    test_errors();
    test_atomic_save();
    CHECK(pixcache_live_pixmaps() == 0);
    printf("test_encode: %d checks passed\n", checks);
    return 0;
}

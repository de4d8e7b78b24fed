/* test_formats.c: every raster format converts to every other through the C API, byte for byte.
 *
 * The expected bytes come from this file's own model of the rules documented on PixcacheFormat
 * in pixcache.h: the byte order of each format is written out below (not asked of pixcache),
 * premultiplying is Qt's qPremultiply (round to nearest, computed here another way, but
 * one lower for the 24 (colour, alpha) pairs Qt 6 rounds down, listed below), unpremultiplying
 * rounds to nearest, halves up; formats without alpha drop it from the straight colour; grey is
 * qGray; the X byte of BGRX8888 is written 0xFF and ignored on reading.
 *
 * Source pixels: colours 0, 1, 254, 255 with alphas 0, 1, 127, 255, and a pair Qt rounds down
 * (229 at alpha 152); for premultiplied formats colours are clamped to alpha (what a straight
 * pixel premultiplies to), for BGRX8888 the X byte is anything but 0xFF. Also: the codes are
 * 1-4 and 6-8, depth 32 for the new formats (cost as Qt's), and 0, 5, 9 are refused.
 */
#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pixcache.h"

typedef struct Layout {
    PixcacheFormat code;
    const char *name;
    int bpp;
    int r, g, b, a; /* byte index, -1: not stored */
    bool premultiplied;
    bool gray;
} Layout;

static const Layout FORMATS[] = {
    {PIXCACHE_FORMAT_RGBA8888, "RGBA8888", 4, 0, 1, 2, 3, false, false},
    {PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED, "BGRA8888_PREMULTIPLIED", 4, 2, 1, 0, 3, true, false},
    {PIXCACHE_FORMAT_RGB888, "RGB888", 3, 0, 1, 2, -1, false, false},
    {PIXCACHE_FORMAT_GRAY8, "GRAY8", 1, -1, -1, -1, -1, false, true},
    {PIXCACHE_FORMAT_BGRA8888, "BGRA8888", 4, 2, 1, 0, 3, false, false},
    {PIXCACHE_FORMAT_BGRX8888, "BGRX8888", 4, 2, 1, 0, -1, false, false},
    {PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED, "RGBA8888_PREMULTIPLIED", 4, 0, 1, 2, 3, true, false},
};
#define NFORMATS (sizeof FORMATS / sizeof FORMATS[0])

/* Where Qt 6's qPremultiply gives one less than round(c * a / 255): (c, a). */
static const uint8_t QT_ROUNDS_DOWN[24][2] = {
    {229, 152}, {212, 169}, {241, 173}, {196, 188}, {253, 191}, {232, 194}, {188, 196}, {244, 197},
    {236, 208}, {169, 212}, {227, 214}, {251, 223}, {233, 226}, {214, 227}, {152, 229}, {194, 232},
    {226, 233}, {208, 236}, {247, 239}, {173, 241}, {197, 244}, {239, 247}, {223, 251}, {191, 253},
};

static uint8_t premul(uint8_t c, uint8_t a) {
    int v = (2 * c * a + 255) / 510; /* c * a / 255 rounded, halves up */
    for (size_t i = 0; i < 24; i++)
        if (QT_ROUNDS_DOWN[i][0] == c && QT_ROUNDS_DOWN[i][1] == a) v -= 1;
    return (uint8_t)v;
}

static uint8_t unpremul(uint8_t c, uint8_t a) {
    if (a == 0) return 0;
    int v = (2 * c * 255 + a) / (2 * a); /* c * 255 / a rounded, halves up */
    return (uint8_t)(v > 255 ? 255 : v);
}

static uint8_t qgray(uint8_t r, uint8_t g, uint8_t b) { return (uint8_t)((r * 11 + g * 16 + b * 5) / 32); }

/* Reads a stored pixel: its colour as stored (premultiplied or not) and alpha (255 if none). */
static void stored(const Layout *f, const uint8_t *px, uint8_t out[4]) {
    if (f->gray) {
        out[0] = out[1] = out[2] = px[0];
        out[3] = 255;
        return;
    }
    out[0] = px[f->r];
    out[1] = px[f->g];
    out[2] = px[f->b];
    out[3] = f->a >= 0 ? px[f->a] : 255;
}

/* What converting one pixel of `from` to `to` must give. */
static void expected(const Layout *from, const Layout *to, const uint8_t *px, uint8_t *out) {
    uint8_t c[4];
    stored(from, px, c);
    if (from->premultiplied && !to->premultiplied)
        for (int k = 0; k < 3; k++) c[k] = unpremul(c[k], c[3]);
    if (!from->premultiplied && to->premultiplied)
        for (int k = 0; k < 3; k++) c[k] = premul(c[k], c[3]);
    if (to->gray) {
        out[0] = qgray(c[0], c[1], c[2]);
        return;
    }
    out[to->r] = c[0];
    out[to->g] = c[1];
    out[to->b] = c[2];
    if (to->a >= 0) out[to->a] = c[3];
    else if (to->bpp == 4) out[3] = 0xFF;
}

enum { MAX_PIXELS = 300, WIDTH = 7 };

/* Fills `pixels` (bpp bytes each) with the source pixels of `f`; returns how many. */
static size_t sources(const Layout *f, uint8_t pixels[][4]) {
    static const uint8_t colours[] = {0, 1, 254, 255};
    static const uint8_t alphas[] = {0, 1, 127, 255};
    size_t n = 0;
    if (f->gray) {
        static const uint8_t greys[] = {0, 1, 127, 128, 254, 255};
        for (size_t i = 0; i < sizeof greys; i++) pixels[n++][0] = greys[i];
        return n;
    }
    for (size_t ai = 0; ai < 4; ai++) {
        uint8_t a = alphas[ai];
        if (f->a < 0 && a != 255) continue;
        for (size_t ri = 0; ri < 4; ri++)
            for (size_t gi = 0; gi < 4; gi++)
                for (size_t bi = 0; bi < 4; bi++) {
                    uint8_t rgb[3] = {colours[ri], colours[gi], colours[bi]};
                    uint8_t *px = pixels[n++];
                    for (int k = 0; k < 3; k++)
                        if (f->premultiplied && rgb[k] > a) rgb[k] = a;
                    px[f->r] = rgb[0];
                    px[f->g] = rgb[1];
                    px[f->b] = rgb[2];
                    if (f->a >= 0) px[f->a] = a;
                    else if (f->bpp == 4) px[3] = (uint8_t)(ri * 16 + gi * 4 + bi); /* X: not 0xFF */
                }
    }
    /* 229 at alpha 152: Qt premultiplies it to 136, not 137 (136.502). */
    uint8_t *px = pixels[n++];
    if (f->a >= 0) {
        px[f->r] = f->premultiplied ? 136 : 229;
        px[f->g] = f->premultiplied ? 0 : 1;
        px[f->b] = f->premultiplied ? 152 : 255;
        px[f->a] = 152;
    } else {
        px[f->r] = 229, px[f->g] = 1, px[f->b] = 255;
        if (f->bpp == 4) px[3] = 0;
    }
    return n;
}

static int failures = 0;

static void check_pair(const Layout *from, const Layout *to) {
    static uint8_t pixels[MAX_PIXELS][4];
    size_t n = sources(from, pixels);
    assert(n <= MAX_PIXELS);
    uint32_t height = (uint32_t)((n + WIDTH - 1) / WIDTH);
    PixcachePixmap *src = pixcache_pixmap_new(WIDTH, height, from->code);
    assert(src);
    size_t stride = pixcache_pixmap_stride(src);
    assert(stride == (size_t)((WIDTH * from->bpp + 3) & ~3));
    uint8_t *bytes = pixcache_pixmap_pixels_mut(src);
    assert(bytes);
    for (size_t i = 0; i < n; i++)
        memcpy(bytes + (i / WIDTH) * stride + (i % WIDTH) * (size_t)from->bpp, pixels[i], (size_t)from->bpp);

    PixcachePixmap *out = pixcache_pixmap_convert(src, to->code);
    assert(out);
    assert(pixcache_pixmap_format(out) == to->code);
    assert(pixcache_pixmap_width(out) == WIDTH && pixcache_pixmap_height(out) == height);
    assert(pixcache_pixmap_depth(out) == (uint32_t)to->bpp * 8);
    size_t ostride = pixcache_pixmap_stride(out);
    assert(ostride == (size_t)((WIDTH * to->bpp + 3) & ~3));
    const uint8_t *got = pixcache_pixmap_pixels(out);
    assert(got);
    for (size_t i = 0; i < n; i++) {
        uint8_t want[4];
        if (from == to) memcpy(want, pixels[i], 4);
        else expected(from, to, pixels[i], want);
        const uint8_t *g = got + (i / WIDTH) * ostride + (i % WIDTH) * (size_t)to->bpp;
        if (memcmp(g, want, (size_t)to->bpp) != 0) {
            if (failures++ < 20) {
                printf("MISMATCH %s -> %s, source", from->name, to->name);
                for (int k = 0; k < from->bpp; k++) printf(" %d", pixels[i][k]);
                printf(": got");
                for (int k = 0; k < to->bpp; k++) printf(" %d", g[k]);
                printf(", want");
                for (int k = 0; k < to->bpp; k++) printf(" %d", want[k]);
                printf("\n");
            }
        }
    }
    if (from == to) assert(pixcache_pixmap_cache_key(out) == pixcache_pixmap_cache_key(src));
    pixcache_pixmap_free(out);
    pixcache_pixmap_free(src);
}

int main(void) {
    /* The codes: appended, none renumbered. */
    assert(PIXCACHE_FORMAT_RGBA8888 == 1 && PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED == 2);
    assert(PIXCACHE_FORMAT_RGB888 == 3 && PIXCACHE_FORMAT_GRAY8 == 4 && PIXCACHE_FORMAT_FOREIGN == 5);
    assert(PIXCACHE_FORMAT_BGRA8888 == 6 && PIXCACHE_FORMAT_BGRX8888 == 7);
    assert(PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED == 8);
    const PixcacheFormat bad[] = {PIXCACHE_FORMAT_INVALID, PIXCACHE_FORMAT_FOREIGN, 9, 0xFFFFFFFFu};
    PixcachePixmap *one = pixcache_pixmap_new(1, 1, PIXCACHE_FORMAT_RGBA8888);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert(pixcache_pixmap_new(2, 2, bad[i]) == NULL);
        assert(pixcache_last_result() == PIXCACHE_RESULT_INVALID_ARGUMENT);
        assert(pixcache_pixmap_convert(one, bad[i]) == NULL);
        assert(pixcache_last_result() == PIXCACHE_RESULT_INVALID_ARGUMENT);
    }
    pixcache_pixmap_free(one);

    /* 32-bit formats cost as Qt's 32-bit pixmaps: 64 x 64 x 4 bytes = 16 KB. */
    PixcacheCache *cache = pixcache_cache_new(1024);
    for (size_t i = 0; i < NFORMATS; i++) {
        PixcachePixmap *pm = pixcache_pixmap_new(64, 64, FORMATS[i].code);
        assert(pm && pixcache_pixmap_format(pm) == FORMATS[i].code);
        assert(pixcache_pixmap_depth(pm) == (uint32_t)FORMATS[i].bpp * 8);
        pixcache_clear(cache);
        assert(pixcache_insert(cache, "pm", pm));
        assert(pixcache_total_used(cache) == 64 * 64 * FORMATS[i].bpp / 1024);
        pixcache_pixmap_free(pm);
    }
    pixcache_clear(cache);
    pixcache_cache_free(cache);

    for (size_t i = 0; i < NFORMATS; i++)
        for (size_t j = 0; j < NFORMATS; j++) check_pair(&FORMATS[i], &FORMATS[j]);
    if (failures) {
        printf("%d pixels converted wrongly\n", failures);
        return 1;
    }
    printf("test_formats: %zu x %zu format pairs converted as documented\n", NFORMATS, NFORMATS);
    return 0;
}

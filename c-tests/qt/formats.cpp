// formats.cpp: pixcache's pixel formats and conversions against Qt's own (QImage).
//
// For every (colour, alpha) pair of a grid (colours 0, 1, 37, 128, 200, 254, 255; alphas 0, 1,
// 2, 37, 127, 128, 200, 254, 255) the same straight RGBA pixels go through
// pixcache_pixmap_convert and through QImage::convertToFormat from Format_RGBA8888, to every
// format both have; the bytes must be equal:
//   BGRA8888 = Format_ARGB32, BGRA8888_PREMULTIPLIED = Format_ARGB32_Premultiplied,
//   BGRX8888 = Format_RGB32 (X as Qt writes it, 0xFF), RGB888 = Format_RGB888,
//   RGBA8888_PREMULTIPLIED = Format_RGBA8888_Premultiplied, RGBA8888 itself.
// Also: every one-byte premultiplied value Qt makes (all 65,536 colour x alpha pairs through
// Format_ARGB32 -> Format_ARGB32_Premultiplied) equals pixcache's. Exit status 0 when all hold.
#include <QImage>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "pixcache.h"

namespace {
int failures = 0;

struct Pair {
    PixcacheFormat ours;
    QImage::Format qt;
    const char *name;
};

// A w x 1 pixmap of straight RGBA bytes.
PixcachePixmap *rgba(const std::vector<uint8_t> &bytes, uint32_t w) {
    PixcachePixmap *pm = pixcache_pixmap_new(w, 1, PIXCACHE_FORMAT_RGBA8888);
    std::memcpy(pixcache_pixmap_pixels_mut(pm), bytes.data(), bytes.size());
    return pm;
}
}  // namespace

int main() {
    const uint8_t colours[] = {0, 1, 37, 128, 200, 254, 255};
    const uint8_t alphas[] = {0, 1, 2, 37, 127, 128, 200, 254, 255};
    std::vector<uint8_t> px;
    for (uint8_t r : colours)
        for (uint8_t g : colours)
            for (uint8_t a : alphas) px.insert(px.end(), {r, g, uint8_t(255 - r), a});
    const uint32_t w = uint32_t(px.size() / 4);
    QImage source(px.data(), int(w), 1, int(w * 4), QImage::Format_RGBA8888);
    PixcachePixmap *src = rgba(px, w);

    const Pair pairs[] = {
        {PIXCACHE_FORMAT_RGBA8888, QImage::Format_RGBA8888, "RGBA8888"},
        {PIXCACHE_FORMAT_BGRA8888, QImage::Format_ARGB32, "BGRA8888 / ARGB32"},
        {PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED, QImage::Format_ARGB32_Premultiplied,
         "BGRA8888_PREMULTIPLIED / ARGB32_Premultiplied"},
        {PIXCACHE_FORMAT_BGRX8888, QImage::Format_RGB32, "BGRX8888 / RGB32"},
        {PIXCACHE_FORMAT_RGB888, QImage::Format_RGB888, "RGB888"},
        {PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED, QImage::Format_RGBA8888_Premultiplied,
         "RGBA8888_PREMULTIPLIED"},
    };
    for (const Pair &p : pairs) {
        const QImage theirs = source.convertToFormat(p.qt);
        PixcachePixmap *ours = pixcache_pixmap_convert(src, p.ours);
        if (!ours) {
            std::fprintf(stderr, "%s: %s\n", p.name, pixcache_last_error());
            return 1;
        }
        const size_t row = size_t(theirs.bytesPerLine()) < pixcache_pixmap_stride(ours)
                               ? size_t(theirs.bytesPerLine())
                               : pixcache_pixmap_stride(ours);
        const size_t used = size_t(w) * size_t(theirs.depth() / 8);
        const uint8_t *a = pixcache_pixmap_pixels(ours), *b = theirs.constBits();
        int differ = 0;
        for (size_t i = 0; i < used && i < row; ++i) {
            if (a[i] != b[i] && differ++ < 3)
                std::fprintf(stderr, "%s: byte %zu (pixel %zu): pixcache %u, Qt %u\n", p.name, i,
                             i / (theirs.depth() / 8), a[i], b[i]);
        }
        std::printf("%-48s %s (%u pixels)\n", p.name, differ ? "DIFFERS" : "same bytes as Qt", w);
        failures += differ != 0;
        pixcache_pixmap_free(ours);
    }

    // Every premultiplied value: colour c at alpha a, for all 65,536 pairs.
    std::vector<uint8_t> all;
    for (int a = 0; a < 256; ++a)
        for (int c = 0; c < 256; ++c) all.insert(all.end(), {uint8_t(c), uint8_t(c), uint8_t(c), uint8_t(a)});
    QImage every(all.data(), 256 * 256, 1, 256 * 256 * 4, QImage::Format_RGBA8888);
    const QImage qtPremul = every.convertToFormat(QImage::Format_RGBA8888_Premultiplied);
    PixcachePixmap *allPm = rgba(all, 256 * 256);
    PixcachePixmap *ourPremul = pixcache_pixmap_convert(allPm, PIXCACHE_FORMAT_RGBA8888_PREMULTIPLIED);
    int premulDiffer = ourPremul ? std::memcmp(pixcache_pixmap_pixels(ourPremul), qtPremul.constBits(), all.size()) : 1;
    std::printf("premultiplying all 65,536 colour x alpha pairs: %s\n", premulDiffer ? "DIFFERS from Qt" : "same as Qt");
    failures += premulDiffer != 0;
    pixcache_pixmap_free(ourPremul);
    pixcache_pixmap_free(allPm);
    pixcache_pixmap_free(src);
    return failures ? 1 : 0;
}

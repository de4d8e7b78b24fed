/* contact_sheet.c: the find-or-load idiom from several threads, then a contact sheet of what the
 * cache kept.
 *
 *   contact_sheet [IMAGE_DIR [OUTPUT.png]]
 *
 * Without IMAGE_DIR it first generates 60 images (PNG, BMP and JPEG) in a temporary directory.
 * Four threads then walk the images three times each, in different orders, asking the cache for
 * each one with pixcache_find_or_insert_with (the producer decodes the file): every image is
 * decoded once however many threads want it at the same moment, and again only if the cache
 * evicted it. The cache's limit (PIXCACHE_DEMO_LIMIT_KB, default 1024 KB) is smaller than the
 * images, so some are evicted. It prints hits, misses, decodes, evictions and cost, then draws a
 * thumbnail of every image still cached into OUTPUT.png (default: contact-sheet.png).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixcache.h>

#define MAX_FILES 512
#define THREADS 4
#define CELL_W 96
#define CELL_H 72
#define COLS 10

static char *files[MAX_FILES];
static int nfiles;
static PixcacheCache *cache;
static int decodes;
static pthread_mutex_t decodes_lock = PTHREAD_MUTEX_INITIALIZER;

static int has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    const char *exts[] = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".ico"};
    for (size_t i = 0; i < sizeof exts / sizeof *exts; ++i)
        if (strcasecmp(dot, exts[i]) == 0) return 1;
    return 0;
}

static int generate(const char *dir) {
    for (int i = 0; i < 60; ++i) {
        uint32_t w = 120 + (uint32_t)(i % 5) * 20, h = 80 + (uint32_t)(i % 3) * 20;
        PixcachePixmap *pm = pixcache_pixmap_new(w, h, PIXCACHE_FORMAT_RGBA8888);
        if (!pm) return -1;
        uint8_t *px = pixcache_pixmap_pixels_mut(pm);
        size_t stride = pixcache_pixmap_stride(pm);
        for (uint32_t y = 0; y < h; ++y)
            for (uint32_t x = 0; x < w; ++x) {
                uint8_t *p = px + y * stride + x * 4;
                p[0] = (uint8_t)(i * 37 + x);
                p[1] = (uint8_t)(i * 91 + y * 2);
                p[2] = (uint8_t)(((x / 10 + y / 10 + (uint32_t)i) % 2) * 200);
                p[3] = 255;
            }
        char path[4096];
        const char *ext = i % 3 == 0 ? "png" : i % 3 == 1 ? "bmp" : "jpg";
        snprintf(path, sizeof path, "%s/generated-%02d.%s", dir, i, ext);
        int ok = pixcache_pixmap_save(pm, path);
        pixcache_pixmap_free(pm);
        if (!ok) {
            fprintf(stderr, "cannot write %s: %s\n", path, pixcache_last_error());
            return -1;
        }
    }
    return 0;
}

static int list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) && nfiles < MAX_FILES) {
        if (!has_image_extension(e->d_name)) continue;
        if (asprintf(&files[nfiles], "%s/%s", dir, e->d_name) < 0) break;
        ++nfiles;
    }
    closedir(d);
    return 0;
}

/* The producer: decode the file whose path is the key. */
static bool decode(void *user_data, PixcachePixmap *out) {
    PixcachePixmap *pm = pixcache_pixmap_load((const char *)user_data);
    if (!pm) return false; /* pixcache_last_error() says why; the caller's error includes it */
    pixcache_pixmap_assign(out, pm);
    pixcache_pixmap_free(pm);
    pthread_mutex_lock(&decodes_lock);
    ++decodes;
    pthread_mutex_unlock(&decodes_lock);
    return true;
}

static void *worker(void *arg) {
    unsigned seed = (unsigned)(size_t)arg * 2654435761u;
    PixcachePixmap *pm = pixcache_pixmap_new_null();
    for (int pass = 0; pass < 3; ++pass)
        for (int i = 0; i < nfiles; ++i) {
            seed = seed * 1103515245u + 12345u;
            int f = (int)((seed >> 8) % (unsigned)nfiles); /* a random walk over the files */
            if (!pixcache_find_or_insert_with(cache, files[f], decode, files[f], pm))
                fprintf(stderr, "%s: %s\n", files[f], pixcache_last_error());
        }
    pixcache_pixmap_free(pm);
    return NULL;
}

/* Draws `pm` scaled (nearest neighbour) into the cell at (cx, cy) of the RGBA sheet. */
static void blit(PixcachePixmap *sheet, const PixcachePixmap *pm, int cell) {
    PixcachePixmap *rgba = pixcache_pixmap_convert(pm, PIXCACHE_FORMAT_RGBA8888);
    if (!rgba) return;
    uint32_t w = pixcache_pixmap_width(rgba), h = pixcache_pixmap_height(rgba);
    const uint8_t *src = pixcache_pixmap_pixels(rgba);
    size_t sstride = pixcache_pixmap_stride(rgba), dstride = pixcache_pixmap_stride(sheet);
    uint8_t *dst = pixcache_pixmap_pixels_mut(sheet);
    uint32_t ox = (uint32_t)(cell % COLS) * CELL_W + 4, oy = (uint32_t)(cell / COLS) * CELL_H + 4;
    for (uint32_t y = 0; y < CELL_H - 8; ++y)
        for (uint32_t x = 0; x < CELL_W - 8; ++x) {
            const uint8_t *s = src + (y * h / (CELL_H - 8)) * sstride + (x * w / (CELL_W - 8)) * 4;
            memcpy(dst + (oy + y) * dstride + (ox + x) * 4, s, 4);
        }
    pixcache_pixmap_free(rgba);
}

int main(int argc, char **argv) {
    char tmpdir[] = "/tmp/pixcache-demo-XXXXXX";
    const char *dir = argc > 1 && argv[1][0] ? argv[1] : NULL;
    const char *output = argc > 2 ? argv[2] : "contact-sheet.png";
    if (!dir) {
        if (!mkdtemp(tmpdir) || generate(tmpdir) != 0) return 1;
        dir = tmpdir;
        printf("generated 60 images in %s\n", dir);
    }
    if (list(dir) != 0 || nfiles == 0) {
        fprintf(stderr, "no images in %s\n", dir);
        return 1;
    }
    const char *limit = getenv("PIXCACHE_DEMO_LIMIT_KB");
    cache = pixcache_cache_new(limit ? atoi(limit) : 1024);

    pthread_t threads[THREADS];
    for (size_t t = 0; t < THREADS; ++t) pthread_create(&threads[t], NULL, worker, (void *)(t + 1));
    for (size_t t = 0; t < THREADS; ++t) pthread_join(threads[t], NULL);

    PixcacheStats st = pixcache_stats(cache);
    printf("%d images, %d threads x 3 passes = %d requests\n", nfiles, THREADS, THREADS * 3 * nfiles);
    printf("hits %llu, misses %llu, decodes %d (each miss decoded once, shared by waiters), evictions %llu\n",
           (unsigned long long)st.hits, (unsigned long long)st.misses, decodes,
           (unsigned long long)st.evictions);
    printf("cached: %zu images, %d KB of %d KB\n", st.entries, st.total_kb, st.limit_kb);

    /* Take a share of every image still cached (shares: no pixels are copied). */
    static PixcachePixmap *cached[MAX_FILES];
    int drawn = 0;
    for (int i = 0; i < nfiles; ++i) {
        PixcachePixmap *pm = pixcache_pixmap_new_null();
        if (pixcache_find(cache, files[i], pm)) cached[drawn++] = pm;
        else pixcache_pixmap_free(pm);
    }
    int rows = drawn > 0 ? (drawn + COLS - 1) / COLS : 1;
    PixcachePixmap *sheet = pixcache_pixmap_new(COLS * CELL_W, (uint32_t)rows * CELL_H, PIXCACHE_FORMAT_RGBA8888);
    uint8_t *bg = pixcache_pixmap_pixels_mut(sheet);
    for (size_t i = 0; i < pixcache_pixmap_stride(sheet) * pixcache_pixmap_height(sheet); i += 4)
        memcpy(bg + i, (const uint8_t[4]){40, 40, 48, 255}, 4);
    for (int i = 0; i < drawn; ++i) {
        blit(sheet, cached[i], i);
        pixcache_pixmap_free(cached[i]);
    }
    if (!pixcache_pixmap_save(sheet, output)) {
        fprintf(stderr, "cannot write %s: %s\n", output, pixcache_last_error());
        return 1;
    }
    printf("contact sheet of the %d cached images: %s\n", drawn, output);

    pixcache_pixmap_free(sheet);
    pixcache_cache_free(cache);
    for (int i = 0; i < nfiles; ++i) {
        if (dir == tmpdir) remove(files[i]);
        free(files[i]);
    }
    if (dir == tmpdir) remove(tmpdir);
    return drawn > 0 ? 0 : 1;
}

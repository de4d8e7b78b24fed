/* oom.c: allocation failure. Run under an address-space limit (scripts/test-oom.sh runs it as
 * `ulimit -v 1500000; oom`): pixmaps and detach copies the allocator refuses fail with
 * PIXCACHE_RESULT_OUT_OF_MEMORY and change nothing, and with memory nearly exhausted every call
 * either works or reports OUT_OF_MEMORY — the process never aborts. */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixcache.h>

static int checks;
#define CHECK(c) (assert(c), ++checks)

/* Foreign pixmaps handed to wrapped inserts, and how many releases ran (each exactly once,
 * whether the insert worked or the allocator refused it). */
static int wrapped, released;
static void count_release(void *user_data) {
    CHECK(user_data == &wrapped);
    ++released;
}

int main(void) {
    /* Alive throughout: a count taken down once too often would show as 0 at the end, which a
     * baseline of 0 could not tell from the right answer. */
    PixcachePixmap *sentinel = pixcache_pixmap_new(1, 1, PIXCACHE_FORMAT_GRAY8);
    CHECK(sentinel != NULL && pixcache_live_pixmaps() == 1);
    /* 3.6 GB: beyond the address-space limit. */
    CHECK(pixcache_pixmap_new(30000, 30000, PIXCACHE_FORMAT_RGBA8888) == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OUT_OF_MEMORY);
    printf("30000x30000 RGBA: %s\n", pixcache_last_error());

    /* 768 MB fits once; detaching a shared copy needs a second one, which does not. */
    PixcachePixmap *big = pixcache_pixmap_new(16384, 12288, PIXCACHE_FORMAT_RGBA8888);
    CHECK(big != NULL);
    PixcachePixmap *copy = pixcache_pixmap_clone(big);
    CHECK(pixcache_pixmap_pixels_mut(copy) == NULL);
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OUT_OF_MEMORY);
    printf("detach of a 768 MB shared pixmap: %s\n", pixcache_last_error());
    CHECK(!pixcache_pixmap_is_detached(copy)); /* unchanged: still shares */
    CHECK(pixcache_pixmap_cache_key(copy) == pixcache_pixmap_cache_key(big));

    /* The cache still works, and caches the big pixmap without copying it. */
    PixcacheCache *cache = pixcache_cache_new(INT32_MAX);
    CHECK(cache != NULL);
    CHECK(pixcache_insert(cache, "big", big));

    /* Exhaust the rest of the address space with 4 MB pixmaps, then keep using the library. */
    enum { MAX = 4096 };
    static PixcachePixmap *hog[MAX];
    int n = 0;
    while (n < MAX && (hog[n] = pixcache_pixmap_new(1024, 1024, PIXCACHE_FORMAT_RGBA8888)) != NULL) ++n;
    CHECK(pixcache_last_result() == PIXCACHE_RESULT_OUT_OF_MEMORY);
    int ok = 0, oom = 0;
    char key[32];
    for (int i = 0; i < 20000; ++i) {
        snprintf(key, sizeof key, "k%d", i);
        PixcachePixmap *pm = pixcache_pixmap_new(8, 8, PIXCACHE_FORMAT_GRAY8);
        if (!pm) {
            CHECK(pixcache_last_result() == PIXCACHE_RESULT_OUT_OF_MEMORY);
            ++oom;
            continue;
        }
        if (pixcache_insert(cache, key, pm)) ++ok;
        else { CHECK(pixcache_last_result() == PIXCACHE_RESULT_OUT_OF_MEMORY); ++oom; }
        pixcache_pixmap_free(pm);
        /* A foreign pixmap made inside the insert: its shared block may be what is refused. */
        int before = released;
        ++wrapped;
        snprintf(key, sizeof key, "w%d", i);
        if (pixcache_insert_wrapped_n(cache, key, strlen(key), 8, 8, 32, &wrapped, count_release)) {
            ++ok;
        } else {
            CHECK(pixcache_last_result() == PIXCACHE_RESULT_OUT_OF_MEMORY);
            CHECK(released == before + 1); /* released at once, exactly once */
            ++oom;
        }
    }
    printf("with memory exhausted (%d x 4 MB held): %d inserts worked, %d reported out of memory\n", n, ok, oom);

    /* Give the memory back: everything works again. */
    for (int i = 0; i < n; ++i) pixcache_pixmap_free(hog[i]);
    pixcache_clear(cache);
    PixcachePixmap *pm = pixcache_pixmap_new(1024, 1024, PIXCACHE_FORMAT_RGBA8888);
    CHECK(pm != NULL && pixcache_insert(cache, "after", pm));
    pixcache_pixmap_free(pm);
    pixcache_pixmap_free(copy);
    pixcache_pixmap_free(big);
    pixcache_cache_free(cache);
    CHECK(released == wrapped);
    CHECK(pixcache_live_pixmaps() == 1);
    pixcache_pixmap_free(sentinel);
    CHECK(pixcache_live_pixmaps() == 0);
    printf("%d checks passed\n", checks);
    return 0;
}

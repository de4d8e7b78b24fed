/* memory.c: bytes of overhead per cache entry. Inserts 1,000,000 tiny entries that all share one
 * 1x1 pixmap (so pixels cost nothing), into a cache with an INT_MAX limit, and reads the resident
 * set size before and after. Prints bytes per entry, and that minus the key's length, for string
 * keys ("k0000000", 8 bytes) and for generated keys.
 *
 * Each measurement runs in its own child process: the allocator's state after one (freed arrays,
 * a raised mmap threshold) would otherwise change what the next one's resident size counts. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pixcache.h>

#define N 1000000

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) return -1;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static int string_keys(void) {
    PixcachePixmap *pm = pixcache_pixmap_new(1, 1, PIXCACHE_FORMAT_GRAY8);
    PixcacheCache *c = pixcache_cache_new(INT_MAX);
    char key[16];
    long before = rss_bytes();
    for (int i = 0; i < N; ++i) {
        snprintf(key, sizeof key, "k%07d", i);
        if (!pixcache_insert(c, key, pm)) return 1;
    }
    long after = rss_bytes();
    double per = (double)(after - before) / N;
    printf("string keys:    %d entries, %.1f bytes/entry, %.1f bytes/entry beyond the 8-byte key\n", N, per, per - 8);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
    return 0;
}

static int generated_keys(void) {
    PixcachePixmap *pm = pixcache_pixmap_new(1, 1, PIXCACHE_FORMAT_GRAY8);
    PixcacheCache *c = pixcache_cache_new(INT_MAX);
    PixcacheKey *keys = malloc(sizeof(PixcacheKey) * N); /* the caller's own storage, not counted */
    if (!keys) return 1;
    for (int i = 0; i < N; ++i) keys[i].id = 0;
    long before = rss_bytes();
    for (int i = 0; i < N; ++i) keys[i] = pixcache_insert_key(c, pm);
    long after = rss_bytes();
    printf("generated keys: %d entries, %.1f bytes/entry\n", N, (double)(after - before) / N);
    free(keys);
    pixcache_cache_free(c);
    pixcache_pixmap_free(pm);
    return 0;
}

static int in_child(int (*measure)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        int failed = measure();
        fflush(stdout);
        _exit(failed);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 1;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    return in_child(string_keys) | in_child(generated_keys);
}

// test_thread_exit.cpp: pixcache called from C++ thread_local destructors at thread exit.
//
// What it tests: a thread_local object constructed *before* the thread's first pixcache call
// (so its destructor runs after pixcache's own thread-locals were destroyed: destructors run in
// reverse order of registration) frees a pixmap, makes a failing call and reads the result code
// from its destructor, as a toolkit's per-thread icon holder would at thread exit. Every call
// must work (or fail cleanly with the right code): no panic, no abort. A second thread does the
// same with the object constructed *after* its first pixcache call (the other order), and must
// also get the message. The main thread checks what each destructor recorded.
//
// What it does not test: calls after the thread's whole TLS is gone (the C library forbids it).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "pixcache.h"

namespace {

std::atomic<int> destructors{0};
std::atomic<int> failures{0};

void check(bool ok, const char *what) {
    if (!ok) {
        std::fprintf(stderr, "test_thread_exit: %s\n", what);
        failures.fetch_add(1);
    }
}

struct Holder {
    PixcachePixmap *pm = nullptr;
    bool expect_message = false;
    ~Holder() {
        pixcache_pixmap_free(pm);  // the last share: frees the pixels
        check(!pixcache_insert(nullptr, "k", nullptr), "insert(NULL cache) succeeded");
        check(pixcache_last_result() == PIXCACHE_RESULT_NULL_ARGUMENT, "wrong result code in a destructor");
        const char *message = pixcache_last_error();
        check(message != nullptr, "NULL message");
        if (expect_message) check(std::strstr(message, "cache") != nullptr, "no message in a destructor");
        PixcachePixmap *fresh = pixcache_pixmap_new(2, 2, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
        check(fresh != nullptr, "pixmap_new failed in a destructor");
        pixcache_pixmap_free(fresh);
        destructors.fetch_add(1);
    }
};

// Function-local, so each is constructed exactly when first reached (GCC constructs all of a
// file's namespace-scope thread_locals together).
Holder &before() {
    thread_local Holder h;  // reached before the first pixcache call of its thread
    return h;
}
Holder &after() {
    thread_local Holder h;  // reached after it
    return h;
}

}  // namespace

int main() {
    std::thread first([] {
        before().pm = nullptr;  // constructs it now
        PixcachePixmap *pm = pixcache_pixmap_new(8, 8, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
        check(pm != nullptr, "pixmap_new failed");
        check(pixcache_insert(pixcache_global(), "thread-exit", pm), "insert failed");
        before().pm = pm;
    });
    first.join();
    std::thread second([] {
        PixcachePixmap *pm = pixcache_pixmap_new(8, 8, PIXCACHE_FORMAT_BGRA8888_PREMULTIPLIED);
        check(pm != nullptr, "pixmap_new failed");
        after().expect_message = true;  // constructs it now, after pixcache's thread-locals
        after().pm = pm;
    });
    second.join();
    if (destructors.load() != 2) std::fprintf(stderr, "destructors: %d\n", destructors.load());
    check(destructors.load() == 2, "a destructor did not run");
    PixcachePixmap *out = pixcache_pixmap_new_null();
    check(pixcache_find(pixcache_global(), "thread-exit", out), "the entry is gone");
    pixcache_pixmap_free(out);
    if (failures.load() != 0) return 1;
    std::printf("test_thread_exit: pixcache calls in thread_local destructors work in both orders\n");
    return 0;
}

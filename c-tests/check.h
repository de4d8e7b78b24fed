/* check.h: the assertions the C tests share. A test declares the counter `checks` (any integer
 * type its threads can increment) before including this; each CHECK counts one check and aborts
 * the test when it fails, and CHECK_EQ first prints both sides. NDEBUG is undefined by the test
 * before <assert.h>, so the checks stay in optimised builds. */
#ifndef PIXCACHE_C_TESTS_CHECK_H
#define PIXCACHE_C_TESTS_CHECK_H

#include <assert.h>
#include <stdio.h>

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
            fprintf(stderr, "%s:%d: %s is %lld, expected %s = %lld\n", __FILE__, __LINE__, #got,   \
                    got_, #want, want_);                                                           \
        }                                                                                          \
        assert(got_ == want_);                                                                     \
    } while (0)

#endif

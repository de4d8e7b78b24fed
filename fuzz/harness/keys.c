/* libFuzzer entry point for fuzz target "keys" (see fuzz/src/lib.rs). */
#include <stddef.h>
#include <stdint.h>
int pixcache_fuzz_keys(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return pixcache_fuzz_keys(data, size); }

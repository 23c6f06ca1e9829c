/*
 * context.c - library-wide settings: version, thread count and seed.
 * Settings are plain process-wide values; set them before training starts.
 */
#include <unistd.h>

#include "internal.h"

static atomic_int num_threads; /* 0: number of online cores */
static _Atomic uint64_t global_seed;

TC_API const char *tc_version(void) {
  return TC_VERSION_STRING;
}

TC_API int tc_version_number(void) {
  return TC_VERSION_NUMBER;
}

TC_API tc_status tc_set_num_threads(int n) {
  if (n < 0 || n > 1024)
    return tc__error(TC_EINVAL,
                     "tc_set_num_threads: n = %d, expected 0 (all cores) to "
                     "1024",
                     n);
  atomic_store(&num_threads, n);
  return TC_OK;
}

int tc__num_threads(void) {
  int n = atomic_load(&num_threads);
  if (n > 0)
    return n;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? (int)(cores > 1024 ? 1024 : cores) : 1;
}

TC_API int tc_get_num_threads(void) {
  return tc__num_threads();
}

TC_API void tc_set_seed(uint64_t seed) {
  atomic_store(&global_seed, seed);
}

TC_API uint64_t tc_get_seed(void) {
  return atomic_load(&global_seed);
}

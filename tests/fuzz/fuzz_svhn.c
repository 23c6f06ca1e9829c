/*
 * fuzz_svhn.c - libFuzzer harness for the SVHN loader: the input is written
 * as a .mat file (MATLAB v4, v5 plain or compressed, or v7.3/HDF5, as
 * libmatio tells them apart) and loaded; an accepted file must give
 * (3,32,32) images with labels 0..9 that all read back. Crashes inside
 * libmatio or libhdf5 (not instrumented) still show up through ASan's
 * interceptors. Build with clang -fsanitize=fuzzer,address.
 */
#include <stdint.h>
#include <stdlib.h>

#include <libtinycnn.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[600];
  fz_write(fz_path(path, "test_32x32.mat"), data, size);
  tc_dataset *ds = NULL;
  if (tc_dataset_load_svhn(&ds, path) != TC_OK)
    return 0;
  int64_t n = tc_dataset_size(ds);
  if (n < 1 || tc_dataset_channels(ds) != 3 || tc_dataset_height(ds) != 32 ||
      tc_dataset_width(ds) != 32 || tc_dataset_num_classes(ds) != 10)
    abort();
  uint8_t px[3072];
  for (int64_t i = 0; i < n; i++) {
    int32_t label = -1;
    if (tc_dataset_get(ds, i, px, sizeof px, &label) != TC_OK || label < 0 ||
        label > 9)
      abort();
  }
  tc_dataset_destroy(ds);
  return 0;
}

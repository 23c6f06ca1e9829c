/*
 * fuzz_cifar.c - libFuzzer harness for the CIFAR-10 binary loader: the
 * input becomes `test_batch.bin` in a scratch folder and is loaded as the
 * test split; an accepted file must give (3,32,32) images with labels in
 * 0..9 for every record. Build with clang -fsanitize=fuzzer,address; a
 * record is 3073 bytes, so run with e.g. -max_len=10000.
 */
#include <stdint.h>
#include <stdlib.h>

#include <libtinycnn.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[600];
  fz_write(fz_path(path, "test_batch.bin"), data, size);
  tc_dataset *ds = NULL;
  if (tc_dataset_load_cifar10(&ds, fz_tmpdir(), 0) != TC_OK)
    return 0;
  int64_t n = tc_dataset_size(ds);
  if (n < 1 || (size_t)n * 3073 != size || tc_dataset_channels(ds) != 3 ||
      tc_dataset_height(ds) != 32 || tc_dataset_width(ds) != 32 ||
      tc_dataset_num_classes(ds) != 10)
    abort();
  uint8_t px[3072];
  for (int64_t i = 0; i < n; i++) {
    int32_t label = -1;
    if (tc_dataset_get(ds, i, px, sizeof px, &label) != TC_OK ||
        label != data[i * 3073] || memcmp(px, data + i * 3073 + 1, 3072))
      abort();
  }
  tc_dataset_destroy(ds);
  return 0;
}

/*
 * fuzz_safetensors.c - libFuzzer harness for the safetensors reader: any
 * byte string is opened as a file image; when it validates, every tensor
 * and metadata entry is inspected and read, so an accepted file must be
 * safe to use in full. Build with clang -fsanitize=fuzzer,address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tc_safetensors *st = NULL;
  if (tc_safetensors_create_from_buffer(&st, data, size) != TC_OK)
    return 0;
  int64_t n = tc_safetensors_count(st);
  for (int64_t i = 0; i < n; i++) {
    const char *name = tc_safetensors_name(st, i);
    tc_st_dtype d;
    int64_t shape[8];
    int nd;
    if (!name || tc_safetensors_info(st, name, &d, shape, 8, &nd) != TC_OK)
      abort();
    int64_t numel = 1;
    for (int k = 0; k < nd && k < 8; k++)
      numel *= shape[k];
    /* accepted => offsets lie inside the image: size <= whole input */
    size_t bytes =
        nd <= 8 ? (size_t)numel * (size_t)tc_st_dtype_bits(d) / 8 : 0;
    if (nd <= 8 && bytes <= size) {
      void *buf = malloc(bytes ? bytes : 1);
      if (tc_safetensors_read_raw(st, name, buf, bytes) != TC_OK)
        abort();
      free(buf);
    }
  }
  for (int64_t i = 0; i < tc_safetensors_metadata_count(st); i++) {
    const char *k = tc_safetensors_metadata_key(st, i);
    if (!k || !tc_safetensors_metadata(st, k))
      abort();
  }
  tc_safetensors_destroy(st);
  return 0;
}

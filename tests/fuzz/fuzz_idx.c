/*
 * fuzz_idx.c - libFuzzer harness for the IDX (MNIST) loader. Input layout:
 *   byte 0: mode. Bits 0-1 encode the images file, bits 2-3 the labels
 *           file: 0 or 3 = the bytes as they are (raw IDX, or a hostile
 *           gzip stream), 1 = gzip-wrapped here (valid gzip of fuzzed IDX),
 *           2 = gzip-wrapped, then cut by 1..8 bytes (bits 4-6 + 1). Bit 7
 *           loads through tc_dataset_load_mnist (t10k-* names, 10 classes)
 *           instead of tc_dataset_load_idx.
 *   bytes 1-2: little-endian split point (modulo the rest's size + 1):
 *           the images file takes the rest's bytes before it, the labels
 *           file those after.
 *   byte 3: num_classes (0 means 256).
 * An accepted pair must give one-channel images and in-range labels, and
 * every sample must read back. Build with clang -fsanitize=fuzzer,address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include <libtinycnn.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes `n` bytes to `path` encoded as `enc` (see above). */
static void write_encoded(const char *path, const uint8_t *p, size_t n, int enc,
                          int cut) {
  if (enc == 0 || enc == 3) {
    fz_write(path, p, n);
    return;
  }
  z_stream z = {0};
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK)
    abort();
  uLong bound = deflateBound(&z, (uLong)n) + 32;
  unsigned char *buf = malloc(bound);
  if (!buf)
    abort();
  z.next_in = (Bytef *)(uintptr_t)p;
  z.avail_in = (uInt)n;
  z.next_out = buf;
  z.avail_out = (uInt)bound;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END)
    abort();
  size_t len = z.total_out;
  deflateEnd(&z);
  if (enc == 2)
    len = len > (size_t)cut ? len - (size_t)cut : 0;
  fz_write(path, buf, len);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  int mode = data[0];
  size_t rest = size - 4;
  size_t split = ((size_t)data[1] | (size_t)data[2] << 8) % (rest + 1);
  int num_classes = data[3] ? data[3] : 256;
  const uint8_t *body = data + 4;
  int mnist = mode & 0x80;
  int cut = ((mode >> 4) & 7) + 1;
  char ipath[600], lpath[600];
  fz_path(ipath, mnist ? "t10k-images-idx3-ubyte" : "images.idx");
  fz_path(lpath, mnist ? "t10k-labels-idx1-ubyte" : "labels.idx");
  write_encoded(ipath, body, split, mode & 3, cut);
  write_encoded(lpath, body + split, rest - split, (mode >> 2) & 3, cut);

  tc_dataset *ds = NULL;
  tc_status st = mnist ? tc_dataset_load_mnist(&ds, fz_tmpdir(), 0)
                       : tc_dataset_load_idx(&ds, ipath, lpath, num_classes);
  if (st != TC_OK) {
    if (ds)
      abort(); /* outputs are written only on success */
    return 0;
  }
  if (mnist)
    num_classes = 10;
  int64_t n = tc_dataset_size(ds);
  int c = tc_dataset_channels(ds), h = tc_dataset_height(ds),
      w = tc_dataset_width(ds);
  if (n < 1 || c != 1 || h < 1 || w < 1 || h > TC_DATASET_MAX_SIDE ||
      w > TC_DATASET_MAX_SIDE || tc_dataset_num_classes(ds) != num_classes)
    abort();
  size_t bytes = (size_t)h * (size_t)w;
  /* a raw images file holds the pixels right after its 16-byte header
   * (as-is bytes starting with the gzip magic are read as gzip) */
  int raw = ((mode & 3) == 0 || (mode & 3) == 3) &&
            !(split >= 2 && body[0] == 0x1f && body[1] == 0x8b);
  if (raw && 16 + (size_t)n * bytes != split)
    abort();
  uint8_t *px = malloc(bytes);
  if (!px)
    abort();
  for (int64_t i = 0; i < n; i++) {
    int32_t label = -1;
    if (tc_dataset_get(ds, i, px, bytes, &label) != TC_OK || label < 0 ||
        label >= num_classes)
      abort();
    if (raw && memcmp(px, body + 16 + (size_t)i * bytes, bytes))
      abort();
  }
  free(px);
  tc_dataset_destroy(ds);
  return 0;
}

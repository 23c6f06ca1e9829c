/*
 * make_corpus.c - writes the small valid seed files of the loader fuzzers
 * into <out>/fuzz_idx, <out>/fuzz_cifar and <out>/fuzz_svhn (folders must
 * exist). Built with -Dfuzzers=true as tests/fuzz/make_corpus; run as
 *   build-fuzz/tests/fuzz/make_corpus tests/fuzz/corpus
 * Inputs follow each harness's layout (see fuzz_idx.c for its 4-byte
 * prefix). Deterministic, so the committed corpus can be regenerated.
 */
#include <matio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *out_dir;

static void put(const char *sub, const char *name, const void *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* IDX images (n,h,w) then labels (n) into buf; returns the images' size
 * through *split and the total. */
static size_t idx_pair(uint8_t *buf, int n, int h, int w, size_t *split) {
  uint8_t *p = buf;
  be32(p, 0x803);
  be32(p + 4, (uint32_t)n);
  be32(p + 8, (uint32_t)h);
  be32(p + 12, (uint32_t)w);
  p += 16;
  for (int i = 0; i < n * h * w; i++)
    *p++ = (uint8_t)(i * 37 + 11);
  *split = (size_t)(p - buf);
  be32(p, 0x801);
  be32(p + 4, (uint32_t)n);
  p += 8;
  for (int i = 0; i < n; i++)
    *p++ = (uint8_t)(i % 10);
  return (size_t)(p - buf);
}

static void idx_seed(const char *name, int mode, int n, int h, int w) {
  static uint8_t buf[8192];
  size_t split;
  size_t len = idx_pair(buf + 4, n, h, w, &split);
  buf[0] = (uint8_t)mode;
  buf[1] = (uint8_t)split;
  buf[2] = (uint8_t)(split >> 8);
  buf[3] = 10;
  put("fuzz_idx", name, buf, 4 + len);
}

/* Both files gzip'd here, so the harness sees them as-is (mode 0). */
static void idx_seed_gz(const char *name) {
  static uint8_t pair[512], out[2048];
  size_t split;
  size_t len = idx_pair(pair, 3, 4, 5, &split);
  size_t at = 4, part[2] = {split, len - split};
  const uint8_t *src[2] = {pair, pair + split};
  size_t first = 0;
  for (int k = 0; k < 2; k++) {
    z_stream z = {0};
    deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)(uintptr_t)src[k];
    z.avail_in = (uInt)part[k];
    z.next_out = out + at;
    z.avail_out = (uInt)(sizeof out - at);
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
      exit(1);
    at += z.total_out;
    if (k == 0)
      first = z.total_out;
    deflateEnd(&z);
  }
  out[0] = 0;
  out[1] = (uint8_t)first;
  out[2] = (uint8_t)(first >> 8);
  out[3] = 10;
  put("fuzz_idx", name, out, at);
}

static void cifar_seed(const char *name, int records) {
  static uint8_t buf[3 * 3073];
  for (int r = 0; r < records; r++) {
    buf[r * 3073] = (uint8_t)(r * 7 % 10);
    for (int i = 0; i < 3072; i++)
      buf[r * 3073 + 1 + i] = (uint8_t)(i * 13 + r);
  }
  put("fuzz_cifar", name, buf, (size_t)records * 3073);
}

/* An SVHN-like .mat: X uint8 (32,32,3,n), y of class yc (n,1). */
static void svhn_seed(const char *name, enum mat_ft ver, int compress, int n,
                      enum matio_classes yc, enum matio_types yt) {
  char tmp[4096], dest[4096];
  snprintf(tmp, sizeof tmp, "%s/fuzz_svhn/%s.tmp", out_dir, name);
  snprintf(dest, sizeof dest, "%s/fuzz_svhn/%s", out_dir, name);
  mat_t *m = Mat_CreateVer(tmp, NULL, ver);
  if (!m) {
    fprintf(stderr, "%s: cannot create\n", tmp);
    exit(1);
  }
  static uint8_t x[32 * 32 * 3 * 4];
  for (int i = 0; i < 3072 * n; i++)
    x[i] = (uint8_t)((i / 29) * 5 + i % 3);
  size_t xd[4] = {32, 32, 3, (size_t)n}, yd[2] = {(size_t)n, 1};
  double yv[4] = {10, 1, 9, 5};
  uint8_t y8[4] = {10, 1, 9, 5};
  matvar_t *v = Mat_VarCreate("X", MAT_C_UINT8, MAT_T_UINT8, 4, xd, x, 0);
  int bad =
      !v || Mat_VarWrite(
                m, v, compress ? MAT_COMPRESSION_ZLIB : MAT_COMPRESSION_NONE);
  Mat_VarFree(v);
  v = Mat_VarCreate("y", yc, yt, 2, yd, yc == MAT_C_UINT8 ? (void *)y8 : yv, 0);
  bad |= !v ||
         Mat_VarWrite(m, v,
                      compress ? MAT_COMPRESSION_ZLIB : MAT_COMPRESSION_NONE);
  Mat_VarFree(v);
  Mat_Close(m);
  if (bad || rename(tmp, dest) != 0) {
    fprintf(stderr, "%s: cannot write\n", dest);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  idx_seed("raw_3x4x5", 0x00, 3, 4, 5);
  idx_seed("wrap_gz_2x28x28", 0x05, 2, 28, 28);
  idx_seed("mnist_raw_1x28x28", 0x80, 1, 28, 28);
  idx_seed("gz_images_raw_labels", 0x01, 4, 3, 2);
  idx_seed("cut_gz_labels", 0x28, 2, 2, 2);
  idx_seed_gz("as_is_gzip_3x4x5");
  cifar_seed("one_record", 1);
  cifar_seed("two_records", 2);
  svhn_seed("v5_n1", MAT_FT_MAT5, 0, 1, MAT_C_DOUBLE, MAT_T_DOUBLE);
  svhn_seed("v5z_n2", MAT_FT_MAT5, 1, 2, MAT_C_DOUBLE, MAT_T_DOUBLE);
  svhn_seed("v5z_n4_uint8_y", MAT_FT_MAT5, 1, 4, MAT_C_UINT8, MAT_T_UINT8);
  svhn_seed("v73_n1", MAT_FT_MAT73, 0, 1, MAT_C_DOUBLE, MAT_T_DOUBLE);
  return 0;
}

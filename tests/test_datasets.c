/*
 * test_datasets.c - datasets: memory datasets, subsets and seeded splits,
 * and the file readers (IDX raw and gzip, CIFAR-10 binary batches, SVHN
 * .mat through matio) on small files written here in the real formats,
 * plus truncated, oversized and hostile variants that must fail cleanly.
 * Real MNIST from $TINYCNN_SHARED_DIR/data/mnist is checked when present.
 */
#include <errno.h>
#include <matio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

static const char *tmpdir;

static void setup(void) {
  tmpdir = tu_tmpdir_create("tc_datasets");
}

static void teardown(void) {
  tu_tmpdir_remove();
}

static void write_gz(const char *path, const void *data, size_t n) {
  gzFile g = gzopen(path, "wb");
  ck_assert_ptr_nonnull(g);
  ck_assert_int_eq(gzwrite(g, data, (unsigned)n), (int)n);
  ck_assert_int_eq(gzclose(g), Z_OK);
}

static void be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* An IDX image file image in memory: header + n*h*w bytes; *len set. */
static unsigned char *idx_images(uint32_t n, uint32_t h, uint32_t w,
                                 size_t *len) {
  size_t payload = (size_t)n * h * w;
  unsigned char *b = malloc(16 + payload);
  be32(b, 0x803);
  be32(b + 4, n);
  be32(b + 8, h);
  be32(b + 12, w);
  for (size_t i = 0; i < payload; i++)
    b[16 + i] = (unsigned char)((i * 37 + 11) & 0xff);
  *len = 16 + payload;
  return b;
}

static unsigned char *idx_labels(uint32_t n, int classes, size_t *len) {
  unsigned char *b = malloc(8 + n);
  be32(b, 0x801);
  be32(b + 4, n);
  for (uint32_t i = 0; i < n; i++)
    b[8 + i] = (unsigned char)((i * 7 + 3) % (uint32_t)classes);
  *len = 8 + n;
  return b;
}

static void check_idx_dataset(tc_dataset *ds, uint32_t n, uint32_t h,
                              uint32_t w, int classes) {
  ck_assert_int_eq(tc_dataset_size(ds), n);
  ck_assert_int_eq(tc_dataset_channels(ds), 1);
  ck_assert_int_eq(tc_dataset_height(ds), (int)h);
  ck_assert_int_eq(tc_dataset_width(ds), (int)w);
  ck_assert_int_eq(tc_dataset_num_classes(ds), classes);
  uint8_t *px = malloc(h * w);
  for (uint32_t i = 0; i < n; i++) {
    int32_t label = -1;
    ck_assert_int_eq(tc_dataset_get(ds, i, px, h * w, &label), TC_OK);
    ck_assert_int_eq(label, (int)((i * 7 + 3) % (uint32_t)classes));
    for (uint32_t k = 0; k < h * w; k++) {
      size_t flat = (size_t)i * h * w + k;
      ck_assert_uint_eq(px[k], (flat * 37 + 11) & 0xff);
    }
  }
  free(px);
}

/* ---- memory datasets, subsets, splits ---------------------------------- */

START_TEST(test_create_and_get) {
  uint8_t px[5 * 2 * 3 * 2];
  int32_t labels[5] = {0, 1, 2, 3, 1};
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (uint8_t)i;
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_create(&ds, 5, 2, 3, 2, 4, px, labels), TC_OK);
  px[0] = 99; /* copied: later changes do not show */
  ck_assert_int_eq(tc_dataset_size(ds), 5);
  ck_assert_int_eq(tc_dataset_channels(ds), 2);
  ck_assert_int_eq(tc_dataset_height(ds), 3);
  ck_assert_int_eq(tc_dataset_width(ds), 2);
  ck_assert_int_eq(tc_dataset_num_classes(ds), 4);
  uint8_t got[12];
  int32_t label;
  ck_assert_int_eq(tc_dataset_get(ds, 0, got, 12, &label), TC_OK);
  ck_assert_uint_eq(got[0], 0);
  ck_assert_int_eq(tc_dataset_get(ds, 3, got, 12, &label), TC_OK);
  ck_assert_int_eq(label, 3);
  for (int k = 0; k < 12; k++)
    ck_assert_uint_eq(got[k], 36 + k);
  ck_assert_int_eq(tc_dataset_get(ds, 4, NULL, 0, &label), TC_OK);
  ck_assert_int_eq(label, 1);
  ck_assert_int_eq(tc_dataset_get(ds, 4, got, 12, NULL), TC_OK);
  /* errors */
  ck_assert_int_eq(tc_dataset_get(ds, 5, got, 12, &label), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_get(ds, -1, got, 12, &label), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_get(ds, 0, got, 11, &label), TC_ESHAPE);
  ck_assert_int_eq(tc_dataset_get(NULL, 0, got, 12, &label), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_size(NULL), -1);
  ck_assert_int_eq(tc_dataset_channels(NULL), -1);
  ck_assert_int_eq(tc_dataset_num_classes(NULL), -1);
  tc_dataset_destroy(ds);
  tc_dataset_destroy(NULL);

  tc_dataset *bad = NULL;
  ck_assert_int_eq(tc_dataset_create(NULL, 5, 2, 3, 2, 4, px, labels),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_create(&bad, 5, 2, 3, 2, 4, NULL, labels),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_create(&bad, 5, 2, 3, 2, 4, px, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_create(&bad, 0, 2, 3, 2, 4, px, labels),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_create(&bad, 5, 0, 3, 2, 4, px, labels),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_create(&bad, 5, 2, 70000, 2, 4, px, labels),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_create(&bad, 5, 2, 3, 2, 3, px, labels),
                   TC_EINVAL); /* label 3 >= 3 classes */
  ck_assert_str_ne(tc_last_error(), "");
  labels[2] = -1;
  ck_assert_int_eq(tc_dataset_create(&bad, 5, 2, 3, 2, 4, px, labels),
                   TC_EINVAL);
  ck_assert_ptr_null(bad);
}
END_TEST

static tc_dataset *make_indexed(int64_t n) {
  /* pixel 0 and the label carry the index */
  uint8_t *px = malloc((size_t)n * 2);
  int32_t *lb = malloc((size_t)n * sizeof *lb);
  for (int64_t i = 0; i < n; i++) {
    px[2 * i] = (uint8_t)(i & 0xff);
    px[2 * i + 1] = (uint8_t)(i >> 8);
    lb[i] = (int32_t)i;
  }
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_create(&ds, n, 1, 1, 2, (int)n, px, lb), TC_OK);
  free(px);
  free(lb);
  return ds;
}

static int64_t index_of(const tc_dataset *ds, int64_t i) {
  uint8_t px[2];
  int32_t label;
  ck_assert_int_eq(tc_dataset_get(ds, i, px, 2, &label), TC_OK);
  ck_assert_int_eq(label, px[0] | px[1] << 8);
  return label;
}

START_TEST(test_subset) {
  tc_dataset *ds = make_indexed(10);
  int64_t idx[4] = {7, 2, 2, 9};
  tc_dataset *v = NULL, *vv = NULL;
  ck_assert_int_eq(tc_dataset_subset(&v, ds, idx, 4), TC_OK);
  ck_assert_int_eq(tc_dataset_size(v), 4);
  ck_assert_int_eq(tc_dataset_width(v), 2);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(index_of(v, i), idx[i]);
  int64_t idx2[2] = {3, 0};
  ck_assert_int_eq(tc_dataset_subset(&vv, v, idx2, 2), TC_OK);
  tc_dataset_destroy(ds); /* the views keep the data alive */
  tc_dataset_destroy(v);
  ck_assert_int_eq(index_of(vv, 0), 9);
  ck_assert_int_eq(index_of(vv, 1), 7);
  int64_t bad[1] = {2};
  tc_dataset *x = NULL;
  ck_assert_int_eq(tc_dataset_subset(&x, vv, bad, 1), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_subset(&x, vv, idx2, 0), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_subset(&x, NULL, idx2, 1), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_subset(&x, vv, NULL, 1), TC_EINVAL);
  ck_assert_ptr_null(x);
  tc_dataset_destroy(vv);
}
END_TEST

START_TEST(test_split) {
  const int64_t n = 101;
  tc_dataset *ds = make_indexed(n);
  tc_dataset *a = NULL, *b = NULL, *a2 = NULL, *b2 = NULL, *a3 = NULL,
             *b3 = NULL;
  ck_assert_int_eq(tc_dataset_split(&a, &b, ds, 80, 42), TC_OK);
  ck_assert_int_eq(tc_dataset_size(a), 80);
  ck_assert_int_eq(tc_dataset_size(b), 21);
  int seen[101] = {0};
  int in_order = 1;
  for (int64_t i = 0; i < 80; i++) {
    int64_t k = index_of(a, i);
    seen[k]++;
    in_order &= k == i;
  }
  for (int64_t i = 0; i < 21; i++)
    seen[index_of(b, i)]++;
  for (int64_t i = 0; i < n; i++)
    ck_assert_int_eq(seen[i], 1); /* disjoint, covering */
  ck_assert(!in_order);           /* random, not a prefix */
  /* same seed, same split; another seed, another */
  ck_assert_int_eq(tc_dataset_split(&a2, &b2, ds, 80, 42), TC_OK);
  ck_assert_int_eq(tc_dataset_split(&a3, &b3, ds, 80, 43), TC_OK);
  int same3 = 1;
  for (int64_t i = 0; i < 80; i++) {
    ck_assert_int_eq(index_of(a2, i), index_of(a, i));
    same3 &= index_of(a3, i) == index_of(a, i);
  }
  for (int64_t i = 0; i < 21; i++)
    ck_assert_int_eq(index_of(b2, i), index_of(b, i));
  ck_assert(!same3);
  /* errors leave the outputs alone */
  tc_dataset *x = NULL, *y = NULL;
  ck_assert_int_eq(tc_dataset_split(&x, &y, ds, 0, 1), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_split(&x, &y, ds, n, 1), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_split(&x, NULL, ds, 5, 1), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_split(&x, &y, NULL, 5, 1), TC_EINVAL);
  ck_assert_ptr_null(x);
  ck_assert_ptr_null(y);
  tc_dataset_destroy(ds);
  tc_dataset_destroy(a);
  tc_dataset_destroy(b);
  tc_dataset_destroy(a2);
  tc_dataset_destroy(b2);
  tc_dataset_destroy(a3);
  tc_dataset_destroy(b3);
}
END_TEST

START_TEST(test_split_count) {
  /* torch.utils.data.random_split's fractional lengths */
  ck_assert_int_eq(tc_dataset_split_count(10, 0.8), 8);
  ck_assert_int_eq(tc_dataset_split_count(7, 0.5), 4);
  ck_assert_int_eq(tc_dataset_split_count(60000, 50000.0 / 60000.0), 50000);
  ck_assert_int_eq(tc_dataset_split_count(60000, 0.9), 54000);
  ck_assert_int_eq(tc_dataset_split_count(3, 0.1), 1);
  ck_assert_int_eq(tc_dataset_split_count(2, 0.5), 1);
  ck_assert_int_eq(tc_dataset_split_count(1, 0.5), -1);
  ck_assert_int_eq(tc_dataset_split_count(10, 0.0), -1);
  ck_assert_int_eq(tc_dataset_split_count(10, 1.0), -1);
  ck_assert_int_eq(tc_dataset_split_count(10, 0.01), 1); /* [0, 9] + 1 */
  ck_assert_int_eq(tc_dataset_split_count(2, 0.9), -1);  /* [2, 0] */
  ck_assert_int_eq(tc_dataset_split_count(10, 0.0 / 0.0), -1);
}
END_TEST

/* ---- IDX --------------------------------------------------------------- */

START_TEST(test_idx_raw_and_gz) {
  size_t li, ll;
  unsigned char *im = idx_images(7, 5, 3, &li);
  unsigned char *lb = idx_labels(7, 10, &ll);
  tu_write_file(tu_tmppath("im"), im, li);
  tu_write_file(tu_tmppath("lb"), lb, ll);
  write_gz(tu_tmppath("im.gz"), im, li);
  write_gz(tu_tmppath("lb.gz"), lb, ll);
  const char *pairs[4][2] = {
      {"im", "lb"}, {"im.gz", "lb.gz"}, {"im", "lb.gz"}, {"im.gz", "lb"}};
  for (int k = 0; k < 4; k++) {
    tc_dataset *ds = NULL;
    ck_assert_int_eq(tc_dataset_load_idx(&ds, tu_tmppath(pairs[k][0]),
                                         tu_tmppath(pairs[k][1]), 10),
                     TC_OK);
    check_idx_dataset(ds, 7, 5, 3, 10);
    tc_dataset_destroy(ds);
  }
  /* the MNIST directory layout: raw files, then .gz when raw is absent */
  tu_write_file(tu_tmppath("t10k-images-idx3-ubyte"), im, li);
  write_gz(tu_tmppath("t10k-labels-idx1-ubyte.gz"), lb, ll);
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_load_mnist(&ds, tmpdir, 0), TC_OK);
  check_idx_dataset(ds, 7, 5, 3, 10);
  tc_dataset_destroy(ds);
  ds = NULL;
  ck_assert_int_eq(tc_dataset_load_mnist(&ds, tmpdir, 1), TC_EIO);
  ck_assert_ptr_null(ds);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "train-images"));
  free(im);
  free(lb);
}
END_TEST

/* Loads images file `name` with the good labels; returns the status. */
static tc_status load_images(const char *name) {
  tc_dataset *ds = NULL;
  tc_status st =
      tc_dataset_load_idx(&ds, tu_tmppath(name), tu_tmppath("good_lb"), 10);
  if (st == TC_OK)
    tc_dataset_destroy(ds);
  else
    ck_assert_ptr_null(ds);
  return st;
}

START_TEST(test_idx_hostile) {
  size_t li, ll;
  unsigned char *im = idx_images(6, 4, 4, &li);
  unsigned char *lb = idx_labels(6, 10, &ll);
  tu_write_file(tu_tmppath("good_lb"), lb, ll);
  tu_write_file(tu_tmppath("good_im"), im, li);
  ck_assert_int_eq(load_images("good_im"), TC_OK);

  /* truncated by one byte, one trailing byte, header only, empty, short
   * header */
  tu_write_file(tu_tmppath("trunc"), im, li - 1);
  ck_assert_int_eq(load_images("trunc"), TC_EFORMAT);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "trunc"));
  unsigned char *longer = malloc(li + 1);
  memcpy(longer, im, li);
  longer[li] = 0;
  tu_write_file(tu_tmppath("trail"), longer, li + 1);
  ck_assert_int_eq(load_images("trail"), TC_EFORMAT);
  tu_write_file(tu_tmppath("hdr"), im, 16);
  ck_assert_int_eq(load_images("hdr"), TC_EFORMAT);
  tu_write_file(tu_tmppath("empty"), im, 0);
  ck_assert_int_eq(load_images("empty"), TC_EFORMAT);
  tu_write_file(tu_tmppath("short"), im, 10);
  ck_assert_int_eq(load_images("short"), TC_EFORMAT);
  ck_assert_int_eq(load_images("missing"), TC_EIO);

  /* bad magic (labels magic, float type, 4 dims), zero and huge dims */
  unsigned char h[16];
  memcpy(h, im, 16);
  be32(h, 0x801);
  tu_write_file(tu_tmppath("magic1"), h, 16);
  ck_assert_int_eq(load_images("magic1"), TC_EFORMAT);
  be32(h, 0xD03);
  tu_write_file(tu_tmppath("magic2"), h, 16);
  ck_assert_int_eq(load_images("magic2"), TC_EFORMAT);
  be32(h, 0x804);
  tu_write_file(tu_tmppath("magic3"), h, 16);
  ck_assert_int_eq(load_images("magic3"), TC_EFORMAT);
  memcpy(h, im, 16);
  be32(h + 8, 0);
  tu_write_file(tu_tmppath("zero"), h, 16);
  ck_assert_int_eq(load_images("zero"), TC_EFORMAT);
  /* 2^31-1 images of 65535x65535: must fail before allocating */
  be32(h + 4, 0x7fffffff);
  be32(h + 8, 65535);
  be32(h + 12, 65535);
  tu_write_file(tu_tmppath("huge"), h, 16);
  ck_assert_int_eq(load_images("huge"), TC_EFORMAT);
  write_gz(tu_tmppath("huge.gz"), h, 16);
  ck_assert_int_eq(load_images("huge.gz"), TC_EFORMAT);
  be32(h + 8, 0xffffffffu);
  tu_write_file(tu_tmppath("huge2"), h, 16);
  ck_assert_int_eq(load_images("huge2"), TC_EFORMAT);
  /* a plausible header (within 1032x of the file) that inflates to less:
   * caught by counting, before allocating */
  memcpy(h, im, 16);
  be32(h + 4, 1000);
  be32(h + 8, 28);
  be32(h + 12, 28);
  unsigned char *zeros = calloc(1, 16 + 1000 * 28 * 28);
  memcpy(zeros, h, 16);
  write_gz(tu_tmppath("lie.gz"), zeros, 16 + 999 * 28 * 28);
  ck_assert_int_eq(load_images("lie.gz"), TC_EFORMAT);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "truncated"));
  write_gz(tu_tmppath("lie2.gz"), zeros, 16 + 1000 * 28 * 28);
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_load_idx(&ds, tu_tmppath("lie2.gz"),
                                       tu_tmppath("good_lb"), 10),
                   TC_EFORMAT); /* 1000 images, 6 labels */
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "labels"));
  free(zeros);

  /* gzip: cut short, and a corrupted byte in the deflate data */
  write_gz(tu_tmppath("im.gz"), im, li);
  size_t gl;
  unsigned char *gz = tu_slurp(tu_tmppath("im.gz"), &gl);
  for (size_t cut = 1; cut < gl; cut += (cut < 24 ? 1 : 7)) {
    tu_write_file(tu_tmppath("cut.gz"), gz, cut);
    tc_status st = load_images("cut.gz");
    ck_assert_msg(st == TC_EFORMAT, "cut at %zu of %zu: %d", cut, gl, st);
  }
  for (size_t pos = 10; pos < gl; pos++) {
    unsigned char *bad = malloc(gl);
    memcpy(bad, gz, gl);
    bad[pos] ^= 0x55;
    tu_write_file(tu_tmppath("bad.gz"), bad, gl);
    tc_status st = load_images("bad.gz");
    /* a flip in the header's optional fields may be harmless; data, CRC
     * and length flips are not */
    ck_assert_msg(st == TC_EFORMAT || st == TC_OK, "flip at %zu: %d", pos, st);
    if (pos >= gl - 8)
      ck_assert_msg(st == TC_EFORMAT, "trailer flip at %zu: %d", pos, st);
    free(bad);
  }
  /* bytes appended after the gzip stream (zlib's gzread skips them): any
   * count, zeros or text; a second whole member is fine (gzip -c a b) */
  static const char junk[] = "garbage after the stream";
  for (size_t k = 1; k <= sizeof junk; k += 5) {
    unsigned char *more = malloc(gl + k);
    memcpy(more, gz, gl);
    memcpy(more + gl, junk, k);
    tu_write_file(tu_tmppath("junk.gz"), more, gl + k);
    tc_status st = load_images("junk.gz");
    ck_assert_msg(st == TC_EFORMAT, "%zu junk bytes: %d", k, st);
    ck_assert_msg(strstr(tc_last_error(), "trailing"), "%s", tc_last_error());
    memset(more + gl, 0, k);
    tu_write_file(tu_tmppath("junk.gz"), more, gl + k);
    ck_assert_int_eq(load_images("junk.gz"), TC_EFORMAT);
    free(more);
  }
  {
    size_t half = li / 2;
    write_gz(tu_tmppath("a.gz"), im, half);
    write_gz(tu_tmppath("b.gz"), im + half, li - half);
    size_t la, lb2;
    unsigned char *ga = tu_slurp(tu_tmppath("a.gz"), &la);
    unsigned char *gb = tu_slurp(tu_tmppath("b.gz"), &lb2);
    unsigned char *two = malloc(la + lb2);
    memcpy(two, ga, la);
    memcpy(two + la, gb, lb2);
    tu_write_file(tu_tmppath("two.gz"), two, la + lb2);
    ck_assert_int_eq(load_images("two.gz"), TC_OK);
    free(ga);
    free(gb);
    free(two);
  }
  free(gz);

  /* labels: count mismatch, out of range, num_classes */
  size_t l2;
  unsigned char *lb5 = idx_labels(5, 10, &l2);
  tu_write_file(tu_tmppath("lb5"), lb5, l2);
  ck_assert_int_eq(
      tc_dataset_load_idx(&ds, tu_tmppath("good_im"), tu_tmppath("lb5"), 10),
      TC_EFORMAT);
  ck_assert_int_eq(
      tc_dataset_load_idx(&ds, tu_tmppath("good_im"), tu_tmppath("good_lb"), 3),
      TC_EFORMAT); /* labels up to 9 */
  ck_assert_int_eq(
      tc_dataset_load_idx(&ds, tu_tmppath("good_im"), tu_tmppath("good_lb"), 0),
      TC_EINVAL);
  ck_assert_int_eq(tc_dataset_load_idx(&ds, tu_tmppath("good_im"),
                                       tu_tmppath("good_lb"), 257),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_load_idx(&ds, tu_tmppath("good_lb"),
                                       tu_tmppath("good_im"), 10),
                   TC_EFORMAT); /* swapped */
  ck_assert_int_eq(tc_dataset_load_idx(&ds, NULL, tu_tmppath("good_lb"), 10),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_load_idx(NULL, tu_tmppath("good_im"),
                                       tu_tmppath("good_lb"), 10),
                   TC_EINVAL);
  ck_assert_int_eq(tc_dataset_load_idx(&ds, tmpdir, tu_tmppath("good_lb"), 10),
                   TC_EIO); /* a directory */
  ck_assert_ptr_null(ds);
  free(lb5);
  free(longer);
  free(im);
  free(lb);
}
END_TEST

START_TEST(test_idx_alloc_failures) {
  size_t li, ll;
  unsigned char *im = idx_images(9, 3, 5, &li);
  unsigned char *lb = idx_labels(9, 10, &ll);
  write_gz(tu_tmppath("im.gz"), im, li);
  tu_write_file(tu_tmppath("lb"), lb, ll);
  tu_alloc_install();
  for (long k = 1;; k++) {
    tu_alloc_fail_at(k, 0);
    tc_dataset *ds = NULL;
    tc_status st =
        tc_dataset_load_idx(&ds, tu_tmppath("im.gz"), tu_tmppath("lb"), 10);
    if (!tu_alloc_failed()) {
      ck_assert_int_eq(st, TC_OK);
      check_idx_dataset(ds, 9, 3, 5, 10);
      tc_dataset_destroy(ds);
      ck_assert_int_eq(tu_alloc_live(), 0);
      break;
    }
    ck_assert_int_eq(st, TC_ENOMEM);
    ck_assert_ptr_null(ds);
    ck_assert_int_eq(tu_alloc_live(), 0);
  }
  tu_alloc_uninstall();
  free(im);
  free(lb);
}
END_TEST

START_TEST(test_real_mnist) {
  const char *shared = getenv("TINYCNN_SHARED_DIR");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/data/mnist", shared ? shared : "../shared");
  char probe[1200];
  snprintf(probe, sizeof probe, "%s/train-labels-idx1-ubyte.gz", dir);
  struct stat sb;
  char probe2[1200];
  snprintf(probe2, sizeof probe2, "%s/train-labels-idx1-ubyte", dir);
  if (stat(probe, &sb) != 0 && stat(probe2, &sb) != 0)
    return; /* not present here: nothing to check */
  tc_dataset *ds = NULL;
  ck_assert_msg(tc_dataset_load_mnist(&ds, dir, 1) == TC_OK, "%s",
                tc_last_error());
  ck_assert_int_eq(tc_dataset_size(ds), 60000);
  ck_assert_int_eq(tc_dataset_channels(ds), 1);
  ck_assert_int_eq(tc_dataset_height(ds), 28);
  ck_assert_int_eq(tc_dataset_width(ds), 28);
  const int32_t first[5] = {5, 0, 4, 1, 9};
  long counts[10] = {0};
  for (int64_t i = 0; i < 60000; i++) {
    int32_t label;
    ck_assert_int_eq(tc_dataset_get(ds, i, NULL, 0, &label), TC_OK);
    if (i < 5)
      ck_assert_int_eq(label, first[i]);
    counts[label]++;
  }
  /* the well-known class counts of the training set */
  const long want[10] = {5923, 6742, 5958, 6131, 5842,
                         5421, 5918, 6265, 5851, 5949};
  for (int c = 0; c < 10; c++)
    ck_assert_int_eq(counts[c], want[c]);
  uint8_t px[784];
  ck_assert_int_eq(tc_dataset_get(ds, 0, px, sizeof px, NULL), TC_OK);
  long sum = 0;
  for (int k = 0; k < 784; k++)
    sum += px[k];
  ck_assert_int_eq(sum, 27525); /* the first "5" */
  ck_assert_uint_eq(px[0], 0);
  tc_dataset_destroy(ds);
  ds = NULL;
  ck_assert_int_eq(tc_dataset_load_mnist(&ds, dir, 0), TC_OK);
  ck_assert_int_eq(tc_dataset_size(ds), 10000);
  const int32_t tfirst[5] = {7, 2, 1, 0, 4};
  for (int i = 0; i < 5; i++) {
    int32_t label;
    ck_assert_int_eq(tc_dataset_get(ds, i, NULL, 0, &label), TC_OK);
    ck_assert_int_eq(label, tfirst[i]);
  }
  tc_dataset_destroy(ds);
}
END_TEST

/* ---- CIFAR-10 ---------------------------------------------------------- */

#define REC 3073

static unsigned char *cifar_records(int n, int first, size_t *len) {
  unsigned char *b = malloc((size_t)n * REC);
  for (int r = 0; r < n; r++) {
    unsigned char *p = b + (size_t)r * REC;
    p[0] = (unsigned char)((first + r) % 10);
    for (int k = 0; k < 3072; k++)
      p[1 + k] = (unsigned char)((k * 13 + (first + r) * 101) & 0xff);
  }
  *len = (size_t)n * REC;
  return b;
}

static void check_cifar(tc_dataset *ds, int64_t i, int global) {
  uint8_t px[3072];
  int32_t label;
  ck_assert_int_eq(tc_dataset_get(ds, i, px, sizeof px, &label), TC_OK);
  ck_assert_int_eq(label, global % 10);
  for (int k = 0; k < 3072; k++)
    ck_assert_uint_eq(px[k], (k * 13 + global * 101) & 0xff);
}

START_TEST(test_cifar10) {
  size_t len;
  unsigned char *b = cifar_records(3, 100, &len);
  tu_write_file(tu_tmppath("test_batch.bin"), b, len);
  free(b);
  int counts[5] = {2, 1, 4, 3, 2}, first = 0;
  for (int k = 0; k < 5; k++) {
    char name[64];
    snprintf(name, sizeof name, "data_batch_%d.bin", k + 1);
    b = cifar_records(counts[k], first, &len);
    tu_write_file(tu_tmppath(name), b, len);
    free(b);
    first += counts[k];
  }
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 0), TC_OK);
  ck_assert_int_eq(tc_dataset_size(ds), 3);
  ck_assert_int_eq(tc_dataset_channels(ds), 3);
  ck_assert_int_eq(tc_dataset_height(ds), 32);
  ck_assert_int_eq(tc_dataset_width(ds), 32);
  ck_assert_int_eq(tc_dataset_num_classes(ds), 10);
  for (int i = 0; i < 3; i++)
    check_cifar(ds, i, 100 + i);
  tc_dataset_destroy(ds);
  ds = NULL;
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 1), TC_OK);
  ck_assert_int_eq(tc_dataset_size(ds), 12);
  for (int i = 0; i < 12; i++)
    check_cifar(ds, i, i);
  tc_dataset_destroy(ds);
  ds = NULL;

  /* hostile: size not a multiple, empty, label 10, a file missing */
  b = cifar_records(2, 0, &len);
  tu_write_file(tu_tmppath("data_batch_3.bin"), b, len - 1);
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 1), TC_EFORMAT);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "data_batch_3.bin"));
  unsigned char *plus = calloc(1, len + 1);
  memcpy(plus, b, len);
  tu_write_file(tu_tmppath("data_batch_3.bin"), plus, len + 1);
  free(plus);
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 1), TC_EFORMAT);
  tu_write_file(tu_tmppath("data_batch_3.bin"), b, 0);
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 1), TC_EFORMAT);
  b[REC] = 10;
  tu_write_file(tu_tmppath("data_batch_3.bin"), b, len);
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 1), TC_EFORMAT);
  b[REC] = 255;
  tu_write_file(tu_tmppath("data_batch_3.bin"), b, len);
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 1), TC_EFORMAT);
  unlink(tu_tmppath("data_batch_3.bin"));
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tmpdir, 1), TC_EIO);
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, tu_tmppath("nowhere"), 0),
                   TC_EIO);
  ck_assert_int_eq(tc_dataset_load_cifar10(&ds, NULL, 0), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_load_cifar10(NULL, tmpdir, 0), TC_EINVAL);
  ck_assert_ptr_null(ds);
  free(b);
}
END_TEST

/* ---- SVHN -------------------------------------------------------------- */

/* X (32,32,3,n) uint8 column-major: X[h,w,c,i] = f(h,w,c,i). */
static uint8_t svhn_px(int h, int w, int c, int i) {
  return (uint8_t)((h * 3 + w * 7 + c * 61 + i * 17) & 0xff);
}

/* Writes a .mat with X (dims xd, rank xr, class xc) and y (ny values of
 * `yv` as doubles, dims (ny,1)); NULL names skip a variable. */
static int write_mat(const char *path, enum mat_ft ver,
                     enum matio_compression comp, const char *xname,
                     const size_t *xd, int xr, const char *yname,
                     const double *yv, size_t ny) {
  mat_t *m = Mat_CreateVer(path, NULL, ver);
  if (!m)
    return -1;
  if (xname) {
    size_t total = 1;
    for (int k = 0; k < xr; k++)
      total *= xd[k];
    uint8_t *x = malloc(total ? total : 1);
    for (size_t k = 0; k < total; k++) {
      /* decode column-major (h,w,c,i) for the (32,32,3,n) case */
      size_t h = k % 32, w = (k / 32) % 32, c = (k / 1024) % 3, i = k / 3072;
      x[k] = svhn_px((int)h, (int)w, (int)c, (int)i);
    }
    matvar_t *v =
        Mat_VarCreate(xname, MAT_C_UINT8, MAT_T_UINT8, xr, (size_t *)xd, x, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(Mat_VarWrite(m, v, comp), 0);
    Mat_VarFree(v);
    free(x);
  }
  if (yname) {
    size_t yd[2] = {ny, 1};
    matvar_t *v =
        Mat_VarCreate(yname, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, yd, (void *)yv, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(Mat_VarWrite(m, v, comp), 0);
    Mat_VarFree(v);
  }
  Mat_Close(m);
  return 0;
}

static void check_svhn(tc_dataset *ds, int n, const double *y) {
  ck_assert_int_eq(tc_dataset_size(ds), n);
  ck_assert_int_eq(tc_dataset_channels(ds), 3);
  ck_assert_int_eq(tc_dataset_height(ds), 32);
  ck_assert_int_eq(tc_dataset_width(ds), 32);
  ck_assert_int_eq(tc_dataset_num_classes(ds), 10);
  uint8_t px[3072];
  for (int i = 0; i < n; i++) {
    int32_t label;
    ck_assert_int_eq(tc_dataset_get(ds, i, px, sizeof px, &label), TC_OK);
    ck_assert_int_eq(label, y[i] == 10 ? 0 : (int)y[i]);
    /* (C,H,W) with H along MATLAB's first dimension */
    for (int c = 0; c < 3; c++)
      for (int h = 0; h < 32; h++)
        for (int w = 0; w < 32; w++)
          ck_assert_uint_eq(px[(c * 32 + h) * 32 + w], svhn_px(h, w, c, i));
  }
}

START_TEST(test_svhn) {
  const double y[5] = {10, 1, 9, 5, 10};
  size_t xd[4] = {32, 32, 3, 5};
  ck_assert_int_eq(write_mat(tu_tmppath("a.mat"), MAT_FT_MAT5,
                             MAT_COMPRESSION_NONE, "X", xd, 4, "y", y, 5),
                   0);
  tc_dataset *ds = NULL;
  ck_assert_msg(tc_dataset_load_svhn(&ds, tu_tmppath("a.mat")) == TC_OK, "%s",
                tc_last_error());
  check_svhn(ds, 5, y);
  tc_dataset_destroy(ds);
  ds = NULL;
  ck_assert_int_eq(write_mat(tu_tmppath("z.mat"), MAT_FT_MAT5,
                             MAT_COMPRESSION_ZLIB, "X", xd, 4, "y", y, 5),
                   0);
  ck_assert_msg(tc_dataset_load_svhn(&ds, tu_tmppath("z.mat")) == TC_OK, "%s",
                tc_last_error());
  check_svhn(ds, 5, y);
  tc_dataset_destroy(ds);
  ds = NULL;
  /* MAT 7.3 (HDF5), when this matio can write it: refused, as libhdf5 is
   * not safe on untrusted files (svhn.c) */
  if (write_mat(tu_tmppath("h.mat"), MAT_FT_MAT73, MAT_COMPRESSION_NONE, "X",
                xd, 4, "y", y, 5) == 0) {
    ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("h.mat")),
                     TC_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(tc_last_error(), "v7.3"));
    ck_assert_ptr_null(ds);
  }
}
END_TEST

START_TEST(test_svhn_hostile) {
  const double y[3] = {1, 2, 3};
  size_t xd[4] = {32, 32, 3, 3};
  tc_dataset *ds = NULL;
  /* missing variables */
  write_mat(tu_tmppath("nox.mat"), MAT_FT_MAT5, MAT_COMPRESSION_NONE, NULL, xd,
            4, "y", y, 3);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("nox.mat")),
                   TC_EFORMAT);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "'X'"));
  write_mat(tu_tmppath("noy.mat"), MAT_FT_MAT5, MAT_COMPRESSION_NONE, "X", xd,
            4, NULL, y, 3);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("noy.mat")),
                   TC_EFORMAT);
  /* wrong X dims, y length mismatch */
  size_t xbad[4] = {32, 32, 1, 3};
  write_mat(tu_tmppath("x1.mat"), MAT_FT_MAT5, MAT_COMPRESSION_NONE, "X", xbad,
            4, "y", y, 3);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("x1.mat")), TC_EFORMAT);
  size_t x3[3] = {32, 32, 3};
  write_mat(tu_tmppath("x3.mat"), MAT_FT_MAT5, MAT_COMPRESSION_NONE, "X", x3, 3,
            "y", y, 1);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("x3.mat")), TC_EFORMAT);
  write_mat(tu_tmppath("ylen.mat"), MAT_FT_MAT5, MAT_COMPRESSION_NONE, "X", xd,
            4, "y", y, 2);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("ylen.mat")),
                   TC_EFORMAT);
  /* labels out of range or not integers */
  const double bad1[3] = {1, 11, 3}, bad2[3] = {1, 2.5, 3},
               bad3[3] = {-1, 2, 3};
  const double *bads[3] = {bad1, bad2, bad3};
  for (int k = 0; k < 3; k++) {
    write_mat(tu_tmppath("lab.mat"), MAT_FT_MAT5, MAT_COMPRESSION_NONE, "X", xd,
              4, "y", bads[k], 3);
    ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("lab.mat")),
                     TC_EFORMAT);
  }
  /* not a MAT file, missing file, NULLs */
  tu_write_file(tu_tmppath("junk.mat"), "hello, world", 12);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("junk.mat")),
                   TC_EFORMAT);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, tu_tmppath("none.mat")), TC_EIO);
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_dataset_load_svhn(NULL, tu_tmppath("junk.mat")),
                   TC_EINVAL);
  /* truncated copies of good files, plain and compressed: an error, never
   * a crash (matio may accept a cut that only loses padding) */
  write_mat(tu_tmppath("good.mat"), MAT_FT_MAT5, MAT_COMPRESSION_NONE, "X", xd,
            4, "y", y, 3);
  write_mat(tu_tmppath("goodz.mat"), MAT_FT_MAT5, MAT_COMPRESSION_ZLIB, "X", xd,
            4, "y", y, 3);
  const char *goods[2] = {"good.mat", "goodz.mat"};
  for (int g = 0; g < 2; g++) {
    size_t len;
    unsigned char *b = tu_slurp(tu_tmppath(goods[g]), &len);
    size_t step = len / 40 ? len / 40 : 1;
    for (size_t cut = 0; cut + 8 < len; cut += step) {
      tu_write_file(tu_tmppath("cut.mat"), b, cut);
      tc_dataset *c = NULL;
      tc_status st = tc_dataset_load_svhn(&c, tu_tmppath("cut.mat"));
      ck_assert_msg(st == TC_EFORMAT, "%s cut at %zu of %zu: %d", goods[g], cut,
                    len, st);
      ck_assert_ptr_null(c);
    }
    free(b);
  }
  /* a variable header claiming gigabytes of dims (found by fuzz_svhn: matio
   * would allocate them): refused before matio reads it */
  const char *root = getenv("TINYCNN_SOURCE_ROOT");
  char hostile[4096];
  snprintf(hostile, sizeof hostile,
           "%s/tests/fuzz/corpus/fuzz_svhn/regress_oom_dims_tag",
           root ? root : "..");
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, hostile), TC_EFORMAT);
  ck_assert_ptr_null(ds);
  /* a crafted v7.3 file on which libhdf5 read past a heap buffer (found by
   * fuzz_svhn): never handed to libhdf5 */
  snprintf(hostile, sizeof hostile,
           "%s/tests/fuzz/corpus/fuzz_svhn/regress_hdf5_heap_overflow",
           root ? root : "..");
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, hostile), TC_EUNSUPPORTED);
  ck_assert_ptr_null(ds);
}
END_TEST

/* A FIFO in place of a data file is refused at once (open(2) of a FIFO for
 * reading would block until a writer came): TC_EIO naming the path. The
 * alarm turns a hang into a failure. */
static void expect_not_regular(tc_status st, tc_dataset *ds, const char *p) {
  ck_assert_int_eq(st, TC_EIO);
  ck_assert_ptr_null(ds);
  ck_assert_msg(strstr(tc_last_error(), "not a regular file") &&
                    strstr(tc_last_error(), p),
                "message: %s", tc_last_error());
}

START_TEST(test_fifo_refused) {
  alarm(20);
  size_t li, ll;
  unsigned char *im = idx_images(3, 4, 4, &li);
  unsigned char *lb = idx_labels(3, 10, &ll);
  tu_write_file(tu_tmppath("lb"), lb, ll);
  ck_assert_int_eq(mkfifo(tu_tmppath("fifo"), 0600), 0);
  tc_dataset *ds = NULL;
  expect_not_regular(
      tc_dataset_load_idx(&ds, tu_tmppath("fifo"), tu_tmppath("lb"), 10), ds,
      tu_tmppath("fifo"));
  /* the MNIST layout: the FIFO is found by name, then refused */
  ck_assert_int_eq(mkfifo(tu_tmppath("t10k-images-idx3-ubyte"), 0600), 0);
  tu_write_file(tu_tmppath("t10k-labels-idx1-ubyte"), lb, ll);
  expect_not_regular(tc_dataset_load_mnist(&ds, tmpdir, 0), ds,
                     "t10k-images-idx3-ubyte");
  ck_assert_int_eq(mkfifo(tu_tmppath("test_batch.bin"), 0600), 0);
  expect_not_regular(tc_dataset_load_cifar10(&ds, tmpdir, 0), ds,
                     "test_batch.bin");
  expect_not_regular(tc_dataset_load_svhn(&ds, tu_tmppath("fifo")), ds,
                     tu_tmppath("fifo"));
  alarm(0);
  free(im);
  free(lb);
}
END_TEST

/* A message keeps its reason, the system's errno text included, however
 * long the path before it (a 1 KiB message buffer used to cut it off). */
START_TEST(test_long_path_keeps_reason) {
  static const char part[] = "a_rather_long_directory_name_for_the_messages";
  char dir[3800];
  int n = snprintf(dir, sizeof dir, "%s", tmpdir), depth = 0;
  while (n < 3000) {
    n += snprintf(dir + n, sizeof dir - (size_t)n, "/%s", part);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    depth++;
  }
  char im[3900], lb[3900];
  snprintf(im, sizeof im, "%s/images", dir);
  snprintf(lb, sizeof lb, "%s/labels", dir);
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_load_idx(&ds, im, lb, 10), TC_EIO);
  ck_assert_msg(strstr(tc_last_error(), strerror(ENOENT)) != NULL, "%s",
                tc_last_error());
  ck_assert_int_eq(tc_dataset_load_svhn(&ds, im), TC_EIO);
  ck_assert_msg(strstr(tc_last_error(), strerror(ENOENT)) != NULL, "%s",
                tc_last_error());
  /* a reason that follows the path */
  static const unsigned char cut[6] = {0, 0, 8, 3, 0, 0};
  tu_write_file(im, cut, sizeof cut);
  tu_write_file(lb, cut, sizeof cut);
  ck_assert_int_eq(tc_dataset_load_idx(&ds, im, lb, 10), TC_EFORMAT);
  ck_assert_msg(strstr(tc_last_error(), "truncated") != NULL, "%s",
                tc_last_error());
  unlink(im);
  unlink(lb);
  for (; depth > 0; depth--) {
    ck_assert_int_eq(rmdir(dir), 0);
    *strrchr(dir, '/') = 0;
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("datasets");
  TCase *tc = tcase_create("datasets");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_create_and_get);
  tcase_add_test(tc, test_subset);
  tcase_add_test(tc, test_split);
  tcase_add_test(tc, test_split_count);
  tcase_add_test(tc, test_idx_raw_and_gz);
  tcase_add_test(tc, test_idx_hostile);
  tcase_add_test(tc, test_idx_alloc_failures);
  tcase_add_test(tc, test_real_mnist);
  tcase_add_test(tc, test_cifar10);
  tcase_add_test(tc, test_svhn);
  tcase_add_test(tc, test_svhn_hostile);
  tcase_add_test(tc, test_fifo_refused);
  tcase_add_test(tc, test_long_path_keeps_reason);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

/*
 * test_transforms.c - the per-sample pipeline against values computed here
 * by hand: to float, padding, grey to RGB, normalise, the LeNet-on-MNIST
 * pipeline, random crop (the output is a window of the padded input, its
 * offsets spread and reproducible), random flip, shapes, errors, and
 * thread-independence.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static uint8_t *random_pixels(size_t n, uint64_t seed) {
  uint8_t *p = malloc(n);
  tc_rng r;
  tc_rng_init(&r, seed, TC_RNG_STREAM_USER + 11);
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(tc_rng_next_u32(&r) & 0xff);
  return p;
}

static tc_transform *make(void) {
  tc_transform *tf = NULL;
  ck_assert_int_eq(tc_transform_create(&tf), TC_OK);
  ck_assert_ptr_nonnull(tf);
  return tf;
}

static void apply_ok(const tc_transform *tf, const uint8_t *px,
                     const int64_t in[3], float *out, size_t n, uint64_t seed,
                     uint64_t epoch, uint64_t index) {
  tc_status st = tc_transform_apply(tf, px, in, out, n, seed, epoch, index);
  ck_assert_msg(st == TC_OK, "apply: %s", tc_last_error());
}

START_TEST(test_empty_and_to_float) {
  const int64_t in[3] = {2, 3, 5};
  uint8_t *px = random_pixels(30, 1);
  px[0] = 0;
  px[1] = 255;
  px[2] = 1;
  tc_transform *tf = make();
  float out[30];
  int64_t shape[3];
  ck_assert_int_eq(tc_transform_output_shape(tf, in, shape), TC_OK);
  ck_assert_mem_eq(shape, in, sizeof shape);
  apply_ok(tf, px, in, out, 30, 0, 0, 0);
  for (int i = 0; i < 30; i++)
    ck_assert(out[i] == (float)px[i]); /* empty pipeline: 0..255 */
  ck_assert_int_eq(tc_transform_add_to_float(tf), TC_OK);
  apply_ok(tf, px, in, out, 30, 0, 0, 0);
  for (int i = 0; i < 30; i++) {
    volatile float want = (float)px[i] / 255.0f; /* ToTensor's division */
    ck_assert(out[i] == want);
  }
  ck_assert(out[0] == 0.0f);
  ck_assert(out[1] == 1.0f);
  tc_transform_destroy(tf);
  tc_transform_destroy(NULL);
  free(px);
}
END_TEST

START_TEST(test_pad) {
  /* (1,2,3) padded (left 1, right 2, top 0, bottom 1) with -1 */
  const int64_t in[3] = {1, 2, 3};
  const uint8_t px[6] = {1, 2, 3, 4, 5, 6};
  tc_transform *tf = make();
  ck_assert_int_eq(tc_transform_add_pad(tf, 1, 2, 0, 1, -1.0f), TC_OK);
  int64_t shape[3];
  ck_assert_int_eq(tc_transform_output_shape(tf, in, shape), TC_OK);
  ck_assert_int_eq(shape[0], 1);
  ck_assert_int_eq(shape[1], 3);
  ck_assert_int_eq(shape[2], 6);
  const float want[18] = {-1, 1,  2,  3,  -1, -1, -1, 4,  5,
                          6,  -1, -1, -1, -1, -1, -1, -1, -1};
  float out[18];
  apply_ok(tf, px, in, out, 18, 0, 0, 0);
  ck_assert_mem_eq(out, want, sizeof want);
  tc_transform_destroy(tf);
}
END_TEST

START_TEST(test_gray_normalize) {
  const int64_t in[3] = {1, 2, 2};
  const uint8_t px[4] = {0, 51, 102, 255};
  tc_transform *tf = make();
  const float mean[3] = {0.1f, 0.2f, 0.3f}, sd[3] = {0.5f, 0.25f, 2.0f};
  ck_assert_int_eq(tc_transform_add_to_float(tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_gray_to_rgb(tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 3, mean, sd), TC_OK);
  int64_t shape[3];
  ck_assert_int_eq(tc_transform_output_shape(tf, in, shape), TC_OK);
  ck_assert_int_eq(shape[0], 3);
  float out[12];
  apply_ok(tf, px, in, out, 12, 0, 0, 0);
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 4; i++) {
      volatile float x = (float)px[i] / 255.0f;
      volatile float d = x - mean[c];
      volatile float want = d / sd[c];
      ck_assert_msg(out[c * 4 + i] == want, "c %d i %d: %g vs %g", c, i,
                    (double)out[c * 4 + i], (double)want);
    }
  /* normalize with one channel applies to all; with 3 on a 1-channel
   * image it does not fit */
  tc_transform *t1 = make();
  const float m1 = 0.5f, s1 = 0.5f;
  ck_assert_int_eq(tc_transform_add_normalize(t1, 1, &m1, &s1), TC_OK);
  float o1[4];
  apply_ok(t1, px, in, o1, 4, 0, 0, 0);
  ck_assert(o1[3] == (255.0f - 0.5f) / 0.5f);
  ck_assert_int_eq(tc_transform_add_normalize(t1, 3, mean, sd), TC_OK);
  ck_assert_int_eq(tc_transform_output_shape(t1, in, shape), TC_ESHAPE);
  ck_assert_int_eq(tc_transform_apply(t1, px, in, o1, 4, 0, 0, 0), TC_ESHAPE);
  /* grey to RGB needs one channel */
  tc_transform *t2 = make();
  ck_assert_int_eq(tc_transform_add_gray_to_rgb(t2), TC_OK);
  ck_assert_int_eq(tc_transform_add_gray_to_rgb(t2), TC_OK);
  ck_assert_int_eq(tc_transform_output_shape(t2, in, shape), TC_ESHAPE);
  tc_transform_destroy(tf);
  tc_transform_destroy(t1);
  tc_transform_destroy(t2);
}
END_TEST

START_TEST(test_lenet_mnist_pipeline) {
  /* ToTensor, F.pad(x, (2,2,2,2)), repeat(3,1,1), Normalize(0.5, 0.5) */
  const int64_t in[3] = {1, 28, 28};
  uint8_t *px = random_pixels(784, 5);
  tc_transform *tf = make();
  const float m[3] = {0.5f, 0.5f, 0.5f};
  ck_assert_int_eq(tc_transform_add_to_float(tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_pad(tf, 2, 2, 2, 2, 0.0f), TC_OK);
  ck_assert_int_eq(tc_transform_add_gray_to_rgb(tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 3, m, m), TC_OK);
  int64_t shape[3];
  ck_assert_int_eq(tc_transform_output_shape(tf, in, shape), TC_OK);
  ck_assert_int_eq(shape[0], 3);
  ck_assert_int_eq(shape[1], 32);
  ck_assert_int_eq(shape[2], 32);
  float *out = malloc(3 * 32 * 32 * sizeof *out);
  apply_ok(tf, px, in, out, 3 * 32 * 32, 7, 3, 11);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < 32; y++)
      for (int x = 0; x < 32; x++) {
        volatile float v = 0.0f;
        if (y >= 2 && y < 30 && x >= 2 && x < 30)
          v = (float)px[(y - 2) * 28 + (x - 2)] / 255.0f;
        volatile float d = v - 0.5f;
        float want = d / 0.5f;
        ck_assert(out[(c * 32 + y) * 32 + x] == want);
      }
  /* the result does not depend on seed, epoch or index: nothing random */
  float *out2 = malloc(3 * 32 * 32 * sizeof *out2);
  apply_ok(tf, px, in, out2, 3 * 32 * 32, 99, 0, 0);
  ck_assert_mem_eq(out, out2, 3 * 32 * 32 * sizeof *out);
  free(out);
  free(out2);
  free(px);
  tc_transform_destroy(tf);
}
END_TEST

/* Finds the (top, left) window of `src` padded by p with `fill` that
 * equals out (c,oh,ow); returns top*1000+left or -1. */
static int find_window(const float *src, int c, int h, int w, int p, float fill,
                       const float *out, int oh, int ow) {
  int found = -1, nfound = 0;
  for (int top = 0; top + oh <= h + 2 * p; top++)
    for (int left = 0; left + ow <= w + 2 * p; left++) {
      int ok = 1;
      for (int ch = 0; ch < c && ok; ch++)
        for (int y = 0; y < oh && ok; y++)
          for (int x = 0; x < ow && ok; x++) {
            int sy = top + y - p, sx = left + x - p;
            float v = sy >= 0 && sy < h && sx >= 0 && sx < w
                          ? src[(ch * h + sy) * w + sx]
                          : fill;
            ok = out[(ch * oh + y) * ow + x] == v;
          }
      if (ok) {
        found = top * 1000 + left;
        nfound++;
      }
    }
  return nfound == 1 ? found : -1;
}

START_TEST(test_random_crop) {
  /* CIFAR's RandomCrop(32, padding=4) on distinct values, and an odd
   * rectangular case */
  const int cases[2][6] = {{3, 32, 32, 32, 32, 4}, {2, 7, 5, 6, 3, 1}};
  for (int cs = 0; cs < 2; cs++) {
    int c = cases[cs][0], h = cases[cs][1], w = cases[cs][2];
    int oh = cases[cs][3], ow = cases[cs][4], p = cases[cs][5];
    const int64_t in[3] = {c, h, w};
    size_t nin = (size_t)(c * h * w), nout = (size_t)(c * oh * ow);
    uint8_t *px = random_pixels(nin, 17 + (uint64_t)cs);
    float *src = malloc(nin * sizeof *src);
    for (size_t i = 0; i < nin; i++) {
      px[i] = (uint8_t)(1 + px[i] % 254); /* never the fill */
      src[i] = (float)px[i];
    }
    tc_transform *tf = make();
    ck_assert_int_eq(tc_transform_add_random_crop(tf, oh, ow, p, 0.0f), TC_OK);
    int64_t shape[3];
    ck_assert_int_eq(tc_transform_output_shape(tf, in, shape), TC_OK);
    ck_assert_int_eq(shape[1], oh);
    ck_assert_int_eq(shape[2], ow);
    float *out = malloc(nout * sizeof *out), *again = malloc(nout * 4);
    int positions = (h + 2 * p - oh + 1) * (w + 2 * p - ow + 1);
    int *hits = calloc((size_t)1000 * 1000, sizeof *hits);
    int distinct = 0, epoch_differs = 0;
    const int samples = 400;
    for (int i = 0; i < samples; i++) {
      apply_ok(tf, px, in, out, nout, 1234, 2, (uint64_t)i);
      int where = find_window(src, c, h, w, p, 0.0f, out, oh, ow);
      ck_assert_msg(where >= 0, "sample %d: not a window", i);
      if (hits[where]++ == 0)
        distinct++;
      /* reproducible for the same key */
      apply_ok(tf, px, in, again, nout, 1234, 2, (uint64_t)i);
      ck_assert_mem_eq(out, again, nout * sizeof *out);
      apply_ok(tf, px, in, again, nout, 1234, 3, (uint64_t)i);
      epoch_differs += memcmp(out, again, nout * sizeof *out) != 0;
    }
    /* 400 uniform draws over 81 (or 12) offsets cover most of them */
    ck_assert_msg(distinct >= positions * 3 / 4, "%d of %d offsets", distinct,
                  positions);
    ck_assert_int_gt(epoch_differs, samples / 2);
    free(hits);
    free(out);
    free(again);
    free(src);
    free(px);
    tc_transform_destroy(tf);
  }
  /* a crop larger than the padded input does not fit */
  tc_transform *tf = make();
  ck_assert_int_eq(tc_transform_add_random_crop(tf, 10, 4, 1, 0.0f), TC_OK);
  const int64_t in[3] = {1, 8, 8};
  int64_t shape[3];
  ck_assert_int_eq(tc_transform_output_shape(tf, in, shape), TC_OK);
  const int64_t small[3] = {1, 7, 8};
  ck_assert_int_eq(tc_transform_output_shape(tf, small, shape), TC_ESHAPE);
  tc_transform_destroy(tf);
}
END_TEST

START_TEST(test_random_hflip) {
  const int64_t in[3] = {2, 3, 4};
  uint8_t *px = random_pixels(24, 3);
  float flipped[24], out[24];
  for (int r = 0; r < 6; r++)
    for (int x = 0; x < 4; x++)
      flipped[r * 4 + x] = (float)px[r * 4 + 3 - x];
  tc_transform *always = make(), *never = make(), *half = make();
  ck_assert_int_eq(tc_transform_add_random_hflip(always, 1.0f), TC_OK);
  ck_assert_int_eq(tc_transform_add_random_hflip(never, 0.0f), TC_OK);
  ck_assert_int_eq(tc_transform_add_random_hflip(half, 0.5f), TC_OK);
  int nflip = 0, differs = 0;
  for (int i = 0; i < 1000; i++) {
    apply_ok(always, px, in, out, 24, 5, 0, (uint64_t)i);
    ck_assert_mem_eq(out, flipped, sizeof out);
    apply_ok(never, px, in, out, 24, 5, 0, (uint64_t)i);
    for (int k = 0; k < 24; k++)
      ck_assert(out[k] == (float)px[k]);
    apply_ok(half, px, in, out, 24, 5, 0, (uint64_t)i);
    int f = memcmp(out, flipped, sizeof out) == 0;
    nflip += f;
    float o2[24];
    apply_ok(half, px, in, o2, 24, 6, 0, (uint64_t)i); /* another seed */
    differs += (memcmp(o2, flipped, sizeof o2) == 0) != f;
  }
  ck_assert_msg(nflip > 430 && nflip < 570, "%d flips of 1000", nflip);
  ck_assert_msg(differs > 400, "%d", differs);
  /* odd width: the middle column stays */
  const int64_t odd[3] = {1, 1, 5};
  const uint8_t row[5] = {1, 2, 3, 4, 5};
  apply_ok(always, row, odd, out, 5, 0, 0, 0);
  const float want[5] = {5, 4, 3, 2, 1};
  ck_assert_mem_eq(out, want, sizeof want);
  tc_transform_destroy(always);
  tc_transform_destroy(never);
  tc_transform_destroy(half);
  free(px);
}
END_TEST

START_TEST(test_cifar_augment_pipeline) {
  /* RandomCrop(32, 4) + RandomHorizontalFlip + ToTensor + Normalize: the
   * crop and flip draw independently (two operations, two offsets) */
  const int64_t in[3] = {3, 32, 32};
  uint8_t *px = random_pixels(3072, 9);
  tc_transform *tf = make();
  const float mean[3] = {0.4914f, 0.4822f, 0.4465f};
  const float sd[3] = {0.2470f, 0.2435f, 0.2616f};
  ck_assert_int_eq(tc_transform_add_random_crop(tf, 32, 32, 4, 0.0f), TC_OK);
  ck_assert_int_eq(tc_transform_add_random_hflip(tf, 0.5f), TC_OK);
  ck_assert_int_eq(tc_transform_add_to_float(tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 3, mean, sd), TC_OK);
  tc_transform *crop_only = make();
  ck_assert_int_eq(tc_transform_add_random_crop(crop_only, 32, 32, 4, 0.0f),
                   TC_OK);
  float *out = malloc(3072 * sizeof *out), *cr = malloc(3072 * sizeof *cr);
  for (int i = 0; i < 50; i++) {
    apply_ok(tf, px, in, out, 3072, 77, 1, (uint64_t)i);
    /* the same crop as the crop-only pipeline at the same key (operation
     * 0 in both), then possibly flipped, scaled and normalised */
    apply_ok(crop_only, px, in, cr, 3072, 77, 1, (uint64_t)i);
    int same = 1, mirrored = 1;
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
          volatile float v = cr[(c * 32 + y) * 32 + x] / 255.0f;
          volatile float vm = cr[(c * 32 + y) * 32 + 31 - x] / 255.0f;
          volatile float d = v - mean[c], dm = vm - mean[c];
          float want = d / sd[c], wantm = dm / sd[c];
          same &= out[(c * 32 + y) * 32 + x] == want;
          mirrored &= out[(c * 32 + y) * 32 + x] == wantm;
        }
    ck_assert_msg(same || mirrored, "sample %d", i);
  }
  free(out);
  free(cr);
  free(px);
  tc_transform_destroy(tf);
  tc_transform_destroy(crop_only);
}
END_TEST

START_TEST(test_errors) {
  tc_transform *tf = make();
  const float m = 0.5f, zero = 0.0f, inf = INFINITY;
  ck_assert_int_eq(tc_transform_create(NULL), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_to_float(NULL), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_gray_to_rgb(NULL), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_pad(NULL, 1, 1, 1, 1, 0), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_pad(tf, -1, 1, 1, 1, 0), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_pad(tf, 1, 1, 1, 70000, 0), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 1, NULL, &m), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 1, &m, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 0, &m, &m), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 1, &m, &zero), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 1, &m, &inf), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 1, &inf, &m), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_random_crop(tf, 0, 4, 0, 0), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_random_crop(tf, 4, 4, -1, 0), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_random_hflip(tf, -0.1f), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_random_hflip(tf, 1.5f), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_random_hflip(tf, NAN), TC_EINVAL);
  ck_assert_str_ne(tc_last_error(), "");
  /* nothing was added by the failures */
  const int64_t in[3] = {1, 2, 2};
  const uint8_t px[4] = {1, 2, 3, 4};
  float out[4];
  apply_ok(tf, px, in, out, 4, 0, 0, 0);
  ck_assert(out[3] == 4.0f);
  /* the pipeline holds TC_TRANSFORM_MAX_OPS */
  for (int k = 0; k < TC_TRANSFORM_MAX_OPS; k++)
    ck_assert_int_eq(tc_transform_add_normalize(tf, 1, &m, &m), TC_OK);
  ck_assert_int_eq(tc_transform_add_to_float(tf), TC_EINVAL);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 1, &m, &m), TC_EINVAL);
  /* apply / output_shape */
  int64_t shape[3];
  ck_assert_int_eq(tc_transform_output_shape(NULL, in, shape), TC_EINVAL);
  ck_assert_int_eq(tc_transform_output_shape(tf, NULL, shape), TC_EINVAL);
  ck_assert_int_eq(tc_transform_output_shape(tf, in, NULL), TC_EINVAL);
  const int64_t bad[3] = {0, 2, 2}, big[3] = {1, 70000, 2};
  ck_assert_int_eq(tc_transform_output_shape(tf, bad, shape), TC_ESHAPE);
  ck_assert_int_eq(tc_transform_output_shape(tf, big, shape), TC_ESHAPE);
  ck_assert_int_eq(tc_transform_apply(NULL, px, in, out, 4, 0, 0, 0),
                   TC_EINVAL);
  ck_assert_int_eq(tc_transform_apply(tf, NULL, in, out, 4, 0, 0, 0),
                   TC_EINVAL);
  ck_assert_int_eq(tc_transform_apply(tf, px, NULL, out, 4, 0, 0, 0),
                   TC_EINVAL);
  ck_assert_int_eq(tc_transform_apply(tf, px, in, NULL, 4, 0, 0, 0), TC_EINVAL);
  ck_assert_int_eq(tc_transform_apply(tf, px, in, out, 3, 0, 0, 0), TC_ESHAPE);
  ck_assert_int_eq(
      tc_transform_apply(tf, px, in, out, 4, 0, 0, (uint64_t)1 << 32),
      TC_EINVAL);
  /* padding that grows past the side limit */
  tc_transform *grow = make();
  for (int k = 0; k < 3; k++)
    ck_assert_int_eq(tc_transform_add_pad(grow, 0, 0, 30000, 0, 0), TC_OK);
  ck_assert_int_eq(tc_transform_output_shape(grow, in, shape), TC_ESHAPE);
  tc_transform_destroy(grow);
  tc_transform_destroy(tf);
}
END_TEST

START_TEST(test_alloc_failures) {
  tu_alloc_install();
  for (long k = 1;; k++) {
    tu_alloc_fail_at(k, 0);
    tc_transform *tf = NULL;
    const float m = 0.5f;
    tc_status st = tc_transform_create(&tf);
    if (st == TC_OK)
      st = tc_transform_add_normalize(tf, 1, &m, &m);
    float out[4];
    const int64_t in[3] = {1, 2, 2};
    const uint8_t px[4] = {1, 2, 3, 4};
    if (st == TC_OK)
      st = tc_transform_apply(tf, px, in, out, 4, 0, 0, 0);
    tc_transform_destroy(tf);
    ck_assert_int_eq(tu_alloc_live(), 0);
    if (!tu_alloc_failed()) {
      ck_assert_int_eq(st, TC_OK);
      break;
    }
    ck_assert_int_eq(st, TC_ENOMEM);
  }
  tu_alloc_uninstall();
}
END_TEST

typedef struct job {
  const tc_transform *tf;
  const uint8_t *px;
  float *out; /* 64 samples of 3*24*24 */
  int first, step;
} job;

static void *run_job(void *arg) {
  job *j = arg;
  const int64_t in[3] = {3, 20, 20};
  for (int i = j->first; i < 64; i += j->step)
    if (tc_transform_apply(j->tf, j->px, in, j->out + (size_t)i * 1728, 1728, 3,
                           4, (uint64_t)i) != TC_OK)
      return (void *)1;
  return NULL;
}

START_TEST(test_threads_agree) {
  /* a shared pipeline from 4 threads gives what one thread gives */
  uint8_t *px = random_pixels(1200, 21);
  tc_transform *tf = make();
  ck_assert_int_eq(tc_transform_add_pad(tf, 2, 2, 2, 2, 0.0f), TC_OK);
  ck_assert_int_eq(tc_transform_add_random_crop(tf, 24, 24, 2, 7.0f), TC_OK);
  ck_assert_int_eq(tc_transform_add_random_hflip(tf, 0.5f), TC_OK);
  float *one = malloc(64 * 1728 * sizeof *one);
  float *four = malloc(64 * 1728 * sizeof *four);
  job j1 = {tf, px, one, 0, 1};
  ck_assert_ptr_null(run_job(&j1));
  pthread_t th[4];
  job js[4];
  for (int t = 0; t < 4; t++) {
    js[t] = (job){tf, px, four, t, 4};
    ck_assert_int_eq(pthread_create(&th[t], NULL, run_job, &js[t]), 0);
  }
  for (int t = 0; t < 4; t++) {
    void *r;
    pthread_join(th[t], &r);
    ck_assert_ptr_null(r);
  }
  ck_assert_mem_eq(one, four, 64 * 1728 * sizeof *one);
  free(one);
  free(four);
  free(px);
  tc_transform_destroy(tf);
}
END_TEST

int main(void) {
  Suite *s = suite_create("transforms");
  TCase *tc = tcase_create("transforms");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_empty_and_to_float);
  tcase_add_test(tc, test_pad);
  tcase_add_test(tc, test_gray_normalize);
  tcase_add_test(tc, test_lenet_mnist_pipeline);
  tcase_add_test(tc, test_random_crop);
  tcase_add_test(tc, test_random_hflip);
  tcase_add_test(tc, test_cifar_augment_pipeline);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_alloc_failures);
  tcase_add_test(tc, test_threads_agree);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

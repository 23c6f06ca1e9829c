/*
 * test_cpu_pool2d.c - the CPU backend's max, average and global average
 * pooling against the naive references of tests/reference/pool.c (double
 * sums, windows walked cell by cell): random shapes (batch 1, odd sizes, stride
 * 2, padding, ceil-mode sizes, overlapping windows), ties and NaN in max
 * pooling, PyTorch's average divisors, accumulate on/off, thread-count
 * independence and argument errors. Called through the public backend table.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/pool.h"
#include "testutil.h"

#include "op_fixture.h"

static void open_cpu(void) {
  op_open_cpu();
  ck_assert_ptr_nonnull(it->maxpool2d_fwd);
  ck_assert_ptr_nonnull(it->maxpool2d_bwd);
  ck_assert_ptr_nonnull(it->avgpool2d_fwd);
  ck_assert_ptr_nonnull(it->avgpool2d_bwd);
  ck_assert_ptr_nonnull(it->global_avgpool_fwd);
  ck_assert_ptr_nonnull(it->global_avgpool_bwd);
}

static void setup(void) {
  open_cpu();
}
static void teardown(void) {
  op_close();
}

/* Device buffers: tensors on the cpu backend, so the library's own memory
 * path is used (op_fixture.h's registry, emptied by free_all()). */
static float *falloc(size_t n) {
  return op_tensor(n, TC_FLOAT32);
}
static int32_t *ialloc(size_t n) {
  return op_tensor(n, TC_INT32);
}

static void free_all(void) {
  op_free_all();
}

/* ---- random cases ---- */

typedef struct pcase {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw;
  int ceil_h, ceil_w, include_pad;
} pcase;

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}
static int64_t pick(uint64_t *s, int64_t lo, int64_t hi) {
  return lo + (int64_t)(lcg(s) % (uint64_t)(hi - lo + 1));
}

static void random_case(uint64_t *s, pcase *pc) {
  static const int64_t kh[][3] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 0}, {2, 1, 1},
                                  {1, 1, 0}, {5, 3, 2}, {4, 2, 1}};
  memset(pc, 0, sizeof *pc);
  pc->n = pick(s, 1, 3);
  pc->c = pick(s, 1, 4);
  const int64_t *a = kh[pick(s, 0, 6)], *b = kh[pick(s, 0, 6)];
  pc->kh = a[0], pc->sh = a[1], pc->ph = pick(s, 0, a[2]);
  pc->kw = b[0], pc->sw = b[1], pc->pw = pick(s, 0, b[2]);
  pc->h = pick(s, pc->kh > 2 * pc->ph ? pc->kh - 2 * pc->ph : 1, 13);
  pc->w = pick(s, pc->kw > 2 * pc->pw ? pc->kw - 2 * pc->pw : 1, 13);
  pc->ceil_h = (int)pick(s, 0, 1);
  pc->ceil_w = (int)pick(s, 0, 1);
  pc->include_pad = (int)pick(s, 0, 1);
}

static tc_pool2d_args make_args(const pcase *pc) {
  tc_pool2d_args a = {.struct_size = sizeof a};
  a.n = pc->n, a.c = pc->c, a.h = pc->h, a.w = pc->w;
  a.kh = pc->kh, a.kw = pc->kw, a.stride_h = pc->sh, a.stride_w = pc->sw;
  a.pad_h = pc->ph, a.pad_w = pc->pw;
  a.out_h = ref_pool_out_size(pc->h, pc->kh, pc->sh, pc->ph, pc->ceil_h);
  a.out_w = ref_pool_out_size(pc->w, pc->kw, pc->sw, pc->pw, pc->ceil_w);
  a.count_include_pad = pc->include_pad;
  return a;
}

static void describe(const tc_pool2d_args *a, char *buf, size_t n) {
  snprintf(buf, n,
           "x (%lld,%lld,%lld,%lld) k (%lld,%lld) s (%lld,%lld) p "
           "(%lld,%lld) out (%lld,%lld) incl %d acc %d",
           (long long)a->n, (long long)a->c, (long long)a->h, (long long)a->w,
           (long long)a->kh, (long long)a->kw, (long long)a->stride_h,
           (long long)a->stride_w, (long long)a->pad_h, (long long)a->pad_w,
           (long long)a->out_h, (long long)a->out_w, a->count_include_pad,
           a->accumulate);
}

/* Values: uniform, or quantised to quarters so that windows hold ties, or
 * with a few NaNs; all negative sometimes, so a padded zero would win if
 * padding were read. */
static void fill_x(float *x, size_t n, uint64_t seed, int mode) {
  tu_fill_uniform(x, n, seed, mode == 3 ? -3.f : -1.f, mode == 3 ? -1.f : 1.f);
  if (mode == 1)
    for (size_t i = 0; i < n; i++)
      x[i] = floorf(x[i] * 4.f) / 4.f;
  if (mode == 2)
    for (size_t i = 0; i < n; i += 7)
      x[i] = NAN;
}

static void check_maxpool(const pcase *pc, uint64_t seed, int mode, int acc) {
  tc_pool2d_args a = make_args(pc);
  a.accumulate = acc;
  size_t nx = (size_t)(a.n * a.c * a.h * a.w);
  size_t ny = (size_t)(a.n * a.c * a.out_h * a.out_w);
  float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx);
  int32_t *am = ialloc(ny);
  float *wy = malloc(ny * sizeof *wy), *wdx = malloc(nx * sizeof *wdx);
  int32_t *wam = malloc(ny * sizeof *wam);
  char d[256];
  describe(&a, d, sizeof d);
  fill_x(x, nx, seed, mode);
  tu_fill_uniform(dy, ny, seed + 1, -1.f, 1.f);
  tu_fill_uniform(dx, nx, seed + 2, -1.f, 1.f);
  a.x = x, a.y = y, a.argmax = am, a.dy = dy, a.dx = dx;
  memcpy(wdx, dx, nx * sizeof *wdx);
  tc_pool2d_args r = a; /* the reference, on its own outputs */
  r.y = wy, r.argmax = wam, r.dx = wdx;
  ref_maxpool2d_fwd(&r);
  for (size_t o = 0; o < ny; o++) /* no window of padding alone */
    ck_assert_msg(wam[o] >= 0, "%s: empty window %zu", d, o);
  ref_maxpool2d_bwd(&r);

  ck_assert_int_eq(it->maxpool2d_fwd(ctx, &a), TC_OK);
  for (size_t o = 0; o < ny; o++) {
    ck_assert_msg(am[o] == wam[o], "%s mode %d: argmax[%zu] %d, want %d", d,
                  mode, o, am[o], wam[o]);
    ck_assert_msg(memcmp(&y[o], &wy[o], sizeof(float)) == 0 ||
                      (isnan(y[o]) && isnan(wy[o])),
                  "%s mode %d: y[%zu] %g, want %g", d, mode, o, (double)y[o],
                  (double)wy[o]);
  }
  ck_assert_int_eq(it->maxpool2d_bwd(ctx, &a), TC_OK);
  ck_assert_msg(tu_max_rel_err(dx, wdx, nx) <= 1e-5, "%s: dx err %.3g", d,
                tu_max_rel_err(dx, wdx, nx));
  free(wy), free(wdx), free(wam);
  free_all();
}

static void check_avgpool(const pcase *pc, uint64_t seed, int acc) {
  tc_pool2d_args a = make_args(pc);
  a.accumulate = acc;
  size_t nx = (size_t)(a.n * a.c * a.h * a.w);
  size_t ny = (size_t)(a.n * a.c * a.out_h * a.out_w);
  float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx);
  float *wy = malloc(ny * sizeof *wy), *wdx = malloc(nx * sizeof *wdx);
  char d[256];
  describe(&a, d, sizeof d);
  tu_fill_uniform(x, nx, seed, -1.f, 1.f);
  tu_fill_uniform(dy, ny, seed + 1, -1.f, 1.f);
  tu_fill_uniform(dx, nx, seed + 2, -1.f, 1.f);
  a.x = x, a.y = y, a.dy = dy, a.dx = dx;
  memcpy(wdx, dx, nx * sizeof *wdx);
  tc_pool2d_args r = a;
  r.y = wy, r.dx = wdx;
  ref_avgpool2d_fwd(&r);
  ref_avgpool2d_bwd(&r);
  ck_assert_int_eq(it->avgpool2d_fwd(ctx, &a), TC_OK);
  ck_assert_msg(tu_max_rel_err(y, wy, ny) <= 1e-5, "%s: y err %.3g", d,
                tu_max_rel_err(y, wy, ny));
  ck_assert_int_eq(it->avgpool2d_bwd(ctx, &a), TC_OK);
  ck_assert_msg(tu_max_rel_err(dx, wdx, nx) <= 1e-5, "%s: dx err %.3g", d,
                tu_max_rel_err(dx, wdx, nx));
  free(wy), free(wdx);
  free_all();
}

START_TEST(test_maxpool_random) {
  uint64_t s = 12345;
  for (int i = 0; i < 160; i++) {
    pcase pc;
    random_case(&s, &pc);
    check_maxpool(&pc, 1000 + (uint64_t)i, i % 4, (i / 4) % 2);
  }
}
END_TEST

/* The 2x2 stride-2 fast path (vector loads of 8 or 16 outputs, masked row
 * ends) needs wide rows to be reached: widths up to 45, odd and even. */
START_TEST(test_maxpool_2x2_wide) {
  uint64_t s = 4242;
  for (int i = 0; i < 120; i++) {
    pcase pc;
    memset(&pc, 0, sizeof pc);
    pc.n = pick(&s, 1, 2);
    pc.c = pick(&s, 1, 3);
    pc.kh = pc.kw = pc.sh = pc.sw = 2;
    pc.h = pick(&s, 2, 20);
    pc.w = pick(&s, 2, 45);
    pc.ceil_h = (int)pick(&s, 0, 1);
    pc.ceil_w = (int)pick(&s, 0, 1);
    check_maxpool(&pc, 5000 + (uint64_t)i, i % 4, (i / 4) % 2);
  }
}
END_TEST

/* An argmax in the plane but outside its own 2x2 window (not what forward
 * writes, but valid input): the 2x2 backward paths must notice and fall
 * back to a plain scatter. Widths reach the grouped AVX-512 path (w <= 32,
 * several row pairs per group) and the row paths (w > 32). */
START_TEST(test_maxpool_2x2_foreign_argmax) {
  static const int64_t hw[][2] = {{10, 10}, {28, 28}, {4, 8},
                                  {2, 2},   {6, 40},  {12, 6}};
  for (size_t s = 0; s < sizeof hw / sizeof hw[0]; s++)
    for (int acc = 0; acc < 2; acc++) {
      pcase pc = {2, 3, hw[s][0], hw[s][1], 2, 2, 2, 2, 0, 0, 0, 0, 0};
      tc_pool2d_args a = make_args(&pc);
      a.accumulate = acc;
      size_t nx = (size_t)(a.n * a.c * a.h * a.w);
      size_t ny = (size_t)(a.n * a.c * a.out_h * a.out_w);
      size_t ihw = (size_t)(a.h * a.w);
      float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny);
      float *dx = falloc(nx), *wdx = falloc(nx);
      int32_t *am = ialloc(ny);
      tu_fill_uniform(x, nx, 90 + s, -1.f, 1.f);
      tu_fill_uniform(dy, ny, 91 + s, -1.f, 1.f);
      tu_fill_uniform(dx, nx, 92 + s, -1.f, 1.f);
      a.x = x, a.y = y, a.argmax = am, a.dy = dy, a.dx = dx;
      ck_assert_int_eq(it->maxpool2d_fwd(ctx, &a), TC_OK);
      /* one output of the last plane, and of the first plane when acc */
      am[ny - 1] = (int32_t)((am[ny - 1] + 3 * a.w + 5) % (int64_t)ihw);
      if (acc)
        am[0] = (int32_t)(ihw - 1);
      memcpy(wdx, dx, nx * sizeof *wdx);
      tc_pool2d_args r = a; /* scatters to the argmax as given */
      r.dx = wdx;
      ref_maxpool2d_bwd(&r);
      ck_assert_int_eq(it->maxpool2d_bwd(ctx, &a), TC_OK);
      TU_ASSERT_CLOSE(dx, wdx, nx, 1e-6);
      free_all();
    }
}
END_TEST

START_TEST(test_avgpool_random) {
  uint64_t s = 777;
  for (int i = 0; i < 160; i++) {
    pcase pc;
    random_case(&s, &pc);
    check_avgpool(&pc, 2000 + (uint64_t)i, i % 2);
  }
}
END_TEST

/* Shapes of the usual networks, batch 1 and larger planes, overlapping
 * windows (kernel 3 stride 2) and many planes per task. */
START_TEST(test_pool_common_shapes) {
  static const pcase cases[] = {
      {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
      {1, 3, 28, 28, 2, 2, 2, 2, 0, 0, 0, 0, 1},
      {2, 6, 24, 24, 2, 2, 2, 2, 0, 0, 0, 0, 1},
      {1, 8, 32, 32, 3, 3, 2, 2, 1, 1, 0, 0, 1},
      {3, 5, 17, 15, 3, 3, 2, 2, 1, 1, 1, 1, 0},
      {3, 5, 17, 15, 3, 3, 2, 2, 0, 0, 1, 1, 1},
      {2, 64, 8, 8, 2, 2, 2, 2, 0, 0, 1, 0, 0},
      {1, 2, 7, 9, 3, 3, 1, 1, 1, 1, 0, 0, 0},
      {2, 3, 5, 5, 5, 5, 1, 1, 2, 2, 0, 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int acc = 0; acc < 2; acc++) {
      check_maxpool(&cases[i], 3000 + i, (int)i % 4, acc);
      check_avgpool(&cases[i], 3100 + i, acc);
    }
}
END_TEST

/* Hand-checked values: ties pick the first cell, padding is never chosen
 * (all values negative), a NaN wins, an all -inf window keeps its first
 * cell. 1x1x3x4, kernel 2, stride 2, pad 1, floor -> out 2x3. */
START_TEST(test_maxpool_hand) {
  float *x = falloc(12), *y = falloc(6);
  int32_t *am = ialloc(6);
  const float xv[12] = {-5, -2,        -2,        -7, /* row 0 */
                        -1, -1,        NAN,       -3, /* row 1 */
                        -4, -INFINITY, -INFINITY, -9};
  memcpy(x, xv, sizeof xv);
  tc_pool2d_args a = {.struct_size = sizeof a};
  a.n = 1, a.c = 1, a.h = 3, a.w = 4, a.kh = 2, a.kw = 2;
  a.stride_h = 2, a.stride_w = 2, a.pad_h = 1, a.pad_w = 1;
  a.out_h = 2, a.out_w = 3, a.x = x, a.y = y, a.argmax = am;
  ck_assert_int_eq(it->maxpool2d_fwd(ctx, &a), TC_OK);
  /* windows: rows {-1,0} / {1,2}, cols {-1,0} / {1,2} / {3,4} */
  ck_assert_float_eq(y[0], -5.f);
  ck_assert_int_eq(am[0], 0);
  ck_assert_float_eq(y[1], -2.f); /* tie -2,-2: first */
  ck_assert_int_eq(am[1], 1);
  ck_assert_float_eq(y[2], -7.f);
  ck_assert_int_eq(am[2], 3);
  ck_assert_float_eq(y[3], -1.f);
  ck_assert_int_eq(am[3], 4);
  ck_assert(isnan(y[4])); /* NaN wins over -1 */
  ck_assert_int_eq(am[4], 6);
  ck_assert_float_eq(y[5], -3.f);
  ck_assert_int_eq(am[5], 7);
  /* an all -inf window: -inf at its first real cell */
  x[4] = x[8] = -INFINITY;
  ck_assert_int_eq(it->maxpool2d_fwd(ctx, &a), TC_OK);
  ck_assert(isinf(y[3]) && y[3] < 0);
  ck_assert_int_eq(am[3], 4);
  /* overlapping windows (kernel 2, stride 1) that share a maximum: the
   * backward adds both contributions into one cell */
  float *x2 = falloc(3), *y2 = falloc(2), *dy = falloc(2), *dx = falloc(3);
  int32_t *am2 = ialloc(2);
  x2[0] = 0.f, x2[1] = 9.f, x2[2] = 1.f;
  dy[0] = 0.5f, dy[1] = 0.25f;
  dx[0] = dx[1] = dx[2] = 100.f;
  tc_pool2d_args b = {.struct_size = sizeof b};
  b.n = 1, b.c = 1, b.h = 1, b.w = 3, b.kh = 1, b.kw = 2, b.stride_h = 1;
  b.stride_w = 1, b.out_h = 1, b.out_w = 2;
  b.x = x2, b.y = y2, b.argmax = am2, b.dy = dy, b.dx = dx;
  ck_assert_int_eq(it->maxpool2d_fwd(ctx, &b), TC_OK);
  ck_assert_int_eq(am2[0], 1);
  ck_assert_int_eq(am2[1], 1);
  ck_assert_int_eq(it->maxpool2d_bwd(ctx, &b), TC_OK);
  ck_assert_float_eq(dx[0], 0.f);
  ck_assert_float_eq(dx[1], 0.75f);
  ck_assert_float_eq(dx[2], 0.f);
  b.accumulate = 1;
  ck_assert_int_eq(it->maxpool2d_bwd(ctx, &b), TC_OK);
  ck_assert_float_eq(dx[1], 1.5f);
  free_all();
}
END_TEST

/* NaN through the 2x2 stride-2 fast paths, hand-computed (PyTorch's
 * `val > max || isnan(val)`): a window holding NaN gives NaN and the index
 * of its last NaN in raster order, and the backward routes dy there. Widths
 * 8, 28 (the grouped AVX-512 path) and 40, 18 (row paths, masked ends). */
START_TEST(test_maxpool_2x2_nan) {
  /* corners in raster order (top-left, top-right, bottom-left, bottom-right)
   * and the corner that must win */
  static const float pat[][4] = {{1.f, NAN, 3.f, NAN},
                                 {NAN, 5.f, -1.f, 2.f},
                                 {-INFINITY, -INFINITY, -INFINITY, -INFINITY},
                                 {-0.f, 0.f, -1.f, -2.f},
                                 {2.f, INFINITY, NAN, 7.f},
                                 {-3.f, -1.f, -2.f, -1.f}};
  static const int win[] = {3, 0, 0, 0, 2, 1};
  static const int64_t widths[] = {8, 28, 40, 18};
  for (size_t s = 0; s < sizeof widths / sizeof widths[0]; s++) {
    pcase pc = {1, 3, 6, widths[s], 2, 2, 2, 2, 0, 0, 0, 0, 0};
    tc_pool2d_args a = make_args(&pc);
    int64_t w = a.w, hw = a.h * a.w, ohw = a.out_h * a.out_w;
    size_t nx = (size_t)(a.c * hw), ny = (size_t)(a.c * ohw);
    float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx);
    int32_t *am = ialloc(ny);
    for (int64_t o = 0; o < (int64_t)ny; o++) {
      int64_t p = o / ohw, oh = o % ohw / a.out_w, ow = o % a.out_w;
      int k = (int)((o * 5 + p) % 6);
      for (int q = 0; q < 4; q++)
        x[p * hw + (2 * oh + q / 2) * w + 2 * ow + q % 2] = pat[k][q];
      dy[o] = 1.f + (float)o;
    }
    a.x = x, a.y = y, a.argmax = am, a.dy = dy, a.dx = dx;
    ck_assert_int_eq(it->maxpool2d_fwd(ctx, &a), TC_OK);
    for (int64_t o = 0; o < (int64_t)ny; o++) {
      int64_t p = o / ohw, oh = o % ohw / a.out_w, ow = o % a.out_w;
      int k = (int)((o * 5 + p) % 6), q = win[k];
      int32_t want = (int32_t)((2 * oh + q / 2) * w + 2 * ow + q % 2);
      ck_assert_msg(am[o] == want, "w %lld out %lld: argmax %d want %d",
                    (long long)w, (long long)o, am[o], want);
      ck_assert_msg(memcmp(&y[o], &pat[k][q], sizeof(float)) == 0 ||
                        (isnan(y[o]) && isnan(pat[k][q])),
                    "w %lld out %lld: y %g want %g", (long long)w, (long long)o,
                    (double)y[o], (double)pat[k][q]);
    }
    ck_assert_int_eq(it->maxpool2d_bwd(ctx, &a), TC_OK);
    for (int64_t i = 0; i < (int64_t)nx; i++) {
      int64_t p = i / hw, r = i % hw / w, col = i % w;
      int64_t o = p * ohw + r / 2 * a.out_w + col / 2;
      float want = am[o] == (int32_t)(i % hw) ? dy[o] : 0.f;
      ck_assert_msg(dx[i] == want, "w %lld dx[%lld] %g want %g", (long long)w,
                    (long long)i, (double)dx[i], (double)want);
    }
    free_all();
  }
}
END_TEST

/* PyTorch's divisors in ceil mode: a last window past the padded edge
 * divides by its part inside [-pad, h+pad) (count_include_pad) or by its
 * real cells. */
START_TEST(test_avgpool_hand) {
  float *x = falloc(5), *y = falloc(3), *dy = falloc(3), *dx = falloc(5);
  for (int i = 0; i < 5; i++)
    x[i] = (float)(1 << i); /* 1 2 4 8 16 */
  tc_pool2d_args a = {.struct_size = sizeof a};
  /* w 5, kernel 2, stride 2, pad 0, ceil: out 3, last window {4, (5)} */
  a.n = 1, a.c = 1, a.h = 1, a.w = 5, a.kh = 1, a.kw = 2;
  a.stride_h = 1, a.stride_w = 2, a.out_h = 1, a.out_w = 3;
  a.x = x, a.y = y, a.dy = dy, a.dx = dx;
  for (int incl = 0; incl < 2; incl++) {
    a.count_include_pad = incl;
    ck_assert_int_eq(it->avgpool2d_fwd(ctx, &a), TC_OK);
    ck_assert_float_eq(y[0], 1.5f);
    ck_assert_float_eq(y[1], 6.f);
    ck_assert_float_eq(y[2], 16.f); /* divisor 1 either way */
  }
  /* w 4, kernel 3, stride 2, pad 1, ceil: out 3; windows {-1,0,1},
   * {1,2,3}, {3,(4),(5)}: cell 4 is padding, 5 lies past it */
  a.w = 4, a.kw = 3, a.pad_w = 0, a.out_w = 3;
  a.kh = 1, a.pad_h = 0;
  a.pad_w = 1;
  a.count_include_pad = 1;
  ck_assert_int_eq(it->avgpool2d_fwd(ctx, &a), TC_OK);
  ck_assert_float_eq(y[0], 1.f);        /* (0+1+2)/3 */
  ck_assert_float_eq(y[1], 14.f / 3.f); /* (2+4+8)/3 */
  ck_assert_float_eq(y[2], 4.f);        /* (8+pad)/2 */
  dy[0] = 3.f, dy[1] = 6.f, dy[2] = 2.f;
  ck_assert_int_eq(it->avgpool2d_bwd(ctx, &a), TC_OK);
  ck_assert_float_eq(dx[0], 1.f);
  ck_assert_float_eq(dx[1], 3.f); /* 1 + 2 */
  ck_assert_float_eq(dx[2], 2.f);
  ck_assert_float_eq(dx[3], 3.f); /* 2 + 1 */
  a.count_include_pad = 0;
  ck_assert_int_eq(it->avgpool2d_fwd(ctx, &a), TC_OK);
  ck_assert_float_eq(y[0], 1.5f);
  ck_assert_float_eq(y[2], 8.f);
  free_all();
}
END_TEST

START_TEST(test_global_avgpool) {
  static const int64_t shapes[][3] = {
      {1, 1, 1}, {1, 3, 49}, {2, 7, 64}, {5, 16, 9}, {3, 2, 10000}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int acc = 0; acc < 2; acc++) {
      int64_t n = shapes[i][0], c = shapes[i][1], s = shapes[i][2];
      size_t nx = (size_t)(n * c * s), ny = (size_t)(n * c);
      float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny);
      float *dx = falloc(nx);
      float *wy = malloc(ny * sizeof *wy), *wdx = malloc(nx * sizeof *wdx);
      tu_fill_uniform(x, nx, 40 + i, -1.f, 3.f);
      tu_fill_uniform(dy, ny, 50 + i, -1.f, 1.f);
      tu_fill_uniform(dx, nx, 60 + i, -1.f, 1.f);
      memcpy(wdx, dx, nx * sizeof *wdx);
      tc_gap_args g = {.struct_size = sizeof g};
      g.n = n, g.c = c, g.spatial = s, g.x = x, g.y = y, g.dy = dy, g.dx = dx;
      g.accumulate = acc;
      tc_gap_args r = g;
      r.y = wy, r.dx = wdx;
      ref_global_avgpool_fwd(&r);
      ref_global_avgpool_bwd(&r);
      ck_assert_int_eq(it->global_avgpool_fwd(ctx, &g), TC_OK);
      TU_ASSERT_CLOSE(y, wy, ny, 1e-5);
      ck_assert_int_eq(it->global_avgpool_bwd(ctx, &g), TC_OK);
      TU_ASSERT_CLOSE(dx, wdx, nx, 1e-5);
      free(wy), free(wdx);
      free_all();
    }
}
END_TEST

/* Same bits with 1 and 3 threads (many planes per task, several tasks). */
static void pool_with_threads(int threads, float *out, size_t nout) {
  ck_assert_int_eq(tc_set_num_threads(threads), TC_OK);
  open_cpu();
  pcase pc = {4, 24, 19, 21, 3, 3, 2, 2, 1, 1, 1, 0, 0};
  tc_pool2d_args a = make_args(&pc);
  size_t nx = (size_t)(a.n * a.c * a.h * a.w);
  size_t ny = (size_t)(a.n * a.c * a.out_h * a.out_w);
  ck_assert_uint_eq(nout, 2 * ny + 2 * nx);
  float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx);
  int32_t *am = ialloc(ny);
  tu_fill_uniform(x, nx, 5, -1.f, 1.f);
  tu_fill_uniform(dy, ny, 6, -1.f, 1.f);
  a.x = x, a.y = y, a.argmax = am, a.dy = dy, a.dx = dx;
  ck_assert_int_eq(it->maxpool2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->maxpool2d_bwd(ctx, &a), TC_OK);
  memcpy(out, y, ny * sizeof *out);
  memcpy(out + ny, dx, nx * sizeof *out);
  ck_assert_int_eq(it->avgpool2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->avgpool2d_bwd(ctx, &a), TC_OK);
  memcpy(out + ny + nx, y, ny * sizeof *out);
  memcpy(out + 2 * ny + nx, dx, nx * sizeof *out);
  op_destroy();
}

START_TEST(test_pool_thread_independent) {
  op_destroy();
  pcase pc = {4, 24, 19, 21, 3, 3, 2, 2, 1, 1, 1, 0, 0};
  tc_pool2d_args a = make_args(&pc);
  size_t n = (size_t)(2 * a.n * a.c * (a.h * a.w + a.out_h * a.out_w));
  float *o1 = malloc(n * sizeof *o1), *o3 = malloc(n * sizeof *o3);
  pool_with_threads(1, o1, n);
  pool_with_threads(3, o3, n);
  ck_assert_msg(memcmp(o1, o3, n * sizeof *o1) == 0,
                "results differ between 1 and 3 threads");
  free(o1), free(o3);
  tc_set_num_threads(0);
  open_cpu();
}
END_TEST

typedef tc_status (*pool_fn)(void *, const tc_pool2d_args *);

static void expect_pool_einval(pool_fn f, const tc_pool2d_args *a,
                               const float *out, size_t n, const float *keep) {
  tc_clear_error();
  ck_assert_int_eq(f(ctx, a), TC_EINVAL);
  ck_assert_msg(strlen(tc_last_error()) > 0, "no message");
  if (out)
    ck_assert_msg(memcmp(out, keep, n * sizeof *out) == 0,
                  "output changed on failure");
}

START_TEST(test_pool_errors) {
  float *x = falloc(64), *y = falloc(64), *dy = falloc(64), *dx = falloc(64);
  int32_t *am = ialloc(64);
  float keep_y[64], keep_dx[64];
  tu_fill_uniform(x, 64, 1, -1.f, 1.f);
  tu_fill_uniform(y, 64, 2, -1.f, 1.f);
  tu_fill_uniform(dy, 64, 3, -1.f, 1.f);
  tu_fill_uniform(dx, 64, 4, -1.f, 1.f);
  memcpy(keep_y, y, sizeof keep_y);
  memcpy(keep_dx, dx, sizeof keep_dx);
  tc_pool2d_args ok = {.struct_size = sizeof ok};
  ok.n = 1, ok.c = 2, ok.h = 5, ok.w = 5, ok.kh = 2, ok.kw = 2;
  ok.stride_h = 2, ok.stride_w = 2, ok.out_h = 2, ok.out_w = 2;
  ok.x = x, ok.y = y, ok.argmax = am, ok.dy = dy, ok.dx = dx;
  pool_fn fwd[2] = {it->maxpool2d_fwd, it->avgpool2d_fwd};
  pool_fn bwd[2] = {it->maxpool2d_bwd, it->avgpool2d_bwd};
  tc_pool2d_args a;
  for (int k = 0; k < 2; k++) {
    pool_fn f = fwd[k], b = bwd[k];
    expect_pool_einval(f, NULL, y, 64, keep_y);
    expect_pool_einval(b, NULL, dx, 64, keep_dx);
    tc_clear_error();
    ck_assert_int_eq(f(NULL, &ok), TC_EINVAL);
    a = ok, a.struct_size = sizeof a - 8;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.n = -1;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.h = 0;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.kw = 0;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.stride_h = 0;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.pad_w = -1;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.pad_h = 2, a.out_h = 4; /* pad > kernel/2 */
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.out_h = 4; /* neither floor (2) nor ceil (3) */
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.out_w = 1;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.kh = 6, a.out_h = 1; /* kernel larger than the input */
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.x = NULL;
    expect_pool_einval(f, &a, y, 64, keep_y);
    a = ok, a.y = NULL;
    expect_pool_einval(f, &a, NULL, 0, NULL);
    a = ok, a.dy = NULL;
    expect_pool_einval(b, &a, dx, 64, keep_dx);
    a = ok, a.dx = NULL;
    expect_pool_einval(b, &a, NULL, 0, NULL);
    /* empty batch: nothing read or written, NULLs allowed */
    a = ok, a.n = 0, a.x = a.y = NULL, a.dx = NULL;
    ck_assert_int_eq(f(ctx, &a), TC_OK);
    ck_assert_int_eq(b(ctx, &a), TC_OK);
    /* ceil-mode size is accepted */
    a = ok, a.out_h = 3, a.out_w = 3;
    ck_assert_int_eq(f(ctx, &a), TC_OK);
    memcpy(keep_y, y, sizeof keep_y);
  }
  a = ok, a.argmax = NULL;
  expect_pool_einval(it->maxpool2d_fwd, &a, y, 64, keep_y);
  expect_pool_einval(it->maxpool2d_bwd, &a, dx, 64, keep_dx);
  /* an argmax outside the plane is refused before dx is touched */
  ck_assert_int_eq(it->maxpool2d_fwd(ctx, &ok), TC_OK);
  memcpy(keep_y, y, sizeof keep_y);
  am[7] = 25;
  expect_pool_einval(it->maxpool2d_bwd, &ok, dx, 64, keep_dx);
  am[7] = -1;
  expect_pool_einval(it->maxpool2d_bwd, &ok, dx, 64, keep_dx);

  tc_gap_args g = {.struct_size = sizeof g};
  g.n = 2, g.c = 3, g.spatial = 4, g.x = x, g.y = y, g.dy = dy, g.dx = dx;
  tc_gap_args h;
  tc_clear_error();
  ck_assert_int_eq(it->global_avgpool_fwd(ctx, NULL), TC_EINVAL);
  ck_assert_int_eq(it->global_avgpool_bwd(ctx, NULL), TC_EINVAL);
  h = g, h.struct_size = 8;
  ck_assert_int_eq(it->global_avgpool_fwd(ctx, &h), TC_EINVAL);
  h = g, h.spatial = 0;
  ck_assert_int_eq(it->global_avgpool_fwd(ctx, &h), TC_EINVAL);
  h = g, h.c = -2;
  ck_assert_int_eq(it->global_avgpool_bwd(ctx, &h), TC_EINVAL);
  h = g, h.x = NULL;
  ck_assert_int_eq(it->global_avgpool_fwd(ctx, &h), TC_EINVAL);
  h = g, h.dx = NULL;
  ck_assert_int_eq(it->global_avgpool_bwd(ctx, &h), TC_EINVAL);
  ck_assert_msg(memcmp(y, keep_y, sizeof keep_y) == 0, "y changed");
  ck_assert_msg(memcmp(dx, keep_dx, sizeof keep_dx) == 0, "dx changed");
  h = g, h.n = 0, h.x = h.y = h.dx = NULL;
  ck_assert_int_eq(it->global_avgpool_fwd(ctx, &h), TC_OK);
  ck_assert_int_eq(it->global_avgpool_bwd(ctx, &h), TC_OK);
  free_all();
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_pool2d");
  TCase *tc = tcase_create("pool2d");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_maxpool_random);
  tcase_add_test(tc, test_maxpool_2x2_wide);
  tcase_add_test(tc, test_maxpool_2x2_foreign_argmax);
  tcase_add_test(tc, test_avgpool_random);
  tcase_add_test(tc, test_pool_common_shapes);
  tcase_add_test(tc, test_maxpool_hand);
  tcase_add_test(tc, test_maxpool_2x2_nan);
  tcase_add_test(tc, test_avgpool_hand);
  tcase_add_test(tc, test_global_avgpool);
  tcase_add_test(tc, test_pool_thread_independent);
  tcase_add_test(tc, test_pool_errors);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

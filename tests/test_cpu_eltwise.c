/*
 * test_cpu_eltwise.c - the CPU backend's elementwise ops (relu forward and
 * backward, add, scale, axpy, fill), per-channel bias add and bias grad,
 * the strided 4-D copy and the int64 counters, against the naive
 * references of tests/reference/eltwise.c: odd and multi-block sizes,
 * in-place use, accumulate, bit-exact int32 fill, thread-count
 * independence of bias grad, and argument errors. Called through the
 * public backend table on CPU memory.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/eltwise.h"
#include "testutil.h"

#include "op_fixture.h"

static void setup(void) {
  op_open_cpu();
  ck_assert_ptr_nonnull(it->relu_fwd);
  ck_assert_ptr_nonnull(it->copy4d);
}
static void teardown(void) {
  op_close();
}

static float *dalloc(size_t n) {
  return op_alloc(n * sizeof(float));
}

static float *halloc(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  return p;
}

/* Sizes: single element, odd, around and across the op's block size. */
static const int64_t sizes[] = {1, 2, 7, 33, 1000, 16383, 16385, 40001};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Uniform values in [-1, 1) with some exact zeros sprinkled in. */
static void fill_signed(float *x, int64_t n, uint64_t seed) {
  tu_fill_uniform(x, (size_t)n, seed, -1.f, 1.f);
  for (int64_t i = 0; i < n; i += 5)
    x[i] = 0.f;
}

static void assert_bits_eq(const float *got, const float *want, int64_t n,
                           const char *what) {
  for (int64_t i = 0; i < n; i++) /* abort only on failure: cheap */
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
      ck_abort_msg("%s: element %lld: got %.9g want %.9g", what, (long long)i,
                   (double)got[i], (double)want[i]);
}

START_TEST(test_relu) {
  for (size_t s = 0; s < NSIZES; s++) {
    int64_t n = sizes[s];
    float *x = dalloc((size_t)n), *y = dalloc((size_t)n + 1);
    float *dy = dalloc((size_t)n), *dx = dalloc((size_t)n + 1);
    float *want = halloc((size_t)n);
    fill_signed(x, n, 10 + s);
    tu_fill_uniform(dy, (size_t)n, 20 + s, -2.f, 2.f);
    y[n] = 123.f, dx[n] = 456.f; /* guards */
    tc_eltwise_args a = {.struct_size = sizeof a, .n = n, .a = x, .y = y};
    ck_assert_int_eq(it->relu_fwd(ctx, &a), TC_OK);
    tc_eltwise_args r = a; /* the reference into `want` */
    r.y = want;
    ref_relu_fwd(&r);
    assert_bits_eq(y, want, n, "relu_fwd");
    ck_assert_float_eq(y[n], 123.f);
    /* backward takes the forward output: zeros pass no gradient */
    tc_eltwise_args b = {
        .struct_size = sizeof b, .n = n, .a = y, .b = dy, .y = dx};
    ck_assert_int_eq(it->relu_bwd(ctx, &b), TC_OK);
    r = b, r.y = want;
    ref_relu_bwd(&r);
    assert_bits_eq(dx, want, n, "relu_bwd");
    ck_assert_float_eq(dx[n], 456.f);
    /* in place: the gradient buffer overwritten by its own result */
    b.y = dy;
    ck_assert_int_eq(it->relu_bwd(ctx, &b), TC_OK);
    assert_bits_eq(dy, want, n, "relu_bwd in place");
    /* forward in place */
    fill_signed(x, n, 30 + s);
    r = a, r.y = want;
    ref_relu_fwd(&r);
    a.y = x;
    ck_assert_int_eq(it->relu_fwd(ctx, &a), TC_OK);
    assert_bits_eq(x, want, n, "relu_fwd in place");
    it->free(ctx, x), it->free(ctx, y), it->free(ctx, dy), it->free(ctx, dx);
    free(want);
  }
}
END_TEST

/* Special values, hand-checked against PyTorch's rules: relu keeps NaN
 * (torch.relu(nan) is nan, its bits unchanged here), +inf, and maps -inf,
 * -0 and negatives to +0 (PyTorch gives -0 for -0: see tinycnn_backend.h);
 * relu_bwd passes dy where the output is > 0 only (threshold_backward: a
 * NaN output gets 0), and a NaN dy through where it is. Lengths cover the
 * vector blocks and the scalar tail, in place and not. */
START_TEST(test_relu_special) {
  uint32_t nan_payload = 0x7fc12345u, nneg = 0xffc00000u;
  float vals[12] = {NAN, 0,    INFINITY, -INFINITY, -0.f,    0.f,
                    1.f, -1.f, 1e-40f,   -1e-40f,   3.4e38f, 0};
  memcpy(&vals[1], &nneg, sizeof nneg);
  memcpy(&vals[11], &nan_payload, sizeof nan_payload);
  static const int64_t lens[] = {12, 45, 100};
  for (size_t s = 0; s < sizeof lens / sizeof lens[0]; s++) {
    int64_t n = lens[s];
    float *x = dalloc((size_t)n), *y = dalloc((size_t)n);
    float *dy = dalloc((size_t)n), *dx = dalloc((size_t)n);
    float *want = halloc((size_t)n);
    for (int64_t i = 0; i < n; i++) {
      x[i] = vals[(i * 7 + (int64_t)s) % 12];
      dy[i] = i % 3 == 0 ? NAN : 0.5f + (float)i;
      int keep = isnan(x[i]) || x[i] > 0.f;
      want[i] = keep ? x[i] : 0.f;
    }
    for (int inplace = 0; inplace < 2; inplace++) {
      float *out = inplace ? x : y;
      tc_eltwise_args a = {.struct_size = sizeof a, .n = n, .a = x, .y = out};
      ck_assert_int_eq(it->relu_fwd(ctx, &a), TC_OK);
      assert_bits_eq(out, want, n,
                     inplace ? "relu_fwd special in place"
                             : "relu_fwd special");
      for (int64_t i = 0; i < n; i++)
        ck_assert(!signbit(out[i]) || isnan(out[i])); /* +0, never -0 */
    }
    /* backward from that output (x now holds it) */
    tc_eltwise_args b = {
        .struct_size = sizeof b, .n = n, .a = x, .b = dy, .y = dx};
    ck_assert_int_eq(it->relu_bwd(ctx, &b), TC_OK);
    for (int64_t i = 0; i < n; i++) {
      float wv = x[i] > 0.f ? dy[i] : 0.f; /* NaN output: false */
      if (memcmp(&dx[i], &wv, sizeof wv) != 0)
        ck_abort_msg("relu_bwd special: element %lld: x %g dy %g: got %g",
                     (long long)i, (double)x[i], (double)dy[i], (double)dx[i]);
      if (isnan(x[i]))
        ck_assert(dx[i] == 0.f && !signbit(dx[i]));
    }
    it->free(ctx, x), it->free(ctx, y), it->free(ctx, dy), it->free(ctx, dx);
    free(want);
  }
}
END_TEST

START_TEST(test_add_scale_axpy) {
  static const float ab[][2] = {
      {1.f, 1.f}, {0.5f, -2.f}, {0.f, 3.f}, {-1.25f, 0.f}};
  for (size_t s = 0; s < NSIZES; s++) {
    int64_t n = sizes[s];
    float *x = dalloc((size_t)n), *z = dalloc((size_t)n);
    float *y = dalloc((size_t)n), *w = halloc((size_t)n);
    fill_signed(x, n, 40 + s);
    tu_fill_uniform(z, (size_t)n, 50 + s, -3.f, 3.f);
    for (size_t k = 0; k < sizeof ab / sizeof ab[0]; k++) {
      float al = ab[k][0], bt = ab[k][1];
      tc_eltwise_args a = {.struct_size = sizeof a,
                           .n = n,
                           .alpha = al,
                           .beta = bt,
                           .a = x,
                           .b = z,
                           .y = y};
      ck_assert_int_eq(it->add(ctx, &a), TC_OK);
      tc_eltwise_args r = a; /* the reference into w */
      r.y = w;
      ref_add(&r);
      TU_ASSERT_CLOSE(y, w, (size_t)n, 1e-6);
      /* b == NULL counts as zeros */
      a.b = NULL;
      ck_assert_int_eq(it->add(ctx, &a), TC_OK);
      r = a, r.y = w;
      ref_add(&r);
      TU_ASSERT_CLOSE(y, w, (size_t)n, 1e-6);
      /* scale, out of place */
      memset(y, 0, (size_t)n * sizeof *y);
      ck_assert_int_eq(it->scale(ctx, &a), TC_OK);
      ref_scale(&r);
      TU_ASSERT_CLOSE(y, w, (size_t)n, 1e-6);
      /* axpy adds to y */
      memcpy(y, z, (size_t)n * sizeof *y);
      memcpy(w, z, (size_t)n * sizeof *w);
      ck_assert_int_eq(it->axpy(ctx, &a), TC_OK);
      ref_axpy(&r);
      TU_ASSERT_CLOSE(y, w, (size_t)n, 1e-6);
    }
    /* add in place: y == a, then y == b */
    memcpy(y, x, (size_t)n * sizeof *y);
    tc_eltwise_args a = {.struct_size = sizeof a,
                         .n = n,
                         .alpha = 2.f,
                         .beta = -1.f,
                         .a = y,
                         .b = z,
                         .y = y};
    ck_assert_int_eq(it->add(ctx, &a), TC_OK);
    tc_eltwise_args r = a;
    r.a = x, r.y = w;
    ref_add(&r);
    TU_ASSERT_CLOSE(y, w, (size_t)n, 1e-6);
    memcpy(y, z, (size_t)n * sizeof *y);
    a.a = x, a.b = y;
    ck_assert_int_eq(it->add(ctx, &a), TC_OK);
    TU_ASSERT_CLOSE(y, w, (size_t)n, 1e-6);
    /* scale in place */
    memcpy(y, x, (size_t)n * sizeof *y);
    a.a = y, a.alpha = -0.5f;
    ck_assert_int_eq(it->scale(ctx, &a), TC_OK);
    r = a, r.a = x, r.y = w;
    ref_scale(&r);
    TU_ASSERT_CLOSE(y, w, (size_t)n, 1e-6);
    it->free(ctx, x), it->free(ctx, z), it->free(ctx, y);
    free(w);
  }
}
END_TEST

/* fill stores alpha's bits: int32 patterns survive, even NaN-like ones. */
START_TEST(test_fill_bits) {
  static const uint32_t pats[] = {0u,          0x3f800000u, 0x7f800001u,
                                  0xffffffffu, 0x7fc00000u, 0x80000000u,
                                  12345u};
  for (size_t s = 0; s < NSIZES; s++) {
    int64_t n = sizes[s];
    uint32_t *y = (uint32_t *)dalloc((size_t)n + 1);
    uint32_t *w = (uint32_t *)halloc((size_t)n);
    y[n] = 77u;
    for (size_t k = 0; k < sizeof pats / sizeof pats[0]; k++) {
      tc_eltwise_args a = {.struct_size = sizeof a, .n = n, .y = (float *)y};
      memcpy(&a.alpha, &pats[k], sizeof a.alpha);
      ck_assert_int_eq(it->fill(ctx, &a), TC_OK);
      tc_eltwise_args r = a;
      r.y = (float *)w;
      ref_fill(&r);
      for (int64_t i = 0; i < n; i++)
        if (y[i] != pats[k] || w[i] != pats[k])
          ck_abort_msg("fill %#x: y[%lld] = %#x, reference %#x", pats[k],
                       (long long)i, y[i], w[i]);
      ck_assert_uint_eq(y[n], 77u);
    }
    it->free(ctx, y);
    free(w);
  }
  /* through the core: an int32 tensor filled with a negative value */
  int64_t shape[1] = {37};
  tc_tensor *t = NULL;
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 1, TC_INT32), TC_OK);
  ck_assert_int_eq(tc_tensor_fill(t, -7.0), TC_OK);
  const int32_t *p = tc_tensor_data(t);
  for (int i = 0; i < 37; i++)
    ck_assert_int_eq(p[i], -7);
  tc_tensor_destroy(t);
}
END_TEST

/* ---- bias ---- */

typedef struct bshape {
  int64_t n, c, sp;
} bshape;
static const bshape bshapes[] = {{1, 1, 1},   {1, 5, 7},   {3, 4, 1},
                                 {2, 3, 49},  {5, 130, 1}, {4, 7, 1024},
                                 {1, 200, 3}, {64, 10, 1}, {2, 17, 9000},
                                 {0, 3, 4},   {3, 2, 0}};
#define NBSHAPES (sizeof bshapes / sizeof bshapes[0])

START_TEST(test_bias_add) {
  for (size_t s = 0; s < NBSHAPES; s++) {
    bshape b = bshapes[s];
    int64_t total = b.n * b.c * b.sp;
    float *y = dalloc((size_t)total + 1), *bias = dalloc((size_t)b.c);
    float *w = halloc((size_t)total);
    tu_fill_uniform(y, (size_t)total, 60 + s, -1.f, 1.f);
    tu_fill_uniform(bias, (size_t)b.c, 70 + s, -1.f, 1.f);
    y[total] = 9.f;
    memcpy(w, y, (size_t)total * sizeof *w);
    tc_bias_args a = {.struct_size = sizeof a,
                      .n = b.n,
                      .c = b.c,
                      .spatial = b.sp,
                      .bias = bias,
                      .y = y};
    tc_bias_args r = a;
    r.y = w;
    ref_bias_add(&r);
    ck_assert_int_eq(it->bias_add(ctx, &a), TC_OK);
    assert_bits_eq(y, w, total, "bias_add");
    ck_assert_float_eq(y[total], 9.f);
    it->free(ctx, y), it->free(ctx, bias);
    free(w);
  }
}
END_TEST

START_TEST(test_bias_grad) {
  for (size_t s = 0; s < NBSHAPES; s++) {
    bshape b = bshapes[s];
    int64_t total = b.n * b.c * b.sp;
    float *dy = dalloc((size_t)total), *db = dalloc((size_t)b.c + 1);
    float *w = halloc((size_t)b.c);
    tu_fill_uniform(dy, (size_t)total, 80 + s, -1.f, 1.f);
    for (int acc = 0; acc < 2; acc++) {
      tu_fill_uniform(db, (size_t)b.c, 90 + s, -1.f, 1.f);
      db[b.c] = 5.f;
      memcpy(w, db, (size_t)b.c * sizeof *w);
      tc_bias_args a = {.struct_size = sizeof a,
                        .n = b.n,
                        .c = b.c,
                        .spatial = b.sp,
                        .dy = dy,
                        .db = db,
                        .accumulate = acc};
      tc_bias_args r = a;
      r.db = w;
      ref_bias_grad(&r);
      ck_assert_int_eq(it->bias_grad(ctx, &a), TC_OK);
      TU_ASSERT_CLOSE(db, w, (size_t)b.c, 1e-6);
      ck_assert_float_eq(db[b.c], 5.f);
    }
    it->free(ctx, dy), it->free(ctx, db);
    free(w);
  }
}
END_TEST

/* bias grad gives the same bits with 1 and 4 threads. */
static void bias_grad_threads(int threads, const bshape *b, float *out) {
  tc_backend *tb = op_create_cpu(threads);
  const tc_backend_iface *ti = tc_backend_get_iface(tb);
  void *tctx = tc_backend_get_context(tb);
  int64_t total = b->n * b->c * b->sp;
  float *dy = halloc((size_t)total);
  tu_fill_uniform(dy, (size_t)total, 99, -1.f, 1.f);
  tc_bias_args a = {.struct_size = sizeof a,
                    .n = b->n,
                    .c = b->c,
                    .spatial = b->sp,
                    .dy = dy,
                    .db = out};
  ck_assert_int_eq(ti->bias_grad(tctx, &a), TC_OK);
  free(dy);
  tc_backend_destroy(tb);
}

START_TEST(test_bias_grad_thread_independent) {
  ck_assert_int_eq(tc_set_num_threads(4), TC_OK);
  static const bshape shp[] = {{32, 300, 1}, {8, 16, 1000}, {3, 70, 5}};
  for (size_t s = 0; s < 3; s++) {
    float g1[300], g4[300];
    bias_grad_threads(1, &shp[s], g1);
    bias_grad_threads(4, &shp[s], g4);
    assert_bits_eq(g4, g1, shp[s].c, "bias_grad 1 vs 4 threads");
  }
}
END_TEST

/* ---- copy4d ---- */

/* Runs copy4d and the reference on copies of a dst buffer of `nd` floats
 * (dst_off: where index 0 lands) and compares all of it. */
static void run_copy4d(tc_copy4d_args a, size_t ns, size_t nd, int64_t dst_off,
                       uint64_t seed) {
  float *src = dalloc(ns), *dst = dalloc(nd), *want = halloc(nd);
  tu_fill_uniform(src, ns, seed, -1.f, 1.f);
  tu_fill_uniform(dst, nd, seed + 1, -1.f, 1.f);
  memcpy(want, dst, nd * sizeof *want);
  a.struct_size = sizeof a;
  a.src = src;
  a.dst = dst + dst_off;
  ck_assert_int_eq(it->copy4d(ctx, &a), TC_OK);
  a.dst = want + dst_off;
  ref_copy4d(&a);
  TU_ASSERT_CLOSE(dst, want, nd, 1e-6);
  it->free(ctx, src), it->free(ctx, dst);
  free(want);
}

START_TEST(test_copy4d) {
  for (int acc = 0; acc < 2; acc++) {
    /* contiguous */
    tc_copy4d_args a = {.shape = {2, 3, 5, 7},
                        .src_stride = {105, 35, 7, 1},
                        .dst_stride = {105, 35, 7, 1},
                        .accumulate = acc};
    run_copy4d(a, 210, 210, 0, 1000 + acc);
    /* batch 1, large rows: several tasks */
    tc_copy4d_args b = {.shape = {1, 4, 3, 20000},
                        .src_stride = {240000, 60000, 20000, 1},
                        .dst_stride = {240000, 60000, 20000, 1},
                        .accumulate = acc};
    run_copy4d(b, 240000, 240000, 0, 1010 + acc);
    /* stride-2 subsampling (option A shortcut) into a channel-padded dst:
     * x (2,3,9,9) -> y (2,8,5,5) at channel offset 2 */
    tc_copy4d_args c = {.shape = {2, 3, 5, 5},
                        .src_stride = {243, 81, 18, 2},
                        .dst_stride = {200, 25, 5, 1},
                        .accumulate = acc};
    run_copy4d(c, 486, 400, 2 * 25, 1020 + acc);
    /* layout change: NCHW -> NHWC */
    tc_copy4d_args d = {.shape = {3, 4, 6, 5},
                        .src_stride = {120, 30, 5, 1},
                        .dst_stride = {120, 1, 20, 4},
                        .accumulate = acc};
    run_copy4d(d, 360, 360, 0, 1030 + acc);
    /* reversed rows (negative stride) */
    tc_copy4d_args e = {.shape = {1, 2, 3, 4},
                        .src_stride = {24, 12, 4, 1},
                        .dst_stride = {24, 12, -4, 1},
                        .accumulate = acc};
    run_copy4d(e, 24, 24, 8, 1040 + acc);
    /* repeated destinations: stride 0 sums every source row into one */
    tc_copy4d_args f = {.shape = {5, 3, 7, 33},
                        .src_stride = {693, 231, 33, 1},
                        .dst_stride = {0, 0, 0, 1},
                        .accumulate = acc};
    run_copy4d(f, 3465, 33, 0, 1050 + acc);
  }
  /* empty shape: no-op, NULL buffers allowed */
  tc_copy4d_args z = {.struct_size = sizeof z, .shape = {2, 0, 3, 3}};
  ck_assert_int_eq(it->copy4d(ctx, &z), TC_OK);
}
END_TEST

/* ---- counter_add ---- */

/* x[i] += delta over int64 counters, negative deltas and values past
 * 2^32 included. */
START_TEST(test_counter_add) {
  static const int64_t deltas[] = {1, -3, (int64_t)1 << 40, 0};
  static const int64_t ns[] = {1, 5, 1000};
  ck_assert_ptr_nonnull(it->counter_add);
  for (size_t s = 0; s < sizeof ns / sizeof ns[0]; s++)
    for (size_t k = 0; k < sizeof deltas / sizeof deltas[0]; k++) {
      int64_t n = ns[s];
      int64_t *x = op_alloc((size_t)(n + 1) * sizeof *x);
      int64_t *w = malloc((size_t)n * sizeof *w);
      for (int64_t i = 0; i < n; i++)
        x[i] = w[i] = (i * 7919) % 1000 - 500 + ((int64_t)i << 33);
      x[n] = 42;
      tc_counter_args a = {
          .struct_size = sizeof a, .n = n, .delta = deltas[k], .x = x};
      ck_assert_int_eq(it->counter_add(ctx, &a), TC_OK);
      tc_counter_args r = a;
      r.x = w;
      ref_counter_add(&r);
      for (int64_t i = 0; i < n; i++)
        ck_assert_int_eq(x[i], w[i]);
      ck_assert_int_eq(x[n], 42);
      it->free(ctx, x);
      free(w);
    }
}
END_TEST

/* ---- errors ---- */

START_TEST(test_errors) {
  float buf[8] = {0}, out[8] = {0};
  tc_eltwise_args e = {
      .struct_size = sizeof e, .n = 8, .a = buf, .b = buf, .y = out};
  tc_status (*const elt[])(void *, const tc_eltwise_args *) = {
      it->relu_fwd, it->relu_bwd, it->add, it->scale, it->axpy, it->fill};
  for (size_t k = 0; k < sizeof elt / sizeof elt[0]; k++) {
    ck_assert_int_eq(elt[k](ctx, NULL), TC_EINVAL);
    ck_assert_int_eq(elt[k](NULL, &e), TC_EINVAL);
    tc_eltwise_args b = e;
    b.struct_size = sizeof b - 1;
    ck_assert_int_eq(elt[k](ctx, &b), TC_EINVAL);
    b = e, b.n = -1;
    ck_assert_int_eq(elt[k](ctx, &b), TC_EINVAL);
    ck_assert_str_ne(tc_last_error(), "");
    b = e, b.y = NULL;
    ck_assert_int_eq(elt[k](ctx, &b), TC_EINVAL);
    b = e, b.n = 0, b.y = NULL, b.a = NULL, b.b = NULL;
    ck_assert_int_eq(elt[k](ctx, &b), TC_OK); /* nothing to touch */
    if (elt[k] != it->fill) {
      b = e, b.a = NULL;
      ck_assert_int_eq(elt[k](ctx, &b), TC_EINVAL);
    }
  }
  tc_eltwise_args b = e;
  b.b = NULL;
  ck_assert_int_eq(it->relu_bwd(ctx, &b), TC_EINVAL);
  for (int i = 0; i < 8; i++)
    ck_assert_float_eq(out[i], 0.f); /* failed calls wrote nothing */

  tc_bias_args ba = {.struct_size = sizeof ba,
                     .n = 2,
                     .c = 2,
                     .spatial = 2,
                     .bias = buf,
                     .y = out,
                     .dy = buf,
                     .db = out};
  ck_assert_int_eq(it->bias_add(ctx, NULL), TC_EINVAL);
  ck_assert_int_eq(it->bias_grad(ctx, NULL), TC_EINVAL);
  tc_bias_args bb = ba;
  bb.c = -1;
  ck_assert_int_eq(it->bias_add(ctx, &bb), TC_EINVAL);
  ck_assert_int_eq(it->bias_grad(ctx, &bb), TC_EINVAL);
  bb = ba, bb.struct_size = 8;
  ck_assert_int_eq(it->bias_add(ctx, &bb), TC_EINVAL);
  ck_assert_int_eq(it->bias_grad(ctx, &bb), TC_EINVAL);
  bb = ba, bb.bias = NULL;
  ck_assert_int_eq(it->bias_add(ctx, &bb), TC_EINVAL);
  bb = ba, bb.dy = NULL;
  ck_assert_int_eq(it->bias_grad(ctx, &bb), TC_EINVAL);
  bb = ba, bb.db = NULL;
  ck_assert_int_eq(it->bias_grad(ctx, &bb), TC_EINVAL);
  bb = ba, bb.n = INT64_MAX / 2;
  ck_assert_int_eq(it->bias_add(ctx, &bb), TC_EINVAL); /* overflow */

  tc_copy4d_args c = {.struct_size = sizeof c,
                      .shape = {1, 1, 2, 4},
                      .src = buf,
                      .src_stride = {8, 8, 4, 1},
                      .dst = out,
                      .dst_stride = {8, 8, 4, 1}};
  ck_assert_int_eq(it->copy4d(ctx, NULL), TC_EINVAL);
  tc_copy4d_args d = c;
  d.shape[2] = -2;
  ck_assert_int_eq(it->copy4d(ctx, &d), TC_EINVAL);
  d = c, d.src = NULL;
  ck_assert_int_eq(it->copy4d(ctx, &d), TC_EINVAL);
  d = c, d.dst = NULL;
  ck_assert_int_eq(it->copy4d(ctx, &d), TC_EINVAL);
  d = c, d.struct_size = 16;
  ck_assert_int_eq(it->copy4d(ctx, &d), TC_EINVAL);
  d = c, d.shape[0] = d.shape[1] = d.shape[2] = d.shape[3] = INT64_MAX / 4;
  ck_assert_int_eq(it->copy4d(ctx, &d), TC_EINVAL);
  for (int i = 0; i < 8; i++)
    ck_assert_float_eq(out[i], 0.f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_eltwise");
  TCase *tc = tcase_create("eltwise");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_relu);
  tcase_add_test(tc, test_relu_special);
  tcase_add_test(tc, test_add_scale_axpy);
  tcase_add_test(tc, test_fill_bits);
  tcase_add_test(tc, test_bias_add);
  tcase_add_test(tc, test_bias_grad);
  tcase_add_test(tc, test_bias_grad_thread_independent);
  tcase_add_test(tc, test_copy4d);
  tcase_add_test(tc, test_counter_add);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

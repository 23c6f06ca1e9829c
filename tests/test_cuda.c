/*
 * test_cuda.c - the CUDA backend module against the CPU backend and the
 * naive references of tests/reference/: every primitive of the backend
 * table on random cases, run on both backends with the same host inputs,
 * each result compared with the CPU's and with the reference's (run on the
 * host from the inputs the CUDA slot got); dropout masks against the host
 * Philox stream; run-to-run bit-identity on the GPU; error reporting.
 *
 * Without the module, a driver or a device, main() prints why and returns
 * 77 (meson's "skipped"). Check runs without fork here: CUDA does not
 * survive a fork() after it has been initialised.
 * Bounds, the same against the CPU and against the references
 * (tu_max_rel_err, relative with a floor of 1% of the largest value):
 * TOL for per-element ops, GEMM and convolution outputs; TOL_SUM for values
 * that are sums over a whole batch (dw, db, dgamma, dbeta, batch-norm dx,
 * losses), whose float summation order differs between the backends;
 * full reductions (double on both) within 1e-6 of sum |x|; whole-model
 * parameter gradients within GRAD_TOL (batch norm's backward subtracts
 * nearly equal sums: see test_parity.c).
 * Also: NaN rules (argmax, max pooling, relu) bit for bit on both backends
 * and in the references, the same invalid
 * arguments rejected by both backends, LeNet-5 and ResNet-20 training steps
 * through the public API on both, and CUDA graph capture/replay.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reference/batchnorm.h"
#include "reference/conv.h"
#include "reference/dropout.h"
#include "reference/eltwise.h"
#include "reference/loss.h"
#include "reference/optim.h"
#include "reference/pool.h"
#include "reference/reduce.h"
#include "testutil.h"
#include "../examples/common/models.h"

#define TOL 1e-4
#define TOL_SUM 1e-3
#define GRAD_TOL 3e-4

static tc_backend *be[2]; /* 0: cpu, 1: cuda */
static const tc_backend_iface *it[2];
static void *cx[2];

/* A buffer living on both backends. */
typedef struct dbuf {
  void *d[2];
  size_t bytes;
} dbuf;
#define F(b, k) ((float *)(b).d[k])

static dbuf up(const void *host, size_t bytes) {
  dbuf b = {{NULL, NULL}, bytes};
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(it[k]->alloc(cx[k], &b.d[k], bytes ? bytes : 1), TC_OK);
    if (host)
      ck_assert_int_eq(it[k]->copy_h2d(cx[k], b.d[k], host, bytes), TC_OK);
    else
      ck_assert_int_eq(it[k]->memset(cx[k], b.d[k], 0, bytes), TC_OK);
  }
  return b;
}

static void down(const dbuf *b, int k, void *host) {
  ck_assert_msg(it[k]->copy_d2h(cx[k], host, b->d[k], b->bytes) == TC_OK,
                "%s copy_d2h: %s", it[k]->name, tc_last_error());
}

static void drop(dbuf *b) {
  for (int k = 0; k < 2; k++)
    it[k]->free(cx[k], b->d[k]);
}

static float *rnd(size_t n, uint64_t seed, float lo, float hi) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  ck_assert_ptr_nonnull(x);
  tu_fill_uniform(x, n, seed, lo, hi);
  return x;
}

static dbuf upr(size_t n, uint64_t seed, float lo, float hi) {
  float *h = rnd(n, seed, lo, hi);
  dbuf b = up(h, n * sizeof(float));
  free(h);
  return b;
}

/* The CUDA result against the CPU's, n floats. */
static void cmpf(const dbuf *b, size_t n, double tol, const char *what) {
  float *h0 = malloc(b->bytes + 1), *h1 = malloc(b->bytes + 1);
  ck_assert(h0 && h1);
  down(b, 0, h0);
  down(b, 1, h1);
  double e = tu_max_rel_err(h1, h0, n);
  free(h0);
  free(h1);
  ck_assert_msg(e <= tol, "%s: cuda vs cpu max rel err %.3g > %.3g", what, e,
                tol);
}

/* What backend k holds in b, in a malloc'ed host buffer (the inputs of a
 * reference run: the same values both backends got). */
static void *hostb(const dbuf *b, int k) {
  void *h = malloc(b->bytes + 1);
  ck_assert_ptr_nonnull(h);
  down(b, k, h);
  return h;
}
static float *hostf(const dbuf *b, int k) {
  return hostb(b, k);
}

/* The CUDA result against the naive reference's (tests/reference/), n
 * floats, within the same bounds as against the CPU. */
static void cmpref(const dbuf *b, const float *want, size_t n, double tol,
                   const char *what) {
  float *h = hostf(b, 1);
  double e = tu_max_rel_err(h, want, n);
  free(h);
  ck_assert_msg(e <= tol, "%s: cuda vs reference max rel err %.3g > %.3g", what,
                e, tol);
}

/* The CUDA bytes equal to the reference's (masks, argmax, NaN rules). */
static void cmpref_exact(const dbuf *b, const void *want, size_t bytes,
                         const char *what) {
  unsigned char *h = hostb(b, 1);
  int same = memcmp(h, want, bytes) == 0;
  free(h);
  ck_assert_msg(same, "%s: cuda and the reference differ", what);
}

/* Bytes equal on both backends (masks, argmax, int fills). */
static void cmp_exact(const dbuf *b, const char *what) {
  unsigned char *h0 = malloc(b->bytes + 1), *h1 = malloc(b->bytes + 1);
  ck_assert(h0 && h1);
  down(b, 0, h0);
  down(b, 1, h1);
  int same = memcmp(h0, h1, b->bytes) == 0;
  free(h0);
  free(h1);
  ck_assert_msg(same, "%s: cuda and cpu differ", what);
}

/* Runs `slot` with `args` on backend k, asserting success. */
#define CALL(k, slot, args)                                                    \
  do {                                                                         \
    ck_assert_msg(it[k]->slot != NULL, "%s lacks slot " #slot, it[k]->name);   \
    ck_assert_msg(it[k]->slot(cx[k], &(args)) == TC_OK, "%s " #slot ": %s",    \
                  it[k]->name, tc_last_error());                               \
  } while (0)

static int64_t rint_(tc_rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)tc_rng_below(r, (uint64_t)(hi - lo + 1));
}

/* ---- dense algebra ---- */

START_TEST(test_gemm) {
  tc_rng r;
  tc_rng_init(&r, 11, TC_RNG_STREAM_USER);
  for (int cs = 0; cs < 14; cs++) {
    int ta = cs & 1, tb = (cs >> 1) & 1;
    int64_t m = rint_(&r, 1, 70), n = rint_(&r, 1, 70), kk = rint_(&r, 1, 90);
    if (cs == 13)
      m = 257, n = 301, kk = 513; /* cuBLAS's large-tile paths */
    int64_t batch = cs >= 8 && cs < 13 ? 3 : 1, pad = rint_(&r, 0, 3);
    tc_gemm_args g = {.struct_size = sizeof g};
    g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = kk;
    g.lda = (ta ? m : kk) + pad, g.ldb = (tb ? kk : n) + pad, g.ldc = n + pad;
    g.stride_a = (ta ? kk : m) * g.lda + 5;
    g.stride_b = cs == 12 ? 0 : (tb ? n : kk) * g.ldb + 3;
    g.stride_c = m * g.ldc + 7;
    g.alpha = (float)(tc_rng_uniform(&r) * 4 - 2);
    g.beta = cs % 3 == 0 ? 0.f : (float)(tc_rng_uniform(&r) * 2 - 1);
    g.batch = batch;
    size_t na = (size_t)(g.stride_a * batch);
    size_t nb = (size_t)(g.ldb * (tb ? n : kk) + g.stride_b * batch);
    size_t nc = (size_t)(g.stride_c * batch);
    dbuf A = upr(na, 100 + cs, -1, 1), B = upr(nb, 200 + cs, -1, 1),
         C = upr(nc, 300 + cs, -1, 1);
    tc_gemm_args r = g;
    r.a = hostf(&A, 1), r.b = hostf(&B, 1), r.c = hostf(&C, 1);
    ref_gemm(&r);
    for (int k = 0; k < 2; k++) {
      g.a = F(A, k), g.b = F(B, k), g.c = F(C, k);
      CALL(k, gemm, g);
    }
    cmpf(&C, nc, TOL, "gemm C");
    cmpref(&C, r.c, nc, TOL, "gemm C");
    free((void *)r.a), free((void *)r.b), free(r.c);
    drop(&A), drop(&B), drop(&C);
  }
}
END_TEST

/* ---- convolution ---- */

typedef struct ccfg {
  int64_t n, c, h, w, k, r, s, sh, sw, ph, pw, dh, dw;
} ccfg;

static const ccfg conv_cfgs[] = {
    {2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1},
    {3, 5, 9, 7, 6, 3, 2, 2, 1, 1, 0, 1, 1},
    {2, 4, 11, 10, 3, 5, 5, 2, 2, 2, 2, 1, 1},
    {1, 2, 9, 9, 3, 3, 3, 1, 1, 2, 2, 2, 2},
    {4, 16, 6, 6, 8, 1, 1, 1, 1, 0, 0, 1, 1},
    {5, 3, 6, 5, 2, 3, 3, 1, 1, 1, 1, 1, 1},
    {6, 1, 28, 28, 6, 5, 5, 1, 1, 2, 2, 1, 1},
};

static void *conv_ws(int k, tc_conv2d_args *a, int64_t ws_images) {
  tc_conv2d_args q = *a;
  q.n = ws_images;
  size_t bytes = 0;
  ck_assert_int_eq(it[k]->conv2d_workspace_size(cx[k], &q, &bytes), TC_OK);
  void *p = NULL;
  ck_assert_int_eq(it[k]->alloc(cx[k], &p, bytes ? bytes : 1), TC_OK);
  a->workspace = p;
  a->workspace_size = bytes;
  return p;
}

START_TEST(test_conv2d) {
  for (size_t i = 0; i < sizeof conv_cfgs / sizeof *conv_cfgs; i++) {
    const ccfg *g = &conv_cfgs[i];
    tc_conv2d_args a = {.struct_size = sizeof a};
    a.n = g->n, a.c = g->c, a.h = g->h, a.w = g->w, a.k = g->k, a.r = g->r;
    a.s = g->s, a.stride_h = g->sh, a.stride_w = g->sw, a.pad_h = g->ph;
    a.pad_w = g->pw, a.dil_h = g->dh, a.dil_w = g->dw;
    a.out_h = ref_conv_out_size(g->h, g->r, g->sh, g->ph, g->dh);
    a.out_w = ref_conv_out_size(g->w, g->s, g->sw, g->pw, g->dw);
    size_t nx = (size_t)(g->n * g->c * g->h * g->w);
    size_t nw = (size_t)(g->k * g->c * g->r * g->s);
    size_t ny = (size_t)(g->n * g->k * a.out_h * a.out_w);
    uint64_t sd = 1000 + 10 * i;
    dbuf X = upr(nx, sd, -1, 1), W = upr(nw, sd + 1, -1, 1),
         Bi = upr((size_t)g->k, sd + 2, -1, 1), DY = upr(ny, sd + 3, -1, 1);
    for (int acc = 0; acc < 2; acc++) {
      dbuf Y = upr(ny, sd + 4, -1, 1), DX = upr(nx, sd + 5, -1, 1),
           DW = upr(nw, sd + 6, -1, 1), DB = upr((size_t)g->k, sd + 7, -1, 1);
      tc_conv2d_args r = a; /* the reference on host copies */
      float *hbias = hostf(&Bi, 1);
      r.x = hostf(&X, 1), r.wt = hostf(&W, 1), r.bias = acc ? NULL : hbias;
      r.dy = hostf(&DY, 1), r.y = hostf(&Y, 1), r.dx = hostf(&DX, 1);
      r.dw = hostf(&DW, 1), r.db = hostf(&DB, 1), r.accumulate = acc;
      ref_conv2d_fwd(&r);
      ref_conv2d_bwd_data(&r);
      ref_conv2d_bwd_filter(&r);
      ref_conv2d_bwd_bias(&r);
      for (int k = 0; k < 2; k++) {
        tc_conv2d_args b = a;
        /* odd configs: a one-image workspace makes CUDA work in chunks */
        void *ws = conv_ws(k, &b, k == 1 && (i & 1) ? 1 : g->n);
        b.x = F(X, k), b.wt = F(W, k), b.bias = acc ? NULL : F(Bi, k);
        b.y = F(Y, k), b.dy = F(DY, k), b.dx = F(DX, k), b.dw = F(DW, k);
        b.db = F(DB, k), b.accumulate = acc;
        CALL(k, conv2d_fwd, b);
        CALL(k, conv2d_bwd_data, b);
        CALL(k, conv2d_bwd_filter, b);
        CALL(k, conv2d_bwd_bias, b);
        it[k]->free(cx[k], ws);
      }
      cmpf(&Y, ny, TOL, "conv2d y");
      cmpf(&DX, nx, TOL, "conv2d dx");
      cmpf(&DW, nw, TOL_SUM, "conv2d dw");
      cmpf(&DB, (size_t)g->k, TOL_SUM, "conv2d db");
      cmpref(&Y, r.y, ny, TOL, "conv2d y");
      cmpref(&DX, r.dx, nx, TOL, "conv2d dx");
      cmpref(&DW, r.dw, nw, TOL_SUM, "conv2d dw");
      cmpref(&DB, r.db, (size_t)g->k, TOL_SUM, "conv2d db");
      free((void *)r.x), free((void *)r.wt), free(hbias), free((void *)r.dy);
      free(r.y), free(r.dx), free(r.dw), free(r.db);
      drop(&Y), drop(&DX), drop(&DW), drop(&DB);
    }
    drop(&X), drop(&W), drop(&Bi), drop(&DY);
  }
}
END_TEST

/* ---- pooling ---- */

START_TEST(test_pool2d) {
  static const int64_t cfgs[][11] = {
      /* n c h w kh kw sh sw ph pw ceil */
      {2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 0},   {2, 2, 9, 7, 3, 3, 2, 2, 1, 1, 0},
      {1, 4, 10, 11, 3, 2, 1, 2, 1, 0, 1}, {3, 2, 7, 7, 3, 3, 2, 2, 1, 1, 1},
      {2, 1, 6, 9, 4, 3, 3, 2, 2, 1, 1},
  };
  for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
    const int64_t *g = cfgs[i];
    tc_pool2d_args a = {.struct_size = sizeof a};
    a.n = g[0], a.c = g[1], a.h = g[2], a.w = g[3], a.kh = g[4], a.kw = g[5];
    a.stride_h = g[6], a.stride_w = g[7], a.pad_h = g[8], a.pad_w = g[9];
    a.out_h = ref_pool_out_size(a.h, a.kh, a.stride_h, a.pad_h, (int)g[10]);
    a.out_w = ref_pool_out_size(a.w, a.kw, a.stride_w, a.pad_w, (int)g[10]);
    size_t nx = (size_t)(a.n * a.c * a.h * a.w);
    size_t ny = (size_t)(a.n * a.c * a.out_h * a.out_w);
    dbuf X = upr(nx, 50 + i, -2, 2), DY = upr(ny, 60 + i, -1, 1);
    for (int acc = 0; acc < 2; acc++) {
      dbuf Y = up(NULL, ny * 4), AM = up(NULL, ny * 4),
           DX = upr(nx, 70 + i, -1, 1);
      tc_pool2d_args r = a; /* the reference on host copies */
      r.x = hostf(&X, 1), r.dy = hostf(&DY, 1), r.accumulate = acc;
      r.y = malloc(ny * 4 + 1), r.argmax = malloc(ny * 4 + 1);
      r.dx = hostf(&DX, 1);
      ref_maxpool2d_fwd(&r);
      ref_maxpool2d_bwd(&r);
      for (int k = 0; k < 2; k++) {
        tc_pool2d_args b = a;
        b.x = F(X, k), b.y = F(Y, k), b.argmax = AM.d[k], b.dy = F(DY, k);
        b.dx = F(DX, k), b.accumulate = acc;
        CALL(k, maxpool2d_fwd, b);
        CALL(k, maxpool2d_bwd, b);
      }
      cmp_exact(&Y, "maxpool y");
      cmp_exact(&AM, "maxpool argmax");
      cmpf(&DX, nx, TOL, "maxpool dx");
      cmpref_exact(&Y, r.y, ny * 4, "maxpool y");
      cmpref_exact(&AM, r.argmax, ny * 4, "maxpool argmax");
      cmpref(&DX, r.dx, nx, TOL, "maxpool dx");
      for (int pad_in = 0; pad_in < 2; pad_in++) {
        r.count_include_pad = pad_in;
        free(r.dx);
        r.dx = hostf(&DX, 1); /* the dx the CUDA run starts from */
        ref_avgpool2d_fwd(&r);
        ref_avgpool2d_bwd(&r);
        for (int k = 0; k < 2; k++) {
          tc_pool2d_args b = a;
          b.x = F(X, k), b.y = F(Y, k), b.dy = F(DY, k), b.dx = F(DX, k);
          b.accumulate = acc, b.count_include_pad = pad_in;
          CALL(k, avgpool2d_fwd, b);
          CALL(k, avgpool2d_bwd, b);
        }
        cmpf(&Y, ny, TOL, "avgpool y");
        cmpf(&DX, nx, TOL, "avgpool dx");
        cmpref(&Y, r.y, ny, TOL, "avgpool y");
        cmpref(&DX, r.dx, nx, TOL, "avgpool dx");
      }
      free((void *)r.x), free((void *)r.dy), free(r.y), free(r.argmax);
      free(r.dx);
      drop(&Y), drop(&AM), drop(&DX);
    }
    drop(&X), drop(&DY);
  }
}
END_TEST

START_TEST(test_global_avgpool) {
  static const int64_t cfgs[][3] = {{4, 8, 64}, {3, 5, 1}, {2, 3, 1000}};
  for (size_t i = 0; i < 3; i++) {
    tc_gap_args a = {.struct_size = sizeof a};
    a.n = cfgs[i][0], a.c = cfgs[i][1], a.spatial = cfgs[i][2];
    size_t nx = (size_t)(a.n * a.c * a.spatial), ny = (size_t)(a.n * a.c);
    dbuf X = upr(nx, 80 + i, -1, 1), DY = upr(ny, 90 + i, -1, 1);
    for (int acc = 0; acc < 2; acc++) {
      dbuf Y = up(NULL, ny * 4), DX = upr(nx, 95 + i, -1, 1);
      tc_gap_args r = a;
      r.x = hostf(&X, 1), r.dy = hostf(&DY, 1), r.y = malloc(ny * 4 + 1);
      r.dx = hostf(&DX, 1), r.accumulate = acc;
      ref_global_avgpool_fwd(&r);
      ref_global_avgpool_bwd(&r);
      for (int k = 0; k < 2; k++) {
        tc_gap_args b = a;
        b.x = F(X, k), b.y = F(Y, k), b.dy = F(DY, k), b.dx = F(DX, k);
        b.accumulate = acc;
        CALL(k, global_avgpool_fwd, b);
        CALL(k, global_avgpool_bwd, b);
      }
      cmpf(&Y, ny, TOL, "gap y");
      cmpf(&DX, nx, TOL, "gap dx");
      cmpref(&Y, r.y, ny, TOL, "gap y");
      cmpref(&DX, r.dx, nx, TOL, "gap dx");
      free((void *)r.x), free((void *)r.dy), free(r.y), free(r.dx);
      drop(&Y), drop(&DX);
    }
    drop(&X), drop(&DY);
  }
}
END_TEST

/* ---- batch norm ---- */

START_TEST(test_batchnorm) {
  static const int64_t cfgs[][3] = {
      {4, 3, 25}, {16, 8, 1}, {2, 5, 49}, {64, 4, 300}};
  for (size_t i = 0; i < 4; i++) {
    int64_t n = cfgs[i][0], c = cfgs[i][1], sp = cfgs[i][2];
    size_t nx = (size_t)(n * c * sp), nc = (size_t)c;
    uint64_t sd = 400 + 20 * i;
    dbuf X = upr(nx, sd, -1, 3), DY = upr(nx, sd + 1, -1, 1),
         G = upr(nc, sd + 2, 0.5f, 1.5f), Be = upr(nc, sd + 3, -1, 1);
    for (int affine = 0; affine < 2; affine++) {
      dbuf Y = up(NULL, nx * 4), RM = upr(nc, sd + 4, -1, 1),
           RV = upr(nc, sd + 5, 0.5f, 2), SM = up(NULL, nc * 4),
           SI = up(NULL, nc * 4), DX = upr(nx, sd + 6, -1, 1),
           DG = upr(nc, sd + 7, -1, 1), DBe = upr(nc, sd + 8, -1, 1);
      /* the reference on host copies, with what CUDA starts from */
      tc_batchnorm_args r = {.struct_size = sizeof r};
      r.n = n, r.c = c, r.spatial = sp, r.eps = 1e-5f, r.momentum = 0.1f;
      float *hg = hostf(&G, 1), *hb = hostf(&Be, 1);
      float *hrm = hostf(&RM, 1), *hrv = hostf(&RV, 1);
      r.x = hostf(&X, 1), r.dy = hostf(&DY, 1), r.y = malloc(nx * 4 + 1);
      r.dx = hostf(&DX, 1), r.save_mean = malloc(nc * 4 + 1);
      r.save_invstd = malloc(nc * 4 + 1);
      r.gamma = affine ? hg : NULL, r.beta = affine ? hb : NULL;
      r.dgamma = affine ? hostf(&DG, 1) : NULL;
      r.dbeta = affine ? hostf(&DBe, 1) : NULL;
      r.running_mean = hrm, r.running_var = hrv, r.accumulate = affine;
      ref_batchnorm_fwd_train(&r);
      ref_batchnorm_bwd(&r);
      for (int k = 0; k < 2; k++) {
        tc_batchnorm_args b = {.struct_size = sizeof b};
        b.n = n, b.c = c, b.spatial = sp, b.eps = 1e-5f, b.momentum = 0.1f;
        b.x = F(X, k), b.y = F(Y, k), b.dy = F(DY, k), b.dx = F(DX, k);
        b.gamma = affine ? F(G, k) : NULL, b.beta = affine ? F(Be, k) : NULL;
        b.dgamma = affine ? F(DG, k) : NULL,
        b.dbeta = affine ? F(DBe, k) : NULL;
        b.running_mean = F(RM, k), b.running_var = F(RV, k);
        b.save_mean = F(SM, k), b.save_invstd = F(SI, k);
        b.accumulate = affine; /* both modes of the backward */
        CALL(k, batchnorm_fwd_train, b);
        CALL(k, batchnorm_bwd, b);
      }
      cmpf(&Y, nx, TOL, "bn train y");
      cmpf(&SM, nc, TOL, "bn save_mean");
      cmpf(&SI, nc, TOL, "bn save_invstd");
      cmpf(&RM, nc, TOL, "bn running_mean");
      cmpf(&RV, nc, TOL, "bn running_var");
      cmpf(&DX, nx, TOL_SUM, "bn dx");
      if (affine) {
        cmpf(&DG, nc, TOL_SUM, "bn dgamma");
        cmpf(&DBe, nc, TOL_SUM, "bn dbeta");
      }
      cmpref(&Y, r.y, nx, TOL, "bn train y");
      cmpref(&SM, r.save_mean, nc, TOL, "bn save_mean");
      cmpref(&SI, r.save_invstd, nc, TOL, "bn save_invstd");
      cmpref(&RM, hrm, nc, TOL, "bn running_mean");
      cmpref(&RV, hrv, nc, TOL, "bn running_var");
      cmpref(&DX, r.dx, nx, TOL_SUM, "bn dx");
      if (affine) {
        cmpref(&DG, r.dgamma, nc, TOL_SUM, "bn dgamma");
        cmpref(&DBe, r.dbeta, nc, TOL_SUM, "bn dbeta");
      }
      for (int running = 0; running < 2; running++) {
        free(hrm), free(hrv); /* the running statistics CUDA holds now */
        hrm = hostf(&RM, 1), hrv = hostf(&RV, 1);
        r.running_mean = running ? hrm : NULL;
        r.running_var = running ? hrv : NULL;
        ref_batchnorm_fwd_infer(&r);
        for (int k = 0; k < 2; k++) {
          tc_batchnorm_args b = {.struct_size = sizeof b};
          b.n = n, b.c = c, b.spatial = sp, b.eps = 1e-5f, b.momentum = 0.1f;
          b.x = F(X, k), b.y = F(Y, k);
          b.gamma = affine ? F(G, k) : NULL, b.beta = affine ? F(Be, k) : NULL;
          b.running_mean = running ? F(RM, k) : NULL;
          b.running_var = running ? F(RV, k) : NULL;
          CALL(k, batchnorm_fwd_infer, b);
        }
        cmpf(&Y, nx, TOL, "bn infer y");
        cmpref(&Y, r.y, nx, TOL, "bn infer y");
      }
      free((void *)r.x), free((void *)r.dy), free(r.y), free(r.dx);
      free(r.save_mean), free(r.save_invstd), free(r.dgamma), free(r.dbeta);
      free(hg), free(hb), free(hrm), free(hrv);
      drop(&Y), drop(&RM), drop(&RV), drop(&SM), drop(&SI), drop(&DX);
      drop(&DG), drop(&DBe);
    }
    drop(&X), drop(&DY), drop(&G), drop(&Be);
  }
}
END_TEST

/* The fused batch norm + (residual) + ReLU slots against the separate
 * CUDA slots (batchnorm, add, relu_fwd, relu_bwd, axpy): the same bits,
 * with and without the residual, the mask, and dresidual accumulation. */
START_TEST(test_batchnorm_relu_fused) {
  static const int64_t cfgs[][3] = {
      {4, 3, 25}, {2, 5, 49}, {8, 16, 64}, {3, 2, 7}};
  for (size_t i = 0; i < 4; i++) {
    int64_t n = cfgs[i][0], c = cfgs[i][1], sp = cfgs[i][2];
    size_t nx = (size_t)(n * c * sp), nc = (size_t)c;
    size_t mbytes = (size_t)(n * c * ((sp + 7) / 8));
    uint64_t sd = 700 + 20 * i;
    dbuf X = upr(nx, sd, -1, 3), DY = upr(nx, sd + 1, -1, 1),
         R = upr(nx, sd + 2, -2, 2), G = upr(nc, sd + 3, 0.5f, 1.5f),
         Be = upr(nc, sd + 4, -1, 1);
    for (int var = 0; var < 8; var++) {
      int res = var & 1, use_mask = (var >> 1) & 1, acc_res = (var >> 2) & 1;
      /* index 0: separate slots, 1: fused; both on the CUDA backend */
      dbuf Y[2], RM[2], RV[2], SM[2], SI[2], DX[2], DG[2], DBe[2], DR[2];
      for (int f = 0; f < 2; f++) {
        Y[f] = up(NULL, nx * 4), RM[f] = upr(nc, sd + 5, -1, 1);
        RV[f] = upr(nc, sd + 6, 0.5f, 2), SM[f] = up(NULL, nc * 4);
        SI[f] = up(NULL, nc * 4), DX[f] = upr(nx, sd + 7, -1, 1);
        DG[f] = upr(nc, sd + 8, -1, 1), DBe[f] = upr(nc, sd + 9, -1, 1);
        DR[f] = upr(nx, sd + 10, -1, 1);
      }
      dbuf M = up(NULL, mbytes ? mbytes : 1), GS = up(NULL, nx * 4);
      for (int f = 0; f < 2; f++) {
        tc_batchnorm_args b = {.struct_size = sizeof b};
        b.n = n, b.c = c, b.spatial = sp, b.eps = 1e-5f, b.momentum = 0.1f;
        b.x = F(X, 1), b.y = F(Y[f], 1), b.dy = F(DY, 1), b.dx = F(DX[f], 1);
        b.gamma = F(G, 1), b.beta = F(Be, 1);
        b.dgamma = F(DG[f], 1), b.dbeta = F(DBe[f], 1);
        b.running_mean = F(RM[f], 1), b.running_var = F(RV[f], 1);
        b.save_mean = F(SM[f], 1), b.save_invstd = F(SI[f], 1);
        b.accumulate = 1;
        if (f == 1) {
          b.residual = res ? F(R, 1) : NULL;
          b.dresidual = F(DR[f], 1);
          b.accumulate_residual = acc_res;
          b.relu_mask = use_mask ? (uint8_t *)M.d[1] : NULL;
          CALL(1, batchnorm_relu_fwd_train, b);
          if (use_mask)
            b.y = NULL; /* the backward reads the mask instead */
          CALL(1, batchnorm_relu_bwd, b);
          continue;
        }
        CALL(1, batchnorm_fwd_train, b);
        tc_eltwise_args e = {.struct_size = sizeof e,
                             .n = (int64_t)nx,
                             .alpha = 1.f,
                             .beta = 1.f};
        if (res) {
          e.a = F(Y[f], 1), e.b = F(R, 1), e.y = F(Y[f], 1);
          CALL(1, add, e);
        }
        e.a = F(Y[f], 1), e.b = NULL, e.y = F(Y[f], 1);
        CALL(1, relu_fwd, e);
        e.a = F(Y[f], 1), e.b = F(DY, 1), e.y = F(GS, 1);
        CALL(1, relu_bwd, e);
        if (acc_res) {
          e.a = F(GS, 1), e.b = NULL, e.y = F(DR[f], 1), e.alpha = 1.f;
          CALL(1, axpy, e);
        } else {
          ck_assert_int_eq(it[1]->copy_d2d(cx[1], DR[f].d[1], GS.d[1], nx * 4),
                           TC_OK);
        }
        b.dy = F(GS, 1);
        CALL(1, batchnorm_bwd, b);
      }
      dbuf *pairs[][2] = {
          {&Y[0], &Y[1]},   {&RM[0], &RM[1]},   {&RV[0], &RV[1]},
          {&SM[0], &SM[1]}, {&SI[0], &SI[1]},   {&DX[0], &DX[1]},
          {&DG[0], &DG[1]}, {&DBe[0], &DBe[1]}, {&DR[0], &DR[1]}};
      static const char *names[] = {"y",         "running_mean", "running_var",
                                    "save_mean", "save_invstd",  "dx",
                                    "dgamma",    "dbeta",        "dresidual"};
      for (size_t q = 0; q < 9; q++) {
        size_t bytes = pairs[q][0]->bytes;
        unsigned char *h0 = malloc(bytes), *h1 = malloc(bytes);
        ck_assert(h0 && h1);
        down(pairs[q][0], 1, h0);
        down(pairs[q][1], 1, h1);
        ck_assert_msg(memcmp(h0, h1, bytes) == 0,
                      "fused bn+relu case %zu (res %d mask %d acc %d): %s "
                      "differs from the separate slots",
                      i, res, use_mask, acc_res, names[q]);
        free(h0);
        free(h1);
      }
      if (use_mask) { /* the mask holds y > 0 */
        float *y = malloc(nx * 4);
        unsigned char *m = malloc(mbytes);
        ck_assert(y && m);
        down(&Y[1], 1, y);
        ck_assert_int_eq(it[1]->copy_d2h(cx[1], m, M.d[1], mbytes), TC_OK);
        int64_t mps = (sp + 7) / 8;
        for (int64_t e = 0; e < (int64_t)nx; e++) {
          int bit = (m[(e / sp) * mps + (e % sp) / 8] >> ((e % sp) % 8)) & 1;
          ck_assert_int_eq(bit, y[e] > 0.f);
        }
        free(y);
        free(m);
      }
      for (int f = 0; f < 2; f++) {
        drop(&Y[f]), drop(&RM[f]), drop(&RV[f]), drop(&SM[f]);
        drop(&SI[f]), drop(&DX[f]), drop(&DG[f]), drop(&DBe[f]);
        drop(&DR[f]);
      }
      drop(&M), drop(&GS);
    }
    /* inference, fused vs separate */
    dbuf Y0 = up(NULL, nx * 4), Y1 = up(NULL, nx * 4);
    dbuf RM = upr(nc, sd + 11, -1, 1), RV = upr(nc, sd + 12, 0.5f, 2);
    tc_batchnorm_args b = {.struct_size = sizeof b};
    b.n = n, b.c = c, b.spatial = sp, b.eps = 1e-5f;
    b.x = F(X, 1), b.gamma = F(G, 1), b.beta = F(Be, 1);
    b.running_mean = F(RM, 1), b.running_var = F(RV, 1);
    b.y = F(Y0, 1);
    CALL(1, batchnorm_fwd_infer, b);
    tc_eltwise_args e = {.struct_size = sizeof e,
                         .n = (int64_t)nx,
                         .alpha = 1.f,
                         .beta = 1.f,
                         .a = F(Y0, 1),
                         .b = F(R, 1),
                         .y = F(Y0, 1)};
    CALL(1, add, e);
    e.b = NULL;
    CALL(1, relu_fwd, e);
    b.y = F(Y1, 1), b.residual = F(R, 1);
    CALL(1, batchnorm_relu_fwd_infer, b);
    float *h0 = malloc(nx * 4), *h1 = malloc(nx * 4);
    ck_assert(h0 && h1);
    down(&Y0, 1, h0);
    down(&Y1, 1, h1);
    ck_assert_msg(memcmp(h0, h1, nx * 4) == 0, "fused bn+relu infer differs");
    free(h0);
    free(h1);
    drop(&Y0), drop(&Y1), drop(&RM), drop(&RV);
    drop(&X), drop(&DY), drop(&R), drop(&G), drop(&Be);
  }
}
END_TEST

/* ---- elementwise ---- */

START_TEST(test_eltwise) {
  size_t n = 1237;
  dbuf A = upr(n, 1, -1, 1), B = upr(n, 2, -1, 1), Y = upr(n, 3, -1, 1);
  tc_eltwise_args e = {.struct_size = sizeof e};
  e.n = (int64_t)n, e.alpha = 0.75f, e.beta = -1.25f;
  float *ha = hostf(&A, 1), *hb = hostf(&B, 1);
  /* each slot on both backends and the reference (from CUDA's y) */
#define ELT(slot, exact)                                                       \
  {                                                                            \
    tc_eltwise_args r = e;                                                     \
    r.a = ha, r.b = hb, r.y = hostf(&Y, 1);                                    \
    ref_##slot(&r);                                                            \
    for (int k = 0; k < 2; k++) {                                              \
      e.a = F(A, k), e.b = F(B, k), e.y = F(Y, k);                             \
      CALL(k, slot, e);                                                        \
    }                                                                          \
    if (exact) {                                                               \
      cmp_exact(&Y, #slot);                                                    \
      cmpref_exact(&Y, r.y, n * sizeof(float), #slot);                         \
    } else {                                                                   \
      cmpf(&Y, n, TOL, #slot);                                                 \
      cmpref(&Y, r.y, n, TOL, #slot);                                          \
    }                                                                          \
    free(r.y);                                                                 \
  }
  ELT(relu_fwd, 1)
  ELT(relu_bwd, 1)
  ELT(add, 0)
  ELT(scale, 0)
  ELT(axpy, 0)
  ELT(fill, 1)
  int32_t seven = -7; /* the core fills int32 through the float's bits */
  memcpy(&e.alpha, &seven, sizeof seven);
  ELT(fill, 1)
#undef ELT
  uint32_t got = 0;
  it[1]->copy_d2h(cx[1], &got, F(Y, 1), sizeof got);
  ck_assert_uint_eq(got, (uint32_t)seven);
  free(ha), free(hb);
  drop(&A), drop(&B), drop(&Y);

  /* bias add / grad over (n, c, sp) */
  int64_t bn = 5, bc = 7, bs = 33;
  size_t ny = (size_t)(bn * bc * bs);
  dbuf BY = upr(ny, 4, -1, 1), BB = upr((size_t)bc, 5, -1, 1),
       BD = upr((size_t)bc, 6, -1, 1);
  for (int acc = 0; acc < 2; acc++) {
    tc_bias_args r = {.struct_size = sizeof r};
    r.n = bn, r.c = bc, r.spatial = bs, r.bias = hostf(&BB, 1);
    r.y = hostf(&BY, 1), r.db = hostf(&BD, 1), r.accumulate = acc;
    r.dy = r.y; /* the gradient of the added output, as below */
    ref_bias_add(&r);
    ref_bias_grad(&r);
    for (int k = 0; k < 2; k++) {
      tc_bias_args b = {.struct_size = sizeof b};
      b.n = bn, b.c = bc, b.spatial = bs, b.bias = F(BB, k), b.y = F(BY, k);
      b.dy = F(BY, k), b.db = F(BD, k), b.accumulate = acc;
      CALL(k, bias_add, b);
      CALL(k, bias_grad, b);
    }
    cmpf(&BY, ny, TOL, "bias_add y");
    cmpf(&BD, (size_t)bc, TOL_SUM, "bias_grad db");
    cmpref(&BY, r.y, ny, TOL, "bias_add y");
    cmpref(&BD, r.db, (size_t)bc, TOL_SUM, "bias_grad db");
    free((void *)r.bias), free(r.y), free(r.db);
  }
  drop(&BY), drop(&BB), drop(&BD);

  /* copy4d: (2,3,4,5) contiguous into a transposed, padded layout */
  dbuf S = upr(120, 7, -1, 1), D = upr(400, 8, -1, 1);
  for (int acc = 0; acc < 2; acc++) {
    tc_copy4d_args c4 = {.struct_size = sizeof c4,
                         .shape = {2, 3, 4, 5},
                         .src_stride = {60, 20, 5, 1},
                         .dst_stride = {150, 1, 30, 4},
                         .accumulate = acc};
    tc_copy4d_args r = c4;
    r.src = hostf(&S, 1), r.dst = hostf(&D, 1);
    ref_copy4d(&r);
    for (int k = 0; k < 2; k++) {
      c4.src = F(S, k), c4.dst = F(D, k);
      CALL(k, copy4d, c4);
    }
    cmpf(&D, 400, TOL, "copy4d");
    cmpref(&D, r.dst, 400, TOL, "copy4d");
    free((void *)r.src), free(r.dst);
  }
  drop(&S), drop(&D);
}
END_TEST

/* ---- dropout ---- */

START_TEST(test_dropout) {
  static const struct {
    int64_t n, group;
    float p;
    uint64_t offset;
  } cfgs[] = {{1000, 1, 0.3f, 6},
              {1000, 10, 0.5f, 0},
              {333, 3, 0.f, 1},
              {64, 1, 1.f, 3},
              {4099, 1, 0.9f, 123456789}};
  for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
    int64_t n = cfgs[i].n, units = n / cfgs[i].group;
    dbuf X = upr((size_t)n, 30 + i, -1, 1), Y = up(NULL, (size_t)n * 4),
         M = up(NULL, (size_t)units), DX = upr((size_t)n, 40 + i, -1, 1);
    for (int acc = 0; acc < 2; acc++) {
      tc_dropout_args r = {.struct_size = sizeof r};
      r.n = n, r.group = cfgs[i].group, r.p = cfgs[i].p;
      r.seed = 0x123456789abcdefull + i, r.stream = TC_RNG_STREAM_DROPOUT;
      r.offset = cfgs[i].offset, r.x = hostf(&X, 1), r.dy = r.x;
      r.y = malloc((size_t)n * 4), r.mask = malloc((size_t)units + 1);
      r.dx = hostf(&DX, 1), r.accumulate = acc;
      ref_dropout_fwd(&r);
      ref_dropout_bwd(&r);
      for (int k = 0; k < 2; k++) {
        tc_dropout_args d = {.struct_size = sizeof d};
        d.n = n, d.group = cfgs[i].group, d.p = cfgs[i].p;
        d.seed = 0x123456789abcdefull + i, d.stream = TC_RNG_STREAM_DROPOUT;
        d.offset = cfgs[i].offset, d.x = F(X, k), d.y = F(Y, k);
        d.mask = M.d[k], d.dy = F(X, k), d.dx = F(DX, k), d.accumulate = acc;
        CALL(k, dropout_fwd, d);
        CALL(k, dropout_bwd, d);
      }
      cmp_exact(&M, "dropout mask");
      cmpf(&Y, (size_t)n, TOL, "dropout y");
      cmpf(&DX, (size_t)n, TOL, "dropout dx");
      /* the mask is the reference's (Philox block function): unit u kept
       * iff uniform(offset+u) >= p */
      cmpref_exact(&M, r.mask, (size_t)units, "dropout mask");
      cmpref(&Y, r.y, (size_t)n, TOL, "dropout y");
      cmpref(&DX, r.dx, (size_t)n, TOL, "dropout dx");
      free((void *)r.x), free(r.y), free(r.mask), free(r.dx);
    }
    /* ... which is the host stream's, through tc_rng_uniform */
    uint8_t *m = malloc((size_t)units);
    ck_assert_ptr_nonnull(m);
    down(&M, 1, m);
    for (int64_t u = 0; u < units; u++) {
      tc_rng r = {0x123456789abcdefull + i, TC_RNG_STREAM_DROPOUT,
                  cfgs[i].offset + (uint64_t)u};
      int keep = tc_rng_uniform(&r) >= cfgs[i].p;
      ck_assert_msg(m[u] == keep, "case %zu unit %lld: mask %d, stream %d", i,
                    (long long)u, m[u], keep);
    }
    free(m);
    drop(&X), drop(&Y), drop(&M), drop(&DX);
  }
}
END_TEST

/* ---- losses and metrics ---- */

START_TEST(test_losses) {
  int64_t n = 37, C = 10;
  size_t nl = (size_t)(n * C);
  int32_t labels[37];
  tc_rng r;
  tc_rng_init(&r, 5, TC_RNG_STREAM_USER);
  for (int i = 0; i < n; i++)
    labels[i] = (int32_t)tc_rng_below(&r, (uint64_t)C);
  dbuf L = upr(nl, 21, -4, 4), LP = upr(nl, 22, -5, -0.01f),
       T = upr(nl, 23, -1, 1), LB = up(labels, sizeof labels),
       LOSS = up(NULL, 4), DL = up(NULL, nl * 4);
  float *hl = hostf(&L, 1), *hlp = hostf(&LP, 1), *ht = hostf(&T, 1);
  for (int cs = 0; cs < 12; cs++) {
    int kind = cs % 3; /* 0 xent, 1 nll, 2 mse */
    tc_loss_args r = {.struct_size = sizeof r};
    float wl = 0.f;
    for (int k = 0; k < 3; k++) { /* k == 2: the reference on the host */
      int host = k == 2;
      tc_loss_args a = {.struct_size = sizeof a};
      a.n = n, a.classes = C, a.labels = host ? labels : LB.d[k];
      a.target = host ? ht : F(T, k);
      a.reduction = (cs / 3) & 1 ? TC_REDUCTION_SUM : TC_REDUCTION_MEAN;
      a.label_smoothing = kind == 0 && cs >= 6 ? 0.1f : 0.f;
      a.logits = kind == 1 ? (host ? hlp : F(LP, k)) : (host ? hl : F(L, k));
      a.loss = host ? &wl : F(LOSS, k);
      a.dlogits = cs == 11 ? NULL : host ? hostf(&DL, 1) : F(DL, k);
      a.grad_scale = cs & 1 ? 0.5f : 1.f;
      if (host) {
        r = a;
        ck_assert_int_eq(kind == 0   ? ref_softmax_xent(&r)
                         : kind == 1 ? ref_nll(&r)
                                     : ref_mse(&r),
                         TC_OK);
      } else if (kind == 0)
        CALL(k, softmax_xent, a);
      else if (kind == 1)
        CALL(k, nll, a);
      else
        CALL(k, mse, a);
    }
    cmpf(&LOSS, 1, TOL_SUM, "loss");
    cmpf(&DL, nl, TOL, "dlogits");
    cmpref(&LOSS, &wl, 1, TOL_SUM, "loss");
    if (r.dlogits)
      cmpref(&DL, r.dlogits, nl, TOL, "dlogits");
    free(r.dlogits);
  }
  free(hl), free(hlp), free(ht);
  /* argmax: one row of ties (first wins), correct-count exact */
  float *s = rnd(nl, 24, -1, 1);
  for (int j = 0; j < C; j++)
    s[3 * C + j] = 0.5f;
  dbuf S = up(s, nl * 4), P = up(NULL, (size_t)n * 4);
  int64_t correct[2] = {-1, -1};
  for (int k = 0; k < 2; k++) {
    tc_argmax_args a = {.struct_size = sizeof a};
    a.n = n, a.classes = C, a.scores = F(S, k), a.labels = LB.d[k];
    a.pred = P.d[k], a.host_correct = &correct[k];
    CALL(k, argmax, a);
  }
  cmp_exact(&P, "argmax pred");
  int32_t pred[37];
  int64_t want = -1;
  tc_argmax_args ra = {.struct_size = sizeof ra};
  ra.n = n, ra.classes = C, ra.scores = s, ra.labels = labels, ra.pred = pred;
  ra.host_correct = &want;
  ref_argmax(&ra);
  cmpref_exact(&P, pred, sizeof pred, "argmax pred");
  ck_assert_int_eq(correct[0], want);
  ck_assert_int_eq(correct[1], want);
  free(s);
  drop(&L), drop(&LP), drop(&T), drop(&LB), drop(&LOSS), drop(&DL);
  drop(&S), drop(&P);
}
END_TEST

/* ---- optimizers ---- */

START_TEST(test_optim) {
  size_t n = 2001;
  static const float sgd[][5] = {/* momentum damp wd nesterov lr */
                                 {0, 0, 0, 0, 0.1f},
                                 {0.9f, 0, 0, 0, 0.05f},
                                 {0.9f, 0.1f, 1e-4f, 1, 0.05f}};
  for (int cs = 0; cs < 3; cs++) {
    dbuf P = upr(n, 61, -1, 1), G = upr(n, 62, -1, 1), M = up(NULL, n * 4);
    float *hp = hostf(&P, 1), *hg = hostf(&G, 1), *hm = hostf(&M, 1);
    for (int step = 0; step < 3; step++)
      for (int k = 0; k < 3; k++) { /* k == 2: the reference on the host */
        tc_sgd_args a = {.struct_size = sizeof a};
        a.n = (int64_t)n, a.momentum = sgd[cs][0], a.dampening = sgd[cs][1];
        a.weight_decay = sgd[cs][2], a.nesterov = (int32_t)sgd[cs][3];
        a.lr = sgd[cs][4], a.first_step = step == 0;
        a.param = k == 2 ? hp : F(P, k), a.grad = k == 2 ? hg : F(G, k);
        a.momentum_buf = a.momentum == 0.f ? NULL : k == 2 ? hm : F(M, k);
        if (k == 2)
          ref_sgd_update(&a);
        else
          CALL(k, sgd_update, a);
      }
    cmpf(&P, n, TOL, "sgd param");
    cmpf(&M, n, TOL, "sgd momentum");
    cmpref(&P, hp, n, TOL, "sgd param");
    cmpref(&M, hm, n, TOL, "sgd momentum");
    free(hp), free(hg), free(hm);
    drop(&P), drop(&G), drop(&M);
  }
  for (int cs = 0; cs < 3; cs++) {
    dbuf P = upr(n, 71, -1, 1), G = upr(n, 72, -1, 1), M = up(NULL, n * 4),
         V = up(NULL, n * 4), VM = up(NULL, n * 4);
    float *hp = hostf(&P, 1), *hg = hostf(&G, 1), *hm = hostf(&M, 1);
    float *hv = hostf(&V, 1), *hvm = hostf(&VM, 1);
    for (int step = 1; step <= 3; step++)
      for (int k = 0; k < 3; k++) { /* k == 2: the reference on the host */
        int host = k == 2;
        tc_adam_args a = {.struct_size = sizeof a};
        a.n = (int64_t)n, a.lr = 1e-2f, a.beta1 = 0.9f, a.beta2 = 0.999f;
        a.eps = 1e-8f, a.weight_decay = cs ? 0.01f : 0.f;
        a.decoupled = cs == 1, a.amsgrad = cs == 2, a.step = step;
        a.param = host ? hp : F(P, k), a.grad = host ? hg : F(G, k);
        a.exp_avg = host ? hm : F(M, k), a.exp_avg_sq = host ? hv : F(V, k);
        a.max_exp_avg_sq = host ? hvm : F(VM, k);
        if (host)
          ref_adam_update(&a);
        else
          CALL(k, adam_update, a);
      }
    cmpf(&P, n, TOL, "adam param");
    cmpf(&M, n, TOL, "adam exp_avg");
    cmpf(&V, n, TOL, "adam exp_avg_sq");
    if (cs == 2)
      cmpf(&VM, n, TOL, "adam max_exp_avg_sq");
    cmpref(&P, hp, n, TOL, "adam param");
    cmpref(&M, hm, n, TOL, "adam exp_avg");
    cmpref(&V, hv, n, TOL, "adam exp_avg_sq");
    if (cs == 2)
      cmpref(&VM, hvm, n, TOL, "adam max_exp_avg_sq");
    free(hp), free(hg), free(hm), free(hv), free(hvm);
    drop(&P), drop(&G), drop(&M), drop(&V), drop(&VM);
  }
}
END_TEST

/* ---- reductions ---- */

START_TEST(test_reduce) {
  static const size_t sizes[] = {0, 1, 1000, 100003};
  for (size_t i = 0; i < 4; i++) {
    size_t n = sizes[i];
    float *h = rnd(n, 81 + i, -1, 1);
    if (n > 1000) { /* non-finite values for the count */
      h[7] = INFINITY, h[500] = -INFINITY, h[n - 1] = NAN, h[99] = NAN;
    }
    double abs_sum = 0;
    for (size_t j = 0; j < n; j++)
      abs_sum += isfinite(h[j]) ? fabs(h[j]) * (1 + fabs(h[j])) : 0;
    dbuf X = up(h, n * 4);
    for (int op = TC_REDUCE_SUM; op <= TC_REDUCE_NONFINITE; op++) {
      if (n > 1000 && op != TC_REDUCE_NONFINITE)
        continue; /* sums of inf/nan say nothing */
      double out[2] = {-1, -1};
      for (int k = 0; k < 2; k++) {
        tc_reduce_args a = {.struct_size = sizeof a};
        a.n = (int64_t)n, a.op = op, a.x = F(X, k), a.host_out = &out[k];
        CALL(k, reduce, a);
      }
      ck_assert_msg(fabs(out[1] - out[0]) <= 1e-6 * abs_sum + 1e-12,
                    "reduce op %d n %zu: cuda %.17g cpu %.17g", op, n, out[1],
                    out[0]);
      double want = -1;
      tc_reduce_args r = {.struct_size = sizeof r};
      r.n = (int64_t)n, r.op = op, r.x = h, r.host_out = &want;
      ref_reduce(&r);
      ck_assert_msg(fabs(out[1] - want) <= 1e-6 * abs_sum + 1e-12,
                    "reduce op %d n %zu: cuda %.17g reference %.17g", op, n,
                    out[1], want);
      if (op == TC_REDUCE_NONFINITE)
        ck_assert(out[1] == (n > 1000 ? 4.0 : 0.0));
    }
    free(h);
    drop(&X);
  }
}
END_TEST

/* ---- run-to-run bit identity on the GPU ---- */

START_TEST(test_deterministic) {
  const ccfg *g = &conv_cfgs[6];
  tc_conv2d_args a = {.struct_size = sizeof a};
  a.n = g->n, a.c = g->c, a.h = g->h, a.w = g->w, a.k = g->k, a.r = g->r;
  a.s = g->s, a.stride_h = a.stride_w = 1, a.pad_h = a.pad_w = 2;
  a.dil_h = a.dil_w = 1, a.out_h = 28, a.out_w = 28;
  size_t nx = 6 * 28 * 28, ny = 6 * 6 * 28 * 28, nw = 6 * 25,
         nbn = 64 * 4 * 300;
  dbuf X = upr(nx, 91, -1, 1), DY = upr(ny, 92, -1, 1), DW = up(NULL, nw * 4),
       BX = upr(nbn, 93, -1, 1), BY = up(NULL, nbn * 4), SM = up(NULL, 16),
       SI = up(NULL, 16);
  float first[6 * 25], again[6 * 25];
  float y1[64], y2[64];
  double r1 = 0, r2 = 0;
  for (int run = 0; run < 2; run++) {
    tc_conv2d_args b = a;
    void *ws = conv_ws(1, &b, a.n);
    b.x = F(X, 1), b.dy = F(DY, 1), b.dw = F(DW, 1);
    CALL(1, conv2d_bwd_filter, b);
    it[1]->free(cx[1], ws);
    ck_assert_int_eq(
        it[1]->copy_d2h(cx[1], run ? again : first, b.dw, sizeof first), TC_OK);
    tc_batchnorm_args n = {.struct_size = sizeof n};
    n.n = 64, n.c = 4, n.spatial = 300, n.eps = 1e-5f, n.momentum = 0.1f;
    n.x = F(BX, 1), n.y = F(BY, 1), n.save_mean = F(SM, 1);
    n.save_invstd = F(SI, 1);
    CALL(1, batchnorm_fwd_train, n);
    ck_assert_int_eq(it[1]->copy_d2h(cx[1], run ? y2 : y1, F(BY, 1), sizeof y1),
                     TC_OK);
    tc_reduce_args rd = {.struct_size = sizeof rd};
    rd.n = (int64_t)nbn, rd.op = TC_REDUCE_SUMSQ, rd.x = F(BX, 1);
    rd.host_out = run ? &r2 : &r1;
    CALL(1, reduce, rd);
  }
  ck_assert(memcmp(first, again, sizeof first) == 0);
  ck_assert(memcmp(y1, y2, sizeof y1) == 0);
  ck_assert(memcmp(&r1, &r2, sizeof r1) == 0);
  drop(&X), drop(&DY), drop(&DW), drop(&BX), drop(&BY), drop(&SM), drop(&SI);
}
END_TEST

/* ---- NaN rules, bit for bit ---- */

START_TEST(test_nan_rules) {
  /* argmax: the first NaN wins (torch.argmax); rows with NaN in several
   * lanes' shares, NaN first, NaN last, ties */
  enum { R = 6, C = 70 };
  float s[R * C];
  tu_fill_uniform(s, R * C, 77, -1, 1);
  s[0 * C + 50] = NAN, s[0 * C + 3] = NAN;  /* first NaN at 3 */
  s[1 * C + 0] = NAN;                       /* NaN first */
  s[2 * C + C - 1] = NAN;                   /* NaN last */
  s[3 * C + 40] = 5.f, s[3 * C + 9] = 5.f;  /* tie: 9 */
  s[4 * C + 33] = NAN, s[4 * C + 65] = NAN; /* 33 */
  for (int j = 0; j < C; j++)
    s[5 * C + j] = -INFINITY; /* all -inf: 0 */
  int32_t lab[R] = {3, 0, C - 1, 9, 33, 0};
  dbuf S = up(s, sizeof s), L = up(lab, sizeof lab),
       P = up(NULL, sizeof(int32_t) * R);
  int64_t correct[2] = {-1, -1};
  for (int k = 0; k < 2; k++) {
    tc_argmax_args a = {.struct_size = sizeof a};
    a.n = R, a.classes = C, a.scores = F(S, k), a.labels = L.d[k];
    a.pred = P.d[k], a.host_correct = &correct[k];
    CALL(k, argmax, a);
  }
  cmp_exact(&P, "argmax with NaN");
  int32_t wp[R];
  int64_t wc = -1;
  tc_argmax_args ra = {.struct_size = sizeof ra,
                       .n = R,
                       .classes = C,
                       .scores = s,
                       .labels = lab,
                       .pred = wp,
                       .host_correct = &wc};
  ref_argmax(&ra);
  cmpref_exact(&P, wp, sizeof wp, "argmax with NaN");
  ck_assert_int_eq(wc, R);
  ck_assert_int_eq(correct[0], R);
  ck_assert_int_eq(correct[1], R);
  drop(&S), drop(&L), drop(&P);

  /* max pooling: `v > max || isnan(v)` (the last NaN wins); relu keeps
   * NaN (torch.relu), maps -inf and -0 to +0 */
  float x[2 * 6 * 6];
  tu_fill_uniform(x, 72, 78, -1, 1);
  x[0] = NAN, x[7] = NAN, x[40] = NAN, x[41] = -INFINITY;
  dbuf X = up(x, sizeof x), Y = up(NULL, 4 * 2 * 9), A = up(NULL, 4 * 2 * 9);
  float wy[2 * 9];
  int32_t wa[2 * 9];
  for (int k = 0; k < 3; k++) { /* k == 2: the reference on the host */
    tc_pool2d_args p = {.struct_size = sizeof p};
    p.n = 1, p.c = 2, p.h = p.w = 6, p.kh = p.kw = 3, p.stride_h = 2;
    p.stride_w = 2, p.pad_h = p.pad_w = 1, p.out_h = p.out_w = 3;
    if (k == 2) {
      p.x = x, p.y = wy, p.argmax = wa;
      ref_maxpool2d_fwd(&p);
      continue;
    }
    p.x = F(X, k), p.y = F(Y, k), p.argmax = A.d[k];
    CALL(k, maxpool2d_fwd, p);
  }
  cmp_exact(&Y, "maxpool y with NaN");
  cmp_exact(&A, "maxpool argmax with NaN");
  cmpref_exact(&Y, wy, sizeof wy, "maxpool y with NaN");
  cmpref_exact(&A, wa, sizeof wa, "maxpool argmax with NaN");
  dbuf RY = up(NULL, sizeof x);
  for (int k = 0; k < 2; k++) {
    tc_eltwise_args e = {.struct_size = sizeof e, .n = 72};
    e.a = F(X, k), e.y = F(RY, k);
    CALL(k, relu_fwd, e);
  }
  cmp_exact(&RY, "relu with NaN");
  float wr[72];
  tc_eltwise_args re = {.struct_size = sizeof re, .n = 72, .a = x, .y = wr};
  ref_relu_fwd(&re);
  cmpref_exact(&RY, wr, sizeof wr, "relu with NaN");
  float r[72];
  down(&RY, 1, r);
  ck_assert(isnan(r[0]) && isnan(r[7]) && r[41] == 0.f && !signbit(r[41]));
  /* relu_bwd from that output: a NaN output passes no gradient */
  dbuf DY = upr(72, 79, -1, 1), DX = up(NULL, sizeof x);
  for (int k = 0; k < 2; k++) {
    tc_eltwise_args e = {.struct_size = sizeof e, .n = 72};
    e.a = F(RY, k), e.b = F(DY, k), e.y = F(DX, k);
    CALL(k, relu_bwd, e);
  }
  cmp_exact(&DX, "relu_bwd with NaN");
  float dx[72];
  down(&DX, 1, dx);
  ck_assert(dx[0] == 0.f && dx[7] == 0.f && dx[41] == 0.f);
  drop(&X), drop(&Y), drop(&A), drop(&RY), drop(&DY), drop(&DX);

  /* 2x2 stride 2 (the CPU's fast paths): NaN, -inf, -0 windows */
  float x2[2 * 4 * 28];
  tu_fill_uniform(x2, 224, 80, -1, 1);
  x2[1] = NAN, x2[29] = NAN, x2[2] = -0.f, x2[3] = 0.f, x2[30] = x2[31] = -1.f;
  x2[60] = x2[61] = x2[88] = x2[89] = -INFINITY, x2[170] = NAN;
  dbuf X2 = up(x2, sizeof x2), Y2 = up(NULL, 4 * 56), A2 = up(NULL, 4 * 56);
  dbuf DY2 = upr(56, 81, -1, 1), DX2 = up(NULL, sizeof x2);
  for (int k = 0; k < 2; k++) {
    tc_pool2d_args p = {.struct_size = sizeof p};
    p.n = 1, p.c = 2, p.h = 4, p.w = 28, p.kh = p.kw = 2, p.stride_h = 2;
    p.stride_w = 2, p.out_h = 2, p.out_w = 14;
    p.x = F(X2, k), p.y = F(Y2, k), p.argmax = A2.d[k];
    p.dy = F(DY2, k), p.dx = F(DX2, k);
    CALL(k, maxpool2d_fwd, p);
    CALL(k, maxpool2d_bwd, p);
  }
  cmp_exact(&Y2, "maxpool 2x2 y with NaN");
  cmp_exact(&A2, "maxpool 2x2 argmax with NaN");
  cmp_exact(&DX2, "maxpool 2x2 dx with NaN");
  int32_t am2[56];
  ck_assert_int_eq(it[1]->copy_d2h(cx[1], am2, A2.d[1], sizeof am2), TC_OK);
  ck_assert_int_eq(am2[0], 29); /* the last NaN */
  ck_assert_int_eq(am2[1], 2);  /* -0 before +0: the first */
  drop(&X2), drop(&Y2), drop(&A2), drop(&DY2), drop(&DX2);

  /* fused BN+ReLU (eval, with a residual): NaN kept, +-inf, the mask */
  enum { BN = 2, BC = 3, BS = 37 };
  float xb[BN * BC * BS], zb[BN * BC * BS];
  tu_fill_uniform(xb, BN * BC * BS, 82, -2, 3);
  tu_fill_uniform(zb, BN * BC * BS, 83, -1, 1);
  xb[5] = NAN, zb[40] = NAN, zb[41] = INFINITY, zb[42] = -INFINITY;
  dbuf XB = up(xb, sizeof xb), ZB = up(zb, sizeof zb), YB = up(NULL, sizeof xb);
  dbuf RMB = upr(BC, 84, -0.5f, 0.5f), RVB = upr(BC, 85, 0.5f, 2);
  for (int k = 0; k < 2; k++) {
    tc_batchnorm_args b = {.struct_size = sizeof b};
    b.n = BN, b.c = BC, b.spatial = BS, b.eps = 1e-5f;
    b.x = F(XB, k), b.y = F(YB, k), b.residual = F(ZB, k);
    b.running_mean = F(RMB, k), b.running_var = F(RVB, k);
    CALL(k, batchnorm_relu_fwd_infer, b);
  }
  cmp_exact(&YB, "fused bn+relu with NaN");
  float yb[BN * BC * BS];
  down(&YB, 1, yb);
  ck_assert(isnan(yb[5]) && isnan(yb[40]) && isinf(yb[41]) && yb[42] == 0.f);
  drop(&XB), drop(&ZB), drop(&YB), drop(&RMB), drop(&RVB);
}
END_TEST

/* ---- the same invalid arguments rejected by both backends ---- */

START_TEST(test_same_rejections) {
  dbuf B = upr(4096, 90, -1, 1);
  int32_t badlab[2] = {0, 10};
  dbuf L = up(badlab, sizeof badlab);
  for (int k = 0; k < 2; k++) {
    float *b = F(B, k);
#define REJECT(slot, args, status)                                             \
  ck_assert_msg(it[k]->slot(cx[k], &(args)) == (status),                       \
                "%s " #slot ": expected status %d (%s)", it[k]->name,          \
                (int)(status), tc_last_error())
    tc_gemm_args g = {.struct_size = sizeof g,
                      .m = 2,
                      .n = 2,
                      .k = 2,
                      .alpha = 1,
                      .a = b,
                      .lda = 2,
                      .b = b,
                      .ldb = 2,
                      .c = b + 100,
                      .ldc = 2,
                      .batch = 0};
    REJECT(gemm, g, TC_OK); /* batch 0: nothing to do */
    g.batch = 2, g.stride_c = 1;
    REJECT(gemm, g, TC_EINVAL); /* overlapping C entries */
    g.batch = 1, g.lda = 1;
    REJECT(gemm, g, TC_EINVAL);
    g.lda = 2, g.struct_size = 8;
    REJECT(gemm, g, TC_EINVAL);

    tc_conv2d_args cv = {.struct_size = sizeof cv,
                         .n = 1,
                         .c = 1,
                         .h = 5,
                         .w = 5,
                         .k = 1,
                         .r = 3,
                         .s = 3,
                         .stride_h = 1,
                         .stride_w = 1,
                         .dil_h = 1,
                         .dil_w = 1,
                         .out_h = 4,
                         .out_w = 3,
                         .x = b,
                         .wt = b,
                         .y = b + 100};
    REJECT(conv2d_fwd, cv, TC_EINVAL); /* wrong out_h */
    cv.out_h = 3, cv.r = 7;
    REJECT(conv2d_fwd, cv, TC_EINVAL); /* kernel beyond the input */

    tc_pool2d_args p = {.struct_size = sizeof p,
                        .n = 1,
                        .c = 1,
                        .h = 6,
                        .w = 6,
                        .kh = 2,
                        .kw = 2,
                        .stride_h = 2,
                        .stride_w = 2,
                        .pad_h = 2,
                        .out_h = 5,
                        .out_w = 3,
                        .x = b,
                        .y = b + 100,
                        .argmax = (int32_t *)b + 200};
    REJECT(maxpool2d_fwd, p, TC_EINVAL); /* pad > kernel/2 */
    p.pad_h = 0, p.out_h = 4;
    REJECT(maxpool2d_fwd, p, TC_EINVAL); /* out size neither floor nor ceil */
    p.out_h = 3, p.argmax = NULL;
    REJECT(maxpool2d_fwd, p, TC_EINVAL); /* max pooling needs argmax */

    tc_batchnorm_args bn = {.struct_size = sizeof bn,
                            .n = 2,
                            .c = 1,
                            .spatial = 3,
                            .eps = -1.f,
                            .x = b,
                            .y = b + 100,
                            .save_mean = b + 200,
                            .save_invstd = b + 300};
    REJECT(batchnorm_fwd_train, bn, TC_EINVAL); /* eps < 0 */
    bn.eps = 1e-5f, bn.n = 1, bn.spatial = 1;
    REJECT(batchnorm_fwd_train, bn, TC_EINVAL); /* one value per channel */
    bn.n = 2, bn.spatial = 3;
    REJECT(batchnorm_fwd_infer, bn, TC_EINVAL); /* no running statistics */
    bn.dy = b, bn.dx = NULL;
    REJECT(batchnorm_bwd, bn, TC_EINVAL);

    tc_loss_args ls = {.struct_size = sizeof ls,
                       .n = 2,
                       .classes = 10,
                       .logits = b,
                       .labels = L.d[k],
                       .loss = b + 100,
                       .grad_scale = 1};
    REJECT(softmax_xent, ls, TC_EINVAL); /* label 10 of 10 classes */
    ls.reduction = 7;
    REJECT(softmax_xent, ls, TC_EINVAL);
    ls.reduction = TC_REDUCTION_NONE;
    REJECT(softmax_xent, ls, TC_EUNSUPPORTED);

    tc_argmax_args am = {
        .struct_size = sizeof am, .n = 2, .classes = 0, .scores = b};
    REJECT(argmax, am, TC_EINVAL);
    tc_dropout_args d = {.struct_size = sizeof d,
                         .n = 4,
                         .group = 3,
                         .p = 0.5f,
                         .x = b,
                         .y = b + 100};
    REJECT(dropout_fwd, d, TC_EINVAL); /* group does not divide n */
    d.group = 1, d.p = NAN;
    REJECT(dropout_fwd, d, TC_EINVAL);
    tc_sgd_args sg = {.struct_size = sizeof sg,
                      .n = 4,
                      .lr = 0.1f,
                      .momentum = 0.9f,
                      .param = b,
                      .grad = b + 100};
    REJECT(sgd_update, sg, TC_EINVAL); /* momentum without a buffer */
    tc_adam_args ad = {.struct_size = sizeof ad,
                       .n = 4,
                       .param = b,
                       .grad = b + 100,
                       .exp_avg = b + 200,
                       .exp_avg_sq = b + 300,
                       .step = 0};
    REJECT(adam_update, ad, TC_EINVAL);
    tc_copy4d_args c4 = {.struct_size = sizeof c4,
                         .shape = {1, 1, -1, 1},
                         .src = b,
                         .dst = b + 100};
    REJECT(copy4d, c4, TC_EINVAL);
    tc_reduce_args rd = {.struct_size = sizeof rd, .n = 4, .op = 9, .x = b};
    double out;
    rd.host_out = &out;
    REJECT(reduce, rd, TC_EINVAL);
    tc_eltwise_args e = {.struct_size = sizeof e, .n = 4, .y = b};
    REJECT(relu_fwd, e, TC_EINVAL); /* a is NULL */
    tc_gap_args gp = {.struct_size = sizeof gp,
                      .n = 1,
                      .c = 1,
                      .spatial = 0,
                      .x = b,
                      .y = b + 100};
    REJECT(global_avgpool_fwd, gp, TC_EINVAL);
#undef REJECT
  }
  drop(&B), drop(&L);
}
END_TEST

/* ---- whole training steps through the public API ---- */

/* Host copy of a tensor (float32 or int64 bits), malloc'd. */
static void *host_of(tc_tensor *t, size_t *bytes) {
  size_t b =
      (size_t)tc_tensor_numel(t) * (tc_tensor_dtype(t) == TC_FLOAT32 ? 4 : 8);
  void *h = malloc(b + 1);
  ck_assert_ptr_nonnull(h);
  ck_assert_int_eq(tc_tensor_copy_to_host(t, h, b), TC_OK);
  *bytes = b;
  return h;
}

static void cmp_tensors(tc_tensor *cpu, tc_tensor *gpu, double tol,
                        const char *what, const char *name) {
  size_t b0, b1;
  float *h0 = host_of(cpu, &b0), *h1 = host_of(gpu, &b1);
  ck_assert_uint_eq(b0, b1);
  if (tc_tensor_dtype(cpu) == TC_FLOAT32) {
    double e = tu_max_rel_err(h1, h0, b0 / 4);
    ck_assert_msg(e <= tol, "%s %s: cuda vs cpu max rel err %.3g > %.3g", what,
                  name, e, tol);
  } else {
    ck_assert_msg(memcmp(h0, h1, b0) == 0, "%s %s differ", what, name);
  }
  free(h0);
  free(h1);
}

static void model_steps(int resnet) {
  tc_model *m[2] = {NULL, NULL};
  int64_t in_shape[3] = {3, 32, 32};
  for (int k = 0; k < 2; k++) {
    tc_layer *root = NULL;
    if (resnet)
      ck_assert_int_eq(model_resnet(&root, 20, TC_SHORTCUT_A_MAXPOOL), TC_OK);
    else
      ck_assert_int_eq(model_lenet(&root, 0), TC_OK);
    ck_assert_msg(tc_model_create(&m[k], be[k], root, in_shape, 3, NULL) ==
                      TC_OK,
                  "%s", tc_last_error());
  }
  if (resnet)
    ck_assert_int_eq(model_resnet_init(m[0], 3), TC_OK);
  /* the same weights and buffers on both */
  ck_assert_int_eq(tc_model_num_state(m[0]), tc_model_num_state(m[1]));
  for (int64_t i = 0; i < tc_model_num_state(m[0]); i++) {
    const char *name;
    tc_tensor *t0, *t1;
    ck_assert_int_eq(tc_model_get_state(m[0], i, &name, &t0), TC_OK);
    ck_assert_int_eq(tc_model_get_state(m[1], i, &name, &t1), TC_OK);
    ck_assert_msg(tc_tensor_copy(t1, t0) == TC_OK, "%s", tc_last_error());
  }
  enum { N = 8 };
  int64_t xs[4] = {N, 3, 32, 32}, ls[1] = {N};
  float *xh = rnd(N * 3 * 32 * 32, resnet ? 201 : 202, -1, 1);
  int32_t lab[N];
  for (int i = 0; i < N; i++)
    lab[i] = (i * 7 + 3) % 10;
  tc_tensor *x[2], *labels[2];
  tc_loss *loss[2];
  tc_optimizer *opt[2];
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(tc_tensor_create(&x[k], be[k], xs, 4, TC_FLOAT32), TC_OK);
    ck_assert_int_eq(tc_tensor_create(&labels[k], be[k], ls, 1, TC_INT32),
                     TC_OK);
    ck_assert_int_eq(
        tc_tensor_copy_from_host(x[k], xh, sizeof(float) * N * 3072), TC_OK);
    ck_assert_int_eq(tc_tensor_copy_from_host(labels[k], lab, sizeof lab),
                     TC_OK);
    ck_assert_int_eq(
        tc_loss_create(&loss[k], be[k], TC_LOSS_CROSS_ENTROPY, NULL), TC_OK);
    tc_sgd_options so = TC_SGD_OPTIONS_INIT;
    so.lr = 0.05f, so.momentum = 0.9f, so.weight_decay = 5e-4f;
    ck_assert_int_eq(tc_optimizer_create_sgd_for_model(&opt[k], m[k], &so),
                     TC_OK);
  }
  free(xh);
  const char *what = resnet ? "resnet20" : "lenet5";
  for (int step = 0; step < 2; step++) {
    tc_tensor *y[2];
    float value[2];
    for (int k = 0; k < 2; k++) {
      ck_assert_int_eq(tc_model_zero_grad(m[k]), TC_OK);
      ck_assert_msg(tc_model_forward(m[k], x[k], &y[k]) == TC_OK, "%s",
                    tc_last_error());
      ck_assert_msg(tc_loss_compute(loss[k], y[k], labels[k], &value[k],
                                    tc_model_output_grad(m[k])) == TC_OK,
                    "%s", tc_last_error());
      ck_assert_msg(tc_model_backward(m[k], tc_model_output_grad(m[k])) ==
                        TC_OK,
                    "%s", tc_last_error());
    }
    cmp_tensors(y[0], y[1], TOL, what, "logits");
    ck_assert_msg(fabsf(value[1] - value[0]) <= TOL * fabsf(value[0]),
                  "%s step %d loss: cuda %.9g cpu %.9g", what, step,
                  (double)value[1], (double)value[0]);
    for (int64_t i = 0; i < tc_model_num_params(m[0]); i++) {
      const char *name;
      tc_tensor *g0, *g1;
      ck_assert_int_eq(tc_model_get_param(m[0], i, &name, NULL, &g0), TC_OK);
      ck_assert_int_eq(tc_model_get_param(m[1], i, &name, NULL, &g1), TC_OK);
      cmp_tensors(g0, g1, GRAD_TOL, what, name);
    }
    for (int k = 0; k < 2; k++)
      ck_assert_int_eq(tc_optimizer_step(opt[k]), TC_OK);
  }
  for (int64_t i = 0; i < tc_model_num_state(m[0]); i++) {
    const char *name;
    tc_tensor *t0, *t1;
    ck_assert_int_eq(tc_model_get_state(m[0], i, &name, &t0), TC_OK);
    ck_assert_int_eq(tc_model_get_state(m[1], i, &name, &t1), TC_OK);
    cmp_tensors(t0, t1, TOL, what, name);
  }
  for (int k = 0; k < 2; k++) {
    tc_optimizer_destroy(opt[k]);
    tc_loss_destroy(loss[k]);
    tc_tensor_destroy(x[k]);
    tc_tensor_destroy(labels[k]);
    tc_model_destroy(m[k]);
  }
}

START_TEST(test_lenet_steps) {
  model_steps(0);
}
END_TEST

START_TEST(test_resnet20_steps) {
  model_steps(1);
}
END_TEST

/* ---- CUDA graphs: capture backend work once, replay it ---- */

START_TEST(test_graph) {
  size_t n = 5000;
  dbuf X = upr(n, 95, -1, 1), Y = upr(n, 96, -1, 1);
  tc_eltwise_args ax = {
      .struct_size = sizeof ax, .n = (int64_t)n, .alpha = 0.5f};
  tc_eltwise_args sc = {
      .struct_size = sizeof sc, .n = (int64_t)n, .alpha = 0.75f};
  ck_assert_int_eq(tc_backend_graph_end(be[1]), TC_ESTATE);
  ck_assert_int_eq(tc_backend_graph_replay(be[1]), TC_ESTATE);
  ck_assert_msg(tc_backend_graph_begin(be[1]) == TC_OK, "%s", tc_last_error());
  ax.a = F(X, 1), ax.y = F(Y, 1);
  sc.a = F(Y, 1), sc.y = F(Y, 1);
  CALL(1, axpy, ax);
  CALL(1, scale, sc);
  /* host syncs are refused while capturing, the capture survives them */
  float tmp[4];
  ck_assert_int_eq(it[1]->copy_d2h(cx[1], tmp, F(Y, 1), sizeof tmp), TC_ESTATE);
  ck_assert_int_eq(tc_backend_synchronize(be[1]), TC_ESTATE);
  ck_assert_int_eq(tc_backend_graph_begin(be[1]), TC_ESTATE);
  ck_assert_msg(tc_backend_graph_end(be[1]) == TC_OK, "%s", tc_last_error());
  for (int r = 0; r < 3; r++) {
    ck_assert_msg(tc_backend_graph_replay(be[1]) == TC_OK, "%s",
                  tc_last_error());
    ax.a = F(X, 0), ax.y = F(Y, 0);
    sc.a = F(Y, 0), sc.y = F(Y, 0);
    CALL(0, axpy, ax);
    CALL(0, scale, sc);
  }
  cmp_exact(&Y, "graph replay vs eager"); /* --fmad=false: the CPU's bits */
  drop(&X), drop(&Y);
}
END_TEST

/* ---- a training step without host waits ---- */

/* copy4d with repeated destinations (sums over stride-0 dimensions) is
 * parallel on the GPU and must keep the CPU's single-task bits; counters;
 * the loss's device label flag. */
START_TEST(test_sync_free_ops) {
  dbuf S = upr(4 * 3 * 5 * 6, 110, -1, 1), D = upr(3 * 6, 111, -1, 1);
  for (int acc = 0; acc < 2; acc++) {
    tc_copy4d_args c4 = {.struct_size = sizeof c4,
                         .shape = {4, 3, 5, 6},
                         .src_stride = {90, 30, 6, 1},
                         .dst_stride = {0, 6, 0, 1},
                         .accumulate = acc};
    tc_copy4d_args r = c4;
    r.src = hostf(&S, 1), r.dst = hostf(&D, 1);
    ref_copy4d(&r);
    for (int k = 0; k < 2; k++) {
      c4.src = F(S, k), c4.dst = F(D, k);
      CALL(k, copy4d, c4);
    }
    cmp_exact(&D, "copy4d onto repeated destinations");
    cmpref(&D, r.dst, 3 * 6, TOL, "copy4d onto repeated destinations");
    free((void *)r.src), free(r.dst);
  }
  drop(&S), drop(&D);

  int64_t cnt[2] = {41, -3}, wcnt[2] = {41, -3};
  dbuf CN = up(cnt, sizeof cnt);
  for (int k = 0; k < 2; k++) {
    tc_counter_args ca = {sizeof ca, 2, 5, (int64_t *)CN.d[k]};
    CALL(k, counter_add, ca);
  }
  tc_counter_args rc = {sizeof rc, 2, 5, wcnt};
  ref_counter_add(&rc);
  cmp_exact(&CN, "counter_add");
  cmpref_exact(&CN, wcnt, sizeof wcnt, "counter_add");
  down(&CN, 1, cnt);
  ck_assert(cnt[0] == 46 && cnt[1] == 2);
  drop(&CN);

  int32_t lab[4] = {0, 2, 1, 2}, flag = -1;
  dbuf L = upr(12, 112, -2, 2), LB = up(lab, sizeof lab), V = up(NULL, 8),
       G = up(NULL, 48);
  for (int bad = 0; bad < 2; bad++) {
    lab[3] = bad ? 3 : 2;
    for (int k = 0; k < 2; k++) {
      ck_assert_int_eq(it[k]->copy_h2d(cx[k], LB.d[k], lab, sizeof lab), TC_OK);
      tc_loss_args a = {.struct_size = sizeof a};
      a.n = 4, a.classes = 3, a.logits = F(L, k), a.labels = LB.d[k];
      a.loss = F(V, k), a.dlogits = F(G, k), a.grad_scale = 1.f;
      a.label_error = (int32_t *)(F(V, k) + 1);
      CALL(k, softmax_xent, a);
    }
    for (int k = 0; k < 2; k++) {
      float v[2];
      down(&V, k, v);
      memcpy(&flag, &v[1], sizeof flag);
      ck_assert_int_eq(flag, bad);
      ck_assert(bad ? isnan(v[0]) : isfinite(v[0]));
    }
    if (!bad)
      cmpf(&V, 1, TOL_SUM, "loss with a label flag");
  }
  drop(&L), drop(&LB), drop(&V), drop(&G);
}
END_TEST

/* conv+bn+relu+pool+linear on the GPU: one eager step, then a whole step
 * (zero_grad, forward, tc_loss_compute_async, backward, SGD) captured in a
 * graph and replayed, against a twin stepping eagerly: the same bits. */
START_TEST(test_graph_train_step) {
  tc_model *m[2];
  tc_tensor *x[2], *y[2];
  tc_loss *loss[2];
  tc_optimizer *opt[2];
  enum { NB = 8 };
  float *xh = rnd(NB * 3 * 16 * 16, 120, -1, 1);
  int32_t lab[NB];
  for (int i = 0; i < NB; i++)
    lab[i] = (i * 3 + 1) % 10;
  for (int k = 0; k < 2; k++) {
    tc_set_seed(77);
    tc_layer *net = NULL, *l = NULL;
    ck_assert_int_eq(tc_sequential_create(&net), TC_OK);
    tc_conv2d_options co = TC_CONV2D_OPTIONS_INIT;
    co.pad_h = co.pad_w = 1;
    ck_assert_int_eq(tc_conv2d_create(&l, 3, 8, 3, &co), TC_OK);
    ck_assert_int_eq(tc_sequential_add(net, "conv", l), TC_OK);
    ck_assert_int_eq(tc_batchnorm2d_create(&l, 8, NULL), TC_OK);
    ck_assert_int_eq(tc_sequential_add(net, "bn", l), TC_OK);
    ck_assert_int_eq(tc_relu_create(&l), TC_OK);
    ck_assert_int_eq(tc_sequential_add(net, "relu", l), TC_OK);
    ck_assert_int_eq(tc_maxpool2d_create(&l, 2, NULL), TC_OK);
    ck_assert_int_eq(tc_sequential_add(net, "pool", l), TC_OK);
    ck_assert_int_eq(tc_flatten_create(&l), TC_OK);
    ck_assert_int_eq(tc_sequential_add(net, "flatten", l), TC_OK);
    ck_assert_int_eq(tc_linear_create(&l, 8 * 8 * 8, 10, NULL), TC_OK);
    ck_assert_int_eq(tc_sequential_add(net, "fc", l), TC_OK);
    int64_t in_shape[3] = {3, 16, 16}, xs[4] = {NB, 3, 16, 16}, ys[1] = {NB};
    ck_assert_int_eq(tc_model_create(&m[k], be[1], net, in_shape, 3, NULL),
                     TC_OK);
    ck_assert_int_eq(tc_tensor_create(&x[k], be[1], xs, 4, TC_FLOAT32), TC_OK);
    ck_assert_int_eq(tc_tensor_create(&y[k], be[1], ys, 1, TC_INT32), TC_OK);
    ck_assert_int_eq(
        tc_tensor_copy_from_host(x[k], xh, sizeof(float) * NB * 768), TC_OK);
    ck_assert_int_eq(tc_tensor_copy_from_host(y[k], lab, sizeof lab), TC_OK);
    ck_assert_int_eq(
        tc_loss_create(&loss[k], be[1], TC_LOSS_CROSS_ENTROPY, NULL), TC_OK);
    tc_sgd_options so = TC_SGD_OPTIONS_INIT;
    so.lr = 0.05f, so.momentum = 0.9f;
    ck_assert_int_eq(tc_optimizer_create_sgd_for_model(&opt[k], m[k], &so),
                     TC_OK);
  }
  free(xh);
  for (int step = 0; step < 4; step++)
    for (int k = 0; k < 2; k++) {
      if (k == 1 && step == 1)
        ck_assert_msg(tc_backend_graph_begin(be[1]) == TC_OK, "%s",
                      tc_last_error());
      if (k == 1 && step > 1) {
        ck_assert_msg(tc_backend_graph_replay(be[1]) == TC_OK, "%s",
                      tc_last_error());
        continue;
      }
      tc_tensor *out = NULL;
      ck_assert_int_eq(tc_model_zero_grad(m[k]), TC_OK);
      ck_assert_msg(tc_model_forward(m[k], x[k], &out) == TC_OK, "%s",
                    tc_last_error());
      ck_assert_msg(tc_loss_compute_async(loss[k], out, y[k], NULL,
                                          tc_model_output_grad(m[k])) == TC_OK,
                    "%s", tc_last_error());
      ck_assert_msg(tc_model_backward(m[k], tc_model_output_grad(m[k])) ==
                        TC_OK,
                    "%s", tc_last_error());
      ck_assert_msg(tc_optimizer_step(opt[k]) == TC_OK, "%s", tc_last_error());
      if (k == 1 && step == 1) {
        ck_assert_msg(tc_backend_graph_end(be[1]) == TC_OK, "%s",
                      tc_last_error());
        /* capture recorded the step without running it */
        ck_assert_msg(tc_backend_graph_replay(be[1]) == TC_OK, "%s",
                      tc_last_error());
      }
    }
  float v[2];
  for (int k = 0; k < 2; k++)
    ck_assert_msg(tc_loss_read(loss[k], &v[k]) == TC_OK, "%s", tc_last_error());
  ck_assert_mem_eq(&v[0], &v[1], sizeof v[0]);
  for (int64_t i = 0; i < tc_model_num_state(m[0]); i++) {
    const char *name;
    tc_tensor *t0, *t1;
    ck_assert_int_eq(tc_model_get_state(m[0], i, &name, &t0), TC_OK);
    ck_assert_int_eq(tc_model_get_state(m[1], i, &name, &t1), TC_OK);
    size_t b0, b1;
    float *h0 = host_of(t0, &b0), *h1 = host_of(t1, &b1);
    ck_assert_msg(b0 == b1 && memcmp(h0, h1, b0) == 0,
                  "graph step vs eager: %s differs", name);
    free(h0);
    free(h1);
  }
  tc_tensor *nbt = NULL;
  int64_t count = 0;
  ck_assert_int_eq(tc_model_find_state(m[1], "bn.num_batches_tracked", &nbt),
                   TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(nbt, &count, sizeof count), TC_OK);
  ck_assert_int_eq(count, 4);
  for (int k = 0; k < 2; k++) {
    tc_optimizer_destroy(opt[k]);
    tc_loss_destroy(loss[k]);
    tc_tensor_destroy(x[k]);
    tc_tensor_destroy(y[k]);
    tc_model_destroy(m[k]);
  }
}
END_TEST

/* ---- NCCL communicator (one rank: every collective is checkable) ---- */

START_TEST(test_nccl_one_rank) {
  void *(*gp)(void *, const char *) = it[1]->get_proc;
  tc_status (*uid)(void *, size_t) = NULL;
  tc_status (*mk)(tc_comm **, void *, const void *, size_t, int, int) = NULL;
  *(void **)&uid = gp(cx[1], "tc_cuda_nccl_unique_id");
  *(void **)&mk = gp(cx[1], "tc_cuda_comm_create_nccl");
  if (!uid || !mk) {
    printf("test_cuda: built without NCCL, test_nccl_one_rank skipped\n");
    return;
  }
  unsigned char id[128];
  ck_assert_int_eq(uid(id, 8), TC_EINVAL);
  ck_assert_msg(uid(id, sizeof id) == TC_OK, "%s", tc_last_error());
  tc_comm *c = NULL;
  ck_assert_int_eq(mk(&c, cx[1], id, sizeof id, 1, 1), TC_EINVAL);
  ck_assert_msg(mk(&c, cx[1], id, sizeof id, 0, 1) == TC_OK, "%s",
                tc_last_error());
  ck_assert_str_eq(tc_comm_name(c), "nccl");
  ck_assert_int_eq(tc_comm_size(c), 1);
  float h[5] = {1, 2, 3, 4, 5}, w[5];
  ck_assert_int_eq(tc_comm_allreduce_sum(c, h, 5), TC_OK);
  ck_assert(h[0] == 1 && h[4] == 5);
  dbuf D = up(h, sizeof h);
  ck_assert_int_eq(tc_comm_allreduce_sum(c, F(D, 1), 5), TC_OK);
  tc_comm_request *r = NULL;
  ck_assert_int_eq(tc_comm_allreduce_start(c, F(D, 1), 5, &r), TC_OK);
  ck_assert_int_eq(tc_comm_wait(c, r), TC_OK);
  ck_assert_int_eq(tc_comm_allreduce_start(c, h, 5, &r), TC_OK);
  ck_assert_int_eq(tc_comm_wait(c, r), TC_OK);
  down(&D, 1, w);
  ck_assert_mem_eq(h, w, sizeof h);
  ck_assert_int_eq(tc_comm_broadcast(c, h, sizeof h, 0), TC_OK);
  ck_assert_int_eq(tc_comm_broadcast(c, h, sizeof h, 1), TC_EINVAL);
  ck_assert_int_eq(tc_comm_allgather(c, h, w, sizeof h), TC_OK);
  ck_assert_mem_eq(h, w, sizeof h);
  ck_assert_int_eq(tc_comm_barrier(c), TC_OK);
  ck_assert_int_eq(tc_comm_abort(c, 1), TC_EUNSUPPORTED);
  drop(&D);

  /* the data-parallel wrapper over it: gradients reduced on the device */
  tc_layer *root = NULL;
  tc_model *m = NULL;
  int64_t in_shape[3] = {3, 32, 32}, xs[4] = {4, 3, 32, 32}, ys[1] = {4};
  ck_assert_int_eq(model_lenet(&root, 1), TC_OK);
  ck_assert_int_eq(tc_model_create(&m, be[1], root, in_shape, 3, NULL), TC_OK);
  tc_ddp *d = NULL;
  ck_assert_msg(tc_ddp_create(&d, m, c, NULL) == TC_OK, "%s", tc_last_error());
  tc_tensor *x = NULL, *y = NULL;
  tc_loss *loss = NULL;
  ck_assert_int_eq(tc_tensor_create(&x, be[1], xs, 4, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&y, be[1], ys, 1, TC_INT32), TC_OK);
  float *xh = rnd(4 * 3072, 130, -1, 1);
  int32_t lab[4] = {1, 2, 3, 4};
  ck_assert_int_eq(tc_tensor_copy_from_host(x, xh, 4 * 3072 * 4), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_from_host(y, lab, sizeof lab), TC_OK);
  free(xh);
  ck_assert_int_eq(tc_loss_create(&loss, be[1], TC_LOSS_CROSS_ENTROPY, NULL),
                   TC_OK);
  float lv = 0.f;
  ck_assert_msg(tc_ddp_train_step(d, loss, x, y, &lv, NULL) == TC_OK, "%s",
                tc_last_error());
  ck_assert(isfinite(lv));
  tc_ddp_destroy(d);
  tc_loss_destroy(loss);
  tc_tensor_destroy(x);
  tc_tensor_destroy(y);
  tc_model_destroy(m);
  tc_comm_destroy(c);
}
END_TEST

/* ---- errors, extras, and the public tensor API on the device ---- */

START_TEST(test_errors_and_api) {
  void *p = NULL;
  tc_clear_error();
  ck_assert_int_eq(it[1]->alloc(cx[1], &p, (size_t)1 << 60), TC_ENOMEM);
  ck_assert_ptr_null(p);
  ck_assert_msg(strstr(tc_last_error(), "cuda") != NULL, "message: %s",
                tc_last_error());
  /* still usable after the failure */
  float v[3] = {1, 2, 3}, w[3] = {0};
  ck_assert_int_eq(it[1]->alloc(cx[1], &p, sizeof v), TC_OK);
  ck_assert_int_eq(it[1]->copy_h2d(cx[1], p, v, sizeof v), TC_OK);
  ck_assert_int_eq(it[1]->copy_d2h(cx[1], w, p, sizeof w), TC_OK);
  ck_assert(memcmp(v, w, sizeof v) == 0);
  tc_dropout_args d = {.struct_size = sizeof d, .n = 3, .group = 1, .p = 2.f};
  d.x = p, d.y = p;
  ck_assert_int_eq(it[1]->dropout_fwd(cx[1], &d), TC_EINVAL);
  it[1]->free(cx[1], p);
  ck_assert_ptr_nonnull(it[1]->get_proc(cx[1], "cuda_stream"));
  ck_assert_ptr_null(it[1]->get_proc(cx[1], "no_such_extra"));

  int64_t shape[2] = {3, 5};
  tc_tensor *t = NULL, *h = NULL;
  ck_assert_int_eq(tc_tensor_create(&t, be[1], shape, 2, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&h, be[0], shape, 2, TC_FLOAT32), TC_OK);
  float src[15], back[15];
  tu_fill_uniform(src, 15, 3, -1, 1);
  ck_assert_int_eq(tc_tensor_copy_from_host(t, src, sizeof src), TC_OK);
  ck_assert_int_eq(tc_tensor_copy(h, t), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(h, back, sizeof back), TC_OK);
  ck_assert(memcmp(src, back, sizeof src) == 0);
  ck_assert_int_eq(tc_tensor_fill(t, 2.5), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(t, back, sizeof back), TC_OK);
  for (int i = 0; i < 15; i++)
    ck_assert(back[i] == 2.5f);
  tc_tensor_destroy(t);
  tc_tensor_destroy(h);
}
END_TEST

/* ---- the module's table without a GPU ----
 * What needs no device runs on every machine: the module is loaded with
 * dlopen and its slots are called where they must answer before touching
 * CUDA (argument and size checks). `fake` stands in for a context: a slot
 * that passed its checks would fail on it (no device), never crash. */

static long long fake_ctx[512];

/* Sizes the CPU backend rejects must be rejected by the CUDA one too,
 * before anything runs (n = 0: nothing to compute, but the same answer). */
static int check_same_size_rejections(const tc_backend_iface *cu) {
  tc_backend *cpu = NULL;
  if (tc_backend_create(&cpu, "cpu") != TC_OK)
    return 0;
  const tc_backend_iface *ci = tc_backend_get_iface(cpu);
  void *cc = tc_backend_get_context(cpu);
  /* n, c, h, w, k, r, s, pad */
  static const int64_t cases[][8] = {
      {1, 1, 1 << 30, 1 << 30, 1, 1, 1, 1 << 30}, /* out_h*out_w overflows */
      {0, 1 << 16, 1, 1, 1 << 16, 1, 1, 0},       /* k*c*r*s > INT32_MAX */
      {0, 1, 1 << 16, 1 << 16, 1, 1 << 16, 1 << 16, 0},   /* h*w > INT32_MAX */
      {0, 1 << 15, 1 << 8, 1 << 8, 1, 1 << 8, 1 << 8, 0}, /* c*r*s */
  };
  int ok = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const int64_t *q = cases[i];
    tc_conv2d_args a = {.struct_size = sizeof a,
                        .n = q[0],
                        .c = q[1],
                        .h = q[2],
                        .w = q[3],
                        .k = q[4],
                        .r = q[5],
                        .s = q[6],
                        .stride_h = 1,
                        .stride_w = 1,
                        .pad_h = q[7],
                        .pad_w = q[7],
                        .dil_h = 1,
                        .dil_w = 1};
    a.out_h = a.h + 2 * a.pad_h - a.r + 1;
    a.out_w = a.w + 2 * a.pad_w - a.s + 1;
    tc_status s0 = ci->conv2d_fwd(cc, &a);
    tc_status s1 = cu->conv2d_fwd(fake_ctx, &a);
    size_t ws = 0;
    tc_status w0 = ci->conv2d_workspace_size(cc, &a, &ws);
    tc_status w1 = cu->conv2d_workspace_size(fake_ctx, &a, &ws);
    if (s0 != TC_EINVAL || s1 != TC_EINVAL || w0 != TC_EINVAL ||
        w1 != TC_EINVAL) {
      printf("test_cuda: conv case %zu: cpu %d/%d, cuda %d/%d (want %d)\n", i,
             (int)s0, (int)w0, (int)s1, (int)w1, (int)TC_EINVAL);
      ok = 0;
    }
  }
  tc_backend_destroy(cpu);
  return ok;
}

/* 0: a failure; 1: passed or no module to test (it says which). */
static int table_checks_without_gpu(void) {
  const char *dir = getenv("TINYCNN_MODULE_PATH");
  char path[4096];
  snprintf(path, sizeof path, "%s/tinycnn-cuda.so", dir ? dir : ".");
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    printf("test_cuda: no module to check without a GPU (%s)\n", dlerror());
    return 1;
  }
  tc_backend_entry_fn entry = NULL;
  *(void **)&entry = dlsym(h, TC_BACKEND_MODULE_ENTRY);
  const tc_backend_iface *cu = entry ? entry() : NULL;
  int ok = cu != NULL;
  if (ok) {
    /* memory slots with a NULL context: TC_EINVAL, no crash */
    void *p = NULL;
    float f = 0;
    ok = cu->alloc(NULL, &p, 16) == TC_EINVAL &&
         cu->copy_h2d(NULL, &f, &f, 4) == TC_EINVAL &&
         cu->copy_d2h(NULL, &f, &f, 4) == TC_EINVAL &&
         cu->copy_d2d(NULL, &f, &f + 1, 4) == TC_EINVAL &&
         cu->memset(NULL, &f, 0, 4) == TC_EINVAL &&
         cu->synchronize(NULL) == TC_EINVAL;
    cu->free(NULL, &f); /* no-op */
    if (!ok)
      printf("test_cuda: a memory slot accepts a NULL context\n");
  }
  if (ok) {
    const char *procs[] = {"tc_graph_begin", "tc_graph_end", "tc_graph_replay"};
    for (int i = 0; i < 3 && ok; i++) {
      tc_status (*fn)(void *) = NULL;
      *(void **)&fn = cu->get_proc(NULL, procs[i]);
      ok = fn && fn(NULL) == TC_EINVAL;
    }
    if (!ok)
      printf("test_cuda: a graph proc accepts a NULL context\n");
  }
  if (ok && (cu->api_version != TC_BACKEND_API_VERSION ||
             cu->struct_size != sizeof(tc_backend_iface) ||
             !cu->batchnorm_relu_fwd_train || !cu->batchnorm_relu_fwd_infer ||
             !cu->batchnorm_relu_bwd)) {
    printf("test_cuda: the table claims API %u but lacks its slots\n",
           (unsigned)cu->api_version);
    ok = 0;
  }
  if (ok) { /* args that end before relu_mask are refused */
    tc_batchnorm_args b = {.struct_size =
                               offsetof(tc_batchnorm_args, relu_mask)};
    ok = cu->batchnorm_fwd_train(fake_ctx, &b) == TC_EINVAL &&
         cu->batchnorm_relu_fwd_train(fake_ctx, &b) == TC_EINVAL &&
         cu->batchnorm_relu_bwd(NULL, &b) == TC_EINVAL;
    if (!ok)
      printf("test_cuda: batch norm accepts args short of relu_mask\n");
  }
  if (ok)
    ok = check_same_size_rejections(cu);
  dlclose(h);
  if (ok)
    printf("test_cuda: the module's table checks passed without a GPU\n");
  return ok;
}

int main(void) {
  /* without a GPU too: the CPU backend has no graphs */
  tc_backend *cpu = NULL;
  if (tc_backend_create(&cpu, "cpu") != TC_OK ||
      tc_backend_graph_begin(cpu) != TC_EUNSUPPORTED ||
      tc_backend_graph_replay(cpu) != TC_EUNSUPPORTED ||
      tc_backend_graph_begin(NULL) != TC_EINVAL) {
    printf("test_cuda: graph calls on the CPU backend: %s\n", tc_last_error());
    return EXIT_FAILURE;
  }
  tc_backend_destroy(cpu);
  if (!table_checks_without_gpu())
    return EXIT_FAILURE;
  tc_backend *probe = NULL;
  if (tc_backend_create(&probe, "cuda") != TC_OK) {
    printf("test_cuda: skipped: %s\n", tc_last_error());
    return 77;
  }
  be[1] = probe;
  ck_assert_int_eq(tc_backend_create(&be[0], "cpu"), TC_OK);
  for (int k = 0; k < 2; k++) {
    it[k] = tc_backend_get_iface(be[k]);
    cx[k] = tc_backend_get_context(be[k]);
  }
  Suite *s = suite_create("cuda");
  TCase *tc = tcase_create("cuda_vs_cpu");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_gemm);
  tcase_add_test(tc, test_conv2d);
  tcase_add_test(tc, test_pool2d);
  tcase_add_test(tc, test_global_avgpool);
  tcase_add_test(tc, test_batchnorm);
  tcase_add_test(tc, test_batchnorm_relu_fused);
  tcase_add_test(tc, test_eltwise);
  tcase_add_test(tc, test_dropout);
  tcase_add_test(tc, test_losses);
  tcase_add_test(tc, test_optim);
  tcase_add_test(tc, test_reduce);
  tcase_add_test(tc, test_deterministic);
  tcase_add_test(tc, test_nan_rules);
  tcase_add_test(tc, test_same_rejections);
  tcase_add_test(tc, test_lenet_steps);
  tcase_add_test(tc, test_resnet20_steps);
  tcase_add_test(tc, test_graph);
  tcase_add_test(tc, test_sync_free_ops);
  tcase_add_test(tc, test_graph_train_step);
  tcase_add_test(tc, test_nccl_one_rank);
  tcase_add_test(tc, test_errors_and_api);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_NOFORK); /* CUDA does not survive fork */
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  tc_backend_destroy(be[0]);
  tc_backend_destroy(be[1]);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

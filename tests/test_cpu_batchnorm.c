/*
 * test_cpu_batchnorm.c - the CPU backend's batch norm (train forward,
 * inference forward, backward) against the naive double references of
 * tests/reference/batchnorm.c, plus finite-difference checks of the backward:
 * random shapes (batch 1, odd sizes, BatchNorm1d's spatial 1, many channels,
 * long channels split into chunks), affine off, running statistics tracked or
 * not, accumulate on/off, a large mean, in-place use, thread-count
 * independence and argument errors; the fused slots (batch norm + add +
 * ReLU) give the separate slots' bits and agree with the reference. Called
 * through the public backend table.
 */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/batchnorm.h"
#include "testutil.h"

#include "op_fixture.h"

static void open_cpu(void) {
  op_open_cpu();
  ck_assert_ptr_nonnull(it->batchnorm_fwd_train);
  ck_assert_ptr_nonnull(it->batchnorm_fwd_infer);
  ck_assert_ptr_nonnull(it->batchnorm_bwd);
}

static void setup(void) {
  open_cpu();
}
static void teardown(void) {
  op_close();
}

/* Device buffers: tensors (op_fixture.h's registry). */
static float *falloc(size_t n) {
  return op_tensor(n, TC_FLOAT32);
}

static void free_all(void) {
  op_free_all();
}

static float *hcopy(const float *src, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  if (n)
    memcpy(p, src, n * sizeof *p);
  return p;
}

static double *to_d(const float *f, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  for (size_t i = 0; i < n; i++)
    d[i] = f ? f[i] : 0.0;
  return d;
}

/* Relative error as tu_max_rel_err, with the floor taken from
 * max(max |want|, `scale`): a gradient that cancels to ~0 (M = 2) is judged
 * on the scale of its terms, not on its own rounding noise. */
static void check_close_d(const float *got, const double *want, size_t n,
                          double tol, double scale, const char *what,
                          const char *desc) {
  for (size_t i = 0; i < n; i++)
    if (isfinite(want[i]))
      scale = fmax(scale, fabs(want[i]));
  double floor_ = fmax(scale * 1e-2, 1e-6), e = 0;
  for (size_t i = 0; i < n; i++) {
    if ((double)got[i] == want[i] || (isnan(got[i]) && isnan(want[i])))
      continue; /* exact, +-inf, or NaN where expected (relu keeps NaN) */
    double d = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor_);
    if (!(d <= e))
      e = d; /* NaN counts as worst */
  }
  ck_assert_msg(e <= tol, "%s: %s max rel err %.3g > %.3g", desc, what, e, tol);
}

/* The same against a float reference. */
static void check_close(const float *got, const float *want, size_t n,
                        double tol, double scale, const char *what,
                        const char *desc) {
  double *w = to_d(want, n);
  check_close_d(got, w, n, tol, scale, what, desc);
  free(w);
}

/* ---- one full case: train forward, backward, inference ---- */

typedef struct bcase {
  int64_t n, c, spatial;
  int affine, track, acc;
  float offset; /* added to x: a large mean */
} bcase;

static void run_case(const bcase *bc, uint64_t seed) {
  tc_batchnorm_args a = {.struct_size = sizeof a};
  a.n = bc->n, a.c = bc->c, a.spatial = bc->spatial;
  a.eps = 1e-5f, a.momentum = 0.1f;
  size_t nx = (size_t)(a.n * a.c * a.spatial), nc = (size_t)a.c;
  char d[160];
  snprintf(d, sizeof d,
           "n %lld c %lld spatial %lld affine %d track %d acc %d offset %g",
           (long long)a.n, (long long)a.c, (long long)a.spatial, bc->affine,
           bc->track, bc->acc, (double)bc->offset);
  float *x = falloc(nx), *y = falloc(nx), *dy = falloc(nx), *dx = falloc(nx);
  float *gamma = falloc(nc), *beta = falloc(nc), *rm = falloc(nc);
  float *rv = falloc(nc), *sm = falloc(nc), *si = falloc(nc);
  float *dg = falloc(nc), *db = falloc(nc);
  tu_fill_uniform(x, nx, seed, -2.f, 2.f);
  for (size_t i = 0; i < nx; i++)
    x[i] += bc->offset + (float)(i % 3); /* channel means differ */
  tu_fill_uniform(dy, nx, seed + 1, -1.f, 1.f);
  tu_fill_uniform(dx, nx, seed + 2, -1.f, 1.f);
  tu_fill_uniform(gamma, nc, seed + 3, 0.5f, 1.5f);
  tu_fill_uniform(beta, nc, seed + 4, -0.5f, 0.5f);
  tu_fill_uniform(rm, nc, seed + 5, -0.5f, 0.5f);
  tu_fill_uniform(rv, nc, seed + 6, 0.5f, 2.f);
  tu_fill_uniform(dg, nc, seed + 7, -1.f, 1.f);
  tu_fill_uniform(db, nc, seed + 8, -1.f, 1.f);
  float *dx0 = hcopy(dx, nx), *dg0 = hcopy(dg, nc), *db0 = hcopy(db, nc);
  float *rm0 = hcopy(rm, nc), *rv0 = hcopy(rv, nc);

  /* the reference (tests/reference/batchnorm.c) on host buffers */
  float *wy = malloc(nx * sizeof *wy), *wdx = hcopy(dx0, nx);
  float *wdg = hcopy(dg0, nc), *wdb = hcopy(db0, nc);
  float *wm = malloc(nc * sizeof *wm), *wis = malloc(nc * sizeof *wis);
  float *wrm = hcopy(rm0, nc), *wrv = hcopy(rv0, nc);
  tc_batchnorm_args r = a;
  r.x = x, r.y = wy, r.save_mean = wm, r.save_invstd = wis;
  r.gamma = bc->affine ? gamma : NULL, r.beta = bc->affine ? beta : NULL;
  r.running_mean = wrm, r.running_var = wrv;
  ref_batchnorm_fwd_train(&r);
  r.dy = dy, r.dx = wdx, r.dgamma = wdg, r.dbeta = wdb;
  r.accumulate = bc->acc;
  ref_batchnorm_bwd(&r);

  a.x = x, a.y = y, a.save_mean = sm, a.save_invstd = si;
  a.gamma = bc->affine ? gamma : NULL;
  a.beta = bc->affine ? beta : NULL;
  a.running_mean = bc->track ? rm : NULL;
  a.running_var = bc->track ? rv : NULL;
  ck_assert_int_eq(it->batchnorm_fwd_train(ctx, &a), TC_OK);
  /* a large offset costs float resolution in x itself: scale the bound */
  double tol = 2e-5 * (1.0 + fabs((double)bc->offset));
  check_close(y, wy, nx, tol, 0, "y", d);
  check_close(sm, wm, nc, 1e-6, 0, "save_mean", d);
  check_close(si, wis, nc, 1e-5, 0, "save_invstd", d);
  if (bc->track) {
    check_close(rm, wrm, nc, 1e-6, 0, "running_mean", d);
    check_close(rv, wrv, nc, 1e-5, 0, "running_var", d);
  } else {
    ck_assert(memcmp(rm, rm0, nc * sizeof *rm) == 0);
    ck_assert(memcmp(rv, rv0, nc * sizeof *rv) == 0);
  }

  a.dy = dy, a.dx = dx, a.accumulate = bc->acc;
  a.dgamma = bc->affine ? dg : NULL;
  a.dbeta = bc->affine ? db : NULL;
  ck_assert_int_eq(it->batchnorm_bwd(ctx, &a), TC_OK);
  double dscale = 0; /* largest term gamma*invstd*dy */
  for (size_t i = 0; i < nx; i++) {
    size_t ci = i / (size_t)a.spatial % nc;
    double g = bc->affine ? (double)gamma[ci] : 1.0;
    dscale = fmax(dscale, fabs(g * (double)wis[ci] * (double)dy[i]));
  }
  check_close(dx, wdx, nx, 1e-4 * (1.0 + fabs((double)bc->offset) / 10), dscale,
              "dx", d);
  if (bc->affine) {
    check_close(dg, wdg, nc, 1e-4, 0, "dgamma", d);
    check_close(db, wdb, nc, 1e-5, 0, "dbeta", d);
  } else {
    ck_assert(memcmp(dg, dg0, nc * sizeof *dg) == 0);
    ck_assert(memcmp(db, db0, nc * sizeof *db) == 0);
  }

  /* inference with the (given) running statistics */
  memcpy(rm, rm0, nc * sizeof *rm);
  memcpy(rv, rv0, nc * sizeof *rv);
  a.running_mean = rm, a.running_var = rv;
  r.running_mean = rm0, r.running_var = rv0;
  ref_batchnorm_fwd_infer(&r);
  ck_assert_int_eq(it->batchnorm_fwd_infer(ctx, &a), TC_OK);
  check_close(y, wy, nx, 1e-5 * (1.0 + fabs((double)bc->offset)), 0, "infer y",
              d);
  ck_assert(memcmp(rm, rm0, nc * sizeof *rm) == 0);
  ck_assert(memcmp(rv, rv0, nc * sizeof *rv) == 0);

  free(dx0), free(dg0), free(db0), free(rm0), free(rv0);
  free(wy), free(wdx), free(wdg), free(wdb), free(wm), free(wis), free(wrm);
  free(wrv);
  free_all();
}

START_TEST(test_bn_random) {
  uint64_t s = 99;
  for (int i = 0; i < 80; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t r = s >> 20;
    bcase bc = {1 + (int64_t)(r % 4),
                1 + (int64_t)((r >> 4) % 7),
                (int64_t)((r >> 8) % 40),
                (int)((r >> 14) & 1),
                (int)((r >> 15) & 1),
                (int)((r >> 16) & 1),
                0.f};
    if (bc.spatial == 0)
      bc.spatial = 1; /* BatchNorm1d */
    if (bc.n * bc.spatial < 2)
      bc.n = 2;
    run_case(&bc, 500 + (uint64_t)i);
  }
}
END_TEST

START_TEST(test_bn_shapes) {
  static const bcase cases[] = {
      {2, 1, 1, 1, 1, 0, 0.f},         /* the smallest batch */
      {1, 3, 2, 1, 1, 1, 0.f},         /* batch 1, tiny plane */
      {1, 6, 24 * 24, 1, 1, 0, 0.f},   /* batch 1 (LeNet) */
      {8, 16, 32 * 32, 1, 1, 1, 0.f},  /* chunked channels */
      {3, 2, 64 * 64, 0, 1, 0, 0.f},   /* few channels, many chunks */
      {1, 1, 30000, 1, 0, 1, 0.f},     /* one channel, chunks inside a plane */
      {5, 700, 1, 1, 1, 1, 0.f},       /* BatchNorm1d, several blocks */
      {2, 1030, 3, 0, 0, 0, 0.f},      /* several blocks, affine off */
      {4, 3, 50, 1, 1, 0, 100.f},      /* a large mean */
      {2, 2, 20000, 1, 1, 1, 1000.f},  /* large mean across chunks */
      {16, 40, 100, 1, 1, 1, 0.f},     /* chunks x channel groups */
      {3, 70, 50, 0, 1, 0, 50.f},      /* channel groups, large mean */
      {9, 33, 1, 1, 1, 1, 0.f},        /* BatchNorm1d, two groups */
      {32, 16, 32 * 32, 1, 1, 0, 0.f}, /* ResNet's first stage, smaller */
      {5, 7, 17, 1, 1, 1, 0.f},        /* odd planes: vector tails */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_case(&cases[i], 900 + i);
}
END_TEST

/* Finite differences of L = sum(y * r) through the double reference
 * forward check both the reference backward and the backend's; then a
 * coarse check through the backend's own float forward. */
START_TEST(test_bn_gradcheck) {
  tc_batchnorm_args a = {.struct_size = sizeof a};
  a.n = 3, a.c = 2, a.spatial = 5, a.eps = 1e-3f;
  size_t nx = 30, nc = 2;
  float *x = falloc(nx), *y = falloc(nx), *dy = falloc(nx), *dx = falloc(nx);
  float *gamma = falloc(nc), *beta = falloc(nc), *sm = falloc(nc);
  float *si = falloc(nc), *dg = falloc(nc), *db = falloc(nc);
  tu_fill_uniform(x, nx, 71, -1.f, 1.f);
  tu_fill_uniform(dy, nx, 72, -1.f, 1.f);
  tu_fill_uniform(gamma, nc, 73, 0.5f, 1.5f);
  tu_fill_uniform(beta, nc, 74, -1.f, 1.f);
  double *xd = to_d(x, nx), *r = to_d(dy, nx), *gd = to_d(gamma, nc);
  double *bd = to_d(beta, nc), yd[30], num_dx[30], num_dg[2], num_db[2];
  const double h = 1e-6;
  double *params[3] = {xd, gd, bd}, *nums[3] = {num_dx, num_dg, num_db};
  size_t sizes[3] = {nx, nc, nc};
  for (int p = 0; p < 3; p++)
    for (size_t i = 0; i < sizes[p]; i++) {
      double keep = params[p][i], lp = 0, lm = 0;
      params[p][i] = keep + h;
      ref_batchnorm_train_d(&a, xd, gd, bd, yd);
      for (size_t k = 0; k < nx; k++)
        lp += yd[k] * r[k];
      params[p][i] = keep - h;
      ref_batchnorm_train_d(&a, xd, gd, bd, yd);
      for (size_t k = 0; k < nx; k++)
        lm += yd[k] * r[k];
      params[p][i] = keep;
      nums[p][i] = (lp - lm) / (2 * h);
    }
  double rdx[30], rdg[2], rdb[2];
  ref_batchnorm_bwd_d(&a, xd, gd, r, rdx, rdg, rdb);
  for (size_t i = 0; i < nx; i++)
    ck_assert_msg(fabs(rdx[i] - num_dx[i]) < 1e-6, "ref dx[%zu] %g vs %g", i,
                  rdx[i], num_dx[i]);
  for (size_t i = 0; i < nc; i++) {
    ck_assert(fabs(rdg[i] - num_dg[i]) < 1e-6);
    ck_assert(fabs(rdb[i] - num_db[i]) < 1e-6);
  }
  a.x = x, a.y = y, a.gamma = gamma, a.beta = beta;
  a.save_mean = sm, a.save_invstd = si;
  a.dy = dy, a.dx = dx, a.dgamma = dg, a.dbeta = db;
  ck_assert_int_eq(it->batchnorm_fwd_train(ctx, &a), TC_OK);
  ck_assert_int_eq(it->batchnorm_bwd(ctx, &a), TC_OK);
  check_close_d(dx, num_dx, nx, 1e-4, 0, "dx vs finite differences", "3x2x5");
  check_close_d(dg, num_dg, nc, 1e-4, 0, "dgamma vs finite differences",
                "3x2x5");
  check_close_d(db, num_db, nc, 1e-5, 0, "dbeta vs finite differences",
                "3x2x5");

  /* coarse: differences through the backend's float forward */
  float *xs = falloc(nx), *ys = falloc(nx);
  tc_batchnorm_args f = a;
  f.x = xs, f.y = ys;
  const float fh = 1e-2f;
  for (size_t i = 0; i < nx; i += 3) {
    double l[2];
    for (int sgn = 0; sgn < 2; sgn++) {
      memcpy(xs, x, nx * sizeof *xs);
      xs[i] += sgn ? -fh : fh;
      ck_assert_int_eq(it->batchnorm_fwd_train(ctx, &f), TC_OK);
      l[sgn] = 0;
      for (size_t k = 0; k < nx; k++)
        l[sgn] += (double)ys[k] * r[k];
    }
    double num = (l[0] - l[1]) / (2.0 * (double)fh);
    ck_assert_msg(fabs(num - dx[i]) < 2e-3 * (1 + fabs(num)),
                  "float fd dx[%zu] %g vs %g", i, num, (double)dx[i]);
  }
  free(xd), free(r), free(gd), free(bd);
  free_all();
}
END_TEST

/* y may be x, dx may be dy (in place). */
START_TEST(test_bn_in_place) {
  tc_batchnorm_args a = {.struct_size = sizeof a};
  a.n = 3, a.c = 4, a.spatial = 7, a.eps = 1e-5f;
  size_t nx = 84;
  float *x = falloc(nx), *y = falloc(nx), *dy = falloc(nx), *dx = falloc(nx);
  float *io = falloc(nx), *sm = falloc(4), *si = falloc(4), *g = falloc(4);
  tu_fill_uniform(x, nx, 81, -1.f, 1.f);
  tu_fill_uniform(dy, nx, 82, -1.f, 1.f);
  tu_fill_uniform(g, 4, 83, 0.5f, 1.5f);
  a.gamma = g, a.save_mean = sm, a.save_invstd = si;
  a.x = x, a.y = y;
  ck_assert_int_eq(it->batchnorm_fwd_train(ctx, &a), TC_OK);
  a.dy = dy, a.dx = dx;
  ck_assert_int_eq(it->batchnorm_bwd(ctx, &a), TC_OK);
  memcpy(io, x, nx * sizeof *io);
  a.x = io, a.y = io;
  ck_assert_int_eq(it->batchnorm_fwd_train(ctx, &a), TC_OK);
  ck_assert(memcmp(io, y, nx * sizeof *io) == 0);
  memcpy(io, dy, nx * sizeof *io);
  a.x = x, a.dy = io, a.dx = io;
  ck_assert_int_eq(it->batchnorm_bwd(ctx, &a), TC_OK);
  ck_assert(memcmp(io, dx, nx * sizeof *io) == 0);
  free_all();
}
END_TEST

/* Same bits with 1 and 3 threads, with chunks and channel groups. */
static void bn_with_threads(int threads, int64_t n, int64_t c, int64_t sp,
                            float *out, size_t nout) {
  ck_assert_int_eq(tc_set_num_threads(threads), TC_OK);
  open_cpu();
  tc_batchnorm_args a = {.struct_size = sizeof a};
  a.n = n, a.c = c, a.spatial = sp, a.eps = 1e-5f, a.momentum = 0.1f;
  size_t nx = (size_t)(a.n * a.c * a.spatial), nc = (size_t)c;
  ck_assert_uint_eq(nout, 2 * nx + 4 * nc);
  float *x = falloc(nx), *y = falloc(nx), *dy = falloc(nx), *dx = falloc(nx);
  float *g = falloc(nc), *b = falloc(nc), *sm = falloc(nc), *si = falloc(nc);
  float *rm = falloc(nc), *rv = falloc(nc), *dg = falloc(nc), *db = falloc(nc);
  tu_fill_uniform(x, nx, 91, -1.f, 5.f);
  tu_fill_uniform(dy, nx, 92, -1.f, 1.f);
  tu_fill_uniform(g, nc, 93, 0.5f, 1.5f);
  a.x = x, a.y = y, a.gamma = g, a.beta = b, a.save_mean = sm;
  a.save_invstd = si, a.running_mean = rm, a.running_var = rv;
  a.dy = dy, a.dx = dx, a.dgamma = dg, a.dbeta = db;
  ck_assert_int_eq(it->batchnorm_fwd_train(ctx, &a), TC_OK);
  ck_assert_int_eq(it->batchnorm_bwd(ctx, &a), TC_OK);
  memcpy(out, y, nx * sizeof *out);
  memcpy(out + nx, dx, nx * sizeof *out);
  memcpy(out + 2 * nx, sm, nc * sizeof *out);
  memcpy(out + 2 * nx + nc, rv, nc * sizeof *out);
  memcpy(out + 2 * nx + 2 * nc, dg, nc * sizeof *out);
  memcpy(out + 2 * nx + 3 * nc, db, nc * sizeof *out);
  op_destroy();
}

START_TEST(test_bn_thread_independent) {
  op_destroy();
  /* chunks cutting planes; chunks x channel groups; BatchNorm1d groups
   * (all above BN_SERIAL_MAX values, so the pool runs them); one below */
  static const int64_t shapes[][3] = {
      {4, 3, 65 * 63}, {16, 40, 100}, {512, 70, 1}, {64, 70, 1}};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    int64_t n = shapes[k][0], c = shapes[k][1], sp = shapes[k][2];
    size_t nt = (size_t)(2 * n * c * sp + 4 * c);
    float *o1 = malloc(nt * sizeof *o1), *o3 = malloc(nt * sizeof *o3);
    bn_with_threads(1, n, c, sp, o1, nt);
    bn_with_threads(3, n, c, sp, o3, nt);
    ck_assert_msg(memcmp(o1, o3, nt * sizeof *o1) == 0,
                  "results differ between 1 and 3 threads (shape %zu)", k);
    free(o1), free(o3);
  }
  tc_set_num_threads(0);
  open_cpu();
}
END_TEST

typedef tc_status (*bn_fn)(void *, const tc_batchnorm_args *);

static void expect_bn_einval(bn_fn f, const tc_batchnorm_args *a,
                             const float *out, const float *keep, size_t n) {
  tc_clear_error();
  ck_assert_int_eq(f(ctx, a), TC_EINVAL);
  ck_assert_msg(strlen(tc_last_error()) > 0, "no message");
  if (out)
    ck_assert_msg(memcmp(out, keep, n * sizeof *out) == 0,
                  "output changed on failure");
}

START_TEST(test_bn_errors) {
  float *x = falloc(24), *y = falloc(24), *dy = falloc(24), *dx = falloc(24);
  float *sm = falloc(3), *si = falloc(3), *rm = falloc(3), *rv = falloc(3);
  float *dg = falloc(3), *db = falloc(3);
  tu_fill_uniform(x, 24, 1, -1.f, 1.f);
  tu_fill_uniform(y, 24, 2, -1.f, 1.f);
  tu_fill_uniform(dy, 24, 3, -1.f, 1.f);
  tu_fill_uniform(dx, 24, 4, -1.f, 1.f);
  tu_fill_uniform(rm, 3, 5, -1.f, 1.f);
  tu_fill_uniform(rv, 3, 6, 0.5f, 1.f);
  float ky[24], kdx[24], krm[3], krv[3];
  memcpy(ky, y, sizeof ky);
  memcpy(kdx, dx, sizeof kdx);
  memcpy(krm, rm, sizeof krm);
  memcpy(krv, rv, sizeof krv);
  tc_batchnorm_args ok = {.struct_size = sizeof ok};
  ok.n = 2, ok.c = 3, ok.spatial = 4, ok.eps = 1e-5f, ok.momentum = 0.1f;
  ok.x = x, ok.y = y, ok.save_mean = sm, ok.save_invstd = si;
  ok.running_mean = rm, ok.running_var = rv;
  ok.dy = dy, ok.dx = dx, ok.dgamma = dg, ok.dbeta = db;
  bn_fn fns[3] = {it->batchnorm_fwd_train, it->batchnorm_fwd_infer,
                  it->batchnorm_bwd};
  tc_batchnorm_args a;
  for (int k = 0; k < 3; k++) {
    float *out = k < 2 ? y : dx, *keep = k < 2 ? ky : kdx;
    expect_bn_einval(fns[k], NULL, out, keep, 24);
    tc_clear_error();
    ck_assert_int_eq(fns[k](NULL, &ok), TC_EINVAL);
    a = ok, a.struct_size = 16;
    expect_bn_einval(fns[k], &a, out, keep, 24);
    a = ok, a.n = -1;
    expect_bn_einval(fns[k], &a, out, keep, 24);
    a = ok, a.c = -3;
    expect_bn_einval(fns[k], &a, out, keep, 24);
    a = ok, a.spatial = -4;
    expect_bn_einval(fns[k], &a, out, keep, 24);
    a = ok, a.eps = -1e-5f;
    expect_bn_einval(fns[k], &a, out, keep, 24);
    a = ok, a.eps = NAN;
    expect_bn_einval(fns[k], &a, out, keep, 24);
    a = ok, a.x = NULL;
    expect_bn_einval(fns[k], &a, out, keep, 24);
    /* empty batch: nothing read or written */
    a = ok, a.n = 0, a.x = NULL, a.y = NULL, a.dy = NULL, a.dx = NULL;
    a.accumulate = 1;
    ck_assert_int_eq(fns[k](ctx, &a), TC_OK);
  }
  bn_fn tr = it->batchnorm_fwd_train, inf = it->batchnorm_fwd_infer;
  bn_fn bw = it->batchnorm_bwd;
  a = ok, a.y = NULL;
  expect_bn_einval(tr, &a, NULL, NULL, 0);
  expect_bn_einval(inf, &a, NULL, NULL, 0);
  a = ok, a.save_mean = NULL;
  expect_bn_einval(tr, &a, y, ky, 24);
  expect_bn_einval(bw, &a, dx, kdx, 24);
  a = ok, a.save_invstd = NULL;
  expect_bn_einval(tr, &a, y, ky, 24);
  expect_bn_einval(bw, &a, dx, kdx, 24);
  a = ok, a.dy = NULL;
  expect_bn_einval(bw, &a, dx, kdx, 24);
  a = ok, a.dx = NULL;
  expect_bn_einval(bw, &a, NULL, NULL, 0);
  /* inference needs running statistics */
  a = ok, a.running_mean = NULL;
  expect_bn_einval(inf, &a, y, ky, 24);
  a = ok, a.running_var = NULL;
  expect_bn_einval(inf, &a, y, ky, 24);
  /* one value per channel: no batch variance (PyTorch errors too) */
  a = ok, a.n = 1, a.spatial = 1;
  expect_bn_einval(tr, &a, y, ky, 24);
  ck_assert(memcmp(rm, krm, sizeof krm) == 0);
  ck_assert(memcmp(rv, krv, sizeof krv) == 0);
  /* ... but inference and the backward are defined there (dx = 0) */
  ck_assert_int_eq(inf(ctx, &a), TC_OK);
  for (int i = 0; i < 3; i++)
    si[i] = 1.f, sm[i] = x[i]; /* the one value is its channel's mean */
  ck_assert_int_eq(bw(ctx, &a), TC_OK);
  for (int i = 0; i < 3; i++)
    ck_assert_float_eq(dx[i], 0.f);
  /* empty batch in the backward: parameter grads are empty sums */
  dg[0] = dg[1] = dg[2] = 5.f;
  a = ok, a.n = 0, a.accumulate = 0;
  ck_assert_int_eq(bw(ctx, &a), TC_OK);
  ck_assert_float_eq(dg[1], 0.f);
  ck_assert_float_eq(db[2], 0.f);
  /* untracked training: running statistics may be NULL */
  a = ok, a.running_mean = a.running_var = NULL;
  ck_assert_int_eq(tr(ctx, &a), TC_OK);
  free_all();
}
END_TEST

/* ---- the fused slots (batchnorm_relu_*): the same bits as the separate
 * slots they replace (batch norm, add, relu_fwd / relu_bwd, batch norm). */

static int same_bits(const float *p, const float *q, size_t n) {
  return n == 0 || memcmp(p, q, n * sizeof *p) == 0;
}

/* One shape, train or eval, affine or not, with or without a residual,
 * backward with accumulate / accumulate_residual / dresidual NULL. */
/* Canary bytes after a relu_mask buffer: the kernels must stay inside it. */
#define MASK_CANARY 16

/* Separate slots against fused ones, bit for bit; with `use_mask` (train)
 * the fused forward also writes the ReLU bits and the fused backward reads
 * them instead of y. */
static void fused_case(int64_t n, int64_t c, int64_t sp, int train, int affine,
                       int with_res, int acc, int accr, int with_dres,
                       int use_mask, uint64_t seed) {
  tc_batchnorm_args a = {.struct_size = sizeof a};
  a.n = n, a.c = c, a.spatial = sp, a.eps = 1e-5f, a.momentum = 0.1f;
  size_t nx = (size_t)(n * c * sp), nc = (size_t)c;
  float *x = falloc(nx), *z = falloc(nx), *y1 = falloc(nx), *y2 = falloc(nx);
  float *g = falloc(nc), *b = falloc(nc), *rm1 = falloc(nc), *rv1 = falloc(nc);
  float *rm2 = falloc(nc), *rv2 = falloc(nc), *sm1 = falloc(nc);
  float *si1 = falloc(nc), *sm2 = falloc(nc), *si2 = falloc(nc);
  tu_fill_uniform(x, nx, seed, -2.f, 3.f);
  tu_fill_uniform(z, nx, seed + 1, -1.f, 1.f);
  tu_fill_uniform(g, nc, seed + 2, -1.f, 1.5f); /* some negative gammas */
  tu_fill_uniform(b, nc, seed + 3, -0.5f, 0.5f);
  tu_fill_uniform(rm1, nc, seed + 4, -0.5f, 0.5f);
  tu_fill_uniform(rv1, nc, seed + 5, 0.5f, 2.f);
  /* relu's rules for NaN (kept; no gradient), +-inf must hold in both;
   * in eval a NaN x stays in its element */
  if (nx > 3)
    z[nx / 3] = NAN;
  if (nx > 8)
    z[nx / 4] = INFINITY, z[nx / 5] = -INFINITY;
  if (nx > 8 && !train)
    x[nx / 2] = NAN;
  memcpy(rm2, rm1, nc * sizeof *rm1);
  memcpy(rv2, rv1, nc * sizeof *rv1);
  float *wrm = hcopy(rm1, nc), *wrv = hcopy(rv1, nc);
  a.gamma = affine ? g : NULL, a.beta = affine ? b : NULL;
  /* separate: batch norm, add, relu */
  a.x = x, a.y = y1, a.running_mean = rm1, a.running_var = rv1;
  a.save_mean = sm1, a.save_invstd = si1;
  ck_assert_int_eq(train ? it->batchnorm_fwd_train(ctx, &a)
                         : it->batchnorm_fwd_infer(ctx, &a),
                   TC_OK);
  if (with_res) {
    tc_eltwise_args e = {.struct_size = sizeof e};
    e.n = (int64_t)nx, e.alpha = 1.f, e.beta = 1.f, e.a = y1, e.b = z, e.y = y1;
    ck_assert_int_eq(it->add(ctx, &e), TC_OK);
  }
  tc_eltwise_args r = {.struct_size = sizeof r};
  r.n = (int64_t)nx, r.a = y1, r.y = y1;
  ck_assert_int_eq(it->relu_fwd(ctx, &r), TC_OK);
  /* fused */
  a.y = y2, a.running_mean = rm2, a.running_var = rv2;
  a.save_mean = sm2, a.save_invstd = si2;
  a.residual = with_res ? z : NULL;
  size_t mps = (size_t)(sp + 7) / 8, nm = (size_t)(n * c) * mps;
  uint8_t *mask = NULL;
  if (use_mask) {
    mask = (uint8_t *)falloc((nm + MASK_CANARY + 3) / 4);
    memset(mask, 0xA5, nm + MASK_CANARY);
    a.relu_mask = mask;
  }
  ck_assert_int_eq(train ? it->batchnorm_relu_fwd_train(ctx, &a)
                         : it->batchnorm_relu_fwd_infer(ctx, &a),
                   TC_OK);
  for (size_t p = 0; mask && p < (size_t)(n * c); p++)
    for (size_t e = 0; e < (size_t)sp; e++) {
      int bit = mask[p * mps + e / 8] >> (e % 8) & 1;
      ck_assert_msg(bit == (y2[p * (size_t)sp + e] > 0.f),
                    "mask bit %zu of plane %zu (sp %lld)", e, p, (long long)sp);
    }
  for (size_t i = 0; mask && i < MASK_CANARY; i++)
    ck_assert_msg(mask[nm + i] == 0xA5, "relu_mask written past its end");
  ck_assert_msg(same_bits(y1, y2, nx),
                "fused forward differs (n %lld c %lld "
                "sp %lld train %d res %d)",
                (long long)n, (long long)c, (long long)sp, train, with_res);
  ck_assert(same_bits(rm1, rm2, nc) && same_bits(rv1, rv2, nc));
  if (nx > 3 && with_res)
    ck_assert_msg(isnan(y2[nx / 3]), "relu dropped a NaN");
  if (nx > 8 && !train)
    ck_assert_msg(isnan(y2[nx / 2]), "relu dropped a NaN");
  if (train)
    ck_assert(same_bits(sm1, sm2, nc) && same_bits(si1, si2, nc));
  int zeros = 0;
  for (size_t i = 0; i < nx; i++)
    zeros += y2[i] == 0.f;
  ck_assert_msg(nx < 8 || (zeros > 0 && zeros < (int)nx),
                "the ReLU should cut some values, not all");
  /* the fused reference (tests/reference/batchnorm.c) */
  char d[160];
  snprintf(d, sizeof d, "fused n %lld c %lld sp %lld train %d res %d",
           (long long)n, (long long)c, (long long)sp, train, with_res);
  float *wy = malloc(nx * sizeof *wy), *wsm = malloc(nc * sizeof *wsm);
  float *wsi = malloc(nc * sizeof *wsi);
  tc_batchnorm_args rf = a;
  rf.y = wy, rf.running_mean = wrm, rf.running_var = wrv;
  rf.save_mean = wsm, rf.save_invstd = wsi, rf.relu_mask = NULL;
  if (train)
    ref_batchnorm_relu_fwd_train(&rf);
  else
    ref_batchnorm_relu_fwd_infer(&rf);
  check_close(y2, wy, nx, 2e-5, 0, "y vs reference", d);
  check_close(rm2, wrm, nc, 1e-6, 0, "running_mean vs reference", d);
  check_close(rv2, wrv, nc, 1e-5, 0, "running_var vs reference", d);
  free(wy), free(wrm), free(wrv);
  if (!train) {
    free(wsm), free(wsi);
    return;
  }
  check_close(sm2, wsm, nc, 1e-6, 0, "save_mean vs reference", d);
  check_close(si2, wsi, nc, 1e-5, 0, "save_invstd vs reference", d);
  free(wsm), free(wsi);
  /* backward: separate relu_bwd then batch norm, against fused */
  float *dy = falloc(nx), *gsep = falloc(nx), *dx1 = falloc(nx);
  float *dx2 = falloc(nx), *dr1 = falloc(nx), *dr2 = falloc(nx);
  float *dg1 = falloc(nc), *db1 = falloc(nc), *dg2 = falloc(nc);
  float *db2 = falloc(nc);
  tu_fill_uniform(dy, nx, seed + 6, -1.f, 1.f);
  tu_fill_uniform(dx1, nx, seed + 7, -1.f, 1.f);
  tu_fill_uniform(dr1, nx, seed + 8, -1.f, 1.f);
  tu_fill_uniform(dg1, nc, seed + 9, -1.f, 1.f);
  tu_fill_uniform(db1, nc, seed + 10, -1.f, 1.f);
  memcpy(dx2, dx1, nx * sizeof *dx1);
  memcpy(dr2, dr1, nx * sizeof *dr1);
  memcpy(dg2, dg1, nc * sizeof *dg1);
  memcpy(db2, db1, nc * sizeof *db1);
  float *wdx = hcopy(dx1, nx), *wdr = hcopy(dr1, nx);
  float *wdg = hcopy(dg1, nc), *wdb = hcopy(db1, nc);
  tc_eltwise_args e = {.struct_size = sizeof e};
  e.n = (int64_t)nx, e.a = y2, e.b = dy, e.y = gsep;
  ck_assert_int_eq(it->relu_bwd(ctx, &e), TC_OK);
  if (with_dres) {
    tc_eltwise_args p = {.struct_size = sizeof p};
    p.n = (int64_t)nx, p.alpha = accr ? 1.f : 0.f, p.beta = 1.f;
    p.a = dr1, p.b = gsep, p.y = dr1;
    ck_assert_int_eq(accr ? it->add(ctx, &p)
                          : it->copy_d2d(ctx, dr1, gsep, nx * sizeof *dr1),
                     TC_OK);
  }
  a.save_mean = sm2, a.save_invstd = si2;
  a.dy = gsep, a.dx = dx1, a.dgamma = affine ? dg1 : NULL;
  a.dbeta = affine ? db1 : NULL, a.accumulate = acc;
  ck_assert_int_eq(it->batchnorm_bwd(ctx, &a), TC_OK);
  a.dy = dy, a.dx = dx2, a.dgamma = affine ? dg2 : NULL;
  a.dbeta = affine ? db2 : NULL, a.y = mask ? NULL : y2;
  a.dresidual = with_dres ? dr2 : NULL, a.accumulate_residual = accr;
  ck_assert_int_eq(it->batchnorm_relu_bwd(ctx, &a), TC_OK);
  ck_assert_msg(same_bits(dx1, dx2, nx),
                "fused backward dx differs (n %lld "
                "c %lld sp %lld acc %d)",
                (long long)n, (long long)c, (long long)sp, acc);
  ck_assert(same_bits(dr1, dr2, nx));
  ck_assert(same_bits(dg1, dg2, nc) && same_bits(db1, db2, nc));
  /* against the reference, gated by the backend's own y (or mask) */
  rf = a;
  rf.y = y2, rf.dx = wdx, rf.dgamma = affine ? wdg : NULL;
  rf.dbeta = affine ? wdb : NULL, rf.dresidual = with_dres ? wdr : NULL;
  ref_batchnorm_relu_bwd(&rf);
  double dscale = 0; /* largest term gamma*invstd*dy, as run_case */
  for (size_t i = 0; i < nx; i++) {
    size_t ci = i / (size_t)sp % nc;
    double gm = affine ? (double)g[ci] : 1.0;
    dscale = fmax(dscale, fabs(gm * (double)si2[ci] * (double)dy[i]));
  }
  check_close(dx2, wdx, nx, 1e-4, dscale, "dx vs reference", d);
  check_close(dr2, wdr, nx, 1e-6, 0, "dresidual vs reference", d);
  if (affine) {
    check_close(dg2, wdg, nc, 1e-4, 0, "dgamma vs reference", d);
    check_close(db2, wdb, nc, 1e-5, 0, "dbeta vs reference", d);
  }
  free(wdx), free(wdr), free(wdg), free(wdb);
}

START_TEST(test_bn_fused) {
  ck_assert_ptr_nonnull(it->batchnorm_relu_fwd_train);
  ck_assert_ptr_nonnull(it->batchnorm_relu_fwd_infer);
  ck_assert_ptr_nonnull(it->batchnorm_relu_bwd);
  /* planes of 1 (BatchNorm1d), odd, vector-sized and long; chunked sums */
  static const int64_t shapes[][3] = {{1, 3, 5},  {2, 5, 1},   {7, 4, 17},
                                      {3, 6, 16}, {2, 3, 33},  {4, 16, 64},
                                      {64, 9, 1}, {2, 2, 4099}};
  uint64_t seed = 300;
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
    for (int v = 0; v < 6; v++, seed += 16)
      for (int m = 0; m < 2; m++) {
        fused_case(shapes[k][0], shapes[k][1], shapes[k][2], v != 5, v != 4,
                   v % 2, v >= 2 && v < 4, v == 3, v != 1, m && v != 5, seed);
        free_all();
      }
}
END_TEST

START_TEST(test_bn_fused_in_place_errors) {
  tc_batchnorm_args a = {.struct_size = sizeof a};
  a.n = 3, a.c = 4, a.spatial = 19, a.eps = 1e-5f;
  size_t nx = 3 * 4 * 19;
  float *x = falloc(nx), *y = falloc(nx), *io = falloc(nx), *dy = falloc(nx);
  float *dx = falloc(nx), *sm = falloc(4), *si = falloc(4), *z = falloc(nx);
  tu_fill_uniform(x, nx, 401, -1.f, 1.f);
  tu_fill_uniform(z, nx, 402, -1.f, 1.f);
  tu_fill_uniform(dy, nx, 403, -1.f, 1.f);
  a.save_mean = sm, a.save_invstd = si, a.residual = z;
  a.x = x, a.y = y;
  ck_assert_int_eq(it->batchnorm_relu_fwd_train(ctx, &a), TC_OK);
  memcpy(io, x, nx * sizeof *io);
  a.x = io, a.y = io; /* in place */
  ck_assert_int_eq(it->batchnorm_relu_fwd_train(ctx, &a), TC_OK);
  ck_assert(same_bits(io, y, nx));
  a.x = x, a.y = y, a.dy = dy, a.dx = dx;
  ck_assert_int_eq(it->batchnorm_relu_bwd(ctx, &a), TC_OK);
  memcpy(io, dy, nx * sizeof *io);
  a.dy = io, a.dx = io; /* dx over dy */
  ck_assert_int_eq(it->batchnorm_relu_bwd(ctx, &a), TC_OK);
  ck_assert(same_bits(io, dx, nx));
  /* the backward needs the forward's output */
  tc_batchnorm_args bad = a;
  bad.y = NULL, bad.dy = dy, bad.dx = dx;
  memcpy(io, dx, nx * sizeof *io);
  expect_bn_einval(it->batchnorm_relu_bwd, &bad, dx, io, nx);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "y"));
  /* args that end before relu_mask are refused, by the plain slots too */
  bad = a;
  bad.struct_size = offsetof(tc_batchnorm_args, relu_mask);
  bad.x = x, bad.y = y;
  memcpy(io, y, nx * sizeof *io);
  expect_bn_einval(it->batchnorm_fwd_train, &bad, y, io, nx);
  expect_bn_einval(it->batchnorm_relu_fwd_train, &bad, y, io, nx);
  free_all();
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_batchnorm");
  TCase *tc = tcase_create("batchnorm");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_bn_random);
  tcase_add_test(tc, test_bn_shapes);
  tcase_add_test(tc, test_bn_gradcheck);
  tcase_add_test(tc, test_bn_in_place);
  tcase_add_test(tc, test_bn_thread_independent);
  tcase_add_test(tc, test_bn_errors);
  tcase_add_test(tc, test_bn_fused);
  tcase_add_test(tc, test_bn_fused_in_place_errors);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

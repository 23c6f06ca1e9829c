/*
 * test_cpu_gemm.c - the CPU backend's strided-batched GEMM against the naive
 * reference (tests/reference/conv.c): all transpose pairs, alpha/beta,
 * padded leading dimensions, batches with gaps and broadcast operands, the
 * row-split path of large single products, thread-count independence, and
 * argument errors. Called through the public backend table.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/conv.h"
#include "testutil.h"

#include "op_fixture.h"

/* A backend with its own thread count (0: the library default). */
static void open_cpu(int threads) {
  op_open_cpu_threads(threads);
  ck_assert(it->gemm != NULL);
}

/* 3 threads: batches and row blocks really run concurrently. */
static void setup(void) {
  open_cpu(3);
}
static void teardown(void) {
  op_close();
}

static float *dalloc(size_t n) {
  return op_falloc(n);
}

typedef struct gcase {
  int ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  int64_t batch;
  int64_t pad; /* extra elements per row (ld = cols + pad) */
  int64_t gap; /* extra elements between batch entries */
  int bcast_b; /* stride_b = 0: one B for the whole batch */
  int nan_c;   /* C starts as NaN (only with beta == 0: C is not read) */
} gcase;

/* Builds the operands, runs the backend and the reference on copies of C,
 * and compares the whole C buffer (padding included: it must be kept). */
static void run_gemm(const gcase *g, uint64_t seed) {
  int64_t ar = g->ta ? g->k : g->m, ac = g->ta ? g->m : g->k;
  int64_t br = g->tb ? g->n : g->k, bc = g->tb ? g->k : g->n;
  tc_gemm_args a = {.struct_size = sizeof a};
  a.trans_a = g->ta, a.trans_b = g->tb;
  a.m = g->m, a.n = g->n, a.k = g->k;
  a.alpha = g->alpha, a.beta = g->beta;
  a.lda = ac + g->pad, a.ldb = bc + g->pad, a.ldc = g->n + g->pad;
  if (a.lda < 1)
    a.lda = 1;
  if (a.ldb < 1)
    a.ldb = 1;
  if (a.ldc < 1)
    a.ldc = 1;
  a.stride_a = ar * a.lda + g->gap;
  a.stride_b = g->bcast_b ? 0 : br * a.ldb + g->gap;
  a.stride_c = g->m * a.ldc + g->gap;
  a.batch = g->batch;
  size_t na = (size_t)(a.stride_a * g->batch + 1);
  size_t nb = (size_t)((g->bcast_b ? br * a.ldb : a.stride_b * g->batch) + 1);
  size_t nc = (size_t)(a.stride_c * g->batch + 1);
  float *A = dalloc(na), *B = dalloc(nb), *C = dalloc(nc);
  float *want = malloc(nc * sizeof *want);
  tu_fill_uniform(A, na, seed, -1.f, 1.f);
  tu_fill_uniform(B, nb, seed + 1, -1.f, 1.f);
  tu_fill_uniform(C, nc, seed + 2, -1.f, 1.f);
  if (g->nan_c) /* every C entry of each batch; padding keeps its values */
    for (int64_t b = 0; b < g->batch; b++)
      for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->n; j++)
          C[b * a.stride_c + i * a.ldc + j] = NAN;
  memcpy(want, C, nc * sizeof *want);
  a.a = A, a.b = B, a.c = C;
  ck_assert_int_eq(it->gemm(ctx, &a), TC_OK);
  tc_gemm_args r = a;
  r.c = want;
  ref_gemm(&r);
  ck_assert_msg(tu_max_rel_err(C, want, nc) <= 1e-4,
                "ta %d tb %d m %lld n %lld k %lld batch %lld: err %.3g", g->ta,
                g->tb, (long long)g->m, (long long)g->n, (long long)g->k,
                (long long)g->batch, tu_max_rel_err(C, want, nc));
  free(want);
  it->free(ctx, A);
  it->free(ctx, B);
  it->free(ctx, C);
}

START_TEST(test_gemm_transposes) {
  static const int64_t shapes[][3] = {
      {1, 1, 1}, {7, 5, 3}, {5, 7, 1}, {33, 17, 65}, {64, 3, 128}};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        gcase g = {
            ta, tb, shapes[i][0], shapes[i][1], shapes[i][2], 1.f, 0.f, 1, 0, 0,
            0,  0};
        run_gemm(&g, 100 + i);
      }
}
END_TEST

START_TEST(test_gemm_alpha_beta) {
  static const float ab[][2] = {
      {0.5f, 0.f}, {1.f, 1.f}, {-2.f, 0.75f}, {0.f, -1.5f}};
  for (int ta = 0; ta < 2; ta++)
    for (size_t i = 0; i < sizeof ab / sizeof ab[0]; i++) {
      gcase g = {ta, !ta, 9, 11, 13, ab[i][0], ab[i][1], 1, 2, 0, 0, 0};
      run_gemm(&g, 200 + i);
    }
}
END_TEST

/* beta == 0 must not read C (BLAS semantics): NaN in C does not survive. */
START_TEST(test_gemm_beta_zero_ignores_c) {
  float *A = dalloc(6), *B = dalloc(6), *C = dalloc(4);
  for (int i = 0; i < 6; i++)
    A[i] = (float)(i + 1), B[i] = (float)(i % 3);
  for (int i = 0; i < 4; i++)
    C[i] = NAN;
  tc_gemm_args a = {.struct_size = sizeof a};
  a.m = 2, a.n = 2, a.k = 3, a.alpha = 1.f, a.beta = 0.f;
  a.a = A, a.lda = 3, a.b = B, a.ldb = 2, a.c = C, a.ldc = 2, a.batch = 1;
  ck_assert_int_eq(it->gemm(ctx, &a), TC_OK);
  /* A = [1 2 3; 4 5 6], B = [0 1; 2 0; 1 2] */
  const float want[4] = {7.f, 7.f, 16.f, 16.f};
  for (int i = 0; i < 4; i++)
    ck_assert_float_eq(C[i], want[i]);
  it->free(ctx, A);
  it->free(ctx, B);
  it->free(ctx, C);
}
END_TEST

START_TEST(test_gemm_batched_strided) {
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      gcase g = {ta, tb, 6, 10, 7, 1.25f, 0.5f, 5, 3, 11, 0, 0};
      run_gemm(&g, 300 + ta * 2 + tb);
      gcase h = {ta, tb, 4, 3, 9, 1.f, 0.f, 17, 0, 0, 1, 0}; /* broadcast B */
      run_gemm(&h, 310 + ta * 2 + tb);
    }
}
END_TEST

/* Large single products are split into fixed row blocks across threads. */
START_TEST(test_gemm_large_split) {
  gcase g = {0, 1, 200, 96, 80, 1.f, 0.f, 1, 1, 0, 0, 0};
  run_gemm(&g, 400);
  gcase h = {1, 0, 150, 130, 70, 0.5f, 2.f, 1, 0, 0, 0, 0};
  run_gemm(&h, 401);
}
END_TEST

/* The packed GEMM's blocking (backends/cpu/gemm.c): k over one block
 * (several k blocks, later ones adding to C), m and n over one packed block,
 * partial tiles on both edges, C narrower than a tile (OpenBLAS), padded
 * leading dimensions, for every transpose pair and beta 0 (NaN C) / 1. */
START_TEST(test_gemm_packed_blocks) {
  static const int64_t shapes[][3] = {{1, 17, 300}, {13, 33, 129},
                                      {97, 130, 7}, {101, 16, 257},
                                      {37, 5, 40},  {2, 200, 1}};
  uint64_t seed = 700;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        gcase g = {
            ta, tb, shapes[i][0], shapes[i][1], shapes[i][2], 1.f, 0.f, 1, 3, 0,
            0,  1};
        run_gemm(&g, seed++);
        gcase h = {ta,
                   tb,
                   shapes[i][0],
                   shapes[i][1],
                   shapes[i][2],
                   -0.5f,
                   1.f,
                   1,
                   0,
                   0,
                   0,
                   0};
        run_gemm(&h, seed++);
      }
}
END_TEST

/* Random shapes (1 and odd sizes included), transposes, alpha/beta,
 * padding and batches with gaps. */
START_TEST(test_gemm_random_shapes) {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int it = 0; it < 40; it++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t r = s >> 11;
    gcase g = {0};
    g.ta = (int)(r & 1), g.tb = (int)(r >> 1 & 1);
    g.m = 1 + (int64_t)(r >> 2 & 127);
    g.n = 1 + (int64_t)(r >> 9 & 127);
    g.k = 1 + (int64_t)(r >> 16 & 255);
    g.alpha = (r >> 24 & 1) ? 1.f : 0.75f;
    g.beta = (r >> 25 & 3) == 0 ? 0.f : (r >> 25 & 3) == 1 ? 1.f : -0.25f;
    g.batch = (r >> 27 & 3) == 0 ? 3 : 1;
    g.pad = (int64_t)(r >> 29 & 3);
    g.gap = (int64_t)(r >> 31 & 7);
    g.nan_c = g.beta == 0.f;
    run_gemm(&g, 800 + (uint64_t)it);
  }
}
END_TEST

START_TEST(test_gemm_k_zero_scales_c) {
  gcase g = {0, 0, 5, 4, 0, 1.f, 0.5f, 2, 0, 0, 0, 0};
  run_gemm(&g, 500);
  gcase h = {1, 1, 5, 4, 0, 1.f, 0.f, 1, 0, 0, 0, 0};
  run_gemm(&h, 501);
}
END_TEST

START_TEST(test_gemm_empty_is_noop) {
  tc_gemm_args a = {.struct_size = sizeof a};
  a.m = 0, a.n = 5, a.k = 3, a.lda = 3, a.ldb = 5, a.ldc = 5, a.batch = 1;
  ck_assert_int_eq(it->gemm(ctx, &a), TC_OK); /* nothing read: NULLs ok */
  a.m = 4, a.batch = 0;
  ck_assert_int_eq(it->gemm(ctx, &a), TC_OK);
}
END_TEST

/* beta == 0 with NaN in C, on every path: k == 0 (C = 0), batched,
 * row-split, padded. */
START_TEST(test_gemm_beta_zero_nan_paths) {
  static const gcase cases[] = {
      {0, 0, 5, 4, 0, 1.f, 0.f, 1, 0, 0, 0, 1},
      {1, 0, 5, 4, 0, 2.f, 0.f, 3, 2, 1, 0, 1},
      {0, 1, 7, 9, 6, 1.f, 0.f, 4, 1, 3, 0, 1},
      {1, 1, 6, 5, 8, -1.f, 0.f, 5, 0, 0, 1, 1},
      {0, 0, 180, 90, 70, 0.5f, 0.f, 1, 3, 0, 0, 1},
      {1, 1, 170, 80, 100, 1.f, 0.f, 1, 0, 0, 0, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_gemm(&cases[i], 600 + i);
}
END_TEST

/* Same bits with 1 and 3 threads, batched and row-split. */
static void gemm_with_threads(int threads, int64_t batch, int64_t m, float *out,
                              size_t nc) {
  open_cpu(threads);
  int64_t n = 90, k = 120;
  float *A = dalloc((size_t)(batch * m * k)), *B = dalloc((size_t)(k * n));
  float *C = dalloc(nc);
  tu_fill_uniform(A, (size_t)(batch * m * k), 7, -1.f, 1.f);
  tu_fill_uniform(B, (size_t)(k * n), 8, -1.f, 1.f);
  tc_gemm_args a = {.struct_size = sizeof a};
  a.m = m, a.n = n, a.k = k, a.alpha = 1.f, a.beta = 0.f;
  a.a = A, a.lda = k, a.stride_a = m * k;
  a.b = B, a.ldb = n, a.stride_b = 0;
  a.c = C, a.ldc = n, a.stride_c = m * n, a.batch = batch;
  ck_assert_int_eq(it->gemm(ctx, &a), TC_OK);
  memcpy(out, C, nc * sizeof *out);
  it->free(ctx, A);
  it->free(ctx, B);
  it->free(ctx, C);
  op_destroy();
}

START_TEST(test_gemm_thread_independent) {
  /* batched; one task; several tasks (blocks of C) */
  static const int64_t cfg[][2] = {{1, 333}, {9, 40}, {1, 1000}};
  op_destroy(); /* the fixture's; reopened below */
  for (int i = 0; i < 3; i++) {
    size_t nc = (size_t)(cfg[i][0] * cfg[i][1] * 90);
    float *c1 = malloc(nc * sizeof *c1), *c3 = malloc(nc * sizeof *c3);
    gemm_with_threads(1, cfg[i][0], cfg[i][1], c1, nc);
    gemm_with_threads(3, cfg[i][0], cfg[i][1], c3, nc);
    ck_assert_msg(memcmp(c1, c3, nc * sizeof *c1) == 0,
                  "batch %lld: results differ between 1 and 3 threads",
                  (long long)cfg[i][0]);
    free(c1);
    free(c3);
  }
  open_cpu(3); /* for teardown */
}
END_TEST

static void expect_einval(const tc_gemm_args *a, const float *C, float c0) {
  tc_clear_error();
  ck_assert_int_eq(it->gemm(ctx, a), TC_EINVAL);
  ck_assert_msg(strlen(tc_last_error()) > 0, "no message");
  if (C)
    ck_assert_float_eq(C[0], c0); /* outputs untouched on failure */
}

START_TEST(test_gemm_errors) {
  float *A = dalloc(64), *B = dalloc(64), *C = dalloc(64);
  tu_fill_uniform(C, 64, 9, -1.f, 1.f);
  float c0 = C[0];
  tc_gemm_args ok = {.struct_size = sizeof ok};
  ok.m = 4, ok.n = 3, ok.k = 2, ok.alpha = 1.f;
  ok.a = A, ok.lda = 2, ok.b = B, ok.ldb = 3, ok.c = C, ok.ldc = 3;
  ok.batch = 1;
  tc_gemm_args a;

  expect_einval(NULL, C, c0);
  a = ok, a.struct_size = sizeof a - 8;
  expect_einval(&a, C, c0);
  a = ok, a.m = -1;
  expect_einval(&a, C, c0);
  a = ok, a.k = -3;
  expect_einval(&a, C, c0);
  a = ok, a.batch = -1;
  expect_einval(&a, C, c0);
  a = ok, a.lda = 1; /* A is (4,2) */
  expect_einval(&a, C, c0);
  a = ok, a.trans_a = 1, a.lda = 3; /* A is (2,4): lda >= 4 */
  expect_einval(&a, C, c0);
  a = ok, a.ldb = 2;
  expect_einval(&a, C, c0);
  a = ok, a.trans_b = 1, a.ldb = 1; /* B is (3,2): ldb >= 2 */
  expect_einval(&a, C, c0);
  a = ok, a.ldc = 2;
  expect_einval(&a, C, c0);
  a = ok, a.a = NULL;
  expect_einval(&a, C, c0);
  a = ok, a.b = NULL;
  expect_einval(&a, C, c0);
  a = ok, a.c = NULL;
  expect_einval(&a, NULL, 0.f);
  a = ok, a.batch = 2, a.stride_c = 5; /* C entries overlap */
  expect_einval(&a, C, c0);
  a = ok, a.batch = 2, a.stride_a = -8, a.stride_c = 12;
  expect_einval(&a, C, c0);
  ck_assert_int_eq(it->gemm(ctx, &ok), TC_OK);
  it->free(ctx, A);
  it->free(ctx, B);
  it->free(ctx, C);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_gemm");
  TCase *tc = tcase_create("gemm");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_gemm_transposes);
  tcase_add_test(tc, test_gemm_alpha_beta);
  tcase_add_test(tc, test_gemm_beta_zero_ignores_c);
  tcase_add_test(tc, test_gemm_beta_zero_nan_paths);
  tcase_add_test(tc, test_gemm_batched_strided);
  tcase_add_test(tc, test_gemm_large_split);
  tcase_add_test(tc, test_gemm_packed_blocks);
  tcase_add_test(tc, test_gemm_random_shapes);
  tcase_add_test(tc, test_gemm_k_zero_scales_c);
  tcase_add_test(tc, test_gemm_empty_is_noop);
  tcase_add_test(tc, test_gemm_thread_independent);
  tcase_add_test(tc, test_gemm_errors);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

/*
 * test_layers.c - every layer on small hand-computed cases: forward values,
 * parameter and buffer names, BatchNorm's running statistics (momentum and
 * cumulative average), train/eval behaviour, dropout masks (statistics and
 * reproducibility), and residual-block shortcuts (with the main path
 * silenced by zero convolution weights, the block is relu(shortcut(x))).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include <tinycnn_backend.h>

#include "nn_util.h"
#include "testutil.h"

static tc_backend *be;
static void setup(void) {
  be = nu_cpu();
}
static void teardown(void) {
  tc_backend_destroy(be);
}

static tc_tensor *input4(int64_t n, int64_t c, int64_t h, int64_t w,
                         const float *d) {
  int64_t s[4] = {n, c, h, w};
  return nu_tensor(be, s, 4, d);
}

START_TEST(test_conv2d_hand) {
  tc_layer *l;
  NU_OK(tc_conv2d_create(&l, 1, 1, 2, NULL));
  ck_assert_str_eq(tc_layer_kind(l), "conv2d");
  int64_t in[3] = {1, 3, 3};
  tc_model *m = nu_model(be, l, in, 3, 0);
  float w[4] = {1, 2, 3, 4}, b = 0.5f;
  nu_set(m, "weight", w);
  nu_set(m, "bias", &b);
  float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[4];
  tc_tensor *xt = input4(1, 1, 3, 3, x);
  nu_forward(m, xt, NULL, y);
  float want[4] = {37.5f, 47.5f, 67.5f, 77.5f};
  TU_ASSERT_CLOSE(y, want, 4, 1e-6);
  tc_model_destroy(m);

  /* stride 2, padding 1, no bias: windows at (-1,-1) (-1,1) (1,-1) (1,1) */
  tc_conv2d_options o = TC_CONV2D_OPTIONS_INIT;
  o.stride_h = o.stride_w = 2;
  o.pad_h = o.pad_w = 1;
  o.bias = 0;
  NU_OK(tc_conv2d_create(&l, 1, 1, 2, &o));
  m = nu_model(be, l, in, 3, 0);
  ck_assert_int_eq(tc_model_num_params(m), 1);
  nu_set(m, "weight", w);
  nu_forward(m, xt, NULL, y);
  float want2[4] = {4, 18, 36, 77};
  TU_ASSERT_CLOSE(y, want2, 4, 1e-6);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
}
END_TEST

/* A Linear whose weight could not exist is refused at creation with the
 * limit named (2^62 x 2^62 overflowed int64 in the model's count). */
START_TEST(test_linear_too_large) {
  tc_layer *l = NULL;
  const int64_t big = (int64_t)1 << 62;
  ck_assert_int_eq(tc_linear_create(&l, big, big, NULL), TC_ESHAPE);
  ck_assert_ptr_null(l);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "2^48"));
  ck_assert_int_eq(
      tc_linear_create(&l, (int64_t)1 << 30, (int64_t)1 << 30, NULL),
      TC_ESHAPE);
  ck_assert_int_eq(tc_linear_create(&l, big, 1, NULL), TC_ESHAPE);
  NU_OK(tc_linear_create(&l, (int64_t)1 << 24, (int64_t)1 << 24, NULL));
  tc_layer_destroy(l);
}
END_TEST

START_TEST(test_linear_hand) {
  tc_layer *l;
  NU_OK(tc_linear_create(&l, 2, 3, NULL));
  int64_t in = 2, s[2] = {2, 2}, oshape[TC_MAX_DIMS];
  tc_model *m = nu_model(be, l, &in, 1, 0);
  ck_assert_int_eq(tc_model_output_shape(m, oshape), 1);
  ck_assert_int_eq(oshape[0], 3);
  float w[6] = {1, 2, 3, 4, 5, 6}, b[3] = {1, 1, 1};
  nu_set(m, "weight", w);
  nu_set(m, "bias", b);
  float x[4] = {1, -1, 2, 0}, y[6], want[6] = {0, 0, 0, 3, 7, 11};
  tc_tensor *xt = nu_tensor(be, s, 2, x);
  nu_forward(m, xt, NULL, y);
  TU_ASSERT_CLOSE(y, want, 6, 1e-6);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
}
END_TEST

START_TEST(test_relu_flatten_identity) {
  tc_layer *seq, *l;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(seq, "relu", l));
  NU_OK(tc_identity_create(&l));
  NU_OK(tc_sequential_add(seq, "id", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(seq, "flat", l));
  ck_assert_int_eq(tc_sequential_size(seq), 3);
  int64_t in[3] = {2, 1, 2};
  tc_model *m = nu_model(be, seq, in, 3, 0);
  ck_assert_int_eq(tc_model_num_state(m), 0);
  float x[8] = {-1, 2, 3, -4, 0.5f, -0.5f, 7, 0}, y[8];
  float want[8] = {0, 2, 3, 0, 0.5f, 0, 7, 0};
  tc_tensor *xt = input4(2, 2, 1, 2, x);
  tc_tensor *out = nu_forward(m, xt, NULL, y);
  ck_assert_int_eq(tc_tensor_ndim(out), 2);
  ck_assert_int_eq(tc_tensor_dim(out, 1), 4);
  TU_ASSERT_CLOSE(y, want, 8, 0);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
}
END_TEST

START_TEST(test_pools_hand) {
  float x16[16], y[9];
  for (int i = 0; i < 16; i++)
    x16[i] = (float)i;
  int64_t in[3] = {1, 4, 4};
  tc_tensor *xt = input4(1, 1, 4, 4, x16);
  tc_layer *l;
  NU_OK(tc_maxpool2d_create(&l, 2, NULL));
  tc_model *m = nu_model(be, l, in, 3, 0);
  nu_forward(m, xt, NULL, y);
  float wmax[4] = {5, 7, 13, 15};
  TU_ASSERT_CLOSE(y, wmax, 4, 0);
  tc_model_destroy(m);

  NU_OK(tc_avgpool2d_create(&l, 2, NULL));
  m = nu_model(be, l, in, 3, 0);
  nu_forward(m, xt, NULL, y);
  float wavg[4] = {2.5f, 4.5f, 10.5f, 12.5f};
  TU_ASSERT_CLOSE(y, wavg, 4, 1e-7);
  tc_model_destroy(m);

  NU_OK(tc_global_avgpool2d_create(&l));
  m = nu_model(be, l, in, 3, 0);
  nu_forward(m, xt, NULL, y);
  ck_assert_float_eq_tol(y[0], 7.5f, 1e-6);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);

  /* ceil_mode: 5x5, kernel 2, stride 2 -> 3x3, the last windows partial */
  float x25[25];
  for (int i = 0; i < 25; i++)
    x25[i] = (float)i;
  tc_pool2d_options o = TC_POOL2D_OPTIONS_INIT;
  o.ceil_mode = 1;
  NU_OK(tc_maxpool2d_create(&l, 2, &o));
  int64_t in5[3] = {1, 5, 5}, os[TC_MAX_DIMS];
  m = nu_model(be, l, in5, 3, 0);
  tc_model_output_shape(m, os);
  ck_assert_int_eq(os[1], 3);
  xt = input4(1, 1, 5, 5, x25);
  nu_forward(m, xt, NULL, y);
  float wceil[9] = {6, 8, 9, 16, 18, 19, 21, 23, 24};
  TU_ASSERT_CLOSE(y, wceil, 9, 0);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);

  /* padding 1 on 2x2: include pad divides by 4, exclude by the count */
  float x4[4] = {1, 2, 3, 4};
  xt = input4(1, 1, 2, 2, x4);
  int64_t in2[3] = {1, 2, 2};
  o = (tc_pool2d_options)TC_POOL2D_OPTIONS_INIT;
  o.pad_h = o.pad_w = 1;
  NU_OK(tc_avgpool2d_create(&l, 2, &o));
  m = nu_model(be, l, in2, 3, 0);
  nu_forward(m, xt, NULL, y);
  float winc[4] = {0.25f, 0.5f, 0.75f, 1.f};
  TU_ASSERT_CLOSE(y, winc, 4, 1e-7);
  tc_model_destroy(m);
  o.count_include_pad = 0;
  NU_OK(tc_avgpool2d_create(&l, 2, &o));
  m = nu_model(be, l, in2, 3, 0);
  nu_forward(m, xt, NULL, y);
  TU_ASSERT_CLOSE(y, x4, 4, 1e-7);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
}
END_TEST

/* x (2,1,1,2) = 1..4: mean 2.5, biased var 1.25, unbiased 5/3 */
START_TEST(test_batchnorm2d_stats) {
  tc_layer *l;
  NU_OK(tc_batchnorm2d_create(&l, 1, NULL));
  int64_t in[3] = {1, 1, 2};
  tc_model *m = nu_model(be, l, in, 3, 0);
  const char *names[5] = {"weight", "bias", "running_mean", "running_var",
                          "num_batches_tracked"};
  ck_assert_int_eq(tc_model_num_state(m), 5);
  for (int i = 0; i < 5; i++) {
    const char *nm;
    NU_OK(tc_model_get_state(m, i, &nm, NULL));
    ck_assert_str_eq(nm, names[i]);
  }
  float x[4] = {1, 2, 3, 4}, y[4], want[4];
  for (int i = 0; i < 4; i++)
    want[i] = (float)((x[i] - 2.5) / sqrt(1.25 + 1e-5));
  tc_tensor *xt = input4(2, 1, 1, 2, x);
  nu_forward(m, xt, NULL, y);
  TU_ASSERT_CLOSE(y, want, 4, 1e-5);
  float rm, rv;
  int64_t nbt;
  nu_read(m, "running_mean", &rm);
  nu_read(m, "running_var", &rv);
  ck_assert_float_eq_tol(rm, 0.25f, 1e-6);
  ck_assert_float_eq_tol(rv, 0.9f + 0.1f * 5.f / 3.f, 1e-6);
  tc_tensor *t;
  NU_OK(tc_model_find_state(m, "num_batches_tracked", &t));
  ck_assert_int_eq(tc_tensor_ndim(t), 0);
  ck_assert_int_eq(tc_tensor_dtype(t), TC_INT64);
  NU_OK(tc_tensor_copy_to_host(t, &nbt, 8));
  ck_assert_int_eq(nbt, 1);
  /* eval: running statistics, nothing updated */
  NU_OK(tc_model_set_training(m, 0));
  nu_forward(m, xt, NULL, y);
  for (int i = 0; i < 4; i++)
    want[i] = (float)((x[i] - rm) / sqrt(rv + 1e-5));
  TU_ASSERT_CLOSE(y, want, 4, 1e-5);
  NU_OK(tc_tensor_copy_to_host(t, &nbt, 8));
  ck_assert_int_eq(nbt, 1);
  tc_model_destroy(m);

  /* cumulative average: running_mean after batches with means 2.5, 5 */
  tc_batchnorm_options o = TC_BATCHNORM_OPTIONS_INIT;
  o.momentum = TC_BN_MOMENTUM_CUMULATIVE;
  NU_OK(tc_batchnorm2d_create(&l, 1, &o));
  m = nu_model(be, l, in, 3, 0);
  nu_forward(m, xt, NULL, y);
  nu_read(m, "running_mean", &rm);
  ck_assert_float_eq_tol(rm, 2.5f, 1e-6);
  float x2[4] = {2, 4, 6, 8};
  nu_forward(m, xt, x2, y);
  nu_read(m, "running_mean", &rm);
  nu_read(m, "running_var", &rv);
  ck_assert_float_eq_tol(rm, 3.75f, 1e-6);
  ck_assert_float_eq_tol(rv, (5.f / 3.f + 20.f / 3.f) / 2.f, 1e-5);
  tc_model_destroy(m);

  /* no tracking, no affine: no state; eval still uses batch statistics */
  o = (tc_batchnorm_options)TC_BATCHNORM_OPTIONS_INIT;
  o.affine = 0;
  o.track_running_stats = 0;
  NU_OK(tc_batchnorm2d_create(&l, 1, &o));
  m = nu_model(be, l, in, 3, 0);
  ck_assert_int_eq(tc_model_num_state(m), 0);
  NU_OK(tc_model_set_training(m, 0));
  nu_forward(m, xt, x, y);
  for (int i = 0; i < 4; i++)
    want[i] = (float)((x[i] - 2.5) / sqrt(1.25 + 1e-5));
  TU_ASSERT_CLOSE(y, want, 4, 1e-5);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
}
END_TEST

START_TEST(test_batchnorm1d_affine) {
  tc_layer *l;
  NU_OK(tc_batchnorm1d_create(&l, 2, NULL));
  int64_t in = 2, s[2] = {3, 2};
  tc_model *m = nu_model(be, l, &in, 1, 0);
  float g[2] = {2, -1}, b[2] = {0.5f, 1};
  nu_set(m, "weight", g);
  nu_set(m, "bias", b);
  float x[6] = {0, 10, 1, 20, 2, 60}, y[6], want[6];
  double mean[2] = {1, 30}, var[2] = {2.0 / 3, (400 + 100 + 900) / 3.0};
  for (int i = 0; i < 6; i++) {
    int c = i % 2;
    want[i] = (float)((x[i] - mean[c]) / sqrt(var[c] + 1e-5) * g[c] + b[c]);
  }
  tc_tensor *xt = nu_tensor(be, s, 2, x);
  nu_forward(m, xt, NULL, y);
  TU_ASSERT_CLOSE(y, want, 6, 1e-5);
  /* a batch of one value per channel cannot be normalised in training */
  int64_t s1[2] = {1, 2};
  tc_tensor *x1 = nu_tensor(be, s1, 2, x);
  tc_tensor *out;
  ck_assert_int_eq(tc_model_forward(m, x1, &out), TC_ESHAPE);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "more than 1 value"));
  NU_OK(tc_model_set_training(m, 0));
  NU_OK(tc_model_forward(m, x1, &out));
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
  tc_tensor_destroy(x1);
}
END_TEST

START_TEST(test_dropout) {
  enum { N = 4, F = 2000 };
  tc_layer *l;
  NU_OK(tc_dropout_create(&l, 0.3f));
  int64_t in = F, s[2] = {N, F};
  tc_model *m = nu_model(be, l, &in, 1, 0);
  float *x = malloc(N * F * 4), *y = malloc(N * F * 4), *y2 = malloc(N * F * 4);
  for (int i = 0; i < N * F; i++)
    x[i] = 1.f + (float)(i % 7);
  tc_tensor *xt = nu_tensor(be, s, 2, x);
  uint64_t off0 = tc_model_get_rng_offset(m);
  nu_forward(m, xt, NULL, y);
  ck_assert_uint_eq(tc_model_get_rng_offset(m), off0 + N * F);
  int zeros = 0;
  for (int i = 0; i < N * F; i++) {
    if (y[i] == 0.f)
      zeros++;
    else
      ck_assert_float_eq_tol(y[i], x[i] / 0.7f, 1e-5);
  }
  /* binomial(8000, 0.3): sd 41; allow 5 sd */
  ck_assert_msg(abs(zeros - 2400) < 205, "zeros %d", zeros);
  /* another forward: another mask; the same offset: the same mask */
  nu_forward(m, xt, NULL, y2);
  ck_assert(memcmp(y, y2, N * F * 4) != 0);
  NU_OK(tc_model_set_rng_offset(m, off0));
  nu_forward(m, xt, NULL, y2);
  ck_assert(memcmp(y, y2, N * F * 4) == 0);
  /* evaluation: identity, no numbers consumed */
  NU_OK(tc_model_set_training(m, 0));
  uint64_t off = tc_model_get_rng_offset(m);
  nu_forward(m, xt, NULL, y2);
  ck_assert(memcmp(x, y2, N * F * 4) == 0);
  ck_assert_uint_eq(tc_model_get_rng_offset(m), off);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);

  /* Dropout2d: whole (4x4) planes zeroed or scaled by 2 */
  NU_OK(tc_dropout2d_create(&l, 0.5f));
  int64_t in3[3] = {16, 4, 4};
  m = nu_model(be, l, in3, 3, 0);
  xt = input4(8, 16, 4, 4, x);
  nu_forward(m, xt, NULL, y);
  int planes_zero = 0;
  for (int p = 0; p < 8 * 16; p++) {
    int z = y[p * 16] == 0.f;
    planes_zero += z;
    for (int i = 0; i < 16; i++)
      ck_assert_float_eq_tol(y[p * 16 + i], z ? 0.f : 2.f * x[p * 16 + i],
                             1e-5);
  }
  ck_assert_msg(planes_zero > 30 && planes_zero < 98, "%d", planes_zero);
  ck_assert_uint_eq(tc_model_get_rng_offset(m), 128);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
  ck_assert_int_eq(tc_dropout_create(&l, 1.5f), TC_EINVAL);
  free(x);
  free(y);
  free(y2);
}
END_TEST

/* With zero convolution weights the main path is 0, so the block computes
 * relu(shortcut(x)). x: (2, 2, 4, 4), values of both signs. */
static void block_case(int shortcut, int64_t cin, int64_t cout, int64_t stride,
                       int expect_params) {
  tc_residual_options o = TC_RESIDUAL_OPTIONS_INIT;
  o.shortcut = shortcut;
  tc_layer *l;
  NU_OK(tc_residual_block_create(&l, cin, cout, stride, &o));
  int64_t in[3] = {cin, 4, 4};
  tc_model *m = nu_model(be, l, in, 3, 0);
  ck_assert_int_eq(tc_model_num_params(m), expect_params);
  tc_tensor *p;
  for (int64_t i = 0; i < tc_model_num_params(m); i++) {
    const char *nm;
    NU_OK(tc_model_get_param(m, i, &nm, &p, NULL));
    if (strstr(nm, "conv") || strstr(nm, "shortcut.0"))
      NU_OK(tc_tensor_fill(p, 0.0));
  }
  float x[2 * 4 * 16];
  int64_t n = 2, oh = 4 / stride;
  for (int i = 0; i < 2 * cin * 16; i++)
    x[i] = (float)((i * 37) % 23) - 11.f;
  tc_tensor *xt = input4(n, cin, 4, 4, x);
  float y[2 * 8 * 16], want[2 * 8 * 16];
  memset(want, 0, sizeof want);
  int64_t off = 0; /* F.pad puts the new channels last */
  for (int64_t b = 0; b < n && shortcut <= TC_SHORTCUT_A_SUBSAMPLE; b++)
    for (int64_t c = 0; c < cin; c++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < oh; j++) {
          const float *xc = x + (b * cin + c) * 16;
          float v = xc[i * stride * 4 + j * stride];
          if (shortcut == TC_SHORTCUT_A_MAXPOOL)
            for (int64_t di = 0; di < stride; di++)
              for (int64_t dj = 0; dj < stride; dj++)
                v = fmaxf(v, xc[(i * stride + di) * 4 + j * stride + dj]);
          want[((b * cout + c + off) * oh + i) * oh + j] = fmaxf(v, 0.f);
        }
  nu_forward(m, xt, NULL, y);
  TU_ASSERT_CLOSE(y, want, (size_t)(n * cout * oh * oh), 1e-6);
  tc_model_destroy(m);
  tc_tensor_destroy(xt);
}

START_TEST(test_residual_shortcuts) {
  block_case(TC_SHORTCUT_A_MAXPOOL, 2, 2, 1, 6); /* identity */
  block_case(TC_SHORTCUT_A_MAXPOOL, 2, 4, 2, 6);
  block_case(TC_SHORTCUT_A_SUBSAMPLE, 2, 4, 2, 6);
  block_case(TC_SHORTCUT_A_SUBSAMPLE, 2, 8, 1, 6); /* pad only */
  block_case(TC_SHORTCUT_B, 2, 4, 2, 9);           /* conv+BN: zero */
  block_case(TC_SHORTCUT_NONE, 2, 4, 2, 6);        /* plain: zero */
  tc_layer *l;
  tc_residual_options o = TC_RESIDUAL_OPTIONS_INIT;
  ck_assert_int_eq(tc_residual_block_create(&l, 4, 2, 1, &o), TC_EINVAL);
  o.shortcut = 7;
  ck_assert_int_eq(tc_residual_block_create(&l, 2, 2, 1, &o), TC_EINVAL);
}
END_TEST

/* The residual block runs batch norm fused with its ReLU and residual add
 * when the backend has the batchnorm_relu_* slots and the separate ops
 * otherwise; both must give the same bits. "cpu-separate" is the CPU table
 * without the fused slots. Two blocks in a row (so a block's dx is
 * accumulated into by the next), train forward and backward, then eval. */
static tc_backend_iface separate_iface;

static tc_model *two_blocks(tc_backend *b, int shortcut, int64_t cin,
                            int64_t cout, int64_t stride) {
  tc_residual_options o = TC_RESIDUAL_OPTIONS_INIT;
  o.shortcut = shortcut;
  tc_layer *seq, *b1, *b2;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_residual_block_create(&b1, cin, cout, stride, &o));
  NU_OK(tc_sequential_add(seq, "0", b1));
  NU_OK(tc_residual_block_create(&b2, cout, cout, 1, &o));
  NU_OK(tc_sequential_add(seq, "1", b2));
  int64_t in[3] = {cin, 6, 6};
  tc_set_seed(77);
  return nu_model(b, seq, in, 3, 1);
}

/* m[0] (fused) against m[1] (separate), the same model on (n, cin, 6, 6)
 * inputs with ny outputs: train forward and gradients (two steps), eval
 * forward and, with eval_bwd, an evaluation-mode backward too (batch norm
 * on running statistics cannot take the ReLU: the separate ReLU runs). */
static void same_bits(tc_model *m[2], int64_t n, int64_t cin, int64_t ny,
                      int eval_bwd, const char *what) {
  int64_t nx = n * cin * 36;
  float *x = malloc((size_t)nx * sizeof *x), *dy = malloc((size_t)ny * 4);
  tu_fill_uniform(x, (size_t)nx, 11, -2.f, 2.f);
  tu_fill_uniform(dy, (size_t)ny, 12, -1.f, 1.f);
  float *out[2][4];
  int64_t np = tc_model_num_params(m[0]), tot = 0;
  for (int64_t i = 0; i < np; i++) {
    tc_tensor *p;
    NU_OK(tc_model_get_param(m[0], i, NULL, &p, NULL));
    tot += tc_tensor_numel(p);
  }
  for (int k = 0; k < 2; k++) {
    int64_t shape[4] = {n, cin, 6, 6};
    tc_tensor *xt = nu_tensor(tc_model_backend(m[k]), shape, 4, x);
    out[k][0] = malloc((size_t)(2 * ny) * sizeof(float));
    out[k][1] = malloc((size_t)(nx + tot) * sizeof(float));
    out[k][2] = malloc((size_t)ny * sizeof(float));
    tc_tensor *y = NULL;
    /* twice: the second backward finds the first one's values in every
     * gradient buffer, so a wrong accumulate flag shows */
    for (int it2 = 0; it2 < 2; it2++) {
      NU_OK(tc_model_zero_grad(m[k]));
      NU_OK(tc_model_forward(m[k], xt, &y));
      nu_get(y, out[k][0]);
      NU_OK(tc_tensor_copy_from_host(tc_model_output_grad(m[k]), dy,
                                     (size_t)ny * 4));
      NU_OK(tc_model_backward(m[k], tc_model_output_grad(m[k])));
    }
    nu_get(tc_model_input_grad(m[k]), out[k][1]);
    int64_t off = nx;
    for (int64_t i = 0; i < np; i++) {
      tc_tensor *g;
      NU_OK(tc_model_get_param(m[k], i, NULL, NULL, &g));
      nu_get(g, out[k][1] + off);
      off += tc_tensor_numel(g);
    }
    NU_OK(tc_model_set_training(m[k], 0));
    NU_OK(tc_model_forward(m[k], xt, &y));
    nu_get(y, out[k][2]);
    out[k][3] = malloc((size_t)nx * sizeof(float));
    if (eval_bwd) {
      NU_OK(tc_tensor_copy_from_host(tc_model_output_grad(m[k]), dy,
                                     (size_t)ny * 4));
      NU_OK(tc_model_backward(m[k], tc_model_output_grad(m[k])));
      nu_get(tc_model_input_grad(m[k]), out[k][3]);
    }
    tc_tensor_destroy(xt);
  }
  ck_assert_msg(memcmp(out[0][0], out[1][0], (size_t)ny * 4) == 0,
                "train forward differs (%s)", what);
  ck_assert_msg(memcmp(out[0][1], out[1][1], (size_t)(nx + tot) * 4) == 0,
                "gradients differ (%s)", what);
  ck_assert_msg(memcmp(out[0][2], out[1][2], (size_t)ny * 4) == 0,
                "eval forward differs (%s)", what);
  ck_assert_msg(!eval_bwd || memcmp(out[0][3], out[1][3], (size_t)nx * 4) == 0,
                "eval backward differs (%s)", what);
  for (int k = 0; k < 2; k++) {
    for (int j = 0; j < 4; j++)
      free(out[k][j]);
    tc_model_destroy(m[k]);
  }
  free(x);
  free(dy);
}

static void fused_vs_separate(tc_backend *sep, int shortcut, int64_t cin,
                              int64_t cout, int64_t stride) {
  tc_model *m[2] = {two_blocks(be, shortcut, cin, cout, stride),
                    two_blocks(sep, shortcut, cin, cout, stride)};
  char what[32];
  snprintf(what, sizeof what, "shortcut %d", shortcut);
  same_bits(m, 3, cin, 3 * cout * 36 / (stride * stride), 0, what);
}

/* A Sequential runs batch norm + ReLU fused: conv, bn2d, relu, pool,
 * flatten, linear, bn1d, relu, linear, relu (that last one alone). */
static tc_model *bn_relu_chain(tc_backend *b) {
  tc_layer *seq, *l;
  tc_conv2d_options co = TC_CONV2D_OPTIONS_INIT;
  co.pad_h = co.pad_w = 1;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_conv2d_create(&l, 2, 4, 3, &co));
  NU_OK(tc_sequential_add(seq, "conv", l));
  NU_OK(tc_batchnorm2d_create(&l, 4, NULL));
  NU_OK(tc_sequential_add(seq, "bn2", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(seq, "relu2", l));
  NU_OK(tc_maxpool2d_create(&l, 2, NULL));
  NU_OK(tc_sequential_add(seq, "pool", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(seq, "flat", l));
  NU_OK(tc_linear_create(&l, 36, 5, NULL));
  NU_OK(tc_sequential_add(seq, "fc1", l));
  NU_OK(tc_batchnorm1d_create(&l, 5, NULL));
  NU_OK(tc_sequential_add(seq, "bn1", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(seq, "relu1", l));
  NU_OK(tc_linear_create(&l, 5, 3, NULL));
  NU_OK(tc_sequential_add(seq, "fc2", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(seq, "relu0", l));
  int64_t in[3] = {2, 6, 6};
  tc_set_seed(78);
  return nu_model(b, seq, in, 3, 1);
}

START_TEST(test_residual_fused_same_bits) {
  const tc_backend_iface *cpu = tc_backend_get_iface(be);
  ck_assert_ptr_nonnull(cpu->batchnorm_relu_bwd);
  separate_iface = *cpu;
  separate_iface.name = "cpu-separate";
  separate_iface.batchnorm_relu_fwd_train = NULL;
  separate_iface.batchnorm_relu_fwd_infer = NULL;
  separate_iface.batchnorm_relu_bwd = NULL;
  NU_OK(tc_backend_register(&separate_iface));
  tc_backend *sep = NULL;
  NU_OK(tc_backend_create(&sep, "cpu-separate"));
  fused_vs_separate(sep, TC_SHORTCUT_A_MAXPOOL, 3, 3, 1); /* identity */
  fused_vs_separate(sep, TC_SHORTCUT_A_MAXPOOL, 2, 4, 2);
  fused_vs_separate(sep, TC_SHORTCUT_A_SUBSAMPLE, 2, 4, 2);
  fused_vs_separate(sep, TC_SHORTCUT_B, 2, 4, 2);
  fused_vs_separate(sep, TC_SHORTCUT_NONE, 2, 4, 1);
  tc_model *m[2] = {bn_relu_chain(be), bn_relu_chain(sep)};
  same_bits(m, 5, 2, 5 * 3, 1, "sequential bn + relu");
  tc_backend_destroy(sep);
}
END_TEST

START_TEST(test_options_versions) {
  tc_conv2d_options o;
  NU_OK(tc_conv2d_options_init(&o, sizeof o));
  ck_assert_int_eq(o.bias, 1);
  ck_assert_int_eq(o.stride_h, 1);
  ck_assert_int_eq(tc_conv2d_options_init(&o, sizeof o + 8), TC_EVERSION);
  /* shorter than any released struct (0.1.0 is the first): refused;
   * tests/test_options.c covers older, shorter structs */
  struct {
    size_t struct_size;
    int64_t sh, sw;
  } old = {sizeof old, 2, 2};
  tc_layer *l;
  ck_assert_int_eq(
      tc_conv2d_create(&l, 1, 1, 3, (const tc_conv2d_options *)&old),
      TC_EINVAL);
  o.stride_h = o.stride_w = 2;
  NU_OK(tc_conv2d_create(&l, 1, 1, 3, &o));
  int64_t in[3] = {1, 8, 8}, os[TC_MAX_DIMS];
  tc_model *m = nu_model(be, l, in, 3, 0);
  tc_model_output_shape(m, os);
  ck_assert_int_eq(os[1], 3);                  /* (8 - 3) / 2 + 1, no padding */
  ck_assert_int_eq(tc_model_num_params(m), 2); /* bias by default */
  tc_model_destroy(m);
  struct {
    size_t struct_size;
    int64_t pad[20];
  } big = {sizeof big, {0}};
  ck_assert_int_eq(tc_conv2d_create(&l, 1, 1, 3, (const void *)&big),
                   TC_EVERSION);
  ck_assert_int_eq(tc_conv2d_create(&l, 0, 1, 3, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_linear_create(&l, 3, 0, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_batchnorm2d_create(&l, 0, NULL), TC_EINVAL);
  tc_pool2d_options po = TC_POOL2D_OPTIONS_INIT;
  po.pad_h = 2;
  ck_assert_int_eq(tc_maxpool2d_create(&l, 2, &po), TC_EINVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("layers");
  TCase *tc = tcase_create("layers");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_conv2d_hand);
  tcase_add_test(tc, test_linear_hand);
  tcase_add_test(tc, test_linear_too_large);
  tcase_add_test(tc, test_relu_flatten_identity);
  tcase_add_test(tc, test_pools_hand);
  tcase_add_test(tc, test_batchnorm2d_stats);
  tcase_add_test(tc, test_batchnorm1d_affine);
  tcase_add_test(tc, test_dropout);
  tcase_add_test(tc, test_residual_shortcuts);
  tcase_add_test(tc, test_residual_fused_same_bits);
  tcase_add_test(tc, test_options_versions);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

/*
 * test_cpu_loss.c - the CPU backend's loss slots (softmax cross-entropy with
 * label smoothing, NLL, MSE) and argmax against the naive double
 * references of tests/reference/loss.c: hand-computed cases, random shapes
 * (batch 1, odd class counts), mean vs sum, grad_scale, a finite-difference
 * check of dlogits against the backend's own loss, bad labels (failing, or
 * flagged through label_error), NaN propagation, thread-count independence and
 * argument errors. Called through the public backend table.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/loss.h"
#include "testutil.h"

enum { XENT = 0, NLL = 1, MSE = 2 };

#include "op_fixture.h"

static void setup(void) {
  op_open_cpu();
  ck_assert_ptr_nonnull(it->softmax_xent);
  ck_assert_ptr_nonnull(it->nll);
  ck_assert_ptr_nonnull(it->mse);
  ck_assert_ptr_nonnull(it->argmax);
}
static void teardown(void) {
  op_close();
}

static void *dalloc(size_t bytes) {
  return op_alloc(bytes);
}

static tc_status call(int kind, const tc_loss_args *a) {
  switch (kind) {
  case XENT:
    return it->softmax_xent(ctx, a);
  case NLL:
    return it->nll(ctx, a);
  default:
    return it->mse(ctx, a);
  }
}

static void fill_labels(int32_t *lab, int64_t n, int64_t C, uint64_t seed) {
  tc_rng r;
  tc_rng_init(&r, seed, TC_RNG_STREAM_USER);
  for (int64_t i = 0; i < n; i++)
    lab[i] = (int32_t)tc_rng_below(&r, (uint64_t)C);
}

/* The reference slot (tests/reference/loss.c) of `kind`. */
static tc_status ref_call(int kind, const tc_loss_args *a) {
  switch (kind) {
  case XENT:
    return ref_softmax_xent(a);
  case NLL:
    return ref_nll(a);
  default:
    return ref_mse(a);
  }
}

typedef struct lcase {
  int64_t n, C;
} lcase;

static const lcase shapes[] = {{1, 1},  {1, 10},    {7, 3},      {37, 10},
                               {5, 17}, {128, 100}, {300, 1000}, {2, 2}};

/* Runs the backend and the reference on one configuration. */
static void run_case(int kind, int64_t n, int64_t C, int reduction, float ls,
                     float grad_scale, int with_grad, uint64_t seed) {
  size_t nl = (size_t)(n * C);
  float *x = dalloc(nl * sizeof *x), *t = dalloc(nl * sizeof *t);
  float *g = dalloc(nl * sizeof *g), *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc((size_t)n * sizeof *lab);
  float *want = malloc(nl * sizeof *want), wl = -1.f;
  if (kind == NLL)
    tu_fill_uniform(x, nl, seed, -6.f, -0.01f);
  else
    tu_fill_uniform(x, nl, seed, -4.f, 4.f);
  tu_fill_uniform(t, nl, seed + 1, -1.f, 1.f);
  fill_labels(lab, n, C, seed + 2);
  for (size_t i = 0; i < nl; i++)
    g[i] = 777.f;
  tc_loss_args a = {.struct_size = sizeof a};
  a.n = n, a.classes = C, a.reduction = reduction, a.label_smoothing = ls;
  a.logits = x, a.labels = lab, a.target = t, a.loss = loss;
  a.dlogits = with_grad ? g : NULL, a.grad_scale = grad_scale;
  ck_assert_int_eq(call(kind, &a), TC_OK);
  tc_loss_args r = a; /* the reference, with its gradient always */
  r.loss = &wl, r.dlogits = want;
  ck_assert_int_eq(ref_call(kind, &r), TC_OK);
  ck_assert_msg(fabs(loss[0] - wl) <= 2e-6 * fmax(fabs((double)wl), 1e-3),
                "kind %d n %lld C %lld red %d ls %g: loss %.9g want %.9g", kind,
                (long long)n, (long long)C, reduction, (double)ls,
                (double)loss[0], (double)wl);
  if (with_grad) {
    ck_assert_msg(tu_max_rel_err(g, want, nl) <= 1e-5,
                  "kind %d n %lld C %lld red %d ls %g: dlogits err %.3g", kind,
                  (long long)n, (long long)C, reduction, (double)ls,
                  tu_max_rel_err(g, want, nl));
  } else {
    for (size_t i = 0; i < nl; i++)
      ck_assert_float_eq(g[i], 777.f);
  }
  free(want);
  it->free(ctx, x), it->free(ctx, t), it->free(ctx, g);
  it->free(ctx, loss), it->free(ctx, lab);
}

START_TEST(test_random_vs_reference) {
  static const float ls_vals[] = {0.f, 0.1f, 1.f};
  uint64_t seed = 1000;
  for (int kind = 0; kind < 3; kind++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int red = 0; red < 2; red++)
        for (int l = 0; l < (kind == MSE ? 1 : 3); l++) {
          float gs = (s + (size_t)l) % 2 ? 0.5f : 1.f;
          run_case(kind, shapes[s].n, shapes[s].C, red, ls_vals[l], gs,
                   (s + (size_t)red) % 4 != 3, seed);
          seed += 7;
        }
}
END_TEST

/* Hand-computed: logits [0, ln 3] give softmax [1/4, 3/4]. */
START_TEST(test_xent_hand) {
  float *x = dalloc(4 * sizeof *x), *g = dalloc(4 * sizeof *g);
  float *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc(2 * sizeof *lab);
  x[0] = 0.f, x[1] = logf(3.f), x[2] = 0.f, x[3] = logf(3.f);
  lab[0] = 1, lab[1] = 0;
  tc_loss_args a = {.struct_size = sizeof a};
  a.n = 2, a.classes = 2, a.reduction = TC_REDUCTION_MEAN;
  a.logits = x, a.labels = lab, a.loss = loss, a.dlogits = g;
  a.grad_scale = 1.f;
  ck_assert_int_eq(it->softmax_xent(ctx, &a), TC_OK);
  /* row 0: -ln(3/4); row 1: -ln(1/4); mean */
  ck_assert_double_eq_tol(loss[0], (log(4.0 / 3.0) + log(4.0)) / 2, 1e-6);
  ck_assert_double_eq_tol(g[0], 0.25 / 2, 1e-7);
  ck_assert_double_eq_tol(g[1], -0.25 / 2, 1e-7);
  ck_assert_double_eq_tol(g[2], -0.75 / 2, 1e-7);
  ck_assert_double_eq_tol(g[3], 0.75 / 2, 1e-7);
  /* sum, grad_scale 2 */
  a.reduction = TC_REDUCTION_SUM, a.grad_scale = 2.f;
  ck_assert_int_eq(it->softmax_xent(ctx, &a), TC_OK);
  ck_assert_double_eq_tol(loss[0], log(4.0 / 3.0) + log(4.0), 1e-6);
  ck_assert_double_eq_tol(g[0], 0.5, 1e-7);
  ck_assert_double_eq_tol(g[3], 1.5, 1e-7);
  /* label smoothing 0.2 on row 0 (label 1): q = [0.1, 0.9] */
  a.n = 1, a.label_smoothing = 0.2f, a.grad_scale = 1.f;
  ck_assert_int_eq(it->softmax_xent(ctx, &a), TC_OK);
  double want = -(0.1 * log(0.25) + 0.9 * log(0.75));
  ck_assert_double_eq_tol(loss[0], want, 1e-6);
  ck_assert_double_eq_tol(g[0], 0.25 - 0.1, 1e-6);
  ck_assert_double_eq_tol(g[1], 0.75 - 0.9, 1e-6);
  it->free(ctx, x), it->free(ctx, g), it->free(ctx, loss), it->free(ctx, lab);
}
END_TEST

START_TEST(test_nll_mse_hand) {
  float *x = dalloc(4 * sizeof *x), *t = dalloc(4 * sizeof *t);
  float *g = dalloc(4 * sizeof *g), *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc(2 * sizeof *lab);
  x[0] = logf(0.2f), x[1] = logf(0.8f), x[2] = logf(0.5f), x[3] = logf(0.5f);
  lab[0] = 1, lab[1] = 0;
  tc_loss_args a = {.struct_size = sizeof a};
  a.n = 2, a.classes = 2, a.reduction = TC_REDUCTION_MEAN;
  a.logits = x, a.labels = lab, a.loss = loss, a.dlogits = g;
  a.grad_scale = 1.f;
  ck_assert_int_eq(it->nll(ctx, &a), TC_OK);
  ck_assert_double_eq_tol(loss[0], -(log(0.8) + log(0.5)) / 2, 1e-6);
  ck_assert_float_eq(g[0], 0.f);
  ck_assert_float_eq(g[1], -0.5f);
  ck_assert_float_eq(g[2], -0.5f);
  ck_assert_float_eq(g[3], 0.f);
  /* MSE: x = [1 2; 3 4], t = [0 2; 5 4]: squares 1, 0, 4, 0 */
  for (int i = 0; i < 4; i++)
    x[i] = (float)(i + 1);
  t[0] = 0.f, t[1] = 2.f, t[2] = 5.f, t[3] = 4.f;
  a.target = t, a.labels = NULL;
  ck_assert_int_eq(it->mse(ctx, &a), TC_OK);
  ck_assert_float_eq(loss[0], 1.25f);
  ck_assert_float_eq(g[0], 0.5f); /* 2*1/4 */
  ck_assert_float_eq(g[2], -1.f); /* 2*(-2)/4 */
  ck_assert_float_eq(g[1], 0.f);
  a.reduction = TC_REDUCTION_SUM, a.grad_scale = 0.5f;
  ck_assert_int_eq(it->mse(ctx, &a), TC_OK);
  ck_assert_float_eq(loss[0], 5.f);
  ck_assert_float_eq(g[0], 1.f);
  ck_assert_float_eq(g[2], -2.f);
  it->free(ctx, x), it->free(ctx, t), it->free(ctx, g);
  it->free(ctx, loss), it->free(ctx, lab);
}
END_TEST

/* dlogits against central differences of the backend's own loss. */
START_TEST(test_finite_difference) {
  const int64_t n = 3, C = 5;
  const size_t nl = (size_t)(n * C);
  float *x = dalloc(nl * sizeof *x), *t = dalloc(nl * sizeof *t);
  float *g = dalloc(nl * sizeof *g), *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc((size_t)n * sizeof *lab);
  fill_labels(lab, n, C, 42);
  tu_fill_uniform(t, nl, 43, -1.f, 1.f);
  for (int kind = 0; kind < 3; kind++)
    for (int cfg = 0; cfg < 3; cfg++) {
      if (kind == NLL)
        tu_fill_uniform(x, nl, 44, -3.f, -0.1f);
      else
        tu_fill_uniform(x, nl, 44, -2.f, 2.f);
      tc_loss_args a = {.struct_size = sizeof a};
      a.n = n, a.classes = C, a.logits = x, a.labels = lab, a.target = t;
      a.loss = loss, a.dlogits = g;
      a.reduction = cfg == 1 ? TC_REDUCTION_SUM : TC_REDUCTION_MEAN;
      a.label_smoothing = kind != MSE && cfg == 2 ? 0.3f : 0.f;
      a.grad_scale = 1.f;
      ck_assert_int_eq(call(kind, &a), TC_OK);
      tc_loss_args f = a;
      f.dlogits = NULL;
      const float h = 1e-2f;
      for (size_t i = 0; i < nl; i++) {
        float x0 = x[i];
        x[i] = x0 + h;
        ck_assert_int_eq(call(kind, &f), TC_OK);
        double lp = loss[0];
        x[i] = x0 - h;
        ck_assert_int_eq(call(kind, &f), TC_OK);
        double lm = loss[0];
        x[i] = x0;
        double fd = (lp - lm) / ((double)(x0 + h) - (double)(x0 - h));
        ck_assert_msg(fabs(fd - g[i]) <= 2e-3 + 1e-3 * fabs(fd),
                      "kind %d cfg %d elem %zu: fd %.6g analytic %.6g", kind,
                      cfg, i, fd, (double)g[i]);
      }
    }
  it->free(ctx, x), it->free(ctx, t), it->free(ctx, g);
  it->free(ctx, loss), it->free(ctx, lab);
}
END_TEST

/* Large logits do not overflow (max subtraction); a -inf logit off the
 * label gives a finite loss without smoothing, as in PyTorch. */
START_TEST(test_xent_stability) {
  float *x = dalloc(4 * sizeof *x), *g = dalloc(4 * sizeof *g);
  float *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc(2 * sizeof *lab);
  x[0] = 1000.f, x[1] = 0.f, x[2] = -1000.f, x[3] = 50.f;
  lab[0] = 1, lab[1] = 1;
  tc_loss_args a = {.struct_size = sizeof a};
  a.n = 2, a.classes = 2, a.reduction = TC_REDUCTION_SUM;
  a.logits = x, a.labels = lab, a.loss = loss, a.dlogits = g;
  a.grad_scale = 1.f;
  ck_assert_int_eq(it->softmax_xent(ctx, &a), TC_OK);
  ck_assert_double_eq_tol(loss[0], 1000.0, 1e-3);
  ck_assert_double_eq_tol(g[0], 1.0, 1e-7);
  ck_assert_double_eq_tol(g[1], -1.0, 1e-7);
  ck_assert_double_eq_tol(g[2], 0.0, 1e-7);
  ck_assert_double_eq_tol(g[3], 0.0, 1e-7);
  x[0] = 0.f, x[1] = -INFINITY;
  a.n = 1, lab[0] = 0;
  ck_assert_int_eq(it->softmax_xent(ctx, &a), TC_OK);
  ck_assert_float_eq(loss[0], 0.f);
  ck_assert_float_eq(g[0], 0.f);
  ck_assert_float_eq(g[1], 0.f);
  it->free(ctx, x), it->free(ctx, g), it->free(ctx, loss), it->free(ctx, lab);
}
END_TEST

/* NaN anywhere in the input reaches the loss (the core reports it). */
START_TEST(test_nan_propagates) {
  const int64_t n = 4, C = 6;
  const size_t nl = (size_t)(n * C);
  float *x = dalloc(nl * sizeof *x), *t = dalloc(nl * sizeof *t);
  float *g = dalloc(nl * sizeof *g), *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc((size_t)n * sizeof *lab);
  fill_labels(lab, n, C, 5);
  for (int kind = 0; kind < 3; kind++)
    for (int where = 0; where < 2; where++) {
      tu_fill_uniform(x, nl, 6, -2.f, -0.5f);
      tu_fill_uniform(t, nl, 7, -1.f, 1.f);
      /* on the label of row 2, or off it (NLL and MSE read every element
       * only with smoothing / always; cross-entropy always) */
      int64_t j = where == 0 ? lab[2] : (lab[2] + 1) % C;
      x[2 * C + j] = NAN;
      tc_loss_args a = {.struct_size = sizeof a};
      a.n = n, a.classes = C, a.logits = x, a.labels = lab, a.target = t;
      a.loss = loss, a.dlogits = g, a.grad_scale = 1.f;
      a.label_smoothing = kind == NLL && where == 1 ? 0.1f : 0.f;
      ck_assert_int_eq(call(kind, &a), TC_OK);
      ck_assert_msg(isnan(loss[0]), "kind %d where %d: loss %g", kind, where,
                    (double)loss[0]);
      if (kind != NLL)
        ck_assert(isnan(g[2 * C + j]));
    }
  it->free(ctx, x), it->free(ctx, t), it->free(ctx, g);
  it->free(ctx, loss), it->free(ctx, lab);
}
END_TEST

START_TEST(test_bad_labels) {
  const int64_t n = 4, C = 3;
  float *x = dalloc(12 * sizeof *x), *g = dalloc(12 * sizeof *g);
  float *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc(4 * sizeof *lab);
  tu_fill_uniform(x, 12, 8, -1.f, 1.f);
  static const int32_t bad[] = {-1, 3, 1000, INT32_MIN};
  for (int kind = 0; kind < 2; kind++)
    for (size_t b = 0; b < 4; b++) {
      lab[0] = 0, lab[1] = 1, lab[2] = bad[b], lab[3] = 2;
      loss[0] = 123.f;
      for (int i = 0; i < 12; i++)
        g[i] = 9.f;
      tc_loss_args a = {.struct_size = sizeof a};
      a.n = n, a.classes = C, a.logits = x, a.labels = lab, a.loss = loss;
      a.dlogits = g, a.grad_scale = 1.f;
      tc_clear_error();
      ck_assert_int_eq(call(kind, &a), TC_EINVAL);
      ck_assert_msg(strstr(tc_last_error(), "row 2") != NULL, "message: %s",
                    tc_last_error());
      ck_assert_float_eq(loss[0], 123.f); /* nothing written */
      for (int i = 0; i < 12; i++)
        ck_assert_float_eq(g[i], 9.f);
    }
  it->free(ctx, x), it->free(ctx, g), it->free(ctx, loss), it->free(ctx, lab);
}
END_TEST

/* With label_error set a bad label fails nothing: the flag is raised, the
 * loss is NaN and so are the bad rows' gradients; with valid labels the
 * flag reads 0 and the results are the reference's. */
START_TEST(test_label_error_vs_reference) {
  const int64_t n = 6, C = 4;
  const size_t nl = (size_t)(n * C);
  float *x = dalloc(nl * sizeof *x), *g = dalloc(nl * sizeof *g);
  float *loss = dalloc(sizeof *loss), *want = malloc(nl * sizeof *want);
  int32_t *lab = dalloc((size_t)n * sizeof *lab);
  int32_t *err = dalloc(sizeof *err);
  tu_fill_uniform(x, nl, 15, -2.f, -0.1f);
  for (int kind = 0; kind < 2; kind++)
    for (int bad = 0; bad < 2; bad++) {
      fill_labels(lab, n, C, 16);
      if (bad)
        lab[1] = -1, lab[4] = (int32_t)C;
      tc_loss_args a = {.struct_size = sizeof a};
      a.n = n, a.classes = C, a.logits = x, a.labels = lab, a.loss = loss;
      a.dlogits = g, a.grad_scale = 1.f, a.label_smoothing = 0.1f;
      a.reduction = TC_REDUCTION_MEAN, a.label_error = err;
      *err = -7;
      ck_assert_int_eq(call(kind, &a), TC_OK);
      float wl = 0.f;
      int32_t werr = -7;
      tc_loss_args r = a;
      r.loss = &wl, r.dlogits = want, r.label_error = &werr;
      ck_assert_int_eq(ref_call(kind, &r), TC_OK);
      ck_assert_int_eq(*err, werr);
      ck_assert_int_eq(werr, bad);
      if (bad) {
        ck_assert(isnan(loss[0]) && isnan(wl));
        for (int64_t j = 0; j < C; j++)
          ck_assert(isnan(g[1 * C + j]) && isnan(g[4 * C + j]));
      } else {
        ck_assert_msg(fabs(loss[0] - wl) <= 2e-6 * fabs((double)wl),
                      "kind %d: loss %.9g want %.9g", kind, (double)loss[0],
                      (double)wl);
        TU_ASSERT_CLOSE(g, want, nl, 1e-5);
      }
    }
  it->free(ctx, x), it->free(ctx, g), it->free(ctx, loss);
  it->free(ctx, lab), it->free(ctx, err);
  free(want);
}
END_TEST

static void loss_with_threads(int threads, int kind, float *out_loss,
                              float *out_g, int64_t n, int64_t C) {
  ck_assert_int_eq(tc_set_num_threads(threads), TC_OK);
  op_open_cpu();
  size_t nl = (size_t)(n * C);
  float *x = dalloc(nl * sizeof *x), *t = dalloc(nl * sizeof *t);
  float *g = dalloc(nl * sizeof *g), *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc((size_t)n * sizeof *lab);
  tu_fill_uniform(x, nl, 9, -3.f, 0.f);
  tu_fill_uniform(t, nl, 10, -1.f, 1.f);
  fill_labels(lab, n, C, 11);
  tc_loss_args a = {.struct_size = sizeof a};
  a.n = n, a.classes = C, a.logits = x, a.labels = lab, a.target = t;
  a.loss = loss, a.dlogits = g, a.grad_scale = 1.f;
  a.label_smoothing = kind == XENT ? 0.1f : 0.f;
  ck_assert_int_eq(call(kind, &a), TC_OK);
  *out_loss = loss[0];
  memcpy(out_g, g, nl * sizeof *g);
  it->free(ctx, x), it->free(ctx, t), it->free(ctx, g);
  it->free(ctx, loss), it->free(ctx, lab);
  op_destroy();
}

/* Enough rows for several chunks; the bits do not depend on threads. */
START_TEST(test_thread_independent) {
  op_destroy();
  const int64_t n = 5001, C = 10;
  size_t nl = (size_t)(n * C);
  float *g1 = malloc(nl * sizeof *g1), *g3 = malloc(nl * sizeof *g3);
  for (int kind = 0; kind < 3; kind++) {
    float l1, l3;
    loss_with_threads(1, kind, &l1, g1, n, C);
    loss_with_threads(3, kind, &l3, g3, n, C);
    ck_assert_msg(memcmp(&l1, &l3, sizeof l1) == 0, "kind %d: %.9g vs %.9g",
                  kind, (double)l1, (double)l3);
    ck_assert(memcmp(g1, g3, nl * sizeof *g1) == 0);
  }
  free(g1);
  free(g3);
  tc_set_num_threads(0);
  op_open_cpu();
}
END_TEST

static void expect_status(int kind, const tc_loss_args *a, tc_status want,
                          const float *loss) {
  tc_clear_error();
  ck_assert_int_eq(call(kind, a), want);
  ck_assert_msg(strlen(tc_last_error()) > 0, "no message");
  if (loss)
    ck_assert_float_eq(loss[0], -5.f);
}

START_TEST(test_loss_errors) {
  float *x = dalloc(12 * sizeof *x), *t = dalloc(12 * sizeof *t);
  float *loss = dalloc(sizeof *loss);
  int32_t *lab = dalloc(4 * sizeof *lab);
  tu_fill_uniform(x, 12, 12, -1.f, 1.f);
  tu_fill_uniform(t, 12, 13, -1.f, 1.f);
  fill_labels(lab, 4, 3, 14);
  loss[0] = -5.f;
  tc_loss_args ok = {.struct_size = sizeof ok};
  ok.n = 4, ok.classes = 3, ok.logits = x, ok.labels = lab, ok.target = t;
  ok.loss = loss, ok.grad_scale = 1.f;
  tc_loss_args a;
  for (int kind = 0; kind < 3; kind++) {
    expect_status(kind, NULL, TC_EINVAL, loss);
    /* args that end before label_error */
    a = ok, a.struct_size = offsetof(tc_loss_args, label_error);
    expect_status(kind, &a, TC_EINVAL, loss);
    a = ok, a.n = 0;
    expect_status(kind, &a, TC_EINVAL, loss);
    a = ok, a.n = -1;
    expect_status(kind, &a, TC_EINVAL, loss);
    a = ok, a.classes = 0;
    expect_status(kind, &a, TC_EINVAL, loss);
    a = ok, a.reduction = TC_REDUCTION_NONE;
    expect_status(kind, &a, TC_EUNSUPPORTED, loss);
    a = ok, a.reduction = 7;
    expect_status(kind, &a, TC_EINVAL, loss);
    a = ok, a.logits = NULL;
    expect_status(kind, &a, TC_EINVAL, loss);
    a = ok, a.loss = NULL;
    expect_status(kind, &a, TC_EINVAL, NULL);
    if (kind == MSE) {
      a = ok, a.target = NULL;
      expect_status(kind, &a, TC_EINVAL, loss);
    } else {
      a = ok, a.labels = NULL;
      expect_status(kind, &a, TC_EINVAL, loss);
      a = ok, a.label_smoothing = -0.1f;
      expect_status(kind, &a, TC_EINVAL, loss);
      a = ok, a.label_smoothing = 1.5f;
      expect_status(kind, &a, TC_EINVAL, loss);
      a = ok, a.label_smoothing = NAN;
      expect_status(kind, &a, TC_EINVAL, loss);
    }
    tc_clear_error();
    ck_assert_int_eq(call(kind, &ok), TC_OK);
    ck_assert(isfinite(loss[0]));
    loss[0] = -5.f;
  }
  it->free(ctx, x), it->free(ctx, t), it->free(ctx, loss), it->free(ctx, lab);
}
END_TEST

/* ---- argmax ---- */

START_TEST(test_argmax) {
  static const int64_t cfg[][2] = {
      {1, 1}, {1, 10}, {37, 10}, {5000, 7}, {3, 1000}};
  for (size_t c = 0; c < 5; c++) {
    int64_t n = cfg[c][0], C = cfg[c][1];
    size_t nl = (size_t)(n * C);
    float *s = dalloc(nl * sizeof *s);
    int32_t *lab = dalloc((size_t)n * sizeof *lab);
    int32_t *pred = dalloc((size_t)n * sizeof *pred);
    tu_fill_uniform(s, nl, 20 + c, -1.f, 1.f);
    fill_labels(lab, n, C, 30 + c);
    if (n > 3 && C > 2) {
      for (int64_t j = 0; j < C; j++) /* all ties: the first wins */
        s[1 * C + j] = 0.5f;
      s[2 * C + 1] = 2.f, s[2 * C + C - 1] = 2.f; /* two maxima */
      s[3 * C + 2] = NAN, s[3 * C + 0] = 5.f;     /* NaN wins */
      s[3 * C + C - 1] = NAN;
    }
    int64_t correct = -1;
    tc_argmax_args a = {.struct_size = sizeof a};
    a.n = n, a.classes = C, a.scores = s, a.labels = lab, a.pred = pred;
    a.host_correct = &correct;
    ck_assert_int_eq(it->argmax(ctx, &a), TC_OK);
    int64_t want = -1;
    int32_t *wpred = malloc((size_t)n * sizeof *wpred);
    tc_argmax_args r = a; /* the reference (tests/reference/loss.c) */
    r.pred = wpred, r.host_correct = &want;
    ref_argmax(&r);
    for (int64_t i = 0; i < n; i++)
      ck_assert_int_eq(pred[i], wpred[i]);
    free(wpred);
    if (n > 3 && C > 2) { /* the reference's rules, by hand */
      ck_assert_int_eq(pred[1], 0);
      ck_assert_int_eq(pred[2], 1);
      ck_assert_int_eq(pred[3], 2);
    }
    ck_assert_int_eq(correct, want);
    /* pred optional; no labels: the count is not written */
    a.pred = NULL;
    correct = -1;
    ck_assert_int_eq(it->argmax(ctx, &a), TC_OK);
    ck_assert_int_eq(correct, want);
    a.labels = NULL, correct = -1;
    ck_assert_int_eq(it->argmax(ctx, &a), TC_OK);
    ck_assert_int_eq(correct, -1);
    it->free(ctx, s), it->free(ctx, lab), it->free(ctx, pred);
  }
}
END_TEST

START_TEST(test_argmax_errors) {
  float s[6] = {0};
  int32_t lab[2] = {0, 0};
  int64_t correct = -1;
  tc_argmax_args ok = {.struct_size = sizeof ok};
  ok.n = 2, ok.classes = 3, ok.scores = s, ok.labels = lab;
  ok.host_correct = &correct;
  tc_argmax_args a;
  ck_assert_int_eq(it->argmax(ctx, NULL), TC_EINVAL);
  a = ok, a.struct_size = 8;
  ck_assert_int_eq(it->argmax(ctx, &a), TC_EINVAL);
  a = ok, a.n = -1;
  ck_assert_int_eq(it->argmax(ctx, &a), TC_EINVAL);
  a = ok, a.classes = 0;
  ck_assert_int_eq(it->argmax(ctx, &a), TC_EINVAL);
  a = ok, a.scores = NULL;
  ck_assert_int_eq(it->argmax(ctx, &a), TC_EINVAL);
  ck_assert_int_eq(correct, -1);
  a = ok, a.n = 0, a.scores = NULL; /* empty batch: count 0 */
  ck_assert_int_eq(it->argmax(ctx, &a), TC_OK);
  ck_assert_int_eq(correct, 0);
  ck_assert_int_eq(it->argmax(ctx, &ok), TC_OK);
  ck_assert_int_eq(correct, 2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_loss");
  TCase *tc = tcase_create("loss");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_random_vs_reference);
  tcase_add_test(tc, test_xent_hand);
  tcase_add_test(tc, test_nll_mse_hand);
  tcase_add_test(tc, test_finite_difference);
  tcase_add_test(tc, test_xent_stability);
  tcase_add_test(tc, test_nan_propagates);
  tcase_add_test(tc, test_bad_labels);
  tcase_add_test(tc, test_thread_independent);
  tcase_add_test(tc, test_loss_errors);
  tcase_add_test(tc, test_label_error_vs_reference);
  tcase_add_test(tc, test_argmax);
  tcase_add_test(tc, test_argmax_errors);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

/*
 * test_sched.c - learning-rate schedulers against torch.optim.lr_scheduler:
 * the lr of two groups (base 0.1 and 0.02) over 30 steps for StepLR,
 * MultiStepLR (unsorted, repeated milestones), CosineAnnealingLR (past
 * t_max), LinearLR (warmup and decay) and SequentialLR, read from
 * tests/golden/optim_sched.safetensors (tests/golden/generate_optim.py);
 * per-iteration and per-epoch stepping, resume through set_last_epoch, and
 * bad arguments.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "golden_util.h"
#include "nn_util.h"
#include "testutil.h"

#define STEPS 30

static tc_backend *be;
static tc_tensor *p[2], *g[2];

static void setup(void) {
  be = nu_cpu();
  int64_t s = 3;
  for (int i = 0; i < 2; i++) {
    p[i] = nu_tensor(be, &s, 1, NULL);
    g[i] = nu_tensor(be, &s, 1, NULL);
  }
}

static void teardown(void) {
  for (int i = 0; i < 2; i++) {
    tc_tensor_destroy(p[i]);
    tc_tensor_destroy(g[i]);
  }
  tc_backend_destroy(be);
}

/* SGD over two parameters in two groups of base lr 0.1 and 0.02, as the
 * generator's optimizer. */
static tc_optimizer *two_groups(void) {
  tc_sgd_options o = TC_SGD_OPTIONS_INIT;
  o.lr = 0.1f;
  o.momentum = 0.9f;
  tc_optimizer *opt = NULL;
  NU_OK(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &o));
  o.lr = 0.02f;
  int64_t grp = -1;
  NU_OK(tc_optimizer_add_group_sgd(opt, &o, &grp));
  ck_assert_int_eq(grp, 1);
  NU_OK(tc_optimizer_set_param_group(opt, 1, 1));
  return opt;
}

/* Builds the scheduler a golden config describes. */
static tc_scheduler *build(tc_optimizer *opt, const cJSON *c) {
  const char *kind = golden_str(c, "kind");
  tc_scheduler *s = NULL;
  if (strcmp(kind, "step") == 0) {
    NU_OK(tc_scheduler_create_step(&s, opt, (int64_t)golden_num(c, "step_size"),
                                   golden_num(c, "gamma")));
  } else if (strcmp(kind, "multistep") == 0) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "milestones");
    int64_t ms[16], n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, m) ms[n++] = (int64_t)e->valuedouble;
    NU_OK(
        tc_scheduler_create_multistep(&s, opt, ms, n, golden_num(c, "gamma")));
  } else if (strcmp(kind, "cosine") == 0) {
    NU_OK(tc_scheduler_create_cosine(&s, opt, (int64_t)golden_num(c, "t_max"),
                                     golden_num(c, "eta_min")));
  } else if (strcmp(kind, "linear") == 0) {
    NU_OK(tc_scheduler_create_linear(&s, opt, golden_num(c, "start_factor"),
                                     golden_num(c, "end_factor"),
                                     (int64_t)golden_num(c, "total_iters")));
  } else {
    ck_assert_str_eq(kind, "sequential");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "milestones");
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(c, "children");
    int64_t ms[16], n = 0, nc = 0;
    tc_scheduler *kids[16];
    const cJSON *e;
    cJSON_ArrayForEach(e, m) ms[n++] = (int64_t)e->valuedouble;
    cJSON_ArrayForEach(e, ch) kids[nc++] = build(opt, e);
    ck_assert_int_eq(nc, n + 1);
    NU_OK(tc_scheduler_create_sequential(&s, opt, kids, nc, ms));
  }
  return s;
}

/* Base lrs are float options (0.1f vs torch's 0.1: 1.5e-8 relative). */
static int close_lr(double got, double want) {
  return fabs(got - want) <= 1e-12 + 1e-7 * fabs(want);
}

/* Checks the optimizer's and the scheduler's lr of both groups against
 * row t of the golden table. */
static void check_row(tc_optimizer *opt, tc_scheduler *s, const double *tab,
                      int t, const char *name) {
  for (int grp = 0; grp < 2; grp++) {
    double lr = -1, slr = -1, want = tab[2 * t + grp];
    NU_OK(tc_optimizer_get_lr(opt, grp, &lr));
    NU_OK(tc_scheduler_get_lr(s, grp, &slr));
    ck_assert_msg(close_lr(lr, want), "%s t=%d group %d: lr %.17g, torch %.17g",
                  name, t, grp, lr, want);
    ck_assert_msg(close_lr(slr, want),
                  "%s t=%d group %d: scheduler lr %.17g, torch %.17g", name, t,
                  grp, slr, want);
  }
}

static const char *const cases[] = {"step",          "multistep", "cosine",
                                    "cosine_long",   "linear",    "linear_down",
                                    "warmup_cosine", "three"};
#define NCASES ((int)(sizeof cases / sizeof *cases))

/* The golden table of a case: (STEPS + 1, 2) doubles. */
static void load_case(tc_safetensors *st, const char *name, double *tab) {
  char key[64];
  snprintf(key, sizeof key, "lr.%s", name);
  NU_OK(tc_safetensors_read_raw(st, key, tab, (STEPS + 1) * 2 * sizeof *tab));
}

START_TEST(golden_sequences) {
  const char *name = cases[_i];
  tc_safetensors *st = golden_open("optim_sched");
  cJSON *cfg = golden_config(st);
  double tab[(STEPS + 1) * 2];
  load_case(st, name, tab);
  tc_optimizer *opt = two_groups();
  tc_scheduler *s = build(opt, cJSON_GetObjectItemCaseSensitive(cfg, name));
  ck_assert_int_eq(tc_scheduler_get_last_epoch(s), 0);
  check_row(opt, s, tab, 0, name);
  for (int t = 1; t <= STEPS; t++) {
    NU_OK(tc_scheduler_step(s));
    ck_assert_int_eq(tc_scheduler_get_last_epoch(s), t);
    check_row(opt, s, tab, t, name);
  }
  /* the base lr is untouched by scheduling */
  double base;
  NU_OK(tc_optimizer_get_base_lr(opt, 1, &base));
  ck_assert(fabs(base - 0.02) < 1e-8);
  /* destroying the scheduler leaves the last lr */
  double before, after;
  NU_OK(tc_optimizer_get_lr(opt, 0, &before));
  tc_scheduler_destroy(s);
  NU_OK(tc_optimizer_get_lr(opt, 0, &after));
  ck_assert(before == after);
  tc_optimizer_destroy(opt);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
}
END_TEST

/* Per-iteration stepping: a schedule over 30 iterations of 4-iteration
 * epochs is the same table, read per iteration; per-epoch stepping holds the
 * lr through an epoch. */
START_TEST(per_iteration_and_epoch) {
  tc_safetensors *st = golden_open("optim_sched");
  cJSON *cfg = golden_config(st);
  double tab[(STEPS + 1) * 2];
  load_case(st, "warmup_cosine", tab);
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(cfg, "warmup_cosine");

  tc_optimizer *opt = two_groups();
  tc_scheduler *s = build(opt, c);
  int it = 0;
  for (int epoch = 0; it < STEPS; epoch++)
    for (int k = 0; k < 4 && it < STEPS; k++, it++) {
      check_row(opt, s, tab, it, "per-iteration");
      NU_OK(tc_scheduler_step(s));
    }
  check_row(opt, s, tab, STEPS, "per-iteration");
  tc_scheduler_destroy(s);
  tc_optimizer_destroy(opt);

  opt = two_groups();
  s = build(opt, c);
  for (int epoch = 0; epoch < 8; epoch++) {
    for (int k = 0; k < 4; k++)
      check_row(opt, s, tab, epoch, "per-epoch");
    NU_OK(tc_scheduler_step(s));
  }
  ck_assert_int_eq(tc_scheduler_get_last_epoch(s), 8);
  tc_scheduler_destroy(s);
  tc_optimizer_destroy(opt);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
}
END_TEST

/* A run restored at last_epoch k continues bit-identically (every case,
 * several resume points, including inside a SequentialLR's later child). */
START_TEST(resume) {
  const char *name = cases[_i];
  tc_safetensors *st = golden_open("optim_sched");
  cJSON *cfg = golden_config(st);
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(cfg, name);
  static const int points[] = {0, 1, 5, 13, 22};
  for (size_t k = 0; k < sizeof points / sizeof *points; k++) {
    tc_optimizer *a = two_groups(), *b = two_groups();
    tc_scheduler *sa = build(a, c), *sb = build(b, c);
    for (int t = 0; t < points[k]; t++)
      NU_OK(tc_scheduler_step(sa));
    /* b: a fresh scheduler, stepped somewhere else first */
    NU_OK(tc_scheduler_step(sb));
    NU_OK(tc_scheduler_set_last_epoch(sb, tc_scheduler_get_last_epoch(sa)));
    ck_assert_int_eq(tc_scheduler_get_last_epoch(sb), points[k]);
    for (int t = points[k]; t <= STEPS; t++) {
      for (int grp = 0; grp < 2; grp++) {
        double la, lb;
        NU_OK(tc_optimizer_get_lr(a, grp, &la));
        NU_OK(tc_optimizer_get_lr(b, grp, &lb));
        ck_assert_msg(la == lb, "%s resumed at %d, t=%d: %.17g vs %.17g", name,
                      points[k], t, la, lb);
      }
      NU_OK(tc_scheduler_step(sa));
      NU_OK(tc_scheduler_step(sb));
    }
    tc_scheduler_destroy(sa);
    tc_scheduler_destroy(sb);
    tc_optimizer_destroy(a);
    tc_optimizer_destroy(b);
  }
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
}
END_TEST

/* Edge cases of the formulas. */
START_TEST(formulas) {
  tc_optimizer *opt = two_groups();
  tc_scheduler *s = NULL;
  double lr;
  /* no milestones: constant */
  NU_OK(tc_scheduler_create_multistep(&s, opt, NULL, 0, 0.1));
  for (int t = 0; t < 5; t++) {
    NU_OK(tc_optimizer_get_lr(opt, 0, &lr));
    ck_assert(close_lr(lr, 0.1f));
    NU_OK(tc_scheduler_step(s));
  }
  tc_scheduler_destroy(s);
  /* gamma 0 after the first step_size */
  NU_OK(tc_scheduler_create_step(&s, opt, 2, 0.0));
  NU_OK(tc_scheduler_set_last_epoch(s, 2));
  NU_OK(tc_optimizer_get_lr(opt, 1, &lr));
  ck_assert(lr == 0.0);
  NU_OK(tc_scheduler_set_last_epoch(s, 1));
  NU_OK(tc_optimizer_get_lr(opt, 1, &lr));
  ck_assert(close_lr(lr, 0.02f));
  tc_scheduler_destroy(s);
  /* a sequential scheduler with one child is that child */
  tc_scheduler *kid = NULL;
  NU_OK(tc_scheduler_create_cosine(&kid, opt, 4, 0.0));
  NU_OK(tc_scheduler_create_sequential(&s, opt, &kid, 1, NULL));
  NU_OK(tc_scheduler_set_last_epoch(s, 2));
  NU_OK(tc_optimizer_get_lr(opt, 0, &lr));
  ck_assert(close_lr(lr, 0.05f));
  /* its child cannot be stepped or reset on its own */
  ck_assert_int_eq(tc_scheduler_step(kid), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_set_last_epoch(kid, 1), TC_EINVAL);
  tc_scheduler_destroy(s); /* frees kid too (ASan checks) */
  /* a group added later follows the schedule from its own base lr */
  NU_OK(tc_scheduler_create_step(&s, opt, 1, 0.5));
  tc_sgd_options o = TC_SGD_OPTIONS_INIT;
  o.lr = 0.4f;
  int64_t grp;
  NU_OK(tc_optimizer_add_group_sgd(opt, &o, &grp));
  NU_OK(tc_scheduler_step(s));
  NU_OK(tc_optimizer_get_lr(opt, grp, &lr));
  ck_assert(close_lr(lr, 0.2f));
  tc_scheduler_destroy(s);
  tc_optimizer_destroy(opt);
}
END_TEST

START_TEST(bad_args) {
  tc_optimizer *opt = two_groups(), *other = two_groups();
  tc_scheduler *s = NULL, *a = NULL, *b = NULL, *x = NULL;
  double lr;
  int64_t ms[3] = {3, 3, 7}, neg[2] = {2, -1};
  /* NULL */
  ck_assert_int_eq(tc_scheduler_create_step(NULL, opt, 1, 0.1), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_step(&s, NULL, 1, 0.1), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_cosine(&s, NULL, 3, 0), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_linear(&s, NULL, 0.5, 1, 3), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_multistep(&s, NULL, ms, 3, 0.1),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_step(NULL), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_get_lr(NULL, 0, &lr), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_get_last_epoch(NULL), -1);
  ck_assert_int_eq(tc_scheduler_set_last_epoch(NULL, 0), TC_EINVAL);
  tc_scheduler_destroy(NULL);
  /* StepLR */
  ck_assert_int_eq(tc_scheduler_create_step(&s, opt, 0, 0.1), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_step(&s, opt, 1, -0.1), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_step(&s, opt, 1, NAN), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_step(&s, opt, 1, INFINITY), TC_EINVAL);
  /* MultiStepLR */
  ck_assert_int_eq(tc_scheduler_create_multistep(&s, opt, NULL, 2, 0.1),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_multistep(&s, opt, ms, -1, 0.1),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_multistep(&s, opt, neg, 2, 0.1),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_multistep(&s, opt, ms, 3, NAN),
                   TC_EINVAL);
  /* CosineAnnealingLR */
  ck_assert_int_eq(tc_scheduler_create_cosine(&s, opt, 0, 0), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_cosine(&s, opt, 5, -1e-3), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_cosine(&s, opt, 5, NAN), TC_EINVAL);
  /* LinearLR */
  ck_assert_int_eq(tc_scheduler_create_linear(&s, opt, 0, 1, 3), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_linear(&s, opt, 1.5, 1, 3), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_linear(&s, opt, 0.5, 1.5, 3), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_linear(&s, opt, 0.5, -0.1, 3),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_linear(&s, opt, NAN, 1, 3), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_linear(&s, opt, 0.5, 1, 0), TC_EINVAL);
  ck_assert_ptr_null(s);
  /* no failed creation touched the lr */
  NU_OK(tc_optimizer_get_lr(opt, 0, &lr));
  ck_assert(close_lr(lr, 0.1f));

  /* SequentialLR */
  NU_OK(tc_scheduler_create_linear(&a, opt, 0.5, 1, 3));
  NU_OK(tc_scheduler_create_cosine(&b, opt, 5, 0));
  NU_OK(tc_scheduler_create_step(&x, other, 2, 0.5));
  tc_scheduler *kids[2] = {a, b}, *dup[2] = {a, a}, *mix[2] = {a, x};
  int64_t m0 = 0, m3 = 3;
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, opt, NULL, 2, &m3),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, opt, kids, 0, &m3),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, opt, kids, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, opt, kids, 2, &m0),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, opt, dup, 2, &m3),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, opt, mix, 2, &m3),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, NULL, kids, 2, &m3),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_create_sequential(NULL, opt, kids, 2, &m3),
                   TC_EINVAL);
  tc_scheduler *three[3] = {a, b, x};
  int64_t dec[2] = {4, 4};
  ck_assert_int_eq(tc_scheduler_create_sequential(&s, opt, three, 3, dec),
                   TC_EINVAL);
  ck_assert_ptr_null(s);
  /* the failed calls left the children usable */
  NU_OK(tc_scheduler_step(a));
  NU_OK(tc_scheduler_create_sequential(&s, opt, kids, 2, &m3));
  /* owned children cannot join another sequential scheduler */
  tc_scheduler *again = NULL;
  ck_assert_int_eq(tc_scheduler_create_sequential(&again, opt, kids, 2, &m3),
                   TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_step(a), TC_EINVAL);
  /* get_lr / set_last_epoch */
  ck_assert_int_eq(tc_scheduler_get_lr(s, 2, &lr), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_get_lr(s, -1, &lr), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_get_lr(s, 0, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_set_last_epoch(s, -1), TC_EINVAL);
  ck_assert_int_eq(tc_scheduler_get_last_epoch(s), 0);
  ck_assert_ptr_nonnull(tc_last_error());
  ck_assert(strlen(tc_last_error()) > 0);
  tc_scheduler_destroy(s);
  tc_scheduler_destroy(x);
  tc_optimizer_destroy(opt);
  tc_optimizer_destroy(other);
}
END_TEST

/* last_epoch stops at 2^53 (exact as a double) rather than overflowing:
 * refused with the limit named, the scheduler unchanged. */
START_TEST(epoch_limit) {
  tc_optimizer *opt = two_groups();
  tc_scheduler *s = NULL;
  NU_OK(tc_scheduler_create_step(&s, opt, 2, 0.5));
  ck_assert_int_eq(tc_scheduler_set_last_epoch(s, INT64_MAX), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "2^53"));
  ck_assert_int_eq(tc_scheduler_get_last_epoch(s), 0);
  const int64_t limit = (int64_t)1 << 53;
  NU_OK(tc_scheduler_set_last_epoch(s, limit - 1));
  NU_OK(tc_scheduler_step(s));
  ck_assert_int_eq(tc_scheduler_step(s), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "2^53"));
  ck_assert_int_eq(tc_scheduler_get_last_epoch(s), limit);
  tc_scheduler_destroy(s);
  tc_optimizer_destroy(opt);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("sched");
  TCase *tc = tcase_create("sched");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, golden_sequences, 0, NCASES);
  tcase_add_test(tc, per_iteration_and_epoch);
  tcase_add_loop_test(tc, resume, 0, NCASES);
  tcase_add_test(tc, formulas);
  tcase_add_test(tc, bad_args);
  tcase_add_test(tc, epoch_limit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return tu_run_suite(suite());
}

/*
 * test_backend_threads.c - one CPU backend shared by several threads
 * (docs/backends.md, "Threads"): two threads, each training its own
 * conv + batch norm + linear model with its own loss and optimizer on the
 * same backend, end with parameters bit-identical to the same training run
 * alone. Also run under ThreadSanitizer by .ci/run.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nn_util.h"
#include "testutil.h"

#define BATCH 8
#define STEPS 10

typedef struct trainer {
  tc_backend *be;
  tc_model *m;
  tc_loss *loss;
  tc_optimizer *opt;
  tc_tensor *x, *y;
  float *params;
  int64_t n_params;
  tc_status st;
} trainer;

static void trainer_build(trainer *t, tc_backend *be, uint64_t data_seed) {
  memset(t, 0, sizeof *t);
  t->be = be;
  tc_set_seed(11);
  tc_layer *seq, *l;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_conv2d_create(&l, 3, 8, 3, NULL));
  NU_OK(tc_sequential_add(seq, "conv1", l));
  NU_OK(tc_batchnorm2d_create(&l, 8, NULL));
  NU_OK(tc_sequential_add(seq, "bn1", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(seq, "relu1", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(seq, "flat", l));
  NU_OK(tc_linear_create(&l, 8 * 10 * 10, 10, NULL));
  NU_OK(tc_sequential_add(seq, "fc", l));
  const int64_t in[3] = {3, 12, 12};
  t->m = nu_model(be, seq, in, 3, 0);
  NU_OK(tc_loss_create(&t->loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  tc_sgd_options o;
  NU_OK(tc_sgd_options_init(&o, sizeof o));
  o.lr = 0.05f;
  o.momentum = 0.9f;
  NU_OK(tc_optimizer_create_sgd_for_model(&t->opt, t->m, &o));
  float xd[BATCH * 3 * 12 * 12];
  tu_fill_uniform(xd, sizeof xd / sizeof *xd, data_seed, -1.f, 1.f);
  int32_t yd[BATCH];
  for (int i = 0; i < BATCH; i++)
    yd[i] = (int32_t)((i * 7 + (int)data_seed) % 10);
  const int64_t xs[4] = {BATCH, 3, 12, 12};
  t->x = nu_tensor(be, xs, 4, xd);
  t->y = nu_labels(be, BATCH, yd);
  t->n_params = tc_tensor_numel(tc_model_params_flat(t->m));
  t->params = calloc((size_t)t->n_params, sizeof(float));
  ck_assert_ptr_nonnull(t->params);
}

/* STEPS training steps; the first failure is kept in t->st (Check's
 * asserts belong to the main thread). */
static void *trainer_run(void *arg) {
  trainer *t = arg;
  tc_status st = TC_OK;
  for (int s = 0; s < STEPS && st == TC_OK; s++) {
    tc_tensor *out;
    float loss;
    st = tc_model_forward(t->m, t->x, &out);
    if (st == TC_OK)
      st = tc_loss_compute(t->loss, out, t->y, &loss,
                           tc_model_output_grad(t->m));
    if (st == TC_OK)
      st = tc_optimizer_zero_grad(t->opt);
    if (st == TC_OK)
      st = tc_model_backward(t->m, tc_model_output_grad(t->m));
    if (st == TC_OK)
      st = tc_optimizer_step(t->opt);
  }
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(tc_model_params_flat(t->m), t->params,
                                (size_t)t->n_params * sizeof(float));
  t->st = st;
  return NULL;
}

static void trainer_free(trainer *t) {
  tc_tensor_destroy(t->x);
  tc_tensor_destroy(t->y);
  tc_optimizer_destroy(t->opt);
  tc_loss_destroy(t->loss);
  tc_model_destroy(t->m);
  free(t->params);
}

static void shared_backend(int pool_threads) {
  tc_backend_options bo;
  NU_OK(tc_backend_options_init(&bo, sizeof bo));
  bo.num_threads = pool_threads;
  tc_backend *be = NULL;
  NU_OK(tc_backend_create_ex(&be, "cpu", &bo));

  /* references: each training alone */
  trainer ref[2];
  for (int i = 0; i < 2; i++) {
    trainer_build(&ref[i], be, 100 + (uint64_t)i);
    trainer_run(&ref[i]);
    ck_assert_int_eq(ref[i].st, TC_OK);
  }

  trainer t[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    trainer_build(&t[i], be, 100 + (uint64_t)i);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, trainer_run, &t[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    ck_assert_msg(t[i].st == TC_OK, "thread %d: %s", i,
                  tc_status_string(t[i].st));
    ck_assert_msg(!memcmp(t[i].params, ref[i].params,
                          (size_t)t[i].n_params * sizeof(float)),
                  "thread %d: parameters differ from the run alone", i);
    trainer_free(&t[i]);
    trainer_free(&ref[i]);
  }
  tc_backend_destroy(be);
}

START_TEST(shared_one_thread_pool) {
  shared_backend(1);
}
END_TEST

START_TEST(shared_two_thread_pool) {
  shared_backend(2);
}
END_TEST

START_TEST(shared_four_thread_pool) {
  shared_backend(4);
}
END_TEST

int main(void) {
  Suite *s = suite_create("backend_threads");
  TCase *tc = tcase_create("shared");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, shared_one_thread_pool);
  tcase_add_test(tc, shared_two_thread_pool);
  tcase_add_test(tc, shared_four_thread_pool);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

/*
 * test_sync_bn.c - synchronised batch norm (lib/nn/batchnorm_sync.c): a
 * model conv - BatchNorm2d - ReLU - flatten - linear - BatchNorm1d whose
 * batch norms use the global batch's statistics, run as 2 ranks (threads
 * of one process, each with its own CPU backend, over a group
 * communicator) on halves of a batch of 8, must give what one model gives
 * on the whole batch: outputs, input gradients, running statistics, and
 * the ranks' parameter gradients summed. Also: an uneven split (3 + 5),
 * the same bits of statistics for 2 ranks and for 1, a group of 1 equal to
 * the local path, a global batch of 1 refused, and evaluation mode (running
 * statistics, no collective) unchanged by sync.
 *
 * Sync is switched on through the internal tc__nn_model_set_sync_bn, as the
 * data-parallel wrapper does, so the layer is tested on its own.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/nn/nn_internal.h"
#include "nn_util.h"
#include "testutil.h"

#define NB 8           /* global batch */
#define IN (3 * 6 * 6) /* per-sample input */
#define OUT 5          /* per-sample output */
#define MAX_STATE 64   /* floats of running statistics */
#define SEED 20240611u

static const int64_t in_shape[3] = {3, 6, 6};

/* conv1 (3->4, 3x3) - bn1 - relu1 - flatten - fc (64->5) - bn2 */
static tc_layer *net(void) {
  tc_layer *seq = NULL, *l = NULL;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_conv2d_create(&l, 3, 4, 3, NULL));
  NU_OK(tc_sequential_add(seq, "conv1", l));
  NU_OK(tc_batchnorm2d_create(&l, 4, NULL));
  NU_OK(tc_sequential_add(seq, "bn1", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(seq, "relu1", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(seq, "flatten", l));
  NU_OK(tc_linear_create(&l, 4 * 4 * 4, OUT, NULL));
  NU_OK(tc_sequential_add(seq, "fc", l));
  NU_OK(tc_batchnorm1d_create(&l, OUT, NULL));
  NU_OK(tc_sequential_add(seq, "bn2", l));
  return seq;
}

/* The global seed is process-wide: models are made on the main thread. */
static tc_model *make_model(tc_backend *be) {
  tc_set_seed(SEED);
  return nu_model(be, net(), in_shape, 3, 1);
}

/* What a run leaves: rows of the global batch, and the model state. */
typedef struct result {
  float y[NB * OUT], dx[NB * IN];
  float *grads; /* summed over ranks */
  int64_t ngrads;
  float state[MAX_STATE]; /* float buffers, concatenated */
  int64_t nstate, nbt[4];
} result;

static void result_free(result *r) {
  free(r->grads);
}

/* Concatenates the float buffers; num_batches_tracked into nbt. */
static void read_state(tc_model *m, result *r) {
  int64_t nb = tc_model_num_buffers(m), k = 0, f = 0;
  for (int64_t i = 0; i < nb; i++) {
    tc_tensor *t = NULL;
    NU_OK(tc_model_get_buffer(m, i, NULL, &t));
    int64_t ne = tc_tensor_numel(t);
    if (tc_tensor_dtype(t) == TC_INT64) {
      ck_assert_int_lt(k, 4);
      NU_OK(tc_tensor_copy_to_host(t, &r->nbt[k++], 8));
      continue;
    }
    ck_assert_int_le(f + ne, MAX_STATE);
    nu_get(t, r->state + f);
    f += ne;
  }
  r->nstate = f;
}

/* One rank: forward and backward of rows [off, off + n). */
typedef struct job {
  tc_model *m;
  int64_t off, n;
  const float *x, *dy;
  float *y, *dx, *grads; /* y, dx: global rows; grads: this rank's */
  tc_status st;
  char err[512];
} job;

static tc_status run_job(job *j) {
  tc_backend *be = tc_model_backend(j->m);
  tc_tensor *x = NULL, *dy = NULL, *out = NULL;
  int64_t xs[4] = {j->n, 3, 6, 6}, ds[2] = {j->n, OUT};
  tc_status st = tc_tensor_create(&x, be, xs, 4, TC_FLOAT32);
  if (st == TC_OK)
    st = tc_tensor_create(&dy, be, ds, 2, TC_FLOAT32);
  if (st == TC_OK)
    st = tc_tensor_copy_from_host(x, j->x + j->off * IN,
                                  (size_t)(j->n * IN) * 4);
  if (st == TC_OK)
    st = tc_tensor_copy_from_host(dy, j->dy + j->off * OUT,
                                  (size_t)(j->n * OUT) * 4);
  if (st == TC_OK)
    st = tc_model_forward(j->m, x, &out);
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(out, j->y + j->off * OUT,
                                (size_t)(j->n * OUT) * 4);
  if (st == TC_OK)
    st = tc_model_backward(j->m, dy);
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(tc_model_input_grad(j->m), j->dx + j->off * IN,
                                (size_t)(j->n * IN) * 4);
  tc_tensor *g = tc_model_grads_flat(j->m);
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(g, j->grads, (size_t)tc_tensor_numel(g) * 4);
  tc_tensor_destroy(x);
  tc_tensor_destroy(dy);
  return st;
}

static void *rank_main(void *arg) {
  job *j = arg;
  j->st = run_job(j);
  if (j->st != TC_OK)
    snprintf(j->err, sizeof j->err, "%s", tc_last_error());
  return NULL;
}

static float xdata[NB * IN], dydata[NB * OUT];

static void fill_data(void) {
  tu_fill_uniform(xdata, NB * IN, 11, -1.f, 3.f);
  tu_fill_uniform(dydata, NB * OUT, 12, -1.f, 1.f);
}

/* One model, no sync, the whole batch. */
static void run_local(result *r) {
  tc_backend *be = nu_cpu();
  tc_model *m = make_model(be);
  r->ngrads = tc_tensor_numel(tc_model_grads_flat(m));
  r->grads = calloc((size_t)r->ngrads, sizeof(float));
  ck_assert_ptr_nonnull(r->grads);
  job j = {m, 0, NB, xdata, dydata, r->y, r->dx, r->grads, TC_OK, ""};
  rank_main(&j);
  ck_assert_msg(j.st == TC_OK, "local: %s", j.err);
  read_state(m, r);
  tc_model_destroy(m);
  tc_backend_destroy(be);
}

/* nr ranks with counts[r] samples each (in order), sync on. The ranks'
 * running statistics must agree bit for bit; rank 0's are returned. */
static void run_sync(int nr, const int64_t *counts, result *r) {
  tc_backend *be[4];
  tc_model *m[4];
  tc_comm *comm[4];
  job j[4];
  pthread_t th[4];
  ck_assert_int_le(nr, 4);
  NU_OK(tc_comm_create_group(comm, nr));
  for (int k = 0; k < nr; k++) {
    be[k] = nu_cpu();
    m[k] = make_model(be[k]);
    tc__nn_model_set_sync_bn(m[k], comm[k]);
  }
  r->ngrads = tc_tensor_numel(tc_model_grads_flat(m[0]));
  r->grads = calloc((size_t)r->ngrads, sizeof(float));
  ck_assert_ptr_nonnull(r->grads);
  int64_t off = 0;
  for (int k = 0; k < nr; k++) {
    j[k] = (job){m[k], off,   counts[k], xdata, dydata,
                 r->y, r->dx, NULL,      TC_OK, ""};
    j[k].grads = calloc((size_t)r->ngrads, sizeof(float));
    ck_assert_ptr_nonnull(j[k].grads);
    off += counts[k];
  }
  ck_assert_int_eq(off, NB);
  for (int k = 0; k < nr; k++)
    ck_assert_int_eq(pthread_create(&th[k], NULL, rank_main, &j[k]), 0);
  for (int k = 0; k < nr; k++)
    pthread_join(th[k], NULL);
  for (int k = 0; k < nr; k++) {
    ck_assert_msg(j[k].st == TC_OK, "rank %d: %s", k, j[k].err);
    for (int64_t i = 0; i < r->ngrads; i++)
      r->grads[i] += j[k].grads[i];
    free(j[k].grads);
    result rk;
    read_state(m[k], k == 0 ? r : &rk);
    if (k > 0) {
      ck_assert_int_eq(rk.nstate, r->nstate);
      ck_assert_msg(memcmp(rk.state, r->state, (size_t)r->nstate * 4) == 0,
                    "rank %d's running statistics differ from rank 0's", k);
    }
  }
  for (int k = 0; k < nr; k++) {
    tc_model_destroy(m[k]);
    tc_backend_destroy(be[k]);
    tc_comm_destroy(comm[k]);
  }
}

/* |got - want| <= max(1e-5 |want|, 1e-6) everywhere. */
static void assert_close(const char *what, const float *got, const float *want,
                         int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]);
    double tol = fmax(1e-5 * fabs((double)want[i]), 1e-6);
    ck_assert_msg(d <= tol, "%s[%lld]: %.9g vs %.9g (diff %.3g)", what,
                  (long long)i, (double)got[i], (double)want[i], d);
  }
}

static void assert_same_run(const result *got, const result *want) {
  assert_close("y", got->y, want->y, NB * OUT);
  assert_close("dx", got->dx, want->dx, NB * IN);
  ck_assert_int_eq(got->ngrads, want->ngrads);
  assert_close("grads", got->grads, want->grads, want->ngrads);
  ck_assert_int_eq(got->nstate, want->nstate);
  assert_close("running stats", got->state, want->state, want->nstate);
  for (int k = 0; k < 2; k++)
    ck_assert_int_eq(got->nbt[k], want->nbt[k]);
}

static void split_case(const int64_t *counts) {
  fill_data();
  result ref = {0}, got = {0};
  run_local(&ref);
  run_sync(2, counts, &got);
  assert_same_run(&got, &ref);
  ck_assert_int_eq(got.nbt[0], 1);
  result_free(&ref);
  result_free(&got);
}

START_TEST(test_even_split) {
  split_case((const int64_t[]){4, 4});
}
END_TEST

START_TEST(test_uneven_split) {
  split_case((const int64_t[]){3, 5});
}
END_TEST

/* The statistics are summed per sample in global sample order, so the
 * number of ranks does not change their bits; a group of 1 is the local
 * path within float rounding. */
START_TEST(test_bits_independent_of_ranks) {
  fill_data();
  result one = {0}, two = {0}, uneven = {0}, ref = {0};
  run_sync(1, (const int64_t[]){NB}, &one);
  run_sync(2, (const int64_t[]){4, 4}, &two);
  run_sync(2, (const int64_t[]){3, 5}, &uneven);
  run_local(&ref);
  ck_assert_int_eq(one.nstate, two.nstate);
  ck_assert_msg(memcmp(one.state, two.state, (size_t)one.nstate * 4) == 0,
                "running statistics: 2 ranks differ from 1");
  ck_assert_msg(memcmp(one.state, uneven.state, (size_t)one.nstate * 4) == 0,
                "running statistics: 3 + 5 differs from 1 rank");
  assert_same_run(&one, &ref);
  result_free(&one);
  result_free(&two);
  result_free(&uneven);
  result_free(&ref);
}
END_TEST

/* Batch statistics of one value per channel are refused on the global
 * batch: 1 sample on 1 rank (BatchNorm1d). */
START_TEST(test_global_batch_of_one) {
  tc_backend *be = nu_cpu();
  tc_model *m = make_model(be);
  tc_comm *c = NULL;
  NU_OK(tc_comm_create_group(&c, 1));
  tc__nn_model_set_sync_bn(m, c);
  int64_t xs[4] = {1, 3, 6, 6};
  tc_tensor *x = nu_tensor(be, xs, 4, NULL);
  NU_OK(tc_tensor_fill(x, 0.5));
  tc_tensor *out = NULL;
  ck_assert_int_eq(tc_model_forward(m, x, &out), TC_ESHAPE);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "more than 1 value"));
  tc_tensor_destroy(x);
  tc_model_destroy(m);
  tc_comm_destroy(c);
  tc_backend_destroy(be);
}
END_TEST

/* Host staging grows only with the batch: once warm, a synchronised
 * training step allocates nothing (a group of 1, so one thread). */
START_TEST(test_steady_state_allocates_nothing) {
  fill_data();
  tu_alloc_install();
  tc_backend *be = nu_cpu();
  tc_model *m = make_model(be);
  tc_comm *c = NULL;
  NU_OK(tc_comm_create_group(&c, 1));
  tc__nn_model_set_sync_bn(m, c);
  int64_t xs[4] = {NB, 3, 6, 6}, ds[2] = {NB, OUT};
  tc_tensor *x = nu_tensor(be, xs, 4, xdata);
  tc_tensor *dy = nu_tensor(be, ds, 2, dydata);
  for (int step = 0; step < 3; step++) {
    if (step == 2)
      tu_alloc_fail_at(0, 0); /* counts from here */
    tc_tensor *out = NULL;
    NU_OK(tc_model_forward(m, x, &out));
    NU_OK(tc_model_backward(m, dy));
  }
  ck_assert_int_eq(tu_alloc_count(), 0);
  tc_tensor_destroy(x);
  tc_tensor_destroy(dy);
  tc_model_destroy(m);
  tc_comm_destroy(c);
  tc_backend_destroy(be);
  tu_alloc_uninstall();
}
END_TEST

/* Evaluation mode uses the running statistics and no collective: rank 0
 * of a group of 2 runs alone (a collective would wait for rank 1 until
 * the test times out) and matches a model without sync bit for bit. */
START_TEST(test_eval_ignores_sync) {
  fill_data();
  tc_backend *be = nu_cpu();
  tc_model *plain = make_model(be), *synced = make_model(be);
  tc_comm *c[2];
  NU_OK(tc_comm_create_group(c, 2));
  tc__nn_model_set_sync_bn(synced, c[0]);
  static const float rm[4] = {0.5f, -0.25f, 1.f, 0.f};
  static const float rv[4] = {2.f, 0.5f, 1.5f, 0.75f};
  tc_model *ms[2] = {plain, synced};
  float y[2][NB * OUT], dx[2][NB * IN];
  int64_t xs[4] = {NB, 3, 6, 6}, ds[2] = {NB, OUT};
  for (int k = 0; k < 2; k++) {
    nu_set(ms[k], "bn1.running_mean", rm);
    nu_set(ms[k], "bn1.running_var", rv);
    NU_OK(tc_model_set_training(ms[k], 0));
    tc_tensor *x = nu_tensor(be, xs, 4, xdata);
    tc_tensor *dy = nu_tensor(be, ds, 2, dydata);
    nu_forward(ms[k], x, NULL, y[k]);
    NU_OK(tc_model_backward(ms[k], dy));
    nu_get(tc_model_input_grad(ms[k]), dx[k]);
    tc_tensor_destroy(x);
    tc_tensor_destroy(dy);
  }
  ck_assert(memcmp(y[0], y[1], sizeof y[0]) == 0);
  ck_assert(memcmp(dx[0], dx[1], sizeof dx[0]) == 0);
  tc_model_destroy(plain);
  tc_model_destroy(synced);
  tc_comm_destroy(c[0]);
  tc_comm_destroy(c[1]);
  tc_backend_destroy(be);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sync_bn");
  TCase *tc = tcase_create("sync_bn");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_even_split);
  tcase_add_test(tc, test_uneven_split);
  tcase_add_test(tc, test_bits_independent_of_ranks);
  tcase_add_test(tc, test_global_batch_of_one);
  tcase_add_test(tc, test_steady_state_allocates_nothing);
  tcase_add_test(tc, test_eval_ignores_sync);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

/*
 * test_step_sync.c - a training step without host synchronisation: a
 * backend table that wraps the CPU's, counting the calls that make a GPU
 * backend wait for the device (synchronize, copy_d2h), shows that a steady
 * state step (forward, tc_loss_compute_async, backward, optimizer step) of a
 * conv+bn+relu+pool+linear model makes none, so a CUDA backend could
 * capture it whole in a graph. Also: tc_loss_compute_async's value, flag
 * and gradient against tc_loss_compute's bits, num_batches_tracked kept on
 * the device and through the host fallback (a wrapper without counter_add).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const tc_backend_iface *cpu_it;
static tc_backend_iface counted;  /* every CPU slot, syncs counted */
static tc_backend_iface no_count; /* the same without counter_add */
static int n_sync, n_d2h, n_h2d;

static tc_status c_sync(void *ctx) {
  n_sync++;
  return cpu_it->synchronize(ctx);
}
/* not a wait, but a CUDA graph cannot capture it (the host source is read
 * at replay time), so a capturable step must not make it either */
static tc_status c_h2d(void *ctx, void *d, const void *s, size_t b) {
  n_h2d++;
  return cpu_it->copy_h2d(ctx, d, s, b);
}
static tc_status c_d2h(void *ctx, void *d, const void *s, size_t b) {
  n_d2h++;
  return cpu_it->copy_d2h(ctx, d, s, b);
}

/* Registers the two wrappers once (the registry is process-wide). */
static void register_wrappers(void) {
  if (cpu_it)
    return;
  tc_backend *cpu = NULL;
  ck_assert_int_eq(tc_backend_create(&cpu, "cpu"), TC_OK);
  cpu_it = tc_backend_get_iface(cpu);
  tc_backend_destroy(cpu); /* the table is static, it outlives the handle */
  counted = *cpu_it;
  counted.name = "counted";
  counted.synchronize = c_sync;
  counted.copy_d2h = c_d2h;
  counted.copy_h2d = c_h2d;
  no_count = counted;
  no_count.name = "counted_nocounter";
  no_count.counter_add = NULL;
  ck_assert_int_eq(tc_backend_register(&counted), TC_OK);
  ck_assert_int_eq(tc_backend_register(&no_count), TC_OK);
}

enum { N = 6, CLS = 5 };

typedef struct rig {
  tc_backend *be;
  tc_model *m;
  tc_tensor *x, *y;
  tc_loss *loss;
  tc_optimizer *opt;
} rig;

/* conv(3->4, 3x3, pad 1) bn relu maxpool(2) flatten linear(4*4*4 -> 5) on
 * an 8x8 input, with the same seed each time */
static void rig_make(rig *r, const char *backend) {
  memset(r, 0, sizeof *r);
  register_wrappers();
  ck_assert_int_eq(tc_backend_create(&r->be, backend), TC_OK);
  tc_set_seed(1234);
  tc_layer *net = NULL, *l = NULL;
  ck_assert_int_eq(tc_sequential_create(&net), TC_OK);
  tc_conv2d_options co = TC_CONV2D_OPTIONS_INIT;
  co.pad_h = co.pad_w = 1;
  ck_assert_int_eq(tc_conv2d_create(&l, 3, 4, 3, &co), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "conv", l), TC_OK);
  ck_assert_int_eq(tc_batchnorm2d_create(&l, 4, NULL), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "bn", l), TC_OK);
  ck_assert_int_eq(tc_relu_create(&l), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "relu", l), TC_OK);
  ck_assert_int_eq(tc_maxpool2d_create(&l, 2, NULL), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "pool", l), TC_OK);
  ck_assert_int_eq(tc_flatten_create(&l), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "flatten", l), TC_OK);
  ck_assert_int_eq(tc_linear_create(&l, 64, CLS, NULL), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "fc", l), TC_OK);
  int64_t in_shape[3] = {3, 8, 8};
  ck_assert_msg(tc_model_create(&r->m, r->be, net, in_shape, 3, NULL) == TC_OK,
                "%s", tc_last_error());
  int64_t xs[4] = {N, 3, 8, 8}, ys[1] = {N};
  ck_assert_int_eq(tc_tensor_create(&r->x, r->be, xs, 4, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&r->y, r->be, ys, 1, TC_INT32), TC_OK);
  float xh[N * 3 * 8 * 8];
  tu_fill_uniform(xh, N * 3 * 8 * 8, 99, -1.f, 1.f);
  int32_t yh[N];
  for (int i = 0; i < N; i++)
    yh[i] = (i * 3 + 1) % CLS;
  ck_assert_int_eq(tc_tensor_copy_from_host(r->x, xh, sizeof xh), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_from_host(r->y, yh, sizeof yh), TC_OK);
  ck_assert_int_eq(tc_loss_create(&r->loss, r->be, TC_LOSS_CROSS_ENTROPY, NULL),
                   TC_OK);
  tc_sgd_options so = TC_SGD_OPTIONS_INIT;
  so.lr = 0.1f, so.momentum = 0.9f;
  ck_assert_int_eq(tc_optimizer_create_sgd_for_model(&r->opt, r->m, &so),
                   TC_OK);
}

static void rig_free(rig *r) {
  tc_optimizer_destroy(r->opt);
  tc_loss_destroy(r->loss);
  tc_tensor_destroy(r->x);
  tc_tensor_destroy(r->y);
  tc_model_destroy(r->m);
  tc_backend_destroy(r->be);
}

/* One step; async: through tc_loss_compute_async (value read afterwards,
 * outside the counted region, by the caller). */
static void rig_step(rig *r, int async, float *value) {
  tc_tensor *out = NULL;
  ck_assert_int_eq(tc_model_zero_grad(r->m), TC_OK);
  ck_assert_msg(tc_model_forward(r->m, r->x, &out) == TC_OK, "%s",
                tc_last_error());
  tc_tensor *g = tc_model_output_grad(r->m);
  if (async)
    ck_assert_msg(tc_loss_compute_async(r->loss, out, r->y, NULL, g) == TC_OK,
                  "%s", tc_last_error());
  else
    ck_assert_msg(tc_loss_compute(r->loss, out, r->y, value, g) == TC_OK, "%s",
                  tc_last_error());
  ck_assert_msg(tc_model_backward(r->m, g) == TC_OK, "%s", tc_last_error());
  ck_assert_msg(tc_optimizer_step(r->opt) == TC_OK, "%s", tc_last_error());
}

static int64_t nbt_of(rig *r) {
  tc_tensor *t = NULL;
  ck_assert_int_eq(tc_model_find_state(r->m, "bn.num_batches_tracked", &t),
                   TC_OK);
  int64_t v = -1;
  ck_assert_int_eq(tc_tensor_copy_to_host(t, &v, sizeof v), TC_OK);
  return v;
}

static void params_of(rig *r, float *out, size_t cap) {
  tc_tensor *p = tc_model_params_flat(r->m);
  ck_assert_ptr_nonnull(p);
  size_t n = (size_t)tc_tensor_numel(p);
  ck_assert_uint_le(n, cap);
  ck_assert_int_eq(tc_tensor_copy_to_host(p, out, n * sizeof *out), TC_OK);
}

START_TEST(test_steady_step_has_no_sync) {
  rig r;
  rig_make(&r, "counted");
  float v;
  rig_step(&r, 0, &v); /* plans activations, optimizer state */
  rig_step(&r, 1, NULL);
  ck_assert_int_eq(tc_loss_read(r.loss, &v), TC_OK);
  /* the reading loss does sync: the counting sees it */
  n_sync = n_d2h = 0;
  rig_step(&r, 0, &v);
  ck_assert_int_gt(n_sync + n_d2h, 0);
  for (int s = 0; s < 3; s++) {
    n_sync = n_d2h = n_h2d = 0;
    rig_step(&r, 1, NULL);
    ck_assert_msg(n_sync == 0 && n_d2h == 0 && n_h2d == 0,
                  "step %d: %d synchronize, %d copy_d2h, %d copy_h2d calls", s,
                  n_sync, n_d2h, n_h2d);
  }
  ck_assert_int_eq(tc_loss_read(r.loss, &v), TC_OK);
  ck_assert(isfinite(v));
  ck_assert_int_eq(nbt_of(&r), 6);
  rig_free(&r);
}
END_TEST

/* The same steps with the reading and the asynchronous loss, on the CPU,
 * and through the host fallback of num_batches_tracked: the same bits. */
START_TEST(test_async_same_bits) {
  const char *names[3] = {"cpu", "counted", "counted_nocounter"};
  float p[3][512], loss[3][4];
  memset(p, 0, sizeof p);
  for (int k = 0; k < 3; k++) {
    rig r;
    rig_make(&r, names[k]);
    for (int s = 0; s < 4; s++) {
      if (k == 0) {
        rig_step(&r, 0, &loss[k][s]);
        ck_assert_int_eq(tc_loss_read(r.loss, &loss[k][s]), TC_ESTATE);
      } else {
        rig_step(&r, 1, NULL);
        ck_assert_int_eq(tc_loss_read(r.loss, &loss[k][s]), TC_OK);
      }
    }
    ck_assert_int_eq(nbt_of(&r), 4);
    params_of(&r, p[k], 512);
    rig_free(&r);
  }
  for (int k = 1; k < 3; k++) {
    ck_assert_mem_eq(loss[0], loss[k], sizeof loss[0]);
    ck_assert_mem_eq(p[0], p[k], sizeof p[0]);
  }
}
END_TEST

/* Without counter_add (host path) the counter takes copies; the loaded
 * value of a checkpoint-like write is continued either way. */
START_TEST(test_nbt_paths) {
  const char *names[2] = {"counted", "counted_nocounter"};
  for (int k = 0; k < 2; k++) {
    rig r;
    rig_make(&r, names[k]);
    float v;
    rig_step(&r, 0, &v);
    tc_tensor *t = NULL;
    ck_assert_int_eq(tc_model_find_state(r.m, "bn.num_batches_tracked", &t),
                     TC_OK);
    int64_t loaded = 41;
    ck_assert_int_eq(tc_tensor_copy_from_host(t, &loaded, sizeof loaded),
                     TC_OK);
    n_sync = n_d2h = 0;
    rig_step(&r, 1, NULL);
    ck_assert_int_eq(n_d2h, k == 0 ? 0 : 1);
    ck_assert_int_eq(nbt_of(&r), 42);
    rig_free(&r);
  }
}
END_TEST

/* A bad label: found on the device, reported by tc_loss_read. */
START_TEST(test_async_bad_label) {
  rig r;
  rig_make(&r, "counted");
  int32_t bad[N], good[N];
  for (int i = 0; i < N; i++)
    bad[i] = good[i] = i % CLS;
  bad[N - 1] = CLS;
  int64_t four = 4;
  tc_tensor *out = NULL, *lt = NULL;
  ck_assert_int_eq(tc_model_forward(r.m, r.x, &out), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&lt, r.be, &four, 1, TC_FLOAT32), TC_OK);
  tc_tensor *v1 = NULL;
  int64_t one = 1;
  ck_assert_int_eq(tc_tensor_create(&v1, r.be, &one, 1, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_loss_compute_async(r.loss, out, r.y, v1, NULL), TC_OK);
  float dev = 0.f, host = 0.f;
  ck_assert_int_eq(tc_loss_read(r.loss, &host), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(v1, &dev, sizeof dev), TC_OK);
  ck_assert_mem_eq(&dev, &host, sizeof dev);
  ck_assert_int_eq(tc_loss_compute_async(r.loss, out, r.y, lt, NULL),
                   TC_ESHAPE);
  ck_assert_int_eq(tc_tensor_copy_from_host(r.y, bad, sizeof bad), TC_OK);
  tc_status st =
      tc_loss_compute_async(r.loss, out, r.y, NULL, tc_model_output_grad(r.m));
  ck_assert_int_eq(st, TC_OK);
  float v = 7.f;
  ck_assert_int_eq(tc_loss_read(r.loss, &v), TC_EINVAL);
  ck_assert(v == 7.f);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "label"));
  /* a good batch clears the flag */
  ck_assert_int_eq(tc_tensor_copy_from_host(r.y, good, sizeof good), TC_OK);
  ck_assert_int_eq(tc_loss_compute_async(r.loss, out, r.y, NULL, NULL), TC_OK);
  ck_assert_int_eq(tc_loss_read(r.loss, &v), TC_OK);
  tc_tensor_destroy(v1);
  tc_tensor_destroy(lt);
  rig_free(&r);
}
END_TEST

/* NaN input: no check before, TC_ENUMERIC at the read. */
START_TEST(test_async_nan) {
  rig r;
  rig_make(&r, "counted");
  tc_tensor *out = NULL;
  ck_assert_int_eq(tc_model_forward(r.m, r.x, &out), TC_OK);
  float logits[N * CLS];
  ck_assert_int_eq(tc_tensor_copy_to_host(out, logits, sizeof logits), TC_OK);
  logits[7] = NAN;
  ck_assert_int_eq(tc_tensor_copy_from_host(out, logits, sizeof logits), TC_OK);
  ck_assert_int_eq(tc_loss_compute_async(r.loss, out, r.y, NULL, NULL), TC_OK);
  float v;
  ck_assert_int_eq(tc_loss_read(r.loss, &v), TC_ENUMERIC);
  ck_assert_int_eq(tc_loss_read(NULL, &v), TC_EINVAL);
  ck_assert_int_eq(tc_loss_read(r.loss, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_loss_compute_async(NULL, out, r.y, NULL, NULL),
                   TC_EINVAL);
  rig_free(&r);
}
END_TEST

/* counter_add and the loss slots' label_error through the table. */
START_TEST(test_cpu_slots) {
  register_wrappers();
  tc_backend *be = NULL;
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  const tc_backend_iface *it = tc_backend_get_iface(be);
  void *cx = tc_backend_get_context(be);
  int64_t c[3] = {1, -5, INT64_MAX};
  tc_counter_args ca = {sizeof ca, 3, 2, c};
  ck_assert_int_eq(it->counter_add(cx, &ca), TC_OK);
  ck_assert_int_eq(c[0], 3);
  ck_assert_int_eq(c[1], -3);
  ck_assert_int_eq(c[2], INT64_MIN + 1); /* wraps, never traps */
  ca.n = -1;
  ck_assert_int_eq(it->counter_add(cx, &ca), TC_EINVAL);
  ca.n = 1, ca.x = NULL;
  ck_assert_int_eq(it->counter_add(cx, &ca), TC_EINVAL);
  ca.struct_size = 8;
  ck_assert_int_eq(it->counter_add(cx, &ca), TC_EINVAL);

  float logits[4] = {0.5f, -1.f, 2.f, 0.f}, loss = 0.f, dl[4];
  int32_t labels[2] = {1, 0}, flag = 9;
  tc_loss_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.n = 2, a.classes = 2, a.logits = logits, a.labels = labels;
  a.loss = &loss, a.dlogits = dl, a.grad_scale = 1.f;
  ck_assert_int_eq(it->softmax_xent(cx, &a), TC_OK);
  labels[1] = 2;
  /* no label_error: the bad label fails the call */
  ck_assert_int_eq(it->softmax_xent(cx, &a), TC_EINVAL);
  a.label_error = &flag;
  ck_assert_int_eq(it->softmax_xent(cx, &a), TC_OK);
  ck_assert_int_eq(flag, 1);
  ck_assert(isnan(loss) && isnan(dl[0]) && isnan(dl[3]));
  labels[1] = 1;
  ck_assert_int_eq(it->softmax_xent(cx, &a), TC_OK);
  ck_assert_int_eq(flag, 0);
  ck_assert(isfinite(loss));
  tc_backend_destroy(be);
}
END_TEST

int main(void) {
  Suite *s = suite_create("step_sync");
  TCase *tc = tcase_create("step_sync");
  tcase_add_test(tc, test_steady_step_has_no_sync);
  tcase_add_test(tc, test_async_same_bits);
  tcase_add_test(tc, test_nbt_paths);
  tcase_add_test(tc, test_async_bad_label);
  tcase_add_test(tc, test_async_nan);
  tcase_add_test(tc, test_cpu_slots);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

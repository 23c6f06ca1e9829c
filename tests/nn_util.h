/*
 * nn_util.h - small helpers for the nn suites (test_layers, test_model,
 * test_loss, test_gradcheck): a CPU backend, models wrapped around one
 * layer, and host <-> tensor copies by state-dict name. Header-only.
 */
#ifndef TC_NN_UTIL_H
#define TC_NN_UTIL_H

#include <check.h>
#include <string.h>

#include <libtinycnn.h>

#define NU_OK(call)                                                            \
  do {                                                                         \
    tc_status s_ = (call);                                                     \
    ck_assert_msg(s_ == TC_OK, "%s -> %s: %s", #call, tc_status_string(s_),    \
                  tc_last_error());                                            \
  } while (0)

static inline tc_backend *nu_cpu(void) {
  tc_backend *be = NULL;
  NU_OK(tc_backend_create(&be, "cpu"));
  return be;
}

/* A model around `root` for per-sample input (c, h, w) (h/w 0: fewer
 * dims). */
static inline tc_model *nu_model(tc_backend *be, tc_layer *root,
                                 const int64_t *shape, int ndim,
                                 int input_grad) {
  tc_model_options o = TC_MODEL_OPTIONS_INIT;
  o.input_grad = input_grad;
  tc_model *m = NULL;
  NU_OK(tc_model_create(&m, be, root, shape, ndim, &o));
  return m;
}

static inline tc_tensor *nu_tensor(tc_backend *be, const int64_t *shape,
                                   int ndim, const float *data) {
  tc_tensor *t = NULL;
  NU_OK(tc_tensor_create(&t, be, shape, ndim, TC_FLOAT32));
  if (data)
    NU_OK(tc_tensor_copy_from_host(t, data, (size_t)tc_tensor_numel(t) * 4));
  return t;
}

static inline tc_tensor *nu_labels(tc_backend *be, int64_t n,
                                   const int32_t *data) {
  tc_tensor *t = NULL;
  NU_OK(tc_tensor_create(&t, be, &n, 1, TC_INT32));
  NU_OK(tc_tensor_copy_from_host(t, data, (size_t)n * 4));
  return t;
}

static inline void nu_get(const tc_tensor *t, float *out) {
  NU_OK(tc_tensor_copy_to_host(t, out, (size_t)tc_tensor_numel(t) * 4));
}

static inline void nu_set(tc_model *m, const char *name, const float *v) {
  tc_tensor *t = NULL;
  NU_OK(tc_model_find_state(m, name, &t));
  NU_OK(tc_tensor_copy_from_host(t, v, (size_t)tc_tensor_numel(t) * 4));
}

static inline void nu_read(tc_model *m, const char *name, float *v) {
  tc_tensor *t = NULL;
  NU_OK(tc_model_find_state(m, name, &t));
  nu_get(t, v);
}

/* Forward of host data x (n, per-sample...) into host `y` (may be NULL);
 * returns the output tensor. */
static inline tc_tensor *nu_forward(tc_model *m, tc_tensor *x, const float *xd,
                                    float *y) {
  if (xd)
    NU_OK(tc_tensor_copy_from_host(x, xd, (size_t)tc_tensor_numel(x) * 4));
  tc_tensor *out = NULL;
  NU_OK(tc_model_forward(m, x, &out));
  if (y)
    nu_get(out, y);
  return out;
}

#endif

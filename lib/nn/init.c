/*
 * init.c - torch.nn.init's initialisers over the library's Philox streams,
 * and the defaults of Conv2d / Linear (kaiming_uniform with a = sqrt(5),
 * i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and a bias of the same bound).
 * Numbers are drawn on the host in row-major order and copied to the
 * device, so every backend gets the same values.
 */
#include <math.h>

#include "nn_internal.h"

TC_API double tc_init_calculate_gain(tc_nonlinearity nl, double param) {
  switch (nl) {
  case TC_NONLINEARITY_LINEAR:
  case TC_NONLINEARITY_SIGMOID:
    return 1.0;
  case TC_NONLINEARITY_RELU:
    return sqrt(2.0);
  case TC_NONLINEARITY_LEAKY_RELU:
    return sqrt(2.0 / (1.0 + param * param));
  case TC_NONLINEARITY_TANH:
    return 5.0 / 3.0;
  }
  return -1.0;
}

TC_API tc_status tc_init_fans(const tc_tensor *t, int64_t *out_fan_in,
                              int64_t *out_fan_out) {
  static const char fn[] = "tc_init_fans";
  TC__CHECK_NULL(t, fn);
  if (t->ndim < 2)
    return tc__error(TC_EINVAL,
                     "%s: fans need at least 2 dimensions, the "
                     "tensor has %d",
                     fn, t->ndim);
  int64_t rf = 1;
  for (int i = 2; i < t->ndim; i++)
    rf *= t->shape[i];
  if (out_fan_in)
    *out_fan_in = t->shape[1] * rf;
  if (out_fan_out)
    *out_fan_out = t->shape[0] * rf;
  return TC_OK;
}

enum { DIST_UNIFORM, DIST_NORMAL };

/* Fills float32 `t`: uniform on [a, b) or normal with mean a, std b. */
static tc_status draw(tc_tensor *t, int dist, double a, double b, tc_rng *rng,
                      const char *fn) {
  if (!t || !rng)
    return tc__error(TC_EINVAL, "%s: tensor and rng must not be NULL", fn);
  if (t->dtype != TC_FLOAT32)
    return tc__error(TC_EINVAL, "%s: tensor must be float32", fn);
  if (!isfinite(a) || !isfinite(b) || (dist == DIST_NORMAL && b < 0))
    return tc__error(TC_EINVAL, "%s: bad distribution parameters (%g, %g)", fn,
                     a, b);
  if (t->numel == 0)
    return TC_OK;
  float *h = tc__malloc((size_t)t->numel * sizeof *h);
  if (!h)
    return tc__oom(fn);
  for (int64_t i = 0; i < t->numel; i++)
    h[i] = dist == DIST_UNIFORM
               ? (float)(a + (b - a) * (double)tc_rng_uniform(rng))
               : (float)(a + b * (double)tc_rng_normal(rng));
  tc_status st = tc_tensor_copy_from_host(t, h, (size_t)t->numel * sizeof *h);
  tc__free(h);
  return st;
}

static tc_status fan_of(const tc_tensor *t, tc_fan_mode mode, int64_t *fan,
                        const char *fn) {
  if (!t)
    return tc__error(TC_EINVAL, "%s: argument 't' is NULL", fn);
  int64_t fi, fo;
  tc_status st = tc_init_fans(t, &fi, &fo);
  if (st != TC_OK)
    return st;
  if (mode != TC_FAN_IN && mode != TC_FAN_OUT)
    return tc__error(TC_EINVAL, "%s: unknown fan mode %d", fn, (int)mode);
  *fan = mode == TC_FAN_IN ? fi : fo;
  if (*fan == 0)
    return tc__error(TC_EINVAL, "%s: zero fan on an empty tensor", fn);
  return TC_OK;
}

static tc_status kaiming(tc_tensor *t, double a, tc_fan_mode mode,
                         tc_nonlinearity nl, tc_rng *rng, int dist,
                         const char *fn) {
  int64_t fan;
  tc_status st = fan_of(t, mode, &fan, fn);
  if (st != TC_OK)
    return st;
  double gain = tc_init_calculate_gain(nl, a);
  if (gain < 0)
    return tc__error(TC_EINVAL, "%s: unknown nonlinearity %d", fn, (int)nl);
  double std = gain / sqrt((double)fan);
  if (dist == DIST_NORMAL)
    return draw(t, DIST_NORMAL, 0.0, std, rng, fn);
  double bound = sqrt(3.0) * std;
  return draw(t, DIST_UNIFORM, -bound, bound, rng, fn);
}

TC_API tc_status tc_init_kaiming_uniform(tc_tensor *t, double a,
                                         tc_fan_mode mode, tc_nonlinearity nl,
                                         tc_rng *rng) {
  return kaiming(t, a, mode, nl, rng, DIST_UNIFORM, "tc_init_kaiming_uniform");
}

TC_API tc_status tc_init_kaiming_normal(tc_tensor *t, double a,
                                        tc_fan_mode mode, tc_nonlinearity nl,
                                        tc_rng *rng) {
  return kaiming(t, a, mode, nl, rng, DIST_NORMAL, "tc_init_kaiming_normal");
}

static tc_status xavier(tc_tensor *t, double gain, tc_rng *rng, int dist,
                        const char *fn) {
  int64_t fi, fo;
  if (!t)
    return tc__error(TC_EINVAL, "%s: argument 't' is NULL", fn);
  tc_status st = tc_init_fans(t, &fi, &fo);
  if (st != TC_OK)
    return st;
  if (fi + fo == 0)
    return tc__error(TC_EINVAL, "%s: zero fans on an empty tensor", fn);
  double std = gain * sqrt(2.0 / (double)(fi + fo));
  if (dist == DIST_NORMAL)
    return draw(t, DIST_NORMAL, 0.0, std, rng, fn);
  double bound = sqrt(3.0) * std;
  return draw(t, DIST_UNIFORM, -bound, bound, rng, fn);
}

TC_API tc_status tc_init_xavier_uniform(tc_tensor *t, double gain,
                                        tc_rng *rng) {
  return xavier(t, gain, rng, DIST_UNIFORM, "tc_init_xavier_uniform");
}

TC_API tc_status tc_init_xavier_normal(tc_tensor *t, double gain, tc_rng *rng) {
  return xavier(t, gain, rng, DIST_NORMAL, "tc_init_xavier_normal");
}

TC_API tc_status tc_init_uniform(tc_tensor *t, double lo, double hi,
                                 tc_rng *rng) {
  if (!(lo <= hi))
    return tc__error(TC_EINVAL, "tc_init_uniform: lo %g > hi %g", lo, hi);
  return draw(t, DIST_UNIFORM, lo, hi, rng, "tc_init_uniform");
}

TC_API tc_status tc_init_normal(tc_tensor *t, double mean, double std,
                                tc_rng *rng) {
  return draw(t, DIST_NORMAL, mean, std, rng, "tc_init_normal");
}

TC_API tc_status tc_init_constant(tc_tensor *t, double value) {
  TC__CHECK_NULL(t, "tc_init_constant");
  return tc_tensor_fill(t, value);
}

tc_status tc__nn_init_default_weight(tc_tensor *w, tc_rng *rng) {
  return tc_init_kaiming_uniform(w, sqrt(5.0), TC_FAN_IN,
                                 TC_NONLINEARITY_LEAKY_RELU, rng);
}

tc_status tc__nn_init_default_bias(tc_tensor *b, int64_t fan_in, tc_rng *rng) {
  double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
  return draw(b, DIST_UNIFORM, -bound, bound, rng, "default bias init");
}

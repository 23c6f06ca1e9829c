/*
 * test_optim.c - optimizers against torch.optim: 3 steps of SGD (plain,
 * momentum, dampening, Nesterov, weight decay), Adam, AdamW and AMSGrad,
 * with and without a no-weight-decay group, over separate tensors and over a
 * model's contiguous arenas, read from tests/golden/optim_*.safetensors
 * (tests/golden/generate_optim.py); the parameters after each step and the
 * state after the last must agree within 1e-5 relative. Also: a naive
 * double-precision reference over odd sizes (1, 0, 33, ...), zero_grad,
 * clip_grad_norm vs torch.nn.utils.clip_grad_norm_, lr and group queries,
 * state access and resume from saved state, and bad arguments.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "golden_util.h"
#include "nn_util.h"
#include "testutil.h"

#define TOL 1e-5
#define NP 6

static tc_backend *be;
static void setup(void) {
  be = nu_cpu();
}
static void teardown(void) {
  tc_backend_destroy(be);
}

/* The generator's parameters, in the model's order. */
static const char *const pnames[NP] = {"conv.weight", "conv.bias", "bn.weight",
                                       "bn.bias",     "fc.weight", "fc.bias"};

static const char *const cases[] = {
    "sgd_plain",    "sgd_momentum", "sgd_dampening", "sgd_nesterov",
    "sgd_wd",       "sgd_groups",   "adam",          "adam_wd",
    "adam_amsgrad", "adamw",        "adamw_amsgrad", "adamw_groups"};
#define NCASES ((int)(sizeof cases / sizeof *cases))

static double worst; /* worst relative error against torch in this test */

/* conv(2->3, 3x3) - bn(3) - flatten - fc(27->4) on 2x5x5 inputs: the
 * parameters of the golden files, in one arena. */
static tc_model *small_model(void) {
  tc_layer *seq = NULL, *l = NULL;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_conv2d_create(&l, 2, 3, 3, NULL));
  NU_OK(tc_sequential_add(seq, "conv", l));
  NU_OK(tc_batchnorm2d_create(&l, 3, NULL));
  NU_OK(tc_sequential_add(seq, "bn", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(seq, "flat", l));
  NU_OK(tc_linear_create(&l, 27, 4, NULL));
  NU_OK(tc_sequential_add(seq, "fc", l));
  int64_t in[3] = {2, 5, 5};
  return nu_model(be, seq, in, 3, 0);
}

/* Parameters and gradients: separate tensors, or a model's views. */
typedef struct pset {
  tc_model *m;
  tc_tensor *p[NP], *g[NP];
} pset;

static void pset_init(pset *s, tc_safetensors *st, int use_model) {
  memset(s, 0, sizeof *s);
  char key[128];
  if (use_model) {
    s->m = small_model();
    ck_assert_int_eq(tc_model_num_params(s->m), NP);
    for (int i = 0; i < NP; i++) {
      const char *name = NULL;
      NU_OK(tc_model_get_param(s->m, i, &name, &s->p[i], &s->g[i]));
      ck_assert_str_eq(name, pnames[i]);
    }
  } else {
    for (int i = 0; i < NP; i++) {
      snprintf(key, sizeof key, "p0.%s", pnames[i]);
      s->p[i] = golden_tensor(st, be, key);
      int64_t shape[TC_MAX_DIMS];
      int nd = tc_tensor_shape(s->p[i], shape);
      NU_OK(tc_tensor_create(&s->g[i], be, shape, nd, TC_FLOAT32));
    }
  }
  for (int i = 0; i < NP; i++) {
    snprintf(key, sizeof key, "p0.%s", pnames[i]);
    NU_OK(tc_safetensors_read(st, key, s->p[i]));
  }
}

static void pset_free(pset *s) {
  if (s->m) {
    tc_model_destroy(s->m);
    return;
  }
  for (int i = 0; i < NP; i++) {
    tc_tensor_destroy(s->p[i]);
    tc_tensor_destroy(s->g[i]);
  }
}

/* Loads golden gradient g<k> into the set. */
static void pset_grads(pset *s, tc_safetensors *st, int k) {
  char key[128];
  for (int i = 0; i < NP; i++) {
    snprintf(key, sizeof key, "g%d.%s", k, pnames[i]);
    NU_OK(tc_safetensors_read(st, key, s->g[i]));
  }
}

/* Compares a tensor with the golden float tensor `name` within TOL. */
static void check_golden(tc_safetensors *st, const char *name,
                         const tc_tensor *t, const char *what) {
  int64_t n;
  float *want = golden_floats(st, name, &n);
  ck_assert_int_eq(tc_tensor_numel(t), n);
  float *got = malloc((size_t)n * sizeof *got);
  nu_get(t, got);
  double e = tu_max_rel_err(got, want, (size_t)n);
  if (e > worst)
    worst = e;
  ck_assert_msg(e <= TOL, "%s vs %s: max rel err %.3g > %.0e", what, name, e,
                TOL);
  free(got);
  free(want);
}

static void check_params(pset *s, tc_safetensors *st, int k, const char *what) {
  char key[128];
  for (int i = 0; i < NP; i++) {
    snprintf(key, sizeof key, "p%d.%s", k, pnames[i]);
    check_golden(st, key, s->p[i], what);
  }
}

static float fnum(const cJSON *c, const char *k) {
  return (float)golden_num(c, k);
}

/* The optimizer a golden config describes, over `s`. */
static tc_optimizer *make_opt(const cJSON *cfg, pset *s) {
  const char *kind = golden_str(cfg, "opt");
  const cJSON *nd = cJSON_GetObjectItemCaseSensitive(cfg, "no_decay");
  tc_optimizer *opt = NULL;
  int64_t grp = -1;
  if (strcmp(kind, "sgd") == 0) {
    tc_sgd_options o;
    NU_OK(tc_sgd_options_init(&o, sizeof o));
    o.lr = fnum(cfg, "lr");
    o.momentum = fnum(cfg, "momentum");
    o.dampening = fnum(cfg, "dampening");
    o.weight_decay = fnum(cfg, "weight_decay");
    o.nesterov = (int32_t)golden_num(cfg, "nesterov");
    if (s->m)
      NU_OK(tc_optimizer_create_sgd_for_model(&opt, s->m, &o));
    else
      NU_OK(tc_optimizer_create_sgd(&opt, s->p, s->g, pnames, NP, &o));
    ck_assert_int_eq(tc_optimizer_get_type(opt), TC_OPTIMIZER_SGD);
    if (!cJSON_IsNull(nd)) {
      o.lr = fnum(nd, "lr");
      o.weight_decay = fnum(nd, "weight_decay");
      NU_OK(tc_optimizer_add_group_sgd(opt, &o, &grp));
    }
  } else {
    int w = strcmp(kind, "adamw") == 0;
    tc_adam_options o;
    NU_OK(w ? tc_adamw_options_init(&o, sizeof o)
            : tc_adam_options_init(&o, sizeof o));
    o.lr = fnum(cfg, "lr");
    o.beta1 = fnum(cfg, "beta1");
    o.beta2 = fnum(cfg, "beta2");
    o.eps = fnum(cfg, "eps");
    o.weight_decay = fnum(cfg, "weight_decay");
    o.amsgrad = (int32_t)golden_num(cfg, "amsgrad");
    if (s->m)
      NU_OK(w ? tc_optimizer_create_adamw_for_model(&opt, s->m, &o)
              : tc_optimizer_create_adam_for_model(&opt, s->m, &o));
    else
      NU_OK(w ? tc_optimizer_create_adamw(&opt, s->p, s->g, pnames, NP, &o)
              : tc_optimizer_create_adam(&opt, s->p, s->g, pnames, NP, &o));
    ck_assert_int_eq(tc_optimizer_get_type(opt),
                     w ? TC_OPTIMIZER_ADAMW : TC_OPTIMIZER_ADAM);
    if (!cJSON_IsNull(nd)) {
      o.lr = fnum(nd, "lr");
      o.weight_decay = fnum(nd, "weight_decay");
      NU_OK(tc_optimizer_add_group_adam(opt, &o, &grp));
    }
  }
  if (grp >= 0) {
    int64_t count = -1;
    ck_assert_int_eq(grp, 1);
    NU_OK(tc_optimizer_set_group_where(opt, tc_param_filter_no_decay, NULL, grp,
                                       &count));
    ck_assert_int_eq(count, 4); /* the biases and BN's weight and bias */
    ck_assert_int_eq(tc_optimizer_num_groups(opt), 2);
    for (int i = 0; i < NP; i++)
      ck_assert_int_eq(tc_optimizer_get_param_group(opt, i),
                       i == 0 || i == 4 ? 0 : 1);
  }
  ck_assert_int_eq(tc_optimizer_num_params(opt), NP);
  for (int i = 0; i < NP; i++)
    ck_assert_str_eq(tc_optimizer_param_name(opt, i), pnames[i]);
  return opt;
}

/* Checks every state tensor against the golden "s.<param>.<key>" and the
 * step count; every golden state tensor must be found. */
static void check_state(tc_optimizer *opt, tc_safetensors *st, int64_t steps) {
  int64_t ns = tc_optimizer_num_state(opt), found = 0, golden = 0;
  static const char pre[] = "optimizer.state.";
  for (int64_t i = 0; i < tc_safetensors_count(st); i++)
    golden += strncmp(tc_safetensors_name(st, i), "s.", 2) == 0;
  ck_assert_int_eq(ns, golden + 1);
  for (int64_t i = 0; i < ns; i++) {
    const char *name = NULL;
    tc_tensor *t = NULL;
    NU_OK(tc_optimizer_get_state(opt, i, &name, &t));
    if (strcmp(name, "optimizer.step") == 0) {
      ck_assert_int_eq(i, ns - 1);
      ck_assert_int_eq(tc_tensor_dtype(t), TC_INT64);
      ck_assert_int_eq(tc_tensor_ndim(t), 0);
      int64_t v = -1;
      NU_OK(tc_tensor_copy_to_host(t, &v, sizeof v));
      ck_assert_int_eq(v, steps);
      continue;
    }
    ck_assert_msg(strncmp(name, pre, sizeof pre - 1) == 0, "%s", name);
    char key[160];
    snprintf(key, sizeof key, "s.%s", name + sizeof pre - 1);
    check_golden(st, key, t, name);
    found++;
  }
  ck_assert_int_eq(found, golden);
  int64_t step = -1;
  NU_OK(tc_optimizer_get_step(opt, &step));
  ck_assert_int_eq(step, steps);
}

/* _i = case * 2 + (over a model's arenas). */
START_TEST(golden_steps) {
  const char *name = cases[_i / 2];
  char file[64];
  snprintf(file, sizeof file, "optim_%s", name);
  tc_safetensors *st = golden_open(file);
  cJSON *cfg = golden_config(st);
  pset s;
  pset_init(&s, st, _i % 2);
  tc_optimizer *opt = make_opt(cfg, &s);
  int64_t step = -1;
  NU_OK(tc_optimizer_get_step(opt, &step));
  ck_assert_int_eq(step, 0);
  for (int k = 1; k <= 3; k++) {
    pset_grads(&s, st, k);
    NU_OK(tc_optimizer_step(opt));
    check_params(&s, st, k, name);
  }
  check_state(opt, st, 3);
  printf("%s%s: worst relative error vs torch %.3g\n", name,
         _i % 2 ? " (model)" : "", worst);
  tc_optimizer_destroy(opt);
  pset_free(&s);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
}
END_TEST

/* ---- a naive reference in double over odd sizes ---- */

typedef struct ref_cfg {
  int adam, decoupled, amsgrad, nesterov;
  double lr, momentum, dampening, wd, beta1, beta2, eps;
} ref_cfg;

/* One step of torch's formula on element x (state in mb/m/v/vm). */
static void ref_step(const ref_cfg *c, int64_t t, double *x, double g,
                     double *mb, double *m, double *v, double *vm) {
  if (!c->adam) {
    g += c->wd * *x;
    if (c->momentum != 0) {
      *mb = t == 1 ? g : c->momentum * *mb + (1 - c->dampening) * g;
      g = c->nesterov ? g + c->momentum * *mb : *mb;
    }
    *x -= c->lr * g;
    return;
  }
  if (c->decoupled)
    *x *= 1 - c->lr * c->wd;
  else
    g += c->wd * *x;
  *m = c->beta1 * *m + (1 - c->beta1) * g;
  *v = c->beta2 * *v + (1 - c->beta2) * g * g;
  double vv = *v;
  if (c->amsgrad) {
    *vm = fmax(*vm, *v);
    vv = *vm;
  }
  double bc1 = 1 - pow(c->beta1, (double)t), bc2 = 1 - pow(c->beta2, (double)t);
  *x -= c->lr / bc1 * *m / (sqrt(vv) / sqrt(bc2) + c->eps);
}

static const ref_cfg ref_cfgs[] = {
    {.lr = 0.05, .momentum = 0.8, .dampening = 0.1, .wd = 0.01},
    {.lr = 0.1, .momentum = 0.9, .wd = 0.02, .nesterov = 1},
    {.lr = 0.2},
    {.adam = 1,
     .lr = 3e-3,
     .beta1 = 0.9,
     .beta2 = 0.99,
     .eps = 1e-8,
     .wd = 0.05,
     .amsgrad = 1},
    {.adam = 1,
     .decoupled = 1,
     .lr = 1e-2,
     .beta1 = 0.85,
     .beta2 = 0.995,
     .eps = 1e-6,
     .wd = 0.1},
};

START_TEST(naive_reference) {
  const ref_cfg *c = &ref_cfgs[_i];
  enum { N = 5, STEPS = 4 };
  const int64_t sizes[N] = {1, 7, 0, 33, 130};
  tc_tensor *p[N], *g[N];
  double *x[N], *mb[N], *m[N], *v[N], *vm[N];
  float *buf = malloc(130 * sizeof *buf);
  for (int i = 0; i < N; i++) {
    size_t n = (size_t)sizes[i];
    p[i] = nu_tensor(be, &sizes[i], 1, NULL);
    g[i] = nu_tensor(be, &sizes[i], 1, NULL);
    tu_fill_uniform(buf, n, 100 + (uint64_t)i, -1, 1);
    NU_OK(tc_tensor_copy_from_host(p[i], buf, n * sizeof *buf));
    x[i] = calloc(n + 1, sizeof(double));
    mb[i] = calloc(n + 1, sizeof(double));
    m[i] = calloc(n + 1, sizeof(double));
    v[i] = calloc(n + 1, sizeof(double));
    vm[i] = calloc(n + 1, sizeof(double));
    for (size_t j = 0; j < n; j++)
      x[i][j] = buf[j];
  }
  tc_optimizer *opt = NULL;
  if (c->adam) {
    tc_adam_options o = TC_ADAM_OPTIONS_INIT;
    o.lr = (float)c->lr;
    o.beta1 = (float)c->beta1;
    o.beta2 = (float)c->beta2;
    o.eps = (float)c->eps;
    o.weight_decay = (float)c->wd;
    o.amsgrad = c->amsgrad;
    NU_OK(c->decoupled ? tc_optimizer_create_adamw(&opt, p, g, NULL, N, &o)
                       : tc_optimizer_create_adam(&opt, p, g, NULL, N, &o));
  } else {
    tc_sgd_options o = TC_SGD_OPTIONS_INIT;
    o.lr = (float)c->lr;
    o.momentum = (float)c->momentum;
    o.dampening = (float)c->dampening;
    o.weight_decay = (float)c->wd;
    o.nesterov = c->nesterov;
    NU_OK(tc_optimizer_create_sgd(&opt, p, g, NULL, N, &o));
  }
  ck_assert_str_eq(tc_optimizer_param_name(opt, 3), "3");
  for (int t = 1; t <= STEPS; t++) {
    for (int i = 0; i < N; i++) {
      size_t n = (size_t)sizes[i];
      tu_fill_uniform(buf, n, 1000 * (uint64_t)t + (uint64_t)i, -2, 2);
      NU_OK(tc_tensor_copy_from_host(g[i], buf, n * sizeof *buf));
      for (size_t j = 0; j < n; j++)
        ref_step(c, t, &x[i][j], buf[j], &mb[i][j], &m[i][j], &v[i][j],
                 &vm[i][j]);
    }
    NU_OK(tc_optimizer_step(opt));
    for (int i = 0; i < N; i++) {
      size_t n = (size_t)sizes[i];
      float want[130];
      nu_get(p[i], buf);
      for (size_t j = 0; j < n; j++)
        want[j] = (float)x[i][j];
      ck_assert_msg(tu_max_rel_err(buf, want, n) <= TOL,
                    "config %d step %d param %d: rel err %.3g", _i, t, i,
                    tu_max_rel_err(buf, want, n));
    }
  }
  tc_optimizer_destroy(opt);
  for (int i = 0; i < N; i++) {
    tc_tensor_destroy(p[i]);
    tc_tensor_destroy(g[i]);
    free(x[i]);
    free(mb[i]);
    free(m[i]);
    free(v[i]);
    free(vm[i]);
  }
  free(buf);
}
END_TEST

/* ---- zero_grad ---- */

START_TEST(zero_grad) {
  tc_safetensors *st = golden_open("optim_sgd_groups");
  cJSON *cfg = golden_config(st);
  for (int use_model = 0; use_model < 2; use_model++) {
    pset s;
    pset_init(&s, st, use_model);
    tc_optimizer *opt = make_opt(cfg, &s); /* two groups: several runs */
    pset_grads(&s, st, 1);
    NU_OK(tc_optimizer_zero_grad(opt));
    for (int i = 0; i < NP; i++) {
      int64_t n = tc_tensor_numel(s.g[i]);
      float *h = malloc((size_t)n * sizeof *h);
      nu_get(s.g[i], h);
      for (int64_t j = 0; j < n; j++)
        ck_assert(h[j] == 0.f);
      free(h);
    }
    check_params(&s, st, 0, "zero_grad leaves parameters");
    tc_optimizer_destroy(opt);
    pset_free(&s);
  }
  ck_assert_int_eq(tc_optimizer_zero_grad(NULL), TC_EINVAL);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
}
END_TEST

/* ---- clip_grad_norm ---- */

static void clip_grads_load(tc_safetensors *st, pset *s) {
  char key[128];
  for (int i = 0; i < NP; i++) {
    snprintf(key, sizeof key, "g.%s", pnames[i]);
    NU_OK(tc_safetensors_read(st, key, s->g[i]));
  }
}

START_TEST(clip_golden) {
  tc_safetensors *st = golden_open("optim_clip");
  tc_safetensors *pst = golden_open("optim_sgd_plain"); /* for shapes */
  cJSON *cfg = golden_config(st);
  const cJSON *mn = cJSON_GetObjectItemCaseSensitive(cfg, "max_norms");
  int nc = cJSON_GetArraySize(mn);
  ck_assert_int_eq(nc, 4);
  for (int use_opt = 0; use_opt < 2; use_opt++)
    for (int c = 0; c < nc; c++) {
      pset s;
      pset_init(&s, pst, use_opt); /* the optimizer one over a model */
      clip_grads_load(st, &s);
      double max_norm = cJSON_GetArrayItem(mn, c)->valuedouble, norm = -1;
      tc_optimizer *opt = NULL;
      if (use_opt) {
        NU_OK(tc_optimizer_create_sgd_for_model(&opt, s.m, NULL));
        NU_OK(tc_optimizer_clip_grad_norm(opt, max_norm, &norm));
      } else {
        NU_OK(tc_clip_grad_norm(s.g, NP, max_norm, &norm));
      }
      char key[128];
      snprintf(key, sizeof key, "norm%d", c);
      int64_t one;
      float *want = golden_floats(st, key, &one);
      ck_assert_msg(fabs(norm - want[0]) <= TOL * want[0],
                    "norm %.9g vs torch %.9g", norm, (double)want[0]);
      free(want);
      for (int i = 0; i < NP; i++) {
        snprintf(key, sizeof key, "c%d.%s", c, pnames[i]);
        check_golden(st, key, s.g[i], "clipped gradient");
      }
      tc_optimizer_destroy(opt);
      pset_free(&s);
    }
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
  tc_safetensors_destroy(pst);
}
END_TEST

START_TEST(clip_edges) {
  int64_t n3 = 3, n0 = 0;
  const float a[3] = {3, 0, -4}; /* norm 5 */
  tc_tensor *g[3] = {nu_tensor(be, &n3, 1, a), nu_tensor(be, &n0, 1, NULL),
                     nu_tensor(be, &n3, 1, a)};
  double norm = -1;
  float h[3];
  /* +inf only measures; the zero-size gradient counts for nothing */
  NU_OK(tc_clip_grad_norm(g, 3, INFINITY, &norm));
  ck_assert(fabs(norm - sqrt(50.0)) < 1e-12);
  nu_get(g[0], h);
  ck_assert(h[0] == 3.f && h[2] == -4.f);
  /* exactly at the norm: coefficient >= 1 is not applied */
  NU_OK(tc_clip_grad_norm(g, 1, 5.0 + 1e-6, &norm));
  nu_get(g[0], h);
  ck_assert(h[0] == 3.f);
  /* max_norm 0 zeroes */
  NU_OK(tc_clip_grad_norm(g, 1, 0.0, &norm));
  ck_assert(fabs(norm - 5.0) < 1e-12);
  nu_get(g[0], h);
  ck_assert(h[0] == 0.f && h[1] == 0.f && h[2] == 0.f);
  /* bad arguments */
  ck_assert_int_eq(tc_clip_grad_norm(NULL, 1, 1.0, &norm), TC_EINVAL);
  ck_assert_int_eq(tc_clip_grad_norm(g, 0, 1.0, &norm), TC_EINVAL);
  ck_assert_int_eq(tc_clip_grad_norm(g, -1, 1.0, &norm), TC_EINVAL);
  ck_assert_int_eq(tc_clip_grad_norm(g, 3, -1.0, &norm), TC_EINVAL);
  ck_assert_int_eq(tc_clip_grad_norm(g, 3, NAN, &norm), TC_EINVAL);
  tc_tensor *withnull[2] = {g[0], NULL};
  ck_assert_int_eq(tc_clip_grad_norm(withnull, 2, 1.0, &norm), TC_EINVAL);
  tc_tensor *ints = NULL;
  NU_OK(tc_tensor_create(&ints, be, &n3, 1, TC_INT32));
  ck_assert_int_eq(tc_clip_grad_norm(&ints, 1, 1.0, &norm), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_clip_grad_norm(NULL, 1.0, &norm), TC_EINVAL);
  /* a NaN or Inf gradient: TC_ENUMERIC, nothing changed, norm not written */
  const float bad[3] = {1, NAN, 2}, inf[3] = {1, INFINITY, 2};
  for (int k = 0; k < 2; k++) {
    NU_OK(tc_tensor_copy_from_host(g[0], a, sizeof a));
    NU_OK(tc_tensor_copy_from_host(g[2], k ? inf : bad, sizeof bad));
    norm = -7;
    ck_assert_int_eq(tc_clip_grad_norm(g, 3, 1.0, &norm), TC_ENUMERIC);
    ck_assert(norm == -7);
    nu_get(g[0], h);
    ck_assert(h[0] == 3.f && h[2] == -4.f);
  }
  tc_tensor_destroy(ints);
  for (int i = 0; i < 3; i++)
    tc_tensor_destroy(g[i]);
}
END_TEST

/* ---- lr ---- */

START_TEST(lr_get_set) {
  tc_safetensors *st = golden_open("optim_sgd_plain");
  cJSON *cfg = golden_config(st);
  pset s;
  pset_init(&s, st, 0);
  tc_optimizer *opt = make_opt(cfg, &s);
  double lr = -1;
  NU_OK(tc_optimizer_get_lr(opt, 0, &lr));
  ck_assert(lr == (double)0.1f);
  NU_OK(tc_optimizer_set_lr(opt, 0, 0.025));
  NU_OK(tc_optimizer_get_lr(opt, 0, &lr));
  ck_assert(lr == 0.025);
  NU_OK(tc_optimizer_get_base_lr(opt, 0, &lr));
  ck_assert(lr == (double)0.1f);
  /* the step uses the current lr: p1 = p0 - 0.025 g1 */
  pset_grads(&s, st, 1);
  NU_OK(tc_optimizer_step(opt));
  char key[128];
  for (int i = 0; i < NP; i++) {
    int64_t n;
    snprintf(key, sizeof key, "p0.%s", pnames[i]);
    float *p0 = golden_floats(st, key, &n);
    snprintf(key, sizeof key, "g1.%s", pnames[i]);
    float *g1 = golden_floats(st, key, &n);
    float *got = malloc((size_t)n * sizeof *got);
    nu_get(s.p[i], got);
    for (int64_t j = 0; j < n; j++)
      p0[j] = (float)((double)p0[j] - 0.025 * (double)g1[j]);
    TU_ASSERT_CLOSE(got, p0, (size_t)n, TOL);
    free(p0);
    free(g1);
    free(got);
  }
  /* bad values and groups */
  ck_assert_int_eq(tc_optimizer_set_lr(opt, 0, -0.1), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_lr(opt, 0, NAN), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_lr(opt, 0, INFINITY), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_lr(opt, 1, 0.1), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_lr(NULL, 0, 0.1), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_lr(opt, 1, &lr), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_lr(opt, -1, &lr), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_lr(opt, 0, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_lr(NULL, 0, &lr), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_base_lr(opt, 3, &lr), TC_EINVAL);
  NU_OK(tc_optimizer_get_lr(opt, 0, &lr));
  ck_assert(lr == 0.025);
  /* a new group's options: its base lr becomes o->lr */
  tc_sgd_options o = TC_SGD_OPTIONS_INIT;
  o.lr = 0.3f;
  NU_OK(tc_optimizer_set_group_sgd(opt, 0, &o));
  NU_OK(tc_optimizer_get_base_lr(opt, 0, &lr));
  ck_assert(lr == (double)0.3f);
  tc_optimizer_destroy(opt);
  pset_free(&s);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
}
END_TEST

/* ---- state and resume ---- */

static const char *const resume_cases[] = {"sgd_dampening", "sgd_nesterov",
                                           "adam_amsgrad", "adamw_groups"};

/* _i = case * 3 + how: 0 copies every state tensor (the step's too), 1
 * copies the buffers and calls set_step, 2 leaves the step at 0 (must not
 * match torch). */
START_TEST(resume) {
  const char *name = resume_cases[_i / 3];
  int how = _i % 3;
  char file[64];
  snprintf(file, sizeof file, "optim_%s", name);
  tc_safetensors *st = golden_open(file);
  cJSON *cfg = golden_config(st);
  pset a, b;
  pset_init(&a, st, 1);
  pset_init(&b, st, 0);
  tc_optimizer *oa = make_opt(cfg, &a);
  for (int k = 1; k <= 2; k++) {
    pset_grads(&a, st, k);
    NU_OK(tc_optimizer_step(oa));
  }
  /* b: a fresh optimizer over parameters restored to a's */
  tc_optimizer *ob = make_opt(cfg, &b);
  for (int i = 0; i < NP; i++)
    NU_OK(tc_tensor_copy(b.p[i], a.p[i]));
  int64_t ns = tc_optimizer_num_state(oa);
  ck_assert_int_eq(tc_optimizer_num_state(ob), ns);
  for (int64_t i = 0; i < ns; i++) {
    const char *na, *nb;
    tc_tensor *ta, *tb;
    NU_OK(tc_optimizer_get_state(oa, i, &na, &ta));
    NU_OK(tc_optimizer_get_state(ob, i, &nb, &tb));
    ck_assert_str_eq(na, nb);
    if (i < ns - 1 || how == 0)
      NU_OK(tc_tensor_copy(tb, ta));
  }
  if (how == 1)
    NU_OK(tc_optimizer_set_step(ob, 2));
  int64_t step = -1;
  NU_OK(tc_optimizer_get_step(ob, &step));
  ck_assert_int_eq(step, how == 2 ? 0 : 2);
  pset_grads(&a, st, 3);
  pset_grads(&b, st, 3);
  NU_OK(tc_optimizer_step(oa));
  NU_OK(tc_optimizer_step(ob));
  check_params(&a, st, 3, "uninterrupted run");
  float ha[200], hb[200];
  int same = 1;
  for (int i = 0; i < NP; i++) {
    int64_t n = tc_tensor_numel(a.p[i]);
    ck_assert(n <= 200);
    nu_get(a.p[i], ha);
    nu_get(b.p[i], hb);
    same &= memcmp(ha, hb, (size_t)n * sizeof *ha) == 0;
  }
  if (how == 2) {
    ck_assert_msg(!same, "a run restarted at step 0 matched a resumed one");
  } else {
    ck_assert_msg(same, "%s: resumed run differs from the uninterrupted one",
                  name);
    check_state(ob, st, 3);
  }
  tc_optimizer_destroy(oa);
  tc_optimizer_destroy(ob);
  pset_free(&a);
  pset_free(&b);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
}
END_TEST

START_TEST(state_access) {
  int64_t n3 = 3, n2 = 2;
  tc_tensor *p[2] = {nu_tensor(be, &n3, 1, NULL), nu_tensor(be, &n2, 1, NULL)};
  tc_tensor *g[2] = {nu_tensor(be, &n3, 1, NULL), nu_tensor(be, &n2, 1, NULL)};
  const char *names[2] = {"a.weight", "a.bias"};
  tc_optimizer *opt = NULL;
  const char *nm;
  tc_tensor *t;
  /* plain SGD: only the step */
  NU_OK(tc_optimizer_create_sgd(&opt, p, g, names, 2, NULL));
  ck_assert_int_eq(tc_optimizer_num_state(opt), 1);
  NU_OK(tc_optimizer_get_state(opt, 0, &nm, &t));
  ck_assert_str_eq(nm, "optimizer.step");
  ck_assert_int_eq(tc_optimizer_get_state(opt, 1, &nm, &t), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_state(opt, -1, &nm, &t), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_state(opt, 0, NULL, &t), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_state(opt, 0, &nm, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_state(NULL, 0, &nm, &t), TC_EINVAL);
  /* writing the step tensor is seen by get_step; a negative one is refused */
  int64_t v = 41, step = -1;
  NU_OK(tc_tensor_copy_from_host(t, &v, sizeof v));
  NU_OK(tc_optimizer_get_step(opt, &step));
  ck_assert_int_eq(step, 41);
  NU_OK(tc_optimizer_set_step(opt, 7));
  NU_OK(tc_tensor_copy_to_host(t, &v, sizeof v));
  ck_assert_int_eq(v, 7);
  v = -3;
  NU_OK(tc_tensor_copy_from_host(t, &v, sizeof v));
  ck_assert_int_eq(tc_optimizer_get_step(opt, &step), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_step(opt), TC_EINVAL);
  NU_OK(tc_optimizer_set_step(opt, 0));
  ck_assert_int_eq(tc_optimizer_set_step(opt, -1), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_step(NULL, 1), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_step(opt, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_get_step(NULL, &step), TC_EINVAL);
  /* a group with momentum adds the buffers, parameter-major */
  tc_sgd_options o = TC_SGD_OPTIONS_INIT;
  o.momentum = 0.5f;
  int64_t grp;
  NU_OK(tc_optimizer_add_group_sgd(opt, &o, &grp));
  ck_assert_int_eq(tc_optimizer_num_state(opt), 3);
  NU_OK(tc_optimizer_get_state(opt, 1, &nm, &t));
  ck_assert_str_eq(nm, "optimizer.state.a.bias.momentum_buffer");
  ck_assert_int_eq(tc_tensor_numel(t), 2);
  ck_assert_int_eq(tc_tensor_dtype(t), TC_FLOAT32);
  tc_optimizer_destroy(opt);
  /* AdamW with amsgrad: three per parameter */
  tc_adam_options ao = TC_ADAMW_OPTIONS_INIT;
  ao.amsgrad = 1;
  NU_OK(tc_optimizer_create_adamw(&opt, p, g, names, 2, &ao));
  ck_assert_int_eq(tc_optimizer_num_state(opt), 7);
  static const char *const want[7] = {"optimizer.state.a.weight.exp_avg",
                                      "optimizer.state.a.weight.exp_avg_sq",
                                      "optimizer.state.a.weight.max_exp_avg_sq",
                                      "optimizer.state.a.bias.exp_avg",
                                      "optimizer.state.a.bias.exp_avg_sq",
                                      "optimizer.state.a.bias.max_exp_avg_sq",
                                      "optimizer.step"};
  for (int i = 0; i < 7; i++) {
    NU_OK(tc_optimizer_get_state(opt, i, &nm, &t));
    ck_assert_str_eq(nm, want[i]);
    if (i < 6)
      ck_assert_int_eq(tc_tensor_numel(t), i < 3 ? 3 : 2);
  }
  tc_optimizer_destroy(opt);
  ck_assert_int_eq(tc_optimizer_num_state(NULL), -1);
  for (int i = 0; i < 2; i++) {
    tc_tensor_destroy(p[i]);
    tc_tensor_destroy(g[i]);
  }
}
END_TEST

/* ---- groups ---- */

static int select_fc(void *user, const char *name, const tc_tensor *p) {
  (void)p;
  ++*(int *)user;
  return strncmp(name, "fc.", 3) == 0;
}

START_TEST(groups) {
  tc_model *m = small_model();
  tc_optimizer *opt = NULL;
  NU_OK(tc_optimizer_create_adam_for_model(&opt, m, NULL));
  ck_assert_int_eq(tc_optimizer_num_groups(opt), 1);
  int64_t g1 = -1, g2 = -1, count = -1;
  NU_OK(tc_optimizer_add_group_adam(opt, NULL, &g1));
  NU_OK(tc_optimizer_add_group_adam(opt, NULL, NULL));
  NU_OK(tc_optimizer_add_group_adam(opt, NULL, NULL));
  NU_OK(tc_optimizer_add_group_adam(opt, NULL, &g2)); /* grows the table */
  ck_assert_int_eq(g1, 1);
  ck_assert_int_eq(g2, 4);
  ck_assert_int_eq(tc_optimizer_num_groups(opt), 5);
  int calls = 0;
  NU_OK(tc_optimizer_set_group_where(opt, select_fc, &calls, g2, &count));
  ck_assert_int_eq(calls, NP);
  ck_assert_int_eq(count, 2);
  NU_OK(tc_optimizer_set_param_group_by_name(opt, "bn.bias", g1));
  NU_OK(tc_optimizer_set_param_group(opt, 0, g1));
  static const int64_t want[NP] = {1, 0, 0, 1, 4, 4};
  for (int i = 0; i < NP; i++)
    ck_assert_int_eq(tc_optimizer_get_param_group(opt, i), want[i]);
  ck_assert_int_eq(tc_optimizer_get_param_group(opt, NP), -1);
  ck_assert_int_eq(tc_optimizer_get_param_group(opt, -1), -1);
  ck_assert_int_eq(tc_optimizer_get_param_group(NULL, 0), -1);
  ck_assert_int_eq(tc_optimizer_set_param_group_by_name(opt, "nope", 0),
                   TC_ENOTFOUND);
  ck_assert_int_eq(tc_optimizer_set_param_group_by_name(opt, NULL, 0),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_param_group(opt, NP, 0), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_param_group(opt, 0, 5), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_param_group(opt, 0, -1), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_group_where(opt, NULL, NULL, 0, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(
      tc_optimizer_set_group_where(opt, select_fc, &calls, 9, NULL), TC_EINVAL);
  /* type mismatch, bad options and groups */
  tc_sgd_options so = TC_SGD_OPTIONS_INIT;
  tc_adam_options ao = TC_ADAM_OPTIONS_INIT;
  ck_assert_int_eq(tc_optimizer_add_group_sgd(opt, &so, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_group_sgd(opt, 0, &so), TC_EINVAL);
  ao.beta1 = 1.0f;
  ck_assert_int_eq(tc_optimizer_add_group_adam(opt, &ao, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_group_adam(opt, 1, &ao), TC_EINVAL);
  ao.beta1 = 0.9f;
  ck_assert_int_eq(tc_optimizer_set_group_adam(opt, 5, &ao), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_add_group_adam(NULL, &ao, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_num_groups(opt), 5);
  /* amsgrad on one group adds its state */
  ck_assert_int_eq(tc_optimizer_num_state(opt), 2 * NP + 1);
  ao.amsgrad = 1;
  NU_OK(tc_optimizer_set_group_adam(opt, 4, &ao));
  ck_assert_int_eq(tc_optimizer_num_state(opt), 3 * NP + 1);
  tc_optimizer_destroy(opt);
  ck_assert_int_eq(tc_optimizer_num_groups(NULL), -1);
  ck_assert_int_eq(tc_optimizer_num_params(NULL), -1);
  ck_assert_ptr_null(tc_optimizer_param_name(NULL, 0));
  /* SGD over the model: adam groups refused */
  NU_OK(tc_optimizer_create_sgd_for_model(&opt, m, NULL));
  ck_assert_ptr_null(tc_optimizer_param_name(opt, NP));
  ck_assert_int_eq(tc_optimizer_add_group_adam(opt, &ao, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_set_group_adam(opt, 0, &ao), TC_EINVAL);
  so.nesterov = 1; /* without momentum */
  ck_assert_int_eq(tc_optimizer_add_group_sgd(opt, &so, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_num_groups(opt), 1);
  tc_optimizer_destroy(opt);
  /* the no-decay filter */
  tc_tensor *t = NULL;
  int64_t s2[2] = {2, 3};
  NU_OK(tc_tensor_create(&t, be, s2, 2, TC_FLOAT32));
  ck_assert_int_eq(tc_param_filter_no_decay(NULL, "w", t), 0);
  int64_t six = 6;
  NU_OK(tc_tensor_reshape(t, &six, 1));
  ck_assert_int_ne(tc_param_filter_no_decay(NULL, "w", t), 0);
  ck_assert_int_eq(tc_param_filter_no_decay(NULL, "w", NULL), 0);
  tc_tensor_destroy(t);
  tc_model_destroy(m);
}
END_TEST

/* ---- bad arguments ---- */

START_TEST(bad_args) {
  int64_t n3 = 3, n4 = 4;
  tc_tensor *p[2] = {nu_tensor(be, &n3, 1, NULL), nu_tensor(be, &n4, 1, NULL)};
  tc_tensor *g[2] = {nu_tensor(be, &n3, 1, NULL), nu_tensor(be, &n4, 1, NULL)};
  tc_tensor *short_g[2] = {g[0], p[0]}; /* 3 elements for a 4 */
  tc_tensor *ints = NULL;
  NU_OK(tc_tensor_create(&ints, be, &n3, 1, TC_INT32));
  tc_tensor *int_p[2] = {ints, p[1]};
  tc_tensor *g3 = nu_tensor(be, &n3, 1, NULL);
  tc_tensor *dup_p[2] = {p[0], p[0]}, *dup_g[2] = {g[0], g3};
  tc_tensor *nul[2] = {p[0], NULL};
  const char *dup_names[2] = {"x", "x"}, *empty_names[2] = {"x", ""};
  const char *null_names[2] = {"x", NULL};
  tc_optimizer *opt = NULL;
  tc_sgd_options so = TC_SGD_OPTIONS_INIT;
  tc_adam_options ao = TC_ADAM_OPTIONS_INIT;

  ck_assert_int_eq(tc_optimizer_create_sgd(NULL, p, g, NULL, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, NULL, g, NULL, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, NULL, NULL, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 0, NULL),
                   TC_EINVAL); /* empty list */
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, -2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, short_g, NULL, 2, NULL),
                   TC_ESHAPE);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, int_p, g, NULL, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, nul, g, NULL, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, nul, NULL, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, dup_p, dup_g, NULL, 2, NULL),
                   TC_EINVAL); /* the same parameter twice */
  tc_tensor *p3 = nu_tensor(be, &n3, 1, NULL), *two_p[2] = {p[0], p3};
  tc_tensor *same_g[2] = {g[0], g[0]};
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, two_p, same_g, NULL, 2, NULL),
                   TC_EINVAL); /* one gradient for two parameters */
  tc_tensor_destroy(p3);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, dup_names, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, empty_names, 2, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, null_names, 2, NULL),
                   TC_EINVAL);
  /* SGD options */
  tc_sgd_options b = so;
  b.lr = -0.1f;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b = so;
  b.lr = NAN;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b = so;
  b.momentum = -0.5f;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b = so;
  b.weight_decay = -1e-4f;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b = so;
  b.dampening = INFINITY;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b = so;
  b.nesterov = 1; /* no momentum */
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b.momentum = 0.9f;
  b.dampening = 0.1f; /* nesterov with dampening */
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b = so;
  b.reserved0 = 1;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b = so;
  b.struct_size = 4;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b), TC_EINVAL);
  b.struct_size = sizeof b + 8;
  ck_assert_int_eq(tc_optimizer_create_sgd(&opt, p, g, NULL, 2, &b),
                   TC_EVERSION);
  /* Adam options */
  tc_adam_options a = ao;
  a.lr = -1e-3f;
  ck_assert_int_eq(tc_optimizer_create_adam(&opt, p, g, NULL, 2, &a),
                   TC_EINVAL);
  a = ao;
  a.beta1 = 1.0f;
  ck_assert_int_eq(tc_optimizer_create_adam(&opt, p, g, NULL, 2, &a),
                   TC_EINVAL);
  a = ao;
  a.beta2 = -0.1f;
  ck_assert_int_eq(tc_optimizer_create_adamw(&opt, p, g, NULL, 2, &a),
                   TC_EINVAL);
  a = ao;
  a.eps = -1e-8f;
  ck_assert_int_eq(tc_optimizer_create_adam(&opt, p, g, NULL, 2, &a),
                   TC_EINVAL);
  a = ao;
  a.weight_decay = NAN;
  ck_assert_int_eq(tc_optimizer_create_adamw(&opt, p, g, NULL, 2, &a),
                   TC_EINVAL);
  a = ao;
  a.struct_size = sizeof a + 4;
  ck_assert_int_eq(tc_optimizer_create_adam(&opt, p, g, NULL, 2, &a),
                   TC_EVERSION);
  ck_assert_int_eq(tc_optimizer_create_adam(&opt, p, short_g, NULL, 2, NULL),
                   TC_ESHAPE);
  ck_assert_int_eq(tc_optimizer_create_adamw(&opt, p, g, NULL, 0, NULL),
                   TC_EINVAL);
  ck_assert_ptr_null(opt);
  /* model variants */
  ck_assert_int_eq(tc_optimizer_create_sgd_for_model(&opt, NULL, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_adam_for_model(&opt, NULL, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_optimizer_create_adamw_for_model(&opt, NULL, NULL),
                   TC_EINVAL);
  tc_model *m = small_model();
  ck_assert_int_eq(tc_optimizer_create_sgd_for_model(NULL, m, NULL), TC_EINVAL);
  b = so;
  b.lr = -1;
  ck_assert_int_eq(tc_optimizer_create_sgd_for_model(&opt, m, &b), TC_EINVAL);
  ck_assert_ptr_null(opt);
  tc_model_destroy(m);
  /* options init */
  ck_assert_int_eq(tc_sgd_options_init(NULL, sizeof so), TC_EINVAL);
  ck_assert_int_eq(tc_sgd_options_init(&so, 3), TC_EINVAL);
  ck_assert_int_eq(tc_sgd_options_init(&so, sizeof so + 1), TC_EVERSION);
  ck_assert_int_eq(tc_adam_options_init(&ao, sizeof ao + 1), TC_EVERSION);
  ck_assert_int_eq(tc_adamw_options_init(NULL, sizeof ao), TC_EINVAL);
  memset(&so, 0xff, sizeof so);
  NU_OK(tc_sgd_options_init(&so, sizeof so));
  ck_assert(so.lr == 0.01f && so.momentum == 0.f && so.nesterov == 0);
  NU_OK(tc_adamw_options_init(&ao, sizeof ao));
  ck_assert(ao.weight_decay == 1e-2f && ao.beta2 == 0.999f);
  NU_OK(tc_adam_options_init(&ao, sizeof ao));
  ck_assert(ao.weight_decay == 0.f && ao.lr == 1e-3f && ao.eps == 1e-8f);
  /* NULL everywhere else */
  ck_assert_int_eq(tc_optimizer_step(NULL), TC_EINVAL);
  tc_optimizer_destroy(NULL);
  /* a working optimizer is unaffected by the failed calls */
  NU_OK(tc_optimizer_create_adam(&opt, p, g, NULL, 2, NULL));
  NU_OK(tc_optimizer_step(opt));
  tc_optimizer_destroy(opt);
  tc_tensor_destroy(ints);
  tc_tensor_destroy(g3);
  for (int i = 0; i < 2; i++) {
    tc_tensor_destroy(p[i]);
    tc_tensor_destroy(g[i]);
  }
}
END_TEST

/* The step count stops at 2^53 rather than overflowing, whether set,
 * counted up to, or written through its state tensor. */
START_TEST(step_limit) {
  int64_t n = 3;
  tc_tensor *p = nu_tensor(be, &n, 1, NULL), *g = nu_tensor(be, &n, 1, NULL);
  tc_adam_options o;
  NU_OK(tc_adam_options_init(&o, sizeof o));
  tc_optimizer *opt = NULL;
  NU_OK(tc_optimizer_create_adam(&opt, &p, &g, NULL, 1, &o));
  const int64_t limit = (int64_t)1 << 53;
  int64_t step;
  ck_assert_int_eq(tc_optimizer_set_step(opt, INT64_MAX), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "2^53"));
  NU_OK(tc_optimizer_get_step(opt, &step));
  ck_assert_int_eq(step, 0);
  NU_OK(tc_optimizer_set_step(opt, limit - 1));
  NU_OK(tc_optimizer_step(opt));
  ck_assert_int_eq(tc_optimizer_step(opt), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "2^53"));
  NU_OK(tc_optimizer_get_step(opt, &step));
  ck_assert_int_eq(step, limit);
  /* through the state tensor, as a checkpoint reader would write it */
  tc_tensor *st = NULL;
  for (int64_t i = 0; i < tc_optimizer_num_state(opt); i++) {
    const char *name;
    tc_tensor *t;
    NU_OK(tc_optimizer_get_state(opt, i, &name, &t));
    if (!strcmp(name, "optimizer.step"))
      st = t;
  }
  ck_assert_ptr_nonnull(st);
  int64_t big = INT64_MAX;
  NU_OK(tc_tensor_copy_from_host(st, &big, sizeof big));
  ck_assert_int_eq(tc_optimizer_step(opt), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "2^53"));
  tc_optimizer_destroy(opt);
  tc_tensor_destroy(p);
  tc_tensor_destroy(g);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("optim");
  TCase *tc = tcase_create("optim");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, golden_steps, 0, 2 * NCASES);
  tcase_add_loop_test(tc, naive_reference, 0,
                      (int)(sizeof ref_cfgs / sizeof *ref_cfgs));
  tcase_add_test(tc, zero_grad);
  tcase_add_test(tc, clip_golden);
  tcase_add_test(tc, clip_edges);
  tcase_add_test(tc, lr_get_set);
  tcase_add_loop_test(tc, resume, 0,
                      3 * (int)(sizeof resume_cases / sizeof *resume_cases));
  tcase_add_test(tc, state_access);
  tcase_add_test(tc, groups);
  tcase_add_test(tc, bad_args);
  tcase_add_test(tc, step_limit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return tu_run_suite(suite());
}

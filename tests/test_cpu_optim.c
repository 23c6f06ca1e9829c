/*
 * test_cpu_optim.c - the CPU backend's sgd_update and adam_update against
 * the naive references of torch.optim's formulas in tests/reference/optim.c
 * (double arithmetic per step, float state as the backend's): three steps of
 * SGD (momentum, dampening, Nesterov, weight decay) and Adam / AdamW /
 * AMSGrad with a new gradient each step, sizes around the chunk boundary,
 * hand-computed first steps, NaN propagation, state left alone when unused,
 * thread-count independence and argument errors; and the PyTorch golden
 * files (tests/golden/optim_*.safetensors, torch 1.13): three steps of each
 * optimizer over a small model's parameters, which the CPU backend matches
 * to float rounding (bit for bit on a CPU with FMA, as torch's kernels fuse
 * a + alpha*b there). Called through the public backend table.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/optim.h"
#include "testutil.h"

#include "op_fixture.h"

static void setup(void) {
  op_open_cpu();
  ck_assert_ptr_nonnull(it->sgd_update);
  ck_assert_ptr_nonnull(it->adam_update);
}
static void teardown(void) {
  op_close();
}

static float *dalloc(size_t n) {
  return op_alloc(n * sizeof(float));
}

static const size_t sizes[] = {1, 7, 16385, 50001};

/* Compares a float buffer with the reference's. */
static void check_close(const float *got, const float *want, size_t n,
                        double tol, const char *what, int cs) {
  double e = tu_max_rel_err(got, want, n);
  ck_assert_msg(e <= tol, "case %d n %zu %s: max rel err %.3g", cs, n, what, e);
}

static float *hcopy(const float *src, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  memcpy(p, src, n * sizeof *p);
  return p;
}

/* ---- SGD ---- */

/* Hyper-parameters as the Python doubles a torch user writes; the backend
 * and the reference get them rounded to float and recover the decimals. */
typedef struct sgd_cfg {
  double lr, mu, damp, wd;
  int nesterov;
} sgd_cfg;

static const sgd_cfg sgd_cases[] = {
    {0.1, 0.0, 0.0, 0.0, 0},   {0.05, 0.9, 0.0, 0.0, 0},
    {0.05, 0.9, 0.1, 1e-4, 0}, {0.02, 0.9, 0.0, 1e-2, 1},
    {0.3, 0.5, 0.5, 0.0, 0},   {0.1, 0.0, 0.0, 5e-2, 0},
};

START_TEST(test_sgd_vs_reference) {
  for (size_t cs = 0; cs < sizeof sgd_cases / sizeof sgd_cases[0]; cs++)
    for (size_t si = 0; si < 4; si++) {
      const sgd_cfg *c = &sgd_cases[cs];
      size_t n = sizes[si];
      float *p = dalloc(n), *g = dalloc(n), *buf = dalloc(n);
      tu_fill_uniform(p, n, 100 + cs, -1.f, 1.f);
      tu_fill_uniform(buf, n, 200, 5.f, 6.f); /* garbage before step 1 */
      /* the reference's own state (tests/reference/optim.c) */
      float *rp = hcopy(p, n), *rb = hcopy(buf, n);
      for (int step = 0; step < 3; step++) {
        tu_fill_uniform(g, n, 300 + 10 * cs + (size_t)step, -1.f, 1.f);
        tc_sgd_args a = {.struct_size = sizeof a};
        a.n = (int64_t)n, a.lr = (float)c->lr, a.momentum = (float)c->mu;
        a.dampening = (float)c->damp, a.weight_decay = (float)c->wd;
        a.nesterov = c->nesterov, a.first_step = step == 0;
        a.param = p, a.grad = g, a.momentum_buf = c->mu != 0 ? buf : NULL;
        ck_assert_int_eq(it->sgd_update(ctx, &a), TC_OK);
        tc_sgd_args r = a;
        r.param = rp, r.momentum_buf = c->mu != 0 ? rb : NULL;
        ref_sgd_update(&r);
      }
      check_close(p, rp, n, 1e-5, "param", (int)cs);
      if (c->mu != 0)
        check_close(buf, rb, n, 1e-5, "momentum_buf", (int)cs);
      free(rp), free(rb);
      it->free(ctx, p), it->free(ctx, g), it->free(ctx, buf);
    }
}
END_TEST

/* Hand-computed: p 1, g 1, lr 0.5, momentum 0.9 (nesterov), two steps. */
START_TEST(test_sgd_hand) {
  float p = 1.f, g = 1.f, buf = 42.f;
  tc_sgd_args a = {.struct_size = sizeof a};
  a.n = 1, a.lr = 0.5f, a.momentum = 0.9f, a.nesterov = 1, a.first_step = 1;
  a.param = &p, a.grad = &g, a.momentum_buf = &buf;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_OK);
  /* buf = 1; g = 1 + 0.9 = 1.9; p = 1 - 0.95 */
  ck_assert_float_eq(buf, 1.f);
  ck_assert_float_eq_tol(p, 0.05f, 1e-7f);
  a.first_step = 0;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_OK);
  /* buf = 0.9 + 1 = 1.9; g = 1 + 1.71 = 2.71; p = 0.05 - 1.355 */
  ck_assert_float_eq_tol(buf, 1.9f, 1e-7f);
  ck_assert_float_eq_tol(p, -1.305f, 1e-6f);
  /* momentum 0: a buffer passed anyway is not touched */
  a.momentum = 0.f, a.nesterov = 0, buf = 7.f, p = 1.f;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_OK);
  ck_assert_float_eq(buf, 7.f);
  ck_assert_float_eq(p, 0.5f);
}
END_TEST

/* ---- Adam ---- */

typedef struct adam_cfg {
  double lr, b1, b2, eps, wd;
  int decoupled, amsgrad;
  double gdecay; /* gradient scale per step: shrinking grads exercise amsgrad */
} adam_cfg;

static const adam_cfg adam_cases[] = {
    {1e-2, 0.9, 0.999, 1e-8, 0.0, 0, 0, 1.0},
    {1e-2, 0.9, 0.999, 1e-8, 1e-2, 0, 0, 1.0}, /* Adam, L2 */
    {1e-2, 0.9, 0.999, 1e-8, 1e-2, 1, 0, 1.0}, /* AdamW */
    {1e-3, 0.9, 0.5, 1e-8, 0.0, 0, 1, 0.1},    /* AMSGrad */
    {5e-3, 0.8, 0.6, 1e-6, 0.1, 1, 1, 0.2},    /* AdamW + AMSGrad */
    {1e-2, 0.3, 0.99, 1e-3, 0.0, 0, 0, 1.0},   /* small beta1 */
};

START_TEST(test_adam_vs_reference) {
  for (size_t cs = 0; cs < sizeof adam_cases / sizeof adam_cases[0]; cs++)
    for (size_t si = 0; si < 4; si++) {
      const adam_cfg *c = &adam_cases[cs];
      size_t n = sizes[si];
      float *p = dalloc(n), *g = dalloc(n), *m = dalloc(n), *v = dalloc(n);
      float *vm = dalloc(n);
      tu_fill_uniform(p, n, 400 + cs, -1.f, 1.f);
      for (size_t i = 0; i < n; i++)
        m[i] = v[i] = vm[i] = 0.f;
      float *rp = hcopy(p, n), *rm = hcopy(m, n), *rv = hcopy(v, n);
      float *rvm = hcopy(vm, n);
      float scale = 1.f;
      for (int64_t step = 1; step <= 3; step++) {
        tu_fill_uniform(g, n, 500 + 10 * cs + (size_t)step, -scale, scale);
        scale *= (float)c->gdecay;
        tc_adam_args a = {.struct_size = sizeof a};
        a.n = (int64_t)n, a.lr = (float)c->lr, a.beta1 = (float)c->b1;
        a.beta2 = (float)c->b2, a.eps = (float)c->eps;
        a.weight_decay = (float)c->wd, a.decoupled = c->decoupled;
        a.amsgrad = c->amsgrad, a.step = step;
        a.param = p, a.grad = g, a.exp_avg = m, a.exp_avg_sq = v;
        a.max_exp_avg_sq = c->amsgrad ? vm : NULL;
        ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
        tc_adam_args r = a;
        r.param = rp, r.exp_avg = rm, r.exp_avg_sq = rv;
        r.max_exp_avg_sq = c->amsgrad ? rvm : NULL;
        ref_adam_update(&r);
      }
      check_close(p, rp, n, 1e-5, "param", (int)cs);
      check_close(m, rm, n, 1e-5, "exp_avg", (int)cs);
      check_close(v, rv, n, 1e-5, "exp_avg_sq", (int)cs);
      if (c->amsgrad) {
        check_close(vm, rvm, n, 1e-5, "max_exp_avg_sq", (int)cs);
        /* shrinking gradients: the maximum is not the last v */
        ck_assert(n < 7 || memcmp(vm, v, n * sizeof *v) != 0);
      } else {
        for (size_t i = 0; i < n; i++)
          ck_assert_float_eq(vm[i], 0.f);
      }
      free(rp), free(rm), free(rv), free(rvm);
      it->free(ctx, p), it->free(ctx, g), it->free(ctx, m);
      it->free(ctx, v), it->free(ctx, vm);
    }
}
END_TEST

/* Step 1 with bias correction: m_hat = g, v_hat = g^2, so the update is
 * lr * g / (|g| + eps), about lr * sign(g); AdamW shrinks p first. */
START_TEST(test_adam_hand) {
  float p[3] = {1.f, -2.f, 0.5f}, g[3] = {0.5f, -4.f, 1e-3f};
  float m[3] = {0}, v[3] = {0};
  tc_adam_args a = {.struct_size = sizeof a};
  a.n = 3, a.lr = 0.1f, a.beta1 = 0.9f, a.beta2 = 0.999f, a.eps = 1e-8f;
  a.step = 1, a.param = p, a.grad = g, a.exp_avg = m, a.exp_avg_sq = v;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
  ck_assert_float_eq_tol(p[0], 0.9f, 1e-6f);
  ck_assert_float_eq_tol(p[1], -1.9f, 1e-6f);
  ck_assert_float_eq_tol(p[2], 0.4f, 2e-6f);
  ck_assert_float_eq_tol(m[1], -0.4f, 1e-6f);
  ck_assert_float_eq_tol(v[1], 0.016f, 1e-6f);
  float q = 2.f, h = 1.f, mm = 0.f, vv = 0.f;
  a.n = 1, a.param = &q, a.grad = &h, a.exp_avg = &mm, a.exp_avg_sq = &vv;
  a.decoupled = 1, a.weight_decay = 0.5f; /* p = 2 * 0.95 - 0.1 */
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
  ck_assert_float_eq_tol(q, 1.8f, 1e-6f);
}
END_TEST

/* NaN in a gradient shows in the parameter, not hidden (amsgrad too). */
START_TEST(test_nan_propagates) {
  float p[2] = {1.f, 1.f}, g[2] = {NAN, 0.5f}, m[2] = {0}, v[2] = {0};
  float vm[2] = {0}, buf[2] = {0};
  tc_sgd_args s = {.struct_size = sizeof s};
  s.n = 2, s.lr = 0.1f, s.momentum = 0.9f, s.first_step = 1;
  s.param = p, s.grad = g, s.momentum_buf = buf;
  ck_assert_int_eq(it->sgd_update(ctx, &s), TC_OK);
  ck_assert(isnan(p[0]) && isnan(buf[0]) && isfinite(p[1]));
  p[0] = 1.f;
  tc_adam_args a = {.struct_size = sizeof a};
  a.n = 2, a.lr = 0.1f, a.beta1 = 0.9f, a.beta2 = 0.999f, a.eps = 1e-8f;
  a.amsgrad = 1, a.step = 1, a.param = p, a.grad = g, a.exp_avg = m;
  a.exp_avg_sq = v, a.max_exp_avg_sq = vm;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
  ck_assert(isnan(p[0]) && isnan(vm[0]) && isfinite(p[1]));
}
END_TEST

static void run_with_threads(int threads, size_t n, float *out) {
  ck_assert_int_eq(tc_set_num_threads(threads), TC_OK);
  op_open_cpu();
  float *p = dalloc(n), *g = dalloc(n), *m = dalloc(n), *v = dalloc(n);
  tu_fill_uniform(p, n, 600, -1.f, 1.f);
  for (size_t i = 0; i < n; i++)
    m[i] = v[i] = 0.f;
  for (int64_t step = 1; step <= 2; step++) {
    tu_fill_uniform(g, n, 600 + (size_t)step, -1.f, 1.f);
    tc_sgd_args s = {.struct_size = sizeof s};
    s.n = (int64_t)n, s.lr = 0.1f, s.momentum = 0.9f, s.weight_decay = 1e-3f;
    s.first_step = step == 1, s.param = p, s.grad = g, s.momentum_buf = m;
    ck_assert_int_eq(it->sgd_update(ctx, &s), TC_OK);
    tc_adam_args a = {.struct_size = sizeof a};
    a.n = (int64_t)n, a.lr = 1e-3f, a.beta1 = 0.9f, a.beta2 = 0.999f;
    a.eps = 1e-8f, a.step = step, a.param = p, a.grad = g;
    a.exp_avg = m, a.exp_avg_sq = v;
    ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
  }
  memcpy(out, p, n * sizeof *p);
  it->free(ctx, p), it->free(ctx, g), it->free(ctx, m), it->free(ctx, v);
  op_destroy();
}

START_TEST(test_thread_independent) {
  op_destroy();
  size_t n = 100003;
  float *o1 = malloc(n * sizeof *o1), *o3 = malloc(n * sizeof *o3);
  run_with_threads(1, n, o1);
  run_with_threads(3, n, o3);
  ck_assert(memcmp(o1, o3, n * sizeof *o1) == 0);
  free(o1), free(o3);
  tc_set_num_threads(0);
  op_open_cpu();
}
END_TEST

START_TEST(test_sgd_errors) {
  float p[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1}, buf[4] = {0};
  tc_sgd_args ok = {.struct_size = sizeof ok};
  ok.n = 4, ok.lr = 0.1f, ok.momentum = 0.9f, ok.first_step = 1;
  ok.param = p, ok.grad = g, ok.momentum_buf = buf;
  tc_sgd_args a;
  tc_clear_error();
  ck_assert_int_eq(it->sgd_update(ctx, NULL), TC_EINVAL);
  ck_assert(strlen(tc_last_error()) > 0);
  a = ok, a.struct_size = sizeof a - 8;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_EINVAL);
  a = ok, a.n = -1;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_EINVAL);
  a = ok, a.param = NULL;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_EINVAL);
  a = ok, a.grad = NULL;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_EINVAL);
  a = ok, a.momentum_buf = NULL;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_EINVAL);
  ck_assert_float_eq(p[0], 1.f); /* untouched */
  a = ok, a.n = 0, a.param = NULL, a.grad = NULL, a.momentum_buf = NULL;
  ck_assert_int_eq(it->sgd_update(ctx, &a), TC_OK);
  ck_assert_int_eq(it->sgd_update(ctx, &ok), TC_OK);
  ck_assert_float_eq_tol(p[0], 0.9f, 1e-7f);
}
END_TEST

START_TEST(test_adam_errors) {
  float p[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1}, m[4] = {0}, v[4] = {0};
  float vm[4] = {0};
  tc_adam_args ok = {.struct_size = sizeof ok};
  ok.n = 4, ok.lr = 0.1f, ok.beta1 = 0.9f, ok.beta2 = 0.999f, ok.eps = 1e-8f;
  ok.amsgrad = 1, ok.step = 1, ok.param = p, ok.grad = g, ok.exp_avg = m;
  ok.exp_avg_sq = v, ok.max_exp_avg_sq = vm;
  tc_adam_args a;
  tc_clear_error();
  ck_assert_int_eq(it->adam_update(ctx, NULL), TC_EINVAL);
  ck_assert(strlen(tc_last_error()) > 0);
  a = ok, a.struct_size = sizeof a - 8;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  a = ok, a.n = -3;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  a = ok, a.step = 0;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  a = ok, a.param = NULL;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  a = ok, a.grad = NULL;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  a = ok, a.exp_avg = NULL;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  a = ok, a.exp_avg_sq = NULL;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  a = ok, a.max_exp_avg_sq = NULL;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_EINVAL);
  ck_assert_float_eq(p[0], 1.f); /* untouched */
  ck_assert_float_eq(m[0], 0.f);
  a = ok, a.amsgrad = 0, a.max_exp_avg_sq = NULL;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
  ck_assert_float_eq(vm[0], 0.f);
  a = ok, a.n = 0, a.param = NULL, a.grad = NULL;
  ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
}
END_TEST

/* ---- PyTorch golden files ---- */

/* A safetensors file read whole: the parsed JSON header and the data. */
typedef struct gfile {
  cJSON *head;
  unsigned char *data;
  size_t size;
} gfile;

static gfile gfile_open(const char *name) {
  const char *root = getenv("TINYCNN_SOURCE_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/golden/%s.safetensors",
           root ? root : "..", name);
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  unsigned char len8[8];
  ck_assert(fread(len8, 1, 8, f) == 8);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = hl << 8 | len8[i];
  ck_assert(hl > 0 && hl < (1u << 24));
  char *h = malloc(hl + 1);
  ck_assert(fread(h, 1, hl, f) == hl);
  h[hl] = 0;
  gfile g = {cJSON_Parse(h), NULL, 0};
  free(h);
  ck_assert_ptr_nonnull(g.head);
  ck_assert(fseek(f, 0, SEEK_END) == 0);
  long end = ftell(f);
  ck_assert(end >= (long)(8 + hl));
  g.size = (size_t)end - 8 - hl;
  g.data = malloc(g.size ? g.size : 1);
  ck_assert(fseek(f, (long)(8 + hl), SEEK_SET) == 0);
  ck_assert(fread(g.data, 1, g.size, f) == g.size);
  fclose(f);
  return g;
}

static void gfile_close(gfile *g) {
  cJSON_Delete(g->head);
  free(g->data);
}

/* A float32 tensor's data (little-endian hosts) and element count; NULL
 * when absent. */
static const float *gtensor(const gfile *g, const char *name, size_t *n) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(g->head, name);
  if (!t)
    return NULL;
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
  ck_assert(cJSON_IsString(dt) && strcmp(dt->valuestring, "F32") == 0);
  size_t a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
  size_t b = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
  ck_assert(a <= b && b <= g->size && (b - a) % 4 == 0);
  if (n)
    *n = (b - a) / 4;
  return (const float *)(g->data + a);
}

static double gnum(const cJSON *cfg, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  ck_assert_msg(v != NULL, "config has no '%s'", key);
  return cJSON_IsBool(v) ? (double)cJSON_IsTrue(v) : v->valuedouble;
}

static void golden_case(const char *name) {
  gfile g = gfile_open(name);
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(g.head, "__metadata__");
  const cJSON *cs = cJSON_GetObjectItemCaseSensitive(meta, "config");
  ck_assert(cJSON_IsString(cs));
  cJSON *cfg = cJSON_Parse(cs->valuestring);
  ck_assert_ptr_nonnull(cfg);
  const char *opt = cJSON_GetObjectItemCaseSensitive(cfg, "opt")->valuestring;
  int sgd = strcmp(opt, "sgd") == 0;
  const cJSON *nm;
  cJSON_ArrayForEach(nm, cJSON_GetObjectItemCaseSensitive(cfg, "names")) {
    char k[256];
    size_t n;
    snprintf(k, sizeof k, "p0.%s", nm->valuestring);
    const float *p0 = gtensor(&g, k, &n);
    ck_assert_ptr_nonnull(p0);
    float *p = dalloc(n), *m = dalloc(n), *v = dalloc(n), *vm = dalloc(n);
    memcpy(p, p0, n * sizeof *p);
    for (size_t i = 0; i < n; i++)
      m[i] = v[i] = vm[i] = 0.f;
    for (int step = 1; step <= 3; step++) {
      snprintf(k, sizeof k, "g%d.%s", step, nm->valuestring);
      const float *gr = gtensor(&g, k, NULL);
      ck_assert_ptr_nonnull(gr);
      if (sgd) {
        tc_sgd_args a = {.struct_size = sizeof a};
        a.n = (int64_t)n, a.lr = (float)gnum(cfg, "lr");
        a.momentum = (float)gnum(cfg, "momentum");
        a.dampening = (float)gnum(cfg, "dampening");
        a.weight_decay = (float)gnum(cfg, "weight_decay");
        a.nesterov = (int32_t)gnum(cfg, "nesterov"), a.first_step = step == 1;
        a.param = p, a.grad = gr, a.momentum_buf = m;
        ck_assert_int_eq(it->sgd_update(ctx, &a), TC_OK);
      } else {
        tc_adam_args a = {.struct_size = sizeof a};
        a.n = (int64_t)n, a.lr = (float)gnum(cfg, "lr");
        a.beta1 = (float)gnum(cfg, "beta1"),
        a.beta2 = (float)gnum(cfg, "beta2");
        a.eps = (float)gnum(cfg, "eps");
        a.weight_decay = (float)gnum(cfg, "weight_decay");
        a.decoupled = strcmp(opt, "adamw") == 0;
        a.amsgrad = (int32_t)gnum(cfg, "amsgrad"), a.step = step;
        a.param = p, a.grad = gr, a.exp_avg = m, a.exp_avg_sq = v;
        a.max_exp_avg_sq = vm;
        ck_assert_int_eq(it->adam_update(ctx, &a), TC_OK);
      }
      snprintf(k, sizeof k, "p%d.%s", step, nm->valuestring);
      const float *want = gtensor(&g, k, NULL);
      ck_assert_ptr_nonnull(want);
      double e = tu_max_rel_err(p, want, n);
      ck_assert_msg(e <= 2e-6, "%s %s step %d: param err %.3g", name,
                    nm->valuestring, step, e);
    }
    static const char *keys[] = {"momentum_buffer", "exp_avg", "exp_avg_sq",
                                 "max_exp_avg_sq"};
    float *bufs[] = {m, m, v, vm};
    for (int q = 0; q < 4; q++) {
      snprintf(k, sizeof k, "s.%s.%s", nm->valuestring, keys[q]);
      const float *want = gtensor(&g, k, NULL);
      if (!want)
        continue;
      double e = tu_max_rel_err(bufs[q], want, n);
      ck_assert_msg(e <= 2e-6, "%s %s: %s err %.3g", name, nm->valuestring,
                    keys[q], e);
    }
    it->free(ctx, p), it->free(ctx, m), it->free(ctx, v), it->free(ctx, vm);
  }
  cJSON_Delete(cfg);
  gfile_close(&g);
}

START_TEST(test_torch_golden) {
  static const char *cases[] = {"optim_sgd_plain",     "optim_sgd_momentum",
                                "optim_sgd_dampening", "optim_sgd_nesterov",
                                "optim_sgd_wd",        "optim_adam",
                                "optim_adam_wd",       "optim_adam_amsgrad",
                                "optim_adamw",         "optim_adamw_amsgrad"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    golden_case(cases[i]);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_optim");
  TCase *tc = tcase_create("optim");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sgd_vs_reference);
  tcase_add_test(tc, test_sgd_hand);
  tcase_add_test(tc, test_adam_vs_reference);
  tcase_add_test(tc, test_adam_hand);
  tcase_add_test(tc, test_nan_propagates);
  tcase_add_test(tc, test_thread_independent);
  tcase_add_test(tc, test_sgd_errors);
  tcase_add_test(tc, test_adam_errors);
  tcase_add_test(tc, test_torch_golden);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

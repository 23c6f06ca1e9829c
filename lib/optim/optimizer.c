/*
 * optimizer.c - the optimizer object common to SGD and Adam(W): parameter
 * lists, names, state arenas and their named views, runs of contiguous
 * parameters, the step count, zero_grad and step dispatch.
 *
 * The update rules themselves live in sgd.c and adam.c and go through the
 * backend's sgd_update / adam_update slots; nothing here touches device
 * memory except through the backend table.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "optim_internal.h"

static const char *const state_suffix[TC__ST_KINDS] = {
    "momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
static const char state_prefix[] = "optimizer.state.";
static const char step_name[] = "optimizer.step";

/* ---- runs ---- */

/* b starts where a ends, in the same allocation (a model's arena). */
static int follows(tc_tensor *a, tc_tensor *b) {
  return a->storage == b->storage &&
         a->offset_bytes + (size_t)a->numel * sizeof(float) == b->offset_bytes;
}

/* Recomputes the runs; allocation-free (runs has room for n). */
static void compute_runs(tc_optimizer *opt) {
  int64_t r = -1;
  for (int64_t i = 0; i < opt->n; i++) {
    int extend = r >= 0 && opt->group_of[i] == opt->group_of[i - 1] &&
                 follows(opt->params[i - 1], opt->params[i]) &&
                 follows(opt->grads[i - 1], opt->grads[i]);
    if (!extend) {
      r++;
      opt->runs[r] = (tc__opt_run){i, 0, 0, opt->group_of[i]};
    }
    opt->runs[r].count++;
    opt->runs[r].numel += opt->params[i]->numel;
  }
  opt->n_runs = r + 1;
}

/* ---- creation ---- */

/* Whether two float tensors share elements (a parameter listed twice
 * would be updated twice). */
static int overlap(const tc_tensor *a, const tc_tensor *b) {
  if (a->storage != b->storage || a->numel == 0 || b->numel == 0)
    return 0;
  size_t a0 = a->offset_bytes, a1 = a0 + (size_t)a->numel * sizeof(float);
  size_t b0 = b->offset_bytes, b1 = b0 + (size_t)b->numel * sizeof(float);
  return a0 < b1 && b0 < a1;
}

static tc_status check_lists(tc_tensor *const *params, tc_tensor *const *grads,
                             const char *const *names, int64_t n,
                             int64_t *out_total, size_t *out_name_bytes,
                             const char *fn) {
  TC__CHECK_NULL(params, fn);
  TC__CHECK_NULL(grads, fn);
  if (n < 1 || n > ((int64_t)1 << 40))
    return tc__error(TC_EINVAL, "%s: n = %" PRId64 ", expected >= 1", fn, n);
  tc_backend *be = NULL;
  int64_t total = 0;
  size_t name_bytes = 0;
  for (int64_t i = 0; i < n; i++) {
    tc_tensor *p = params[i], *g = grads[i];
    if (!p || !g)
      return tc__error(TC_EINVAL, "%s: %s[%" PRId64 "] is NULL", fn,
                       p ? "grads" : "params", i);
    if (p->dtype != TC_FLOAT32 || g->dtype != TC_FLOAT32)
      return tc__error(
          TC_EINVAL, "%s: parameter %" PRId64 " or its gradient is not float32",
          fn, i);
    if (p->numel != g->numel)
      return tc__error(TC_ESHAPE,
                       "%s: parameter %" PRId64 " has %" PRId64
                       " elements, its gradient %" PRId64,
                       fn, i, p->numel, g->numel);
    if (!be)
      be = p->storage->be;
    if (p->storage->be != be || g->storage->be != be)
      return tc__error(
          TC_EINVAL,
          "%s: parameter %" PRId64
          " or its gradient is on another backend than parameter 0",
          fn, i);
    for (int64_t j = 0; j < i; j++)
      if (overlap(params[j], p) || overlap(grads[j], g))
        return tc__error(TC_EINVAL,
                         "%s: parameters %" PRId64 " and %" PRId64
                         " (or their gradients) share memory; a parameter may "
                         "appear only once",
                         fn, j, i);
    total += p->numel; /* each numel <= 2^48, n <= 2^40: no overflow */
    if (names) {
      if (!names[i] || !names[i][0])
        return tc__error(TC_EINVAL, "%s: names[%" PRId64 "] is NULL or empty",
                         fn, i);
      for (int64_t j = 0; j < i; j++)
        if (strcmp(names[i], names[j]) == 0)
          return tc__error(TC_EINVAL,
                           "%s: parameters %" PRId64 " and %" PRId64
                           " are both named '%s'",
                           fn, j, i, names[i]);
      name_bytes += strlen(names[i]) + 1;
    } else {
      name_bytes += 21; /* a decimal int64 and its NUL */
    }
  }
  *out_total = total;
  *out_name_bytes = name_bytes;
  return TC_OK;
}

tc_status tc__optimizer_create(tc_optimizer **out, tc_optimizer_type type,
                               tc_tensor *const *params,
                               tc_tensor *const *grads,
                               const char *const *names, int64_t n,
                               const tc__opt_group *g0, const char *fn) {
  TC__CHECK_NULL(out, fn);
  int64_t total = 0;
  size_t name_bytes = 0;
  tc_status st = check_lists(params, grads, names, n, &total, &name_bytes, fn);
  if (st != TC_OK)
    return st;
  size_t un = (size_t)n;
  tc_optimizer *opt = tc__calloc(1, sizeof *opt);
  if (!opt)
    return tc__oom(fn);
  opt->type = type;
  opt->be = params[0]->storage->be;
  opt->n = n;
  opt->total = total;
  opt->params = tc__calloc(un, sizeof *opt->params);
  opt->grads = tc__calloc(un, sizeof *opt->grads);
  opt->names = tc__calloc(un, sizeof *opt->names);
  opt->name_blob = tc__malloc(name_bytes);
  opt->group_of = tc__calloc(un, sizeof *opt->group_of);
  opt->state_off = tc__calloc(un, sizeof *opt->state_off);
  opt->runs = tc__calloc(un, sizeof *opt->runs);
  opt->groups = tc__calloc(4, sizeof *opt->groups);
  if (!opt->params || !opt->grads || !opt->names || !opt->name_blob ||
      !opt->group_of || !opt->state_off || !opt->runs || !opt->groups) {
    st = tc__oom(fn);
    goto fail;
  }
  opt->cap_groups = 4;
  opt->n_groups = 1;
  opt->groups[0] = *g0;
  char *w = opt->name_blob;
  int64_t off = 0;
  for (int64_t i = 0; i < n; i++) {
    opt->params[i] = params[i];
    opt->grads[i] = grads[i];
    opt->names[i] = w;
    if (names) {
      size_t len = strlen(names[i]) + 1;
      memcpy(w, names[i], len);
      w += len;
    } else {
      w += snprintf(w, 21, "%" PRId64, i) + 1;
    }
    opt->state_off[i] = off;
    off += params[i]->numel;
  }
  st = tc_tensor_create(&opt->step_t, opt->be, NULL, 0, TC_INT64);
  if (st != TC_OK)
    goto fail;
  compute_runs(opt);
  *out = opt;
  return TC_OK;
fail:
  tc_optimizer_destroy(opt);
  return st;
}

tc_status tc__param_lists_from_model(tc__param_lists *l, tc_model *m,
                                     const char *fn) {
  memset(l, 0, sizeof *l);
  TC__CHECK_NULL(m, fn);
  int64_t n = tc_model_num_params(m);
  if (n < 1)
    return tc__error(TC_EINVAL, "%s: the model has no parameters", fn);
  l->params = tc__calloc((size_t)n, sizeof *l->params);
  l->grads = tc__calloc((size_t)n, sizeof *l->grads);
  l->names = tc__calloc((size_t)n, sizeof *l->names);
  if (!l->params || !l->grads || !l->names) {
    tc__param_lists_free(l);
    return tc__oom(fn);
  }
  for (int64_t i = 0; i < n; i++) {
    tc_status st =
        tc_model_get_param(m, i, &l->names[i], &l->params[i], &l->grads[i]);
    if (st != TC_OK) {
      tc__param_lists_free(l);
      return st;
    }
  }
  l->n = n;
  return TC_OK;
}

void tc__param_lists_free(tc__param_lists *l) {
  tc__free(l->params);
  tc__free(l->grads);
  tc__free(l->names);
  memset(l, 0, sizeof *l);
}

TC_API void tc_optimizer_destroy(tc_optimizer *opt) {
  if (!opt)
    return;
  for (int k = 0; k < TC__ST_KINDS; k++) {
    if (opt->views[k])
      for (int64_t i = 0; i < opt->n; i++)
        tc_tensor_destroy(opt->views[k][i]);
    tc__free(opt->views[k]);
    tc_tensor_destroy(opt->arena[k]);
    tc__free(opt->state_names[k]);
    tc__free(opt->state_name_ptr[k]);
  }
  tc_tensor_destroy(opt->step_t);
  tc__free(opt->params);
  tc__free(opt->grads);
  tc__free(opt->names);
  tc__free(opt->name_blob);
  tc__free(opt->group_of);
  tc__free(opt->state_off);
  tc__free(opt->runs);
  tc__free(opt->groups);
  tc__free(opt);
}

/* ---- state arenas ---- */

/* A view of `like`'s shape on `arena`'s storage at element `off`. */
static tc_status slice_view(tc_tensor **out, tc_tensor *arena, int64_t off,
                            const tc_tensor *like) {
  tc_tensor *v = tc__calloc(1, sizeof *v);
  if (!v)
    return tc__oom("tc_optimizer: state view");
  *v = *arena;
  v->offset_bytes = arena->offset_bytes + (size_t)off * sizeof(float);
  v->ndim = like->ndim;
  memcpy(v->shape, like->shape, sizeof v->shape);
  v->numel = like->numel;
  atomic_fetch_add(&arena->storage->refcount, 1);
  *out = v;
  return TC_OK;
}

float *tc__optimizer_state_ptr(tc_optimizer *opt, int kind, int64_t first) {
  return (float *)tc_tensor_data(opt->arena[kind]) + opt->state_off[first];
}

tc_status tc__optimizer_ensure_state(tc_optimizer *opt, int kind,
                                     const char *fn) {
  if (opt->arena[kind])
    return TC_OK;
  size_t un = (size_t)opt->n, bytes = 0;
  for (int64_t i = 0; i < opt->n; i++)
    bytes += sizeof state_prefix + strlen(opt->names[i]) + 1 +
             strlen(state_suffix[kind]);
  tc_tensor *arena = NULL, **views = tc__calloc(un, sizeof *views);
  char *blob = tc__malloc(bytes), **ptrs = tc__calloc(un, sizeof *ptrs);
  tc_status st = TC_OK;
  if (!views || !blob || !ptrs) {
    st = tc__oom(fn);
    goto fail;
  }
  int64_t shape[1] = {opt->total};
  if ((st = tc_tensor_create(&arena, opt->be, shape, 1, TC_FLOAT32)) != TC_OK)
    goto fail;
  char *w = blob;
  for (int64_t i = 0; i < opt->n; i++) {
    st = slice_view(&views[i], arena, opt->state_off[i], opt->params[i]);
    if (st != TC_OK)
      goto fail;
    ptrs[i] = w;
    w +=
        sprintf(w, "%s%s.%s", state_prefix, opt->names[i], state_suffix[kind]) +
        1;
  }
  opt->arena[kind] = arena;
  opt->views[kind] = views;
  opt->state_names[kind] = blob;
  opt->state_name_ptr[kind] = ptrs;
  return TC_OK;
fail:
  if (views)
    for (int64_t i = 0; i < opt->n; i++)
      tc_tensor_destroy(views[i]);
  tc__free(views);
  tc_tensor_destroy(arena);
  tc__free(blob);
  tc__free(ptrs);
  return st;
}

tc_status tc__optimizer_ensure_needed_state(tc_optimizer *opt, const char *fn) {
  tc_status st = TC_OK;
  for (int64_t g = 0; g < opt->n_groups && st == TC_OK; g++) {
    if (opt->type == TC_OPTIMIZER_SGD) {
      if (opt->groups[g].o.sgd.momentum != 0.f)
        st = tc__optimizer_ensure_state(opt, TC__ST_MOMENTUM, fn);
    } else {
      st = tc__optimizer_ensure_state(opt, TC__ST_EXP_AVG, fn);
      if (st == TC_OK)
        st = tc__optimizer_ensure_state(opt, TC__ST_EXP_AVG_SQ, fn);
      if (st == TC_OK && opt->groups[g].o.adam.amsgrad)
        st = tc__optimizer_ensure_state(opt, TC__ST_MAX_EXP_AVG_SQ, fn);
    }
  }
  return st;
}

/* ---- the step count ---- */

tc_status tc__optimizer_sync_step(tc_optimizer *opt) {
  if (!opt->step_exposed)
    return TC_OK;
  int64_t v;
  tc_status st = tc_tensor_copy_to_host(opt->step_t, &v, sizeof v);
  if (st != TC_OK)
    return st;
  if (v < 0)
    return tc__error(
        TC_EINVAL, "tc_optimizer: %s holds %" PRId64 ", a negative step count",
        step_name, v);
  if (v > TC__MAX_COUNT)
    return tc__error(TC_EINVAL,
                     "tc_optimizer: %s holds %" PRId64
                     ", over the step limit 2^53",
                     step_name, v);
  opt->step = v;
  return TC_OK;
}

static tc_status publish_step(tc_optimizer *opt) {
  if (!opt->step_exposed)
    return TC_OK;
  return tc_tensor_copy_from_host(opt->step_t, &opt->step, sizeof opt->step);
}

TC_API tc_status tc_optimizer_get_step(tc_optimizer *opt, int64_t *out_step) {
  TC__CHECK_NULL(opt, "tc_optimizer_get_step");
  TC__CHECK_NULL(out_step, "tc_optimizer_get_step");
  tc_status st = tc__optimizer_sync_step(opt);
  if (st == TC_OK)
    *out_step = opt->step;
  return st;
}

TC_API tc_status tc_optimizer_set_step(tc_optimizer *opt, int64_t step) {
  TC__CHECK_NULL(opt, "tc_optimizer_set_step");
  if (step < 0)
    return tc__error(TC_EINVAL,
                     "tc_optimizer_set_step: step = %" PRId64 ", expected >= 0",
                     step);
  if (step > TC__MAX_COUNT)
    return tc__error(
        TC_EINVAL,
        "tc_optimizer_set_step: step = %" PRId64 ", over the limit 2^53", step);
  int64_t old = opt->step;
  opt->step = step;
  tc_status st = publish_step(opt);
  if (st != TC_OK)
    opt->step = old;
  return st;
}

/* ---- state access ---- */

TC_API int64_t tc_optimizer_num_state(const tc_optimizer *opt) {
  if (!opt)
    return -1;
  int64_t kinds = 0;
  for (int k = 0; k < TC__ST_KINDS; k++)
    kinds += opt->arena[k] != NULL;
  return kinds * opt->n + 1;
}

TC_API tc_status tc_optimizer_get_state(tc_optimizer *opt, int64_t i,
                                        const char **out_name,
                                        tc_tensor **out_t) {
  static const char fn[] = "tc_optimizer_get_state";
  TC__CHECK_NULL(opt, fn);
  TC__CHECK_NULL(out_name, fn);
  TC__CHECK_NULL(out_t, fn);
  int64_t count = tc_optimizer_num_state(opt);
  if (i < 0 || i >= count)
    return tc__error(TC_EINVAL, "%s: index %" PRId64 " not in [0, %" PRId64 ")",
                     fn, i, count);
  if (i == count - 1) {
    /* from now on the tensor and the host count are kept equal */
    tc_status st = tc__optimizer_sync_step(opt);
    if (st == TC_OK) {
      opt->step_exposed = 1;
      st = publish_step(opt);
    }
    if (st != TC_OK)
      return st;
    *out_name = step_name;
    *out_t = opt->step_t;
    return TC_OK;
  }
  /* parameter-major: all kinds of parameter 0, then parameter 1, ... */
  int64_t kinds = (count - 1) / opt->n, p = i / kinds, j = i % kinds;
  for (int k = 0; k < TC__ST_KINDS; k++) {
    if (!opt->arena[k])
      continue;
    if (j-- == 0) {
      *out_name = opt->state_name_ptr[k][p];
      *out_t = opt->views[k][p];
      return TC_OK;
    }
  }
  return tc__error(TC_EINVAL, "%s: index %" PRId64 " not found", fn, i);
}

/* ---- training ---- */

TC_API tc_status tc_optimizer_step(tc_optimizer *opt) {
  TC__CHECK_NULL(opt, "tc_optimizer_step");
  tc_status st = tc__optimizer_sync_step(opt);
  if (st != TC_OK)
    return st;
  if (opt->step >= TC__MAX_COUNT)
    return tc__error(TC_EINVAL,
                     "tc_optimizer_step: the step count reached its limit "
                     "2^53");
  st = opt->type == TC_OPTIMIZER_SGD ? tc__sgd_step(opt) : tc__adam_step(opt);
  if (st != TC_OK)
    return st;
  opt->step++;
  return publish_step(opt);
}

TC_API tc_status tc_optimizer_zero_grad(tc_optimizer *opt) {
  TC__CHECK_NULL(opt, "tc_optimizer_zero_grad");
  tc_backend *be = opt->be;
  for (int64_t r = 0; r < opt->n_runs; r++) {
    const tc__opt_run *run = &opt->runs[r];
    if (run->numel == 0)
      continue;
    tc_status st =
        be->iface->memset(be->ctx, tc_tensor_data(opt->grads[run->first]), 0,
                          (size_t)run->numel * sizeof(float));
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

/* ---- queries and groups ---- */

TC_API tc_optimizer_type tc_optimizer_get_type(const tc_optimizer *opt) {
  return opt ? opt->type : TC_OPTIMIZER_SGD;
}

TC_API int64_t tc_optimizer_num_params(const tc_optimizer *opt) {
  return opt ? opt->n : -1;
}

TC_API const char *tc_optimizer_param_name(const tc_optimizer *opt, int64_t i) {
  return opt && i >= 0 && i < opt->n ? opt->names[i] : NULL;
}

TC_API int64_t tc_optimizer_num_groups(const tc_optimizer *opt) {
  return opt ? opt->n_groups : -1;
}

static tc_status check_group(const tc_optimizer *opt, int64_t g,
                             const char *fn) {
  TC__CHECK_NULL(opt, fn);
  if (g < 0 || g >= opt->n_groups)
    return tc__error(TC_EINVAL, "%s: group %" PRId64 " not in [0, %" PRId64 ")",
                     fn, g, opt->n_groups);
  return TC_OK;
}

TC_API tc_status tc_optimizer_set_param_group(tc_optimizer *opt, int64_t index,
                                              int64_t group) {
  static const char fn[] = "tc_optimizer_set_param_group";
  tc_status st = check_group(opt, group, fn);
  if (st != TC_OK)
    return st;
  if (index < 0 || index >= opt->n)
    return tc__error(TC_EINVAL,
                     "%s: parameter %" PRId64 " not in [0, %" PRId64 ")", fn,
                     index, opt->n);
  opt->group_of[index] = group;
  compute_runs(opt);
  return TC_OK;
}

TC_API tc_status tc_optimizer_set_param_group_by_name(tc_optimizer *opt,
                                                      const char *name,
                                                      int64_t group) {
  static const char fn[] = "tc_optimizer_set_param_group_by_name";
  tc_status st = check_group(opt, group, fn);
  if (st != TC_OK)
    return st;
  TC__CHECK_NULL(name, fn);
  for (int64_t i = 0; i < opt->n; i++)
    if (strcmp(opt->names[i], name) == 0)
      return tc_optimizer_set_param_group(opt, i, group);
  return tc__error(TC_ENOTFOUND, "%s: no parameter named '%s'", fn, name);
}

TC_API int64_t tc_optimizer_get_param_group(const tc_optimizer *opt,
                                            int64_t index) {
  return opt && index >= 0 && index < opt->n ? opt->group_of[index] : -1;
}

TC_API tc_status tc_optimizer_set_group_where(tc_optimizer *opt,
                                              tc_param_filter_fn filter,
                                              void *user, int64_t group,
                                              int64_t *out_count) {
  static const char fn[] = "tc_optimizer_set_group_where";
  tc_status st = check_group(opt, group, fn);
  if (st != TC_OK)
    return st;
  TC__CHECK_NULL(filter, fn);
  int64_t count = 0;
  for (int64_t i = 0; i < opt->n; i++)
    if (filter(user, opt->names[i], opt->params[i])) {
      opt->group_of[i] = group;
      count++;
    }
  compute_runs(opt);
  if (out_count)
    *out_count = count;
  return TC_OK;
}

TC_API int tc_param_filter_no_decay(void *user, const char *name,
                                    const tc_tensor *param) {
  (void)user;
  (void)name;
  return param && param->ndim <= 1;
}

TC_API tc_status tc_optimizer_get_lr(const tc_optimizer *opt, int64_t group,
                                     double *out_lr) {
  tc_status st = check_group(opt, group, "tc_optimizer_get_lr");
  if (st != TC_OK)
    return st;
  TC__CHECK_NULL(out_lr, "tc_optimizer_get_lr");
  *out_lr = opt->groups[group].lr;
  return TC_OK;
}

TC_API tc_status tc_optimizer_get_base_lr(const tc_optimizer *opt,
                                          int64_t group, double *out_lr) {
  tc_status st = check_group(opt, group, "tc_optimizer_get_base_lr");
  if (st != TC_OK)
    return st;
  TC__CHECK_NULL(out_lr, "tc_optimizer_get_base_lr");
  *out_lr = opt->groups[group].base_lr;
  return TC_OK;
}

TC_API tc_status tc_optimizer_set_lr(tc_optimizer *opt, int64_t group,
                                     double lr) {
  tc_status st = check_group(opt, group, "tc_optimizer_set_lr");
  if (st != TC_OK)
    return st;
  if (!(lr >= 0 && lr <= 3.0e38))
    return tc__error(
        TC_EINVAL, "tc_optimizer_set_lr: lr = %g, expected a finite value >= 0",
        lr);
  opt->groups[group].lr = lr;
  return TC_OK;
}

tc_status tc__optimizer_put_group(tc_optimizer *opt, int64_t g,
                                  const tc__opt_group *grp, const char *fn) {
  if (g == opt->n_groups && g == opt->cap_groups) {
    int64_t cap = opt->cap_groups * 2;
    tc__opt_group *ng = tc__calloc((size_t)cap, sizeof *ng);
    if (!ng)
      return tc__oom(fn);
    memcpy(ng, opt->groups, (size_t)opt->n_groups * sizeof *ng);
    tc__free(opt->groups);
    opt->groups = ng;
    opt->cap_groups = cap;
  }
  tc__opt_group old = opt->groups[g];
  int64_t old_n = opt->n_groups;
  opt->groups[g] = *grp;
  if (g == opt->n_groups)
    opt->n_groups++;
  tc_status st = tc__optimizer_ensure_needed_state(opt, fn);
  if (st != TC_OK) {
    opt->groups[g] = old;
    opt->n_groups = old_n;
  }
  return st;
}

void tc__optimizer_group_row(const tc_optimizer *opt, int64_t g,
                             double row[TC__OPT_ROW]) {
  const tc__opt_group *grp = &opt->groups[g];
  row[0] = (double)opt->type;
  row[1] = grp->base_lr;
  if (opt->type == TC_OPTIMIZER_SGD) {
    row[2] = grp->o.sgd.momentum;
    row[3] = grp->o.sgd.dampening;
    row[4] = grp->o.sgd.weight_decay;
    row[5] = grp->o.sgd.nesterov != 0;
    row[6] = 0;
  } else {
    row[2] = grp->o.adam.beta1;
    row[3] = grp->o.adam.beta2;
    row[4] = grp->o.adam.eps;
    row[5] = grp->o.adam.weight_decay;
    row[6] = grp->o.adam.amsgrad != 0;
  }
}

const char *tc__optimizer_row_field(int kind, int k) {
  static const char *const sgd[TC__OPT_ROW] = {
      "kind", "lr", "momentum", "dampening", "weight_decay", "nesterov", "-"};
  static const char *const adam[TC__OPT_ROW] = {
      "kind", "lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"};
  if (k < 0 || k >= TC__OPT_ROW)
    return "?";
  return kind == TC_OPTIMIZER_SGD ? sgd[k] : adam[k];
}

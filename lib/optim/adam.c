/*
 * adam.c - torch.optim.Adam and AdamW: options (defaults, struct-size
 * handling, checks), creation, group options and the update over runs of
 * parameters through the backend's adam_update slot (which holds the
 * formula, see tc_adam_args). The step passed counts from 1.
 */
#include <math.h>
#include <string.h>

#include "../options.h"
#include "optim_internal.h"

static tc_status options_init(tc_adam_options *o, size_t struct_size,
                              const tc_adam_options *d, const char *fn) {
  return tc__options_init(o, struct_size, d, sizeof *d, TC__SIZE0_ADAM_OPTIONS,
                          fn);
}

TC_API tc_status tc_adam_options_init(tc_adam_options *o, size_t struct_size) {
  static const tc_adam_options d = TC_ADAM_OPTIONS_INIT;
  return options_init(o, struct_size, &d, "tc_adam_options_init");
}

TC_API tc_status tc_adamw_options_init(tc_adam_options *o, size_t struct_size) {
  static const tc_adam_options d = TC_ADAMW_OPTIONS_INIT;
  return options_init(o, struct_size, &d, "tc_adamw_options_init");
}

static int finite_nonneg(float x) {
  return x >= 0.f && isfinite(x);
}

tc_status tc__adam_options_load(tc_adam_options *out, const tc_adam_options *in,
                                int adamw, const char *fn) {
  static const tc_adam_options a = TC_ADAM_OPTIONS_INIT,
                               w = TC_ADAMW_OPTIONS_INIT;
  tc_adam_options o;
  tc_status st = tc__options_accept(&o, sizeof o, in, adamw ? &w : &a,
                                    TC__SIZE0_ADAM_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (!finite_nonneg(o.lr))
    return tc__error(TC_EINVAL, "%s: lr = %g, expected a finite value >= 0", fn,
                     (double)o.lr);
  if (!finite_nonneg(o.eps))
    return tc__error(TC_EINVAL, "%s: eps = %g, expected a finite value >= 0",
                     fn, (double)o.eps);
  if (!(o.beta1 >= 0.f && o.beta1 < 1.f) || !(o.beta2 >= 0.f && o.beta2 < 1.f))
    return tc__error(TC_EINVAL, "%s: betas = (%g, %g), each must be in [0, 1)",
                     fn, (double)o.beta1, (double)o.beta2);
  if (!finite_nonneg(o.weight_decay))
    return tc__error(TC_EINVAL,
                     "%s: weight_decay = %g, expected a finite value >= 0", fn,
                     (double)o.weight_decay);
  *out = o;
  return TC_OK;
}

static tc_status adam_group(tc__opt_group *g, const tc_adam_options *o,
                            int adamw, const char *fn) {
  memset(g, 0, sizeof *g);
  tc_status st = tc__adam_options_load(&g->o.adam, o, adamw, fn);
  g->lr = g->base_lr = g->o.adam.lr;
  return st;
}

static tc_status create(tc_optimizer **out, tc_optimizer_type type,
                        tc_tensor *const *params, tc_tensor *const *grads,
                        const char *const *names, int64_t n,
                        const tc_adam_options *o, const char *fn) {
  TC__CHECK_NULL(out, fn);
  tc__opt_group g;
  tc_status st = adam_group(&g, o, type == TC_OPTIMIZER_ADAMW, fn);
  tc_optimizer *opt = NULL;
  if (st == TC_OK)
    st = tc__optimizer_create(&opt, type, params, grads, names, n, &g, fn);
  if (st == TC_OK)
    st = tc__optimizer_ensure_needed_state(opt, fn);
  if (st != TC_OK) {
    tc_optimizer_destroy(opt);
    return st;
  }
  *out = opt;
  return TC_OK;
}

TC_API tc_status tc_optimizer_create_adam(tc_optimizer **out,
                                          tc_tensor *const *params,
                                          tc_tensor *const *grads,
                                          const char *const *names, int64_t n,
                                          const tc_adam_options *o) {
  return create(out, TC_OPTIMIZER_ADAM, params, grads, names, n, o,
                "tc_optimizer_create_adam");
}

TC_API tc_status tc_optimizer_create_adamw(tc_optimizer **out,
                                           tc_tensor *const *params,
                                           tc_tensor *const *grads,
                                           const char *const *names, int64_t n,
                                           const tc_adam_options *o) {
  return create(out, TC_OPTIMIZER_ADAMW, params, grads, names, n, o,
                "tc_optimizer_create_adamw");
}

static tc_status create_for_model(tc_optimizer **out, tc_optimizer_type type,
                                  tc_model *m, const tc_adam_options *o,
                                  const char *fn) {
  TC__CHECK_NULL(out, fn);
  tc__param_lists l;
  tc_status st = tc__param_lists_from_model(&l, m, fn);
  if (st != TC_OK)
    return st;
  st = create(out, type, l.params, l.grads, l.names, l.n, o, fn);
  tc__param_lists_free(&l);
  return st;
}

TC_API tc_status tc_optimizer_create_adam_for_model(tc_optimizer **out,
                                                    tc_model *m,
                                                    const tc_adam_options *o) {
  return create_for_model(out, TC_OPTIMIZER_ADAM, m, o,
                          "tc_optimizer_create_adam_for_model");
}

TC_API tc_status tc_optimizer_create_adamw_for_model(tc_optimizer **out,
                                                     tc_model *m,
                                                     const tc_adam_options *o) {
  return create_for_model(out, TC_OPTIMIZER_ADAMW, m, o,
                          "tc_optimizer_create_adamw_for_model");
}

static tc_status put_adam_group(tc_optimizer *opt, int64_t g,
                                const tc_adam_options *o, const char *fn) {
  if (opt->type == TC_OPTIMIZER_SGD)
    return tc__error(TC_EINVAL,
                     "%s: the optimizer is SGD (use the _sgd variant)", fn);
  tc__opt_group grp;
  tc_status st = adam_group(&grp, o, opt->type == TC_OPTIMIZER_ADAMW, fn);
  return st == TC_OK ? tc__optimizer_put_group(opt, g, &grp, fn) : st;
}

TC_API tc_status tc_optimizer_add_group_adam(tc_optimizer *opt,
                                             const tc_adam_options *o,
                                             int64_t *out_group) {
  static const char fn[] = "tc_optimizer_add_group_adam";
  TC__CHECK_NULL(opt, fn);
  int64_t g = opt->n_groups;
  tc_status st = put_adam_group(opt, g, o, fn);
  if (st == TC_OK && out_group)
    *out_group = g;
  return st;
}

TC_API tc_status tc_optimizer_set_group_adam(tc_optimizer *opt, int64_t group,
                                             const tc_adam_options *o) {
  static const char fn[] = "tc_optimizer_set_group_adam";
  TC__CHECK_NULL(opt, fn);
  if (group < 0 || group >= opt->n_groups)
    return tc__error(TC_EINVAL, "%s: group %lld not in [0, %lld)", fn,
                     (long long)group, (long long)opt->n_groups);
  return put_adam_group(opt, group, o, fn);
}

tc_status tc__adam_step(tc_optimizer *opt) {
  tc_backend *be = opt->be;
  if (!TC__HAS_SLOT(be->iface, adam_update))
    return tc__error(TC_EUNSUPPORTED,
                     "tc_optimizer_step: backend '%s' has no adam_update",
                     be->iface->name);
  for (int64_t r = 0; r < opt->n_runs; r++) {
    const tc__opt_run *run = &opt->runs[r];
    if (run->numel == 0)
      continue;
    const tc__opt_group *g = &opt->groups[run->group];
    const tc_adam_options *o = &g->o.adam;
    tc_adam_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.n = run->numel;
    a.lr = (float)g->lr;
    a.beta1 = o->beta1;
    a.beta2 = o->beta2;
    a.eps = o->eps;
    a.weight_decay = o->weight_decay;
    a.decoupled = opt->type == TC_OPTIMIZER_ADAMW;
    a.amsgrad = o->amsgrad != 0;
    a.step = opt->step + 1;
    a.param = tc_tensor_data(opt->params[run->first]);
    a.grad = tc_tensor_data(opt->grads[run->first]);
    a.exp_avg = tc__optimizer_state_ptr(opt, TC__ST_EXP_AVG, run->first);
    a.exp_avg_sq = tc__optimizer_state_ptr(opt, TC__ST_EXP_AVG_SQ, run->first);
    a.max_exp_avg_sq =
        a.amsgrad
            ? tc__optimizer_state_ptr(opt, TC__ST_MAX_EXP_AVG_SQ, run->first)
            : NULL;
    tc_status st = be->iface->adam_update(be->ctx, &a);
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

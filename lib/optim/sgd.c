/*
 * sgd.c - torch.optim.SGD: options (defaults, struct-size handling, checks),
 * creation, group options and the update over runs of parameters through
 * the backend's sgd_update slot. The formula itself is the backend's (see
 * tc_sgd_args); PyTorch's first-step rule buf = g is passed as first_step
 * when the optimizer's step count is 0.
 */
#include <math.h>
#include <string.h>

#include "../options.h"
#include "optim_internal.h"

static int finite_nonneg(float x) {
  return x >= 0.f && isfinite(x);
}

TC_API tc_status tc_sgd_options_init(tc_sgd_options *o, size_t struct_size) {
  static const tc_sgd_options d = TC_SGD_OPTIONS_INIT;
  return tc__options_init(o, struct_size, &d, sizeof d, TC__SIZE0_SGD_OPTIONS,
                          "tc_sgd_options_init");
}

tc_status tc__sgd_options_load(tc_sgd_options *out, const tc_sgd_options *in,
                               const char *fn) {
  static const tc_sgd_options d = TC_SGD_OPTIONS_INIT;
  tc_sgd_options o;
  tc_status st =
      tc__options_accept(&o, sizeof o, in, &d, TC__SIZE0_SGD_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (!finite_nonneg(o.lr))
    return tc__error(TC_EINVAL, "%s: lr = %g, expected a finite value >= 0", fn,
                     (double)o.lr);
  if (!finite_nonneg(o.momentum))
    return tc__error(TC_EINVAL,
                     "%s: momentum = %g, expected a finite value >= 0", fn,
                     (double)o.momentum);
  if (!isfinite(o.dampening))
    return tc__error(TC_EINVAL, "%s: dampening = %g is not finite", fn,
                     (double)o.dampening);
  if (!finite_nonneg(o.weight_decay))
    return tc__error(TC_EINVAL,
                     "%s: weight_decay = %g, expected a finite value >= 0", fn,
                     (double)o.weight_decay);
  if (o.nesterov && (o.momentum <= 0.f || o.dampening != 0.f))
    return tc__error(TC_EINVAL,
                     "%s: nesterov needs momentum > 0 and dampening 0 "
                     "(momentum %g, dampening %g)",
                     fn, (double)o.momentum, (double)o.dampening);
  if (o.reserved0 != 0)
    return tc__error(TC_EINVAL, "%s: reserved0 = %d, expected 0", fn,
                     (int)o.reserved0);
  *out = o;
  return TC_OK;
}

static tc_status sgd_group(tc__opt_group *g, const tc_sgd_options *o,
                           const char *fn) {
  memset(g, 0, sizeof *g);
  tc_status st = tc__sgd_options_load(&g->o.sgd, o, fn);
  g->lr = g->base_lr = g->o.sgd.lr;
  return st;
}

static tc_status create(tc_optimizer **out, tc_tensor *const *params,
                        tc_tensor *const *grads, const char *const *names,
                        int64_t n, const tc_sgd_options *o, const char *fn) {
  TC__CHECK_NULL(out, fn);
  tc__opt_group g;
  tc_status st = sgd_group(&g, o, fn);
  tc_optimizer *opt = NULL;
  if (st == TC_OK)
    st = tc__optimizer_create(&opt, TC_OPTIMIZER_SGD, params, grads, names, n,
                              &g, fn);
  if (st == TC_OK)
    st = tc__optimizer_ensure_needed_state(opt, fn);
  if (st != TC_OK) {
    tc_optimizer_destroy(opt);
    return st;
  }
  *out = opt;
  return TC_OK;
}

TC_API tc_status tc_optimizer_create_sgd(tc_optimizer **out,
                                         tc_tensor *const *params,
                                         tc_tensor *const *grads,
                                         const char *const *names, int64_t n,
                                         const tc_sgd_options *o) {
  return create(out, params, grads, names, n, o, "tc_optimizer_create_sgd");
}

TC_API tc_status tc_optimizer_create_sgd_for_model(tc_optimizer **out,
                                                   tc_model *m,
                                                   const tc_sgd_options *o) {
  static const char fn[] = "tc_optimizer_create_sgd_for_model";
  TC__CHECK_NULL(out, fn);
  tc__param_lists l;
  tc_status st = tc__param_lists_from_model(&l, m, fn);
  if (st != TC_OK)
    return st;
  st = create(out, l.params, l.grads, l.names, l.n, o, fn);
  tc__param_lists_free(&l);
  return st;
}

static tc_status put_sgd_group(tc_optimizer *opt, int64_t g,
                               const tc_sgd_options *o, const char *fn) {
  if (opt->type != TC_OPTIMIZER_SGD)
    return tc__error(
        TC_EINVAL, "%s: the optimizer is not SGD (use the _adam variant)", fn);
  tc__opt_group grp;
  tc_status st = sgd_group(&grp, o, fn);
  return st == TC_OK ? tc__optimizer_put_group(opt, g, &grp, fn) : st;
}

TC_API tc_status tc_optimizer_add_group_sgd(tc_optimizer *opt,
                                            const tc_sgd_options *o,
                                            int64_t *out_group) {
  static const char fn[] = "tc_optimizer_add_group_sgd";
  TC__CHECK_NULL(opt, fn);
  int64_t g = opt->n_groups;
  tc_status st = put_sgd_group(opt, g, o, fn);
  if (st == TC_OK && out_group)
    *out_group = g;
  return st;
}

TC_API tc_status tc_optimizer_set_group_sgd(tc_optimizer *opt, int64_t group,
                                            const tc_sgd_options *o) {
  static const char fn[] = "tc_optimizer_set_group_sgd";
  TC__CHECK_NULL(opt, fn);
  if (group < 0 || group >= opt->n_groups)
    return tc__error(TC_EINVAL, "%s: group %lld not in [0, %lld)", fn,
                     (long long)group, (long long)opt->n_groups);
  return put_sgd_group(opt, group, o, fn);
}

tc_status tc__sgd_step(tc_optimizer *opt) {
  tc_backend *be = opt->be;
  if (!TC__HAS_SLOT(be->iface, sgd_update))
    return tc__error(TC_EUNSUPPORTED,
                     "tc_optimizer_step: backend '%s' has no sgd_update",
                     be->iface->name);
  for (int64_t r = 0; r < opt->n_runs; r++) {
    const tc__opt_run *run = &opt->runs[r];
    if (run->numel == 0)
      continue;
    const tc__opt_group *g = &opt->groups[run->group];
    const tc_sgd_options *o = &g->o.sgd;
    tc_sgd_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.n = run->numel;
    a.lr = (float)g->lr;
    a.momentum = o->momentum;
    a.dampening = o->dampening;
    a.weight_decay = o->weight_decay;
    a.nesterov = o->nesterov != 0;
    a.first_step = opt->step == 0;
    a.param = tc_tensor_data(opt->params[run->first]);
    a.grad = tc_tensor_data(opt->grads[run->first]);
    a.momentum_buf =
        o->momentum != 0.f
            ? tc__optimizer_state_ptr(opt, TC__ST_MOMENTUM, run->first)
            : NULL;
    tc_status st = be->iface->sgd_update(be->ctx, &a);
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

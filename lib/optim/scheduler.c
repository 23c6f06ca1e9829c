/*
 * scheduler.c - learning-rate schedulers with torch.optim.lr_scheduler's
 * closed forms: StepLR, MultiStepLR, CosineAnnealingLR, LinearLR and
 * SequentialLR (e.g. warmup then cosine).
 *
 * A scheduler's whole state is last_epoch: each step recomputes every
 * group's lr from the group's base lr, in double precision, rather than
 * chaining multiplications as PyTorch's step() does; both give the same
 * values up to rounding (~1e-16 relative), and the closed form makes resume
 * exact. Groups added to the optimizer later are scheduled too.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim_internal.h"

#define TC__PI 3.14159265358979323846

typedef enum sched_kind {
  SCHED_STEP,
  SCHED_MULTISTEP,
  SCHED_COSINE,
  SCHED_LINEAR,
  SCHED_SEQUENTIAL
} sched_kind;

struct tc_scheduler {
  sched_kind kind;
  tc_optimizer *opt;
  int64_t last_epoch;
  int owned;           /* a child of a sequential scheduler */
  int64_t step_size;   /* StepLR */
  double gamma;        /* StepLR, MultiStepLR */
  int64_t *milestones; /* MultiStepLR: sorted (n); sequential: (n - 1) */
  int64_t n;           /* milestones (MultiStepLR) or children */
  int64_t t_max;       /* cosine */
  double eta_min;
  double start, end; /* LinearLR */
  int64_t total_iters;
  tc_scheduler **children; /* sequential (n) */
};

static double lr_at(const tc_scheduler *s, double base, int64_t t) {
  switch (s->kind) {
  case SCHED_STEP:
    return base * pow(s->gamma, (double)(t / s->step_size));
  case SCHED_MULTISTEP: {
    int64_t k = 0;
    while (k < s->n && s->milestones[k] <= t)
      k++;
    return base * pow(s->gamma, (double)k);
  }
  case SCHED_COSINE:
    return s->eta_min + (base - s->eta_min) *
                            (1.0 + cos(TC__PI * (double)t / (double)s->t_max)) /
                            2.0;
  case SCHED_LINEAR: {
    int64_t c = t < s->total_iters ? t : s->total_iters;
    return base * (s->start +
                   (s->end - s->start) * (double)c / (double)s->total_iters);
  }
  case SCHED_SEQUENTIAL: {
    int64_t i = 0;
    while (i < s->n - 1 && s->milestones[i] <= t)
      i++;
    return lr_at(s->children[i], base, t - (i ? s->milestones[i - 1] : 0));
  }
  }
  return base;
}

static void apply(tc_scheduler *s) {
  tc_optimizer *opt = s->opt;
  for (int64_t g = 0; g < opt->n_groups; g++)
    tc__optimizer_put_lr(opt, g,
                         lr_at(s, opt->groups[g].base_lr, s->last_epoch));
}

/* The checks every constructor makes first. */
static tc_status check_out_opt(tc_scheduler **out, const tc_optimizer *opt,
                               const char *fn) {
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(opt, fn);
  return TC_OK;
}

static tc_status new_sched(tc_scheduler **out, tc_optimizer *opt,
                           sched_kind kind, const char *fn) {
  tc_scheduler *s = tc__calloc(1, sizeof *s);
  if (!s)
    return tc__oom(fn);
  s->kind = kind;
  s->opt = opt;
  *out = s;
  return TC_OK;
}

/* Finishes creation: PyTorch's constructor sets the lr of epoch 0. */
static tc_status finish(tc_scheduler **out, tc_scheduler *s) {
  apply(s);
  *out = s;
  return TC_OK;
}

TC_API tc_status tc_scheduler_create_step(tc_scheduler **out, tc_optimizer *opt,
                                          int64_t step_size, double gamma) {
  static const char fn[] = "tc_scheduler_create_step";
  tc_status st = check_out_opt(out, opt, fn);
  if (st != TC_OK)
    return st;
  if (step_size < 1)
    return tc__error(TC_EINVAL, "%s: step_size = %lld, expected >= 1", fn,
                     (long long)step_size);
  if (!(gamma >= 0) || !isfinite(gamma))
    return tc__error(TC_EINVAL, "%s: gamma = %g, expected a finite value >= 0",
                     fn, gamma);
  tc_scheduler *s = NULL;
  st = new_sched(&s, opt, SCHED_STEP, fn);
  if (st != TC_OK)
    return st;
  s->step_size = step_size;
  s->gamma = gamma;
  return finish(out, s);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

TC_API tc_status tc_scheduler_create_multistep(tc_scheduler **out,
                                               tc_optimizer *opt,
                                               const int64_t *milestones,
                                               int64_t n, double gamma) {
  static const char fn[] = "tc_scheduler_create_multistep";
  tc_status st = check_out_opt(out, opt, fn);
  if (st != TC_OK)
    return st;
  if (n < 0 || n > (1 << 24) || (n > 0 && !milestones))
    return tc__error(TC_EINVAL, "%s: %lld milestones%s", fn, (long long)n,
                     n > 0 && !milestones ? " but the array is NULL" : "");
  for (int64_t i = 0; i < n; i++)
    if (milestones[i] < 0)
      return tc__error(TC_EINVAL, "%s: milestones[%lld] = %lld is negative", fn,
                       (long long)i, (long long)milestones[i]);
  if (!(gamma >= 0) || !isfinite(gamma))
    return tc__error(TC_EINVAL, "%s: gamma = %g, expected a finite value >= 0",
                     fn, gamma);
  tc_scheduler *s = NULL;
  st = new_sched(&s, opt, SCHED_MULTISTEP, fn);
  if (st != TC_OK)
    return st;
  if (n > 0) {
    s->milestones = tc__calloc((size_t)n, sizeof *s->milestones);
    if (!s->milestones) {
      tc__free(s);
      return tc__oom(fn);
    }
    memcpy(s->milestones, milestones, (size_t)n * sizeof *milestones);
    qsort(s->milestones, (size_t)n, sizeof *s->milestones, cmp_i64);
  }
  s->n = n;
  s->gamma = gamma;
  return finish(out, s);
}

TC_API tc_status tc_scheduler_create_cosine(tc_scheduler **out,
                                            tc_optimizer *opt, int64_t t_max,
                                            double eta_min) {
  static const char fn[] = "tc_scheduler_create_cosine";
  tc_status st = check_out_opt(out, opt, fn);
  if (st != TC_OK)
    return st;
  if (t_max < 1)
    return tc__error(TC_EINVAL, "%s: t_max = %lld, expected >= 1", fn,
                     (long long)t_max);
  if (!(eta_min >= 0) || !isfinite(eta_min))
    return tc__error(TC_EINVAL,
                     "%s: eta_min = %g, expected a finite value >= 0", fn,
                     eta_min);
  tc_scheduler *s = NULL;
  st = new_sched(&s, opt, SCHED_COSINE, fn);
  if (st != TC_OK)
    return st;
  s->t_max = t_max;
  s->eta_min = eta_min;
  return finish(out, s);
}

TC_API tc_status tc_scheduler_create_linear(tc_scheduler **out,
                                            tc_optimizer *opt,
                                            double start_factor,
                                            double end_factor,
                                            int64_t total_iters) {
  static const char fn[] = "tc_scheduler_create_linear";
  tc_status st = check_out_opt(out, opt, fn);
  if (st != TC_OK)
    return st;
  /* PyTorch's own checks */
  if (!(start_factor > 0 && start_factor <= 1))
    return tc__error(TC_EINVAL, "%s: start_factor = %g, expected in (0, 1]", fn,
                     start_factor);
  if (!(end_factor >= 0 && end_factor <= 1))
    return tc__error(TC_EINVAL, "%s: end_factor = %g, expected in [0, 1]", fn,
                     end_factor);
  if (total_iters < 1)
    return tc__error(TC_EINVAL, "%s: total_iters = %lld, expected >= 1", fn,
                     (long long)total_iters);
  tc_scheduler *s = NULL;
  st = new_sched(&s, opt, SCHED_LINEAR, fn);
  if (st != TC_OK)
    return st;
  s->start = start_factor;
  s->end = end_factor;
  s->total_iters = total_iters;
  return finish(out, s);
}

TC_API tc_status tc_scheduler_create_sequential(tc_scheduler **out,
                                                tc_optimizer *opt,
                                                tc_scheduler *const *children,
                                                int64_t n,
                                                const int64_t *milestones) {
  static const char fn[] = "tc_scheduler_create_sequential";
  tc_status st = check_out_opt(out, opt, fn);
  if (st != TC_OK)
    return st;
  TC__CHECK_NULL(children, fn);
  if (n < 1 || n > (1 << 20))
    return tc__error(TC_EINVAL, "%s: n = %lld, expected >= 1", fn,
                     (long long)n);
  if (n > 1 && !milestones)
    return tc__error(TC_EINVAL, "%s: argument 'milestones' is NULL", fn);
  for (int64_t i = 0; i < n; i++) {
    const tc_scheduler *c = children[i];
    if (!c || c->opt != opt || c->owned)
      return tc__error(
          TC_EINVAL,
          "%s: children[%lld] is NULL, of another optimizer, or already owned",
          fn, (long long)i);
    for (int64_t j = 0; j < i; j++)
      if (children[j] == c)
        return tc__error(TC_EINVAL, "%s: children[%lld] repeats children[%lld]",
                         fn, (long long)i, (long long)j);
  }
  for (int64_t i = 0; i + 1 < n; i++)
    if (milestones[i] < 1 || (i > 0 && milestones[i] <= milestones[i - 1]))
      return tc__error(TC_EINVAL,
                       "%s: milestones must be >= 1 and strictly increasing "
                       "(milestones[%lld] = %lld)",
                       fn, (long long)i, (long long)milestones[i]);
  tc_scheduler *s = NULL;
  st = new_sched(&s, opt, SCHED_SEQUENTIAL, fn);
  if (st != TC_OK)
    return st;
  s->children = tc__calloc((size_t)n, sizeof *s->children);
  s->milestones = tc__calloc((size_t)n, sizeof *s->milestones);
  if (!s->children || !s->milestones) {
    tc__free(s->children);
    tc__free(s->milestones);
    tc__free(s);
    return tc__oom(fn);
  }
  for (int64_t i = 0; i < n; i++) {
    s->children[i] = children[i];
    s->children[i]->owned = 1;
  }
  if (n > 1)
    memcpy(s->milestones, milestones, (size_t)(n - 1) * sizeof *milestones);
  s->n = n;
  return finish(out, s);
}

TC_API void tc_scheduler_destroy(tc_scheduler *s) {
  if (!s)
    return;
  if (s->kind == SCHED_SEQUENTIAL)
    for (int64_t i = 0; i < s->n; i++)
      tc_scheduler_destroy(s->children[i]);
  tc__free(s->children);
  tc__free(s->milestones);
  tc__free(s);
}

static tc_status check_free(const tc_scheduler *s, const char *fn) {
  TC__CHECK_NULL(s, fn);
  if (s->owned)
    return tc__error(
        TC_EINVAL,
        "%s: this scheduler belongs to a sequential scheduler; step that one",
        fn);
  return TC_OK;
}

TC_API tc_status tc_scheduler_step(tc_scheduler *s) {
  tc_status st = check_free(s, "tc_scheduler_step");
  if (st != TC_OK)
    return st;
  if (s->last_epoch >= TC__MAX_COUNT)
    return tc__error(TC_EINVAL,
                     "tc_scheduler_step: last_epoch reached its limit 2^53");
  s->last_epoch++;
  apply(s);
  return TC_OK;
}

TC_API tc_status tc_scheduler_get_lr(const tc_scheduler *s, int64_t group,
                                     double *out_lr) {
  static const char fn[] = "tc_scheduler_get_lr";
  TC__CHECK_NULL(s, fn);
  TC__CHECK_NULL(out_lr, fn);
  if (group < 0 || group >= s->opt->n_groups)
    return tc__error(TC_EINVAL, "%s: group %lld not in [0, %lld)", fn,
                     (long long)group, (long long)s->opt->n_groups);
  *out_lr = lr_at(s, s->opt->groups[group].base_lr, s->last_epoch);
  return TC_OK;
}

TC_API int64_t tc_scheduler_get_last_epoch(const tc_scheduler *s) {
  return s ? s->last_epoch : -1;
}

TC_API tc_status tc_scheduler_set_last_epoch(tc_scheduler *s,
                                             int64_t last_epoch) {
  static const char fn[] = "tc_scheduler_set_last_epoch";
  tc_status st = check_free(s, fn);
  if (st != TC_OK)
    return st;
  if (last_epoch < 0 || last_epoch > TC__MAX_COUNT)
    return tc__error(TC_EINVAL,
                     "%s: last_epoch = %lld, expected 0 to 2^53 (the limit)",
                     fn, (long long)last_epoch);
  s->last_epoch = last_epoch;
  apply(s);
  return TC_OK;
}

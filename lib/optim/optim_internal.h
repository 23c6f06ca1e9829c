/*
 * optim_internal.h - the optimizer object shared by lib/optim/ sources.
 *
 * Parameters are borrowed; each state kind (momentum buffer, exp_avg, ...)
 * is one flat arena tensor on the parameters' backend, with parameter i's
 * slice at state_off[i] (contiguous, in parameter order) and a view tensor
 * per parameter for tc_optimizer_get_state. A "run" is a maximal sequence of
 * consecutive parameters in the same group whose parameters and gradients
 * are also contiguous in memory (a model's arenas): one backend call
 * updates a whole run.
 */
#ifndef TC_OPTIM_INTERNAL_H
#define TC_OPTIM_INTERNAL_H

#include "../internal.h"

enum { /* state kinds */
       TC__ST_MOMENTUM = 0,
       TC__ST_EXP_AVG = 1,
       TC__ST_EXP_AVG_SQ = 2,
       TC__ST_MAX_EXP_AVG_SQ = 3,
       TC__ST_KINDS = 4
};

typedef struct tc__opt_group {
  double lr;      /* current, set by tc_optimizer_set_lr or a scheduler */
  double base_lr; /* PyTorch's initial_lr: the options' lr */
  union {
    tc_sgd_options sgd;
    tc_adam_options adam;
  } o;
} tc__opt_group;

typedef struct tc__opt_run {
  int64_t first, count; /* parameters [first, first + count) */
  int64_t numel;        /* elements of the run */
  int64_t group;
} tc__opt_run;

struct tc_optimizer {
  tc_optimizer_type type;
  tc_backend *be; /* borrowed from the parameters */
  int64_t n;
  tc_tensor **params, **grads; /* (n) borrowed */
  char **names;                /* (n) into name_blob */
  char *name_blob;
  int64_t *group_of;  /* (n) */
  int64_t *state_off; /* (n) element offset of parameter i in an arena */
  int64_t total;      /* elements of all parameters */

  tc__opt_group *groups;
  int64_t n_groups, cap_groups;

  tc__opt_run *runs; /* (n) capacity; n_runs valid */
  int64_t n_runs;

  tc_tensor *arena[TC__ST_KINDS];  /* (total) or NULL when not needed */
  tc_tensor **views[TC__ST_KINDS]; /* (n) per-parameter views */
  char *state_names[TC__ST_KINDS]; /* n names, NUL-separated */
  char **state_name_ptr[TC__ST_KINDS];

  int64_t step;      /* steps taken (host copy) */
  tc_tensor *step_t; /* TC_INT64 scalar for checkpoints */
  int step_exposed;  /* step_t handed out: read it back before use */
};

/* Option checks and struct-size handling (sgd.c, adam.c). `fn` names the
 * public caller. A NULL `in` gives the defaults. */
tc_status tc__sgd_options_load(tc_sgd_options *out, const tc_sgd_options *in,
                               const char *fn);
tc_status tc__adam_options_load(tc_adam_options *out, const tc_adam_options *in,
                                int adamw, const char *fn);

/* Creates the common part (optimizer.c): validates the lists, copies the
 * names, one group from `g0`, the step tensor; no state arena yet. */
tc_status tc__optimizer_create(tc_optimizer **out, tc_optimizer_type type,
                               tc_tensor *const *params,
                               tc_tensor *const *grads,
                               const char *const *names, int64_t n,
                               const tc__opt_group *g0, const char *fn);
/* A model's parameters as the lists tc__optimizer_create takes (the
 * _for_model constructors); free with tc__param_lists_free. */
typedef struct tc__param_lists {
  int64_t n;
  tc_tensor **params, **grads;
  const char **names;
} tc__param_lists;
tc_status tc__param_lists_from_model(tc__param_lists *l, tc_model *m,
                                     const char *fn);
void tc__param_lists_free(tc__param_lists *l);

/* Allocates the arena + views of a state kind if absent. */
tc_status tc__optimizer_ensure_state(tc_optimizer *opt, int kind,
                                     const char *fn);
/* Allocates every state kind the current groups need. */
tc_status tc__optimizer_ensure_needed_state(tc_optimizer *opt, const char *fn);
/* Adds (g == n_groups) or replaces group g, allocating the state its
 * options need first, so a failure changes nothing. */
tc_status tc__optimizer_put_group(tc_optimizer *opt, int64_t g,
                                  const tc__opt_group *grp, const char *fn);
/* Reads the step tensor back when a caller may have written it. */
tc_status tc__optimizer_sync_step(tc_optimizer *opt);
/* Device pointer to parameter `first`'s slice of a state arena. */
float *tc__optimizer_state_ptr(tc_optimizer *opt, int kind, int64_t first);

/* Update rules over the runs (sgd.c, adam.c). */
tc_status tc__sgd_step(tc_optimizer *opt);
tc_status tc__adam_step(tc_optimizer *opt);

/* Sets a group's lr (scheduler.c); no checks. */
static inline void tc__optimizer_put_lr(tc_optimizer *opt, int64_t g,
                                        double lr) {
  opt->groups[g].lr = lr;
}

#endif /* TC_OPTIM_INTERNAL_H */

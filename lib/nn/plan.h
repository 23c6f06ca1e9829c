/*
 * plan.h - a model's activation and workspace plan (plan.c), as the model
 * (model.c) holds and drives it. Layers and containers do not include
 * this: they describe what they need through the "plan.c" functions of
 * nn_internal.h, which find the plan through their model.
 */
#ifndef TINYCNN_NN_PLAN_H
#define TINYCNN_NN_PLAN_H

#include "nn_internal.h"

typedef struct nn_gslot {
  tc_tensor *t;
  int64_t need; /* floats asked for by this plan */
} nn_gslot;

typedef struct nn_aslot {
  tc_tensor *t;
  int used;
} nn_aslot;

typedef struct nn_plan {
  tc_tensor *ws;            /* shared convolution workspace */
  size_t ws_bytes;          /* the running forward's need */
  size_t ws_full, ws_arena; /* each plan's need */
  int64_t full_batch;       /* batch the layers are planned for, 0: none */
  int64_t full_cap;         /* largest full plan so far (buffers fit it) */
  nn_gslot *gslot;          /* gradient slots, [depth * NN_GRAD_SLOTS + i] */
  int64_t ngslot;
  nn_aslot *aslot; /* inference arena */
  int64_t naslot, arena_floats, arena_batch;
  int arena_on;   /* an arena forward is running */
  int last_arena; /* the last forward ran in the arena */
} nn_plan;

/* The model's plan (model.c). */
nn_plan *tc__nn_model_plan(const tc_model *m);

/* Frees what the plan holds (not p itself). */
void tc__nn_plan_free(nn_plan *p);
/* Something the plans depend on changed: both are made again at the next
 * forward (buffers are kept and reused). */
void tc__nn_plan_invalidate(nn_plan *p);
/* Runs root's forward on x (batch x->shape[0]) in the plan it belongs to,
 * planning it first when the batch is new: the inference arena for an
 * evaluation forward beyond every full plan, else the full plan. */
tc_status tc__nn_plan_forward(nn_plan *p, tc_layer *root, tc_tensor *x,
                              int training);
/* Makes the layers hold what backward reads for the last forward, of
 * batch n: after an arena forward, runs it again in the full plan. */
tc_status tc__nn_plan_backward_ready(nn_plan *p, tc_layer *root, int64_t n);

#endif /* TINYCNN_NN_PLAN_H */

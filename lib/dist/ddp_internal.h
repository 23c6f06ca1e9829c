/*
 * ddp_internal.h - the data-parallel wrapper's state, shared by ddp.c
 * (buckets, overlapped all-reduce) and ddp_det.c (deterministic mode).
 */
#ifndef TINYCNN_DDP_INTERNAL_H
#define TINYCNN_DDP_INTERNAL_H

#include "dist_internal.h"

/* A contiguous range [lo, hi) of the gradient arena (floats). */
typedef struct ddp_bucket {
  int64_t lo, hi;
  int64_t nparams;      /* parameters in it */
  int64_t pending;      /* parameters whose backward has not finished */
  tc_comm_request *req; /* &rq while its all-reduce runs, else NULL */
  tc_comm_request rq;
} ddp_bucket;

/* A running statistic replayed by deterministic mode. */
typedef struct ddp_running {
  tc_tensor *t; /* running_mean or running_var (C floats) */
  float momentum;
} ddp_running;

typedef struct ddp_det ddp_det;

struct tc_ddp {
  tc_model *m;
  tc_comm *comm;
  tc_ddp_options o;
  int rank, size;
  tc_backend *be;
  int host;         /* the backend's memory is host memory */
  int64_t nfloats;  /* parameter (and gradient) arena */
  float *stage;     /* nfloats: host copy (broadcast, staged buckets) */
  size_t buf_bytes; /* all buffers */
  char *buf_stage;  /* buf_bytes */
  /* parameters, by arena offset */
  int64_t np;
  int64_t *p_off, *p_len, *p_bucket;
  unsigned char *p_ready;
  ddp_bucket *bk;
  int64_t nb, next_start, next_wait;
  tc_status err; /* the first failure inside the backward hook */
  /* the running step */
  int64_t *counts; /* every rank's batch size */
  int64_t total, n_local;
  int forwarded;
  ddp_det *det;
};

tc_status tc__ddp_scale(tc_backend *be, float *x, int64_t n, float alpha);
tc_status tc__ddp_gather_counts(tc_ddp *d, int64_t n_local);
/* Backward with bucketed all-reduces; `local` != TC_OK: this rank failed
 * before backward and only takes part in the collectives. */
tc_status tc__ddp_backward(tc_ddp *d, const tc_tensor *dy, tc_status local);

/* ddp_det.c */
tc_status tc__ddp_det_init(tc_ddp *d, const char *fn);
void tc__ddp_det_release(tc_ddp *d);
tc_status tc__ddp_det_step(tc_ddp *d, tc_loss *loss, tc_tensor *x,
                           const tc_tensor *y, float *out_loss,
                           int64_t *out_correct);

#endif /* TINYCNN_DDP_INTERNAL_H */

/*
 * batchnorm_sync.h - synchronised batch norm (torch.nn.SyncBatchNorm), the
 * training path of BatchNorm1d/2d (batchnorm.c) while the model's data-
 * parallel wrapper asks for the statistics of the global batch
 * (tc__nn_model_sync_bn). Private to lib/nn.
 */
#ifndef TINYCNN_NN_BATCHNORM_SYNC_H
#define TINYCNN_NN_BATCHNORM_SYNC_H

#include "nn_internal.h"

/* A host buffer of the layer (tc__malloc), grown only when asked for more. */
typedef struct nn_hbuf {
  void *p;
  size_t bytes;
} nn_hbuf;

/* A layer's host state: staging buffers, grown only when the batch grows
 * (a steady-state step allocates nothing), and what the last synchronised
 * forward leaves for backward. Zeroed = empty. */
typedef struct nn_bn_sync {
  nn_hbuf x, g, d; /* float (N, C, S): x (then y), dy, dx; used only
                      for backends whose memory the host cannot read */
  nn_hbuf part;    /* double (maxn, C, 2): this rank's per-sample sums */
  nn_hbuf all;     /* double (size, maxn, C, 2): every rank's */
  nn_hbuf ns;      /* int64 (2, size): batches at forward, at backward */
  nn_hbuf stat;    /* double: mean, invstd, biased var (C each), then
                      (C, 2) global sums (x, x*x or dy, dy*(x-mean)) */
  nn_hbuf chan;    /* float (4, C): host copies of per-channel tensors */
  tc_comm *comm;   /* of the last forward; NULL: none to go back through */
  int64_t n, maxn; /* the last forward's local and largest rank batch */
  int64_t total;   /* its global batch */
} nn_bn_sync;

/* What the layer hands over: its configuration and tensors (NULL when the
 * layer has no such parameter or buffer). */
typedef struct nn_bn_sync_args {
  tc_comm *comm;
  int64_t c, spatial;
  float eps, momentum; /* momentum < 0: cumulative average */
  tc_tensor *gamma, *beta, *dgamma, *dbeta;
  tc_tensor *running_mean, *running_var, *nbt;
} nn_bn_sync_args;

/* Training forward with the global batch's statistics: y (N, C, S) from x.
 * Collective over a->comm. */
tc_status tc__nn_bn_sync_forward(nn_bn_sync *s, tc_layer *l,
                                 const nn_bn_sync_args *a, const tc_tensor *x,
                                 tc_tensor *y);
/* Backward of the last tc__nn_bn_sync_forward: parameter gradients added to,
 * dx written (added when acc; NULL: not wanted). Collective. */
tc_status tc__nn_bn_sync_backward(nn_bn_sync *s, tc_layer *l,
                                  const nn_bn_sync_args *a, const tc_tensor *x,
                                  const tc_tensor *dy, tc_tensor *dx, int acc);
/* Frees the host buffers. */
void tc__nn_bn_sync_release(nn_bn_sync *s);

#endif /* TINYCNN_NN_BATCHNORM_SYNC_H */

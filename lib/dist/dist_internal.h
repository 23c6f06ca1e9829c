/*
 * dist_internal.h - what lib/dist shares between its files. Never
 * installed.
 */
#ifndef TINYCNN_DIST_INTERNAL_H
#define TINYCNN_DIST_INTERNAL_H

#include "../internal.h"

/* The backend context whose device buffers `c` takes in its collectives
 * (tc_comm_iface.device_context), else NULL. */
void *tc__comm_device_context(const tc_comm *c);

/* A started all-reduce: the implementation's request, or NULL when the
 * blocking slot ran. `owned`: made by tc_comm_allreduce_start (freed by
 * tc_comm_wait); else caller storage (the data-parallel wrapper keeps one
 * per bucket, so a training step allocates nothing). */
struct tc_comm_request {
  void *req;
  int owned;
};

/* tc_comm_allreduce_start into caller storage `r`; wait with tc_comm_wait,
 * which then frees nothing. */
tc_status tc__comm_allreduce_start_in(tc_comm *c, float *buf, size_t count,
                                      tc_comm_request *r);

#endif /* TINYCNN_DIST_INTERNAL_H */

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

#endif /* TINYCNN_DIST_INTERNAL_H */

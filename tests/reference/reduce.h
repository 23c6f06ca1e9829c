/*
 * reduce.h - naive reference full reductions (tc_reduce_args in
 * tinycnn_backend.h) for the CPU and CUDA test suites: in double, in index
 * order. Pointers are host memory.
 */
#ifndef TC_REFERENCE_REDUCE_H
#define TC_REFERENCE_REDUCE_H

#include <tinycnn_backend.h>

/* *host_out = sum x, sum x*x, max |x| (NaN if any x is NaN; 0 for n = 0)
 * or the count of NaN / Inf elements, as `op` says. */
void ref_reduce(const tc_reduce_args *a);

#endif

/*
 * pool.h - naive reference pooling (max, average, global average; forward
 * and backward) for the CPU and CUDA test suites, following
 * torch.nn.MaxPool2d / AvgPool2d / AdaptiveAvgPool2d(1) and the contract
 * of tc_pool2d_args / tc_gap_args in tinycnn_backend.h. Every pointer is
 * host memory; sums are in double; backward outputs honour `accumulate`.
 */
#ifndef TC_REFERENCE_POOL_H
#define TC_REFERENCE_POOL_H

#include <stdint.h>

#include <tinycnn_backend.h>

/* PyTorch's pooling output size (dilation 1): floor or ceil of
 * (in + 2*pad - kernel) / stride, plus 1; in ceil mode a last window that
 * would start in the right padding is dropped. */
int64_t ref_pool_out_size(int64_t in, int64_t kernel, int64_t stride,
                          int64_t pad, int ceil_mode);

/* y = max over the real (unpadded) cells of each window; argmax (when not
 * NULL) = the chosen cell's index in its h*w plane. The first maximum in
 * raster order wins a tie; a NaN replaces the running maximum (so the last
 * NaN wins), as PyTorch's CPU kernel does. */
void ref_maxpool2d_fwd(const tc_pool2d_args *a);
/* dx (+)= dy scattered to argmax (as given: it is read, not recomputed). */
void ref_maxpool2d_bwd(const tc_pool2d_args *a);

/* y = sum of the real cells / divisor, the divisor being the window's
 * cells inside the padded input [-pad, size + pad) when count_include_pad,
 * else its real cells (PyTorch's rule, ceil mode included). */
void ref_avgpool2d_fwd(const tc_pool2d_args *a);
/* dx (+)= each dy / divisor over its window's real cells. */
void ref_avgpool2d_bwd(const tc_pool2d_args *a);

/* y (n,c) = mean of x (n,c,spatial) over spatial. */
void ref_global_avgpool_fwd(const tc_gap_args *a);
/* dx (+)= dy / spatial. */
void ref_global_avgpool_bwd(const tc_gap_args *a);

#endif

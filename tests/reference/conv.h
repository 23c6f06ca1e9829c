/*
 * conv.h - naive reference implementations of the dense ops (GEMM and 2-D
 * convolution), written plainly for the CPU and CUDA test suites to check
 * the backends against. They take the same args structs as the backend
 * slots, with every pointer in host memory; they sum in double, honour
 * `accumulate`, `bias == NULL`, alpha and beta exactly as the contract in
 * tinycnn_backend.h says, and ignore the workspace.
 */
#ifndef TC_REFERENCE_CONV_H
#define TC_REFERENCE_CONV_H

#include <stdint.h>

#include <tinycnn_backend.h>

/* C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] (beta == 0: C not read). */
void ref_gemm(const tc_gemm_args *a);

/* out = (in + 2*pad - dil*(kernel-1) - 1) / stride + 1 (may be <= 0 when
 * the kernel does not fit). */
int64_t ref_conv_out_size(int64_t in, int64_t kernel, int64_t stride,
                          int64_t pad, int64_t dil);

/* y (n,k,oh,ow) = conv(x (n,c,h,w), wt (k,c,r,s)) + bias (k) or 0. */
void ref_conv2d_fwd(const tc_conv2d_args *a);
/* dx (n,c,h,w) (+)= conv_transpose(dy (n,k,oh,ow), wt). */
void ref_conv2d_bwd_data(const tc_conv2d_args *a);
/* dw (k,c,r,s) (+)= sum over n of dy x x-windows. */
void ref_conv2d_bwd_filter(const tc_conv2d_args *a);
/* db (k) (+)= sum over n, oh, ow of dy. */
void ref_conv2d_bwd_bias(const tc_conv2d_args *a);

#endif

/*
 * eltwise.h - naive reference elementwise slots for the CPU and CUDA test
 * suites: relu_fwd / relu_bwd / add / scale / axpy / fill
 * (tc_eltwise_args), bias_add / bias_grad (tc_bias_args), copy4d
 * (tc_copy4d_args) and counter_add (tc_counter_args), each as the comment
 * in tinycnn_backend.h defines it. Pointers are host memory. Elementwise
 * results are computed in float, one operation at a time as written in the
 * contract (no reduction to do in double), so a backend without fused
 * multiply-adds matches them bit for bit; bias_grad sums in double.
 */
#ifndef TC_REFERENCE_ELTWISE_H
#define TC_REFERENCE_ELTWISE_H

#include <tinycnn_backend.h>

/* y = a where a > 0 or a is NaN (as torch.relu), else +0 (-0 gives +0,
 * the contract's rule; PyTorch's clamp_min keeps -0). */
void ref_relu_fwd(const tc_eltwise_args *e);
/* y = a > 0 ? b : 0 (a: the forward's output, b: dy); a NaN a gives 0, as
 * PyTorch's threshold_backward. */
void ref_relu_bwd(const tc_eltwise_args *e);
/* y = alpha*a + beta*b; b NULL counts as zeros. */
void ref_add(const tc_eltwise_args *e);
/* y = alpha*a. */
void ref_scale(const tc_eltwise_args *e);
/* y = y + alpha*a. */
void ref_axpy(const tc_eltwise_args *e);
/* y = alpha's bits in every element (int32 fills pass through). */
void ref_fill(const tc_eltwise_args *e);

/* y (n,c,spatial) += bias (c). */
void ref_bias_add(const tc_bias_args *b);
/* db (c) (+)= sum over n and spatial of dy, in double. */
void ref_bias_grad(const tc_bias_args *b);

/* dst[i] (+)= src[i] over the 4-D index space, strided. */
void ref_copy4d(const tc_copy4d_args *c);

/* x[i] += delta. */
void ref_counter_add(const tc_counter_args *c);

#endif

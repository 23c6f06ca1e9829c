/*
 * batchnorm.h - naive reference batch normalisation for the CPU and CUDA
 * test suites, following torch.nn.BatchNorm1d/2d (training: batch mean and
 * biased variance normalise; the unbiased variance enters running_var;
 * eval: the running statistics) and the contract of tc_batchnorm_args in
 * tinycnn_backend.h, fused slots (batchnorm_relu_*) included. Pointers are
 * host memory; all arithmetic is in double and rounded once per output.
 */
#ifndef TC_REFERENCE_BATCHNORM_H
#define TC_REFERENCE_BATCHNORM_H

#include <stdint.h>

#include <tinycnn_backend.h>

/* ---- the maths in double (finite differences perturb these) ---- */

/* Mean and biased variance of channel ci of x (n,c,spatial). */
void ref_batchnorm_stats_d(const tc_batchnorm_args *a, const double *x,
                           int64_t ci, double *mean, double *var);
/* y = (x - mean) / sqrt(var + eps) * gamma + beta with the batch
 * statistics; gamma / beta NULL: 1 / 0. */
void ref_batchnorm_train_d(const tc_batchnorm_args *a, const double *x,
                           const double *gamma, const double *beta, double *y);
/* The gradient of ref_batchnorm_train_d: dx (n,c,spatial), dgamma and
 * dbeta (c), each overwritten. */
void ref_batchnorm_bwd_d(const tc_batchnorm_args *a, const double *x,
                         const double *gamma, const double *dy, double *dx,
                         double *dgamma, double *dbeta);

/* ---- the backend slots, on host buffers ---- */

/* y; save_mean, save_invstd (1/sqrt(biased var + eps)) when not NULL;
 * running_mean / running_var updated with `momentum` when not NULL. */
void ref_batchnorm_fwd_train(const tc_batchnorm_args *a);
/* y from running_mean / running_var, or from the batch statistics when
 * they are NULL. */
void ref_batchnorm_fwd_infer(const tc_batchnorm_args *a);
/* dx, and dgamma / dbeta when not NULL, (+)= the training forward's
 * gradient. The statistics are recomputed from x in double, so save_mean /
 * save_invstd are not read. */
void ref_batchnorm_bwd(const tc_batchnorm_args *a);

/* The fused slots, composed from the separate ones as the contract says:
 * y = relu(bn(x) + residual) (residual NULL: relu(bn(x))) with relu_fwd's
 * rule (y where y > 0 or NaN, else +0) and add's float sum; relu_mask
 * (bits y > 0: 0 for NaN) written when not NULL. */
void ref_batchnorm_relu_fwd_train(const tc_batchnorm_args *a);
void ref_batchnorm_relu_fwd_infer(const tc_batchnorm_args *a);
/* g = (y > 0) ? dy : 0 (y > 0 read from relu_mask when not NULL, else from
 * y); ref_batchnorm_bwd with dy = g; dresidual (+)= g when not NULL. */
void ref_batchnorm_relu_bwd(const tc_batchnorm_args *a);

#endif

/*
 * conv2d_winograd.h - private to the CPU backend: Winograd F(2x2, 3x3)
 * convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", CVPR 2016) for 3x3, stride 1, pad 1, dilation 1 layers,
 * forward, backward data and weight gradient (conv2d_winograd.c explains
 * the method).
 * conv2d.c calls these after it has checked the arguments.
 */
#ifndef TINYCNN_CONV2D_WINOGRAD_H
#define TINYCNN_CONV2D_WINOGRAD_H

#include "cpu.h"

/* Workspace bytes the Winograd path wants for a (the largest of forward,
 * backward data and weight gradient), or 0 where it does not run. */
size_t tc__cpu_wino_workspace(void *ctx, const tc_conv2d_args *a);

/* Forward / backward data through Winograd: 1 when done, 0 when it does
 * not apply here (shape, instruction set, TINYCNN_CPU_WINOGRAD, or a
 * workspace too small for it) and the caller's path must run. a is
 * checked, n > 0 and the tensors are not NULL. */
int tc__cpu_wino_fwd(void *ctx, const tc_conv2d_args *a);
int tc__cpu_wino_bwd_data(void *ctx, const tc_conv2d_args *a);
/* Weight gradient through Winograd (dU = sum over tiles of (A dY A^T) x
 * (B^T x B), dW = G^T dU G), the same contract; a->n > 0. */
int tc__cpu_wino_bwd_filter(void *ctx, const tc_conv2d_args *a);

/* The switch, for tests (backend get_proc "tc_cpu_set_winograd"):
 * CPU_WINO_OFF, CPU_WINO_AUTO (the measured shapes), CPU_WINO_FORCE (every
 * shape the kernels take), or -1 to read TINYCNN_CPU_WINOGRAD again
 * (0: off, 1: force, unset or else: auto). */
enum { CPU_WINO_OFF = 0, CPU_WINO_AUTO = 1, CPU_WINO_FORCE = 2 };
void tc__cpu_wino_set_mode(int mode);

#endif /* TINYCNN_CONV2D_WINOGRAD_H */

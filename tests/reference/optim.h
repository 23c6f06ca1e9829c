/*
 * optim.h - naive reference optimizer steps for the CPU and CUDA test
 * suites: torch.optim.SGD (momentum, dampening, Nesterov, weight decay) and
 * torch.optim.Adam / AdamW (AMSGrad included), single-tensor form, as the
 * comments of tc_sgd_args / tc_adam_args in tinycnn_backend.h write them.
 * Pointers are host memory; each element's update is computed in double
 * from the float state, then rounded. A float hyper-parameter is read as
 * the decimal it was written as (0.999f -> 0.999), the Python double torch
 * would have had (docs/design.md).
 */
#ifndef TC_REFERENCE_OPTIM_H
#define TC_REFERENCE_OPTIM_H

#include <tinycnn_backend.h>

/* g = grad + wd*param; with momentum: buf = first_step ? g : mu*buf +
 * (1-dampening)*g, g = nesterov ? g + mu*buf : buf; param -= lr*g.
 * momentum_buf is not touched when momentum is 0. */
void ref_sgd_update(const tc_sgd_args *a);

/* AdamW (decoupled): param *= 1 - lr*wd; Adam: g = grad + wd*param. Then
 * m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, vmax = max(vmax, v)
 * (amsgrad), param -= lr/(1-b1^step) * m / (sqrt(v or vmax)/sqrt(1-b2^step)
 * + eps). max_exp_avg_sq is not touched without amsgrad. */
void ref_adam_update(const tc_adam_args *a);

#endif

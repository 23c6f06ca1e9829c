/*
 * loss.h - naive reference losses and the argmax metric for the CPU and
 * CUDA test suites, following torch.nn.CrossEntropyLoss (label_smoothing
 * included), NLLLoss and MSELoss and the contract of tc_loss_args /
 * tc_argmax_args in tinycnn_backend.h. Pointers are host memory; sums are
 * in double.
 */
#ifndef TC_REFERENCE_LOSS_H
#define TC_REFERENCE_LOSS_H

#include <tinycnn_backend.h>

/* loss = reduce over rows of -sum_j q_j log softmax(x)_j, q = (1 - ls) *
 * onehot(label) + ls / classes; dlogits (when not NULL) = (softmax - q) *
 * (1/n for MEAN) * grad_scale. A label outside [0, classes): with
 * label_error NULL the call returns TC_EINVAL and writes nothing; else
 * *label_error = 1 (0 when all are valid), the loss is NaN and so are the
 * bad rows' dlogits. REDUCTION_NONE: TC_EUNSUPPORTED (as the slots). */
tc_status ref_softmax_xent(const tc_loss_args *a);
/* The same with `logits` holding log-probabilities: loss = reduce of
 * -sum_j q_j x_j, dlogits = -q scaled as above. */
tc_status ref_nll(const tc_loss_args *a);
/* loss = reduce of (x - target)^2 over all n*classes elements (MEAN divides
 * by n*classes); dlogits = 2 (x - target) scaled likewise. */
tc_status ref_mse(const tc_loss_args *a);

/* pred[i] = the first index of the row's maximum, a NaN counting as the
 * largest value (torch.argmax: the first NaN wins); *host_correct = rows
 * with pred == label (labels not NULL). */
void ref_argmax(const tc_argmax_args *a);

#endif

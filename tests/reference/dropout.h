/*
 * dropout.h - naive reference dropout for the CPU and CUDA test suites,
 * with the counter-based mask rule of tc_dropout_args in tinycnn_backend.h
 * (Philox4x32-10, unit i kept when the uniform at offset + i is >= p) and
 * torch.nn.Dropout's scaling of kept values by 1/(1-p). Pointers are host
 * memory; values are scaled in float (scale = 1/(1-p) in float, as the
 * contract's y = x * scale), so a backend matches them bit for bit.
 */
#ifndef TC_REFERENCE_DROPOUT_H
#define TC_REFERENCE_DROPOUT_H

#include <stdint.h>

#include <tinycnn_backend.h>

/* Whether mask unit i is kept: the raw Philox4x32-10 block for counter
 * (block = (offset + i) / 4, stream) and key seed, word (offset + i) % 4,
 * its top 24 bits scaled to [0, 1), compared with p. */
int ref_dropout_keep(uint64_t seed, uint64_t stream, uint64_t offset, int64_t i,
                     float p);
/* mask (n/group units) from ref_dropout_keep; y = kept ? x * scale : 0. */
void ref_dropout_fwd(const tc_dropout_args *a);
/* dx (+)= mask ? dy * scale : 0, with the mask given (not recomputed). */
void ref_dropout_bwd(const tc_dropout_args *a);

#endif

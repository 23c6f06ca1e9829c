/*
 * dropout.cu - dropout forward and backward with Philox4x32-10 on the
 * device, drawing exactly the CPU's numbers (lib/rng.c), so the same seed
 * drops the same units on every backend.
 *
 * Stream rule: mask unit i uses output position pos = offset + i of stream
 * (seed, stream): block = pos >> 2, counter {block lo, block hi, stream lo,
 * stream hi}, key {seed lo, seed hi}, word pos & 3;
 * uniform = (u32 >> 8) * 2^-24; kept iff uniform >= p; kept values scale by
 * 1/(1-p). `group` consecutive elements share a unit (Dropout2d).
 * One thread computes one Philox block and so serves up to four units.
 * x, y, dy, dx: (n)  mask: (n / group), 1 = kept.
 */
#include "cuda_be.h"

__device__ inline void philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2,
                                     uint32_t c3, uint32_t k0, uint32_t k1,
                                     uint32_t out[4]) {
  for (int round = 0; round < 10; round++) {
    uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* Thread t covers Philox block first_block + t, i.e. positions
 * [4*(first_block+t), +4) clipped to [offset, offset + units). */
__global__ void k_dropout_mask(uint8_t *mask, int64_t units, float p,
                               uint64_t seed, uint64_t stream,
                               uint64_t offset) {
  uint64_t first_block = offset >> 2;
  uint64_t nblocks = ((offset + (uint64_t)units + 3) >> 2) - first_block;
  CU_FOR(t, (int64_t)nblocks) {
    uint64_t block = first_block + (uint64_t)t;
    uint32_t r[4];
    philox4x32_10((uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                  (uint32_t)(stream >> 32), (uint32_t)seed,
                  (uint32_t)(seed >> 32), r);
    for (int w = 0; w < 4; w++) {
      uint64_t pos = block * 4 + (uint64_t)w;
      if (pos < offset || pos - offset >= (uint64_t)units)
        continue;
      float u = (float)(r[w] >> 8) * (1.0f / 16777216.0f);
      mask[pos - offset] = u >= p ? 1 : 0;
    }
  }
}

__global__ void k_dropout_apply(const float *x, float *y,
                                const uint8_t *mask, int64_t n,
                                int64_t group, float scale, int accumulate) {
  CU_FOR(i, n) {
    if (mask[i / group])
      y[i] = accumulate ? y[i] + x[i] * scale : x[i] * scale;
    else if (!accumulate) /* a dropped unit leaves an accumulated y as is */
      y[i] = 0.f;
  }
}

/* p == 1 drops everything (no uniform reaches 1): the scale is unused.
 * Computed on the host exactly as backends/cpu/dropout.c (float 1/(1-p)),
 * and applied as x * scale: the same bits as the CPU. */
static float keep_scale(float p) { return p < 1.f ? 1.f / (1.f - p) : 0.f; }

tc_status cu_dropout_fwd(void *ctx, const tc_dropout_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_dropout_args(ctx, a, CU_FN("dropout_fwd"),
                                        TC__OP_DROPOUT_FWD);
  if (st != TC_OK || a->n == 0)
    return st;
  if ((st = cu_enter(c, "dropout_fwd")) != TC_OK)
    return st;
  int64_t units = a->n / a->group;
  uint8_t *mask = a->mask;
  if (!mask && (st = cu_scratch(c, (void **)&mask, (size_t)units)) != TC_OK)
    return st;
  uint64_t nblocks = ((a->offset + (uint64_t)units + 3) >> 2) -
                     (a->offset >> 2);
  k_dropout_mask<<<cu_blocks((int64_t)nblocks), CU_THREADS, 0, c->stream>>>(
      mask, units, a->p, a->seed, a->stream, a->offset);
  st = cu_launched("dropout_fwd: mask");
  if (st == TC_OK) {
    k_dropout_apply<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(
        a->x, a->y, mask, a->n, a->group, keep_scale(a->p), 0);
    st = cu_launched("dropout_fwd");
  }
  if (mask != a->mask)
    cu_release_block(c, mask);
  return st;
}

tc_status cu_dropout_bwd(void *ctx, const tc_dropout_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_dropout_args(ctx, a, CU_FN("dropout_bwd"),
                                        TC__OP_DROPOUT_BWD);
  if (st != TC_OK || a->n == 0)
    return st;
  if ((st = cu_enter(c, "dropout_bwd")) != TC_OK)
    return st;
  k_dropout_apply<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(
      a->dy, a->dx, a->mask, a->n, a->group, keep_scale(a->p),
      a->accumulate);
  return cu_launched("dropout_bwd");
}

/*
 * rng.c - Philox4x32-10 (Salmon et al. 2011, as in Random123, cuRAND and
 * PyTorch) and a small stream type over it. A stream is keyed by the seed;
 * the stream id fills the counter's high words and the output position the
 * low words, so (seed, stream, offset) names every number exactly.
 */
#include <math.h>

#include "internal.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

TC_API void tc_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                             uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

TC_API void tc_rng_init(tc_rng *r, uint64_t seed, uint64_t stream) {
  if (!r)
    return;
  r->seed = seed;
  r->stream = stream;
  r->offset = 0;
}

TC_API uint32_t tc_rng_next_u32(tc_rng *r) {
  uint64_t block = r->offset >> 2;
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32),
                     (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
  uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
  uint32_t out[4];
  tc_philox4x32_10(ctr, key, out);
  uint32_t v = out[r->offset & 3];
  r->offset++;
  return v;
}

TC_API float tc_rng_uniform(tc_rng *r) {
  return (float)(tc_rng_next_u32(r) >> 8) * (1.0f / 16777216.0f);
}

TC_API float tc_rng_normal(tc_rng *r) {
  /* Box-Muller; u1 in (0,1] so log() is finite */
  double u1 = ((double)(tc_rng_next_u32(r) >> 8) + 1.0) / 16777216.0;
  double u2 = (double)(tc_rng_next_u32(r) >> 8) / 16777216.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

TC_API uint64_t tc_rng_below(tc_rng *r, uint64_t n) {
  if (n <= 1)
    return 0;
  /* rejection sampling over 64-bit draws removes modulo bias */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    uint64_t v = ((uint64_t)tc_rng_next_u32(r) << 32) | tc_rng_next_u32(r);
    if (v < limit)
      return v % n;
  }
}

/*
 * dropout.c - naive reference dropout (see dropout.h).
 */
#include "dropout.h"

int ref_dropout_keep(uint64_t seed, uint64_t stream, uint64_t offset, int64_t i,
                     float p) {
  uint64_t pos = offset + (uint64_t)i, block = pos >> 2;
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint32_t out[4];
  tc_philox4x32_10(ctr, key, out);
  float u = (float)(out[pos & 3] >> 8) * (1.0f / 16777216.0f);
  return u >= p;
}

/* 1/(1-p); p = 1 keeps nothing, so no 0 * inf arises. */
static float keep_scale(float p) {
  return p < 1.f ? 1.f / (1.f - p) : 0.f;
}

void ref_dropout_fwd(const tc_dropout_args *a) {
  float scale = keep_scale(a->p);
  for (int64_t u = 0; u < a->n / a->group; u++) {
    int keep = ref_dropout_keep(a->seed, a->stream, a->offset, u, a->p);
    a->mask[u] = (uint8_t)keep;
    for (int64_t k = u * a->group; k < (u + 1) * a->group; k++)
      a->y[k] = keep ? a->x[k] * scale : 0.f;
  }
}

void ref_dropout_bwd(const tc_dropout_args *a) {
  float scale = keep_scale(a->p);
  for (int64_t i = 0; i < a->n; i++) {
    float v = a->mask[i / a->group] ? a->dy[i] * scale : 0.f;
    a->dx[i] = a->accumulate ? a->dx[i] + v : v;
  }
}

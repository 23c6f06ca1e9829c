/*
 * dropout.c - the CPU backend's dropout forward and backward, with the mask
 * drawn from Philox4x32-10 (lib/rng.c's tc_philox4x32_10), the same numbers
 * the CUDA backend draws, so a seed drops the same units everywhere.
 *
 * Stream rule (tinycnn_backend.h, backends/cuda/dropout.cu): mask unit i
 * takes output position pos = offset + i of stream (seed, stream):
 * block = pos >> 2, counter {block lo, block hi, stream lo, stream hi},
 * key {seed lo, seed hi}, word pos & 3; uniform = (word >> 8) * 2^-24
 * (tc_rng_uniform's rule); kept iff uniform >= p. Kept values are
 * multiplied by 1/(1-p) (p == 1 keeps nothing: no uniform reaches 1, and
 * the scale is never computed). `group` consecutive elements share a unit.
 *
 * x, y, dy, dx: (n)  mask: (n / group), 1 = kept. The forward mask may be
 * NULL (not stored). Work is cut into fixed blocks of units, independent of
 * the thread count; each block draws its own Philox blocks.
 */
#include "../op_check.h"
#include "cpu.h"

/* Elements per task (about); a task holds whole units. */
#define DROP_BLOCK ((int64_t)16384)

typedef struct drop_job {
  const tc_dropout_args *a;
  int64_t units;
  int64_t per; /* units per task */
  float scale; /* 1/(1-p), 0 when p == 1 */
} drop_job;

static float keep_scale(float p) {
  return p < 1.f ? 1.f / (1.f - p) : 0.f;
}

/* Applies one unit's decision to its `g` elements. */
static void drop_apply(const float *x, float *y, int64_t g, int keep,
                       float scale) {
  if (keep)
    for (int64_t i = 0; i < g; i++)
      y[i] = x[i] * scale;
  else
    for (int64_t i = 0; i < g; i++)
      y[i] = 0.f;
}

static void drop_fwd_task(void *arg, int64_t t) {
  const drop_job *j = arg;
  const tc_dropout_args *a = j->a;
  int64_t u = t * j->per;
  int64_t u1 = u + j->per < j->units ? u + j->per : j->units;
  int64_t g = a->group;
  const uint32_t key[2] = {(uint32_t)a->seed, (uint32_t)(a->seed >> 32)};
  while (u < u1) {
    uint64_t pos = a->offset + (uint64_t)u;
    uint64_t block = pos >> 2;
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32),
                             (uint32_t)a->stream, (uint32_t)(a->stream >> 32)};
    uint32_t r[4];
    tc_philox4x32_10(ctr, key, r);
    for (unsigned w = (unsigned)(pos & 3); w < 4 && u < u1; w++, u++) {
      float uni = (float)(r[w] >> 8) * (1.0f / 16777216.0f);
      int keep = uni >= a->p;
      if (a->mask)
        a->mask[u] = (uint8_t)keep;
      drop_apply(a->x + u * g, a->y + u * g, g, keep, j->scale);
    }
  }
}

static void drop_bwd_task(void *arg, int64_t t) {
  const drop_job *j = arg;
  const tc_dropout_args *a = j->a;
  int64_t u0 = t * j->per;
  int64_t u1 = u0 + j->per < j->units ? u0 + j->per : j->units;
  int64_t g = a->group;
  for (int64_t u = u0; u < u1; u++) {
    const float *dy = a->dy + u * g;
    float *dx = a->dx + u * g;
    float s = a->mask[u] ? j->scale : 0.f;
    if (a->accumulate) {
      if (s != 0.f)
        for (int64_t i = 0; i < g; i++)
          dx[i] += dy[i] * s;
    } else if (s != 0.f) {
      for (int64_t i = 0; i < g; i++)
        dx[i] = dy[i] * s;
    } else {
      for (int64_t i = 0; i < g; i++)
        dx[i] = 0.f;
    }
  }
}

static drop_job drop_job_for(const tc_dropout_args *a) {
  drop_job j = {a, a->n / a->group, DROP_BLOCK / a->group, keep_scale(a->p)};
  if (j.per < 1)
    j.per = 1;
  return j;
}

tc_status tc__cpu_dropout_fwd(void *ctx, const tc_dropout_args *a) {
  tc_status st =
      tc__check_dropout_args(ctx, a, "cpu_dropout_fwd", TC__OP_DROPOUT_FWD);
  if (st != TC_OK || a->n == 0)
    return st;
  drop_job j = drop_job_for(a);
  tc__cpu_parallel_for(ctx, (j.units + j.per - 1) / j.per, drop_fwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_dropout_bwd(void *ctx, const tc_dropout_args *a) {
  tc_status st =
      tc__check_dropout_args(ctx, a, "cpu_dropout_bwd", TC__OP_DROPOUT_BWD);
  if (st != TC_OK || a->n == 0)
    return st;
  drop_job j = drop_job_for(a);
  tc__cpu_parallel_for(ctx, (j.units + j.per - 1) / j.per, drop_bwd_task, &j);
  return TC_OK;
}

/*
 * reduce.c - the CPU backend's full reductions of a float buffer x (n) to
 * one double on the host: sum, sum of squares, max |x|, count of NaN/Inf.
 *
 * Determinism: x is cut into at most CPU_REDUCE_CHUNKS chunks whose number
 * and bounds depend on n only; each chunk reduces in double with eight
 * interleaved lanes combined in a fixed tree, and the chunks are combined
 * in index order. So the result has the same bits whatever the thread
 * count. NaN propagates: SUM and SUMSQ through the arithmetic, MAXABS
 * explicitly (any NaN gives NaN, as in the CUDA backend). NONFINITE tests
 * the exponent bits, so it does not depend on floating-point flags.
 */
#include <math.h>
#include <string.h>

#include "../op_check.h"
#include "cpu.h"

/* Smallest chunk worth its own task. */
#define RED_MIN_CHUNK ((int64_t)8192)
#define RED_LANES 8

typedef struct red_job {
  const tc_reduce_args *a;
  int64_t per; /* elements per chunk */
  double part[CPU_REDUCE_CHUNKS];
} red_job;

/* The lanes combined pairwise in a fixed order. */
static double lanes_sum(const double *l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

static double red_sum(const float *restrict x, int64_t n, int square) {
  double l[RED_LANES] = {0};
  int64_t i = 0;
  if (square) {
    for (; i + RED_LANES <= n; i += RED_LANES)
      for (int k = 0; k < RED_LANES; k++)
        l[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++)
      l[0] += (double)x[i] * (double)x[i];
  } else {
    for (; i + RED_LANES <= n; i += RED_LANES)
      for (int k = 0; k < RED_LANES; k++)
        l[k] += (double)x[i + k];
    for (; i < n; i++)
      l[0] += (double)x[i];
  }
  return lanes_sum(l);
}

static double red_maxabs(const float *restrict x, int64_t n) {
  float m = 0.f;
  int nan = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = fabsf(x[i]);
    m = v > m ? v : m;
    nan |= v != v;
  }
  return nan ? (double)NAN : (double)m;
}

static double red_nonfinite(const float *restrict x, int64_t n) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t b;
    memcpy(&b, &x[i], sizeof b);
    count += (b & 0x7f800000u) == 0x7f800000u;
  }
  return (double)count;
}

static void red_task(void *arg, int64_t t) {
  red_job *j = arg;
  const tc_reduce_args *a = j->a;
  int64_t lo = t * j->per;
  int64_t len = a->n - lo < j->per ? a->n - lo : j->per;
  const float *x = a->x + lo;
  switch (a->op) {
  case TC_REDUCE_SUM:
    j->part[t] = red_sum(x, len, 0);
    break;
  case TC_REDUCE_SUMSQ:
    j->part[t] = red_sum(x, len, 1);
    break;
  case TC_REDUCE_MAXABS:
    j->part[t] = red_maxabs(x, len);
    break;
  default:
    j->part[t] = red_nonfinite(x, len);
    break;
  }
}

tc_status tc__cpu_reduce(void *ctx, const tc_reduce_args *a) {
  tc_status st = tc__check_reduce_args(ctx, a, "cpu_reduce");
  if (st != TC_OK)
    return st;
  if (a->n == 0) {
    *a->host_out = 0.0;
    return TC_OK;
  }
  int64_t chunks = (a->n + RED_MIN_CHUNK - 1) / RED_MIN_CHUNK;
  if (chunks > CPU_REDUCE_CHUNKS)
    chunks = CPU_REDUCE_CHUNKS;
  red_job j;
  j.a = a;
  j.per = (a->n + chunks - 1) / chunks;
  chunks = (a->n + j.per - 1) / j.per; /* no empty trailing chunk */
  tc__cpu_parallel_for(ctx, chunks, red_task, &j);
  double r = j.part[0];
  for (int64_t t = 1; t < chunks; t++) {
    if (a->op == TC_REDUCE_MAXABS)
      r = isnan(r) || isnan(j.part[t]) ? (double)NAN
          : j.part[t] > r              ? j.part[t]
                                       : r;
    else
      r += j.part[t];
  }
  *a->host_out = r;
  return TC_OK;
}

/*
 * pool2d.c - the CPU backend's pooling: max pooling with a saved argmax,
 * average pooling (torch.nn.MaxPool2d / AvgPool2d, dilation 1), and global
 * average pooling, forward and backward. NCHW, contiguous.
 *
 * Semantics follow PyTorch's CPU kernels exactly:
 *  - out_h/out_w come from the caller; they must be PyTorch's floor- or
 *    ceil-mode size, and pad <= kernel/2, so every window holds at least one
 *    real cell (PyTorch rejects the other cases too).
 *  - max: padded cells are never chosen; the first maximum in raster order
 *    wins; a NaN is taken as the maximum (PyTorch's `val > max || isnan`,
 *    so the last NaN of a window wins). argmax is the index in the h*w plane.
 *  - average: divisor = window clipped to the padded bounds [-pad, h+pad)
 *    when count_include_pad, else the number of real cells in the window
 *    (so a ceil-mode window that runs past the padded edge divides by less).
 *  - backward scatters dy through the same windows; without `accumulate`
 *    each dx plane is cleared first, as overlapping windows add into it.
 *
 * Work is split over (n*c) planes in blocks whose size depends only on the
 * shapes; every plane is computed by one task in a fixed order, so results
 * are the same bits whatever the thread count. Nothing here allocates.
 * Max pooling's 2x2 stride-2 windows take the fast paths of pool2d_k2.c.
 */
#include <math.h>
#include <string.h>

#include "../op_check.h"
#include "pool2d.h"

/* Planes are grouped into tasks of at least this many elements (input plus
 * output) so small planes do not cost one task each. */
#define POOL_TASK_ELEMS 16384

static void pool_job_init(pool_job *j, const tc_pool2d_args *a) {
  j->a = a;
  j->planes = a->n * a->c;
  j->hw = a->h * a->w;
  j->ohw = a->out_h * a->out_w;
  int64_t per = POOL_TASK_ELEMS / (j->hw + j->ohw);
  j->per_task = per < 1 ? 1 : per;
  atomic_init(&j->bad, 0);
  j->k2 = a->kh == 2 && a->kw == 2 && a->stride_h == 2 && a->stride_w == 2 &&
          a->pad_h == 0 && a->pad_w == 0;
  j->avx2 = tc__cpu_isa() >= CPU_ISA_AVX2;
  tc__cpu_max2_plan(j);
}

static int64_t pool_tasks(const pool_job *j) {
  return (j->planes + j->per_task - 1) / j->per_task;
}

/* One output of max pooling, windows clipped to the input. */
void tc__cpu_maxpool_one(const tc_pool2d_args *a, const float *restrict x,
                         float *restrict y, int32_t *restrict am, int64_t oh,
                         int64_t ow) {
  POOL_WINDOW(a, oh, ow);
  int64_t best = h0 * a->w + w0;
  float m = -INFINITY;
  for (int64_t ih = h0; ih < h1; ih++)
    for (int64_t iw = w0; iw < w1; iw++) {
      float v = x[ih * a->w + iw];
      if (v > m || isnan(v)) {
        m = v;
        best = ih * a->w + iw;
      }
    }
  y[oh * a->out_w + ow] = m;
  am[oh * a->out_w + ow] = (int32_t)best;
}

/* Outputs whose windows lie inside the input horizontally are done a row
 * at a time: window cells outermost, outputs innermost, so the running
 * maxima of neighbouring outputs are independent (they pipeline). Each
 * output still sees its cells in raster order, so the result is that of
 * tc__cpu_maxpool_one. */
static void maxpool_fwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t sw = a->stride_w, pw = a->pad_w, kw = a->kw, w = a->w;
  /* interior columns: ow*sw - pw >= 0 and ow*sw - pw + kw <= w */
  int64_t lo = min64((pw + sw - 1) / sw, a->out_w);
  int64_t hi =
      w + pw - kw < 0 ? lo : max64(min64((w + pw - kw) / sw + 1, a->out_w), lo);
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    const float *restrict x = a->x + p * j->hw;
    float *restrict y = a->y + p * j->ohw;
    int32_t *restrict am = a->argmax + p * j->ohw;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      for (int64_t ow = 0; ow < lo; ow++)
        tc__cpu_maxpool_one(a, x, y, am, oh, ow);
      for (int64_t ow = hi; ow < a->out_w; ow++)
        tc__cpu_maxpool_one(a, x, y, am, oh, ow);
      if (lo == hi)
        continue;
      int64_t hs = oh * a->stride_h - a->pad_h;
      int64_t h0 = max64(hs, 0), h1 = min64(hs + a->kh, a->h);
      float *restrict yr = y + oh * a->out_w;
      int32_t *restrict ar = am + oh * a->out_w;
      for (int64_t ow = lo; ow < hi; ow++) {
        yr[ow] = -INFINITY;
        ar[ow] = (int32_t)(h0 * w + ow * sw - pw);
      }
      for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t jw = 0; jw < kw; jw++) {
          int64_t off = ih * w - pw + jw; /* + ow*sw >= 0 */
          for (int64_t ow = lo; ow < hi; ow++) {
            float v = x[off + ow * sw], m = yr[ow];
            /* select by masks: compilers turn a ?: here into branches,
             * which mispredict on real data; a NaN is taken */
            uint32_t take = -(uint32_t)((v > m) | (v != v)), vb, mb;
            memcpy(&vb, &v, 4);
            memcpy(&mb, &m, 4);
            mb = (vb & take) | (mb & ~take);
            memcpy(&yr[ow], &mb, 4);
            int32_t idx = (int32_t)(off + ow * sw);
            ar[ow] =
                (int32_t)(((uint32_t)idx & take) | ((uint32_t)ar[ow] & ~take));
          }
        }
    }
  }
}

/* Backward pre-pass: every argmax must lie in the plane, or dx would be
 * written out of bounds; checked before anything is written. */
static void maxpool_check_task(void *arg, int64_t t) {
  pool_job *j = arg;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  const int32_t *am = j->a->argmax + t * j->per_task * j->ohw;
  int64_t n = (p1 - t * j->per_task) * j->ohw;
  /* one unsigned compare finds both sides; lanes keep it vectorisable */
  uint32_t hw = (uint32_t)j->hw, bad = 0, l[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      l[k] |= (uint32_t)am[i + k] >= hw;
  for (; i < n; i++)
    bad |= (uint32_t)am[i] >= hw;
  for (int k = 0; k < 8; k++)
    bad |= l[k];
  if (bad)
    atomic_store(&j->bad, 1);
}

static void maxpool_bwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    float *restrict dx = a->dx + p * j->hw;
    const float *restrict dy = a->dy + p * j->ohw;
    const int32_t *restrict am = a->argmax + p * j->ohw;
    if (j->k2 && !a->accumulate && a->h == 2 * a->out_h &&
        a->w == 2 * a->out_w && tc__cpu_max2_bwd_plane(j, dx, dy, am))
      continue;
    if (!a->accumulate)
      memset(dx, 0, (size_t)j->hw * sizeof *dx);
    for (int64_t o = 0; o < j->ohw; o++)
      dx[am[o]] += dy[o];
  }
}

/* PyTorch's divisor: the window clipped to the padded bounds, or the real
 * cells only. */
static int64_t avg_divisor(const tc_pool2d_args *a, int64_t oh, int64_t ow,
                           int64_t real) {
  if (!a->count_include_pad)
    return real;
  int64_t hs = oh * a->stride_h - a->pad_h, ws = ow * a->stride_w - a->pad_w;
  int64_t he = min64(hs + a->kh, a->h + a->pad_h);
  int64_t we = min64(ws + a->kw, a->w + a->pad_w);
  return (he - hs) * (we - ws);
}

static void avgpool_fwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    const float *restrict x = a->x + p * j->hw;
    float *restrict y = a->y + p * j->ohw;
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < a->out_w; ow++) {
        POOL_WINDOW(a, oh, ow);
        int64_t real = (h1 - h0) * (w1 - w0);
        if (real <= 0) { /* cannot happen with checked sizes */
          y[oh * a->out_w + ow] = 0.f;
          continue;
        }
        double s = 0;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++)
            s += x[ih * a->w + iw];
        y[oh * a->out_w + ow] =
            (float)(s / (double)avg_divisor(a, oh, ow, real));
      }
  }
}

static void avgpool_bwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    float *restrict dx = a->dx + p * j->hw;
    const float *restrict dy = a->dy + p * j->ohw;
    if (!a->accumulate)
      memset(dx, 0, (size_t)j->hw * sizeof *dx);
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < a->out_w; ow++) {
        POOL_WINDOW(a, oh, ow);
        int64_t real = (h1 - h0) * (w1 - w0);
        if (real <= 0)
          continue;
        float g = dy[oh * a->out_w + ow] / (float)avg_divisor(a, oh, ow, real);
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++)
            dx[ih * a->w + iw] += g;
      }
  }
}

tc_status tc__cpu_maxpool2d_fwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_maxpool2d_fwd", TC__OP_MAXPOOL2D_FWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j),
                       j.k2 ? tc__cpu_maxpool2_fwd_task : maxpool_fwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_maxpool2d_bwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_maxpool2d_bwd", TC__OP_MAXPOOL2D_BWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), maxpool_check_task, &j);
  if (atomic_load(&j.bad))
    return tc__error(TC_EINVAL,
                     "cpu_maxpool2d_bwd: argmax holds an index outside the "
                     "%lldx%lld plane",
                     (long long)a->h, (long long)a->w);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), maxpool_bwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_avgpool2d_fwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_avgpool2d_fwd", TC__OP_AVGPOOL2D_FWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), avgpool_fwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_avgpool2d_bwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_avgpool2d_bwd", TC__OP_AVGPOOL2D_BWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), avgpool_bwd_task, &j);
  return TC_OK;
}

/* ---- global average pooling ---- */

typedef struct gap_job {
  const tc_gap_args *a;
  int64_t planes, per_task;
} gap_job;

static void gap_job_init(gap_job *j, const tc_gap_args *a) {
  j->a = a;
  j->planes = a->n * a->c;
  int64_t per = POOL_TASK_ELEMS / a->spatial;
  j->per_task = per < 1 ? 1 : per;
}

static void gap_fwd_task(void *arg, int64_t t) {
  const gap_job *j = arg;
  const tc_gap_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    const float *restrict x = a->x + p * a->spatial;
    double s = 0;
    for (int64_t i = 0; i < a->spatial; i++)
      s += x[i];
    a->y[p] = (float)(s / (double)a->spatial);
  }
}

static void gap_bwd_task(void *arg, int64_t t) {
  const gap_job *j = arg;
  const tc_gap_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    float *restrict dx = a->dx + p * a->spatial;
    float g = a->dy[p] / (float)a->spatial;
    if (a->accumulate)
      for (int64_t i = 0; i < a->spatial; i++)
        dx[i] += g;
    else
      for (int64_t i = 0; i < a->spatial; i++)
        dx[i] = g;
  }
}

tc_status tc__cpu_global_avgpool_fwd(void *ctx, const tc_gap_args *a) {
  tc_status st = tc__check_gap_args(ctx, a, "cpu_global_avgpool_fwd",
                                    TC__OP_GLOBAL_AVGPOOL_FWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  gap_job j;
  gap_job_init(&j, a);
  tc__cpu_parallel_for(ctx, (j.planes + j.per_task - 1) / j.per_task,
                       gap_fwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_global_avgpool_bwd(void *ctx, const tc_gap_args *a) {
  tc_status st = tc__check_gap_args(ctx, a, "cpu_global_avgpool_bwd",
                                    TC__OP_GLOBAL_AVGPOOL_BWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  gap_job j;
  gap_job_init(&j, a);
  tc__cpu_parallel_for(ctx, (j.planes + j.per_task - 1) / j.per_task,
                       gap_bwd_task, &j);
  return TC_OK;
}

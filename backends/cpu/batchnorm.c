/*
 * batchnorm.c - the CPU backend's batch normalisation over (n, spatial) per
 * channel (torch.nn.BatchNorm1d/2d): training forward, inference forward
 * and the training-mode backward. x, y, dy, dx: (n,c,spatial).
 *
 *  train:  mean, biased var over the n*spatial values of each channel (in
 *          double); save_mean = mean, save_invstd = 1/sqrt(var + eps);
 *          y = (x - mean) * invstd * gamma + beta; when given,
 *          running_mean = (1-m)*running_mean + m*mean and
 *          running_var = (1-m)*running_var + m*var*M/(M-1), M = n*spatial.
 *          M == 1 is an error, as in PyTorch's training mode.
 *  infer:  y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
 *  bwd:    with xhat = (x - save_mean) * save_invstd,
 *          dbeta = sum dy, dgamma = sum dy*xhat,
 *          dx = gamma*invstd * (dy - dbeta/M - xhat*dgamma/M).
 * gamma/beta NULL mean affine off (1 and 0); dgamma/dbeta NULL are not
 * written. `accumulate` adds into dx, dgamma and dbeta.
 *
 * Work: channels are taken in blocks. Within a block, each channel's sums
 * are split into `chunks` fixed ranges of its M values (their number
 * depends only on the shapes), reduced by separate tasks into partials on
 * the caller's stack and combined in chunk order; then the elementwise pass
 * runs over (image, channel) planes. So results are the same bits whatever
 * the thread count, and nothing here allocates. Chunk statistics are
 * combined with Chan's formula, so the variance stays accurate for data
 * with a large mean.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"

#define BN_DIM_MAX ((int64_t)1 << 40)
/* Most elements in all (far beyond memory; keeps chunk arithmetic exact). */
#define BN_TOTAL_MAX ((int64_t)1 << 50)
/* Partial sums held on the stack per channel block (24 bytes each). */
#define BN_PART_MAX 512
/* Aim for about this many reduction tasks per call when channels are few,
 * each chunk at least BN_CHUNK_MIN values. */
#define BN_TARGET_TASKS 64
#define BN_CHUNK_MIN 4096
/* Independent partial sums per reduction (in a fixed order): breaks the
 * add latency chain. */
#define BN_LANES 16
/* Elements per task in the elementwise pass. */
#define BN_APPLY_ELEMS 8192

typedef struct bn_part {
  double n, mean, m2; /* forward: count, mean, sum of squared deviations */
} bn_part;

typedef struct bn_job {
  const tc_batchnorm_args *a;
  int64_t m;      /* values per channel: n * spatial */
  int64_t chunks; /* per channel */
  int64_t c0, cb; /* current channel block */
  bn_part *part;  /* cb * chunks */
  /* elementwise pass, per block channel */
  float *mu;                /* fwd, bwd: the mean subtracted */
  float *alpha, *shift;     /* fwd: y = (x - mu)*alpha + shift */
  float *k, *gmean, *scale; /* bwd */
  int64_t planes, per_task;
  int avx2;
} bn_job;

static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

static tc_status bn_check(void *ctx, const tc_batchnorm_args *a,
                          const char *fn) {
  if (!ctx)
    return tc__error(TC_EINVAL, "%s: ctx is NULL", fn);
  if (!a)
    return tc__error(TC_EINVAL, "%s: args is NULL", fn);
  if (a->struct_size < sizeof(tc_batchnorm_args))
    return tc__error(TC_EINVAL, "%s: struct_size %zu < %zu", fn, a->struct_size,
                     sizeof(tc_batchnorm_args));
  int64_t m, total;
  if (a->n < 0 || a->c < 0 || a->spatial < 0 || a->n > BN_DIM_MAX ||
      a->c > BN_DIM_MAX || a->spatial > BN_DIM_MAX ||
      __builtin_mul_overflow(a->n, a->spatial, &m) ||
      __builtin_mul_overflow(m, a->c, &total) || total > BN_TOTAL_MAX)
    return tc__error(TC_EINVAL,
                     "%s: bad size (n %lld, c %lld, spatial %lld): need each "
                     ">= 0 and the total to fit",
                     fn, (long long)a->n, (long long)a->c,
                     (long long)a->spatial);
  if (!(a->eps >= 0.f) || isinf(a->eps))
    return tc__error(TC_EINVAL, "%s: eps %g must be finite and >= 0", fn,
                     (double)a->eps);
  return TC_OK;
}

/* Chunks per channel: enough tasks when channels are few, each chunk at
 * least BN_CHUNK_MIN values; a function of the shapes only. */
static void bn_job_init(bn_job *j, const tc_batchnorm_args *a) {
  memset(j, 0, sizeof *j);
  j->a = a;
  j->avx2 = cpu_isa() >= CPU_ISA_AVX2;
  j->m = a->n * a->spatial;
  int64_t by_tasks = (BN_TARGET_TASKS + a->c - 1) / a->c;
  int64_t by_size = j->m / BN_CHUNK_MIN;
  j->chunks = min64(min64(by_tasks, by_size), CPU_REDUCE_CHUNKS);
  if (j->chunks < 1)
    j->chunks = 1;
}

/* Calls body(ptr, len) for the values [m0, m1) of channel ci, walking the
 * (image, spatial) order; ptr points into `base`, laid out (n,c,spatial).
 * `continue` in body goes on with the next segment. */
#define BN_FOR_RANGE(a, base, ci, m0, m1, ptr, len, body)                      \
  for (int64_t m_ = (m0), len = 0; m_ < (m1); m_ += len) {                     \
    int64_t i_ = m_ / (a)->spatial, s_ = m_ % (a)->spatial;                    \
    len = min64((a)->spatial - s_, (m1)-m_);                                   \
    ptr = (base) + (i_ * (a)->c + (ci)) * (a)->spatial + s_;                   \
    body;                                                                      \
  }

static void chunk_range(const bn_job *j, int64_t k, int64_t *m0, int64_t *m1) {
  *m0 = j->m * k / j->chunks;
  *m1 = j->m * (k + 1) / j->chunks;
}

/* ---- AVX2 variants: the same lanes and operations (no FMA) as the
 * portable loops, so the bits do not depend on the path. A segment's
 * element i goes to lane i % BN_LANES; the tail continues from lane 0. */
#if CPU_X86
#include <immintrin.h>

static CPU_AVX2 void stats_seg_avx2(const float *p, int64_t len, double shift,
                                    double *l1, double *l2) {
  __m256d s = _mm256_set1_pd(shift);
  __m256d a[4], b[4];
  for (int k = 0; k < 4; k++)
    a[k] = _mm256_loadu_pd(l1 + 4 * k), b[k] = _mm256_loadu_pd(l2 + 4 * k);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16)
    for (int k = 0; k < 4; k++) {
      __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + i + 4 * k)), s);
      a[k] = _mm256_add_pd(a[k], d);
      b[k] = _mm256_add_pd(b[k], _mm256_mul_pd(d, d));
    }
  for (int k = 0; k < 4; k++)
    _mm256_storeu_pd(l1 + 4 * k, a[k]), _mm256_storeu_pd(l2 + 4 * k, b[k]);
  for (int l = 0; i < len; i++, l++) {
    double d = p[i] - shift;
    l1[l] += d;
    l2[l] += d * d;
  }
}

static CPU_AVX2 void grad_seg_avx2(const float *dy, const float *x,
                                   int64_t len, double mu, double *l1,
                                   double *l2) {
  __m256d m = _mm256_set1_pd(mu);
  __m256d a[4], b[4];
  for (int k = 0; k < 4; k++)
    a[k] = _mm256_loadu_pd(l1 + 4 * k), b[k] = _mm256_loadu_pd(l2 + 4 * k);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16)
    for (int k = 0; k < 4; k++) {
      __m256d g = _mm256_cvtps_pd(_mm_loadu_ps(dy + i + 4 * k));
      __m256d xc =
          _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * k)), m);
      a[k] = _mm256_add_pd(a[k], g);
      b[k] = _mm256_add_pd(b[k], _mm256_mul_pd(g, xc));
    }
  for (int k = 0; k < 4; k++)
    _mm256_storeu_pd(l1 + 4 * k, a[k]), _mm256_storeu_pd(l2 + 4 * k, b[k]);
  for (int l = 0; i < len; i++, l++) {
    l1[l] += dy[i];
    l2[l] += dy[i] * (x[i] - mu);
  }
}

/* y = (x - mu)*al + sh; x may be y */
static CPU_AVX2 void apply_avx2(const float *x, float *y, int64_t n, float mu,
                                float al, float sh) {
  __m256 vm = _mm256_set1_ps(mu), va = _mm256_set1_ps(al),
         vs = _mm256_set1_ps(sh);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + e), vm);
    _mm256_storeu_ps(y + e, _mm256_add_ps(_mm256_mul_ps(v, va), vs));
  }
  for (; e < n; e++)
    y[e] = (x[e] - mu) * al + sh;
}

/* dx (+)= (dy - gm - (x - mu)*k) * sc; dy may be dx */
static CPU_AVX2 void dx_avx2(const float *x, const float *dy, float *dx,
                             int64_t n, float mu, float k, float gm, float sc,
                             int acc) {
  __m256 vm = _mm256_set1_ps(mu), vk = _mm256_set1_ps(k),
         vg = _mm256_set1_ps(gm), vs = _mm256_set1_ps(sc);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 xc = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + e), vm), vk);
    __m256 t = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(dy + e), vg), xc);
    t = _mm256_mul_ps(t, vs);
    if (acc)
      t = _mm256_add_ps(_mm256_loadu_ps(dx + e), t);
    _mm256_storeu_ps(dx + e, t);
  }
  if (acc)
    for (; e < n; e++)
      dx[e] += (dy[e] - gm - (x[e] - mu) * k) * sc;
  else
    for (; e < n; e++)
      dx[e] = (dy[e] - gm - (x[e] - mu) * k) * sc;
}
#endif

/* Forward reduction task: chunk k of block channel t / chunks. */
static void bn_stats_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  int64_t ci = j->c0 + t / j->chunks, m0, m1;
  chunk_range(j, t % j->chunks, &m0, &m1);
  /* one pass over data shifted by the chunk's first value, so that
   * s2 - s1^2/cnt does not cancel (a sample lies near the mean) */
  const float *restrict p;
  double cnt = (double)(m1 - m0), shift = 0, s1 = 0, s2 = 0;
  if (m1 > m0)
    shift =
        a->x[((m0 / a->spatial) * a->c + ci) * a->spatial + m0 % a->spatial];
  double l1[BN_LANES] = {0}, l2[BN_LANES] = {0};
  if (a->spatial == 1) { /* segments of one value: all in lane 0, in order */
    for (int64_t i = m0; i < m1; i++) {
      double d = a->x[i * a->c + ci] - shift;
      l1[0] += d;
      l2[0] += d * d;
    }
    m1 = m0; /* skip the walk below */
  }
  BN_FOR_RANGE(a, a->x, ci, m0, m1, p, len, {
#if CPU_X86
    if (j->avx2 && len >= 16) {
      stats_seg_avx2(p, len, shift, l1, l2);
      continue;
    }
#endif
    int64_t i = 0;
    for (; i + BN_LANES <= len; i += BN_LANES)
      for (int l = 0; l < BN_LANES; l++) {
        double d = p[i + l] - shift;
        l1[l] += d;
        l2[l] += d * d;
      }
    for (int l = 0; i < len; i++, l++) {
      double d = p[i] - shift;
      l1[l] += d;
      l2[l] += d * d;
    }
  });
  for (int l = 0; l < BN_LANES; l++)
    s1 += l1[l], s2 += l2[l];
  double mean = cnt > 0 ? shift + s1 / cnt : 0;
  double q = cnt > 0 ? fmax(s2 - s1 * s1 / cnt, 0.0) : 0;
  j->part[t] = (bn_part){cnt, mean, q};
}

/* Backward reduction task: sum dy and sum dy*(x - mean). */
static void bn_grad_sums_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  int64_t ci = j->c0 + t / j->chunks, m0, m1;
  chunk_range(j, t % j->chunks, &m0, &m1);
  double mu = a->save_mean[ci], sdy = 0, sdx = 0;
  const float *restrict dy;
  double l1[BN_LANES] = {0}, l2[BN_LANES] = {0};
  if (a->spatial == 1) { /* as in bn_stats_task */
    for (int64_t i = m0; i < m1; i++) {
      l1[0] += a->dy[i * a->c + ci];
      l2[0] += a->dy[i * a->c + ci] * (a->x[i * a->c + ci] - mu);
    }
    m1 = m0;
  }
  BN_FOR_RANGE(a, a->dy, ci, m0, m1, dy, len, {
    const float *restrict x = a->x + (dy - a->dy);
#if CPU_X86
    if (j->avx2 && len >= 16) {
      grad_seg_avx2(dy, x, len, mu, l1, l2);
      continue;
    }
#endif
    int64_t i = 0;
    for (; i + BN_LANES <= len; i += BN_LANES)
      for (int l = 0; l < BN_LANES; l++) {
        l1[l] += dy[i + l];
        l2[l] += dy[i + l] * (x[i + l] - mu);
      }
    for (int l = 0; i < len; i++, l++) {
      l1[l] += dy[i];
      l2[l] += dy[i] * (x[i] - mu);
    }
  });
  for (int l = 0; l < BN_LANES; l++)
    sdy += l1[l], sdx += l2[l];
  j->part[t] = (bn_part){0, sdy, sdx};
}

static void bn_apply_init(bn_job *j) {
  j->planes = j->a->n * j->cb;
  int64_t per = BN_APPLY_ELEMS / (j->a->spatial > 0 ? j->a->spatial : 1);
  j->per_task = per < 1 ? 1 : per;
}

static int64_t bn_apply_tasks(const bn_job *j) {
  return (j->planes + j->per_task - 1) / j->per_task;
}

/* y = (x - mu)*alpha + shift over planes (image i, block channel q);
 * subtracting first keeps y accurate where x is near the mean. */
static void bn_apply_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes), s = a->spatial;
  if (s == 1) { /* planes of one value: walk (image, channel) directly */
    for (int64_t p = t * j->per_task, i = p / j->cb, q = p % j->cb; p < p1;
         p++) {
      int64_t off = i * a->c + j->c0 + q;
      a->y[off] = (a->x[off] - j->mu[q]) * j->alpha[q] + j->shift[q];
      if (++q == j->cb)
        q = 0, i++;
    }
    return;
  }
  for (int64_t p = t * j->per_task; p < p1; p++) {
    int64_t i = p / j->cb, q = p % j->cb;
    int64_t off = (i * a->c + j->c0 + q) * s;
    const float *x = a->x + off; /* may alias y (in place) */
    float *y = a->y + off;
    float mu = j->mu[q], al = j->alpha[q], sh = j->shift[q];
#if CPU_X86
    if (j->avx2) {
      apply_avx2(x, y, s, mu, al, sh);
      continue;
    }
#endif
    for (int64_t e = 0; e < s; e++)
      y[e] = (x[e] - mu) * al + sh;
  }
}

/* dx (+)= (dy - gmean - (x - mu)*k) * scale over planes. */
static void bn_dx_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes), s = a->spatial;
  if (s == 1) { /* as in bn_apply_task */
    for (int64_t p = t * j->per_task, i = p / j->cb, q = p % j->cb; p < p1;
         p++) {
      int64_t off = i * a->c + j->c0 + q;
      float v = (a->dy[off] - j->gmean[q] - (a->x[off] - j->mu[q]) * j->k[q]) *
                j->scale[q];
      a->dx[off] = a->accumulate ? a->dx[off] + v : v;
      if (++q == j->cb)
        q = 0, i++;
    }
    return;
  }
  for (int64_t p = t * j->per_task; p < p1; p++) {
    int64_t i = p / j->cb, q = p % j->cb;
    int64_t off = (i * a->c + j->c0 + q) * s;
    const float *x = a->x + off;
    const float *dy = a->dy + off; /* may alias dx (in place) */
    float *dx = a->dx + off;
    float mu = j->mu[q], k = j->k[q], gm = j->gmean[q], sc = j->scale[q];
#if CPU_X86
    if (j->avx2) {
      dx_avx2(x, dy, dx, s, mu, k, gm, sc, a->accumulate);
      continue;
    }
#endif
    if (a->accumulate)
      for (int64_t e = 0; e < s; e++)
        dx[e] += (dy[e] - gm - (x[e] - mu) * k) * sc;
    else
      for (int64_t e = 0; e < s; e++)
        dx[e] = (dy[e] - gm - (x[e] - mu) * k) * sc;
  }
}

tc_status cpu_batchnorm_fwd_train(void *ctx, const tc_batchnorm_args *a) {
  static const char fn[] = "cpu_batchnorm_fwd_train";
  tc_status st = bn_check(ctx, a, fn);
  if (st != TC_OK)
    return st;
  if (a->n * a->spatial == 1)
    return tc__error(TC_EINVAL,
                     "%s: batch statistics need more than 1 value per "
                     "channel (n %lld, spatial %lld)",
                     fn, (long long)a->n, (long long)a->spatial);
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK; /* nothing to normalise; running stats stay (PyTorch) */
  if (!a->x || !a->y || !a->save_mean || !a->save_invstd)
    return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                     !a->x           ? "x"
                     : !a->y         ? "y"
                     : !a->save_mean ? "save_mean"
                                     : "save_invstd");
  bn_job j;
  bn_job_init(&j, a);
  bn_part part[BN_PART_MAX];
  int64_t cbmax = BN_PART_MAX / j.chunks;
  float mu[BN_PART_MAX], alpha[BN_PART_MAX], shift[BN_PART_MAX];
  j.part = part, j.mu = mu, j.alpha = alpha, j.shift = shift;
  double mom = a->momentum, unbias = (double)j.m / (double)(j.m - 1);
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(cbmax, a->c - j.c0);
    cpu_parallel_for(ctx, j.cb * j.chunks, bn_stats_task, &j);
    for (int64_t q = 0; q < j.cb; q++) {
      /* combine the chunks in order (Chan et al.) */
      const bn_part *pp = part + q * j.chunks;
      double cnt = pp[0].n, mean = pp[0].mean, m2 = pp[0].m2;
      for (int64_t k = 1; k < j.chunks; k++) {
        double nb = pp[k].n, tot = cnt + nb, d = pp[k].mean - mean;
        if (nb == 0)
          continue;
        mean += d * nb / tot;
        m2 += pp[k].m2 + d * d * cnt * nb / tot;
        cnt = tot;
      }
      double var = m2 / (double)j.m;
      double invstd = 1.0 / sqrt(var + (double)a->eps);
      int64_t ci = j.c0 + q;
      a->save_mean[ci] = (float)mean;
      a->save_invstd[ci] = (float)invstd;
      if (a->running_mean)
        a->running_mean[ci] =
            (float)((1.0 - mom) * a->running_mean[ci] + mom * mean);
      if (a->running_var)
        a->running_var[ci] =
            (float)((1.0 - mom) * a->running_var[ci] + mom * var * unbias);
      double g = a->gamma ? a->gamma[ci] : 1.0;
      double b = a->beta ? a->beta[ci] : 0.0;
      mu[q] = (float)mean;
      alpha[q] = (float)(invstd * g);
      shift[q] = (float)b;
    }
    bn_apply_init(&j);
    cpu_parallel_for(ctx, bn_apply_tasks(&j), bn_apply_task, &j);
  }
  return TC_OK;
}

tc_status cpu_batchnorm_fwd_infer(void *ctx, const tc_batchnorm_args *a) {
  static const char fn[] = "cpu_batchnorm_fwd_infer";
  tc_status st = bn_check(ctx, a, fn);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK;
  if (!a->x || !a->y || !a->running_mean || !a->running_var)
    return tc__error(TC_EINVAL,
                     "%s: argument '%s' is NULL (inference needs running "
                     "statistics)",
                     fn,
                     !a->x              ? "x"
                     : !a->y            ? "y"
                     : !a->running_mean ? "running_mean"
                                        : "running_var");
  bn_job j;
  memset(&j, 0, sizeof j);
  j.a = a;
  j.avx2 = cpu_isa() >= CPU_ISA_AVX2;
  float mu[BN_PART_MAX], alpha[BN_PART_MAX], shift[BN_PART_MAX];
  j.mu = mu, j.alpha = alpha, j.shift = shift;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(BN_PART_MAX, a->c - j.c0);
    for (int64_t q = 0; q < j.cb; q++) {
      int64_t ci = j.c0 + q;
      double g = a->gamma ? a->gamma[ci] : 1.0;
      double b = a->beta ? a->beta[ci] : 0.0;
      double is = 1.0 / sqrt((double)a->running_var[ci] + (double)a->eps);
      mu[q] = a->running_mean[ci];
      alpha[q] = (float)(is * g);
      shift[q] = (float)b;
    }
    bn_apply_init(&j);
    cpu_parallel_for(ctx, bn_apply_tasks(&j), bn_apply_task, &j);
  }
  return TC_OK;
}

tc_status cpu_batchnorm_bwd(void *ctx, const tc_batchnorm_args *a) {
  static const char fn[] = "cpu_batchnorm_bwd";
  tc_status st = bn_check(ctx, a, fn);
  if (st != TC_OK)
    return st;
  if (a->c == 0)
    return TC_OK;
  int64_t m = a->n * a->spatial;
  if (m == 0) { /* empty sums */
    for (int64_t ci = 0; ci < a->c && !a->accumulate; ci++) {
      if (a->dgamma)
        a->dgamma[ci] = 0.f;
      if (a->dbeta)
        a->dbeta[ci] = 0.f;
    }
    return TC_OK;
  }
  if (!a->x || !a->dy || !a->dx || !a->save_mean || !a->save_invstd)
    return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                     !a->x           ? "x"
                     : !a->dy        ? "dy"
                     : !a->dx        ? "dx"
                     : !a->save_mean ? "save_mean"
                                     : "save_invstd");
  bn_job j;
  bn_job_init(&j, a);
  bn_part part[BN_PART_MAX];
  float mu[BN_PART_MAX], kk[BN_PART_MAX], gmean[BN_PART_MAX],
      scale[BN_PART_MAX];
  int64_t cbmax = BN_PART_MAX / j.chunks;
  j.part = part, j.mu = mu, j.k = kk, j.gmean = gmean, j.scale = scale;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(cbmax, a->c - j.c0);
    cpu_parallel_for(ctx, j.cb * j.chunks, bn_grad_sums_task, &j);
    for (int64_t q = 0; q < j.cb; q++) {
      const bn_part *pp = part + q * j.chunks;
      double sdy = 0, sdx = 0;
      for (int64_t k = 0; k < j.chunks; k++)
        sdy += pp[k].mean, sdx += pp[k].m2;
      int64_t ci = j.c0 + q;
      double is = a->save_invstd[ci];
      double g = a->gamma ? a->gamma[ci] : 1.0;
      double dg = sdx * is;
      if (a->dgamma)
        a->dgamma[ci] = (float)(a->accumulate ? a->dgamma[ci] + dg : dg);
      if (a->dbeta)
        a->dbeta[ci] = (float)(a->accumulate ? a->dbeta[ci] + sdy : sdy);
      mu[q] = a->save_mean[ci];
      kk[q] = (float)(sdx * is * is / (double)m);
      gmean[q] = (float)(sdy / (double)m);
      scale[q] = (float)(is * g);
    }
    bn_apply_init(&j);
    cpu_parallel_for(ctx, bn_apply_tasks(&j), bn_dx_task, &j);
  }
  return TC_OK;
}

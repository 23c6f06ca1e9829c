/*
 * loss.c - the CPU backend's losses over a batch: fused log-softmax +
 * cross-entropy (label smoothing as torch.nn.CrossEntropyLoss), NLL over
 * log-probabilities, MSE, each with an optional gradient; and row argmax
 * with a correct count for accuracy.
 *
 * Each row is computed in double; row losses are summed per fixed chunk of
 * rows and the chunk sums combined in order, so the loss has the same bits
 * whatever the thread count. Labels are checked before anything is written
 * (PyTorch raises on a label outside [0, classes); there is no
 * ignore_index). NaN in the inputs is not hidden: it reaches the loss and
 * the core reports it. Reduction NONE is not offered by this slot.
 * logits, target, dlogits, scores: (n, classes)  labels, pred: (n).
 */
#include <math.h>

#include "../op_check.h"
#include "cpu.h"

enum { LOSS_XENT = 0, LOSS_NLL = 1, LOSS_MSE = 2 };

/* A chunk holds at least this many elements, so small batches run as one
 * task; the chunk count depends only on the shape. */
#define LOSS_MIN_CHUNK_ELEMS 8192

typedef struct loss_job {
  const tc_loss_args *a;
  int mode;
  double ls1;     /* 1 - label_smoothing */
  double on, off; /* smoothed target: q_j = off, q_label = on */
  double gfac;    /* gradient factor: (1/count for mean) * grad_scale */
  int64_t rows_per_chunk;
  double part[CPU_REDUCE_CHUNKS]; /* per-chunk sums of row losses */
} loss_job;

/* -sum_j q_j (x_j - lse) for one row; writes p_j - q_j times gfac. */
static double xent_row(const loss_job *j, const float *restrict x, int32_t y,
                       float *restrict g) {
  int64_t C = j->a->classes;
  double m = x[0];
  for (int64_t k = 1; k < C; k++)
    if (x[k] > m)
      m = x[k];
  double se = 0, sx = 0; /* sum exp(x - m), sum (x - m) */
  for (int64_t k = 0; k < C; k++) {
    double d = (double)x[k] - m;
    se += exp(d);
    sx += d;
  }
  /* a NaN anywhere in the row makes se NaN: the loss shows it */
  double lse = log(se);
  /* torch: (1-ls) * nll + ls/C * (-sum_j log p_j), the second term only
   * when ls > 0 (so a -inf logit elsewhere gives no 0 * inf = NaN) */
  double loss = -j->ls1 * ((double)x[y] - m - lse);
  if (j->off > 0)
    loss -= j->off * (sx - (double)C * lse);
  if (g) {
    double inv = 1.0 / se;
    for (int64_t k = 0; k < C; k++) {
      double p = exp((double)x[k] - m) * inv;
      g[k] = (float)((p - (k == y ? j->on : j->off)) * j->gfac);
    }
  }
  return loss;
}

/* -sum_j q_j x_j (x holds log-probabilities); gradient -q_j times gfac. */
static double nll_row(const loss_job *j, const float *restrict x, int32_t y,
                      float *restrict g) {
  int64_t C = j->a->classes;
  double loss = -j->ls1 * (double)x[y];
  if (j->off > 0) {
    double sx = 0;
    for (int64_t k = 0; k < C; k++)
      sx += (double)x[k];
    loss -= j->off * sx;
  }
  if (g) {
    float goff = (float)(-j->off * j->gfac), gon = (float)(-j->on * j->gfac);
    for (int64_t k = 0; k < C; k++)
      g[k] = goff;
    g[y] = gon;
  }
  return loss;
}

static double mse_row(const loss_job *j, const float *restrict x,
                      const float *restrict t, float *restrict g) {
  int64_t C = j->a->classes;
  double s = 0;
  for (int64_t k = 0; k < C; k++) {
    double d = (double)x[k] - (double)t[k];
    s += d * d;
    if (g)
      g[k] = (float)(2.0 * d * j->gfac);
  }
  return s;
}

static void loss_task(void *arg, int64_t task) {
  loss_job *j = arg;
  const tc_loss_args *a = j->a;
  int64_t C = a->classes;
  int64_t r0 = task * j->rows_per_chunk;
  int64_t r1 = r0 + j->rows_per_chunk < a->n ? r0 + j->rows_per_chunk : a->n;
  double acc = 0;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = a->logits + r * C;
    float *g = a->dlogits ? a->dlogits + r * C : NULL;
    switch (j->mode) {
    case LOSS_XENT:
      acc += xent_row(j, x, a->labels[r], g);
      break;
    case LOSS_NLL:
      acc += nll_row(j, x, a->labels[r], g);
      break;
    default:
      acc += mse_row(j, x, a->target + r * C, g);
      break;
    }
  }
  j->part[task] = acc;
}

/* A label out of range with a label_error flag: no error, the flag set, a
 * NaN loss and an all-NaN gradient (the caller learns of it when it reads
 * the flag). */
static tc_status bad_label_flagged(const tc_loss_args *a, int32_t *flag) {
  *flag = 1;
  a->loss[0] = NAN;
  if (a->dlogits)
    for (int64_t i = 0; i < a->n * a->classes; i++)
      a->dlogits[i] = NAN;
  return TC_OK;
}

static tc_status loss_run(void *ctx, const tc_loss_args *a, int mode,
                          const char *fn) {
  static const tc__op ops[] = {[LOSS_XENT] = TC__OP_SOFTMAX_XENT,
                               [LOSS_NLL] = TC__OP_NLL,
                               [LOSS_MSE] = TC__OP_MSE};
  tc_status st = tc__check_loss_args(ctx, a, fn, ops[mode]);
  if (st != TC_OK)
    return st;
  int32_t *label_error = a->label_error;
  if (mode != LOSS_MSE) {
    for (int64_t r = 0; r < a->n; r++)
      if (a->labels[r] < 0 || a->labels[r] >= a->classes) {
        if (label_error)
          return bad_label_flagged(a, label_error);
        return tc__error(TC_EINVAL,
                         "%s: label %d of row %lld is outside "
                         "[0, %lld)",
                         fn, (int)a->labels[r], (long long)r,
                         (long long)a->classes);
      }
    if (label_error)
      *label_error = 0;
  }

  loss_job j = {.a = a, .mode = mode};
  double ls = mode == LOSS_MSE ? 0.0 : (double)a->label_smoothing;
  j.ls1 = 1.0 - ls;
  j.off = ls / (double)a->classes;
  j.on = j.ls1 + j.off;
  /* mean: over rows for cross-entropy and NLL (PyTorch), over every
   * element for MSE */
  double count =
      mode == LOSS_MSE ? (double)a->n * (double)a->classes : (double)a->n;
  double scale = a->reduction == TC_REDUCTION_MEAN ? 1.0 / count : 1.0;
  j.gfac = scale * (double)a->grad_scale;
  int64_t min_rows = (LOSS_MIN_CHUNK_ELEMS + a->classes - 1) / a->classes;
  int64_t rows = (a->n + CPU_REDUCE_CHUNKS - 1) / CPU_REDUCE_CHUNKS;
  j.rows_per_chunk = rows > min_rows ? rows : min_rows;
  int64_t chunks = (a->n + j.rows_per_chunk - 1) / j.rows_per_chunk;
  tc__cpu_parallel_for(ctx, chunks, loss_task, &j);
  double sum = 0;
  for (int64_t c = 0; c < chunks; c++)
    sum += j.part[c];
  a->loss[0] = (float)(sum * scale);
  return TC_OK;
}

tc_status tc__cpu_softmax_xent(void *ctx, const tc_loss_args *a) {
  return loss_run(ctx, a, LOSS_XENT, "cpu_softmax_xent");
}

tc_status tc__cpu_nll(void *ctx, const tc_loss_args *a) {
  return loss_run(ctx, a, LOSS_NLL, "cpu_nll");
}

tc_status tc__cpu_mse(void *ctx, const tc_loss_args *a) {
  return loss_run(ctx, a, LOSS_MSE, "cpu_mse");
}

/* ---- argmax ---- */

typedef struct argmax_job {
  const tc_argmax_args *a;
  int64_t rows_per_chunk;
  int64_t part[CPU_REDUCE_CHUNKS]; /* correct rows per chunk */
} argmax_job;

/* First maximum; a NaN counts as the largest value (torch.argmax), so the
 * first NaN wins. */
static int64_t row_argmax(const float *restrict x, int64_t C) {
  int64_t best = 0;
  float bv = x[0];
  if (isnan(bv))
    return 0;
  for (int64_t k = 1; k < C; k++) {
    if (isnan(x[k]))
      return k;
    if (x[k] > bv) {
      bv = x[k];
      best = k;
    }
  }
  return best;
}

static void argmax_task(void *arg, int64_t task) {
  argmax_job *j = arg;
  const tc_argmax_args *a = j->a;
  int64_t r0 = task * j->rows_per_chunk;
  int64_t r1 = r0 + j->rows_per_chunk < a->n ? r0 + j->rows_per_chunk : a->n;
  int64_t correct = 0;
  for (int64_t r = r0; r < r1; r++) {
    int64_t k = row_argmax(a->scores + r * a->classes, a->classes);
    if (a->pred)
      a->pred[r] = (int32_t)k;
    if (a->labels && a->labels[r] == k)
      correct++;
  }
  j->part[task] = correct;
}

tc_status tc__cpu_argmax(void *ctx, const tc_argmax_args *a) {
  tc_status st = tc__check_argmax_args(ctx, a, "cpu_argmax");
  if (st != TC_OK)
    return st;
  argmax_job j = {.a = a};
  int64_t chunks = 0;
  if (a->n > 0) {
    int64_t min_rows = (LOSS_MIN_CHUNK_ELEMS + a->classes - 1) / a->classes;
    int64_t rows = (a->n + CPU_REDUCE_CHUNKS - 1) / CPU_REDUCE_CHUNKS;
    j.rows_per_chunk = rows > min_rows ? rows : min_rows;
    chunks = (a->n + j.rows_per_chunk - 1) / j.rows_per_chunk;
    tc__cpu_parallel_for(ctx, chunks, argmax_task, &j);
  }
  if (a->labels && a->host_correct) {
    int64_t correct = 0;
    for (int64_t c = 0; c < chunks; c++)
      correct += j.part[c];
    *a->host_correct = correct;
  }
  return TC_OK;
}

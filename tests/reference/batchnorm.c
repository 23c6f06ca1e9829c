/*
 * batchnorm.c - naive reference batch normalisation (see batchnorm.h).
 * The float slots convert their inputs to double, run the textbook
 * formulas term by term, and round each output once.
 */
#include "batchnorm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Element (i, ci, e) of an (n,c,spatial) buffer. */
#define AT(a, x, i, ci, e) (x)[((i) * (a)->c + (ci)) * (a)->spatial + (e)]

void ref_batchnorm_stats_d(const tc_batchnorm_args *a, const double *x,
                           int64_t ci, double *mean, double *var) {
  double m = (double)(a->n * a->spatial), s = 0, q = 0;
  for (int64_t i = 0; i < a->n; i++)
    for (int64_t e = 0; e < a->spatial; e++)
      s += AT(a, x, i, ci, e);
  s /= m;
  for (int64_t i = 0; i < a->n; i++)
    for (int64_t e = 0; e < a->spatial; e++) {
      double d = AT(a, x, i, ci, e) - s;
      q += d * d;
    }
  *mean = s;
  *var = q / m;
}

/* y = (x - mean) * invstd * gamma + beta over channel ci. */
static void normalise(const tc_batchnorm_args *a, const double *x, int64_t ci,
                      double mean, double invstd, double g, double b,
                      double *y) {
  for (int64_t i = 0; i < a->n; i++)
    for (int64_t e = 0; e < a->spatial; e++)
      AT(a, y, i, ci, e) = (AT(a, x, i, ci, e) - mean) * invstd * g + b;
}

void ref_batchnorm_train_d(const tc_batchnorm_args *a, const double *x,
                           const double *gamma, const double *beta, double *y) {
  for (int64_t ci = 0; ci < a->c; ci++) {
    double mean, var;
    ref_batchnorm_stats_d(a, x, ci, &mean, &var);
    normalise(a, x, ci, mean, 1.0 / sqrt(var + (double)a->eps),
              gamma ? gamma[ci] : 1.0, beta ? beta[ci] : 0.0, y);
  }
}

void ref_batchnorm_bwd_d(const tc_batchnorm_args *a, const double *x,
                         const double *gamma, const double *dy, double *dx,
                         double *dgamma, double *dbeta) {
  double m = (double)(a->n * a->spatial);
  for (int64_t ci = 0; ci < a->c; ci++) {
    double mean, var;
    ref_batchnorm_stats_d(a, x, ci, &mean, &var);
    double is = 1.0 / sqrt(var + (double)a->eps);
    double g = gamma ? gamma[ci] : 1.0, sdy = 0, sdyx = 0;
    for (int64_t i = 0; i < a->n; i++)
      for (int64_t e = 0; e < a->spatial; e++) {
        sdy += AT(a, dy, i, ci, e);
        sdyx += AT(a, dy, i, ci, e) * (AT(a, x, i, ci, e) - mean) * is;
      }
    dgamma[ci] = sdyx;
    dbeta[ci] = sdy;
    /* dx = gamma*invstd/m * (m*dy - sum dy - xhat * sum dy*xhat) */
    for (int64_t i = 0; i < a->n; i++)
      for (int64_t e = 0; e < a->spatial; e++) {
        double xh = (AT(a, x, i, ci, e) - mean) * is;
        AT(a, dx, i, ci, e) =
            g * is / m * (m * AT(a, dy, i, ci, e) - sdy - xh * sdyx);
      }
  }
}

/* A double copy of n floats (NULL stays NULL). */
static double *to_d(const float *f, int64_t n) {
  if (!f)
    return NULL;
  double *d = calloc((size_t)(n ? n : 1), sizeof *d);
  for (int64_t i = 0; i < n; i++)
    d[i] = f[i];
  return d;
}

static void to_f(float *f, const double *d, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    f[i] = (float)d[i];
}

/* The forward with statistics from the batch (train, or infer without
 * running statistics) or from running_mean / running_var. */
static void forward(const tc_batchnorm_args *a, int train) {
  int64_t nx = a->n * a->c * a->spatial;
  double *x = to_d(a->x, nx), *y = malloc((size_t)(nx ? nx : 1) * sizeof *y);
  int use_running = !train && a->running_mean && a->running_var;
  for (int64_t ci = 0; ci < a->c; ci++) {
    double mean, var;
    if (use_running) {
      mean = a->running_mean[ci], var = a->running_var[ci];
    } else {
      ref_batchnorm_stats_d(a, x, ci, &mean, &var);
    }
    double invstd = 1.0 / sqrt(var + (double)a->eps);
    normalise(a, x, ci, mean, invstd, a->gamma ? a->gamma[ci] : 1.0,
              a->beta ? a->beta[ci] : 0.0, y);
    if (!train)
      continue;
    if (a->save_mean)
      a->save_mean[ci] = (float)mean;
    if (a->save_invstd)
      a->save_invstd[ci] = (float)invstd;
    double mom = a->momentum, m = (double)(a->n * a->spatial);
    if (a->running_mean)
      a->running_mean[ci] =
          (float)((1 - mom) * a->running_mean[ci] + mom * mean);
    if (a->running_var) /* the unbiased variance, as PyTorch */
      a->running_var[ci] =
          (float)((1 - mom) * a->running_var[ci] + mom * var * m / (m - 1));
  }
  to_f(a->y, y, nx);
  free(x), free(y);
}

void ref_batchnorm_fwd_train(const tc_batchnorm_args *a) {
  forward(a, 1);
}

void ref_batchnorm_fwd_infer(const tc_batchnorm_args *a) {
  forward(a, 0);
}

void ref_batchnorm_bwd(const tc_batchnorm_args *a) {
  int64_t nx = a->n * a->c * a->spatial, nc = a->c;
  double *x = to_d(a->x, nx), *dy = to_d(a->dy, nx);
  double *g = to_d(a->gamma, nc);
  double *dx = malloc((size_t)(nx ? nx : 1) * sizeof *dx);
  double *dg = malloc((size_t)(nc ? nc : 1) * sizeof *dg);
  double *db = malloc((size_t)(nc ? nc : 1) * sizeof *db);
  ref_batchnorm_bwd_d(a, x, g, dy, dx, dg, db);
  int acc = a->accumulate;
  for (int64_t i = 0; i < nx; i++)
    a->dx[i] = (float)((acc ? (double)a->dx[i] : 0.0) + dx[i]);
  for (int64_t ci = 0; ci < nc; ci++) {
    if (a->dgamma)
      a->dgamma[ci] = (float)((acc ? (double)a->dgamma[ci] : 0.0) + dg[ci]);
    if (a->dbeta)
      a->dbeta[ci] = (float)((acc ? (double)a->dbeta[ci] : 0.0) + db[ci]);
  }
  free(x), free(dy), free(g), free(dx), free(dg), free(db);
}

/* y = relu(y + residual) in float, as add then relu_fwd; the mask bits. */
static void relu_epilogue(const tc_batchnorm_args *a) {
  int64_t nx = a->n * a->c * a->spatial, mps = (a->spatial + 7) / 8;
  for (int64_t i = 0; i < nx; i++) {
    float v = a->residual ? a->y[i] + a->residual[i] : a->y[i];
    a->y[i] = v > 0.f || isnan(v) ? v : 0.f;
  }
  if (!a->relu_mask)
    return;
  memset(a->relu_mask, 0, (size_t)(a->n * a->c * mps));
  for (int64_t p = 0; p < a->n * a->c; p++)
    for (int64_t e = 0; e < a->spatial; e++)
      if (a->y[p * a->spatial + e] > 0.f)
        a->relu_mask[p * mps + e / 8] |= (uint8_t)(1u << (e % 8));
}

void ref_batchnorm_relu_fwd_train(const tc_batchnorm_args *a) {
  forward(a, 1);
  relu_epilogue(a);
}

void ref_batchnorm_relu_fwd_infer(const tc_batchnorm_args *a) {
  forward(a, 0);
  relu_epilogue(a);
}

void ref_batchnorm_relu_bwd(const tc_batchnorm_args *a) {
  int64_t nx = a->n * a->c * a->spatial, mps = (a->spatial + 7) / 8;
  float *g = malloc((size_t)(nx ? nx : 1) * sizeof *g);
  for (int64_t p = 0; p < a->n * a->c; p++)
    for (int64_t e = 0; e < a->spatial; e++) {
      int64_t i = p * a->spatial + e;
      int pos = a->relu_mask ? (a->relu_mask[p * mps + e / 8] >> (e % 8)) & 1
                             : a->y[i] > 0.f;
      g[i] = pos ? a->dy[i] : 0.f;
    }
  tc_batchnorm_args b = *a;
  b.dy = g;
  ref_batchnorm_bwd(&b);
  for (int64_t i = 0; a->dresidual && i < nx; i++)
    a->dresidual[i] = a->accumulate_residual ? a->dresidual[i] + g[i] : g[i];
  free(g);
}

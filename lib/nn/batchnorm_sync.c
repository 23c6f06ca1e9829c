/*
 * batchnorm_sync.c - synchronised batch norm (torch.nn.SyncBatchNorm): a
 * training BatchNorm1d/2d that normalises with the statistics of every
 * rank's samples, so N ranks with B/N samples each train like one process
 * with B. Parameter gradients stay local (the data-parallel wrapper
 * averages them); dx sees the whole batch.
 *   x, y, dy, dx: (N, C, S)   per channel: gamma, beta, running_*: (C)
 *
 * Everything runs on the host over staged copies (the core never reads
 * device memory), in one thread: one order of operations makes the result
 * independent of thread and rank counts. Each rank sums each of its
 * samples' planes (double, index order); the per-sample sums are
 * all-gathered, padded to the largest rank batch so every rank sends the
 * same bytes, and added in global sample order (rank 0's samples first).
 * So the statistics have the same bits for any split of one global batch,
 * which an all-reduce (its order of addition follows the ranks) would not
 * give.
 *
 * Every rank enters every collective. A local failure before the first
 * one (staging, a batch unlike forward's) travels as a batch of -1 in the
 * batch all-gather, so all ranks fail together; after it, every rank
 * decides from the same gathered data.
 */
#include <math.h>

#include "batchnorm_sync.h"

/* Makes b hold `bytes`, keeping its first `keep` bytes. */
static tc_status hbuf_grow(nn_hbuf *b, size_t bytes, size_t keep) {
  if (bytes <= b->bytes)
    return TC_OK;
  void *p = tc__malloc(bytes);
  if (!p)
    return tc__oom("batchnorm (sync): host staging");
  if (keep)
    memcpy(p, b->p, keep);
  tc__free(b->p);
  b->p = p;
  b->bytes = bytes;
  return TC_OK;
}

void tc__nn_bn_sync_release(nn_bn_sync *s) {
  nn_hbuf *all[] = {&s->x,   &s->g,  &s->d,    &s->part,
                    &s->all, &s->ns, &s->stat, &s->chan};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    tc__free(all[i]->p);
    all[i]->p = NULL, all[i]->bytes = 0;
  }
}

/* The built-in CPU backend's memory is host memory and its ops have
 * finished when they return: its tensors are read and written in place,
 * which saves a copy of each activation in and out. NULL for any other
 * backend (staged). */
static float *host_view(const tc_tensor *t) {
  if (t->storage->be->iface != tc__cpu_backend_iface())
    return NULL;
  return (float *)((char *)t->storage->data + t->offset_bytes);
}

/* t's ne floats on the host: in place, or copied into b. */
static tc_status stage(nn_hbuf *b, const tc_tensor *t, size_t ne, float **out) {
  if ((*out = host_view(t)) != NULL)
    return TC_OK;
  tc_status st = hbuf_grow(b, ne * sizeof(float), 0);
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(t, b->p, ne * sizeof(float));
  *out = st == TC_OK ? b->p : NULL;
  return st;
}

/* Sums over n values in double as LANES interleaved partial sums added in
 * a fixed order at the end: the same bits wherever it runs, without one
 * long chain of dependent additions. s[0] = sum u, s[1] = sum u * (w -
 * mean) (w NULL: u * u). */
#define LANES 8
static void plane_sums(const float *u, const float *w, double mean, int64_t n,
                       double s[2]) {
  double a[LANES] = {0}, b[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int k = 0; k < LANES; k++) {
      double x = u[j + k];
      a[k] += x;
      b[k] += x * (w ? (double)w[j + k] - mean : x);
    }
  double s0 = 0, s1 = 0;
  for (int k = 0; k < LANES; k++)
    s0 += a[k], s1 += b[k];
  for (; j < n; j++) {
    double x = u[j];
    s0 += x;
    s1 += x * (w ? (double)w[j] - mean : x);
  }
  s[0] = s0, s[1] = s1;
}

/* The buffers every step needs whatever the batch, before any collective
 * (a failure here cannot be told to the peers). */
static tc_status prepare(nn_bn_sync *s, const nn_bn_sync_args *a, int size) {
  size_t c = (size_t)a->c;
  tc_status st = hbuf_grow(&s->ns, 2 * (size_t)size * sizeof(int64_t), 0);
  if (st == TC_OK)
    st = hbuf_grow(&s->stat, 5 * c * sizeof(double), 0);
  if (st == TC_OK)
    st = hbuf_grow(&s->chan, 4 * c * sizeof(float), 0);
  return st;
}

/* All-gathers this rank's batch n (-1 when `st`, its local outcome so far,
 * is an error) into ns[off, off + size). TC_OK only when every rank's is. */
static tc_status gather_batches(nn_bn_sync *s, tc_layer *l, tc_comm *comm,
                                tc_status st, int64_t n, int size, size_t off) {
  int64_t *ns = (int64_t *)s->ns.p + off, mine = st == TC_OK ? n : -1;
  tc_status cst = tc_comm_allgather(comm, &mine, ns, sizeof mine);
  if (cst != TC_OK || st != TC_OK)
    return st != TC_OK ? st : cst;
  for (int r = 0; r < size; r++)
    if (ns[r] < 0) {
      char p[256];
      return tc__error(TC_ESTATE,
                       "batchnorm (sync): %s: rank %d failed "
                       "before the statistics all-gather",
                       tc__nn_path(l, p, sizeof p), r);
    }
  return TC_OK;
}

/* Pads this rank's per-sample pairs to maxn samples and all-gathers them,
 * then out[ch*2 + k] = the sum of pair k of channel ch over the global
 * batch, in global sample order. */
static tc_status gather_sums(nn_bn_sync *s, const nn_bn_sync_args *a, int size,
                             const int64_t *ns, double *out) {
  size_t c = (size_t)a->c, n = (size_t)s->n, maxn = (size_t)s->maxn;
  size_t row = 2 * c * sizeof(double);
  double *part = s->part.p, *all = s->all.p;
  /* padding is sent too: keep its bytes defined */
  memset(part + n * 2 * c, 0, (maxn - n) * row);
  tc_status st = tc_comm_allgather(a->comm, part, all, maxn * row);
  if (st != TC_OK)
    return st;
  for (size_t ch = 0; ch < c; ch++) {
    double s0 = 0, s1 = 0;
    for (int r = 0; r < size; r++)
      for (int64_t i = 0; i < ns[r]; i++) {
        const double *p = all + (((size_t)r * maxn + (size_t)i) * c + ch) * 2;
        s0 += p[0], s1 += p[1];
      }
    out[ch * 2] = s0, out[ch * 2 + 1] = s1;
  }
  return TC_OK;
}

/* Host copies of gamma and beta into g, bt (1 and 0 without affine). */
static tc_status load_affine(const nn_bn_sync_args *a, float *g, float *bt) {
  size_t bytes = (size_t)a->c * sizeof(float);
  if (!a->gamma) {
    for (int64_t ch = 0; ch < a->c; ch++)
      g[ch] = 1.f, bt[ch] = 0.f;
    return TC_OK;
  }
  tc_status st = tc_tensor_copy_to_host(a->gamma, g, bytes);
  return st == TC_OK ? tc_tensor_copy_to_host(a->beta, bt, bytes) : st;
}

/* running = (1-m)*running + m*batch (unbiased variance), as the backends'
 * batchnorm_fwd_train; momentum < 0: m = 1/num_batches_tracked. */
static tc_status update_running(nn_bn_sync *s, const nn_bn_sync_args *a,
                                int64_t m) {
  size_t c = (size_t)a->c, bytes = c * sizeof(float);
  float *rm = s->chan.p, *rv = rm + c;
  const double *stat = s->stat.p;
  int64_t nbt = 0;
  tc_status st = tc_tensor_copy_to_host(a->running_mean, rm, bytes);
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(a->running_var, rv, bytes);
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(a->nbt, &nbt, sizeof nbt);
  if (st != TC_OK)
    return st;
  nbt++;
  /* float first, as the local path hands the backend a float momentum */
  double mom = a->momentum < 0.f ? (double)(float)(1.0 / (double)nbt)
                                 : (double)a->momentum;
  double unbias = (double)m / (double)(m - 1);
  for (size_t ch = 0; ch < c; ch++) {
    rm[ch] = (float)((1.0 - mom) * rm[ch] + mom * stat[ch]);
    rv[ch] = (float)((1.0 - mom) * rv[ch] + mom * stat[2 * c + ch] * unbias);
  }
  st = tc_tensor_copy_from_host(a->running_mean, rm, bytes);
  if (st == TC_OK)
    st = tc_tensor_copy_from_host(a->running_var, rv, bytes);
  if (st == TC_OK)
    st = tc_tensor_copy_from_host(a->nbt, &nbt, sizeof nbt);
  return st;
}

tc_status tc__nn_bn_sync_forward(nn_bn_sync *s, tc_layer *l,
                                 const nn_bn_sync_args *a, const tc_tensor *x,
                                 tc_tensor *y) {
  int size = tc_comm_size(a->comm);
  int64_t n = x->shape[0], sp = a->spatial;
  size_t c = (size_t)a->c, planes = (size_t)n * c, ne = planes * (size_t)sp;
  s->comm = NULL; /* no backward through a forward that failed */
  tc_status st = prepare(s, a, size);
  if (st != TC_OK)
    return st;
  /* local work first: its failure reaches the peers in the batch gather */
  float *hx = NULL;
  st = stage(&s->x, x, ne, &hx);
  if (st == TC_OK)
    st = hbuf_grow(&s->part, planes * 2 * sizeof(double), 0);
  /* room for equal batches now, so the common case grows nothing after
   * the first collective (where a failure would leave the peers waiting) */
  if (st == TC_OK)
    st = hbuf_grow(&s->all, (size_t)size * planes * 2 * sizeof(double), 0);
  if (st == TC_OK) {
    double *part = s->part.p;
    for (size_t p = 0; p < planes; p++)
      plane_sums(hx + p * (size_t)sp, NULL, 0.0, sp, part + 2 * p);
  }
  if ((st = gather_batches(s, l, a->comm, st, n, size, 0)) != TC_OK)
    return st;
  const int64_t *ns = s->ns.p;
  int64_t total = 0, maxn = 0;
  for (int r = 0; r < size; r++)
    total += ns[r], maxn = ns[r] > maxn ? ns[r] : maxn;
  int64_t m = total * sp;
  if (m <= 1) {
    char p[256];
    return tc__error(TC_ESHAPE,
                     "tc_model_forward: %s: batch statistics "
                     "need more than 1 value per channel (N=%lld over %d "
                     "ranks, spatial %lld)",
                     tc__nn_path(l, p, sizeof p), (long long)total, size,
                     (long long)sp);
  }
  size_t row = 2 * c * sizeof(double);
  st = hbuf_grow(&s->part, (size_t)maxn * row, planes * 2 * sizeof(double));
  if (st == TC_OK)
    st = hbuf_grow(&s->all, (size_t)size * (size_t)maxn * row, 0);
  if (st != TC_OK)
    return st;
  s->n = n, s->maxn = maxn, s->total = total;
  double *stat = s->stat.p, *sums = stat + 3 * c;
  if ((st = gather_sums(s, a, size, ns, sums)) != TC_OK)
    return st;
  for (size_t ch = 0; ch < c; ch++) {
    double mean = sums[2 * ch] / (double)m;
    double var = sums[2 * ch + 1] / (double)m - mean * mean;
    var = var > 0 ? var : 0;
    stat[ch] = mean;
    stat[c + ch] = 1.0 / sqrt(var + (double)a->eps);
    stat[2 * c + ch] = var;
  }
  float *g = (float *)s->chan.p + 2 * c, *bt = g + c;
  if ((st = load_affine(a, g, bt)) != TC_OK)
    return st;
  /* y in place on the CPU backend, else into x's staging and copied */
  float *hy = host_view(y);
  float *out = hy ? hy : hx;
  for (size_t p = 0; p < planes; p++) {
    size_t ch = p % c;
    float mu = (float)stat[ch], k = (float)(stat[c + ch] * g[ch]);
    const float *v = hx + p * (size_t)sp;
    float *o = out + p * (size_t)sp;
    for (int64_t j = 0; j < sp; j++)
      o[j] = (v[j] - mu) * k + bt[ch];
  }
  if (!hy)
    st = tc_tensor_copy_from_host(y, hx, ne * sizeof(float));
  if (st == TC_OK && a->running_mean)
    st = update_running(s, a, m);
  if (st == TC_OK)
    s->comm = a->comm;
  return st;
}

/* Parameter gradients of this rank's samples (pairs: sum dy, sum dy*(x -
 * mean) per plane), added to dgamma, dbeta as the local path does (with
 * invstd rounded to float, as it saves it). */
static tc_status add_param_grads(nn_bn_sync *s, const nn_bn_sync_args *a) {
  size_t c = (size_t)a->c, n = (size_t)s->n, bytes = c * sizeof(float);
  float *dg = s->chan.p, *db = dg + c;
  const double *part = s->part.p, *is = (const double *)s->stat.p + c;
  tc_status st = tc_tensor_copy_to_host(a->dgamma, dg, bytes);
  if (st == TC_OK)
    st = tc_tensor_copy_to_host(a->dbeta, db, bytes);
  if (st != TC_OK)
    return st;
  for (size_t ch = 0; ch < c; ch++) {
    double sa = 0, sb = 0;
    for (size_t i = 0; i < n; i++)
      sa += part[(i * c + ch) * 2], sb += part[(i * c + ch) * 2 + 1];
    dg[ch] += (float)(sb * (float)is[ch]);
    db[ch] += (float)sa;
  }
  st = tc_tensor_copy_from_host(a->dgamma, dg, bytes);
  return st == TC_OK ? tc_tensor_copy_from_host(a->dbeta, db, bytes) : st;
}

tc_status tc__nn_bn_sync_backward(nn_bn_sync *s, tc_layer *l,
                                  const nn_bn_sync_args *a, const tc_tensor *x,
                                  const tc_tensor *dy, tc_tensor *dx, int acc) {
  char p[256];
  /* every rank ran the same forwards, so all take this branch together */
  if (s->comm != a->comm)
    return tc__error(TC_ESTATE,
                     "tc_model_backward: %s: the last forward "
                     "was not synchronised over this communicator",
                     tc__nn_path(l, p, sizeof p));
  int size = tc_comm_size(a->comm);
  int64_t n = dy->shape[0], sp = a->spatial;
  size_t c = (size_t)a->c, planes = (size_t)n * c, ne = planes * (size_t)sp;
  tc_status st = TC_OK;
  if (n != s->n)
    st = tc__error(TC_ESHAPE,
                   "tc_model_backward: %s: dy holds %lld "
                   "samples, the forward %lld",
                   tc__nn_path(l, p, sizeof p), (long long)n, (long long)s->n);
  float *hx = NULL, *hg = NULL;
  if (st == TC_OK)
    st = stage(&s->x, x, ne, &hx);
  if (st == TC_OK)
    st = stage(&s->g, dy, ne, &hg);
  double *stat = s->stat.p, *sums = stat + 3 * c;
  if (st == TC_OK) {
    double *part = s->part.p;
    for (size_t q = 0; q < planes; q++)
      plane_sums(hg + q * (size_t)sp, hx + q * (size_t)sp,
                 (double)(float)stat[q % c], sp, part + 2 * q);
  }
  /* the batches are gathered again, so a rank that failed above is known
   * to all before the sums are exchanged */
  if ((st = gather_batches(s, l, a->comm, st, n, size, (size_t)size)) != TC_OK)
    return st;
  const int64_t *ns = s->ns.p;
  for (int r = 0; r < size; r++)
    if (ns[size + r] != ns[r])
      return tc__error(TC_ESHAPE,
                       "tc_model_backward: %s: rank %d's dy "
                       "holds %lld samples, its forward %lld",
                       tc__nn_path(l, p, sizeof p), r, (long long)ns[size + r],
                       (long long)ns[r]);
  if ((st = gather_sums(s, a, size, ns, sums)) != TC_OK)
    return st;
  if (a->dgamma && (st = add_param_grads(s, a)) != TC_OK)
    return st;
  if (!dx)
    return TC_OK;
  float *g = (float *)s->chan.p + 2 * c, *bt = g + c;
  if ((st = load_affine(a, g, bt)) != TC_OK)
    return st;
  /* dx = gamma*invstd*(dy - A/M - (x - mean)*invstd^2*B/M), as
   * (dy - gm - (x - mu)*k)*scale with per-channel float coefficients;
   * mean and invstd rounded to float, as the local path saves them */
  double m = (double)(s->total * sp);
  /* dx in place on the CPU backend (x and dy are read at the same index
   * first, so dx may alias either); else into a staging buffer */
  float *hdx = host_view(dx);
  float *out = hdx;
  if (!out) {
    if ((st = hbuf_grow(&s->d, ne * sizeof(float), 0)) != TC_OK)
      return st;
    out = s->d.p;
    if (acc &&
        (st = tc_tensor_copy_to_host(dx, out, ne * sizeof(float))) != TC_OK)
      return st;
  }
  for (size_t q = 0; q < planes; q++) {
    size_t ch = q % c;
    double is = (float)stat[c + ch];
    float mu = (float)stat[ch], gm = (float)(sums[2 * ch] / m);
    float k = (float)(is * is * sums[2 * ch + 1] / m);
    float scale = (float)(g[ch] * is);
    const float *v = hx + q * (size_t)sp, *d = hg + q * (size_t)sp;
    float *o = out + q * (size_t)sp;
    if (acc)
      for (int64_t j = 0; j < sp; j++)
        o[j] += (d[j] - gm - (v[j] - mu) * k) * scale;
    else
      for (int64_t j = 0; j < sp; j++)
        o[j] = (d[j] - gm - (v[j] - mu) * k) * scale;
  }
  return hdx ? TC_OK : tc_tensor_copy_from_host(dx, out, ne * sizeof(float));
}

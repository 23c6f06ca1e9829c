/*
 * ddp_det.c - deterministic data-parallel steps: the same bits on any
 * number of ranks.
 *
 * The global batch of L samples is cut into G fixed chunks (chunk c holds
 * samples [L*c/G, L*(c+1)/G)); rank r's share is chunks [r*G/N,
 * (r+1)*G/N), which is exactly the loader's shard [L*r/N, L*(r+1)/N).
 * Each chunk runs as its own micro-batch (forward, loss, backward from
 * zeroed gradients), so what a chunk computes does not depend on N. The
 * chunks' results (gradients, loss, hits, BatchNorm statistics) are
 * gathered on every rank and combined in chunk order:
 *   grad = pre + sum_c (n_c / L) * grad_c        (left to right)
 * which is gradient accumulation over G micro-batches, as
 * `loss / G; loss.backward()` per micro-batch does in PyTorch.
 *
 * BatchNorm layers normalise each chunk with the chunk's statistics. Their
 * running statistics are replayed in chunk order: before a chunk's forward
 * the running buffers are zeroed, so afterwards they hold momentum * the
 * chunk's statistic (q_c), and every rank then computes
 *   running = (1 - momentum) * running + q_c     for c = 0 .. G-1.
 * Dropout draws chunk c's masks at offset base + c * 2^32 of the model's
 * stream, so they do not depend on which rank runs the chunk.
 * Costs: G smaller batches instead of one, and an all-gather of G
 * gradient copies instead of an all-reduce (docs/distributed.md).
 */
#include <stdio.h>
#include <string.h>

#include "../nn/nn_internal.h"
#include "ddp_internal.h"

/* chunk record: [grads P][captured running R][loss][n][hits][failed] */
enum { REC_LOSS, REC_N, REC_HITS, REC_FAILED, REC_TAIL };

struct ddp_det {
  int chunks, per_rank;
  ddp_running *run;
  int64_t nrun, rfloats; /* running tensors, their floats (R) */
  tc_tensor **nbt;       /* num_batches_tracked tensors */
  int64_t nnbt, cap_run, cap_nbt;
  int64_t rec; /* floats per chunk record */
  float *mine, *all, *pre, *acc, *snap;
  int64_t *nbt_snap;
};

static tc_status collect(ddp_det *t, tc_layer *l, const char *fn) {
  float mom;
  if (tc__nn_bn_momentum(l, &mom)) {
    for (int j = 0; j < l->nbuffers; j++) {
      const char *name = l->bspec[j].name;
      if (!strcmp(name, "num_batches_tracked")) {
        if (t->nnbt == t->cap_nbt)
          return tc__error(TC_EINVAL, "%s: internal: too many buffers", fn);
        t->nbt[t->nnbt++] = l->buffer[j];
        continue;
      }
      if (strcmp(name, "running_mean") && strcmp(name, "running_var"))
        continue;
      if (mom == TC_BN_MOMENTUM_CUMULATIVE) {
        char path[256];
        return tc__error(TC_EUNSUPPORTED,
                         "%s: deterministic mode needs a fixed BatchNorm "
                         "momentum; '%s' uses the cumulative average",
                         fn, tc__nn_path(l, path, sizeof path));
      }
      if (t->nrun == t->cap_run)
        return tc__error(TC_EINVAL, "%s: internal: too many buffers", fn);
      t->run[t->nrun].t = l->buffer[j];
      t->run[t->nrun].momentum = mom;
      t->nrun++;
      t->rfloats += l->buffer[j]->numel;
    }
  }
  for (int64_t i = 0; i < l->nchildren; i++) {
    tc_status st = collect(t, l->children[i], fn);
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

void tc__ddp_det_release(tc_ddp *d) {
  ddp_det *t = d->det;
  if (!t)
    return;
  tc__free(t->run);
  tc__free(t->nbt);
  tc__free(t->mine);
  tc__free(t->all);
  tc__free(t->pre);
  tc__free(t->acc);
  tc__free(t->snap);
  tc__free(t->nbt_snap);
  tc__free(t);
  d->det = NULL;
}

tc_status tc__ddp_det_init(tc_ddp *d, const char *fn) {
  ddp_det *t = tc__calloc(1, sizeof *t);
  if (!t)
    return tc__oom(fn);
  d->det = t;
  t->chunks = d->o.chunks;
  t->per_rank = d->o.chunks / d->size;
  int64_t nb = tc_model_num_buffers(d->m);
  t->cap_run = t->cap_nbt = nb;
  t->run = tc__calloc((size_t)nb + 1, sizeof *t->run);
  t->nbt = tc__calloc((size_t)nb + 1, sizeof *t->nbt);
  t->nbt_snap = tc__calloc((size_t)nb + 1, sizeof *t->nbt_snap);
  if (!t->run || !t->nbt || !t->nbt_snap)
    return tc__oom(fn);
  tc_status st = collect(t, tc__nn_model_root(d->m), fn);
  if (st != TC_OK)
    return st;
  size_t rec, mine, all;
  t->rec = d->nfloats + t->rfloats + REC_TAIL;
  if (!tc__mul_size((size_t)t->rec, (size_t)t->per_rank, &mine) ||
      !tc__mul_size((size_t)t->rec, (size_t)t->chunks, &all) ||
      !tc__mul_size(mine, sizeof(float), &rec) ||
      !tc__mul_size(all, sizeof(float), &rec))
    return tc__error(TC_EINVAL, "%s: %d chunks of %lld floats overflow", fn,
                     (int)t->chunks, (long long)t->rec);
  t->mine = tc__calloc(mine, sizeof(float));
  t->all = tc__calloc(all, sizeof(float));
  t->pre = tc__calloc((size_t)d->nfloats + 1, sizeof(float));
  t->acc = tc__calloc((size_t)d->nfloats + 1, sizeof(float));
  t->snap = tc__calloc((size_t)t->rfloats + 1, sizeof(float));
  if (!t->mine || !t->all || !t->pre || !t->acc || !t->snap)
    return tc__oom(fn);
  return TC_OK;
}

/* rows [r0, r0 + n) of t, as a view struct that is never destroyed */
static void rows(tc_tensor *v, const tc_tensor *t, int64_t r0, int64_t n) {
  *v = *t;
  int64_t per = t->shape[0] ? t->numel / t->shape[0] : 0;
  v->offset_bytes += (size_t)(r0 * per) * tc__dtype_size(t->dtype);
  v->shape[0] = n;
  v->numel = n * per;
}

/* Runs chunk c (rows [r0, r0 + n) of the local x, y) into record `rec`. */
static tc_status run_chunk(tc_ddp *d, tc_loss *loss, tc_tensor *x,
                           const tc_tensor *y, int64_t r0, int64_t n,
                           uint64_t offset, float *rec) {
  ddp_det *t = d->det;
  tc_model *m = d->m;
  int training = tc_model_is_training(m);
  tc_status st = tc_model_zero_grad(m);
  for (int64_t i = 0; training && i < t->nrun && st == TC_OK; i++)
    st = tc_tensor_fill(t->run[i].t, 0.0);
  if (st == TC_OK)
    st = tc_model_set_rng_offset(m, offset);
  if (st != TC_OK)
    return st;
  tc_tensor xv, yv, *out;
  rows(&xv, x, r0, n);
  rows(&yv, y, r0, n);
  float lv = 0.f;
  int64_t hits = 0;
  if ((st = tc_model_forward(m, &xv, &out)) != TC_OK)
    return st;
  tc_tensor *g = tc_model_output_grad(m);
  if ((st = tc_loss_compute(loss, out, &yv, &lv, g)) != TC_OK ||
      (st = tc_accuracy_count(out, &yv, &hits)) != TC_OK ||
      (st = tc_model_backward(m, g)) != TC_OK ||
      (st = tc_tensor_copy_to_host(tc_model_grads_flat(m), rec,
                                   (size_t)d->nfloats * sizeof(float))) !=
          TC_OK)
    return st;
  float *q = rec + d->nfloats;
  for (int64_t i = 0; training && i < t->nrun && st == TC_OK; i++) {
    st = tc_tensor_copy_to_host(t->run[i].t, q,
                                (size_t)t->run[i].t->numel * sizeof(float));
    q += t->run[i].t->numel;
  }
  rec[d->nfloats + t->rfloats + REC_LOSS] = lv;
  rec[d->nfloats + t->rfloats + REC_HITS] = (float)hits;
  return st;
}

/* Saves what the step combines onto: gradients, running statistics,
 * batch counters. */
static tc_status snapshot(tc_ddp *d) {
  ddp_det *t = d->det;
  tc_status st = tc_tensor_copy_to_host(tc_model_grads_flat(d->m), t->pre,
                                        (size_t)d->nfloats * sizeof(float));
  float *s = t->snap;
  for (int64_t i = 0; i < t->nrun && st == TC_OK; i++) {
    st = tc_tensor_copy_to_host(t->run[i].t, s,
                                (size_t)t->run[i].t->numel * sizeof(float));
    s += t->run[i].t->numel;
  }
  for (int64_t i = 0; i < t->nnbt && st == TC_OK; i++)
    st = tc_tensor_copy_to_host(t->nbt[i], &t->nbt_snap[i], sizeof(int64_t));
  return st;
}

/* Combines the gathered records in chunk order (see the top). */
static tc_status combine(tc_ddp *d, int training, float *out_loss,
                         int64_t *out_correct) {
  ddp_det *t = d->det;
  int64_t P = d->nfloats, R = t->rfloats;
  memset(t->acc, 0, (size_t)P * sizeof(float));
  float lsum = 0.f;
  int64_t hits = 0, used = 0;
  for (int c = 0; c < t->chunks; c++) {
    const float *rec = t->all + (size_t)c * (size_t)t->rec;
    float n = rec[P + R + REC_N];
    if (n == 0.f)
      continue;
    used++;
    float w = n / (float)d->total;
    for (int64_t i = 0; i < P; i++)
      t->acc[i] += w * rec[i];
    lsum += w * rec[P + R + REC_LOSS];
    hits += (int64_t)rec[P + R + REC_HITS];
  }
  for (int64_t i = 0; i < P; i++)
    t->acc[i] = t->pre[i] + t->acc[i];
  tc_status st = tc_tensor_copy_from_host(tc_model_grads_flat(d->m), t->acc,
                                          (size_t)P * sizeof(float));
  if (training) {
    float *s = t->snap;
    int64_t off = 0;
    for (int64_t i = 0; i < t->nrun && st == TC_OK; i++) {
      int64_t n = t->run[i].t->numel;
      float mom = t->run[i].momentum;
      for (int c = 0; c < t->chunks; c++) {
        const float *rec = t->all + (size_t)c * (size_t)t->rec;
        if (rec[P + R + REC_N] == 0.f)
          continue;
        for (int64_t k = 0; k < n; k++)
          s[k] = (1.0f - mom) * s[k] + rec[P + off + k];
      }
      st = tc_tensor_copy_from_host(t->run[i].t, s, (size_t)n * sizeof(float));
      s += n;
      off += n;
    }
    for (int64_t i = 0; i < t->nnbt && st == TC_OK; i++) {
      int64_t v = t->nbt_snap[i] + used;
      st = tc_tensor_copy_from_host(t->nbt[i], &v, sizeof v);
    }
  }
  if (out_loss)
    *out_loss = lsum;
  if (out_correct)
    *out_correct = hits;
  return st;
}

tc_status tc__ddp_det_step(tc_ddp *d, tc_loss *loss, tc_tensor *x,
                           const tc_tensor *y, float *out_loss,
                           int64_t *out_correct) {
  static const char fn[] = "tc_ddp_train_step";
  ddp_det *t = d->det;
  int64_t n = x ? x->shape[0] : 0;
  tc_status st = tc__ddp_gather_counts(d, n);
  if (st != TC_OK)
    return st;
  int64_t L = d->total, N = d->size, G = t->chunks;
  if (L == 0)
    return tc__error(TC_ESHAPE,
                     "%s: every rank's share of the batch is "
                     "empty",
                     fn);
  for (int64_t r = 0; r < N; r++) {
    int64_t want = L * (r + 1) / N - L * r / N;
    if (d->counts[r] != want)
      return tc__error(TC_ESHAPE,
                       "%s: rank %lld has %lld samples of the global "
                       "batch of %lld; deterministic mode needs rank r to "
                       "hold samples [L*r/N, L*(r+1)/N), i.e. %lld (a "
                       "loader with num_shards = N gives that)",
                       fn, (long long)r, (long long)d->counts[r], (long long)L,
                       (long long)want);
  }
  int training = tc_model_is_training(d->m);
  uint64_t base = tc_model_get_rng_offset(d->m);
  st = snapshot(d);
  int64_t P = d->nfloats, R = t->rfloats;
  int64_t local0 = L * d->rank / N;
  memset(t->mine, 0, (size_t)t->rec * (size_t)t->per_rank * sizeof(float));
  for (int k = 0; k < t->per_rank; k++) {
    int64_t c = (int64_t)d->rank * t->per_rank + k;
    int64_t c0 = L * c / G, c1 = L * (c + 1) / G;
    float *rec = t->mine + (size_t)k * (size_t)t->rec;
    rec[P + R + REC_N] = (float)(c1 - c0);
    if (c1 == c0 || st != TC_OK)
      continue;
    st = run_chunk(d, loss, x, y, c0 - local0, c1 - c0,
                   base + ((uint64_t)c << 32), rec);
  }
  if (st != TC_OK)
    for (int k = 0; k < t->per_rank; k++)
      t->mine[(size_t)k * (size_t)t->rec + (size_t)(P + R + REC_FAILED)] = 1;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", tc_last_error());
  tc_status st2 =
      tc_comm_allgather(d->comm, t->mine, t->all,
                        (size_t)t->rec * (size_t)t->per_rank * sizeof(float));
  if (st != TC_OK)
    return tc__error(st, "%s", msg);
  if (st2 != TC_OK)
    return st2;
  for (int c = 0; c < G; c++)
    if (t->all[(size_t)c * (size_t)t->rec + (size_t)(P + R + REC_FAILED)])
      return tc__error(TC_ESTATE,
                       "%s: rank %lld failed this step (see its "
                       "message)",
                       fn, (long long)(c / t->per_rank));
  if ((st = combine(d, training, out_loss, out_correct)) != TC_OK)
    return st;
  return tc_model_set_rng_offset(d->m, base + ((uint64_t)G << 32));
}

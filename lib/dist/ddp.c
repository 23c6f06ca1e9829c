/*
 * ddp.c - data-parallel training over a communicator, after PyTorch's
 * DistributedDataParallel (Li et al., "PyTorch Distributed", VLDB 2020).
 *
 * Buckets are contiguous ranges of the model's gradient arena, cut from
 * its end (the last layers, whose backward finishes first); bucket 0 is
 * small so that the first all-reduce starts early. The model calls us back
 * after each layer's backward (tc__nn_model_set_grad_hook); once every
 * parameter of a bucket is ready, and every bucket before it has started,
 * the bucket is scaled by 1/size and its all-reduce is started, so
 * communication overlaps the rest of the backward. Buckets always start in
 * index order: every rank issues the same collectives in the same order,
 * as MPI requires, whatever order its layers finish in.
 *
 * A rank's share of a batch may differ from the others' (the last batch
 * of an epoch); its output gradient is then scaled by n_r * size / total
 * so that the average is the gradient of the global batch's mean loss.
 *
 * Deterministic mode (ddp_det.c) runs the global batch as fixed chunks.
 *
 * Backends whose memory the host cannot read go through a host staging
 * copy of each bucket, unless the communicator takes that backend's
 * device buffers (tc_comm_iface.device_context, e.g. the CUDA module's
 * NCCL communicator): buckets are then scaled and all-reduced in place in
 * the gradient arena, as on the CPU. Parameters and buffers are still
 * broadcast through the host (once at creation, and per forward with
 * broadcast_buffers).
 */
#include <stdio.h>
#include <string.h>

#include "../options.h"
#include "../nn/nn_internal.h"
#include "ddp_internal.h"

TC_API tc_status tc_ddp_options_init(tc_ddp_options *o, size_t struct_size) {
  static const char fn[] = "tc_ddp_options_init";
  TC__CHECK_NULL(o, fn);
  tc_ddp_options d = TC_DDP_OPTIONS_INIT;
  return tc__options_init(o, struct_size, &d, sizeof d, TC__SIZE0_DDP_OPTIONS,
                          fn);
}

static tc_status be_copy_d2h(tc_backend *be, void *dst, const void *src,
                             size_t bytes) {
  return bytes ? be->iface->copy_d2h(be->ctx, dst, src, bytes) : TC_OK;
}

static tc_status be_copy_h2d(tc_backend *be, void *dst, const void *src,
                             size_t bytes) {
  return bytes ? be->iface->copy_h2d(be->ctx, dst, src, bytes) : TC_OK;
}

/* x (n floats, device) *= alpha. */
tc_status tc__ddp_scale(tc_backend *be, float *x, int64_t n, float alpha) {
  if (n == 0 || alpha == 1.0f)
    return TC_OK;
  if (!TC__HAS_SLOT(be->iface, scale))
    return tc__nn_unsupported("scale");
  tc_eltwise_args a = {sizeof a, n, alpha, 0.f, x, NULL, x};
  return be->iface->scale(be->ctx, &a);
}

/* Every parameter and buffer of rank 0, on every rank. */
static tc_status broadcast_state(tc_ddp *d, int params, int buffers) {
  tc_backend *be = d->be;
  tc_status st = TC_OK;
  if (params) {
    /* the dropout stream too: deterministic mode draws chunk c's masks
     * from it on whichever rank runs the chunk */
    uint64_t rng[2] = {tc_model_get_seed(d->m), tc_model_get_rng_offset(d->m)};
    if ((st = tc_comm_broadcast(d->comm, rng, sizeof rng, 0)) != TC_OK ||
        (st = tc_model_set_seed(d->m, rng[0])) != TC_OK ||
        (st = tc_model_set_rng_offset(d->m, rng[1])) != TC_OK)
      return st;
  }
  if (params && d->nfloats) {
    float *host = d->stage;
    float *dev = tc_tensor_data(tc_model_params_flat(d->m));
    size_t bytes = (size_t)d->nfloats * sizeof(float);
    if ((st = be_copy_d2h(be, host, dev, bytes)) != TC_OK ||
        (st = tc_comm_broadcast(d->comm, host, bytes, 0)) != TC_OK ||
        (st = be_copy_h2d(be, dev, host, bytes)) != TC_OK)
      return st;
  }
  if (buffers && d->buf_bytes) {
    char *host = d->buf_stage;
    int64_t nb = tc_model_num_buffers(d->m);
    size_t at = 0;
    for (int64_t i = 0; i < nb && st == TC_OK; i++) {
      tc_tensor *t;
      tc_model_get_buffer(d->m, i, NULL, &t);
      size_t b = (size_t)t->numel * tc__dtype_size(t->dtype);
      st = be_copy_d2h(be, host + at, tc_tensor_data(t), b);
      at += b;
    }
    if (st == TC_OK)
      st = tc_comm_broadcast(d->comm, host, d->buf_bytes, 0);
    at = 0;
    for (int64_t i = 0; i < nb && st == TC_OK; i++) {
      tc_tensor *t;
      tc_model_get_buffer(d->m, i, NULL, &t);
      size_t b = (size_t)t->numel * tc__dtype_size(t->dtype);
      st = be_copy_h2d(be, tc_tensor_data(t), host + at, b);
      at += b;
    }
  }
  return st;
}

/* Buckets over the gradient arena, from its end: bucket 0 holds the last
 * parameters up to first_bucket_bytes, the others up to bucket_bytes; a
 * parameter larger than its bucket gets one of its own. */
static tc_status make_buckets(tc_ddp *d, const char *fn) {
  tc_model *m = d->m;
  int64_t np = tc_model_num_params(m);
  float *arena = tc_tensor_data(tc_model_grads_flat(m));
  d->np = np;
  d->p_off = tc__calloc((size_t)np + 1, sizeof *d->p_off);
  d->p_len = tc__calloc((size_t)np + 1, sizeof *d->p_len);
  d->p_bucket = tc__calloc((size_t)np + 1, sizeof *d->p_bucket);
  d->p_ready = tc__calloc((size_t)np + 1, 1);
  d->bk = tc__calloc((size_t)np + 1, sizeof *d->bk);
  if (!d->p_off || !d->p_len || !d->p_bucket || !d->p_ready || !d->bk)
    return tc__oom(fn);
  for (int64_t i = 0; i < np; i++) {
    tc_tensor *g;
    tc_model_get_param(m, i, NULL, NULL, &g);
    d->p_off[i] = (float *)tc_tensor_data(g) - arena;
    d->p_len[i] = g->numel;
  }
  int64_t nb = 0;
  for (int64_t i = np - 1; i >= 0;) {
    int64_t cap = (nb == 0 ? d->o.first_bucket_bytes : d->o.bucket_bytes) /
                  (int64_t)sizeof(float);
    ddp_bucket *b = &d->bk[nb];
    b->hi = d->p_off[i] + d->p_len[i];
    int64_t used = 0;
    while (i >= 0 && (used == 0 || used + d->p_len[i] <= cap)) {
      used += d->p_len[i];
      d->p_bucket[i] = nb;
      b->nparams++;
      b->lo = d->p_off[i];
      i--;
    }
    nb++;
  }
  d->nb = nb;
  return TC_OK;
}

static void release(tc_ddp *d) {
  tc__free(d->p_off);
  tc__free(d->p_len);
  tc__free(d->p_bucket);
  tc__free(d->p_ready);
  tc__free(d->bk);
  tc__free(d->stage);
  tc__free(d->buf_stage);
  tc__free(d->counts);
  tc__ddp_det_release(d);
  tc__free(d);
}

TC_API tc_status tc_ddp_create(tc_ddp **out, tc_model *m, tc_comm *comm,
                               const tc_ddp_options *opts) {
  static const char fn[] = "tc_ddp_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(comm, fn);
  tc_ddp_options o;
  tc_ddp_options dflt = TC_DDP_OPTIONS_INIT;
  tc_status st =
      tc__options_accept(&o, sizeof o, opts, &dflt, TC__SIZE0_DDP_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  int size = tc_comm_size(comm);
  if (o.bucket_bytes < (int64_t)sizeof(float) ||
      o.first_bucket_bytes < (int64_t)sizeof(float))
    return tc__error(TC_EINVAL,
                     "%s: bucket sizes must be at least 4 bytes "
                     "(bucket_bytes %lld, first_bucket_bytes %lld)",
                     fn, (long long)o.bucket_bytes,
                     (long long)o.first_bucket_bytes);
  if (o.deterministic && (o.chunks < 1 || o.chunks % size != 0))
    return tc__error(TC_EINVAL,
                     "%s: chunks = %d must be a positive "
                     "multiple of the number of ranks (%d)",
                     fn, (int)o.chunks, size);
  if (o.deterministic && o.sync_batchnorm)
    return tc__error(TC_EINVAL,
                     "%s: sync_batchnorm cannot be combined with "
                     "deterministic mode (each chunk is normalised with "
                     "its own statistics; see docs/distributed.md)",
                     fn);
  if (tc__nn_model_sync_bn(m))
    return tc__error(TC_ESTATE,
                     "%s: the model is already wrapped with "
                     "sync_batchnorm",
                     fn);
  tc_ddp *d = tc__calloc(1, sizeof *d);
  if (!d)
    return tc__oom(fn);
  d->m = m;
  d->comm = comm;
  d->o = o;
  d->rank = tc_comm_rank(comm);
  d->size = size;
  d->be = tc_model_backend(m);
  d->host = strcmp(tc_backend_name(d->be), "cpu") == 0 ||
            (tc__comm_device_context(comm) &&
             tc__comm_device_context(comm) == tc_backend_get_context(d->be));
  d->nfloats = tc_model_params_flat(m)->numel;
  int64_t nb = tc_model_num_buffers(m);
  for (int64_t i = 0; i < nb; i++) {
    tc_tensor *t;
    tc_model_get_buffer(m, i, NULL, &t);
    d->buf_bytes += (size_t)t->numel * tc__dtype_size(t->dtype);
  }
  d->counts = tc__calloc((size_t)size, sizeof *d->counts);
  d->stage = tc__calloc((size_t)d->nfloats + 1, sizeof(float));
  d->buf_stage = tc__calloc(d->buf_bytes + 1, 1);
  if (!d->counts || !d->stage || !d->buf_stage) {
    release(d);
    return tc__oom(fn);
  }
  if ((st = make_buckets(d, fn)) != TC_OK ||
      (o.deterministic && (st = tc__ddp_det_init(d, fn)) != TC_OK)) {
    release(d);
    return st;
  }
  /* collective from here: every rank reaches it (the checks above depend
   * only on arguments every rank passes alike) */
  if ((st = broadcast_state(d, 1, 1)) != TC_OK) {
    release(d);
    return st;
  }
  if (o.sync_batchnorm)
    tc__nn_model_set_sync_bn(m, comm);
  *out = d;
  return TC_OK;
}

TC_API void tc_ddp_destroy(tc_ddp *d) {
  if (!d)
    return;
  if (d->o.sync_batchnorm)
    tc__nn_model_set_sync_bn(d->m, NULL);
  release(d);
}

TC_API tc_status tc_ddp_sync_buffers(tc_ddp *d) {
  TC__CHECK_NULL(d, "tc_ddp_sync_buffers");
  return d->size > 1 ? broadcast_state(d, 0, 1) : TC_OK;
}

TC_API tc_model *tc_ddp_model(const tc_ddp *d) {
  return d ? d->m : NULL;
}
TC_API tc_comm *tc_ddp_comm(const tc_ddp *d) {
  return d ? d->comm : NULL;
}
TC_API int64_t tc_ddp_num_buckets(const tc_ddp *d) {
  return d ? d->nb : -1;
}

/* Every rank's batch size into d->counts and d->total. Collective. */
tc_status tc__ddp_gather_counts(tc_ddp *d, int64_t n_local) {
  tc_status st =
      tc_comm_allgather(d->comm, &n_local, d->counts, sizeof n_local);
  if (st != TC_OK)
    return st;
  d->total = 0;
  for (int r = 0; r < d->size; r++)
    d->total += d->counts[r];
  return TC_OK;
}

TC_API tc_status tc_ddp_forward(tc_ddp *d, tc_tensor *x, tc_tensor **out) {
  static const char fn[] = "tc_ddp_forward";
  TC__CHECK_NULL(d, fn);
  TC__CHECK_NULL(out, fn);
  if (d->o.deterministic)
    return tc__error(TC_ESTATE,
                     "%s: a deterministic wrapper runs whole "
                     "steps: use tc_ddp_train_step",
                     fn);
  if (x && x->ndim < 1)
    return tc__error(TC_ESHAPE, "%s: x has no batch dimension", fn);
  int64_t n = x ? x->shape[0] : 0;
  d->forwarded = 0;
  if (!tc_model_is_training(d->m)) {
    if (!n) {
      *out = NULL;
      return TC_OK;
    }
    return tc_model_forward(d->m, x, out);
  }
  tc_status st = tc__ddp_gather_counts(d, n);
  if (st != TC_OK)
    return st;
  if (d->total == 0)
    return tc__error(TC_ESHAPE,
                     "%s: every rank's share of the batch is "
                     "empty",
                     fn);
  if (d->o.sync_batchnorm)
    for (int r = 0; r < d->size; r++)
      if (d->counts[r] == 0)
        return tc__error(TC_ESHAPE,
                         "%s: rank %d has no samples in this batch, which "
                         "synchronised batch norm cannot take (drop the "
                         "last partial batch, or use fewer ranks)",
                         fn, r);
  if (d->o.broadcast_buffers && !d->o.sync_batchnorm && d->size > 1 &&
      (st = broadcast_state(d, 0, 1)) != TC_OK)
    return st;
  d->n_local = n;
  if (!n) {
    *out = NULL;
    d->forwarded = 1;
    return TC_OK;
  }
  if ((st = tc_model_forward(d->m, x, out)) != TC_OK)
    return st;
  d->forwarded = 1;
  return TC_OK;
}

/* ---- backward with overlapped bucket all-reduces ---- */

/* Starts every ready bucket whose predecessors have started. */
static void start_ready(tc_ddp *d) {
  float *arena = tc_tensor_data(tc_model_grads_flat(d->m));
  while (d->next_start < d->nb && d->bk[d->next_start].pending == 0 &&
         d->err == TC_OK) {
    ddp_bucket *b = &d->bk[d->next_start];
    size_t len = (size_t)(b->hi - b->lo);
    float *buf;
    tc_status st;
    if (d->host) {
      buf = arena + b->lo;
      st = tc__ddp_scale(d->be, buf, (int64_t)len, 1.0f / (float)d->size);
    } else {
      buf = d->stage + b->lo;
      st = be_copy_d2h(d->be, buf, arena + b->lo, len * sizeof(float));
      for (size_t i = 0; st == TC_OK && i < len; i++)
        buf[i] *= 1.0f / (float)d->size;
    }
    if (st == TC_OK)
      st = tc__comm_allreduce_start_in(d->comm, buf, len, &b->rq);
    if (st == TC_OK)
      b->req = &b->rq;
    if (st != TC_OK) {
      d->err = st;
      return;
    }
    d->next_start++;
  }
  /* let the oldest running all-reduce progress (MPI progresses
   * non-blocking collectives only inside its calls) */
  while (d->next_wait < d->next_start) {
    int done = 0;
    if (tc_comm_test(d->comm, d->bk[d->next_wait].req, &done) != TC_OK || !done)
      break;
    tc_status st = tc_comm_wait(d->comm, d->bk[d->next_wait].req);
    d->bk[d->next_wait].req = NULL;
    if (st != TC_OK) {
      d->err = st;
      return;
    }
    if (!d->host) {
      ddp_bucket *b = &d->bk[d->next_wait];
      st = be_copy_h2d(d->be, arena + b->lo, d->stage + b->lo,
                       (size_t)(b->hi - b->lo) * sizeof(float));
      if (st != TC_OK) {
        d->err = st;
        return;
      }
    }
    d->next_wait++;
  }
}

static void grad_ready(void *user, tc_layer *l) {
  tc_ddp *d = user;
  float *arena = tc_tensor_data(tc_model_grads_flat(d->m));
  for (int j = 0; j < l->nparams; j++) {
    int64_t off = (float *)tc_tensor_data(l->grad[j]) - arena;
    /* parameters are sorted by offset */
    int64_t lo = 0, hi = d->np - 1;
    while (lo < hi) {
      int64_t mid = (lo + hi + 1) / 2;
      if (d->p_off[mid] <= off)
        lo = mid;
      else
        hi = mid - 1;
    }
    if (d->np && d->p_off[lo] == off && !d->p_ready[lo]) {
      d->p_ready[lo] = 1;
      d->bk[d->p_bucket[lo]].pending--;
    }
  }
  start_ready(d);
}

/* Starts what is left, in order, and waits for every bucket: run by every
 * rank even after a local failure, so that no peer is left waiting. */
static tc_status finish_buckets(tc_ddp *d) {
  for (int64_t b = 0; b < d->nb; b++)
    d->bk[b].pending = 0;
  start_ready(d);
  float *arena = tc_tensor_data(tc_model_grads_flat(d->m));
  tc_status st = d->err;
  for (int64_t b = d->next_wait; b < d->next_start; b++) {
    tc_status s2 = tc_comm_wait(d->comm, d->bk[b].req);
    d->bk[b].req = NULL;
    if (s2 == TC_OK && !d->host)
      s2 = be_copy_h2d(d->be, arena + d->bk[b].lo, d->stage + d->bk[b].lo,
                       (size_t)(d->bk[b].hi - d->bk[b].lo) * sizeof(float));
    if (st == TC_OK)
      st = s2;
  }
  d->next_wait = d->next_start;
  if (st == TC_OK && d->next_start < d->nb)
    st = tc__error(TC_EBACKEND,
                   "tc_ddp_backward: gradient bucket %lld "
                   "could not be started",
                   (long long)d->next_start);
  return st;
}

tc_status tc__ddp_backward(tc_ddp *d, const tc_tensor *dy, tc_status local) {
  for (int64_t b = 0; b < d->nb; b++) {
    d->bk[b].pending = d->bk[b].nparams;
    d->bk[b].req = NULL;
  }
  memset(d->p_ready, 0, (size_t)d->np);
  d->next_start = d->next_wait = 0;
  d->err = TC_OK;
  tc_status st = local;
  if (st == TC_OK && d->n_local > 0) {
    tc_tensor *g = tc_model_output_grad(d->m);
    /* an uneven share: scale dy so that averaging over ranks weights each
     * sample alike (see the top) */
    float f = (float)((double)d->n_local * d->size / (double)d->total);
    if (f != 1.0f) {
      if (dy != g)
        st = tc_tensor_copy(g, dy);
      if (st == TC_OK)
        st = tc__ddp_scale(d->be, tc_tensor_data(g), g->numel, f);
      dy = g;
    }
    if (st == TC_OK) {
      if (d->size > 1)
        tc__nn_model_set_grad_hook(d->m, grad_ready, d);
      st = tc_model_backward(d->m, dy);
      tc__nn_model_set_grad_hook(d->m, NULL, NULL);
    }
  }
  if (d->size == 1)
    return st;
  /* keep this rank's failure message: finishing may overwrite it */
  char msg[512];
  snprintf(msg, sizeof msg, "%s", tc_last_error());
  tc_status st2 = finish_buckets(d);
  if (st != TC_OK)
    return tc__error(st, "%s", msg);
  return st2;
}

TC_API tc_status tc_ddp_backward(tc_ddp *d, const tc_tensor *dy) {
  static const char fn[] = "tc_ddp_backward";
  TC__CHECK_NULL(d, fn);
  if (d->o.deterministic)
    return tc__error(TC_ESTATE,
                     "%s: a deterministic wrapper runs whole "
                     "steps: use tc_ddp_train_step",
                     fn);
  if (!d->forwarded)
    return tc__error(TC_ESTATE,
                     "%s: no training forward of this wrapper "
                     "to back-propagate through",
                     fn);
  d->forwarded = 0;
  if (!dy && d->n_local > 0)
    dy = tc_model_output_grad(d->m);
  return tc__ddp_backward(d, dy, TC_OK);
}

TC_API tc_status tc_ddp_train_step(tc_ddp *d, tc_loss *loss, tc_tensor *x,
                                   const tc_tensor *y, float *out_loss,
                                   int64_t *out_correct) {
  static const char fn[] = "tc_ddp_train_step";
  TC__CHECK_NULL(d, fn);
  TC__CHECK_NULL(loss, fn);
  if ((x == NULL) != (y == NULL))
    return tc__error(TC_EINVAL,
                     "%s: x and y must both be given or both "
                     "be NULL (an empty share)",
                     fn);
  if (x && (x->ndim < 1 || y->ndim < 1 || x->shape[0] != y->shape[0]))
    return tc__error(TC_ESHAPE,
                     "%s: x and y must have the same batch "
                     "size",
                     fn);
  if (d->o.deterministic)
    return tc__ddp_det_step(d, loss, x, y, out_loss, out_correct);
  tc_tensor *out = NULL;
  tc_status st = tc_ddp_forward(d, x, &out);
  if (st != TC_OK)
    return st; /* forward's collectives fail alike on every rank */
  float lv = 0.f;
  int64_t correct = 0;
  if (out) {
    st = tc_loss_compute(loss, out, y, &lv, tc_model_output_grad(d->m));
    if (st == TC_OK)
      st = tc_accuracy_count(out, y, &correct);
  }
  d->forwarded = 0;
  st = tc__ddp_backward(d, tc_model_output_grad(d->m), st);
  /* the loss, the hits and whether every rank succeeded, in one sum */
  float sums[3] = {lv * (float)d->n_local, (float)correct,
                   st != TC_OK ? 1.f : 0.f};
  char msg[512];
  snprintf(msg, sizeof msg, "%s", tc_last_error());
  tc_status st2 = d->size > 1 ? tc_comm_allreduce_sum(d->comm, sums, 3) : TC_OK;
  if (st != TC_OK)
    return tc__error(st, "%s", msg);
  if (st2 != TC_OK)
    return st2;
  if (sums[2] != 0.f)
    return tc__error(TC_ESTATE,
                     "%s: %.0f other rank(s) failed this step "
                     "(see their messages)",
                     fn, (double)sums[2]);
  if (out_loss)
    *out_loss = sums[0] / (float)d->total;
  if (out_correct)
    *out_correct = (int64_t)sums[1];
  return TC_OK;
}

/*
 * loader.c - batches of a dataset as backend tensors.
 *
 * A batch is a pure function of (seed, epoch, batch index): the epoch's
 * order is a permutation drawn from Philox stream TC_RNG_STREAM_SHUFFLE at
 * offset (epoch mod 2^22) * 2^40, and each sample's augmentation is keyed
 * by (seed, epoch, dataset index). So the prefetch thread merely computes
 * ahead: it fills a ring of host slots in (epoch, batch) order, the caller
 * takes them in the same order and copies each into the loader's tensors.
 * Moving (set_state) bumps a generation number that makes the thread drop
 * what it was computing and start over from the new position.
 *
 * Only one side ever prepares batches (the thread when prefetch > 0, the
 * caller otherwise), so the permutation buffer and the transform scratch
 * have a single owner and need no lock.
 */
#include <pthread.h>
#include <string.h>

#include "../options.h"
#include "data_internal.h"

#define EPOCH_LIMIT ((int64_t)1 << 22)
#define MAX_PREFETCH 64

typedef struct slot {
  float *x;   /* (batch_size, C', H', W') */
  int32_t *y; /* (batch_size) */
  int64_t epoch, batch;
} slot;

struct tc_loader {
  tc_dataset *ds;
  tc_transform *tf;
  tc_backend *be;
  int64_t n, batch_size, num_batches, last_size; /* last_size: of the last */
  int shuffle, prefetch;
  int64_t nshards, shard; /* this loader's slice of every batch */
  uint64_t seed;
  int64_t in_chw[3], out_chw[3];
  size_t sample_floats;

  /* the preparing side's own state */
  int64_t *perm;      /* order of perm_epoch, or NULL without shuffle */
  int64_t perm_epoch; /* -1: none yet */
  float *work;

  /* the caller's position: the next batch tc_loader_next returns */
  int64_t epoch, batch;
  tc_tensor *x_full, *y_full, *x_last, *y_last;

  /* the ring: prefetch slots, or one used synchronously */
  slot *slots;
  int nslots;

  /* thread state, under mu */
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  int head, count;
  int64_t prod_epoch, prod_batch; /* the thread's next batch */
  uint64_t generation;
  int stop;
};

TC_API tc_status tc_loader_options_init(tc_loader_options *o,
                                        size_t struct_size) {
  static const tc_loader_options d = TC_LOADER_OPTIONS_INIT;
  return tc__options_init(o, struct_size, &d, sizeof d,
                          TC__SIZE0_LOADER_OPTIONS, "tc_loader_options_init");
}

/* This shard's slice [*k0, *k1) of a batch of `count` samples. */
static void shard_range(const tc_loader *l, int64_t count, int64_t *k0,
                        int64_t *k1) {
  *k0 = count * l->shard / l->nshards;
  *k1 = count * (l->shard + 1) / l->nshards;
}

static void advance(int64_t *epoch, int64_t *batch, int64_t num_batches) {
  if (++*batch >= num_batches) {
    ++*epoch;
    *batch = 0;
  }
}

/* Fills `s` with batch (epoch, batch); cannot fail. */
static void prepare(tc_loader *l, slot *s, int64_t epoch, int64_t batch) {
  uint64_t e = (uint64_t)epoch & (uint64_t)(EPOCH_LIMIT - 1);
  if (l->shuffle && l->perm_epoch != (int64_t)e) {
    tc_rng r;
    tc_rng_init(&r, l->seed, TC_RNG_STREAM_SHUFFLE);
    r.offset = e << 40;
    tc__permutation(l->perm, l->n, &r);
    l->perm_epoch = (int64_t)e;
  }
  int64_t first = batch * l->batch_size;
  int64_t count = batch == l->num_batches - 1 ? l->last_size : l->batch_size;
  int64_t k0, k1;
  shard_range(l, count, &k0, &k1);
  for (int64_t k = k0; k < k1; k++) {
    int64_t idx = l->shuffle ? l->perm[first + k] : first + k;
    tc__transform_run(l->tf, tc__dataset_pixels(l->ds, idx), l->in_chw,
                      s->x + (size_t)(k - k0) * l->sample_floats, l->work,
                      l->seed, e, (uint64_t)idx);
    s->y[k - k0] = tc__dataset_label(l->ds, idx);
  }
  s->epoch = epoch;
  s->batch = batch;
}

static void *producer(void *arg) {
  tc_loader *l = arg;
  pthread_mutex_lock(&l->mu);
  for (;;) {
    while (!l->stop && l->count == l->nslots)
      pthread_cond_wait(&l->not_full, &l->mu);
    if (l->stop)
      break;
    uint64_t gen = l->generation;
    int64_t e = l->prod_epoch, b = l->prod_batch;
    /* the slot past the filled ones is the thread's alone until counted */
    slot *s = &l->slots[(l->head + l->count) % l->nslots];
    pthread_mutex_unlock(&l->mu);
    prepare(l, s, e, b);
    pthread_mutex_lock(&l->mu);
    if (gen == l->generation) {
      l->count++;
      advance(&l->prod_epoch, &l->prod_batch, l->num_batches);
      pthread_cond_signal(&l->not_empty);
    }
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static void stop_thread(tc_loader *l) {
  if (!l->thread_started)
    return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->not_full);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL);
  l->thread_started = 0;
}

TC_API void tc_loader_destroy(tc_loader *l) {
  if (!l)
    return;
  stop_thread(l);
  if (l->prefetch > 0) {
    pthread_cond_destroy(&l->not_full);
    pthread_cond_destroy(&l->not_empty);
    pthread_mutex_destroy(&l->mu);
  }
  if (l->slots)
    for (int i = 0; i < l->nslots; i++) {
      tc__free(l->slots[i].x);
      tc__free(l->slots[i].y);
    }
  tc__free(l->slots);
  tc_tensor_destroy(l->x_full);
  tc_tensor_destroy(l->y_full);
  tc_tensor_destroy(l->x_last);
  tc_tensor_destroy(l->y_last);
  tc__free(l->perm);
  tc__free(l->work);
  tc_transform_destroy(l->tf);
  tc_backend_destroy(l->be);
  tc_dataset_destroy(l->ds);
  tc__free(l);
}

static tc_status make_tensors(tc_loader *l, int64_t b, tc_tensor **x,
                              tc_tensor **y) {
  int64_t xs[4] = {b, l->out_chw[0], l->out_chw[1], l->out_chw[2]};
  tc_status st = tc_tensor_create(x, l->be, xs, 4, TC_FLOAT32);
  if (st != TC_OK)
    return st;
  return tc_tensor_create(y, l->be, &b, 1, TC_INT32);
}

TC_API tc_status tc_loader_create(tc_loader **out, tc_dataset *ds,
                                  const tc_transform *tf,
                                  const tc_loader_options *opts) {
  static const char fn[] = "tc_loader_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(ds, fn);
  static const tc_loader_options d = TC_LOADER_OPTIONS_INIT;
  tc_loader_options o;
  tc_status st =
      tc__options_accept(&o, sizeof o, opts, &d, TC__SIZE0_LOADER_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (o.batch_size < 1)
    return tc__error(TC_EINVAL, "%s: batch_size %lld < 1", fn,
                     (long long)o.batch_size);
  if (o.prefetch < 0 || o.prefetch > MAX_PREFETCH)
    return tc__error(TC_EINVAL, "%s: prefetch %d outside 0..%d", fn,
                     (int)o.prefetch, MAX_PREFETCH);
  if (o.reserved0 != 0)
    return tc__error(TC_EINVAL, "%s: reserved0 must be 0", fn);
  if (o.num_shards == 0)
    o.num_shards = 1;
  if (o.num_shards < 0 || o.shard < 0 || o.shard >= o.num_shards)
    return tc__error(TC_EINVAL, "%s: shard %d is not in [0, num_shards = %d)",
                     fn, (int)o.shard, (int)o.num_shards);
  int64_t n = ds->n;
  if (o.batch_size > n && o.drop_last)
    return tc__error(TC_EINVAL,
                     "%s: batch_size %lld with drop_last leaves "
                     "no batch of the %lld samples",
                     fn, (long long)o.batch_size, (long long)n);
  int64_t bs = o.batch_size > n ? n : o.batch_size; /* never more than n */

  tc_loader *l = tc__calloc(1, sizeof *l);
  if (!l)
    return tc__oom(fn);
  st = TC_OK;
  l->perm_epoch = -1;
  l->batch_size = o.batch_size;
  l->n = n;
  l->shuffle = o.shuffle != 0;
  l->prefetch = o.prefetch;
  l->nshards = o.num_shards;
  l->shard = o.shard;
  l->seed = o.seed == TC_LOADER_SEED_GLOBAL ? tc_get_seed() : o.seed;
  l->num_batches =
      o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
  l->last_size =
      o.drop_last || n % o.batch_size == 0 ? o.batch_size : n % o.batch_size;
  if (l->last_size > n)
    l->last_size = n;
  tc__dataset_retain(ds);
  l->ds = ds;
  if (o.prefetch > 0) {
    /* before any failure can reach destroy, which tears these down */
    if (pthread_mutex_init(&l->mu, NULL) != 0) {
      l->prefetch = 0;
      st = tc__error(TC_EBACKEND, "%s: cannot create a mutex", fn);
      goto fail;
    }
    pthread_cond_init(&l->not_empty, NULL);
    pthread_cond_init(&l->not_full, NULL);
  }

  if (o.backend) {
    tc__backend_retain(o.backend);
    l->be = o.backend;
  } else if ((st = tc_backend_create(&l->be, "cpu")) != TC_OK) {
    goto fail;
  }
  if (tf)
    st = tc__transform_clone(&l->tf, tf);
  else if ((st = tc_transform_create(&l->tf)) == TC_OK)
    st = tc_transform_add_to_float(l->tf);
  if (st != TC_OK)
    goto fail;
  l->in_chw[0] = ds->c;
  l->in_chw[1] = ds->h;
  l->in_chw[2] = ds->w;
  size_t work_floats;
  if ((st = tc__transform_plan(l->tf, l->in_chw, l->out_chw, &work_floats)) !=
      TC_OK)
    goto fail;
  l->sample_floats = (size_t)(l->out_chw[0] * l->out_chw[1] * l->out_chw[2]);
  size_t batch_floats;
  if (!tc__mul_size(l->sample_floats, (size_t)bs, &batch_floats) ||
      batch_floats > ((size_t)1 << 40)) {
    st = tc__error(TC_ESHAPE,
                   "%s: a batch of %lld samples of %zu floats is "
                   "too large",
                   fn, (long long)bs, l->sample_floats);
    goto fail;
  }
  l->work = tc__malloc(work_floats * sizeof(float));
  if (l->shuffle)
    l->perm = tc__calloc((size_t)n, sizeof *l->perm);
  l->nslots = o.prefetch > 0 ? o.prefetch : 1;
  l->slots = tc__calloc((size_t)l->nslots, sizeof *l->slots);
  if (!l->work || (l->shuffle && !l->perm) || !l->slots) {
    st = tc__oom(fn);
    goto fail;
  }
  for (int i = 0; i < l->nslots; i++) {
    l->slots[i].x = tc__malloc(batch_floats * sizeof(float));
    l->slots[i].y = tc__malloc((size_t)bs * sizeof(int32_t));
    if (!l->slots[i].x || !l->slots[i].y) {
      st = tc__oom(fn);
      goto fail;
    }
  }
  int64_t k0, k1, j0, j1; /* this shard's part of a full and a last batch */
  shard_range(l, bs, &k0, &k1);
  shard_range(l, l->last_size, &j0, &j1);
  if ((st = make_tensors(l, k1 - k0, &l->x_full, &l->y_full)) != TC_OK)
    goto fail;
  if (j1 - j0 != k1 - k0 &&
      (st = make_tensors(l, j1 - j0, &l->x_last, &l->y_last)) != TC_OK)
    goto fail;

  if (l->prefetch > 0) {
    if (pthread_create(&l->thread, NULL, producer, l) != 0) {
      st = tc__error(TC_EBACKEND, "%s: cannot start the prefetch thread", fn);
      goto fail;
    }
    l->thread_started = 1;
  }
  *out = l;
  return TC_OK;
fail:
  tc_loader_destroy(l);
  return st;
}

TC_API tc_status tc_loader_next(tc_loader *l, tc_tensor **out_x,
                                tc_tensor **out_y) {
  static const char fn[] = "tc_loader_next";
  TC__CHECK_NULL(l, fn);
  TC__CHECK_NULL(out_x, fn);
  TC__CHECK_NULL(out_y, fn);
  if (l->batch >= l->num_batches) {
    *out_x = NULL;
    *out_y = NULL;
    l->epoch++;
    l->batch = 0;
    return TC_OK;
  }
  slot *s;
  if (l->prefetch > 0) {
    pthread_mutex_lock(&l->mu);
    while (l->count == 0)
      pthread_cond_wait(&l->not_empty, &l->mu);
    s = &l->slots[l->head];
    pthread_mutex_unlock(&l->mu);
  } else {
    s = &l->slots[0];
    prepare(l, s, l->epoch, l->batch);
  }
  /* the ring's head is always the caller's position */
  int last = l->batch == l->num_batches - 1;
  int64_t k0, k1;
  shard_range(l, last ? l->last_size : l->batch_size, &k0, &k1);
  int64_t b = k1 - k0;
  tc_tensor *x = last && l->x_last ? l->x_last : l->x_full;
  tc_tensor *y = last && l->y_last ? l->y_last : l->y_full;
  tc_status st = tc_tensor_copy_from_host(
      x, s->x, (size_t)b * l->sample_floats * sizeof(float));
  if (st == TC_OK)
    st = tc_tensor_copy_from_host(y, s->y, (size_t)b * sizeof(int32_t));
  if (st != TC_OK)
    return st; /* the slot stays: a retry gets the same batch */
  if (l->prefetch > 0) {
    pthread_mutex_lock(&l->mu);
    l->head = (l->head + 1) % l->nslots;
    l->count--;
    pthread_cond_signal(&l->not_full);
    pthread_mutex_unlock(&l->mu);
  }
  l->batch++;
  *out_x = x;
  *out_y = y;
  return TC_OK;
}

TC_API int64_t tc_loader_num_batches(const tc_loader *l) {
  return l ? l->num_batches : -1;
}

TC_API tc_status tc_loader_get_state(const tc_loader *l, int64_t *out_epoch,
                                     int64_t *out_batch) {
  static const char fn[] = "tc_loader_get_state";
  TC__CHECK_NULL(l, fn);
  TC__CHECK_NULL(out_epoch, fn);
  TC__CHECK_NULL(out_batch, fn);
  *out_epoch = l->epoch;
  *out_batch = l->batch;
  return TC_OK;
}

TC_API tc_status tc_loader_set_state(tc_loader *l, int64_t epoch,
                                     int64_t batch) {
  static const char fn[] = "tc_loader_set_state";
  TC__CHECK_NULL(l, fn);
  if (epoch < 0 || epoch >= EPOCH_LIMIT)
    return tc__error(TC_EINVAL, "%s: epoch %lld outside 0..2^22-1", fn,
                     (long long)epoch);
  if (batch < 0 || batch > l->num_batches)
    return tc__error(TC_EINVAL, "%s: batch %lld outside 0..%lld", fn,
                     (long long)batch, (long long)l->num_batches);
  l->epoch = epoch;
  l->batch = batch;
  if (l->prefetch > 0) {
    pthread_mutex_lock(&l->mu);
    l->generation++;
    l->head = 0;
    l->count = 0;
    l->prod_epoch = epoch;
    l->prod_batch = batch;
    if (batch == l->num_batches) {
      l->prod_epoch++;
      l->prod_batch = 0;
    }
    pthread_cond_signal(&l->not_full);
    pthread_mutex_unlock(&l->mu);
  }
  return TC_OK;
}

int64_t tc__loader_batch_size(const tc_loader *l) {
  return l->batch_size;
}

int64_t tc__loader_size(const tc_loader *l) {
  return l->n;
}

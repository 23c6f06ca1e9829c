/*
 * test_loader.c - the batch loader: every index once per epoch, a new
 * order each epoch and the same order for the same seed, drop_last and the
 * partial last batch, the end-of-epoch signal and state, exact resume at
 * mid-epoch (also with augmentation), prefetch depths giving identical
 * batches, shutdown mid-epoch, option handling and failures without leaks.
 *
 * Samples are (1,1,2) images whose two pixels spell the dataset index, so
 * a batch read back tells which samples it holds.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static tc_dataset *make_indexed(int64_t n) {
  uint8_t *px = malloc((size_t)n * 2);
  int32_t *lb = malloc((size_t)n * sizeof *lb);
  for (int64_t i = 0; i < n; i++) {
    px[2 * i] = (uint8_t)(i & 0xff);
    px[2 * i + 1] = (uint8_t)(i >> 8);
    lb[i] = (int32_t)(i % 7);
  }
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_create(&ds, n, 1, 1, 2, 7, px, lb), TC_OK);
  free(px);
  free(lb);
  return ds;
}

/* An empty pipeline: floats 0..255, so indices come back exactly. */
static tc_transform *raw(void) {
  tc_transform *tf = NULL;
  ck_assert_int_eq(tc_transform_create(&tf), TC_OK);
  return tf;
}

static tc_loader *make_loader(tc_dataset *ds, const tc_transform *tf,
                              int64_t bs, int shuffle, int drop_last,
                              uint64_t seed, int prefetch) {
  tc_loader_options o = TC_LOADER_OPTIONS_INIT;
  o.batch_size = bs;
  o.shuffle = shuffle;
  o.drop_last = drop_last;
  o.seed = seed;
  o.prefetch = prefetch;
  tc_loader *l = NULL;
  tc_status st = tc_loader_create(&l, ds, tf, &o);
  ck_assert_msg(st == TC_OK, "create: %s", tc_last_error());
  return l;
}

/* Reads one batch of the indexed dataset into idx (its size returned);
 * -1 at the end-of-epoch signal. Checks labels and shapes. */
static int64_t next_indices(tc_loader *l, int64_t *idx) {
  tc_tensor *x = NULL, *y = NULL;
  tc_status st = tc_loader_next(l, &x, &y);
  ck_assert_msg(st == TC_OK, "next: %s", tc_last_error());
  if (!x) {
    ck_assert_ptr_null(y);
    return -1;
  }
  int64_t b = tc_tensor_dim(x, 0);
  ck_assert_int_eq(tc_tensor_ndim(x), 4);
  ck_assert_int_eq(tc_tensor_dim(x, 1), 1);
  ck_assert_int_eq(tc_tensor_dim(x, 2), 1);
  ck_assert_int_eq(tc_tensor_dim(x, 3), 2);
  ck_assert_int_eq(tc_tensor_dtype(x), TC_FLOAT32);
  ck_assert_int_eq(tc_tensor_ndim(y), 1);
  ck_assert_int_eq(tc_tensor_dim(y, 0), b);
  ck_assert_int_eq(tc_tensor_dtype(y), TC_INT32);
  float *xs = malloc((size_t)b * 2 * sizeof *xs);
  int32_t *ys = malloc((size_t)b * sizeof *ys);
  ck_assert_int_eq(tc_tensor_copy_to_host(x, xs, (size_t)b * 2 * sizeof *xs),
                   TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(y, ys, (size_t)b * sizeof *ys),
                   TC_OK);
  for (int64_t k = 0; k < b; k++) {
    idx[k] = (int64_t)xs[2 * k] + 256 * (int64_t)xs[2 * k + 1];
    ck_assert_int_eq(ys[k], idx[k] % 7);
  }
  free(xs);
  free(ys);
  return b;
}

/* Reads a whole epoch into order (n); returns the count read. */
static int64_t read_epoch(tc_loader *l, int64_t *order, int64_t bs) {
  int64_t total = 0, b;
  while ((b = next_indices(l, order + total)) >= 0) {
    ck_assert_int_le(b, bs);
    total += b;
  }
  return total;
}

START_TEST(test_epochs_shuffle) {
  const int64_t n = 23, bs = 4;
  tc_dataset *ds = make_indexed(n);
  tc_transform *tf = raw();
  for (int prefetch = 0; prefetch <= 2; prefetch += 2) {
    tc_loader *l = make_loader(ds, tf, bs, 1, 0, 5, prefetch);
    ck_assert_int_eq(tc_loader_num_batches(l), 6);
    int64_t e0[23], e1[23], e2[23];
    ck_assert_int_eq(read_epoch(l, e0, bs), n);
    int64_t ep, bt;
    ck_assert_int_eq(tc_loader_get_state(l, &ep, &bt), TC_OK);
    ck_assert_int_eq(ep, 1);
    ck_assert_int_eq(bt, 0);
    ck_assert_int_eq(read_epoch(l, e1, bs), n);
    ck_assert_int_eq(read_epoch(l, e2, bs), n);
    int64_t *eps[3] = {e0, e1, e2};
    for (int e = 0; e < 3; e++) {
      int seen[23] = {0};
      for (int64_t i = 0; i < n; i++)
        seen[eps[e][i]]++;
      for (int64_t i = 0; i < n; i++)
        ck_assert_int_eq(seen[i], 1); /* each index exactly once */
    }
    ck_assert(memcmp(e0, e1, sizeof e0) != 0); /* reshuffled */
    ck_assert(memcmp(e1, e2, sizeof e0) != 0);
    int sorted = 1;
    for (int64_t i = 0; i < n; i++)
      sorted &= e0[i] == i;
    ck_assert(!sorted);
    /* the same seed gives the same orders; another seed another */
    tc_loader *same = make_loader(ds, tf, bs, 1, 0, 5, 1 - prefetch / 2);
    tc_loader *other = make_loader(ds, tf, bs, 1, 0, 6, prefetch);
    int64_t s0[23], s1[23], o0[23];
    ck_assert_int_eq(read_epoch(same, s0, bs), n);
    ck_assert_int_eq(read_epoch(same, s1, bs), n);
    ck_assert_int_eq(read_epoch(other, o0, bs), n);
    ck_assert_mem_eq(s0, e0, sizeof e0);
    ck_assert_mem_eq(s1, e1, sizeof e1);
    ck_assert(memcmp(o0, e0, sizeof e0) != 0);
    tc_loader_destroy(l);
    tc_loader_destroy(same);
    tc_loader_destroy(other);
  }
  tc_transform_destroy(tf);
  tc_dataset_destroy(ds);
}
END_TEST

START_TEST(test_sequential_and_last_batch) {
  const int64_t n = 10;
  tc_dataset *ds = make_indexed(n);
  tc_loader *l = make_loader(ds, NULL, 4, 0, 0, 0, 2);
  /* NULL pipeline: to float in [0, 1] */
  tc_tensor *x, *y;
  ck_assert_int_eq(tc_loader_next(l, &x, &y), TC_OK);
  float xs[8];
  ck_assert_int_eq(tc_tensor_copy_to_host(x, xs, sizeof xs), TC_OK);
  for (int k = 0; k < 4; k++)
    ck_assert(xs[2 * k] == (float)k / 255.0f);
  tc_loader_destroy(l);

  tc_transform *tf = raw();
  const int64_t sizes[3] = {4, 4, 2};
  for (int prefetch = 0; prefetch <= 3; prefetch += 3) {
    l = make_loader(ds, tf, 4, 0, 0, 0, prefetch);
    ck_assert_int_eq(tc_loader_num_batches(l), 3);
    for (int epoch = 0; epoch < 2; epoch++) {
      int64_t next = 0;
      for (int b = 0; b < 3; b++) {
        int64_t idx[4];
        int64_t ep, bt;
        ck_assert_int_eq(tc_loader_get_state(l, &ep, &bt), TC_OK);
        ck_assert_int_eq(ep, epoch);
        ck_assert_int_eq(bt, b);
        ck_assert_int_eq(next_indices(l, idx), sizes[b]);
        for (int64_t k = 0; k < sizes[b]; k++)
          ck_assert_int_eq(idx[k], next++); /* in order without shuffle */
      }
      int64_t ep, bt;
      ck_assert_int_eq(tc_loader_get_state(l, &ep, &bt), TC_OK);
      ck_assert_int_eq(ep, epoch);
      ck_assert_int_eq(bt, 3); /* the end signal comes next */
      int64_t idx[4];
      ck_assert_int_eq(next_indices(l, idx), -1);
    }
    tc_loader_destroy(l);
  }
  /* drop_last: 2 full batches of 4, 2 samples left out, other ones each
   * epoch */
  l = make_loader(ds, tf, 4, 1, 1, 9, 2);
  ck_assert_int_eq(tc_loader_num_batches(l), 2);
  int64_t first[8], second[8];
  ck_assert_int_eq(read_epoch(l, first, 4), 8);
  ck_assert_int_eq(read_epoch(l, second, 4), 8);
  int seen[10] = {0};
  for (int k = 0; k < 8; k++)
    seen[first[k]]++;
  for (int k = 0; k < 10; k++)
    ck_assert_int_le(seen[k], 1);
  ck_assert(memcmp(first, second, sizeof first) != 0);
  tc_loader_destroy(l);
  /* a batch larger than the dataset: one batch of all; drop_last refuses */
  l = make_loader(ds, tf, 64, 1, 0, 1, 1);
  ck_assert_int_eq(tc_loader_num_batches(l), 1);
  int64_t all[10];
  ck_assert_int_eq(read_epoch(l, all, 64), 10);
  tc_loader_destroy(l);
  tc_loader_options o = TC_LOADER_OPTIONS_INIT;
  o.batch_size = 11;
  o.drop_last = 1;
  l = NULL;
  ck_assert_int_eq(tc_loader_create(&l, ds, tf, &o), TC_EINVAL);
  ck_assert_ptr_null(l);
  /* batch size 1, exact multiple */
  l = make_loader(ds, tf, 1, 0, 1, 1, 4);
  ck_assert_int_eq(tc_loader_num_batches(l), 10);
  ck_assert_int_eq(read_epoch(l, all, 1), 10);
  tc_loader_destroy(l);
  l = make_loader(ds, tf, 5, 0, 0, 1, 4);
  ck_assert_int_eq(tc_loader_num_batches(l), 2);
  ck_assert_int_eq(read_epoch(l, all, 5), 10);
  tc_loader_destroy(l);
  tc_transform_destroy(tf);
  tc_dataset_destroy(ds);
}
END_TEST

/* An augmenting pipeline on (3,8,8) images: batches as raw floats. */
static tc_dataset *make_images(int64_t n) {
  uint8_t *px = malloc((size_t)n * 192);
  int32_t *lb = malloc((size_t)n * sizeof *lb);
  tc_rng r;
  tc_rng_init(&r, 3, TC_RNG_STREAM_USER);
  for (int64_t i = 0; i < n * 192; i++)
    px[i] = (uint8_t)tc_rng_next_u32(&r);
  for (int64_t i = 0; i < n; i++)
    lb[i] = (int32_t)(i % 10);
  tc_dataset *ds = NULL;
  ck_assert_int_eq(tc_dataset_create(&ds, n, 3, 8, 8, 10, px, lb), TC_OK);
  free(px);
  free(lb);
  return ds;
}

static tc_transform *augment(void) {
  tc_transform *tf = NULL;
  const float mean[3] = {0.5f, 0.4f, 0.3f}, sd[3] = {0.2f, 0.25f, 0.3f};
  ck_assert_int_eq(tc_transform_create(&tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_random_crop(tf, 8, 8, 2, 0.0f), TC_OK);
  ck_assert_int_eq(tc_transform_add_random_hflip(tf, 0.5f), TC_OK);
  ck_assert_int_eq(tc_transform_add_to_float(tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 3, mean, sd), TC_OK);
  return tf;
}

#define IMG 192
/* Records `count` batches (end signals included, as empty ones) into
 * x/y/sizes. */
static void record(tc_loader *l, int count, float *x, int32_t *y,
                   int64_t *sizes, int64_t bs) {
  for (int i = 0; i < count; i++) {
    tc_tensor *tx = NULL, *ty = NULL;
    ck_assert_int_eq(tc_loader_next(l, &tx, &ty), TC_OK);
    if (!tx) {
      sizes[i] = 0;
      continue;
    }
    int64_t b = tc_tensor_dim(tx, 0);
    sizes[i] = b;
    ck_assert_int_eq(tc_tensor_copy_to_host(tx, x + (size_t)i * bs * IMG,
                                            (size_t)b * IMG * sizeof(float)),
                     TC_OK);
    ck_assert_int_eq(tc_tensor_copy_to_host(ty, y + (size_t)i * bs,
                                            (size_t)b * sizeof(int32_t)),
                     TC_OK);
  }
}

START_TEST(test_prefetch_depths_agree) {
  const int64_t n = 37, bs = 5;
  const int count = 3 * 9; /* 8 batches + the end signal, 3 epochs */
  tc_dataset *ds = make_images(n);
  tc_transform *tf = augment();
  float *ref_x = calloc((size_t)count * bs * IMG, sizeof(float));
  int32_t *ref_y = calloc((size_t)count * bs, sizeof(int32_t));
  int64_t ref_s[27];
  const int depths[4] = {0, 1, 3, 64};
  for (int d = 0; d < 4; d++) {
    tc_loader *l = make_loader(ds, tf, bs, 1, 0, 11, depths[d]);
    float *x = calloc((size_t)count * bs * IMG, sizeof(float));
    int32_t *y = calloc((size_t)count * bs, sizeof(int32_t));
    int64_t s[27];
    record(l, count, d == 0 ? ref_x : x, d == 0 ? ref_y : y, d == 0 ? ref_s : s,
           bs);
    if (d > 0) {
      ck_assert_mem_eq(s, ref_s, sizeof s);
      ck_assert_mem_eq(y, ref_y, (size_t)count * bs * sizeof *y);
      ck_assert_mem_eq(x, ref_x, (size_t)count * bs * IMG * sizeof *x);
    }
    free(x);
    free(y);
    tc_loader_destroy(l);
  }
  /* augmentation differs between epochs: the first batch of epoch 0 and
   * epoch 1 hold other crops even with shuffle off */
  tc_loader *l = make_loader(ds, tf, bs, 0, 0, 11, 2);
  float *x = calloc((size_t)count * bs * IMG, sizeof(float));
  int32_t *y = calloc((size_t)count * bs, sizeof(int32_t));
  int64_t s[27];
  record(l, count, x, y, s, bs);
  ck_assert(memcmp(x, x + (size_t)9 * bs * IMG, bs * IMG * sizeof *x) != 0);
  ck_assert_mem_eq(y, y + 9 * bs, bs * sizeof *y);
  /* and matches tc_transform_apply on the same key */
  float one[IMG];
  uint8_t px[IMG];
  const int64_t in[3] = {3, 8, 8};
  for (int k = 0; k < 5; k++) {
    ck_assert_int_eq(tc_dataset_get(ds, k, px, IMG, NULL), TC_OK);
    ck_assert_int_eq(
        tc_transform_apply(tf, px, in, one, IMG, 11, 1, (uint64_t)k), TC_OK);
    ck_assert_mem_eq(one, x + (size_t)(9 * bs + k) * IMG, sizeof one);
  }
  tc_loader_destroy(l);
  free(x);
  free(y);
  free(ref_x);
  free(ref_y);
  tc_transform_destroy(tf);
  tc_dataset_destroy(ds);
}
END_TEST

START_TEST(test_resume) {
  const int64_t n = 29, bs = 4; /* 8 batches, the last of 1 */
  const int count = 3 * 9;
  tc_dataset *ds = make_images(n);
  tc_transform *tf = augment();
  for (int prefetch = 0; prefetch <= 2; prefetch++) {
    tc_loader *full = make_loader(ds, tf, bs, 1, 0, 21, prefetch);
    float *fx = calloc((size_t)count * bs * IMG, sizeof(float));
    int32_t *fy = calloc((size_t)count * bs, sizeof(int32_t));
    int64_t fs[27];
    record(full, count, fx, fy, fs, bs);
    tc_loader_destroy(full);
    /* stop after k calls anywhere (mid-epoch, at the end signal), resume
     * in a fresh loader from the saved state */
    const int stops[5] = {0, 5, 8, 9, 14};
    for (int si = 0; si < 5; si++) {
      int k = stops[si];
      tc_loader *a = make_loader(ds, tf, bs, 1, 0, 21, prefetch);
      float *x = calloc((size_t)count * bs * IMG, sizeof(float));
      int32_t *y = calloc((size_t)count * bs, sizeof(int32_t));
      int64_t s[27];
      record(a, k, x, y, s, bs);
      int64_t ep, bt;
      ck_assert_int_eq(tc_loader_get_state(a, &ep, &bt), TC_OK);
      ck_assert_int_eq(ep, k / 9);
      ck_assert_int_eq(bt, k % 9);
      tc_loader_destroy(a); /* mid-epoch, with batches prefetched */
      tc_loader *b = make_loader(ds, tf, bs, 1, 0, 21, 2 - prefetch);
      ck_assert_int_eq(tc_loader_set_state(b, ep, bt), TC_OK);
      record(b, count - k, x + (size_t)k * bs * IMG, y + (size_t)k * bs, s + k,
             bs);
      ck_assert_mem_eq(s, fs, sizeof s);
      ck_assert_mem_eq(y, fy, (size_t)count * bs * sizeof *y);
      ck_assert_mem_eq(x, fx, (size_t)count * bs * IMG * sizeof *x);
      tc_loader_destroy(b);
      free(x);
      free(y);
    }
    /* set_state on a running loader, backwards and forwards, discards
     * what was prefetched */
    tc_loader *c = make_loader(ds, tf, bs, 1, 0, 21, prefetch);
    float *x = calloc((size_t)count * bs * IMG, sizeof(float));
    int32_t *y = calloc((size_t)count * bs, sizeof(int32_t));
    int64_t s[27];
    record(c, 12, x, y, s, bs);
    ck_assert_int_eq(tc_loader_set_state(c, 0, 3), TC_OK);
    record(c, count - 3, x + (size_t)3 * bs * IMG, y + 3 * bs, s + 3, bs);
    ck_assert_mem_eq(x, fx, (size_t)count * bs * IMG * sizeof *x);
    ck_assert_int_eq(tc_loader_set_state(c, 2, 7), TC_OK);
    record(c, 1, x, y, s, bs); /* the last batch of epoch 2 */
    ck_assert_int_eq(s[0], 1);
    ck_assert_mem_eq(x, fx + (size_t)(18 + 7) * bs * IMG, IMG * sizeof *x);
    ck_assert_int_eq(tc_loader_set_state(c, 1, 7), TC_OK);
    ck_assert_int_eq(tc_loader_set_state(c, 0, 7), TC_OK);
    ck_assert_int_eq(tc_loader_set_state(c, 0, 8), TC_OK); /* at the end */
    record(c, 2, x, y, s, bs);
    ck_assert_int_eq(s[0], 0);
    ck_assert_mem_eq(x + bs * IMG, fx + (size_t)9 * bs * IMG,
                     bs * IMG * sizeof *x);
    /* out of range */
    ck_assert_int_eq(tc_loader_set_state(c, -1, 0), TC_EINVAL);
    ck_assert_int_eq(tc_loader_set_state(c, (int64_t)1 << 22, 0), TC_EINVAL);
    ck_assert_int_eq(tc_loader_set_state(c, 0, 9), TC_EINVAL);
    ck_assert_int_eq(tc_loader_set_state(c, 0, -1), TC_EINVAL);
    ck_assert_int_eq(tc_loader_set_state(NULL, 0, 0), TC_EINVAL);
    tc_loader_destroy(c);
    free(x);
    free(y);
    free(fx);
    free(fy);
  }
  tc_transform_destroy(tf);
  tc_dataset_destroy(ds);
}
END_TEST

START_TEST(test_set_state_races) {
  /* set_state right after next(), while the thread is most likely busy
   * preparing the slot just freed: the batch after the move must be the
   * one at the new position, never the one that was in flight */
  const int64_t n = 48, bs = 16;
  tc_dataset *ds = make_images(n);
  tc_transform *tf = augment();
  tc_loader *ref = make_loader(ds, tf, bs, 1, 0, 8, 0);
  const int64_t nb = tc_loader_num_batches(ref);
  float *want = malloc((size_t)bs * IMG * sizeof *want);
  float *got = malloc((size_t)bs * IMG * sizeof *got);
  for (int prefetch = 1; prefetch <= 2; prefetch++) {
    tc_loader *l = make_loader(ds, tf, bs, 1, 0, 8, prefetch);
    tc_rng r;
    tc_rng_init(&r, 99, TC_RNG_STREAM_USER);
    for (int it = 0; it < 150; it++) {
      tc_tensor *x, *y;
      ck_assert_int_eq(tc_loader_next(l, &x, &y), TC_OK);
      int64_t e = (int64_t)tc_rng_below(&r, 4);
      int64_t b = (int64_t)tc_rng_below(&r, (uint64_t)nb);
      ck_assert_int_eq(tc_loader_set_state(l, e, b), TC_OK);
      ck_assert_int_eq(tc_loader_next(l, &x, &y), TC_OK);
      ck_assert_int_eq(tc_tensor_copy_to_host(x, got, (size_t)bs * IMG * 4),
                       TC_OK);
      ck_assert_int_eq(tc_loader_set_state(ref, e, b), TC_OK);
      ck_assert_int_eq(tc_loader_next(ref, &x, &y), TC_OK);
      ck_assert_int_eq(tc_tensor_copy_to_host(x, want, (size_t)bs * IMG * 4),
                       TC_OK);
      ck_assert_msg(memcmp(got, want, (size_t)bs * IMG * 4) == 0,
                    "iteration %d, prefetch %d, at (%lld, %lld)", it, prefetch,
                    (long long)e, (long long)b);
    }
    tc_loader_destroy(l);
  }
  free(want);
  free(got);
  tc_loader_destroy(ref);
  tc_transform_destroy(tf);
  tc_dataset_destroy(ds);
}
END_TEST

START_TEST(test_lifetimes) {
  /* the loader keeps the dataset and its own copy of the pipeline */
  tc_dataset *ds = make_indexed(50);
  tc_transform *tf = raw();
  tc_backend *be = NULL;
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  tc_loader_options o = TC_LOADER_OPTIONS_INIT;
  o.batch_size = 8;
  o.shuffle = 1;
  o.backend = be;
  o.prefetch = 4;
  tc_loader *l = NULL;
  ck_assert_int_eq(tc_loader_create(&l, ds, tf, &o), TC_OK);
  tc_dataset_destroy(ds);
  ck_assert_int_eq(tc_transform_add_to_float(tf), TC_OK); /* not seen */
  tc_transform_destroy(tf);
  tc_backend_destroy(be);
  int64_t idx[8];
  ck_assert_int_eq(next_indices(l, idx), 8);
  for (int k = 0; k < 8; k++)
    ck_assert_int_lt(idx[k], 50);
  tc_tensor *x, *y;
  ck_assert_int_eq(tc_loader_next(l, &x, &y), TC_OK);
  ck_assert_ptr_eq(tc_tensor_backend(x), be);
  tc_loader_destroy(l);
  tc_loader_destroy(NULL);
  /* destroy right after create, with the thread just started, many times */
  ds = make_indexed(200);
  for (int i = 0; i < 20; i++) {
    l = make_loader(ds, NULL, 3, 1, 0, (uint64_t)i, 1 + i % 3);
    if (i % 2)
      ck_assert_int_eq(tc_loader_next(l, &x, &y), TC_OK);
    tc_loader_destroy(l);
  }
  /* the global seed is taken at creation */
  tf = raw();
  tc_set_seed(77);
  tc_loader *g = make_loader(ds, tf, 10, 1, 0, TC_LOADER_SEED_GLOBAL, 0);
  tc_set_seed(0);
  tc_loader *s = make_loader(ds, tf, 10, 1, 0, 77, 0);
  tc_transform_destroy(tf);
  int64_t a[10], b[10];
  ck_assert_int_eq(next_indices(g, a), 10);
  ck_assert_int_eq(next_indices(s, b), 10);
  ck_assert_mem_eq(a, b, sizeof a);
  tc_loader_destroy(g);
  tc_loader_destroy(s);
  tc_dataset_destroy(ds);
}
END_TEST

START_TEST(test_options_and_errors) {
  tc_loader_options o;
  memset(&o, 0x5a, sizeof o);
  ck_assert_int_eq(tc_loader_options_init(&o, sizeof o), TC_OK);
  ck_assert_uint_eq(o.struct_size, sizeof o);
  ck_assert_int_eq(o.batch_size, 1);
  ck_assert_int_eq(o.shuffle, 0);
  ck_assert_int_eq(o.drop_last, 0);
  ck_assert(o.seed == TC_LOADER_SEED_GLOBAL);
  ck_assert_int_eq(o.prefetch, 2);
  ck_assert_ptr_null(o.backend);
  ck_assert_int_eq(tc_loader_options_init(&o, sizeof o + 8), TC_EVERSION);
  ck_assert_int_eq(tc_loader_options_init(&o, 2), TC_EINVAL);
  ck_assert_int_eq(tc_loader_options_init(NULL, sizeof o), TC_EINVAL);
  /* smaller than any released struct (0.1.0 is the first): refused;
   * tests/test_options.c covers older, smaller structs */
  tc_loader_options small;
  ck_assert_int_eq(
      tc_loader_options_init(&small, offsetof(tc_loader_options, shuffle)),
      TC_EINVAL);
  ck_assert_int_eq(tc_loader_options_init(&small, sizeof small), TC_OK);
  small.batch_size = 3;

  tc_dataset *ds = make_indexed(9);
  tc_loader *l = NULL;
  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, &small), TC_OK);
  ck_assert_int_eq(tc_loader_num_batches(l), 3);
  tc_loader_destroy(l);
  l = NULL;
  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, NULL), TC_OK); /* bs 1 */
  ck_assert_int_eq(tc_loader_num_batches(l), 9);
  tc_loader_destroy(l);
  l = NULL;

  tc_loader_options bad = TC_LOADER_OPTIONS_INIT;
  bad.struct_size = sizeof bad + 8;
  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, &bad), TC_EVERSION);
  bad = (tc_loader_options)TC_LOADER_OPTIONS_INIT;
  bad.batch_size = 0;
  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, &bad), TC_EINVAL);
  bad = (tc_loader_options)TC_LOADER_OPTIONS_INIT;
  bad.prefetch = 65;
  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, &bad), TC_EINVAL);
  bad.prefetch = -1;
  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, &bad), TC_EINVAL);
  bad = (tc_loader_options)TC_LOADER_OPTIONS_INIT;
  bad.reserved0 = 1;
  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, &bad), TC_EINVAL);
  ck_assert_int_eq(tc_loader_create(&l, NULL, NULL, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_loader_create(NULL, ds, NULL, NULL), TC_EINVAL);
  /* a pipeline that does not fit the images */
  tc_transform *tf = raw();
  const float m3[3] = {0, 0, 0}, s3[3] = {1, 1, 1};
  ck_assert_int_eq(tc_transform_add_normalize(tf, 3, m3, s3), TC_OK);
  ck_assert_int_eq(tc_loader_create(&l, ds, tf, NULL), TC_ESHAPE);
  ck_assert_ptr_null(l);
  tc_transform_destroy(tf);

  ck_assert_int_eq(tc_loader_create(&l, ds, NULL, NULL), TC_OK);
  tc_tensor *x, *y;
  ck_assert_int_eq(tc_loader_next(NULL, &x, &y), TC_EINVAL);
  ck_assert_int_eq(tc_loader_next(l, NULL, &y), TC_EINVAL);
  ck_assert_int_eq(tc_loader_next(l, &x, NULL), TC_EINVAL);
  int64_t e, b;
  ck_assert_int_eq(tc_loader_get_state(NULL, &e, &b), TC_EINVAL);
  ck_assert_int_eq(tc_loader_get_state(l, NULL, &b), TC_EINVAL);
  ck_assert_int_eq(tc_loader_get_state(l, &e, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_loader_num_batches(NULL), -1);
  tc_loader_destroy(l);
  tc_dataset_destroy(ds);
}
END_TEST

START_TEST(test_alloc_failures) {
  tc_dataset *ds = make_indexed(30);
  tc_transform *tf = NULL;
  const float m = 0.5f;
  ck_assert_int_eq(tc_transform_create(&tf), TC_OK);
  ck_assert_int_eq(tc_transform_add_normalize(tf, 1, &m, &m), TC_OK);
  /* objects made before the counting allocator are freed by it too: only
   * count what the loader itself holds */
  tu_alloc_install();
  for (int prefetch = 0; prefetch <= 2; prefetch += 2) {
    for (long k = 1;; k++) {
      tu_alloc_fail_at(k, 0);
      long before = tu_alloc_live();
      tc_loader_options o = TC_LOADER_OPTIONS_INIT;
      o.batch_size = 7;
      o.shuffle = 1;
      o.prefetch = prefetch;
      tc_loader *l = NULL;
      tc_status st = tc_loader_create(&l, ds, tf, &o);
      if (!tu_alloc_failed()) {
        ck_assert_int_eq(st, TC_OK);
        tc_tensor *x, *y;
        for (int i = 0; i < 12; i++)
          ck_assert_int_eq(tc_loader_next(l, &x, &y), TC_OK);
        tc_loader_destroy(l);
        ck_assert_int_eq(tu_alloc_live(), before);
        break;
      }
      ck_assert_int_eq(st, TC_ENOMEM);
      ck_assert_ptr_null(l);
      ck_assert_int_eq(tu_alloc_live(), before);
    }
  }
  /* next() allocates nothing */
  tu_alloc_fail_at(0, 0);
  tc_loader *l = make_loader(ds, tf, 4, 1, 0, 3, 2);
  tu_alloc_fail_at(1, 1);
  tc_tensor *x, *y;
  for (int i = 0; i < 20; i++)
    ck_assert_int_eq(tc_loader_next(l, &x, &y), TC_OK);
  ck_assert(!tu_alloc_failed());
  tu_alloc_fail_at(0, 0);
  tc_loader_destroy(l);
  tu_alloc_uninstall();
  tc_transform_destroy(tf);
  tc_dataset_destroy(ds);
}
END_TEST

int main(void) {
  Suite *s = suite_create("loader");
  TCase *tc = tcase_create("loader");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_epochs_shuffle);
  tcase_add_test(tc, test_sequential_and_last_batch);
  tcase_add_test(tc, test_prefetch_depths_agree);
  tcase_add_test(tc, test_resume);
  tcase_add_test(tc, test_set_state_races);
  tcase_add_test(tc, test_lifetimes);
  tcase_add_test(tc, test_options_and_errors);
  tcase_add_test(tc, test_alloc_failures);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}

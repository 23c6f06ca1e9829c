/*
 * split.c - seeded random permutations and torch-style random_split.
 * A split is a permutation of 0..n-1 drawn from Philox stream
 * TC_RNG_STREAM_SPLIT keyed by the seed; its first k entries form the first
 * view and the rest the second, both kept in permutation order as
 * torch.utils.data.random_split keeps them. The numbers differ from
 * torch.randperm's (another generator); the semantics do not.
 */
#include <math.h>

#include "data_internal.h"

void tc__permutation(int64_t *perm, int64_t n, tc_rng *r) {
  for (int64_t i = 0; i < n; i++)
    perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)tc_rng_below(r, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* floor(n*f), except that a product within 1e-9 (relative) below an
 * integer counts as that integer: 1 - 0.8 is 0.19999999999999996 in
 * binary, and 10 * (1 - 0.8) should give the 2 that [0.8, 0.2] gives. */
static int64_t share(int64_t n, double f) {
  double x = (double)n * f, r = nearbyint(x);
  if (x < r && r - x <= 1e-9 * fmax(1.0, r))
    return (int64_t)r;
  return (int64_t)floor(x);
}

TC_API int64_t tc_dataset_split_count(int64_t n, double fraction) {
  if (n < 2 || !(fraction > 0.0 && fraction < 1.0))
    return -1;
  /* random_split: floor each share, then hand the remainder out one by one
   * starting with the first subset */
  int64_t a = share(n, fraction);
  int64_t b = share(n, 1.0 - fraction);
  int64_t rem = n - a - b;
  for (int64_t i = 0; i < rem; i++) {
    if (i % 2 == 0)
      a++;
    else
      b++;
  }
  if (a < 1 || b < 1)
    return -1;
  return a;
}

TC_API tc_status tc_dataset_split(tc_dataset **out_first,
                                  tc_dataset **out_second, tc_dataset *ds,
                                  int64_t first_count, uint64_t seed) {
  static const char fn[] = "tc_dataset_split";
  TC__CHECK_NULL(out_first, fn);
  TC__CHECK_NULL(out_second, fn);
  TC__CHECK_NULL(ds, fn);
  if (first_count < 1 || first_count >= ds->n)
    return tc__error(
        TC_EINVAL, "%s: first_count %lld must lie in [1, %lld) (size %lld)", fn,
        (long long)first_count, (long long)ds->n, (long long)ds->n);
  int64_t *perm = tc__calloc((size_t)ds->n, sizeof *perm);
  if (!perm)
    return tc__oom(fn);
  tc_rng r;
  tc_rng_init(&r, seed, TC_RNG_STREAM_SPLIT);
  tc__permutation(perm, ds->n, &r);
  tc_dataset *a = NULL, *b = NULL;
  tc_status st = tc_dataset_subset(&a, ds, perm, first_count);
  if (st != TC_OK)
    goto fail;
  st = tc_dataset_subset(&b, ds, perm + first_count, ds->n - first_count);
  if (st != TC_OK)
    goto fail;
  tc__free(perm);
  *out_first = a;
  *out_second = b;
  return TC_OK;
fail:
  tc_dataset_destroy(a);
  tc__free(perm);
  return st;
}

/*
 * st_maxdiff.c - prints the largest absolute difference between the F32
 * tensors of two safetensors files with the same names and shapes, and the
 * tensor where it occurs; exit 1 when the files do not pair up.
 * Usage: st_maxdiff A B   (used by tests/e2e/ddp_trainers.sh)
 */
#include <libtinycnn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *read_f32(tc_safetensors *st, const char *name, int64_t *n) {
  tc_st_dtype dt;
  int64_t shape[TC_MAX_DIMS];
  int nd;
  if (tc_safetensors_info(st, name, &dt, shape, TC_MAX_DIMS, &nd) != TC_OK ||
      dt != TC_ST_F32 || nd > TC_MAX_DIMS)
    return NULL;
  *n = 1;
  for (int i = 0; i < nd; i++)
    *n *= shape[i];
  float *v = malloc((size_t)*n * sizeof *v + 1);
  if (v && tc_safetensors_read_raw(st, name, v, (size_t)*n * 4) != TC_OK) {
    free(v);
    v = NULL;
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s A.safetensors B.safetensors\n", argv[0]);
    return 2;
  }
  tc_safetensors *a, *b;
  if (tc_safetensors_create(&a, argv[1]) != TC_OK ||
      tc_safetensors_create(&b, argv[2]) != TC_OK) {
    fprintf(stderr, "st_maxdiff: %s\n", tc_last_error());
    return 1;
  }
  double worst = 0;
  const char *where = "";
  int64_t count = tc_safetensors_count(a), compared = 0;
  for (int64_t i = 0; i < count; i++) {
    const char *name = tc_safetensors_name(a, i);
    int64_t na, nb;
    float *va = read_f32(a, name, &na);
    if (!va)
      continue; /* not F32: counters, RNG state */
    float *vb = read_f32(b, name, &nb);
    if (!vb || na != nb) {
      fprintf(stderr, "st_maxdiff: '%s' is missing or differs in shape\n",
              name);
      return 1;
    }
    for (int64_t k = 0; k < na; k++) {
      double d = fabs((double)va[k] - (double)vb[k]);
      if (d > worst || isnan(d)) {
        worst = isnan(d) ? INFINITY : d;
        where = name;
      }
    }
    compared++;
    free(va);
    free(vb);
  }
  printf("%.3g %s (%lld float tensors)\n", worst, where, (long long)compared);
  tc_safetensors_destroy(a);
  tc_safetensors_destroy(b);
  return compared ? 0 : 1;
}

/*
 * reduce.c - naive reference full reductions (see reduce.h).
 */
#include "reduce.h"

#include <math.h>

void ref_reduce(const tc_reduce_args *a) {
  double r = 0;
  for (int64_t i = 0; i < a->n; i++) {
    double v = a->x[i];
    switch (a->op) {
    case TC_REDUCE_SUM:
      r += v;
      break;
    case TC_REDUCE_SUMSQ:
      r += v * v;
      break;
    case TC_REDUCE_MAXABS:
      if (isnan(v) || isnan(r))
        r = NAN;
      else if (fabs(v) > r)
        r = fabs(v);
      break;
    default:
      r += isfinite(v) ? 0 : 1;
      break;
    }
  }
  *a->host_out = r;
}

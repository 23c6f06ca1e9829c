/*
 * eltwise.c - naive reference elementwise slots (see eltwise.h).
 */
#include "eltwise.h"

#include <math.h>
#include <string.h>

void ref_relu_fwd(const tc_eltwise_args *e) {
  for (int64_t i = 0; i < e->n; i++)
    e->y[i] = e->a[i] > 0.f || isnan(e->a[i]) ? e->a[i] : 0.f;
}

void ref_relu_bwd(const tc_eltwise_args *e) {
  for (int64_t i = 0; i < e->n; i++)
    e->y[i] = e->a[i] > 0.f ? e->b[i] : 0.f;
}

void ref_add(const tc_eltwise_args *e) {
  for (int64_t i = 0; i < e->n; i++) {
    float s = e->alpha * e->a[i];
    if (e->b)
      s += e->beta * e->b[i];
    e->y[i] = s;
  }
}

void ref_scale(const tc_eltwise_args *e) {
  for (int64_t i = 0; i < e->n; i++)
    e->y[i] = e->alpha * e->a[i];
}

void ref_axpy(const tc_eltwise_args *e) {
  for (int64_t i = 0; i < e->n; i++)
    e->y[i] = e->y[i] + e->alpha * e->a[i];
}

void ref_fill(const tc_eltwise_args *e) {
  for (int64_t i = 0; i < e->n; i++)
    memcpy(&e->y[i], &e->alpha, sizeof e->alpha);
}

void ref_bias_add(const tc_bias_args *b) {
  for (int64_t i = 0; i < b->n; i++)
    for (int64_t c = 0; c < b->c; c++)
      for (int64_t k = 0; k < b->spatial; k++)
        b->y[(i * b->c + c) * b->spatial + k] += b->bias[c];
}

void ref_bias_grad(const tc_bias_args *b) {
  for (int64_t c = 0; c < b->c; c++) {
    double s = 0;
    for (int64_t i = 0; i < b->n; i++)
      for (int64_t k = 0; k < b->spatial; k++)
        s += b->dy[(i * b->c + c) * b->spatial + k];
    b->db[c] = (float)((b->accumulate ? (double)b->db[c] : 0.0) + s);
  }
}

void ref_copy4d(const tc_copy4d_args *c) {
  const int64_t *sh = c->shape, *ss = c->src_stride, *ds = c->dst_stride;
  for (int64_t i0 = 0; i0 < sh[0]; i0++)
    for (int64_t i1 = 0; i1 < sh[1]; i1++)
      for (int64_t i2 = 0; i2 < sh[2]; i2++)
        for (int64_t i3 = 0; i3 < sh[3]; i3++) {
          float v = c->src[i0 * ss[0] + i1 * ss[1] + i2 * ss[2] + i3 * ss[3]];
          float *d = c->dst + i0 * ds[0] + i1 * ds[1] + i2 * ds[2] + i3 * ds[3];
          *d = c->accumulate ? *d + v : v;
        }
}

void ref_counter_add(const tc_counter_args *c) {
  for (int64_t i = 0; i < c->n; i++)
    c->x[i] += c->delta;
}

/*
 * conv2d_driver.c - the direct convolution path's driver (see conv2d.c's
 * header for when it runs): per image, x (or dy) into zero-padded planes
 * per stride phase or the dense paths' planes of whole rows, the packed
 * weights, one SIMD kernel call per phase (conv2d_direct.c,
 * conv2d_wgradt.c), the valid outputs copied out or scattered into dx,
 * and the weight gradient's image batches summed in fixed chunks.
 */
#include <string.h>

#include "conv2d_geom.h"

/* ---- direct path (SIMD kernels) -----------------------------------------
 * A stride-1 convolution is a 1-D one on the padded image flattened row by
 * row: with the input padded to Hp x Wp, output (oh, ow) sits at
 * q = oh*Wp + ow and reads input q + ri*Wp + si. Positions with ow >= out_w
 * are computed and dropped (or, for the weight gradient, meet zeros in dy),
 * so the kernels run contiguous vector loads with no edge cases. With
 * sw == 1 the row stride is w + pw, not w + 2*pw: one run of zeros between
 * two rows is both the right padding of one and the left of the next.
 * A stride (sh, sw) convolution is the sum over the sh*sw phases (a, b) of
 * the padded input (rows a, a+sh, ..., columns b, b+sw, ...; each an
 * Hs x Ws plane) of a stride-1 one with the taps (a + sh*di, b + sw*dj):
 * the same kernels, one call per phase, no wasted products.
 * Backward data is the same forward kernel per phase of dx: phase (a, b)
 * of dx at phase position (u, v) is the sum over its taps of
 * w(a + sh*di, b + sw*dj) * dy(u - di, v - dj), a correlation of dy padded
 * by (Rm-1, Sm-1) (less the U0, V0 phase rows/columns that fall in the
 * padding) with k, c swapped. */

/* dst (c, ps): each channel's plane is Hp x Wp (row stride wp) holding src
 * (c, h, w) at (pt, pl), zero elsewhere up to ps. With `inner` the zeros
 * are already there (the slot's previous image) and only src is copied. */
static void pad_planes(const convd_kernels *kn, const float *src, int64_t c,
                       int64_t h, int64_t w, float *dst, int64_t ps, int64_t wp,
                       int64_t pt, int64_t pl, int inner) {
  for (int64_t cc = 0; cc < c; cc++) {
    float *d = dst + cc * ps;
    const float *sp = src + cc * h * w;
    int64_t first = pt * wp + pl, last = (pt + h - 1) * wp + pl + w;
    if (!inner) {
      memset(d, 0, (size_t)first * sizeof *d);
      for (int64_t i = 0; i + 1 < h; i++)
        memset(d + (pt + i) * wp + pl + w, 0, (size_t)(wp - w) * sizeof *d);
      memset(d + last, 0, (size_t)(ps - last) * sizeof *d);
    }
    if (wp == w) /* no side padding: one run (LeNet's "valid" 5x5) */
      kn->rows(sp, h * w, d + first, h * w, 1, h * w, 0.f, CONVD_ROWS_COPY);
    else
      kn->rows(sp, w, d + first, wp, h, w, 0.f, CONVD_ROWS_COPY);
  }
}

/* Pointer for stream element 0 of column phase b when a row's columns
 * j = 2m + par (par = (b - pad) mod 2) are phase position
 * v = m + vshift - (b - pad - par)/2 on a row at `row`. */
static float *stream2(float *row, int64_t b, int64_t pad, int64_t vshift,
                      int64_t *par) {
  *par = ((b - pad) % 2 + 2) % 2;
  return row + vshift - (b - pad - *par) / 2;
}

/* phase_planes for sw == 2: the zeros first (unless `inner`), then each
 * source row, in order, split once into its even and odd columns, written
 * straight into the two column phases of its row phase. */
static void phase_planes2(const conv_geom *g, const float *src, float *dst,
                          int64_t ps, int inner) {
  float junk[CONVD_MAX_HW / 2 + 1];
  int64_t nb = min64(2, g->s), na = min64(g->sh, g->r);
  for (int64_t cc = 0; cc < g->c && !inner; cc++)
    for (int64_t a = 0; a < na; a++) {
      int64_t ulo = g->ph > a ? (g->ph - a + g->sh - 1) / g->sh : 0;
      int64_t uhi = min64(g->Hs, (g->h + g->ph - a + g->sh - 1) / g->sh);
      for (int64_t b = 0; b < nb; b++) {
        float *d = dst + ((a * 2 + b) * g->c + cc) * ps;
        int64_t vlo = g->pw > b ? (g->pw - b + 1) / 2 : 0;
        int64_t vhi = min64(g->Ws, (g->w + g->pw - b + 1) / 2);
        memset(d, 0, (size_t)(ulo * g->Ws) * sizeof(float));
        for (int64_t u = ulo; u < uhi; u++) {
          float *row = d + u * g->Ws;
          for (int64_t v = 0; v < vlo; v++)
            row[v] = 0.f;
          for (int64_t v = vhi; v < g->Ws; v++)
            row[v] = 0.f;
        }
        memset(d + uhi * g->Ws, 0, (size_t)(ps - uhi * g->Ws) * sizeof(float));
      }
    }
  for (int64_t cc = 0; cc < g->c; cc++)
    for (int64_t i = 0; i < g->h; i++) {
      int64_t e = i + g->ph, a = e % g->sh, u = e / g->sh;
      if (a >= na)
        continue;
      const float *sr = src + cc * g->hw + i * g->w;
      float *st[2] = {junk, junk};
      for (int64_t b = 0; b < nb; b++) {
        int64_t par;
        float *row = dst + ((a * 2 + b) * g->c + cc) * ps + u * g->Ws;
        float *p0 = stream2(row, b, g->pw, 0, &par);
        st[par] = p0;
      }
      g->kern->deint2(sr, g->w / 2, st[0], st[1]);
      if (g->w & 1)
        st[0][g->w / 2] = sr[g->w - 1];
    }
}

/* Phase (a, b) of x (c, h, w) padded by (ph, pw), as c planes of Hs x Ws
 * (stride ps) at dst + (p*c + cc)*ps, p = a*sw + b; only phases with taps.
 * Stride 1 is pad_planes. */
static void phase_planes(const conv_geom *g, const float *src, float *dst,
                         int64_t ps, int inner) {
  if (g->nph == 1) {
    pad_planes(g->kern, src, g->c, g->h, g->w, dst, ps, g->Ws, g->ph, g->pw,
               inner);
    return;
  }
  if (g->sw == 2) {
    phase_planes2(g, src, dst, ps, inner);
    return;
  }
  for (int64_t a = 0; a < g->sh && a < g->r; a++) {
    /* rows u with 0 <= a + sh*u - ph < h */
    int64_t ulo = g->ph > a ? (g->ph - a + g->sh - 1) / g->sh : 0;
    int64_t uhi = min64(g->Hs, (g->h + g->ph - a + g->sh - 1) / g->sh);
    for (int64_t b = 0; b < g->sw && b < g->s; b++) {
      int64_t vlo = g->pw > b ? (g->pw - b + g->sw - 1) / g->sw : 0;
      int64_t vhi = min64(g->Ws, (g->w + g->pw - b + g->sw - 1) / g->sw);
      int64_t j0 = b + g->sw * vlo - g->pw;
      float *dp = dst + (a * g->sw + b) * g->c * ps;
      for (int64_t cc = 0; cc < g->c; cc++) {
        float *d = dp + cc * ps;
        const float *sp = src + cc * g->hw;
        if (!inner)
          memset(d, 0, (size_t)(ulo * g->Ws) * sizeof *d);
        for (int64_t u = ulo; u < uhi; u++) {
          float *restrict row = d + u * g->Ws;
          const float *restrict sr = sp + (a + g->sh * u - g->ph) * g->w + j0;
          if (!inner)
            for (int64_t v = 0; v < vlo; v++)
              row[v] = 0.f;
          for (int64_t v = 0; v < vhi - vlo; v++)
            row[vlo + v] = sr[v * g->sw];
          if (!inner)
            for (int64_t v = vhi; v < g->Ws; v++)
              row[v] = 0.f;
        }
        if (!inner)
          memset(d + uhi * g->Ws, 0, (size_t)(ps - uhi * g->Ws) * sizeof *d);
      }
    }
  }
}

/* Taps of phase p = a*sw + b: idx[t] = ri*s + si (ri = a + sh*di,
 * si = b + sw*dj) and off[t] its input offset on a grid of row stride ld:
 * di*ld + dj, or for bwd (flip) (Rm-1-di)*ld + (Sm-1-dj), listed by
 * increasing offset. Returns the tap count; off is padded with zeros to
 * CONVD_MAX_RS + 8 entries (the wgrad kernel reads whole tap groups). */
static int64_t phase_taps(const conv_geom *g, int64_t p, int64_t ld, int flip,
                          int64_t *off, int64_t *idx) {
  int64_t a = p / g->sw, b = p % g->sw, n = 0;
  int64_t nr = a < g->r ? (g->r - a + g->sh - 1) / g->sh : 0;
  int64_t ns = b < g->s ? (g->s - b + g->sw - 1) / g->sw : 0;
  for (int64_t i = 0; i < nr; i++)
    for (int64_t j = 0; j < ns; j++) {
      int64_t di = flip ? nr - 1 - i : i, dj = flip ? ns - 1 - j : j;
      idx[n] = (a + g->sh * di) * g->s + b + g->sw * dj;
      off[n++] = flip ? (g->Rm - 1 - di) * ld + (g->Sm - 1 - dj) : di * ld + dj;
    }
  for (int64_t t = n; t < CONVD_MAX_RS + 8; t++)
    off[t] = 0;
  return n;
}

/* The taps of all phases, phase by phase, as offsets from channel ci's
 * plane of phase 0 (phase p's planes start p*c*ps further on): fwd and
 * wgrad run every phase in one kernel call. Returns r*s. */
static int64_t all_taps(const conv_geom *g, int64_t ps, int64_t *off,
                        int64_t *idx) {
  int64_t n = 0, po[CONVD_MAX_RS + 8];
  for (int64_t p = 0; p < g->nph; p++) {
    int64_t nt = phase_taps(g, p, g->Ws, 0, po, idx + n);
    for (int64_t t = 0; t < nt; t++)
      off[n + t] = po[t] + p * g->c * ps;
    n += nt;
  }
  for (int64_t t = n; t < CONVD_MAX_RS + 8; t++)
    off[t] = 0;
  return n;
}

/* floor(v / 2) and v mod 2 (in {0, 1}) for any sign */
static int64_t fdiv2(int64_t v) {
  return (v - (v & 1)) / 2;
}

/* Dense taps of the stride-1 grid of row width w, in pack order: off and
 * the column shift cs of each (flip: bwd_data's). Returns r*s. dense2
 * (not flip): the taps on the 4 phase planes, off from the data start of
 * channel 0's plane of phase 0 (phase p's planes start p*c*dpsf on). */
static int64_t dense_taps(const conv_geom *g, int flip, int64_t *off,
                          int64_t *cs, int64_t *idx) {
  int64_t n = 0;
  if (g->dense2 && !flip) {
    /* by column shift (non-decreasing in dj), then row, as below */
    for (int64_t dj = 0; dj < g->s; dj++)
      for (int64_t di = 0; di < g->r; di++) {
        int64_t ri = di - g->ph, cj = dj - g->pw;
        int64_t p = (ri & 1) * 2 + (cj & 1);
        idx[n] = di * g->s + dj;
        cs[n] = fdiv2(cj);
        off[n++] = p * g->c * g->dpsf + fdiv2(ri) * g->ow + fdiv2(cj);
      }
    for (int64_t t = n; t < CONVD_MAX_RS + 8; t++)
      off[t] = 0;
    return n;
  }
  /* by column shift, then row: the kernels' 3x3 case wants the groups */
  for (int64_t e = -g->pw; e < g->s - g->pw; e++)
    for (int64_t di = 0; di < g->r; di++) {
      int64_t dj = flip ? g->pw - e : e + g->pw;
      idx[n] = di * g->s + dj;
      off[n] = (flip ? g->r - 1 - di : di) * g->w + (flip ? g->s - 1 - dj : dj);
      cs[n++] = e;
    }
  for (int64_t t = n; t < CONVD_MAX_RS + 8; t++)
    off[t] = 0;
  return n;
}

/* Forward weights: wp[((kb*c + ci)*rs + t)*kt + j] = weight of output
 * channel kb*kt + j (zero past k) for input channel ci, tap t of
 * all_taps. */
void tc__cpu_conv_pack_fwd_weights(const conv_geom *g, float *wp) {
  /* fwt: one tile of all k channels */
  int64_t kt = g->fwt ? g->k : g->fv->kt, rs = g->r * g->s;
  int64_t kpf = g->fwt ? g->k : g->kpf;
  int64_t off[CONVD_MAX_RS + 8], idx[CONVD_MAX_RS], cs[CONVD_MAX_RS];
  if (g->densef)
    dense_taps(g, 0, off, cs, idx);
  else
    all_taps(g, g->psf, off, idx);
  /* output channel by output channel: its c*rs weights are read in order
   * (the other order gathered kt of them from rows c*rs apart per value:
   * 64-channel layers took ~40 us, with the pool's other thread waiting) */
  int64_t crs = g->c * rs;
  for (int64_t kk = 0; kk < kpf; kk++) {
    float *dst = wp + (kk / kt) * crs * kt + kk % kt;
    if (kk >= g->k) { /* the last block's padding channels */
      for (int64_t e = 0; e < crs; e++)
        dst[e * kt] = 0.f;
      continue;
    }
    const float *src = g->a->wt + kk * crs;
    for (int64_t ci = 0; ci < g->c; ci++, src += rs, dst += rs * kt)
      for (int64_t t = 0; t < rs; t++)
        dst[t * kt] = src[idx[t]];
  }
}

/* Backward data: output channel ci, input channel kk, tap t of phase p
 * reads the forward weight (kk, ci) at that tap. */
void tc__cpu_conv_pack_bwd_weights(const conv_geom *g, float *wp) {
  int64_t kt = g->bv->kt, rs = g->r * g->s;
  int64_t off[CONVD_MAX_RS + 8], idx[CONVD_MAX_RS], cs[CONVD_MAX_RS];
  for (int64_t p = 0; p < g->nph; p++) {
    int64_t nt = g->denseb ? dense_taps(g, 1, off, cs, idx)
                           : phase_taps(g, p, g->Wq, 1, off, idx);
    /* input channel by input channel, each one's nt taps read together */
    for (int64_t cb = 0; cb < g->cpf / kt; cb++, wp += g->k * nt * kt)
      for (int64_t j = 0; j < kt; j++) {
        int64_t ci = cb * kt + j;
        float *dst = wp + j;
        for (int64_t kk = 0; kk < g->k; kk++, dst += nt * kt) {
          if (ci >= g->c) { /* the last block's padding channels */
            for (int64_t t = 0; t < nt; t++)
              dst[t * kt] = 0.f;
            continue;
          }
          const float *src = g->a->wt + (kk * g->c + ci) * rs;
          for (int64_t t = 0; t < nt; t++)
            dst[t * kt] = src[idx[t]];
        }
      }
  }
}

/* c channels of h*w floats into dense planes of stride ps at offset fr
 * (the planes are zeroed first unless `inner`). */
static void dense_planes(const conv_geom *g, const float *src, int64_t c,
                         int64_t hw, float *dst, int64_t ps, int64_t fr,
                         int inner) {
  if (!inner)
    memset(dst, 0, (size_t)(c * ps) * sizeof *dst);
  g->kern->rows(src, hw, dst + fr, ps, c, hw, 0.f, CONVD_ROWS_COPY);
}

/* x image (c, h, w) into fwd's dense planes: stride 1 as dense_planes;
 * dense2: row i of channel cc split into its even and odd columns, the
 * rows of phase (i mod 2, 0) and (i mod 2, 1), row i/2 (zeroed first
 * unless `inner`). */
static void dense_x(const conv_geom *g, const float *src, float *dst,
                    int inner) {
  if (!g->dense2) {
    dense_planes(g, src, g->c, g->hw, dst, g->dpsf, g->dfrf, inner);
    return;
  }
  int64_t ps = g->dpsf, pc = g->c * ps;
  if (!inner)
    memset(dst, 0, (size_t)(4 * pc) * sizeof *dst);
  g->kern->deint2p(src, g->c, g->h, g->ow, dst + g->dfrf, ps, 2 * pc, pc);
}

static void dfwd_dense(const conv_geom *g, int64_t t) {
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1, off[CONVD_MAX_RS + 8], cs[CONVD_MAX_RS], idx[CONVD_MAX_RS];
  int fresh;
  float *xp = tc__cpu_conv_task_units(g, g->n, t, &i0, &i1, &fresh);
  const float *wp = (const float *)a->workspace;
  int64_t nrs = dense_taps(g, 0, off, cs, idx);
  for (int64_t i = i0; i < i1; i++) {
    dense_x(g, a->x + i * g->c * g->hw, xp, !fresh || i > i0);
    g->fv->fm(xp + g->dinf, g->c, g->dpsf, off, cs, nrs, g->ow, wp, g->k,
              a->bias, a->y + i * g->k * g->P, g->P, g->P, 0);
  }
}

static void dbwd_dense(const conv_geom *g, int64_t t) {
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1, off[CONVD_MAX_RS + 8], cs[CONVD_MAX_RS], idx[CONVD_MAX_RS];
  int fresh;
  float *dp = tc__cpu_conv_task_units(g, g->n, t, &i0, &i1, &fresh);
  const float *wp = (const float *)a->workspace;
  int64_t nrs = dense_taps(g, 1, off, cs, idx);
  for (int64_t i = i0; i < i1; i++) {
    dense_planes(g, a->dy + i * g->k * g->P, g->k, g->P, dp, g->dpsb, g->dfrb,
                 !fresh || i > i0);
    g->bv->fm(dp + g->dinb, g->k, g->dpsb, off, cs, nrs, g->w, wp, g->c, NULL,
              a->dx + i * g->c * g->hw, g->hw, g->hw, (int)a->accumulate);
  }
}

void tc__cpu_conv_dfwd_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1, off[CONVD_MAX_RS + 8], idx[CONVD_MAX_RS];
  if (g->densef) {
    dfwd_dense(g, t);
    return;
  }
  int fresh;
  float *xp = tc__cpu_conv_task_units(g, g->n, t, &i0, &i1, &fresh);
  const float *wp = (const float *)a->workspace;
  float *out = xp + g->nph * g->c * g->psf; /* (kpf, nqf) */
  int64_t nkb = g->kpf / g->fv->kt, nrs = all_taps(g, g->psf, off, idx);
  /* stride 1: x's data rows (the taps of several phases are not sorted) */
  int64_t lo = 0, hi = INT64_MAX;
  if (g->nph == 1)
    lo = g->ph * g->Ws + g->pw, hi = (g->ph + g->h - 1) * g->Ws + g->pw + g->w;
  for (int64_t i = i0; i < i1; i++) {
    phase_planes(g, a->x + i * g->c * g->hw, xp, g->psf, !fresh || i > i0);
    if (g->fwt) { /* out as (P, k), then y (k, P) */
      g->kern->fwdt(xp, g->psf, g->Ws, off, nrs, wp, g->c, g->k, g->oh, g->ow,
                    a->bias, out);
      g->kern->transpose(out, g->P, g->k, a->y + i * g->k * g->P);
      continue;
    }
    g->fv->fn(xp, g->c, g->psf, off, nrs, lo, hi, wp, nkb, out, g->nqf, g->nqf,
              0);
    float *y = a->y + i * g->k * g->P;
    for (int64_t kk = 0; kk < g->k; kk++)
      g->kern->rows(out + kk * g->nqf, g->Ws, y + kk * g->P, g->ow, g->oh,
                    g->ow, a->bias ? a->bias[kk] : 0.f, CONVD_ROWS_BIAS);
  }
}

/* dx phase p (a, b) from out (c rows of nqb on the Wq grid; NULL: zeros):
 * phase position (u, v) is dx (sh*(u+U0) + a - ph, sw*(v+V0) + b - pw). */
static void scatter_phase(const conv_geom *g, int64_t p, const float *out,
                          float *dx) {
  int64_t a = p / g->sw, b = p % g->sw, acc = g->a->accumulate;
  if (!out && acc)
    return;
  /* u range with 0 <= sh*(u+U0) + a - ph < h; same for v */
  int64_t e0 = a - g->ph + g->sh * g->U0, f0 = b - g->pw + g->sw * g->V0;
  int64_t ulo = e0 < 0 ? (-e0 + g->sh - 1) / g->sh : 0;
  int64_t uhi = min64(g->Uh, e0 < g->h ? (g->h - e0 + g->sh - 1) / g->sh : 0);
  int64_t vlo = f0 < 0 ? (-f0 + g->sw - 1) / g->sw : 0;
  int64_t vhi = min64(g->Uw, f0 < g->w ? (g->w - f0 + g->sw - 1) / g->sw : 0);
  if (vhi <= vlo)
    return;
  if (out && g->sw == 1 && g->sh == 1) {
    for (int64_t ci = 0; ci < g->c; ci++)
      g->kern->rows(out + ci * g->nqb + ulo * g->Wq + vlo, g->Wq,
                    dx + (ci * g->h + e0 + ulo) * g->w + f0 + vlo, g->w,
                    uhi - ulo, vhi - vlo, 0.f,
                    acc ? CONVD_ROWS_ADD : CONVD_ROWS_COPY);
    return;
  }
  for (int64_t ci = 0; ci < g->c; ci++) {
    for (int64_t u = ulo; u < uhi; u++) {
      float *restrict dst =
          dx + (ci * g->h + e0 + g->sh * u) * g->w + f0 + g->sw * vlo;
      int64_t m = vhi - vlo;
      if (!out) {
        for (int64_t v = 0; v < m; v++)
          dst[v * g->sw] = 0.f;
        continue;
      }
      const float *restrict src = out + ci * g->nqb + u * g->Wq + vlo;
      if (g->sw == 1) {
        if (acc) {
          for (int64_t v = 0; v < m; v++)
            dst[v] += src[v];
        } else {
          memcpy(dst, src, (size_t)m * sizeof *dst);
        }
      } else if (acc) {
        for (int64_t v = 0; v < m; v++)
          dst[v * g->sw] += src[v];
      } else {
        for (int64_t v = 0; v < m; v++)
          dst[v * g->sw] = src[v];
      }
    }
  }
}

/* dx from all phases' outputs (phase p at out + p*cpf*nqb) when sw == 2:
 * each dx row interleaves its two column phases in one pass. */
static void scatter2(const conv_geom *g, const float *out, float *dx) {
  int64_t acc = g->a->accumulate, pb = g->cpf * g->nqb;
  for (int64_t ci = 0; ci < g->c; ci++)
    for (int64_t xr = 0; xr < g->h; xr++) {
      int64_t e = xr + g->ph, a = e % g->sh, u = e / g->sh - g->U0;
      float *st[2];
      for (int64_t b = 0; b < 2; b++) {
        int64_t par;
        float *row = (float *)out + (a * 2 + b) * pb + ci * g->nqb + u * g->Wq;
        float *p0 = stream2(row, b, g->pw, -g->V0, &par);
        st[par] = p0;
      }
      float *dst = dx + (ci * g->h + xr) * g->w;
      g->kern->inter2(st[0], st[1], g->w / 2, dst, (int)acc);
      if (g->w & 1)
        dst[g->w - 1] = acc ? dst[g->w - 1] + st[0][g->w / 2] : st[0][g->w / 2];
    }
}

void tc__cpu_conv_dbwd_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1, off[CONVD_MAX_RS + 8], idx[CONVD_MAX_RS];
  if (g->denseb) {
    dbwd_dense(g, t);
    return;
  }
  int fresh;
  float *dp = tc__cpu_conv_task_units(g, g->n, t, &i0, &i1, &fresh);
  const float *wp = (const float *)a->workspace;
  float *out = dp + g->k * g->psb; /* nph x (cpf, nqb) */
  int64_t nkb = g->cpf / g->bv->kt, pb = g->cpf * g->nqb;
  /* dy's data in its padded planes: the first and last rows of dx read
   * fewer tap rows (a 5x5 layer's 10x10 dy: half the products are zero) */
  int64_t pt = g->Rm - 1 - g->U0, pl = g->Sm - 1 - g->V0;
  int64_t lo = pt * g->Wq + pl, hi = (pt + g->oh - 1) * g->Wq + pl + g->ow;
  /* phases without taps read as zeros in scatter2 */
  if (fresh && g->sw == 2)
    for (int64_t p = 0; p < g->nph; p++)
      if (!phase_taps(g, p, g->Wq, 1, off, idx))
        memset(out + p * pb, 0, (size_t)pb * sizeof *out);
  for (int64_t i = i0; i < i1; i++) {
    pad_planes(g->kern, a->dy + i * g->k * g->P, g->k, g->oh, g->ow, dp, g->psb,
               g->Wq, pt, pl, !fresh || i > i0);
    float *dx = a->dx + i * g->c * g->hw;
    const float *w = wp;
    for (int64_t p = 0; p < g->nph; p++) {
      int64_t nt = phase_taps(g, p, g->Wq, 1, off, idx);
      if (nt) {
        g->bv->fn(dp, g->k, g->psb, off, nt, lo, hi, w, nkb, out + p * pb,
                  g->nqb, g->nqb, 0);
        w += g->cpf * g->k * nt;
      }
      if (g->sw != 2)
        scatter_phase(g, p, nt ? out + p * pb : NULL, dx);
    }
    if (g->sw == 2)
      scatter2(g, out, dx);
  }
}

/* How many image slots of this thread's wgrad slice hold their zeros after
 * its last task (valid for its next task of the same op: task_units). */
static _Thread_local int64_t wg_ready;

/* Chunk j of the direct weight gradient: its images [c0, c1) and the
 * partial it sums into (dw itself when there is one chunk), cleared unless
 * that is dw accumulating. */
static float *wg_chunk(const conv_geom *g, int64_t j, int64_t *c0,
                       int64_t *c1) {
  const tc_conv2d_args *a = g->a;
  int64_t kcrs = g->k * g->crs;
  block_range(g->n, g->chunks, j, c0, c1);
  float *dst = g->chunks > 1 ? g->part + j * kcrs : a->dw;
  if (g->chunks > 1 || !a->accumulate)
    memset(dst, 0, (size_t)kcrs * sizeof *dst);
  return dst;
}

/* One kernel call of a direct weight gradient: images [i0, i0+m) of a
 * chunk summed into dst, with the task's slice buf, whose first `ready`
 * image slots already hold their zeros (ready == 0: the thread's first
 * call of this op). */
typedef void (*wg_batch_fn)(const conv_geom *g, float *buf, int64_t i0,
                            int64_t m, int64_t ready, float *dst);

/* Task t of a direct weight gradient: its chunks (task_units; the pool
 * hands each thread a contiguous run of tasks first, so mostly the images
 * it saw in the forward and backward-data passes), each chunk's images G
 * per call of fn, in order, so a chunk's sum never depends on the slot,
 * the thread or the thread count. */
static void wg_run(const conv_geom *g, int64_t t, wg_batch_fn fn) {
  int64_t j0, j1;
  int fresh;
  float *buf = tc__cpu_conv_task_units(g, g->chunks, t, &j0, &j1, &fresh);
  int64_t ready = fresh ? 0 : wg_ready;
  for (int64_t j = j0; j < j1; j++) {
    int64_t c0, c1;
    float *dst = wg_chunk(g, j, &c0, &c1);
    for (int64_t i0 = c0; i0 < c1; i0 += g->G) {
      int64_t m = min64(g->G, c1 - i0);
      fn(g, buf, i0, m, ready, dst);
      ready = max64(ready, m);
    }
  }
  wg_ready = ready;
}

/* wgt (AVX-512: 3x3 stride 1, k and P multiples of 16, k >= 32; AVX2:
 * stride 1, k a multiple of 16, s >= 4): x as wg_positions' padded-row
 * planes (a tap off the image reads a zero), dy transposed to (position,
 * channel). */
static void wg_lanes(const conv_geom *g, float *xb, int64_t i0, int64_t m,
                     int64_t ready, float *dst) {
  const tc_conv2d_args *a = g->a;
  int64_t xs = g->c * g->psw, kp = g->k * g->P;
  float *dt = xb + g->G * xs; /* G x (P, k) */
  for (int64_t i = 0; i < m; i++) {
    phase_planes(g, a->x + (i0 + i) * g->c * g->hw, xb + i * xs, g->psw,
                 i < ready);
    g->kern->transpose(a->dy + (i0 + i) * kp, g->k, g->P, dt + i * kp);
  }
  g->kern->wgradt(xb, xs, g->psw, g->Ws, dt, kp, m, g->c, g->k, g->oh, g->ow,
                  g->r, g->s, dst);
}

/* Dense (stride 1 with ow == w, or dense2; AVX-512 only): x as fwd's dense
 * planes, dy read in place; the kernel masks each tap's x loads with the
 * table of lanes whose column, shifted by the tap's, stays in the row (and
 * whose position is below P), built in the slice on its first call. */
static void wg_dense(const conv_geom *g, float *xb, int64_t i0, int64_t m,
                     int64_t ready, float *dst) {
  const tc_conv2d_args *a = g->a;
  int64_t rs = g->r * g->s, vl = g->kern->vl;
  int64_t off[CONVD_MAX_RS + 8], cs[CONVD_MAX_RS], idx[CONVD_MAX_RS];
  int64_t mo[CONVD_MAX_RS + 8];
  int64_t xs = g->dnph * g->c * g->dpsf, kp = g->k * g->P;
  uint16_t *mt = (uint16_t *)(xb + g->G * xs);
  int64_t nrs = dense_taps(g, 0, off, cs, idx);
  for (int64_t e = 0; e < CONVD_MAX_RS + 8; e++)
    mo[e] = e < nrs ? (cs[e] - g->dcs0) * g->dnqv : 0;
  for (int64_t e = 0; ready == 0 && e < g->dncs; e++)
    for (int64_t v = 0; v < g->dnqv; v++) {
      unsigned bits = 0;
      for (int64_t l = 0; l < vl; l++) {
        int64_t q = v * vl + l, col = q % g->ow + e + g->dcs0;
        if (q < g->P && col >= 0 && col < g->ow)
          bits |= 1u << l;
      }
      mt[e * g->dnqv + v] = (uint16_t)bits;
    }
  for (int64_t i = 0; i < m; i++)
    dense_x(g, a->x + (i0 + i) * g->c * g->hw, xb + i * xs, i < ready);
  g->wv->fm(xb + g->dinf, xs, g->dpsf, a->dy + i0 * kp, kp, g->P, m, g->c, g->k,
            off, mt, mo, nrs, g->P, idx, rs, dst);
}

/* The rest: x in padded-row planes per stride phase, dy copied onto the
 * same Ws grid with zeros past each row (position vectors, junk columns
 * summed as zeros). */
static void wg_positions(const conv_geom *g, float *xb, int64_t i0, int64_t m,
                         int64_t ready, float *dst) {
  const tc_conv2d_args *a = g->a;
  int64_t rs = g->r * g->s;
  int64_t off[CONVD_MAX_RS + 8], idx[CONVD_MAX_RS];
  int64_t xs = g->nph * g->c * g->psw, dys = g->kpw * g->nqw;
  float *db = xb + g->G * xs; /* G x (kpw, nqw) */
  all_taps(g, g->psw, off, idx);
  /* 1x1: the channels become the taps (one "channel"), so the kernel's
   * tap groups are full */
  int fold = rs == 1 && g->c <= CONVD_MAX_RS;
  if (fold) {
    int64_t o0 = off[0];
    for (int64_t ci = 0; ci < g->c; ci++)
      off[ci] = o0 + ci * g->psw, idx[ci] = ci;
  }
  for (int64_t i = 0; i < m; i++) {
    int inner = i < ready;
    phase_planes(g, a->x + (i0 + i) * g->c * g->hw, xb + i * xs, g->psw, inner);
    /* dy on the Ws grid: zero past ow in each row and past the end
     * (rows k..kpw stay zero: they are never written) */
    if (!inner)
      memset(db + i * dys + g->k * g->nqw, 0,
             (size_t)((g->kpw - g->k) * g->nqw) * sizeof *db);
    pad_planes(g->kern, a->dy + (i0 + i) * g->k * g->P, g->k, g->oh, g->ow,
               db + i * dys, g->nqw, g->Ws, 0, 0, inner);
  }
  if (fold)
    g->wv->fn(xb, xs, g->psw, db, dys, g->nqw, m, 1, g->k, off, g->c, g->nqw,
              idx, g->c, dst);
  else
    g->wv->fn(xb, xs, g->psw, db, dys, g->nqw, m, g->c, g->k, off, rs, g->nqw,
              idx, rs, dst);
}

void tc__cpu_conv_dwg_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  wg_run(g, t, g->wgt ? wg_lanes : g->densew ? wg_dense : wg_positions);
}

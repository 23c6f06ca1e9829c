/*
 * conv2d_winograd_kern.h - kernel bodies for conv2d_winograd.c, included
 * once per instruction set with these macros defined:
 *   TGT target attribute, vf vector type, VL lanes, V_LOAD, V_STORE,
 *   V_ADD, V_SUB, V_FMA(a,b,c) = a*b+c, V_BC broadcast, V_ZERO,
 *   V_DEINT(a, b, e, o) (e = even lanes of the 2*VL floats a:b, o = odd),
 *   V_INTER(e, o, lo, hi) (the inverse), V_LOADN(p, n) / V_STOREN(p, v, n)
 *   (the first n < VL lanes; no access past them), WKR (output channels
 *   per register tile: the GEMM's tile is WKR x 3 vectors of tiles) and
 *   WINO_NAME(x) (x with the instruction set's suffix).
 * Everything is undefined at the end. No include guard: meant to be
 * included several times.
 *
 * Layouts (conv2d_winograd.c): a padded input plane has rows of wp floats;
 * V and M hold, per alpha (one of the 16 points of a 4x4 tile), a row of
 * `ts` floats (one per tile) for each channel: V[(alpha*cin + c)*ts + t],
 * M[(alpha*cout + k)*ts + t]; U[((alpha*nkb + kb)*cin + c)*WKR + j] is the
 * transformed weight of output channel kb*WKR + j.
 */

/* h rows of w floats from src (contiguous) to dst (row stride wp): the
 * rows are short, a memcpy call per row cost more than the copy. */
TGT static void WINO_NAME(wino_rows)(const float *src, int64_t h, int64_t w,
                                     float *dst, int64_t wp) {
  for (int64_t i = 0; i < h; i++, src += w, dst += wp) {
    int64_t j = 0;
    for (; j + VL <= w; j += VL)
      V_STORE(dst + j, V_LOAD(src + j));
    if (j < w)
      V_STOREN(dst + j, V_LOADN(src + j, w - j), w - j);
  }
}

/* Input transform V = B^T d B of the tiles of one tile row of one channel:
 * row0 is padded row 2*tr (tile tc reads its rows 2tr .. 2tr+3, columns
 * 2tc .. 2tc+3), v the row's first tile in V (alpha stride as). Tiles are
 * done VL at a time, so up to VL-1 past tw are written (junk from the
 * zeros of the plane). B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. */
TGT static void WINO_NAME(wino_in_row)(const float *row0, int64_t wp,
                                       int64_t tw, float *v, int64_t as) {
  for (int64_t tc = 0; tc < tw; tc += VL) {
    vf hh[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
      const float *p = row0 + r * wp + 2 * tc;
      vf e, o, e2, o2;
      V_DEINT(V_LOAD(p), V_LOAD(p + VL), e, o);
      V_DEINT(V_LOAD(p + 2), V_LOAD(p + 2 + VL), e2, o2);
      hh[r][0] = V_SUB(e, e2);
      hh[r][1] = V_ADD(o, e2);
      hh[r][2] = V_SUB(e2, o);
      hh[r][3] = V_SUB(o, o2);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      V_STORE(v + (0 * 4 + j) * as + tc, V_SUB(hh[0][j], hh[2][j]));
      V_STORE(v + (1 * 4 + j) * as + tc, V_ADD(hh[1][j], hh[2][j]));
      V_STORE(v + (2 * 4 + j) * as + tc, V_SUB(hh[2][j], hh[1][j]));
      V_STORE(v + (3 * 4 + j) * as + tc, V_SUB(hh[1][j], hh[3][j]));
    }
  }
}

/* One register tile of M = U V for one alpha: output channels
 * kb*WKR .. +WKR, tiles t .. t + nv*VL, the sum over the cin channels in
 * one FMA chain per output, in channel order (so the bits never depend on
 * how the tiles are blocked). */
TGT static inline __attribute__((always_inline)) void
WINO_NAME(wino_tile)(const float *u, const float *v, int64_t cin, int64_t ts,
                     float *m, int nv) {
  vf acc[WKR][3];
#pragma GCC unroll 8
  for (int j = 0; j < WKR; j++)
#pragma GCC unroll 3
    for (int q = 0; q < nv; q++)
      acc[j][q] = V_ZERO();
  for (int64_t c = 0; c < cin; c++, u += WKR, v += ts) {
    vf x[3];
#pragma GCC unroll 3
    for (int q = 0; q < nv; q++)
      x[q] = V_LOAD(v + q * VL);
#pragma GCC unroll 8
    for (int j = 0; j < WKR; j++) {
      vf b = V_BC(u[j]);
#pragma GCC unroll 3
      for (int q = 0; q < nv; q++)
        acc[j][q] = V_FMA(b, x[q], acc[j][q]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < WKR; j++)
#pragma GCC unroll 3
    for (int q = 0; q < nv; q++)
      V_STORE(m + j * ts + q * VL, acc[j][q]);
}

/* M = U V for every alpha over tiles [0, nt) (nt a multiple of VL). */
TGT static void WINO_NAME(wino_gemm)(const float *U, const float *V, float *M,
                                     int64_t cin, int64_t cout, int64_t ts,
                                     int64_t nt) {
  int64_t nkb = cout / WKR;
  for (int64_t al = 0; al < 16; al++) {
    const float *ua = U + al * cout * cin;
    const float *va = V + al * cin * ts;
    float *ma = M + al * cout * ts;
    int64_t t = 0;
    for (; t + 3 * VL <= nt; t += 3 * VL)
      for (int64_t kb = 0; kb < nkb; kb++)
        WINO_NAME(wino_tile)
    (ua + kb * cin * WKR, va + t, cin, ts, ma + kb * WKR * ts + t, 3);
    if (nt - t == 2 * VL)
      for (int64_t kb = 0; kb < nkb; kb++)
        WINO_NAME(wino_tile)
    (ua + kb * cin * WKR, va + t, cin, ts, ma + kb * WKR * ts + t, 2);
    else if (nt - t == VL) for (int64_t kb = 0; kb < nkb; kb++)
        WINO_NAME(wino_tile)(ua + kb * cin * WKR, va + t, cin, ts,
                             ma + kb * WKR * ts + t, 1);
  }
}

/* n (<= 2*VL) outputs of one row at y from the interleaved pair lo:hi,
 * plus bias, added to y when acc. */
TGT static inline __attribute__((always_inline)) void
WINO_NAME(wino_put)(float *y, vf lo, vf hi, int64_t n, vf bias, int acc) {
  lo = V_ADD(lo, bias), hi = V_ADD(hi, bias);
  if (n >= 2 * VL) {
    if (acc)
      lo = V_ADD(V_LOAD(y), lo), hi = V_ADD(V_LOAD(y + VL), hi);
    V_STORE(y, lo);
    V_STORE(y + VL, hi);
    return;
  }
  if (n >= VL) {
    if (acc)
      lo = V_ADD(V_LOAD(y), lo);
    V_STORE(y, lo);
    n -= VL, y += VL, lo = hi;
    if (n == 0)
      return;
  }
  if (acc)
    lo = V_ADD(V_LOADN(y, n), lo);
  V_STOREN(y, lo, n);
}

/* Output transform Y = A^T M A of one tile row of one output channel: m
 * is the row's first tile in M (alpha stride as), y0 output row 2*tr, y1
 * row 2*tr+1 (NULL past the last row), ow columns; plus bias, added to y
 * when acc. A^T = [1 1 1 0; 0 1 -1 -1]. */
TGT static void WINO_NAME(wino_out_row)(const float *m, int64_t as, int64_t tw,
                                        int64_t ow, float *y0, float *y1,
                                        float bias, int acc) {
  vf bv = V_BC(bias);
  for (int64_t tc = 0; tc < tw; tc += VL) {
    vf s0[4], s1[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      vf m0 = V_LOAD(m + (0 * 4 + j) * as + tc);
      vf m1 = V_LOAD(m + (1 * 4 + j) * as + tc);
      vf m2 = V_LOAD(m + (2 * 4 + j) * as + tc);
      vf m3 = V_LOAD(m + (3 * 4 + j) * as + tc);
      s0[j] = V_ADD(V_ADD(m0, m1), m2);
      s1[j] = V_SUB(V_SUB(m1, m2), m3);
    }
    int64_t n = ow - 2 * tc;
    vf lo, hi;
    V_INTER(V_ADD(V_ADD(s0[0], s0[1]), s0[2]),
            V_SUB(V_SUB(s0[1], s0[2]), s0[3]), lo, hi);
    WINO_NAME(wino_put)(y0 + 2 * tc, lo, hi, n, bv, acc);
    if (y1) {
      V_INTER(V_ADD(V_ADD(s1[0], s1[1]), s1[2]),
              V_SUB(V_SUB(s1[1], s1[2]), s1[3]), lo, hi);
      WINO_NAME(wino_put)(y1 + 2 * tc, lo, hi, n, bv, acc);
    }
  }
}

/* Weight gradient: the transpose of the output transform, A dY A^T, of
 * one tile row of one output channel of dy: row0 is dy row 2*tr in a
 * zero-bordered plane (rows of wp floats, zeros past the image), m the
 * row's first tile (alpha stride as). A = [1 0; 1 1; 1 -1; 0 -1]. */
TGT static void WINO_NAME(wino_dy_row)(const float *row0, int64_t wp,
                                       int64_t tw, float *m, int64_t as) {
  for (int64_t tc = 0; tc < tw; tc += VL) {
    vf hh[2][4];
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++) {
      const float *p = row0 + r * wp + 2 * tc;
      vf e, o;
      V_DEINT(V_LOAD(p), V_LOAD(p + VL), e, o);
      hh[r][0] = e;
      hh[r][1] = V_ADD(e, o);
      hh[r][2] = V_SUB(e, o);
      hh[r][3] = V_SUB(V_ZERO(), o);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      V_STORE(m + (0 * 4 + j) * as + tc, hh[0][j]);
      V_STORE(m + (1 * 4 + j) * as + tc, V_ADD(hh[0][j], hh[1][j]));
      V_STORE(m + (2 * 4 + j) * as + tc, V_SUB(hh[0][j], hh[1][j]));
      V_STORE(m + (3 * 4 + j) * as + tc, V_SUB(V_ZERO(), hh[1][j]));
    }
  }
}

/* One register tile of dU += M V^T for one alpha: output channels
 * k0 .. k0+WKR (rows of m, stride ts), input channels c0 .. c0 + nv*VL
 * (columns of vt, rows of cp floats per tile), tiles 0 .. nt: one FMA
 * chain per element continued from dU, in tile order, so blocks of tiles
 * summed one after another give the bits of one pass. */
TGT static inline __attribute__((always_inline)) void
WINO_NAME(wino_wtile)(const float *m, int64_t ts, const float *vt, int64_t cp,
                      int64_t nt, float *du, int nv) {
  vf acc[WKR][3];
#pragma GCC unroll 8
  for (int j = 0; j < WKR; j++)
#pragma GCC unroll 3
    for (int q = 0; q < nv; q++)
      acc[j][q] = V_LOAD(du + j * cp + q * VL);
  for (int64_t t = 0; t < nt; t++, vt += cp) {
    vf x[3];
#pragma GCC unroll 3
    for (int q = 0; q < nv; q++)
      x[q] = V_LOAD(vt + q * VL);
#pragma GCC unroll 8
    for (int j = 0; j < WKR; j++) {
      vf b = V_BC(m[j * ts + t]);
#pragma GCC unroll 3
      for (int q = 0; q < nv; q++)
        acc[j][q] = V_FMA(b, x[q], acc[j][q]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < WKR; j++)
#pragma GCC unroll 3
    for (int q = 0; q < nv; q++)
      V_STORE(du + j * cp + q * VL, acc[j][q]);
}

/* dU[alpha] (cout x cp) += M[alpha] (cout x nt, row stride ts) times
 * Vt[alpha] (nt x cp) for every alpha; cp a multiple of VL. */
TGT static void WINO_NAME(wino_wgemm)(const float *M, const float *Vt,
                                      float *dU, int64_t cout, int64_t cp,
                                      int64_t ts, int64_t nt) {
  for (int64_t al = 0; al < 16; al++) {
    const float *ma = M + al * cout * ts;
    const float *va = Vt + al * ts * cp;
    float *ua = dU + al * cout * cp;
    int64_t c = 0;
    for (; c + 3 * VL <= cp; c += 3 * VL)
      for (int64_t k = 0; k < cout; k += WKR)
        WINO_NAME(wino_wtile)
    (ma + k * ts, ts, va + c, cp, nt, ua + k * cp + c, 3);
    if (cp - c == 2 * VL)
      for (int64_t k = 0; k < cout; k += WKR)
        WINO_NAME(wino_wtile)
    (ma + k * ts, ts, va + c, cp, nt, ua + k * cp + c, 2);
    else if (cp - c == VL) for (int64_t k = 0; k < cout; k += WKR) WINO_NAME(
        wino_wtile)(ma + k * ts, ts, va + c, cp, nt, ua + k * cp + c, 1);
  }
}

#undef TGT
#undef vf
#undef VL
#undef V_LOAD
#undef V_STORE
#undef V_ADD
#undef V_SUB
#undef V_FMA
#undef V_BC
#undef V_ZERO
#undef V_DEINT
#undef V_INTER
#undef V_LOADN
#undef V_STOREN
#undef WKR
#undef WINO_NAME

/*
 * conv2d_direct_kern.h - kernel bodies for conv2d_direct.c, included once
 * per instruction set and tile shape with these macros defined:
 *   TGT target attribute, vf vector type, VL lanes, V_LOAD, V_STORE, V_ADD,
 *   V_FMA(a,b,c) = a*b+c, V_BC broadcast, V_ZERO, V_HSUM, V_HSUMS, V_LANE,
 *   V_TILE_SUMS (the CONVD_SUMS_FN of the instruction set);
 *   CONVD_FN the function's name, and either FKT, FNV (a fwd kernel with
 *   an FKT channels x FNV vectors tile), MKT, MNV (the same for the
 *   masked "dense" fwd kernel, which also needs VM, VI, VM_COLS, VM_TAP,
 *   VM_LOAD, VS, VS_FIRST, VS_LOAD, VS_STORE), WKT, WNO (a wgrad kernel
 *   with a WKT channels x WNO taps tile) or WMKT, WMNO (the same for the
 *   masked "dense" wgrad kernel, AVX-512 only), or CONVD_SUMS_FN alone
 *   (once per instruction set, first: the wgrad tiles' horizontal sums).
 * The tile macros and CONVD_FN are undefined at the end. No include guard:
 * meant to be included several times.
 */

#ifdef CONVD_SUMS_FN
/* The horizontal sums of a wgrad tile's na accumulators fl[0..na), VL
 * vectors at a time through one transpose-and-add tree (fixed order):
 * s[m / VL * VL + V_LANE(m % VL)] = sum of the lanes of fl[m]. fl has room
 * for whole groups of VL (entries past na are zeroed here). A short last
 * group takes one hsum per vector: cheaper than a tree of mostly zeros. */
TGT static inline __attribute__((always_inline)) void
CONVD_SUMS_FN(vf *fl, int na, float *s) {
#pragma GCC unroll 16
  for (int m = na; m < (na + VL - 1) / VL * VL; m++)
    fl[m] = V_ZERO();
#pragma GCC unroll 4
  for (int q = 0; q < na / VL; q++)
    V_HSUMS(fl + q * VL, s + q * VL);
  if (na % VL > VL / 4) {
    V_HSUMS(fl + na / VL * VL, s + na / VL * VL);
  } else {
#pragma GCC unroll 16
    for (int m = na / VL * VL; m < na; m++)
      s[m / VL * VL + V_LANE(m % VL)] = V_HSUM(fl[m]);
  }
}
#undef CONVD_SUMS_FN
#endif /* CONVD_SUMS_FN */

#ifdef FKT
TGT static void CONVD_FN(const float *in, int64_t cin, int64_t ps,
                         const int64_t *off, int64_t nrs, int64_t lo,
                         int64_t hi, const float *wp, int64_t nkb, float *out,
                         int64_t ldo, int64_t nq, int add) {
  int64_t cb = CONVD_CHAIN / nrs > 1 ? CONVD_CHAIN / nrs : 1;
  for (int64_t kb = 0; kb < nkb; kb++) {
    const float *wb = wp + kb * cin * nrs * FKT;
    float *ob = out + kb * FKT * ldo;
    int64_t q = 0;
    for (; q + FNV * VL <= nq; q += FNV * VL) {
      int64_t t0, t1;
      convd_tap_range(off, nrs, q, FNV * VL, lo, hi, &t0, &t1);
      /* sum cb input channels in registers, then add into the output:
       * shorter float chains, closer to the exact sum */
      for (int64_t c0 = 0; c0 < cin; c0 += cb) {
        int64_t c1 = c0 + cb < cin ? c0 + cb : cin;
        vf acc[FKT][FNV];
#pragma GCC unroll 8
        for (int j = 0; j < FKT; j++)
#pragma GCC unroll 4
          for (int v = 0; v < FNV; v++)
            acc[j][v] = V_ZERO();
        for (int64_t ci = c0; ci < c1; ci++) {
          const float *xb = in + ci * ps + q;
          const float *w = wb + (ci * nrs + t0) * FKT;
          for (int64_t t = t0; t < t1; t++, w += FKT) {
            const float *xp = xb + off[t];
            vf xv[FNV];
#pragma GCC unroll 4
            for (int v = 0; v < FNV; v++)
              xv[v] = V_LOAD(xp + v * VL);
#pragma GCC unroll 8
            for (int j = 0; j < FKT; j++) {
              vf b = V_BC(w[j]);
#pragma GCC unroll 4
              for (int v = 0; v < FNV; v++)
                acc[j][v] = V_FMA(b, xv[v], acc[j][v]);
            }
          }
        }
        if (c0 > 0 || add) {
#pragma GCC unroll 8
          for (int j = 0; j < FKT; j++)
#pragma GCC unroll 4
            for (int v = 0; v < FNV; v++)
              acc[j][v] = V_ADD(acc[j][v], V_LOAD(ob + j * ldo + q + v * VL));
        }
#pragma GCC unroll 8
        for (int j = 0; j < FKT; j++)
#pragma GCC unroll 4
          for (int v = 0; v < FNV; v++)
            V_STORE(ob + j * ldo + q + v * VL, acc[j][v]);
      }
    }
    /* the last positions, one vector at a time (small images) */
    for (; q < nq; q += VL) {
      int64_t t0, t1;
      convd_tap_range(off, nrs, q, VL, lo, hi, &t0, &t1);
      for (int64_t c0 = 0; c0 < cin; c0 += cb) {
        int64_t c1 = c0 + cb < cin ? c0 + cb : cin;
        vf acc[FKT];
#pragma GCC unroll 8
        for (int j = 0; j < FKT; j++)
          acc[j] = V_ZERO();
        for (int64_t ci = c0; ci < c1; ci++) {
          const float *xb = in + ci * ps + q;
          const float *w = wb + (ci * nrs + t0) * FKT;
          for (int64_t t = t0; t < t1; t++, w += FKT) {
            vf xv = V_LOAD(xb + off[t]);
#pragma GCC unroll 8
            for (int j = 0; j < FKT; j++)
              acc[j] = V_FMA(V_BC(w[j]), xv, acc[j]);
          }
        }
        if (c0 > 0 || add) {
#pragma GCC unroll 8
          for (int j = 0; j < FKT; j++)
            acc[j] = V_ADD(acc[j], V_LOAD(ob + j * ldo + q));
        }
#pragma GCC unroll 8
        for (int j = 0; j < FKT; j++)
          V_STORE(ob + j * ldo + q, acc[j]);
      }
    }
  }
}
#undef FKT
#undef FNV
#endif /* FKT */

#ifdef WKT
TGT static void CONVD_FN(const float *x, int64_t xs, int64_t ps,
                         const float *dy, int64_t dys, int64_t ldd,
                         int64_t nimg, int64_t c, int64_t k, const int64_t *off,
                         int64_t nrs, int64_t nq, const int64_t *pidx,
                         int64_t prs, float *part) {
  int64_t nkb = (k + WKT - 1) / WKT, ngrp = (nrs + WNO - 1) / WNO;
  for (int64_t kb = 0; kb < nkb; kb++) {
    for (int64_t ci = 0; ci < c; ci++) {
      for (int64_t g = 0; g < ngrp; g++) {
        const int64_t *og = off + g * WNO;
        vf acc[WKT][WNO];
#pragma GCC unroll 8
        for (int j = 0; j < WKT; j++)
#pragma GCC unroll 4
          for (int o = 0; o < WNO; o++)
            acc[j][o] = V_ZERO();
        for (int64_t i = 0; i < nimg; i++) {
          const float *d = dy + i * dys + kb * WKT * ldd;
          const float *xb = x + i * xs + ci * ps;
          for (int64_t q = 0; q < nq; q += VL) {
            vf xv[WNO];
#pragma GCC unroll 4
            for (int o = 0; o < WNO; o++)
              xv[o] = V_LOAD(xb + q + og[o]);
#pragma GCC unroll 8
            for (int j = 0; j < WKT; j++) {
              vf dv = V_LOAD(d + j * ldd + q);
              /* one load per dy vector: keeps the compiler from folding
               * it into each of the WNO FMAs (WNO loads instead of 1) */
              __asm__("" : "+v"(dv));
#pragma GCC unroll 4
              for (int o = 0; o < WNO; o++)
                acc[j][o] = V_FMA(dv, xv[o], acc[j][o]);
            }
          }
        }
        enum { NA = WKT * WNO, NG = (NA + VL - 1) / VL };
        vf fl[NG * VL];
        float s[NG * VL];
#pragma GCC unroll 8
        for (int j = 0; j < WKT; j++)
#pragma GCC unroll 4
          for (int o = 0; o < WNO; o++)
            fl[j * WNO + o] = acc[j][o];
        V_TILE_SUMS(fl, NA, s);
#pragma GCC unroll 8
        for (int j = 0; j < WKT; j++) {
          int64_t kk = kb * WKT + j;
#pragma GCC unroll 4
          for (int o = 0; o < WNO; o++) {
            int64_t t = g * WNO + o;
            int m = j * WNO + o;
            if (kk < k && t < nrs)
              part[(kk * c + ci) * prs + pidx[t]] +=
                  s[m / VL * VL + V_LANE(m % VL)];
          }
        }
      }
    }
  }
}
#undef WKT
#undef WNO
#endif /* WKT */

#ifdef MKT
/* The "dense" fwd kernel: the input planes hold whole rows of width w
 * (zero rows above and below, none at the sides), positions q are the
 * output's own (q = oh*w + ow), and a tap's loads are masked to the lanes
 * whose column plus the tap's column shift cs[t] lies in [0, w). So no
 * junk columns are computed and the sums go straight into the output
 * (channels < nk, positions < nq; the last vector is a masked store),
 * plus bias[channel] when bias. The masks are the instruction set's
 * (VM type, VM_COLS, VM_TAP, VM_LOAD; AVX2: lane masks ANDed with a plain
 * load, which stays inside the planes' padding; VS_* the store masks). */
TGT static void CONVD_FN(const float *in, int64_t cin, int64_t ps,
                         const int64_t *off, const int64_t *cs, int64_t nrs,
                         int64_t w, const float *wp, int64_t nk,
                         const float *bias, float *out, int64_t ldo, int64_t nq,
                         int add) {
  int64_t cb = CONVD_CHAIN / nrs > 1 ? CONVD_CHAIN / nrs : 1;
  int64_t nkb = (nk + MKT - 1) / MKT;
  VM mt[CONVD_MAX_RS][MNV];
  /* the common 3x3 case, when the caller lists the taps in three groups
   * of one column shift each, the middle one 0 (stride 1: -1, 0, +1;
   * stride 2: -1, 0, 0) */
  int k3 = nrs == 9;
  int64_t o3[9];
  for (int t = 0; k3 && t < 9; t++) {
    k3 = cs[t] == (t < 3 ? cs[0] : t < 6 ? 0 : cs[6]);
    o3[t] = off[t];
  }
  for (int64_t q = 0; q < nq; q += MNV * VL) {
    int full = q + MNV * VL <= nq;
    int nv = full ? MNV : (int)((nq - q + VL - 1) / VL);
    /* column of each lane, then each tap's load mask */
    for (int v = 0; v < nv; v++) {
      VI col = VM_COLS((q + v * VL) % w, w);
      for (int64_t t = 0; t < nrs; t++)
        mt[t][v] = VM_TAP(col, cs[t], w);
    }
    for (int64_t kb = 0; kb < nkb; kb++) {
      const float *wb = wp + kb * cin * nrs * MKT;
      float *ob = out + kb * MKT * ldo + q;
      int jn = nk - kb * MKT < MKT ? (int)(nk - kb * MKT) : MKT;
      if (full) {
        for (int64_t c0 = 0; c0 < cin; c0 += cb) {
          int64_t c1 = c0 + cb < cin ? c0 + cb : cin;
          vf acc[MKT][MNV];
#pragma GCC unroll 8
          for (int j = 0; j < MKT; j++)
#pragma GCC unroll 4
            for (int v = 0; v < MNV; v++)
              acc[j][v] = V_ZERO();
          const float *wc = wb + c0 * nrs * MKT;
          if (k3) {
            /* 3x3, taps in column-shift groups cs[0], 0, cs[6]: 4 masks
             * in registers, plain loads for the middle group */
            VM ml[MNV], mr[MNV];
#pragma GCC unroll 4
            for (int v = 0; v < MNV; v++)
              ml[v] = mt[0][v], mr[v] = mt[6][v];
            for (int64_t ci = c0; ci < c1; ci++) {
              const float *xb = in + ci * ps + q;
#pragma GCC unroll 9
              for (int t = 0; t < 9; t++, wc += MKT) {
                const float *xp = xb + o3[t];
                vf xv[MNV];
#pragma GCC unroll 4
                for (int v = 0; v < MNV; v++)
                  xv[v] = t < 3   ? VM_LOAD(ml[v], xp + v * VL)
                          : t < 6 ? V_LOAD(xp + v * VL)
                                  : VM_LOAD(mr[v], xp + v * VL);
#pragma GCC unroll 8
                for (int j = 0; j < MKT; j++) {
                  vf b = V_BC(wc[j]);
#pragma GCC unroll 4
                  for (int v = 0; v < MNV; v++)
                    acc[j][v] = V_FMA(b, xv[v], acc[j][v]);
                }
              }
            }
          } else {
            for (int64_t ci = c0; ci < c1; ci++) {
              const float *xb = in + ci * ps + q;
              for (int64_t t = 0; t < nrs; t++, wc += MKT) {
                const float *xp = xb + off[t];
                vf xv[MNV];
#pragma GCC unroll 4
                for (int v = 0; v < MNV; v++)
                  xv[v] = VM_LOAD(mt[t][v], xp + v * VL);
#pragma GCC unroll 8
                for (int j = 0; j < MKT; j++) {
                  vf b = V_BC(wc[j]);
#pragma GCC unroll 4
                  for (int v = 0; v < MNV; v++)
                    acc[j][v] = V_FMA(b, xv[v], acc[j][v]);
                }
              }
            }
          }
          /* all loads before the stores: the channel planes of y are
           * often 4 KiB apart, and a load just after a store to the same
           * address bits waits for it */
          if (c0 > 0 || add) {
#pragma GCC unroll 8
            for (int j = 0; j < MKT; j++)
#pragma GCC unroll 4
              for (int v = 0; v < MNV; v++)
                if (j < jn)
                  acc[j][v] = V_ADD(acc[j][v], V_LOAD(ob + j * ldo + v * VL));
          }
          if (c1 == cin && bias) {
#pragma GCC unroll 8
            for (int j = 0; j < MKT; j++)
#pragma GCC unroll 4
              for (int v = 0; v < MNV; v++)
                if (j < jn)
                  acc[j][v] = V_ADD(acc[j][v], V_BC(bias[kb * MKT + j]));
          }
#pragma GCC unroll 8
          for (int j = 0; j < MKT; j++)
#pragma GCC unroll 4
            for (int v = 0; v < MNV; v++)
              if (j < jn)
                V_STORE(ob + j * ldo + v * VL, acc[j][v]);
        }
        continue;
      }
      /* the last positions, one vector at a time, the last one masked */
      for (int v = 0; v < nv; v++) {
        int64_t qv = v * VL, rest = nq - q - qv;
        VS sm = VS_FIRST(rest);
        for (int64_t c0 = 0; c0 < cin; c0 += cb) {
          int64_t c1 = c0 + cb < cin ? c0 + cb : cin;
          vf acc[MKT];
#pragma GCC unroll 8
          for (int j = 0; j < MKT; j++)
            acc[j] = V_ZERO();
          const float *wc = wb + c0 * nrs * MKT;
          for (int64_t ci = c0; ci < c1; ci++) {
            const float *xb = in + ci * ps + q + qv;
            for (int64_t t = 0; t < nrs; t++, wc += MKT) {
              vf xv = VM_LOAD(mt[t][v], xb + off[t]);
#pragma GCC unroll 8
              for (int j = 0; j < MKT; j++)
                acc[j] = V_FMA(V_BC(wc[j]), xv, acc[j]);
            }
          }
          if (c0 > 0 || add) {
#pragma GCC unroll 8
            for (int j = 0; j < MKT; j++)
              if (j < jn)
                acc[j] = V_ADD(acc[j], VS_LOAD(sm, ob + j * ldo + qv));
          }
          if (c1 == cin && bias) {
#pragma GCC unroll 8
            for (int j = 0; j < MKT; j++)
              if (j < jn)
                acc[j] = V_ADD(acc[j], V_BC(bias[kb * MKT + j]));
          }
#pragma GCC unroll 8
          for (int j = 0; j < MKT; j++)
            if (j < jn)
              VS_STORE(ob + j * ldo + qv, sm, acc[j]);
        }
      }
    }
  }
}
#undef MKT
#undef MNV
#endif /* MKT */

#ifdef WMKT
/* One vector of positions qq into the dense wgrad tile: the taps' x loads
 * under mask MK (an expression of the tap o), then each dy row j loaded as
 * DV (an expression of j) and multiplied into its accumulators. */
#define WGM_STEP(qq, MK, DV)                                                   \
  do {                                                                         \
    vf xv[WMNO];                                                               \
    _Pragma("GCC unroll 4") for (int o = 0; o < WMNO; o++) xv[o] =             \
        _mm512_maskz_loadu_ps((MK), xb + (qq) + og[o]);                        \
    _Pragma("GCC unroll 8") for (int j = 0; j < WMKT; j++) {                   \
      vf dv = (DV);                                                            \
      __asm__("" : "+v"(dv));                                                  \
      _Pragma("GCC unroll 4") for (int o = 0; o < WMNO; o++) acc[j][o] =       \
          V_FMA(dv, xv[o], acc[j][o]);                                         \
    }                                                                          \
  } while (0)

/* The "dense" wgrad kernel (AVX-512 only): x planes hold whole rows of
 * width w (zero rows above and below, none at the sides) and dy is read
 * from the tensor itself (rows of nq positions, any count; the last vector
 * is a masked load). A tap's x loads take the mask msk[mo[t] + q/VL]: the
 * lanes whose column plus the tap's column shift lies in [0, w) and whose
 * position is below nq. So no junk positions are summed. k >= WMKT: the
 * last, partial channel block reads the last WMKT rows of dy (never past
 * the tensor) and keeps only the channels the block before did not. Sum
 * order and reduction as the WKT kernel. */
TGT static void CONVD_FN(const float *x, int64_t xs, int64_t ps,
                         const float *dy, int64_t dys, int64_t ldd,
                         int64_t nimg, int64_t c, int64_t k, const int64_t *off,
                         const __mmask16 *msk, const int64_t *mo, int64_t nrs,
                         int64_t nq, const int64_t *pidx, int64_t prs,
                         float *part) {
  int64_t nkb = (k + WMKT - 1) / WMKT, ngrp = (nrs + WMNO - 1) / WMNO;
  int64_t nqf = nq / VL * VL, nfv = nq / VL;
  __mmask16 tm = (__mmask16)((1u << (nq - nqf)) - 1);
  /* A group whose taps share one column shift (the caller's order makes
   * the 3x3 groups so) has one mask row; over the full vectors it often
   * repeats every vector (w divides VL) or every other one (w = 2*VL).
   * Such a group keeps its masks in registers: per[g] = 1 or 2 (else 0,
   * a mask load per tap and vector). Same loads and sums either way. */
  int per[CONVD_MAX_RS / WMNO + 1];
  for (int64_t g = 0; g < ngrp; g++) {
    const __mmask16 *m = msk + mo[g * WMNO];
    int same = 1, p1 = 1, p2 = nfv % 2 == 0;
    for (int o = 1; o < WMNO; o++)
      same = same && (g * WMNO + o >= nrs || mo[g * WMNO + o] == mo[g * WMNO]);
    for (int64_t v = 1; v < nfv; v++)
      p1 = p1 && m[v] == m[0], p2 = p2 && m[v] == m[v & 1];
    per[g] = !same ? 0 : p1 ? 1 : p2 ? 2 : 0;
  }
  for (int64_t kb = 0; kb < nkb; kb++) {
    int64_t r0 = kb * WMKT + WMKT <= k ? kb * WMKT : k - WMKT;
    for (int64_t ci = 0; ci < c; ci++) {
      for (int64_t g = 0; g < ngrp; g++) {
        const int64_t *og = off + g * WMNO;
        const __mmask16 *mg[WMNO];
#pragma GCC unroll 4
        for (int o = 0; o < WMNO; o++)
          mg[o] = msk + mo[g * WMNO + o];
        vf acc[WMKT][WMNO];
#pragma GCC unroll 8
        for (int j = 0; j < WMKT; j++)
#pragma GCC unroll 4
          for (int o = 0; o < WMNO; o++)
            acc[j][o] = V_ZERO();
        __mmask16 ka = mg[0][0], kz = mg[0][per[g] == 2];
        for (int64_t i = 0; i < nimg; i++) {
          const float *d = dy + i * dys + r0 * ldd;
          const float *xb = x + i * xs + ci * ps;
          int64_t q = 0;
          if (per[g])
            for (; q + 2 * VL <= nqf; q += 2 * VL) {
              WGM_STEP(q, ka, V_LOAD(d + j * ldd + q));
              WGM_STEP(q + VL, kz, V_LOAD(d + j * ldd + q + VL));
            }
          for (; q < nqf; q += VL)
            WGM_STEP(q, mg[o][q / VL], V_LOAD(d + j * ldd + q));
          if (q < nq)
            WGM_STEP(q, mg[o][q / VL],
                     _mm512_maskz_loadu_ps(tm, d + j * ldd + q));
        }
        enum { NA = WMKT * WMNO, NG = (NA + VL - 1) / VL };
        vf fl[NG * VL];
        float s[NG * VL];
#pragma GCC unroll 8
        for (int j = 0; j < WMKT; j++)
#pragma GCC unroll 4
          for (int o = 0; o < WMNO; o++)
            fl[j * WMNO + o] = acc[j][o];
        V_TILE_SUMS(fl, NA, s);
#pragma GCC unroll 8
        for (int j = 0; j < WMKT; j++) {
          int64_t kk = r0 + j;
#pragma GCC unroll 4
          for (int o = 0; o < WMNO; o++) {
            int64_t t = g * WMNO + o;
            int m = j * WMNO + o;
            if (kk >= kb * WMKT && t < nrs)
              part[(kk * c + ci) * prs + pidx[t]] +=
                  s[m / VL * VL + V_LANE(m % VL)];
          }
        }
      }
    }
  }
}
#undef WGM_STEP
#undef WMKT
#undef WMNO
#endif /* WMKT */

#undef CONVD_FN

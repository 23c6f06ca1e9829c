/*
 * conv2d_direct_kern.h - kernel bodies for conv2d_direct.c, included once
 * per instruction set and tile shape with these macros defined:
 *   TGT target attribute, vf vector type, VL lanes, V_LOAD, V_STORE, V_ADD,
 *   V_FMA(a,b,c) = a*b+c, V_BC broadcast, V_ZERO, V_HSUM, V_HSUMS, V_LANE;
 *   CONVD_FN the function's name, and either FKT, FNV (a fwd kernel with
 *   an FKT channels x FNV vectors tile) or WKT, WNO (a wgrad kernel with a
 *   WKT channels x WNO taps tile).
 * The tile macros and CONVD_FN are undefined at the end. No include guard:
 * meant to be included several times.
 */

#ifdef FKT
TGT static void CONVD_FN(const float *in, int64_t cin, int64_t ps,
                         const int64_t *off, int64_t nrs, const float *wp,
                         int64_t nkb, float *out, int64_t ldo, int64_t nq,
                         int add) {
  int64_t cb = CONVD_CHAIN / nrs > 1 ? CONVD_CHAIN / nrs : 1;
  for (int64_t kb = 0; kb < nkb; kb++) {
    const float *wb = wp + kb * cin * nrs * FKT;
    float *ob = out + kb * FKT * ldo;
    int64_t q = 0;
    for (; q + FNV * VL <= nq; q += FNV * VL) {
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
        const float *w = wb + c0 * nrs * FKT;
        for (int64_t ci = c0; ci < c1; ci++) {
          const float *xb = in + ci * ps + q;
          for (int64_t t = 0; t < nrs; t++, w += FKT) {
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
      for (int64_t c0 = 0; c0 < cin; c0 += cb) {
        int64_t c1 = c0 + cb < cin ? c0 + cb : cin;
        vf acc[FKT];
#pragma GCC unroll 8
        for (int j = 0; j < FKT; j++)
          acc[j] = V_ZERO();
        const float *w = wb + c0 * nrs * FKT;
        for (int64_t ci = c0; ci < c1; ci++) {
          const float *xb = in + ci * ps + q;
          for (int64_t t = 0; t < nrs; t++, w += FKT) {
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
        /* the WKT*WNO sums, VL vectors at a time through one
         * transpose-and-add tree (fixed order): V_HSUMS puts the sum of
         * vector m of a group in lane V_LANE(m) */
        enum { NA = WKT * WNO, NG = (NA + VL - 1) / VL };
        vf fl[NG * VL];
        float s[NG * VL];
#pragma GCC unroll 8
        for (int j = 0; j < WKT; j++)
#pragma GCC unroll 4
          for (int o = 0; o < WNO; o++)
            fl[j * WNO + o] = acc[j][o];
#pragma GCC unroll 16
        for (int m = NA; m < NG * VL; m++)
          fl[m] = V_ZERO();
#pragma GCC unroll 4
        for (int q = 0; q < NA / VL; q++)
          V_HSUMS(fl + q * VL, s + q * VL);
        /* a short last group: one hsum per vector is cheaper than a
         * tree of mostly zeros (s holds it at the tree's lanes) */
        if (NA % VL > VL / 4) {
          V_HSUMS(fl + NA / VL * VL, s + NA / VL * VL);
        } else {
#pragma GCC unroll 16
          for (int m = NA / VL * VL; m < NA; m++)
            s[m / VL * VL + V_LANE(m % VL)] = V_HSUM(fl[m]);
        }
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

#undef CONVD_FN

/*
 * batchnorm_kern.h - batch norm's vector segment kernels, one body for
 * every width: batchnorm_kern.c includes it once per level after the
 * cpu_simd.h width set, with BNK(name) naming that level's copy. The
 * kernels do the lanes and operations of the portable loops (no FMA): a
 * segment's element i goes to partial sum i % BN_LANES, as VDL-double
 * vectors BN_LANES / VDL at a time; the tail continues from lane 0. The
 * loops over those vectors are unrolled: their accumulators must stay in
 * registers (GCC -O2 keeps the AVX-512 masked one in memory otherwise).
 * No include guard: meant to be included once per width.
 */

#define BNK_ND (BN_LANES / VDL)

/* l1 += p - shift, l2 += (p - shift)^2 over p[0, len), len >= 16 */
TGT static void BNK(stats_seg)(const float *p, int64_t len, double shift,
                               double *l1, double *l2) {
  vd s = VD_BC(shift);
  vd a[BNK_ND], b[BNK_ND];
#pragma GCC unroll 4
  for (int k = 0; k < BNK_ND; k++)
    a[k] = VD_LOAD(l1 + VDL * k), b[k] = VD_LOAD(l2 + VDL * k);
  int64_t i = 0;
  for (; i + BN_LANES <= len; i += BN_LANES)
#pragma GCC unroll 4
    for (int k = 0; k < BNK_ND; k++) {
      vd d = VD_SUB(VD_CVT(VH_LOAD(p + i + VDL * k)), s);
      a[k] = VD_ADD(a[k], d);
      b[k] = VD_ADD(b[k], VD_MUL(d, d));
    }
#pragma GCC unroll 4
  for (int k = 0; k < BNK_ND; k++)
    VD_STORE(l1 + VDL * k, a[k]), VD_STORE(l2 + VDL * k, b[k]);
  for (int l = 0; i < len; i++, l++) {
    double d = p[i] - shift;
    l1[l] += d;
    l2[l] += d * d;
  }
}

/* l1 += dy, l2 += dy * (x - mu), len >= 16 */
TGT static void BNK(grad_seg)(const float *dy, const float *x, int64_t len,
                              double mu, double *l1, double *l2) {
  vd m = VD_BC(mu);
  vd a[BNK_ND], b[BNK_ND];
#pragma GCC unroll 4
  for (int k = 0; k < BNK_ND; k++)
    a[k] = VD_LOAD(l1 + VDL * k), b[k] = VD_LOAD(l2 + VDL * k);
  int64_t i = 0;
  for (; i + BN_LANES <= len; i += BN_LANES)
#pragma GCC unroll 4
    for (int k = 0; k < BNK_ND; k++) {
      vd g = VD_CVT(VH_LOAD(dy + i + VDL * k));
      vd xc = VD_SUB(VD_CVT(VH_LOAD(x + i + VDL * k)), m);
      a[k] = VD_ADD(a[k], g);
      b[k] = VD_ADD(b[k], VD_MUL(g, xc));
    }
#pragma GCC unroll 4
  for (int k = 0; k < BNK_ND; k++)
    VD_STORE(l1 + VDL * k, a[k]), VD_STORE(l2 + VDL * k, b[k]);
  for (int l = 0; i < len; i++, l++) {
    l1[l] += dy[i];
    l2[l] += dy[i] * (x[i] - mu);
  }
}

/* y = (x - mu)*al + sh; x may be y. Scalar tail: masked stores on every
 * plane cost more here. */
TGT static void BNK(apply)(const float *x, float *y, int64_t n, float mu,
                           float al, float sh) {
  vf vm_ = V_BC(mu), va = V_BC(al), vs = V_BC(sh);
  int64_t e = 0;
  for (; e + VL <= n; e += VL) {
    vf v = V_SUB(V_LOAD(x + e), vm_);
    V_STORE(y + e, V_ADD(V_MUL(v, va), vs));
  }
  for (; e < n; e++)
    y[e] = (x[e] - mu) * al + sh;
}

/* dx (+)= (dy - gm - (x - mu)*k) * sc; dy may be dx */
TGT static void BNK(dx)(const float *x, const float *dy, float *dx, int64_t n,
                        float mu, float k, float gm, float sc, int acc) {
  vf vm_ = V_BC(mu), vk = V_BC(k), vg = V_BC(gm), vs = V_BC(sc);
  int64_t e = 0;
  for (; e + VL <= n; e += VL) {
    vf xc = V_MUL(V_SUB(V_LOAD(x + e), vm_), vk);
    vf t = V_SUB(V_SUB(V_LOAD(dy + e), vg), xc);
    t = V_MUL(t, vs);
    if (acc)
      t = V_ADD(V_LOAD(dx + e), t);
    V_STORE(dx + e, t);
  }
  if (acc)
    for (; e < n; e++)
      dx[e] += (dy[e] - gm - (x[e] - mu) * k) * sc;
  else
    for (; e < n; e++)
      dx[e] = (dy[e] - gm - (x[e] - mu) * k) * sc;
}

/* ---- fused epilogue kernels: the same operations as apply / grad_seg /
 * dx above plus relu_fwd's V_RELU (NaN kept, +0 for -0), add's sum, and
 * relu_bwd's mask (y > 0, false for NaN). */

/* y = relu((x - mu)*al + sh [+ z]); mask bits (y > 0) into mk if set */
TGT static void BNK(apply_relu)(const float *x, const float *z, float *y,
                                uint8_t *mk, int64_t n, float mu, float al,
                                float sh) {
  vf vm_ = V_BC(mu), va = V_BC(al), vs = V_BC(sh);
  int64_t e = 0;
  for (; e + VL <= n; e += VL) {
    vf v = V_SUB(V_LOAD(x + e), vm_);
    v = V_ADD(V_MUL(v, va), vs);
    if (z)
      v = V_ADD(v, V_LOAD(z + e));
    V_STORE(y + e, V_RELU(v));
    if (mk)
      VM_STORE_BITS(mk + (e >> 3), VM_GT0(v));
  }
  apply_relu_scalar(x, z, y, mk, e, n, mu, al, sh);
}

/* grad_seg with dy masked by ry > 0 (or bits mb, mb+1, ... of mask plane
 * mp); the masked dy into gout if set; len >= 16 */
TGT static void BNK(grad_seg_relu)(const float *dy, const float *ry,
                                   const uint8_t *mp, int64_t mb,
                                   const float *x, int64_t len, double mu,
                                   double *l1, double *l2, float *gout) {
  vd m = VD_BC(mu);
  vd a[BNK_ND], b[BNK_ND];
#pragma GCC unroll 4
  for (int k = 0; k < BNK_ND; k++)
    a[k] = VD_LOAD(l1 + VDL * k), b[k] = VD_LOAD(l2 + VDL * k);
  int64_t i = 0;
  for (; i + BN_LANES <= len; i += BN_LANES) {
    vhm mk[BNK_ND];
    vh gf[BNK_ND];
    if (mp) {
      unsigned bits = mask16(mp, mb + i);
#pragma GCC unroll 4
      for (int k = 0; k < BNK_ND; k++)
        mk[k] = VHM_BITS(bits >> VDL * k);
    } else {
#pragma GCC unroll 4
      for (int k = 0; k < BNK_ND; k++)
        mk[k] = VHM_GT0(VH_LOAD(ry + i + VDL * k));
    }
#pragma GCC unroll 4
    for (int k = 0; k < BNK_ND; k++)
      gf[k] = VH_MASKZ(mk[k], VH_LOAD(dy + i + VDL * k));
    if (gout)
#pragma GCC unroll 4
      for (int k = 0; k < BNK_ND; k++)
        VH_STORE(gout + i + VDL * k, gf[k]);
#pragma GCC unroll 4
    for (int k = 0; k < BNK_ND; k++) {
      vd g = VD_CVT(gf[k]);
      vd xc = VD_SUB(VD_CVT(VH_LOAD(x + i + VDL * k)), m);
      a[k] = VD_ADD(a[k], g);
      b[k] = VD_ADD(b[k], VD_MUL(g, xc));
    }
  }
#pragma GCC unroll 4
  for (int k = 0; k < BNK_ND; k++)
    VD_STORE(l1 + VDL * k, a[k]), VD_STORE(l2 + VDL * k, b[k]);
  grad_relu_scalar(dy, ry, mp, mb, x, i, len, mu, l1, l2, gout);
}

/* g = (ry > 0) ? dy : 0 (or mask plane mp's bits); dx (+)= (g - gm -
 * (x - mu)*k) * sc; dres (+)= g when dres; dy may be dx */
TGT static void BNK(dx_relu)(const float *x, const float *dy, const float *ry,
                             const uint8_t *mp, float *dx, float *dres,
                             int64_t n, float mu, float k, float gm, float sc,
                             int acc, int accr) {
  vf vm_ = V_BC(mu), vk = V_BC(k), vg = V_BC(gm), vs = V_BC(sc);
  int64_t e = 0;
  for (; e + VL <= n; e += VL) {
    vm mk = mp ? VM_BITS(mp, e) : VM_GT0(V_LOAD(ry + e));
    vf g = V_MASKZ(mk, V_LOAD(dy + e));
    if (dres)
      V_STORE(dres + e, accr ? V_ADD(V_LOAD(dres + e), g) : g);
    vf xc = V_MUL(V_SUB(V_LOAD(x + e), vm_), vk);
    vf t = V_MUL(V_SUB(V_SUB(g, vg), xc), vs);
    if (acc)
      t = V_ADD(V_LOAD(dx + e), t);
    V_STORE(dx + e, t);
  }
  dx_relu_scalar(x, dy, ry, mp, dx, dres, e, n, mu, k, gm, sc, acc, accr);
}

#undef BNK_ND
#undef BNK

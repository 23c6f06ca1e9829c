/*
 * gemm_kern.h - the register-tile kernels of gemm.c's packed GEMM, included
 * once per instruction set with these macros defined:
 *   KF(name) the functions' names, TGT target attribute, vf vector type,
 *   VL lanes, GK_MR rows of a tile (a tile is GK_MR x 2*VL), GK_ROWS(X)
 *   expanding X(0) .. X(GK_MR-1), V_LOAD, V_STORE, V_MUL, V_FMA(a,b,c) =
 *   a*b+c, V_BC broadcast, V_ZERO, V_LOADN(p, n) / V_STOREN(p, v, n) the
 *   first n lanes (0 < n < VL; loads zero the others).
 * Every element of C is the same sequence of operations whatever the tile
 * shape: acc = 0, acc = fma(a_p, b_p, acc) for p in order, then
 * c = fma(beta, c, alpha * acc) (c = alpha * acc when beta == 0, C unread).
 * So both instruction sets give the same bits. The macros are undefined at
 * the end. No include guard: meant to be included several times.
 */

#define GK_DECL(r) vf c##r##0 = V_ZERO(), c##r##1 = V_ZERO();
#define GK_STEP(r)                                                             \
  {                                                                            \
    vf ar_ = V_BC(a[(r)*ra]);                                                  \
    c##r##0 = V_FMA(ar_, b0, c##r##0);                                         \
    c##r##1 = V_FMA(ar_, b1, c##r##1);                                         \
  }
#define GK_STORE(r)                                                            \
  {                                                                            \
    float *cr_ = c + (r)*ldc;                                                  \
    vf t0_ = V_MUL(c##r##0, va), t1_ = V_MUL(c##r##1, va);                     \
    if (beta != 0.f) {                                                         \
      t0_ = V_FMA(vb, V_LOAD(cr_), t0_);                                       \
      t1_ = V_FMA(vb, V_LOAD(cr_ + VL), t1_);                                  \
    }                                                                          \
    V_STORE(cr_, t0_);                                                         \
    V_STORE(cr_ + VL, t1_);                                                    \
  }
#define GK_SPILL(r)                                                            \
  {                                                                            \
    V_STORE(tile + (r)*2 * VL, c##r##0);                                       \
    V_STORE(tile + (r)*2 * VL + VL, c##r##1);                                  \
  }

/* One GK_MR x 2*VL tile of C over kc steps. A's element (r, p) is at
 * a[r * ra + p * pa] (ra, pa: the packed layout, constants after inlining),
 * B's row p at b + p * 2*VL. Only the first mr rows and nr columns of the
 * tile are stored. */
static inline __attribute__((always_inline)) TGT void
KF(tile)(int64_t kc, const float *restrict a, const int ra, const int pa,
         const float *restrict b, float *restrict c, int64_t ldc, int mr,
         int nr, float alpha, float beta) {
  GK_ROWS(GK_DECL)
  for (int64_t p = 0; p < kc; p++) {
    vf b0 = V_LOAD(b), b1 = V_LOAD(b + VL);
    GK_ROWS(GK_STEP)
    a += pa;
    b += 2 * VL;
  }
  if (mr == GK_MR && nr == 2 * VL) {
    vf va = V_BC(alpha), vb = V_BC(beta);
    GK_ROWS(GK_STORE)
    return;
  }
  float tile[GK_MR * 2 * VL] __attribute__((aligned(64)));
  GK_ROWS(GK_SPILL)
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) {
      float t = alpha * tile[r * 2 * VL + j];
      if (beta != 0.f)
        t = fmaf(beta, c[r * ldc + j], t);
      c[r * ldc + j] = t;
    }
}

/* A packed by rows (row r of the panel at a + r * GEMM_KC). */
TGT static void KF(kern_rows)(int64_t kc, const float *a, const float *b,
                              float *c, int64_t ldc, int mr, int nr,
                              float alpha, float beta) {
  KF(tile)(kc, a, GEMM_KC, 1, b, c, ldc, mr, nr, alpha, beta);
}

/* A packed by columns (step p of the panel at a + p * GK_MR). */
TGT static void KF(kern_cols)(int64_t kc, const float *a, const float *b,
                              float *c, int64_t ldc, int mr, int nr,
                              float alpha, float beta) {
  KF(tile)(kc, a, 1, GK_MR, b, c, ldc, mr, nr, alpha, beta);
}

/* dst[0, len) = src[0, n) then zeros, n <= len; reads and writes nothing
 * past either. */
static inline __attribute__((always_inline)) TGT void
KF(copy_pad)(float *restrict dst, const float *restrict src, int64_t n,
             int64_t len) {
  int64_t i = 0;
  for (; i + VL <= n; i += VL)
    V_STORE(dst + i, V_LOAD(src + i));
  for (; i + VL <= len; i += VL)
    V_STORE(dst + i, i < n ? V_LOADN(src + i, n - i) : V_ZERO());
  if (i < len)
    V_STOREN(dst + i, i < n ? V_LOADN(src + i, n - i) : V_ZERO(), len - i);
}

/* Rows [0, mc) x steps [0, kc) of op(A) (A at its first element) into
 * GK_MR-row panels, panel q at dst + q * GEMM_KC, rows past mc zero.
 * op(A) = A: by rows (row r at + r * GEMM_KC); op(A) = A^T: by columns
 * (step p at + p * GK_MR). Both are copies of contiguous runs. */
TGT static void KF(pack_a)(const float *A, int64_t lda, int trans_a, int64_t mc,
                           int64_t kc, float *restrict dst) {
  for (int64_t q = 0; q < mc; q += GK_MR) {
    float *d = dst + q * GEMM_KC;
    int64_t rows = mc - q < GK_MR ? mc - q : GK_MR;
    if (!trans_a) {
      for (int64_t r = 0; r < GK_MR; r++)
        KF(copy_pad)(d + r * GEMM_KC, A + (q + r) * lda, r < rows ? kc : 0, kc);
    } else if (rows == GK_MR) {
      for (int64_t p = 0; p < kc; p++)
        KF(copy_pad)(d + p * GK_MR, A + p * lda + q, GK_MR, GK_MR);
    } else {
      for (int64_t p = 0; p < kc; p++)
        KF(copy_pad)(d + p * GK_MR, A + p * lda + q, rows, GK_MR);
    }
  }
}

/* Steps [0, kc) x columns [0, nc) of op(B) (B at its first element) into
 * 2*VL-column panels (step p of panel t at dst + t * kc + p * 2*VL),
 * columns past nc zero. op(B) = B^T is transposed 8 x 8 at a time. */
TGT static void KF(pack_b)(const float *B, int64_t ldb, int trans_b, int64_t nc,
                           int64_t kc, float *restrict dst) {
  for (int64_t t = 0; t < nc; t += 2 * VL) {
    float *d = dst + t * kc;
    int64_t cols = nc - t < 2 * VL ? nc - t : 2 * VL;
    if (!trans_b) {
      const float *s = B + t;
      if (cols == 2 * VL)
        for (int64_t p = 0; p < kc; p++) {
          V_STORE(d + p * 2 * VL, V_LOAD(s + p * ldb));
          V_STORE(d + p * 2 * VL + VL, V_LOAD(s + p * ldb + VL));
        }
      else
        for (int64_t p = 0; p < kc; p++)
          KF(copy_pad)(d + p * 2 * VL, s + p * ldb, cols, 2 * VL);
      continue;
    }
    const float *s = B + t * ldb; /* column j of op(B) at s + j * ldb */
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      int64_t p = 0;
      for (; p + 8 <= kc; p += 8)
        gemm_transpose8(s + j * ldb + p, ldb, d + p * 2 * VL + j, 2 * VL);
      for (; p < kc; p++)
        for (int64_t jj = j; jj < j + 8; jj++)
          d[p * 2 * VL + jj] = s[jj * ldb + p];
    }
    for (int64_t p = 0; p < kc; p++) {
      for (int64_t jj = j; jj < cols; jj++)
        d[p * 2 * VL + jj] = s[jj * ldb + p];
      for (int64_t jj = cols; jj < 2 * VL; jj++)
        d[p * 2 * VL + jj] = 0.f;
    }
  }
}

#undef GK_DECL
#undef GK_STEP
#undef GK_STORE
#undef GK_SPILL
#undef KF
#undef TGT
#undef vf
#undef VL
#undef GK_MR
#undef GK_ROWS
#undef V_LOAD
#undef V_STORE
#undef V_MUL
#undef V_FMA
#undef V_BC
#undef V_ZERO
#undef V_LOADN
#undef V_STOREN

/*
 * conv2d_winograd.c - Winograd F(2x2, 3x3) convolution for the CPU
 * backend's 3x3, stride 1, pad 1, dilation 1 layers (Lavin & Gray, "Fast
 * Algorithms for Convolutional Neural Networks", CVPR 2016): each 2x2
 * block of outputs of each channel pair costs 16 multiplies instead of 36.
 *
 *   U = G g G^T   per (output, input) channel pair: 16 matrices of
 *                 cout x cin (alpha = one of the 4x4 transformed points)
 *   V = B^T d B   per 4x4 input tile (stride 2) and input channel
 *   M = U V       per alpha: a cout x cin by cin x tiles product (FMA
 *                 register tiles, kernel bodies in conv2d_winograd_kern.h)
 *   Y = A^T M A   per tile and output channel: the 2x2 outputs
 *
 * Backward data of such a layer is the same convolution of dy with the
 * weights flipped in both taps and transposed in (k, c), so it runs here
 * too (adding into dx when accumulate).
 *
 * Weight gradient (the transpose of the forward's chain):
 *   V  = B^T x B  per input tile and channel, turned to (tile, channel)
 *   M  = A dY A^T per 2x2 block of dy (zeros past the image) and channel
 *   dU = M V^T    per alpha: cout x tiles by tiles x cin, one FMA chain
 *                 per element over the tiles in image/tile order
 *   dW = G^T dU G per channel pair (double, rounded once)
 * Images are summed in the direct path's fixed chunks (CONVD_CHUNKS, cut
 * by the batch size only), each into its own partial dU in the workspace;
 * the partials are added in chunk order, then transformed. So neither the
 * thread count nor the workspace size changes a bit.
 *
 * Work: images in groups of G (a function of the shapes), one task per
 * group; a task pads its images into zero-bordered planes, then runs
 * blocks of tile rows (about WINO_BLOCK_FLOATS floats of V, so V and M stay
 * in L2): input transform, the 16 products, output transform. Every output
 * is one FMA chain over the input channels in channel order, so neither
 * the blocking nor the thread count changes a bit; the bits differ from
 * the direct kernels' (docs/backends.md). Error against a float64
 * reference: see tests/test_cpu_conv2d.c.
 *
 * Workspace: U (16*cin*cout floats; weight gradient: the chunks' partial
 * dU, 16*cout*cin floats each), then one buffer per pool thread
 * (planes of G images, V and M of one block), indexed by the running
 * thread (tc__cpu_task_thread); a workspace with room for fewer buffers
 * (sized for fewer threads) runs that many ranges of image groups, and
 * one without room for one buffer runs the direct path. So a workspace
 * from any thread count's query gives the same bits.
 *
 * Used (CPU_WINO_AUTO) where measured faster than the direct kernels:
 * see wino_auto. TINYCNN_CPU_WINOGRAD=0 turns it off, =1 forces it for
 * every shape it takes (tests); read once.
 */
#include <stdlib.h>
#include <string.h>

#include "conv2d_geom.h"
#include "conv2d_winograd.h"
#if CPU_X86
#include <immintrin.h>
#endif

/* Floats of V (and of M) per block of tile rows: 32K floats = 128 KiB
 * each, so U's alpha slice, V and M of a block stay in L2. */
#define WINO_BLOCK_FLOATS ((int64_t)32 * 1024)
/* Limits: channels (U is 16*cin*cout floats), image extent. */
#define WINO_MAX_CH 2048
#define WINO_MAX_HW 1024
/* Weight gradient: at most this many channels either side, which bounds
 * its partials (CONVD_CHUNKS x 16*cout*cin floats: 16/9 of the direct
 * path's) to 256 MiB. */
#define WINO_WG_MAX_CH 512

#if CPU_X86
/* ---- AVX2 + FMA ---- */
#define WINO_AVX2 __attribute__((target("avx2,fma")))
WINO_AVX2 static inline void wino_deint256(__m256 a, __m256 b, __m256 *e,
                                           __m256 *o) {
  __m256 t0 = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  __m256 t1 = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t0), 0xD8));
  *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t1), 0xD8));
}

WINO_AVX2 static inline void wino_inter256(__m256 e, __m256 o, __m256 *lo,
                                           __m256 *hi) {
  __m256 u0 = _mm256_unpacklo_ps(e, o), u1 = _mm256_unpackhi_ps(e, o);
  *lo = _mm256_permute2f128_ps(u0, u1, 0x20);
  *hi = _mm256_permute2f128_ps(u0, u1, 0x31);
}

WINO_AVX2 static inline __m256i wino_mask256(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define TGT WINO_AVX2
#define vf __m256
#define VL 8
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_BC(s) _mm256_set1_ps(s)
#define V_ZERO() _mm256_setzero_ps()
#define V_DEINT(a, b, e, o) wino_deint256(a, b, &(e), &(o))
#define V_INTER(e, o, lo, hi) wino_inter256(e, o, &(lo), &(hi))
#define V_LOADN(p, n) _mm256_maskload_ps(p, wino_mask256(n))
#define V_STOREN(p, v, n) _mm256_maskstore_ps(p, wino_mask256(n), v)
#define WKR 4
#define WINO_NAME(x) x##_avx2
#include "conv2d_winograd_kern.h"

/* ---- AVX-512F ---- */
#define CPU_AVX512W __attribute__((target("avx512f,avx2,fma")))

CPU_AVX512W static inline void wino_deint512(__m512 a, __m512 b, __m512 *e,
                                             __m512 *o) {
  __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                 26, 28, 30);
  __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25,
                                 27, 29, 31);
  *e = _mm512_permutex2var_ps(a, ie, b);
  *o = _mm512_permutex2var_ps(a, io, b);
}

CPU_AVX512W static inline void wino_inter512(__m512 e, __m512 o, __m512 *lo,
                                             __m512 *hi) {
  __m512i il =
      _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29,
                                 14, 30, 15, 31);
  *lo = _mm512_permutex2var_ps(e, il, o);
  *hi = _mm512_permutex2var_ps(e, ih, o);
}

#define TGT CPU_AVX512W
#define vf __m512
#define VL 16
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_BC(s) _mm512_set1_ps(s)
#define V_ZERO() _mm512_setzero_ps()
#define V_DEINT(a, b, e, o) wino_deint512(a, b, &(e), &(o))
#define V_INTER(e, o, lo, hi) wino_inter512(e, o, &(lo), &(hi))
#define V_LOADN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), p)
#define V_STOREN(p, v, n)                                                      \
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), v)
#define WKR 8
#define WINO_NAME(x) x##_avx512
#include "conv2d_winograd_kern.h"
#endif /* CPU_X86 */

/* One instruction set's kernels. */
typedef struct wino_kernels {
  int64_t vl, kr;
  void (*rows)(const float *src, int64_t h, int64_t w, float *dst, int64_t wp);
  void (*in_row)(const float *row0, int64_t wp, int64_t tw, float *v,
                 int64_t as);
  void (*gemm)(const float *U, const float *V, float *M, int64_t cin,
               int64_t cout, int64_t ts, int64_t nt);
  void (*out_row)(const float *m, int64_t as, int64_t tw, int64_t ow, float *y0,
                  float *y1, float bias, int acc);
  void (*dy_row)(const float *row0, int64_t wp, int64_t tw, float *m,
                 int64_t as);
  void (*wgemm)(const float *M, const float *Vt, float *dU, int64_t cout,
                int64_t cp, int64_t ts, int64_t nt);
} wino_kernels;

#if CPU_X86
static const wino_kernels wino_avx2 = {8,
                                       4,
                                       wino_rows_avx2,
                                       wino_in_row_avx2,
                                       wino_gemm_avx2,
                                       wino_out_row_avx2,
                                       wino_dy_row_avx2,
                                       wino_wgemm_avx2};
static const wino_kernels wino_avx512 = {16,
                                         8,
                                         wino_rows_avx512,
                                         wino_in_row_avx512,
                                         wino_gemm_avx512,
                                         wino_out_row_avx512,
                                         wino_dy_row_avx512,
                                         wino_wgemm_avx512};

/* Vt[t*cp + c] = V[c*ts + t] for c < cin, t < nt (both multiples of 8):
 * 8x8 blocks through registers (AVX2; the AVX-512 path uses it too). */
WINO_AVX2 static void wino_transpose(const float *V, int64_t ts, int64_t cin,
                                     int64_t nt, float *Vt, int64_t cp) {
  for (int64_t c = 0; c < cin; c += 8)
    for (int64_t t = 0; t < nt; t += 8) {
      const float *s = V + c * ts + t;
      __m256 r[8], u[8], q[8];
      for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(s + i * ts);
      for (int i = 0; i < 8; i += 2) {
        u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        q[i] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        q[i + 1] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        q[i + 2] =
            _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        q[i + 3] =
            _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      float *d = Vt + t * cp + c;
      for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(d + i * cp,
                         _mm256_permute2f128_ps(q[i], q[i + 4], 0x20));
        _mm256_storeu_ps(d + (i + 4) * cp,
                         _mm256_permute2f128_ps(q[i], q[i + 4], 0x31));
      }
    }
}
#endif

static atomic_int wino_mode = -1;

void tc__cpu_wino_set_mode(int mode) {
  atomic_store_explicit(&wino_mode, mode, memory_order_relaxed);
}

static int wino_get_mode(void) {
  int v = atomic_load_explicit(&wino_mode, memory_order_relaxed);
  if (v >= 0)
    return v;
  const char *env = getenv("TINYCNN_CPU_WINOGRAD");
  v = CPU_WINO_AUTO;
  if (env && !strcmp(env, "0"))
    v = CPU_WINO_OFF;
  else if (env && !strcmp(env, "1"))
    v = CPU_WINO_FORCE;
  atomic_store_explicit(&wino_mode, v, memory_order_relaxed);
  return v;
}

/* One run: in (n, cin, h, w) -> out (n, cout, h, w). */
typedef struct wino_plan {
  const wino_kernels *kn;
  int64_t n, cin, cout, h, w;
  int64_t th, tw;     /* tile rows, tiles per row */
  int64_t hp, wp, pl; /* padded plane rows, row length, plane floats */
  int64_t G, nr;      /* images per task, tile rows per block */
  int64_t ts;         /* V / M row stride (tiles, padded) */
  size_t u_bytes, buf_bytes;
  /* run time */
  const float *in, *bias, *U;
  float *out;
  char *bufs;
  int acc;
  int per_thread; /* a buffer per pool thread: a task per image group */
  int64_t ngroups, slots;
  /* weight gradient */
  const float *dy;
  float *dw;
  int64_t chunks, cp, du_floats;
} wino_plan;

static int64_t rup(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

static size_t r64(size_t b) {
  return (b + 63) & ~(size_t)63;
}

/* Whether the measured shapes take the Winograd weight gradient
 * (CPU_WINO_AUTO). */
static int wino_wgrad_auto(int64_t c, int64_t k, int64_t h, int64_t w) {
  (void)h, (void)w;
  return c >= 16 && k >= 16;
}

/* Whether the measured shapes take Winograd (CPU_WINO_AUTO). */
static int wino_auto(int isa, int64_t c, int64_t k, int64_t h, int64_t w) {
  (void)h, (void)w;
  return isa == CPU_ISA_AVX2 && c >= 16 && k >= 16;
}

/* The kernels for a (3x3, stride 1, pad 1, dilation 1, channels multiples
 * of 8 and within the limits), or NULL. */
static const wino_kernels *wino_pick(const tc_conv2d_args *a) {
#if CPU_X86
  int mode = wino_get_mode(), isa = tc__cpu_isa();
  if (mode == CPU_WINO_OFF || isa < CPU_ISA_AVX2)
    return NULL;
  if (a->r != 3 || a->s != 3 || a->stride_h != 1 || a->stride_w != 1 ||
      a->pad_h != 1 || a->pad_w != 1 || a->dil_h != 1 || a->dil_w != 1 ||
      a->c % 8 || a->k % 8 || a->c > WINO_MAX_CH || a->k > WINO_MAX_CH ||
      a->h > WINO_MAX_HW || a->w > WINO_MAX_HW)
    return NULL;
  if (mode == CPU_WINO_AUTO && !wino_auto(isa, a->c, a->k, a->h, a->w))
    return NULL;
  return isa >= CPU_ISA_AVX512 ? &wino_avx512 : &wino_avx2;
#else
  (void)a;
  return NULL;
#endif
}

static void wino_geometry(wino_plan *p, const wino_kernels *kn, int64_t n,
                          int64_t cin, int64_t cout, int64_t h, int64_t w,
                          int64_t gcap) {
  memset(p, 0, sizeof *p);
  p->kn = kn;
  p->n = n, p->cin = cin, p->cout = cout, p->h = h, p->w = w;
  p->th = (h + 1) / 2, p->tw = (w + 1) / 2;
  /* tile tc of a VL-wide group reads columns up to 2*rup(tw, VL) + 1 */
  p->hp = 2 * p->th + 2, p->wp = 2 * rup(p->tw, kn->vl) + 2;
  p->pl = p->hp * p->wp;
  int64_t ch = cin > cout ? cin : cout;
  int64_t tiles = WINO_BLOCK_FLOATS / (16 * ch); /* per block */
  if (tiles < p->tw)
    tiles = p->tw;
  int64_t tpi = p->th * p->tw;
  p->G = tiles / tpi < 1 ? 1 : tiles / tpi;
  if (p->G > gcap)
    p->G = gcap < 1 ? 1 : gcap;
  p->nr = tiles / p->tw;
  if (p->nr > p->G * p->th)
    p->nr = p->G * p->th;
  /* a row's last group writes and reads up to VL-1 tiles past it */
  p->ts = rup(p->nr * p->tw, kn->vl) + kn->vl;
  p->u_bytes = r64((size_t)(16 * cin * cout) * 4);
  p->buf_bytes = r64((size_t)(p->G * cin * p->pl) * 4) +
                 r64((size_t)(16 * cin * p->ts) * 4) +
                 r64((size_t)(16 * cout * p->ts) * 4);
}

static size_t wino_need(const wino_plan *p, int64_t threads) {
  return p->u_bytes + (size_t)threads * p->buf_bytes;
}

/* ---- weight gradient ---- */

/* Whether the weight gradient runs here: wino_pick's shapes, and in
 * CPU_WINO_AUTO mode only those measured faster than the direct path. */
static const wino_kernels *wino_wgrad_pick(const tc_conv2d_args *a) {
  const wino_kernels *kn = wino_pick(a);
  if (a->c > WINO_WG_MAX_CH || a->k > WINO_WG_MAX_CH)
    return NULL;
  if (kn && wino_get_mode() == CPU_WINO_AUTO &&
      !wino_wgrad_auto(a->c, a->k, a->h, a->w))
    return NULL;
  return kn;
}

/* The weight gradient's plan: wino_geometry with cin = c, cout = k and at
 * most a chunk's images per group, plus its own buffer parts. */
static void wino_wgrad_geometry(wino_plan *p, const tc_conv2d_args *a,
                                const wino_kernels *kn) {
  int64_t chunks = a->n < CONVD_CHUNKS ? a->n : CONVD_CHUNKS;
  if (chunks < 1)
    chunks = 1;
  wino_geometry(p, kn, a->n, a->c, a->k, a->h, a->w,
                (a->n + chunks - 1) / chunks);
  p->chunks = chunks;
  p->cp = rup(a->c, kn->vl);
  p->du_floats = 16 * a->k * p->cp;
  p->u_bytes = r64((size_t)(chunks * p->du_floats) * 4);
  p->buf_bytes = r64((size_t)(p->G * (a->c + a->k) * p->pl) * 4) +
                 r64((size_t)(16 * a->c * p->ts) * 4) +
                 r64((size_t)(16 * p->ts * p->cp) * 4) +
                 r64((size_t)(16 * a->k * p->ts) * 4);
}

static size_t wino_wgrad_need(const tc_conv2d_args *a, const wino_kernels *kn,
                              int64_t threads) {
  wino_plan p;
  wino_wgrad_geometry(&p, a, kn);
  return wino_need(&p, threads);
}

size_t tc__cpu_wino_workspace(void *ctx, const tc_conv2d_args *a) {
  const wino_kernels *kn = wino_pick(a);
  if (!kn || a->n == 0)
    return 0;
  int64_t threads = tc__cpu_pool_size(((cpu_ctx *)ctx)->pool);
  wino_plan f, b;
  wino_geometry(&f, kn, a->n, a->c, a->k, a->h, a->w, a->n);
  wino_geometry(&b, kn, a->n, a->k, a->c, a->h, a->w, a->n);
  size_t nf = wino_need(&f, threads), nb = wino_need(&b, threads);
  size_t nw = wino_wgrad_pick(a) ? wino_wgrad_need(a, kn, threads) : 0;
  nf = nf > nb ? nf : nb;
  return nf > nw ? nf : nw;
}

/* U = G g G^T of every channel pair, into the GEMM's layout
 * U[((alpha*nkb + kb)*cin + ci)*kr + j] for output channel kb*kr + j; g is
 * w[co][ci] (forward) or, for backward data (flip), w[ci][co] turned by
 * 180 degrees. G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]; computed in
 * double, rounded once. */
static void wino_weights(const wino_plan *p, const float *wt, int flip,
                         float *U) {
  int64_t kr = p->kn->kr, nkb = p->cout / kr;
  static const double Gm[4][3] = {
      {1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  for (int64_t co = 0; co < p->cout; co++)
    for (int64_t ci = 0; ci < p->cin; ci++) {
      double g[3][3], t[4][3];
      const float *src =
          flip ? wt + (ci * p->cout + co) * 9 : wt + (co * p->cin + ci) * 9;
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
          g[i][j] = flip ? src[(2 - i) * 3 + 2 - j] : src[i * 3 + j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
          t[i][j] =
              Gm[i][0] * g[0][j] + Gm[i][1] * g[1][j] + Gm[i][2] * g[2][j];
      float *dst = U + ((co / kr) * p->cin + ci) * kr + co % kr;
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
          double u =
              t[i][0] * Gm[j][0] + t[i][1] * Gm[j][1] + t[i][2] * Gm[j][2];
          dst[(i * 4 + j) * nkb * p->cin * kr] = (float)u;
        }
    }
}

/* Images [i0, i0 + m) into zero-bordered planes (image at row 1, col 1).
 * The borders are zeroed on the thread's first task of the job only: the
 * later ones write the same interiors. */
static void wino_pad(const wino_plan *p, int64_t i0, int64_t m, float *planes,
                     int fresh) {
  if (fresh)
    memset(planes, 0, (size_t)(p->G * p->cin * p->pl) * sizeof(float));
  for (int64_t g = 0; g < m; g++)
    for (int64_t c = 0; c < p->cin; c++)
      p->kn->rows(p->in + ((i0 + g) * p->cin + c) * p->h * p->w, p->h, p->w,
                  planes + (g * p->cin + c) * p->pl + p->wp + 1, p->wp);
}

/* Input transform of tile rows [r0, r1) of the padded planes into V
 * (16 matrices, as_v floats apart, rows of p->ts tiles per channel); each
 * channel's tiles nt .. ntv are zeroed: the GEMMs read whole vectors. */
static void wino_in_block(const wino_plan *p, const float *planes, float *V,
                          int64_t as_v, int64_t r0, int64_t r1, int64_t ntv) {
  int64_t nt = (r1 - r0) * p->tw;
  for (int64_t c = 0; c < p->cin; c++) {
    for (int64_t r = r0; r < r1; r++) {
      int64_t g = r / p->th, tr = r % p->th;
      p->kn->in_row(planes + (g * p->cin + c) * p->pl + 2 * tr * p->wp, p->wp,
                    p->tw, V + c * p->ts + (r - r0) * p->tw, as_v);
    }
    for (int64_t al = 0; al < 16; al++)
      memset(V + al * as_v + c * p->ts + nt, 0,
             (size_t)(ntv - nt) * sizeof(float));
  }
}

/* Image group t (images t*G ..) with buffer buf. */
static void wino_group(const wino_plan *p, int64_t t, char *buf, int fresh) {
  const wino_kernels *kn = p->kn;
  float *planes = (float *)buf;
  float *V = (float *)(buf + r64((size_t)(p->G * p->cin * p->pl) * 4));
  float *M = (float *)((char *)V + r64((size_t)(16 * p->cin * p->ts) * 4));
  int64_t i0 = t * p->G, m = p->n - i0 < p->G ? p->n - i0 : p->G;
  int64_t as_v = p->cin * p->ts, as_m = p->cout * p->ts;
  wino_pad(p, i0, m, planes, fresh);
  for (int64_t r0 = 0; r0 < m * p->th; r0 += p->nr) {
    int64_t r1 = r0 + p->nr < m * p->th ? r0 + p->nr : m * p->th;
    int64_t nt = (r1 - r0) * p->tw, ntv = rup(nt, kn->vl);
    wino_in_block(p, planes, V, as_v, r0, r1, ntv);
    kn->gemm(p->U, V, M, p->cin, p->cout, p->ts, ntv);
    for (int64_t k = 0; k < p->cout; k++) {
      float b = p->bias ? p->bias[k] : 0.f;
      for (int64_t r = r0; r < r1; r++) {
        int64_t g = r / p->th, tr = r % p->th;
        float *y = p->out + ((i0 + g) * p->cout + k) * p->h * p->w;
        float *y0 = y + 2 * tr * p->w;
        float *y1 = 2 * tr + 1 < p->h ? y0 + p->w : NULL;
        kn->out_row(M + k * p->ts + (r - r0) * p->tw, as_m, p->tw, p->w, y0, y1,
                    b, p->acc);
      }
    }
  }
}

/* With a buffer per pool thread, task t is group t and takes the running
 * thread's buffer (a thread that is ahead takes over a slower one's
 * groups, as conv2d.c's tasks do); with fewer buffers (a workspace sized
 * for fewer threads), task t runs a contiguous range of groups with
 * buffer t. Either way each group's outputs are the same bits. */
static void wino_task(void *arg, int64_t t) {
  const wino_plan *p = arg;
  if (p->per_thread) {
    wino_group(p, t, p->bufs + (size_t)tc__cpu_task_thread() * p->buf_bytes,
               tc__cpu_task_first());
    return;
  }
  int64_t g0 = p->ngroups * t / p->slots, g1 = p->ngroups * (t + 1) / p->slots;
  for (int64_t g = g0; g < g1; g++)
    wino_group(p, g, p->bufs + (size_t)t * p->buf_bytes, g == g0);
}

static int wino_run(void *ctx, const tc_conv2d_args *a, int bwd) {
  const wino_kernels *kn = wino_pick(a);
  if (!kn)
    return 0;
  int64_t threads = tc__cpu_pool_size(((cpu_ctx *)ctx)->pool);
  wino_plan p;
  if (bwd)
    wino_geometry(&p, kn, a->n, a->k, a->c, a->h, a->w, a->n);
  else
    wino_geometry(&p, kn, a->n, a->c, a->k, a->h, a->w, a->n);
  /* one buffer is enough (the bits do not depend on how many fit) */
  if (!a->workspace || a->workspace_size < wino_need(&p, 1) ||
      (uintptr_t)a->workspace % sizeof(float) != 0)
    return 0;
  int64_t fit = (int64_t)((a->workspace_size - p.u_bytes) / p.buf_bytes);
  p.ngroups = (p.n + p.G - 1) / p.G;
  p.per_thread = fit >= threads;
  p.slots = fit < threads ? fit : threads;
  if (p.slots > p.ngroups)
    p.slots = p.ngroups;
  float *U = (float *)a->workspace;
  wino_weights(&p, a->wt, bwd, U);
  p.U = U;
  p.in = bwd ? a->dy : a->x;
  p.out = bwd ? a->dx : a->y;
  p.bias = bwd ? NULL : a->bias;
  p.acc = bwd && a->accumulate;
  p.bufs = (char *)a->workspace + p.u_bytes;
  tc__cpu_parallel_for(ctx, p.per_thread ? p.ngroups : p.slots, wino_task, &p);
  return 1;
}

int tc__cpu_wino_fwd(void *ctx, const tc_conv2d_args *a) {
  return wino_run(ctx, a, 0);
}

int tc__cpu_wino_bwd_data(void *ctx, const tc_conv2d_args *a) {
  return wino_run(ctx, a, 1);
}

/* Images [i0, i0 + m) of the chunk into its partial dU (whose FMA chains
 * continue where the previous group's stopped), with buffer buf: x and dy
 * into zero-bordered planes (x at row 1, col 1 as for the forward; dy at
 * row 0, col 0, zeros past it), then blocks of tile rows: V = B^T x B,
 * turned to (tile, channel), M = A dY A^T, dU += M V^T. */
static void wino_wgroup(const wino_plan *p, int64_t i0, int64_t m, char *buf,
                        int fresh, float *dU) {
  const wino_kernels *kn = p->kn;
  size_t xb = r64((size_t)(p->G * (p->cin + p->cout) * p->pl) * 4);
  float *planes = (float *)buf, *dyp = planes + p->G * p->cin * p->pl;
  float *V = (float *)(buf + xb);
  float *Vt = (float *)((char *)V + r64((size_t)(16 * p->cin * p->ts) * 4));
  float *M = (float *)((char *)Vt + r64((size_t)(16 * p->ts * p->cp) * 4));
  int64_t as_v = p->cin * p->ts, as_m = p->cout * p->ts;
  /* Vt's columns cin .. cp (AVX-512 with cin % 16 != 0) are never
   * written: zeros, not whatever (denormals) the workspace held */
  if (fresh) {
    memset(planes, 0, (size_t)(p->G * (p->cin + p->cout) * p->pl) * 4);
    if (p->cp > p->cin)
      memset(Vt, 0, (size_t)(16 * p->ts * p->cp) * 4);
  }
  wino_pad(p, i0, m, planes, 0);
  for (int64_t g = 0; g < m; g++)
    for (int64_t k = 0; k < p->cout; k++)
      kn->rows(p->dy + ((i0 + g) * p->cout + k) * p->h * p->w, p->h, p->w,
               dyp + (g * p->cout + k) * p->pl, p->wp);
  for (int64_t r0 = 0; r0 < m * p->th; r0 += p->nr) {
    int64_t r1 = r0 + p->nr < m * p->th ? r0 + p->nr : m * p->th;
    int64_t nt = (r1 - r0) * p->tw, nt8 = rup(nt, 8);
    wino_in_block(p, planes, V, as_v, r0, r1, nt8);
#if CPU_X86
    for (int64_t al = 0; al < 16; al++)
      wino_transpose(V + al * as_v, p->ts, p->cin, nt8, Vt + al * p->ts * p->cp,
                     p->cp);
#endif
    for (int64_t k = 0; k < p->cout; k++)
      for (int64_t r = r0; r < r1; r++) {
        int64_t g = r / p->th, tr = r % p->th;
        kn->dy_row(dyp + (g * p->cout + k) * p->pl + 2 * tr * p->wp, p->wp,
                   p->tw, M + k * p->ts + (r - r0) * p->tw, as_m);
      }
    kn->wgemm(M, Vt, dU, p->cout, p->cp, p->ts, nt);
  }
}

/* Chunk j (images block_range(n, chunks, j), as the direct path's) into
 * its own partial, images G at a time in order. */
static void wino_wchunk(const wino_plan *p, int64_t j, char *buf, int fresh) {
  float *dU = (float *)p->U + j * p->du_floats;
  int64_t c0 = p->n * j / p->chunks, c1 = p->n * (j + 1) / p->chunks;
  memset(dU, 0, (size_t)p->du_floats * sizeof(float));
  for (int64_t i0 = c0; i0 < c1; i0 += p->G, fresh = 0)
    wino_wgroup(p, i0, c1 - i0 < p->G ? c1 - i0 : p->G, buf, fresh, dU);
}

/* As wino_task, over chunks. */
static void wino_wtask(void *arg, int64_t t) {
  const wino_plan *p = arg;
  if (p->per_thread) {
    wino_wchunk(p, t, p->bufs + (size_t)tc__cpu_task_thread() * p->buf_bytes,
                tc__cpu_task_first());
    return;
  }
  int64_t j0 = p->chunks * t / p->slots, j1 = p->chunks * (t + 1) / p->slots;
  for (int64_t j = j0; j < j1; j++)
    wino_wchunk(p, j, p->bufs + (size_t)t * p->buf_bytes, j == j0);
}

/* Output channel k: the partials summed in chunk order (float, 8 input
 * channels per vector), then dW = G^T dU G in double (G's entries are 0,
 * +-1/2 and 1), rounded once and stored or added into dw. */
#if CPU_X86
WINO_AVX2 static void wino_wcombine(void *arg, int64_t k) {
  const wino_plan *p = arg;
  const __m256d h = _mm256_set1_pd(0.5);
  for (int64_t c = 0; c < p->cin; c += 8) {
    __m256 s[16];
    for (int al = 0; al < 16; al++) {
      const float *e = p->U + (al * p->cout + k) * p->cp + c;
      __m256 v = _mm256_loadu_ps(e);
      for (int64_t j = 1; j < p->chunks; j++)
        v = _mm256_add_ps(v, _mm256_loadu_ps(e + j * p->du_floats));
      s[al] = v;
    }
    float out[9][8];
    for (int half = 0; half < 2; half++) {
      __m256d d[16], t[4][3], o[3][3];
      for (int al = 0; al < 16; al++)
        d[al] = _mm256_cvtps_pd(half ? _mm256_extractf128_ps(s[al], 1)
                                     : _mm256_castps256_ps128(s[al]));
      for (int a = 0; a < 4; a++) {
        __m256d q = _mm256_mul_pd(h, _mm256_add_pd(d[a * 4 + 1], d[a * 4 + 2]));
        t[a][0] = _mm256_add_pd(d[a * 4], q);
        t[a][1] = _mm256_mul_pd(h, _mm256_sub_pd(d[a * 4 + 1], d[a * 4 + 2]));
        t[a][2] = _mm256_add_pd(q, d[a * 4 + 3]);
      }
      for (int j = 0; j < 3; j++) {
        __m256d q = _mm256_mul_pd(h, _mm256_add_pd(t[1][j], t[2][j]));
        o[0][j] = _mm256_add_pd(t[0][j], q);
        o[1][j] = _mm256_mul_pd(h, _mm256_sub_pd(t[1][j], t[2][j]));
        o[2][j] = _mm256_add_pd(q, t[3][j]);
      }
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
          _mm_storeu_ps(out[i * 3 + j] + 4 * half, _mm256_cvtpd_ps(o[i][j]));
    }
    float *dw = p->dw + (k * p->cin + c) * 9;
    for (int l = 0; l < 8; l++)
      for (int e = 0; e < 9; e++)
        dw[l * 9 + e] = p->acc ? dw[l * 9 + e] + out[e][l] : out[e][l];
  }
}
#else
static void wino_wcombine(void *arg, int64_t k) {
  (void)arg, (void)k; /* wino_pick never picks kernels here */
}
#endif

int tc__cpu_wino_bwd_filter(void *ctx, const tc_conv2d_args *a) {
  const wino_kernels *kn = wino_wgrad_pick(a);
  if (!kn)
    return 0;
  int64_t threads = tc__cpu_pool_size(((cpu_ctx *)ctx)->pool);
  wino_plan p;
  wino_wgrad_geometry(&p, a, kn);
  if (!a->workspace || a->workspace_size < wino_need(&p, 1) ||
      (uintptr_t)a->workspace % sizeof(float) != 0)
    return 0;
  int64_t fit = (int64_t)((a->workspace_size - p.u_bytes) / p.buf_bytes);
  p.per_thread = fit >= threads;
  p.slots = fit < threads ? fit : threads;
  if (p.slots > p.chunks)
    p.slots = p.chunks;
  p.U = (float *)a->workspace;
  p.in = a->x;
  p.dy = a->dy;
  p.dw = a->dw;
  p.acc = a->accumulate;
  p.bufs = (char *)a->workspace + p.u_bytes;
  tc__cpu_parallel_for(ctx, p.per_thread ? p.chunks : p.slots, wino_wtask, &p);
  tc__cpu_parallel_for(ctx, p.cout, wino_wcombine, &p);
  return 1;
}

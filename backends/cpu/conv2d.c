/*
 * conv2d.c - the CPU backend's 2-D convolution (groups = 1): forward,
 * backward-data, backward-filter, bias-grad and the workspace query.
 *
 * Method, stride <= CONVD_MAX_STRIDE / dilation 1 / padding <= kernel-1 on
 * a CPU with AVX2+FMA (or AVX-512F; TINYCNN_CPU_ISA can lower the choice):
 * direct SIMD kernels (conv2d_direct.c; the layout and the stride phases
 * are explained at "direct path" below; the register tile of each op is
 * picked by channel and tap count, tc__convd_pick_fwd / tc__convd_pick_wgrad).
 * Per image, x (or dy for backward data) is copied into zero-padded planes (one
 * per stride phase) in the slot, the kernel writes the outputs on the padded
 * grid, and the valid ones are copied out. A slot's zeros stay in place for its
 * next image, so only the data is copied again. Stride 1 with ow == w (2*pw ==
 * s-1, e.g. 3x3 pad 1) is "dense" instead (AVX2: when the positions fill 4+
 * register tiles, dense_fits): the planes are whole rows (zero rows above and
 * below only, one contiguous copy per channel), the kernel masks each tap's
 * loads at the row edges and writes y (or adds into dx) itself: no junk
 * columns, no copy-out (conv_direct_geometry). Stride 2x2 with out = in/2 (3x3
 * pad 1, even sizes) is dense too for fwd and (AVX-512) bwd filter: x's 4
 * phases are planes of whole out-wide rows, so the same kernels run on the
 * output's own positions (bwd data keeps phases). Backward filter sums
 * CONVD_CHUNKS fixed chunks of images into partials (combined in order as
 * below); a 1x1 kernel runs its channels as the kernel's taps; a dense 3x3
 * stride-1 one with 32+ output channels (a multiple of 16) puts the channels in
 * the lanes instead of positions (conv2d_wgradt.c; on AVX2 a stride-1 one with
 * k a multiple of 16 and rows of 4+ taps). Direct workspace: max over the three
 * ops of (shared + slots * slot), where shared is the packed weights (fwd, bwd
 * data) or the partials (bwd filter) and slot one image's padded input and
 * outputs (bwd filter: G images); every op needs the one-slot query.
 *
 * Otherwise: per image, im2col + one OpenBLAS sgemm on the whole panel
 *   forward:   y_i (k,P)     = W (k,CRS) * col_i (CRS,P)   [+ bias]
 *   bwd data:  dcol_i (CRS,P) = W^T * dy_i (k,P); dx_i += col2im(dcol_i)
 *   bwd filt:  dW (k,CRS)   += dy_i (k,P) * col_i^T
 * with P = out_h*out_w and CRS = c*r*s, all NCHW and contiguous. A 1x1
 * kernel with stride 1 and no padding needs no im2col: the image is its own
 * column matrix. Images are split into contiguous blocks, one per pool
 * thread; each block owns one im2col slot of the caller's workspace. Nothing
 * here allocates.
 *
 * Determinism: bwd_filter sums over the batch in `chunks` fixed ranges of
 * images (the count depends on the shapes only, never on the thread count);
 * each chunk's partial dW is built in its own workspace slice, in image
 * order, and the partials are then added in chunk order. bwd_bias reduces
 * each channel in one task, in image order. So results are the same bits
 * with 1 or 64 threads.
 *
 * Workspace (bytes; every slice rounded up to 64 bytes):
 *   col   = 1x1/stride 1/pad 0 ? 0 : 4*CRS*P
 *   chunks = n == 0 ? 0 : min(n, CPU_REDUCE_CHUNKS,
 *                             max(1, CONV_PARTIAL_BUDGET / (k*CRS)))
 *   part  = chunks > 1 ? 4*chunks*k*CRS : 0
 *   size  = min(n, pool threads) * col + part
 * forward and bwd_data need at least one col slice, bwd_filter part plus one
 * col slice; a larger workspace lets more threads work at once. A workspace
 * that is too small, NULL or not float-aligned is TC_EINVAL.
 */
#include <cblas.h>
#include <string.h>

#include "../op_check.h"
#include "conv2d_direct.h"
#include "cpu.h"

/* Most floats the bwd_filter partial sums may take (64 MiB): above it the
 * batch is cut into fewer chunks (still a function of the shapes only). */
#define CONV_PARTIAL_BUDGET ((int64_t)16 << 20)
/* The size limits (GEMM extents fit BLAS's int) are checked in
 * backends/op_check.c. */
/* Direct path limits: channels, image extent (keeps every buffer small). */
#define CONVD_MAX_CH 4096
#define CONVD_MAX_HW 1024
/* Largest stride the direct path takes (as stride*stride phases). */
#define CONVD_MAX_STRIDE 4
/* Direct wgrad: partial sums (fixed, like CPU_REDUCE_CHUNKS), and images
 * per kernel call: enough that one call sums >= this many positions. */
#define CONVD_CHUNKS 16
#define CONVD_MAX_G 16
#define CONVD_WG_POSITIONS 1024
/* Elements per task when the partial sums are combined. */
#define CONV_COMBINE_BLOCK 1024

typedef struct conv_geom {
  const tc_conv2d_args *a;
  int64_t n, c, h, w, k, r, s;
  int64_t sh, sw, ph, pw, dh, dw, oh, ow;
  int64_t hw, P, crs;
  int direct;        /* 1x1, stride 1, pad 0: x_i is its own col */
  int64_t chunks;    /* bwd_filter partial sums */
  size_t col_bytes;  /* one im2col slice (0 when direct) */
  size_t part_bytes; /* all partial sums (0 when chunks <= 1) */
  /* direct (stride-1 SIMD) path; all sizes in floats */
  const convd_kernels *kern;    /* NULL: im2col + GEMM */
  const convd_fwd_var *fv, *bv; /* fwd, bwd_data tiles */
  const convd_wgrad_var *wv;    /* wgrad tile */
  int64_t nph, Rm, Sm;          /* stride phases, most taps per phase */
  int64_t Hs, Ws, nqf, psf;     /* fwd/wgrad phase grid, fwd tiles */
  int64_t U0, V0, Uh, Uw;       /* bwd_data: first phase row/col, extent */
  int64_t Hq, Wq, nqb, psb;     /* bwd_data dy grid */
  int64_t nqw, psw, G;          /* wgrad tiles, images per kernel call */
  int64_t kpf, cpf, kpw;        /* channel counts rounded up to the tiles */
  /* dense fwd / bwd_data (stride 1, ow == w): planes of whole rows, the
   * kernel writes y / dx itself; plane stride, data offset in the plane,
   * kernel input offset from the plane start */
  int densef, denseb;
  int64_t dpsf, dfrf, dinf, dpsb, dfrb, dinb;
  /* dense wgrad: x in fwd's dense planes, dy read in place; position
   * vectors per image (the row-edge mask table has s rows of them) */
  int densew;
  int64_t dnqv;
  /* the weight gradient with output channels in the lanes
   * (conv2d_wgradt.c; AVX-512: dense 3x3 stride 1, k and P multiples of
   * 16, k >= 32; AVX2: stride 1, k a multiple of 16, s >= 4), x in the
   * padded-row planes of the position kernels, dy transposed */
  int wgt;
  /* fwd with the output channels in the lanes (AVX2, stride 1, k a
   * multiple of 16, s >= 4, c*r*s <= CONVD_CHAIN): x in the padded-row
   * planes, y through a (P, k) buffer in the slot's output rows */
  int fwt;
  /* dense fwd / wgrad with stride 2x2 and out = in/2 (dense2): x split
   * into its 4 phases (row, column parity), each a plane of whole oh x ow
   * rows; dnph planes per channel (1 or 4), column shifts dcs0 ..
   * dcs0 + dncs - 1 (the wgrad mask table's rows) */
  int dense2;
  int64_t dnph, dcs0, dncs;
  size_t fwd_shared, fwd_slot, bwd_shared, bwd_slot, wg_slot, wg_part;
  size_t min_ws; /* direct: every op needs the one-slot query */
  /* run time */
  int64_t slots;  /* col slices (buffers) in the workspace */
  int per_thread; /* one slice per pool thread: see task_units */
  char *cols;     /* first col slice */
  float *part;    /* chunks * (k*CRS) */
} conv_geom;

static size_t round64(size_t b) {
  return (b + 63) & ~(size_t)63;
}

static int64_t min64(int64_t x, int64_t y) {
  return x < y ? x : y;
}

static int64_t roundup64(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

static int64_t max64(int64_t x, int64_t y) {
  return x > y ? x : y;
}

/* Whether the dense kernel of tile v suits n positions: AVX2 runs the
 * last n/VL % nv vectors one at a time (load-bound), so it wants at least
 * 4 whole tiles (ResNet's 8x8 layers, 8 vectors: 6.4 -> 6.8 ms dense,
 * the 16x16 and 32x32 ones 2-4 % faster). */
static int dense_fits(const convd_kernels *kn, const convd_fwd_var *v,
                      int64_t n) {
  if (!v->fm)
    return 0;
  return kn->vl == 16 || (n + kn->vl - 1) / kn->vl >= 4 * v->nv;
}

/* Sizes for the direct path, or g->kern = NULL when it does not apply
 * (stride > CONVD_MAX_STRIDE, dilation != 1, padding > kernel-1, 1x1 with
 * stride 1 and no padding, large kernels, below AVX2, or buffers too large
 * to be worth it). */
static void conv_direct_geometry(conv_geom *g) {
  g->kern = NULL;
  const convd_kernels *kn = tc__cpu_convd_kernels();
  if (!kn || g->direct || g->sh > CONVD_MAX_STRIDE ||
      g->sw > CONVD_MAX_STRIDE || g->dh != 1 || g->dw != 1 ||
      g->ph > g->r - 1 || g->pw > g->s - 1 || g->r * g->s > CONVD_MAX_RS ||
      g->c > CONVD_MAX_CH || g->k > CONVD_MAX_CH || g->h > CONVD_MAX_HW ||
      g->w > CONVD_MAX_HW)
    return;
  int64_t rs = g->r * g->s;
  g->nph = g->sh * g->sw;
  g->Rm = (g->r + g->sh - 1) / g->sh, g->Sm = (g->s + g->sw - 1) / g->sw;
  /* fwd and wgrad: each phase of padded x is an Hs x Ws plane; output
   * q = oh*Ws + ow */
  int64_t Hp = g->h + 2 * g->ph, Wp = g->w + 2 * g->pw;
  g->Hs = (Hp + g->sh - 1) / g->sh, g->Ws = (Wp + g->sw - 1) / g->sw;
  /* sw == 1: one run of pw zeros between rows pads both the row's right
   * and the next row's left (reads past a row's end land in the next
   * row's left zeros), so fewer wasted positions: 9 for 8 instead of 10 */
  if (g->sw == 1)
    g->Ws = g->w + g->pw;
  int64_t L = (g->oh - 1) * g->Ws + g->ow;
  int64_t offmax = (g->Rm - 1) * g->Ws + g->Sm - 1;
  g->fv = tc__convd_pick_fwd(kn, g->k, rs);
  g->bv = tc__convd_pick_fwd(kn, g->c, g->Rm * g->Sm);
  g->wv = tc__convd_pick_wgrad(kn, g->k,
                               rs == 1 && g->c <= CONVD_MAX_RS ? g->c : rs);
  g->nqf = roundup64(L, kn->vl);
  g->psf = roundup64(max64(g->Hs * g->Ws, g->nqf + offmax), 16);
  g->kpf = roundup64(g->k, g->fv->kt);
  g->fwd_shared = round64((size_t)(g->kpf * g->c * rs) * 4);
  g->fwd_slot = round64((size_t)(g->nph * g->c * g->psf + g->kpf * g->nqf) * 4);
  /* bwd_data: each phase of dx (shifted by U0, V0 phase rows/columns) is
   * a stride-1 correlation of dy padded to Hq x Wq with the phase's taps */
  g->U0 = g->ph / g->sh, g->V0 = g->pw / g->sw;
  g->Uh = (g->h - 1 + g->ph) / g->sh + 1 - g->U0;
  g->Uw = (g->w - 1 + g->pw) / g->sw + 1 - g->V0;
  g->Hq = g->Uh + g->Rm - 1, g->Wq = g->Uw + g->Sm - 1;
  /* the same shared zeros: dy rows (ow) padded by Sm-1-V0 on each side */
  if (g->sw == 1)
    g->Wq = g->ow + g->Sm - 1 - g->V0;
  int64_t Lb = (g->Uh - 1) * g->Wq + g->Uw;
  g->nqb = roundup64(Lb, kn->vl);
  g->psb = roundup64(
      max64(g->Hq * g->Wq, g->nqb + (g->Rm - 1) * g->Wq + g->Sm - 1), 16);
  g->cpf = roundup64(g->c, g->bv->kt);
  g->bwd_shared = round64((size_t)(g->cpf * g->k * rs) * 4);
  g->bwd_slot = round64((size_t)(g->k * g->psb + g->nph * g->cpf * g->nqb) * 4);
  /* wgrad: G images of x phases and of dy on the Ws grid per call */
  g->nqw = roundup64(L, kn->vl);
  g->psw = roundup64(max64(g->Hs * g->Ws, g->nqw + offmax), 16);
  g->kpw = roundup64(g->k, g->wv->kt);
  g->G =
      min64(CONVD_MAX_G, max64(1, (CONVD_WG_POSITIONS + g->nqw - 1) / g->nqw));
  g->wg_slot =
      round64((size_t)(g->G * (g->nph * g->c * g->psw + g->kpw * g->nqw)) * 4);
  g->kern = kn;
  if (g->nph == 1 && 2 * g->pw == g->s - 1) {
    /* dense: output column = input column, so the side padding can be
     * masked in the kernel instead of stored; planes keep zero rows */
    int64_t reach = (g->r - 1) * g->w + g->s - 1;
    int64_t d = g->ph * g->w + g->pw;
    g->densef = dense_fits(kn, g->fv, g->P);
    g->dfrf = roundup64(d, 16), g->dinf = g->dfrf - d;
    g->dpsf = roundup64(g->dinf + roundup64(g->P, kn->vl) + reach, 16);
    if (g->densef)
      g->fwd_slot = round64((size_t)(g->c * g->dpsf) * 4);
    d = (g->r - 1 - g->ph) * g->w + g->s - 1 - g->pw;
    g->denseb = dense_fits(kn, g->bv, g->hw);
    g->dfrb = roundup64(d, 16), g->dinb = g->dfrb - d;
    g->dpsb = roundup64(g->dinb + roundup64(g->hw, kn->vl) + reach, 16);
    if (g->denseb)
      g->bwd_slot = round64((size_t)(g->k * g->dpsb) * 4);
    g->densew = 1;
    g->dnph = 1, g->dcs0 = -g->pw, g->dncs = g->s;
  } else if (g->sh == 2 && g->sw == 2 && 2 * g->oh == g->h &&
             2 * g->ow == g->w && g->r >= 2 && g->s >= 2) {
    /* dense2: out = in/2 means r = 2*ph + 1 or 2*ph + 2 (3x3 pad 1), so
     * at output (u, v) tap (di, dj) reads x phase ((di-ph) mod 2,
     * (dj-pw) mod 2) at phase row u + floor((di-ph)/2), column
     * v + floor((dj-pw)/2): phase planes of exactly oh x ow, zero rows
     * above (top) and below (bot), the columns masked in the kernels */
    int64_t top = (g->ph + 1) / 2, bot = (g->r - 1 - g->ph) / 2;
    int64_t csmax = (g->s - 1 - g->pw) / 2;
    g->dense2 = 1, g->dnph = 4;
    g->dcs0 = -((g->pw + 1) / 2), g->dncs = csmax - g->dcs0 + 1;
    g->dfrf = roundup64(top * g->ow - g->dcs0, 16), g->dinf = g->dfrf;
    g->dpsf =
        roundup64(g->dfrf + roundup64(g->P, kn->vl) + bot * g->ow + csmax, 16);
    g->densef = dense_fits(kn, g->fv, g->P);
    if (g->densef)
      g->fwd_slot = round64((size_t)(4 * g->c * g->dpsf) * 4);
    g->densew = 1;
  }
  /* fwt only with rows of 4+ taps: ResNet-20's 3x3 layers ran 2-20 %
   * slower in the lanes (3 taps of 2 weight loads each per position
   * tile); not where the dense kernel runs */
  g->fwt = kn->fwdt && g->nph == 1 && g->k % 16 == 0 && g->s >= 4 &&
           g->c * rs <= CONVD_CHAIN && !g->densef;
  /* dense wgrad (either layout): the kernel reads the last kt rows of dy
   * for a partial channel block, so it needs k >= kt; G images of x's
   * dense planes per call, then the row-edge mask table */
  g->densew = g->densew && g->wv->fm != NULL && g->k >= g->wv->kt;
  /* k = 16 stays on the position kernels: one channel vector per tap
   * leaves the lanes kernel load-bound (ResNet 32x32: 1.44 -> 1.73 ms) */
  if (kn->vl == 16)
    g->wgt = g->densew && !g->dense2 && kn->wgradt && g->r == 3 && g->s == 3 &&
             g->k % 16 == 0 && g->k >= 32 && g->P % 16 == 0;
  else /* AVX2: two vectors of channels x one row of s >= 4 taps; 3x3
        * stays on the position kernels (ResNet-20's layers: 3-11 %
        * slower in the lanes, whose 3-tap tiles wait on FMA latency) */
    g->wgt = kn->wgradt && g->nph == 1 && g->k % 16 == 0 && g->s >= 4;
  if (g->wgt) {
    g->G = min64(CONVD_MAX_G, max64(1, (CONVD_WG_POSITIONS + g->P - 1) / g->P));
    g->wg_slot = round64((size_t)(g->G * (g->c * g->psw + g->k * g->P)) * 4);
  } else if (g->densew) {
    int64_t nqd = roundup64(g->P, kn->vl);
    g->dnqv = nqd / kn->vl;
    g->G = min64(CONVD_MAX_G, max64(1, (CONVD_WG_POSITIONS + nqd - 1) / nqd));
    g->wg_slot = round64((size_t)(g->G * g->dnph * g->c * g->dpsf) * 4) +
                 round64((size_t)(g->dncs * g->dnqv) * 2);
  }
}

/* Checks the args for slot `op` (backends/op_check.c); fills g. */
static tc_status conv_geometry(void *ctx, const tc_conv2d_args *a,
                               const char *fn, tc__op op, conv_geom *g) {
  tc_status st = tc__check_conv2d_args(ctx, a, fn, op);
  if (st != TC_OK)
    return st;
  memset(g, 0, sizeof *g);
  g->a = a;
  g->n = a->n, g->c = a->c, g->h = a->h, g->w = a->w;
  g->k = a->k, g->r = a->r, g->s = a->s;
  g->sh = a->stride_h, g->sw = a->stride_w, g->ph = a->pad_h;
  g->pw = a->pad_w, g->dh = a->dil_h, g->dw = a->dil_w;
  g->oh = a->out_h, g->ow = a->out_w;
  /* the checks bound every product below */
  g->hw = g->h * g->w;
  g->P = g->oh * g->ow;
  g->crs = g->c * g->r * g->s;
  int64_t kcrs = g->k * g->crs;
  g->direct = g->r == 1 && g->s == 1 && g->sh == 1 && g->sw == 1 &&
              g->ph == 0 && g->pw == 0;
  g->col_bytes = g->direct ? 0 : round64((size_t)g->crs * (size_t)g->P * 4);
  conv_direct_geometry(g);
  if (g->kern) {
    g->chunks = min64(g->n, CONVD_CHUNKS);
    g->wg_part =
        g->chunks > 1 ? round64((size_t)g->chunks * (size_t)kcrs * 4) : 0;
    g->min_ws = g->fwd_shared + g->fwd_slot;
    if (g->bwd_shared + g->bwd_slot > g->min_ws)
      g->min_ws = g->bwd_shared + g->bwd_slot;
    if (g->wg_part + g->wg_slot > g->min_ws)
      g->min_ws = g->wg_part + g->wg_slot;
    return TC_OK;
  }
  int64_t by_mem = CONV_PARTIAL_BUDGET / kcrs;
  g->chunks = min64(min64(g->n, CPU_REDUCE_CHUNKS), by_mem > 1 ? by_mem : 1);
  g->part_bytes =
      g->chunks > 1 ? round64((size_t)g->chunks * (size_t)kcrs * 4) : 0;
  return TC_OK;
}

/* Places the im2col slices (after `reserve` bytes) and counts how many fit;
 * `tasks` bounds the useful concurrency. */
static tc_status conv_workspace(void *ctx, conv_geom *g, size_t reserve,
                                int64_t tasks, const char *fn) {
  const tc_conv2d_args *a = g->a;
  int64_t pool = tc__cpu_pool_size(((cpu_ctx *)ctx)->pool);
  size_t need = reserve + g->col_bytes;
  if (need < g->min_ws)
    need = g->min_ws;
  if (need > 0 && (!a->workspace || a->workspace_size < need))
    return tc__error(TC_EINVAL,
                     "%s: workspace %zu bytes at %p, need at least %zu "
                     "(see conv2d_workspace_size)",
                     fn, a->workspace_size, a->workspace, need);
  /* the slices hold floats (backend alloc gives 64-byte alignment) */
  if (need > 0 && (uintptr_t)a->workspace % sizeof(float) != 0)
    return tc__error(TC_EINVAL, "%s: workspace %p is not float-aligned", fn,
                     a->workspace);
  int64_t fit = g->col_bytes
                    ? (int64_t)((a->workspace_size - reserve) / g->col_bytes)
                    : INT64_MAX;
  g->slots = min64(min64(tasks, pool), fit);
  if (g->slots < 1)
    g->slots = 1;
  g->per_thread = g->slots == pool;
  g->part = reserve ? (float *)a->workspace : NULL;
  g->cols = a->workspace ? (char *)a->workspace + reserve : NULL;
  return TC_OK;
}

tc_status tc__cpu_conv2d_workspace_size(void *ctx, const tc_conv2d_args *a,
                                        size_t *out_bytes) {
  static const char fn[] = "cpu_conv2d_workspace_size";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_WORKSPACE_SIZE, &g);
  if (st != TC_OK)
    return st;
  if (!out_bytes)
    return tc__error(TC_EINVAL, "%s: argument 'out_bytes' is NULL", fn);
  int64_t slots = min64(g.n, tc__cpu_pool_size(((cpu_ctx *)ctx)->pool));
  if (g.kern && g.n == 0) {
    *out_bytes = 0;
    return TC_OK;
  }
  if (g.kern) {
    size_t sh[3] = {g.fwd_shared, g.bwd_shared, g.wg_part};
    size_t sl[3] = {g.fwd_slot, g.bwd_slot, g.wg_slot};
    size_t best = 0;
    for (int i = 0; i < 3; i++) {
      size_t b, t;
      if (!tc__mul_size((size_t)slots, sl[i], &b) ||
          !tc__add_size(b, sh[i], &t))
        return tc__error(TC_EINVAL, "%s: workspace size overflows", fn);
      best = t > best ? t : best;
    }
    *out_bytes = best;
    return TC_OK;
  }
  size_t cols, total;
  if (!tc__mul_size((size_t)slots, g.col_bytes, &cols) ||
      !tc__add_size(cols, g.part_bytes, &total))
    return tc__error(TC_EINVAL, "%s: workspace size overflows", fn);
  *out_bytes = total;
  return TC_OK;
}

/* ---- im2col / col2im -------------------------------------------------- */

/* Output columns [lo, hi) whose input column ow*sw + off lies in [0, w). */
static void col_range(int64_t off, int64_t sw, int64_t w, int64_t ow,
                      int64_t *lo, int64_t *hi) {
  int64_t l = off >= 0 ? 0 : (-off + sw - 1) / sw;
  int64_t h = w - 1 - off < 0 ? 0 : (w - 1 - off) / sw + 1;
  if (h > ow)
    h = ow;
  if (l > h)
    l = h;
  *lo = l;
  *hi = h;
}

/* x: (c,h,w) -> col: (c*r*s, oh*ow), zero where the window hits padding. */
static void im2col(const conv_geom *g, const float *x, float *col) {
  for (int64_t cc = 0; cc < g->c; cc++) {
    const float *xc = x + cc * g->hw;
    for (int64_t ki = 0; ki < g->r; ki++) {
      for (int64_t kj = 0; kj < g->s; kj++) {
        float *row = col + ((cc * g->r + ki) * g->s + kj) * g->P;
        int64_t off = kj * g->dw - g->pw, lo, hi;
        col_range(off, g->sw, g->w, g->ow, &lo, &hi);
        for (int64_t o = 0; o < g->oh; o++) {
          float *d = row + o * g->ow;
          int64_t ih = o * g->sh - g->ph + ki * g->dh;
          if (ih < 0 || ih >= g->h) {
            memset(d, 0, (size_t)g->ow * sizeof *d);
            continue;
          }
          /* input column of output q is q*sw + off (>= 0 for q >= lo) */
          const float *src = xc + ih * g->w;
          for (int64_t q = 0; q < lo; q++)
            d[q] = 0.f;
          if (g->sw == 1) {
            memcpy(d + lo, src + lo + off, (size_t)(hi - lo) * sizeof *d);
          } else {
            for (int64_t q = lo; q < hi; q++)
              d[q] = src[q * g->sw + off];
          }
          for (int64_t q = hi; q < g->ow; q++)
            d[q] = 0.f;
        }
      }
    }
  }
}

/* dx: (c,h,w) += col2im(col: (c*r*s, oh*ow)); padding entries are dropped. */
static void col2im_add(const conv_geom *g, const float *col, float *dx) {
  for (int64_t cc = 0; cc < g->c; cc++) {
    float *xc = dx + cc * g->hw;
    for (int64_t ki = 0; ki < g->r; ki++) {
      for (int64_t kj = 0; kj < g->s; kj++) {
        const float *row = col + ((cc * g->r + ki) * g->s + kj) * g->P;
        int64_t off = kj * g->dw - g->pw, lo, hi;
        col_range(off, g->sw, g->w, g->ow, &lo, &hi);
        for (int64_t o = 0; o < g->oh; o++) {
          int64_t ih = o * g->sh - g->ph + ki * g->dh;
          if (ih < 0 || ih >= g->h)
            continue;
          const float *d = row + o * g->ow;
          float *dst = xc + ih * g->w;
          if (g->sw == 1) {
            float *restrict dr = dst + lo + off; /* >= dst: lo+off >= 0 */
            const float *restrict sr = d + lo;
            for (int64_t q = 0; q < hi - lo; q++)
              dr[q] += sr[q];
          } else {
            for (int64_t q = lo; q < hi; q++)
              dst[q * g->sw + off] += d[q];
          }
        }
      }
    }
  }
}

/* Images [first, last) of block t when n images are cut into `parts`. */
static void block_range(int64_t n, int64_t parts, int64_t t, int64_t *first,
                        int64_t *last) {
  *first = n * t / parts;
  *last = n * (t + 1) / parts;
}

static float *slot_col(const conv_geom *g, int64_t t) {
  return (float *)(g->cols + (size_t)t * g->col_bytes);
}

/* Tasks for an op over `units` (images, or weight-gradient chunks). */
static int64_t op_tasks(const conv_geom *g, int64_t units) {
  return g->per_thread ? units : g->slots;
}

/* Task t's units [*u0, *u1) and its col slice (NULL when there are none).
 * With a slice per pool thread a task is one unit and takes the running
 * thread's slice, so a thread that is ahead takes over the units a slower
 * one has not reached (on a shared VM one core often runs 10-30 % slower
 * than the other for a while; one block per thread waited for it). *fresh
 * says whether the slice is new to this op (the thread's first task of
 * it: zeros a previous unit left are not in place). Otherwise one block
 * of units per slot, always fresh. */
static float *task_units(const conv_geom *g, int64_t units, int64_t t,
                         int64_t *u0, int64_t *u1, int *fresh) {
  int64_t slot = t;
  if (g->per_thread) {
    *u0 = t, *u1 = t + 1;
    *fresh = tc__cpu_task_first();
    slot = tc__cpu_task_thread();
  } else {
    block_range(units, g->slots, t, u0, u1);
    *fresh = 1;
  }
  return g->col_bytes ? slot_col(g, slot) : NULL;
}

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
static void pack_fwd_weights(const conv_geom *g, float *wp) {
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
static void pack_bwd_weights(const conv_geom *g, float *wp) {
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
  float *xp = task_units(g, g->n, t, &i0, &i1, &fresh);
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
  float *dp = task_units(g, g->n, t, &i0, &i1, &fresh);
  const float *wp = (const float *)a->workspace;
  int64_t nrs = dense_taps(g, 1, off, cs, idx);
  for (int64_t i = i0; i < i1; i++) {
    dense_planes(g, a->dy + i * g->k * g->P, g->k, g->P, dp, g->dpsb, g->dfrb,
                 !fresh || i > i0);
    g->bv->fm(dp + g->dinb, g->k, g->dpsb, off, cs, nrs, g->w, wp, g->c, NULL,
              a->dx + i * g->c * g->hw, g->hw, g->hw, (int)a->accumulate);
  }
}

static void dfwd_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1, off[CONVD_MAX_RS + 8], idx[CONVD_MAX_RS];
  if (g->densef) {
    dfwd_dense(g, t);
    return;
  }
  int fresh;
  float *xp = task_units(g, g->n, t, &i0, &i1, &fresh);
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

static void dbwd_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1, off[CONVD_MAX_RS + 8], idx[CONVD_MAX_RS];
  if (g->denseb) {
    dbwd_dense(g, t);
    return;
  }
  int fresh;
  float *dp = task_units(g, g->n, t, &i0, &i1, &fresh);
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
  float *buf = task_units(g, g->chunks, t, &j0, &j1, &fresh);
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

static void dwg_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  wg_run(g, t, g->wgt ? wg_lanes : g->densew ? wg_dense : wg_positions);
}

/* ---- forward ----------------------------------------------------------- */

static void fwd_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1;
  int fresh; /* im2col writes the whole col: no zeros to keep */
  float *col = task_units(g, g->n, t, &i0, &i1, &fresh);
  for (int64_t i = i0; i < i1; i++) {
    const float *x = a->x + i * g->c * g->hw; /* (c,h,w) */
    float *y = a->y + i * g->k * g->P;        /* (k,P) */
    if (!g->direct) {
      im2col(g, x, col);
      x = col;
    }
    float beta = 0.f;
    if (a->bias) {
      for (int64_t kk = 0; kk < g->k; kk++)
        for (int64_t p = 0; p < g->P; p++)
          y[kk * g->P + p] = a->bias[kk];
      beta = 1.f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)g->k,
                (blasint)g->P, (blasint)g->crs, 1.f, a->wt, (blasint)g->crs, x,
                (blasint)g->P, beta, y, (blasint)g->P);
  }
}

tc_status tc__cpu_conv2d_fwd(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_fwd";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_FWD, &g);
  if (st != TC_OK)
    return st;
  if (g.n == 0)
    return TC_OK;
  if (g.kern) {
    g.col_bytes = g.fwd_slot;
    if ((st = conv_workspace(ctx, &g, g.fwd_shared, g.n, fn)) != TC_OK)
      return st;
    pack_fwd_weights(&g, (float *)a->workspace);
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), dfwd_task, &g);
    return TC_OK;
  }
  if ((st = conv_workspace(ctx, &g, 0, g.n, fn)) != TC_OK)
    return st;
  tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), fwd_task, &g);
  return TC_OK;
}

/* ---- backward data ----------------------------------------------------- */

static void bwd_data_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1;
  int fresh; /* im2col writes the whole col */
  float *col = task_units(g, g->n, t, &i0, &i1, &fresh);
  for (int64_t i = i0; i < i1; i++) {
    const float *dy = a->dy + i * g->k * g->P; /* (k,P) */
    float *dx = a->dx + i * g->c * g->hw;      /* (c,h,w) */
    if (g->direct) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)g->crs,
                  (blasint)g->P, (blasint)g->k, 1.f, a->wt, (blasint)g->crs, dy,
                  (blasint)g->P, a->accumulate ? 1.f : 0.f, dx, (blasint)g->P);
      continue;
    }
    /* col: (CRS,P) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)g->crs,
                (blasint)g->P, (blasint)g->k, 1.f, a->wt, (blasint)g->crs, dy,
                (blasint)g->P, 0.f, col, (blasint)g->P);
    if (!a->accumulate)
      memset(dx, 0, (size_t)(g->c * g->hw) * sizeof *dx);
    col2im_add(g, col, dx);
  }
}

tc_status tc__cpu_conv2d_bwd_data(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_data";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_BWD_DATA, &g);
  if (st != TC_OK)
    return st;
  if (g.n == 0)
    return TC_OK;
  if (g.kern) {
    g.col_bytes = g.bwd_slot;
    if ((st = conv_workspace(ctx, &g, g.bwd_shared, g.n, fn)) != TC_OK)
      return st;
    pack_bwd_weights(&g, (float *)a->workspace);
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), dbwd_task, &g);
    return TC_OK;
  }
  if ((st = conv_workspace(ctx, &g, 0, g.n, fn)) != TC_OK)
    return st;
  tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), bwd_data_task, &g);
  return TC_OK;
}

/* ---- backward filter --------------------------------------------------- */

/* Task t computes its chunks (see dwg_task); a chunk's partial is the same
 * whichever slot or thread computes it. */
static void bwd_filter_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t kcrs = g->k * g->crs;
  int64_t j0, j1;
  int fresh; /* im2col writes the whole col */
  float *col = task_units(g, g->chunks, t, &j0, &j1, &fresh);
  for (int64_t j = j0; j < j1; j++) {
    int64_t i0, i1;
    block_range(g->n, g->chunks, j, &i0, &i1);
    /* one chunk: write dw directly (accumulating if asked) */
    float *dst = g->chunks > 1 ? g->part + j * kcrs : a->dw; /* (k,CRS) */
    float beta = g->chunks == 1 && a->accumulate ? 1.f : 0.f;
    for (int64_t i = i0; i < i1; i++, beta = 1.f) {
      const float *x = a->x + i * g->c * g->hw;  /* (c,h,w) */
      const float *dy = a->dy + i * g->k * g->P; /* (k,P) */
      if (!g->direct) {
        im2col(g, x, col);
        x = col;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)g->k,
                  (blasint)g->crs, (blasint)g->P, 1.f, dy, (blasint)g->P, x,
                  (blasint)g->P, beta, dst, (blasint)g->crs);
    }
  }
}

/* dw[e] = (accumulate ? dw[e] : 0) + (part_0[e] + part_1[e] + ...), for
 * block t of CONV_COMBINE_BLOCK elements; the order never varies. */
static void combine_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  int64_t kcrs = g->k * g->crs;
  int64_t e0 = t * CONV_COMBINE_BLOCK;
  int64_t m = min64(CONV_COMBINE_BLOCK, kcrs - e0);
  float sum[CONV_COMBINE_BLOCK];
  memcpy(sum, g->part + e0, (size_t)m * sizeof *sum);
  for (int64_t j = 1; j < g->chunks; j++) {
    const float *p = g->part + j * kcrs + e0;
    for (int64_t e = 0; e < m; e++)
      sum[e] += p[e];
  }
  float *dw = g->a->dw + e0;
  if (g->a->accumulate) {
    for (int64_t e = 0; e < m; e++)
      dw[e] += sum[e];
  } else {
    memcpy(dw, sum, (size_t)m * sizeof *dw);
  }
}

tc_status tc__cpu_conv2d_bwd_filter(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_filter";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_BWD_FILTER, &g);
  if (st != TC_OK)
    return st;
  int64_t kcrs = g.k * g.crs;
  if (g.n == 0) { /* an empty sum */
    if (!a->accumulate)
      memset(a->dw, 0, (size_t)kcrs * sizeof *a->dw);
    return TC_OK;
  }
  if (g.kern) {
    g.col_bytes = g.wg_slot;
    g.part_bytes = g.wg_part;
    if ((st = conv_workspace(ctx, &g, g.part_bytes, g.chunks, fn)) != TC_OK)
      return st;
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.chunks), dwg_task, &g);
  } else {
    if ((st = conv_workspace(ctx, &g, g.part_bytes, g.chunks, fn)) != TC_OK)
      return st;
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.chunks), bwd_filter_task, &g);
  }
  if (g.chunks > 1)
    tc__cpu_parallel_for(ctx,
                         (kcrs + CONV_COMBINE_BLOCK - 1) / CONV_COMBINE_BLOCK,
                         combine_task, &g);
  return TC_OK;
}

/* ---- bias grad --------------------------------------------------------- */

/* db[kk] (+)= sum over images (in order) of the image's channel sum; the
 * channel sum uses 8 fixed lanes so it vectorises without -ffast-math. */
static void bwd_bias_task(void *arg, int64_t kk) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  double total = 0;
  for (int64_t i = 0; i < g->n; i++) {
    const float *v = a->dy + (i * g->k + kk) * g->P; /* (P) */
    float lane[8] = {0};
    int64_t p = 0;
    for (; p + 8 <= g->P; p += 8)
      for (int l = 0; l < 8; l++)
        lane[l] += v[p + l];
    float s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
              ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; p < g->P; p++)
      s += v[p];
    total += s;
  }
  a->db[kk] = a->accumulate ? a->db[kk] + (float)total : (float)total;
}

tc_status tc__cpu_conv2d_bwd_bias(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_bias";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_BWD_BIAS, &g);
  if (st != TC_OK)
    return st;
  tc__cpu_parallel_for(ctx, g.k, bwd_bias_task, &g);
  return TC_OK;
}

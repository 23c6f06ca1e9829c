/*
 * alloc.cu - the CUDA backend's caching device allocator.
 *
 * cudaMalloc/cudaFree are slow and cudaFree synchronises the device, so
 * freed blocks are kept for reuse: sizes round up to a class (512 B, then
 * four classes per power of two, so at most 25% is wasted), each class has
 * a free list, and a block is reused only at exactly its class size.
 * Reuse without a sync is safe because every op of an instance runs on its
 * one stream. Cached blocks go back to CUDA when a cudaMalloc fails (then
 * it is retried once) and at destroy; not while the stream is being
 * captured into a CUDA graph (cudaFree there would invalidate the capture):
 * the allocation then fails with TC_ENOMEM and the capture stays usable.
 * Every release makes the pool's device current and restores the caller's
 * (in a multi-GPU process the caller's may be another).
 * Live blocks are found by pointer in
 * an open-addressing hash table (linear probing, backward-shift delete).
 * Host bookkeeping uses malloc: the core's allocator is not exported.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_be.h"

#define CU_NCLASS 216
#define CU_MAX_BYTES ((size_t)1 << 62)

typedef struct cu_block {
  void *ptr;
  size_t size; /* rounded class size */
  struct cu_block *next;
} cu_block;

struct cu_pool {
  int device; /* where every block lives */
  cu_block *free_list[CU_NCLASS];
  cu_block **live;   /* hash table of blocks handed out, live_cap slots */
  size_t live_cap;   /* a power of two */
  size_t live_n;
};

/* Class of a request and its rounded size; requests up to CU_MAX_BYTES. */
static int size_class(size_t s, size_t *rounded) {
  if (s <= 512) {
    *rounded = 512;
    return 0;
  }
  /* 2^e < s <= 2^(e+1), e >= 9; steps of 2^(e-2) give 5..8 steps */
  int e = 63 - __builtin_clzll((unsigned long long)(s - 1));
  size_t step = (size_t)1 << (e - 2);
  size_t q = (s + step - 1) / step;
  *rounded = q * step;
  return 1 + (e - 9) * 4 + (int)(q - 5);
}

static size_t slot_of(const cu_pool *p, const void *ptr) {
  uint64_t h = ((uint64_t)(uintptr_t)ptr >> 8) * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 32) & (p->live_cap - 1);
}

static void live_insert(cu_pool *p, cu_block *b) {
  size_t i = slot_of(p, b->ptr);
  while (p->live[i])
    i = (i + 1) & (p->live_cap - 1);
  p->live[i] = b;
  p->live_n++;
}

/* Grows the table so one more block fits at load <= 1/2. */
static tc_status live_reserve(cu_pool *p) {
  if ((p->live_n + 1) * 2 <= p->live_cap)
    return TC_OK;
  size_t cap = p->live_cap ? p->live_cap * 2 : 64;
  cu_block **t = (cu_block **)calloc(cap, sizeof *t);
  if (!t)
    return tc_backend_error(TC_ENOMEM, "cuda alloc: out of host memory");
  cu_block **old = p->live;
  size_t old_cap = p->live_cap;
  p->live = t;
  p->live_cap = cap;
  p->live_n = 0;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i])
      live_insert(p, old[i]);
  free(old);
  return TC_OK;
}

/* Removes and returns the live block of `ptr`, or NULL if not ours. */
static cu_block *live_remove(cu_pool *p, const void *ptr) {
  if (!p->live_cap)
    return NULL;
  size_t mask = p->live_cap - 1, i = slot_of(p, ptr);
  while (p->live[i] && p->live[i]->ptr != ptr)
    i = (i + 1) & mask;
  cu_block *b = p->live[i];
  if (!b)
    return NULL;
  p->live[i] = NULL;
  p->live_n--;
  /* backward shift: pull later entries of the probe run into the hole */
  for (size_t j = (i + 1) & mask; p->live[j]; j = (j + 1) & mask) {
    size_t k = slot_of(p, p->live[j]->ptr);
    int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      p->live[i] = p->live[j];
      p->live[j] = NULL;
      i = j;
    }
  }
  return b;
}

/* Makes the pool's device current; *prev receives the caller's (-1 when
 * unknown: then nothing is restored). */
static void pool_enter(const cu_pool *p, int *prev) {
  *prev = -1;
  if (cudaGetDevice(prev) != cudaSuccess) {
    (void)cudaGetLastError();
    *prev = -1;
  }
  if (*prev != p->device && cudaSetDevice(p->device) != cudaSuccess)
    (void)cudaGetLastError();
}

static void pool_leave(const cu_pool *p, int prev) {
  if (prev >= 0 && prev != p->device && cudaSetDevice(prev) != cudaSuccess)
    (void)cudaGetLastError();
}

/* Gives every cached (free) block back to CUDA, on the pool's device. */
static void release_cached(cu_pool *p) {
  int prev;
  pool_enter(p, &prev);
  for (int c = 0; c < CU_NCLASS; c++) {
    cu_block *b = p->free_list[c];
    while (b) {
      cu_block *next = b->next;
      (void)cudaFree(b->ptr);
      free(b);
      b = next;
    }
    p->free_list[c] = NULL;
  }
  (void)cudaGetLastError();
  pool_leave(p, prev);
}

tc_status cu_pool_create(cu_pool **out, int device) {
  cu_pool *p = (cu_pool *)calloc(1, sizeof *p);
  if (!p)
    return tc_backend_error(TC_ENOMEM, "cuda create: out of host memory");
  p->device = device;
  *out = p;
  return TC_OK;
}

void cu_pool_destroy(cu_pool *p) {
  if (!p)
    return;
  release_cached(p);
  int prev;
  pool_enter(p, &prev);
  for (size_t i = 0; i < p->live_cap; i++)
    if (p->live[i]) {
      (void)cudaFree(p->live[i]->ptr);
      free(p->live[i]);
    }
  (void)cudaGetLastError();
  pool_leave(p, prev);
  free(p->live);
  free(p);
}

/* Whether `stream` is being captured into a CUDA graph (by us or by the
 * user, on their stream); an error in asking counts as "yes". */
static int stream_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &cs) != cudaSuccess) {
    (void)cudaGetLastError();
    return 1;
  }
  return cs != cudaStreamCaptureStatusNone;
}

tc_status cu_pool_alloc(cu_pool *p, cudaStream_t stream, void **out,
                        size_t bytes) {
  int device = p->device;
  if (bytes > CU_MAX_BYTES)
    return tc_backend_error(TC_ENOMEM, "cuda alloc: cannot allocate %zu "
                            "bytes on device %d: larger than any device",
                            bytes, device);
  size_t rounded;
  int cls = size_class(bytes, &rounded);
  tc_status st = live_reserve(p);
  if (st != TC_OK)
    return st;
  cu_block *b = p->free_list[cls];
  if (b) {
    p->free_list[cls] = b->next;
  } else {
    b = (cu_block *)calloc(1, sizeof *b);
    if (!b)
      return tc_backend_error(TC_ENOMEM, "cuda alloc: out of host memory");
    cudaError_t e = cudaMalloc(&b->ptr, rounded);
    if (e == cudaErrorMemoryAllocation) {
      /* cached blocks of other sizes may be what is missing; but cudaFree
       * during a capture would invalidate it: fail instead */
      (void)cudaGetLastError();
      if (stream_capturing(stream)) {
        free(b);
        return tc_backend_error(
            TC_ENOMEM, "cuda alloc: cannot allocate %zu bytes on device %d "
            "while a CUDA graph is being captured (the cached blocks cannot "
            "be freed during a capture; allocate before graph_begin)",
            rounded, device);
      }
      release_cached(p);
      e = cudaMalloc(&b->ptr, rounded);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      free(b);
      size_t free_b = 0, total_b = 0;
      if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
        (void)cudaGetLastError();
      return tc_backend_error(
          e == cudaErrorMemoryAllocation ? TC_ENOMEM : TC_EBACKEND,
          "cuda alloc: cannot allocate %zu bytes on device %d: %s (%s); "
          "device has %zu of %zu bytes free", rounded, device,
          cudaGetErrorName(e), cudaGetErrorString(e), free_b, total_b);
    }
    b->size = rounded;
  }
  b->next = NULL;
  live_insert(p, b);
  *out = b->ptr;
  return TC_OK;
}

void cu_pool_free(cu_pool *p, void *ptr) {
  if (!p || !ptr)
    return;
  cu_block *b = live_remove(p, ptr);
  if (!b)
    return; /* not ours: nothing sensible to do in a void slot */
  size_t rounded;
  int cls = size_class(b->size, &rounded);
  b->next = p->free_list[cls];
  p->free_list[cls] = b;
}

/*
 * comm_nccl.cu - a communicator (tc_comm_iface, include/tinycnn/dist.h)
 * over NCCL, one rank per process and GPU, reached through the module's
 * get_proc: "tc_cuda_nccl_unique_id" makes the id that rank 0 hands to the
 * others (through any channel: an MPI tc_comm's broadcast, a file), and
 * "tc_cuda_comm_create_nccl" joins the group on one CUDA backend instance.
 *
 * Buffers: host memory (the tc_comm contract) is staged through device
 * memory on the instance's stream, and the call returns once the result is
 * back in host memory. Device memory of the instance's GPU (as
 * cudaPointerGetAttributes tells) goes to NCCL directly; the collective is
 * queued on the instance's stream, after the work already there, and the
 * call returns without waiting (device_context says so to the core, so
 * the data-parallel wrapper all-reduces gradients in place).
 * Sums are NCCL's (ncclSum over float): their order is NCCL's choice
 * (ring or tree by size), so results need not have the same bits from run
 * to run or match the built-in communicators'. No abort slot: NCCL cannot
 * end the peer processes (tc_comm_abort gives TC_EUNSUPPORTED).
 * Built only when NCCL is found (meson: TC_HAVE_NCCL); otherwise the procs
 * are absent (get_proc gives NULL).
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_be.h"

#ifdef TC_HAVE_NCCL
#include <nccl.h>

typedef struct nc_ctx {
  ncclComm_t comm;
  cu_ctx *be; /* the backend instance: its stream and device */
  int rank, size;
} nc_ctx;

/* A started operation: the staging block (NULL for device buffers) and an
 * event after its copy back. */
typedef struct nc_req {
  void *stage;
  cudaEvent_t done;
} nc_req;

static tc_status nc_check(ncclResult_t r, const char *where) {
  if (r == ncclSuccess)
    return TC_OK;
  return tc_backend_error(TC_EBACKEND, "nccl: %s: %s (%s)", where,
                          ncclGetErrorString(r), ncclGetLastError(NULL));
}

/* 1 when p is device (or managed) memory the GPU can address. */
static int is_device(const void *p) {
  cudaPointerAttributes a;
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static int nc_rank(void *ctx) {
  return ((nc_ctx *)ctx)->rank;
}
static int nc_size(void *ctx) {
  return ((nc_ctx *)ctx)->size;
}

enum { NC_ALLREDUCE, NC_BROADCAST, NC_ALLGATHER };

/* Queues one collective on the instance's stream; host buffers through a
 * staging block (in, collective, back out). *out_req (when not NULL) gets
 * a request to wait for; without one the call waits itself for host
 * buffers. */
static tc_status nc_run(nc_ctx *n, int op, const tc_comm_args *a,
                        nc_req **out_req, const char *fn) {
  cu_ctx *c = n->be;
  if (!a || a->struct_size < sizeof *a)
    return cu_einval(fn, "args is NULL or struct_size too small");
  size_t in_bytes, out_bytes;
  switch (op) {
  case NC_ALLREDUCE:
    in_bytes = out_bytes = a->count * sizeof(float);
    break;
  case NC_BROADCAST:
    in_bytes = out_bytes = a->bytes;
    break;
  default:
    in_bytes = a->bytes;
    out_bytes = a->bytes * (size_t)n->size;
    break;
  }
  void *hin = a->buf, *hout = op == NC_ALLGATHER ? a->recv : a->buf;
  if ((in_bytes && !hin) || (out_bytes && !hout))
    return cu_einval(fn, "buffer is NULL");
  tc_status st = cu_enter(c, fn);
  if (st != TC_OK)
    return st;
  int dev = (!in_bytes || is_device(hin)) && (!out_bytes || is_device(hout));
  void *stage = NULL, *din = hin, *dout = hout;
  if (!dev) {
    if ((st = cu_check(
             cudaMallocAsync(&stage, in_bytes + out_bytes + 1, c->stream),
             fn)) != TC_OK)
      return st;
    din = stage;
    dout = op == NC_ALLGATHER ? (char *)stage + in_bytes : stage;
    if (in_bytes)
      st = cu_check(cudaMemcpyAsync(din, hin, in_bytes, cudaMemcpyHostToDevice,
                                    c->stream),
                    fn);
  }
  if (st == TC_OK) {
    switch (op) {
    case NC_ALLREDUCE:
      st = nc_check(ncclAllReduce(din, dout, a->count, ncclFloat, ncclSum,
                                  n->comm, c->stream),
                    fn);
      break;
    case NC_BROADCAST:
      st = nc_check(ncclBroadcast(din, dout, a->bytes, ncclUint8, a->root,
                                  n->comm, c->stream),
                    fn);
      break;
    default:
      st = nc_check(
          ncclAllGather(din, dout, a->bytes, ncclUint8, n->comm, c->stream),
          fn);
      break;
    }
  }
  if (st == TC_OK && !dev && out_bytes)
    st = cu_check(cudaMemcpyAsync(hout, dout, out_bytes, cudaMemcpyDeviceToHost,
                                  c->stream),
                  fn);
  if (out_req && st == TC_OK) {
    nc_req *r = (nc_req *)calloc(1, sizeof *r);
    if (!r)
      st = tc_backend_error(TC_ENOMEM, "nccl %s: out of memory", fn);
    else if ((st = cu_check(
                  cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming),
                  fn)) != TC_OK ||
             (st = cu_check(cudaEventRecord(r->done, c->stream), fn)) !=
                 TC_OK) {
      if (r->done)
        (void)cudaEventDestroy(r->done);
      free(r);
    } else {
      r->stage = stage;
      *out_req = r;
      return TC_OK;
    }
  }
  /* host buffers: the result must be there on return */
  if (st == TC_OK && !dev)
    st = cu_check(cudaStreamSynchronize(c->stream), fn);
  if (stage)
    (void)cudaFreeAsync(stage, c->stream);
  return st;
}

static tc_status nc_allreduce(void *ctx, const tc_comm_args *a) {
  return nc_run((nc_ctx *)ctx, NC_ALLREDUCE, a, NULL, "allreduce_sum");
}

static tc_status nc_broadcast(void *ctx, const tc_comm_args *a) {
  nc_ctx *n = (nc_ctx *)ctx;
  if (a && (a->root < 0 || a->root >= n->size))
    return cu_einval("broadcast", "root outside [0, size)");
  return nc_run(n, NC_BROADCAST, a, NULL, "broadcast");
}

static tc_status nc_allgather(void *ctx, const tc_comm_args *a) {
  return nc_run((nc_ctx *)ctx, NC_ALLGATHER, a, NULL, "allgather");
}

static tc_status nc_barrier(void *ctx) {
  nc_ctx *n = (nc_ctx *)ctx;
  float one = 1.f;
  tc_comm_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.buf = &one;
  a.count = 1;
  return nc_run(n, NC_ALLREDUCE, &a, NULL, "barrier"); /* waits: host */
}

static tc_status nc_start(void *ctx, const tc_comm_args *a, void **out_req) {
  nc_req *r = NULL;
  tc_status st = nc_run((nc_ctx *)ctx, NC_ALLREDUCE, a, &r, "allreduce_start");
  if (st == TC_OK)
    *out_req = r;
  return st;
}

/* Device buffers are done for the stream's later work at once; host ones
 * when the copy back has finished. */
static tc_status nc_test(void *ctx, void *req, int *out_done) {
  (void)ctx;
  nc_req *r = (nc_req *)req;
  if (!r->stage) {
    *out_done = 1;
    return TC_OK;
  }
  cudaError_t e = cudaEventQuery(r->done);
  if (e == cudaErrorNotReady) {
    (void)cudaGetLastError();
    *out_done = 0;
    return TC_OK;
  }
  *out_done = 1;
  return cu_check(e, "test");
}

static tc_status nc_wait(void *ctx, void *req) {
  nc_ctx *n = (nc_ctx *)ctx;
  nc_req *r = (nc_req *)req;
  tc_status st = TC_OK;
  if (r->stage) {
    st = cu_check(cudaEventSynchronize(r->done), "wait");
    (void)cudaFreeAsync(r->stage, n->be->stream);
  }
  (void)cudaEventDestroy(r->done);
  free(r);
  return st;
}

static void *nc_device_context(void *ctx) {
  return ((nc_ctx *)ctx)->be;
}

static void nc_destroy(void *ctx) {
  nc_ctx *n = (nc_ctx *)ctx;
  if (!n)
    return;
  if (n->comm) {
    (void)cudaStreamSynchronize(n->be->stream);
    (void)ncclCommDestroy(n->comm);
  }
  (void)cudaGetLastError();
  free(n);
}

static tc_comm_iface make_nc_iface(void) {
  tc_comm_iface t;
  memset(&t, 0, sizeof t);
  t.api_version = TC_COMM_API_VERSION;
  t.struct_size = sizeof t;
  t.name = "nccl";
  t.rank = nc_rank;
  t.size = nc_size;
  t.allreduce_sum = nc_allreduce;
  t.broadcast = nc_broadcast;
  t.allgather = nc_allgather;
  t.barrier = nc_barrier;
  t.allreduce_start = nc_start;
  t.test = nc_test;
  t.wait = nc_wait;
  t.abort = NULL;
  t.destroy = nc_destroy;
  t.device_context = nc_device_context;
  return t;
}

static const tc_comm_iface nc_iface = make_nc_iface();

tc_status cu_nccl_unique_id(void *out_id, size_t id_bytes) {
  if (!out_id || id_bytes < sizeof(ncclUniqueId))
    return tc_backend_error(TC_EINVAL,
                            "nccl unique_id: out_id is NULL or "
                            "id_bytes %zu < %zu",
                            id_bytes, sizeof(ncclUniqueId));
  ncclUniqueId id;
  tc_status st = nc_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  if (st == TC_OK) {
    memset(out_id, 0, id_bytes);
    memcpy(out_id, &id, sizeof id);
  }
  return st;
}

tc_status cu_comm_create_nccl(tc_comm **out, void *backend_ctx, const void *id,
                              size_t id_bytes, int rank, int size) {
  cu_ctx *c = (cu_ctx *)backend_ctx;
  if (!out || !c || !id)
    return tc_backend_error(TC_EINVAL, "nccl comm_create: out, backend_ctx "
                                       "or id is NULL");
  if (id_bytes < sizeof(ncclUniqueId) || size < 1 || rank < 0 || rank >= size)
    return tc_backend_error(TC_EINVAL,
                            "nccl comm_create: id_bytes %zu < "
                            "%zu, or rank %d outside [0, size %d)",
                            id_bytes, sizeof(ncclUniqueId), rank, size);
  tc_status st = cu_enter(c, "nccl comm_create");
  if (st != TC_OK)
    return st;
  nc_ctx *n = (nc_ctx *)calloc(1, sizeof *n);
  if (!n)
    return tc_backend_error(TC_ENOMEM, "nccl comm_create: out of memory");
  n->be = c;
  n->rank = rank;
  n->size = size;
  ncclUniqueId uid;
  memcpy(&uid, id, sizeof uid);
  /* collective: returns when every rank has joined */
  if ((st = nc_check(ncclCommInitRank(&n->comm, size, uid, rank),
                     "ncclCommInitRank")) != TC_OK) {
    free(n);
    return st;
  }
  return tc_comm_create(out, &nc_iface, n); /* destroys n on failure */
}

#endif /* TC_HAVE_NCCL */

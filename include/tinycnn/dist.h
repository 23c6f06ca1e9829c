/**
 * @file
 * @brief tinycnn/dist.h - data-parallel training: the communicator table, the
 * built-in single-process communicators, and a data-parallel wrapper over
 * a model. Included by <libtinycnn.h>.
 *
 * A communicator (tc_comm) is a group of `size` ranks, each holding one
 * handle, that run the same collective calls in the same order. Its
 * operations come from a small versioned table (tc_comm_iface), as compute
 * comes from the backend table, so the core never includes mpi.h: MPI
 * lives in libtinycnn-mpi (<tinycnn_mpi.h>, `pkg-config tinycnn-mpi`), and
 * a program that never uses it does not link MPI. Two communicators are
 * built in: tc_comm_create_local() (one rank) and tc_comm_create_group()
 * (n ranks in one process, one thread each), which the tests use.
 *
 * Buffers handed to a communicator are host memory. Every collective of a
 * table gives every rank the same result; the built-in ones sum in rank
 * order, so their sums are also the same from run to run.
 *
 * tc_ddp wraps a model for data-parallel training in the manner of PyTorch's
 * DistributedDataParallel: at creation rank 0's parameters and buffers are
 * broadcast; each rank runs forward and backward on its share of every
 * global batch, and the gradients are averaged across ranks in buckets
 * (contiguous ranges of the gradient arena, in reverse parameter order),
 * each bucket's all-reduce started as soon as the layers that fill it have
 * finished their backward. See docs/distributed.md.
 */
#ifndef TINYCNN_DIST_H
#define TINYCNN_DIST_H

#include "core.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== the communicator table ============================================ */

/** The communicator API version this header describes. */
#define TC_COMM_API_VERSION 1

/**
 * Arguments of every collective slot. Fields a slot does not use are
 * ignored. Buffers are host memory, or also device memory of one backend
 * instance where the table's device_context slot says so.
 */
typedef struct tc_comm_args {
  size_t struct_size; /**< sizeof(tc_comm_args) the core was built with */
  void *buf;          /**< allreduce (float, in place), broadcast (bytes),
                           allgather: this rank's `bytes` to send */
  void *recv;         /**< allgather: size * bytes; rank r's at r * bytes */
  size_t count;       /**< allreduce: number of floats */
  size_t bytes;       /**< broadcast, allgather: bytes per rank */
  int32_t root;       /**< broadcast: the sending rank */
  int32_t reserved0;  /**< reserved for a later field; 0 */
} tc_comm_args;

/**
 * A communicator implementation (version 1). Slots may only be appended;
 * the core accepts a table whose api_version is not newer than its own.
 * Each slot gets the context its create function returned. Collectives
 * are called by every rank in the same order. All slots return tc_status
 * and set a message with tc_set_error()-like care: the core adds the
 * operation's name.
 */
typedef struct tc_comm_iface {
  uint32_t api_version; /**< TC_COMM_API_VERSION the table was built for */
  uint32_t reserved0;   /**< reserved for a later field; set to 0 */
  size_t struct_size;   /**< sizeof(tc_comm_iface) of the builder */
  const char *name;     /**< "local", "group", "mpi", ... */
  /** This rank, in [0, size). */
  int (*rank)(void *ctx);
  /** The number of ranks, >= 1. */
  int (*size)(void *ctx);
  /** buf (count floats) <- the sum over ranks, the same on every rank. */
  tc_status (*allreduce_sum)(void *ctx, const tc_comm_args *a);
  /** buf (bytes) <- root's buf. */
  tc_status (*broadcast)(void *ctx, const tc_comm_args *a);
  /** recv (size * bytes) <- every rank's buf, in rank order. */
  tc_status (*allgather)(void *ctx, const tc_comm_args *a);
  /** Returns once every rank has called it. */
  tc_status (*barrier)(void *ctx);
  /** Starts allreduce_sum of buf; *out_req identifies it until waited
   *  for. buf must not be touched until then. NULL: the core runs the
   *  blocking slot instead (no overlap). */
  tc_status (*allreduce_start)(void *ctx, const tc_comm_args *a,
                               void **out_req);
  /** Lets a started operation progress; *out_done = 1 once it has
   *  finished (it must still be waited for). May be NULL. */
  tc_status (*test)(void *ctx, void *req, int *out_done);
  /** Waits until the operation has finished and releases req. */
  tc_status (*wait)(void *ctx, void *req);
  /** Ends every rank of the job (MPI_Abort) with `code`; the core only
   *  calls it from tc_comm_abort(). May be NULL. */
  void (*abort)(void *ctx, int code);
  /** Releases the context. */
  void (*destroy)(void *ctx);
  /** The backend instance context (tc_backend_get_context()) whose device
   *  memory the collectives also accept as buf and recv, or NULL for host
   *  memory only. Operations on such buffers are ordered with that
   *  backend's own work (its stream): they may return before the data has
   *  arrived, and the backend's later operations see the result. The
   *  data-parallel wrapper then all-reduces gradients in place on the
   *  device instead of staging them through the host. May be NULL. */
  void *(*device_context)(void *ctx);
  /* ---- end of API version 1 ---- */
} tc_comm_iface;

/** A communicator: this process's handle on a group of ranks (opaque). */
typedef struct tc_comm tc_comm;
/** A started all-reduce (tc_comm_allreduce_start). */
typedef struct tc_comm_request tc_comm_request;

/**
 * Wraps an implementation: `ctx` is owned by the communicator from now on
 * (iface->destroy releases it, even when this call fails). The table must
 * outlive the communicator.
 * @return TC_OK, TC_EINVAL (NULL, a required slot missing, a size below
 *         1 or a rank outside [0, size)), TC_EVERSION (api_version newer
 *         than TC_COMM_API_VERSION; both numbers are named), TC_ENOMEM.
 */
TC_API tc_status tc_comm_create(tc_comm **out, const tc_comm_iface *iface,
                                void *ctx);
/** A communicator of one rank: every collective is a copy or nothing.
 *  @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_comm_create_local(tc_comm **out);
/**
 * `n` communicators of one group in this process: out[r] is rank r of n.
 * Each is used by one thread (its rank); the group lives until every
 * member is destroyed. A member whose peers never arrive waits for them:
 * like MPI, a collective that one rank skips blocks the others.
 * @return TC_OK, TC_EINVAL (NULL, n < 1 or n > 1024), TC_ENOMEM.
 */
TC_API tc_status tc_comm_create_group(tc_comm **out, int n);
/** Releases the handle (and the context). NULL ok. */
TC_API void tc_comm_destroy(tc_comm *c);
/** This rank, in [0, size); -1 on NULL. */
TC_API int tc_comm_rank(const tc_comm *c);
/** The number of ranks; -1 on NULL. */
TC_API int tc_comm_size(const tc_comm *c);
/** The implementation's name ("local", "group", "mpi"); never NULL. */
TC_API const char *tc_comm_name(const tc_comm *c);

/** buf (count floats, host) <- the sum over every rank's buf.
 *  @return TC_OK, TC_EINVAL, or the implementation's error. */
TC_API tc_status tc_comm_allreduce_sum(tc_comm *c, float *buf, size_t count);
/** buf (bytes, host) <- rank `root`'s buf. @return TC_OK, TC_EINVAL, ... */
TC_API tc_status tc_comm_broadcast(tc_comm *c, void *buf, size_t bytes,
                                   int root);
/** recv (size * bytes) <- every rank's send (bytes), in rank order.
 *  @return TC_OK, TC_EINVAL, ... */
TC_API tc_status tc_comm_allgather(tc_comm *c, const void *send, void *recv,
                                   size_t bytes);
/** Returns once every rank has called it. */
TC_API tc_status tc_comm_barrier(tc_comm *c);
/**
 * Starts an all-reduce sum of buf (count floats) that runs while the
 * caller goes on; buf must not be read or written until tc_comm_wait().
 * @return TC_OK, TC_EINVAL, TC_ENOMEM, or the implementation's error.
 */
TC_API tc_status tc_comm_allreduce_start(tc_comm *c, float *buf, size_t count,
                                         tc_comm_request **out);
/** Lets `r` progress; *out_done = 1 once it has finished. */
TC_API tc_status tc_comm_test(tc_comm *c, tc_comm_request *r, int *out_done);
/** Waits for `r` to finish and releases it (also on failure). */
TC_API tc_status tc_comm_wait(tc_comm *c, tc_comm_request *r);
/**
 * Ends the whole job: every rank of the communicator exits with `code`
 * (MPI_Abort). For a program that hit an error on one rank and must not
 * leave the others waiting in a collective. Returns only when the
 * implementation has no such slot (the built-in ones do not).
 * @return TC_EUNSUPPORTED, TC_EINVAL.
 */
TC_API tc_status tc_comm_abort(tc_comm *c, int code);

/* ==== data-parallel training ============================================ */

/** A model wrapped for data-parallel training, as PyTorch's
 *  DistributedDataParallel (opaque). */
typedef struct tc_ddp tc_ddp;

/** Options of tc_ddp_create(). */
typedef struct tc_ddp_options {
  size_t struct_size;         /**< sizeof(tc_ddp_options) as compiled */
  int64_t bucket_bytes;       /**< gradient bucket size; default 25 MiB
                                   (PyTorch's bucket_cap_mb) */
  int64_t first_bucket_bytes; /**< the first bucket (the last layers),
                                   started earliest; default 1 MiB */
  int32_t broadcast_buffers;  /**< default 1: rank 0's buffers (running
                                   statistics) go to every rank before each
                                   training forward, as PyTorch does */
  int32_t sync_batchnorm;     /**< default 0; 1: every BatchNorm normalises
                                   with the statistics of the global batch
                                   (torch.nn.SyncBatchNorm) */
  int32_t deterministic;      /**< default 0; 1: the same bits for any
                                   number of ranks (see chunks) */
  int32_t chunks;             /**< deterministic mode: the global batch is
                                   cut into this many fixed chunks (a
                                   multiple of the number of ranks), each
                                   run as its own micro-batch, and their
                                   gradients are summed in chunk order;
                                   default 8 */
} tc_ddp_options;
/** A tc_ddp_options with its struct_size set and the defaults. */
#define TC_DDP_OPTIONS_INIT                                                    \
  { sizeof(tc_ddp_options), 25 << 20, 1 << 20, 1, 0, 0, 8 }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_ddp_options_init(tc_ddp_options *o, size_t struct_size);

/**
 * Makes `m` data-parallel over `comm` (both borrowed: they must outlive the
 * wrapper). Collective: every rank calls it. Rank 0's parameters and
 * buffers are broadcast to every rank. With sync_batchnorm the model's
 * BatchNorm layers are switched to global statistics until the wrapper is
 * destroyed.
 * @return TC_OK, TC_EINVAL (NULL, bad options, chunks not a multiple of
 *         the size, sync_batchnorm with deterministic), TC_EVERSION,
 *         TC_ENOMEM, the communicator's errors.
 */
TC_API tc_status tc_ddp_create(tc_ddp **out, tc_model *m, tc_comm *comm,
                               const tc_ddp_options *opts);
/** Restores the model's batch norms and frees the wrapper. NULL ok. */
TC_API void tc_ddp_destroy(tc_ddp *d);

/**
 * Forward of this rank's share `x` (n_local, ...) of a global batch; *out
 * as tc_model_forward(). Collective in training mode: broadcasts the
 * buffers (broadcast_buffers) and adds up the ranks' batch sizes, which
 * weight the gradient average. x may be NULL on a rank whose share of a
 * (last, small) batch is empty; *out is then NULL. Not in deterministic
 * mode (use tc_ddp_train_step).
 * @return as tc_model_forward(), plus TC_ESTATE (deterministic mode) and
 *         the communicator's errors.
 */
TC_API tc_status tc_ddp_forward(tc_ddp *d, tc_tensor *x, tc_tensor **out);
/**
 * Backward of the last forward (dy NULL: the model's output gradient),
 * averaging the gradients across ranks while it runs. On return the
 * gradient arena holds, on every rank, what it held before plus the
 * gradient of the global batch's mean loss (each rank's local mean
 * weighted by its share). Collective.
 * @return as tc_model_backward(), plus the communicator's errors.
 */
TC_API tc_status tc_ddp_backward(tc_ddp *d, const tc_tensor *dy);
/**
 * One training step's forward, loss and backward: x (n_local, ...) and
 * labels y (n_local) are this rank's share (NULL when empty); on return
 * the gradients are averaged as by tc_ddp_backward() and *out_loss (may be
 * NULL) holds the global batch's mean loss, *out_correct (may be NULL) the
 * global number of top-1 hits. In deterministic mode the global batch is
 * run as `chunks` micro-batches (gradient accumulation) whose gradients,
 * losses and BatchNorm running statistics are combined in chunk order, so
 * the result has the same bits on any number of ranks. Collective.
 * @return as tc_ddp_forward() and tc_loss_compute().
 */
TC_API tc_status tc_ddp_train_step(tc_ddp *d, tc_loss *loss, tc_tensor *x,
                                   const tc_tensor *y, float *out_loss,
                                   int64_t *out_correct);
/** Broadcasts rank 0's buffers (running statistics) to every rank, e.g.
 *  before evaluating on shards. Collective. @return TC_OK, TC_EINVAL, the
 *  communicator's errors. */
TC_API tc_status tc_ddp_sync_buffers(tc_ddp *d);
/** The wrapped model (borrowed); NULL for NULL. */
TC_API tc_model *tc_ddp_model(const tc_ddp *d);
/** The wrapper's communicator (borrowed); NULL for NULL. */
TC_API tc_comm *tc_ddp_comm(const tc_ddp *d);
/** The number of gradient buckets (fixed at creation); -1 on NULL. */
TC_API int64_t tc_ddp_num_buckets(const tc_ddp *d);

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_DIST_H */

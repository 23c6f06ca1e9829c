/**
 * @file
 * @brief tinycnn_mpi.h - the MPI communicator, in its own library
 * libtinycnn-mpi
 * (`pkg-config --cflags --libs tinycnn-mpi`), so that libtinycnn never
 * includes mpi.h and a program that does not use MPI does not link it.
 *
 * tc_comm_create_mpi() returns an ordinary tc_comm (see <tinycnn/dist.h>):
 * every collective goes through the tc_comm_* functions. The communicator
 * works on a duplicate of an MPI communicator (MPI_COMM_WORLD by default)
 * whose error handler is MPI_ERRORS_RETURN, so an MPI failure comes back
 * as TC_EBACKEND with MPI's own message in tc_last_error(). MPI may be
 * started by the library (MPI_Init_thread with MPI_THREAD_FUNNELED: call
 * the communicator from one thread at a time, the one that created it) or
 * by the caller, before the first communicator is made. Built and tested
 * with Open MPI 4.1 and MPICH 4. See docs/distributed.md.
 */
#ifndef TINYCNN_MPI_H
#define TINYCNN_MPI_H

#include "libtinycnn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- export macro ------------------------------------------------------ */
/** @def TC_MPI_API
 *  Marks a public function of libtinycnn-mpi: default visibility while
 *  that library is built (TINYCNN_MPI_BUILDING), empty for programs. */
#if defined(_WIN32)
#define TC_MPI_API
#elif defined(TINYCNN_MPI_BUILDING) && defined(__GNUC__)
#define TC_MPI_API __attribute__((visibility("default")))
#else
#define TC_MPI_API
#endif

/** Options of tc_comm_create_mpi(). */
typedef struct tc_mpi_options {
  size_t struct_size; /**< sizeof(tc_mpi_options) as compiled */
  void *mpi_comm;     /**< a pointer to the MPI_Comm to duplicate (borrowed,
                           read during the call only); NULL: MPI_COMM_WORLD */
  int32_t init_mpi;   /**< default 1: start MPI (MPI_Init_thread with
                           MPI_THREAD_FUNNELED) if it is not running yet, and
                           end it (MPI_Finalize) when the last communicator
                           made by this library is destroyed, unless the
                           caller started it. 0: MPI must already be running
                           and is never ended here */
  int32_t reserved0;  /**< reserved for a later field; set to 0 */
} tc_mpi_options;
/** A tc_mpi_options with its struct_size set and the defaults. */
#define TC_MPI_OPTIONS_INIT                                                    \
  { sizeof(tc_mpi_options), NULL, 1, 0 }

/**
 * Fills `o` with the defaults (TC_MPI_OPTIONS_INIT), for a struct of
 * `struct_size` bytes (sizeof *o as the caller was compiled).
 * @param o the options to fill (not NULL).
 * @param struct_size sizeof(tc_mpi_options) as the caller sees it.
 * @return TC_OK, TC_EINVAL (o NULL, struct_size too small), TC_EVERSION
 *         (struct_size larger than this library's).
 */
TC_MPI_API tc_status tc_mpi_options_init(tc_mpi_options *o, size_t struct_size);

/**
 * Makes a communicator over MPI: rank and size are those of the duplicated
 * MPI communicator. Collective over that MPI communicator: every one of its
 * processes calls it. Once the last communicator made by this library is
 * destroyed after it started MPI, MPI has ended and cannot be started
 * again in this process.
 *
 * Buffers are host memory. Sizes over INT_MAX elements are sent in
 * several MPI calls. tc_comm_abort() calls MPI_Abort(). Asynchronous
 * all-reduces are MPI_Iallreduce(): MPI advances them when it is called,
 * so call tc_comm_test() now and then while one runs.
 *
 * @param out receives the communicator (release with tc_comm_destroy(),
 *        which frees the duplicate and may end MPI, see init_mpi).
 * @param opts NULL for the defaults, or options filled by
 *        tc_mpi_options_init() / TC_MPI_OPTIONS_INIT.
 * @return TC_OK, TC_EINVAL (out NULL, bad options), TC_EVERSION (options
 *         newer than this library), TC_ESTATE (MPI not running and
 *         init_mpi is 0, or MPI already ended), TC_ENOMEM, TC_EBACKEND (an
 *         MPI call failed; its message is in tc_last_error()).
 */
TC_MPI_API tc_status tc_comm_create_mpi(tc_comm **out,
                                        const tc_mpi_options *opts);

/**
 * This process's rank among the processes of MPI_COMM_WORLD that share its
 * node (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED), e.g. to pick a
 * GPU. Collective over MPI_COMM_WORLD; MPI must be running (after
 * tc_comm_create_mpi(), or started by the caller).
 * @param out receives the node-local rank, from 0.
 * @return TC_OK, TC_EINVAL (out NULL), TC_ESTATE (MPI not running),
 *         TC_EBACKEND (an MPI call failed).
 */
TC_MPI_API tc_status tc_mpi_local_rank(int *out);

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_MPI_H */

/*
 * dist.h - the trainers' data-parallel set-up: an MPI communicator when the
 * program was started by mpirun / mpiexec (and built with libtinycnn-mpi),
 * otherwise a communicator of one rank.
 */
#ifndef TC_EXAMPLE_DIST_H
#define TC_EXAMPLE_DIST_H

#include <libtinycnn.h>

/* Opens the run's communicator into *out (see the top). */
tc_status dist_open(tc_comm **out);

#endif

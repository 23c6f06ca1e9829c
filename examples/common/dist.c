/*
 * dist.c - which communicator a trainer runs on. Launchers announce
 * themselves through the environment: Open MPI's mpirun sets
 * OMPI_COMM_WORLD_SIZE, MPICH's Hydra sets PMI_SIZE, PMIx launchers
 * PMIX_RANK. Without one, the program is a single rank and never starts
 * MPI (so it also runs where no MPI is installed).
 */
#include "dist.h"

#include <stdlib.h>

#ifdef TC_TRAINER_MPI
#include <tinycnn_mpi.h>
#endif

static const char *launcher_size(void) {
  static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                               NULL};
  for (int i = 0; vars[i]; i++)
    if (getenv(vars[i]))
      return vars[i];
  return NULL;
}

tc_status dist_open(tc_comm **out) {
  const char *var = launcher_size();
  if (!var)
    return tc_comm_create_local(out);
#ifdef TC_TRAINER_MPI
  return tc_comm_create_mpi(out, NULL);
#else
  const char *size = getenv("OMPI_COMM_WORLD_SIZE");
  if (!size)
    size = getenv("PMI_SIZE");
  if (size && atoi(size) > 1)
    return tc_set_error(TC_EUNSUPPORTED,
                        "started by an MPI launcher (%s is set) but built "
                        "without libtinycnn-mpi: rebuild with -Dmpi=enabled",
                        var);
  return tc_comm_create_local(out);
#endif
}

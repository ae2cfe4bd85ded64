/* fault_mpi.c — failures on one rank only that no agreement can undo stop every rank
 * (cli_fault.sh runs it).
 *
 * Mode "recv" (default): rank 0 sends four ints to the last rank, which posts a receive for
 * one (MPI_ERR_TRUNCATE on the last rank only), while every other rank enters a barrier on
 * the same communicator that the last rank will never reach. With dptrain's error handler the last rank prints
 * one "fatal on rank" line and MPI_Abort ends the job; with MPI_ERRORS_RETURN the others
 * would wait in the barrier forever.
 * Mode "collective": a collective call (standing for a collective HDF5 open) reported failed
 * by the last rank only, through dpt_comm_agree_collective: rank 0 prints one line and aborts.
 * Exit 0 (the test fails) only if the job was not aborted. */
#include <stdio.h>
#include <string.h>

#include "dptrain/comm.h"

int main(int argc, char **argv) {
  dpt_comm_preinit(); /* Open MPI parameters (comm.h) */
  MPI_Init(&argc, &argv);
  dpt_comm c;
  if (dpt_comm_init_world(&c) != DPT_OK || c.size < 2) {
    fprintf(stderr, "fault_mpi: needs 2 or more ranks\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  int last = c.size - 1, data[4] = {1, 2, 3, 4};
  if (argc > 1 && !strcmp(argv[1], "collective")) {
    dpt_status local = DPT_OK;
    if (c.rank == last) local = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "test.h5: cannot open");
    dpt_status st = dpt_comm_agree_collective(&c, local, "opening the test file");
    fprintf(stderr, "fault_mpi: rank %d: dpt_comm_agree_collective returned %d instead of aborting\n", c.rank, st);
  }
  if (c.rank == 0) MPI_Send(data, 4, MPI_INT, last, 7, c.comm);
  if (c.rank == last) {
    int rc = MPI_Recv(data, 1, MPI_INT, 0, 7, c.comm, MPI_STATUS_IGNORE);
    fprintf(stderr, "fault_mpi: rank %d: MPI_Recv returned %d instead of aborting\n", c.rank, rc);
  }
  MPI_Barrier(c.comm);
  dpt_comm_finalize(&c);
  MPI_Finalize();
  return 0;
}

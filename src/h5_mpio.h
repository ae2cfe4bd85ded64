/* h5_mpio.h — collective HDF5 file access over a dpt_comm, shared by dataset.c and
 * checkpoint_io.c only.
 *
 * Opening or creating a file through MPI-IO involves three collective steps, and a rank that
 * leaves before one of them leaves the others in it for ever. So: each rank checks what it
 * can locally (the file is there, readable, HDF5; the directory is writable) and the ranks
 * agree; then dpt_h5_mpio_fapl (collective: the MPI-IO driver duplicates the communicator);
 * then the collective H5Fopen/H5Fcreate, whose outcome dpt_comm_agree_collective checks (a
 * file open on some ranks only cannot be closed: the job is aborted). */
#ifndef DPTRAIN_H5_MPIO_H
#define DPTRAIN_H5_MPIO_H

#include <hdf5.h>

#include "dptrain/comm.h"

enum {
  DPT_H5_COLL_READS = 1,  /* every metadata read collective (one rank reads, broadcasts) */
  DPT_H5_CREATE = 2,      /* for H5Fcreate: collective metadata writes, the HDF5 1.8 format */
};

/* Collective, called by every rank once the local checks are agreed. On DPT_OK *fapl is a
 * file access property list for MPI-IO over c->comm (the caller closes it with H5Pclose);
 * on a failure (agreed: every rank returns it) *fapl is H5I_INVALID_HID. path names the file
 * in the message. */
dpt_status dpt_h5_mpio_fapl(const dpt_comm *c, const char *path, int flags, hid_t *fapl);

#endif

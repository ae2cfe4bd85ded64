/* h5_mpio.h — collective HDF5 file access over a dpt_comm, shared by dataset.c and
 * checkpoint_io.c only.
 *
 * Opening or creating a file through MPI-IO involves three collective steps, and a rank that
 * leaves before one of them leaves the others in it for ever. So: each rank checks what it
 * can locally (the file is there, readable, HDF5; the directory is writable) and the ranks
 * agree; then dpt_h5_mpio_fapl (collective: the MPI-IO driver duplicates the communicator);
 * then the collective H5Fopen/H5Fcreate, whose outcome dpt_comm_agree_collective checks (a
 * file open on some ranks only cannot be closed: the job is aborted).
 *
 * An MPI-IO error once a file is open (a read or write that fails on one rank: EIO, a full
 * disk) happens inside a collective HDF5 call. HDF5 then takes its error path on that rank
 * only and its internal collectives no longer match the other ranks' (measured with
 * tests/io_fault.c under OMPIO: a failed pwritev in H5Fflush left one rank in MPI_Barrier,
 * the other in MPI_Bcast), so it cannot be agreed: dpt_h5_mpio_fapl installs, once, a default
 * MPI file error handler that prints `dptrain: fatal on rank R: <path>: MPI-IO failed:
 * <MPI's message>; last system error: <errno's> ...` and calls MPI_Abort. It sees the errors
 * the MPI-IO layer returns: ROMIO returns them, Open MPI 4.1's OMPIO drops failed reads, which
 * is why dpt_comm_preinit selects ROMIO (comm.h). A failed MPI_File_open is not fatal (it is
 * reported by H5Fopen/H5Fcreate and agreed as above). dpt_h5_mpio_watch names an opened file
 * in that message. The fapl also carries ROMIO's hints romio_ds_read = disable and
 * romio_cb_read = disable, unless ROMIO_HINTS names a hints file (see h5_mpio.c). */
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

/* Local. Records that the open HDF5 file `file` (opened with a fapl from dpt_h5_mpio_fapl) is
 * path, for the fatal MPI-IO message (a copy of the path is kept; at most 16 files are
 * named, later ones are reported as the file last opened). dpt_h5_mpio_unwatch(file) after
 * H5Fclose forgets it. */
void dpt_h5_mpio_watch(hid_t file, const char *path);
void dpt_h5_mpio_unwatch(hid_t file);

/* Local (metadata only; collective metadata reads make every rank read the same). Is every
 * element of dataset d stored in the file? A dataset may declare a huge extent and store
 * little (chunks never written, contiguous storage never allocated): reading it yields fill
 * values, and sizes derived from its extent would be taken on trust. Chunked: *need is the
 * number of chunks the extent covers and *have the number allocated (HDF5 >= 1.10.5);
 * contiguous: bytes of the extent and bytes stored; compact or another layout: 0 and 0.
 * *unit names them ("chunks" or "bytes"). Returns -1 when the layout cannot be read, else 0;
 * the data is complete when *have >= *need. */
int dpt_h5_stored(hid_t d, unsigned long long *have, unsigned long long *need, const char **unit);

/* Local. Reads attribute a, which must hold exactly one element (scalar or of one element),
 * into *out as memtype: H5Aread writes every element, so an array attribute read into one
 * variable overruns it. Returns -1 when a holds another count or the read fails. */
herr_t dpt_h5_read_one(hid_t a, hid_t memtype, void *out);

#endif

/* h5_mpio.c — collective HDF5 file access over a dpt_comm (see h5_mpio.h). */
#include "h5_mpio.h"

dpt_status dpt_h5_mpio_fapl(const dpt_comm *c, const char *path, int flags, hid_t *fapl) {
  dpt_status st = DPT_OK;
  *fapl = H5Pcreate(H5P_FILE_ACCESS); /* local: the properties first, then the collective driver */
  bool ok = *fapl >= 0;
  if (ok && (flags & DPT_H5_COLL_READS)) ok = H5Pset_all_coll_metadata_ops(*fapl, true) >= 0;
  if (ok && (flags & DPT_H5_CREATE))
    ok = H5Pset_coll_metadata_write(*fapl, true) >= 0 &&
         H5Pset_libver_bounds(*fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0;
  if (!ok)
    st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot set up HDF5 file access properties",
                       path);
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK) { /* collective: duplicates c->comm */
    if (H5Pset_fapl_mpio(*fapl, c->comm, MPI_INFO_NULL) < 0)
      st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot set up MPI-IO file access", path);
    st = dpt_comm_agree_collective(c, st, "setting up MPI-IO file access");
  }
  if (st != DPT_OK && *fapl >= 0) {
    H5Pclose(*fapl);
    *fapl = H5I_INVALID_HID;
  }
  return st;
}

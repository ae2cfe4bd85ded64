/* h5_mpio.c — collective HDF5 file access over a dpt_comm (see h5_mpio.h). */
#include "h5_mpio.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The files named in the fatal message: their MPI-IO handle, HDF5 id and path (copied). */
enum { WATCH_MAX = 16, WATCH_PATH = 512 };
static struct {
  bool used;
  hid_t file;
  MPI_File fh;
  char path[WATCH_PATH];
} g_watch[WATCH_MAX];
static char g_last[WATCH_PATH]; /* the file last given a fapl: a file being opened */

static void on_file_error(MPI_File *fh, int *code, ...) {
  int err = errno; /* the failed system call's, as a rule (MPI's error class is coarser: ENOSPC is MPI_ERR_IO) */
  if (*fh == MPI_FILE_NULL) return; /* MPI_File_open failed: H5Fopen/H5Fcreate report it, agreed */
  const char *path = g_last;
  for (int i = 0; i < WATCH_MAX; ++i)
    if (g_watch[i].used && g_watch[i].fh == *fh) {
      path = g_watch[i].path;
      break;
    }
  char what[MPI_MAX_ERROR_STRING + 1] = "";
  int len = 0, rank = -1;
  if (MPI_Error_string(*code, what, &len) != MPI_SUCCESS) snprintf(what, sizeof what, "error code %d", *code);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  fprintf(stderr,
          "dptrain: fatal on rank %d: %s: MPI-IO failed: %s%s%s (inside a collective HDF5 call, which the other ranks "
          "cannot leave; stopping all)\n",
          rank, path, what, err ? "; last system error: " : "", err ? strerror(err) : "");
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

void dpt_h5_mpio_watch(hid_t file, const char *path) {
  MPI_File *fh = NULL;
  if (H5Fget_vfd_handle(file, H5P_DEFAULT, (void **)&fh) < 0 || !fh) return;
  for (int i = 0; i < WATCH_MAX; ++i)
    if (!g_watch[i].used) {
      g_watch[i].used = true;
      g_watch[i].file = file;
      g_watch[i].fh = *fh;
      snprintf(g_watch[i].path, WATCH_PATH, "%s", path);
      return;
    }
}

void dpt_h5_mpio_unwatch(hid_t file) {
  for (int i = 0; i < WATCH_MAX; ++i)
    if (g_watch[i].used && g_watch[i].file == file) g_watch[i].used = false;
}

dpt_status dpt_h5_mpio_fapl(const dpt_comm *c, const char *path, int flags, hid_t *fapl) {
  dpt_status st = DPT_OK;
  static bool handler_set = false;
  if (!handler_set) { /* the default for every file MPI-IO opens from now on */
    MPI_Errhandler h;
    handler_set = MPI_File_create_errhandler(on_file_error, &h) == MPI_SUCCESS &&
                  MPI_File_set_errhandler(MPI_FILE_NULL, h) == MPI_SUCCESS;
    if (handler_set) MPI_Errhandler_free(&h); /* MPI_FILE_NULL keeps its own reference */
  }
  snprintf(g_last, sizeof g_last, "%s", path);
  *fapl = H5Pcreate(H5P_FILE_ACCESS); /* local: the properties first, then the collective driver */
  bool ok = *fapl >= 0;
  if (ok && (flags & DPT_H5_COLL_READS)) ok = H5Pset_all_coll_metadata_ops(*fapl, true) >= 0;
  if (ok && (flags & DPT_H5_CREATE))
    ok = H5Pset_coll_metadata_write(*fapl, true) >= 0 &&
         H5Pset_libver_bounds(*fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0;
  if (!ok)
    st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot set up HDF5 file access properties",
                       path);
  /* ROMIO's read hints, unless the user names a hints file (ROMIO gives hints passed here
   * precedence over the file's). Measured with launch/bench-io at 1 and 2 ranks on one node
   * (README "I/O knobs"): data sieving (read a larger extent, copy out the selection) made the
   * loader's contiguous shard read run at 0.04 GB/s with 3x the memory instead of 3 GB/s;
   * collective buffering (two-phase reads through aggregators) made reads of scattered rows
   * 5x slower at 2 ranks. OMPIO ignores both hints. */
  MPI_Info info = MPI_INFO_NULL;
  const char *hints_file = getenv("ROMIO_HINTS");
  if (ok && !(hints_file && *hints_file) &&
      (MPI_Info_create(&info) != MPI_SUCCESS || MPI_Info_set(info, "romio_ds_read", "disable") != MPI_SUCCESS ||
       MPI_Info_set(info, "romio_cb_read", "disable") != MPI_SUCCESS))
    st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot set up MPI-IO hints", path);
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK) { /* collective: duplicates c->comm (and the info) */
    if (H5Pset_fapl_mpio(*fapl, c->comm, info) < 0)
      st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot set up MPI-IO file access", path);
    st = dpt_comm_agree_collective(c, st, "setting up MPI-IO file access");
  }
  if (info != MPI_INFO_NULL) MPI_Info_free(&info);
  if (st != DPT_OK && *fapl >= 0) {
    H5Pclose(*fapl);
    *fapl = H5I_INVALID_HID;
  }
  return st;
}

int dpt_h5_stored(hid_t d, unsigned long long *have, unsigned long long *need, const char **unit) {
  hid_t dcpl = H5Dget_create_plist(d), t = H5Dget_type(d), s = H5Dget_space(d); /* s: all selected */
  H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
  int rank = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
  hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK], stored = 0;
  bool ok = t >= 0 && rank >= 0 && layout != H5D_LAYOUT_ERROR && H5Sget_simple_extent_dims(s, dims, NULL) >= 0;
  *have = *need = 0;
  *unit = "bytes";
  if (ok && layout == H5D_CHUNKED) { /* at most the element count: no overflow */
    *unit = "chunks";
    ok = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) == rank && H5Dget_num_chunks(d, s, &stored) >= 0;
    *need = 1;
    for (int i = 0; ok && i < rank; ++i) {
      ok = chunk[i] > 0;
      if (ok) *need *= (dims[i] + chunk[i] - 1) / chunk[i];
    }
    *have = stored;
  } else if (ok && layout == H5D_CONTIGUOUS) {
    hssize_t elems = H5Sget_simple_extent_npoints(s);
    size_t size = H5Tget_size(t);
    ok = elems >= 0 && size > 0;
    if (ok) *need = (unsigned long long)elems <= ULLONG_MAX / size ? (unsigned long long)elems * size : ULLONG_MAX;
    *have = H5Dget_storage_size(d);
  }
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  if (dcpl >= 0) H5Pclose(dcpl);
  return ok ? 0 : -1;
}

herr_t dpt_h5_read_one(hid_t a, hid_t memtype, void *out) {
  hid_t s = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
  bool one = s >= 0 && H5Sget_simple_extent_npoints(s) == 1;
  if (s >= 0) H5Sclose(s);
  return one ? H5Aread(a, memtype, out) : -1;
}

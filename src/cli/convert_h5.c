/* convert_h5.c — the streaming HDF5 writer of `dptrain convert` (see convert.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "dptrain/comm.h"
#include "dptrain/types.h"
#include "dptrain/watchdog.h"

enum { CHUNK_BYTES = 64 << 20 };

static hid_t make_dataset(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims,
                          const dpt_h5out_opts *opts) {
  hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  int64_t cr = opts && opts->chunk_rows > 0 ? opts->chunk_rows : 4096;
  if ((hsize_t)cr > dims[0]) cr = (int64_t)dims[0];
  /* HDF5 refuses chunks of 4 GiB and more (a wide row times 4096 rows gets there), and a
   * reader reads a whole chunk for one row of it: at most CHUNK_BYTES, at least one row */
  hsize_t row_bytes = (rank == 2 ? dims[1] : 1) * H5Tget_size(type);
  if (row_bytes > 0 && (hsize_t)cr > CHUNK_BYTES / row_bytes) cr = (int64_t)(CHUNK_BYTES / row_bytes);
  if (cr < 1) cr = 1;
  hsize_t ch[2] = {(hsize_t)cr, rank == 2 ? dims[1] : 1};
  H5Pset_chunk(dcpl, rank, ch);
  if (opts && opts->gzip > 0) {
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, (unsigned)opts->gzip);
  }
  hid_t d = H5Dcreate2(file, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(sp);
  return d;
}

/* Closes the file (its metadata is written now). A failed H5Fclose leaves HDF5 holding a
 * half-closed file that it crashes on when the library shuts down (HDF5 1.10.8, found with
 * tests/io_fault.c: SIGSEGV in H5F__close_cb at MPI_Finalize; a second H5Fclose crashes at
 * once), so there is no clean return from it: the temporary file is removed and the job is
 * aborted with the cause (DESIGN "Errors"). */
static void close_file(dpt_h5out *o) {
  if (o->file < 0) return;
  herr_t e = H5Fclose(o->file);
  o->file = -1;
  if (e >= 0) return;
  if (o->tmp) remove(o->tmp);
  dpt_comm world = {.comm = MPI_COMM_WORLD};
  MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
  dpt_comm_abort(&world, "%s: closing the output failed (disk full?); HDF5 cannot release it, so the conversion stops here",
                 o->tmp ? o->tmp : "?");
}

dpt_status dpt_h5out_create(dpt_h5out *o, const char *path, int64_t n, int64_t d, hid_t x_type, int64_t k, hid_t y_type,
                            const dpt_h5out_opts *opts) {
  memset(o, 0, sizeof *o);
  o->file = o->X = o->y = -1;
  o->n = n;
  o->d = d;
  o->k = k;
  DPT_CHECK(n > 0 && d > 0, DPT_ERR_FORMAT, "%s: nothing to write (%lld rows, %lld features)", path, (long long)n,
            (long long)d);
  size_t len = strlen(path) + 32;
  DPT_CALL(dpt_alloc(len, 1, "output path", &o->path));
  DPT_CALL(dpt_alloc(len, 1, "temporary path", &o->tmp));
  snprintf(o->path, len, "%s", path);
  snprintf(o->tmp, len, "%s.tmp.%ld", path, (long)getpid());
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  o->file = H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (o->file < 0) {
    dpt_status st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__,
                                  "%s: cannot create the temporary output %s (directory writable?)", path, o->tmp);
    dpt_h5out_abort(o);
    return st;
  }
  hsize_t xd[2] = {(hsize_t)n, (hsize_t)d}, yd[2] = {(hsize_t)n, (hsize_t)(k > 0 ? k : 1)};
  o->X = make_dataset(o->file, "X", x_type, 2, xd, opts);
  o->y = make_dataset(o->file, "y", y_type, k > 0 ? 2 : 1, yd, opts);
  if (o->X < 0 || o->y < 0) {
    dpt_status st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot create /X and /y in %s",
                                  path, o->tmp);
    dpt_h5out_abort(o);
    return st;
  }
  return DPT_OK;
}

static herr_t write_rows(hid_t dset, int64_t first, int64_t rows, int64_t cols, int rank, hid_t mem, const void *buf) {
  hid_t fs = H5Dget_space(dset);
  hsize_t start[2] = {(hsize_t)first, 0}, cnt[2] = {(hsize_t)rows, (hsize_t)cols};
  hid_t ms = H5Screate_simple(rank, cnt, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
  herr_t e = H5Dwrite(dset, mem, ms, fs, H5P_DEFAULT, buf);
  H5Sclose(ms);
  H5Sclose(fs);
  return e;
}

dpt_status dpt_h5out_write(dpt_h5out *o, int64_t rows, hid_t x_mem, const void *X, hid_t y_mem, const void *y) {
  dpt_watchdog_progress(); /* a block was read */
  if (rows <= 0) return DPT_OK;
  DPT_CHECK(o->written + rows <= o->n, DPT_ERR_INTERNAL, "%s: %lld rows written, more than the %lld announced",
            o->path, (long long)(o->written + rows), (long long)o->n);
  DPT_CHECK(write_rows(o->X, o->written, rows, o->d, 2, x_mem, X) >= 0, DPT_ERR_IO,
            "%s: writing /X rows %lld..%lld failed (disk full?)", o->tmp, (long long)o->written,
            (long long)(o->written + rows));
  DPT_CHECK(write_rows(o->y, o->written, rows, o->k > 0 ? o->k : 1, o->k > 0 ? 2 : 1, y_mem, y) >= 0, DPT_ERR_IO,
            "%s: writing /y rows %lld..%lld failed (disk full?)", o->tmp, (long long)o->written,
            (long long)(o->written + rows));
  o->written += rows;
  dpt_watchdog_progress();
  return DPT_OK;
}

static herr_t string_attr(hid_t obj, const char *name, const char *const *v, hsize_t n, int scalar) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  hid_t sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
  hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a >= 0 ? H5Awrite(a, t, v) : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  return e;
}

dpt_status dpt_h5out_finish(dpt_h5out *o, const char *task, double scale, char *const *classes, int64_t nclasses) {
  dpt_status st = DPT_OK;
  DPT_TRY_CHECK(o->written == o->n, DPT_ERR_INTERNAL, "%s: %lld of %lld rows written", o->path, (long long)o->written,
                (long long)o->n);
  DPT_TRY_CHECK(string_attr(o->file, "task", &task, 1, 1) >= 0, DPT_ERR_IO, "%s: cannot write attribute task", o->tmp);
  if (scale > 0) {
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(o->X, "scale", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, H5T_NATIVE_DOUBLE, &scale) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    DPT_TRY_CHECK(e >= 0, DPT_ERR_IO, "%s: cannot write /X attribute scale", o->tmp);
  }
  if (nclasses > 0)
    DPT_TRY_CHECK(string_attr(o->file, "classes", (const char *const *)classes, (hsize_t)nclasses, 0) >= 0, DPT_ERR_IO,
                  "%s: cannot write attribute classes", o->tmp);
  /* closing a dataset writes its cached chunks, closing the file the metadata: both can fail */
  herr_t ex = H5Dclose(o->X), ey = H5Dclose(o->y);
  o->X = o->y = -1;
  DPT_TRY_CHECK(ex >= 0 && ey >= 0, DPT_ERR_IO, "%s: writing /X or /y failed (disk full?)", o->tmp);
  close_file(o);
  DPT_TRY_CHECK(rename(o->tmp, o->path) == 0, DPT_ERR_IO, "%s: cannot rename %s to it", o->path, o->tmp);
  dpt_free(&o->tmp);
  dpt_free(&o->path);
  return DPT_OK;
done:
  dpt_h5out_abort(o);
  return st;
}

void dpt_h5out_abort(dpt_h5out *o) {
  if (o->X >= 0) H5Dclose(o->X);
  if (o->y >= 0) H5Dclose(o->y);
  o->X = o->y = -1;
  close_file(o);
  if (o->tmp) remove(o->tmp);
  dpt_free(&o->tmp);
  dpt_free(&o->path);
}

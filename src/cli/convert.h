/* convert.h — internals of `dptrain convert`: a streaming writer of dptrain's HDF5 layout
 * (data/FORMAT.md) and the readers of CSV, NumPy .npy and MNIST IDX files that feed it.
 *
 * The writer creates OUT.tmp.<pid> next to OUT, takes rows block by block (memory bounded by
 * the caller's block), and only dpt_h5out_finish() renames it over OUT: a failed or
 * interrupted conversion never replaces a good file (dpt_h5out_abort() removes the temporary).
 * Serial (one process); the command runs it on rank 0.
 * Ownership: the dpt_h5out struct is the caller's; create allocates its path strings and HDF5
 * handles, finish/abort release them. */
#ifndef DPTRAIN_CLI_CONVERT_H
#define DPTRAIN_CLI_CONVERT_H

#include <hdf5.h>
#include <stdint.h>

#include "dptrain/error.h"

typedef struct dpt_h5out {
  char *path, *tmp;      /* owned */
  hid_t file, X, y;      /* owned HDF5 handles (-1 when closed) */
  int64_t n, d, k;       /* rows, features, target columns (0: 1-D integer labels) */
  int64_t written;       /* rows written so far */
} dpt_h5out;

typedef struct dpt_h5out_opts {
  int64_t chunk_rows; /* rows per chunk (clamped to [1, n]) */
  int gzip;           /* 0: no compression; 1..9: shuffle + deflate at that level */
} dpt_h5out_opts;

/* x_type / y_type are HDF5 file types (H5T_IEEE_F32LE, H5T_STD_U8LE, H5T_STD_I32LE, ...). */
dpt_status dpt_h5out_create(dpt_h5out *o, const char *path, int64_t n, int64_t d, hid_t x_type, int64_t k, hid_t y_type,
                            const dpt_h5out_opts *opts);
/* Appends rows: X [rows, d] in x_mem, y [rows] or [rows, k] in y_mem (HDF5 native types). */
dpt_status dpt_h5out_write(dpt_h5out *o, int64_t rows, hid_t x_mem, const void *X, hid_t y_mem, const void *y);
/* Writes the root attribute task, /X's scale (when scale > 0) and the `classes` attribute
 * (nclasses strings, may be 0), checks every row was written, closes and renames to path. */
dpt_status dpt_h5out_finish(dpt_h5out *o, const char *task, double scale, char *const *classes, int64_t nclasses);
void dpt_h5out_abort(dpt_h5out *o);

typedef struct dpt_convert_args {
  const char *out;
  const char *task;     /* NULL: inferred */
  const char *dtype;    /* "f32" (default) or "f64" for CSV / integer .npy inputs */
  dpt_h5out_opts opts;
} dpt_convert_args;

dpt_status dpt_convert_csv(const char *csv, const char *label, const dpt_convert_args *a);
dpt_status dpt_convert_npy(const char *x_path, const char *y_path, const dpt_convert_args *a);
dpt_status dpt_convert_idx(const char *images, const char *labels, const dpt_convert_args *a);

#endif

/* dataset.c — HDF5 dataset: validation at open, collective row reads (see dataset.h). */
#include "dptrain/dataset.h"
#include "dataset_internal.h"
#include "h5_mpio.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


const char *dpt_dataset_path(const dpt_dataset *ds) { return ds->path; }
int64_t dpt_dataset_rows(const dpt_dataset *ds) { return ds->n; }
int64_t dpt_dataset_features(const dpt_dataset *ds) { return ds->d; }
dpt_task dpt_dataset_task(const dpt_dataset *ds) { return ds->task; }
int64_t dpt_dataset_outputs(const dpt_dataset *ds) { return ds->k; }
bool dpt_dataset_has_val(const dpt_dataset *ds) { return ds->has_val; }

static void close_handles(dpt_dataset *ds) {
  if (ds->y >= 0) H5Dclose(ds->y);
  if (ds->X >= 0) H5Dclose(ds->X);
  if (ds->file >= 0) {
    H5Fclose(ds->file);
    dpt_h5_mpio_unwatch(ds->file);
  }
  ds->y = ds->X = ds->file = -1;
}

void dpt_dataset_close(dpt_dataset **ds) {
  if (!ds || !*ds) return;
  close_handles(*ds);
  dpt_free(&(*ds)->path);
  dpt_free(&(*ds)->mean);
  dpt_free(&(*ds)->std);
  dpt_free(ds);
}

/* Reads a single string attribute (fixed or variable length; scalar or of one element) into
 * buf; returns 1 when read, 0 when absent, -1 when it is not a single string. */
static int read_string_attr(hid_t obj, const char *name, char *buf, size_t len) {
  if (H5Aexists(obj, name) <= 0) return 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1, s = a >= 0 ? H5Aget_space(a) : -1;
  int ok = -1;
  /* H5Aread writes every element: one string, or it overruns buf */
  if (t >= 0 && s >= 0 && H5Sget_simple_extent_npoints(s) == 1 && H5Tget_class(t) == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      char *s = NULL;
      if (H5Aread(a, mt, &s) >= 0 && s) {
        snprintf(buf, len, "%s", s);
        H5free_memory(s);
        ok = 1;
      }
      H5Tclose(mt);
    } else {
      size_t sz = H5Tget_size(t);
      if (sz > 0 && sz < len) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        memset(buf, 0, len);
        if (H5Aread(a, mt, buf) >= 0) ok = 1;
        H5Tclose(mt);
      }
    }
  }
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return ok;
}

/* Shape and element class of a dataset. */
static dpt_status shape_of(const char *path, const char *name, hid_t d, int *rank, hsize_t dims[2], H5T_class_t *cls,
                           size_t *size, H5T_sign_t *sign) {
  hid_t s = H5Dget_space(d), t = H5Dget_type(d);
  int r = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
  *rank = r;
  dims[0] = dims[1] = 0;
  if (r >= 1 && r <= 2) H5Sget_simple_extent_dims(s, dims, NULL);
  *cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
  *size = t >= 0 ? H5Tget_size(t) : 0;
  *sign = *cls == H5T_INTEGER ? H5Tget_sign(t) : H5T_SGN_NONE;
  if (t >= 0) H5Tclose(t);
  if (s >= 0) H5Sclose(s);
  DPT_CHECK(r >= 0, DPT_ERR_FORMAT, "%s: /%s: cannot read its dataspace", path, name);
  return DPT_OK;
}

/* Is every element of the dataset stored (h5_mpio.h)? Else reading it would yield fill values
 * for rows never written, and N would be taken on trust (a file declaring 2^39 rows). */
static dpt_status check_stored(const char *path, const char *name, hid_t d, const hsize_t dims[2]) {
  unsigned long long have, need;
  const char *unit;
  DPT_CHECK(dpt_h5_stored(d, &have, &need, &unit) == 0, DPT_ERR_FORMAT, "%s: /%s: cannot read its storage layout",
            path, name);
  DPT_CHECK(have >= need, DPT_ERR_FORMAT,
            "%s: /%s: declares %llu rows but stores only %llu of the %llu %s they need (rows never written?)", path,
            name, (unsigned long long)dims[0], have, need, unit);
  return DPT_OK;
}

/* Local: can this rank read the file, and is it HDF5? Agreed before the collective open, so
 * that a file one rank cannot see (a node-local path) stops every rank instead of leaving the
 * others in H5Fopen (h5_mpio.h). */
static dpt_status check_file(const char *path, const char *split) {
  htri_t is = H5Fis_hdf5(path);
  if (is < 0) {
    DPT_CHECK(access(path, F_OK) == 0, DPT_ERR_IO, "%s: no such file (data.%s)", path, split);
    return dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot read the file (data.%s)", path, split);
  }
  DPT_CHECK(is > 0, DPT_ERR_FORMAT, "%s: not an HDF5 file (expected dptrain's layout, data/FORMAT.md)", path);
  return DPT_OK;
}

/* Collective, after the open: every rank reads the same metadata (collective metadata
 * reads), so every check below fails alike on all ranks. */
static dpt_status read_layout(dpt_dataset *ds, const char *path, const char *split) {
  /* H5Lexists: > 0 there, 0 missing, < 0 the file's links could not be read */
  htri_t xv = H5Lexists(ds->file, "X_val", H5P_DEFAULT), yv = xv >= 0 ? H5Lexists(ds->file, "y_val", H5P_DEFAULT) : -1;
  DPT_CHECK(xv >= 0 && yv >= 0, DPT_ERR_IO, "%s: cannot read the file's root group", path);
  ds->has_val = xv > 0 && yv > 0;
  bool val = !strcmp(split, "val") && ds->has_val;
  const char *xn = val ? "X_val" : "X", *yn = val ? "y_val" : "y";
  htri_t xe = H5Lexists(ds->file, xn, H5P_DEFAULT), ye = xe >= 0 ? H5Lexists(ds->file, yn, H5P_DEFAULT) : -1;
  DPT_CHECK(xe >= 0 && ye >= 0, DPT_ERR_IO, "%s: cannot read the file's root group", path);
  DPT_CHECK(xe > 0, DPT_ERR_FORMAT, "%s: /%s: missing (expected the inputs [N, d])", path, xn);
  DPT_CHECK(ye > 0, DPT_ERR_FORMAT, "%s: /%s: missing (expected targets [N] labels or [N, k] values)", path, yn);
  ds->X = H5Dopen2(ds->file, xn, H5P_DEFAULT);
  ds->y = H5Dopen2(ds->file, yn, H5P_DEFAULT);
  DPT_CHECK(ds->X >= 0 && ds->y >= 0, DPT_ERR_FORMAT, "%s: /%s or /%s: not a dataset", path, xn, yn);
  int rx, ry;
  hsize_t dx[2], dy[2];
  H5T_class_t cx, cy;
  size_t sx, sy;
  H5T_sign_t gx, gy;
  DPT_CALL(shape_of(path, xn, ds->X, &rx, dx, &cx, &sx, &gx));
  DPT_CALL(shape_of(path, yn, ds->y, &ry, dy, &cy, &sy, &gy));
  DPT_CHECK(rx == 2, DPT_ERR_FORMAT, "%s: /%s: expected 2 dimensions [N, d], found %d", path, xn, rx);
  DPT_CHECK(dx[0] > 0 && dx[1] > 0, DPT_ERR_FORMAT, "%s: /%s: empty ([%llu, %llu])", path, xn,
            (unsigned long long)dx[0], (unsigned long long)dx[1]);
  DPT_CHECK(dx[0] < (hsize_t)1 << 40 && dx[1] < (hsize_t)1 << 24, DPT_ERR_FORMAT,
            "%s: /%s: shape [%llu, %llu] is beyond what dptrain supports (N < 2^40, d < 2^24)", path, xn,
            (unsigned long long)dx[0], (unsigned long long)dx[1]);
  bool u8 = cx == H5T_INTEGER && sx == 1 && gx == H5T_SGN_NONE;
  DPT_CHECK((cx == H5T_FLOAT && (sx == 4 || sx == 8)) || u8, DPT_ERR_FORMAT,
            "%s: /%s: unsupported element type (expected float32, float64 or uint8 with a scale attribute)", path, xn);
  ds->scale = 1.0;
  if (u8 && H5Aexists(ds->X, "scale") > 0) {
    hid_t a = H5Aopen(ds->X, "scale", H5P_DEFAULT);
    double sc = NAN;
    herr_t e = a >= 0 ? dpt_h5_read_one(a, H5T_NATIVE_DOUBLE, &sc) : -1;
    if (a >= 0) H5Aclose(a);
    DPT_CHECK(e >= 0 && isfinite(sc) && sc > 0, DPT_ERR_FORMAT,
              "%s: /%s: attribute scale: expected a single positive number", path, xn);
    ds->scale = sc;
  }
  DPT_CHECK(ry == 1 || ry == 2, DPT_ERR_FORMAT, "%s: /%s: expected [N] labels or [N, k] values, found %d dimensions",
            path, yn, ry);
  DPT_CHECK(dy[0] == dx[0], DPT_ERR_FORMAT, "%s: /%s has %llu rows but /%s has %llu (N must match)", path, yn,
            (unsigned long long)dy[0], xn, (unsigned long long)dx[0]);
  ds->n = (int64_t)dx[0];
  ds->d = (int64_t)dx[1];
  ds->y_is_labels = ry == 1;
  if (ds->y_is_labels)
    DPT_CHECK(cy == H5T_INTEGER, DPT_ERR_FORMAT, "%s: /%s: 1-D targets must be integer class labels", path, yn);
  else
    DPT_CHECK(cy == H5T_FLOAT && dy[1] > 0 && dy[1] < (hsize_t)1 << 24, DPT_ERR_FORMAT,
              "%s: /%s: 2-D targets must be float [N, k] values", path, yn);
  DPT_CALL(check_stored(path, xn, ds->X, dx));
  DPT_CALL(check_stored(path, yn, ds->y, dy));
  char task[64] = "";
  int has_task = read_string_attr(ds->file, "task", task, sizeof task);
  DPT_CHECK(has_task >= 0, DPT_ERR_FORMAT, "%s: attribute task: expected a single string", path);
  if (has_task) {
    char what[600];
    snprintf(what, sizeof what, "%s: attribute task", path);
    DPT_CALL(dpt_task_parse(task, what, &ds->task));
  } else {
    ds->task = ds->y_is_labels ? DPT_TASK_MULTICLASS : DPT_TASK_REGRESSION;
  }
  DPT_CHECK((ds->task == DPT_TASK_REGRESSION) == !ds->y_is_labels, DPT_ERR_FORMAT,
            "%s: task %s does not fit /%s (%s)", path, dpt_task_name(ds->task), yn,
            ds->y_is_labels ? "integer labels need task binary or multiclass" : "float values need task regression");
  ds->k = ds->y_is_labels ? 0 : (int64_t)dy[1];
  return DPT_OK;
}

/* Classification: scan the labels (each rank its shard, in blocks of SCAN_BLOCK rows: memory
 * bounded whatever N is) for the class count and range. Every rank makes the same number of
 * collective reads (empty ones included). */
enum { SCAN_BLOCK = 1 << 20 };
static dpt_status scan_labels(dpt_dataset *ds, const char *split) {
  const dpt_comm *c = ds->c;
  int64_t begin, count, *rows = NULL;
  int32_t *lab = NULL;
  dpt_shard_range(ds->n, c->size, c->rank, &begin, &count);
  int64_t most = (ds->n + c->size - 1) / c->size; /* the largest shard: sets the round count */
  int64_t rounds = (most + SCAN_BLOCK - 1) / SCAN_BLOCK, block = count < SCAN_BLOCK ? count : SCAN_BLOCK;
  dpt_status st = dpt_alloc((size_t)block, sizeof *rows, "label scan rows", &rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)block, sizeof *lab, "label scan", &lab);
  st = dpt_comm_agree(c, st);
  int64_t lo_hi[2] = {INT64_MAX, INT64_MIN}, first_bad = INT64_MAX;
  /* the range check while scanning: only what dptrain supports (a label saturated to int32
   * by the conversion of a wider one fails here too) */
  ds->classes = DPT_DATASET_MAX_CLASSES;
  for (int64_t r = 0, done_rows = 0; st == DPT_OK && r < rounds; ++r) {
    int64_t m = count - done_rows < block ? count - done_rows : block;
    for (int64_t i = 0; i < m; ++i) rows[i] = begin + done_rows + i;
    st = dpt_dataset_read_rows(ds, rows, m, DPT_F32, NULL, lab, NULL);
    for (int64_t i = 0; st == DPT_OK && i < m; ++i) {
      if (lab[i] < lo_hi[0]) lo_hi[0] = lab[i];
      if (lab[i] > lo_hi[1]) lo_hi[1] = lab[i];
      if (lab[i] < 0 && first_bad == INT64_MAX) first_bad = begin + done_rows + i;
    }
    done_rows += m;
  }
  if (st == DPT_OK) {
    int64_t red[3] = {-lo_hi[0], lo_hi[1], -first_bad}, out[3];
    st = MPI_Allreduce(red, out, 3, MPI_INT64_T, MPI_MAX, c->comm) == MPI_SUCCESS
             ? DPT_OK
             : dpt_error_set(DPT_ERR_MPI, __FILE__, __LINE__, __func__, "label scan: MPI_Allreduce failed");
    if (st == DPT_OK) {
      int64_t lo = -out[0], hi = out[1], bad = -out[2];
      if (lo < 0)
        st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                           "%s: /y%s: row %lld: negative class label", ds->path, !strcmp(split, "val") && ds->has_val ? "_val" : "",
                           (long long)bad);
      else if (ds->task == DPT_TASK_BINARY && hi > 1)
        st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                           "%s: /y: label %lld with task binary (expected 0 or 1)", ds->path, (long long)hi);
      ds->classes = ds->task == DPT_TASK_BINARY ? 2 : hi + 1;
      ds->k = ds->task == DPT_TASK_BINARY ? 1 : (hi + 1 < 2 ? 2 : hi + 1);
    }
  }
  dpt_free(&rows);
  dpt_free(&lab);
  return st;
}

dpt_status dpt_dataset_open(const dpt_comm *c, const char *path, const char *split, dpt_dataset **out) {
  *out = NULL;
  dpt_dataset *ds = NULL;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported by dptrain, one line */
  dpt_status st = dpt_calloc(1, sizeof *ds, "dataset", &ds);
  if (st == DPT_OK) {
    ds->c = c;
    ds->file = ds->X = ds->y = -1;
    st = dpt_strdup(path, "dataset path", &ds->path);
  }
  hid_t fapl = H5I_INVALID_HID;
  if (st == DPT_OK) st = check_file(path, split);
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK) st = dpt_h5_mpio_fapl(c, path, DPT_H5_COLL_READS, &fapl);
  if (st == DPT_OK) {
    ds->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (ds->file >= 0) dpt_h5_mpio_watch(ds->file, path);
    if (ds->file < 0)
      st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                         "%s: cannot open as HDF5 (truncated or damaged?)", path);
    st = dpt_comm_agree_collective(c, st, "opening the dataset file");
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (st == DPT_OK) st = read_layout(ds, path, split);
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK && ds->y_is_labels) st = scan_labels(ds, split);
  st = dpt_comm_agree(c, st);
  if (st != DPT_OK) {
    dpt_dataset_close(&ds);
    return st;
  }
  *out = ds;
  return DPT_OK;
}

typedef struct row_pos {
  int64_t row, pos;
} row_pos;

static int cmp_row(const void *a, const void *b) {
  const row_pos *x = a, *y = b;
  return (x->row > y->row) - (x->row < y->row);
}

/* Collective: reads the file selection fs into memory selection ms (built by the caller on
 * this rank; ok says whether building them succeeded) of d_id into dst, and closes both.
 * Whether every rank built its selections is agreed first: a rank that could not must not
 * leave the others in the collective H5Dread. what: the rows, for the message. */
static dpt_status read_selected(dpt_dataset *ds, hid_t d_id, hid_t fs, hid_t ms, bool ok, hid_t memtype, void *dst,
                                const char *what) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  ok = ok && fs >= 0 && ms >= 0 && dxpl >= 0 && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) >= 0;
  dpt_status st = ok ? DPT_OK
                     : dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot select %s for reading",
                                     ds->path, what);
  st = dpt_comm_agree(ds->c, st);
  if (st == DPT_OK && H5Dread(d_id, memtype, ms, fs, dxpl, dst) < 0) {
    char name[64] = "";
    if (H5Iget_name(d_id, name, sizeof name) <= 0) snprintf(name, sizeof name, "(dataset)");
    st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: %s: reading %s failed (truncated file?)",
                       ds->path, name, what);
  }
  if (dxpl >= 0) H5Pclose(dxpl);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return st;
}

/* Collective: the distinct rows of rp[0..n) (sorted by row) read in one collective call,
 * each once, into tmp in row order; *distinct = how many. */
static dpt_status read_sorted(dpt_dataset *ds, hid_t d_id, const row_pos *rp, int64_t n, int64_t *distinct,
                              int64_t cols, hid_t memtype, void *tmp) {
  hid_t fs = H5Dget_space(d_id), ms = H5I_INVALID_HID;
  int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
  bool ok = rank >= 1 && H5Sselect_none(fs) >= 0;
  int64_t m = 0;
  for (int64_t i = 0; ok && i < n;) {
    int64_t j = i + 1;
    while (j < n && rp[j].row <= rp[j - 1].row + 1) ++j; /* a run of consecutive (or equal) rows */
    hsize_t start[2] = {(hsize_t)rp[i].row, 0}, cnt[2] = {(hsize_t)(rp[j - 1].row - rp[i].row + 1), (hsize_t)cols};
    ok = H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, cnt, NULL) >= 0;
    m += (int64_t)cnt[0];
    i = j;
  }
  if (ok && m > 0) {
    hsize_t mdims[2] = {(hsize_t)m, (hsize_t)cols};
    ms = H5Screate_simple(rank, mdims, NULL);
  } else if (ok) {
    ms = H5Scopy(fs);
    ok = ms >= 0 && H5Sselect_none(ms) >= 0;
  }
  *distinct = m;
  char what[64];
  snprintf(what, sizeof what, "%lld rows", (long long)m);
  return read_selected(ds, d_id, fs, ms, ok, memtype, tmp, what);
}

/* Any rows: sorted, each distinct row read once into a staging buffer, then scattered. */
static dpt_status read_rows_general(dpt_dataset *ds, const int64_t *rows, int64_t n, dpt_dtype dtype, void *X,
                                    int32_t *labels, void *values) {
  dpt_status st = DPT_OK;
  row_pos *rp = NULL;
  unsigned char *tmp = NULL;
  int64_t *slot = NULL; /* index into tmp (distinct sorted rows) for each sorted entry */
  size_t es = dpt_dtype_size(dtype);
  int64_t width = ds->d > ds->k ? ds->d : (ds->k > 0 ? ds->k : 1);
  st = dpt_alloc((size_t)n, sizeof *rp, "row order", &rp);
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *slot, "row slots", &slot);
  if (st == DPT_OK) st = dpt_alloc((size_t)n * (size_t)width, 8, "read buffer", &tmp);
  for (int64_t i = 0; st == DPT_OK && i < n; ++i) {
    if (rows[i] < 0 || rows[i] >= ds->n)
      st = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__, "%s: row %lld out of range [0, %lld)",
                         ds->path, (long long)rows[i], (long long)ds->n);
    rp[i].row = rows[i];
    rp[i].pos = i;
  }
  DPT_TRY(dpt_comm_agree(ds->c, st));
  qsort(rp, (size_t)n, sizeof *rp, cmp_row);
  /* the union of row runs is read in file order, each distinct row once */
  for (int64_t i = 0, s = -1; i < n; ++i) {
    if (i == 0 || rp[i].row != rp[i - 1].row) ++s;
    slot[i] = s;
  }
  int64_t m = 0;
  if (X) {
    hid_t mt = dtype == DPT_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    DPT_TRY(dpt_comm_agree(ds->c, read_sorted(ds, ds->X, rp, n, &m, ds->d, mt, tmp)));
    int64_t bad_row = -1;
    for (int64_t i = 0; i < n; ++i) {
      const unsigned char *src = tmp + (size_t)slot[i] * (size_t)ds->d * es;
      unsigned char *dst = (unsigned char *)X + (size_t)rp[i].pos * (size_t)ds->d * es;
      memcpy(dst, src, (size_t)ds->d * es);
      for (int64_t j = 0; j < ds->d; ++j) {
        double v = dtype == DPT_F64 ? ((double *)dst)[j] : ((float *)dst)[j];
        if (!isfinite(v) && (bad_row < 0 || rp[i].row < bad_row)) bad_row = rp[i].row;
      }
    }
    dpt_dataset_transform(ds, dtype, X, n);
    if (bad_row >= 0)
      st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__, "%s: /X: row %lld: non-finite value", ds->path,
                         (long long)bad_row);
    DPT_TRY(dpt_comm_agree(ds->c, st));
  }
  if (labels && ds->y_is_labels) {
    DPT_TRY(dpt_comm_agree(ds->c, read_sorted(ds, ds->y, rp, n, &m, 1, H5T_NATIVE_INT32, tmp)));
    int64_t bad_row = -1;
    for (int64_t i = 0; i < n; ++i) {
      int32_t v = ((int32_t *)tmp)[slot[i]];
      labels[rp[i].pos] = v;
      if ((v < 0 || v >= ds->classes) && (bad_row < 0 || rp[i].row < bad_row)) bad_row = rp[i].row;
    }
    if (bad_row >= 0)
      st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                         "%s: /y: row %lld: class label outside [0, %lld)", ds->path, (long long)bad_row,
                         (long long)ds->classes);
    DPT_TRY(dpt_comm_agree(ds->c, st));
  }
  if (values && !ds->y_is_labels) {
    hid_t mt = dtype == DPT_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    DPT_TRY(dpt_comm_agree(ds->c, read_sorted(ds, ds->y, rp, n, &m, ds->k, mt, tmp)));
    int64_t bad_row = -1;
    for (int64_t i = 0; i < n; ++i) {
      unsigned char *dst = (unsigned char *)values + (size_t)rp[i].pos * (size_t)ds->k * es;
      memcpy(dst, tmp + (size_t)slot[i] * (size_t)ds->k * es, (size_t)ds->k * es);
      for (int64_t j = 0; j < ds->k; ++j) {
        double v = dtype == DPT_F64 ? ((double *)dst)[j] : ((float *)dst)[j];
        if (!isfinite(v) && (bad_row < 0 || rp[i].row < bad_row)) bad_row = rp[i].row;
      }
    }
    if (bad_row >= 0)
      st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__, "%s: /y: row %lld: non-finite value", ds->path,
                         (long long)bad_row);
    DPT_TRY(dpt_comm_agree(ds->c, st));
  }
done:
  dpt_free(&rp);
  dpt_free(&slot);
  dpt_free(&tmp);
  return st;
}

/* Collective read of rows [first, first + m) of d_id (cols values each) straight into dst. */
static dpt_status read_run(dpt_dataset *ds, hid_t d_id, int64_t first, int64_t m, int64_t cols, hid_t memtype,
                           void *dst) {
  hid_t fs = H5Dget_space(d_id), ms = H5I_INVALID_HID;
  int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
  hsize_t start[2] = {(hsize_t)first, 0}, cnt[2] = {(hsize_t)m, (hsize_t)cols};
  bool ok = rank >= 1;
  if (ok && m > 0) {
    ok = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0;
    ms = H5Screate_simple(rank, cnt, NULL);
  } else if (ok) {
    ok = H5Sselect_none(fs) >= 0;
    ms = H5Scopy(fs);
    ok = ok && ms >= 0 && H5Sselect_none(ms) >= 0;
  }
  char what[80];
  snprintf(what, sizeof what, "rows %lld..%lld", (long long)first, (long long)(first + m));
  return read_selected(ds, d_id, fs, ms, ok, memtype, dst, what);
}

/* First row (from first) of m [m, cols] rows holding a non-finite value, -1 when none. */
static int64_t first_nonfinite(const void *v, dpt_dtype dtype, int64_t m, int64_t cols) {
  /* fast branch-free pass (vectorized: x - x is 0 for finite x, NaN for inf and NaN), then
   * the row is searched for only when something is wrong */
  int any = 0;
  if (dtype == DPT_F64)
    for (int64_t i = 0; i < m * cols; ++i) any |= ((const double *)v)[i] - ((const double *)v)[i] != 0.0;
  else
    for (int64_t i = 0; i < m * cols; ++i) any |= ((const float *)v)[i] - ((const float *)v)[i] != 0.0f;
  if (!any) return -1;
  for (int64_t i = 0; i < m * cols; ++i) {
    double x = dtype == DPT_F64 ? ((const double *)v)[i] : ((const float *)v)[i];
    if (!isfinite(x)) return i / cols;
  }
  return -1;
}

/* Rows first .. first + n - 1 in order (the loader's shard reads): no sort, no staging copy. */
static dpt_status read_rows_contiguous(dpt_dataset *ds, int64_t first, int64_t n, dpt_dtype dtype, void *X,
                                       int32_t *labels, void *values) {
  dpt_status st = DPT_OK;
  hid_t mt = dtype == DPT_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
  DPT_CALL(dpt_comm_agree(ds->c, DPT_OK)); /* matches the general path's agreement on its row checks */
  if (X) {
    DPT_CALL(dpt_comm_agree(ds->c, read_run(ds, ds->X, first, n, ds->d, mt, X)));
    int64_t bad = first_nonfinite(X, dtype, n, ds->d);
    if (bad >= 0)
      st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__, "%s: /X: row %lld: non-finite value", ds->path,
                         (long long)(first + bad));
    DPT_CALL(dpt_comm_agree(ds->c, st));
    dpt_dataset_transform(ds, dtype, X, n);
  }
  if (labels && ds->y_is_labels) {
    DPT_CALL(dpt_comm_agree(ds->c, read_run(ds, ds->y, first, n, 1, H5T_NATIVE_INT32, labels)));
    for (int64_t i = 0; i < n && st == DPT_OK; ++i)
      if (labels[i] < 0 || labels[i] >= ds->classes)
        st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                           "%s: /y: row %lld: class label outside [0, %lld)", ds->path, (long long)(first + i),
                           (long long)ds->classes);
    DPT_CALL(dpt_comm_agree(ds->c, st));
  }
  if (values && !ds->y_is_labels) {
    DPT_CALL(dpt_comm_agree(ds->c, read_run(ds, ds->y, first, n, ds->k, mt, values)));
    int64_t bad = first_nonfinite(values, dtype, n, ds->k);
    if (bad >= 0)
      st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__, "%s: /y: row %lld: non-finite value", ds->path,
                         (long long)(first + bad));
    DPT_CALL(dpt_comm_agree(ds->c, st));
  }
  return DPT_OK;
}

dpt_status dpt_dataset_read_rows(dpt_dataset *ds, const int64_t *rows, int64_t n, dpt_dtype dtype, void *X,
                                 int32_t *labels, void *values) {
  bool contiguous = n == 0 || (rows[0] >= 0 && rows[0] + n <= ds->n);
  for (int64_t i = 1; contiguous && i < n; ++i) contiguous = rows[i] == rows[0] + i;
  /* every rank takes the path it needs: both make the same collective calls in the same order */
  if (contiguous) return read_rows_contiguous(ds, n ? rows[0] : 0, n, dtype, X, labels, values);
  return read_rows_general(ds, rows, n, dtype, X, labels, values);
}

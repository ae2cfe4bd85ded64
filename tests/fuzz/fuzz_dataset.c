/* fuzz_dataset.c — fuzz target: dataset files (data/FORMAT.md) through dpt_dataset_open,
 * dpt_dataset_read_rows and dpt_dataset_standardize, as `dptrain train`/`eval` use them.
 *
 * Structure-aware: the input is a recipe, not a file. Each recipe byte (0 when the input has
 * run out) picks one property of a well-formed HDF5 file written here with the HDF5 API, and 0
 * always means "as a valid dataset has it", so the empty recipe is a valid dataset and each
 * byte perturbs one thing: element types, ranks, declared extents (huge ones only declared,
 * chunked with unlimited maxdims, so the file stays small), objects missing or of another
 * kind, the attributes task, classes and scale, NaN/Inf and out-of-range labels, the split.
 *
 * Invariants (abort when one fails): the reader returns; a failure has a non-empty one-line
 * message naming the file; no HDF5 object of any file is left open; with libFuzzer, no
 * allocation above -malloc_limit_mb (the default, 2 GiB) — a size read from the file must be
 * checked against something real first. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/comm.h"
#include "dptrain/dataset.h"
#include "dptrain/error.h"
#include "fuzz_h5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_h5_init();
  /* valid files first (each read path): MPI-IO's one-time allocations (components loaded at
   * first use) are then not counted as a leak of an input */
  for (uint8_t how = 0; how < 32; ++how) LLVMFuzzerTestOneInput(&how, 1);
  return 0;
}


/* An element type by number: 0 = the valid one given. */
static hid_t type_of(unsigned which, hid_t valid) {
  static const hid_t *const types[] = {NULL, &H5T_NATIVE_FLOAT_g, &H5T_NATIVE_DOUBLE_g, &H5T_NATIVE_UINT8_g,
                                       &H5T_NATIVE_INT8_g, &H5T_NATIVE_INT16_g, &H5T_NATIVE_UINT16_g,
                                       &H5T_NATIVE_INT32_g, &H5T_NATIVE_UINT32_g, &H5T_NATIVE_INT64_g,
                                       &H5T_NATIVE_UINT64_g, &H5T_STD_I32BE_g, &H5T_IEEE_F64BE_g};
  enum { NTYPES = sizeof types / sizeof types[0] };
  H5open();
  if (which == 0 || which >= NTYPES + 2) return H5Tcopy(valid);
  if (which < NTYPES) return H5Tcopy(*types[which]);
  if (which == NTYPES) { /* a fixed-length string */
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 8);
    return t;
  }
  hid_t t = H5Tcreate(H5T_COMPOUND, 8); /* a compound {float a; int b} */
  H5Tinsert(t, "a", 0, H5T_NATIVE_FLOAT);
  H5Tinsert(t, "b", 4, H5T_NATIVE_INT32);
  return t;
}

/* Writes dataset `name` under loc: rank/extent/type/layout from the recipe, real content
 * rows x cols doubles from vals (converted to the element type; written only where the
 * declared extent holds them). */
static void write_array(recipe *r, hid_t loc, const char *name, int valid_rank, hsize_t rows, hsize_t cols,
                        hid_t valid_type, const double *vals) {
  unsigned kind = pick(r, 16); /* 0 dataset; rare: a group, a dangling soft link, missing */
  if (kind == 13) {
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) H5Gclose(g);
    return;
  }
  if (kind == 14) {
    H5Lcreate_soft("/nowhere", loc, name, H5P_DEFAULT, H5P_DEFAULT);
    return;
  }
  if (kind == 15) return;
  int rank = valid_rank;
  unsigned rk = pick(r, 12);
  if (rk == 1) rank = 0;
  else if (rk == 2) rank = 1;
  else if (rk == 3) rank = 2;
  else if (rk == 4) rank = 3;
  static const hsize_t huge[] = {0, 0, (hsize_t)1 << 20, ((hsize_t)1 << 39) + 1, (hsize_t)1 << 40,
                                 ((hsize_t)1 << 40) - 1, (hsize_t)1 << 24, ((hsize_t)1 << 24) - 1, 2, 1};
  hsize_t dims[3] = {rows, rank == 1 && valid_rank == 2 ? rows * cols : cols, 2};
  if (valid_rank == 1 && rank >= 2) dims[1] = 1;
  unsigned dr = pick(r, 12), dc = pick(r, 12);
  if (dr >= 1 && dr < 10) dims[0] = dr == 1 ? rows + 1 : huge[dr];
  if (dr == 10 && rows > 1) dims[0] = rows - 1;
  if (rank >= 2 && dc >= 1 && dc < 10) dims[1] = dc == 1 ? dims[1] + 1 : huge[dc];
  /* HDF5 itself fails (it crashed in H5Dwrite, 1.10.8) on an extent of 2^64 elements or more */
  if (rank >= 2 && dims[0] > ((hsize_t)1 << 20) && dims[1] > ((hsize_t)1 << 20)) dims[1] = cols;
  unsigned layout = pick(r, 4); /* 0 contiguous, 1 chunked, 2 chunked + shuffle + gzip, 3 compact */
  bool big = false;
  for (int i = 0; i < rank; ++i) big |= dims[i] > 4096;
  if (big && (layout == 0 || layout == 3)) layout = 1; /* declared large: chunked, nothing allocated */
  hid_t t = type_of(pick(r, 24), valid_type);
  hsize_t maxdims[3] = {H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED};
  hid_t space = rank == 0 ? H5Screate(H5S_SCALAR)
                          : H5Screate_simple(rank, dims, layout == 1 || layout == 2 ? maxdims : NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (layout == 1 || layout == 2) {
    hsize_t chunk[3] = {dims[0] < 4 ? (dims[0] ? dims[0] : 1) : 4, 0, 0};
    for (int i = 1; i < rank; ++i) chunk[i] = dims[i] < 4 ? (dims[i] ? dims[i] : 1) : 4;
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR);
    if (layout == 2) {
      H5Pset_shuffle(dcpl);
      H5Pset_deflate(dcpl, 4);
    }
  } else if (layout == 3) {
    H5Pset_layout(dcpl, H5D_COMPACT);
  } else {
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE);
  }
  hid_t d = H5Dcreate2(loc, name, t, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  /* the real content: the rows and columns both the declared extent and vals hold */
  H5T_class_t cls = H5Tget_class(t);
  bool numeric = cls == H5T_INTEGER || cls == H5T_FLOAT;
  if (d >= 0 && numeric && pick(r, 8) != 1) {
    hsize_t wr = rank == 0 ? 1 : (dims[0] < rows ? dims[0] : rows);
    hsize_t wc = rank >= 2 ? (dims[1] < cols ? dims[1] : cols) : 1;
    if (rank == 1 && valid_rank == 2) wr = dims[0] < rows * cols ? dims[0] : rows * cols, wc = 1;
    double *buf = malloc(sizeof *buf * (size_t)(wr * wc > 0 ? wr * wc : 1));
    for (hsize_t i = 0; buf && i < wr; ++i)
      for (hsize_t j = 0; j < wc; ++j) buf[i * wc + j] = vals[(i * wc + j) % (rows * cols)];
    if (buf && wr * wc > 0) {
      hid_t fs = H5Dget_space(d);
      hsize_t start[3] = {0, 0, 0}, cnt[3] = {wr, wc, 1};
      if (rank > 0) H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
      hid_t ms = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, cnt, NULL);
      H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, buf); /* conversion may clip: fine */
      H5Sclose(ms);
      H5Sclose(fs);
    }
    free(buf);
  }
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(t);
}

/* Attribute `name` on obj: a string (fixed or variable length), a number, an array. */
static void write_attr(hid_t obj, const char *name, unsigned kind, const char *text, double number) {
  enum { COPIES = 8 };
  hsize_t copies = COPIES;
  hid_t space = kind == 4 || kind == 6 || kind == 7 ? H5Screate_simple(1, &copies, NULL)
                : kind == 5              ? H5Screate(H5S_NULL)
                                         : H5Screate(H5S_SCALAR);
  hid_t t;
  if (kind == 0 || kind == 4 || kind == 5) { /* fixed-length string */
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(text) + 1);
  } else if (kind == 1 || kind == 6) {
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
  } else if (kind == 2 || kind == 7) {
    t = H5Tcopy(H5T_NATIVE_DOUBLE);
  } else {
    t = H5Tcopy(H5T_NATIVE_INT64);
  }
  hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    if (kind == 0) H5Awrite(a, t, text);
    else if (kind == 4) {
      size_t len = strlen(text) + 1;
      char *texts = calloc(COPIES, len);
      for (int i = 0; texts && i < COPIES; ++i) memcpy(texts + (size_t)i * len, text, len);
      if (texts) H5Awrite(a, t, texts);
      free(texts);
    } else if (kind == 6) {
      const char *texts[COPIES];
      for (int i = 0; i < COPIES; ++i) texts[i] = text;
      H5Awrite(a, t, texts);
    } else if (kind == 1) H5Awrite(a, t, &text);
    else if (kind == 2) H5Awrite(a, t, &number);
    else if (kind == 7) {
      double numbers[COPIES];
      for (int i = 0; i < COPIES; ++i) numbers[i] = number;
      H5Awrite(a, t, numbers);
    }
    else if (kind == 3) {
      int64_t v = (int64_t)number;
      H5Awrite(a, t, &v);
    }
    H5Aclose(a);
  }
  H5Tclose(t);
  H5Sclose(space);
}

enum { MAX_ROWS = 16, MAX_COLS = 4 };

/* One split's /X and /y (names given) with n rows, d features, labels or values. */
static void write_split(recipe *r, hid_t file, const char *xn, const char *yn, int task) {
  hsize_t n = 1 + (hsize_t)((take(r) + 7) % MAX_ROWS), d = 1 + (hsize_t)((take(r) + 1) % MAX_COLS);
  double X[MAX_ROWS * MAX_COLS], Y[MAX_ROWS * MAX_COLS];
  unsigned xv = pick(r, 8), yv = pick(r, 12), at = take(r) % (unsigned)n;
  for (hsize_t i = 0; i < n * d; ++i) X[i] = sin(1.0 + (double)i) * 10.0;
  if (xv == 1) X[at * d] = NAN;
  if (xv == 2) X[at * d + d - 1] = -INFINITY;
  if (xv == 3) X[at * d] = 1e300; /* finite in float64, not in float32 */
  if (xv == 4) X[at * d] = 255.0;
  hsize_t k = task == 0 ? 1 + (take(r) % 3) : 1; /* regression outputs */
  for (hsize_t i = 0; i < n * k; ++i) Y[i] = task == 0 ? cos((double)i) : (double)(i % (task == 1 ? 2 : 3));
  static const double bad_label[] = {0,   -1, 2, 2147483647.0, 1099511627776.0, 1e6, NAN, INFINITY, -2147483648.0,
                                     3.0, 2147483646.0, 16777215.0};
  if (yv) Y[at * k] = bad_label[yv];
  write_array(r, file, xn, 2, n, d, H5T_NATIVE_FLOAT, X);
  unsigned sc = pick(r, 9); /* uint8 /X: attribute scale */
  htri_t xe = H5Lexists(file, xn, H5P_DEFAULT);
  hid_t xd = xe > 0 ? H5Oopen(file, xn, H5P_DEFAULT) : -1;
  if (xd >= 0 && sc) {
    static const double scales[] = {0, 1.0 / 255, -1, NAN, 0, INFINITY, 1e-300, 2, 1.0 / 255};
    write_attr(xd, "scale", sc == 4 ? 0 : sc == 7 ? 4 : sc == 8 ? 7 : 2, "0.5", scales[sc]);
  }
  if (xd >= 0) H5Oclose(xd);
  write_array(r, file, yn, task == 0 ? 2 : 1, n, k, task == 0 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT32, Y);
}

/* The file: the train split, optionally a validation split, the root attributes. */
static void write_file(recipe *r, const char *path) {
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) abort();
  int task = (int)pick(r, 3); /* 0 regression, 1 binary, 2 multiclass */
  write_split(r, file, "X", "y", task);
  unsigned val = pick(r, 6); /* 0 none, 1 both, 2 X_val only, 3 y_val only, 4 both with another task */
  if (val == 1 || val == 4) write_split(r, file, "X_val", "y_val", val == 4 ? (task + 1) % 3 : task);
  if (val == 2) write_split(r, file, "X_val", "nothing_y", task);
  if (val == 3) write_split(r, file, "nothing_x", "y_val", task);
  static const char *const names[] = {"regression", "binary", "multiclass"};
  unsigned ta = pick(r, 13); /* attribute task */
  static const char *const texts[] = {"", "", "", "", "", "", "Binary", "classification", "",
                                      "regression-but-much-longer-than-sixty-four-characters-when-all-is-said-and-done",
                                      "multiclass\nregression", "binary", ""};
  if (ta == 0 || ta == 1 || ta == 4) write_attr(file, "task", ta == 0 ? 0 : ta == 1 ? 1 : 4, names[task], 0);
  else if (ta == 2 || ta == 3) write_attr(file, "task", ta, "", 1);
  else if (ta == 5) write_attr(file, "task", 5, names[task], 0);
  else if (ta == 12) write_attr(file, "task", 6, names[task], 0);
  else if (ta >= 6) write_attr(file, "task", ta == 11 ? 1 : 0, texts[ta], 0);
  /* ta == 3 is handled above (integer); absent: none of the above */
  unsigned cl = pick(r, 4);
  if (cl) write_attr(file, "classes", cl == 1 ? 4 : cl == 2 ? 3 : 1, "class", 7);
  H5Fclose(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  recipe r = {data, size};
  char dir[] = "/tmp/fuzz-dataset-XXXXXX", path[64];
  if (!mkdtemp(dir)) abort();
  snprintf(path, sizeof path, "%s/data.h5", dir);
  unsigned how = take(&r); /* bit 0: val split; bits 1-2: the rows read; bit 3: standardize */
  write_file(&r, path);
  dpt_dataset *ds = NULL;
  dpt_status st = dpt_dataset_open(&g_comm, path, how & 1 ? "val" : "train", &ds);
  check_failure("fuzz_dataset", st, path);
  if (st == DPT_OK) {
    int64_t n = dpt_dataset_rows(ds), d = dpt_dataset_features(ds), k = dpt_dataset_outputs(ds);
    bool labels = dpt_dataset_task(ds) != DPT_TASK_REGRESSION;
    if (n <= 0 || d <= 0 || k <= 0 || d > 1 << 24 || k > 1 << 24) {
      fprintf(stderr, "fuzz_dataset: opened with rows %lld, features %lld, outputs %lld\n", (long long)n,
              (long long)d, (long long)k);
      abort();
    }
    int64_t rows[8], m = n < 8 ? n : 8;
    for (int64_t i = 0; i < m; ++i) {
      switch ((how >> 1) & 3) {
      case 0: rows[i] = i; break;                        /* contiguous */
      case 1: rows[i] = n - 1 - i; break;                /* reversed */
      case 2: rows[i] = (i * 7919) % n; break;           /* scattered, duplicates */
      default: rows[i] = n - m + i; break;               /* the last rows */
      }
    }
    dpt_dtype dt = how & 16 ? DPT_F64 : DPT_F32;
    double *X = malloc(sizeof(double) * (size_t)(m * d)), *v = malloc(sizeof(double) * (size_t)(m * k));
    int32_t lab[8];
    if (!X || !v) abort();
    st = dpt_dataset_read_rows(ds, rows, m, dt, X, labels ? lab : NULL, labels ? NULL : v);
    check_failure("fuzz_dataset", st, path);
    if (st == DPT_OK && labels)
      for (int64_t i = 0; i < m; ++i)
        if (lab[i] < 0 || (dpt_dataset_task(ds) == DPT_TASK_BINARY && lab[i] > 1) ||
            (dpt_dataset_task(ds) == DPT_TASK_MULTICLASS && lab[i] >= k)) {
          fprintf(stderr, "fuzz_dataset: label %d returned with %lld outputs\n", lab[i], (long long)k);
          abort();
        }
    if (st == DPT_OK && (how & 8)) {
      st = dpt_dataset_standardize(ds);
      check_failure("fuzz_dataset", st, path);
    }
    free(X);
    free(v);
    dpt_dataset_close(&ds);
  }
  check_closed("fuzz_dataset");
  unlink(path);
  if (rmdir(dir) != 0) abort();
  return 0;
}

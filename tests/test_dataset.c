/* test_dataset.c — bad dataset files: a one-line error naming the file and the object, the
 * same status on every rank, no hang, no allocation from an unchecked size. (The sampler's
 * order, its rank-count invariance and once-per-epoch coverage are in test_loader.c.)
 * dpt-test: ranks=1,2 */
#include <hdf5.h>
#include <stdio.h>

#include "testutil.h"
#include "dptrain/dataset.h"

static char dir[256];

static void agreed_failure(dpt_status st, const char *needle1, const char *needle2) {
  int mine = (int)st, lo, hi;
  MPI_Allreduce(&mine, &lo, 1, MPI_INT, MPI_MIN, dpt_test_world.comm);
  MPI_Allreduce(&mine, &hi, 1, MPI_INT, MPI_MAX, dpt_test_world.comm);
  assert_int_equal(lo, hi); /* every rank returned the same status */
  assert_int_not_equal(st, DPT_OK);
  if (!strstr(dpt_error_message(), needle1) || (needle2 && !strstr(dpt_error_message(), needle2)))
    fail_msg("message '%s' lacks '%s' / '%s'", dpt_error_message(), needle1, needle2 ? needle2 : "");
  assert_null(strchr(dpt_error_message(), '\n')); /* one line */
  dpt_error_clear();
}

/* Writes a file on rank 0 with the HDF5 C API: X of the given type and shape, y labels. */
static void write_custom(const char *path, hid_t xtype, int xrank, hsize_t n, hsize_t d, hsize_t ny, int label_bad,
                         int nonfinite_row) {
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {n, d};
    hid_t xs = H5Screate_simple(xrank, xd, NULL);
    hid_t x = H5Dcreate2(f, "X", xtype, xs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (n * d <= 4096) {
      double buf[4096];
      for (hsize_t i = 0; i < n * d; ++i) buf[i] = (double)i;
      if (nonfinite_row >= 0) buf[(hsize_t)nonfinite_row * d] = 1.0 / 0.0;
      H5Dwrite(x, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    }
    hsize_t yd[1] = {ny};
    hid_t ys = H5Screate_simple(1, yd, NULL);
    hid_t y = H5Dcreate2(f, "y", H5T_STD_I32LE, ys, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int32_t lab[1024];
    for (hsize_t i = 0; i < ny && i < 1024; ++i) lab[i] = (int32_t)(i % 3);
    if (label_bad && ny > 2) lab[2] = -1;
    if (ny <= 1024) H5Dwrite(y, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Dclose(y);
    H5Sclose(ys);
    H5Dclose(x);
    H5Sclose(xs);
    H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

static dpt_status open_and_read(const char *path) {
  dpt_dataset *ds = NULL;
  dpt_status st = dpt_dataset_open(&dpt_test_world, path, "train", &ds);
  if (st == DPT_OK) {
    int64_t n = dpt_dataset_rows(ds), rows[64], cnt = n < 64 ? n : 64;
    float X[64 * 8];
    int32_t lab[64];
    for (int64_t i = 0; i < cnt; ++i) rows[i] = i;
    st = dpt_dataset_features(ds) <= 8 ? dpt_dataset_read_rows(ds, rows, cnt, DPT_F32, X, lab, NULL) : DPT_OK;
  }
  dpt_dataset_close(&ds);
  assert_null(ds);
  return st;
}

static void path_of(char *buf, const char *name) { snprintf(buf, 512, "%s/%s", dir, name); }

/* Rank 0 writes a text file; every rank returns once it exists. */
static void write_text(const char *path, const char *text) {
  if (dpt_test_world.rank == 0) {
    FILE *f = fopen(path, "w"); /* no assert before the barrier: the other ranks wait in it */
    if (f) fputs(text, f), fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

static void test_not_hdf5_and_missing(void **state) {
  (void)state;
  char p[512];
  path_of(p, "plain.txt");
  write_text(p, "1,2,3\n");
  agreed_failure(open_and_read(p), "plain.txt", "not an HDF5 file");
  path_of(p, "absent.h5");
  agreed_failure(open_and_read(p), "absent.h5", "no such file");
}

static void test_truncated(void **state) {
  (void)state;
  char p[512], q[512];
  path_of(p, "whole.h5");
  path_of(q, "truncated.h5");
  write_custom(p, H5T_IEEE_F32LE, 2, 200, 4, 200, 0, -1);
  if (dpt_test_world.rank == 0) { /* keep the first half of the bytes */
    FILE *in = fopen(p, "rb"), *out = fopen(q, "wb");
    fseek(in, 0, SEEK_END);
    long len = ftell(in);
    fseek(in, 0, SEEK_SET);
    for (long i = 0; i < len / 2; ++i) fputc(fgetc(in), out);
    fclose(in);
    fclose(out);
  }
  MPI_Barrier(dpt_test_world.comm);
  agreed_failure(open_and_read(q), "truncated.h5", NULL);
}

static void test_missing_objects_and_rank(void **state) {
  (void)state;
  static double X[12] = {0}, y[6] = {0};
  char p[512];
  path_of(p, "noy.h5");
  assert_int_equal(dpt_test_write_dataset(p, "X", "z", 0, X, 6, 2, NULL, y, 1, "regression"), 0);
  agreed_failure(open_and_read(p), "noy.h5", "/y");
  path_of(p, "rank1.h5");
  write_custom(p, H5T_IEEE_F32LE, 1, 12, 1, 12, 0, -1);
  agreed_failure(open_and_read(p), "rank1.h5", "2 dimensions");
  path_of(p, "mismatch.h5");
  write_custom(p, H5T_IEEE_F32LE, 2, 10, 2, 9, 0, -1);
  agreed_failure(open_and_read(p), "mismatch.h5", "rows");
}

static void test_bad_values(void **state) {
  (void)state;
  char p[512];
  path_of(p, "neglabel.h5");
  write_custom(p, H5T_IEEE_F32LE, 2, 12, 2, 12, 1, -1);
  agreed_failure(open_and_read(p), "neglabel.h5", "row 2");
  path_of(p, "inf.h5");
  write_custom(p, H5T_IEEE_F64LE, 2, 12, 2, 12, 0, 5);
  agreed_failure(open_and_read(p), "inf.h5", "row 5");
  path_of(p, "int16.h5");
  write_custom(p, H5T_STD_I16LE, 2, 12, 2, 12, 0, -1);
  agreed_failure(open_and_read(p), "int16.h5", "unsupported element type");
}

static void test_huge_header(void **state) {
  (void)state;
  /* a dataset declaring 2^50 rows: HDF5 stores it sparsely (nothing written), and dptrain
   * must refuse the shape before allocating anything from it */
  char p[512];
  path_of(p, "huge.h5");
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {(hsize_t)1 << 50, 8}, chunk[2] = {1024, 8}, yd[1] = {(hsize_t)1 << 50};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t xs = H5Screate_simple(2, xd, NULL), x = H5Dcreate2(f, "X", H5T_IEEE_F32LE, xs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hid_t ycpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(ycpl, 1, chunk);
    hid_t ys = H5Screate_simple(1, yd, NULL), y = H5Dcreate2(f, "y", H5T_STD_I32LE, ys, H5P_DEFAULT, ycpl, H5P_DEFAULT);
    H5Dclose(x), H5Dclose(y), H5Sclose(xs), H5Sclose(ys), H5Pclose(dcpl), H5Pclose(ycpl), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
  agreed_failure(open_and_read(p), "huge.h5", "beyond what dptrain supports");
}

/* Found by tests/fuzz/fuzz_dataset.c. /X and /y declaring 2^39 + 1 rows (chunked, unlimited)
 * with 8 written: the label scan allocated 12 bytes per declared row (4 TiB at one rank) before
 * anything checked that the rows exist; rows never written are now refused at open. A /X whose
 * contiguous storage was never written likewise. */
static void test_declared_rows_not_stored(void **state) {
  (void)state;
  char p[512];
  path_of(p, "declared.h5");
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {((hsize_t)1 << 39) + 1, 2}, xmax[2] = {H5S_UNLIMITED, H5S_UNLIMITED}, chunk[2] = {4, 2};
    hsize_t start[2] = {0, 0}, cnt[2] = {8, 2};
    double X[16] = {0};
    int32_t lab[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), ycpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_chunk(ycpl, 1, chunk);
    hid_t xs = H5Screate_simple(2, xd, xmax), ys = H5Screate_simple(1, xd, xmax);
    hid_t x = H5Dcreate2(f, "X", H5T_IEEE_F32LE, xs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    hid_t y = H5Dcreate2(f, "y", H5T_STD_I32LE, ys, H5P_DEFAULT, ycpl, H5P_DEFAULT);
    hid_t xm = H5Screate_simple(2, cnt, NULL), ym = H5Screate_simple(1, cnt, NULL);
    H5Sselect_hyperslab(xs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    H5Sselect_hyperslab(ys, H5S_SELECT_SET, start, NULL, cnt, NULL);
    H5Dwrite(x, H5T_NATIVE_DOUBLE, xm, xs, H5P_DEFAULT, X);
    H5Dwrite(y, H5T_NATIVE_INT32, ym, ys, H5P_DEFAULT, lab);
    H5Sclose(xm), H5Sclose(ym), H5Dclose(x), H5Dclose(y), H5Sclose(xs), H5Sclose(ys), H5Pclose(dcpl), H5Pclose(ycpl);
    H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
  agreed_failure(open_and_read(p), "declared.h5: /X: declares 549755813889 rows but stores only 2 of the",
                 "(rows never written?)");
  path_of(p, "unwritten.h5");
  write_custom(p, H5T_IEEE_F32LE, 2, 5000, 1, 5000, 0, -1); /* /X [5000, 1] and /y never written */
  agreed_failure(open_and_read(p), "unwritten.h5: /X: declares 5000 rows but stores only 0 of the 20000 bytes",
                 NULL);
}

/* Found by tests/fuzz/fuzz_dataset.c: an attribute task holding an array of strings (h5py:
 * attrs["task"] = ["multiclass"] * 8) was read whole into a 64-byte buffer on the stack; an
 * attribute scale holding 8 numbers, into one double. */
static void test_attribute_arrays(void **state) {
  (void)state;
  char p[512];
  path_of(p, "taskarray.h5");
  write_custom(p, H5T_IEEE_F32LE, 2, 12, 2, 12, 0, -1);
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT), t = H5Tcopy(H5T_C_S1);
    hsize_t eight = 8;
    char texts[8][11];
    for (int i = 0; i < 8; ++i) memcpy(texts[i], "multiclass", 11);
    H5Tset_size(t, 11);
    hid_t sp = H5Screate_simple(1, &eight, NULL), a = H5Acreate2(f, "task", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, texts);
    H5Aclose(a), H5Sclose(sp), H5Tclose(t), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
  agreed_failure(open_and_read(p), "taskarray.h5: attribute task: expected a single string", NULL);
  path_of(p, "scalearray.h5");
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {4, 2}, yd[1] = {4}, eight = 8;
    uint8_t X[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t lab[4] = {0, 1, 0, 1};
    double scales[8] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    hid_t xs = H5Screate_simple(2, xd, NULL), ys = H5Screate_simple(1, yd, NULL);
    hid_t as = H5Screate_simple(1, &eight, NULL);
    hid_t x = H5Dcreate2(f, "X", H5T_STD_U8LE, xs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t y = H5Dcreate2(f, "y", H5T_STD_I32LE, ys, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t a = H5Acreate2(x, "scale", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(x, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, X);
    H5Dwrite(y, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Awrite(a, H5T_NATIVE_DOUBLE, scales);
    H5Aclose(a), H5Dclose(x), H5Dclose(y), H5Sclose(xs), H5Sclose(ys), H5Sclose(as), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
  agreed_failure(open_and_read(p), "scalearray.h5: /X: attribute scale: expected a single positive number", NULL);
}

/* Found by tests/fuzz/fuzz_dataset.c: an int64 label 2^40 was converted to int32 (saturated at
 * 2^31 - 1) and a label 2^31 - 2 gave 2^31 - 1 classes, the model's output count; labels are
 * refused beyond dptrain's limit of 2^24 classes, like d and k. */
static void test_label_too_large(void **state) {
  (void)state;
  char p[512];
  static const int64_t big[] = {(int64_t)1 << 40, 2147483646};
  for (int b = 0; b < 2; ++b) {
    path_of(p, "biglabel.h5");
    write_custom(p, H5T_IEEE_F32LE, 2, 12, 2, 12, 0, -1);
    if (dpt_test_world.rank == 0) {
      hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
      H5Ldelete(f, "y", H5P_DEFAULT);
      hsize_t n = 12;
      int64_t lab[12] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
      lab[7] = big[b];
      hid_t sp = H5Screate_simple(1, &n, NULL);
      hid_t y = H5Dcreate2(f, "y", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(y, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
      H5Dclose(y), H5Sclose(sp), H5Fclose(f);
    }
    MPI_Barrier(dpt_test_world.comm);
    agreed_failure(open_and_read(p), "biglabel.h5: /y: row 7: class label outside [0, 16777216)", NULL);
  }
}

/* A file that one rank cannot see (a node-local path, a stale mount): the others must not
 * enter the collective open alone. The last rank is given a missing path, then a file that
 * is not HDF5; every rank returns the same error naming that rank. */
static void test_file_missing_on_one_rank(void **state) {
  (void)state;
  int last = dpt_test_world.size - 1;
  char good[512], p[512], want[64];
  path_of(good, "good.h5");
  write_custom(good, H5T_IEEE_F32LE, 2, 12, 2, 12, 0, -1);
  snprintf(want, sizeof want, "rank %d: ", last);
  path_of(p, "only-here.h5");
  agreed_failure(open_and_read(dpt_test_world.rank == last ? p : good), dpt_test_world.size > 1 ? want : "",
                 "only-here.h5: no such file");
  path_of(p, "plain2.txt");
  write_text(p, "not hdf5\n");
  agreed_failure(open_and_read(dpt_test_world.rank == last ? p : good), dpt_test_world.size > 1 ? want : "",
                 "plain2.txt: not an HDF5 file");
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "%s", dpt_test_tmpdir());
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_not_hdf5_and_missing, setup),
      cmocka_unit_test_setup(test_truncated, setup),
      cmocka_unit_test_setup(test_missing_objects_and_rank, setup),
      cmocka_unit_test_setup(test_bad_values, setup),
      cmocka_unit_test_setup(test_huge_header, setup),
      cmocka_unit_test_setup(test_file_missing_on_one_rank, setup),
      cmocka_unit_test_setup(test_declared_rows_not_stored, setup),
      cmocka_unit_test_setup(test_attribute_arrays, setup),
      cmocka_unit_test_setup(test_label_too_large, setup),
  };
  return dpt_test_run(tests);
}

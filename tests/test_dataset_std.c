/* test_dataset_std.c — data.standardize (parallel mean/std, applied on read, handed to the
 * validation set) and chunked + gzip/shuffle-compressed files read collectively by every
 * rank (parallel HDF5 reads filtered datasets only collectively: this is the test of it).
 * dpt-test: ranks=1,2,3 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/dataset.h"

#define N 7
#define D 3

/* Column 0: 1e6 + i (mean 1e6 + 3, population std 2: a large mean over a small spread, where
 * unshifted sums of x² would lose digits); column 1: constant 5 (std 0 -> 1, maps to 0);
 * column 2: 0 / 1 alternating (mean 3/7, std sqrt(12)/7). */
static void fill(double *X) {
  for (int i = 0; i < N; ++i) {
    X[i * D + 0] = 1e6 + i;
    X[i * D + 1] = 5;
    X[i * D + 2] = i % 2;
  }
}

/* Rank 0 writes /X (float64, chunks of 2 rows, shuffle + gzip when compress) and /y. */
static void write_file(const char *path, int compress, int uint8) {
  if (dpt_test_world.rank == 0) {
    double X[N * D];
    fill(X);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t xd[2] = {N, D}, ch[2] = {2, D}, yd[1] = {N}, ych[1] = {2};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), ycpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, ch);
    H5Pset_chunk(ycpl, 1, ych);
    if (compress) {
      H5Pset_shuffle(dcpl);
      H5Pset_deflate(dcpl, 6);
      H5Pset_shuffle(ycpl);
      H5Pset_deflate(ycpl, 6);
    }
    hid_t xs = H5Screate_simple(2, xd, NULL), ys = H5Screate_simple(1, yd, NULL);
    hid_t x = H5Dcreate2(f, "X", uint8 ? H5T_STD_U8LE : H5T_IEEE_F64LE, xs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (uint8) {
      uint8_t b[N * D];
      for (int i = 0; i < N * D; ++i) b[i] = (uint8_t)(i * 10);
      H5Dwrite(x, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, b);
      double sc = 0.5;
      hid_t as = H5Screate(H5S_SCALAR), a = H5Acreate2(x, "scale", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(a, H5T_NATIVE_DOUBLE, &sc);
      H5Aclose(a);
      H5Sclose(as);
    } else {
      H5Dwrite(x, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, X);
    }
    hid_t y = H5Dcreate2(f, "y", H5T_STD_I32LE, ys, H5P_DEFAULT, ycpl, H5P_DEFAULT);
    int32_t lab[N];
    for (int i = 0; i < N; ++i) lab[i] = i % 3;
    H5Dwrite(y, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Dclose(y);
    H5Dclose(x);
    H5Sclose(ys);
    H5Sclose(xs);
    H5Pclose(dcpl);
    H5Pclose(ycpl);
    H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

/* Every rank reads a different, shuffled, duplicated set of rows: this rank's rows are
 * r, r + P, ... plus row N-1 twice (so ranks' selections differ, some ranks read none). */
static void read_mine(dpt_dataset *ds, dpt_dtype dt, double *got, int64_t *rows, int32_t *lab, int64_t *n) {
  int P = dpt_test_world.size, r = dpt_test_world.rank;
  *n = 0;
  for (int64_t i = N - 1 - r; i >= 0; i -= P) rows[(*n)++] = i;
  if (r == 1) rows[(*n)++] = N - 1, rows[(*n)++] = N - 1;
  if (r == 2) *n = 0; /* a rank with nothing to read joins with an empty selection */
  float xf[(N + 2) * D];
  assert_dpt_ok(dpt_dataset_read_rows(ds, rows, *n, dt, dt == DPT_F64 ? (void *)got : (void *)xf, lab, NULL));
  if (dt == DPT_F32)
    for (int64_t i = 0; i < *n * D; ++i) got[i] = xf[i];
}

static void test_compressed_chunked_read(void **state) {
  (void)state;
  char p[512];
  snprintf(p, sizeof p, "%s/gz.h5", dpt_test_tmpdir());
  write_file(p, 1, 0);
  dpt_dataset *ds = NULL;
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, p, "train", &ds));
  assert_int_equal(dpt_dataset_rows(ds), N);
  assert_int_equal(dpt_dataset_outputs(ds), 3);
  double X[N * D], got[(N + 2) * D];
  int64_t rows[N + 2], n;
  int32_t lab[N + 2];
  fill(X);
  read_mine(ds, DPT_F64, got, rows, lab, &n);
  for (int64_t i = 0; i < n; ++i) {
    assert_int_equal(lab[i], rows[i] % 3);
    for (int j = 0; j < D; ++j) assert_true(got[i * D + j] == X[rows[i] * D + j]); /* stored doubles: exact */
  }
  dpt_dataset_close(&ds);
}

static void test_standardize_values(void **state) {
  (void)state;
  char p[512];
  snprintf(p, sizeof p, "%s/std.h5", dpt_test_tmpdir());
  write_file(p, 1, 0);
  dpt_dataset *ds = NULL;
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, p, "train", &ds));
  const double *mean, *sd;
  dpt_dataset_standardization(ds, &mean, &sd);
  assert_null(mean);
  assert_null(sd);
  assert_dpt_ok(dpt_dataset_standardize(ds));
  dpt_dataset_standardization(ds, &mean, &sd);
  /* exact in exact arithmetic; 1e-9 relative allows the rounding of 7-term double sums */
  assert_float_equal(mean[0], 1e6 + 3, 1e-9 * 1e6);
  assert_float_equal(sd[0], 2.0, 1e-9);
  assert_float_equal(mean[1], 5.0, 1e-12);
  assert_float_equal(sd[1], 1.0, 0.0); /* constant feature: std 1 exactly */
  assert_float_equal(mean[2], 3.0 / 7.0, 1e-12);
  assert_float_equal(sd[2], sqrt(12.0) / 7.0, 1e-12);
  double got[(N + 2) * D];
  int64_t rows[N + 2], n;
  int32_t lab[N + 2];
  read_mine(ds, DPT_F64, got, rows, lab, &n);
  for (int64_t i = 0; i < n; ++i) {
    double r = (double)rows[i];
    assert_float_equal(got[i * D + 0], (r - 3) / 2, 1e-9); /* 1e6-sized values: ~1e-10 after the shift */
    assert_float_equal(got[i * D + 1], 0.0, 0.0);
    assert_float_equal(got[i * D + 2], ((double)(rows[i] % 2) - 3.0 / 7.0) / (sqrt(12.0) / 7.0), 1e-12);
  }
  /* float32 reads: the same values to float precision (2^-23 relative of values ≤ 1.5) */
  read_mine(ds, DPT_F32, got, rows, lab, &n);
  for (int64_t i = 0; i < n; ++i) assert_float_equal(got[i * D + 0], ((double)rows[i] - 3) / 2, 1e-6);
  /* statistics handed to another set (the validation set) are copied, and applied */
  dpt_dataset *val = NULL;
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, p, "val", &val));
  assert_dpt_ok(dpt_dataset_set_standardization(val, mean, sd));
  read_mine(val, DPT_F64, got, rows, lab, &n);
  for (int64_t i = 0; i < n; ++i) assert_float_equal(got[i * D + 0], ((double)rows[i] - 3) / 2, 1e-9);
  double bad_sd[D] = {1, 0, 1};
  assert_dpt_fails(dpt_dataset_set_standardization(val, mean, bad_sd), DPT_ERR_INPUT, "feature 1");
  dpt_dataset_close(&val);
  dpt_dataset_close(&ds);
}

/* uint8 with scale: statistics are of the scaled values (stored i*10, scale 0.5). */
static void test_standardize_uint8_scale(void **state) {
  (void)state;
  char p[512];
  snprintf(p, sizeof p, "%s/u8.h5", dpt_test_tmpdir());
  write_file(p, 0, 1);
  dpt_dataset *ds = NULL;
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, p, "train", &ds));
  assert_dpt_ok(dpt_dataset_standardize(ds));
  const double *mean, *sd;
  dpt_dataset_standardization(ds, &mean, &sd);
  /* column j holds 0.5 * 10 * (i*D + j) = 5*(3i + j): mean 5*(9 + j), std 15 * 2 */
  for (int j = 0; j < D; ++j) {
    assert_float_equal(mean[j], 5.0 * (9 + j), 1e-9);
    assert_float_equal(sd[j], 30.0, 1e-9);
  }
  dpt_dataset_close(&ds);
}

/* data.standardize = true through the loader: a full batch comes out with mean 0, std 1. */
static void test_loader_standardize_key(void **state) {
  (void)state;
  char p[512];
  snprintf(p, sizeof p, "%s/key.h5", dpt_test_tmpdir());
  write_file(p, 1, 0);
  dpt_dataset *ds = NULL;
  dpt_config *cfg = NULL;
  dpt_loader *l = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_set(cfg, "data.standardize", "true", "test"));
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, p, "train", &ds));
  assert_dpt_ok(dpt_loader_create(&dpt_test_world, ds, cfg, DPT_F64, 0, 0, 1, &l));
  dpt_batch b;
  assert_dpt_ok(dpt_loader_batch(l, 0, 0, &b));
  double s[2 * D] = {0}, t[2 * D];
  const double *X = b.X;
  for (int64_t i = 0; i < b.n; ++i)
    for (int j = 0; j < D; ++j) s[j] += X[i * D + j], s[D + j] += X[i * D + j] * X[i * D + j];
  MPI_Allreduce(s, t, 2 * D, MPI_DOUBLE, MPI_SUM, dpt_test_world.comm);
  for (int j = 0; j < D; ++j) {
    assert_float_equal(t[j] / N, 0.0, 1e-9);                        /* mean 0 */
    assert_float_equal(t[D + j] / N, j == 1 ? 0.0 : 1.0, 1e-9);     /* variance 1 (constant column: 0) */
  }
  dpt_loader_destroy(&l);
  dpt_dataset_close(&ds);
  dpt_config_destroy(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compressed_chunked_read),
      cmocka_unit_test(test_standardize_values),
      cmocka_unit_test(test_standardize_uint8_scale),
      cmocka_unit_test(test_loader_standardize_key),
  };
  return dpt_test_run(tests);
}

/* test_checkpoint_model.c — model files: save and rebuild a model bitwise, architecture and
 * dtype mismatches refused with what differs, --init from a file written the way h5py writes
 * (float64, no checksums, no attributes). */
// dpt-test: ranks=1,2
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>

#include "dptrain/checkpoint.h"
#include "dptrain/config.h"
#include "dptrain/model.h"

static dpt_model *make_model(const char *ini, dpt_dtype dt, uint64_t seed, dpt_config **cfg_out) {
  dpt_config *cfg = NULL;
  dpt_model *m = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, ini, "test"));
  assert_dpt_ok(dpt_model_create(cfg, dt, 3, 2, DPT_TASK_REGRESSION, &m));
  assert_dpt_ok(dpt_model_init_params(m, seed));
  if (cfg_out)
    *cfg_out = cfg;
  else
    dpt_config_destroy(&cfg);
  return m;
}

static const char *const INI = "[model]\nlayers = 4,3\nactivation = tanh\n";

static void test_save_and_rebuild(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  char path[512];
  snprintf(path, sizeof path, "%s/m.h5", dpt_test_tmpdir());
  dpt_config *cfg = NULL;
  dpt_model *m = make_model(INI, DPT_F32, 7, &cfg);
  double mean[3] = {1, 2, 3}, sd[3] = {0.5, 1, 2};
  dpt_standardize stdz = {mean, sd};
  assert_dpt_ok(dpt_modelfile_save(c, path, m, DPT_TASK_REGRESSION, cfg, &stdz));
  dpt_loaded_model lm;
  assert_dpt_ok(dpt_modelfile_load(c, path, &lm));
  assert_int_equal(lm.task, DPT_TASK_REGRESSION);
  assert_int_equal(lm.dtype, DPT_F32);
  assert_int_equal(lm.n_in, 3);
  assert_int_equal(lm.n_out, 2);
  assert_int_equal(dpt_model_num_params(lm.model), dpt_model_num_params(m));
  /* bitwise (tolerance 0): parameters round-trip through the file unchanged */
  assert_memory_equal(dpt_model_params(lm.model), dpt_model_params(m), dpt_model_num_params(m) * sizeof(float));
  assert_non_null(lm.mean);
  assert_memory_equal(lm.mean, mean, sizeof mean);
  assert_memory_equal(lm.std, sd, sizeof sd);
  /* the rebuilt model computes the same outputs (same parameters, same graph: bitwise) */
  float X[6] = {0.1f, -0.2f, 0.3f, 1.0f, 2.0f, -3.0f}, o1[4], o2[4];
  assert_dpt_ok(dpt_model_evaluate(m, X, NULL, 2, 1.0, NULL, NULL, o1));
  assert_dpt_ok(dpt_model_evaluate(lm.model, X, NULL, 2, 1.0, NULL, NULL, o2));
  assert_memory_equal(o1, o2, sizeof o1);
  dpt_loaded_model_free(&lm);
  assert_null(lm.model);

  /* another architecture or dtype is refused, saying what differs */
  dpt_ckpt_file *f = NULL;
  static const char *const fm[] = {DPT_CKPT_FORMAT_MODEL, NULL};
  dpt_model *wider = make_model("[model]\nlayers = 5,3\n", DPT_F32, 1, NULL);
  dpt_model *shallower = make_model("[model]\nlayers = 4\n", DPT_F32, 1, NULL);
  dpt_model *f64 = make_model(INI, DPT_F64, 1, NULL);
  assert_dpt_ok(dpt_ckpt_open(c, path, fm, false, &f));
  assert_dpt_fails(dpt_modelfile_get_params(f, wider, true), DPT_ERR_FORMAT,
                   "architecture differs: tensor model/layer_1/W is [3, 4] in the file, [3, 5] in this model");
  assert_dpt_fails(dpt_modelfile_get_params(f, shallower, true), DPT_ERR_FORMAT,
                   "architecture differs: the file has 6 parameter tensors (layer_2/W,layer_2/b,layer_1/W");
  assert_dpt_fails(dpt_modelfile_get_params(f, f64, true), DPT_ERR_FORMAT,
                   "dtype differs: tensor model/layer_2/W is f32 in the file, this run uses f64");
  assert_dpt_ok(dpt_modelfile_get_params(f, f64, false)); /* model files convert */
  for (size_t i = 0; i < dpt_model_num_params(m); ++i) /* exact: f32 -> f64 is exact */
    assert_true(((double *)dpt_model_params(f64))[i] == (double)((float *)dpt_model_params(m))[i]);
  dpt_ckpt_close(&f);
  dpt_model_destroy(&wider);
  dpt_model_destroy(&shallower);
  dpt_model_destroy(&f64);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
}

/* --init from a file as h5py writes it: numpy float64 arrays, default layout, no
 * attributes, no checksums (written here with the serial HDF5 C API by rank 0). */
static void test_init_from_h5py_layout(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  char path[512];
  snprintf(path, sizeof path, "%s/h5py.h5", dpt_test_tmpdir());
  dpt_model *m = make_model(INI, DPT_F32, 3, NULL);
  size_t n = dpt_model_num_params(m);
  double *vals = NULL;
  assert_dpt_ok(dpt_alloc(n, sizeof(double), "vals", &vals));
  for (size_t i = 0; i < n; ++i) vals[i] = 0.001 * (double)i - 0.05;
  if (c->rank == 0) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    for (int t = 0; t < dpt_model_num_tensors(m); ++t) {
      dpt_param_info info;
      dpt_model_tensor_info(m, t, &info);
      hsize_t dims[2] = {(hsize_t)info.shape[0], info.ndim > 1 ? (hsize_t)info.shape[1] : 0};
      hid_t sp = H5Screate_simple(info.ndim, dims, NULL);
      char name[128];
      snprintf(name, sizeof name, "/model/%s", info.name);
      hid_t d = H5Dcreate2(file, name, H5T_IEEE_F64LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
      assert_true(d >= 0);
      H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals + info.offset);
      H5Dclose(d);
      H5Sclose(sp);
    }
    H5Pclose(lcpl);
    H5Fclose(file);
  }
  MPI_Barrier(c->comm);
  assert_dpt_ok(dpt_modelfile_init(c, path, m));
  const float *p = dpt_model_params(m);
  for (size_t i = 0; i < n; ++i) assert_true(p[i] == (float)vals[i]); /* exact: the same (float) rounding */
  dpt_model *wider = make_model("[model]\nlayers = 5,3\n", DPT_F32, 1, NULL);
  assert_dpt_fails(dpt_modelfile_init(c, path, wider), DPT_ERR_FORMAT,
                   "tensor model/layer_1/W is [3, 4] in the file, [3, 5] in this model");
  dpt_model_destroy(&wider);
  dpt_free(&vals);
  dpt_model_destroy(&m);
}

/* Rank 0 edits a saved model file with the serial HDF5 API (the other ranks wait). */
static void edit_std(const char *path, double value) { /* std[1] = value, with a matching crc32 */
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, "/model/standardize/std", H5P_DEFAULT);
    double sd[3];
    H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, sd);
    sd[1] = value;
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, sd);
    uint32_t crc = dpt_crc32(0, sd, sizeof sd);
    hid_t a = H5Aopen(d, "crc32", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT32, &crc);
    H5Aclose(a), H5Dclose(d), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

/* Attribute n_in of /model replaced by `count` int64 values n_in (count 1: a scalar). */
static void edit_n_in(const char *path, int64_t n_in, int count) {
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Gopen2(f, "/model", H5P_DEFAULT);
    hsize_t n = (hsize_t)count;
    int64_t v[8] = {n_in, n_in, n_in, n_in, n_in, n_in, n_in, n_in};
    H5Adelete(g, "n_in");
    hid_t sp = count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(g, "n_in", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, v);
    H5Aclose(a), H5Sclose(sp), H5Gclose(g), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

/* The root attribute config (the run's resolved config) replaced by text. */
static void edit_config(const char *path, const char *text) {
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, H5T_VARIABLE);
    H5Adelete(f, "config");
    hid_t a = H5Acreate2(f, "config", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, &text);
    H5Aclose(a), H5Sclose(sp), H5Tclose(t), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

/* A tensor replaced by one declaring [2^40] rows, chunked, none of them written. */
static void edit_declared_huge(const char *path, const char *name) {
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, name, H5P_DEFAULT);
    hsize_t dims[1] = {(hsize_t)1 << 40}, maxdims[1] = {H5S_UNLIMITED}, chunk[1] = {64};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = H5Screate_simple(1, dims, maxdims);
    H5Pset_chunk(dcpl, 1, chunk);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dclose(d), H5Sclose(sp), H5Pclose(dcpl), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

/* Found by tests/fuzz/fuzz_checkpoint.c: what eval and predict would use from a model file
 * is checked before it is used. A std of 0 (or NaN) made eval divide by it; an n_in of 2^31
 * was taken as the size of the model to allocate; an n_in holding 8 integers overran the
 * int64 it was read into (the same for every integer, number and crc32 attribute); a tensor
 * declaring 2^40 rows and storing none was read by its declared shape. Each is refused with
 * the file and the record. */
static void test_hostile_model_file(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  char path[512];
  snprintf(path, sizeof path, "%s/hostile.h5", dpt_test_tmpdir());
  dpt_config *cfg = NULL;
  dpt_model *m = make_model(INI, DPT_F32, 7, &cfg);
  double mean[3] = {1, 2, 3}, sd[3] = {0.5, 1, 2};
  dpt_standardize stdz = {mean, sd};
  dpt_loaded_model lm;
  assert_dpt_ok(dpt_modelfile_save(c, path, m, DPT_TASK_REGRESSION, cfg, &stdz));
  edit_std(path, 0.0);
  assert_dpt_fails(dpt_modelfile_load(c, path, &lm), DPT_ERR_FORMAT,
                   "hostile.h5: model/standardize: feature 1 has mean 2, std 0 (expected finite values, std > 0)");
  assert_null(lm.model);
  edit_std(path, NAN);
  assert_dpt_fails(dpt_modelfile_load(c, path, &lm), DPT_ERR_FORMAT, "feature 1 has mean 2, std nan");
  assert_dpt_ok(dpt_modelfile_save(c, path, m, DPT_TASK_REGRESSION, cfg, &stdz));
  edit_n_in(path, (int64_t)1 << 31, 1);
  assert_dpt_fails(dpt_modelfile_load(c, path, &lm), DPT_ERR_FORMAT,
                   "hostile.h5: model/n_in 2147483648, n_out 2: more than the file's");
  /* a config describing layers far larger than the file's values is refused before they are
   * allocated (10^8 units of 3 inputs: 4e8 parameters, 3.2 GB with their gradients) */
  assert_dpt_ok(dpt_modelfile_save(c, path, m, DPT_TASK_REGRESSION, cfg, &stdz));
  edit_config(path, "[model]\nlayers = 100000000\n");
  assert_dpt_fails(dpt_modelfile_load(c, path, &lm), DPT_ERR_INPUT,
                   "hostile.h5: cannot rebuild the model it describes (attribute config, model/n_in, n_out): layer.0: "
                   "100000000 units (x 1 pieces) of 3 inputs: expected at most");
  assert_null(lm.model);
  edit_n_in(path, (int64_t)1 << 31, 1);
  /* an array where a scalar belongs: H5Aread wrote all 8 values into one int64 */
  edit_n_in(path, 3, 8);
  assert_dpt_fails(dpt_modelfile_load(c, path, &lm), DPT_ERR_FORMAT,
                   "hostile.h5: model/n_in: expected a single integer");
  assert_dpt_ok(dpt_modelfile_save(c, path, m, DPT_TASK_REGRESSION, cfg, &stdz));
  edit_declared_huge(path, "/model/standardize/mean");
  dpt_ckpt_file *f = NULL;
  static const char *const fm[] = {DPT_CKPT_FORMAT_MODEL, NULL};
  dpt_dtype stored;
  int nd;
  int64_t shape[DPT_CKPT_MAX_DIMS];
  assert_dpt_ok(dpt_ckpt_open(c, path, fm, false, &f));
  assert_dpt_fails(dpt_ckpt_tensor_shape(f, "model/standardize/mean", &stored, &nd, shape), DPT_ERR_FORMAT,
                   "tensor model/standardize/mean: declares [1099511627776] but stores only 0 of the 17179869184 "
                   "chunks it needs");
  dpt_ckpt_close(&f);
  assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_save_and_rebuild),
      cmocka_unit_test(test_init_from_h5py_layout),
      cmocka_unit_test(test_hostile_model_file),
  };
  return dpt_test_run(tests);
}

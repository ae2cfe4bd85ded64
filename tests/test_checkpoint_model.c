/* test_checkpoint_model.c — model files: save and rebuild a model bitwise, architecture and
 * dtype mismatches refused with what differs, --init from a file written the way h5py writes
 * (float64, no checksums, no attributes). */
// dpt-test: ranks=1,2
#include "testutil.h"

#include <hdf5.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_save_and_rebuild),
      cmocka_unit_test(test_init_from_h5py_layout),
  };
  return dpt_test_run(tests);
}

/* test_checkpoint_state.c — training checkpoints: model, Adam and plateau-schedule state,
 * position, history saved and restored into fresh objects so that the next step is bitwise
 * the same as without the interruption; other dtype or optimizer refused saying what
 * differs; retention keeps the last K. */
// dpt-test: ranks=1,2
#include "testutil.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>

#include "dptrain/checkpoint.h"
#include "dptrain/config.h"
#include "dptrain/model.h"
#include "dptrain/optim.h"

typedef struct run {
  dpt_config *cfg;
  dpt_model *m;
  dpt_optim *o;
  dpt_schedule *s;
} run;

static void run_create(run *r, const char *optimizer, dpt_dtype dt) {
  char ini[512];
  snprintf(ini, sizeof ini,
           "[model]\nlayers = 5\nactivation = tanh\n[optimizer]\ntype = %s\nlr = 0.01\n"
           "[schedule]\ntype = plateau\npatience = 1\n",
           optimizer);
  assert_dpt_ok(dpt_config_create(&r->cfg));
  assert_dpt_ok(dpt_config_load_string(r->cfg, ini, "test"));
  assert_dpt_ok(dpt_model_create(r->cfg, dt, 3, 1, DPT_TASK_REGRESSION, &r->m));
  assert_dpt_ok(dpt_optim_create(r->cfg, dt, dpt_model_num_params(r->m), &r->o));
  assert_dpt_ok(dpt_schedule_create(r->cfg, &r->s));
  assert_dpt_ok(dpt_model_init_params(r->m, 11));
}

static void run_destroy(run *r) {
  dpt_schedule_destroy(&r->s);
  dpt_optim_destroy(&r->o);
  dpt_model_destroy(&r->m);
  dpt_config_destroy(&r->cfg);
}

/* One full-batch step on fixed data: schedule, gradient, optimizer step. */
static void one_step(run *r, int64_t step, int64_t epoch) {
  static const float X[8 * 3] = {0.1f, 0.2f, -0.3f, 1.0f, 0.5f, 0.0f, -1.0f, 0.25f, 0.75f, 0.3f, -0.6f, 0.9f,
                                 0.0f, 0.1f, 0.2f,  -0.4f, 0.8f, 0.6f, 0.5f,  -0.5f, 0.5f,  0.2f, 0.2f,  -0.2f};
  static const float Y[8] = {0.5f, -0.25f, 1.0f, 0.0f, 0.3f, -0.7f, 0.1f, 0.9f};
  dpt_targets y = {.labels = NULL, .values = Y};
  double loss = 0;
  dpt_schedule_apply(r->s, r->o, step, epoch);
  assert_dpt_ok(dpt_optim_prepare(r->o, dpt_model_params(r->m)));
  assert_dpt_ok(dpt_model_zero_grads(r->m));
  assert_dpt_ok(dpt_model_forward_backward(r->m, X, &y, 8, 1.0 / 8, &loss, NULL, NULL));
  assert_dpt_ok(dpt_optim_step(r->o, dpt_model_params(r->m), dpt_model_grads(r->m)));
  dpt_schedule_end_epoch(r->s, epoch, loss);
}

static void state_of(run *r, dpt_train_state *st) {
  memset(st, 0, sizeof *st);
  st->model = r->m;
  st->optim = r->o;
  st->schedule = r->s;
  st->cfg = r->cfg;
  st->task = DPT_TASK_REGRESSION;
}

/* Rank 0 edits a saved checkpoint with the serial HDF5 API (the other ranks wait): the
 * attribute optim/t set to t, and element 1 of the f32 tensor optim/m to m with a matching
 * crc32 (a file written so, not a damaged one). */
static void edit_optim(const char *path, int64_t t, float m) {
  if (dpt_test_world.rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Gopen2(f, "/optim", H5P_DEFAULT);
    hid_t a = H5Aopen(g, "t", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &t);
    H5Aclose(a);
    hid_t d = H5Dopen2(g, "m", H5P_DEFAULT), sp = H5Dget_space(d);
    size_t n = (size_t)H5Sget_simple_extent_npoints(sp);
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    v[1] = m;
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    uint32_t crc = dpt_crc32(0, v, n * sizeof *v);
    a = H5Aopen(d, "crc32", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT32, &crc);
    free(v);
    H5Aclose(a), H5Sclose(sp), H5Dclose(d), H5Gclose(g), H5Fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
}

static void test_resume_continues_bitwise(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  char dir[512], path[700];
  snprintf(dir, sizeof dir, "%s/ck", dpt_test_tmpdir());
  run a, b;
  run_create(&a, "adam", DPT_F32);
  for (int k = 0; k < 5; ++k) one_step(&a, k, k);
  dpt_train_state sa;
  state_of(&a, &sa);
  sa.seed = 0xfedcba9876543210ull; /* the top bit set: stored as int64, restored exactly */
  sa.epoch = 5;
  sa.step_in_epoch = 2;
  sa.global_step = 5;
  double hist[2 * 3] = {0, 1.5, 0.25, 1, 1.25, 0.125};
  sa.history = hist;
  sa.history_rows = 2;
  sa.history_cols = 3;
  snprintf(sa.history_names, sizeof sa.history_names, "epoch,train_loss,val_loss");
  assert_dpt_ok(dpt_checkpoint_save(c, dir, 2, &sa, path, sizeof path));
  assert_non_null(strstr(path, "/ck/ckpt-00000005.h5"));

  run_create(&b, "adam", DPT_F32); /* fresh objects, different from a until loaded */
  dpt_train_state sb;
  state_of(&b, &sb);
  assert_dpt_ok(dpt_checkpoint_load(c, path, &sb));
  assert_true(sb.seed == 0xfedcba9876543210ull);
  assert_int_equal(sb.epoch, 5);
  assert_int_equal(sb.step_in_epoch, 2);
  assert_int_equal(sb.global_step, 5);
  assert_int_equal(sb.history_rows, 2);
  assert_int_equal(sb.history_cols, 3);
  assert_memory_equal(sb.history, hist, sizeof hist);
  assert_string_equal(sb.history_names, "epoch,train_loss,val_loss");
  dpt_free(&sb.history);
  /* a caller that appends rows of other columns (the training loop: 5) is refused before it
   * could read past the rows loaded (found by fuzzing, tests/fuzz/fuzz_checkpoint.c) */
  state_of(&b, &sb);
  snprintf(sb.history_names, sizeof sb.history_names, "epoch,train_loss,val_loss,val_metric,lr");
  assert_dpt_fails(dpt_checkpoint_load(c, path, &sb), DPT_ERR_FORMAT,
                   "train/history: 3 columns, expected 5 (epoch,train_loss,val_loss,val_metric,lr)");
  assert_null(sb.history);
  snprintf(sb.history_names, sizeof sb.history_names, "epoch,val_loss,train_loss");
  assert_dpt_fails(dpt_checkpoint_load(c, path, &sb), DPT_ERR_FORMAT,
                   "train/history_columns: 'epoch,train_loss,val_loss', expected 'epoch,val_loss,train_loss'");
  dpt_free(&sb.history);
  snprintf(sb.history_names, sizeof sb.history_names, "epoch,train_loss,val_loss");
  assert_dpt_ok(dpt_checkpoint_load(c, path, &sb));
  assert_int_equal(sb.history_cols, 3);
  dpt_free(&sb.history);
  /* optimizer state is used as it is by the next step: a negative step count or a value that
   * is not finite is refused, even with a matching checksum */
  char bad[760];
  snprintf(bad, sizeof bad, "%s/bad.h5", dir);
  if (c->rank == 0) {
    FILE *in = fopen(path, "rb"), *out = fopen(bad, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, got, out), got);
    fclose(in);
    fclose(out);
  }
  edit_optim(bad, -5, 0.25f);
  run x; /* objects of their own: b is compared with a below */
  run_create(&x, "adam", DPT_F32);
  state_of(&x, &sb);
  assert_dpt_fails(dpt_checkpoint_load(c, bad, &sb), DPT_ERR_FORMAT, "bad.h5: optim/t: -5 (expected >= 0)");
  dpt_free(&sb.history);
  edit_optim(bad, 5, NAN);
  state_of(&x, &sb);
  assert_dpt_fails(dpt_checkpoint_load(c, bad, &sb), DPT_ERR_FORMAT,
                   "bad.h5: optim/m: element 1 is nan (expected finite values)");
  dpt_free(&sb.history);
  edit_optim(bad, 5, 0.25f);
  state_of(&x, &sb);
  assert_dpt_ok(dpt_checkpoint_load(c, bad, &sb));
  dpt_free(&sb.history);
  run_destroy(&x);
  size_t n = dpt_model_num_params(a.m);
  assert_memory_equal(dpt_model_params(a.m), dpt_model_params(b.m), n * sizeof(float));
  assert_int_equal(dpt_optim_steps(a.o), dpt_optim_steps(b.o));
  /* every named state equal bitwise (tolerance 0: restored bytes, not recomputed) */
  for (int i = 0; i < dpt_optim_num_states(a.o); ++i) {
    dpt_state_info ia, ib;
    dpt_optim_state(a.o, i, &ia);
    dpt_optim_state(b.o, i, &ib);
    assert_string_equal(ia.name, ib.name);
    size_t es = ia.type == DPT_STATE_F32 ? 4 : 8;
    assert_memory_equal(ia.data, ib.data, ia.count * es);
  }
  for (int i = 0; i < dpt_schedule_num_states(a.s); ++i) {
    dpt_state_info ia, ib;
    dpt_schedule_state(a.s, i, &ia);
    dpt_schedule_state(b.s, i, &ib);
    assert_memory_equal(ia.data, ib.data, ia.count * 8);
  }
  /* the interrupted and the uninterrupted run take the same next steps, bitwise */
  for (int k = 5; k < 8; ++k) {
    one_step(&a, k, k);
    one_step(&b, k, k);
  }
  assert_memory_equal(dpt_model_params(a.m), dpt_model_params(b.m), n * sizeof(float));

  /* retention: keep = 2 keeps the two newest */
  for (int64_t g = 6; g <= 8; ++g) {
    sa.global_step = g;
    sa.history = NULL;
    assert_dpt_ok(dpt_checkpoint_save(c, dir, 2, &sa, path, sizeof path));
  }
  int64_t *steps = NULL;
  int count = 0;
  assert_dpt_ok(dpt_checkpoint_list(c, dir, &steps, &count));
  assert_int_equal(count, 2);
  assert_int_equal(steps[0], 8);
  assert_int_equal(steps[1], 7);
  dpt_free(&steps);

  /* other dtype, other optimizer: refused with what differs */
  run d, e;
  run_create(&d, "adam", DPT_F64);
  run_create(&e, "momentum", DPT_F32);
  dpt_train_state sd, se;
  state_of(&d, &sd);
  state_of(&e, &se);
  assert_dpt_fails(dpt_checkpoint_load(c, path, &sd), DPT_ERR_FORMAT,
                   "dtype differs: the checkpoint is f32, this run uses f64 (train.dtype)");
  assert_dpt_fails(dpt_checkpoint_load(c, path, &se), DPT_ERR_FORMAT,
                   "optimizer differs: the checkpoint was written with optimizer adam, this run uses momentum");
  run_destroy(&d);
  run_destroy(&e);
  run_destroy(&a);
  run_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_continues_bitwise),
  };
  return dpt_test_run(tests);
}

/* test_parallel_train.c — the acceptance through the real training loop
 * (dpt_train_run: HDF5 dataset, loader, model, optimizer, reducer): parameters after several
 * epochs of mini-batch training of an MLP at P = 1..4 ranks against a one-rank run of the
 * same config inside this process (rank 0 on its own communicator: the P = 1 layout).
 * Exact mode: bitwise identical; fast mode: within 1e-5 relative. Global batch 22 over 103
 * rows: B not divisible by 3 or 4, a short last batch (15 rows); B = 2 gives ranks with no
 * rows at P = 3, 4. A bad row that only one rank reads stops every rank with one message
 * naming it (the non-finite policy is tested with the model in test_parallel.c).
 * dpt-test: ranks=1,2,3,4 */
#include <math.h>
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/train.h"
#include "dptrain/types.h"

enum { N_ROWS = 103, N_IN = 5 };

static const char *dataset(int poison_row) {
  static char path[512];
  static double X[N_ROWS * N_IN];
  static int32_t y[N_ROWS];
  uint64_t s = 11;
  for (int i = 0; i < N_ROWS; ++i) {
    y[i] = i % 3;
    for (int j = 0; j < N_IN; ++j) X[i * N_IN + j] = 2 * dpt_test_uniform(&s) - 1 + 0.7 * y[i] * (j == y[i]);
  }
  if (poison_row >= 0) X[poison_row * N_IN + 2] = NAN;
  snprintf(path, sizeof path, "%s/par%d.h5", dpt_test_tmpdir(), poison_row);
  /* collective: rank 0 writes, every rank learns the outcome */
  assert_int_equal(dpt_test_write_dataset(path, NULL, NULL, 0, X, N_ROWS, N_IN, y, NULL, 3, "multiclass"), 0);
  return path;
}

static dpt_status run(const dpt_comm *c, const char *path, const char *extra, double **params, size_t *n,
                      dpt_train_result *res) {
  char text[2048];
  snprintf(text, sizeof text,
           "[data]\ntrain = %s\nshuffle = global\n[model]\nlayers = 12,8\nactivation = tanh\n[train]\nepochs = 4\n"
           "seed = 5\n[optimizer]\ntype = momentum\nlr = 0.05\nmomentum = 0.9\n[run]\nquiet = true\n%s",
           path, extra);
  dpt_config *cfg = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "parallel.ini"));
  dpt_status st = dpt_train_run(c, cfg, res, params, n);
  dpt_config_destroy(&cfg);
  return st;
}

/* exact: bitwise; fast: every parameter within 1e-5 of the largest |parameter| (normwise
 * relative): float32 sums over ranks in another order differ by ~1e-7 relative per step,
 * and up to 140 steps of momentum SGD here carry that to a few 1e-7 of the scale; a broken
 * reduction (a rank's part lost or counted twice) moves parameters by far more. */
static void compare(const char *extra, bool exact) {
  const dpt_comm *w = &dpt_test_world;
  const char *path = dataset(-1);
  double *ref = NULL, *got = NULL;
  size_t nr = 0, ng = 0;
  dpt_train_result rr, rg;
  if (w->rank == 0) {
    dpt_comm self;
    memset(&self, 0, sizeof self);
    MPI_Comm_dup(MPI_COMM_SELF, &self.comm);
    MPI_Comm_set_errhandler(self.comm, MPI_ERRORS_RETURN);
    self.size = self.local_size = 1;
    assert_dpt_ok(run(&self, path, extra, &ref, &nr, &rr));
    MPI_Comm_free(&self.comm);
  }
  assert_dpt_ok(run(w, path, extra, &got, &ng, &rg));
  if (w->rank == 0) {
    assert_int_equal(nr, ng);
    assert_true(rr.steps == rg.steps && rr.steps > 4);
    if (exact) {
      assert_memory_equal(ref, got, nr * sizeof *ref);
      assert_memory_equal(&rr.train_loss, &rg.train_loss, sizeof rr.train_loss);
    } else {
      double pmax = 0;
      for (size_t i = 0; i < nr; ++i) pmax = fmax(pmax, fabs(ref[i]));
      for (size_t i = 0; i < nr; ++i)
        if (fabs(ref[i] - got[i]) > 1e-5 * pmax)
          fail_msg("param %zu: P=1 %.9g, P=%d %.9g", i, ref[i], w->size, got[i]);
    }
  }
  dpt_free(&ref);
  dpt_free(&got);
}

static void test_exact_bitwise_b22(void **state) {
  (void)state;
  compare("[train]\nbatch = 22\n[parallel]\nreduce = exact\nmicro_batch = 4\ncheck_sync = 1\n", true);
}

static void test_exact_bitwise_ranks_without_rows(void **state) {
  (void)state; /* B = 2, micro 1: at P = 3, 4 some ranks have no rows in every step */
  compare("[train]\nbatch = 2\ndtype = f64\n[parallel]\nreduce = exact\nmicro_batch = 1\n", true);
}

static void test_exact_bitwise_accumulate(void **state) {
  (void)state;
  compare("[train]\nbatch = 10\n[parallel]\nreduce = exact\nmicro_batch = 3\naccumulate = 2\n", true);
}

static void test_fast_close_b22(void **state) {
  (void)state;
  compare("[train]\nbatch = 22\n[parallel]\nbucket_mb = 0.0002\ncheck_sync = 3\n", false);
}

static void test_fast_close_ranks_without_rows(void **state) {
  (void)state;
  compare("[train]\nbatch = 3\n", false);
}

/* Row 102 is the last of the file; with shuffle = none and full-batch training it lands in
 * the last rank's shard only: the loader's check of the rows it reads stops every rank with
 * one message naming that rank and the row. */
static void test_bad_row_on_last_rank_stops_everyone(void **state) {
  (void)state;
  const dpt_comm *w = &dpt_test_world;
  const char *path = dataset(N_ROWS - 1);
  dpt_train_result res;
  double t0 = MPI_Wtime();
  dpt_status st = run(w, path, "[train]\nbatch = 0\n[data]\nshuffle = none\n", NULL, NULL, &res);
  assert_int_equal(st, DPT_ERR_FORMAT);
  char want[64];
  snprintf(want, sizeof want, "%s", w->size > 1 ? "" : "row 102: non-finite");
  if (w->size > 1) snprintf(want, sizeof want, "rank %d: %s", w->size - 1, path);
  if (!strstr(dpt_error_message(), want)) fail_msg("message '%s' lacks '%s'", dpt_error_message(), want);
  assert_non_null(strstr(dpt_error_message(), "row 102: non-finite"));
  dpt_error_clear();
  /* a generous ceiling, not a timing test: the point is that nobody waits for a timeout */
  assert_true(MPI_Wtime() - t0 < 60.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_bitwise_b22),
      cmocka_unit_test(test_exact_bitwise_ranks_without_rows),
      cmocka_unit_test(test_exact_bitwise_accumulate),
      cmocka_unit_test(test_fast_close_b22),
      cmocka_unit_test(test_fast_close_ranks_without_rows),
      cmocka_unit_test(test_bad_row_on_last_rank_stops_everyone),
  };
  return dpt_test_run(tests);
}

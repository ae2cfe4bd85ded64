/* test_train_errors.c — bad input to a training run: a one-line error naming the file or
 * key, the same status on every rank (no rank left waiting), before any training.
 * dpt-test: ranks=1,2 */
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/train.h"

static char dir[256];

static dpt_status run_text(const char *text) {
  dpt_config *cfg = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "bad.ini"));
  dpt_train_result res;
  dpt_status st = dpt_train_run(&dpt_test_world, cfg, &res, NULL, NULL);
  dpt_config_destroy(&cfg);
  return st;
}

static dpt_status run_data(const char *path, const char *extra) {
  char text[1024];
  snprintf(text, sizeof text, "[data]\ntrain = %s\n[train]\nepochs = 1\n[run]\nquiet = true\n%s", path, extra);
  return run_text(text);
}

/* Every rank must return the same status (the call itself would hang otherwise). */
static void assert_all_ranks(dpt_status st) {
  int mine = (int)st, lo = 0, hi = 0;
  MPI_Allreduce(&mine, &lo, 1, MPI_INT, MPI_MIN, dpt_test_world.comm);
  MPI_Allreduce(&mine, &hi, 1, MPI_INT, MPI_MAX, dpt_test_world.comm);
  assert_int_equal(lo, hi);
  assert_int_not_equal(st, DPT_OK);
}

static void good_file(char *path, size_t len) {
  static double X[8] = {0, 1, 2, 3, 4, 5, 6, 7}, y[8] = {1, 3, 5, 7, 9, 11, 13, 15};
  snprintf(path, len, "%s/good.h5", dir);
  assert_int_equal(dpt_test_write_dataset(path, NULL, NULL, 0, X, 8, 1, NULL, y, 1, "regression"), 0);
}

static void test_missing_file(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/no-such-file.h5", dir);
  dpt_status st = run_data(path, "");
  assert_all_ranks(st);
  assert_non_null(strstr(dpt_error_message(), "no-such-file.h5"));
  dpt_error_clear();
}

static void test_not_hdf5(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/text.h5", dir);
  if (dpt_test_world.rank == 0) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x,y\n1,2\n", f);
    fclose(f);
  }
  MPI_Barrier(dpt_test_world.comm);
  dpt_status st = run_data(path, "");
  assert_all_ranks(st);
  assert_non_null(strstr(dpt_error_message(), "text.h5"));
  dpt_error_clear();
}

static void test_no_X(void **state) {
  (void)state;
  static double X[4] = {0, 1, 2, 3}, y[4] = {0, 1, 2, 3};
  char path[512];
  snprintf(path, sizeof path, "%s/nox.h5", dir);
  assert_int_equal(dpt_test_write_dataset(path, "Z", "y", 0, X, 4, 1, NULL, y, 1, "regression"), 0);
  dpt_status st = run_data(path, "");
  assert_all_ranks(st);
  assert_non_null(strstr(dpt_error_message(), "nox.h5"));
  assert_non_null(strstr(dpt_error_message(), "X"));
  dpt_error_clear();
}

static void test_N_mismatch(void **state) {
  (void)state;
  static double X[10] = {0}, y[10] = {0};
  char path[512];
  snprintf(path, sizeof path, "%s/mismatch.h5", dir);
  /* /y with 9 rows, /X with 10 rows */
  assert_int_equal(dpt_test_write_dataset(path, "Xjunk", "y", 0, X, 9, 1, NULL, y, 1, "regression"), 0);
  assert_int_equal(dpt_test_write_dataset(path, "X", "yjunk", 1, X, 10, 1, NULL, y, 1, NULL), 0);
  dpt_status st = run_data(path, "");
  assert_all_ranks(st);
  assert_non_null(strstr(dpt_error_message(), "mismatch.h5"));
  dpt_error_clear();
}

static void test_unknown_key(void **state) {
  (void)state;
  char path[512];
  good_file(path, sizeof path);
  dpt_status st = run_data(path, "[optimizer]\nlrr = 0.1\n");
  assert_all_ranks(st);
  assert_int_equal(st, DPT_ERR_INPUT);
  assert_non_null(strstr(dpt_error_message(), "optimizer.lrr"));
  assert_non_null(strstr(dpt_error_message(), "unknown key"));
  dpt_error_clear();
}

static void test_out_of_range(void **state) {
  (void)state;
  char path[512], text[1024];
  good_file(path, sizeof path);
  snprintf(text, sizeof text, "[data]\ntrain = %s\n[train]\nepochs = 0\n", path);
  dpt_status st = run_text(text);
  assert_all_ranks(st);
  assert_int_equal(st, DPT_ERR_INPUT);
  assert_non_null(strstr(dpt_error_message(), "train.epochs"));
  dpt_error_clear();
  st = run_data(path, "[optimizer]\nlr = -1\n");
  assert_all_ranks(st);
  assert_non_null(strstr(dpt_error_message(), "optimizer.lr"));
  dpt_error_clear();
}

/* Exact mode with data.shuffle = local: at 2 ranks each rank takes 2 of its 4 rows per
 * step, so rank 1's rows start at position 2 of the global batch of 4, inside the one
 * micro-batch of 4 rows: refused on every rank, naming the keys (one rank: no split, runs). */
static void test_exact_local_shuffle(void **state) {
  (void)state;
  char path[512];
  good_file(path, sizeof path);
  dpt_status st = run_data(path, "[data]\nshuffle = local\n[train]\nbatch = 4\n[parallel]\nreduce = exact\n"
                                 "micro_batch = 4\n");
  if (dpt_test_world.size == 1) {
    assert_dpt_ok(st);
    return;
  }
  assert_all_ranks(st);
  assert_int_equal(st, DPT_ERR_INPUT);
  assert_non_null(strstr(dpt_error_message(), "rank 1: exact mode (parallel.reduce = exact): this rank's rows start "
                                              "at position 2 of the global batch"));
  assert_non_null(strstr(dpt_error_message(), "data.shuffle = local"));
  dpt_error_clear();
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "%s", dpt_test_tmpdir());
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_missing_file, setup), cmocka_unit_test_setup(test_not_hdf5, setup),
      cmocka_unit_test_setup(test_no_X, setup),         cmocka_unit_test_setup(test_N_mismatch, setup),
      cmocka_unit_test_setup(test_unknown_key, setup),  cmocka_unit_test_setup(test_out_of_range, setup),
      cmocka_unit_test_setup(test_exact_local_shuffle, setup),
  };
  return dpt_test_run(tests);
}

/* test_second_order_train.c — full-batch second-order training of a small MLP through
 * dpt_train_run: the iterates and evaluation counts do not depend on the rank count.
 * dpt-test: ranks=1,2,3 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/train.h"
#include "dptrain/types.h"

enum { NTRAIN = 61 }; /* not a multiple of 2 or 3: uneven shards */

static char data_path[512];

/* Writes the dataset once (collective: every rank calls it in the same test). */
static void ensure_data(void) {
  static bool written = false;
  if (written) return;
  written = true;
  static double X[2 * NTRAIN];
  static int32_t y[NTRAIN];
  uint64_t s = 11;
  for (int i = 0; i < NTRAIN; ++i) { /* two classes split by a circle */
    double a = 2 * dpt_test_uniform(&s) - 1, b = 2 * dpt_test_uniform(&s) - 1;
    X[2 * i] = a;
    X[2 * i + 1] = b;
    y[i] = a * a + b * b < 0.5 ? 1 : 0;
  }
  snprintf(data_path, sizeof data_path, "%s/circle.h5", dpt_test_tmpdir());
  assert_int_equal(dpt_test_write_dataset(data_path, NULL, NULL, 0, X, NTRAIN, 2, y, NULL, 1, "binary"), 0);
}

static dpt_status train_with(const dpt_comm *c, const char *extra, dpt_train_result *res, double **params,
                             size_t *n) {
  char text[1024];
  ensure_data();
  snprintf(text, sizeof text,
           "[data]\ntrain = %s\n[model]\nlayers = 6\nactivation = tanh\n[train]\ndtype = f64\nseed = 5\n"
           "[run]\nquiet = true\n[optimizer]\n%s\n",
           data_path, extra);
  dpt_config *cfg = NULL;
  dpt_status st = dpt_config_create(&cfg);
  if (st == DPT_OK) st = dpt_config_load_string(cfg, text, "so.ini");
  if (st == DPT_OK) st = dpt_train_run(c, cfg, res, params, n);
  dpt_config_destroy(&cfg);
  return st;
}

/* Rank 0 trains alone (a one-rank communicator) as the reference; then every rank trains
 * on the world. Same iterations and evaluations exactly; parameters to 1e-9 relative (the
 * shard sums are added in a different order; ~40 iterations amplify 1e-16 differences by far
 * less than 1e7 on this well-conditioned problem). */
static void same_iterates(const char *extra, double loss_below) {
  dpt_comm self = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
  dpt_train_result ref = {0}, res;
  double *p_ref = NULL, *p = NULL;
  size_t n_ref = 0, n = 0;
  if (dpt_test_world.rank == 0) {
    assert_int_equal(MPI_Comm_dup(MPI_COMM_SELF, &self.comm), MPI_SUCCESS);
    MPI_Comm_set_errhandler(self.comm, MPI_ERRORS_RETURN);
    assert_dpt_ok(train_with(&self, extra, &ref, &p_ref, &n_ref));
    MPI_Comm_free(&self.comm);
  }
  assert_dpt_ok(train_with(&dpt_test_world, extra, &res, &p, &n));
  assert_true(res.train_loss < loss_below);
  assert_true(res.epochs >= 5);
  if (dpt_test_world.rank == 0) {
    assert_int_equal(n, n_ref);
    assert_int_equal(res.epochs, ref.epochs); /* iterations */
    assert_int_equal(res.steps, ref.steps);   /* evaluations */
    for (size_t i = 0; i < n; ++i) assert_float_equal(p[i], p_ref[i], 1e-9 * (1.0 + fabs(p_ref[i])));
    assert_float_equal(res.train_loss, ref.train_loss, 1e-12);
    printf("%s: %lld iterations, %lld evaluations, loss %.9g\n", extra, (long long)res.epochs, (long long)res.steps,
           res.train_loss);
  }
  /* every rank holds the same parameters: compare with rank 0's bits */
  double *p0 = NULL;
  assert_dpt_ok(dpt_alloc(n, sizeof *p0, "copy", &p0));
  memcpy(p0, p, n * sizeof *p0);
  MPI_Bcast(p0, (int)n, MPI_DOUBLE, 0, dpt_test_world.comm);
  assert_memory_equal(p0, p, n * sizeof *p0);
  dpt_free(&p0);
  dpt_free(&p);
  dpt_free(&p_ref);
}

/* The bce loss of the best constant predictor is at most ln 2 ≈ 0.693 (0.82 at the start);
 * a 2-6-1 tanh net fits a disc. Thresholds: well below a constant predictor, above what
 * each budget reaches (L-BFGS: 2e-6 in 40 iterations; Newton-CG, truncated at negative
 * curvature early on: 0.545 in 15; Newton/SFN with damping: 0.38 / 0.06 in 10). */
static void lbfgs_same_on_all_ranks(void **state) {
  (void)state;
  same_iterates("type = lbfgs\nmax_iters = 40\ntol_grad = 0\nhistory = 5", 1e-3);
}

static void newton_cg_same_on_all_ranks(void **state) {
  (void)state;
  same_iterates("type = newton_cg\nmax_iters = 15\ntol_grad = 0", 0.6);
}

static void newton_and_sfn_dense(void **state) {
  (void)state;
  same_iterates("type = newton\nmax_iters = 10\ntol_grad = 0\ndamping = 1e-3", 0.4);
  same_iterates("type = sfn\nmax_iters = 10\ntol_grad = 0\ndamping = 1e-3", 0.4);
}

/* Exact mode (parallel.reduce = exact, micro-batches of 8 rows): the sums no longer depend
 * on how the rows are grouped over ranks, so the iterates are bitwise those of one rank. */
static void exact_mode_bitwise(void **state) {
  (void)state;
  const char *extra = "type = lbfgs\nmax_iters = 25\ntol_grad = 0\n[parallel]\nreduce = exact\nmicro_batch = 8";
  dpt_comm self = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
  dpt_train_result ref = {0}, res;
  double *p_ref = NULL, *p = NULL;
  size_t n_ref = 0, n = 0;
  if (dpt_test_world.rank == 0) {
    assert_int_equal(MPI_Comm_dup(MPI_COMM_SELF, &self.comm), MPI_SUCCESS);
    MPI_Comm_set_errhandler(self.comm, MPI_ERRORS_RETURN);
    assert_dpt_ok(train_with(&self, extra, &ref, &p_ref, &n_ref));
    MPI_Comm_free(&self.comm);
  }
  assert_dpt_ok(train_with(&dpt_test_world, extra, &res, &p, &n));
  assert_true(res.train_loss < 0.3);
  if (dpt_test_world.rank == 0) {
    assert_int_equal(res.epochs, ref.epochs);
    assert_int_equal(res.steps, ref.steps);
    assert_memory_equal(p, p_ref, n * sizeof *p); /* bitwise */
    assert_memory_equal(&res.train_loss, &ref.train_loss, sizeof res.train_loss);
  }
  dpt_free(&p);
  dpt_free(&p_ref);
}

/* Refusals reach every rank with the same one-line message (no hang). */
static void bad_settings_named(void **state) {
  (void)state;
  dpt_train_result res;
  assert_dpt_fails(train_with(&dpt_test_world, "type = newton\ndense_limit = 10", &res, NULL, NULL), DPT_ERR_INPUT,
                   "optimizer.dense_limit = 10");
  assert_dpt_fails(train_with(&dpt_test_world, "type = bfgs\nc1 = 0.5\nc2 = 0.1", &res, NULL, NULL), DPT_ERR_INPUT,
                   "optimizer.c2");
  assert_dpt_fails(train_with(&dpt_test_world, "type = lbfgs\nlr = 0.1", &res, NULL, NULL), DPT_ERR_INPUT,
                   "optimizer.lr");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lbfgs_same_on_all_ranks),
      cmocka_unit_test(newton_cg_same_on_all_ranks),
      cmocka_unit_test(newton_and_sfn_dense),
      cmocka_unit_test(exact_mode_bitwise),
      cmocka_unit_test(bad_settings_named),
  };
  return dpt_test_run(tests);
}

/* test_second_order_train.c — L-BFGS and Newton-CG training of a small MLP over the sharded
 * training set: the same iterates and evaluation counts at every rank count, no hang.
 * dpt-test: ranks=1,2,3 */
#include <math.h>
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/dataset.h"
#include "dptrain/model.h"
#include "dptrain/second_order_train.h"
#include "dptrain/train.h"

enum { NTRAIN = 150 };

static void rings(uint64_t *s, int n, double *X, int32_t *y) {
  for (int i = 0; i < n; ++i) {
    double a = 2 * dpt_test_uniform(s) - 1, b = 2 * dpt_test_uniform(s) - 1, r = sqrt(a * a + b * b);
    X[2 * i] = a;
    X[2 * i + 1] = b;
    y[i] = r < 0.45 ? 0 : r < 0.8 ? 1 : 2;
  }
}

static const char *write_rings(void) {
  static char path[512];
  static double X[2 * NTRAIN];
  static int32_t y[NTRAIN];
  uint64_t s = 11;
  rings(&s, NTRAIN, X, y);
  snprintf(path, sizeof path, "%s/rings_so.h5", dpt_test_tmpdir());
  assert_int_equal(dpt_test_write_dataset(path, NULL, NULL, 0, X, NTRAIN, 2, y, NULL, 3, "multiclass"), 0);
  return path;
}

/* Trains a 2-8-3 tanh MLP (f64) with the method over c; params gets the result [n]. */
static void train_on(const dpt_comm *c, const char *path, const char *method, double *params, size_t *n,
                     dpt_so_result *res) {
  char text[512];
  snprintf(text, sizeof text,
           "[model]\nlayers = 8\nactivation = tanh\n[optimizer]\ntype = %s\nmax_iters = 15\ntol_grad = 0\n"
           "tol_rel = 0\n",
           method);
  dpt_config *cfg = NULL;
  dpt_dataset *ds = NULL;
  dpt_model *m = NULL;
  dpt_so_options o;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "so.ini"));
  assert_dpt_ok(dpt_so_options_read(cfg, &o));
  assert_dpt_ok(dpt_dataset_open(c, path, "train", &ds));
  assert_dpt_ok(dpt_model_create(cfg, DPT_F64, 2, 3, DPT_TASK_MULTICLASS, &m));
  assert_dpt_ok(dpt_model_init_params(m, 5)); /* same seed on every rank: same start */
  assert_dpt_ok(dpt_second_order_train(c, &o, m, ds, DPT_F64, true, res));
  *n = dpt_model_num_params(m);
  memcpy(params, dpt_model_params(m), *n * sizeof *params);
  dpt_model_destroy(&m);
  dpt_dataset_close(&ds);
  dpt_config_destroy(&cfg);
}

/* World run vs. a 1-rank run on rank 0. Tolerance 1e-8 on parameters of size O(1): the
 * per-rank sums differ only in rounding (1e-16 relative) and 15 quasi-Newton iterations
 * amplify it by far less than 1e8 on this well-conditioned start. The iteration and
 * evaluation counts must match exactly (identical branches). */
static void check_method(const char *method) {
  const char *path = write_rings();
  double pw[256], ps[256];
  size_t nw, ns;
  dpt_so_result rw, rs;
  train_on(&dpt_test_world, path, method, pw, &nw, &rw);
  assert_true(nw <= 256);
  /* Loss decreased from the initial ~log(3) well below it. */
  assert_true(rw.loss < 0.9);
  /* Every rank ends with the same bytes (identical reduced values, identical branches). */
  double pr[256];
  assert_int_equal(MPI_Allreduce(pw, pr, (int)nw, MPI_DOUBLE, MPI_MAX, dpt_test_world.comm), MPI_SUCCESS);
  assert_memory_equal(pr, pw, nw * sizeof *pw);
  if (dpt_test_world.rank == 0) {
    dpt_comm self = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
    assert_int_equal(MPI_Comm_dup(MPI_COMM_SELF, &self.comm), MPI_SUCCESS);
    MPI_Comm_set_errhandler(self.comm, MPI_ERRORS_RETURN);
    train_on(&self, path, method, ps, &ns, &rs);
    MPI_Comm_free(&self.comm);
    assert_int_equal(ns, nw);
    double dmax = 0.0;
    for (size_t i = 0; i < nw; i++) dmax = fmax(dmax, fabs(pw[i] - ps[i]));
    printf("%s at %d ranks: loss %.9g, %lld iterations, %lld evaluations, %lld H.v; max |param diff| vs 1 rank %.3g\n",
           method, dpt_test_world.size, rw.loss, (long long)rw.iters, (long long)rw.evals, (long long)rw.hvps, dmax);
    assert_true(dmax <= 1e-8);
    assert_int_equal(rs.iters, rw.iters);
    assert_int_equal(rs.evals, rw.evals);
    assert_int_equal(rs.hvps, rw.hvps);
  }
  MPI_Barrier(dpt_test_world.comm);
}

static void test_lbfgs(void **state) {
  (void)state;
  check_method("lbfgs");
}
static void test_newton_cg(void **state) {
  (void)state;
  check_method("newton_cg");
}

/* Through dptrain's training loop: optimizer.type = lbfgs runs the full-batch driver, and a
 * dense method on a model bigger than dense_limit is refused on every rank, naming the key. */
static void test_train_loop(void **state) {
  (void)state;
  const char *path = write_rings();
  char text[512];
  snprintf(text, sizeof text,
           "[data]\ntrain = %s\n[model]\nlayers = 8\nactivation = tanh\n[train]\nseed = 3\n[optimizer]\n"
           "type = lbfgs\nmax_iters = 30\n[run]\nquiet = true\n",
           path);
  dpt_config *cfg = NULL;
  dpt_train_result res;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "so.ini"));
  assert_dpt_ok(dpt_train_run(&dpt_test_world, cfg, &res, NULL, NULL));
  dpt_config_destroy(&cfg);
  assert_true(res.steps == 30 && res.train_loss < 0.8);
  snprintf(text, sizeof text,
           "[data]\ntrain = %s\n[model]\nlayers = 8\nactivation = tanh\n[optimizer]\ntype = newton\n"
           "dense_limit = 20\n[run]\nquiet = true\n",
           path);
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "so.ini"));
  assert_dpt_fails(dpt_train_run(&dpt_test_world, cfg, &res, NULL, NULL), DPT_ERR_INPUT,
                   "optimizer.dense_limit = 20");
  dpt_config_destroy(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_lbfgs), cmocka_unit_test(test_newton_cg),
                                     cmocka_unit_test(test_train_loop)};
  return dpt_test_run(tests);
}

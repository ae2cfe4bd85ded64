/* test_train.c — the training loop end to end on the seed lecture's regression example:
 * full-batch gradient descent, alpha = 0.005, theta0 = (10, 5), 1000 iterations, checked
 * against the same iteration written out here in double, on 1, 2 and 3 ranks.
 * dpt-test: ranks=1,2,3 */
#include <math.h>
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/model.h"
#include "dptrain/train.h"
#include "dptrain/types.h"

enum { N = 30, ITERS = 1000 };
static double xs[N], ys[N];
static char path[512];

static void make_data(void) {
  uint64_t s = 42;
  for (int i = 0; i < N; ++i) {
    xs[i] = -2.0 + 4.0 * dpt_test_uniform(&s);
    ys[i] = 3.0 * xs[i] + 2.0 + (0.2 * dpt_test_uniform(&s) - 0.1);
  }
  snprintf(path, sizeof path, "%s/seed.h5", dpt_test_tmpdir());
  assert_int_equal(dpt_test_write_dataset(path, NULL, NULL, 0, xs, N, 1, NULL, ys, 1, "regression"), 0);
}

/* The seed's algorithm 1 with M = N: theta <- theta - alpha * grad of mean (y - theta^T [1, x])^2. */
static void reference(double theta[2]) {
  theta[0] = 10.0;
  theta[1] = 5.0;
  for (int t = 0; t < ITERS; ++t) {
    double g0 = 0, g1 = 0;
    for (int i = 0; i < N; ++i) {
      double r = theta[0] + theta[1] * xs[i] - ys[i];
      g0 += 2.0 * r / N;
      g1 += 2.0 * r * xs[i] / N;
    }
    theta[0] -= 0.005 * g0;
    theta[1] -= 0.005 * g1;
  }
}

static void run(const char *dtype, double *bias, double *weight, double *loss) {
  char text[1024];
  snprintf(text, sizeof text,
           "[data]\ntrain = %s\nshuffle = none\n[model]\nlayers =\noutput = identity\nloss = l2\n"
           "[layer.0]\nweights = 5\nbias = 10\n[train]\nepochs = %d\nbatch = 0\ndtype = %s\n"
           "[optimizer]\ntype = sgd\nlr = 0.005\n[run]\nquiet = true\n",
           path, ITERS, dtype);
  dpt_config *cfg = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "seed.ini"));
  dpt_train_result res;
  double *params = NULL;
  size_t n = 0;
  assert_dpt_ok(dpt_train_run(&dpt_test_world, cfg, &res, &params, &n));
  assert_int_equal(n, 2);
  assert_int_equal(res.steps, ITERS);
  /* flat layout: find the tensors by name, not by position */
  /* find W and b of layer 0 by name in the model's documented flat layout */
  dpt_model *m = NULL;
  assert_dpt_ok(dpt_model_create(cfg, DPT_F64, 1, 1, DPT_TASK_REGRESSION, &m));
  *bias = *weight = NAN;
  for (int t = 0; t < dpt_model_num_tensors(m); ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    if (!strcmp(info.name, "layer_0/W")) *weight = params[info.offset];
    if (!strcmp(info.name, "layer_0/b")) *bias = params[info.offset];
  }
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
  *loss = res.train_loss;
  dpt_free(&params);
}

static void test_seed_example_f64(void **state) {
  (void)state;
  double theta[2], b, w, loss;
  reference(theta);
  run("f64", &b, &w, &loss);
  /* f64: the same 1000 updates in a different summation order; each step is a contraction,
   * so rounding differences stay at a few ulps of the values: 1e-9 relative is ample. */
  assert_float_equal(b, theta[0], 1e-9 * fabs(theta[0]));
  assert_float_equal(w, theta[1], 1e-9 * fabs(theta[1]));
  /* the seed's acceptance: within 0.05 of (2, 3) */
  assert_float_equal(b, 2.0, 0.05);
  assert_float_equal(w, 3.0, 0.05);
  /* converged loss is the noise variance: U(-0.1, 0.1) has variance 0.01/3 */
  assert_float_equal(loss, 0.01 / 3.0, 0.002);
}

static void test_seed_example_f32(void **state) {
  (void)state;
  double theta[2], b, w, loss;
  reference(theta);
  run("f32", &b, &w, &loss);
  /* f32 arithmetic: float epsilon 6e-8 per operation; the fixed point is reached with
   * errors of a few float ulps of |theta| ~ 3, i.e. ~1e-6; 1e-5 absolute leaves margin. */
  assert_float_equal(b, theta[0], 1e-5);
  assert_float_equal(w, theta[1], 1e-5);
}

static int setup(void **state) {
  (void)state;
  make_data();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_seed_example_f64, setup),
      cmocka_unit_test_setup(test_seed_example_f32, setup),
  };
  return dpt_test_run(tests);
}

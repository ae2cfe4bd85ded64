/* test_hvp.c — exact Hessian-vector products (forward over reverse) of whole models:
 * against finite differences of the gradient on two-layer networks with tanh and with
 * softplus (relative 1e-5, the acceptance tolerance; see engine_check.h for the error
 * budget of the differences), and against the analytic Hessian of linear least squares. */
#include <math.h>

#include "engine_check.h"
#include "dptrain/config.h"
#include "dptrain/model.h"

static dpt_model *model_from(const char *text, int64_t n_in, int64_t n_out, dpt_task task) {
  dpt_config *cfg;
  dpt_model *m;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "test.ini"));
  assert_dpt_ok(dpt_model_create(cfg, DPT_F64, n_in, n_out, task, &m));
  dpt_config_destroy(&cfg);
  return m;
}

/* hv vs (∇L(θ + h v) − ∇L(θ − h v)) / 2h for a two-layer network. */
static double hvp_fd_error(const char *act, dpt_task task, int64_t n_out) {
  char text[128];
  snprintf(text, sizeof text, "[model]\nlayers = 6,5\nactivation = %s\n", act);
  enum { N = 7, IN = 4 };
  dpt_model *m = model_from(text, IN, n_out, task);
  assert_dpt_ok(dpt_model_init_params(m, 2024));
  size_t np = dpt_model_num_params(m);
  double X[N * IN], Y[N * 3], *th = dpt_model_params(m), *g = dpt_model_grads(m);
  int32_t lab[N];
  uint64_t s = 77;
  for (int i = 0; i < N * IN; ++i) X[i] = 2 * test_rand(&s);
  for (int i = 0; i < N * 3; ++i) Y[i] = test_rand(&s);
  for (int r = 0; r < N; ++r) lab[r] = r % (int)(task == DPT_TASK_BINARY ? 2 : n_out);
  dpt_targets y = {task == DPT_TASK_REGRESSION ? NULL : lab, task == DPT_TASK_REGRESSION ? Y : NULL};
  double *v = calloc(np, 8), *hv = calloc(np, 8), *gp = calloc(np, 8), *fd = calloc(np, 8);
  for (size_t i = 0; i < np; ++i) v[i] = test_rand(&s);
  assert_dpt_ok(dpt_model_zero_grads(m));
  assert_dpt_ok(dpt_model_hvp(m, X, &y, N, 1.0 / N, v, hv));
  for (size_t i = 0; i < np; ++i) assert_true(g[i] == 0.0); /* H·v leaves the gradient buffer alone */
  for (int sign = 1; sign >= -1; sign -= 2) {
    for (size_t i = 0; i < np; ++i) th[i] += sign * FD_H * v[i];
    assert_dpt_ok(dpt_model_zero_grads(m));
    assert_dpt_ok(dpt_model_forward_backward(m, X, &y, N, 1.0 / N, NULL, NULL, NULL));
    for (size_t i = 0; i < np; ++i) fd[i] += sign * g[i] / (2 * FD_H);
    for (size_t i = 0; i < np; ++i) th[i] -= sign * FD_H * v[i];
  }
  double e = vec_rel_err(hv, fd, np);
  free(v), free(hv), free(gp), free(fd);
  dpt_model_destroy(&m);
  return e;
}

static void test_hvp_two_layer(void **state) {
  (void)state;
  const char *acts[] = {"tanh", "softplus"};
  for (int a = 0; a < 2; ++a) {
    double e1 = hvp_fd_error(acts[a], DPT_TASK_REGRESSION, 3);
    double e2 = hvp_fd_error(acts[a], DPT_TASK_MULTICLASS, 3);
    double e3 = hvp_fd_error(acts[a], DPT_TASK_BINARY, 1);
    if (!(e1 < HVP_TOL && e2 < HVP_TOL && e3 < HVP_TOL))
      fail_msg("%s: H·v rel. errors l2 %.3g ce %.3g bce %.3g (tol %.0e)", acts[a], e1, e2, e3, HVP_TOL);
  }
}

/* Linear least squares L = s Σ_r Σ_j (x_r · W_j + b_j − y_rj)²: for output j the Hessian
 * block over (W_j, b_j) is 2 s Σ_r [x_r; 1][x_r; 1]^T, outputs independent. Flat layout
 * W [2, 3] at 0..5, b [2] at 6..7. The engine and the analytic product differ by rounding
 * only: relative 1e-13. */
static void test_hvp_least_squares(void **state) {
  (void)state;
  enum { N = 6, IN = 3, OUT = 2, NP = OUT * IN + OUT };
  dpt_model *m = model_from("[model]\nlayers =\n", IN, OUT, DPT_TASK_REGRESSION);
  assert_int_equal(dpt_model_num_params(m), NP);
  assert_dpt_ok(dpt_model_init_params(m, 5));
  double X[N * IN], Y[N * OUT], v[NP], hv[NP] = {0}, ref[NP] = {0}, s = 1.0 / N;
  uint64_t r = 9;
  for (int i = 0; i < N * IN; ++i) X[i] = test_rand(&r);
  for (int i = 0; i < N * OUT; ++i) Y[i] = test_rand(&r);
  for (int i = 0; i < NP; ++i) v[i] = test_rand(&r);
  dpt_targets y = {NULL, Y};
  assert_dpt_ok(dpt_model_hvp(m, X, &y, N, s, v, hv));
  for (int j = 0; j < OUT; ++j)
    for (int row = 0; row < N; ++row) {
      double xa[IN + 1], va[IN + 1], d = 0;
      for (int i = 0; i < IN; ++i) xa[i] = X[row * IN + i], va[i] = v[j * IN + i];
      xa[IN] = 1;
      va[IN] = v[OUT * IN + j];
      for (int i = 0; i <= IN; ++i) d += xa[i] * va[i];
      for (int i = 0; i < IN; ++i) ref[j * IN + i] += 2 * s * xa[i] * d;
      ref[OUT * IN + j] += 2 * s * d;
    }
  double e = vec_rel_err(hv, ref, NP);
  if (!(e < 1e-13)) fail_msg("least squares H·v rel. error %.3g (tol 1e-13)", e);
  dpt_model_destroy(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hvp_two_layer),
      cmocka_unit_test(test_hvp_least_squares),
  };
  return dpt_test_run(tests);
}

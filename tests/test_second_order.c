/* test_second_order.c — the second-order methods on analytic functions. */
#include <math.h>

#include <lapacke.h>

#include "dptrain/config.h"
#include "dptrain/second_order.h"
#include "testutil.h"

enum { NQ = 6 };

/* A = MᵀM + I (SPD, condition ~ 30), b fixed; x* = A⁻¹b by Cholesky. */
static void make_quadratic(double *A, double *b, double *xstar) {
  uint64_t rs = 42;
  double M[NQ * NQ];
  for (int i = 0; i < NQ * NQ; ++i) M[i] = dpt_test_uniform(&rs) - 0.5;
  for (int i = 0; i < NQ; ++i) {
    b[i] = dpt_test_uniform(&rs) - 0.5;
    for (int j = 0; j < NQ; ++j) {
      double s = i == j ? 1.0 : 0.0;
      for (int k = 0; k < NQ; ++k) s += M[k * NQ + i] * M[k * NQ + j];
      A[i * NQ + j] = s;
    }
  }
  double L[NQ * NQ];
  memcpy(L, A, sizeof L);
  memcpy(xstar, b, NQ * sizeof *xstar);
  assert_int_equal(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', NQ, 1, L, NQ, xstar, 1), 0);
}

static dpt_so_options opts(dpt_so_method m) {
  dpt_so_options o;
  dpt_so_options_default(m, &o);
  o.max_iters = 500;
  o.max_evals = 20000;
  o.tol_grad = 1e-10;
  o.tol_rel = 0.0;
  return o;
}

static double dist(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return sqrt(s);
}

static void run(const dpt_so_options *o, dpt_objective *obj, double *x, dpt_so_log_fn log, void *ctx,
                dpt_so_result *res) {
  dpt_so *s = NULL;
  assert_dpt_ok(dpt_so_create(o, obj->n, &s));
  assert_dpt_ok(dpt_so_minimize(s, obj, x, log, ctx, res));
  dpt_so_destroy(&s);
  assert_null(s);
}

/* Nonlinear CG with exact steps (the H·v trial step is exact on a quadratic) is linear CG:
 * it reaches x* in at most n iterations, up to rounding. */
static void cg_quadratic_in_n_steps(void **state) {
  (void)state;
  double A[NQ * NQ], b[NQ], xs[NQ];
  make_quadratic(A, b, xs);
  dpt_quadratic q = {NQ, A, b};
  for (int v = 0; v < 3; ++v) {
    dpt_objective obj = dpt_objective_quadratic(&q);
    dpt_so_options o = opts(DPT_SO_CG);
    o.cg_variant = (dpt_cg_variant)v;
    o.tol_grad = 1e-9; /* ‖g‖ ≤ 1e-9 means ‖x − x*‖ ≤ 1e-9 / λ_min(A) ≤ 1e-9 (λ_min ≥ 1) */
    double x[NQ] = {0};
    dpt_so_result r;
    run(&o, &obj, x, NULL, NULL, &r);
    assert_int_equal(r.stop, DPT_SO_STOP_GRAD);
    assert_true(r.iters <= NQ);
    assert_true(dist(x, xs, NQ) <= 1e-9);
  }
}

/* Every method reaches the minimiser of the convex quadratic. */
static void all_methods_quadratic(void **state) {
  (void)state;
  double A[NQ * NQ], b[NQ], xs[NQ];
  make_quadratic(A, b, xs);
  dpt_quadratic q = {NQ, A, b};
  const dpt_so_method ms[] = {DPT_SO_NEWTON, DPT_SO_NEWTON_CG, DPT_SO_BFGS, DPT_SO_LBFGS, DPT_SO_SFN, DPT_SO_GD};
  for (size_t k = 0; k < sizeof ms / sizeof ms[0]; ++k) {
    dpt_objective obj = dpt_objective_quadratic(&q);
    dpt_so_options o = opts(ms[k]);
    o.damping = 0.0;
    /* steepest descent's f stops changing (in double) before ‖g‖ reaches 1e-9: 1e-6 */
    double tol = ms[k] == DPT_SO_GD ? 1e-6 : 1e-9;
    o.tol_grad = tol;
    double x[NQ] = {0};
    dpt_so_result r;
    run(&o, &obj, x, NULL, NULL, &r);
    if (r.stop != DPT_SO_STOP_GRAD) fail_msg("method %d stopped: %s", (int)ms[k], dpt_so_stop_name(r.stop));
    assert_true(dist(x, xs, NQ) <= tol); /* as above: λ_min(A) ≥ 1 */
    /* Newton and SFN on a quadratic: one exact step */
    if (ms[k] == DPT_SO_NEWTON || ms[k] == DPT_SO_SFN) assert_true(r.iters <= 1);
  }
}

/* Rosenbrock from (−1.2, 1): every method reaches (1, 1). ‖g‖ ≤ 1e-8 at a point where the
 * Hessian's smallest eigenvalue is ≈ 0.4 puts x within ~3e-8 of (1, 1): 1e-6 leaves margin. */
static void all_methods_rosenbrock(void **state) {
  (void)state;
  const dpt_so_method ms[] = {DPT_SO_CG, DPT_SO_NEWTON, DPT_SO_NEWTON_CG, DPT_SO_BFGS, DPT_SO_LBFGS, DPT_SO_SFN};
  for (size_t k = 0; k < sizeof ms / sizeof ms[0]; ++k)
    for (int ls = 0; ls < 2; ++ls) {
      dpt_objective obj = dpt_objective_rosenbrock();
      dpt_so_options o = opts(ms[k]);
      o.line_search = ls ? DPT_LS_WOLFE : DPT_LS_ARMIJO;
      o.tol_grad = 1e-8;
      o.max_iters = 5000;
      double x[2] = {-1.2, 1.0}, xs[2] = {1.0, 1.0};
      dpt_so_result r;
      run(&o, &obj, x, NULL, NULL, &r);
      if (r.stop != DPT_SO_STOP_GRAD || dist(x, xs, 2) > 1e-6)
        fail_msg("method %d line search %d: stop '%s' after %lld iterations at (%.9g, %.9g)", (int)ms[k], ls,
                 dpt_so_stop_name(r.stop), (long long)r.iters, x[0], x[1]);
      assert_int_equal(r.evals, obj.evals); /* all evaluations counted, in this call */
    }
}

/* Errors e_k = ‖x_k − x*‖ of Newton on Rosenbrock, recorded by the log. */
typedef struct errlog {
  double e[200];
  int n;
} errlog;

static void log_err(void *ctx, const dpt_so_iter *it) {
  errlog *l = ctx;
  double xs[2] = {1.0, 1.0};
  if (l->n < 200) l->e[l->n++] = dist(it->x, xs, 2);
}

/* Quadratic convergence: once e_k < 0.05, e_{k+1} ≤ C e_k² with C = 50 (Rosenbrock's
 * ½‖H⁻¹‖·‖∇³f‖ near (1, 1) is about 200·0.5·… ≈ 10–20; C = 50 bounds it with margin),
 * until rounding (e_k > 1e-7). */
static void newton_quadratic_convergence(void **state) {
  (void)state;
  dpt_objective obj = dpt_objective_rosenbrock();
  dpt_so_options o = opts(DPT_SO_NEWTON);
  o.tol_grad = 1e-12;
  double x[2] = {-1.2, 1.0};
  errlog l = {.n = 0};
  dpt_so_result r;
  run(&o, &obj, x, log_err, &l, &r);
  int checked = 0;
  for (int k = 0; k + 1 < l.n; ++k)
    if (l.e[k] < 0.05 && l.e[k] > 1e-7) {
      double ratio = l.e[k + 1] / (l.e[k] * l.e[k]);
      if (ratio > 50.0) fail_msg("e_%d = %g, e_%d = %g: ratio %g", k, l.e[k], k + 1, l.e[k + 1], ratio);
      checked++;
    }
  assert_true(checked >= 2);
  assert_true(l.e[l.n - 1] < 1e-10);
}

/* BFGS's inverse-Hessian estimate stays positive definite: Cholesky succeeds after every
 * iteration (Rosenbrock, where the true Hessian is indefinite in places). */
typedef struct pdlog {
  dpt_so *s;
  int checks, failures;
} pdlog;

static void log_pd(void *ctx, const dpt_so_iter *it) {
  (void)it;
  pdlog *l = ctx;
  double H[4];
  memcpy(H, dpt_so_bfgs_inverse(l->s), sizeof H);
  l->checks++;
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', 2, H, 2) != 0) l->failures++;
}

static void bfgs_inverse_stays_pd(void **state) {
  (void)state;
  dpt_objective obj = dpt_objective_rosenbrock();
  dpt_so_options o = opts(DPT_SO_BFGS);
  for (int ls = 0; ls < 2; ++ls) {
    o.line_search = ls ? DPT_LS_WOLFE : DPT_LS_ARMIJO; /* Armijo: sᵀy ≤ 0 can happen, is skipped */
    dpt_so *s = NULL;
    assert_dpt_ok(dpt_so_create(&o, 2, &s));
    pdlog l = {s, 0, 0};
    double x[2] = {-1.2, 1.0};
    dpt_so_result r;
    assert_dpt_ok(dpt_so_minimize(s, &obj, x, log_pd, &l, &r));
    assert_true(l.checks > 10);
    assert_int_equal(l.failures, 0);
    dpt_so_destroy(&s);
  }
}

/* x² − y² from (1, 1e-3): the classical Newton step lands on the saddle (0, 0) exactly;
 * saddle-free Newton's |H| = 2I moves to (0, 2e-3), then doubles |y| every unit step. */
static void saddle_free_escapes(void **state) {
  (void)state;
  dpt_objective obj = dpt_objective_saddle();
  dpt_so_options o = opts(DPT_SO_NEWTON);
  o.line_search = DPT_LS_NONE;
  o.max_iters = 5;
  o.tol_grad = 1e-14;
  double x[2] = {1.0, 1e-3};
  dpt_so_result r;
  run(&o, &obj, x, NULL, NULL, &r);
  assert_float_equal(x[0], 0.0, 0.0); /* H d = −g is solved exactly for a diagonal H */
  assert_float_equal(x[1], 0.0, 0.0);
  assert_int_equal(r.stop, DPT_SO_STOP_GRAD);

  o = opts(DPT_SO_SFN);
  o.line_search = DPT_LS_NONE;
  o.max_iters = 5;
  double y[2] = {1.0, 1e-3};
  run(&o, &obj, y, NULL, NULL, &r);
  assert_float_equal(y[0], 0.0, 1e-15); /* x: −2x/2 = −x, exact up to the eigenvector rounding */
  assert_float_equal(y[1], 32e-3, 1e-15); /* y: 2⁵ · 1e-3 */
  assert_true(r.f < -1e-3);

  /* with the Wolfe line search SFN goes much further down the negative curvature */
  o.line_search = DPT_LS_WOLFE;
  double z[2] = {1.0, 1e-3};
  run(&o, &obj, z, NULL, NULL, &r);
  assert_true(fabs(z[1]) > 1.0);
  assert_true(r.f < -1.0);
}

/* Saddle-free Newton in a Krylov subspace (n > dense_limit): with k = n the subspace is the
 * whole space and the step on a quadratic is Newton's: one iteration to x*. On Rosenbrock
 * with k = 2 it converges like the dense variant. */
static void sfn_lanczos(void **state) {
  (void)state;
  double A[NQ * NQ], b[NQ], xs[NQ];
  make_quadratic(A, b, xs);
  dpt_quadratic q = {NQ, A, b};
  dpt_objective obj = dpt_objective_quadratic(&q);
  dpt_so_options o = opts(DPT_SO_SFN);
  o.dense_limit = 2;
  o.lanczos_k = NQ;
  o.tol_grad = 1e-9;
  double x[NQ] = {0};
  dpt_so_result r;
  run(&o, &obj, x, NULL, NULL, &r);
  assert_int_equal(r.stop, DPT_SO_STOP_GRAD);
  assert_true(r.iters <= 2);
  assert_true(dist(x, xs, NQ) <= 1e-9);

  dpt_objective ro = dpt_objective_rosenbrock();
  o.dense_limit = 1;
  o.lanczos_k = 2;
  o.tol_grad = 1e-8;
  double y[2] = {-1.2, 1.0}, ys[2] = {1, 1};
  run(&o, &ro, y, NULL, NULL, &r);
  assert_int_equal(r.stop, DPT_SO_STOP_GRAD);
  assert_true(dist(y, ys, 2) <= 1e-6);
}

static void budgets_stop(void **state) {
  (void)state;
  dpt_objective obj = dpt_objective_rosenbrock();
  dpt_so_options o = opts(DPT_SO_LBFGS);
  o.max_iters = 3;
  double x[2] = {-1.2, 1.0};
  dpt_so_result r;
  run(&o, &obj, x, NULL, NULL, &r);
  assert_int_equal(r.stop, DPT_SO_STOP_ITERS);
  assert_int_equal(r.iters, 3);
  o = opts(DPT_SO_LBFGS);
  o.max_evals = 5;
  double y[2] = {-1.2, 1.0};
  obj.evals = 0;
  run(&o, &obj, y, NULL, NULL, &r);
  assert_int_equal(r.stop, DPT_SO_STOP_EVALS);
  assert_true(r.evals >= 5);
  o = opts(DPT_SO_LBFGS);
  o.tol_rel = 1e-3;
  double z[2] = {-1.2, 1.0};
  run(&o, &obj, z, NULL, NULL, &r);
  assert_int_equal(r.stop, DPT_SO_STOP_REL);
}

static void config_and_limits(void **state) {
  (void)state;
  assert_true(dpt_second_order_is_method("lbfgs"));
  assert_true(dpt_second_order_is_method("newton_cg"));
  assert_false(dpt_second_order_is_method("adam"));
  assert_false(dpt_second_order_is_method(NULL));

  dpt_config *cfg = NULL;
  dpt_so_options o;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\ntype = lbfgs\nhistory = 7\nc1 = 0.2\nc2 = 0.8\n", "t.ini"));
  assert_dpt_ok(dpt_so_options_read(cfg, &o));
  assert_int_equal(o.method, DPT_SO_LBFGS);
  assert_int_equal(o.history, 7);
  assert_float_equal(o.ls.c1, 0.2, 0.0);
  dpt_config_destroy(&cfg);

  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\ntype = bfgs\nc1 = 0.5\nc2 = 0.4\n", "t.ini"));
  assert_dpt_fails(dpt_so_options_read(cfg, &o), DPT_ERR_INPUT, "optimizer.c2");
  dpt_config_destroy(&cfg);

  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\ntype = cg\ncg_variant = hs\n", "t.ini"));
  assert_dpt_fails(dpt_so_options_read(cfg, &o), DPT_ERR_INPUT, "optimizer.cg_variant");
  dpt_config_destroy(&cfg);

  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\ntype = lbfgs\nline_search = none\n", "t.ini"));
  assert_dpt_fails(dpt_so_options_read(cfg, &o), DPT_ERR_INPUT, "optimizer.line_search");
  dpt_config_destroy(&cfg);

  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\ntype = lbfgs\nhistory = 0\n", "t.ini"));
  assert_dpt_fails(dpt_so_options_read(cfg, &o), DPT_ERR_INPUT, "optimizer.history");
  dpt_config_destroy(&cfg);

  dpt_so *s = NULL;
  dpt_so_options_default(DPT_SO_NEWTON, &o);
  o.dense_limit = 2;
  assert_dpt_fails(dpt_so_create(&o, 3, &s), DPT_ERR_INPUT, "optimizer.dense_limit = 2");
  assert_null(s);
}

static void state_by_name(void **state) {
  (void)state;
  dpt_so_options o;
  dpt_so_options_default(DPT_SO_LBFGS, &o);
  o.history = 4;
  dpt_so *s = NULL;
  assert_dpt_ok(dpt_so_create(&o, 5, &s));
  const char *want[] = {"iter", "x_prev", "g_prev", "S", "Y", "rho", "pairs", "head"};
  const size_t counts[] = {1, 5, 5, 20, 20, 4, 1, 1};
  assert_int_equal(dpt_so_num_states(s), 8);
  for (int i = 0; i < 8; ++i) {
    dpt_state_info info;
    dpt_so_state(s, i, &info);
    assert_string_equal(info.name, want[i]);
    assert_int_equal(info.count, counts[i]);
  }
  dpt_so_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cg_quadratic_in_n_steps),     cmocka_unit_test(all_methods_quadratic),
      cmocka_unit_test(all_methods_rosenbrock),      cmocka_unit_test(newton_quadratic_convergence),
      cmocka_unit_test(bfgs_inverse_stays_pd),       cmocka_unit_test(saddle_free_escapes),
      cmocka_unit_test(sfn_lanczos),                 cmocka_unit_test(budgets_stop),
      cmocka_unit_test(config_and_limits),           cmocka_unit_test(state_by_name),
  };
  return dpt_test_run(tests);
}

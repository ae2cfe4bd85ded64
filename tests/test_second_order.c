/* test_second_order.c — line searches and second-order methods on analytic functions. */
#include "testutil.h"

#include <lapacke.h>
#include <math.h>

#include "dptrain/config.h"
#include "dptrain/second_order.h"

#define NQ 6

/* A = M M' + n I (symmetric positive definite, condition number about 10), b fixed. */
static void make_quadratic(double *A, double *b, double *xstar) {
  uint64_t st = 42;
  double M[NQ * NQ];
  for (int i = 0; i < NQ * NQ; i++) M[i] = dpt_test_uniform(&st) - 0.5;
  for (int i = 0; i < NQ; i++)
    for (int j = 0; j < NQ; j++) {
      double s = i == j ? NQ : 0.0;
      for (int k = 0; k < NQ; k++) s += M[i * NQ + k] * M[j * NQ + k];
      A[i * NQ + j] = s;
    }
  for (int i = 0; i < NQ; i++) b[i] = dpt_test_uniform(&st) - 0.5;
  double L[NQ * NQ];
  memcpy(L, A, sizeof L);
  memcpy(xstar, b, NQ * sizeof *b);
  assert_int_equal(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', NQ, 1, L, NQ, xstar, 1), 0);
}

static double dist(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
  return sqrt(s);
}

static void run(dpt_so_options *o, dpt_objective *obj, double *x, dpt_so_result *res) {
  dpt_so_solver *s = NULL;
  assert_dpt_ok(dpt_so_create(o, obj->n, &s));
  assert_dpt_ok(dpt_so_minimize(s, obj, x, NULL, NULL, res));
  dpt_so_destroy(&s);
  assert_null(s);
}

static const dpt_so_method ALL[] = {DPT_SO_CG, DPT_SO_NEWTON, DPT_SO_NEWTON_CG, DPT_SO_BFGS, DPT_SO_LBFGS, DPT_SO_SFN};

/* Every method reaches A^-1 b. Tolerance 1e-9: tol_grad = 1e-9 (f changes by ~|g|^2 / lambda, below rounding of f ~ 0.1 much lower) and |x - x*| <= |g| / lambda_min(A)
 * with lambda_min >= n = 6. CG with an exact line search (c1 = 1e-10, c2 = 1e-8) needs at most n steps. */
static void test_quadratic_all_methods(void **state) {
  (void)state;
  double A[NQ * NQ], b[NQ], xs[NQ];
  make_quadratic(A, b, xs);
  dpt_quadratic q = {NQ, A, b};
  for (size_t m = 0; m < sizeof ALL / sizeof ALL[0]; m++) {
    for (int variant = 0; variant < (ALL[m] == DPT_SO_CG ? 3 : 1); variant++) {
      dpt_objective obj = dpt_objective_quadratic(&q);
      dpt_so_options o;
      dpt_so_options_default(&o, ALL[m]);
      o.cg_variant = (dpt_cg_variant)variant;
      o.tol_grad = 1e-9;
      o.tol_rel = 0.0;
      o.damping = 0.0;
      if (ALL[m] == DPT_SO_CG) {
        o.c1 = 1e-10;
        o.c2 = 1e-8;
      }
      double x[NQ] = {0};
      dpt_so_result r;
      run(&o, &obj, x, &r);
      if (dist(x, xs, NQ) > 1e-9)
        fail_msg("%s: |x - x*| = %g after %lld iterations (%s)", dpt_so_method_name(ALL[m]), dist(x, xs, NQ),
                 (long long)r.iters, r.reason);
      if (strcmp(r.reason, "gradient") != 0)
        fail_msg("%s variant %d: stopped on %s, |g| = %g after %lld", dpt_so_method_name(ALL[m]), variant, r.reason,
                 r.gnorm, (long long)r.iters);
      if (ALL[m] == DPT_SO_CG) assert_true(r.iters <= NQ);
      /* Newton on a quadratic: one full step (alpha = 1) lands on x*. */
      if (ALL[m] == DPT_SO_NEWTON) assert_int_equal(r.iters, 1);
    }
  }
}

/* Rosenbrock from (-1.2, 1): every method reaches (1, 1). Tolerance 1e-6: tol_grad = 1e-9 and
 * lambda_min of the Hessian at (1, 1) is 0.399, so |x - x*| <~ 2.5e-9 near the minimum. */
static void test_rosenbrock_all_methods(void **state) {
  (void)state;
  const double xs[2] = {1.0, 1.0};
  for (size_t m = 0; m < sizeof ALL / sizeof ALL[0]; m++) {
    for (int ls = 0; ls < 2; ls++) {
      if (ALL[m] == DPT_SO_CG && ls == DPT_LS_ARMIJO) continue; /* CG needs the curvature condition */
      dpt_objective obj = dpt_objective_rosenbrock();
      dpt_so_options o;
      dpt_so_options_default(&o, ALL[m]);
      o.line_search = (dpt_ls_kind)ls;
      o.tol_grad = 1e-9;
      o.tol_rel = 0.0;
      o.max_iters = 5000;
      o.max_evals = 50000;
      double x[2] = {-1.2, 1.0};
      dpt_so_result r;
      run(&o, &obj, x, &r);
      if (dist(x, xs, 2) > 1e-6)
        fail_msg("%s/%s: x = (%.9g, %.9g) after %lld iterations, %lld evaluations (%s)", dpt_so_method_name(ALL[m]),
                 ls ? "wolfe" : "armijo", x[0], x[1], (long long)r.iters, (long long)r.evals, r.reason);
      assert_int_equal(r.evals, obj.n_evals);
    }
  }
}

/* Newton's quadratic convergence on Rosenbrock: once e_k < 0.05, e_{k+1} <= C e_k^2 with
 * C = 1e4 (theory: C ~ L / (2 mu) with L ~ 2400 the size of the third derivative near (1, 1)
 * and mu = 0.399 the smallest Hessian eigenvalue, about 3000). At least two such steps. */
static void test_newton_quadratic_convergence(void **state) {
  (void)state;
  const double xs[2] = {1.0, 1.0};
  dpt_objective obj = dpt_objective_rosenbrock();
  dpt_so_options o;
  dpt_so_options_default(&o, DPT_SO_NEWTON);
  o.max_iters = 1;
  o.tol_grad = 0.0;
  o.tol_rel = 0.0;
  double x[2] = {-1.2, 1.0};
  int checked = 0;
  for (int k = 0; k < 40; k++) {
    const double e = dist(x, xs, 2);
    if (e < 1e-12) break;
    dpt_so_result r;
    run(&o, &obj, x, &r);
    const double e1 = dist(x, xs, 2);
    if (e < 0.05 && e1 > 1e-14) {
      if (e1 / (e * e) > 1e4) fail_msg("e_k = %g, e_k+1 = %g: ratio %g", e, e1, e1 / (e * e));
      checked++;
    }
  }
  assert_true(dist(x, xs, 2) < 1e-12);
  assert_true(checked >= 2);
}

/* Strong Wolfe: the accepted step satisfies both conditions (checked with the function itself). */
static void test_wolfe_conditions(void **state) {
  (void)state;
  const double c1s[] = {1e-4, 1e-4, 0.3}, c2s[] = {0.9, 0.1, 0.4};
  const double starts[][2] = {{-1.2, 1.0}, {0.0, 0.0}, {2.0, -1.0}, {0.5, 0.5}};
  const double alpha0s[] = {1e-4, 1e-3, 1.0, 10.0};
  for (int c = 0; c < 3; c++)
    for (int s = 0; s < 4; s++)
      for (int a = 0; a < 4; a++) {
        dpt_objective obj = dpt_objective_rosenbrock();
        double f0, g0[2], d[2], xn[2], fn, gn[2], alpha;
        bool found;
        assert_dpt_ok(dpt_objective_eval(&obj, starts[s], &f0, g0));
        d[0] = -g0[0];
        d[1] = -g0[1];
        assert_dpt_ok(dpt_linesearch_wolfe(&obj, starts[s], f0, g0, d, alpha0s[a], 1e10, c1s[c], c2s[c], 100, xn,
                                           &fn, gn, &alpha, &found));
        assert_true(found);
        const double dphi0 = g0[0] * d[0] + g0[1] * d[1], dphi = gn[0] * d[0] + gn[1] * d[1];
        double fchk, gchk[2], xchk[2] = {starts[s][0] + alpha * d[0], starts[s][1] + alpha * d[1]};
        assert_dpt_ok(dpt_objective_eval(&obj, xchk, &fchk, gchk));
        assert_true(fchk == fn); /* the returned value is f at x + alpha d, bitwise */
        assert_true(fn <= f0 + c1s[c] * alpha * dphi0);
        assert_true(fabs(dphi) <= c2s[c] * fabs(dphi0));
        /* Armijo from the same place: sufficient decrease. */
        assert_dpt_ok(dpt_linesearch_armijo(&obj, starts[s], f0, g0, d, alpha0s[a], c1s[c], 100, xn, &fn, gn, &alpha,
                                            &found));
        assert_true(found);
        assert_true(alpha > 0.0 && fn <= f0 + c1s[c] * alpha * dphi0);
      }
}

/* f = x^2 on |x| < 2 and non-finite outside: a trial step past the edge counts as f = +inf
 * and both searches shrink the step to an acceptable one (no error). */
static dpt_status walled_eval(void *ctx, const double *x, double *f, double *g) {
  (void)ctx;
  *f = fabs(x[0]) < 2.0 ? x[0] * x[0] : INFINITY;
  if (g) g[0] = 2.0 * x[0];
  return DPT_OK;
}
static void test_nonfinite_trial(void **state) {
  (void)state;
  dpt_objective obj = {.n = 1, .eval = walled_eval};
  const double x[1] = {1.9};
  double f0, g0[1], d[1], xn[1], fn, gn[1], alpha;
  bool found;
  assert_dpt_ok(dpt_objective_eval(&obj, x, &f0, g0));
  d[0] = -g0[0];
  assert_dpt_ok(dpt_linesearch_wolfe(&obj, x, f0, g0, d, 10.0, 1e10, 1e-4, 0.9, 50, xn, &fn, gn, &alpha, &found));
  assert_true(found && isfinite(fn) && fn < f0);
  assert_dpt_ok(dpt_linesearch_armijo(&obj, x, f0, g0, d, 10.0, 1e-4, 50, xn, &fn, gn, &alpha, &found));
  assert_true(found && isfinite(fn) && fn < f0);
  assert_int_equal(dpt_error_code(), DPT_OK);
}

/* BFGS's inverse-Hessian estimate stays positive definite at every iteration (Cholesky works). */
typedef struct pd_ctx {
  dpt_so_solver *s;
  int checks;
  int failures;
} pd_ctx;
static void check_pd(void *ctx, const dpt_so_iter *it) {
  (void)it;
  pd_ctx *c = ctx;
  double H[4];
  memcpy(H, dpt_so_bfgs_matrix(c->s), sizeof H);
  c->checks++;
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', 2, H, 2) != 0) c->failures++;
}
static void test_bfgs_positive_definite(void **state) {
  (void)state;
  for (int ls = 0; ls < 2; ls++) {
    dpt_objective obj = dpt_objective_rosenbrock();
    dpt_so_options o;
    dpt_so_options_default(&o, DPT_SO_BFGS);
    o.line_search = (dpt_ls_kind)ls;
    o.max_iters = 500;
    pd_ctx c = {0};
    assert_dpt_ok(dpt_so_create(&o, 2, &c.s));
    double x[2] = {-1.2, 1.0};
    dpt_so_result r;
    assert_dpt_ok(dpt_so_minimize(c.s, &obj, x, check_pd, &c, &r));
    assert_true(c.checks == r.iters && c.checks > 10);
    assert_int_equal(c.failures, 0);
    dpt_so_destroy(&c.s);
  }
}

/* On x^2 - y^2 from (1, 1e-3): the undamped Newton step lands on the saddle (0, 0); saddle-free
 * Newton (dense and Lanczos) moves away from it: |y| grows and f drops below f(saddle) = 0. */
static void test_saddle(void **state) {
  (void)state;
  const double x0[2] = {1.0, 1e-3};
  double H[4] = {2.0, 0.0, 0.0, -2.0}, g[2] = {2.0, -2e-3};
  /* Plain Newton (symmetric indefinite solve): x + p = (0, 0). Exact in binary (powers of 2). */
  double p[2] = {-g[0], -g[1]}, Hc[4];
  lapack_int piv[2];
  memcpy(Hc, H, sizeof H);
  assert_int_equal(LAPACKE_dsysv(LAPACK_ROW_MAJOR, 'L', 2, 1, Hc, 2, piv, p, 1), 0);
  assert_true(fabs(x0[0] + p[0]) < 1e-15 && fabs(x0[1] + p[1]) < 1e-15);
  /* Saddle-free direction: -(|H|)^-1 g = (-1, +1e-3): y moves away from 0. */
  double q[2];
  assert_dpt_ok(dpt_so_sfn_direction(H, g, 2, 0.0, q));
  assert_true(fabs(q[0] + 1.0) < 1e-15 && fabs(q[1] - 1e-3) < 1e-18);
  /* Levenberg-damped Newton on the indefinite H: lambda > 2 and a descent direction. */
  double lam;
  assert_dpt_ok(dpt_so_newton_direction(H, g, 2, 0.0, p, &lam));
  assert_true(lam > 2.0);
  assert_true(p[0] * g[0] + p[1] * g[1] < 0.0);
  for (int lanczos = 0; lanczos < 2; lanczos++) {
    dpt_objective obj = dpt_objective_saddle();
    dpt_so_options o;
    dpt_so_options_default(&o, DPT_SO_SFN);
    o.max_iters = 5;
    o.tol_rel = 0.0;
    if (lanczos) {
      o.dense_limit = 1;
      o.lanczos_k = 2;
    }
    double x[2] = {x0[0], x0[1]};
    dpt_so_result r;
    run(&o, &obj, x, &r);
    assert_int_equal(r.iters, 5);
    assert_true(fabs(x[1]) > 1.0); /* grew from 1e-3 by steps that double at least */
    assert_true(r.loss < -1.0);
    assert_true(r.hvps == 10); /* 2 per iteration (dense: n columns; Lanczos: k = 2 steps) */
  }
}

/* Budgets: max_evals and max_iters stop the run with the reason. */
static void test_budgets(void **state) {
  (void)state;
  dpt_objective obj = dpt_objective_rosenbrock();
  dpt_so_options o;
  dpt_so_options_default(&o, DPT_SO_LBFGS);
  o.max_evals = 7;
  double x[2] = {-1.2, 1.0};
  dpt_so_result r;
  run(&o, &obj, x, &r);
  assert_string_equal(r.reason, "evaluations");
  assert_true(r.evals >= 7 && r.evals <= 8); /* stops at the first check past the budget */
  dpt_so_options_default(&o, DPT_SO_LBFGS);
  o.max_iters = 3;
  x[0] = -1.2;
  x[1] = 1.0;
  run(&o, &obj, x, &r);
  assert_string_equal(r.reason, "iterations");
  assert_int_equal(r.iters, 3);
}

/* A run split into one-iteration calls follows the same iterates bitwise as one call: the
 * solver's state (direction, previous gradient, BFGS matrix, L-BFGS history, iteration) is
 * all that carries between iterations, which is what a checkpoint saves by name. */
static void test_continuation(void **state) {
  (void)state;
  const dpt_so_method ms[] = {DPT_SO_CG, DPT_SO_BFGS, DPT_SO_LBFGS};
  for (int i = 0; i < 3; i++) {
    dpt_so_options o;
    dpt_so_options_default(&o, ms[i]);
    o.max_iters = 12;
    o.tol_rel = 0.0;
    o.tol_grad = 0.0;
    dpt_objective obj = dpt_objective_rosenbrock();
    double xa[2] = {-1.2, 1.0}, xb[2] = {-1.2, 1.0};
    dpt_so_result r;
    run(&o, &obj, xa, &r);
    assert_int_equal(r.iters, 12);
    o.max_iters = 1;
    dpt_so_solver *s = NULL;
    assert_dpt_ok(dpt_so_create(&o, 2, &s));
    for (int k = 0; k < 12; k++) assert_dpt_ok(dpt_so_minimize(s, &obj, xb, NULL, NULL, &r));
    int64_t iter = -1;
    for (int j = 0; j < dpt_so_num_states(s); j++) {
      dpt_state_info info;
      dpt_so_state(s, j, &info);
      if (strcmp(info.name, "iter") == 0) iter = *(int64_t *)info.data;
    }
    assert_int_equal(iter, 12);
    dpt_so_destroy(&s);
    assert_memory_equal(xa, xb, sizeof xa);
  }
}

static dpt_status read_opts(const char *text, dpt_so_options *o) {
  dpt_config *cfg = NULL;
  dpt_status st = dpt_config_create(&cfg);
  if (st == DPT_OK) st = dpt_config_load_string(cfg, text, "test.ini");
  if (st == DPT_OK) st = dpt_so_options_read(cfg, o);
  dpt_config_destroy(&cfg);
  return st;
}

static void test_config(void **state) {
  (void)state;
  assert_true(dpt_second_order_is_method("lbfgs") && dpt_second_order_is_method("newton_cg"));
  assert_false(dpt_second_order_is_method("adam") || dpt_second_order_is_method(NULL));
  dpt_so_options o;
  assert_dpt_ok(read_opts("[optimizer]\ntype = lbfgs\nhistory = 5\nc1 = 0.001\nc2 = 0.5\nline_search = armijo\n", &o));
  assert_int_equal(o.method, DPT_SO_LBFGS);
  assert_int_equal(o.history, 5);
  assert_int_equal(o.line_search, DPT_LS_ARMIJO);
  assert_true(o.c1 == 0.001 && o.c2 == 0.5);
  assert_dpt_ok(read_opts("[optimizer]\ntype = cg\ncg_variant = fr\n", &o));
  assert_int_equal(o.cg_variant, DPT_CG_FR);
  assert_true(o.c2 == 0.1);
  assert_dpt_fails(read_opts("[optimizer]\ntype = bfgs\nc1 = 0.5\nc2 = 0.4\n", &o), DPT_ERR_INPUT, "c1 < c2");
  assert_dpt_fails(read_opts("[optimizer]\ntype = lbfgs\nhistory = 0\n", &o), DPT_ERR_INPUT, "optimizer.history");
  assert_dpt_fails(read_opts("[optimizer]\ntype = cg\ncg_variant = hs\n", &o), DPT_ERR_INPUT, "optimizer.cg_variant");
  assert_dpt_fails(read_opts("[optimizer]\ntype = newton\nc2 = 1\n", &o), DPT_ERR_INPUT, "optimizer.c2");
  assert_dpt_fails(read_opts("[optimizer]\ntype = newton\nline_search = exact\n", &o), DPT_ERR_INPUT,
                   "optimizer.line_search");
  /* Dense methods refuse more parameters than dense_limit, naming the setting and the limit. */
  assert_dpt_ok(read_opts("[optimizer]\ntype = newton\ndense_limit = 100\n", &o));
  dpt_so_solver *s = NULL;
  assert_dpt_fails(dpt_so_create(&o, 101, &s), DPT_ERR_INPUT, "optimizer.dense_limit = 100");
  assert_null(s);
  o.method = DPT_SO_LBFGS;
  assert_dpt_ok(dpt_so_create(&o, 101, &s));
  assert_int_equal(dpt_so_num_states(s), 8);
  dpt_state_info info;
  dpt_so_state(s, 3, &info);
  assert_string_equal(info.name, "lbfgs_s");
  assert_int_equal(info.count, 10 * 101);
  dpt_so_destroy(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quadratic_all_methods), cmocka_unit_test(test_rosenbrock_all_methods),
      cmocka_unit_test(test_newton_quadratic_convergence), cmocka_unit_test(test_wolfe_conditions),
      cmocka_unit_test(test_bfgs_positive_definite), cmocka_unit_test(test_saddle),
      cmocka_unit_test(test_budgets), cmocka_unit_test(test_continuation),
      cmocka_unit_test(test_nonfinite_trial), cmocka_unit_test(test_config),
  };
  return dpt_test_run(tests);
}

/* test_linesearch.c — Armijo and strong Wolfe line searches on analytic functions. */
#include <math.h>

#include "dptrain/second_order.h"
#include "testutil.h"

static const dpt_ls_params params = {.c1 = 1e-4, .c2 = 0.9, .alpha_max = 1e4, .max_evals = 40};

/* Strong Wolfe from several starting points and trial steps on Rosenbrock: the accepted
 * step satisfies both conditions, checked here from fresh evaluations. */
static void wolfe_conditions_hold(void **state) {
  (void)state;
  dpt_objective o = dpt_objective_rosenbrock();
  const double starts[][2] = {{-1.2, 1.0}, {0.0, 0.0}, {2.0, 2.0}, {-0.5, 0.8}};
  const double trials[] = {1e-4, 1e-2, 1.0, 50.0};
  for (size_t s = 0; s < 4; ++s)
    for (size_t t = 0; t < 4; ++t)
      for (int c2i = 0; c2i < 2; ++c2i) {
        dpt_ls_params p = params;
        p.c2 = c2i ? 0.1 : 0.9;
        double x[2] = {starts[s][0], starts[s][1]}, f0, g0[2], d[2], xn[2], fn, gn[2], alpha;
        bool ok;
        assert_dpt_ok(dpt_objective_eval(&o, x, &f0, g0));
        d[0] = -g0[0];
        d[1] = -g0[1];
        double dphi0 = g0[0] * d[0] + g0[1] * d[1];
        assert_dpt_ok(dpt_linesearch(&o, DPT_LS_WOLFE, &p, x, f0, g0, d, trials[t], &alpha, xn, &fn, gn, NULL, &ok));
        assert_true(ok);
        /* the caller's work buffer instead of the internal one: the same search, bitwise */
        double work[4], xw[2], fw, gw[2], alpha_w;
        bool ok_w;
        assert_dpt_ok(dpt_linesearch(&o, DPT_LS_WOLFE, &p, x, f0, g0, d, trials[t], &alpha_w, xw, &fw, gw, work, &ok_w));
        assert_true(ok_w);
        assert_float_equal(alpha_w, alpha, 0.0);
        assert_float_equal(fw, fn, 0.0);
        double fchk, gchk[2];
        assert_dpt_ok(dpt_objective_eval(&o, xn, &fchk, gchk));
        /* x_new, f_new, g_new are those of x + αd, to rounding of the update (1e-12 relative) */
        assert_float_equal(xn[0], x[0] + alpha * d[0], 1e-12 * (1 + fabs(xn[0])));
        assert_float_equal(fn, fchk, 0.0); /* the same evaluation: bitwise */
        assert_true(fchk <= f0 + p.c1 * alpha * dphi0);
        assert_true(fabs(gchk[0] * d[0] + gchk[1] * d[1]) <= p.c2 * fabs(dphi0));
      }
}

/* On a quadratic along d the zoom's cubic interpolation is exact: a too-long first trial
 * (3× the minimiser) is followed by the exact minimiser α* = −g·d / dᵀAd. */
static void wolfe_cubic_exact_on_quadratic(void **state) {
  (void)state;
  const double A[4] = {3.0, 1.0, 1.0, 2.0}, b[2] = {1.0, -1.0};
  dpt_quadratic q = {2, A, b};
  dpt_objective o = dpt_objective_quadratic(&q);
  double x[2] = {2.0, 1.0}, f0, g0[2], d[2], xn[2], fn, gn[2], alpha;
  bool ok;
  assert_dpt_ok(dpt_objective_eval(&o, x, &f0, g0));
  d[0] = -g0[0];
  d[1] = -g0[1];
  double Ad0 = A[0] * d[0] + A[1] * d[1], Ad1 = A[2] * d[0] + A[3] * d[1];
  double astar = -(g0[0] * d[0] + g0[1] * d[1]) / (d[0] * Ad0 + d[1] * Ad1);
  dpt_ls_params p = params;
  p.c2 = 1e-3; /* only near-exact steps pass */
  assert_dpt_ok(dpt_linesearch(&o, DPT_LS_WOLFE, &p, x, f0, g0, d, 3.0 * astar, &alpha, xn, &fn, gn, NULL, &ok));
  assert_true(ok);
  /* the cubic through two exact points of a parabola is the parabola: α* to rounding */
  assert_float_equal(alpha, astar, 1e-12 * astar);
}

/* Armijo: a huge first trial is cut back until sufficient decrease holds. */
static void armijo_backtracks(void **state) {
  (void)state;
  dpt_objective o = dpt_objective_rosenbrock();
  double x[2] = {-1.2, 1.0}, f0, g0[2], d[2], xn[2], fn, gn[2], alpha;
  bool ok;
  assert_dpt_ok(dpt_objective_eval(&o, x, &f0, g0));
  d[0] = -g0[0];
  d[1] = -g0[1];
  double dphi0 = g0[0] * d[0] + g0[1] * d[1];
  assert_dpt_ok(dpt_linesearch(&o, DPT_LS_ARMIJO, &params, x, f0, g0, d, 1.0, &alpha, xn, &fn, gn, NULL, &ok));
  assert_true(ok);
  assert_true(alpha < 1.0 && alpha > 0.0);
  assert_true(fn <= f0 + params.c1 * alpha * dphi0);
  assert_true(o.evals >= 3); /* the start, the rejected unit step, the accepted step at least */
}

static void bad_constants_named(void **state) {
  (void)state;
  dpt_ls_params p = params;
  p.c2 = 1e-5; /* below c1 */
  assert_dpt_fails(dpt_ls_params_check(&p, DPT_LS_WOLFE), DPT_ERR_INPUT, "optimizer.c2");
  p = params;
  p.c1 = 1.5;
  assert_dpt_fails(dpt_ls_params_check(&p, DPT_LS_ARMIJO), DPT_ERR_INPUT, "optimizer.c1");
}

static void ascent_direction_refused(void **state) {
  (void)state;
  dpt_objective o = dpt_objective_rosenbrock();
  double x[2] = {-1.2, 1.0}, f0, g0[2], xn[2], fn, gn[2], alpha;
  bool ok;
  assert_dpt_ok(dpt_objective_eval(&o, x, &f0, g0));
  assert_dpt_fails(dpt_linesearch(&o, DPT_LS_WOLFE, &params, x, f0, g0, g0, 1.0, &alpha, xn, &fn, gn, NULL, &ok),
                   DPT_ERR_INTERNAL, "not a descent direction");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(wolfe_conditions_hold),      cmocka_unit_test(wolfe_cubic_exact_on_quadratic),
      cmocka_unit_test(armijo_backtracks),          cmocka_unit_test(bad_constants_named),
      cmocka_unit_test(ascent_direction_refused),
  };
  return dpt_test_run(tests);
}

/* test_activation.c — the transfer operator table: derivatives against finite differences,
 * documented values at kinks, finiteness at huge |x|, f32 kernel against the f64 scalar,
 * per-unit parameters, optional outputs, parsing. A microbenchmark is printed as
 * information only (never asserted). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "testutil.h"
#include "dptrain/activation.h"

/* Ordinary points: at least 0.3 away from every kink (0), so the finite-difference
 * stencils (x ± h, h = 0.01) never straddle one. */
static const double points[] = {-2.7, -1.3, -0.45, 0.3, 0.85, 1.6, 2.4};
#define NPOINTS (int)(sizeof points / sizeof points[0])

/* Parameter sets for the operators with parameters (first row: the defaults). */
static const double sob_params[][4] = {
    {1.0, 1.0, 1.0, 1.0}, {0.7, 0.9, 1.2, 1.1}, /* bounded: a ≤ c, b ≤ d */
    {0.8, 1.3, 1.1, 0.7}, {1.5, 0.4, 0.9, 1.2}}; /* unbounded for x → −∞ (b > d), x → +∞ (a > c) */
#define NSOB (int)(sizeof sob_params / sizeof sob_params[0])
static const double alpha_params[][4] = {{0.25, 0, 0, 0}, {1.0, 0, 0, 0}, {1.7, 0, 0, 0}};

/* Central differences with one Richardson step, h = 1e-2: the truncation error is
 * h⁴|f⁽⁵⁾|/480 (first) and h⁴|f⁽⁶⁾|/1440 (second), about 1e-11 for these smooth functions
 * of O(1) derivatives; rounding adds ε|f|/h ≈ 2e-14|f| and 16ε|f|/h² ≈ 4e-11|f|. Both far
 * below the 1e-6 tolerance (the worst seen, printed by the tests, is 2e-8 relative to the
 * 1e-3 floor below: second-difference rounding where f'' = 0), so a failure is a wrong
 * formula, not finite-difference noise. */
#define FD_H 1e-2
typedef double (*fun1)(void *ctx, double t);

static double fd1(fun1 fn, void *ctx, double t) {
  double h = FD_H;
  double a = (fn(ctx, t + h) - fn(ctx, t - h)) / (2 * h);
  double b = (fn(ctx, t + h / 2) - fn(ctx, t - h / 2)) / h;
  return (4 * b - a) / 3;
}

static double fd2(fun1 fn, void *ctx, double t) {
  double h = FD_H, f0 = fn(ctx, t);
  double a = (fn(ctx, t + h) - 2 * f0 + fn(ctx, t - h)) / (h * h);
  double b = (fn(ctx, t + h / 2) - 2 * f0 + fn(ctx, t - h / 2)) / (h * h / 4);
  return (4 * b - a) / 3;
}

/* What a finite difference varies: x (var = -1) or parameter var; which output to read. */
typedef struct fdctx {
  dpt_act a;
  double p[4];
  double x;
  int var;   /* -1: x, j: parameter j */
  int which; /* 0: f, 1: f', 2: dp[k] */
  int k;
} fdctx;

static double fd_eval(void *vctx, double t) {
  fdctx *c = vctx;
  double p[4] = {c->p[0], c->p[1], c->p[2], c->p[3]}, x = c->x;
  if (c->var < 0) x = t; else p[c->var] = t;
  dpt_act_derivs d;
  dpt_act_scalar(c->a, p, x, &d);
  return c->which == 0 ? d.f : c->which == 1 ? d.d1 : d.dp[c->k];
}

/* Relative error with a floor: below 1e-3 in magnitude the check is absolute at 1e-9,
 * still 10x above the finite-difference error bound stated at FD_H. */
#define FD_TOL 1e-6
static double fd_worst; /* largest error seen, printed for information */
static void check_close(double got, double want, const char *what, const char *name, double x) {
  double err = fabs(got - want) / fmax(fabs(want), 1e-3);
  if (err > fd_worst) fd_worst = err;
  if (!(err < FD_TOL))
    fail_msg("%s %s at x = %g: analytic %.17g, finite difference %.17g (rel. error %.3g >= %g)", name, what, x,
             got, want, err, FD_TOL);
}

static int param_sets(dpt_act a, const double (**sets)[4]) {
  if (a == DPT_ACT_SOBOLEVA) { *sets = sob_params; return NSOB; }
  if (a == DPT_ACT_PRELU || a == DPT_ACT_ELU) { *sets = alpha_params; return 3; }
  *sets = NULL;
  return 1;
}

/* f' and f'' of every operator against finite differences of f, in float64. */
static void test_derivatives_fd(void **state) {
  (void)state;
  for (int a = 0; a < DPT_ACT_COUNT; ++a) {
    const dpt_act_info *info = dpt_act_get((dpt_act)a);
    const double(*sets)[4];
    int nsets = param_sets((dpt_act)a, &sets);
    for (int s = 0; s < nsets; ++s) {
      for (int i = 0; i < NPOINTS; ++i) {
        fdctx c = {.a = (dpt_act)a, .x = points[i], .var = -1, .which = 0};
        if (sets) memcpy(c.p, sets[s], sizeof c.p);
        dpt_act_derivs d;
        dpt_act_scalar((dpt_act)a, sets ? sets[s] : NULL, points[i], &d);
        assert_true(isfinite(d.f) && isfinite(d.d1) && isfinite(d.d2));
        check_close(d.d1, fd1(fd_eval, &c, points[i]), "f'", info->name, points[i]);
        check_close(d.d2, fd2(fd_eval, &c, points[i]), "f''", info->name, points[i]);
        c.which = 1; /* f'' also as the derivative of f' */
        check_close(d.d2, fd1(fd_eval, &c, points[i]), "f'' (from f')", info->name, points[i]);
      }
    }
  }
  print_message("  worst f', f'' error against finite differences: %.2g (tolerance %g)\n", fd_worst, FD_TOL);
}

/* ∂f/∂p_j, ∂²f/∂x∂p_j and ∂²f/∂p_i∂p_j against finite differences, for prelu, elu, soboleva. */
static void test_param_derivatives_fd(void **state) {
  (void)state;
  fd_worst = 0;
  const dpt_act ops[] = {DPT_ACT_PRELU, DPT_ACT_ELU, DPT_ACT_SOBOLEVA};
  for (int o = 0; o < 3; ++o) {
    dpt_act a = ops[o];
    const dpt_act_info *info = dpt_act_get(a);
    const double(*sets)[4];
    int nsets = param_sets(a, &sets);
    for (int s = 0; s < nsets; ++s) {
      for (int i = 0; i < NPOINTS; ++i) {
        double x = points[i];
        dpt_act_derivs d;
        dpt_act_scalar(a, sets[s], x, &d);
        for (int j = 0; j < info->nparams; ++j) {
          fdctx c = {.a = a, .x = x, .var = j, .which = 0};
          memcpy(c.p, sets[s], sizeof c.p);
          check_close(d.dp[j], fd1(fd_eval, &c, sets[s][j]), "df/dp", info->name, x);
          c.which = 1; /* d/dp_j of f' */
          check_close(d.dxdp[j], fd1(fd_eval, &c, sets[s][j]), "d2f/dxdp (via f')", info->name, x);
          c.var = -1, c.which = 2, c.k = j; /* d/dx of df/dp_j */
          check_close(d.dxdp[j], fd1(fd_eval, &c, x), "d2f/dxdp (via df/dp)", info->name, x);
          for (int k = 0; k < info->nparams; ++k) {
            c.var = k, c.which = 2, c.k = j; /* d/dp_k of df/dp_j */
            check_close(d.dpdp[k][j], fd1(fd_eval, &c, sets[s][k]), "d2f/dpdp", info->name, x);
            /* symmetric to rounding: the two orders sum the same products in another order */
            assert_true(fabs(d.dpdp[k][j] - d.dpdp[j][k]) <= 4 * DBL_EPSILON * fmax(1.0, fabs(d.dpdp[j][k])));
          }
        }
        for (int j = info->nparams; j < 4; ++j) assert_true(d.dp[j] == 0.0 && d.dxdp[j] == 0.0);
      }
    }
  }
  print_message("  worst parameter-derivative error against finite differences: %.2g (tolerance %g)\n", fd_worst,
                FD_TOL);
  /* Operators without parameters report zero parameter derivatives. */
  dpt_act_derivs d;
  dpt_act_scalar(DPT_ACT_TANH, NULL, 0.7, &d);
  for (int j = 0; j < 4; ++j) assert_true(d.dp[j] == 0.0 && d.dxdp[j] == 0.0 && d.dpdp[j][j] == 0.0);
}

/* Exact values: at kinks (documented), and reference values of the smooth operators.
 * Tolerance 4 ulps of double where a value goes through exp/erf (libm is within 1 ulp and
 * each formula adds at most a few roundings); 0 where the value is exact by construction. */
static void expect(dpt_act a, const double *p, double x, double f, double d1, double d2) {
  dpt_act_derivs d;
  dpt_act_scalar(a, p, x, &d);
  double tol = 4 * DBL_EPSILON;
  if (!(fabs(d.f - f) <= tol * fabs(f) && fabs(d.d1 - d1) <= tol * fabs(d1) && fabs(d.d2 - d2) <= tol * fabs(d2)))
    fail_msg("%s at x = %g: got (%.17g, %.17g, %.17g), expected (%.17g, %.17g, %.17g)", dpt_act_get(a)->name, x,
             d.f, d.d1, d.d2, f, d1, d2);
  /* the f64 kernel gives the same values as the scalar (same element code) */
  double y, g, h;
  dpt_act_eval_f64(a, p, false, 1, 1, &x, &y, &g, &h);
  assert_true(y == d.f && g == d.d1 && h == d.d2);
}

static void test_kinks_and_values(void **state) {
  (void)state;
  const double a = DPT_SELU_ALPHA, l = DPT_SELU_LAMBDA;
  const double al[1] = {0.3}, el[1] = {1.5};
  expect(DPT_ACT_STEP, NULL, 0.0, 1.0, 0.0, 0.0);
  expect(DPT_ACT_STEP, NULL, -1e-300, 0.0, 0.0, 0.0);
  expect(DPT_ACT_STEP, NULL, 3.0, 1.0, 0.0, 0.0);
  expect(DPT_ACT_RELU, NULL, 0.0, 0.0, 0.0, 0.0);
  expect(DPT_ACT_RELU, NULL, 1e-300, 1e-300, 1.0, 0.0);
  expect(DPT_ACT_LEAKY_RELU, NULL, 0.0, 0.0, 0.01, 0.0);
  expect(DPT_ACT_LEAKY_RELU, NULL, -2.0, -0.02, 0.01, 0.0);
  expect(DPT_ACT_PRELU, al, 0.0, 0.0, 0.3, 0.0);
  expect(DPT_ACT_PRELU, NULL, -2.0, -0.5, 0.25, 0.0); /* default α = 0.25 */
  expect(DPT_ACT_ELU, el, 0.0, 0.0, 1.5, 1.5);
  expect(DPT_ACT_ELU, NULL, 0.0, 0.0, 1.0, 1.0); /* default α = 1 */
  expect(DPT_ACT_SELU, NULL, 0.0, 0.0, l * a, l * a);
  expect(DPT_ACT_SELU, NULL, 2.0, 2.0 * l, l, 0.0);
  expect(DPT_ACT_IDENTITY, NULL, -3.5, -3.5, 1.0, 0.0);
  /* smooth operators at 0 (known closed forms) */
  expect(DPT_ACT_SIGMOID, NULL, 0.0, 0.5, 0.25, 0.0);
  expect(DPT_ACT_TANH, NULL, 0.0, 0.0, 1.0, 0.0);
  expect(DPT_ACT_SOBOLEVA, NULL, 0.0, 0.0, 1.0, 0.0);
  expect(DPT_ACT_GELU, NULL, 0.0, 0.0, 0.5, 2.0 * 0.39894228040143267794);
  expect(DPT_ACT_SILU, NULL, 0.0, 0.0, 0.5, 0.5);
  expect(DPT_ACT_GAUSSIAN, NULL, 0.0, 1.0, 0.0, -2.0);
  expect(DPT_ACT_SOFTPLUS, NULL, 0.0, log(2.0), 0.5, 0.25);
  /* reference values away from 0 (closed forms evaluated with libm) */
  expect(DPT_ACT_TANH, NULL, 0.8, tanh(0.8), 1 - tanh(0.8) * tanh(0.8), -2 * tanh(0.8) * (1 - tanh(0.8) * tanh(0.8)));
  expect(DPT_ACT_GAUSSIAN, NULL, 1.5, exp(-2.25), -3.0 * exp(-2.25), 7.0 * exp(-2.25));
  /* Soboleva with defaults is tanh. Its f' = (N' − fD')/D and f'' subtract O(1) terms, so
   * they are compared on the O(1) scale: 8 ulps of max(1, |value|). */
  for (int i = 0; i < NPOINTS; ++i) {
    dpt_act_derivs s, t;
    dpt_act_scalar(DPT_ACT_SOBOLEVA, NULL, points[i], &s);
    dpt_act_scalar(DPT_ACT_TANH, NULL, points[i], &t);
    assert_true(fabs(s.f - t.f) <= 4 * DBL_EPSILON * fabs(t.f));
    assert_true(fabs(s.d1 - t.d1) <= 8 * DBL_EPSILON * fmax(1.0, fabs(t.d1)));
    assert_true(fabs(s.d2 - t.d2) <= 8 * DBL_EPSILON * fmax(1.0, fabs(t.d2)));
  }
  /* parameter derivatives at the kink, x ≤ 0 branch */
  dpt_act_derivs d;
  dpt_act_scalar(DPT_ACT_PRELU, al, 0.0, &d);
  assert_true(d.dp[0] == 0.0 && d.dxdp[0] == 1.0 && d.dpdp[0][0] == 0.0);
  dpt_act_scalar(DPT_ACT_ELU, el, 0.0, &d);
  assert_true(d.dp[0] == 0.0 && d.dxdp[0] == 1.0 && d.dpdp[0][0] == 0.0);
  dpt_act_scalar(DPT_ACT_PRELU, al, 1.0, &d);
  assert_true(d.dp[0] == 0.0 && d.dxdp[0] == 0.0);
  /* the table documents the kink of every non-smooth operator */
  for (int i = 0; i < DPT_ACT_COUNT; ++i) assert_non_null(dpt_act_get((dpt_act)i)->at_kinks);
  assert_non_null(strstr(dpt_act_get(DPT_ACT_RELU)->at_kinks, "f'(0) = 0"));
}

/* Finite for huge |x| in both dtypes (scalar, f64 and f32 kernels), and the right limits. */
static void test_large_inputs(void **state) {
  (void)state;
  const double mags[] = {50.0, 500.0, 1e30, (double)FLT_MAX};
  for (int a = 0; a < DPT_ACT_COUNT; ++a) {
    const dpt_act_info *info = dpt_act_get((dpt_act)a);
    const double(*sets)[4];
    int nsets = param_sets((dpt_act)a, &sets);
    for (int s = 0; s < nsets; ++s) {
      const double *p = sets ? sets[s] : NULL;
      float pf[4];
      for (int j = 0; j < 4; ++j) pf[j] = p ? (float)p[j] : 0.0f;
      for (int m = 0; m < 4; ++m) {
        for (int sg = -1; sg <= 1; sg += 2) {
          double x = sg * mags[m];
          dpt_act_derivs d;
          dpt_act_scalar((dpt_act)a, p, x, &d);
          bool ok = isfinite(d.f) && isfinite(d.d1) && isfinite(d.d2);
          /* an unbounded Soboleva saturates f, f', f''; its parameter derivatives x·e^{(a−c)x}
           * are truly infinite there, so they are checked for the bounded sets only */
          bool bounded = a != DPT_ACT_SOBOLEVA || (p[0] <= p[2] && p[1] <= p[3]);
          for (int j = 0; j < 4 && bounded; ++j) {
            ok = ok && isfinite(d.dp[j]) && isfinite(d.dxdp[j]);
            for (int i = 0; i < 4; ++i) ok = ok && isfinite(d.dpdp[i][j]);
          }
          double y, g, h;
          dpt_act_eval_f64((dpt_act)a, p, false, 1, 1, &x, &y, &g, &h);
          ok = ok && isfinite(y) && isfinite(g) && isfinite(h);
          float xf = (float)x, yf, gf, hf;
          dpt_act_eval_f32((dpt_act)a, p ? pf : NULL, false, 1, 1, &xf, &yf, &gf, &hf);
          /* f32 must be finite wherever the true value is a float: not for SELU (λx) or
           * PReLU with α > 1 (αx) at x = ±FLT_MAX, which lie beyond FLT_MAX */
          bool okf = (isfinite(yf) || fabs(y) > FLT_MAX) && isfinite(gf) && isfinite(hf);
          if (!ok || !okf)
            fail_msg("%s (param set %d) at x = %g: f64 (%g, %g, %g), f32 (%g, %g, %g)", info->name, s, x, y, g, h,
                     (double)yf, (double)gf, (double)hf);
        }
      }
    }
  }
  /* limits (exact in both dtypes) */
  const double big[] = {50.0, 500.0};
  for (int i = 0; i < 2; ++i) {
    double x = big[i], v;
    dpt_act_derivs d;
    dpt_act_scalar(DPT_ACT_SIGMOID, NULL, x, &d);
    assert_true(d.f == 1.0);
    dpt_act_scalar(DPT_ACT_SIGMOID, NULL, -x, &d);
    assert_true(d.f > 0.0 && d.f < 2e-21); /* σ(−50) = 1.9e-22 */
    dpt_act_scalar(DPT_ACT_TANH, NULL, -x, &d);
    assert_true(d.f == -1.0 && d.d1 >= 0.0 && d.d1 < 1e-42); /* 4e^{−100} = 1.5e-43 */
    dpt_act_scalar(DPT_ACT_SOFTPLUS, NULL, x, &d);
    assert_true(d.f == x && d.d1 == 1.0);
    dpt_act_scalar(DPT_ACT_SOFTPLUS, NULL, -x, &d);
    v = exp(-x); /* softplus(−x) = log1p(e^{−x}) = e^{−x}(1 − e^{−x}/2 + ...) */
    assert_true(fabs(d.f - v) <= 2 * DBL_EPSILON * v);
    float xf = (float)x, yf, gf;
    dpt_act_eval_f32(DPT_ACT_SOFTPLUS, NULL, false, 1, 1, &xf, &yf, &gf, NULL);
    assert_true(yf == xf && gf == 1.0f);
    dpt_act_eval_f32(DPT_ACT_TANH, NULL, false, 1, 1, &xf, &yf, &gf, NULL);
    assert_true(yf == 1.0f && gf == 0.0f);
    dpt_act_eval_f32(DPT_ACT_GELU, NULL, false, 1, 1, &xf, &yf, &gf, NULL);
    assert_true(yf == xf && gf == 1.0f);
  }
}

/* NaN in, NaN out for the smooth operators, in both kernels (a diverged run stays visible). */
static void test_nan_propagates(void **state) {
  (void)state;
  const dpt_act smooth[] = {DPT_ACT_IDENTITY, DPT_ACT_SIGMOID, DPT_ACT_TANH, DPT_ACT_SOBOLEVA, DPT_ACT_GELU,
                            DPT_ACT_SILU, DPT_ACT_GAUSSIAN, DPT_ACT_SOFTPLUS};
  for (int i = 0; i < (int)(sizeof smooth / sizeof smooth[0]); ++i) {
    float xf = NAN, yf = 0, gf = 0;
    double x = NAN, y = 0, g = 0;
    dpt_act_eval_f32(smooth[i], NULL, false, 1, 1, &xf, &yf, &gf, NULL);
    dpt_act_eval_f64(smooth[i], NULL, false, 1, 1, &x, &y, &g, NULL);
    if (!isnan(yf) || !isnan(y)) fail_msg("%s(NaN) = %g (f32), %g (f64)", dpt_act_get(smooth[i])->name, (double)yf, y);
  }
}

/* f32 kernel against the f64 scalar on a dense grid. An f32 result cannot be more accurate
 * than the function's own sensitivity to a half-ulp change of its input, so the tolerance
 * is 16 float ulps of the value plus 16 ulps of |x·v'(x)| (the condition term), plus 1e-35
 * for results flushed from below FLT_MIN (e^y flushed to 0, times factors up to 4x² ≈ 400):
 * the kernels are built to be within a few ulps. */
static void compare_f32(dpt_act a, const double *p, const float *pf, int n, const float *xs, double *worst) {
  const dpt_act_info *info = dpt_act_get(a);
  float *y = malloc(sizeof(float) * (size_t)n * 3), *g = y + n, *h = g + n;
  assert_non_null(y);
  dpt_act_eval_f32(a, pf, false, 1, n, xs, y, g, h);
  const double eps = FLT_EPSILON;
  for (int i = 0; i < n; ++i) {
    double x = xs[i];
    dpt_act_derivs d, dp, dm;
    dpt_act_scalar(a, p, x, &d);
    /* v' for the condition term: f' and f'' are known; f''' by a central difference of f''
     * (only its size matters here) */
    double hx = 1e-4 * fmax(1.0, fabs(x));
    dpt_act_scalar(a, p, x + hx, &dp);
    dpt_act_scalar(a, p, x - hx, &dm);
    double d3 = (dp.d2 - dm.d2) / (2 * hx);
    const double want[3] = {d.f, d.d1, d.d2}, slope[3] = {d.d1, d.d2, d3};
    const float got[3] = {y[i], g[i], h[i]};
    for (int k = 0; k < 3; ++k) {
      double tol = 16 * eps * (fabs(want[k]) + fabs(x * slope[k])) + 1e-35;
      double err = fabs((double)got[k] - want[k]);
      double rel = 16 * err / tol; /* in units of one ulp (+ condition), as tol counts 16 */
      if (rel > worst[k]) worst[k] = rel;
      if (!(err <= tol))
        fail_msg("%s f32 %s at x = %.9g: got %.9g, f64 %.17g (error %.3g > tol %.3g)", info->name,
                 k == 0 ? "f" : k == 1 ? "f'" : "f''", x, (double)got[k], want[k], err, tol);
    }
  }
  free(y);
}

static void test_f32_vs_f64(void **state) {
  (void)state;
  enum { N = 4001 };
  float *xs = malloc(sizeof(float) * (N + 16));
  assert_non_null(xs);
  for (int i = 0; i < N; ++i) xs[i] = (float)(-20.0 + 40.0 * i / (N - 1)); /* step 0.01 over [−20, 20] */
  const float extra[16] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, -1e-6f, 3e-4f, -3e-4f,
                           0.34f, -0.34f, 0.35f, -0.35f, 43.0f, -43.0f, 87.0f, -87.0f};
  memcpy(xs + N, extra, sizeof extra);
  for (int a = 0; a < DPT_ACT_COUNT; ++a) {
    const double(*sets)[4];
    int nsets = param_sets((dpt_act)a, &sets);
    double worst[3] = {0, 0, 0};
    for (int s = 0; s < nsets; ++s) {
      double p[4] = {0};
      float pf[4] = {0};
      if (sets)
        for (int j = 0; j < 4; ++j) pf[j] = (float)sets[s][j], p[j] = pf[j]; /* the same values in both */
      compare_f32((dpt_act)a, sets ? p : NULL, sets ? pf : NULL, N + 16, xs, worst);
    }
    print_message("  %-10s f32 vs f64: worst error / (ulp of value + condition) f %.2f, f' %.2f, f'' %.2f\n",
                  dpt_act_get((dpt_act)a)->name, worst[0], worst[1], worst[2]);
  }
  free(xs);
}

/* tanh's f32 value against tanh() in double: at most 4 float ulps of the true value at
 * every float in a sweep of [−10, 10] (the kernel: expm1 within ~1 ulp, one division and
 * one multiplication by a reciprocal, each half an ulp). Also sigmoid against 1/(1+e^{−x}). */
static void test_tanh_sigmoid_ulps(void **state) {
  (void)state;
  enum { N = 1 << 16 };
  float *xs = malloc(sizeof(float) * N * 2), *ys = xs + N;
  assert_non_null(xs);
  for (int i = 0; i < N; ++i) {
    double u = -1.0 + 2.0 * i / (N - 1);
    xs[i] = (float)(10.0 * u * u * u); /* dense near 0, where relative accuracy is hardest */
  }
  double worst_t = 0, worst_s = 0;
  dpt_act_eval_f32(DPT_ACT_TANH, NULL, false, 1, N, xs, ys, NULL, NULL);
  for (int i = 0; i < N; ++i) {
    double ref = tanh((double)xs[i]);
    double ulp = ref == 0.0 ? FLT_TRUE_MIN : ldexp(1.0, ilogb(fmax(fabs(ref), FLT_MIN)) - 23);
    double e = fabs(ys[i] - ref) / ulp;
    if (e > worst_t) worst_t = e;
  }
  dpt_act_eval_f32(DPT_ACT_SIGMOID, NULL, false, 1, N, xs, ys, NULL, NULL);
  for (int i = 0; i < N; ++i) {
    double ref = 1.0 / (1.0 + exp(-(double)xs[i]));
    double e = fabs(ys[i] - ref) / ldexp(1.0, ilogb(fmax(ref, FLT_MIN)) - 23);
    if (e > worst_s) worst_s = e;
  }
  print_message("  f32 tanh max error %.2f ulp, sigmoid %.2f ulp (of the true value, over [-10, 10])\n", worst_t,
                worst_s);
  assert_true(worst_t <= 4.0);
  assert_true(worst_s <= 4.0);
  free(xs);
}

/* The f64 kernels (libm-free exp/expm1/log1p) against long double libm (64-bit mantissa,
 * so the reference is 2048x finer than a double ulp): at most 4 double ulps for tanh,
 * sigmoid, softplus, elu and gaussian values over [−30, 30] (exp within ~1 ulp, then a
 * division and a few products, each half an ulp). */
static void test_f64_ulps(void **state) {
  (void)state;
  enum { N = 1 << 15 };
  double *xs = malloc(sizeof(double) * N * 2), *ys = xs + N;
  assert_non_null(xs);
  for (int i = 0; i < N; ++i) {
    double u = -1.0 + 2.0 * i / (N - 1);
    xs[i] = 30.0 * u * u * u;
  }
  const dpt_act ops[] = {DPT_ACT_TANH, DPT_ACT_SIGMOID, DPT_ACT_SOFTPLUS, DPT_ACT_ELU, DPT_ACT_GAUSSIAN};
  for (int o = 0; o < 5; ++o) {
    dpt_act_eval_f64(ops[o], NULL, false, 1, N, xs, ys, NULL, NULL);
    double worst = 0;
    for (int i = 0; i < N; ++i) {
      long double x = xs[i], ref;
      switch (ops[o]) {
        case DPT_ACT_TANH: ref = tanhl(x); break;
        case DPT_ACT_SIGMOID: ref = 1.0L / (1.0L + expl(-x)); break;
        case DPT_ACT_SOFTPLUS: ref = (x > 0 ? x : 0.0L) + log1pl(expl(-fabsl(x))); break;
        case DPT_ACT_ELU: ref = x > 0 ? x : expm1l(x); break;
        /* of the double-rounded x², as the kernel computes it: e^{−x²} has condition
         * number 2x², so the rounding of x² itself is not the exponential's error */
        default: ref = expl(-(long double)(xs[i] * xs[i])); break;
      }
      /* flushed tails (e^y below e^{−708} ≈ 3.3e-308 is 0): checked for finiteness elsewhere */
      if (fabsl(ref) < 1e-307L) continue;
      double e = (double)(fabsl((long double)ys[i] - ref) / ldexpl(1.0L, ilogbl(ref) - 52)); /* in ulps of ref */
      if (e > worst) worst = e;
    }
    print_message("  f64 %-8s max error %.2f ulp over [-30, 30]\n", dpt_act_get(ops[o])->name, worst);
    assert_true(worst <= 4.0);
  }
  free(xs);
}

/* Per-unit parameters ([nparams][cols]) and optional outputs give the same numbers as the
 * scalar with that unit's parameters; in-place y = x works. Exact equality for f64 (the
 * same element code runs in both); f32 is covered by test_f32_vs_f64. */
static void test_per_unit_and_outputs(void **state) {
  (void)state;
  enum { R = 3, C = 5 };
  double x[R * C], y[R * C], g[R * C], h[R * C], P[4 * C];
  for (int i = 0; i < R * C; ++i) x[i] = -2.0 + 0.29 * i;
  const dpt_act ops[] = {DPT_ACT_PRELU, DPT_ACT_ELU, DPT_ACT_SOBOLEVA};
  for (int o = 0; o < 3; ++o) {
    int np = dpt_act_get(ops[o])->nparams;
    for (int j = 0; j < np; ++j)
      for (int c = 0; c < C; ++c) P[j * C + c] = 0.5 + 0.1 * j + 0.2 * c;
    dpt_act_eval_f64(ops[o], P, true, R, C, x, y, g, h);
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) {
        double pc[4] = {0};
        for (int j = 0; j < np; ++j) pc[j] = P[j * C + c];
        dpt_act_derivs d;
        dpt_act_scalar(ops[o], pc, x[r * C + c], &d);
        int i = r * C + c;
        assert_true(y[i] == d.f && g[i] == d.d1 && h[i] == d.d2);
      }
    /* shared parameters: the first unit's values for all */
    double ps[4] = {P[0], P[C], P[2 * C], P[3 * C]};
    dpt_act_eval_f64(ops[o], ps, false, R, C, x, y, NULL, NULL);
    for (int i = 0; i < R * C; ++i) {
      dpt_act_derivs d;
      dpt_act_scalar(ops[o], ps, x[i], &d);
      assert_true(y[i] == d.f);
    }
  }
  /* f32 per unit: PReLU with α per column, exact (one multiplication) */
  float xf[R * C], yf[R * C], gf[R * C], Pf[C];
  for (int i = 0; i < R * C; ++i) xf[i] = (float)x[i];
  for (int c = 0; c < C; ++c) Pf[c] = 0.1f * (float)(c + 1);
  dpt_act_eval_f32(DPT_ACT_PRELU, Pf, true, R, C, xf, yf, gf, NULL);
  for (int i = 0; i < R * C; ++i) {
    float al = Pf[i % C];
    assert_true(yf[i] == (xf[i] > 0 ? xf[i] : al * xf[i]) && gf[i] == (xf[i] > 0 ? 1.0f : al));
  }
  /* every combination of outputs gives the same values as all three together; a large
   * row count exercises the chunked loop past its first chunk */
  enum { NB = 1000 };
  float *xb = malloc(sizeof(float) * NB * 7), *yy = xb + NB, *gg = yy + NB, *hh = gg + NB, *o1 = hh + NB,
        *o2 = o1 + NB, *o3 = o2 + NB;
  assert_non_null(xb);
  for (int i = 0; i < NB; ++i) xb[i] = (float)(-6.0 + 12.0 * i / NB);
  for (int a = 0; a < DPT_ACT_COUNT; ++a) {
    dpt_act_eval_f32((dpt_act)a, NULL, false, 2, NB / 2, xb, yy, gg, hh);
    for (int mask = 1; mask < 8; ++mask) {
      memset(o1, 0xff, sizeof(float) * NB * 3);
      dpt_act_eval_f32((dpt_act)a, NULL, false, 2, NB / 2, xb, mask & 1 ? o1 : NULL, mask & 2 ? o2 : NULL,
                       mask & 4 ? o3 : NULL);
      if (mask & 1) assert_memory_equal(o1, yy, sizeof(float) * NB);
      if (mask & 2) assert_memory_equal(o2, gg, sizeof(float) * NB);
      if (mask & 4) assert_memory_equal(o3, hh, sizeof(float) * NB);
    }
    memcpy(o1, xb, sizeof(float) * NB); /* in place: y aliases x */
    dpt_act_eval_f32((dpt_act)a, NULL, false, 1, NB, o1, o1, o2, NULL);
    assert_memory_equal(o1, yy, sizeof(float) * NB);
    assert_memory_equal(o2, gg, sizeof(float) * NB);
  }
  /* empty shapes touch nothing */
  yy[0] = 123.0f;
  dpt_act_eval_f32(DPT_ACT_TANH, NULL, false, 0, 5, xb, yy, NULL, NULL);
  dpt_act_eval_f32(DPT_ACT_TANH, NULL, false, 5, 0, xb, yy, NULL, NULL);
  assert_true(yy[0] == 123.0f);
  free(xb);
}

/* Parsing: every table name round-trips; unknown names give a one-line error naming the key. */
static void test_parse(void **state) {
  (void)state;
  for (int i = 0; i < DPT_ACT_COUNT; ++i) {
    dpt_act a;
    assert_dpt_ok(dpt_act_parse(dpt_act_get((dpt_act)i)->name, "model.activation", &a));
    assert_int_equal(a, i);
  }
  dpt_act a = DPT_ACT_TANH;
  assert_dpt_fails(dpt_act_parse("swish", "layer.2.activation", &a), DPT_ERR_INPUT,
                   "layer.2.activation: expected an activation (identity, step");
  assert_int_equal(a, DPT_ACT_TANH); /* untouched on failure */
  dpt_act_parse("ReLU", "model.activation", &a);
  assert_non_null(strstr(dpt_error_message(), "got 'ReLU'"));
  assert_null(strchr(dpt_error_message(), '\n'));
  dpt_error_clear();
  assert_dpt_fails(dpt_act_parse("", "model.activation", &a), DPT_ERR_INPUT, "got ''");
  assert_null(dpt_act_get(DPT_ACT_COUNT));
  /* the table as the contract states it */
  assert_int_equal(dpt_act_get(DPT_ACT_SOBOLEVA)->nparams, 4);
  assert_true(dpt_act_get(DPT_ACT_SOBOLEVA)->learnable && dpt_act_get(DPT_ACT_PRELU)->learnable);
  assert_false(dpt_act_get(DPT_ACT_ELU)->learnable);
  assert_true(dpt_act_get(DPT_ACT_PRELU)->param_defaults[0] == 0.25);
  assert_true(dpt_act_get(DPT_ACT_ELU)->param_defaults[0] == 1.0);
  assert_string_equal(dpt_act_get(DPT_ACT_PRELU)->param_names[0], "alpha");
  assert_string_equal(dpt_act_get(DPT_ACT_SOBOLEVA)->param_names[3], "d");
}

/* Information only: ns per element of the f32 kernels on 64x64 values (y only, and y+f'). */
static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_microbench_info(void **state) {
  (void)state;
  enum { N = 64 * 64, REPS = 400 };
  float *x = malloc(sizeof(float) * N * 3), *y = x + N, *g = y + N;
  assert_non_null(x);
  for (int i = 0; i < N; ++i) x[i] = (float)(-4.0 + 8.0 * i / N);
  const dpt_act ops[] = {DPT_ACT_RELU, DPT_ACT_TANH,     DPT_ACT_SIGMOID, DPT_ACT_GELU,
                         DPT_ACT_SILU, DPT_ACT_SOFTPLUS, DPT_ACT_SOBOLEVA};
  const int nops = (int)(sizeof ops / sizeof ops[0]);
  for (int o = 0; o < nops; ++o) {
    double best_y = 1e9, best_yg = 1e9;
    for (int rep = 0; rep < REPS; ++rep) {
      double t0 = now_s();
      dpt_act_eval_f32(ops[o], NULL, false, 64, 64, x, y, NULL, NULL);
      double t1 = now_s();
      dpt_act_eval_f32(ops[o], NULL, false, 64, 64, x, y, g, NULL);
      double t2 = now_s();
      best_y = fmin(best_y, t1 - t0), best_yg = fmin(best_yg, t2 - t1);
    }
    print_message("  [info] f32 %-9s 64x64: y %.2f us, y+f' %.2f us (best of %d)\n", dpt_act_get(ops[o])->name,
                  best_y * 1e6, best_yg * 1e6, REPS);
  }
  double *xd = malloc(sizeof(double) * N * 3), *yd = xd + N, *gd = yd + N;
  assert_non_null(xd);
  for (int i = 0; i < N; ++i) xd[i] = x[i];
  for (int o = 0; o < nops; ++o) {
    double best = 1e9;
    for (int rep = 0; rep < REPS / 4; ++rep) {
      double t0 = now_s();
      dpt_act_eval_f64(ops[o], NULL, false, 64, 64, xd, yd, gd, NULL);
      best = fmin(best, now_s() - t0);
    }
    print_message("  [info] f64 %-9s 64x64: y+f' %.2f us\n", dpt_act_get(ops[o])->name, best * 1e6);
  }
  assert_true(isfinite(yd[0]));
  free(xd);
  assert_true(isfinite(y[0])); /* keeps the work observable */
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_derivatives_fd),
      cmocka_unit_test(test_param_derivatives_fd),
      cmocka_unit_test(test_kinks_and_values),
      cmocka_unit_test(test_large_inputs),
      cmocka_unit_test(test_nan_propagates),
      cmocka_unit_test(test_f32_vs_f64),
      cmocka_unit_test(test_tanh_sigmoid_ulps),
      cmocka_unit_test(test_f64_ulps),
      cmocka_unit_test(test_per_unit_and_outputs),
      cmocka_unit_test(test_microbench_info),
  };
  return dpt_test_run(tests);
}

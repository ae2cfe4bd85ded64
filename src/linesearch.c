/* linesearch.c — backtracking Armijo and strong Wolfe (Nocedal & Wright Alg. 3.5 / 3.6). */
#include <math.h>
#include <string.h>

#include "dptrain/second_order.h"

static double dot(size_t n, const double *a, const double *b) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* phi(a) = f(x + a d): evaluates into xn, fn, gn; *dphi = gn'd. A non-finite value or
 * gradient (identical on every rank: the objective's values are reduced) gives f = +inf, so
 * the searches shrink the step instead of failing. */
static dpt_status phi(dpt_objective *obj, const double *x, const double *d, double a, double *xn, double *fn,
                      double *gn, double *dphi) {
  for (size_t i = 0; i < obj->n; i++) xn[i] = x[i] + a * d[i];
  const dpt_status st = dpt_objective_eval(obj, xn, fn, gn);
  if (st == DPT_ERR_NUMERIC) { /* a trial step too long to evaluate: treat as f = +inf */
    dpt_error_clear();
    *fn = INFINITY;
    *dphi = NAN;
    return DPT_OK;
  }
  DPT_CALL(st);
  *dphi = dot(obj->n, gn, d);
  return DPT_OK;
}

dpt_status dpt_linesearch_armijo(dpt_objective *obj, const double *x, double f0, const double *g0, const double *d,
                                 double alpha0, double c1, int max_evals, double *xn, double *fn, double *gn,
                                 double *alpha, bool *found) {
  const double dphi0 = dot(obj->n, g0, d);
  DPT_CHECK(dphi0 < 0.0, DPT_ERR_INTERNAL, "line search: not a descent direction (g'd = %g)", dphi0);
  double a = alpha0, dphi;
  *found = false;
  for (int k = 0; k < max_evals && k < 60; k++, a *= 0.5) {
    DPT_CALL(phi(obj, x, d, a, xn, fn, gn, &dphi));
    if (*fn <= f0 + c1 * a * dphi0) {
      *alpha = a;
      *found = true;
      return DPT_OK;
    }
  }
  /* Nothing acceptable: give back the start. */
  memcpy(xn, x, obj->n * sizeof *xn);
  memcpy(gn, g0, obj->n * sizeof *gn);
  *fn = f0;
  *alpha = 0.0;
  return DPT_OK;
}

/* Minimiser of the cubic through (a, fa, da), (b, fb, db) (N&W eq. 3.59), or NaN. */
static double cubic_min(double a, double fa, double da, double b, double fb, double db) {
  const double d1 = da + db - 3.0 * (fa - fb) / (a - b);
  const double disc = d1 * d1 - da * db;
  if (!(disc >= 0.0)) return NAN;
  const double d2 = copysign(sqrt(disc), b - a);
  const double den = db - da + 2.0 * d2;
  if (den == 0.0) return NAN;
  return b - (b - a) * (db + d2 - d1) / den;
}

typedef struct ls_point {
  double a, f, d;
} ls_point;

dpt_status dpt_linesearch_wolfe(dpt_objective *obj, const double *x, double f0, const double *g0, const double *d,
                                double alpha0, double alpha_max, double c1, double c2, int max_evals, double *xn,
                                double *fn, double *gn, double *alpha, bool *found) {
  const double dphi0 = dot(obj->n, g0, d);
  DPT_CHECK(dphi0 < 0.0, DPT_ERR_INTERNAL, "line search: not a descent direction (g'd = %g)", dphi0);
  DPT_CHECK(0.0 < c1 && c1 < c2 && c2 < 1.0, DPT_ERR_INTERNAL, "line search: need 0 < c1 < c2 < 1 (c1 %g, c2 %g)",
            c1, c2);
  *found = false;
  ls_point prev = {0.0, f0, dphi0};
  ls_point lo, hi;
  double a = fmin(alpha0, alpha_max), f, dp;
  int evals = 0;
  /* Bracketing phase (Alg. 3.5). */
  for (;;) {
    if (evals >= max_evals) goto fail;
    DPT_CALL(phi(obj, x, d, a, xn, fn, gn, &dp));
    evals++;
    f = *fn;
    if (f > f0 + c1 * a * dphi0 || (evals > 1 && f >= prev.f)) {
      lo = prev;
      hi = (ls_point){a, f, dp};
      break;
    }
    if (fabs(dp) <= -c2 * dphi0) goto accept;
    if (dp >= 0.0) {
      lo = (ls_point){a, f, dp};
      hi = prev;
      break;
    }
    if (a >= alpha_max) goto accept; /* still descending at the largest step allowed */
    prev = (ls_point){a, f, dp};
    a = fmin(2.0 * a, alpha_max);
  }
  /* Zoom phase (Alg. 3.6): lo satisfies sufficient decrease with the lowest f so far, and
   * dphi(lo) (hi - lo) < 0. */
  for (;;) {
    if (evals >= max_evals) break;
    const double w = hi.a - lo.a;
    double t = cubic_min(lo.a, lo.f, lo.d, hi.a, hi.f, hi.d);
    const double left = fmin(lo.a, hi.a), right = fmax(lo.a, hi.a);
    /* Safeguard: stay inside the interval, away from its ends by a tenth of its width. */
    if (!isfinite(t) || t < left + 0.1 * fabs(w) || t > right - 0.1 * fabs(w)) t = lo.a + 0.5 * w;
    if (t == lo.a || t == hi.a) break; /* interval below rounding */
    a = t;
    DPT_CALL(phi(obj, x, d, a, xn, fn, gn, &dp));
    evals++;
    f = *fn;
    if (f > f0 + c1 * a * dphi0 || f >= lo.f) {
      hi = (ls_point){a, f, dp};
    } else {
      if (fabs(dp) <= -c2 * dphi0) goto accept;
      if (dp * (hi.a - lo.a) >= 0.0) hi = lo;
      lo = (ls_point){a, f, dp};
    }
  }
  /* Out of evaluations in zoom: lo has sufficient decrease (when lo.a > 0); take it. */
  if (lo.a > 0.0) {
    DPT_CALL(phi(obj, x, d, lo.a, xn, fn, gn, &dp));
    *alpha = lo.a;
    return DPT_OK; /* found stays false: curvature condition not met */
  }
fail:
  memcpy(xn, x, obj->n * sizeof *xn);
  memcpy(gn, g0, obj->n * sizeof *gn);
  *fn = f0;
  *alpha = 0.0;
  return DPT_OK;
accept:
  *alpha = a;
  *found = true;
  return DPT_OK;
}

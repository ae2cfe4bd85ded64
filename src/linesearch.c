/* linesearch.c — backtracking Armijo and strong Wolfe line searches (second_order.h).
 *
 * φ(α) = f(x + α d), φ'(α) = ∇f(x + α d)·d. Sufficient decrease: φ(α) ≤ φ(0) + c1 α φ'(0);
 * strong curvature: |φ'(α)| ≤ c2 |φ'(0)|. */
#include "dptrain/second_order.h"

#include <math.h>
#include <string.h>

#include <cblas.h>

dpt_status dpt_objective_eval(dpt_objective *o, const double *x, double *f, double *g) {
  o->evals++;
  DPT_CALL(o->eval(o->ctx, x, f, g));
  return DPT_OK;
}

dpt_status dpt_objective_hvp(dpt_objective *o, const double *x, const double *v, double *hv) {
  DPT_CHECK(o->hvp, DPT_ERR_INTERNAL, "the objective has no Hessian-vector product");
  o->hvps++;
  DPT_CALL(o->hvp(o->ctx, x, v, hv));
  return DPT_OK;
}

dpt_status dpt_ls_params_check(const dpt_ls_params *p, dpt_ls_kind kind) {
  if (kind == DPT_LS_NONE) return DPT_OK;
  DPT_CHECK(p->c1 > 0 && p->c1 < 1, DPT_ERR_INPUT, "optimizer.c1 = %g: expected 0 < c1 < 1", p->c1);
  if (kind == DPT_LS_WOLFE)
    DPT_CHECK(p->c2 > p->c1 && p->c2 < 1, DPT_ERR_INPUT,
              "optimizer.c2 = %g: expected c1 < c2 < 1 with c1 = %g (strong Wolfe)", p->c2, p->c1);
  DPT_CHECK(p->alpha_max > 0, DPT_ERR_INPUT, "line search: alpha_max = %g must be > 0", p->alpha_max);
  DPT_CHECK(p->max_evals >= 1, DPT_ERR_INPUT, "line search: max_evals = %d must be >= 1", p->max_evals);
  return DPT_OK;
}

/* x_new = x + α d, then f and g there; returns φ'(α) in *dphi. */
static dpt_status trial(dpt_objective *o, const double *x, const double *d, double alpha, double *x_new,
                        double *f_new, double *g_new, double *dphi) {
  size_t n = o->n;
  for (size_t i = 0; i < n; ++i) x_new[i] = x[i] + alpha * d[i];
  DPT_CALL(dpt_objective_eval(o, x_new, f_new, g_new));
  *dphi = 0.0;
  for (size_t i = 0; i < n; ++i) *dphi += g_new[i] * d[i];
  return DPT_OK;
}

/* Minimiser of the cubic through (a, fa, da) and (b, fb, db) (N&W eq. 3.59), kept in the
 * inner 80 % of [min(a,b), max(a,b)]; bisection when the cubic has no usable minimiser. */
static double cubic_step(double a, double fa, double da, double b, double fb, double db) {
  double lo = fmin(a, b), hi = fmax(a, b), w = hi - lo, mid = 0.5 * (lo + hi);
  double d1 = da + db - 3.0 * (fa - fb) / (a - b);
  double disc = d1 * d1 - da * db;
  if (!(disc >= 0) || !isfinite(d1) || !isfinite(da) || !isfinite(db)) return mid;
  double d2 = copysign(sqrt(disc), b - a);
  double den = db - da + 2.0 * d2;
  if (den == 0 || !isfinite(den)) return mid;
  double t = b - (b - a) * (db + d2 - d1) / den;
  if (!isfinite(t) || t < lo + 0.1 * w || t > hi - 0.1 * w) return mid;
  return t;
}

static dpt_status armijo(dpt_objective *o, const dpt_ls_params *p, const double *x, double f0, const double *d,
                         double dphi0, double alpha0, double *alpha, double *x_new, double *f_new, double *g_new,
                         bool *ok) {
  double a = alpha0, dphi;
  for (int k = 0; k < p->max_evals; ++k) {
    DPT_CALL(trial(o, x, d, a, x_new, f_new, g_new, &dphi));
    if (isfinite(*f_new) && *f_new <= f0 + p->c1 * a * dphi0) {
      *alpha = a;
      *ok = true;
      return DPT_OK;
    }
    /* minimiser of the quadratic through φ(0), φ'(0), φ(a), kept in [0.1 a, 0.5 a] */
    double next = 0.5 * a;
    if (isfinite(*f_new)) {
      double q = -dphi0 * a * a / (2.0 * (*f_new - f0 - dphi0 * a));
      if (isfinite(q)) next = fmin(fmax(q, 0.1 * a), 0.5 * a);
    }
    a = next;
  }
  *ok = false;
  *alpha = 0.0;
  return DPT_OK;
}

/* The bracket end with the lowest φ satisfying sufficient decrease: point and gradient. */
typedef struct ls_point {
  double a, f, dphi;
} ls_point;

static dpt_status wolfe(dpt_objective *o, const dpt_ls_params *p, const double *x, double f0, const double *d,
                        double dphi0, double alpha0, double *alpha, double *x_new, double *f_new, double *g_new,
                        bool *ok, double *x_lo, double *g_lo) {
  size_t n = o->n;
  ls_point lo = {0.0, f0, dphi0}, hi = {0, 0, 0}, prev = lo;
  double a = fmin(alpha0, p->alpha_max), f, dphi;
  int evals = 0;
  bool bracketed = false;
  *ok = false;
  /* x_lo/g_lo hold the point of lo when lo.a > 0 */
  /* Algorithm 3.5: bracketing */
  while (evals < p->max_evals) {
    DPT_CALL(trial(o, x, d, a, x_new, &f, g_new, &dphi));
    evals++;
    if (!isfinite(f) || f > f0 + p->c1 * a * dphi0 || (evals > 1 && f >= prev.f)) {
      lo = prev;
      hi = (ls_point){a, f, dphi};
      bracketed = true;
      break;
    }
    if (fabs(dphi) <= -p->c2 * dphi0) {
      *alpha = a;
      *f_new = f;
      *ok = true;
      return DPT_OK;
    }
    /* a satisfies sufficient decrease and is the lowest so far: remember it */
    memcpy(x_lo, x_new, n * sizeof *x_lo);
    memcpy(g_lo, g_new, n * sizeof *g_lo);
    if (dphi >= 0) {
      lo = (ls_point){a, f, dphi};
      hi = prev;
      bracketed = true;
      break;
    }
    prev = (ls_point){a, f, dphi};
    lo = prev;
    if (a >= p->alpha_max) break;
    a = fmin(2.0 * a, p->alpha_max);
  }
  /* Algorithm 3.6: zoom in [lo, hi]; lo always satisfies sufficient decrease, has the lowest
   * φ seen, and φ'(lo)(hi − lo) < 0. */
  while (bracketed && evals < p->max_evals) {
    a = cubic_step(lo.a, lo.f, lo.dphi, hi.a, hi.f, hi.dphi);
    if (!(fabs(hi.a - lo.a) > 1e-16 * fmax(1.0, fabs(lo.a)))) break;
    DPT_CALL(trial(o, x, d, a, x_new, &f, g_new, &dphi));
    evals++;
    if (!isfinite(f) || f > f0 + p->c1 * a * dphi0 || f >= lo.f) {
      hi = (ls_point){a, f, dphi};
      continue;
    }
    if (fabs(dphi) <= -p->c2 * dphi0) {
      *alpha = a;
      *f_new = f;
      *ok = true;
      return DPT_OK;
    }
    if (dphi * (hi.a - lo.a) >= 0) hi = lo;
    lo = (ls_point){a, f, dphi};
    memcpy(x_lo, x_new, n * sizeof *x_lo);
    memcpy(g_lo, g_new, n * sizeof *g_lo);
  }
  /* no point satisfies both conditions: return the best one (lo), or x itself */
  *alpha = lo.a;
  *f_new = lo.f;
  if (lo.a > 0) {
    memcpy(x_new, x_lo, n * sizeof *x_new);
    memcpy(g_new, g_lo, n * sizeof *g_new);
  }
  return DPT_OK;
}

dpt_status dpt_linesearch(dpt_objective *o, dpt_ls_kind kind, const dpt_ls_params *p, const double *x, double f0,
                          const double *g0, const double *d, double alpha0, double *alpha, double *x_new,
                          double *f_new, double *g_new, double *work, bool *ok) {
  dpt_status st = DPT_OK;
  size_t n = o->n;
  double *scratch = NULL; /* owned here when the caller gave no work buffer */
  double dphi0 = 0.0;
  for (size_t i = 0; i < n; ++i) dphi0 += g0[i] * d[i];
  DPT_CHECK(dphi0 < 0, DPT_ERR_INTERNAL, "line search: d is not a descent direction (g·d = %g)", dphi0);
  DPT_CHECK(alpha0 > 0 && isfinite(alpha0), DPT_ERR_INTERNAL, "line search: initial step %g", alpha0);
  *ok = false;
  if (kind == DPT_LS_ARMIJO) {
    DPT_TRY(armijo(o, p, x, f0, d, dphi0, alpha0, alpha, x_new, f_new, g_new, ok));
  } else if (kind == DPT_LS_WOLFE) {
    if (!work) {
      DPT_TRY(dpt_alloc(2 * n, sizeof *scratch, "line search scratch", &scratch));
      work = scratch;
    }
    DPT_TRY(wolfe(o, p, x, f0, d, dphi0, alpha0, alpha, x_new, f_new, g_new, ok, work, work + n));
  } else {
    double dphi;
    *alpha = alpha0;
    DPT_TRY(trial(o, x, d, alpha0, x_new, f_new, g_new, &dphi));
    *ok = isfinite(*f_new);
  }
  if (!*ok && *alpha == 0.0) { /* nothing better than x */
    memcpy(x_new, x, n * sizeof *x_new);
    memcpy(g_new, g0, n * sizeof *g_new);
    *f_new = f0;
  }
done:
  dpt_free(&scratch);
  return st;
}

/* second_order.c — objectives, options, and the CG / Newton / Newton-CG / BFGS / L-BFGS /
 * saddle-free Newton driver (see second_order.h). */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "dptrain/second_order.h"
#include "dptrain/types.h"

/* ---- objectives ----------------------------------------------------------------------- */

dpt_status dpt_objective_eval(dpt_objective *obj, const double *x, double *f, double *g) {
  obj->n_evals++;
  DPT_CALL(obj->eval(obj->ctx, x, f, g));
  DPT_CHECK(isfinite(*f), DPT_ERR_NUMERIC, "objective: non-finite value %g", *f);
  if (g)
    for (size_t i = 0; i < obj->n; i++)
      DPT_CHECK(isfinite(g[i]), DPT_ERR_NUMERIC, "objective: non-finite gradient component %zu", i);
  return DPT_OK;
}

dpt_status dpt_objective_hvp(dpt_objective *obj, const double *x, const double *v, double *hv) {
  DPT_CHECK(obj->hvp != NULL, DPT_ERR_INTERNAL, "objective: this method needs Hessian-vector products");
  obj->n_hvps++;
  DPT_CALL(obj->hvp(obj->ctx, x, v, hv));
  return DPT_OK;
}

static dpt_status quad_eval(void *ctx, const double *x, double *f, double *g) {
  const dpt_quadratic *q = ctx;
  double s = 0.0;
  for (size_t i = 0; i < q->n; i++) {
    double ax = 0.0;
    for (size_t j = 0; j < q->n; j++) ax += q->A[i * q->n + j] * x[j];
    s += 0.5 * x[i] * ax - q->b[i] * x[i];
    if (g) g[i] = ax - q->b[i];
  }
  *f = s;
  return DPT_OK;
}
static dpt_status quad_hvp(void *ctx, const double *x, const double *v, double *hv) {
  (void)x;
  const dpt_quadratic *q = ctx;
  for (size_t i = 0; i < q->n; i++) {
    double s = 0.0;
    for (size_t j = 0; j < q->n; j++) s += q->A[i * q->n + j] * v[j];
    hv[i] = s;
  }
  return DPT_OK;
}
dpt_objective dpt_objective_quadratic(dpt_quadratic *q) {
  return (dpt_objective){.n = q->n, .ctx = q, .eval = quad_eval, .hvp = quad_hvp};
}

static dpt_status rosen_eval(void *ctx, const double *x, double *f, double *g) {
  (void)ctx;
  const double a = 1.0 - x[0], b = x[1] - x[0] * x[0];
  *f = a * a + 100.0 * b * b;
  if (g) {
    g[0] = -2.0 * a - 400.0 * x[0] * b;
    g[1] = 200.0 * b;
  }
  return DPT_OK;
}
static dpt_status rosen_hvp(void *ctx, const double *x, const double *v, double *hv) {
  (void)ctx;
  const double h00 = 2.0 - 400.0 * (x[1] - x[0] * x[0]) + 800.0 * x[0] * x[0], h01 = -400.0 * x[0], h11 = 200.0;
  hv[0] = h00 * v[0] + h01 * v[1];
  hv[1] = h01 * v[0] + h11 * v[1];
  return DPT_OK;
}
dpt_objective dpt_objective_rosenbrock(void) {
  return (dpt_objective){.n = 2, .eval = rosen_eval, .hvp = rosen_hvp};
}

static dpt_status saddle_eval(void *ctx, const double *x, double *f, double *g) {
  (void)ctx;
  *f = x[0] * x[0] - x[1] * x[1];
  if (g) {
    g[0] = 2.0 * x[0];
    g[1] = -2.0 * x[1];
  }
  return DPT_OK;
}
static dpt_status saddle_hvp(void *ctx, const double *x, const double *v, double *hv) {
  (void)ctx;
  (void)x;
  hv[0] = 2.0 * v[0];
  hv[1] = -2.0 * v[1];
  return DPT_OK;
}
dpt_objective dpt_objective_saddle(void) {
  return (dpt_objective){.n = 2, .eval = saddle_eval, .hvp = saddle_hvp};
}

/* ---- options -------------------------------------------------------------------------- */

static const char *const METHODS[] = {"cg", "newton", "newton_cg", "bfgs", "lbfgs", "sfn", NULL};

bool dpt_second_order_is_method(const char *type) {
  if (!type) return false;
  for (int i = 0; METHODS[i]; i++)
    if (strcmp(type, METHODS[i]) == 0) return true;
  return false;
}

const char *dpt_so_method_name(dpt_so_method m) { return METHODS[m]; }

void dpt_so_options_default(dpt_so_options *o, dpt_so_method method) {
  *o = (dpt_so_options){.method = method,
                        .cg_variant = DPT_CG_PRPLUS,
                        .history = 10,
                        .line_search = DPT_LS_WOLFE,
                        .c1 = 1e-4,
                        .c2 = method == DPT_SO_CG ? 0.1 : 0.9,
                        .max_iters = 100,
                        .max_evals = 1000,
                        .tol_grad = 1e-6,
                        .tol_rel = 1e-12,
                        .damping = method == DPT_SO_SFN ? 1e-4 : 0.0,
                        .lanczos_k = 20,
                        .dense_limit = 2000};
}

dpt_status dpt_so_options_read(dpt_config *cfg, dpt_so_options *o) {
  int m;
  DPT_CALL(dpt_config_get_choice(cfg, "optimizer.type", METHODS, NULL, &m));
  dpt_so_options_default(o, (dpt_so_method)m);
  static const char *const CG[] = {"fr", "pr", "prplus", NULL};
  static const char *const LS[] = {"armijo", "wolfe", NULL};
  int k;
  int64_t v;
  if (o->method == DPT_SO_CG) {
    DPT_CALL(dpt_config_get_choice(cfg, "optimizer.cg_variant", CG, "prplus", &k));
    o->cg_variant = (dpt_cg_variant)k;
  }
  if (o->method == DPT_SO_LBFGS) {
    DPT_CALL(dpt_config_get_int(cfg, "optimizer.history", 10, 1, 1000, &v));
    o->history = (int)v;
  }
  DPT_CALL(dpt_config_get_choice(cfg, "optimizer.line_search", LS, "wolfe", &k));
  o->line_search = (dpt_ls_kind)k;
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.c1", o->c1, 0.0, 1.0, DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI, &o->c1));
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.c2", o->c2, 0.0, 1.0, DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI, &o->c2));
  DPT_CHECK(o->c1 < o->c2, DPT_ERR_INPUT, "optimizer.c1 = %g, optimizer.c2 = %g: expected c1 < c2", o->c1, o->c2);
  DPT_CALL(dpt_config_get_int(cfg, "optimizer.max_iters", 100, 1, INT64_MAX / 4, &o->max_iters));
  DPT_CALL(dpt_config_get_int(cfg, "optimizer.max_evals", 1000, 1, INT64_MAX / 4, &o->max_evals));
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.tol_grad", o->tol_grad, 0.0, INFINITY, DPT_RANGE_CLOSED,
                                 &o->tol_grad));
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.tol_rel", o->tol_rel, 0.0, INFINITY, DPT_RANGE_CLOSED, &o->tol_rel));
  if (o->method != DPT_SO_CG && o->method != DPT_SO_BFGS && o->method != DPT_SO_LBFGS)
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.damping", o->damping, 0.0, INFINITY, DPT_RANGE_CLOSED,
                                   &o->damping));
  if (o->method == DPT_SO_SFN) {
    DPT_CALL(dpt_config_get_int(cfg, "optimizer.lanczos_k", 20, 1, 100000, &v));
    o->lanczos_k = (int)v;
  }
  DPT_CALL(dpt_config_get_int(cfg, "optimizer.dense_limit", 2000, 1, 1000000, &o->dense_limit));
  return DPT_OK;
}

dpt_status dpt_so_options_check_size(const dpt_so_options *o, size_t n) {
  const bool dense = o->method == DPT_SO_NEWTON || o->method == DPT_SO_BFGS;
  DPT_CHECK(!dense || (int64_t)n <= o->dense_limit, DPT_ERR_INPUT,
            "optimizer.type = %s: the model has %zu parameters, more than optimizer.dense_limit = %lld "
            "(use lbfgs or newton_cg, or raise the limit)",
            dpt_so_method_name(o->method), n, (long long)o->dense_limit);
  return DPT_OK;
}

/* ---- dense directions ----------------------------------------------------------------- */

dpt_status dpt_so_newton_direction(const double *H, const double *g, size_t n, double damping, double *p,
                                   double *lambda_used) {
  dpt_status st = DPT_OK;
  double *L = NULL;
  DPT_TRY(dpt_alloc(n * n, sizeof *L, "Newton factor", &L));
  double hmax = 0.0;
  for (size_t i = 0; i < n; i++) hmax = fmax(hmax, fabs(H[i * n + i]));
  double lambda = damping;
  for (int tries = 0;; tries++) {
    DPT_TRY_CHECK(tries < 100, DPT_ERR_NUMERIC, "Newton: no damping up to %g makes the Hessian positive definite",
                  lambda);
    memcpy(L, H, n * n * sizeof *L);
    for (size_t i = 0; i < n; i++) L[i * n + i] += lambda;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, L, (lapack_int)n) == 0) break;
    lambda = fmax(10.0 * lambda, 1e-8 * (1.0 + hmax));
  }
  for (size_t i = 0; i < n; i++) p[i] = -g[i];
  DPT_TRY_CHECK(LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, 1, L, (lapack_int)n, p, 1) == 0,
                DPT_ERR_NUMERIC, "Newton: dpotrs failed");
  if (lambda_used) *lambda_used = lambda;
done:
  dpt_free(&L);
  return st;
}

/* p = -V diag(1/(|w|+damping)) V' g for the symmetric eigen-decomposition of H (n x n). */
dpt_status dpt_so_sfn_direction(const double *H, const double *g, size_t n, double damping, double *p) {
  dpt_status st = DPT_OK;
  double *V = NULL, *w = NULL, *t = NULL;
  DPT_TRY(dpt_alloc(n * n, sizeof *V, "SFN eigenvectors", &V));
  DPT_TRY(dpt_alloc(n, sizeof *w, "SFN eigenvalues", &w));
  DPT_TRY(dpt_alloc(n, sizeof *t, "SFN work", &t));
  memcpy(V, H, n * n * sizeof *V);
  DPT_TRY_CHECK(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)n, V, (lapack_int)n, w) == 0, DPT_ERR_NUMERIC,
                "saddle-free Newton: dsyevd did not converge");
  /* t = V' g, scaled by 1/(|w|+damping); p = -V t. */
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)n, 1.0, V, (int)n, g, 1, 0.0, t, 1);
  for (size_t i = 0; i < n; i++) {
    const double den = fabs(w[i]) + damping;
    t[i] = den > 0.0 ? t[i] / den : 0.0;
  }
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)n, -1.0, V, (int)n, t, 1, 0.0, p, 1);
done:
  dpt_free(&V);
  dpt_free(&w);
  dpt_free(&t);
  return st;
}

/* ---- solver --------------------------------------------------------------------------- */

struct dpt_so_solver {
  dpt_so_options o;
  size_t n;
  double *d;      /* [n] current direction */
  double *g_prev; /* [n] previous gradient (cg) */
  double *hinv;   /* [n, n] bfgs inverse Hessian, or NULL */
  double *S, *Y;  /* [m, n] lbfgs pairs, or NULL */
  double *rho;    /* [m] 1/(s'y) */
  int64_t len, head, iter;
  /* scratch, not state */
  double *x1, *g, *g1, *t1, *t2, *H, *Q, *T, *al;
};

static double dot(size_t n, const double *a, const double *b) { return cblas_ddot((int)n, a, 1, b, 1); }
static double nrm(size_t n, const double *a) { return cblas_dnrm2((int)n, a, 1); }

dpt_status dpt_so_create(const dpt_so_options *o, size_t n, dpt_so_solver **out) {
  dpt_status st = DPT_OK;
  dpt_so_solver *s = NULL;
  DPT_TRY_CHECK(n > 0, DPT_ERR_INPUT, "second-order solver: no variables");
  DPT_TRY(dpt_so_options_check_size(o, n));
  DPT_TRY(dpt_calloc(1, sizeof *s, "second-order solver", &s));
  s->o = *o;
  s->n = n;
  DPT_TRY(dpt_calloc(n, sizeof(double), "direction", &s->d));
  DPT_TRY(dpt_calloc(n, sizeof(double), "previous gradient", &s->g_prev));
  DPT_TRY(dpt_calloc(n, sizeof(double), "point", &s->x1));
  DPT_TRY(dpt_calloc(n, sizeof(double), "gradient", &s->g));
  DPT_TRY(dpt_calloc(n, sizeof(double), "gradient", &s->g1));
  DPT_TRY(dpt_calloc(n, sizeof(double), "work", &s->t1));
  DPT_TRY(dpt_calloc(n, sizeof(double), "work", &s->t2));
  if (o->method == DPT_SO_BFGS) {
    DPT_TRY(dpt_calloc(n * n, sizeof(double), "BFGS inverse Hessian", &s->hinv));
    for (size_t i = 0; i < n; i++) s->hinv[i * n + i] = 1.0;
  }
  if (o->method == DPT_SO_LBFGS) {
    DPT_TRY(dpt_calloc((size_t)o->history * n, sizeof(double), "L-BFGS s history", &s->S));
    DPT_TRY(dpt_calloc((size_t)o->history * n, sizeof(double), "L-BFGS y history", &s->Y));
    DPT_TRY(dpt_calloc((size_t)o->history, sizeof(double), "L-BFGS rho", &s->rho));
    DPT_TRY(dpt_calloc((size_t)o->history, sizeof(double), "L-BFGS work", &s->al));
  }
  const bool dense_h = o->method == DPT_SO_NEWTON || (o->method == DPT_SO_SFN && (int64_t)n <= o->dense_limit);
  if (dense_h) DPT_TRY(dpt_calloc(n * n, sizeof(double), "Hessian", &s->H));
  if (o->method == DPT_SO_SFN && !dense_h) {
    const size_t k = (size_t)o->lanczos_k < n ? (size_t)o->lanczos_k : n;
    DPT_TRY(dpt_calloc((k + 1) * n, sizeof(double), "Lanczos basis", &s->Q));
    DPT_TRY(dpt_calloc(k * k, sizeof(double), "Lanczos tridiagonal", &s->T));
  }
  *out = s;
  return DPT_OK;
done:
  dpt_so_destroy(&s);
  return st;
}

void dpt_so_destroy(dpt_so_solver **ps) {
  dpt_so_solver *s = *ps;
  if (!s) return;
  double **bufs[] = {&s->d, &s->g_prev, &s->hinv, &s->S, &s->Y, &s->rho, &s->x1, &s->g,
                     &s->g1, &s->t1, &s->t2, &s->H, &s->Q, &s->T, &s->al};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dpt_free(bufs[i]);
  dpt_free(ps);
}

const double *dpt_so_bfgs_matrix(const dpt_so_solver *s) { return s->hinv; }

int dpt_so_num_states(const dpt_so_solver *s) {
  if (s->o.method == DPT_SO_BFGS) return 4;
  if (s->o.method == DPT_SO_LBFGS) return 8;
  return 3;
}

void dpt_so_state(dpt_so_solver *s, int i, dpt_state_info *info) {
  const size_t n = s->n, m = (size_t)s->o.history;
  const dpt_state_info common[] = {{"direction", s->d, n, DPT_STATE_F64},
                                   {"g_prev", s->g_prev, n, DPT_STATE_F64},
                                   {"iter", &s->iter, 1, DPT_STATE_I64}};
  if (i < 3) {
    *info = common[i];
  } else if (s->o.method == DPT_SO_BFGS) {
    *info = (dpt_state_info){"hinv", s->hinv, n * n, DPT_STATE_F64};
  } else {
    const dpt_state_info lb[] = {{"lbfgs_s", s->S, m * n, DPT_STATE_F64},
                                 {"lbfgs_y", s->Y, m * n, DPT_STATE_F64},
                                 {"lbfgs_rho", s->rho, m, DPT_STATE_F64},
                                 {"lbfgs_len", &s->len, 1, DPT_STATE_I64},
                                 {"lbfgs_head", &s->head, 1, DPT_STATE_I64}};
    *info = lb[i - 3];
  }
}

/* H [n, n] from n products H e_i, symmetrised. */
static dpt_status dense_hessian(dpt_so_solver *s, dpt_objective *obj, const double *x) {
  const size_t n = s->n;
  for (size_t i = 0; i < n; i++) {
    memset(s->t1, 0, n * sizeof *s->t1);
    s->t1[i] = 1.0;
    DPT_CALL(dpt_objective_hvp(obj, x, s->t1, s->H + i * n));
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++) {
      const double a = 0.5 * (s->H[i * n + j] + s->H[j * n + i]);
      s->H[i * n + j] = s->H[j * n + i] = a;
    }
  return DPT_OK;
}

/* Truncated CG on (H + damping I) p = -g (Newton-CG). */
static dpt_status newton_cg_direction(dpt_so_solver *s, dpt_objective *obj, const double *x, const double *g,
                                      double *p) {
  const size_t n = s->n;
  const double gn = nrm(n, g), eta = fmin(0.5, sqrt(gn)) * gn;
  double *r = s->t1, *q = s->g1, *hq = s->t2; /* g1 is free until the line search */
  memset(p, 0, n * sizeof *p);
  for (size_t i = 0; i < n; i++) r[i] = -g[i]; /* residual of (H) p = -g at p = 0 */
  memcpy(q, r, n * sizeof *q);
  double rr = dot(n, r, r);
  const size_t max_it = n < 250 ? n : 250;
  for (size_t it = 0; it < max_it; it++) {
    DPT_CALL(dpt_objective_hvp(obj, x, q, hq));
    for (size_t i = 0; i < n; i++) hq[i] += s->o.damping * q[i];
    const double qhq = dot(n, q, hq);
    if (qhq <= 1e-300 * dot(n, q, q) || qhq <= 0.0) {
      if (it == 0) memcpy(p, r, n * sizeof *p); /* negative curvature at once: steepest descent */
      return DPT_OK;
    }
    const double a = rr / qhq;
    for (size_t i = 0; i < n; i++) {
      p[i] += a * q[i];
      r[i] -= a * hq[i];
    }
    const double rr1 = dot(n, r, r);
    if (sqrt(rr1) <= eta) return DPT_OK;
    for (size_t i = 0; i < n; i++) q[i] = r[i] + (rr1 / rr) * q[i];
    rr = rr1;
  }
  return DPT_OK;
}

/* Lanczos with full reorthogonalisation: k steps from q_0 = g/|g| give H ~ Q T Q' on the
 * Krylov subspace, which contains g; p = -Q U (|W| + damping)^-1 U' Q' g with T = U W U'. */
static dpt_status sfn_lanczos_direction(dpt_so_solver *s, dpt_objective *obj, const double *x, const double *g,
                                        double *p) {
  dpt_status st = DPT_OK;
  const size_t n = s->n, ld = (size_t)s->o.lanczos_k < n ? (size_t)s->o.lanczos_k : n;
  double *Q = s->Q, *T = s->T, *w = NULL;
  DPT_TRY(dpt_alloc(ld, sizeof *w, "Lanczos eigenvalues", &w));
  memset(T, 0, ld * ld * sizeof *T);
  const double gn = nrm(n, g);
  for (size_t i = 0; i < n; i++) Q[i] = g[i] / gn;
  size_t k = 0;
  while (k < ld) {
    double *q = Q + k * n, *v = Q + (k + 1) * n;
    DPT_TRY(dpt_objective_hvp(obj, x, q, v));
    T[k * ld + k] = dot(n, q, v);
    k++;
    if (k == ld) break;
    for (int pass = 0; pass < 2; pass++) /* full reorthogonalisation, twice */
      for (size_t j = 0; j < k; j++) cblas_daxpy((int)n, -dot(n, Q + j * n, v), Q + j * n, 1, v, 1);
    const double beta = nrm(n, v);
    if (beta <= 1e-10 * fabs(T[0]) + 1e-300) break; /* invariant subspace */
    cblas_dscal((int)n, 1.0 / beta, v, 1);
    T[(k - 1) * ld + k] = T[k * ld + k - 1] = beta;
  }
  DPT_TRY_CHECK(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', (lapack_int)k, T, (lapack_int)ld, w) == 0,
                DPT_ERR_NUMERIC, "saddle-free Newton: Lanczos eigen-decomposition failed");
  /* Q'g = gn e_0, so U'Q'g = gn U[0, :]. */
  memset(p, 0, n * sizeof *p);
  for (size_t j = 0; j < k; j++) {
    double coef = 0.0;
    for (size_t i = 0; i < k; i++) coef += T[j * ld + i] * gn * T[0 * ld + i] / (fabs(w[i]) + s->o.damping);
    cblas_daxpy((int)n, -coef, Q + j * n, 1, p, 1);
  }
done:
  dpt_free(&w);
  return st;
}

/* L-BFGS two-loop recursion: p = -H g with H0 = (s'y / y'y) I from the newest pair. */
static void lbfgs_direction(dpt_so_solver *s, const double *g, double *p) {
  const size_t n = s->n;
  const int64_t m = s->o.history;
  double *al = s->al;
  for (size_t i = 0; i < n; i++) p[i] = -g[i];
  for (int64_t k = 0; k < s->len; k++) { /* newest to oldest */
    const size_t j = (size_t)((s->head - 1 - k + m) % m);
    al[k] = s->rho[j] * dot(n, s->S + j * n, p);
    cblas_daxpy((int)n, -al[k], s->Y + j * n, 1, p, 1);
  }
  if (s->len > 0) {
    const size_t j = (size_t)((s->head - 1 + m) % m);
    cblas_dscal((int)n, 1.0 / (s->rho[j] * dot(n, s->Y + j * n, s->Y + j * n)), p, 1);
  }
  for (int64_t k = s->len - 1; k >= 0; k--) { /* oldest to newest */
    const size_t j = (size_t)((s->head - 1 - k + m) % m);
    const double b = s->rho[j] * dot(n, s->Y + j * n, p);
    cblas_daxpy((int)n, al[k] - b, s->S + j * n, 1, p, 1);
  }
}

dpt_status dpt_so_minimize(dpt_so_solver *s, dpt_objective *obj, double *x, dpt_so_log_fn log, void *log_ctx,
                           dpt_so_result *res) {
  const size_t n = s->n;
  const dpt_so_options *o = &s->o;
  DPT_CHECK(obj->n == n, DPT_ERR_INTERNAL, "second-order: objective has %zu variables, solver %zu", obj->n, n);
  const int64_t evals0 = obj->n_evals, hvps0 = obj->n_hvps;
  double *g = s->g, *x1 = s->x1, *g1 = s->g1, *d = s->d;
  double f, f1;
  DPT_CALL(dpt_objective_eval(obj, x, &f, g));
  const char *reason = "iterations";
  int64_t it = 0;
  for (; it < o->max_iters; it++) {
    const double gn = nrm(n, g);
    if (gn <= o->tol_grad) {
      reason = "gradient";
      break;
    }
    if (obj->n_evals - evals0 >= o->max_evals) {
      reason = "evaluations";
      break;
    }
    /* Direction. */
    double alpha0 = 1.0;
    switch (o->method) {
    case DPT_SO_CG: {
      const double gg = dot(n, g, g);
      double beta = 0.0;
      if (s->iter > 0 && s->iter % (int64_t)n != 0) { /* state: g_prev, d (a run can continue) */
        const double prev_gg = dot(n, s->g_prev, s->g_prev);
        if (o->cg_variant == DPT_CG_FR) beta = gg / prev_gg;
        else {
          beta = (gg - dot(n, g, s->g_prev)) / prev_gg;
          if (o->cg_variant == DPT_CG_PRPLUS) beta = fmax(beta, 0.0);
        }
      }
      for (size_t i = 0; i < n; i++) d[i] = -g[i] + beta * d[i];
      if (dot(n, g, d) >= 0.0) /* lost descent: restart */
        for (size_t i = 0; i < n; i++) d[i] = -g[i];
      memcpy(s->g_prev, g, n * sizeof *g);
      alpha0 = fmin(1.0, 1.0 / nrm(n, d));
      break;
    }
    case DPT_SO_NEWTON:
      DPT_CALL(dense_hessian(s, obj, x));
      DPT_CALL(dpt_so_newton_direction(s->H, g, n, o->damping, d, NULL));
      break;
    case DPT_SO_NEWTON_CG:
      DPT_CALL(newton_cg_direction(s, obj, x, g, d));
      break;
    case DPT_SO_BFGS:
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)n, -1.0, s->hinv, (int)n, g, 1, 0.0, d, 1);
      if (s->iter == 0) alpha0 = fmin(1.0, 1.0 / gn);
      break;
    case DPT_SO_LBFGS:
      lbfgs_direction(s, g, d);
      if (s->len == 0) alpha0 = fmin(1.0, 1.0 / gn);
      break;
    case DPT_SO_SFN:
      if (s->H) {
        DPT_CALL(dense_hessian(s, obj, x));
        DPT_CALL(dpt_so_sfn_direction(s->H, g, n, o->damping, d));
      } else {
        DPT_CALL(sfn_lanczos_direction(s, obj, x, g, d));
      }
      break;
    }
    if (!(dot(n, g, d) < 0.0)) /* safeguard for every method: fall back to steepest descent */
      for (size_t i = 0; i < n; i++) d[i] = -g[i];
    /* Step. */
    const int64_t left = o->max_evals - (obj->n_evals - evals0);
    const int ls_evals = left < 40 ? (int)left : 40;
    double alpha;
    bool found;
    if (o->line_search == DPT_LS_WOLFE)
      DPT_CALL(dpt_linesearch_wolfe(obj, x, f, g, d, alpha0, 1e10 * alpha0, o->c1, o->c2, ls_evals, x1, &f1, g1,
                                    &alpha, &found));
    else
      DPT_CALL(dpt_linesearch_armijo(obj, x, f, g, d, alpha0, o->c1, ls_evals, x1, &f1, g1, &alpha, &found));
    if (alpha == 0.0) {
      reason = "line search";
      break;
    }
    /* Curvature pairs: s = x1 - x, y = g1 - g. */
    double *sv = s->t1, *yv = s->t2;
    for (size_t i = 0; i < n; i++) {
      sv[i] = x1[i] - x[i];
      yv[i] = g1[i] - g[i];
    }
    const double sy = dot(n, sv, yv), sn = nrm(n, sv), yn = nrm(n, yv);
    if (o->method == DPT_SO_BFGS && sy > 1e-10 * sn * yn) {
      double *H = s->hinv, *hy = d; /* d is recomputed next iteration */
      if (s->iter == 0) { /* N&W (6.20): scale H0 = (s'y / y'y) I before the first update */
        const double gamma = sy / (yn * yn);
        for (size_t i = 0; i < n * n; i++) H[i] *= gamma;
      }
      const double rho = 1.0 / sy;
      cblas_dsymv(CblasRowMajor, CblasLower, (int)n, 1.0, H, (int)n, yv, 1, 0.0, hy, 1);
      const double yhy = dot(n, yv, hy);
      /* H += -rho (Hy s' + s y'H) + (rho^2 y'Hy + rho) s s' */
      cblas_dger(CblasRowMajor, (int)n, (int)n, -rho, hy, 1, sv, 1, H, (int)n);
      cblas_dger(CblasRowMajor, (int)n, (int)n, -rho, sv, 1, hy, 1, H, (int)n);
      cblas_dger(CblasRowMajor, (int)n, (int)n, rho * rho * yhy + rho, sv, 1, sv, 1, H, (int)n);
    }
    if (o->method == DPT_SO_LBFGS && sy > 1e-10 * sn * yn) {
      const size_t m = (size_t)o->history, j = (size_t)s->head;
      memcpy(s->S + j * n, sv, n * sizeof *sv);
      memcpy(s->Y + j * n, yv, n * sizeof *yv);
      s->rho[j] = 1.0 / sy;
      s->head = (s->head + 1) % (int64_t)m;
      if (s->len < (int64_t)m) s->len++;
    }
    const double rel = fabs(f - f1) / fmax(fmax(fabs(f), fabs(f1)), 1e-300);
    memcpy(x, x1, n * sizeof *x);
    memcpy(g, g1, n * sizeof *g);
    f = f1;
    s->iter++;
    if (log) {
      const dpt_so_iter li = {s->iter, f, nrm(n, g), alpha, sn,
                              obj->n_evals - evals0, obj->n_hvps - hvps0};
      log(log_ctx, &li);
    }
    if (nrm(n, g) <= o->tol_grad) {
      it++;
      reason = "gradient";
      break;
    }
    if (rel <= o->tol_rel) {
      it++;
      reason = "relative change";
      break;
    }
  }
  *res = (dpt_so_result){it, obj->n_evals - evals0, obj->n_hvps - hvps0, f, nrm(n, g), reason};
  return DPT_OK;
}

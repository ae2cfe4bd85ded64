/* second_order.c — the minimisation loop and the search directions (second_order.h).
 *
 * One iteration: d_k from the method, a line search along d_k (or a unit step), then the
 * state update from s_k = x_{k+1} − x_k, y_k = g_{k+1} − g_k. A direction that is not a
 * descent direction (g·d ≥ 0) or a failed line search restarts the method with d = −g;
 * a failed search along −g stops the run. */
#include "dptrain/second_order.h"

#include <math.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

struct dpt_so {
  dpt_so_options opt;
  size_t n;
  int64_t iter;                /* iterations taken in total */
  double *x_prev, *g_prev, *d; /* [n] */
  double *Hinv;                /* bfgs [n*n], row-major, symmetric */
  double *S, *Y, *rho;         /* lbfgs [m*n], [m*n], [m] */
  int64_t pairs, head;         /* lbfgs: pairs stored, slot of the next pair */
  int64_t since_restart;       /* cg: iterations since the last restart */
  bool have_prev;              /* x_prev/g_prev/d valid */
  double f_prev;
  double *H, *W, *ev;          /* newton/sfn dense [n*n], [n*n], [n] */
  double *V;                   /* sfn Lanczos basis [(k+1)*n] */
  double *tmp;                 /* [n] scratch */
  /* Every buffer an iteration needs is allocated here, in dpt_so_create (whose status the
   * caller agrees across ranks): an allocation failing on one rank in the middle of an
   * iteration would leave the others waiting in the objective's collectives. */
  double *work;                /* [5n]: the loop's g, x_new, g_new, s, y */
  double *ls_work;             /* wolfe line search [2n] */
  double *cg_work;             /* newton_cg r, p, Hp [3n] */
  lapack_int *ipiv;            /* newton pivots [n] */
  double *lz_T, *lz_theta;     /* sfn Lanczos T [k*k], eigenvalues and coefficients [2k] */
  int nstates;
  dpt_state_info states[12];
  size_t bytes;                /* of the buffers above (so_calloc) */
};

static const char *const method_label[] = {"cg", "newton", "newton_cg", "bfgs", "lbfgs", "sfn", "gd"};

static bool sfn_dense(const dpt_so *s) { return (int64_t)s->n <= s->opt.dense_limit; }

/* dpt_calloc for the solver's buffers, counting their bytes (dpt_so_memory). */
static dpt_status so_calloc(dpt_so *s, size_t count, size_t size, const char *what, void *out) {
  DPT_CALL(dpt_calloc(count, size, what, out));
  s->bytes += count * size;
  return DPT_OK;
}

dpt_status dpt_so_create(const dpt_so_options *opt, size_t n, dpt_so **out) {
  dpt_status st = DPT_OK;
  dpt_so *s = NULL;
  *out = NULL;
  DPT_CALL(dpt_ls_params_check(&opt->ls, opt->line_search));
  DPT_CHECK(n >= 1, DPT_ERR_INPUT, "second-order %s: no parameters to optimise", method_label[opt->method]);
  bool dense = opt->method == DPT_SO_NEWTON || opt->method == DPT_SO_BFGS;
  DPT_CHECK(!dense || (int64_t)n <= opt->dense_limit, DPT_ERR_INPUT,
            "optimizer.type = %s: the model has %zu parameters, more than optimizer.dense_limit = %lld (use "
            "newton_cg or lbfgs, or raise optimizer.dense_limit)",
            method_label[opt->method], n, (long long)opt->dense_limit);
  DPT_CHECK(opt->method != DPT_SO_LBFGS || opt->history >= 1, DPT_ERR_INPUT, "optimizer.history = %d: expected >= 1",
            opt->history);
  DPT_TRY(dpt_calloc(1, sizeof *s, "second-order solver", &s));
  s->opt = *opt;
  s->n = n;
  DPT_TRY(so_calloc(s, n, sizeof(double), "x_prev", &s->x_prev));
  DPT_TRY(so_calloc(s, n, sizeof(double), "g_prev", &s->g_prev));
  DPT_TRY(so_calloc(s, n, sizeof(double), "search direction", &s->d));
  DPT_TRY(so_calloc(s, n, sizeof(double), "second-order scratch", &s->tmp));
  DPT_TRY(so_calloc(s, 5 * n, sizeof(double), "second-order iterates", &s->work));
  if (opt->line_search == DPT_LS_WOLFE)
    DPT_TRY(so_calloc(s, 2 * n, sizeof(double), "line search scratch", &s->ls_work));
  if (opt->method == DPT_SO_NEWTON_CG) DPT_TRY(so_calloc(s, 3 * n, sizeof(double), "Newton-CG vectors", &s->cg_work));
  if (opt->method == DPT_SO_NEWTON) DPT_TRY(so_calloc(s, n, sizeof(lapack_int), "pivots", &s->ipiv));
  if (opt->method == DPT_SO_BFGS) {
    DPT_TRY(so_calloc(s, n * n, sizeof(double), "BFGS inverse Hessian", &s->Hinv));
    for (size_t i = 0; i < n; ++i) s->Hinv[i * n + i] = 1.0;
  }
  if (opt->method == DPT_SO_LBFGS) {
    size_t m = (size_t)opt->history;
    DPT_TRY(so_calloc(s, m * n, sizeof(double), "L-BFGS S", &s->S));
    DPT_TRY(so_calloc(s, m * n, sizeof(double), "L-BFGS Y", &s->Y));
    DPT_TRY(so_calloc(s, m, sizeof(double), "L-BFGS rho", &s->rho));
  }
  if (opt->method == DPT_SO_NEWTON || (opt->method == DPT_SO_SFN && sfn_dense(s))) {
    DPT_TRY(so_calloc(s, n * n, sizeof(double), "dense Hessian", &s->H));
    DPT_TRY(so_calloc(s, n * n, sizeof(double), "dense Hessian factor", &s->W));
    DPT_TRY(so_calloc(s, n, sizeof(double), "Hessian eigenvalues", &s->ev));
  }
  if (opt->method == DPT_SO_SFN && !sfn_dense(s)) {
    DPT_CHECK(opt->lanczos_k >= 1, DPT_ERR_INPUT, "optimizer.lanczos_k = %d: expected >= 1", opt->lanczos_k);
    DPT_TRY(so_calloc(s, ((size_t)opt->lanczos_k + 1) * n, sizeof(double), "Lanczos basis", &s->V));
    size_t k = (size_t)opt->lanczos_k < n ? (size_t)opt->lanczos_k : n;
    DPT_TRY(so_calloc(s, k * k, sizeof(double), "Lanczos T", &s->lz_T));
    DPT_TRY(so_calloc(s, 2 * k, sizeof(double), "Lanczos eigenvalues", &s->lz_theta));
  }
  /* state by name */
  int k = 0;
  s->states[k++] = (dpt_state_info){"iter", &s->iter, 1, DPT_STATE_I64};
  s->states[k++] = (dpt_state_info){"x_prev", s->x_prev, n, DPT_STATE_F64};
  s->states[k++] = (dpt_state_info){"g_prev", s->g_prev, n, DPT_STATE_F64};
  if (opt->method == DPT_SO_CG) s->states[k++] = (dpt_state_info){"d", s->d, n, DPT_STATE_F64};
  if (opt->method == DPT_SO_BFGS) s->states[k++] = (dpt_state_info){"Hinv", s->Hinv, n * n, DPT_STATE_F64};
  if (opt->method == DPT_SO_LBFGS) {
    size_t m = (size_t)opt->history;
    s->states[k++] = (dpt_state_info){"S", s->S, m * n, DPT_STATE_F64};
    s->states[k++] = (dpt_state_info){"Y", s->Y, m * n, DPT_STATE_F64};
    s->states[k++] = (dpt_state_info){"rho", s->rho, m, DPT_STATE_F64};
    s->states[k++] = (dpt_state_info){"pairs", &s->pairs, 1, DPT_STATE_I64};
    s->states[k++] = (dpt_state_info){"head", &s->head, 1, DPT_STATE_I64};
  }
  s->nstates = k;
  *out = s;
  s = NULL;
done:
  dpt_so_destroy(&s);
  return st;
}

void dpt_so_destroy(dpt_so **sp) {
  dpt_so *s = *sp;
  if (!s) return;
  dpt_free(&s->x_prev);
  dpt_free(&s->g_prev);
  dpt_free(&s->d);
  dpt_free(&s->tmp);
  dpt_free(&s->Hinv);
  dpt_free(&s->S);
  dpt_free(&s->Y);
  dpt_free(&s->rho);
  dpt_free(&s->H);
  dpt_free(&s->W);
  dpt_free(&s->ev);
  dpt_free(&s->V);
  dpt_free(&s->work);
  dpt_free(&s->ls_work);
  dpt_free(&s->cg_work);
  dpt_free(&s->ipiv);
  dpt_free(&s->lz_T);
  dpt_free(&s->lz_theta);
  dpt_free(sp);
}

int dpt_so_num_states(const dpt_so *s) { return s->nstates; }
size_t dpt_so_memory(const dpt_so *s) { return s->bytes; }
void dpt_so_state(dpt_so *s, int i, dpt_state_info *info) { *info = s->states[i]; }
const double *dpt_so_bfgs_inverse(const dpt_so *s) { return s->Hinv; }

/* ---- directions ----------------------------------------------------------------------- */

/* H [n*n] = ∇²f(x) column by column from n products H e_j, then symmetrised (H + Hᵀ)/2. */
static dpt_status dense_hessian(dpt_so *s, dpt_objective *o, const double *x) {
  size_t n = s->n;
  memset(s->tmp, 0, n * sizeof *s->tmp);
  for (size_t j = 0; j < n; ++j) {
    s->tmp[j] = 1.0;
    DPT_CALL(dpt_objective_hvp(o, x, s->tmp, s->W)); /* column j */
    s->tmp[j] = 0.0;
    for (size_t i = 0; i < n; ++i) s->H[i * n + j] = s->W[i];
  }
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) s->H[i * n + j] = s->H[j * n + i] = 0.5 * (s->H[i * n + j] + s->H[j * n + i]);
  return DPT_OK;
}

/* Newton: (H + λI) d = −g with Cholesky; λ starts at optimizer.damping and grows
 * (Levenberg) until dpotrf succeeds. line_search = none with damping 0: the classical
 * Newton step H d = −g by the symmetric-indefinite solver dsysv (any nonsingular H). */
static dpt_status newton_direction(dpt_so *s, dpt_objective *o, const double *x, const double *g) {
  size_t n = s->n;
  int ni;
  DPT_CALL(dpt_cast_int((int64_t)n, "number of parameters", &ni));
  DPT_CALL(dense_hessian(s, o, x));
  for (size_t i = 0; i < n; ++i) s->d[i] = -g[i];
  if (s->opt.line_search == DPT_LS_NONE && s->opt.damping == 0.0) {
    memcpy(s->W, s->H, n * n * sizeof *s->W);
    lapack_int info = LAPACKE_dsysv(LAPACK_ROW_MAJOR, 'U', ni, 1, s->W, ni, s->ipiv, s->d, 1);
    DPT_CHECK(info == 0, DPT_ERR_NUMERIC, "newton: the Hessian is singular (dsysv info %d); set optimizer.damping > 0",
              (int)info);
    return DPT_OK;
  }
  double hmax = 0.0;
  for (size_t i = 0; i < n * n; ++i) hmax = fmax(hmax, fabs(s->H[i]));
  double lambda = s->opt.damping;
  for (int tries = 0; tries < 80; ++tries) {
    memcpy(s->W, s->H, n * n * sizeof *s->W);
    for (size_t i = 0; i < n; ++i) s->W[i * n + i] += lambda;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', ni, s->W, ni) == 0) {
      lapack_int info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'U', ni, 1, s->W, ni, s->d, 1);
      DPT_CHECK(info == 0, DPT_ERR_NUMERIC, "newton: dpotrs failed (info %d)", (int)info);
      return DPT_OK;
    }
    lambda = fmax(10.0 * lambda, 1e-8 * fmax(1.0, hmax));
  }
  return dpt_error_set(DPT_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                       "newton: H + λI not positive definite up to λ = %g (non-finite Hessian?)", lambda);
}

/* Saddle-free Newton, dense: H = QΛQᵀ (dsyevd), d = −Q (|Λ| + λI)⁻¹ Qᵀ g. */
static dpt_status sfn_dense_direction(dpt_so *s, dpt_objective *o, const double *x, const double *g) {
  size_t n = s->n;
  int ni;
  DPT_CALL(dpt_cast_int((int64_t)n, "number of parameters", &ni));
  DPT_CALL(dense_hessian(s, o, x));
  memcpy(s->W, s->H, n * n * sizeof *s->W);
  lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', ni, s->W, ni, s->ev);
  DPT_CHECK(info == 0, DPT_ERR_NUMERIC, "sfn: dsyevd failed (info %d)", (int)info);
  double emax = 0.0;
  for (size_t i = 0; i < n; ++i) emax = fmax(emax, fabs(s->ev[i]));
  double floor_ = 1e-10 * fmax(1.0, emax);
  /* tmp = Qᵀ g scaled by 1/(|λ_i| + damping); columns of W are eigenvectors */
  cblas_dgemv(CblasRowMajor, CblasTrans, ni, ni, 1.0, s->W, ni, g, 1, 0.0, s->tmp, 1);
  for (size_t i = 0; i < n; ++i) s->tmp[i] /= fmax(fabs(s->ev[i]) + s->opt.damping, floor_);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, ni, ni, -1.0, s->W, ni, s->tmp, 1, 0.0, s->d, 1);
  return DPT_OK;
}

/* Saddle-free Newton in a Krylov subspace: k Lanczos steps on H from v₁ = g/‖g‖ with full
 * reorthogonalisation give H V ≈ V T; T = UΘUᵀ; d = −‖g‖ V U (|Θ| + λI)⁻¹ Uᵀ e₁. */
static dpt_status sfn_lanczos_direction(dpt_so *s, dpt_objective *o, const double *x, const double *g) {
  size_t n = s->n;
  int k = s->opt.lanczos_k;
  if ((int64_t)k > (int64_t)n) k = (int)n;
  double gn = cblas_dnrm2((int)n, g, 1);
  double *T = s->lz_T, *theta = s->lz_theta;
  memset(T, 0, (size_t)k * (size_t)k * sizeof *T);
  memset(theta, 0, 2 * (size_t)k * sizeof *theta);
  double *c = theta + k; /* [k] coefficients of d in the basis V */
  for (size_t i = 0; i < n; ++i) s->V[i] = g[i] / gn;
  int m = 0; /* steps done */
  for (int j = 0; j < k; ++j) {
    double *v = s->V + (size_t)j * n, *w = s->V + (size_t)(j + 1) * n;
    DPT_CALL(dpt_objective_hvp(o, x, v, w));
    m = j + 1;
    double alpha = cblas_ddot((int)n, w, 1, v, 1);
    T[j * k + j] = alpha;
    /* full reorthogonalisation (twice: "twice is enough") against v_0..v_j */
    for (int pass = 0; pass < 2; ++pass)
      for (int i = 0; i <= j; ++i) {
        double *vi = s->V + (size_t)i * n;
        cblas_daxpy((int)n, -cblas_ddot((int)n, w, 1, vi, 1), vi, 1, w, 1);
      }
    double beta = cblas_dnrm2((int)n, w, 1);
    if (j + 1 == k || beta <= 1e-10 * fmax(1.0, fabs(alpha))) break; /* invariant subspace */
    T[j * k + j + 1] = T[(j + 1) * k + j] = beta;
    cblas_dscal((int)n, 1.0 / beta, w, 1);
  }
  /* eigen-decomposition of the leading m×m block of T (lda k) */
  lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', m, T, k, theta);
  DPT_CHECK(info == 0, DPT_ERR_NUMERIC, "sfn: dsyevd of the Lanczos matrix failed (info %d)", (int)info);
  double emax = 0.0;
  for (int i = 0; i < m; ++i) emax = fmax(emax, fabs(theta[i]));
  double floor_ = 1e-10 * fmax(1.0, emax);
  /* c = U (|Θ| + λ)⁻¹ Uᵀ e₁ ·(−‖g‖), then d = V c */
  for (int i = 0; i < m; ++i) {
    double w1 = T[0 * k + i] / fmax(fabs(theta[i]) + s->opt.damping, floor_);
    for (int a = 0; a < m; ++a) c[a] += T[a * k + i] * w1;
  }
  memset(s->d, 0, n * sizeof *s->d);
  for (int a = 0; a < m; ++a) cblas_daxpy((int)n, -gn * c[a], s->V + (size_t)a * n, 1, s->d, 1);
  return DPT_OK;
}

/* Newton-CG: truncated CG on (H + λI) p = −g, stopping at ‖r‖ ≤ min(0.5, √‖g‖)‖g‖ (N&W
 * Alg. 7.1), at negative curvature (then p, or −g on the first inner step), or after
 * min(n, 250) inner steps. */
static dpt_status newton_cg_direction(dpt_so *s, dpt_objective *o, const double *x, const double *g) {
  size_t n = s->n;
  double *r = s->cg_work, *p = r + n, *hp = p + n;
  double gn = cblas_dnrm2((int)n, g, 1), eps = fmin(0.5, sqrt(gn)) * gn;
  memset(s->d, 0, n * sizeof *s->d);
  for (size_t i = 0; i < n; ++i) r[i] = -g[i], p[i] = -g[i];
  double rr = gn * gn;
  int maxit = n < 250 ? (int)n : 250;
  for (int j = 0; j < maxit; ++j) {
    DPT_CALL(dpt_objective_hvp(o, x, p, hp));
    cblas_daxpy((int)n, s->opt.damping, p, 1, hp, 1);
    double php = cblas_ddot((int)n, p, 1, hp, 1);
    if (php <= 0) {
      if (j == 0)
        for (size_t i = 0; i < n; ++i) s->d[i] = -g[i];
      break;
    }
    double a = rr / php;
    cblas_daxpy((int)n, a, p, 1, s->d, 1);
    cblas_daxpy((int)n, -a, hp, 1, r, 1);
    double rr_new = cblas_ddot((int)n, r, 1, r, 1);
    if (sqrt(rr_new) <= eps) break;
    double beta = rr_new / rr;
    for (size_t i = 0; i < n; ++i) p[i] = r[i] + beta * p[i];
    rr = rr_new;
  }
  return DPT_OK;
}

/* L-BFGS two-loop recursion (N&W Alg. 7.4): d = −H_k g with H_k⁰ = γI, γ = sᵀy/yᵀy of the
 * newest pair. */
static void lbfgs_direction(dpt_so *s, const double *g) {
  size_t n = s->n;
  int m = s->opt.history;
  int pairs = (int)s->pairs;
  double alpha[pairs > 0 ? pairs : 1];
  for (size_t i = 0; i < n; ++i) s->d[i] = -g[i];
  for (int t = 0; t < pairs; ++t) { /* newest to oldest */
    int slot = (int)((s->head - 1 - t + 2 * m) % m);
    double *sv = s->S + (size_t)slot * n, *yv = s->Y + (size_t)slot * n;
    alpha[t] = s->rho[slot] * cblas_ddot((int)n, sv, 1, s->d, 1);
    cblas_daxpy((int)n, -alpha[t], yv, 1, s->d, 1);
  }
  if (pairs > 0) {
    int newest = (int)((s->head - 1 + m) % m);
    double *sv = s->S + (size_t)newest * n, *yv = s->Y + (size_t)newest * n;
    cblas_dscal((int)n, cblas_ddot((int)n, sv, 1, yv, 1) / cblas_ddot((int)n, yv, 1, yv, 1), s->d, 1);
  }
  for (int t = pairs - 1; t >= 0; --t) { /* oldest to newest */
    int slot = (int)((s->head - 1 - t + 2 * m) % m);
    double *sv = s->S + (size_t)slot * n, *yv = s->Y + (size_t)slot * n;
    double beta = s->rho[slot] * cblas_ddot((int)n, yv, 1, s->d, 1);
    cblas_daxpy((int)n, alpha[t] - beta, sv, 1, s->d, 1);
  }
}

/* Forgets curvature information: the next direction is −g. */
static void reset_method(dpt_so *s) {
  size_t n = s->n;
  s->since_restart = 0;
  s->pairs = 0;
  s->head = 0;
  if (s->Hinv) {
    memset(s->Hinv, 0, n * n * sizeof *s->Hinv);
    for (size_t i = 0; i < n; ++i) s->Hinv[i * n + i] = 1.0;
  }
}

/* Curvature update from s_k, y_k (after an accepted step). sᵀy ≤ 1e-10 ‖s‖‖y‖ skips the
 * update (the curvature condition fails; the estimate stays positive definite). */
static void quasi_newton_update(dpt_so *s, const double *sv, const double *yv, bool first) {
  size_t n = s->n;
  int ni = (int)n;
  double sy = cblas_ddot(ni, sv, 1, yv, 1);
  double ns = cblas_dnrm2(ni, sv, 1), ny = cblas_dnrm2(ni, yv, 1);
  if (!(sy > 1e-10 * ns * ny)) return;
  double rho = 1.0 / sy;
  if (s->opt.method == DPT_SO_BFGS) {
    /* before the first update H₀ = (sᵀy / yᵀy) I (N&W eq. 6.20) */
    if (first) {
      double gamma = sy / (ny * ny);
      for (size_t i = 0; i < n; ++i) s->Hinv[i * n + i] = gamma;
    }
    /* H⁺ = (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ = H − ρ(s(Hy)ᵀ + (Hy)sᵀ) + (ρ² yᵀHy + ρ) ssᵀ */
    double *hy = s->tmp;
    cblas_dsymv(CblasRowMajor, CblasUpper, ni, 1.0, s->Hinv, ni, yv, 1, 0.0, hy, 1);
    double yhy = cblas_ddot(ni, yv, 1, hy, 1);
    cblas_dger(CblasRowMajor, ni, ni, -rho, sv, 1, hy, 1, s->Hinv, ni);
    cblas_dger(CblasRowMajor, ni, ni, -rho, hy, 1, sv, 1, s->Hinv, ni);
    cblas_dger(CblasRowMajor, ni, ni, rho * rho * yhy + rho, sv, 1, sv, 1, s->Hinv, ni);
  } else if (s->opt.method == DPT_SO_LBFGS) {
    int m = s->opt.history;
    int slot = (int)s->head;
    memcpy(s->S + (size_t)slot * n, sv, n * sizeof *sv);
    memcpy(s->Y + (size_t)slot * n, yv, n * sizeof *yv);
    s->rho[slot] = rho;
    s->head = (s->head + 1) % m;
    if (s->pairs < m) s->pairs++;
  }
}

/* Direction and first trial step for the current iterate; reset: use −g. */
static dpt_status direction(dpt_so *s, dpt_objective *o, const double *x, double f, const double *g, bool reset,
                            double *alpha0) {
  size_t n = s->n;
  int ni = (int)n;
  dpt_so_method m = s->opt.method;
  double gn = cblas_dnrm2(ni, g, 1);
  *alpha0 = 1.0;
  if (reset || m == DPT_SO_GD) {
    for (size_t i = 0; i < n; ++i) s->d[i] = -g[i];
  } else if (m == DPT_SO_CG) {
    int64_t period = s->opt.restart > 0 ? s->opt.restart : (int64_t)n;
    if (!s->have_prev || s->since_restart >= period) {
      for (size_t i = 0; i < n; ++i) s->d[i] = -g[i];
      s->since_restart = 0;
    } else {
      double gg_prev = cblas_ddot(ni, s->g_prev, 1, s->g_prev, 1), beta;
      if (s->opt.cg_variant == DPT_CG_FR) {
        beta = gn * gn / gg_prev;
      } else {
        beta = (gn * gn - cblas_ddot(ni, g, 1, s->g_prev, 1)) / gg_prev;
        if (s->opt.cg_variant == DPT_CG_PRPLUS) beta = fmax(beta, 0.0);
      }
      for (size_t i = 0; i < n; ++i) s->d[i] = -g[i] + beta * s->d[i];
    }
  } else if (m == DPT_SO_NEWTON) {
    DPT_CALL(newton_direction(s, o, x, g));
  } else if (m == DPT_SO_NEWTON_CG) {
    DPT_CALL(newton_cg_direction(s, o, x, g));
  } else if (m == DPT_SO_BFGS) {
    cblas_dsymv(CblasRowMajor, CblasUpper, ni, -1.0, s->Hinv, ni, g, 1, 0.0, s->d, 1);
  } else if (m == DPT_SO_LBFGS) {
    lbfgs_direction(s, g);
  } else if (m == DPT_SO_SFN) {
    if (sfn_dense(s))
      DPT_CALL(sfn_dense_direction(s, o, x, g));
    else
      DPT_CALL(sfn_lanczos_direction(s, o, x, g));
  }
  bool first_order = reset || m == DPT_SO_GD || m == DPT_SO_CG ||
                     ((m == DPT_SO_BFGS || m == DPT_SO_LBFGS) && !s->have_prev) ||
                     (m == DPT_SO_LBFGS && s->pairs == 0);
  if (first_order) {
    /* a steepest-descent-like direction has no natural scale: the exact minimiser along d of
     * the local quadratic model, −g·d / dᵀHd, when an H·v is available and dᵀHd > 0; else
     * N&W (3.60) from the last decrease; else 1/‖g‖ (a unit first move) */
    double gd = cblas_ddot(ni, g, 1, s->d, 1), a = NAN;
    if (o->hvp && gd < 0) {
      DPT_CALL(dpt_objective_hvp(o, x, s->d, s->tmp));
      double dhd = cblas_ddot(ni, s->d, 1, s->tmp, 1);
      if (dhd > 0) a = -gd / dhd;
    }
    if (!(a > 0 && isfinite(a)) && s->have_prev && gd < 0) a = fmin(1.0, 1.01 * 2.0 * (f - s->f_prev) / gd);
    if (!(a > 0 && isfinite(a))) a = fmin(1.0, 1.0 / fmax(gn, 1e-300));
    *alpha0 = a;
  }
  return DPT_OK;
}

dpt_status dpt_so_minimize(dpt_so *s, dpt_objective *o, double *x, dpt_so_log_fn log, void *log_ctx,
                           dpt_so_result *res) {
  dpt_status st = DPT_OK;
  size_t n = s->n;
  int ni = (int)n;
  double *g = s->work, *x_new = g + n, *g_new = x_new + n, *sv = g_new + n, *yv = sv + n;
  DPT_CHECK(o->n == n, DPT_ERR_INTERNAL, "objective has %zu variables, solver %zu", o->n, n);
  int64_t evals0 = o->evals, hvps0 = o->hvps;
  memset(res, 0, sizeof *res);
  double f;
  DPT_TRY(dpt_objective_eval(o, x, &f, g));
  DPT_TRY_CHECK(isfinite(f), DPT_ERR_NUMERIC, "second-order: the loss at the starting point is not finite (%g)", f);
  double gnorm = cblas_dnrm2(ni, g, 1), alpha = 0.0;
  int64_t it = 0;
  if (log) log(log_ctx, &(dpt_so_iter){it, o->evals - evals0, o->hvps - hvps0, f, gnorm, 0.0, x});
  res->stop = DPT_SO_STOP_ITERS;
  bool reset = false;
  while (it < s->opt.max_iters) {
    if (gnorm <= s->opt.tol_grad) {
      res->stop = DPT_SO_STOP_GRAD;
      break;
    }
    if (o->evals - evals0 >= s->opt.max_evals) {
      res->stop = DPT_SO_STOP_EVALS;
      break;
    }
    double alpha0, f_new;
    bool ok;
    DPT_TRY(direction(s, o, x, f, g, reset, &alpha0));
    double gd = cblas_ddot(ni, g, 1, s->d, 1);
    if (s->opt.line_search == DPT_LS_NONE) {
      /* unit steps (classical Newton / SFN): no descent requirement */
      for (size_t i = 0; i < n; ++i) x_new[i] = x[i] + s->d[i];
      DPT_TRY(dpt_objective_eval(o, x_new, &f_new, g_new));
      alpha = 1.0;
      ok = isfinite(f_new);
      DPT_TRY_CHECK(ok, DPT_ERR_NUMERIC, "second-order: the loss is not finite after a unit step (%g)", f_new);
    } else {
      if (!(gd < 0)) { /* not a descent direction: restart with −g */
        reset_method(s);
        reset = true;
        DPT_TRY(direction(s, o, x, f, g, true, &alpha0));
      }
      DPT_TRY(dpt_linesearch(o, s->opt.line_search, &s->opt.ls, x, f, g, s->d, alpha0, &alpha, x_new, &f_new,
                             g_new, s->ls_work, &ok));
      if (!ok && alpha == 0.0) {
        if (reset) {
          res->stop = DPT_SO_STOP_LINESEARCH;
          break;
        }
        reset_method(s);
        reset = true;
        continue; /* retry this iteration along −g */
      }
    }
    for (size_t i = 0; i < n; ++i) {
      sv[i] = x_new[i] - x[i];
      yv[i] = g_new[i] - g[i];
    }
    bool first_update = !s->have_prev;
    memcpy(s->x_prev, x, n * sizeof *x);
    memcpy(s->g_prev, g, n * sizeof *g);
    s->f_prev = f;
    s->have_prev = true;
    quasi_newton_update(s, sv, yv, first_update || (s->opt.method == DPT_SO_BFGS && reset));
    s->since_restart++;
    reset = false;
    double df = fabs(f - f_new), scale = fmax(fmax(fabs(f), fabs(f_new)), 1e-300);
    memcpy(x, x_new, n * sizeof *x);
    memcpy(g, g_new, n * sizeof *g);
    f = f_new;
    gnorm = cblas_dnrm2(ni, g, 1);
    it++;
    s->iter++;
    if (log) log(log_ctx, &(dpt_so_iter){it, o->evals - evals0, o->hvps - hvps0, f, gnorm, alpha, x});
    if (df <= s->opt.tol_rel * scale && gnorm > s->opt.tol_grad) {
      res->stop = DPT_SO_STOP_REL;
      break;
    }
  }
  if (it >= s->opt.max_iters && gnorm <= s->opt.tol_grad) res->stop = DPT_SO_STOP_GRAD;
  res->iters = it;
  res->evals = o->evals - evals0;
  res->hvps = o->hvps - hvps0;
  res->f = f;
  res->gnorm = gnorm;
done:
  return st;
}

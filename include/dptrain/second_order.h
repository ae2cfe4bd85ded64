/* second_order.h — full-batch second-order and quasi-Newton minimisation in double.
 *
 * An objective is a function of n doubles with a value, a gradient and (for the Newton
 * family) Hessian-vector products. The methods:
 *   cg         nonlinear conjugate gradient (Fletcher-Reeves, Polak-Ribiere, PR+), restarted
 *              every n iterations or when the direction is not a descent direction;
 *   newton     dense Hessian from n H.v products, symmetrised, Cholesky (LAPACKE_dpotrf /
 *              potrs) of H + lambda I, lambda raised (Levenberg) until positive definite;
 *   newton_cg  Hessian-free: truncated CG on (H + damping I) p = -g, stopped on negative
 *              curvature;
 *   bfgs       dense inverse-Hessian update, skipped when s'y <= eps |s||y|;
 *   lbfgs      two-loop recursion over the last `history` pairs (same safeguard);
 *   sfn        saddle-free Newton: p = -(|H| + damping I)^-1 g, |H| from LAPACKE_dsyevd
 *              (n <= dense_limit) or from k Lanczos steps on H.v with full
 *              reorthogonalisation (|H| in the Krylov subspace, damping outside it).
 * Every method takes its step along p with a line search: backtracking Armijo or strong
 * Wolfe (Nocedal & Wright Alg. 3.5/3.6, cubic interpolation in zoom).
 *
 * Determinism: every branch depends only on values returned by the objective, so when the
 * objective returns identical values on every rank (reduced sums), every rank takes the
 * same branches and counts the same evaluations.
 *
 * Ownership: dpt_so_create allocates the solver and its state; dpt_so_destroy(&s) frees
 * it. The objective (and its ctx) is owned by the caller. Pointers in dpt_state_info are
 * borrowed from the solver. */
#ifndef DPTRAIN_SECOND_ORDER_H
#define DPTRAIN_SECOND_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dptrain/config.h"
#include "dptrain/error.h"
#include "dptrain/optim.h" /* dpt_state_info */

/* ---- objective ------------------------------------------------------------------------ */

typedef struct dpt_objective {
  size_t n;  /* number of variables */
  void *ctx; /* borrowed, passed to the callbacks */
  /* f(x) and, when g != NULL, its gradient g [n]. */
  dpt_status (*eval)(void *ctx, const double *x, double *f, double *g);
  /* hv [n] = H(x) v (overwritten). May be NULL for methods that need no Hessian. */
  dpt_status (*hvp)(void *ctx, const double *x, const double *v, double *hv);
  int64_t n_evals; /* counters, incremented by dpt_objective_eval / dpt_objective_hvp */
  int64_t n_hvps;
} dpt_objective;

/* Calls obj->eval (counting it); a non-finite value or gradient is DPT_ERR_NUMERIC. */
dpt_status dpt_objective_eval(dpt_objective *obj, const double *x, double *f, double *g);
/* Calls obj->hvp (counting it). */
dpt_status dpt_objective_hvp(dpt_objective *obj, const double *x, const double *v, double *hv);

/* Analytic objectives for tests and demos (ctx unused except for the quadratic). */
/* f = 1/2 x'Ax - b'x with A [n,n] symmetric positive definite (row-major), b [n];
 * ctx must point to a dpt_quadratic that outlives the objective. */
typedef struct dpt_quadratic {
  size_t n;
  const double *A; /* borrowed [n, n] */
  const double *b; /* borrowed [n] */
} dpt_quadratic;
dpt_objective dpt_objective_quadratic(dpt_quadratic *q);
dpt_objective dpt_objective_rosenbrock(void);   /* (1-x)^2 + 100 (y-x^2)^2, n = 2 */
dpt_objective dpt_objective_saddle(void);       /* x^2 - y^2, n = 2 */

/* ---- line searches ------------------------------------------------------------------- */

/* Given x, f0 = f(x), g0 = grad f(x) and a descent direction d (g0'd < 0), find alpha > 0
 * starting from alpha0. On success xn = x + alpha d, fn = f(xn), gn = grad f(xn).
 *   Armijo: halving until f(x + a d) <= f0 + c1 a g0'd (at most 60 halvings);
 *   Wolfe:  strong Wolfe f(x + a d) <= f0 + c1 a g0'd and |g(x + a d)'d| <= c2 |g0'd|,
 *           0 < c1 < c2 < 1; trial steps grow by 2 up to alpha_max, which is accepted when
 *           it still decreases f (unbounded objectives).
 * *found is false when no acceptable step was found within max_evals evaluations (xn, fn,
 * gn then hold the best point evaluated, or x itself); that is not an error. */
dpt_status dpt_linesearch_armijo(dpt_objective *obj, const double *x, double f0, const double *g0, const double *d,
                                 double alpha0, double c1, int max_evals, double *xn, double *fn, double *gn,
                                 double *alpha, bool *found);
dpt_status dpt_linesearch_wolfe(dpt_objective *obj, const double *x, double f0, const double *g0, const double *d,
                                double alpha0, double alpha_max, double c1, double c2, int max_evals, double *xn,
                                double *fn, double *gn, double *alpha, bool *found);

/* ---- options -------------------------------------------------------------------------- */

typedef enum dpt_so_method {
  DPT_SO_CG, DPT_SO_NEWTON, DPT_SO_NEWTON_CG, DPT_SO_BFGS, DPT_SO_LBFGS, DPT_SO_SFN
} dpt_so_method;
typedef enum dpt_cg_variant { DPT_CG_FR, DPT_CG_PR, DPT_CG_PRPLUS } dpt_cg_variant;
typedef enum dpt_ls_kind { DPT_LS_ARMIJO, DPT_LS_WOLFE } dpt_ls_kind;

typedef struct dpt_so_options {
  dpt_so_method method;
  dpt_cg_variant cg_variant; /* cg_variant = fr|pr|prplus (default prplus) */
  int history;               /* L-BFGS pairs m >= 1 (default 10) */
  dpt_ls_kind line_search;   /* armijo|wolfe (default wolfe) */
  double c1, c2;             /* 0 < c1 < c2 < 1 (defaults 1e-4, 0.9; 0.1 for cg) */
  int64_t max_iters;         /* default 100 */
  int64_t max_evals;         /* function+gradient evaluations, default 1000 */
  double tol_grad;           /* stop when |g| <= tol_grad (default 1e-6) */
  double tol_rel;            /* stop when |f_k - f_{k+1}| <= tol_rel max(|f_k|,|f_{k+1}|) (1e-12) */
  double damping;            /* lambda >= 0 (default 0; sfn 1e-4) */
  int lanczos_k;             /* Lanczos steps for sfn above dense_limit (default 20) */
  int64_t dense_limit;       /* most variables for newton, bfgs and dense sfn (default 2000) */
} dpt_so_options;

/* True for cg, newton, newton_cg, bfgs, lbfgs, sfn. */
bool dpt_second_order_is_method(const char *type);
/* Defaults for a method (above). */
void dpt_so_options_default(dpt_so_options *o, dpt_so_method method);
/* Reads optimizer.type and the keys above from [optimizer]; checks ranges and c1 < c2. */
dpt_status dpt_so_options_read(dpt_config *cfg, dpt_so_options *o);
/* A one-line error naming optimizer.dense_limit when a dense method gets n > dense_limit. */
dpt_status dpt_so_options_check_size(const dpt_so_options *o, size_t n);
const char *dpt_so_method_name(dpt_so_method m);

/* ---- solver --------------------------------------------------------------------------- */

typedef struct dpt_so_solver dpt_so_solver;

/* One logged iteration. */
typedef struct dpt_so_iter {
  int64_t iter;  /* 1, 2, ... */
  double loss;   /* f after the step */
  double gnorm;  /* |g| after the step */
  double step;   /* accepted alpha (times |p| is the step length: see step_norm) */
  double step_norm;
  int64_t evals; /* function+gradient evaluations so far */
  int64_t hvps;  /* Hessian-vector products so far */
} dpt_so_iter;
typedef void (*dpt_so_log_fn)(void *ctx, const dpt_so_iter *it);

typedef struct dpt_so_result {
  int64_t iters;
  int64_t evals, hvps;
  double loss, gnorm;
  const char *reason; /* "gradient", "relative change", "iterations", "evaluations", "line search" (static) */
} dpt_so_result;

dpt_status dpt_so_create(const dpt_so_options *o, size_t n, dpt_so_solver **out);
void dpt_so_destroy(dpt_so_solver **s);
/* Minimises obj from x (updated in place to the last accepted point). log may be NULL. */
dpt_status dpt_so_minimize(dpt_so_solver *s, dpt_objective *obj, double *x, dpt_so_log_fn log, void *log_ctx,
                           dpt_so_result *res);
/* The current inverse-Hessian estimate of bfgs ([n, n], row-major), NULL for other methods. */
const double *dpt_so_bfgs_matrix(const dpt_so_solver *s);
/* State by name for checkpoints: "direction", "g_prev", "hinv" (bfgs), "lbfgs_s", "lbfgs_y",
 * "lbfgs_rho", "lbfgs_len", "lbfgs_head", "iter". */
int dpt_so_num_states(const dpt_so_solver *s);
void dpt_so_state(dpt_so_solver *s, int i, dpt_state_info *info);

/* Exposed for tests: the damped Newton direction p = -(H + lambda I)^-1 g with lambda the
 * smallest of damping, then max(10 lambda, 1e-8 (1 + max|H_ii|)) that makes the Cholesky
 * factorisation succeed. H [n, n] symmetric (only read). */
dpt_status dpt_so_newton_direction(const double *H, const double *g, size_t n, double damping, double *p,
                                   double *lambda_used);
/* The saddle-free direction p = -(|H| + damping I)^-1 g with |H| = V |Lambda| V'. */
dpt_status dpt_so_sfn_direction(const double *H, const double *g, size_t n, double damping, double *p);

#endif

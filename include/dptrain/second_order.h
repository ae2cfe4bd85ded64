/* second_order.h — full-batch second-order and quasi-Newton minimisation: an objective
 * abstraction in double, line searches (Armijo backtracking, strong Wolfe), nonlinear CG,
 * Newton (dense Hessian + Cholesky with Levenberg damping), Newton-CG (Hessian-free),
 * BFGS, L-BFGS and saddle-free Newton (dense |H| via syevd, or Lanczos), and a model-backed
 * objective over a training set sharded across ranks.
 *
 * Notation (Nocedal & Wright): x_k iterate, g_k = ∇f(x_k), d_k search direction,
 * φ(α) = f(x_k + α d_k), s_k = x_{k+1} − x_k, y_k = g_{k+1} − g_k.
 *
 * Config ([optimizer], read by dpt_so_options_read when type is a second-order method):
 *   type        = cg | newton | newton_cg | bfgs | lbfgs | sfn
 *   cg_variant  = fr | pr | prplus (prplus)      Fletcher–Reeves, Polak–Ribière, PR+ (β ≥ 0)
 *   history     = m ≥ 1 (10)                     L-BFGS pairs kept
 *   line_search = armijo | wolfe | none          (wolfe; none = unit steps, Newton/SFN only)
 *   c1, c2      = 0 < c1 < c2 < 1 (1e-4; c2 0.9, 0.1 for cg)
 *   max_iters (100), max_evals (1000)            budgets (iterations, function evaluations)
 *   tol_grad (1e-6)  stop when ‖g‖₂ ≤ tol_grad
 *   tol_rel  (1e-12) stop when |f_k − f_{k+1}| ≤ tol_rel · max(|f_k|, |f_{k+1}|, 1e-300)
 *   damping  (0 for newton/sfn dense; 1e-4 for newton_cg and Lanczos sfn) λ ≥ 0
 *   lanczos_k (20)   Krylov dimension of saddle-free Newton when n > dense_limit
 *   dense_limit (2000)  most parameters for the dense variants (newton, bfgs, dense sfn);
 *                    newton and bfgs refuse bigger models naming this key
 *   restart     (0 = every n iterations)   CG restart period
 *
 * Ownership: dpt_so_create allocates the solver and its state; dpt_so_destroy(&s) frees and
 * sets NULL. Objectives are caller-owned values; their ctx is borrowed. */
#ifndef DPTRAIN_SECOND_ORDER_H
#define DPTRAIN_SECOND_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/optim.h"
#include "dptrain/types.h"

/* ---- objective ------------------------------------------------------------------------ */

/* f: Rⁿ → R. eval writes f(x) and, when g != NULL, ∇f(x) [n]; hvp writes hv = ∇²f(x)·v.
 * Both are counted in the objective (evals, hvps). A model-backed objective is collective:
 * every rank calls with the same x and gets the same results. */
typedef struct dpt_objective {
  size_t n;
  void *ctx; /* borrowed */
  dpt_status (*eval)(void *ctx, const double *x, double *f, double *g);
  dpt_status (*hvp)(void *ctx, const double *x, const double *v, double *hv);
  int64_t evals, hvps; /* counters, incremented by dpt_objective_eval / _hvp */
} dpt_objective;

dpt_status dpt_objective_eval(dpt_objective *o, const double *x, double *f, double *g);
dpt_status dpt_objective_hvp(dpt_objective *o, const double *x, const double *v, double *hv);

/* Analytic objectives for tests and demos (ctx points to static or caller data):
 * quadratic f = ½ xᵀAx − bᵀx with A [n, n] symmetric (row-major, borrowed), b [n] borrowed;
 * Rosenbrock f = (1 − x)² + 100 (y − x²)² (n = 2); saddle f = x² − y² (n = 2). */
typedef struct dpt_quadratic {
  size_t n;
  const double *A, *b;
} dpt_quadratic;
dpt_objective dpt_objective_quadratic(dpt_quadratic *q);
dpt_objective dpt_objective_rosenbrock(void);
dpt_objective dpt_objective_saddle(void);

/* ---- line searches -------------------------------------------------------------------- */

typedef enum dpt_ls_kind { DPT_LS_ARMIJO = 0, DPT_LS_WOLFE = 1, DPT_LS_NONE = 2 } dpt_ls_kind;

typedef struct dpt_ls_params {
  double c1, c2;     /* sufficient decrease, curvature (strong Wolfe) constants, 0 < c1 < c2 < 1 */
  double alpha_max;  /* largest step tried (Wolfe bracketing) */
  int max_evals;     /* evaluations allowed in one search */
} dpt_ls_params;

/* Checks 0 < c1 < c2 < 1 (Wolfe) or 0 < c1 < 1 (Armijo); names the keys. */
dpt_status dpt_ls_params_check(const dpt_ls_params *p, dpt_ls_kind kind);

/* One search from x along d (g0·d < 0 required, else DPT_ERR_INTERNAL) starting at alpha0.
 * On return x_new = x + α d, f_new, g_new = ∇f(x_new) (g_new always filled), *alpha = α,
 * *ok = whether the conditions hold (Armijo: f_new ≤ f0 + c1 α g0·d; strong Wolfe: that and
 * |∇f(x_new)·d| ≤ c2 |g0·d|). When !ok, x_new is the best point seen (f_new ≤ f0, or α = 0
 * and x_new = x). Armijo: backtracking α ← α/2 with a safeguarded quadratic interpolation.
 * Wolfe: N&W Algorithm 3.5 (bracketing, α doubling up to alpha_max) and 3.6 (zoom, cubic
 * interpolation safeguarded to the inner 80 % of the bracket). work: [2n] scratch for
 * Wolfe, borrowed (NULL: allocated and freed here; a distributed objective should pass it,
 * so that no allocation can fail on one rank between the objective's collectives). */
dpt_status dpt_linesearch(dpt_objective *o, dpt_ls_kind kind, const dpt_ls_params *p, const double *x, double f0,
                          const double *g0, const double *d, double alpha0, double *alpha, double *x_new,
                          double *f_new, double *g_new, double *work, bool *ok);

/* ---- solvers -------------------------------------------------------------------------- */

typedef enum dpt_so_method {
  DPT_SO_CG = 0,
  DPT_SO_NEWTON,
  DPT_SO_NEWTON_CG,
  DPT_SO_BFGS,
  DPT_SO_LBFGS,
  DPT_SO_SFN,
  DPT_SO_GD /* steepest descent with the line search: demos and baselines, not a config type */
} dpt_so_method;

typedef enum dpt_cg_variant { DPT_CG_FR = 0, DPT_CG_PR = 1, DPT_CG_PRPLUS = 2 } dpt_cg_variant;

typedef struct dpt_so_options {
  dpt_so_method method;
  dpt_cg_variant cg_variant;
  int history;
  dpt_ls_kind line_search;
  dpt_ls_params ls;
  int64_t max_iters, max_evals, restart;
  double tol_grad, tol_rel, damping;
  int lanczos_k;
  int64_t dense_limit;
  int64_t exact_micro; /* model-backed objective: 0 = fast sums; > 0 = exact mode (reduce.h)
                        * with micro-batches of this many rows (train.c sets it from
                        * parallel.reduce = exact and parallel.micro_batch) */
} dpt_so_options;

/* True for cg, newton, newton_cg, bfgs, lbfgs, sfn. */
bool dpt_second_order_is_method(const char *type);
/* Defaults of a method (the table in the header comment). */
void dpt_so_options_default(dpt_so_method method, dpt_so_options *o);
/* Reads [optimizer] keys (type must be a second-order method); errors name the key. */
dpt_status dpt_so_options_read(dpt_config *cfg, dpt_so_options *o);

typedef struct dpt_so dpt_so;

/* Why a run stopped. */
typedef enum dpt_so_stop {
  DPT_SO_STOP_GRAD = 0,  /* ‖g‖ ≤ tol_grad */
  DPT_SO_STOP_REL,       /* relative loss change ≤ tol_rel */
  DPT_SO_STOP_ITERS,     /* max_iters */
  DPT_SO_STOP_EVALS,     /* max_evals */
  DPT_SO_STOP_LINESEARCH /* no acceptable step along a descent direction after a restart */
} dpt_so_stop;
const char *dpt_so_stop_name(dpt_so_stop s);

/* One line of the iteration log: after iteration iter (0 = the starting point). */
typedef struct dpt_so_iter {
  int64_t iter, evals, hvps;
  double f, gnorm, alpha;
  const double *x; /* borrowed, [n] */
} dpt_so_iter;
typedef void (*dpt_so_log_fn)(void *ctx, const dpt_so_iter *it);

typedef struct dpt_so_result {
  int64_t iters, evals, hvps;
  double f, gnorm;
  dpt_so_stop stop;
} dpt_so_result;

/* Checks the options against n (dense_limit) and allocates the state. */
dpt_status dpt_so_create(const dpt_so_options *opt, size_t n, dpt_so **out);
void dpt_so_destroy(dpt_so **s);
/* Bytes of the solver's buffers (its history, dense matrices, scratch vectors). */
size_t dpt_so_memory(const dpt_so *s);
/* Minimises o from x (in place: x [n] holds the final iterate). log may be NULL. Counters
 * in res are those of this call (evaluations include line-search evaluations). */
dpt_status dpt_so_minimize(dpt_so *s, dpt_objective *o, double *x, dpt_so_log_fn log, void *log_ctx,
                           dpt_so_result *res);
/* State by name for checkpoints (optim.h's dpt_state_info, all double or int64):
 * always "iter" (int64), "x_prev", "g_prev" [n], then cg "d" [n]; bfgs "Hinv" [n*n];
 * lbfgs "S", "Y" [m*n], "rho" [m], "pairs", "head" (int64). */
int dpt_so_num_states(const dpt_so *s);
void dpt_so_state(dpt_so *s, int i, dpt_state_info *info);
/* The BFGS inverse-Hessian estimate [n*n] (NULL for other methods); borrowed. */
const double *dpt_so_bfgs_inverse(const dpt_so *s);

/* ---- model-backed training ------------------------------------------------------------ */

struct dpt_model;
struct dpt_dataset;

typedef struct dpt_so_train_result {
  int64_t iters, evals, hvps;
  double loss, gnorm, seconds;
  dpt_so_stop stop;
} dpt_so_train_result;

/* Collective. Minimises the mean training loss over the whole dataset (rows sharded with
 * dpt_shard_range, read once with dpt_dataset_read_rows) with the method of opt, starting
 * from the model's current parameters (identical on every rank), which hold the result on
 * return. Value, gradient and H·v are computed on the local shard with scale 1/N and summed
 * over ranks in double (MPI_Reduce to rank 0 + MPI_Bcast: the same bits on every rank), so
 * every rank takes the same branches. With opt->exact_micro = M > 0 the rows are cut into
 * micro-batches of M (dpt_shard_batch) and each sum is the exact reducer's (reduce.h): in
 * f64 the iterates are then bitwise the same for any rank count. A non-finite value at a
 * trial point counts as +inf (the line search shortens the step); at the start it is an
 * error. log is called on every rank (print on rank 0 only). */
dpt_status dpt_second_order_train(const dpt_comm *c, const dpt_so_options *opt, struct dpt_model *m,
                                  struct dpt_dataset *train, dpt_so_log_fn log, void *log_ctx,
                                  dpt_so_train_result *res);
/* A log function printing one line per iteration to stdout (pass it on rank 0 only). */
void dpt_so_log_stdout(void *ctx, const dpt_so_iter *it);

#endif

/* rbf.h — radial basis function networks: center/width placement and the least-squares
 * output fit, distributed over the ranks' shards of the training set.
 *
 * The seed's RBF feature map (Lecture 3):
 *   φ(x) = (1, exp(−‖x − μ_0‖² / 2σ_0²), ..., exp(−‖x − μ_{k−1}‖² / 2σ_{k−1}²))
 * and the model y = g(wᵀφ(x)). 2-step learning places the centers μ_i and widths σ_i
 * (this module), then fits w (closed form here for identity output + ℓ2); 3-step learning
 * then trains everything by gradient (the model's rbf layer, src/layer_rbf.c).
 *
 * Data: every collective function here takes the rank's shard of a global N × d matrix in
 * float64, rows [begin, begin + count) (dpt_rbf_data). A rank may hold no rows; it still
 * joins every collective call.
 *
 * Same result for any P. Placement (random box, random samples, K-means++ seeding, Lloyd,
 * GNG) and the widths are bitwise identical for any number of ranks at a given seed:
 *  - random draws come from one seeded stream that every rank advances identically;
 *  - a chosen row is fetched by an MPI_Allreduce of a zero-filled buffer that only its
 *    owner fills (x + 0 = x: exact);
 *  - every sum over rows that feeds a decision or a center (Lloyd's per-center sums, the
 *    D² weights of K-means++, the spread of a cluster) is taken in 64-bit fixed point:
 *    each row's value is rounded once to an integer multiple of 2^−s (s chosen from global
 *    maxima so no sum can overflow 2^62) and integers are summed exactly with
 *    MPI_Allreduce(MPI_INT64_T), so the order of addition (and hence P) does not matter.
 *    The resolution is about N · max / 2^61 (≈ 4e-13 of the data range at N = 10^6);
 *  - Lloyd assigns rows with a GEMM (‖x‖² − 2x·μ + ‖μ‖², cblas_dgemm), then re-checks any
 *    near tie with a plain loop, so the assignment equals the plain loop's argmin (ties to
 *    the lowest index) whatever OpenBLAS's blocking or thread count.
 * The least-squares fit sums ΦᵀΦ and Φᵀy in double (dsyrk/dgemm + MPI_Allreduce): equal
 * across P to float rounding, not bitwise.
 *
 * Ownership: every pointer argument is borrowed; outputs are caller-allocated arrays of the
 * sizes given. Nothing here keeps a pointer after it returns. */
#ifndef DPTRAIN_RBF_H
#define DPTRAIN_RBF_H

#include <stdint.h>
#include <stdbool.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/error.h"
#include "dptrain/types.h"

/* This rank's shard of the global N × d training matrix. */
typedef struct dpt_rbf_data {
  const double *X; /* [count, d] row-major, borrowed; may be NULL when count == 0 */
  int64_t count;   /* rows on this rank (may be 0) */
  int64_t begin;   /* global id of this rank's first row */
  int64_t n;       /* global rows N (all ranks) */
  int64_t d;       /* features */
} dpt_rbf_data;

typedef enum dpt_rbf_placement {
  DPT_RBF_RANDOM_BOX = 0,     /* uniform in the data's bounding box */
  DPT_RBF_RANDOM_SAMPLES = 1, /* k distinct training rows */
  DPT_RBF_KMEANSPP = 2,       /* K-means++ seeding, then Lloyd iterations */
  DPT_RBF_GNG = 3             /* growing neural gas on a sample gathered to every rank */
} dpt_rbf_placement;

typedef enum dpt_rbf_width {
  DPT_RBF_WIDTH_SPREAD = 0,  /* factor × RMS distance of the cluster's members to its center */
  DPT_RBF_WIDTH_NEAREST = 1, /* factor × distance to the nearest other center */
  DPT_RBF_WIDTH_GLOBAL = 2   /* one σ for all: `sigma`, or d_max / sqrt(2k) when not given */
} dpt_rbf_width;

typedef enum dpt_rbf_learn {
  DPT_RBF_LEARN_2STEP = 0, /* place, fit the output weights; centers and widths stay fixed */
  DPT_RBF_LEARN_3STEP = 1  /* then train everything by gradient (the normal training loop) */
} dpt_rbf_learn;

/* The settings of one rbf layer ([layer.N] keys, names as in the config). */
typedef struct dpt_rbf_options {
  char section[32];             /* "layer.N": prefix of the keys, for messages */
  int64_t units;                /* k: number of centers */
  dpt_rbf_placement placement;  /* placement */
  dpt_rbf_width width;          /* width */
  double width_factor;          /* width_factor: multiplies spread/nearest widths (> 0) */
  double sigma;                 /* sigma: global σ (> 0), or 0 = d_max / sqrt(2k) */
  int64_t kmeans_iters;         /* kmeans_iters: max Lloyd iterations (0 = seeding only) */
  double kmeans_tol;            /* kmeans_tol: stop when max_i ‖Δμ_i‖ / box diagonal < tol */
  int64_t gng_lambda;           /* gng_lambda: insert a node every λ signals */
  double gng_eps_b, gng_eps_n;  /* gng_eps_b, gng_eps_n: winner / neighbour step sizes */
  double gng_alpha;             /* gng_alpha: on insertion E_q, E_f *= α (Fritzke's α) */
  double gng_beta;              /* gng_beta: every signal E *= (1 − β) (Fritzke's d = 1 − β) */
  int64_t gng_age_max;          /* gng_age_max: edges older than this are removed */
  int64_t gng_sample;           /* gng_sample: rows gathered to every rank (≤ N) */
  int64_t gng_refine;           /* gng_refine: signals after the node budget is reached (−1: λ·units) */
  dpt_rbf_learn learn;          /* learn */
  double ridge;                 /* ridge: λ in (1/N)Σ‖y − Φw‖² + λ‖w‖² (bias not penalized) */
  int64_t fit_epochs;           /* fit_epochs: 2-step gradient steps when not closed form */
  double fit_lr;                /* fit_lr: their step size */
} dpt_rbf_options;

/* Defaults for every field (units = 0: must be set). */
void dpt_rbf_options_default(dpt_rbf_options *o);
/* Reads the rbf keys of section (e.g. "layer.0"): units (default def_units), placement,
 * width, width_factor, sigma, kmeans_iters, kmeans_tol, gng_*, learn, ridge, fit_epochs,
 * fit_lr. Errors name
 * the key. Not collective. */
dpt_status dpt_rbf_options_read(dpt_config *cfg, const char *section, int64_t def_units, dpt_rbf_options *o);
/* Checks the options against the data before any work: units ≤ N (and ≤ gng_sample for
 * gng), nearest widths need k ≥ 2, N ≥ 1, d ≥ 1. Errors name the key. Not collective
 * (every rank has the same options and N). */
dpt_status dpt_rbf_options_check(const dpt_rbf_options *o, int64_t n, int64_t d);

/* Collective: checks that the shards tile [0, N) in rank order with the same N and d on
 * every rank (agreed error). */
dpt_status dpt_rbf_data_check(const dpt_comm *c, const dpt_rbf_data *data);

/* Collective: the global bounding box, lo/hi [d]. With N == 0 lo = hi = 0. */
dpt_status dpt_rbf_bounds(const dpt_comm *c, const dpt_rbf_data *data, double *lo, double *hi);

/* Collective: k centers [k, d] uniform in the bounding box. */
dpt_status dpt_rbf_place_random_box(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, uint64_t seed,
                                    double *centers);
/* Collective: k distinct training rows (global ids drawn from seed) as centers [k, d]. */
dpt_status dpt_rbf_place_random_samples(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, uint64_t seed,
                                        double *centers);
/* Collective: the rows with the given global ids (each in [0, N)) into out [m, d]. */
dpt_status dpt_rbf_fetch_rows(const dpt_comm *c, const dpt_rbf_data *data, const int64_t *ids, int64_t m,
                              double *out);

/* Collective: K-means++ seeding (D² sampling) of k centers [k, d]. When every row already
 * coincides with a chosen center (fewer distinct rows than k), the remaining centers are
 * rows drawn uniformly (so they repeat rows). */
dpt_status dpt_kmeans_seed(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, uint64_t seed, double *centers);
/* Collective: Lloyd iterations from centers [k, d] (updated in place) until the largest
 * center shift divided by the bounding-box diagonal is < tol, or max_iters. An empty
 * cluster takes the row farthest from its center (lowest global id on ties; several empty
 * clusters in index order, each a different row). *iters (may be NULL) gets the number of
 * iterations done, *inertia (may be NULL) the final Σ‖x − μ_a(x)‖² over all rows. */
dpt_status dpt_kmeans_lloyd(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, int64_t max_iters, double tol,
                            double *centers, int64_t *iters, double *inertia);
/* Not collective: index [n] of the nearest center of each row of X [n, d] (ties to the
 * lowest index; GEMM with exact re-check of near ties), dist [n] (may be NULL) the squared
 * distance by a plain loop. */
dpt_status dpt_kmeans_assign(const double *X, int64_t n, int64_t d, const double *centers, int64_t k,
                             int64_t *index, double *dist);

/* Collective: growing neural gas (Fritzke 1995) with o's gng_* settings, grown to
 * o->units nodes on a sample of min(N, gng_sample) rows drawn from seed and gathered to
 * every rank; runs identically on every rank. centers [units, d]. *signals (may be NULL)
 * gets the number of input signals used. */
dpt_status dpt_gng_fit(const dpt_comm *c, const dpt_rbf_data *data, const dpt_rbf_options *o, uint64_t seed,
                       double *centers, int64_t *signals);

/* Collective: widths [k] for centers [k, d] by o->width (spread, nearest, global). Fails
 * (DPT_ERR_INPUT naming the width key) when a width comes out ≤ 0 (coinciding centers). */
dpt_status dpt_rbf_widths(const dpt_comm *c, const dpt_rbf_data *data, const dpt_rbf_options *o,
                          const double *centers, double *widths);

/* Collective: checks the options (dpt_rbf_options_check) and the shards, then places
 * o->units centers [units, d] by o->placement and sets widths [units]. */
dpt_status dpt_rbf_place(const dpt_comm *c, const dpt_rbf_data *data, const dpt_rbf_options *o, uint64_t seed,
                         double *centers, double *widths);

/* Not collective: Φ [n, k + 1] for rows X [n, d]: column 0 is 1, column 1 + i is
 * exp(−‖x − μ_i‖² / 2σ_i²). */
dpt_status dpt_rbf_features(const double *X, int64_t n, int64_t d, const double *centers, const double *widths,
                            int64_t k, double *Phi);

/* Collective: the output weights W [k + 1, m] (row 0 the bias, row 1 + i the weights of
 * unit i) minimizing (1/N) Σ_rows ‖y − φ(x)ᵀW‖² + ridge · Σ_{i ≥ 1} ‖W_i‖² over all ranks'
 * rows, Y [count, m] this rank's targets. Each rank accumulates ΦᵀΦ (dsyrk) and ΦᵀY
 * (dgemm), MPI_Allreduce, then (ΦᵀΦ + N·ridge·I') W = ΦᵀY is solved by Cholesky (dposv);
 * if that fails (singular, ridge 0) by the minimum-norm SVD solve (dgelsd).
 * *rank_out (may be NULL) gets k + 1 after dposv, the effective rank after dgelsd. */
dpt_status dpt_rbf_lstsq(const dpt_comm *c, const dpt_rbf_data *data, const double *Y, int64_t m,
                         const double *centers, const double *widths, int64_t k, double ridge, double *W,
                         int64_t *rank_out);

/* ---- the rbf layer and 2-step / 3-step learning (src/layer_rbf.c; needs the engine) ---- */

struct dpt_model;
struct dpt_targets;
struct dpt_layer_type;
struct dpt_op;

/* The layer type registered as "rbf" in the model's layer table, and its operator
 * y[n, i] = exp(−‖x_n − μ_i‖² / 2σ_i²) with rules forward, vjp, jvp, vjp_tangent. */
extern const struct dpt_layer_type dpt_layer_rbf;
extern const struct dpt_op dpt_op_rbf;

/* What dpt_rbf_fit did. */
typedef struct dpt_rbf_fit_info {
  bool has_rbf;         /* layer.0 is rbf (otherwise nothing was done) */
  dpt_rbf_learn learn;  /* layer.0.learn */
  size_t frozen_offset; /* 2-step: the flat range [offset, offset + count) holding centers and */
  size_t frozen_count;  /*   widths, which later training must leave alone (count 0: 3-step) */
  bool closed_form;     /* output weights by least squares (identity + ℓ2, one dense layer) */
  int64_t rank;         /* least squares: k + 1 (Cholesky) or the SVD's effective rank */
  int64_t gd_steps;     /* otherwise: full-batch gradient steps on the output weights */
  double loss;          /* mean training loss over all rows after the fit (reduced) */
  void *frozen_values;  /* 2-step: copy of the frozen range in the model dtype (owned; freed by
                         * dpt_rbf_fit_info_free); NULL otherwise */
} dpt_rbf_fit_info;

/* Frees info->frozen_values (NULL-safe, idempotent). */
void dpt_rbf_fit_info_free(dpt_rbf_fit_info *info);
/* 2-step in a training loop: zero the frozen gradients before the optimizer step (so
 * momentum and Adam moments stay 0 there), and put the frozen values back after it (weight
 * decay moves parameters without a gradient). No-ops for 3-step or models without rbf. */
void dpt_rbf_hold_grads(const dpt_rbf_fit_info *info, dpt_dtype t, void *grads);
void dpt_rbf_hold_params(const dpt_rbf_fit_info *info, dpt_dtype t, void *params);

/* Collective. Steps 1 and 2 of 2-step and 3-step learning for a model whose layer.0 is rbf:
 * places layer.0's centers and widths on the training rows (dpt_rbf_place with the
 * layer.0 keys and seed), then fits the output weights with centers and widths fixed:
 *  - identity output + ℓ2 and one dense layer after the rbf layer: closed form,
 *    dpt_rbf_lstsq with layer.0.ridge;
 *  - otherwise (sigmoid/softmax outputs, more hidden layers): layer.0.fit_epochs (500)
 *    full-batch gradient steps of size layer.0.fit_lr (0.5) on every other parameter,
 *    gradients summed over ranks, centers/widths' gradients zeroed before each step.
 * X [count, n_in] and y are this rank's rows [begin, begin + count) of the n training rows,
 * in the model's dtype. A model without an rbf layer is left as it is (info->has_rbf false).
 * 3-step learning then trains everything with the normal training loop; for 2-step the loop
 * must keep info->frozen_* fixed (or be skipped). Every rank ends with the same parameters. */
dpt_status dpt_rbf_fit(const dpt_comm *c, struct dpt_model *m, dpt_config *cfg, const void *X,
                       const struct dpt_targets *y, int64_t count, int64_t begin, int64_t n, uint64_t seed,
                       dpt_rbf_fit_info *info);
/* Collective. dpt_rbf_fit on a dataset (dataset.h): reads this rank's even share
 * dpt_shard_range(N, P, rank) of the training rows in the model's dtype (collectively; a
 * rank with none still joins), fits, frees the rows. Does nothing (reads nothing) for a
 * model without an rbf layer. The training loop (src/train.c) calls it after the initial
 * parameters are broadcast and before the first epoch, with train.seed. */
struct dpt_dataset;
/* Not collective. For a run resumed from a checkpoint, whose parameters already hold the
 * placed and fitted values: fills info as dpt_rbf_fit would (learn, frozen range and a copy
 * of the frozen values from the current parameters) without placing or fitting anything.
 * A resumed run calls this instead of dpt_rbf_fit_dataset. */
dpt_status dpt_rbf_fit_resume(struct dpt_model *m, dpt_config *cfg, dpt_rbf_fit_info *info);
dpt_status dpt_rbf_fit_dataset(const dpt_comm *c, struct dpt_model *m, dpt_config *cfg, struct dpt_dataset *ds,
                               uint64_t seed, dpt_rbf_fit_info *info);

#endif

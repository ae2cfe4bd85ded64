/* eval_common.h — shared by `dptrain eval` and `dptrain predict`: a model file applied to
 * a dataset in parallel, every row exactly once (rank r takes the contiguous rows
 * dpt_shard_range(N, P, r), read and evaluated in chunks). */
#ifndef DPTRAIN_CLI_EVAL_COMMON_H
#define DPTRAIN_CLI_EVAL_COMMON_H

#include "dptrain/checkpoint.h"
#include "dptrain/config.h"
#include "dptrain/dataset.h"

/* Sums over this rank's rows (loss already divided by the global row count). */
typedef struct dpt_eval_sums {
  double loss;          /* sum of per-row loss / N */
  int64_t correct;      /* classification: rows predicted right */
  double y_sum, y_sq;   /* regression: sums of targets and their squares (for R²) */
} dpt_eval_sums;

/* The [run]/[parallel] keys eval and predict share. */
typedef struct dpt_eval_plan {
  int64_t threads; /* run.threads: BLAS threads per rank, 0 auto */
  double timeout;  /* parallel.timeout: the watchdog's limit in seconds, 0 none (watchdog.h) */
} dpt_eval_plan;

/* Local. Reads the keys of dpt_eval_plan from cfg (defaults 0 and 600). */
dpt_status dpt_eval_read_plan(dpt_config *cfg, dpt_eval_plan *p);

/* Collective, after the command line is agreed: starts the watchdog (its phase named `what`,
 * a string literal; the caller stops it with dpt_watchdog_stop), sets the BLAS threads, loads
 * the model file model_path into lm and opens data_path into *ds (owned by the caller:
 * dpt_loaded_model_free, dpt_dataset_close, also after an error). Errors are agreed. */
dpt_status dpt_eval_open(const dpt_comm *c, const dpt_eval_plan *p, const char *what, const char *model_path,
                         const char *data_path, dpt_loaded_model *lm, dpt_dataset **ds);

/* Collective. Evaluates lm on every row of ds; out (may be NULL) gets this rank's
 * [count, n_out] outputs after the output function, in lm's dtype, rows [*first,
 * *first + *count) of the dataset. */
dpt_status dpt_eval_rows(const dpt_comm *c, dpt_loaded_model *lm, dpt_dataset *ds, dpt_eval_sums *sums, void **out,
                         int64_t *first, int64_t *count);

#endif

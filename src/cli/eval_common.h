/* eval_common.h — shared by `dptrain eval` and `dptrain predict`: a model file applied to
 * a dataset in parallel, every row exactly once (rank r takes the contiguous rows
 * dpt_shard_range(N, P, r), read and evaluated in chunks). */
#ifndef DPTRAIN_CLI_EVAL_COMMON_H
#define DPTRAIN_CLI_EVAL_COMMON_H

#include "dptrain/checkpoint.h"
#include "dptrain/dataset.h"

/* Sums over this rank's rows (loss already divided by the global row count). */
typedef struct dpt_eval_sums {
  double loss;          /* sum of per-row loss / N */
  int64_t correct;      /* classification: rows predicted right */
  double y_sum, y_sq;   /* regression: sums of targets and their squares (for R²) */
} dpt_eval_sums;

/* Collective. Evaluates lm on every row of ds; out (may be NULL) gets this rank's
 * [count, n_out] outputs after the output function, in lm's dtype, rows [*first,
 * *first + *count) of the dataset. */
dpt_status dpt_eval_rows(const dpt_comm *c, dpt_loaded_model *lm, dpt_dataset *ds, dpt_eval_sums *sums, void **out,
                         int64_t *first, int64_t *count);

#endif

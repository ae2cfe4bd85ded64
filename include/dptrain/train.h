/* train.h — the training loop: ties config, dataset, model, optimizer, reducer and
 * checkpoints together, and times each phase. It orchestrates; it does not compute.
 *
 * Collective over c: every rank calls dpt_train_run with the same config. Errors are agreed
 * across ranks before returning (every rank returns the same status and message). */
#ifndef DPTRAIN_TRAIN_H
#define DPTRAIN_TRAIN_H

#include <stdint.h>
#include "dptrain/comm.h"
#include "dptrain/config.h"

typedef struct dpt_train_result {
  int64_t epochs;          /* epochs completed */
  int64_t steps;           /* optimizer steps taken (skipped ones included) */
  int64_t skipped;         /* steps dropped on every rank: non-finite value, train.on_nonfinite = skip */
  double train_loss;       /* mean training loss over the last epoch (global, all ranks) */
  double val_loss;         /* last validation loss; NaN when there is no validation set */
  double val_metric;       /* accuracy (classification) or R² (regression); NaN without validation */
  double seconds;          /* wall time of the loop */
} dpt_train_result;

/* Reads the run plan from cfg (every module's keys), refuses unknown keys, prints the
 * resolved config on rank 0 (unless run.quiet), trains, and fills *res. When params_out is
 * not NULL it receives a copy of the final flat parameter buffer as double (caller frees
 * with dpt_free) and *n_params its length — for tests and demos. */
dpt_status dpt_train_run(const dpt_comm *c, dpt_config *cfg, dpt_train_result *res, double **params_out,
                         size_t *n_params);

#endif

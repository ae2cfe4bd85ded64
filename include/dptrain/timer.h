/* timer.h — per-phase wall-clock timers (MPI_Wtime), summarized per epoch as max and mean
 * over ranks.
 *
 * A dpt_timers is a value type owned by whoever declares it (no allocation). The training
 * loop wraps each phase in dpt_timer_start / dpt_timer_stop; at the end of an epoch
 * dpt_timers_summarize reduces the per-rank totals with one MPI_Reduce of a small array
 * (max in the first half, sum in the second) to rank 0, and dpt_timers_reset starts the
 * next epoch. The metrics writer adds one column per phase and statistic, named
 * "<phase>_s_max" and "<phase>_s_mean" (seconds in the epoch; src/train.c). */
#ifndef DPTRAIN_TIMER_H
#define DPTRAIN_TIMER_H

#include "dptrain/comm.h"
#include "dptrain/error.h"

typedef enum dpt_phase {
  DPT_PHASE_DATA = 0,     /* loader: reading and assembling this rank's rows */
  DPT_PHASE_FORWARD,      /* forward pass only (validation, evaluation) */
  DPT_PHASE_BACKWARD,     /* forward + backward pass of a training step (one engine call) */
  DPT_PHASE_COMM_WAIT,    /* waiting for the gradient reduction to complete (reducer finish) */
  DPT_PHASE_OPTIMIZER,    /* optimizer step and schedule */
  DPT_PHASE_SYNC_CHECK,   /* parameter sync check */
  DPT_PHASE_COUNT
} dpt_phase;

typedef struct dpt_timers {
  double total[DPT_PHASE_COUNT]; /* seconds accumulated since the last reset */
  double since[DPT_PHASE_COUNT]; /* MPI_Wtime at start, or < 0 when not running */
} dpt_timers;

/* Per-epoch summary (meaningful on rank 0 only). */
typedef struct dpt_phase_stats {
  double max[DPT_PHASE_COUNT];  /* max over ranks of the seconds in each phase */
  double mean[DPT_PHASE_COUNT]; /* mean over ranks */
} dpt_phase_stats;

/* "data", "forward", "backward", "comm_wait", "optimizer", "sync_check". */
const char *dpt_phase_name(dpt_phase p);
void dpt_timers_reset(dpt_timers *t);
void dpt_timer_start(dpt_timers *t, dpt_phase p);
/* Adds the time since the matching start; a stop without a start adds nothing. */
void dpt_timer_stop(dpt_timers *t, dpt_phase p);
/* Collective: max and mean over ranks of t->total, valid on rank 0 (other ranks get their
 * own totals in both fields). */
dpt_status dpt_timers_summarize(const dpt_comm *c, const dpt_timers *t, dpt_phase_stats *out);

#endif

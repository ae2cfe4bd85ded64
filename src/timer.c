/* timer.c — per-phase timers (see timer.h). */
#include "dptrain/timer.h"

#include <mpi.h>

#include "dptrain/watchdog.h"

static const char *const phase_names[DPT_PHASE_COUNT] = {"data",      "forward",   "backward",
                                                         "comm_wait", "optimizer", "sync_check"};

const char *dpt_phase_name(dpt_phase p) { return (unsigned)p < DPT_PHASE_COUNT ? phase_names[p] : "unknown"; }

void dpt_timers_reset(dpt_timers *t) {
  for (int i = 0; i < DPT_PHASE_COUNT; ++i) {
    t->total[i] = 0.0;
    t->since[i] = -1.0;
  }
}

/* Each phase is also a watchdog phase (watchdog.h); the reduction's wait and the sync check
 * wait for the other ranks. */
void dpt_timer_start(dpt_timers *t, dpt_phase p) {
  t->since[p] = MPI_Wtime();
  dpt_watchdog_enter(phase_names[p], p == DPT_PHASE_COMM_WAIT || p == DPT_PHASE_SYNC_CHECK);
}

void dpt_timer_stop(dpt_timers *t, dpt_phase p) {
  if (t->since[p] < 0.0) return;
  t->total[p] += MPI_Wtime() - t->since[p];
  t->since[p] = -1.0;
  dpt_watchdog_leave();
}

/* MPI_Op over one contiguous type of 2 * DPT_PHASE_COUNT doubles: max of the first half,
 * sum of the second. */
static void max_then_sum(void *in, void *inout, int *len, MPI_Datatype *type) {
  (void)type;
  const double *a = in;
  double *b = inout;
  for (int k = 0; k < *len; ++k, a += 2 * DPT_PHASE_COUNT, b += 2 * DPT_PHASE_COUNT)
    for (int i = 0; i < DPT_PHASE_COUNT; ++i) {
      b[i] = a[i] > b[i] ? a[i] : b[i];
      b[DPT_PHASE_COUNT + i] += a[DPT_PHASE_COUNT + i];
    }
}

dpt_status dpt_timers_summarize(const dpt_comm *c, const dpt_timers *t, dpt_phase_stats *out) {
  double in[2 * DPT_PHASE_COUNT], res[2 * DPT_PHASE_COUNT];
  for (int i = 0; i < DPT_PHASE_COUNT; ++i) in[i] = in[DPT_PHASE_COUNT + i] = t->total[i];
  for (int i = 0; i < 2 * DPT_PHASE_COUNT; ++i) res[i] = in[i];
  MPI_Datatype type;
  MPI_Op op;
  DPT_CALL_MPI(MPI_Type_contiguous(2 * DPT_PHASE_COUNT, MPI_DOUBLE, &type));
  MPI_Type_commit(&type);
  MPI_Op_create(max_then_sum, 1, &op);
  int rc = MPI_Reduce(in, res, 1, type, op, 0, c->comm);
  MPI_Op_free(&op);
  MPI_Type_free(&type);
  DPT_CHECK(rc == MPI_SUCCESS, DPT_ERR_MPI, "timers: MPI_Reduce of the phase times failed (error %d)", rc);
  if (c->rank != 0)
    for (int i = 0; i < 2 * DPT_PHASE_COUNT; ++i) res[i] = in[i];
  for (int i = 0; i < DPT_PHASE_COUNT; ++i) {
    out->max[i] = res[i];
    out->mean[i] = res[DPT_PHASE_COUNT + i] / (c->rank == 0 ? c->size : 1);
  }
  return DPT_OK;
}

/* trace.h — timeline of a run as Chrome trace-event JSON (chrome://tracing, Perfetto).
 *
 * Each rank records complete events ("ph":"X": name, category, start, duration) into its own
 * buffer; dpt_trace_write() (collective) corrects each rank's clock against rank 0's with a
 * barrier-based sync, gathers the events to rank 0, and writes one JSON file with one
 * process track per rank ("rank R") and, inside it, thread tracks: tid 0 for the step's
 * phases (data, forward_backward, comm_wait, optimizer inside each step), tid 1 for other
 * communication, tid 2 for I/O (checkpoints), and tid 16 + b for gradient bucket b's
 * MPI_Iallreduce from start to completion (buckets overlap each other, so each gets its own
 * track). Events on one thread track must nest (a phase inside a step), which the
 * caller guarantees by recording them from a strict begin/end discipline.
 *
 * Ownership: dpt_trace_create allocates (or sets *out = NULL when path is NULL: every
 * function accepts a NULL trace and does nothing, so call sites need no test);
 * dpt_trace_destroy frees. Times are MPI_Wtime() seconds. */
#ifndef DPTRAIN_TRACE_H
#define DPTRAIN_TRACE_H

#include <stdint.h>
#include "dptrain/comm.h"

typedef struct dpt_trace dpt_trace;

enum { DPT_TRACE_PHASES = 0, DPT_TRACE_COMM = 1, DPT_TRACE_IO = 2, DPT_TRACE_BUCKETS = 16 /* + bucket index */ };

/* Not collective. path NULL -> *out = NULL (tracing off). max_events bounds memory per rank
 * (0 = default 1,000,000); events past it are counted and dropped. */
dpt_status dpt_trace_create(const char *path, int64_t max_events, dpt_trace **out);
void dpt_trace_destroy(dpt_trace **t);
/* Records one complete event [t0, t1] on track tid; name and cat are copied (truncated to 47
 * characters); arg is shown as args.n when >= 0. */
void dpt_trace_event(dpt_trace *t, const char *name, const char *cat, int tid, double t0, double t1, int64_t arg);
/* Collective when the trace is on (all ranks must have created it with a path): writes the
 * merged file (tmp name, then rename) from rank 0. */
dpt_status dpt_trace_write(const dpt_comm *c, dpt_trace *t);
/* Events recorded and dropped on this rank. */
int64_t dpt_trace_count(const dpt_trace *t);
int64_t dpt_trace_dropped(const dpt_trace *t);

#endif

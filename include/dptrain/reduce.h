/* reduce.h — summing gradients over ranks: the fast bucketed overlapped reducer, the exact
 * (bitwise reproducible) fixed-point reducer, the agreed non-finite policy, the parameter
 * broadcast and the parameter sync check.
 *
 * One step with a reducer r over the flat gradient buffer grads[n]:
 *
 *   fast mode (parallel.reduce = fast):
 *     dpt_reducer_begin(r, 0);
 *     forward_backward(..., ready = dpt_reducer_ready, ctx = r);   (grads += local sums)
 *     dpt_reducer_finish(r, &loss, &skip);       (grads and loss now hold the global sums)
 *   The buffer is cut into buckets of parallel.bucket_mb MiB, bucket b covering
 *   [b * bucket_elems, (b+1) * bucket_elems). When every element of a bucket has been
 *   reported ready, its MPI_Iallreduce(MPI_IN_PLACE, MPI_SUM) starts. Buckets start in
 *   ascending order only (bucket b+1 never before bucket b, whatever order ready ranges
 *   arrive in), so every rank issues the same sequence of collectives; the engine reports
 *   the output layer first at the lowest offsets, so ascending order is also the order the
 *   backward pass completes them. finish starts any bucket not started yet (all of them
 *   when ready was never called), then waits: that wait is the "communication wait".
 *   With gradient accumulation over k micro-steps, pass ready only on the last one.
 *
 *   exact mode (parallel.reduce = exact):
 *     dpt_reducer_begin(r, M);   M = number of micro-batch terms summed in this step over
 *                                 all ranks (ceil(n_global / micro) * accumulate)
 *     for each of this rank's micro-batches: zero grads; forward_backward(rows of the
 *         micro-batch, scale = 1 / n_global, loss = &l with l = 0, ready = NULL);
 *         dpt_reducer_deposit(r, grads, l);
 *     dpt_reducer_finish(r, &loss, &skip);
 *   Each term is deposited into a per-element fixed-point accumulator of two int64 words
 *   (a "binned" sum as in ReproBLAS): elements are grouped in blocks of
 *   DPT_REDUCE_EXACT_BLOCK; each block has an anchor A, a multiple of W = 62 - ceil(log2 M)
 *   with every |term| < 2^A; a term g contributes trunc(g / u) * u with u = 2^(A - 2W),
 *   split exactly over the two words (units 2^(A-W) and 2^(A-2W)). When a larger term
 *   raises the anchor, words move down by whole bins. At finish the anchors are agreed with
 *   one MPI_MAX allreduce, words are moved to the agreed anchor, summed with one int64
 *   MPI_SUM allreduce, and each element is converted back once, correctly rounded. The
 *   result is sum_j trunc(g_j / u) * u rounded once to the dtype: it depends only on the
 *   set of terms, never on how they were grouped over ranks or the MPI algorithm, so it is
 *   bitwise identical for any number of ranks.
 *
 *   Accuracy (derived in README, section parallel; tested in test_reduce.c): with S the
 *   exact sum of the M terms of one element and m the largest |term| in its block,
 *   the result R satisfies
 *       |R - S| <= |F - S| + 2 * M * m * 2^-W      for ANY dtype-precision sum F of the
 *                                                   same terms (float32 sum in any order),
 *       |R - S| <= ulp(R) / 2 + M * m * 2^-W,
 *   and M * m * 2^-W <= 2^(2 ceil(log2 M) - 62) * m. For M <= 2^10 terms, 2 M m 2^-W <=
 *   2^-41 m, which is at most 2^-10 of half a float32 ulp of every element whose sum is
 *   larger than 2^-6 m: for those elements exact mode is as accurate as the best float32
 *   sum, element by element, up to that margin.
 *
 * Non-finite policy (train.on_nonfinite): each rank checks its own loss and gradient
 * (fast: every bucket before its allreduce starts; exact: every deposited term); finish
 * agrees the lowest rank that saw a non-finite value with one small allreduce. abort:
 * every rank returns DPT_ERR_NUMERIC with the same message naming that rank; skip: every
 * rank returns DPT_OK with *skip = true (the caller drops the step and counts it).
 *
 * Ownership: dpt_reducer_create allocates; dpt_reducer_destroy(&r) frees and sets NULL.
 * The gradient buffer and the comm are borrowed (they must outlive the reducer).
 * Collective: create, begin (no communication, but every rank must call it), finish,
 * destroy; ready and deposit are local. */
#ifndef DPTRAIN_REDUCE_H
#define DPTRAIN_REDUCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/model.h"
#include "dptrain/timer.h"
#include "dptrain/types.h"

/* Elements per exact-mode block (one anchor each). Fixed: the anchors must not depend on P. */
#define DPT_REDUCE_EXACT_BLOCK 1024

typedef enum dpt_reduce_mode { DPT_REDUCE_FAST = 0, DPT_REDUCE_EXACT = 1 } dpt_reduce_mode;
typedef enum dpt_nonfinite_policy { DPT_NONFINITE_ABORT = 0, DPT_NONFINITE_SKIP = 1 } dpt_nonfinite_policy;

/* The [parallel] keys and train.on_nonfinite, resolved. */
typedef struct dpt_reduce_opts {
  dpt_reduce_mode mode;            /* parallel.reduce = fast | exact (default fast) */
  double bucket_mb;                /* parallel.bucket_mb, MiB per bucket, (0, 1024], default 4 */
  int64_t micro_batch;             /* parallel.micro_batch, rows (exact mode), >= 1, default 32 */
  int64_t accumulate;              /* parallel.accumulate, micro-steps per optimizer step, >= 1, default 1 */
  int64_t check_sync;              /* parallel.check_sync, steps between sync checks, 0 = never (default) */
  dpt_nonfinite_policy on_nonfinite; /* train.on_nonfinite = abort | skip (default abort) */
} dpt_reduce_opts;

/* Reads the keys above (typed getters: a bad value is an error naming the key). */
dpt_status dpt_reduce_opts_read(dpt_config *cfg, dpt_reduce_opts *out);
/* The defaults, without a config. */
void dpt_reduce_opts_default(dpt_reduce_opts *out);

typedef struct dpt_reducer dpt_reducer;

/* Counters since create (local to this rank). */
typedef struct dpt_reducer_stats {
  int64_t steps;               /* finish calls */
  int64_t buckets;             /* buckets per step (fast mode) */
  int64_t started_in_backward; /* buckets started from ready (before finish), all steps */
  int64_t started_in_finish;   /* buckets started by finish, all steps */
  double wait_s;               /* seconds spent in finish (communication wait), all steps */
  int64_t skipped;             /* steps with a non-finite value under on_nonfinite = skip */
} dpt_reducer_stats;

/* Collective. grads: the flat [n] gradient buffer in dtype (borrowed). */
dpt_status dpt_reducer_create(const dpt_comm *c, const dpt_reduce_opts *opts, dpt_dtype dtype, size_t n, void *grads,
                              dpt_reducer **out);
/* Collective. Waits for anything outstanding, frees, sets *r = NULL. NULL-safe. */
void dpt_reducer_destroy(dpt_reducer **r);

/* Starts a step. terms: exact mode, the number of terms all ranks together will deposit
 * this step (the same value on every rank; finish fails if more arrive); ignored in fast
 * mode. */
dpt_status dpt_reducer_begin(dpt_reducer *r, int64_t terms);
/* The model's grad-ready callback (dpt_grad_ready_fn): grads[offset, offset+count) is final
 * for this step. ctx is the reducer. Fast mode: may start bucket allreduces and progresses
 * the outstanding ones. Exact mode: does nothing. Misuse (a range outside the buffer or
 * reported twice) is recorded and reported, agreed, by finish. */
void dpt_reducer_ready(void *ctx, size_t offset, size_t count);
/* Exact mode: adds one micro-batch term (grads [n] in dtype, loss its loss sum). */
dpt_status dpt_reducer_deposit(dpt_reducer *r, const void *grads, double loss);
/* Collective. Completes the step: the gradient buffer then holds the sum over ranks (fast)
 * or the exact sum of the deposited terms (exact), identical on every rank; *loss: in fast
 * mode the local loss sum on entry and the global sum on return; in exact mode (ignored on
 * entry) the exact sum of the deposited losses. Applies the non-finite policy (see top). */
dpt_status dpt_reducer_finish(dpt_reducer *r, double *loss, bool *skip);

/* The training loop's side of one optimizer step (src/reduce_step.c), for both modes:
 *   dpt_reducer_begin(r, dpt_reducer_terms(r, B));       B = the global batch size setting
 *   dpt_model_zero_grads(m);
 *   for each of the parallel.accumulate micro-steps i (every rank, same count):
 *       loader batch -> dpt_reducer_add_batch(r, m, X, &y, n, 1 / (n_global * accumulate)
 *                       (or the caller's scale), i == accumulate - 1, &loss, timers);
 *   dpt_reducer_finish(r, &loss, &skip);                  (time it as comm_wait)
 * add_batch runs the engine's forward+backward (timed as the "backward" phase): fast mode over
 * all n rows at once, grads accumulating, with the reducer's ready callback on the last
 * micro-step; exact mode micro-batch by micro-batch (this rank's rows must start at a
 * multiple of parallel.micro_batch in the global batch, as dpt_shard_batch gives), zeroing
 * the gradient buffer before each and depositing it after. *loss accumulates this rank's
 * loss sum (fast; exact deposits it). X, y are borrowed for the call. */
int64_t dpt_reducer_terms(const dpt_reducer *r, int64_t batch_global);
dpt_status dpt_reducer_add_batch(dpt_reducer *r, dpt_model *m, const void *X, const dpt_targets *y, int64_t n,
                                 double scale, bool last, double *loss, dpt_timers *timers);
/* The options the reducer was created with. */
const dpt_reduce_opts *dpt_reducer_opts(const dpt_reducer *r);

/* Fast mode: when each bucket's MPI_Iallreduce of the last step started and was seen complete
 * (MPI_Wtime seconds; borrowed arrays, valid until the next step); returns the bucket count,
 * 0 in exact mode. For the timeline (trace.h). */
size_t dpt_reducer_bucket_times(const dpt_reducer *r, const double **start, const double **done);
void dpt_reducer_get_stats(const dpt_reducer *r, dpt_reducer_stats *out);
/* Elements per bucket (fast mode). */
size_t dpt_reducer_bucket_elems(const dpt_reducer *r);

/* Collective: buf[n] in dtype from rank 0 to every rank (identical start). */
dpt_status dpt_reduce_broadcast(const dpt_comm *c, void *buf, dpt_dtype dtype, size_t n);

/* One named tensor of a flat buffer (the sync check reports the first that differs). */
typedef struct dpt_reduce_tensor {
  const char *name; /* borrowed */
  size_t offset;    /* first element */
  size_t count;     /* elements */
} dpt_reduce_tensor;

/* 64-bit hash of bytes (FNV-1a over 8-byte words, then the tail bytes): any change of one
 * word changes the hash. */
uint64_t dpt_reduce_hash(const void *data, size_t bytes);

/* Collective: hashes each tensor of params[...] in dtype, one allreduce of MIN and MAX of
 * every hash; when they differ, every rank returns DPT_ERR_INTERNAL with one message naming
 * the step, the first tensor that differs, and the ranks whose copy differs from rank 0's
 * (found with one more small collective). */
dpt_status dpt_reduce_check_sync(const dpt_comm *c, const void *params, dpt_dtype dtype, const dpt_reduce_tensor *t,
                                 int n_tensors, int64_t step);

#endif

/* reduce.h — summing gradients over ranks: the fast bucketed overlapped reducer, the exact
 * (bitwise reproducible) pairwise-tree reducer, the agreed non-finite policy, the parameter
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
 *     dpt_reducer_begin(r, M);   M = number of micro-batch terms of this step over all ranks
 *                                 (ceil(B / micro) * accumulate: an upper bound, terms may be missing)
 *     for each of this rank's micro-batches, term index j (any order):
 *         dpt_reducer_leaf(r, &leaf);                (a zeroed buffer of the reducer's)
 *         forward_backward_into(leaf, rows of the micro-batch, scale = 1 / n_global,
 *         loss = &l with l = 0); dpt_reducer_deposit_leaf(r, j, l);
 *         (or, from a buffer of the caller's: dpt_reducer_deposit(r, j, grads, l), a copy)
 *     dpt_reducer_finish(r, &loss, &skip);
 *   The sum is a fixed pairwise tree over the term index: the terms are the leaves 0..M-1
 *   (the loss is one more element of each), node (L, i) covers leaves [i 2^L, (i+1) 2^L),
 *   the root is (ceil(log2 M), 0). A node's value is fl(left + right) in double when both
 *   children hold a deposited term, the one child's value when only one does (no add); the
 *   root's value is rounded once to the dtype (the loss stays double). The tree depends on M
 *   only, so the result depends only on the set of (j, term) pairs: bitwise identical for
 *   any number of ranks and any way of spreading the terms over them.
 *   A rank holds complete nodes (all 2^L leaves deposited here): a deposited term is held
 *   as a leaf (in the buffer it was computed in), and a merge pass replaces held siblings
 *   by their parent, recursively, each new node in one pass over the elements that reads
 *   every part once (a program over blocks of 32 elements: 2 to 4 times less memory traffic
 *   than merging at every deposit, which re-read the held nodes each time). The pass runs
 *   when the held leaves reach a cap (as many as fit 128 MiB of node buffers, 2 to 16) and
 *   at finish; the order of deposits does not matter. finish gathers the node positions and
 *   losses everywhere (MPI_Allgather(v), tiny; a term held by two ranks is an agreed error),
 *   sends slice q (of P contiguous slices of the n elements) of every node to rank q
 *   (MPI_Alltoallw; a rank reads its own nodes in place), which evaluates the tree on its slice from the root down, and gathers
 *   the rounded slices into every rank's gradient buffer in the dtype (MPI_Alltoallw). A
 *   leaf of an f32 reducer is stored and sent as float (one term is exactly a float), other
 *   nodes as double. With one node per rank and f32 each rank sends (P-1)/P n (4 or 8) bytes
 *   and then (P-1)/P n 4 bytes: 1 to 1.5 times a float32 ring allreduce.
 *   Memory: one vector of n doubles per held node plus two spares: at most the leaf cap plus
 *   about log2 M + 2 for one contiguous range of terms (a rank's terms in training, see
 *   add_batch; while accumulating over k micro-steps about 2 log2 k + 1 per micro-batch of
 *   the rank), plus
 *   the receive buffer of (nodes over all ranks) x ceil(n / P) doubles, all kept across
 *   steps (owned by the reducer).
 *
 *   Accuracy (derived in README, section parallel; tested in test_reduce.c): with S the
 *   exact sum of the M terms g_j of one element, D the tree value in double, h =
 *   ceil(log2 M) and u = 2^-53:
 *       |D - S| <= ((1 + u)^h - 1) * sum_j |g_j|   (= h u sum_j |g_j| to first order),
 *   and R = D rounded to the dtype satisfies, for ANY dtype-precision sum F of the same
 *   terms (float32 sum in any order),
 *       |R - S| <= |F - S| + 2 |D - S|,      |R - S| <= ulp(R) / 2 + |D - S|.
 *   For f32 and M <= 2^10 terms, 2 |D - S| <= 20 * 2^-53 sum|g_j|: below 2^-18 of half a
 *   float32 ulp of every element whose sum is larger than 2^-5 sum|g_j|.
 *
 * Non-finite policy (train.on_nonfinite): each rank checks its own loss and gradient
 * (fast: every bucket before its allreduce starts; exact: every node a merge pass makes,
 * which holds a NaN or an infinity when one of its terms does, and every term left
 * unmerged, at finish); finish
 * agrees the lowest rank that saw a non-finite value with one small allreduce. Finite terms
 * can still sum to an infinity: exact mode checks each rank's slice of the root as it is
 * rounded (one more small allreduce); fast mode checks the summed buffer on the ranks that
 * hold an element above max / 2P (max: the dtype's largest finite value; none in a sane
 * step, so no cost). abort: every rank returns DPT_ERR_NUMERIC with the same message naming
 * that rank ("non-finite gradient sum" for a sum of finite terms; in exact mode a double
 * overflow inside one rank's merged terms is that rank's); skip: every rank returns DPT_OK
 * with *skip = true (the caller drops the step and counts it). The decision is the same for
 * every P in exact mode. Misuse (below) outranks a non-finite value: it is reported even
 * under skip, as DPT_ERR_INTERNAL on every rank, and so is an exact step whose ranks
 * declared different M at begin.
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

/* Starts a step. terms: exact mode, M, the number of leaves of this step's tree (the same
 * value on every rank, 0 .. 2^30): deposited term indices must lie in [0, M); ignored in
 * fast mode. */
dpt_status dpt_reducer_begin(dpt_reducer *r, int64_t terms);
/* The model's grad-ready callback (dpt_grad_ready_fn): grads[offset, offset+count) is final
 * for this step. ctx is the reducer. Fast mode: may start bucket allreduces and progresses
 * the outstanding ones. Exact mode: does nothing. Misuse (a range outside the buffer or
 * reported twice) is recorded and reported, agreed, by finish. */
void dpt_reducer_ready(void *ctx, size_t offset, size_t count);
/* Exact mode: adds term j (grads [n] in dtype, borrowed for the call; loss its loss sum).
 * j must be in [0, M), deposited once over all ranks in a step, in any order (checked,
 * agreed, at finish). Misuse is recorded and reported by finish; fails only
 * when a node vector cannot be allocated (local: agree it). */
dpt_status dpt_reducer_deposit(dpt_reducer *r, int64_t j, const void *grads, double loss);
/* Exact mode, the same without the copy: *buf is a zeroed [n] buffer in dtype, owned by the
 * reducer, for the next term's gradient (the engine accumulates into it directly); valid
 * until the next call on r, which must be dpt_reducer_deposit_leaf(r, j, loss) for that
 * term (another leaf, a copying deposit or finish instead: misuse, reported by finish).
 * leaf fails (locally) when the buffer cannot be allocated, and in fast mode. */
dpt_status dpt_reducer_leaf(dpt_reducer *r, void **buf);
dpt_status dpt_reducer_deposit_leaf(dpt_reducer *r, int64_t j, double loss);
/* Exact mode: the leaf handed out will not be deposited, because the caller failed to
 * compute its term and will fail the step itself (its error agreed after finish, whose sum
 * then lacks the term). Not misuse; nothing when no leaf is out. */
void dpt_reducer_drop_leaf(dpt_reducer *r);
/* Collective. Completes the step: the gradient buffer then holds the sum over ranks (fast)
 * or the tree sum of the deposited terms (exact), identical on every rank; *loss: in fast
 * mode the local loss sum on entry and the global sum on return; in exact mode (ignored on
 * entry) the tree sum of the deposited losses, in double. Applies the non-finite policy (see top). */
dpt_status dpt_reducer_finish(dpt_reducer *r, double *loss, bool *skip);

/* The training loop's side of one optimizer step (src/reduce_step.c), for both modes:
 *   dpt_reducer_begin(r, dpt_reducer_terms(r, B));       B = the global batch size setting
 *   dpt_model_zero_grads(m);
 *   for each of the parallel.accumulate micro-steps i (every rank, same count):
 *       loader batch -> dpt_reducer_add_batch(r, m, X, &y, n, first, i,
 *                       1 / (n_global * accumulate) (or the caller's scale),
 *                       i == accumulate - 1, &loss, timers);
 *   dpt_reducer_finish(r, &loss, &skip);                  (time it as comm_wait)
 * add_batch runs the engine's forward+backward (timed as the "backward" phase): fast mode over
 * all n rows at once, grads accumulating, with the reducer's ready callback on the last
 * micro-step; exact mode micro-batch by micro-batch, zeroing the gradient buffer before each
 * and depositing micro-batch b of the global batch (b = first / micro + k for this rank's
 * k-th) as term j = b * accumulate + i, so that a rank's terms of one step form one
 * contiguous range (first: the position of this rank's first row in the global batch,
 * dpt_batch.first; it must be a multiple of parallel.micro_batch, as dpt_shard_batch gives:
 * otherwise DPT_ERR_INPUT, e.g. with data.shuffle = local). *loss accumulates this rank's
 * loss sum (fast; exact deposits it). X, y are borrowed for the call. */
int64_t dpt_reducer_terms(const dpt_reducer *r, int64_t batch_global);
dpt_status dpt_reducer_add_batch(dpt_reducer *r, dpt_model *m, const void *X, const dpt_targets *y, int64_t n,
                                 int64_t first, int64_t micro_step, double scale, bool last, double *loss,
                                 dpt_timers *timers);
/* Exact mode, for tests: the most elements of one block in one MPI call of finish (default
 * and maximum 2^28, as MPI counts are int); a small value exercises the chunked path. */
void dpt_reducer_set_chunk(dpt_reducer *r, size_t elems);
/* Exact mode, for tests: the held leaves that start a merge pass (default: as many as fit
 * 128 MiB of node buffers, 2 to 16); 1 merges at every deposit. */
void dpt_reducer_set_leaf_cap(dpt_reducer *r, size_t leaves);
/* The options the reducer was created with. */
const dpt_reduce_opts *dpt_reducer_opts(const dpt_reducer *r);

/* Fast mode: when each bucket's MPI_Iallreduce of the last step started and was seen complete
 * (MPI_Wtime seconds; borrowed arrays, valid until the next step); returns the bucket count,
 * 0 in exact mode. For the timeline (trace.h). */
size_t dpt_reducer_bucket_times(const dpt_reducer *r, const double **start, const double **done);
void dpt_reducer_get_stats(const dpt_reducer *r, dpt_reducer_stats *out);
/* Elements per bucket (fast mode). */
size_t dpt_reducer_bucket_elems(const dpt_reducer *r);
/* Bytes the reducer holds at least during a step, beyond the gradient buffer: exact mode's
 * leaf buffer and the merge pass's spare (2 x 8 bytes per parameter); fast mode none. */
size_t dpt_reducer_memory_floor(const dpt_reducer *r);

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

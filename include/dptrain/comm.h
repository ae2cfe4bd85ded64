/* comm.h — the world (rank, size, node), agreement of errors across ranks, batch sharding,
 * and BLAS thread policy.
 *
 * comm is the only module that calls MPI for training traffic. A dpt_comm is a value type
 * owned by whoever declares it; it duplicates MPI_COMM_WORLD (so dptrain's traffic never
 * mixes with the user's) and frees the duplicate in dpt_comm_finalize().
 *
 * An MPI call that fails on c->comm (or on a communicator derived from it, which inherits
 * the handler) prints "dptrain: fatal on rank R: MPI call failed: <MPI's message>" and calls
 * MPI_Abort: one rank cannot report such a failure to ranks already waiting in a collective,
 * so returning an error would leave them blocked. The checks of MPI return codes that remain
 * in the code serve communicators made elsewhere (MPI_COMM_SELF in benchmarks). */
#ifndef DPTRAIN_COMM_H
#define DPTRAIN_COMM_H

#include <mpi.h>
#include <stdint.h>
#include <stdbool.h>
#include "dptrain/error.h"

typedef struct dpt_comm {
  MPI_Comm comm;      /* duplicate of MPI_COMM_WORLD; a failed call on it aborts the job */
  int rank, size;     /* in comm */
  int local_rank;     /* rank among the ranks on this node */
  int local_size;     /* number of ranks on this node */
} dpt_comm;

/* Local; call before MPI_Init (every dptrain program does). Sets the Open MPI parameters
 * dptrain relies on, each only when the environment does not set it already (other MPI
 * libraries ignore them):
 *   OMPI_MCA_coll_libnbc_iallreduce_algorithm=3  Rabenseifner's MPI_Iallreduce for the fast
 *       reducer's buckets: 2.2 ms for the 7 MiB gradient of the benchmark MLP at 2 ranks on
 *       one node, against 7-11 ms with libnbc's default choice (README "Data parallelism");
 *   OMPI_MCA_io=^ompio  ROMIO for MPI-IO: Open MPI 4.1's OMPIO drops the error of a failed
 *       preadv (the bytes come back as zeros: HDF5 then failed on one rank only, or handed
 *       another rank wrong data without an error) and a failed write left the ranks in
 *       different collectives inside H5Fflush (a hang); ROMIO returns MPI_ERR_IO, which
 *       src/h5_mpio.c makes one fatal line (README "Failures only one rank sees"). */
void dpt_comm_preinit(void);
/* Collective over MPI_COMM_WORLD (MPI must be initialized). */
dpt_status dpt_comm_init_world(dpt_comm *c);
/* Collective; frees the duplicated communicators. */
void dpt_comm_finalize(dpt_comm *c);

/* Collective. Every rank passes its local status; if any rank failed, every rank returns
 * the status of the lowest failing rank with that rank's message (prefixed "rank R: " when
 * size > 1) installed as its own error, so rank 0 can print it once. Returns DPT_OK when
 * every rank succeeded. Call it at phase boundaries (after open/validate, after a step). */
dpt_status dpt_comm_agree(const dpt_comm *c, dpt_status local);

/* Collective: the outcome of a collective call that can fail on some ranks only (a
 * collective HDF5 file open or create). Succeeded everywhere: DPT_OK. Failed everywhere: as
 * dpt_comm_agree. Succeeded on some ranks and failed on others: those ranks now hold objects
 * the others do not, and releasing them is collective too, so no rank can go on: rank 0
 * prints "dptrain: fatal on rank 0: <what> succeeded on some ranks only; <the lowest failing
 * rank's error>" and aborts the job (the other ranks wait for the abort; they print
 * nothing, so the cause is one line). */
dpt_status dpt_comm_agree_collective(const dpt_comm *c, dpt_status local, const char *what);

/* Collective: logical OR of a flag over ranks (stop requests, NaN seen, ...). */
dpt_status dpt_comm_any(const dpt_comm *c, bool local, bool *any);

/* Collective: dpt_comm_agree(c, local) and dpt_comm_any(c, flag, any) in one MPI_Allreduce
 * (the training loop's end-of-step check: one latency per step, not two). *any is set on
 * every rank, also when the agreed status is a failure. */
dpt_status dpt_comm_agree_any(const dpt_comm *c, dpt_status local, bool flag, bool *any);

/* Prints "dptrain: fatal on rank R: <message>" to stderr and calls MPI_Abort: for the
 * cases where agreement is impossible (a collective is stuck, state diverged). */
_Noreturn void dpt_comm_abort(const dpt_comm *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Even split of n items over P parts: part r gets [*begin, *begin + *count), the first
 * n % P parts one item more. Every item in exactly one part; a part may be empty. */
void dpt_shard_range(int64_t n, int parts, int r, int64_t *begin, int64_t *count);

/* Rows of one global batch of n_global rows that rank r of P computes.
 * micro == 0 (fast mode): the even split dpt_shard_range(n_global, P, r).
 * micro > 0 (exact mode): the batch is cut into ceil(n_global / micro) micro-batches of micro
 * rows (the last may be short); rank r gets the whole micro-batches
 * dpt_shard_range(n_micro, P, r), i.e. rows [begin, begin + count) with begin a multiple of
 * micro. The cut does not depend on P, so exact mode can sum per-micro-batch gradients in
 * a fixed order. */
void dpt_shard_batch(int64_t n_global, int64_t micro, int parts, int r, int64_t *begin, int64_t *count);

/* Sets OpenBLAS's thread count: requested > 0 wins; else OPENBLAS_NUM_THREADS from the
 * environment if set; else 1 when several ranks share this node, all cores when alone; then
 * the smallest of the ranks' counts, so that every rank's BLAS rounds alike (a threaded dot
 * product sums in per-thread parts: decisions taken on such values, e.g. in the second-order
 * solvers, would otherwise differ between ranks). Returns the count in use in *used.
 * Collective over c. */
dpt_status dpt_comm_set_blas_threads(const dpt_comm *c, int requested, int *used);
/* Local; the same result on every rank of a node when they run the same config. Fails
 * naming `key` when `bytes` per rank, times the ranks of this node (c->local_size), exceed
 * the node's physical memory; `parts` says what the bytes are, for the message:
 *   KEY: training needs 42.4 GiB on this node (2 rank(s) x 21.2 GiB: PARTS): more than its
 *   23.5 GiB of memory
 * Linux grants malloc'ed memory lazily, so a run that cannot fit is otherwise killed by the
 * OOM killer when it first touches it (or the node swaps), and no message names the cause:
 * call this after allocating and before touching. Nothing is checked when the physical
 * memory is unknown. */
dpt_status dpt_comm_check_node_memory(const dpt_comm *c, double bytes, const char *key, const char *parts);

#endif

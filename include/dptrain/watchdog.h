/* watchdog.h — no rank waits forever for a rank that has stalled.
 *
 * An error on one rank is agreed at the next phase boundary (comm.h), and a failed MPI or
 * MPI-IO call aborts the job (comm.c, h5_mpio.c). Neither helps when a rank stops making
 * progress without failing: a process stopped by SIGSTOP, a read that never returns from a
 * hung file system, an endless loop. The others then wait in their next collective call for
 * ever. The watchdog is a thread per process that notices that the training thread has made
 * no progress for parallel.timeout seconds (default 600, PyTorch's NCCL default; 0: no
 * watchdog) and ends the job.
 *
 * Progress is a mark: entering or leaving a phase (dpt_watchdog_enter/leave: the timers of
 * timer.h, the error agreement of comm.h, a checkpoint write), a new training step, or
 * dpt_watchdog_progress() from a long local loop. The thread wakes every 0.25 s; when the
 * time since the last mark passes the limit it writes one line to stderr and calls
 * _exit(1). The launcher then ends the other ranks (mpirun ends a job when a rank exits
 * non-zero; srun with --kill-on-bad-exit=1), and if it does not, their own watchdogs end
 * them. (MPI_Abort is not used: dptrain initializes MPI_THREAD_FUNNELED, under which only
 * the main thread may call MPI.)
 *
 *   dptrain: fatal on rank 1: no progress for 3 s in training step (step 5): this rank is
 *       stalled there, or waits for a rank that is (parallel.timeout = 2 s); stopping all
 *   dptrain: fatal on rank 0: no progress for 5 s in agreeing on errors (step 5), which waits
 *       for every rank: on this node, rank 2 (pid 4711) is stopped (SIGSTOP or a debugger)
 *       (parallel.timeout = 2 s); stopping all
 * (a waiting rank names the ranks of its node whose processes are stopped, in uninterruptible
 * sleep or gone, dpt_watchdog_find_peers; else it says "a rank is stalled, stopped or lost")
 *
 *   dptrain: fatal on rank 1: no progress for 2 s in writing a checkpoint (step 5): blocked in
 *       the system call pwrite64 on /scratch/ck/ckpt-00000005.h5.tmp (a hung file system?) ...
 *
 * Which rank speaks first: a rank whose current phase is a wait for the others (entered with
 * waits = true) allows a grace of 2 s + timeout / 20 more, so that a stalled rank whose thread
 * still runs names itself. Among the waiting ones, a rank that finds a rank of its node
 * stopped, in uninterruptible sleep or gone speaks next (rank 0 first, the others 0.5 s
 * later), so that a rank stopped on another node than rank 0's is named by a rank of its
 * own node; then rank 0 (2 s more), then the others (4 s more); the launcher usually ends
 * the rest before they do. A rank whose training thread
 * was in the same file I/O system call (read, write, pread64, pwrite64, fsync, close, ...,
 * /proc/self/task/TID/syscall) at every look since its last mark is the stalled one whatever
 * its phase: it allows no grace and names the call and the file; every other rank allows
 * 0.5 s more than it (one look or two), so that such a rank wins a tie.
 *
 * Time during which the whole process was suspended (SIGSTOP / SIGCONT, Slurm's job suspend,
 * a debugger's stop) does not count: each wake-up adds at most 0.5 s.
 *
 * One watchdog per process (the state is the process's): start and stop it from the thread
 * that trains; the marks are for that thread only. Marks cost two relaxed atomic stores and
 * are cheap when no watchdog runs. Nothing here allocates; the thread is owned by this
 * module and joined by dpt_watchdog_stop(). */
#ifndef DPTRAIN_WATCHDOG_H
#define DPTRAIN_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

#include "dptrain/comm.h"
#include "dptrain/error.h"

/* parallel.timeout's default, in seconds (PyTorch's NCCL default). */
#define DPT_WATCHDOG_DEFAULT_TIMEOUT_S 600.0

/* Local. Starts the thread with a limit of timeout_s seconds (0: none is started; must be
 * finite and >= 0) for messages naming `rank`, and resets the phase stack to "setting up"
 * (a wait: setting up is mostly collective I/O) with no step. A second start without a stop
 * is an error. */
dpt_status dpt_watchdog_start(double timeout_s, int rank);
/* Collective over c; call before dpt_watchdog_start (and only when a limit is set): learns
 * the process ids of the ranks on this node (one allgather over the node's ranks), so that a
 * rank whose wait times out can say which of them is stopped, in uninterruptible sleep or
 * gone (/proc/PID/stat; nothing when the ranks do not share a /proc, as in one container per
 * rank). Errors are agreed. Test hook: DPT_TEST_NODE_SIZE=k takes nodes to be k consecutive
 * ranks each. */
dpt_status dpt_watchdog_find_peers(const dpt_comm *c);
/* Local. Stops and joins the thread (no-op when none runs) and forgets the peers. */
void dpt_watchdog_stop(void);

/* Progress marks (see above). `what` must outlive the watchdog (a string literal); `waits`
 * says the phase is a wait for the other ranks. The stack of phases is 8 deep; deeper
 * enters replace the top. leave() on an empty stack only marks progress. */
void dpt_watchdog_enter(const char *what, bool waits);
void dpt_watchdog_leave(void);
void dpt_watchdog_progress(void);
/* A new training step (1-based, for the message); resets the stack to "training step",
 * not a wait. */
void dpt_watchdog_step(int64_t step);

/* The extra seconds a waiting rank allows before it speaks (see above); sees_peer: it finds
 * a rank of its node stopped, in uninterruptible sleep or gone. */
double dpt_watchdog_grace(double timeout_s, int rank, bool sees_peer);

#endif

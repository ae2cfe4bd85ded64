/* comm.c — world setup, error agreement, sharding, BLAS threads (see comm.h). */
#include "dptrain/comm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "dptrain/watchdog.h"

/* A failed MPI call on one rank cannot be agreed (the others are already inside, or about
 * to enter, a collective that will never complete), so it ends the job: the MPI error string
 * and this rank go to stderr, then MPI_Abort stops every rank. */
static void on_mpi_error(MPI_Comm *comm, int *code, ...) {
  (void)comm;
  char what[MPI_MAX_ERROR_STRING + 1] = "";
  int len = 0, rank = -1;
  if (MPI_Error_string(*code, what, &len) != MPI_SUCCESS) snprintf(what, sizeof what, "error code %d", *code);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  fprintf(stderr, "dptrain: fatal on rank %d: MPI call failed: %s (no rank can go on alone; stopping all)\n", rank,
          what);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

void dpt_comm_preinit(void) {
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
  setenv("OMPI_MCA_io", "^ompio", 0);
}

dpt_status dpt_comm_init_world(dpt_comm *c) {
  memset(c, 0, sizeof *c);
  DPT_CALL_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &c->comm));
  MPI_Errhandler fatal;
  DPT_CALL_MPI(MPI_Comm_create_errhandler(on_mpi_error, &fatal));
  DPT_CALL_MPI(MPI_Comm_set_errhandler(c->comm, fatal));
  MPI_Errhandler_free(&fatal); /* the communicator keeps its own reference */
  DPT_CALL_MPI(MPI_Comm_rank(c->comm, &c->rank));
  DPT_CALL_MPI(MPI_Comm_size(c->comm, &c->size));
  MPI_Comm node;
  DPT_CALL_MPI(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
  MPI_Comm_rank(node, &c->local_rank);
  MPI_Comm_size(node, &c->local_size);
  MPI_Comm_free(&node);
  return DPT_OK;
}

void dpt_comm_finalize(dpt_comm *c) {
  if (c->comm != MPI_COMM_NULL && c->comm != 0) MPI_Comm_free(&c->comm);
  c->comm = MPI_COMM_NULL;
}

dpt_status dpt_comm_check_node_memory(const dpt_comm *c, double bytes, const char *key, const char *parts) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return DPT_OK;
  const double gib = 1073741824.0, mem = (double)pages * (double)page, node = bytes * c->local_size;
  DPT_CHECK(node <= mem, DPT_ERR_INPUT,
            "%s: training needs %.3g GiB on this node (%d rank(s) x %.3g GiB: %s): more than its %.3g GiB of memory",
            key, node / gib, c->local_size, bytes / gib, parts, mem / gib);
  return DPT_OK;
}

dpt_status dpt_comm_agree_any(const dpt_comm *c, dpt_status local, bool flag, bool *any) {
  /* Lowest failing rank wins: MIN over (failed ? rank : size); the flag rides along as MIN of
   * (flag ? 0 : 1). */
  int mine[2] = {local != DPT_OK ? c->rank : c->size, flag ? 0 : 1}, all[2];
  dpt_watchdog_enter("agreeing on errors", true);
  int rc = MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, c->comm);
  dpt_watchdog_leave();
  if (rc != MPI_SUCCESS)
    dpt_comm_abort(c, "error agreement failed (MPI_Allreduce); local error: %s", dpt_error_message());
  int first = all[0];
  *any = all[1] == 0;
  if (first == c->size) return DPT_OK;
  struct {
    int code;
    char msg[1000];
  } pkt;
  memset(&pkt, 0, sizeof pkt);
  if (c->rank == first) {
    pkt.code = (int)local;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rank %d: ", first);
    /* an error agreed before (nested phases) already names its rank */
    if (c->size > 1 && strncmp(dpt_error_message(), "rank ", 5) != 0)
      snprintf(pkt.msg, sizeof pkt.msg, "%s%s", prefix, dpt_error_message());
    else
      snprintf(pkt.msg, sizeof pkt.msg, "%s", dpt_error_message());
  }
  if (MPI_Bcast(&pkt, (int)sizeof pkt, MPI_BYTE, first, c->comm) != MPI_SUCCESS)
    dpt_comm_abort(c, "error agreement failed (MPI_Bcast); local error: %s", dpt_error_message());
  dpt_error_replace((dpt_status)pkt.code, pkt.msg);
  return (dpt_status)pkt.code;
}

dpt_status dpt_comm_agree(const dpt_comm *c, dpt_status local) {
  bool unused;
  return dpt_comm_agree_any(c, local, false, &unused);
}

dpt_status dpt_comm_agree_collective(const dpt_comm *c, dpt_status local, const char *what) {
  bool any_ok;
  dpt_status st = dpt_comm_agree_any(c, local, local == DPT_OK, &any_ok);
  if (st == DPT_OK || !any_ok) return st;
  if (c->rank == 0) dpt_comm_abort(c, "%s succeeded on some ranks only; %s", what, dpt_error_message());
  for (int waited = 0; waited < 60; ++waited) sleep(1); /* rank 0's MPI_Abort ends this rank */
  dpt_comm_abort(c, "%s succeeded on some ranks only, and rank 0 did not abort within 60 s", what);
}

dpt_status dpt_comm_any(const dpt_comm *c, bool local, bool *any) {
  int in = local ? 1 : 0, out = 0;
  dpt_watchdog_enter("agreeing on a decision", true);
  int rc = MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, c->comm);
  dpt_watchdog_leave();
  DPT_CALL_MPI(rc);
  *any = out != 0;
  return DPT_OK;
}

_Noreturn void dpt_comm_abort(const dpt_comm *c, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "dptrain: fatal on rank %d: %s\n", c ? c->rank : -1, buf);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  abort(); /* not reached */
}

void dpt_shard_range(int64_t n, int parts, int r, int64_t *begin, int64_t *count) {
  int64_t base = n / parts, extra = n % parts;
  *begin = r * base + (r < extra ? r : extra);
  *count = base + (r < extra ? 1 : 0);
}

void dpt_shard_batch(int64_t n_global, int64_t micro, int parts, int r, int64_t *begin, int64_t *count) {
  if (micro <= 0) {
    dpt_shard_range(n_global, parts, r, begin, count);
    return;
  }
  int64_t n_micro = (n_global + micro - 1) / micro, mb, mc;
  dpt_shard_range(n_micro, parts, r, &mb, &mc);
  int64_t lo = mb * micro, hi = (mb + mc) * micro;
  if (lo > n_global) lo = n_global;
  if (hi > n_global) hi = n_global;
  *begin = lo;
  *count = hi - lo;
}

dpt_status dpt_comm_set_blas_threads(const dpt_comm *c, int requested, int *used) {
  int n = requested;
  if (n <= 0) {
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    if (env && *env) {
      n = atoi(env);
    } else if (c->local_size > 1) {
      n = 1;
    } else {
      long cores = sysconf(_SC_NPROCESSORS_ONLN);
      n = cores > 0 ? (int)cores : 1;
    }
  }
  if (n < 1) n = 1;
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, &n, 1, MPI_INT, MPI_MIN, c->comm));
  openblas_set_num_threads(n);
  if (used) *used = n;
  return DPT_OK;
}

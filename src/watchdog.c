/* watchdog.c — the stalled-rank watchdog (see watchdog.h). */
#define _GNU_SOURCE /* syscall(SYS_gettid) */
#include "dptrain/watchdog.h"

#include "dptrain/types.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TICK_S 0.25     /* how often the thread looks */
#define MAX_TICK_S 0.5  /* the most one look adds: a suspended process does not count its pause */
#define TIE_S 0.5       /* a rank not blocked in file I/O allows this much more (watchdog.h) */
#define DEPTH 8

/* Published by the training thread, read by the watchdog thread. */
static _Atomic(const char *) g_what = "setting up";
static atomic_bool g_waits = true;
static atomic_int_least64_t g_step = -1;
static atomic_uint_least64_t g_marks = 0;

/* The training thread's own stack of phases (only it touches these). */
static struct {
  const char *what;
  bool waits;
} g_stack[DEPTH];
static int g_depth = 0;

/* The thread. */
static pthread_t g_thread;
static bool g_running = false;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond;
static bool g_stop = false;
static double g_timeout = 0.0;
static int g_rank = 0;
static long g_tid = 0; /* the training thread's id, for /proc/self/task/TID/syscall */

/* The ranks on this node (dpt_watchdog_find_peers): world rank, process id, start time
 * (clock ticks after boot, /proc/PID/stat field 22: tells a reused pid apart). Owned here,
 * freed by dpt_watchdog_stop; none when the ranks cannot see each other's /proc. */
typedef struct peer {
  int64_t rank, pid, start;
} peer;
static peer *g_peers = NULL;
static int g_n_peers = 0;

static void publish(const char *what, bool waits) {
  atomic_store_explicit(&g_what, what, memory_order_relaxed);
  atomic_store_explicit(&g_waits, waits, memory_order_relaxed);
  atomic_fetch_add_explicit(&g_marks, 1, memory_order_release);
}

void dpt_watchdog_enter(const char *what, bool waits) {
  if (g_depth == DEPTH) g_depth--;
  g_stack[g_depth].what = what;
  g_stack[g_depth].waits = waits;
  g_depth++;
  publish(what, waits);
}

void dpt_watchdog_leave(void) {
  if (g_depth == 0) { /* no watchdog was ever started */
    dpt_watchdog_progress();
    return;
  }
  if (g_depth > 1) g_depth--;
  publish(g_stack[g_depth - 1].what, g_stack[g_depth - 1].waits);
}

void dpt_watchdog_progress(void) { atomic_fetch_add_explicit(&g_marks, 1, memory_order_release); }

static void reset_stack(const char *what, bool waits) {
  g_depth = 0;
  dpt_watchdog_enter(what, waits);
}

void dpt_watchdog_step(int64_t step) {
  atomic_store_explicit(&g_step, step, memory_order_relaxed);
  reset_stack("training step", false);
}

double dpt_watchdog_grace(double timeout_s, int rank, bool sees_peer) {
  double base = 2.0 + timeout_s / 20.0;
  if (sees_peer) return base + (rank > 0 ? TIE_S : 0.0);
  return base + (rank > 0 ? 4.0 : 2.0);
}

/* The system calls that move file data or metadata: a training thread blocked in one of
 * them for the whole timeout is waiting for its file system, not for another rank. */
static const struct {
  long nr;
  const char *name;
} io_calls[] = {
    {SYS_read, "read"},         {SYS_write, "write"},         {SYS_pread64, "pread64"},
    {SYS_pwrite64, "pwrite64"}, {SYS_readv, "readv"},         {SYS_writev, "writev"},
    {SYS_preadv, "preadv"},     {SYS_pwritev, "pwritev"},     {SYS_fsync, "fsync"},
    {SYS_fdatasync, "fdatasync"}, {SYS_close, "close"},       {SYS_ftruncate, "ftruncate"},
    {SYS_fallocate, "fallocate"}, {SYS_openat, "openat"},
};

/* The I/O system call the training thread is in now, as "pwrite64 on PATH" (the path of its
 * first argument, the descriptor; "openat" alone), or "" when it is running, in user space
 * or blocked in another call (MPI's waits poll in user space or in poll/epoll). */
static void io_call_now(char *out, size_t n) {
  out[0] = '\0';
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", g_tid);
  FILE *f = fopen(path, "r");
  if (!f) return;
  bool got = fgets(buf, sizeof buf, f) != NULL;
  fclose(f);
  char *end;
  long nr = got ? strtol(buf, &end, 10) : -1;
  if (!got || end == buf) return; /* "running" */
  for (size_t i = 0; i < sizeof io_calls / sizeof io_calls[0]; ++i) {
    if (io_calls[i].nr != nr) continue;
    unsigned long fd = strtoul(end, NULL, 16); /* the first argument, "0x..." */
    char link[64], target[200];
    snprintf(link, sizeof link, "/proc/self/fd/%lu", fd);
    ssize_t len = nr == SYS_openat ? -1 : readlink(link, target, sizeof target - 1);
    if (len > 0) {
      target[len] = '\0';
      snprintf(out, n, "%s on %s", io_calls[i].name, target);
    } else {
      snprintf(out, n, "%s", io_calls[i].name);
    }
    return;
  }
}

/* State letter and start time of process pid from /proc/PID/stat; false when it is gone. */
static bool proc_stat(int64_t pid, char *state, int64_t *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name, in parentheses, may hold spaces */
  if (!p || p[1] != ' ') return false;
  *state = p[2];
  p += 3;
  for (int field = 4; field < 22 && p; ++field) p = strchr(p + 1, ' '); /* to field 22 */
  if (!p) return false;
  *start = strtoll(p + 1, NULL, 10);
  return true;
}

/* What the other ranks on this node are doing, as far as /proc tells: "on this node, rank 2
 * (pid 1234) is stopped (SIGSTOP or a debugger)"; "" when every one runs or sleeps. */
static void describe_peers(char *out, size_t n) {
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; i < g_n_peers && len + 1 < n; ++i) {
    if (g_peers[i].rank == g_rank) continue;
    char state = '?';
    int64_t start = -1;
    const char *what = NULL;
    if (!proc_stat(g_peers[i].pid, &state, &start) || start != g_peers[i].start || state == 'Z' || state == 'X')
      what = "has exited";
    else if (state == 'T')
      what = "is stopped (SIGSTOP or a debugger)";
    else if (state == 't')
      what = "is stopped by a debugger";
    else if (state == 'D')
      what = "is in uninterruptible sleep (I/O: a hung file system?)";
    if (!what) continue;
    int w = snprintf(out + len, n - len, "%srank %lld (pid %lld) %s", len ? "; " : "on this node, ",
                     (long long)g_peers[i].rank, (long long)g_peers[i].pid, what);
    if (w < 0) break;
    len += (size_t)w;
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One line, then the process ends: the training thread is stuck and cannot be asked to
 * clean up, and MPI may not be called from this thread (watchdog.h). `peers` is what
 * describe_peers found ("" for none). */
static _Noreturn void fire(double idle, const char *io, const char *peers) {
  const char *what = atomic_load_explicit(&g_what, memory_order_relaxed);
  bool waits = atomic_load_explicit(&g_waits, memory_order_relaxed);
  long long step = (long long)atomic_load_explicit(&g_step, memory_order_relaxed);
  char where[160], line[1024];
  if (step > 0) snprintf(where, sizeof where, "%s (step %lld)", what, step);
  else snprintf(where, sizeof where, "%s", what);
  if (io[0])
    snprintf(line, sizeof line,
             "dptrain: fatal on rank %d: no progress for %.0f s in %s: blocked in the system call %s (a hung file "
             "system?) (parallel.timeout = %g s); stopping all\n", g_rank, idle, where, io, g_timeout);
  else if (waits) {
    snprintf(line, sizeof line,
             "dptrain: fatal on rank %d: no progress for %.0f s in %s, which waits for every rank: %s "
             "(parallel.timeout = %g s); stopping all\n", g_rank, idle, where,
             peers[0] ? peers : "a rank is stalled, stopped or lost", g_timeout);
  }
  else
    snprintf(line, sizeof line,
             "dptrain: fatal on rank %d: no progress for %.0f s in %s: this rank is stalled there, or waits for a "
             "rank that is (parallel.timeout = %g s); stopping all\n", g_rank, idle, where, g_timeout);
  ssize_t rc = write(STDERR_FILENO, line, strlen(line));
  (void)rc;
  _exit(1);
}

static void *watch(void *unused) {
  (void)unused;
  uint_least64_t seen = atomic_load_explicit(&g_marks, memory_order_acquire);
  double idle = 0.0, last = now_s();
  char io[256] = "", io_now[256], peers[400] = "";
  bool io_all = false; /* in the same I/O call at every look since the last mark */
  pthread_mutex_lock(&g_mutex);
  while (!g_stop) {
    double wake = last + TICK_S;
    struct timespec ts = {.tv_sec = (time_t)wake, .tv_nsec = (long)((wake - floor(wake)) * 1e9)};
    pthread_cond_timedwait(&g_cond, &g_mutex, &ts);
    if (g_stop) break;
    double t = now_s(), dt = t - last;
    last = t;
    uint_least64_t marks = atomic_load_explicit(&g_marks, memory_order_acquire);
    if (marks != seen) {
      seen = marks;
      idle = 0.0;
      continue;
    }
    io_call_now(io_now, sizeof io_now);
    if (idle == 0.0) {
      io_all = io_now[0] != '\0';
      memcpy(io, io_now, sizeof io);
    } else if (strcmp(io, io_now) != 0) {
      io_all = false;
    }
    idle += dt < MAX_TICK_S ? dt : MAX_TICK_S;
    /* blocked in I/O all along: this rank is the stalled one, whatever its phase, and goes
     * first; then a rank in a local phase; then the waiting ones (watchdog.h) */
    bool waits = atomic_load_explicit(&g_waits, memory_order_relaxed) && !io_all;
    peers[0] = '\0';
    if (waits && idle > g_timeout) describe_peers(peers, sizeof peers); /* /proc, only once stalled */
    double limit =
        g_timeout + (io_all ? 0.0 : TIE_S) + (waits ? dpt_watchdog_grace(g_timeout, g_rank, peers[0] != '\0') : 0.0);
    if (idle > limit) fire(idle, io_all ? io : "", peers);
  }
  pthread_mutex_unlock(&g_mutex);
  return NULL;
}

dpt_status dpt_watchdog_start(double timeout_s, int rank) {
  DPT_CHECK(isfinite(timeout_s) && timeout_s >= 0.0, DPT_ERR_INPUT,
            "parallel.timeout: expected a number of seconds >= 0 (0: no watchdog), got %g", timeout_s);
  DPT_CHECK(!g_running, DPT_ERR_INTERNAL, "watchdog: started twice (one per process)");
  atomic_store_explicit(&g_step, -1, memory_order_relaxed);
  reset_stack("setting up", true);
  if (timeout_s == 0.0) return DPT_OK;
  g_timeout = timeout_s;
  g_rank = rank;
  g_tid = (long)syscall(SYS_gettid);
  g_stop = false;
  pthread_condattr_t attr;
  DPT_CHECK(pthread_condattr_init(&attr) == 0, DPT_ERR_INTERNAL, "watchdog: pthread_condattr_init failed");
  int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(&g_cond, &attr);
  pthread_condattr_destroy(&attr);
  DPT_CHECK(rc == 0, DPT_ERR_INTERNAL, "watchdog: cannot set up its condition variable (%s)", strerror(rc));
  rc = pthread_create(&g_thread, NULL, watch, NULL);
  if (rc != 0) pthread_cond_destroy(&g_cond);
  DPT_CHECK(rc == 0, DPT_ERR_INTERNAL, "watchdog: cannot start its thread (%s)", strerror(rc));
  g_running = true;
  return DPT_OK;
}

dpt_status dpt_watchdog_find_peers(const dpt_comm *c) {
  DPT_CHECK(!g_running, DPT_ERR_INTERNAL, "watchdog: find its peers before it starts");
  dpt_free(&g_peers);
  g_n_peers = 0;
  MPI_Comm node;
  /* Test hook: DPT_TEST_NODE_SIZE=k makes the ranks look like nodes of k consecutive ranks,
   * so that one machine can show what a rank on another node sees (tests/cli_watchdog.sh). */
  const char *fake = getenv("DPT_TEST_NODE_SIZE");
  int k = fake ? atoi(fake) : 0;
  if (k > 0) DPT_CALL_MPI(MPI_Comm_split(c->comm, c->rank / k, c->rank, &node));
  else DPT_CALL_MPI(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
  int n = 0;
  MPI_Comm_size(node, &n);
  peer mine = {.rank = c->rank, .pid = (int64_t)getpid(), .start = -1}, *all = NULL;
  char state;
  proc_stat(mine.pid, &state, &mine.start);
  dpt_status st = dpt_comm_agree(c, dpt_alloc((size_t)n, sizeof *all, "watchdog: the ranks of this node", &all));
  if (st == DPT_OK) MPI_Allgather(&mine, 3, MPI_INT64_T, all, 3, MPI_INT64_T, node); /* fatal on failure (comm.h) */
  MPI_Comm_free(&node);
  if (st != DPT_OK) {
    dpt_free(&all);
    return st;
  }
  for (int i = 0; i < n; ++i) { /* another pid namespace per rank: /proc shows someone else */
    int64_t start = -2;
    if (!proc_stat(all[i].pid, &state, &start) || start != all[i].start) {
      dpt_free(&all);
      return DPT_OK;
    }
  }
  g_peers = all;
  g_n_peers = n;
  return DPT_OK;
}

void dpt_watchdog_stop(void) {
  dpt_free(&g_peers);
  g_n_peers = 0;
  if (!g_running) return;
  pthread_mutex_lock(&g_mutex);
  g_stop = true;
  pthread_cond_signal(&g_cond);
  pthread_mutex_unlock(&g_mutex);
  pthread_join(g_thread, NULL);
  pthread_cond_destroy(&g_cond);
  g_running = false;
}

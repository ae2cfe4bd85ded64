/* watchdog.c — the stalled-rank watchdog (see watchdog.h). */
#define _GNU_SOURCE /* syscall(SYS_gettid) */
#include "dptrain/watchdog.h"

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

double dpt_watchdog_grace(double timeout_s, int rank) {
  return 2.0 + timeout_s / 20.0 + (rank > 0 ? 2.0 : 0.0);
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

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One line, then the process ends: the training thread is stuck and cannot be asked to
 * clean up, and MPI may not be called from this thread (watchdog.h). */
static _Noreturn void fire(double idle, const char *io) {
  const char *what = atomic_load_explicit(&g_what, memory_order_relaxed);
  bool waits = atomic_load_explicit(&g_waits, memory_order_relaxed);
  long long step = (long long)atomic_load_explicit(&g_step, memory_order_relaxed);
  char where[160], line[512];
  if (step > 0) snprintf(where, sizeof where, "%s (step %lld)", what, step);
  else snprintf(where, sizeof where, "%s", what);
  if (io[0])
    snprintf(line, sizeof line,
             "dptrain: fatal on rank %d: no progress for %.0f s in %s: blocked in the system call %s (a hung file "
             "system?) (parallel.timeout = %g s); stopping all\n", g_rank, idle, where, io, g_timeout);
  else if (waits)
    snprintf(line, sizeof line,
             "dptrain: fatal on rank %d: no progress for %.0f s in %s, which waits for every rank: a rank is "
             "stalled, stopped or lost (parallel.timeout = %g s); stopping all\n", g_rank, idle, where, g_timeout);
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
  char io[256] = "", io_now[256];
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
    /* blocked in I/O all along: this rank is the stalled one, whatever its phase */
    bool waits = atomic_load_explicit(&g_waits, memory_order_relaxed) && !io_all;
    if (idle > g_timeout + (waits ? dpt_watchdog_grace(g_timeout, g_rank) : 0.0)) fire(idle, io_all ? io : "");
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

void dpt_watchdog_stop(void) {
  if (!g_running) return;
  pthread_mutex_lock(&g_mutex);
  g_stop = true;
  pthread_cond_signal(&g_cond);
  pthread_mutex_unlock(&g_mutex);
  pthread_join(g_thread, NULL);
  pthread_cond_destroy(&g_cond);
  g_running = false;
}

/* test_watchdog.c — the stalled-rank watchdog in one process (watchdog.h): a bad limit is an
 * error naming parallel.timeout; a second start is refused; a thread that stops making
 * progress ends its process with exit 1 and one line naming the phase and the step, within
 * the limit plus the look interval; one that keeps marking runs on; time the whole process
 * spends stopped (SIGSTOP) does not count; a thread blocked in a file system call is named
 * with the call. The end of a job across ranks is tests/cli_watchdog.sh. Each watchdog that
 * is meant to fire runs in a forked child, whose stderr goes to a pipe read here. */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dptrain/watchdog.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Runs body() in a child with stderr on a pipe; returns its exit status (or 128 + signal),
 * its stderr in err, and the seconds it took. stop_after > 0: the parent stops the child
 * with SIGSTOP after that many seconds and continues it stop_for seconds later. */
static int run_child(void (*body)(void), char *err, size_t cap, double *took, double stop_after, double stop_for) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  double t0 = now_s();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    body();
    _exit(0);
  }
  close(fds[1]);
  if (stop_after > 0) {
    sleep_s(stop_after);
    kill(pid, SIGSTOP);
    sleep_s(stop_for);
    kill(pid, SIGCONT);
  }
  size_t n = 0;
  ssize_t got;
  while (n + 1 < cap && (got = read(fds[0], err + n, cap - 1 - n)) > 0) n += (size_t)got;
  err[n] = '\0';
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  *took = now_s() - t0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs body in a child that must end with exit 1 after lo to hi seconds, its stderr holding
 * every one of the pieces (NULL-terminated) in that order. */
static void expect_fire(void (*body)(void), double lo, double hi, const char *const *pieces) {
  char err[1024];
  double took;
  assert_int_equal(run_child(body, err, sizeof err, &took, 0, 0), 1);
  if (took < lo || took >= hi) fail_msg("fired after %.2f s, expected [%.2f, %.2f)", took, lo, hi);
  const char *at = err;
  for (; *pieces; ++pieces) {
    const char *found = strstr(at, *pieces);
    if (!found) fail_msg("stderr lacks '%s': %s", *pieces, err);
    at = found + strlen(*pieces);
  }
}

static void test_bad_limits(void **state) {
  (void)state;
  assert_int_equal(dpt_watchdog_start(-1.0, 0), DPT_ERR_INPUT);
  assert_non_null(strstr(dpt_error_message(), "parallel.timeout"));
  assert_int_equal(dpt_watchdog_start(NAN, 0), DPT_ERR_INPUT);
  assert_int_equal(dpt_watchdog_start(INFINITY, 0), DPT_ERR_INPUT);
  /* 0: no watchdog; marks are harmless without one */
  assert_int_equal(dpt_watchdog_start(0.0, 0), DPT_OK);
  dpt_watchdog_enter("x", true);
  dpt_watchdog_leave();
  dpt_watchdog_leave(); /* more leaves than enters: only a mark */
  dpt_watchdog_stop();
  assert_int_equal(dpt_watchdog_start(30.0, 0), DPT_OK);
  assert_int_equal(dpt_watchdog_start(30.0, 0), DPT_ERR_INTERNAL); /* one per process */
  dpt_watchdog_stop();
  dpt_watchdog_stop(); /* a second stop does nothing */
  /* the grace (watchdog.h): 2 s + T/20 for a rank that sees a stopped rank of its node (0.5 s
   * more off rank 0); else 2 s more on rank 0, 4 s more elsewhere. Sums of halves and a
   * whole T/20: exact in binary, the tolerance only guards the comparison. */
  assert_true(fabs(dpt_watchdog_grace(600.0, 0, true) - 32.0) < 1e-12);
  assert_true(fabs(dpt_watchdog_grace(600.0, 3, true) - 32.5) < 1e-12);
  assert_true(fabs(dpt_watchdog_grace(600.0, 0, false) - 34.0) < 1e-12);
  assert_true(fabs(dpt_watchdog_grace(600.0, 3, false) - 36.0) < 1e-12);
}

/* Stalls in a local phase of step 7. */
static void stall_body(void) {
  if (dpt_watchdog_start(1.0, 3) != DPT_OK) _exit(3);
  dpt_watchdog_step(7);
  dpt_watchdog_enter("optimizer", false);
  for (;;) pause();
}

/* The seconds in each message are those counted: the limit plus up to one look (0.5 s at
 * most), so the tests match the text around them. */
static void test_stall_ends_the_process(void **state) {
  (void)state;
  /* a local phase allows 0.5 s more than the limit (watchdog.h): fires after 1.5 s, seen at
   * the next look (0.25 s); the upper bound leaves a loaded machine 2 s more */
  const char *const text[] = {"dptrain: fatal on rank 3: no progress for ",
                              " s in optimizer (step 7): this rank is stalled there, or waits for a rank that is "
                              "(parallel.timeout = 1 s); stopping all\n",
                              NULL};
  expect_fire(stall_body, 1.5, 4.0, text);
}

/* Waits (a collective phase) without progress: the grace applies. */
static void wait_body(void) {
  if (dpt_watchdog_start(1.0, 0) != DPT_OK) _exit(3);
  dpt_watchdog_enter("agreeing on errors", true);
  for (;;) pause();
}

static void test_waiting_rank_allows_grace(void **state) {
  (void)state;
  double limit = 1.5 + dpt_watchdog_grace(1.0, 0, false); /* 1 s + 0.5 s + 2.05 s + 2 s */
  const char *const text[] = {"dptrain: fatal on rank 0: no progress for ",
                              " s in agreeing on errors, which waits for every rank: a rank is stalled, stopped or "
                              "lost (parallel.timeout = 1 s); stopping all\n",
                              NULL};
  expect_fire(wait_body, limit, limit + 2.5, text);
}

/* Marks every 0.1 s for 2.5 s (over twice the limit), in phases of both kinds. */
static void progress_body(void) {
  if (dpt_watchdog_start(1.0, 0) != DPT_OK) _exit(3);
  for (int i = 0; i < 25; ++i) {
    dpt_watchdog_enter(i % 2 ? "comm_wait" : "backward", i % 2 == 1);
    sleep_s(0.1);
    dpt_watchdog_leave();
  }
  dpt_watchdog_stop();
}

static void test_progress_runs_on(void **state) {
  (void)state;
  char err[1024];
  double took;
  assert_int_equal(run_child(progress_body, err, sizeof err, &took, 0, 0), 0);
  assert_string_equal(err, "");
}

/* One phase of 1 s of this thread's CPU time without a mark, under a limit of 3 s (3.5 s with
 * the margin of a rank not blocked in I/O; CPU time: the phase is not over when the process
 * is continued, as a sleep would be, and it may take 3 s of wall time on a loaded machine). */
static void long_phase_body(void) {
  if (dpt_watchdog_start(3.0, 0) != DPT_OK) _exit(3);
  dpt_watchdog_enter("backward", false);
  struct timespec ts;
  do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  while ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec < 1.0);
  dpt_watchdog_leave();
  dpt_watchdog_stop();
}

/* The parent stops the whole process for 4 s, 0.5 s into that phase: counting the pause
 * would make 4.5 s or more without a mark (> 3.5); not counting it, about 1 s (the phase)
 * plus 0.5 (the look after the pause), 2.5 s with the rest of the phase 4 times slower. */
static void test_suspended_process_is_not_stalled(void **state) {
  (void)state;
  char err[1024];
  double took;
  assert_int_equal(run_child(long_phase_body, err, sizeof err, &took, 0.5, 4.0), 0);
  assert_true(took >= 4.5); /* stopped 4 s, 0.5 s in */
  assert_string_equal(err, "");
}

/* Blocked in a read of a pipe nobody writes, in a phase that waits: the rank names the
 * system call and fires without the grace. */
static void blocked_body(void) {
  int never[2];
  char byte;
  if (pipe(never) != 0 || dpt_watchdog_start(1.0, 2) != DPT_OK) _exit(3);
  dpt_watchdog_step(4);
  dpt_watchdog_enter("writing a checkpoint", true);
  for (;;) (void)!read(never[0], &byte, 1);
}

static void test_blocked_in_io_names_the_call(void **state) {
  (void)state;
  FILE *probe = fopen("/proc/self/syscall", "r"); /* a kernel without it: the watchdog cannot tell */
  if (!probe) {
    print_message("no /proc/self/syscall here: the watchdog cannot name a blocked call; skipped\n");
    skip();
  }
  fclose(probe);
  /* no grace and no tie margin: it is the stalled one; fires after 1 s plus a look, 2 s more
   * for a loaded machine (a waiting rank would take 1.5 + 4.05 s) */
  const char *const text[] = {"dptrain: fatal on rank 2: no progress for ",
                              " s in writing a checkpoint (step 4): blocked in the system call read on pipe:[",
                              "(a hung file system?) (parallel.timeout = 1 s); stopping all\n", NULL};
  expect_fire(blocked_body, 1.0, 3.0, text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_limits),
      cmocka_unit_test(test_stall_ends_the_process),
      cmocka_unit_test(test_waiting_rank_allows_grace),
      cmocka_unit_test(test_progress_runs_on),
      cmocka_unit_test(test_suspended_process_is_not_stalled),
      cmocka_unit_test(test_blocked_in_io_names_the_call),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

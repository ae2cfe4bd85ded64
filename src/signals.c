/* signals.c — stop requests from SIGTERM/SIGUSR1 for preemption, their agreement across
 * ranks, and the fault-injection points of the preemption tests (see checkpoint.h). */
#include "dptrain/checkpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop = 0;
static struct sigaction g_old_term, g_old_usr1;
static bool g_installed = false;

static void on_stop_signal(int sig) {
  if (g_stop) {
    static const char msg[] = "dptrain: second stop signal: exiting now without a checkpoint\n";
    ssize_t rc = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)rc;
    _exit(128 + sig);
  }
  g_stop = sig;
}

dpt_status dpt_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  g_stop = 0;
  DPT_CHECK(sigaction(SIGTERM, &sa, &g_old_term) == 0 && sigaction(SIGUSR1, &sa, &g_old_usr1) == 0,
            DPT_ERR_INTERNAL, "cannot install the SIGTERM/SIGUSR1 handlers");
  g_installed = true;
  return DPT_OK;
}

void dpt_signals_restore(void) {
  if (g_installed) {
    sigaction(SIGTERM, &g_old_term, NULL);
    sigaction(SIGUSR1, &g_old_usr1, NULL);
    g_installed = false;
  }
  g_stop = 0;
}

bool dpt_signals_stop_requested(void) { return g_stop != 0; }

int dpt_signals_received(void) { return (int)g_stop; }

dpt_status dpt_signals_agree_stop(const dpt_comm *c, bool *stop) {
  DPT_CALL(dpt_comm_any(c, g_stop != 0, stop));
  return DPT_OK;
}

void dpt_signals_fault_point(const dpt_comm *c, const char *where, int64_t step) {
  bool in_save = !strcmp(where, "save");
  if (!in_save && dpt_fault_at("signal", c->rank) == step) {
    raise(SIGUSR1);
  } else if ((!in_save && dpt_fault_at("kill", c->rank) == step) ||
             (in_save && dpt_fault_at("kill-in-save", c->rank) == step)) {
    fprintf(stderr, "dptrain: DPT_FAULT=%s: rank %d kills itself (SIGKILL) at %s %lld\n", getenv("DPT_FAULT"),
            c->rank, where, (long long)step);
    fflush(stderr);
    raise(SIGKILL);
  } else if (!in_save && dpt_fault_at("stall", c->rank) == step) { /* the watchdog's tests */
    fprintf(stderr, "dptrain: DPT_FAULT=%s: rank %d stops making progress at %s %lld\n", getenv("DPT_FAULT"),
            c->rank, where, (long long)step);
    fflush(stderr);
    for (;;) pause();
  } else if (!in_save && dpt_fault_at("freeze", c->rank) == step) {
    fprintf(stderr, "dptrain: DPT_FAULT=%s: rank %d stops itself (SIGSTOP) at %s %lld\n", getenv("DPT_FAULT"),
            c->rank, where, (long long)step);
    fflush(stderr);
    raise(SIGSTOP);
  }
}

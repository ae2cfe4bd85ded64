/* error.c — thread-local error message and traceback (see error.h). */
#include "dptrain/error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { DPT_MSG_MAX = 1024, DPT_TRACE_MAX = 2048 };

static _Thread_local dpt_status g_code = DPT_OK;
static _Thread_local char g_msg[DPT_MSG_MAX];
static _Thread_local char g_trace[DPT_TRACE_MAX];

static void trace_append(const char *file, int line, const char *func) {
  size_t used = strlen(g_trace);
  if (used + 1 >= sizeof g_trace) return;
  const char *base = strrchr(file, '/');
  snprintf(g_trace + used, sizeof g_trace - used, "  at %s (%s:%d)\n", func, base ? base + 1 : file, line);
}

dpt_status dpt_error_set(dpt_status code, const char *file, int line, const char *func, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  for (char *p = g_msg; *p; ++p)
    if (*p == '\n') *p = ' '; /* the message is one line */
  g_code = code;
  g_trace[0] = '\0';
  trace_append(file, line, func);
  return code;
}

void dpt_error_push(const char *file, int line, const char *func) { trace_append(file, line, func); }

const char *dpt_error_message(void) { return g_msg; }

dpt_status dpt_error_code(void) { return g_code; }

void dpt_error_replace(dpt_status code, const char *message) {
  g_code = code;
  snprintf(g_msg, sizeof g_msg, "%s", message);
}

void dpt_error_clear(void) {
  g_code = DPT_OK;
  g_msg[0] = '\0';
  g_trace[0] = '\0';
}

void dpt_error_print(FILE *f) {
  fprintf(f, "dptrain: error: %s\n", g_msg[0] ? g_msg : "(no message)");
  const char *t = getenv("DPT_TRACE");
  if (t && *t && strcmp(t, "0") != 0 && g_trace[0]) fprintf(f, "traceback (innermost first):\n%s", g_trace);
  fflush(f);
}

const char *dpt_status_name(dpt_status code) {
  switch (code) {
  case DPT_OK: return "ok";
  case DPT_ERR_INPUT: return "input";
  case DPT_ERR_IO: return "io";
  case DPT_ERR_FORMAT: return "format";
  case DPT_ERR_MEMORY: return "memory";
  case DPT_ERR_MPI: return "mpi";
  case DPT_ERR_NUMERIC: return "numeric";
  case DPT_ERR_INTERNAL: return "internal";
  case DPT_ERR_STOPPED: return "stopped";
  }
  return "unknown";
}

int dpt_status_exit_code(dpt_status code) {
  if (code == DPT_OK) return 0;
  if (code == DPT_ERR_STOPPED) return DPT_EXIT_PREEMPTED;
  return 1;
}

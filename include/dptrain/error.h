/* error.h — status codes, error messages with a short traceback, and the checking macros.
 *
 * Every function that can fail returns a dpt_status. The first failure records a one-line
 * message (what, which file/key/tensor, what was expected) with dpt_error_set(); each caller
 * on the way out adds a frame with DPT_CALL, so DPT_TRACE=1 prints a traceback ending in the
 * cause. Library code never calls exit(): errors that can differ between ranks are agreed
 * with dpt_comm_agree() (comm.h) so that all ranks stop together.
 *
 * The message buffer is thread-local; it is owned by this module (callers only borrow the
 * pointer returned by dpt_error_message() until the next error call). */
#ifndef DPTRAIN_ERROR_H
#define DPTRAIN_ERROR_H

#include <stddef.h>
#include <stdio.h>

typedef enum dpt_status {
  DPT_OK = 0,
  DPT_ERR_INPUT = 1,    /* bad config key, command-line value or model spec */
  DPT_ERR_IO = 2,       /* a file cannot be opened, read or written */
  DPT_ERR_FORMAT = 3,   /* a file is readable but its content is not what was expected */
  DPT_ERR_MEMORY = 4,   /* allocation failed or a size would overflow */
  DPT_ERR_MPI = 5,      /* an MPI call failed */
  DPT_ERR_NUMERIC = 6,  /* non-finite loss or gradient, singular matrix */
  DPT_ERR_INTERNAL = 7, /* a broken invariant: a bug in dptrain */
  DPT_ERR_STOPPED = 8   /* a stop was requested (signal); not a failure of the run */
} dpt_status;

/* Records the first cause of a failure; printf-style message, one line, no trailing newline.
 * Returns code so it can be used as `return dpt_error_set(...)`. */
dpt_status dpt_error_set(dpt_status code, const char *file, int line, const char *func,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Adds a traceback frame to the current error (used by DPT_CALL on the way out). */
void dpt_error_push(const char *file, int line, const char *func);
/* The one-line message of the current error ("" when none). Borrowed pointer. */
const char *dpt_error_message(void);
/* The status of the current error (DPT_OK when none). */
dpt_status dpt_error_code(void);
/* Replaces the message (used when an error is agreed across ranks). */
void dpt_error_replace(dpt_status code, const char *message);
/* Forgets the current error. */
void dpt_error_clear(void);
/* Prints "dptrain: error: <message>" and, when DPT_TRACE is set in the environment, the
 * traceback, to f. */
void dpt_error_print(FILE *f);
/* Name of a status code ("input", "io", ...). */
const char *dpt_status_name(dpt_status code);
/* The exit code the command uses for a status: 0 for DPT_OK, 1 for failures,
 * DPT_EXIT_PREEMPTED for DPT_ERR_STOPPED. */
int dpt_status_exit_code(dpt_status code);
#define DPT_EXIT_PREEMPTED 75 /* EX_TEMPFAIL: checkpoint written after a stop signal; requeue */

/* Calls a function returning dpt_status; on failure adds a frame and returns its status. */
#define DPT_CALL(expr)                                                   \
  do {                                                                   \
    dpt_status dpt_s_ = (expr);                                          \
    if (dpt_s_ != DPT_OK) {                                              \
      dpt_error_push(__FILE__, __LINE__, __func__);                      \
      return dpt_s_;                                                     \
    }                                                                    \
  } while (0)

/* States a condition; when false records the message and returns code. */
#define DPT_CHECK(cond, code, ...)                                             \
  do {                                                                         \
    if (!(cond)) return dpt_error_set((code), __FILE__, __LINE__, __func__, __VA_ARGS__); \
  } while (0)

/* The same two for functions with a single cleanup label: they need a local
 * `dpt_status st = DPT_OK;` and a label `done:` that releases every handle. */
#define DPT_TRY(expr) DPT_TRY_TO(done, expr)

#define DPT_TRY_CHECK(cond, code, ...) DPT_TRY_CHECK_TO(done, cond, code, __VA_ARGS__)

/* DPT_TRY and DPT_TRY_CHECK that jump to a given label instead of done: for a local phase
 * with its own end, e.g. a command's argument parsing, whose outcome the ranks agree at that
 * label before the first collective call (a rank that left for done alone would meet the
 * others in a different collective). */
#define DPT_TRY_TO(label, expr)                                          \
  do {                                                                   \
    st = (expr);                                                         \
    if (st != DPT_OK) {                                                  \
      dpt_error_push(__FILE__, __LINE__, __func__);                      \
      goto label;                                                        \
    }                                                                    \
  } while (0)

#define DPT_TRY_CHECK_TO(label, cond, code, ...)                                \
  do {                                                                          \
    if (!(cond)) {                                                              \
      st = dpt_error_set((code), __FILE__, __LINE__, __func__, __VA_ARGS__);    \
      goto label;                                                               \
    }                                                                           \
  } while (0)

/* Wraps an MPI call. A failure comes back here only on an object whose error handler
 * returns (MPI_ERRORS_RETURN); on a dpt_comm's communicator it has already aborted the job
 * (see comm.h). */
#define DPT_CALL_MPI(expr)                                                         \
  do {                                                                             \
    int dpt_m_ = (expr);                                                           \
    if (dpt_m_ != 0 /* MPI_SUCCESS */)                                             \
      return dpt_error_set(DPT_ERR_MPI, __FILE__, __LINE__, __func__,              \
                           "MPI call failed: %s (error %d)", #expr, dpt_m_);       \
  } while (0)

#endif

/* testutil.h — helpers shared by the cmocka tests.
 * Include after <stdarg.h>, <stddef.h>, <setjmp.h>, <stdint.h> as cmocka requires (this
 * header does it). */
#ifndef DPT_TESTUTIL_H
#define DPT_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#include "dptrain/comm.h"
#include "dptrain/error.h"

/* The world for tests (valid inside dpt_test_run). */
extern dpt_comm dpt_test_world;

/* MPI_Init, dpt_comm_init_world, cmocka_run_group_tests on every rank, then agrees the
 * failure count across ranks (so a failure on any rank fails every rank's exit code),
 * MPI_Finalize. Use as: return dpt_test_run(tests, sizeof tests / sizeof tests[0]); */
int dpt_test_run_(const char *name, const struct CMUnitTest *tests, size_t n);
#define dpt_test_run(tests) dpt_test_run_(__FILE__, (tests), sizeof(tests) / sizeof((tests)[0]))

/* Asserts a dptrain call succeeded, printing the error message when it did not. */
#define assert_dpt_ok(expr)                                                    \
  do {                                                                         \
    dpt_status s_ = (expr);                                                    \
    if (s_ != DPT_OK) fail_msg("%s failed: %s", #expr, dpt_error_message());   \
  } while (0)

/* Asserts a call failed with code and that the message contains needle. */
#define assert_dpt_fails(expr, code, needle)                                             \
  do {                                                                                   \
    dpt_status s_ = (expr);                                                              \
    if (s_ != (code))                                                                    \
      fail_msg("%s: expected status %d, got %d (%s)", #expr, (int)(code), (int)s_,       \
               dpt_error_message());                                                     \
    if (!strstr(dpt_error_message(), (needle)))                                          \
      fail_msg("%s: message '%s' lacks '%s'", #expr, dpt_error_message(), (needle));     \
    dpt_error_clear();                                                                   \
  } while (0)

/* A fresh scratch directory (same path on all ranks: rank 0 creates it and broadcasts the
 * name). Removed with its content when dpt_test_run ends, unless DPT_TEST_KEEP is set.
 * Collective. Caller does not free. */
const char *dpt_test_tmpdir(void);

/* Writes a dataset in dptrain's layout (data/FORMAT.md) from rank 0 with the serial HDF5 API:
 * /X [n, d] float64, and /y as [n] int32 labels (labels != NULL) or [n, k] float64 values;
 * root attribute task. xname/yname default to "X"/"y" when NULL (pass "X_val"/"y_val" with
 * append = 1 to add a validation split to an existing file). Collective (barrier at the end).
 * Returns 0 on success. */
int dpt_test_write_dataset(const char *path, const char *xname, const char *yname, int append, const double *X,
                           int64_t n, int64_t d, const int32_t *labels, const double *values, int64_t k,
                           const char *task);

/* Deterministic uniform numbers in [0, 1) for test data (splitmix64). */
double dpt_test_uniform(uint64_t *state);

#endif

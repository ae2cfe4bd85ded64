/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dpt_comm dpt_test_world;

int dpt_test_run_(const char *name, const struct CMUnitTest *tests, size_t n) {
  MPI_Init(NULL, NULL);
  if (dpt_comm_init_world(&dpt_test_world) != DPT_OK) {
    fprintf(stderr, "%s\n", dpt_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const char *base = strrchr(name, '/');
  int failed = _cmocka_run_group_tests(base ? base + 1 : name, tests, n, NULL, NULL);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  dpt_comm_finalize(&dpt_test_world);
  MPI_Finalize();
  return any ? 1 : 0;
}

const char *dpt_test_tmpdir(void) {
  static char path[256];
  if (dpt_test_world.rank == 0) {
    const char *root = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/dpt-test-XXXXXX", root && *root ? root : "/tmp");
    if (!mkdtemp(path)) path[0] = '\0';
  }
  MPI_Bcast(path, sizeof path, MPI_CHAR, 0, dpt_test_world.comm);
  return path;
}

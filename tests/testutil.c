/* testutil.c — see testutil.h. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ftw.h>
#include <hdf5.h>

dpt_comm dpt_test_world;
enum { MAX_TMPDIRS = 256 };
static char tmpdirs[MAX_TMPDIRS][256]; /* created by dpt_test_tmpdir, removed at the end of the run */
static int ntmpdirs;

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int dpt_test_run_(const char *name, const struct CMUnitTest *tests, size_t n) {
  dpt_comm_preinit(); /* Open MPI parameters (comm.h) */
  MPI_Init(NULL, NULL);
  if (dpt_comm_init_world(&dpt_test_world) != DPT_OK) {
    fprintf(stderr, "%s\n", dpt_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const char *base = strrchr(name, '/');
  int failed = _cmocka_run_group_tests(base ? base + 1 : name, tests, n, NULL, NULL);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  if (dpt_test_world.rank == 0 && !getenv("DPT_TEST_KEEP"))
    for (int i = 0; i < ntmpdirs; ++i) nftw(tmpdirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  dpt_comm_finalize(&dpt_test_world);
  MPI_Finalize();
  return any ? 1 : 0;
}

const char *dpt_test_tmpdir(void) {
  static char fallback[256];
  char *path = ntmpdirs < MAX_TMPDIRS ? tmpdirs[ntmpdirs++] : fallback;
  if (dpt_test_world.rank == 0) {
    const char *root = getenv("TMPDIR");
    snprintf(path, 256, "%s/dpt-test-XXXXXX", root && *root ? root : "/tmp");
    if (!mkdtemp(path)) path[0] = '\0';
  }
  MPI_Bcast(path, 256, MPI_CHAR, 0, dpt_test_world.comm);
  return path;
}

double dpt_test_uniform(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

static int write_2d(hid_t file, const char *name, hid_t type, int rank, hsize_t n, hsize_t d, const void *data) {
  hsize_t dims[2] = {n, d};
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t ds = H5Dcreate2(file, name, type == H5T_NATIVE_INT32 ? H5T_STD_I32LE : H5T_IEEE_F64LE, space, H5P_DEFAULT,
                        H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = ds >= 0 ? H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  return e < 0 ? -1 : 0;
}

int dpt_test_write_dataset(const char *path, const char *xname, const char *yname, int append, const double *X,
                           int64_t n, int64_t d, const int32_t *labels, const double *values, int64_t k,
                           const char *task) {
  int rc = 0;
  if (dpt_test_world.rank == 0) {
    hid_t file = append ? H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT) : H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
      rc = -1;
    } else {
      rc |= write_2d(file, xname ? xname : "X", H5T_NATIVE_DOUBLE, 2, (hsize_t)n, (hsize_t)d, X);
      if (labels)
        rc |= write_2d(file, yname ? yname : "y", H5T_NATIVE_INT32, 1, (hsize_t)n, 1, labels);
      else
        rc |= write_2d(file, yname ? yname : "y", H5T_NATIVE_DOUBLE, 2, (hsize_t)n, (hsize_t)k, values);
      if (!append && task) {
        hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
        H5Tset_size(type, strlen(task) + 1);
        hid_t attr = H5Acreate2(file, "task", type, space, H5P_DEFAULT, H5P_DEFAULT);
        rc |= attr < 0 || H5Awrite(attr, type, task) < 0;
        if (attr >= 0) H5Aclose(attr);
        H5Sclose(space);
        H5Tclose(type);
      }
      rc |= H5Fclose(file) < 0;
    }
  }
  MPI_Bcast(&rc, 1, MPI_INT, 0, dpt_test_world.comm);
  return rc;
}

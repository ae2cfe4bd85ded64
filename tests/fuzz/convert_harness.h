/* convert_harness.h — what the converter fuzz targets (fuzz_csv.c, fuzz_npy.c, fuzz_idx.c)
 * share: a private scratch directory, the conversion options drawn from one input byte, and
 * the invariants every conversion must keep (checked with abort(), which the fuzzer and the
 * ctest replay report):
 *   - a failure has a non-empty one-line message naming one of the input files;
 *   - a failure leaves no output and no temporary (OUT.tmp.<pid>) in the directory;
 *   - a success leaves exactly the output, whose /X [N, d] and /y [N] or [N, k] have the
 *     expected N (when the harness knows it) and d, k >= 1, and hold finite values only.
 * Static functions only: each harness includes it once. */
#ifndef DPTRAIN_TESTS_FUZZ_CONVERT_HARNESS_H
#define DPTRAIN_TESTS_FUZZ_CONVERT_HARNESS_H

#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "dptrain/error.h"

enum { FH_MAX_INPUT = 64 << 10, FH_MAX_FILES = 2 };

static char fh_dir[64]; /* this process's scratch directory, made at the first input */

static void fh_remove_dir(void) {
  if (fh_dir[0]) rmdir(fh_dir);
}

/* The scratch directory (made once per process, removed at exit when empty). */
static const char *fh_scratch(void) {
  if (!fh_dir[0]) {
    snprintf(fh_dir, sizeof fh_dir, "/tmp/dpt-fuzz-conv-XXXXXX");
    if (!mkdtemp(fh_dir)) {
      perror("fuzz: mkdtemp");
      abort();
    }
    atexit(fh_remove_dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  }
  return fh_dir;
}

/* Writes size bytes to DIR/name; path receives the file's path. */
static void fh_write(const char *name, const uint8_t *data, size_t size, char *path, size_t cap) {
  snprintf(path, cap, "%s/%s", fh_scratch(), name);
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror("fuzz: writing an input");
    abort();
  }
}

/* Conversion options from one byte: bits 4-5 the task (none, regression, binary, multiclass),
 * bit 6 --dtype f64, bit 7 chunks of 2 rows with gzip 1 (else the defaults). */
static dpt_convert_args fh_args(uint8_t b, const char *out) {
  static const char *const tasks[] = {NULL, "regression", "binary", "multiclass"};
  dpt_convert_args a = {.out = out, .task = tasks[(b >> 4) & 3], .dtype = (b & 64) ? "f64" : NULL};
  a.opts.chunk_rows = (b & 128) ? 2 : 4096;
  a.opts.gzip = (b & 128) ? 1 : 0;
  return a;
}

static void fh_fail(const char *what, const char *msg) {
  fprintf(stderr, "fuzz: invariant broken: %s (message: '%s')\n", what, msg ? msg : "");
  abort();
}

/* Rows of dataset name in file (its first dimension), its rank and columns; aborts when it is
 * absent or holds a value that is not finite (read as doubles: the inputs are small). */
static hsize_t fh_rows(hid_t file, const char *name, int *rank, hsize_t *cols) {
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  if (d < 0) fh_fail("the output has no dataset", name);
  hid_t sp = H5Dget_space(d);
  hsize_t dims[2] = {0, 1};
  *rank = H5Sget_simple_extent_ndims(sp);
  if (*rank < 1 || *rank > 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) fh_fail("bad dataset rank", name);
  H5Sclose(sp);
  *cols = *rank == 2 ? dims[1] : 1;
  size_t count = (size_t)(dims[0] * *cols);
  double *v = malloc((count ? count : 1) * sizeof *v);
  if (!v || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
    fh_fail("the output does not read", name);
  for (size_t i = 0; i < count; ++i)
    if (!isfinite(v[i])) fh_fail("the output holds a value that is not finite", name);
  free(v);
  H5Dclose(d);
  return dims[0];
}

/* Checks the invariants after a conversion of the inputs (paths, n of them) into out, then
 * removes every file of the scratch directory and forgets the error. want_rows < 0: unknown. */
static void fh_check(dpt_status st, const char *const *inputs, int n, const char *out, int64_t want_rows) {
  const char *msg = dpt_error_message();
  if (st != DPT_OK) {
    if (!msg[0]) fh_fail("a failure without a message", msg);
    if (strchr(msg, '\n')) fh_fail("a failure message of more than one line", msg);
    bool named = false;
    for (int i = 0; i < n; ++i) named |= strstr(msg, inputs[i]) != NULL;
    if (!named) fh_fail("a failure message that names no input file", msg);
    if (access(out, F_OK) == 0) fh_fail("a failed conversion left an output file", msg);
  } else {
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fh_fail("a successful conversion whose output does not open", out);
    int rx, ry;
    hsize_t dx, ky, nx = fh_rows(f, "X", &rx, &dx), ny = fh_rows(f, "y", &ry, &ky);
    H5Fclose(f);
    if (rx != 2 || nx == 0 || dx == 0 || ky == 0) fh_fail("an output /X not [N, d] with N, d >= 1", out);
    if (ny != nx) fh_fail("an output whose /X and /y rows differ", out);
    if (want_rows >= 0 && nx != (hsize_t)want_rows) {
      fprintf(stderr, "fuzz: /X has %llu rows, expected %lld\n", (unsigned long long)nx, (long long)want_rows);
      fh_fail("an output with the wrong number of rows", out);
    }
  }
  /* nothing but the inputs and (on success) the output may be left */
  DIR *d = opendir(fh_scratch());
  if (!d) fh_fail("the scratch directory vanished", fh_dir);
  const char *out_name = strrchr(out, '/') + 1;
  struct dirent *e;
  char path[sizeof fh_dir + 300];
  int stray = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    bool known = st == DPT_OK && !strcmp(e->d_name, out_name);
    for (int i = 0; i < n; ++i) known |= !strcmp(e->d_name, strrchr(inputs[i], '/') + 1);
    if (!known) {
      fprintf(stderr, "fuzz: left behind: %s\n", e->d_name);
      stray = 1;
    }
    snprintf(path, sizeof path, "%s/%s", fh_dir, e->d_name);
    remove(path);
  }
  closedir(d);
  if (stray) fh_fail("a conversion left a stray file", msg);
  dpt_error_clear();
}

#endif

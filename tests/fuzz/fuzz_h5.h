/* fuzz_h5.h — what the HDF5 fuzz targets (fuzz_dataset.c, fuzz_checkpoint.c) share: a
 * one-rank MPI world, the recipe reader, and the invariants checked after every input.
 * Header-only (each target is one translation unit with tests/fuzz/replay.c or libFuzzer). */
#ifndef DPT_FUZZ_H5_H
#define DPT_FUZZ_H5_H

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/error.h"

static dpt_comm g_comm; /* the one-rank world the readers run on */

static void fuzz_h5_finish(void) {
  dpt_comm_finalize(&g_comm);
  MPI_Finalize();
}

/* MPI as a singleton (no mpiexec; allowed as root), g_comm, HDF5's error stack silenced. */
static void fuzz_h5_init(void) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  dpt_comm_preinit();
  MPI_Init(NULL, NULL);
  if (dpt_comm_init_world(&g_comm) != DPT_OK) abort();
  atexit(fuzz_h5_finish);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* The recipe reader: one byte at a time, 0 once the input has run out. */
typedef struct recipe {
  const uint8_t *p;
  size_t n;
} recipe;

static unsigned take(recipe *r) {
  if (!r->n) return 0;
  --r->n;
  return *r->p++;
}

static unsigned pick(recipe *r, unsigned choices) { return take(r) % choices; }

/* The failure invariant: a one-line message naming the file (DPT_FUZZ_VERBOSE=1 prints each). */
static void check_failure(const char *who, dpt_status st, const char *path) {
  if (getenv("DPT_FUZZ_VERBOSE")) fprintf(stderr, "%s: status %d: %s\n", who, (int)st, dpt_error_message());
  if (st == DPT_OK) return;
  const char *msg = dpt_error_message();
  if (msg[0] == '\0' || strchr(msg, '\n') || !strstr(msg, path)) {
    fprintf(stderr, "%s: bad failure message (status %d): '%s'\n", who, (int)st, msg);
    abort();
  }
}

/* After an input: the error forgotten, and no HDF5 object of any file left open. */
static void check_closed(const char *who) {
  dpt_error_clear();
  ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (open != 0) {
    fprintf(stderr, "%s: %zd HDF5 objects left open\n", who, open);
    abort();
  }
}

#endif

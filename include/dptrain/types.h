/* types.h — the run-time dtype switch, checked size casts and checked allocation.
 *
 * dtype: every tensor, the flat parameter/gradient buffers and the optimizer state are
 * float32 or float64, chosen at run time (--dtype). Accumulations that must not lose
 * precision (loss sums, metrics) are always double. */
#ifndef DPTRAIN_TYPES_H
#define DPTRAIN_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "dptrain/error.h"

typedef enum dpt_dtype { DPT_F32 = 0, DPT_F64 = 1 } dpt_dtype;

/* Bytes per element. */
size_t dpt_dtype_size(dpt_dtype t);
/* "f32" or "f64". */
const char *dpt_dtype_name(dpt_dtype t);
/* Parses "f32"/"float32" or "f64"/"float64"; what names the key for the message. */
dpt_status dpt_dtype_parse(const char *s, const char *what, dpt_dtype *out);

/* The learning task, from the dataset's `task` attribute. */
typedef enum dpt_task { DPT_TASK_REGRESSION = 0, DPT_TASK_BINARY = 1, DPT_TASK_MULTICLASS = 2 } dpt_task;
const char *dpt_task_name(dpt_task t);
dpt_status dpt_task_parse(const char *s, const char *what, dpt_task *out);

/* Checked conversions to the int counts BLAS, LAPACKE, MPI and HDF5 take; what names the
 * quantity for the message (PETSc's PetscBLASIntCast). */
dpt_status dpt_cast_int(int64_t v, const char *what, int *out);

/* Checked allocation: fails with DPT_ERR_MEMORY and a message naming what when count*size
 * overflows or malloc fails. The caller owns *out and frees it with dpt_free(). Zero bytes
 * give a valid pointer (never NULL on success). */
dpt_status dpt_alloc(size_t count, size_t size, const char *what, void *out);
/* Same, zero-filled. */
dpt_status dpt_calloc(size_t count, size_t size, const char *what, void *out);
/* Checked realloc of *(void **)pp to count*size bytes (pp may point to NULL); on failure
 * *pp is left as it was (still owned by the caller) and the status names what. */
dpt_status dpt_grow(void *pp, size_t count, size_t size, const char *what);
/* A copy of the string s (checked allocation as above); the caller owns *out (dpt_free). */
dpt_status dpt_strdup(const char *s, const char *what, char **out);
/* Frees *(void **)pp and sets it to NULL; NULL-safe. */
void dpt_free(void *pp);

/* Test hooks read from the environment: when DPT_FAULT is "<kind>@N" and DPT_FAULT_RANK
 * (default 0) equals rank, returns N; else -1. The kinds: alloc (the N-th dpt_alloc or
 * dpt_calloc from MPI_Init on fails, launch/fault-sweep), signal, kill, kill-in-save
 * (dpt_signals_fault_point, checkpoint.h). */
int64_t dpt_fault_at(const char *kind, int rank);

#endif

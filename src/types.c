/* types.c — dtype/task names, checked casts and checked allocation (see types.h). */
#include "dptrain/types.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

size_t dpt_dtype_size(dpt_dtype t) { return t == DPT_F64 ? sizeof(double) : sizeof(float); }

const char *dpt_dtype_name(dpt_dtype t) { return t == DPT_F64 ? "f64" : "f32"; }

dpt_status dpt_dtype_parse(const char *s, const char *what, dpt_dtype *out) {
  if (!strcmp(s, "f32") || !strcmp(s, "float32")) { *out = DPT_F32; return DPT_OK; }
  if (!strcmp(s, "f64") || !strcmp(s, "float64")) { *out = DPT_F64; return DPT_OK; }
  return dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "%s: expected f32 or f64, got '%s'", what, s);
}

static const char *const task_names[] = {"regression", "binary", "multiclass"};

const char *dpt_task_name(dpt_task t) { return (unsigned)t < 3 ? task_names[t] : "unknown"; }

dpt_status dpt_task_parse(const char *s, const char *what, dpt_task *out) {
  for (int i = 0; i < 3; ++i)
    if (!strcmp(s, task_names[i])) { *out = (dpt_task)i; return DPT_OK; }
  return dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                       "%s: expected task regression, binary or multiclass, got '%s'", what, s);
}

dpt_status dpt_cast_int(int64_t v, const char *what, int *out) {
  DPT_CHECK(v >= INT_MIN && v <= INT_MAX, DPT_ERR_INPUT, "%s: %lld does not fit in the int that BLAS/MPI/HDF5 take",
            what, (long long)v);
  *out = (int)v;
  return DPT_OK;
}

/* Test hook: DPT_FAULT=alloc@N makes the N-th dpt_alloc/dpt_calloc (counted from 1, from
 * MPI_Init on) on rank DPT_FAULT_RANK (default 0) of MPI_COMM_WORLD fail as if memory were
 * exhausted, so the tests can check that an allocation failing on one rank anywhere stops
 * every rank (no hang); launch/fault-sweep runs it for every N. */
int64_t dpt_fault_at(const char *kind, int rank) {
  const char *spec = getenv("DPT_FAULT"), *rank_s = getenv("DPT_FAULT_RANK");
  size_t len = strlen(kind);
  if (!spec || strncmp(spec, kind, len) != 0 || spec[len] != '@') return -1;
  if (rank != (rank_s && *rank_s ? atoi(rank_s) : 0)) return -1;
  return strtoll(spec + len + 1, NULL, 10);
}

static bool injected_failure(void) {
  static int64_t target = -2, calls = 0; /* target: -2 not read yet, -1 none */
  if (target == -2) {
    if (!getenv("DPT_FAULT")) {
      target = -1;
    } else { /* counted from MPI_Init on: before it the rank is not known */
      int init = 0, rank = 0;
      if (MPI_Initialized(&init) != MPI_SUCCESS || !init) return false;
      MPI_Comm_rank(MPI_COMM_WORLD, &rank);
      target = dpt_fault_at("alloc", rank);
    }
  }
  return target > 0 && ++calls == target;
}

dpt_status dpt_alloc(size_t count, size_t size, const char *what, void *out) {
  void **p = (void **)out;
  *p = NULL;
  DPT_CHECK(size == 0 || count <= SIZE_MAX / size, DPT_ERR_MEMORY, "%s: %zu x %zu bytes overflows", what, count, size);
  size_t bytes = count * size;
  DPT_CHECK(!injected_failure(), DPT_ERR_MEMORY, "%s: cannot allocate %zu bytes (injected: DPT_FAULT)", what, bytes);
  *p = malloc(bytes ? bytes : 1);
  DPT_CHECK(*p != NULL, DPT_ERR_MEMORY, "%s: cannot allocate %zu bytes", what, bytes);
  return DPT_OK;
}

dpt_status dpt_calloc(size_t count, size_t size, const char *what, void *out) {
  void **p = (void **)out;
  *p = NULL;
  DPT_CHECK(size == 0 || count <= SIZE_MAX / size, DPT_ERR_MEMORY, "%s: %zu x %zu bytes overflows", what, count, size);
  DPT_CHECK(!injected_failure(), DPT_ERR_MEMORY, "%s: cannot allocate %zu bytes (injected: DPT_FAULT)", what,
            count * size);
  *p = calloc(count ? count : 1, size ? size : 1);
  DPT_CHECK(*p != NULL, DPT_ERR_MEMORY, "%s: cannot allocate %zu bytes", what, count * size);
  return DPT_OK;
}

dpt_status dpt_grow(void *pp, size_t count, size_t size, const char *what) {
  void **p = (void **)pp;
  DPT_CHECK(size == 0 || count <= SIZE_MAX / size, DPT_ERR_MEMORY, "%s: %zu x %zu bytes overflows", what, count, size);
  size_t bytes = count * size;
  DPT_CHECK(!injected_failure(), DPT_ERR_MEMORY, "%s: cannot allocate %zu bytes (injected: DPT_FAULT)", what, bytes);
  void *q = realloc(*p, bytes ? bytes : 1);
  DPT_CHECK(q != NULL, DPT_ERR_MEMORY, "%s: cannot allocate %zu bytes", what, bytes);
  *p = q;
  return DPT_OK;
}

dpt_status dpt_strdup(const char *s, const char *what, char **out) {
  size_t len = strlen(s) + 1;
  DPT_CALL(dpt_alloc(len, 1, what, out));
  memcpy(*out, s, len);
  return DPT_OK;
}

void dpt_free(void *pp) {
  void **p = (void **)pp;
  if (p) {
    free(*p);
    *p = NULL;
  }
}

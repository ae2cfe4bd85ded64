/* trace.c — Chrome trace-event timeline (see trace.h). */
#include "dptrain/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/types.h"

typedef struct event {
  char name[48], cat[16];
  double t0, t1;
  int64_t arg;
  int tid;
} event;

struct dpt_trace {
  char *path;     /* owned */
  event *events;  /* owned, [cap] */
  int64_t n, cap, max, dropped;
};

dpt_status dpt_trace_create(const char *path, int64_t max_events, dpt_trace **out) {
  *out = NULL;
  if (!path) return DPT_OK;
  dpt_trace *t;
  DPT_CALL(dpt_calloc(1, sizeof *t, "trace", &t));
  t->max = max_events > 0 ? max_events : 1000000;
  dpt_status st = dpt_strdup(path, "trace path", &t->path);
  if (st != DPT_OK) {
    dpt_free(&t);
    return st;
  }
  *out = t;
  return DPT_OK;
}

void dpt_trace_destroy(dpt_trace **t) {
  if (!t || !*t) return;
  dpt_free(&(*t)->events);
  dpt_free(&(*t)->path);
  dpt_free(t);
}

void dpt_trace_event(dpt_trace *t, const char *name, const char *cat, int tid, double t0, double t1, int64_t arg) {
  if (!t) return;
  if (t->n == t->cap) {
    int64_t cap = t->cap ? 2 * t->cap : 4096;
    if (cap > t->max) cap = t->max;
    event *ev = t->n < t->max ? realloc(t->events, (size_t)cap * sizeof *ev) : NULL;
    if (!ev) {
      ++t->dropped;
      return;
    }
    t->events = ev;
    t->cap = cap;
  }
  event *e = &t->events[t->n++];
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->cat, sizeof e->cat, "%s", cat);
  e->t0 = t0;
  e->t1 = t1 > t0 ? t1 : t0;
  e->tid = tid;
  e->arg = arg;
}

int64_t dpt_trace_count(const dpt_trace *t) { return t ? t->n : 0; }
int64_t dpt_trace_dropped(const dpt_trace *t) { return t ? t->dropped : 0; }

/* Offset of this rank's clock against rank 0's: after a barrier, every rank reads its clock;
 * the difference to rank 0's reading is the offset, up to the barrier's exit skew. The
 * smallest magnitude over several rounds is kept (the skew only adds). */
static dpt_status clock_offset(const dpt_comm *c, double *offset) {
  double best = 0.0;
  for (int round = 0; round < 5; ++round) {
    DPT_CALL_MPI(MPI_Barrier(c->comm));
    double mine = MPI_Wtime(), root = mine;
    DPT_CALL_MPI(MPI_Bcast(&root, 1, MPI_DOUBLE, 0, c->comm));
    double off = mine - root;
    if (round == 0 || (off < 0 ? -off : off) < (best < 0 ? -best : best)) best = off;
  }
  *offset = c->rank == 0 ? 0.0 : best;
  return DPT_OK;
}

/* Serializes this rank's events as JSON objects separated by commas (no brackets). */
static dpt_status serialize(const dpt_comm *c, const dpt_trace *t, double offset, double origin, char **out,
                            size_t *len) {
  *out = NULL;
  *len = 0;
  FILE *f = open_memstream(out, len);
  DPT_CHECK(f, DPT_ERR_MEMORY, "trace: cannot open a memory stream");
  static const char *const tracks[] = {"phases", "communication", "io"};
  fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"rank %d\"}}", c->rank,
          c->rank);
  fprintf(f, ",\n{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"sort_index\":%d}}",
          c->rank, c->rank);
  for (int tid = 0; tid < 3; ++tid)
    fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s\"}}", c->rank,
            tid, tracks[tid]);
  for (int64_t i = 0; i < t->n; ++i) {
    const event *e = &t->events[i];
    double ts = (e->t0 - offset - origin) * 1e6, dur = (e->t1 - e->t0) * 1e6;
    fprintf(f, ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d", e->name,
            e->cat, ts, dur, c->rank, e->tid);
    if (e->arg >= 0) fprintf(f, ",\"args\":{\"n\":%lld}", (long long)e->arg);
    fputc('}', f);
  }
  fclose(f);
  DPT_CHECK(*out, DPT_ERR_MEMORY, "trace: out of memory serializing %lld events", (long long)t->n);
  return DPT_OK;
}

dpt_status dpt_trace_write(const dpt_comm *c, dpt_trace *t) {
  if (!t) return DPT_OK;
  dpt_status st = DPT_OK;
  char *text = NULL, *all = NULL;
  int *sizes = NULL, *displs = NULL;
  double offset = 0, first = 1e300;
  DPT_TRY(clock_offset(c, &offset));
  /* time origin: the earliest corrected event over all ranks */
  for (int64_t i = 0; i < t->n; ++i)
    if (t->events[i].t0 - offset < first) first = t->events[i].t0 - offset;
  DPT_TRY_CHECK(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_DOUBLE, MPI_MIN, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "trace: MPI_Allreduce failed");
  if (first > 1e299) first = 0;
  size_t len = 0;
  st = serialize(c, t, offset, first, &text, &len);
  int mylen = 0;
  if (st == DPT_OK) st = dpt_cast_int((int64_t)len, "trace text of one rank", &mylen);
  DPT_TRY(dpt_comm_agree(c, st));
  if (c->rank == 0) {
    st = dpt_alloc((size_t)c->size, sizeof(int), "trace sizes", &sizes);
    if (st == DPT_OK) st = dpt_alloc((size_t)c->size, sizeof(int), "trace displacements", &displs);
  }
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY_CHECK(MPI_Gather(&mylen, 1, MPI_INT, sizes, 1, MPI_INT, 0, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "trace: MPI_Gather failed");
  int64_t total = 0;
  if (c->rank == 0) {
    for (int r = 0; r < c->size; ++r) {
      displs[r] = (int)total;
      total += sizes[r];
    }
    st = total > 0x7fffffff ? dpt_error_set(DPT_ERR_MEMORY, __FILE__, __LINE__, __func__,
                                            "%s: the merged trace exceeds 2 GiB; lower run.trace_max_events", t->path)
                            : dpt_alloc((size_t)total + 1, 1, "merged trace", &all);
  }
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY_CHECK(MPI_Gatherv(text, mylen, MPI_CHAR, all, sizes, displs, MPI_CHAR, 0, c->comm) == MPI_SUCCESS,
                DPT_ERR_MPI, "trace: MPI_Gatherv failed");
  if (c->rank == 0) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", t->path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
      st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot create the trace file", tmp);
    } else {
      fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
      for (int r = 0; r < c->size; ++r) {
        if (r) fputs(",\n", f);
        fwrite(all + displs[r], 1, (size_t)sizes[r], f);
      }
      fputs("\n]}\n", f);
      int bad = ferror(f);
      bad |= fclose(f) != 0;
      if (bad || rename(tmp, t->path) != 0) {
        remove(tmp);
        st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot write the trace file", t->path);
      }
    }
  }
  DPT_TRY(dpt_comm_agree(c, st));
done:
  free(text);
  dpt_free(&all);
  dpt_free(&sizes);
  dpt_free(&displs);
  return st;
}

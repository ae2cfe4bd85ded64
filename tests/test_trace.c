/* test_trace.c — the merged timeline is valid JSON (trace-event format) with one process
 * track per rank and properly nested events; metrics CSV rows; no progress bar off a tty.
 * dpt-test: ranks=1,2,3 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "dptrain/metrics.h"
#include "dptrain/trace.h"

/* ---- a minimal JSON syntax checker (RFC 8259 grammar, no semantic checks) ---- */
static const char *ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') ++p;
  return p;
}
static const char *value(const char *p);
static const char *string(const char *p) {
  if (*p != '"') return NULL;
  for (++p; *p && *p != '"'; ++p) {
    if ((unsigned char)*p < 0x20) return NULL;
    if (*p == '\\') ++p;
  }
  return *p == '"' ? p + 1 : NULL;
}
static const char *number(const char *p) {
  const char *s = p;
  if (*p == '-') ++p;
  while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-') ++p;
  return p > s ? p : NULL;
}
static const char *compound(const char *p, char open, char close, int keyed) {
  if (*p != open) return NULL;
  p = ws(p + 1);
  if (*p == close) return p + 1;
  for (;;) {
    if (keyed) {
      if (!(p = string(p))) return NULL;
      p = ws(p);
      if (*p != ':') return NULL;
      p = ws(p + 1);
    }
    if (!(p = value(p))) return NULL;
    p = ws(p);
    if (*p == close) return p + 1;
    if (*p != ',') return NULL;
    p = ws(p + 1);
  }
}
static const char *value(const char *p) {
  p = ws(p);
  if (*p == '{') return compound(p, '{', '}', 1);
  if (*p == '[') return compound(p, '[', ']', 0);
  if (*p == '"') return string(p);
  if (!strncmp(p, "true", 4)) return p + 4;
  if (!strncmp(p, "false", 5)) return p + 5;
  if (!strncmp(p, "null", 4)) return p + 4;
  return number(p);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)len + 1);
  if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) len = 0;
  if (buf) buf[len] = '\0';
  fclose(f);
  return buf;
}

typedef struct ev {
  int pid, tid;
  double ts, dur;
} ev;

static void test_trace_merged(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  char path[512];
  snprintf(path, sizeof path, "%s/trace.json", dpt_test_tmpdir());
  dpt_trace *t = NULL;
  assert_dpt_ok(dpt_trace_create(path, 0, &t));
  double base = MPI_Wtime();
  for (int s = 0; s < 3; ++s) { /* step [10s, 10s+8] containing two phases, plus a comm event */
    double t0 = base + 10.0 * s;
    dpt_trace_event(t, "forward", "compute", DPT_TRACE_PHASES, t0 + 1, t0 + 3, -1);
    dpt_trace_event(t, "backward", "compute", DPT_TRACE_PHASES, t0 + 3, t0 + 7, -1);
    dpt_trace_event(t, "step", "step", DPT_TRACE_PHASES, t0, t0 + 8, s);
    dpt_trace_event(t, "bucket", "comm", DPT_TRACE_COMM, t0 + 4, t0 + 7.5, 1024);
  }
  assert_int_equal(dpt_trace_count(t), 12);
  assert_dpt_ok(dpt_trace_write(c, t));
  dpt_trace_destroy(&t);
  assert_null(t);
  if (c->rank == 0) {
    char *text = slurp(path);
    assert_non_null(text);
    const char *end = value(text);
    assert_non_null(end); /* valid JSON */
    assert_string_equal(ws(end), "");
    /* one process_name per rank */
    int tracks = 0;
    for (const char *p = text; (p = strstr(p, "\"process_name\"")); ++p) ++tracks;
    assert_int_equal(tracks, c->size);
    /* collect complete events: one per line in the writer's format */
    ev evs[64];
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
      if (!strstr(line, "\"ph\":\"X\"")) continue;
      assert_true(n < 64);
      const char *ts = strstr(line, "\"ts\":"), *dur = strstr(line, "\"dur\":"), *pid = strstr(line, "\"pid\":"),
                 *tid = strstr(line, "\"tid\":");
      assert_true(ts && dur && pid && tid);
      evs[n++] = (ev){atoi(pid + 6), atoi(tid + 6), atof(ts + 5), atof(dur + 6)};
    }
    assert_int_equal(n, 12 * c->size);
    /* nesting: on each (pid, tid) track, two events either nest or are disjoint
     * (timestamps in µs printed with 3 decimals: 1e-3 µs tolerance) */
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        if (i == j || evs[i].pid != evs[j].pid || evs[i].tid != evs[j].tid) continue;
        double a0 = evs[i].ts, a1 = a0 + evs[i].dur, b0 = evs[j].ts, b1 = b0 + evs[j].dur, eps = 1e-3;
        bool disjoint = a1 <= b0 + eps || b1 <= a0 + eps;
        bool nested = (a0 >= b0 - eps && a1 <= b1 + eps) || (b0 >= a0 - eps && b1 <= a1 + eps);
        assert_true(disjoint || nested);
      }
    /* every rank's events start at or after the merged origin */
    for (int i = 0; i < n; ++i) assert_true(evs[i].ts >= -1e-3);
    free(text);
  }
}

static void test_metrics_csv_and_no_bar(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  char path[512];
  snprintf(path, sizeof path, "%s/metrics.csv", dpt_test_tmpdir());
  dpt_metrics *m = NULL;
  /* force_tty = -1: detect; under ctest stdout is a pipe, so no bar */
  assert_dpt_ok(dpt_metrics_create(path, c->rank == 0, -1, 30.0, &m));
  assert_false(dpt_metrics_is_tty(m));
  const char *names[3] = {"epoch", "train_loss", "lr"};
  for (int e = 0; e < 4; ++e) {
    double v[3] = {e + 1, 1.0 / (e + 1), 0.1};
    assert_dpt_ok(dpt_metrics_row(m, 3, names, v));
    dpt_metrics_progress(m, MPI_Wtime(), e, 4, 0, 1, v[1], 100.0, 1.0);
  }
  double bad[2] = {0, 0};
  assert_dpt_fails(dpt_metrics_row(m, 2, names, bad), DPT_ERR_INTERNAL, "columns");
  dpt_metrics_destroy(&m);
  if (c->rank == 0) {
    char *text = slurp(path);
    assert_non_null(text);
    assert_string_equal(text, "epoch,train_loss,lr\n1,1,0.1\n2,0.5,0.1\n3,0.333333333,0.1\n4,0.25,0.1\n");
    free(text);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trace_merged),
      cmocka_unit_test(test_metrics_csv_and_no_bar),
  };
  return dpt_test_run(tests);
}

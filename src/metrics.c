/* metrics.c — metrics CSV and progress display (see metrics.h). */
#include "dptrain/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/types.h"

/* Under Open MPI's mpirun (and PMIx launchers) every rank's stdout is a pseudo-terminal even
 * when mpirun's own output goes to a file, so isatty() cannot tell a terminal from a log:
 * a launcher-started rank draws no bar unless asked (run.progress = 1). */
static bool stdout_is_terminal(void) {
  if (!isatty(STDOUT_FILENO)) return false;
  const char *launched[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_JOB_ID"};
  for (size_t i = 0; i < sizeof launched / sizeof launched[0]; ++i)
    if (getenv(launched[i])) return false;
  return true;
}

struct dpt_metrics {
  FILE *csv;        /* owned; NULL when off or not root */
  char *path;       /* owned */
  bool root, tty, bar_open;
  int ncols;        /* 0 until the header is written */
  double every_s, last_print;
};

dpt_status dpt_metrics_create(const char *path, bool is_root, int force_tty, double every_s, dpt_metrics **out) {
  dpt_metrics *m;
  DPT_CALL(dpt_calloc(1, sizeof *m, "metrics", &m));
  m->root = is_root;
  m->tty = is_root && (force_tty < 0 ? stdout_is_terminal() : force_tty == 1);
  m->every_s = every_s > 0 ? every_s : 30.0;
  m->last_print = -1.0;
  if (path && is_root) {
    dpt_status st = dpt_strdup(path, "metrics path", &m->path);
    if (st != DPT_OK) {
      dpt_free(&m);
      return st;
    }
    m->csv = fopen(path, "w");
    if (!m->csv) {
      dpt_free(&m->path);
      dpt_free(&m);
      return dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: run.metrics: cannot create the metrics CSV",
                           path);
    }
  }
  *out = m;
  return DPT_OK;
}

void dpt_metrics_destroy(dpt_metrics **m) {
  if (!m || !*m) return;
  dpt_metrics_progress_end(*m);
  if ((*m)->csv) fclose((*m)->csv);
  dpt_free(&(*m)->path);
  dpt_free(m);
}

dpt_status dpt_metrics_row(dpt_metrics *m, int n, const char *const *names, const double *values) {
  if (!m) return DPT_OK;
  bool header = m->ncols == 0;
  if (header) m->ncols = n;
  DPT_CHECK(n == m->ncols, DPT_ERR_INTERNAL, "metrics: row has %d columns, header has %d", n, m->ncols);
  if (!m->csv) return DPT_OK;
  if (header) {
    for (int i = 0; i < n; ++i) fprintf(m->csv, "%s%s", i ? "," : "", names[i]);
    fputc('\n', m->csv);
  }
  for (int i = 0; i < n; ++i) {
    if (isnan(values[i]))
      fprintf(m->csv, "%snan", i ? "," : "");
    else
      fprintf(m->csv, "%s%.9g", i ? "," : "", values[i]);
  }
  fputc('\n', m->csv);
  DPT_CHECK(fflush(m->csv) == 0, DPT_ERR_IO, "%s: run.metrics: writing the metrics CSV failed: %s", m->path,
            strerror(errno));
  return DPT_OK;
}

static void format_eta(double s, char *buf, size_t len) {
  if (!(s >= 0) || s > 1e7) {
    snprintf(buf, len, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    snprintf(buf, len, "%02ld:%02ld", t / 60, t % 60);
}

void dpt_metrics_progress(dpt_metrics *m, double now, int64_t epoch, int64_t epochs, int64_t step, int64_t steps,
                          double loss, double samples_per_s, double eta_s) {
  if (!m || !m->root) return;
  char eta[32];
  format_eta(eta_s, eta, sizeof eta);
  if (m->tty) {
    if (m->last_print >= 0 && now - m->last_print < 0.2 && step + 1 < steps) return;
    m->last_print = now;
    enum { W = 24 };
    int filled = steps > 0 ? (int)((double)W * (double)(step + 1) / (double)steps) : W;
    char bar[W + 1];
    for (int i = 0; i < W; ++i) bar[i] = i < filled ? '#' : '.';
    bar[W] = '\0';
    printf("\r\033[Kepoch %lld/%lld [%s] step %lld/%lld loss %.4g %.0f samples/s ETA %s", (long long)epoch + 1,
           (long long)epochs, bar, (long long)step + 1, (long long)steps, loss, samples_per_s, eta);
    fflush(stdout);
    m->bar_open = true;
    return;
  }
  if (m->last_print < 0) m->last_print = now;
  if (now - m->last_print < m->every_s) return;
  m->last_print = now;
  printf("progress: epoch %lld/%lld step %lld/%lld loss %.6g %.0f samples/s ETA %s\n", (long long)epoch + 1,
         (long long)epochs, (long long)step + 1, (long long)steps, loss, samples_per_s, eta);
  fflush(stdout);
}

void dpt_metrics_progress_end(dpt_metrics *m) {
  if (!m || !m->bar_open) return;
  printf("\r\033[K");
  fflush(stdout);
  m->bar_open = false;
}

bool dpt_metrics_is_tty(const dpt_metrics *m) { return m && m->tty; }

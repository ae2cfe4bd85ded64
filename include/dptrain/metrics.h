/* metrics.h — per-epoch metrics CSV and progress display (rank 0 only).
 *
 * The CSV has one row per epoch; its header is written with the first row from the column
 * names the caller passes (the training loop documents its columns in README "Scaling
 * studies, traces, metrics"). Values are written with %.9g; NaN as "nan". The file is
 * written as it goes (flushed each row) so a crashed run keeps its history.
 *
 * Progress: when stdout is a terminal (and the process was not started by mpirun/srun, whose
 * ranks always see a pseudo-terminal), a one-line bar (epoch, step, loss, samples/s, ETA)
 * redrawn at most every 0.2 s; otherwise nothing between the plain per-epoch log lines,
 * except a plain line every `every_s` seconds within a long epoch (Slurm logs).
 *
 * Ownership: create allocates (on every rank; only rank 0 opens the file and prints);
 * destroy closes and frees. Not collective. */
#ifndef DPTRAIN_METRICS_H
#define DPTRAIN_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "dptrain/error.h"

typedef struct dpt_metrics dpt_metrics;

/* path may be NULL (no CSV). is_root: this rank prints/writes. force_tty: -1 detect (see above), 0 never a bar, 1 always (tests). every_s: plain-progress interval. */
dpt_status dpt_metrics_create(const char *path, bool is_root, int force_tty, double every_s, dpt_metrics **out);
void dpt_metrics_destroy(dpt_metrics **m);
/* Appends one CSV row; the first call writes the header from names. Later calls must pass
 * the same n columns. */
dpt_status dpt_metrics_row(dpt_metrics *m, int n, const char *const *names, const double *values);
/* Progress within an epoch; now is MPI_Wtime(). Prints nothing off rank 0. */
void dpt_metrics_progress(dpt_metrics *m, double now, int64_t epoch, int64_t epochs, int64_t step, int64_t steps,
                          double loss, double samples_per_s, double eta_s);
/* Ends the progress line (before a plain log line is printed). */
void dpt_metrics_progress_end(dpt_metrics *m);
/* True when a progress bar is drawn (stdout is a terminal on rank 0). */
bool dpt_metrics_is_tty(const dpt_metrics *m);

#endif

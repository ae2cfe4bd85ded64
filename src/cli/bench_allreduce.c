/* bench_allreduce.c — `dptrain bench --allreduce`: MPI_Allreduce time against message size on
 * the actual network, and a fit of the communication model.
 *
 * For each size m (bytes of float32, 4 B .. max) the mean time of MPI_Allreduce(SUM) over
 * enough repetitions to last ~20 ms is measured (after a warm-up; the slowest rank's mean is
 * what a synchronous step waits for). Then T(m) = a + b·m is fitted by least squares with
 * relative weights (each point's error counted relative to its time, so the small messages
 * that fix a are not drowned by the large ones that fix b). Under the ring algorithm's model
 * T(m) = 2(P−1)·α + 2(P−1)/P·m·β, this gives the per-link latency α = a / (2(P−1)) and inverse
 * bandwidth β = b·P / (2(P−1)), which launch/scaling-study --project uses for larger P.
 * Output: a table, the fit, and with --out FILE a CSV (bytes,seconds). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dptrain/types.h"

int dpt_bench_allreduce(const dpt_comm *c, int argc, char **argv);

static dpt_status measure(const dpt_comm *c, float *buf, int count, double *seconds) {
  /* warm-up, then reps chosen on rank 0 and agreed (all ranks must loop equally) */
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, c->comm));
  DPT_CALL_MPI(MPI_Barrier(c->comm));
  double t0 = MPI_Wtime();
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, c->comm));
  double once = MPI_Wtime() - t0;
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, &once, 1, MPI_DOUBLE, MPI_MAX, c->comm));
  int reps = once > 0 ? (int)(0.02 / once) : 1000;
  if (reps < 3) reps = 3;
  if (reps > 2000) reps = 2000;
  DPT_CALL_MPI(MPI_Barrier(c->comm));
  t0 = MPI_Wtime();
  for (int r = 0; r < reps; ++r) DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, c->comm));
  double mean = (MPI_Wtime() - t0) / reps;
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, &mean, 1, MPI_DOUBLE, MPI_MAX, c->comm));
  *seconds = mean;
  return DPT_OK;
}

int dpt_bench_allreduce(const dpt_comm *c, int argc, char **argv) {
  dpt_status st = DPT_OK;
  int64_t max_bytes = INT64_C(64) << 20;
  const char *out = NULL;
  for (int i = 1; i < argc && st == DPT_OK; ++i) {
    if (!strcmp(argv[i], "--allreduce")) continue;
    if (!strcmp(argv[i], "--max-mb") && i + 1 < argc) {
      char *end;
      double mb = strtod(argv[++i], &end);
      if (*end || !(mb > 0 && mb <= 4096))
        st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "--max-mb: expected a size in (0, 4096] MiB, got '%s'", argv[i]);
      else
        max_bytes = (int64_t)(mb * 1048576.0);
    } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
      out = argv[++i];
    } else {
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                         "bench --allreduce: unknown argument '%s' (expected --max-mb MB, --out FILE)", argv[i]);
    }
  }
  if (dpt_cli_finish(c, st)) return 1;
  float *buf = NULL;
  st = dpt_calloc((size_t)max_bytes / sizeof(float) + 1, sizeof(float), "allreduce buffer", &buf);
  if (dpt_cli_finish(c, st)) return 1;
  enum { MAXPTS = 64 };
  double bytes[MAXPTS], secs[MAXPTS];
  int n = 0;
  for (int64_t b = 4; b <= max_bytes && n < MAXPTS && st == DPT_OK; b *= 4) {
    st = measure(c, buf, (int)(b / 4), &secs[n]);
    bytes[n++] = (double)b;
  }
  dpt_free(&buf);
  if (dpt_cli_finish(c, st)) return 1;
  /* weighted least squares for T = a + b m, weights 1/T^2 */
  double s00 = 0, s01 = 0, s11 = 0, r0 = 0, r1 = 0;
  for (int i = 0; i < n; ++i) {
    double w = 1.0 / (secs[i] * secs[i]);
    s00 += w;
    s01 += w * bytes[i];
    s11 += w * bytes[i] * bytes[i];
    r0 += w * secs[i];
    r1 += w * secs[i] * bytes[i];
  }
  double det = s00 * s11 - s01 * s01, a = (r0 * s11 - r1 * s01) / det, bb = (s00 * r1 - s01 * r0) / det;
  if (c->rank == 0) {
    printf("# MPI_Allreduce(SUM, float32) on %d rank(s), %d per node; slowest rank's mean time\n", c->size,
           c->local_size);
    printf("%12s %14s %14s %12s\n", "bytes", "time_us", "fit_us", "busbw_GB/s");
    for (int i = 0; i < n; ++i) {
      double busbw = c->size > 1 ? 2.0 * (c->size - 1) / c->size * bytes[i] / secs[i] / 1e9 : 0.0;
      printf("%12.0f %14.3f %14.3f %12.3f\n", bytes[i], secs[i] * 1e6, (a + bb * bytes[i]) * 1e6, busbw);
    }
    printf("fit: T(m) = a + b m with a = %.3f us, b = %.4g s/byte (%.3f GB/s)\n", a * 1e6, bb, bb > 0 ? 1e-9 / bb : 0.0);
    if (c->size > 1) {
      double alpha = a / (2.0 * (c->size - 1)), beta = bb * c->size / (2.0 * (c->size - 1));
      printf("ring model per link: alpha = %.3f us, beta = %.4g s/byte (%.3f GB/s)\n", alpha * 1e6, beta,
             beta > 0 ? 1e-9 / beta : 0.0);
      printf("alpha_s %.9g\nbeta_s_per_byte %.9g\n", alpha, beta);
    }
    if (out) {
      FILE *f = fopen(out, "w");
      if (!f) {
        st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: --out: cannot create the CSV", out);
      } else {
        fprintf(f, "ranks,bytes,seconds\n");
        for (int i = 0; i < n; ++i) fprintf(f, "%d,%.0f,%.9g\n", c->size, bytes[i], secs[i]);
        fclose(f);
      }
    }
  }
  return dpt_cli_finish(c, st);
}

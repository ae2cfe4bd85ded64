/* bench_io.c — dpt-bench-io: how fast the loader delivers an epoch, against this machine's
 * own limit measured in the same run (launch/bench-io runs it at P = 1 and 2).
 *
 *   mpiexec -n P dpt-bench-io FILE.h5 [--batch B] [--epochs E] [--shuffle global|local|none]
 *                                     [--per-batch-steps S]
 *
 * 1. limit: every rank read()s its 1/P byte range of FILE with 8 MiB reads, all at once;
 *    one warm-up pass, then the best of 3 (page cache): seq_GBps = file bytes / slowest rank's time.
 * 2. loader: E epochs of dpt_loader_batch over all steps (float32, no compute); each epoch's
 *    time is the slowest rank's; rate = (N·d·4 + N·4) bytes / time; ratio = rate / seq_GBps.
 * 3. per-batch reads (what the loader avoids): S steps, each a collective
 *    dpt_dataset_read_rows of this rank's rows of the global batch (a shuffled union of runs),
 *    extrapolated to an epoch.
 * 4. memory: ru_maxrss per rank after the loader epochs, over its share N/P·(d·4 + 4) bytes;
 *    also net of the RSS measured before the dataset was opened (MPI, HDF5, libraries). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/dataset.h"

static double max_over(const dpt_comm *c, double v) {
  double m;
  MPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, c->comm);
  return m;
}

static double rss_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

/* One pass of read() over this rank's byte range; returns the slowest rank's seconds. */
static double read_pass(const dpt_comm *c, const char *path, off_t size, char *buf, size_t bufsz) {
  off_t a = size / c->size * c->rank, b = c->rank + 1 == c->size ? size : size / c->size * (c->rank + 1);
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "dpt-bench-io: %s: cannot open\n", path);
    MPI_Abort(c->comm, 1);
  }
  MPI_Barrier(c->comm);
  double t0 = MPI_Wtime();
  for (off_t at = a; at < b;) {
    size_t want = (size_t)(b - at) < bufsz ? (size_t)(b - at) : bufsz;
    ssize_t got = pread(fd, buf, want, at);
    if (got <= 0) {
      fprintf(stderr, "dpt-bench-io: %s: read failed at byte %lld\n", path, (long long)at);
      MPI_Abort(c->comm, 1);
    }
    at += got;
  }
  double t = MPI_Wtime() - t0;
  close(fd);
  return max_over(c, t);
}

static void die(const dpt_comm *c, dpt_status st) {
  if (st == DPT_OK) return;
  if (c->rank == 0) dpt_error_print(stderr);
  MPI_Abort(c->comm, 1);
}

int main(int argc, char **argv) {
  dpt_comm_preinit(); /* Open MPI parameters (comm.h) */
  MPI_Init(&argc, &argv);
  dpt_comm c;
  if (dpt_comm_init_world(&c) != DPT_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  const char *path = NULL, *shuffle = "global";
  int64_t batch = 256, epochs = 3, pb_steps = 50;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--shuffle") && i + 1 < argc) shuffle = argv[++i];
    else if (!strcmp(argv[i], "--per-batch-steps") && i + 1 < argc) pb_steps = atoll(argv[++i]);
    else if (argv[i][0] != '-' && !path) path = argv[i];
    else {
      if (c.rank == 0) fprintf(stderr, "dpt-bench-io: unexpected argument '%s'\n", argv[i]);
      MPI_Abort(c.comm, 2);
    }
  }
  if (!path || batch < 1 || epochs < 1 || pb_steps < 0) {
    if (c.rank == 0) fprintf(stderr, "usage: dpt-bench-io FILE.h5 [--batch B] [--epochs E] [--shuffle MODE] [--per-batch-steps S]\n");
    MPI_Abort(c.comm, 2);
  }
  double rss0 = rss_mib();
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (c.rank == 0) fprintf(stderr, "dpt-bench-io: %s: no such file\n", path);
    MPI_Abort(c.comm, 1);
  }
  size_t bufsz = (size_t)8 << 20;
  char *buf = malloc(bufsz);
  if (!buf) MPI_Abort(c.comm, 1);
  read_pass(&c, path, sb.st_size, buf, bufsz); /* warm the page cache */
  double t_seq = 1e30; /* the limit is the best of 3 passes (a shared machine is noisy) */
  for (int rep = 0; rep < 3; ++rep) {
    double t = read_pass(&c, path, sb.st_size, buf, bufsz);
    if (t < t_seq) t_seq = t;
  }
  free(buf);
  double seq = (double)sb.st_size / t_seq / 1e9;

  dpt_dataset *ds = NULL;
  dpt_config *cfg = NULL;
  dpt_loader *l = NULL;
  die(&c, dpt_config_create(&cfg));
  die(&c, dpt_config_set(cfg, "data.shuffle", shuffle, "dpt-bench-io"));
  die(&c, dpt_dataset_open(&c, path, "train", &ds));
  int64_t n = dpt_dataset_rows(ds), d = dpt_dataset_features(ds);
  die(&c, dpt_loader_create(&c, ds, cfg, DPT_F32, batch, 0, 1, &l));
  int64_t steps = dpt_loader_steps_per_epoch(l);
  double bytes = (double)n * (double)(d * 4 + 4), best = 1e30;
  if (c.rank == 0)
    printf("file %s: %.3f GB, N %lld, d %lld, P %d, batch %lld, shuffle %s\n"
           "limit: sequential read() of the file from the page cache, %d rank(s) at once: %.3f GB/s (%.3f s)\n",
           path, (double)sb.st_size / 1e9, (long long)n, (long long)d, c.size, (long long)batch, shuffle, c.size, seq,
           t_seq);
  { /* the HDF5 read alone: this rank's contiguous shard in one collective read (float32) */
    int64_t begin, count;
    dpt_shard_range(n, c.size, c.rank, &begin, &count);
    int64_t *rows = malloc((size_t)(count ? count : 1) * sizeof *rows);
    float *X = malloc((size_t)(count ? count : 1) * (size_t)d * sizeof *X);
    if (!rows || !X) MPI_Abort(c.comm, 1);
    for (int64_t i = 0; i < count; ++i) rows[i] = begin + i;
    for (int rep = 0; rep < 2; ++rep) {
      MPI_Barrier(c.comm);
      double t0 = MPI_Wtime();
      die(&c, dpt_dataset_read_rows(ds, rows, count, DPT_F32, X, NULL, NULL));
      double t = max_over(&c, MPI_Wtime() - t0), xb = (double)n * (double)d * 4;
      if (c.rank == 0 && rep == 1)
        printf("HDF5 collective read of /X, one contiguous shard per rank: %.3f s, %.3f GB/s, ratio to limit %.2f\n", t,
               xb / t / 1e9, xb / t / 1e9 / seq);
    }
    free(rows);
    free(X);
  }
  for (int64_t e = 0; e < epochs; ++e) {
    MPI_Barrier(c.comm);
    double t0 = MPI_Wtime();
    dpt_batch b;
    for (int64_t s = 0; s < steps; ++s) die(&c, dpt_loader_batch(l, e, s, &b));
    double t = max_over(&c, MPI_Wtime() - t0);
    if (t < best) best = t;
    if (c.rank == 0)
      printf("loader epoch %lld: %.3f s, %.3f GB/s, ratio to limit %.2f\n", (long long)e, t, bytes / t / 1e9,
             bytes / t / 1e9 / seq);
  }
  double rss = rss_mib(), share = bytes / c.size / 1048576.0;
  double rss_max = max_over(&c, rss), net_max = max_over(&c, rss - rss0);
  if (c.rank == 0)
    printf("best epoch: %.3f GB/s = %.2f x limit\n"
           "memory: peak RSS per rank (max over ranks) %.0f MiB, %.0f MiB net of the %.0f MiB before opening; "
           "share N/P rows %.0f MiB; ratio %.2f (net %.2f)\n",
           bytes / best / 1e9, bytes / best / 1e9 / seq, rss_max, net_max, rss0, share, rss_max / share,
           net_max / share);

  /* per-batch reads of the same global batches, for comparison */
  if (pb_steps > steps) pb_steps = steps;
  if (pb_steps > 0) {
    int64_t begin, count, *rows = malloc((size_t)batch * sizeof *rows);
    float *X = malloc((size_t)batch * (size_t)d * sizeof *X);
    int32_t *lab = malloc((size_t)batch * sizeof *lab);
    if (!rows || !X || !lab) MPI_Abort(c.comm, 1);
    bool labels = dpt_dataset_task(ds) != DPT_TASK_REGRESSION;
    MPI_Barrier(c.comm);
    double t0 = MPI_Wtime();
    for (int64_t s = 0; s < pb_steps; ++s) {
      int64_t lo = s * batch, hi = lo + batch < n ? lo + batch : n;
      dpt_shard_batch(hi - lo, 0, c.size, c.rank, &begin, &count);
      for (int64_t i = 0; i < count; ++i) rows[i] = dpt_loader_sample(l, epochs, lo + begin + i);
      die(&c, dpt_dataset_read_rows(ds, rows, count, DPT_F32, X, labels ? lab : NULL, NULL));
    }
    double t = max_over(&c, MPI_Wtime() - t0), per_epoch = t / (double)pb_steps * (double)steps;
    if (c.rank == 0)
      printf("per-batch collective reads (%lld steps, extrapolated): epoch %.3f s, %.3f GB/s, ratio to limit %.3f; "
             "loader is %.1f x faster\n",
             (long long)pb_steps, per_epoch, bytes / per_epoch / 1e9, bytes / per_epoch / 1e9 / seq, per_epoch / best);
    free(rows);
    free(X);
    free(lab);
  }
  dpt_loader_destroy(&l);
  dpt_dataset_close(&ds);
  dpt_config_destroy(&cfg);
  dpt_comm_finalize(&c);
  MPI_Finalize();
  return 0;
}

/* bench_checkpoint.c — `dptrain bench --checkpoint [--params N] [--rounds R] [--dir DIR]`:
 * time to write and read a checkpoint of N parameters with Adam state (params, m, v: 3 × N
 * floats, f32) through dptrain's collective HDF5 path (tmp file, fsync, read-back check of
 * every checksum, rename), against this machine's plain sequential write(2)+fsync and
 * read(2) of the same number of bytes, measured in the same run, in the same directory.
 * Prints the best of R rounds of each and the ratios. Deletes its files afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dptrain/checkpoint.h"

static dpt_status plain_write(const char *path, const char *buf, size_t bytes, double *secs) {
  double t0 = MPI_Wtime();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  DPT_CHECK(fd >= 0, DPT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  size_t done = 0;
  while (done < bytes) {
    ssize_t w = write(fd, buf + done, bytes - done > (1u << 24) ? (1u << 24) : bytes - done);
    if (w <= 0) {
      close(fd);
      return dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: write failed: %s", path, strerror(errno));
    }
    done += (size_t)w;
  }
  int rc = fsync(fd);
  close(fd);
  DPT_CHECK(rc == 0, DPT_ERR_IO, "%s: fsync failed", path);
  *secs = MPI_Wtime() - t0;
  return DPT_OK;
}

static dpt_status plain_read(const char *path, char *buf, size_t bytes, double *secs) {
  double t0 = MPI_Wtime();
  int fd = open(path, O_RDONLY);
  DPT_CHECK(fd >= 0, DPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t done = 0;
  while (done < bytes) {
    ssize_t r = read(fd, buf + done, bytes - done > (1u << 24) ? (1u << 24) : bytes - done);
    if (r <= 0) break;
    done += (size_t)r;
  }
  close(fd);
  DPT_CHECK(done == bytes, DPT_ERR_IO, "%s: short read", path);
  *secs = MPI_Wtime() - t0;
  return DPT_OK;
}

static const char *const names[3] = {"model/params", "optim/m", "optim/v"};

static dpt_status bench(const dpt_comm *c, int64_t n, int rounds, const char *dir) {
  dpt_status st = DPT_OK;
  float *bufs[3] = {NULL, NULL, NULL};
  char path[4200], plain[4200];
  /* one name for all ranks: rank 0's pid */
  int pid = (int)getpid();
  MPI_Bcast(&pid, 1, MPI_INT, 0, c->comm);
  snprintf(path, sizeof path, "%s/bench-ckpt-%d.h5", dir, pid);
  snprintf(plain, sizeof plain, "%s/bench-plain-%d.bin", dir, pid);
  for (int k = 0; k < 3; ++k) {
    DPT_TRY(dpt_comm_agree(c, dpt_alloc((size_t)n, sizeof(float), "benchmark tensor", &bufs[k])));
    for (int64_t i = 0; i < n; ++i) bufs[k][i] = (float)((i * 2654435761u + (uint64_t)k) % 1000003) * 1e-6f;
  }
  size_t bytes = (size_t)n * sizeof(float) * 3;
  double best_w = 1e30, best_r = 1e30, best_pw = 1e30, best_pr = 1e30;
  for (int r = 0; r < rounds; ++r) {
    MPI_Barrier(c->comm);
    double t0 = MPI_Wtime();
    dpt_ckpt_file *f = NULL;
    DPT_TRY(dpt_ckpt_create(c, path, DPT_CKPT_FORMAT_CHECKPOINT, &f));
    for (int k = 0; k < 3; ++k) {
      st = dpt_ckpt_put_tensor(f, names[k], DPT_F32, 1, &n, bufs[k]);
      if (st != DPT_OK) {
        dpt_ckpt_discard(&f);
        goto done;
      }
    }
    DPT_TRY(dpt_ckpt_commit(&f));
    double tw = MPI_Wtime() - t0;
    MPI_Barrier(c->comm);
    t0 = MPI_Wtime();
    static const char *const fmts[] = {DPT_CKPT_FORMAT_CHECKPOINT, NULL};
    DPT_TRY(dpt_ckpt_open(c, path, fmts, false, &f));
    for (int k = 0; k < 3; ++k) {
      st = dpt_ckpt_get_tensor(f, names[k], DPT_F32, 1, &n, bufs[k]);
      if (st != DPT_OK) {
        dpt_ckpt_close(&f);
        goto done;
      }
    }
    dpt_ckpt_close(&f);
    double tr = MPI_Wtime() - t0;
    double tmax[2] = {tw, tr}, red[2];
    MPI_Allreduce(tmax, red, 2, MPI_DOUBLE, MPI_MAX, c->comm);
    if (red[0] < best_w) best_w = red[0];
    if (red[1] < best_r) best_r = red[1];
    /* the machine's own limit: one process, write(2) of the same bytes + fsync, then read(2) */
    if (c->rank == 0) {
      double pw = 0, pr = 0;
      char *joined = NULL;
      st = dpt_alloc(bytes, 1, "plain buffer", &joined);
      if (st == DPT_OK) {
        for (int k = 0; k < 3; ++k) memcpy(joined + (size_t)k * (size_t)n * sizeof(float), bufs[k], (size_t)n * sizeof(float));
        st = plain_write(plain, joined, bytes, &pw);
        if (st == DPT_OK) st = plain_read(plain, joined, bytes, &pr);
        unlink(plain);
      }
      dpt_free(&joined);
      if (pw < best_pw) best_pw = pw;
      if (pr < best_pr) best_pr = pr;
    }
    DPT_TRY(dpt_comm_agree(c, st));
  }
  if (c->rank == 0) {
    double mb = (double)bytes / 1e6;
    printf("checkpoint benchmark: %lld parameters + Adam m, v (3 x %lld f32 = %.1f MB), %d rank(s), best of %d, dir %s\n",
           (long long)n, (long long)n, mb, c->size, rounds, dir);
    printf("  dptrain write (tmp, collective HDF5, fsync, read-back check, rename): %8.3f s  %8.1f MB/s\n", best_w,
           mb / best_w);
    printf("  dptrain read  (collective HDF5, allgather, checksums):                %8.3f s  %8.1f MB/s\n", best_r,
           mb / best_r);
    printf("  plain write(2)+fsync, one process:                                    %8.3f s  %8.1f MB/s\n", best_pw,
           mb / best_pw);
    printf("  plain read(2), one process:                                           %8.3f s  %8.1f MB/s\n", best_pr,
           mb / best_pr);
    printf("  write bandwidth / plain write = %.2f;  read bandwidth / plain read = %.2f\n", best_pw / best_w,
           best_pr / best_r);
    fflush(stdout);
  }
done:
  if (c->rank == 0) {
    unlink(path);
    unlink(plain);
  }
  for (int k = 0; k < 3; ++k) dpt_free(&bufs[k]);
  return st;
}

int dpt_bench_checkpoint(const dpt_comm *c, int argc, char **argv) {
  int64_t n = 10000000;
  int rounds = 3;
  const char *dir = ".";
  dpt_status st = DPT_OK;
  for (int i = 1; i < argc && st == DPT_OK; ++i) {
    char *end = NULL;
    if (!strcmp(argv[i], "--checkpoint")) continue;
    if (!strcmp(argv[i], "--params") && i + 1 < argc) {
      n = strtoll(argv[++i], &end, 10);
      if (*end || n < 1 || n > ((int64_t)1 << 28))
        st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "--params: expected 1..2^28, got '%s'", argv[i]);
    } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = (int)strtol(argv[++i], &end, 10);
      if (*end || rounds < 1 || rounds > 100)
        st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "--rounds: expected 1..100, got '%s'", argv[i]);
    } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
      dir = argv[++i];
    } else {
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                         "bench --checkpoint: unknown argument '%s' (expected --params N, --rounds R, --dir DIR)",
                         argv[i]);
    }
  }
  if (st == DPT_OK) st = bench(c, n, rounds, dir);
  return dpt_cli_finish(c, st);
}

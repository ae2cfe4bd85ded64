/* bench_kmeans.c — `dptrain bench --kmeans`: K-means++ seeding and Lloyd iterations on
 * synthetic data (default 10^6 points × 16 dims, 64 centers) over the ranks of the run,
 * reported against this machine's own limits measured in the same run:
 *  - dgemm rate (one thread) on the assignment's own shape [2048 × 16] · [16 × 64] and on a
 *    1024³ product (peak), so the assignment's flop rate reads as a fraction of what
 *    OpenBLAS does here;
 *  - memory bandwidth (triad a = b + s·c over 3 × 128 MiB, all ranks at once, summed), so
 *    the Lloyd update's streaming over the shard reads as a fraction of the node's bandwidth;
 *  - the same problem on rank 0 alone (MPI_COMM_SELF, the other ranks wait), so the
 *    scaling efficiency T1 / (P · TP) comes from one run.
 * Data: row i is blob (i mod k) — centers uniform in [−10, 10]^d — plus N(0, 1) noise,
 * generated from (seed, i) alone, so every P sees the same points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"
#include "dptrain/rbf.h"
#include "dptrain/types.h"

int dpt_bench_kmeans(const dpt_comm *c, int argc, char **argv);

static uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static double unit(uint64_t *s) { return (double)((*s = mix(*s)) >> 11) * 0x1.0p-53; }

/* Rows [begin, begin + count) of the synthetic set into X [count, d]. */
static void generate(double *X, int64_t begin, int64_t count, int64_t d, int64_t k, uint64_t seed) {
  for (int64_t r = 0; r < count; ++r) {
    int64_t i = begin + r, b = i % k;
    uint64_t cs = mix(seed ^ mix((uint64_t)b + 1)), ns = mix(seed ^ mix((uint64_t)i + 0x1234567ull));
    for (int64_t j = 0; j < d; ++j) {
      double center = -10.0 + 20.0 * unit(&cs);
      double u1 = unit(&ns), u2 = unit(&ns);
      X[r * d + j] = center + sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
    }
  }
}

static double gemm_gflops(int m, int n, int kk) {
  double *A = calloc((size_t)m * kk, sizeof *A), *B = calloc((size_t)kk * n, sizeof *B),
         *C = calloc((size_t)m * n, sizeof *C);
  if (!A || !B || !C) {
    free(A), free(B), free(C);
    return 0.0;
  }
  for (int64_t i = 0; i < (int64_t)m * kk; ++i) A[i] = 1.0 / (double)(i % 7 + 1);
  for (int64_t i = 0; i < (int64_t)kk * n; ++i) B[i] = 1.0 / (double)(i % 5 + 1);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kk, 1.0, A, kk, B, kk, 0.0, C, n);
  int reps = 0;
  double t0 = MPI_Wtime(), t;
  do {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kk, 1.0, A, kk, B, kk, 0.0, C, n);
    ++reps;
  } while ((t = MPI_Wtime() - t0) < 0.3);
  free(A), free(B), free(C);
  return 2.0 * m * n * kk * reps / t / 1e9;
}

/* Triad bandwidth of this rank (GB/s, 3 arrays of len doubles: 2 reads + 1 write). */
static double triad_gbs(size_t len) {
  double *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b), *c = malloc(len * sizeof *c);
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    return 0.0;
  }
  for (size_t i = 0; i < len; ++i) a[i] = 0.0, b[i] = 1.0, c[i] = 2.0;
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    double t0 = MPI_Wtime();
    for (size_t i = 0; i < len; ++i) a[i] = b[i] + 0.5 * c[i];
    double t = MPI_Wtime() - t0;
    if (t < best) best = t;
  }
  volatile double sink = a[len / 2];
  (void)sink;
  free(a), free(b), free(c);
  return 3.0 * (double)len * sizeof(double) / best / 1e9;
}

static dpt_status parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  long long x = strtoll(v, &end, 10);
  DPT_CHECK(*v && !*end && x >= lo && x <= hi, DPT_ERR_INPUT, "bench --kmeans: %s: expected an integer in [%lld, %lld], got '%s'",
            flag, (long long)lo, (long long)hi, v);
  *out = x;
  return DPT_OK;
}

/* Seeding and max_iters Lloyd iterations on one communicator; slowest rank's times. */
static dpt_status run(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, int64_t iters, uint64_t seed,
                      double *centers, double *seed_s, double *iter_s, double *assign_s, double *inertia) {
  DPT_CALL_MPI(MPI_Barrier(c->comm));
  double t0 = MPI_Wtime();
  DPT_CALL(dpt_kmeans_seed(c, data, k, seed, centers));
  double t1 = MPI_Wtime();
  int64_t done = 0;
  DPT_CALL(dpt_kmeans_lloyd(c, data, k, iters, 0.0, centers, &done, inertia));
  double t2 = MPI_Wtime();
  /* the assignment alone (GEMM + re-check), one pass over the shard */
  int64_t *index = NULL;
  dpt_status st = dpt_alloc((size_t)data->count, sizeof *index, "bench: assignment", &index);
  double t3 = MPI_Wtime();
  if (st == DPT_OK) st = dpt_kmeans_assign(data->X, data->count, data->d, centers, k, index, NULL);
  double t4 = MPI_Wtime();
  dpt_free(&index);
  DPT_CALL(dpt_comm_agree(c, st));
  double t[3] = {t1 - t0, (t2 - t1) / (double)(done > 0 ? done : 1), t4 - t3};
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, t, 3, MPI_DOUBLE, MPI_MAX, c->comm));
  *seed_s = t[0], *iter_s = t[1], *assign_s = t[2];
  return DPT_OK;
}

int dpt_bench_kmeans(const dpt_comm *c, int argc, char **argv) {
  dpt_status st = DPT_OK;
  int64_t n = 1000000, d = 16, k = 64, iters = 10, seed = 1, baseline = 1, threads = 1;
  for (int i = 1; i < argc && st == DPT_OK; ++i) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(a, "--kmeans")) continue;
    if (!strcmp(a, "--n")) st = parse_i64(a, v, 1, INT64_C(1) << 40, &n), ++i;
    else if (!strcmp(a, "--d")) st = parse_i64(a, v, 1, 4096, &d), ++i;
    else if (!strcmp(a, "--k")) st = parse_i64(a, v, 1, 65536, &k), ++i;
    else if (!strcmp(a, "--iters")) st = parse_i64(a, v, 1, 100000, &iters), ++i;
    else if (!strcmp(a, "--seed")) st = parse_i64(a, v, 0, INT64_MAX, &seed), ++i;
    else if (!strcmp(a, "--baseline")) st = parse_i64(a, v, 0, 1, &baseline), ++i;
    else if (!strcmp(a, "--threads")) st = parse_i64(a, v, 1, 1024, &threads), ++i;
    else
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                         "bench --kmeans: unknown argument '%s' (expected --n N, --d D, --k K, --iters I, --seed S, "
                         "--baseline 0|1, --threads T)",
                         a);
  }
  if (st == DPT_OK && k > n)
    st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "bench --kmeans: --k: expected at most --n = %lld, got %lld",
                       (long long)n, (long long)k);
  if (dpt_cli_finish(c, st)) return 1;
  int used = 0;
  dpt_comm_set_blas_threads(c, (int)threads, &used);

  /* machine limits, measured now */
  double g_shape = gemm_gflops(2048, (int)k, (int)d), g_peak = gemm_gflops(1024, 1024, 1024);
  MPI_Barrier(c->comm);
  double bw = triad_gbs((size_t)16 << 20), bw_node = 0.0;
  MPI_Allreduce(&bw, &bw_node, 1, MPI_DOUBLE, MPI_SUM, c->comm);

  int64_t begin, count;
  dpt_shard_range(n, c->size, c->rank, &begin, &count);
  double *X = NULL, *centers = NULL, *ref = NULL;
  st = dpt_alloc((size_t)count * (size_t)d, sizeof *X, "bench: shard", &X);
  if (st == DPT_OK) st = dpt_alloc((size_t)k * (size_t)d, sizeof *centers, "bench: centers", &centers);
  if (st == DPT_OK) st = dpt_alloc((size_t)k * (size_t)d, sizeof *ref, "bench: centers (1 rank)", &ref);
  st = dpt_comm_agree(c, st);
  double seed_s = 0, iter_s = 0, assign_s = 0, inertia = 0, t1_iter = 0, t1_seed = 0, t1_assign = 0, in1 = 0;
  if (st == DPT_OK) {
    generate(X, begin, count, d, k, (uint64_t)seed);
    dpt_rbf_data data = {.X = X, .count = count, .begin = begin, .n = n, .d = d};
    st = run(c, &data, k, iters, (uint64_t)seed, centers, &seed_s, &iter_s, &assign_s, &inertia);
  }
  dpt_free(&X);
  int same = 1;
  if (st == DPT_OK && baseline && c->size > 1) {
    /* the same problem on rank 0 alone */
    if (c->rank == 0) {
      dpt_comm self = {.comm = MPI_COMM_SELF, .rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
      st = dpt_alloc((size_t)n * (size_t)d, sizeof *X, "bench: whole set on rank 0", &X);
      if (st == DPT_OK) {
        generate(X, 0, n, d, k, (uint64_t)seed);
        dpt_rbf_data all = {.X = X, .count = n, .begin = 0, .n = n, .d = d};
        st = run(&self, &all, k, iters, (uint64_t)seed, ref, &t1_seed, &t1_iter, &t1_assign, &in1);
        same = st == DPT_OK && !memcmp(ref, centers, (size_t)(k * d) * sizeof *ref);
      }
      dpt_free(&X);
    }
    st = dpt_comm_agree(c, st);
  } else {
    t1_iter = iter_s, t1_seed = seed_s, t1_assign = assign_s;
  }
  if (st == DPT_OK && c->rank == 0) {
    double flops_assign = 2.0 * (double)n * (double)k * (double)d;
    double bytes_iter = 2.0 * (double)n * (double)d * sizeof(double); /* GEMM pass + update pass */
    printf("# K-means++ + Lloyd: N = %lld, d = %lld, k = %lld, %lld iterations, %d rank(s), %d per node, %d BLAS "
           "thread(s) per rank\n",
           (long long)n, (long long)d, (long long)k, (long long)iters, c->size, c->local_size, used);
    printf("machine: dgemm %.2f GFLOP/s on the assignment shape [2048x%lld]x[%lldx%lld], %.2f GFLOP/s peak "
           "(1024^3), per rank; triad %.2f GB/s per rank, %.2f GB/s all ranks at once\n",
           g_shape, (long long)d, (long long)d, (long long)k, g_peak, bw, bw_node);
    printf("seeding (k D^2 passes):   %9.4f s\n", seed_s);
    printf("Lloyd iteration:          %9.4f s  (%.2f GFLOP/s of 2Nkd; %.0f%% of %d x the shape's dgemm rate)\n",
           iter_s, flops_assign / iter_s / 1e9, 100.0 * flops_assign / iter_s / 1e9 / (c->size * g_shape), c->size);
    printf("  assignment alone:       %9.4f s  (%.0f%% of the iteration)\n", assign_s, 100.0 * assign_s / iter_s);
    printf("  streamed 2Nd doubles:   %9.2f GB/s (%.0f%% of the triad bandwidth of all ranks)\n",
           bytes_iter / iter_s / 1e9, 100.0 * bytes_iter / iter_s / 1e9 / bw_node);
    printf("inertia / N:              %9.4f (N(0,1) noise in %lld dims: about %lld if every blob is found)\n",
           inertia / (double)n, (long long)d, (long long)d);
    if (c->size > 1 && baseline) {
      printf("1 rank (rank 0 alone):    seeding %.4f s, iteration %.4f s; centers bitwise equal: %s\n", t1_seed,
             t1_iter, same ? "yes" : "NO");
      printf("scaling efficiency T1/(P TP): iteration %.2f, seeding %.2f\n", t1_iter / (c->size * iter_s),
             t1_seed / (c->size * seed_s));
    }
    printf("kmeans_bench ranks=%d n=%lld d=%lld k=%lld iter_s=%.6g seed_s=%.6g t1_iter_s=%.6g gemm_shape_gflops=%.4g "
           "triad_gbs=%.4g same=%d\n",
           c->size, (long long)n, (long long)d, (long long)k, iter_s, seed_s, t1_iter, g_shape, bw_node, same);
  }
  dpt_free(&centers);
  dpt_free(&ref);
  if (st == DPT_OK && !same)
    st = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                       "bench --kmeans: centers on %d ranks differ from 1 rank", c->size);
  return dpt_cli_finish(c, st);
}

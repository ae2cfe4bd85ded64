/* bench_parallel.c — `dptrain bench --parallel`: the data-parallel step against this machine's
 * own limits, measured in one run (mpiexec -n P, P >= 2; launch/bench-parallel runs it).
 *
 * A dense MLP (default 784-1024-1024-10, ReLU, softmax + cross-entropy, f32) trains on fixed
 * random data, `--batch` rows per rank (default 256), one BLAS thread per rank. The data
 * phase is excluded (the rows are in memory): this measures compute + communication. In
 * rounds, interleaved so that slow drifts of the machine hit every configuration alike:
 *   single : rank 0 alone (its own one-rank communicator, one thread) while the other ranks
 *            sleep (they poll an MPI_Ibarrier every millisecond, using no core);
 *   concur : every rank runs the single-rank step on its own one-rank communicator, all at
 *            once (no communication at all): the compute rate the machine gives P concurrent
 *            ranks, the ceiling of weak scaling here (shared caches, memory bandwidth, cores
 *            shared with other tenants of a virtual machine);
 *   fast   : all ranks, bucketed MPI_Iallreduce started from the backward pass (overlap);
 *   nolap  : all ranks, the same reducer but every bucket started after the backward pass;
 *   exact  : all ranks, exact mode with --micro rows per micro-batch;
 *   allred : one blocking MPI_Allreduce of the whole gradient buffer (the communication alone).
 *   shm    : the same sum through an MPI-3 shared window (time_shm_reduce), when the ranks
 *            share one node: what a node-local reduction could save (not used by the reducer).
 * Each figure is the median over rounds of the mean step time (max over ranks). Reported:
 *   weak-scaling efficiency  = (P B / t_fast) / (P * B / t_single) = t_single / t_fast
 *   compute ceiling          = t_single / t_concur (weak scaling with free communication)
 *   efficiency vs ceiling    = t_concur / t_fast (what the reduction costs)
 *   hidden share of allreduce = 1 - (comm wait in fast) / t_allred
 *   exact / fast step time, fast-without-overlap / fast
 *   and, as the machine's own limits: one-thread sgemm GFLOP/s (1024^3) and allreduce GB/s. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "cli.h"
#include "dptrain/model.h"
#include "dptrain/reduce.h"
#include "dptrain/types.h"

int dpt_bench_parallel(const dpt_comm *c, int argc, char **argv);

typedef struct bench {
  const dpt_comm *c;
  dpt_model *m;
  size_t n;
  float *X;
  int32_t *y;
  int64_t batch, micro;
  double lr;
} bench;

typedef struct step_time {
  double step, wait; /* seconds per step: whole step, reducer finish */
} step_time;

/* Idle until every rank reaches the barrier, without spinning on a core. */
static void sleep_barrier(const dpt_comm *c) {
  MPI_Request req;
  MPI_Ibarrier(c->comm, &req);
  int flag = 0;
  struct timespec ts = {0, 1000000};
  while (!flag) {
    MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    if (!flag) nanosleep(&ts, NULL);
  }
}

static void sgd(bench *b) {
  cblas_saxpy((int)b->n, (float)-b->lr, dpt_model_grads(b->m), 1, dpt_model_params(b->m), 1);
}

/* mode 0 fast with overlap, 1 fast without overlap, 2 exact. */
static dpt_status run_steps(bench *b, const dpt_comm *c, dpt_reducer *r, int mode, int steps, step_time *out) {
  double wait = 0;
  DPT_CALL_MPI(MPI_Barrier(c->comm));
  double t0 = MPI_Wtime();
  int64_t n_global = b->batch * c->size;
  dpt_targets y = {b->y, NULL};
  for (int s = 0; s < steps; ++s) {
    double loss = 0, tw;
    bool skip;
    if (mode < 2) {
      DPT_CALL(dpt_reducer_begin(r, 0));
      DPT_CALL(dpt_model_zero_grads(b->m));
      DPT_CALL(dpt_model_forward_backward(b->m, b->X, &y, b->batch, 1.0 / (double)n_global, &loss,
                                          mode == 0 ? dpt_reducer_ready : NULL, r));
    } else {
      int64_t begin, count, terms = (n_global + b->micro - 1) / b->micro;
      dpt_shard_batch(n_global, b->micro, c->size, c->rank, &begin, &count);
      DPT_CALL(dpt_reducer_begin(r, terms));
      size_t in = (size_t)dpt_model_inputs(b->m);
      for (int64_t k = 0, j = begin / b->micro; k < count; k += b->micro, ++j) {
        int64_t rows = count - k < b->micro ? count - k : b->micro;
        int64_t lo = k % b->batch; /* this rank's rows: cycle through its local data */
        if (lo + rows > b->batch) lo = 0;
        dpt_targets yk = {b->y + lo, NULL};
        double l = 0;
        void *leaf;
        DPT_CALL(dpt_reducer_leaf(r, &leaf));
        DPT_CALL(dpt_model_forward_backward_into(b->m, leaf, b->X + (size_t)lo * in, &yk, rows,
                                                 1.0 / (double)n_global, &l));
        DPT_CALL(dpt_reducer_deposit_leaf(r, j, l));
      }
    }
    tw = MPI_Wtime();
    DPT_CALL(dpt_reducer_finish(r, &loss, &skip));
    wait += MPI_Wtime() - tw;
    sgd(b);
  }
  double per[2] = {(MPI_Wtime() - t0) / steps, wait / steps};
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, per, 2, MPI_DOUBLE, MPI_MAX, c->comm));
  out->step = per[0];
  out->wait = per[1];
  return DPT_OK;
}

static dpt_status time_allreduce(bench *b, int reps, double *out) {
  float *g = dpt_model_grads(b->m);
  DPT_CALL_MPI(MPI_Barrier(b->c->comm));
  double t0 = MPI_Wtime();
  for (int k = 0; k < reps; ++k) DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, g, (int)b->n, MPI_FLOAT, MPI_SUM, b->c->comm));
  double t = (MPI_Wtime() - t0) / reps;
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, b->c->comm));
  *out = t;
  return DPT_OK;
}

/* The reduction a node could do without messages: every rank's gradient in an MPI-3 shared
 * window (MPI_Win_allocate_shared), rank q sums slice q of all P gradients into its result
 * slice, then (out[0]) every rank copies all result slices into its own gradient buffer, or
 * (out[1]) not, the lower bound of any shared-memory reduction. Seconds per reduction, max
 * over ranks; both -1 when the ranks do not share one node or P = 1. What a node-local reduction
 * could save against MPI_Allreduce, measured in the same run (not built into the reducer). */
static dpt_status time_shm_reduce(bench *b, int reps, double out[2]) {
  const dpt_comm *c = b->c;
  const int P = c->size;
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Win win = MPI_WIN_NULL;
  float *mine = NULL, **seg = NULL;
  size_t n = b->n, lo_me = n * (size_t)c->rank / (size_t)P, len_me = n * (size_t)(c->rank + 1) / (size_t)P - lo_me;
  dpt_status st = DPT_OK;
  int node_size = 0, all_one = 0;
  out[0] = out[1] = -1;
  DPT_TRY_CHECK(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS,
                DPT_ERR_MPI, "bench: MPI_Comm_split_type failed");
  MPI_Comm_size(node, &node_size);
  int one = P > 1 && node_size == P;
  DPT_TRY_CHECK(MPI_Allreduce(&one, &all_one, 1, MPI_INT, MPI_MIN, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "bench: MPI_Allreduce failed");
  if (!all_one) goto done;
  /* own segment: the gradient (n floats), then this rank's result slice */
  DPT_TRY_CHECK(MPI_Win_allocate_shared((MPI_Aint)((n + len_me) * sizeof(float)), sizeof(float), MPI_INFO_NULL, node,
                                        &mine, &win) == MPI_SUCCESS,
                DPT_ERR_MPI, "bench: MPI_Win_allocate_shared of %zu floats failed", n + len_me);
  DPT_TRY(dpt_alloc((size_t)P, sizeof *seg, "bench shared segments", &seg));
  for (int q = 0; q < P; ++q) { /* node rank q is rank q of c: split_type keeps the order */
    MPI_Aint size;
    int disp;
    MPI_Win_shared_query(win, q, &size, &disp, &seg[q]);
  }
  memcpy(mine, dpt_model_grads(b->m), n * sizeof(float));
  float *res = mine + n, *g = dpt_model_grads(b->m);
  MPI_Win_lock_all(MPI_MODE_NOCHECK, win);
  for (int sum_only = 0; sum_only < 2; ++sum_only) {
    double t = 0;
    for (int k = -1; k < reps; ++k) { /* k = -1: warm-up (first touch) */
      MPI_Barrier(c->comm);
      double t0 = MPI_Wtime();
      MPI_Win_sync(win); /* every gradient is in its segment */
      MPI_Barrier(c->comm);
      MPI_Win_sync(win);
      for (size_t i = 0; i < len_me; ++i) {
        float s = seg[0][lo_me + i];
        for (int q = 1; q < P; ++q) s += seg[q][lo_me + i];
        res[i] = s;
      }
      MPI_Win_sync(win); /* every result slice is written */
      MPI_Barrier(c->comm);
      MPI_Win_sync(win);
      if (!sum_only)
        for (int q = 0; q < P; ++q) {
          size_t lo = n * (size_t)q / (size_t)P, len = n * (size_t)(q + 1) / (size_t)P - lo;
          memcpy(g + lo, seg[q] + n, len * sizeof(float));
        }
      if (k >= 0) t += MPI_Wtime() - t0;
    }
    out[sum_only] = t / reps;
  }
  MPI_Win_unlock_all(win);
  DPT_TRY_CHECK(MPI_Allreduce(MPI_IN_PLACE, out, 2, MPI_DOUBLE, MPI_MAX, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "bench: MPI_Allreduce failed");
done:
  if (win != MPI_WIN_NULL) MPI_Win_free(&win);
  if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
  dpt_free(&seg);
  return st;
}

/* One-thread sgemm rate (this rank, 1024^3), GFLOP/s. */
static dpt_status sgemm_rate(double *out) {
  const int N = 1024;
  float *A = NULL, *B = NULL, *C = NULL;
  dpt_status st = DPT_OK;
  DPT_TRY(dpt_alloc((size_t)N * N, sizeof(float), "sgemm A", &A));
  DPT_TRY(dpt_alloc((size_t)N * N, sizeof(float), "sgemm B", &B));
  DPT_TRY(dpt_alloc((size_t)N * N, sizeof(float), "sgemm C", &C));
  for (size_t i = 0; i < (size_t)N * N; ++i) A[i] = B[i] = (float)((i % 17) * 0.01), C[i] = 0;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, A, N, B, N, 0.0f, C, N);
  double t0 = MPI_Wtime();
  int reps = 5;
  for (int k = 0; k < reps; ++k)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, A, N, B, N, 0.0f, C, N);
  *out = 2.0 * N * N * (double)N * reps / (MPI_Wtime() - t0) / 1e9;
done:
  dpt_free(&A);
  dpt_free(&B);
  dpt_free(&C);
  return st;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static dpt_status parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  long long v = strtoll(s, &end, 10);
  DPT_CHECK(*s && !*end && v >= lo && v <= hi, DPT_ERR_INPUT, "%s: expected an integer in [%lld, %lld], got '%s'",
            flag, (long long)lo, (long long)hi, s);
  *out = v;
  return DPT_OK;
}

enum { ROUNDS_MAX = 16 };

int dpt_bench_parallel(const dpt_comm *c, int argc, char **argv) {
  dpt_status st = DPT_OK;
  int64_t steps = 10, rounds = 3, batch = 256, micro = 32, inputs = 784, outputs = 10;
  double bucket_mb = 4.0;
  const char *layers = "1024,1024";
  for (int i = 1; i < argc && st == DPT_OK; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--parallel")) continue;
    if (!v) {
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "bench --parallel: %s needs a value", a);
    } else if (!strcmp(a, "--steps")) {
      st = parse_int(a, v, 1, 100000, &steps), ++i;
    } else if (!strcmp(a, "--rounds")) {
      st = parse_int(a, v, 1, ROUNDS_MAX, &rounds), ++i;
    } else if (!strcmp(a, "--batch")) {
      st = parse_int(a, v, 1, 1 << 20, &batch), ++i;
    } else if (!strcmp(a, "--micro")) {
      st = parse_int(a, v, 1, 1 << 20, &micro), ++i;
    } else if (!strcmp(a, "--inputs")) {
      st = parse_int(a, v, 1, 1 << 20, &inputs), ++i;
    } else if (!strcmp(a, "--outputs")) {
      st = parse_int(a, v, 2, 1 << 20, &outputs), ++i;
    } else if (!strcmp(a, "--layers")) {
      layers = v, ++i;
    } else if (!strcmp(a, "--bucket-mb")) {
      char *end;
      bucket_mb = strtod(v, &end), ++i;
      if (*end || !(bucket_mb > 0 && bucket_mb <= 1024))
        st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "--bucket-mb: expected (0, 1024], got '%s'", v);
    } else {
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                         "bench --parallel: unknown argument '%s' (expected --steps, --rounds, --batch, --micro, "
                         "--bucket-mb, --layers, --inputs, --outputs)",
                         a);
    }
  }
  if (dpt_cli_finish(c, st)) return 1;

  bench b = {.c = c, .batch = batch, .micro = micro, .lr = 1e-3};
  dpt_config *cfg = NULL;
  dpt_reducer *rf = NULL, *re = NULL, *r1 = NULL;
  dpt_comm self = {.comm = MPI_COMM_NULL};
  dpt_reduce_opts of, oe;
  int threads;
  dpt_comm_set_blas_threads(c, 1, &threads);
  st = dpt_config_create(&cfg);
  if (st == DPT_OK) st = dpt_config_set(cfg, "model.layers", layers, "bench");
  if (st == DPT_OK) st = dpt_config_set(cfg, "model.activation", "relu", "bench");
  if (st == DPT_OK) st = dpt_model_create(cfg, DPT_F32, inputs, outputs, DPT_TASK_MULTICLASS, &b.m);
  if (st == DPT_OK) st = dpt_model_init_params(b.m, 1);
  if (st == DPT_OK) {
    b.n = dpt_model_num_params(b.m);
    st = dpt_reduce_broadcast(c, dpt_model_params(b.m), DPT_F32, b.n);
  }
  if (st == DPT_OK) st = dpt_alloc((size_t)(batch * inputs), sizeof(float), "bench inputs", &b.X);
  if (st == DPT_OK) st = dpt_alloc((size_t)batch, sizeof(int32_t), "bench labels", &b.y);
  if (st == DPT_OK) {
    uint64_t s = 0x1234 + (uint64_t)c->rank;
    for (int64_t i = 0; i < batch * inputs; ++i) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      b.X[i] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
    }
    for (int64_t i = 0; i < batch; ++i) b.y[i] = (int32_t)((i * 7 + c->rank) % outputs);
    dpt_reduce_opts_default(&of);
    of.bucket_mb = bucket_mb;
    oe = of;
    oe.mode = DPT_REDUCE_EXACT;
    oe.micro_batch = micro;
    st = dpt_reducer_create(c, &of, DPT_F32, b.n, dpt_model_grads(b.m), &rf);
  }
  if (st == DPT_OK) st = dpt_reducer_create(c, &oe, DPT_F32, b.n, dpt_model_grads(b.m), &re);
  if (st == DPT_OK) {
    MPI_Comm_dup(MPI_COMM_SELF, &self.comm);
    self.size = self.local_size = 1;
    st = dpt_reducer_create(&self, &of, DPT_F32, b.n, dpt_model_grads(b.m), &r1);
  }
  double t_single[ROUNDS_MAX], t_concur[ROUNDS_MAX], t_fast[ROUNDS_MAX], w_fast[ROUNDS_MAX], t_nolap[ROUNDS_MAX], t_exact[ROUNDS_MAX],
      t_ar[ROUNDS_MAX], t_shm[ROUNDS_MAX], t_shm0[ROUNDS_MAX], gflops = 0;
  st = dpt_comm_agree(c, st);
  /* warm-up: every configuration once */
  step_time tt;
  if (st == DPT_OK) st = run_steps(&b, c, rf, 0, 2, &tt);
  if (st == DPT_OK) st = run_steps(&b, c, re, 2, 2, &tt);
  for (int k = 0; k < rounds && st == DPT_OK; ++k) {
    dpt_status loc = DPT_OK;
    if (c->rank == 0) {
      loc = run_steps(&b, &self, r1, 0, (int)steps, &tt);
      t_single[k] = tt.step;
    }
    sleep_barrier(c);
    st = dpt_comm_agree(c, loc);
    if (st == DPT_OK) { /* every rank alone, all at once; the slowest rank's time */
      MPI_Barrier(c->comm);
      loc = run_steps(&b, &self, r1, 0, (int)steps, &tt);
      t_concur[k] = tt.step;
      st = dpt_comm_agree(c, loc);
      if (st == DPT_OK) st = MPI_Allreduce(MPI_IN_PLACE, &t_concur[k], 1, MPI_DOUBLE, MPI_MAX, c->comm) == MPI_SUCCESS
                                 ? DPT_OK
                                 : dpt_error_set(DPT_ERR_MPI, __FILE__, __LINE__, __func__, "MPI_Allreduce failed");
    }
    if (st == DPT_OK) st = run_steps(&b, c, rf, 0, (int)steps, &tt);
    t_fast[k] = tt.step, w_fast[k] = tt.wait;
    if (st == DPT_OK) st = run_steps(&b, c, rf, 1, (int)steps, &tt);
    t_nolap[k] = tt.step;
    if (st == DPT_OK) st = run_steps(&b, c, re, 2, (int)steps, &tt);
    t_exact[k] = tt.step;
    if (st == DPT_OK) st = time_allreduce(&b, (int)steps, &t_ar[k]);
    double shm[2] = {-1, -1};
    if (st == DPT_OK) st = time_shm_reduce(&b, (int)steps, shm);
    t_shm[k] = shm[0], t_shm0[k] = shm[1];
  }
  if (st == DPT_OK) st = sgemm_rate(&gflops);
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK && c->rank == 0) {
    int R = (int)rounds;
    double ts = median(t_single, R), tc = median(t_concur, R), tf = median(t_fast, R), wf = median(w_fast, R), tn = median(t_nolap, R),
           te = median(t_exact, R), ta = median(t_ar, R), tsh = median(t_shm, R), tsh0 = median(t_shm0, R);
    double flops = 6.0 * (double)batch * (double)b.n; /* forward 2, backward 4 flops per weight per row */
    dpt_reducer_stats s;
    dpt_reducer_get_stats(rf, &s);
    printf("bench --parallel: P = %d ranks, %d BLAS thread(s) per rank, %zu parameters (f32, %.2f MiB), "
           "batch %lld per rank, bucket %.2f MiB (%lld buckets), exact micro-batch %lld, %lld rounds x %lld steps\n",
           c->size, threads, b.n, b.n * 4.0 / 1048576.0, (long long)batch, bucket_mb, (long long)s.buckets,
           (long long)micro, (long long)rounds, (long long)steps);
    printf("machine limits: sgemm %.1f GFLOP/s (1 thread, 1024^3); MPI_Allreduce of the gradient %.2f ms = %.2f GB/s "
           "(buffer bytes / time)\n",
           gflops, ta * 1e3, b.n * 4.0 / ta / 1e9);
    printf("step time (median of round means, max over ranks):\n");
    printf("  single rank (P = 1)      %8.2f ms  %6.0f samples/s  %5.1f%% of sgemm rate\n", ts * 1e3, batch / ts,
           100.0 * flops / ts / 1e9 / gflops);
    printf("  P ranks alone, at once   %8.2f ms  %6.0f samples/s  (no communication: the compute ceiling)\n",
           tc * 1e3, (double)batch * c->size / tc);
    printf("  fast, overlapped         %8.2f ms  %6.0f samples/s  comm wait %.2f ms\n", tf * 1e3,
           (double)batch * c->size / tf, wf * 1e3);
    printf("  fast, no overlap         %8.2f ms\n", tn * 1e3);
    printf("  exact (micro %lld)        %8.2f ms\n", (long long)micro, te * 1e3);
    printf("weak_scaling_efficiency %.3f\n", ts / tf);
    printf("compute_ceiling %.3f  (single / P alone at once: weak scaling with free communication)\n", ts / tc);
    printf("efficiency_vs_ceiling %.3f  (P alone at once / fast)\n", tc / tf);
    /* With no idle core (P ranks on P cores) the reduction's CPU time cannot hide behind
     * compute: the best step is the concurrent compute step plus one reduction. */
    printf("weak_scaling_bound %.3f  (single / (P alone at once + MPI_Allreduce): the best any reducer "
           "using MPI_Allreduce reaches when no core is idle)\n",
           ts / (tc + ta));
    if (tsh0 > 0)
      printf("weak_scaling_bound_sum_only %.3f  (single / (P alone at once + window sum only): the same for a "
             "reduction that only sums in shared memory)\n",
             ts / (tc + tsh0));
    printf("allreduce_hidden_share %.3f\n", fmax(0.0, 1.0 - wf / ta));
    printf("overlap_gain %.3f  (no-overlap step / overlapped step)\n", tn / tf);
    printf("exact_over_fast %.3f\n", te / tf);
    if (tsh > 0) {
      printf("node-shared window reduce (not in the reducer): %.2f ms to every rank's buffer, %.2f ms sum only "
             "(lower bound); MPI_Allreduce %.2f ms\n",
             tsh * 1e3, tsh0 * 1e3, ta * 1e3);
      printf("shm_reduce_saving %.3f  ((MPI_Allreduce - window reduce) / fast step)\n", (ta - tsh) / tf);
    }
    fflush(stdout);
  }
  dpt_reducer_destroy(&rf);
  dpt_reducer_destroy(&re);
  dpt_reducer_destroy(&r1);
  if (self.comm != MPI_COMM_NULL) MPI_Comm_free(&self.comm);
  dpt_free(&b.X);
  dpt_free(&b.y);
  dpt_model_destroy(&b.m);
  dpt_config_destroy(&cfg);
  return dpt_cli_finish(c, st);
}

/* bench_exact_split.c — dpt-bench-exact-split: where the time of an exact-mode step goes,
 * next to a fast step without overlap, measured in one run (mpiexec -n P).
 *
 * The model and data are those of `dptrain bench --parallel` (784-1024-1024-10 MLP, ReLU,
 * f32, fixed random data, 256 rows per rank, one BLAS thread per rank). Per step:
 *   fast : forward+backward of the rank's 256 rows in one call | one MPI_Allreduce (float)
 *   exact: for each micro-batch, its zeroed leaf buffer + forward+backward into it | its
 *          deposit (merge passes: reduce.h) ; then finish
 * The phases are timed on each rank; each figure is the median over rounds of the mean per
 * step, max over ranks. Usage: dpt-bench-exact-split [micro [steps [rounds]]]. */
#include <stdio.h>
#include <stdlib.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/model.h"
#include "dptrain/reduce.h"

enum { ROUNDS_MAX = 16, PHASES = 5 }; /* fast fb, fast allreduce, exact fb, deposit, finish */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static dpt_status run(const dpt_comm *c, int64_t micro, int steps, int rounds) {
  const int64_t batch = 256, inputs = 784, outputs = 10;
  dpt_status st = DPT_OK;
  dpt_config *cfg = NULL;
  dpt_model *m = NULL;
  dpt_reducer *re = NULL;
  float *X = NULL;
  int32_t *y = NULL;
  double t[PHASES][ROUNDS_MAX];
  int threads;
  dpt_comm_set_blas_threads(c, 1, &threads);
  DPT_TRY(dpt_config_create(&cfg));
  DPT_TRY(dpt_config_set(cfg, "model.layers", "1024,1024", "bench"));
  DPT_TRY(dpt_config_set(cfg, "model.activation", "relu", "bench"));
  DPT_TRY(dpt_model_create(cfg, DPT_F32, inputs, outputs, DPT_TASK_MULTICLASS, &m));
  DPT_TRY(dpt_model_init_params(m, 1));
  size_t n = dpt_model_num_params(m);
  DPT_TRY(dpt_alloc((size_t)(batch * inputs), sizeof *X, "bench inputs", &X));
  DPT_TRY(dpt_alloc((size_t)batch, sizeof *y, "bench labels", &y));
  uint64_t s = 0x1234 + (uint64_t)c->rank;
  for (int64_t i = 0; i < batch * inputs; ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    X[i] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
  }
  for (int64_t i = 0; i < batch; ++i) y[i] = (int32_t)((i * 7 + c->rank) % outputs);
  dpt_reduce_opts oe;
  dpt_reduce_opts_default(&oe);
  oe.mode = DPT_REDUCE_EXACT;
  oe.micro_batch = micro;
  DPT_TRY(dpt_reducer_create(c, &oe, DPT_F32, n, dpt_model_grads(m), &re));
  int64_t n_global = batch * c->size, terms = (n_global + micro - 1) / micro, begin, count;
  dpt_shard_batch(n_global, micro, c->size, c->rank, &begin, &count);
  double scale = 1.0 / (double)n_global;
  for (int r = -1; r < rounds; ++r) { /* round -1: warm-up */
    double acc[PHASES] = {0};
    for (int k = 0; k < steps; ++k) {
      double loss = 0, t0, t1;
      bool skip;
      dpt_targets yy = {y, NULL};
      MPI_Barrier(c->comm);
      t0 = MPI_Wtime();
      DPT_TRY(dpt_model_zero_grads(m));
      DPT_TRY(dpt_model_forward_backward(m, X, &yy, batch, scale, &loss, NULL, NULL));
      t1 = MPI_Wtime();
      acc[0] += t1 - t0;
      DPT_TRY_CHECK(MPI_Allreduce(MPI_IN_PLACE, dpt_model_grads(m), (int)n, MPI_FLOAT, MPI_SUM, c->comm) == MPI_SUCCESS,
                    DPT_ERR_MPI, "bench: MPI_Allreduce failed");
      acc[1] += MPI_Wtime() - t1;
      MPI_Barrier(c->comm);
      DPT_TRY(dpt_reducer_begin(re, terms));
      for (int64_t i = 0, j = begin / micro; i < count; i += micro, ++j) {
        int64_t rows = count - i < micro ? count - i : micro, lo = i % batch;
        if (lo + rows > batch) lo = 0;
        dpt_targets yk = {y + lo, NULL};
        double l = 0;
        t0 = MPI_Wtime();
        void *leaf;
        DPT_TRY(dpt_reducer_leaf(re, &leaf));
        DPT_TRY(dpt_model_forward_backward_into(m, leaf, X + lo * inputs, &yk, rows, scale, &l));
        t1 = MPI_Wtime();
        DPT_TRY(dpt_reducer_deposit_leaf(re, j, l));
        acc[2] += t1 - t0;
        acc[3] += MPI_Wtime() - t1;
      }
      t0 = MPI_Wtime();
      DPT_TRY(dpt_reducer_finish(re, &loss, &skip));
      acc[4] += MPI_Wtime() - t0;
    }
    MPI_Allreduce(MPI_IN_PLACE, acc, PHASES, MPI_DOUBLE, MPI_MAX, c->comm);
    for (int p = 0; r >= 0 && p < PHASES; ++p) t[p][r] = acc[p] / steps * 1e3;
  }
  if (c->rank == 0) {
    double med[PHASES];
    for (int p = 0; p < PHASES; ++p) {
      qsort(t[p], (size_t)rounds, sizeof t[p][0], cmp_double);
      med[p] = rounds % 2 ? t[p][rounds / 2] : 0.5 * (t[p][rounds / 2 - 1] + t[p][rounds / 2]);
    }
    double fast = med[0] + med[1], exact = med[2] + med[3] + med[4];
    printf("exact split: P = %d, %zu parameters (f32), 256 rows per rank, micro-batch %lld, %d rounds x %d steps "
           "(median of round means, max over ranks, ms per step)\n",
           c->size, n, (long long)micro, rounds, steps);
    printf("  fast, no overlap: forward+backward %.2f  allreduce %.2f  total %.2f\n", med[0], med[1], fast);
    printf("  exact:            forward+backward %.2f  deposit %.2f  finish %.2f  total %.2f\n", med[2], med[3],
           med[4], exact);
    printf("exact_split_over_fast: forward+backward %.3f  deposit %.3f  finish %.3f  total %.3f\n", med[2] / fast,
           med[3] / fast, med[4] / fast, exact / fast);
  }
done:
  dpt_reducer_destroy(&re);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
  dpt_free(&X);
  dpt_free(&y);
  return st;
}

int main(int argc, char **argv) {
  dpt_comm_preinit(); /* Open MPI parameters (comm.h) */
  MPI_Init(&argc, &argv);
  dpt_comm c;
  if (dpt_comm_init_world(&c) != DPT_OK) MPI_Abort(MPI_COMM_WORLD, 1);
  int64_t micro = argc > 1 ? atoll(argv[1]) : 32;
  int steps = argc > 2 ? atoi(argv[2]) : 6, rounds = argc > 3 ? atoi(argv[3]) : 3;
  dpt_status st = DPT_OK;
  if (micro < 1 || micro > 256 || steps < 1 || rounds < 1 || rounds > ROUNDS_MAX) {
    if (c.rank == 0)
      fprintf(stderr, "dpt-bench-exact-split: expected [micro in 1..256 [steps >= 1 [rounds in 1..%d]]]\n", ROUNDS_MAX);
    st = DPT_ERR_INPUT;
  } else {
    st = dpt_comm_agree(&c, run(&c, micro, steps, rounds));
    if (st != DPT_OK && c.rank == 0) dpt_error_print(stderr);
  }
  dpt_comm_finalize(&c);
  MPI_Finalize();
  return st == DPT_OK ? 0 : 1;
}

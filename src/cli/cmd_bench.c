/* cmd_bench.c — `dptrain bench`: the engine's training step against this machine's own
 * sgemm rate, measured in the same run (and --allreduce, in bench_allreduce.c).
 *
 *   dptrain bench --model 784-1024-1024-10 --act relu --batch 256 [--dtype f32] [--steps N]
 *                 [--threads 1] [--rounds 5]
 *
 * A step is what training does: zero the gradients, forward, fused loss, backward (no
 * gradient for the input: the first layer computes only dW, db), and an SGD update
 * θ -= lr·g over the flat buffer. The widths give a dense MLP with the chosen hidden
 * activation; one output -> regression with ℓ2, more -> softmax + cross-entropy.
 *
 * The reference is the same sequence of BLAS calls the step makes (recorded through
 * dpt_gemm_trace during a step, then replayed alone on buffers of the same shapes): its
 * time is the step's BLAS time, and step flops / BLAS time is this machine's sgemm (dgemm)
 * rate at exactly these shapes. Flops are 2·m·n·k per call, summed: the work the step
 * really needs. Reported: both times and rates, their ratio (step rate / BLAS rate) and
 * step time / BLAS time. Steps and replays alternate in `rounds` rounds; the best round of
 * each is reported (the machine is shared: the minimum is the least disturbed), the
 * median alongside. A 1024^3 sgemm gives the rate on a large square product for scale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "dptrain/activation.h"
#include "dptrain/model.h"
#include "dptrain/tensor.h"

int dpt_bench_allreduce(const dpt_comm *c, int argc, char **argv);
int dpt_bench_kmeans(const dpt_comm *c, int argc, char **argv);
int dpt_bench_parallel(const dpt_comm *c, int argc, char **argv);
int dpt_bench_checkpoint(const dpt_comm *c, int argc, char **argv); /* bench_checkpoint.c */

enum { MAX_CALLS = 256, MAX_WIDTHS = 32 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct bench {
  dpt_model *m;
  dpt_dtype dtype;
  int64_t batch;
  void *X;
  dpt_targets y;
  void *Y;
  int32_t *labels;
  /* replay */
  dpt_gemm_call calls[MAX_CALLS];
  int ncalls;
  void *A[MAX_CALLS], *B[MAX_CALLS], *C[MAX_CALLS];
  double flops;
  /* the hidden activations' kernels (y and f' of every hidden layer), timed alone */
  dpt_act act;
  int nhidden;
  int64_t hidden[MAX_WIDTHS];
  void *ax, *ay, *ad;
} bench;

static dpt_status step(bench *b) {
  DPT_CALL(dpt_model_zero_grads(b->m));
  double loss = 0;
  DPT_CALL(dpt_model_forward_backward(b->m, b->X, &b->y, b->batch, 1.0 / (double)b->batch, &loss, NULL, NULL));
  dpt_vec_axpy(b->dtype, dpt_model_num_params(b->m), -1e-3, dpt_model_grads(b->m), dpt_model_params(b->m));
  return DPT_OK;
}

static void replay(bench *b) {
  for (int i = 0; i < b->ncalls; ++i) {
    const dpt_gemm_call *g = &b->calls[i];
    dpt_gemm(g->dtype, g->transA, g->transB, g->m, g->n, g->k, g->alpha, b->A[i], g->lda, b->B[i], g->ldb, g->beta,
             b->C[i], g->ldc);
  }
}

static void act_alone(bench *b) {
  if (b->act == DPT_ACT_IDENTITY) return; /* the dense layer builds no act node for it */
  for (int i = 0; i < b->nhidden; ++i) {
    if (b->dtype == DPT_F32)
      dpt_act_eval_f32(b->act, NULL, false, b->batch, b->hidden[i], b->ax, b->ay, b->ad, NULL);
    else
      dpt_act_eval_f64(b->act, NULL, false, b->batch, b->hidden[i], b->ax, b->ay, b->ad, NULL);
  }
}

/* Records the step's gemm calls and allocates operands of the same shapes for the replay. */
static dpt_status record(bench *b) {
  int count = 0;
  dpt_gemm_trace(b->calls, MAX_CALLS, &count);
  dpt_status st = step(b);
  dpt_gemm_trace(NULL, 0, NULL);
  DPT_CALL(st);
  DPT_CHECK(count <= MAX_CALLS, DPT_ERR_INTERNAL, "bench: %d BLAS calls per step, at most %d recorded", count,
            MAX_CALLS);
  b->ncalls = count;
  size_t es = dpt_dtype_size(b->dtype);
  b->flops = 0;
  for (int i = 0; i < count; ++i) {
    const dpt_gemm_call *g = &b->calls[i];
    size_t ea = (size_t)((g->transA ? g->k : g->m) * g->lda), eb = (size_t)((g->transB ? g->n : g->k) * g->ldb);
    size_t ec = (size_t)(g->m * g->ldc);
    DPT_CALL(dpt_calloc(ea, es, "bench operand", &b->A[i]));
    DPT_CALL(dpt_calloc(eb, es, "bench operand", &b->B[i]));
    DPT_CALL(dpt_calloc(ec, es, "bench operand", &b->C[i]));
    for (size_t e = 0; e < ea; ++e) dpt_vec_set(b->dtype, b->A[i], e, 1e-3 * (double)(e % 17));
    for (size_t e = 0; e < eb; ++e) dpt_vec_set(b->dtype, b->B[i], e, 1e-3 * (double)(e % 13));
    b->flops += 2.0 * (double)g->m * (double)g->n * (double)g->k;
  }
  return DPT_OK;
}

static dpt_status parse_widths(const char *s, int64_t *w, int *n) {
  *n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    long long v = strtoll(p, &end, 10);
    DPT_CHECK(end != p && v >= 1 && v <= (1 << 24) && *n < MAX_WIDTHS && (*end == '-' || *end == '\0'), DPT_ERR_INPUT,
              "bench: --model: expected widths like 784-1024-1024-10 (each >= 1, at most %d), got '%s'", MAX_WIDTHS, s);
    w[(*n)++] = v;
    p = *end ? end + 1 : end;
  }
  DPT_CHECK(*n >= 2, DPT_ERR_INPUT, "bench: --model: expected at least an input and an output width, got '%s'", s);
  return DPT_OK;
}

static dpt_status run(const dpt_comm *c, int argc, char **argv) {
  dpt_status st = DPT_OK;
  dpt_config *cfg = NULL;
  bench b;
  memset(&b, 0, sizeof b);
  const char *model = "784-1024-1024-10", *act = "relu";
  int64_t steps = 0, rounds = 5;
  char **rest = NULL;
  int nrest = 1;
  double *tstep = NULL, *tblas = NULL, *tact = NULL;
  /* the local phase's results (declared before its first jump to args) */
  const char *pos[1], *dtype_name = NULL;
  int npos = 0, nw = 0, used;
  int64_t widths[MAX_WIDTHS], threads = 0;
  DPT_TRY_TO(args, dpt_calloc((size_t)argc + 1, sizeof *rest, "arguments", &rest));
  rest[0] = argv[0];
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    const char **dst = !strcmp(a, "--model") ? &model : !strcmp(a, "--act") ? &act : NULL;
    if (dst) {
      DPT_TRY_CHECK_TO(args, i + 1 < argc, DPT_ERR_INPUT, "bench: %s needs a value", a);
      *dst = argv[++i];
    } else if (!strcmp(a, "--steps") || !strcmp(a, "--rounds")) {
      DPT_TRY_CHECK_TO(args, i + 1 < argc, DPT_ERR_INPUT, "bench: %s needs a value", a);
      char *end;
      long long v = strtoll(argv[i + 1], &end, 10);
      DPT_TRY_CHECK_TO(args, *end == '\0' && v >= 1 && v <= 1000000, DPT_ERR_INPUT,
                       "bench: %s: expected a count >= 1, got '%s'", a, argv[i + 1]);
      *(!strcmp(a, "--steps") ? &steps : &rounds) = v;
      ++i;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  DPT_TRY_TO(args, dpt_config_create(&cfg));
  DPT_TRY_TO(args, dpt_cli_apply_args(cfg, nrest, rest, pos, 1, &npos));
  DPT_TRY_CHECK_TO(args, npos == 0, DPT_ERR_INPUT, "bench: unexpected argument '%s'", pos[0]);
  DPT_TRY_TO(args, parse_widths(model, widths, &nw));
  DPT_TRY_TO(args, dpt_config_get_string(cfg, "train.dtype", "f32", &dtype_name));
  DPT_TRY_TO(args, dpt_dtype_parse(dtype_name, "train.dtype", &b.dtype));
  DPT_TRY_TO(args, dpt_config_get_int(cfg, "train.batch", 256, 1, 1 << 24, &b.batch));
  DPT_TRY_TO(args, dpt_config_get_int(cfg, "run.threads", 0, 0, 4096, &threads));
args:
  DPT_TRY(dpt_comm_agree(c, st)); /* the local phase: every rank goes on to the collectives, or none */
  DPT_TRY(dpt_comm_set_blas_threads(c, (int)threads, &used));
  char layers[512] = "";
  for (int i = 1; i < nw - 1; ++i)
    snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%lld", i > 1 ? "," : "", (long long)widths[i]);
  DPT_TRY(dpt_config_set(cfg, "model.layers", layers, "bench --model"));
  DPT_TRY(dpt_config_set(cfg, "model.activation", act, "bench --act"));
  int64_t n_in = widths[0], n_out = widths[nw - 1];
  dpt_task task = n_out == 1 ? DPT_TASK_REGRESSION : DPT_TASK_MULTICLASS;
  DPT_TRY(dpt_model_create(cfg, b.dtype, n_in, n_out, task, &b.m));
  DPT_TRY(dpt_config_check_unused(cfg));
  DPT_TRY(dpt_model_init_params(b.m, 1));
  DPT_TRY(dpt_act_parse(act, "bench --act", &b.act));
  int64_t wmax = 1;
  for (int i = 1; i < nw - 1; ++i) b.hidden[b.nhidden++] = widths[i], wmax = widths[i] > wmax ? widths[i] : wmax;
  DPT_TRY(dpt_calloc((size_t)(b.batch * wmax), dpt_dtype_size(b.dtype), "bench operand", &b.ax));
  DPT_TRY(dpt_calloc((size_t)(b.batch * wmax), dpt_dtype_size(b.dtype), "bench operand", &b.ay));
  DPT_TRY(dpt_calloc((size_t)(b.batch * wmax), dpt_dtype_size(b.dtype), "bench operand", &b.ad));
  for (int64_t i = 0; i < b.batch * wmax; ++i) dpt_vec_set(b.dtype, b.ax, (size_t)i, 2 * sin(0.7 * (double)i));
  size_t es = dpt_dtype_size(b.dtype);
  DPT_TRY(dpt_calloc((size_t)(b.batch * n_in), es, "inputs", &b.X));
  DPT_TRY(dpt_calloc((size_t)(b.batch * n_out), es, "targets", &b.Y));
  DPT_TRY(dpt_calloc((size_t)b.batch, sizeof *b.labels, "labels", &b.labels));
  for (int64_t i = 0; i < b.batch * n_in; ++i) dpt_vec_set(b.dtype, b.X, (size_t)i, sin(0.37 * (double)i));
  for (int64_t i = 0; i < b.batch * n_out; ++i) dpt_vec_set(b.dtype, b.Y, (size_t)i, cos(0.11 * (double)i));
  for (int64_t r = 0; r < b.batch; ++r) b.labels[r] = (int32_t)(r % n_out);
  b.y.labels = task == DPT_TASK_REGRESSION ? NULL : b.labels;
  b.y.values = task == DPT_TASK_REGRESSION ? b.Y : NULL;

  /* warm-up (builds the graph), record the BLAS calls, choose steps for ~0.3 s a round */
  DPT_TRY(step(&b));
  DPT_TRY(record(&b));
  double t0 = now();
  DPT_TRY(step(&b));
  double once = now() - t0;
  if (steps == 0) steps = once > 0 ? (int64_t)fmin(fmax(0.3 / once, 3), 100000) : 1000;
  DPT_TRY(dpt_calloc((size_t)rounds, sizeof *tstep, "timings", &tstep));
  DPT_TRY(dpt_calloc((size_t)rounds, sizeof *tblas, "timings", &tblas));
  DPT_TRY(dpt_calloc((size_t)rounds, sizeof *tact, "timings", &tact));
  for (int64_t r = 0; r < rounds; ++r) {
    t0 = now();
    for (int64_t s = 0; s < steps; ++s) DPT_TRY(step(&b));
    tstep[r] = (now() - t0) / (double)steps;
    t0 = now();
    for (int64_t s = 0; s < steps; ++s) replay(&b);
    tblas[r] = (now() - t0) / (double)steps;
    t0 = now();
    for (int64_t s = 0; s < steps; ++s) act_alone(&b);
    tact[r] = (now() - t0) / (double)steps;
  }
  double ms = tstep[0], mb = tblas[0], ma = tact[0];
  for (int64_t r = 1; r < rounds; ++r) ms = fmin(ms, tstep[r]), mb = fmin(mb, tblas[r]), ma = fmin(ma, tact[r]);
  qsort(tstep, (size_t)rounds, sizeof *tstep, cmp_double);
  qsort(tblas, (size_t)rounds, sizeof *tblas, cmp_double);
  /* a large square product for scale */
  double sq = 0;
  {
    void *A = NULL, *B = NULL, *C = NULL;
    const int64_t S = 1024;
    DPT_TRY(dpt_calloc((size_t)(S * S), es, "bench operand", &A));
    st = dpt_calloc((size_t)(S * S), es, "bench operand", &B);
    if (st == DPT_OK) st = dpt_calloc((size_t)(S * S), es, "bench operand", &C);
    if (st == DPT_OK) {
      dpt_gemm(b.dtype, false, false, S, S, S, 1.0, A, S, B, S, 0.0, C, S);
      double best = 1e30;
      for (int r = 0; r < 3; ++r) {
        t0 = now();
        dpt_gemm(b.dtype, false, false, S, S, S, 1.0, A, S, B, S, 0.0, C, S);
        best = fmin(best, now() - t0);
      }
      sq = 2.0 * (double)(S * S * S) / best;
    }
    dpt_free(&A), dpt_free(&B), dpt_free(&C);
    DPT_TRY(st);
  }
  if (c->rank == 0) {
    const char *g = b.dtype == DPT_F32 ? "sgemm" : "dgemm";
    printf("bench: model %s, activation %s, %s, batch %lld, %s, %d BLAS thread%s, %zu parameters\n", model, act,
           task == DPT_TASK_REGRESSION ? "l2" : "softmax+ce", (long long)b.batch, dpt_dtype_name(b.dtype), used,
           used == 1 ? "" : "s", dpt_model_num_params(b.m));
    printf("  flops per step (%d %s calls, no input gradient): %.4g\n", b.ncalls, g, b.flops);
    printf("  step (zero grads, forward, loss, backward, SGD update): best %.4g ms, median %.4g ms -> %.2f GFLOP/s\n",
           1e3 * ms, 1e3 * tstep[rounds / 2], b.flops / ms * 1e-9);
    printf("  the same %s calls alone:                  best %.4g ms, median %.4g ms -> %.2f GFLOP/s (%s rate at these shapes)\n",
           g, 1e3 * mb, 1e3 * tblas[rounds / 2], b.flops / mb * 1e-9, g);
    printf("  %s kernels alone (y and f' of the %d hidden layers): best %.4g ms = %.2f of the step\n", act,
           b.nhidden, 1e3 * ma, ma / ms);
    printf("  the rest = step - BLAS - activation (walker, bias, loss, elementwise backward, zeroing, SGD;\n"
           "    a difference of best times, at noise level when near 0): %.4g ms = %.2f of the step\n",
           1e3 * (ms - mb - ma), (ms - mb - ma) / ms);
    printf("  %s 1024x1024x1024: %.2f GFLOP/s\n", g, sq * 1e-9);
    printf("  ratio step rate / %s rate: %.3f   step time / BLAS time: %.3f   (%lld steps x %lld rounds)\n", g,
           mb / ms, ms / mb, (long long)steps, (long long)rounds);
  }
done:
  for (int i = 0; i < b.ncalls; ++i) dpt_free(&b.A[i]), dpt_free(&b.B[i]), dpt_free(&b.C[i]);
  dpt_free(&tstep), dpt_free(&tblas), dpt_free(&tact);
  dpt_free(&b.ax), dpt_free(&b.ay), dpt_free(&b.ad);
  dpt_free(&b.X), dpt_free(&b.Y), dpt_free(&b.labels);
  dpt_model_destroy(&b.m);
  dpt_config_destroy(&cfg);
  dpt_free(&rest);
  return st;
}

int dpt_cmd_bench(const dpt_comm *c, int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--allreduce")) return dpt_bench_allreduce(c, argc, argv);
    if (!strcmp(argv[i], "--kmeans")) return dpt_bench_kmeans(c, argc, argv); /* bench_kmeans.c */
    if (!strcmp(argv[i], "--parallel")) return dpt_bench_parallel(c, argc, argv); /* bench_parallel.c */
    if (!strcmp(argv[i], "--checkpoint")) return dpt_bench_checkpoint(c, argc, argv);
    if (!strcmp(argv[i], "--help")) {
      if (c->rank == 0)
        printf("usage: dptrain bench --model 784-1024-1024-10 --act relu --batch 256 [--dtype f32|f64]\n"
               "                     [--steps N] [--rounds R] [--threads T]\n"
               "       dptrain bench --allreduce [--max-mb MB] [--out FILE]   (MPI_Allreduce time against size)\n"
               "       dptrain bench --parallel [...]    (data-parallel step: weak scaling, overlap, exact mode)\n"
               "       dptrain bench --kmeans [...]      (K-means++ and Lloyd iterations)\n"
               "       dptrain bench --checkpoint [--params N] [--rounds R] [--dir DIR]   (checkpoint write/read)\n"
               "Times a training step (forward, backward, SGD update) against the same BLAS calls alone.\n"
               "Run with OPENBLAS_NUM_THREADS=1 --threads 1 for the single-thread figures.\n");
      return 0;
    }
  }
  return dpt_cli_finish(c, run(c, argc, argv));
}

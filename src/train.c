/* train.c — the training loop (see train.h). */
#include "dptrain/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include <cblas.h>

#include "dptrain/dataset.h"
#include "dptrain/metrics.h"
#include "dptrain/model.h"
#include "dptrain/optim.h"
#include "dptrain/rbf.h"
#include "dptrain/reduce.h"
#include "dptrain/second_order.h"
#include "dptrain/timer.h"
#include "dptrain/trace.h"
#include "dptrain/types.h"
#include "dptrain/watchdog.h"

/* Parameters, gradients, the optimizer's per-parameter arrays and the reducer's buffers,
 * for every rank of this node, must fit the node's memory (dpt_comm_check_node_memory). */
static dpt_status check_node_memory(const dpt_comm *c, size_t n, dpt_dtype dtype, const char *otype,
                                    size_t optim_bytes, size_t reducer_bytes) {
  const double gib = 1073741824.0, model = 2.0 * (double)n * (double)dpt_dtype_size(dtype);
  char parts[160];
  snprintf(parts, sizeof parts, "parameters and gradients %.3g, optimizer.type = %s arrays %.3g, reducer %.3g",
           model / gib, otype, (double)optim_bytes / gib, (double)reducer_bytes / gib);
  DPT_CALL(dpt_comm_check_node_memory(c, model + (double)optim_bytes + (double)reducer_bytes, "model.layers", parts));
  return DPT_OK;
}

/* The run plan: [train] and [run] keys, checked before any work. */
typedef struct plan {
  int64_t epochs, batch, log_every, threads;
  uint64_t seed;
  double timeout;     /* parallel.timeout: the watchdog's limit in seconds, 0 none (watchdog.h) */
  dpt_dtype dtype;
  bool quiet, print_params;
  int64_t progress;   /* -1 auto (bar on a terminal), 0 off, 1 on */
  double progress_every;
  const char *train_path, *val_path, *trace_path, *metrics_path;
} plan;

static dpt_status read_plan(dpt_config *cfg, plan *p) {
  memset(p, 0, sizeof *p);
  int64_t seed;
  const char *dtype;
  DPT_CALL(dpt_config_get_string(cfg, "data.train", NULL, &p->train_path));
  DPT_CHECK(p->train_path, DPT_ERR_INPUT, "data.train: a training dataset (HDF5 file) is required");
  DPT_CALL(dpt_config_get_string(cfg, "data.val", NULL, &p->val_path));
  DPT_CALL(dpt_config_get_int(cfg, "train.epochs", 10, 1, INT64_C(1) << 40, &p->epochs));
  DPT_CALL(dpt_config_get_int(cfg, "train.batch", 32, 0, INT64_C(1) << 40, &p->batch));
  DPT_CALL(dpt_config_get_int(cfg, "train.seed", 1, 0, INT64_MAX, &seed));
  p->seed = (uint64_t)seed;
  DPT_CALL(dpt_config_get_string(cfg, "train.dtype", "f32", &dtype));
  DPT_CALL(dpt_dtype_parse(dtype, "train.dtype", &p->dtype));
  DPT_CALL(dpt_config_get_int(cfg, "train.log_every", 0, 0, INT64_C(1) << 40, &p->log_every));
  if (p->log_every == 0) p->log_every = p->epochs > 10 ? p->epochs / 10 : 1;
  DPT_CALL(dpt_config_get_int(cfg, "run.threads", 0, 0, 4096, &p->threads));
  DPT_CALL(dpt_config_get_bool(cfg, "run.quiet", false, &p->quiet));
  DPT_CALL(dpt_config_get_bool(cfg, "run.print_params", false, &p->print_params));
  DPT_CALL(dpt_config_get_string(cfg, "run.trace", NULL, &p->trace_path));
  DPT_CALL(dpt_config_get_string(cfg, "run.metrics", NULL, &p->metrics_path));
  DPT_CALL(dpt_config_get_int(cfg, "run.progress", -1, -1, 1, &p->progress));
  DPT_CALL(dpt_config_get_double(cfg, "run.progress_every", 30.0, 0.0, 1e9, DPT_RANGE_OPEN_LO, &p->progress_every));
  DPT_CALL(dpt_config_get_double(cfg, "parallel.timeout", DPT_WATCHDOG_DEFAULT_TIMEOUT_S, 0.0, 1e9,
                                 DPT_RANGE_CLOSED, &p->timeout));
  return DPT_OK;
}

/* This rank's contiguous share of the validation set, read once. */
typedef struct val_shard {
  int64_t n, n_global, k;
  void *X, *values;   /* owned */
  int32_t *labels;    /* owned */
  double sst;         /* regression: sum over rows and outputs of (y - mean)^2, global */
} val_shard;

static void val_free(val_shard *v) {
  dpt_free(&v->X);
  dpt_free(&v->values);
  dpt_free(&v->labels);
}

static dpt_status val_load(const dpt_comm *c, dpt_dataset *ds, dpt_dtype dtype, val_shard *v) {
  dpt_status st = DPT_OK;
  int64_t begin, *rows = NULL;
  int64_t d = dpt_dataset_features(ds);
  bool regression = dpt_dataset_task(ds) == DPT_TASK_REGRESSION;
  v->n_global = dpt_dataset_rows(ds);
  v->k = dpt_dataset_outputs(ds);
  dpt_shard_range(v->n_global, c->size, c->rank, &begin, &v->n);
  size_t es = dpt_dtype_size(dtype);
  st = dpt_alloc((size_t)v->n, sizeof *rows, "validation row ids", &rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)(v->n * d), es, "validation X", &v->X);
  if (st == DPT_OK && regression) st = dpt_alloc((size_t)(v->n * v->k), es, "validation y", &v->values);
  if (st == DPT_OK && !regression) st = dpt_alloc((size_t)v->n, sizeof(int32_t), "validation labels", &v->labels);
  for (int64_t i = 0; st == DPT_OK && i < v->n; ++i) rows[i] = begin + i;
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY(dpt_dataset_read_rows(ds, rows, v->n, dtype, v->X, v->labels, v->values));
  if (regression) {
    /* SST for R²: global sums of y and y² per output, in double. */
    double sums[2] = {0, 0};
    int64_t m = v->n * v->k;
    for (int64_t i = 0; i < m; ++i) {
      double y = dtype == DPT_F64 ? ((double *)v->values)[i] : ((float *)v->values)[i];
      sums[0] += y;
      sums[1] += y * y;
    }
    DPT_TRY_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                  "validation: MPI_Allreduce failed");
    double total = (double)(v->n_global * v->k);
    v->sst = total > 0 ? sums[1] - sums[0] * sums[0] / total : 0.0;
  }
done:
  dpt_free(&rows);
  return st;
}

/* Loss and accuracy (classification) or R² (regression) over the whole validation set:
 * every sample counted once, sums reduced over ranks. */
static dpt_status val_evaluate(const dpt_comm *c, dpt_model *m, const val_shard *v, bool regression, double *loss,
                               double *metric) {
  dpt_targets y = {v->labels, v->values};
  double local[2] = {0, 0};
  int64_t correct = 0;
  dpt_status st = dpt_model_evaluate(m, v->X, &y, v->n, 1.0 / (double)v->n_global, &local[0], regression ? NULL : &correct, NULL);
  DPT_CALL(dpt_comm_agree(c, st));
  local[1] = (double)correct;
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, local, 2, MPI_DOUBLE, MPI_SUM, c->comm));
  *loss = local[0];
  if (regression) /* ℓ2 loss is the mean over rows of the summed squared error: SSE = loss·N */
    *metric = v->sst > 0 ? 1.0 - local[0] * (double)v->n_global / v->sst : NAN;
  else
    *metric = local[1] / (double)v->n_global;
  return DPT_OK;
}

static void print_params(dpt_model *m, dpt_dtype dtype) {
  const void *params = dpt_model_params(m);
  for (int t = 0; t < dpt_model_num_tensors(m); ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    printf("param %s =", info.name);
    size_t shown = info.count < 16 ? info.count : 16;
    for (size_t i = 0; i < shown; ++i) {
      size_t j = info.offset + i;
      printf(" %.6f", dtype == DPT_F64 ? ((const double *)params)[j] : (double)((const float *)params)[j]);
    }
    printf("%s\n", shown < info.count ? " ..." : "");
  }
}

/* Phases of a step (timer.h), timed on every rank and reported per epoch as max and mean
 * over ranks. */
enum { PH_COUNT = DPT_PHASE_COUNT };

/* Checkpoints (checkpoint.h): the loop's state as a dpt_train_state, and resume. */
enum { HIST_COLS = 5 };
typedef struct ckpt_ctx {
  const dpt_comm *c;
  dpt_train_state s;  /* history owned here */
  int64_t hist_cap;
} ckpt_ctx;

static dpt_status ckpt_load(void *vctx, const char *path) {
  ckpt_ctx *x = vctx;
  return dpt_checkpoint_load(x->c, path, &x->s);
}

/* Appends one epoch's row (epoch, train_loss, val_loss, val_metric, lr) to the history. */
static dpt_status ckpt_history_add(ckpt_ctx *x, const double *row) {
  dpt_train_state *s = &x->s;
  if (s->history_rows == x->hist_cap || !s->history) {
    int64_t cap = x->hist_cap > s->history_rows ? x->hist_cap : 2 * s->history_rows + 16;
    double *bigger = NULL;
    DPT_CALL(dpt_alloc((size_t)(cap * HIST_COLS), sizeof(double), "metrics history", &bigger));
    if (s->history) memcpy(bigger, s->history, sizeof(double) * (size_t)(s->history_rows * HIST_COLS));
    dpt_free(&s->history);
    s->history = bigger;
    x->hist_cap = cap;
  }
  memcpy(s->history + s->history_rows * HIST_COLS, row, sizeof(double) * HIST_COLS);
  s->history_rows++;
  s->history_cols = HIST_COLS;
  return DPT_OK;
}

static dpt_status ckpt_save(ckpt_ctx *x, const dpt_checkpoint_plan *cp, bool quiet) {
  char path[4300];
  DPT_CALL(dpt_checkpoint_save(x->c, cp->dir, (int)cp->keep, &x->s, path, sizeof path));
  if (x->c->rank == 0 && !quiet) {
    printf("checkpoint written: %s (step %lld)\n", path, (long long)x->s.global_step);
    fflush(stdout);
  }
  return DPT_OK;
}

/* Records the first local failure of a step in `pending` (agreed at the step's end). */
#define LOCAL(expr)                         \
  do {                                      \
    dpt_status local_ = (expr);             \
    if (pending == DPT_OK) pending = local_; \
  } while (0)

/* Local status -> agreed status; leaves on failure. */
#define AGREE(expr)                        \
  do {                                     \
    st = dpt_comm_agree(c, (expr));        \
    if (st != DPT_OK) goto done;           \
  } while (0)

dpt_status dpt_train_run(const dpt_comm *c, dpt_config *cfg, dpt_train_result *res, double **params_out,
                         size_t *n_params) {
  dpt_status st = DPT_OK;
  plan p;
  dpt_dataset *train = NULL, *val = NULL;
  dpt_model *m = NULL;
  dpt_reducer *red = NULL;
  dpt_reduce_opts ro;
  dpt_reduce_tensor *tens = NULL;
  dpt_param_info *tinfo = NULL;
  dpt_optim *o = NULL;
  dpt_schedule *sched = NULL;
  dpt_loader *loader = NULL;
  dpt_trace *trace = NULL;
  dpt_metrics *metrics = NULL;
  val_shard vs;
  memset(&vs, 0, sizeof vs);
  dpt_checkpoint_plan cp;
  ckpt_ctx ck;
  memset(&ck, 0, sizeof ck);
  ck.c = c;
  const char *init_file = NULL;
  bool signals_on = false, watchdog_on = false;
  dpt_rbf_fit_info rbf;
  memset(&rbf, 0, sizeof rbf);
  memset(res, 0, sizeof *res);
  res->val_loss = res->val_metric = NAN;
  if (params_out) *params_out = NULL;

  AGREE(read_plan(cfg, &p));
  if (p.timeout > 0) AGREE(dpt_watchdog_find_peers(c)); /* the same config on every rank */
  AGREE(dpt_watchdog_start(p.timeout, c->rank));
  watchdog_on = true;
  AGREE(dpt_checkpoint_read_config(cfg, &cp));
  AGREE(dpt_reduce_opts_read(cfg, &ro));
  int threads = 1;
  AGREE(dpt_comm_set_blas_threads(c, (int)p.threads, &threads));
  AGREE(dpt_dataset_open(c, p.train_path, "train", &train));
  /* validation: data.val, else the /X_val, /y_val split of the training file */
  if (p.val_path || dpt_dataset_has_val(train))
    AGREE(dpt_dataset_open(c, p.val_path ? p.val_path : p.train_path, "val", &val));
  dpt_task task = dpt_dataset_task(train);
  bool regression = task == DPT_TASK_REGRESSION;
  AGREE(dpt_model_create(cfg, p.dtype, dpt_dataset_features(train), dpt_dataset_outputs(train), task, &m));
  size_t n = dpt_model_num_params(m);
  /* model.init: a scheme name (read by the model) or a model file to start from */
  AGREE(dpt_config_get_string(cfg, "model.init", NULL, &init_file));
  if (init_file && (!strcmp(init_file, "he") || !strcmp(init_file, "xavier") || !strcmp(init_file, "normal")))
    init_file = NULL;
  /* second-order methods (second_order.h) run a full-batch driver instead of the step loop */
  const char *otype;
  dpt_so_options so_opt;
  AGREE(dpt_config_get_string(cfg, "optimizer.type", "sgd", &otype));
  bool second_order = dpt_second_order_is_method(otype);
  int n_tensors = 0;
  if (second_order) {
    AGREE(dpt_so_options_read(cfg, &so_opt));
    const char *unused; /* the full-batch driver reads every row once: no shuffle */
    AGREE(dpt_config_get_string(cfg, "data.shuffle", NULL, &unused));
    /* parallel.reduce = exact: the driver's sums are the exact reducer's */
    if (ro.mode == DPT_REDUCE_EXACT) so_opt.exact_micro = ro.micro_batch;
  } else {
    AGREE(dpt_optim_create(cfg, p.dtype, n, &o));
    AGREE(dpt_schedule_create(cfg, &sched));
    AGREE(dpt_reducer_create(c, &ro, p.dtype, n, dpt_model_grads(m), &red));
    AGREE(check_node_memory(c, n, p.dtype, otype, dpt_optim_memory(o), dpt_reducer_memory_floor(red)));
    n_tensors = dpt_model_num_tensors(m);
    AGREE(dpt_calloc((size_t)n_tensors, sizeof *tinfo, "tensor list", &tinfo));
    AGREE(dpt_calloc((size_t)n_tensors, sizeof *tens, "tensor list", &tens));
    for (int t = 0; t < n_tensors; ++t) {
      dpt_model_tensor_info(m, t, &tinfo[t]);
      tens[t] = (dpt_reduce_tensor){tinfo[t].name, tinfo[t].offset, tinfo[t].count};
    }
    AGREE(dpt_loader_create(c, train, cfg, p.dtype, p.batch, ro.mode == DPT_REDUCE_EXACT ? ro.micro_batch : 0, p.seed,
                            &loader));
  }
  if (val) { /* data.standardize: validation uses the training set's statistics */
    const double *mu, *sd;
    dpt_dataset_standardization(train, &mu, &sd);
    AGREE(dpt_dataset_set_standardization(val, mu, sd));
  }
  AGREE(dpt_config_check_unused(cfg));
  AGREE(dpt_trace_create(p.trace_path, 0, &trace));
  AGREE(dpt_metrics_create(p.metrics_path, c->rank == 0, p.quiet ? 0 : (int)p.progress, p.progress_every, &metrics));
  if (c->rank == 0 && !p.quiet) {
    printf("# dptrain train: %d rank(s), %d BLAS thread(s) per rank, %zu parameters, dtype %s\n", c->size, threads,
           n, dpt_dtype_name(p.dtype));
    printf("# resolved config\n");
    dpt_config_print(cfg, stdout);
    printf("\n");
    fflush(stdout);
  }

  /* Identical start: rank 0 initializes, everyone receives its bytes. */
  void *params = dpt_model_params(m), *grads = dpt_model_grads(m);
  AGREE(c->rank == 0 ? dpt_model_init_params(m, p.seed) : DPT_OK);
  AGREE(dpt_reduce_broadcast(c, params, p.dtype, n));
  if (init_file) AGREE(dpt_modelfile_init(c, init_file, m)); /* every rank reads the same bytes */
  if (val) AGREE(val_load(c, val, p.dtype, &vs));
  /* RBF networks (rbf.h): place layer.0's centers and widths on the training rows and fit the
   * output weights (steps 1-2 of 2-step and 3-step learning); 2-step keeps them fixed below. */
  AGREE(dpt_rbf_fit_dataset(c, m, cfg, train, p.seed, &rbf));
  if (rbf.has_rbf && c->rank == 0 && !p.quiet)
    printf("# rbf: %s learning, centers and widths placed, output weights by %s: train_loss %.6g\n",
           rbf.learn == DPT_RBF_LEARN_2STEP ? "2-step" : "3-step",
           rbf.closed_form ? "least squares" : "gradient descent", rbf.loss);

  /* Resume: parameters, optimizer and schedule state, position, history. */
  ck.s = (dpt_train_state){.model = m, .optim = o, .schedule = sched, .cfg = cfg, .task = task, .seed = p.seed};
  snprintf(ck.s.history_names, sizeof ck.s.history_names, "epoch,train_loss,val_loss,val_metric,lr");
  if (cp.resume && second_order)
    AGREE(dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                        "checkpoint.resume: resuming is supported for first-order optimizers only (optimizer.type = %s)", otype));
  if (cp.resume) {
    bool loaded = false;
    char used[4300];
    AGREE(dpt_checkpoint_resume(c, cp.resume, cp.dir, ckpt_load, &ck, &loaded, used, sizeof used));
    ck.hist_cap = ck.s.history_rows;
    if (loaded) {
      AGREE(ck.s.seed == p.seed ? DPT_OK
                                : dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                                                "%s: train.seed differs: the checkpoint has %llu, this run %llu", used,
                                                (unsigned long long)ck.s.seed, (unsigned long long)p.seed));
      if (c->rank == 0) { /* also when quiet: where a run continues from matters */
        printf("resumed from %s: epoch %lld, step %lld of the epoch, %lld steps done\n", used,
               (long long)ck.s.epoch + 1, (long long)ck.s.step_in_epoch, (long long)ck.s.global_step);
        fflush(stdout);
      }
    }
  }
  AGREE(dpt_signals_install());
  signals_on = true;

  /* One optimizer step = parallel.accumulate loader batches (micro-steps), one reduction.
   * Every rank runs the same number of micro-steps (it depends on the loader's step count
   * only), even with no rows, so every rank joins every collective. */
  int64_t steps = second_order ? 0 : dpt_loader_steps_per_epoch(loader), global_step = ck.s.global_step;
  int64_t acc = ro.accumulate, terms = 0, opt_steps = 1;
  if (!second_order) {
    terms = dpt_reducer_terms(red, p.batch > 0 ? p.batch : dpt_dataset_rows(train));
    opt_steps = (steps + acc - 1) / acc;
  }
  dpt_timers tm;
  dpt_timers_reset(&tm);
  {
    double unused_f, unused_b; /* forget pass times from before the loop (RBF fit) */
    dpt_model_take_pass_times(m, &unused_f, &unused_b);
  }
  const int64_t start_epoch = ck.s.epoch, start_step = ck.s.step_in_epoch;
  res->epochs = start_epoch;
  res->steps = global_step;
  double t0 = MPI_Wtime();
  if (second_order) { /* epochs = iterations, steps = function evaluations */
    dpt_so_train_result sr;
    dpt_watchdog_enter("second-order training", true); /* its evaluations agree often (comm.h) */
    AGREE(dpt_second_order_train(c, &so_opt, m, train, c->rank == 0 && !p.quiet ? dpt_so_log_stdout : NULL, NULL,
                                 &sr));
    res->epochs = sr.iters;
    res->steps = sr.evals;
    res->train_loss = sr.loss;
    if (val) AGREE(val_evaluate(c, m, &vs, regression, &res->val_loss, &res->val_metric));
    if (c->rank == 0 && !p.quiet) {
      printf("%s: %s after %lld iterations, %lld evaluations, %lld H·v: loss %.9g  |g| %.3e", otype,
             dpt_so_stop_name(sr.stop), (long long)sr.iters, (long long)sr.evals, (long long)sr.hvps, sr.loss, sr.gnorm);
      if (val) printf("  val_loss %.9g  val_%s %.4f", res->val_loss, regression ? "r2" : "acc", res->val_metric);
      printf("\n");
    }
  } else
  for (int64_t epoch = start_epoch; epoch < p.epochs; ++epoch) {
    double epoch_loss = epoch == start_epoch ? ck.s.epoch_loss_sum : 0.0, t_epoch = MPI_Wtime();
    int64_t epoch_rows = epoch == start_epoch ? ck.s.epoch_rows : 0, epoch_skipped = 0;
    dpt_timers_reset(&tm);
    for (int64_t step = epoch == start_epoch ? start_step : 0; step < steps; step += acc, ++global_step) {
      double ta = MPI_Wtime(), t_data = 0.0, loss = 0.0;
      int64_t rows = 0, micro_steps = steps - step < acc ? steps - step : acc;
      /* This rank's first local failure in the step; every call below is still made (the
       * reducer's collectives must be joined by every rank) and the failure is agreed once, at
       * the step's end, with the stop request: one small allreduce per step, not one per call. */
      dpt_status pending = DPT_OK;
      dpt_watchdog_step(global_step + 1);
      dpt_schedule_apply(sched, o, global_step, epoch);
      LOCAL(dpt_optim_prepare(o, params));
      LOCAL(dpt_reducer_begin(red, terms));
      LOCAL(dpt_model_zero_grads(m));
      for (int64_t a = 0; a < micro_steps; ++a) {
        dpt_batch b;
        double tl = MPI_Wtime();
        dpt_timer_start(&tm, DPT_PHASE_DATA);
        AGREE(dpt_loader_batch(loader, epoch, step + a, &b));
        dpt_timer_stop(&tm, DPT_PHASE_DATA);
        t_data += MPI_Wtime() - tl;
        /* a single batch is scaled at the source; accumulated ones after the reduction */
        double scale = micro_steps == 1 ? 1.0 / (double)b.n_global : 1.0;
        LOCAL(dpt_reducer_add_batch(red, m, b.X, &b.y, b.n, b.first, a, scale, a == micro_steps - 1, &loss, &tm));
        rows += b.n_global;
      }
      { /* the engine's one call does forward and backward: split its time between the phases */
        double fwd_s, bwd_s;
        dpt_model_take_pass_times(m, &fwd_s, &bwd_s);
        tm.total[DPT_PHASE_FORWARD] += fwd_s;
        tm.total[DPT_PHASE_BACKWARD] -= fwd_s;
      }
      double tc = MPI_Wtime();
      bool skip = false;
      dpt_timer_start(&tm, DPT_PHASE_COMM_WAIT);
      st = dpt_reducer_finish(red, &loss, &skip); /* agreed on every rank (reduce.h) */
      dpt_timer_stop(&tm, DPT_PHASE_COMM_WAIT);
      if (st != DPT_OK) goto done;
      double td = MPI_Wtime();
      dpt_timer_start(&tm, DPT_PHASE_OPTIMIZER);
      if (skip) {
        dpt_optim_cancel(o, params);
        epoch_skipped++;
        res->skipped++;
      } else {
        if (micro_steps > 1) { /* mean over the rows of all micro-steps */
          double inv = 1.0 / (double)rows;
          if (p.dtype == DPT_F64) cblas_dscal((int)n, inv, grads, 1);
          else cblas_sscal((int)n, (float)inv, grads, 1);
          loss *= inv;
        }
        /* The reduced loss is identical on every rank, so this branch is too. */
        LOCAL(isfinite(loss) ? DPT_OK
                             : dpt_error_set(DPT_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                                             "epoch %lld step %lld: the loss is not finite (%g); lower optimizer.lr",
                                             (long long)epoch, (long long)step, loss));
        dpt_rbf_hold_grads(&rbf, p.dtype, grads);
        LOCAL(dpt_optim_step(o, params, grads));
        dpt_rbf_hold_params(&rbf, p.dtype, params);
      }
      dpt_timer_stop(&tm, DPT_PHASE_OPTIMIZER);
      double te = MPI_Wtime();
      /* Step boundary: this step's local failures and a stop signal on any rank, agreed in one
       * allreduce; a stop request stops every rank below, after a checkpoint. */
      dpt_signals_fault_point(c, "step", global_step + 1);
      bool stop = false;
      AGREE(dpt_comm_agree_any(c, pending, dpt_signals_received() != 0, &stop));
      if (ro.check_sync > 0 && (global_step + 1) % ro.check_sync == 0) {
        dpt_timer_start(&tm, DPT_PHASE_SYNC_CHECK);
        st = dpt_reduce_check_sync(c, params, p.dtype, tens, n_tensors, global_step + 1); /* agreed */
        dpt_timer_stop(&tm, DPT_PHASE_SYNC_CHECK);
        if (st != DPT_OK) goto done;
      }
      dpt_trace_event(trace, "step", "step", DPT_TRACE_PHASES, ta, te, global_step);
      dpt_trace_event(trace, "data", "data", DPT_TRACE_PHASES, ta, ta + t_data, rows);
      dpt_trace_event(trace, "forward_backward", "compute", DPT_TRACE_PHASES, ta + t_data, tc, rows);
      dpt_trace_event(trace, "comm_wait", "comm", DPT_TRACE_PHASES, tc, td, -1);
      if (trace) { /* each bucket's allreduce on its own track: they overlap each other */
        const double *bs, *bd;
        size_t nb = dpt_reducer_bucket_times(red, &bs, &bd);
        for (size_t b = 0; b < nb; ++b)
          dpt_trace_event(trace, "allreduce bucket", "comm", DPT_TRACE_BUCKETS + (int)b, bs[b], bd[b], (int64_t)b);
      }
      dpt_trace_event(trace, "optimizer", "compute", DPT_TRACE_PHASES, td, te, -1);
      if (!skip) {
        epoch_loss += loss * (double)rows;
        epoch_rows += rows;
      }
      double now = MPI_Wtime(), rate = (double)(epoch_rows > 0 ? epoch_rows : 1) / (now - t_epoch);
      double eta = (now - t0) / (double)(global_step + 1) * (double)(p.epochs * opt_steps - global_step - 1);
      dpt_metrics_progress(metrics, now, epoch, p.epochs, step, steps, loss, rate, eta);
      if (stop || (cp.every > 0 && (global_step + 1) % cp.every == 0)) {
        ck.s.epoch = epoch;
        ck.s.step_in_epoch = step + micro_steps;
        ck.s.global_step = global_step + 1;
        ck.s.epoch_loss_sum = epoch_loss;
        ck.s.epoch_rows = epoch_rows;
        double tk = MPI_Wtime();
        dpt_watchdog_enter("writing a checkpoint", true);
        AGREE(ckpt_save(&ck, &cp, p.quiet && !stop));
        dpt_watchdog_leave();
        dpt_trace_event(trace, "checkpoint", "io", DPT_TRACE_IO, tk, MPI_Wtime(), global_step + 1);
      }
      if (stop) {
        dpt_metrics_progress_end(metrics);
        AGREE(dpt_error_set(DPT_ERR_STOPPED, __FILE__, __LINE__, __func__,
                            "stopped by a signal at step %lld; checkpoint written in %s; resume with "
                            "--resume latest --checkpoint-dir %s",
                            (long long)global_step + 1, cp.dir, cp.dir));
      }
    }
    res->train_loss = epoch_rows ? epoch_loss / (double)epoch_rows : NAN;
    res->epochs = epoch + 1;
    res->steps = global_step;
    double epoch_s = MPI_Wtime() - t_epoch, monitored = res->train_loss;
    if (val) {
      dpt_timer_start(&tm, DPT_PHASE_FORWARD);
      AGREE(val_evaluate(c, m, &vs, regression, &res->val_loss, &res->val_metric));
      dpt_timer_stop(&tm, DPT_PHASE_FORWARD);
      monitored = res->val_loss;
    }
    dpt_schedule_end_epoch(sched, epoch, monitored);
    {
      double row[HIST_COLS] = {(double)epoch + 1, res->train_loss, res->val_loss, res->val_metric, dpt_optim_lr(o)};
      AGREE(ckpt_history_add(&ck, row));
    }
    /* phase times: max and mean over ranks (a synchronous step waits for the slowest) */
    dpt_phase_stats ph;
    AGREE(dpt_timers_summarize(c, &tm, &ph));
    double rate = epoch_s > 0 ? (double)epoch_rows / epoch_s : 0.0;
    {
      const char *names[8 + 2 * PH_COUNT] = {"epoch", "steps", "train_loss", "val_loss", regression ? "val_r2" : "val_acc",
                                             "lr", "samples_per_s", "skipped_steps"};
      double values[8 + 2 * PH_COUNT] = {(double)epoch + 1, (double)global_step, res->train_loss, res->val_loss,
                                         res->val_metric, dpt_optim_lr(o), rate, (double)epoch_skipped};
      static char colnames[2 * PH_COUNT][48];
      for (int k = 0; k < PH_COUNT; ++k) {
        snprintf(colnames[2 * k], sizeof colnames[0], "%s_s_max", dpt_phase_name((dpt_phase)k));
        snprintf(colnames[2 * k + 1], sizeof colnames[0], "%s_s_mean", dpt_phase_name((dpt_phase)k));
        names[8 + 2 * k] = colnames[2 * k];
        names[9 + 2 * k] = colnames[2 * k + 1];
        values[8 + 2 * k] = ph.max[k];
        values[9 + 2 * k] = ph.mean[k];
      }
      AGREE(dpt_metrics_row(metrics, 8 + 2 * PH_COUNT, names, values));
    }
    bool last = epoch + 1 == p.epochs;
    if (c->rank == 0 && !p.quiet && ((epoch + 1) % p.log_every == 0 || last)) {
      dpt_metrics_progress_end(metrics);
      printf("epoch %lld/%lld  loss %.6g", (long long)epoch + 1, (long long)p.epochs, res->train_loss);
      if (val)
        printf("  val_loss %.6g  val_%s %.4f", res->val_loss, regression ? "r2" : "acc", res->val_metric);
      printf("  lr %.4g  %.0f samples/s", dpt_optim_lr(o), rate);
      if (res->skipped) printf("  skipped %lld step(s) (non-finite)", (long long)res->skipped);
      printf("\n");
      fflush(stdout);
    }
  }
  res->seconds = MPI_Wtime() - t0;
  dpt_metrics_progress_end(metrics);
  dpt_watchdog_enter("writing the final checkpoint, model file and trace", true);
  if (cp.enabled && global_step > 0) {
    ck.s.epoch = p.epochs;
    ck.s.step_in_epoch = 0;
    ck.s.global_step = global_step;
    ck.s.epoch_loss_sum = 0;
    ck.s.epoch_rows = 0;
    /* replaces a periodic checkpoint of the same step: this one says the run is complete */
    AGREE(ckpt_save(&ck, &cp, p.quiet));
  }
  if (cp.model_out) {
    dpt_standardize stdz; /* data.standardize: saved so eval/predict apply the same transform */
    dpt_dataset_standardization(train, &stdz.mean, &stdz.std);
    AGREE(dpt_modelfile_save(c, cp.model_out, m, task, cfg, &stdz));
    if (c->rank == 0 && !p.quiet) printf("model written: %s\n", cp.model_out);
  }
  AGREE(dpt_trace_write(c, trace));
  if (c->rank == 0 && p.print_params) print_params(m, p.dtype);
  if (params_out) {
    AGREE(dpt_alloc(n, sizeof(double), "parameter copy", params_out));
    for (size_t i = 0; i < n; ++i)
      (*params_out)[i] = p.dtype == DPT_F64 ? ((double *)params)[i] : (double)((float *)params)[i];
    *n_params = n;
  }

done:
  if (watchdog_on) dpt_watchdog_stop();
  if (signals_on) dpt_signals_restore();
  dpt_free(&ck.s.history);
  dpt_rbf_fit_info_free(&rbf);
  val_free(&vs);
  dpt_metrics_destroy(&metrics);
  dpt_trace_destroy(&trace);
  dpt_loader_destroy(&loader);
  dpt_schedule_destroy(&sched);
  dpt_optim_destroy(&o);
  dpt_reducer_destroy(&red);
  dpt_free(&tens);
  dpt_free(&tinfo);
  dpt_model_destroy(&m);
  dpt_dataset_close(&val);
  dpt_dataset_close(&train);
  if (st != DPT_OK && params_out) dpt_free(params_out);
  return st;
}

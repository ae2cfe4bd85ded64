/* second_order_train.c — the model-backed objective (full training set sharded over ranks)
 * and the full-batch second-order driver called by the training loop. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/dataset.h"
#include "dptrain/second_order.h"
#include "dptrain/second_order_train.h"
#include "dptrain/types.h"

/* Everything the objective needs; buffers owned by it (freed in model_obj_free). */
typedef struct model_obj {
  const dpt_comm *c;
  dpt_model *m;         /* borrowed */
  dpt_dtype dtype;
  size_t n;             /* parameters */
  int64_t rows;         /* rows on this rank */
  int64_t n_global;     /* N */
  void *X;              /* [rows, features] dtype */
  int32_t *labels;      /* [rows] or NULL */
  void *values;         /* [rows, k] dtype or NULL */
  void *v_dt, *hv_dt;   /* [n] dtype scratch */
} model_obj;

static void to_dtype(dpt_dtype t, const double *x, size_t n, void *out) {
  if (t == DPT_F64) memcpy(out, x, n * sizeof *x);
  else
    for (size_t i = 0; i < n; i++) ((float *)out)[i] = (float)x[i];
}
static void from_dtype(dpt_dtype t, const void *in, size_t n, double *x) {
  if (t == DPT_F64) memcpy(x, in, n * sizeof *x);
  else
    for (size_t i = 0; i < n; i++) x[i] = (double)((const float *)in)[i];
}

/* Sums [n] doubles over ranks in place (identical result on every rank). */
static dpt_status allreduce(const dpt_comm *c, double *x, size_t n) {
  int count;
  DPT_CALL(dpt_cast_int((int64_t)n, "second-order reduction length", &count));
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, x, count, MPI_DOUBLE, MPI_SUM, c->comm));
  return DPT_OK;
}

static dpt_status model_eval(void *ctx, const double *x, double *f, double *g) {
  model_obj *o = ctx;
  dpt_status st;
  to_dtype(o->dtype, x, o->n, dpt_model_params(o->m));
  double loss = 0.0;
  st = dpt_model_zero_grads(o->m);
  if (st == DPT_OK) {
    const dpt_targets y = {o->labels, o->values};
    st = dpt_model_forward_backward(o->m, o->X, &y, o->rows, 1.0 / (double)o->n_global, &loss, NULL, NULL);
  }
  /* A local failure must not strand the other ranks in the reduction below. */
  DPT_CALL(dpt_comm_agree(o->c, st));
  from_dtype(o->dtype, dpt_model_grads(o->m), o->n, g);
  g[o->n] = loss; /* reduce loss with the gradient: g has n + 1 slots (see create) */
  DPT_CALL(allreduce(o->c, g, o->n + 1));
  *f = g[o->n];
  return DPT_OK;
}

static dpt_status model_hvp(void *ctx, const double *x, const double *v, double *hv) {
  model_obj *o = ctx;
  to_dtype(o->dtype, x, o->n, dpt_model_params(o->m));
  to_dtype(o->dtype, v, o->n, o->v_dt);
  memset(o->hv_dt, 0, o->n * dpt_dtype_size(o->dtype));
  const dpt_targets y = {o->labels, o->values};
  DPT_CALL(dpt_comm_agree(o->c, dpt_model_hvp(o->m, o->X, &y, o->rows, 1.0 / (double)o->n_global, o->v_dt,
                                                o->hv_dt)));
  from_dtype(o->dtype, o->hv_dt, o->n, hv);
  DPT_CALL(allreduce(o->c, hv, o->n));
  return DPT_OK;
}

static void model_obj_free(model_obj *o) {
  dpt_free(&o->X);
  dpt_free(&o->labels);
  dpt_free(&o->values);
  dpt_free(&o->v_dt);
  dpt_free(&o->hv_dt);
}

/* The solver's gradient vectors have n entries; eval writes the loss into g[n], so it gets
 * a private n+1 buffer and copies out. */
typedef struct wrap {
  model_obj *o;
  double *g1; /* [n + 1] */
} wrap;
static dpt_status wrap_eval(void *ctx, const double *x, double *f, double *g) {
  wrap *w = ctx;
  DPT_CALL(model_eval(w->o, x, f, w->g1));
  if (g) memcpy(g, w->g1, w->o->n * sizeof *g);
  return DPT_OK;
}
static dpt_status wrap_hvp(void *ctx, const double *x, const double *v, double *hv) {
  wrap *w = ctx;
  return model_hvp(w->o, x, v, hv);
}

typedef struct log_ctx {
  int rank;
  bool quiet;
} log_ctx;
static void log_iter(void *ctx, const dpt_so_iter *it) {
  const log_ctx *l = ctx;
  if (l->rank != 0 || l->quiet) return;
  printf("iter %lld  loss %.9g  |g| %.4g  step %.4g  |dx| %.4g  evals %lld  hvps %lld\n", (long long)it->iter,
         it->loss, it->gnorm, it->step, it->step_norm, (long long)it->evals, (long long)it->hvps);
  fflush(stdout);
}

dpt_status dpt_second_order_train(const dpt_comm *c, const dpt_so_options *opts, dpt_model *m, dpt_dataset *train,
                                  dpt_dtype dtype, bool quiet, dpt_so_result *res) {
  dpt_status st = DPT_OK;
  model_obj mo = {.c = c, .m = m, .dtype = dtype, .n = dpt_model_num_params(m)};
  wrap w = {&mo, NULL};
  int64_t *rows = NULL;
  double *x = NULL;
  dpt_so_solver *s = NULL;
  const size_t n = mo.n, es = dpt_dtype_size(dtype);
  const int64_t N = dpt_dataset_rows(train), d = dpt_dataset_features(train), k = dpt_dataset_outputs(train);
  const bool regression = dpt_dataset_task(train) == DPT_TASK_REGRESSION;
  int64_t begin;
  dpt_shard_range(N, c->size, c->rank, &begin, &mo.rows);
  mo.n_global = N;
  /* Same decision on every rank (n and the options are the same everywhere). */
  DPT_TRY(dpt_so_create(opts, n, &s));
  DPT_TRY(dpt_comm_agree(c, dpt_alloc((size_t)mo.rows, sizeof *rows, "shard row ids", &rows)));
  for (int64_t i = 0; i < mo.rows; i++) rows[i] = begin + i;
  DPT_TRY(dpt_comm_agree(c, dpt_alloc((size_t)(mo.rows * d), es, "training shard", &mo.X)));
  if (regression) DPT_TRY(dpt_comm_agree(c, dpt_alloc((size_t)(mo.rows * k), es, "training targets", &mo.values)));
  else DPT_TRY(dpt_comm_agree(c, dpt_alloc((size_t)mo.rows, sizeof(int32_t), "training labels", &mo.labels)));
  DPT_TRY(dpt_dataset_read_rows(train, rows, mo.rows, dtype, mo.X, mo.labels, mo.values));
  DPT_TRY(dpt_alloc(n, es, "H.v input", &mo.v_dt));
  DPT_TRY(dpt_alloc(n, es, "H.v output", &mo.hv_dt));
  DPT_TRY(dpt_alloc(n + 1, sizeof(double), "gradient and loss", &w.g1));
  DPT_TRY(dpt_alloc(n, sizeof(double), "parameters", &x));
  from_dtype(dtype, dpt_model_params(m), n, x);
  dpt_objective obj = {.n = n, .ctx = &w, .eval = wrap_eval, .hvp = wrap_hvp};
  log_ctx lc = {c->rank, quiet};
  DPT_TRY(dpt_so_minimize(s, &obj, x, log_iter, &lc, res));
  to_dtype(dtype, x, n, dpt_model_params(m));
  if (c->rank == 0 && !quiet) {
    printf("%s: stopped on %s after %lld iterations, %lld evaluations, %lld H.v; loss %.9g, |g| %.4g\n",
           dpt_so_method_name(opts->method), res->reason, (long long)res->iters, (long long)res->evals,
           (long long)res->hvps, res->loss, res->gnorm);
    fflush(stdout);
  }
done:
  dpt_so_destroy(&s);
  model_obj_free(&mo);
  dpt_free(&w.g1);
  dpt_free(&rows);
  dpt_free(&x);
  return st;
}

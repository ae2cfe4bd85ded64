/* second_order_train.c — the model-backed objective over a sharded training set and the
 * full-batch driver dpt_second_order_train (second_order.h).
 *
 * f(θ) = (1/N) Σ_rows ℓ(θ; row) over the whole training set. Rank r holds rows
 * dpt_shard_range(N, P, r); each evaluation computes its shard's part with scale 1/N and the
 * parts are summed over ranks in double. The sum is reduced to rank 0 and broadcast (not
 * MPI_Allreduce), so every rank gets bitwise the same f, ∇f and H·v and takes the same
 * line-search and CG branches (an allreduce may round differently on different ranks). */
#include "dptrain/second_order.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/dataset.h"
#include "dptrain/model.h"
#include "dptrain/reduce.h"

typedef struct model_objective {
  const dpt_comm *c;
  dpt_model *m;
  dpt_dtype dt;
  size_t n;
  int64_t rows, N;       /* local rows, global rows */
  void *X, *values;      /* local shard [rows, d], [rows, k] in dtype (owned) */
  int32_t *labels;       /* [rows] (owned) */
  void *vbuf, *hvbuf;    /* [n] in dtype (owned) */
  double *acc;           /* [n + 1] reduction buffer (owned) */
  int64_t micro, begin;  /* exact mode: rows per micro-batch (0 = fast), first local row */
  dpt_reducer *rg, *rh;  /* exact mode: reducers over the gradient and H·v buffers (owned) */
} model_objective;

static void to_dtype(dpt_dtype dt, const double *x, void *out, size_t n) {
  if (dt == DPT_F64)
    memcpy(out, x, n * sizeof *x);
  else
    for (size_t i = 0; i < n; ++i) ((float *)out)[i] = (float)x[i];
}

static void to_double(dpt_dtype dt, const void *in, double *out, size_t n) {
  if (dt == DPT_F64)
    memcpy(out, in, n * sizeof *out);
  else
    for (size_t i = 0; i < n; ++i) out[i] = (double)((const float *)in)[i];
}

/* acc [count] summed over ranks, the same bits on every rank: reduce to 0, broadcast. */
static dpt_status sum_over_ranks(const dpt_comm *c, double *acc, size_t count) {
  int cnt;
  DPT_CALL(dpt_cast_int((int64_t)count, "reduction length", &cnt));
  if (c->size == 1) return DPT_OK;
  DPT_CALL_MPI(MPI_Reduce(c->rank == 0 ? MPI_IN_PLACE : acc, acc, cnt, MPI_DOUBLE, MPI_SUM, 0, c->comm));
  DPT_CALL_MPI(MPI_Bcast(acc, cnt, MPI_DOUBLE, 0, c->comm));
  return DPT_OK;
}

/* Exact mode: one term per micro-batch of this rank's rows, computed into the reducer's leaf
 * buffers and summed by r into its buffer (rg: the model's gradient buffer; rh: hvbuf, the
 * Hessian-vector product with v). *loss: the exact loss sum (gradient); a non-finite term
 * makes *skip true on every rank. */
static dpt_status exact_pass(model_objective *mo, dpt_reducer *r, const void *v, double *loss, bool *skip) {
  size_t es = dpt_dtype_size(mo->dt);
  int64_t d = dpt_model_inputs(mo->m), k = dpt_model_outputs(mo->m);
  dpt_status st = dpt_reducer_begin(r, (mo->N + mo->micro - 1) / mo->micro);
  int64_t j = mo->begin / mo->micro; /* term index of this rank's first micro-batch */
  for (int64_t i = 0; st == DPT_OK && i < mo->rows; i += mo->micro, ++j) {
    int64_t nb = mo->rows - i < mo->micro ? mo->rows - i : mo->micro;
    const char *X = (const char *)mo->X + (size_t)(i * d) * es;
    dpt_targets y = {mo->labels ? mo->labels + i : NULL,
                     mo->values ? (const char *)mo->values + (size_t)(i * k) * es : NULL};
    double l = 0.0;
    void *leaf = NULL; /* zeroed by the reducer; the term is computed into it */
    st = dpt_reducer_leaf(r, &leaf);
    if (st == DPT_OK && v)
      st = dpt_model_hvp(mo->m, X, &y, nb, 1.0 / (double)mo->N, v, leaf);
    else if (st == DPT_OK)
      st = dpt_model_forward_backward_into(mo->m, leaf, X, &y, nb, 1.0 / (double)mo->N, &l);
    if (st == DPT_OK) st = dpt_reducer_deposit_leaf(r, j, l);
  }
  DPT_CALL(dpt_comm_agree(mo->c, st));
  DPT_CALL(dpt_reducer_finish(r, loss, skip));
  return DPT_OK;
}

static dpt_status model_eval_exact(model_objective *mo, double *f, double *g) {
  double loss = 0.0;
  bool skip = false;
  DPT_CALL(exact_pass(mo, mo->rg, NULL, &loss, &skip));
  *f = skip ? INFINITY : loss;
  if (g) to_double(mo->dt, dpt_model_grads(mo->m), g, mo->n);
  return DPT_OK;
}

static dpt_status model_eval(void *ctx, const double *x, double *f, double *g) {
  model_objective *mo = ctx;
  to_dtype(mo->dt, x, dpt_model_params(mo->m), mo->n);
  if (mo->micro > 0) return model_eval_exact(mo, f, g);
  dpt_status st = dpt_model_zero_grads(mo->m);
  double loss = 0.0;
  dpt_targets y = {mo->labels, mo->values};
  if (st == DPT_OK)
    st = dpt_model_forward_backward(mo->m, mo->X, &y, mo->rows, 1.0 / (double)mo->N, &loss, NULL, NULL);
  DPT_CALL(dpt_comm_agree(mo->c, st));
  to_double(mo->dt, dpt_model_grads(mo->m), mo->acc, mo->n);
  mo->acc[mo->n] = loss;
  DPT_CALL(sum_over_ranks(mo->c, mo->acc, mo->n + 1));
  *f = mo->acc[mo->n];
  if (g) memcpy(g, mo->acc, mo->n * sizeof *g);
  return DPT_OK;
}

static dpt_status model_hvp(void *ctx, const double *x, const double *v, double *hv) {
  model_objective *mo = ctx;
  size_t es = dpt_dtype_size(mo->dt);
  to_dtype(mo->dt, x, dpt_model_params(mo->m), mo->n);
  to_dtype(mo->dt, v, mo->vbuf, mo->n);
  if (mo->micro > 0) {
    double unused = 0.0;
    bool skip = false;
    DPT_CALL(exact_pass(mo, mo->rh, mo->vbuf, &unused, &skip));
    DPT_CHECK(!skip, DPT_ERR_NUMERIC, "second-order: a Hessian-vector product is not finite");
    to_double(mo->dt, mo->hvbuf, hv, mo->n);
    return DPT_OK;
  }
  memset(mo->hvbuf, 0, mo->n * es);
  dpt_targets y = {mo->labels, mo->values};
  DPT_CALL(dpt_comm_agree(mo->c,
                          dpt_model_hvp(mo->m, mo->X, &y, mo->rows, 1.0 / (double)mo->N, mo->vbuf, mo->hvbuf)));
  to_double(mo->dt, mo->hvbuf, mo->acc, mo->n);
  DPT_CALL(sum_over_ranks(mo->c, mo->acc, mo->n));
  memcpy(hv, mo->acc, mo->n * sizeof *hv);
  return DPT_OK;
}

static void model_objective_free(model_objective *mo) {
  dpt_reducer_destroy(&mo->rg);
  dpt_reducer_destroy(&mo->rh);
  dpt_free(&mo->X);
  dpt_free(&mo->values);
  dpt_free(&mo->labels);
  dpt_free(&mo->vbuf);
  dpt_free(&mo->hvbuf);
  dpt_free(&mo->acc);
}

/* Reads this rank's shard (collective) and allocates the buffers. */
static dpt_status model_objective_init(const dpt_comm *c, dpt_model *m, dpt_dataset *ds, int64_t micro,
                                       model_objective *mo) {
  dpt_status st = DPT_OK;
  int64_t begin, *rows = NULL;
  memset(mo, 0, sizeof *mo);
  mo->c = c;
  mo->m = m;
  mo->dt = dpt_model_dtype(m);
  mo->n = dpt_model_num_params(m);
  mo->N = dpt_dataset_rows(ds);
  int64_t d = dpt_dataset_features(ds), k = dpt_dataset_outputs(ds);
  bool regression = dpt_dataset_task(ds) == DPT_TASK_REGRESSION;
  size_t es = dpt_dtype_size(mo->dt);
  DPT_CHECK(mo->N > 0, DPT_ERR_INPUT, "%s: the training set is empty", dpt_dataset_path(ds));
  mo->micro = micro;
  dpt_shard_batch(mo->N, micro, c->size, c->rank, &begin, &mo->rows); /* micro 0: dpt_shard_range */
  mo->begin = begin;
  st = dpt_alloc((size_t)mo->rows, sizeof *rows, "training row ids", &rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)(mo->rows * d), es, "training X shard", &mo->X);
  if (st == DPT_OK && regression) st = dpt_alloc((size_t)(mo->rows * k), es, "training y shard", &mo->values);
  if (st == DPT_OK && !regression) st = dpt_alloc((size_t)mo->rows, sizeof(int32_t), "training labels", &mo->labels);
  if (st == DPT_OK) st = dpt_alloc(mo->n, es, "H·v input", &mo->vbuf);
  if (st == DPT_OK) st = dpt_alloc(mo->n, es, "H·v output", &mo->hvbuf);
  if (st == DPT_OK) st = dpt_alloc(mo->n + 1, sizeof(double), "reduction buffer", &mo->acc);
  for (int64_t i = 0; st == DPT_OK && i < mo->rows; ++i) rows[i] = begin + i;
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY(dpt_dataset_read_rows(ds, rows, mo->rows, mo->dt, mo->X, mo->labels, mo->values));
  if (micro > 0) {
    dpt_reduce_opts ro;
    dpt_reduce_opts_default(&ro);
    ro.mode = DPT_REDUCE_EXACT;
    ro.micro_batch = micro;
    ro.on_nonfinite = DPT_NONFINITE_SKIP; /* a non-finite trial point is a rejected step */
    /* agreed: every rank goes on to collective evaluations, or none */
    DPT_TRY(dpt_comm_agree(c, dpt_reducer_create(c, &ro, mo->dt, mo->n, dpt_model_grads(m), &mo->rg)));
    DPT_TRY(dpt_comm_agree(c, dpt_reducer_create(c, &ro, mo->dt, mo->n, mo->hvbuf, &mo->rh)));
  }
done:
  dpt_free(&rows);
  if (st != DPT_OK) model_objective_free(mo);
  return st;
}

/* Everything the driver holds on this rank — the model's parameters and gradients, the
 * shard, the H·v and reduction buffers, x in double, the solver's buffers and the exact
 * reducers' — times the ranks of this node must fit its memory (comm.h), checked before the
 * solver's buffers are first touched. */
static dpt_status check_memory(const model_objective *mo, const dpt_so *s) {
  const double gib = 1073741824.0, es = (double)dpt_dtype_size(mo->dt), n = (double)mo->n;
  double d = (double)dpt_model_inputs(mo->m), k = (double)dpt_model_outputs(mo->m), rows = (double)mo->rows;
  double model = 2.0 * n * es, shard = rows * d * es + (mo->values ? rows * k * es : rows * sizeof(int32_t));
  double bufs = 2.0 * n * es + (n + 1.0) * sizeof(double) + n * sizeof(double), solver = (double)dpt_so_memory(s);
  double red = mo->rg ? (double)(dpt_reducer_memory_floor(mo->rg) + dpt_reducer_memory_floor(mo->rh)) : 0.0;
  char parts[200];
  snprintf(parts, sizeof parts,
           "parameters and gradients %.3g, data shard %.3g, driver vectors %.3g, second-order solver %.3g, "
           "reducers %.3g",
           model / gib, shard / gib, bufs / gib, solver / gib, red / gib);
  DPT_CALL(dpt_comm_check_node_memory(mo->c, model + shard + bufs + solver + red, "model.layers", parts));
  return DPT_OK;
}

dpt_status dpt_second_order_train(const dpt_comm *c, const dpt_so_options *opt, dpt_model *m, dpt_dataset *train,
                                  dpt_so_log_fn log, void *log_ctx, dpt_so_train_result *res) {
  dpt_status st = DPT_OK;
  model_objective mo;
  dpt_so *s = NULL;
  double *x = NULL;
  memset(res, 0, sizeof *res);
  DPT_CALL(model_objective_init(c, m, train, opt->exact_micro, &mo));
  double t0 = MPI_Wtime();
  /* create can only fail on the options or memory: the same on every rank but memory */
  DPT_TRY(dpt_comm_agree(c, dpt_so_create(opt, mo.n, &s)));
  DPT_TRY(dpt_comm_agree(c, dpt_alloc(mo.n, sizeof *x, "parameters in double", &x)));
  DPT_TRY(dpt_comm_agree(c, check_memory(&mo, s)));
  to_double(mo.dt, dpt_model_params(m), x, mo.n);
  dpt_objective obj = {.n = mo.n, .ctx = &mo, .eval = model_eval, .hvp = model_hvp};
  dpt_so_result r;
  /* every failure inside is agreed at the collective that raised it, so all ranks leave
   * together with the same status */
  DPT_TRY(dpt_so_minimize(s, &obj, x, log, log_ctx, &r));
  to_dtype(mo.dt, x, dpt_model_params(m), mo.n);
  res->iters = r.iters;
  res->evals = r.evals;
  res->hvps = r.hvps;
  res->loss = r.f;
  res->gnorm = r.gnorm;
  res->stop = r.stop;
  res->seconds = MPI_Wtime() - t0;
done:
  dpt_free(&x);
  dpt_so_destroy(&s);
  model_objective_free(&mo);
  return st;
}

void dpt_so_log_stdout(void *ctx, const dpt_so_iter *it) {
  (void)ctx;
  printf("iter %lld  loss %.9g  |g| %.3e  step %.3g  evals %lld  hvps %lld\n", (long long)it->iter, it->f, it->gnorm,
         it->alpha, (long long)it->evals, (long long)it->hvps);
  fflush(stdout);
}

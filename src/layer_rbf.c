/* layer_rbf.c — the rbf layer type and operator, and 2-step/3-step learning (dpt_rbf_fit).
 *
 *   rbf   y[n, i] = exp(−‖x_n − μ_i‖² / (2 σ_i²)),  i < k        centers μ [k, in], widths σ [k]
 *
 * The seed's φ(x) = (1, y_0 .. y_{k−1}): the constant 1 is the bias of the dense layer that
 * follows. μ and σ are parameters of the model's flat buffer ("layer_0/centers",
 * "layer_0/widths"), so the engine's reverse mode, forward mode and H·v give ∇μ, ∇σ (3-step
 * learning). The layer must be layer.0 (its centers are placed on the input data) and a
 * hidden layer (a dense output layer follows, possibly after more hidden layers). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/dataset.h"
#include "dptrain/graph.h"
#include "dptrain/layer.h"
#include "dptrain/model.h"
#include "dptrain/rbf.h"
#include "dptrain/tensor.h"
#include "dptrain/types.h"

/* ---- the operator ------------------------------------------------------------------------ */

/* Rows the node's buffers hold (the graph's capacity for batch-row nodes). */
static int64_t rbf_cap(const dpt_graph *g, const dpt_node *y) { return y->batch_rows ? g->capacity : y->rows; }

/* aux region j: 0 D, 1 Ḋ, 2 G, 3 Ġ ([cap, k] each), 4 scratch xx [cap] then mm [k]. */
static void *rbf_aux(const dpt_graph *g, const dpt_node *y, int j) {
  return dpt_elem(g->dtype, y->aux, (size_t)j * (size_t)(rbf_cap(g, y) * y->cols));
}

static size_t rbf_aux_bytes(const dpt_graph *g, const dpt_node *y, int64_t rows) {
  return (size_t)(4 * rows * y->cols + rows + y->cols) * dpt_dtype_size(g->dtype);
}

#define T float
#define FN(name) name##_f32
#include "rbf_kernels.inc"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "rbf_kernels.inc"
#undef T
#undef FN

DPT_OP_BY_DTYPE(rbf_forward)
DPT_OP_BY_DTYPE(rbf_vjp)
DPT_OP_BY_DTYPE(rbf_jvp)
DPT_OP_BY_DTYPE(rbf_vjp_tangent)

const dpt_op dpt_op_rbf = {"rbf", rbf_forward, rbf_vjp, rbf_jvp, rbf_vjp_tangent, rbf_aux_bytes};

/* ---- the layer type ------------------------------------------------------------------------- */

typedef struct rbf_layer {
  dpt_rbf_options o;
  int centers, widths; /* indices into L->params */
} rbf_layer;

static dpt_status rbf_configure(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d) {
  (void)d;
  DPT_CHECK(!L->is_output, DPT_ERR_INPUT,
            "%s.type: rbf is a hidden layer (a dense output layer computes w^T phi(x)); list its units in "
            "model.layers",
            L->section);
  DPT_CHECK(L->index == 0, DPT_ERR_INPUT,
            "%s.type: rbf must be the first layer, layer.0 (its centers are placed on the input data)", L->section);
  rbf_layer *r;
  DPT_CALL(dpt_calloc(1, sizeof *r, "rbf layer", &r));
  L->priv = r;
  DPT_CALL(dpt_rbf_options_read(cfg, L->section, L->n_out, &r->o));
  L->n_out = r->o.units;
  DPT_CALL(dpt_layer_add_param(L, "centers", r->o.units, L->n_in, &r->centers));
  DPT_CALL(dpt_layer_add_param(L, "widths", r->o.units, 0, &r->widths));
  return DPT_OK;
}

/* Before placement (dpt_rbf_fit): centers N(0, 1), widths 1. */
static dpt_status rbf_init(dpt_layer *L, void *params, uint64_t seed) {
  rbf_layer *r = L->priv;
  dpt_layer_fill_normal(L, params, r->centers, seed, 1.0);
  dpt_layer_param *w = &L->params[r->widths];
  for (size_t i = 0; i < w->count; ++i) dpt_vec_set(L->dtype, params, w->offset + i, 1.0);
  return DPT_OK;
}

static dpt_status rbf_build(dpt_layer *L, dpt_graph *g, int input, int *output) {
  rbf_layer *r = L->priv;
  int in[3] = {input, -1, -1};
  DPT_CALL(dpt_layer_param_node(L, g, r->centers, &in[1]));
  DPT_CALL(dpt_layer_param_node(L, g, r->widths, &in[2]));
  DPT_CALL(dpt_graph_op(g, &dpt_op_rbf, in, 3, true, 0, r->o.units, false, NULL, output));
  return DPT_OK;
}

static void rbf_destroy(dpt_layer *L) { dpt_free(&L->priv); }

const dpt_layer_type dpt_layer_rbf = {"rbf", rbf_configure, rbf_init, rbf_build, rbf_destroy};

/* ---- 2-step and 3-step learning -------------------------------------------------------------- */

/* The flat tensor named name, or −1. */
static int find_tensor(const dpt_model *m, const char *name, dpt_param_info *info) {
  for (int i = 0; i < dpt_model_num_tensors(m); ++i) {
    dpt_model_tensor_info(m, i, info);
    if (!strcmp(info->name, name)) return i;
  }
  return -1;
}

/* Sum of a dtype buffer over ranks, in place. */
static dpt_status allreduce_dtype(const dpt_comm *c, dpt_dtype t, void *buf, size_t count) {
  const size_t chunk = (size_t)1 << 26;
  for (size_t off = 0; off < count; off += chunk) {
    int len = (int)(count - off < chunk ? count - off : chunk);
    DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, dpt_elem(t, buf, off), len, t == DPT_F32 ? MPI_FLOAT : MPI_DOUBLE,
                               MPI_SUM, c->comm));
  }
  return DPT_OK;
}

/* Mean training loss over all ranks' rows (blocks of rows through dpt_model_evaluate). */
static dpt_status mean_loss(const dpt_comm *c, dpt_model *m, const void *X, const dpt_targets *y, int64_t count,
                            int64_t n, double *loss) {
  const int64_t bs = 4096, d = dpt_model_inputs(m), k = dpt_model_outputs(m);
  const dpt_dtype t = dpt_model_dtype(m);
  double sum = 0.0;
  dpt_status st = DPT_OK;
  for (int64_t r0 = 0; r0 < count && st == DPT_OK; r0 += bs) {
    int64_t nb = count - r0 < bs ? count - r0 : bs;
    dpt_targets yb = {y->labels ? y->labels + r0 : NULL,
                      y->values ? dpt_elem_c(t, y->values, (size_t)(r0 * k)) : NULL};
    st = dpt_model_evaluate(m, dpt_elem_c(t, X, (size_t)(r0 * d)), &yb, nb, 1.0 / (double)n, &sum, NULL, NULL);
  }
  DPT_CALL(dpt_comm_agree(c, st));
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, c->comm));
  *loss = sum;
  return DPT_OK;
}

/* Full-batch gradient descent on every parameter outside [frozen, frozen + nfrozen). */
static dpt_status fit_gd(const dpt_comm *c, dpt_model *m, const void *X, const dpt_targets *y, int64_t count,
                         int64_t n, size_t frozen, size_t nfrozen, int64_t epochs, double lr) {
  const int64_t bs = 4096, d = dpt_model_inputs(m), k = dpt_model_outputs(m);
  const dpt_dtype t = dpt_model_dtype(m);
  const size_t np = dpt_model_num_params(m);
  void *params = dpt_model_params(m), *grads = dpt_model_grads(m);
  for (int64_t e = 0; e < epochs; ++e) {
    dpt_status st = dpt_model_zero_grads(m);
    double loss = 0.0;
    for (int64_t r0 = 0; r0 < count && st == DPT_OK; r0 += bs) {
      int64_t nb = count - r0 < bs ? count - r0 : bs;
      dpt_targets yb = {y->labels ? y->labels + r0 : NULL,
                        y->values ? dpt_elem_c(t, y->values, (size_t)(r0 * k)) : NULL};
      st = dpt_model_forward_backward(m, dpt_elem_c(t, X, (size_t)(r0 * d)), &yb, nb, 1.0 / (double)n, &loss,
                                      NULL, NULL);
    }
    DPT_CALL(dpt_comm_agree(c, st));
    DPT_CALL(allreduce_dtype(c, t, grads, np));
    DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, c->comm));
    /* the loss is reduced: every rank takes the same branch */
    DPT_CHECK(isfinite(loss), DPT_ERR_NUMERIC,
              "rbf 2-step fit: loss is %g at step %lld of the output-weight gradient descent; lower fit_lr", loss,
              (long long)e);
    dpt_vec_zero(t, nfrozen, dpt_elem(t, grads, frozen));
    dpt_vec_axpy(t, np, -lr, grads, params);
  }
  return DPT_OK;
}

dpt_status dpt_rbf_fit(const dpt_comm *c, dpt_model *m, dpt_config *cfg, const void *X, const dpt_targets *y,
                       int64_t count, int64_t begin, int64_t n, uint64_t seed, dpt_rbf_fit_info *info) {
  memset(info, 0, sizeof *info);
  dpt_param_info ci, wi;
  if (find_tensor(m, "layer_0/centers", &ci) < 0) return DPT_OK; /* no rbf layer */
  DPT_CHECK(find_tensor(m, "layer_0/widths", &wi) >= 0 && wi.offset == ci.offset + ci.count, DPT_ERR_INTERNAL,
            "rbf fit: layer_0/widths does not follow layer_0/centers in the flat buffer");
  info->has_rbf = true;
  const dpt_dtype t = dpt_model_dtype(m);
  const int64_t k = ci.shape[0], d = ci.shape[1], nout = dpt_model_outputs(m);
  dpt_rbf_options o;
  DPT_CALL(dpt_rbf_options_read(cfg, "layer.0", k, &o));
  DPT_CHECK(o.units == k, DPT_ERR_INTERNAL, "rbf fit: layer.0.units %lld but the model has %lld centers",
            (long long)o.units, (long long)k);
  info->learn = o.learn;
  info->frozen_offset = ci.offset;
  info->frozen_count = o.learn == DPT_RBF_LEARN_2STEP ? ci.count + wi.count : 0;

  /* step 1: centers and widths from this rank's rows, in float64 */
  dpt_status st = DPT_OK;
  double *Xd = NULL, *C = NULL, *w = NULL, *Y = NULL, *W = NULL;
  st = dpt_alloc((size_t)count * (size_t)d, sizeof *Xd, "rbf fit: rows in float64", &Xd);
  if (st == DPT_OK) st = dpt_alloc((size_t)(k * d), sizeof *C, "rbf fit: centers", &C);
  if (st == DPT_OK) st = dpt_alloc((size_t)k, sizeof *w, "rbf fit: widths", &w);
  DPT_TRY(dpt_comm_agree(c, st));
  for (size_t i = 0; i < (size_t)(count * d); ++i) Xd[i] = dpt_vec_get(t, X, i);
  dpt_rbf_data data = {.X = Xd, .count = count, .begin = begin, .n = n, .d = d};
  DPT_TRY(dpt_rbf_place(c, &data, &o, seed, C, w));
  void *params = dpt_model_params(m);
  for (int64_t i = 0; i < k * d; ++i) dpt_vec_set(t, params, ci.offset + (size_t)i, C[i]);
  for (int64_t i = 0; i < k; ++i) dpt_vec_set(t, params, wi.offset + (size_t)i, w[i]);

  /* step 2: the output weights, centers and widths fixed */
  dpt_param_info Wi, bi;
  bool closed = dpt_model_output(m) == DPT_OUTPUT_IDENTITY && dpt_model_loss(m) == DPT_LOSS_L2 &&
                find_tensor(m, "layer_1/W", &Wi) >= 0 && find_tensor(m, "layer_1/b", &bi) >= 0 &&
                dpt_model_num_tensors(m) == 4 && Wi.ndim == 2 && Wi.shape[0] == nout && Wi.shape[1] == k;
  if (closed) {
    /* identity + ℓ2 after one dense layer: linear least squares on Φ = (1, y_0..y_{k−1}) */
    st = dpt_alloc((size_t)(count * nout), sizeof *Y, "rbf fit: targets in float64", &Y);
    if (st == DPT_OK) st = dpt_alloc((size_t)((k + 1) * nout), sizeof *W, "rbf fit: output weights", &W);
    if (st == DPT_OK && !y->values)
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                         "rbf fit: identity output needs regression targets (values)");
    DPT_TRY(dpt_comm_agree(c, st));
    for (size_t i = 0; i < (size_t)(count * nout); ++i) Y[i] = dpt_vec_get(t, y->values, i);
    DPT_TRY(dpt_rbf_lstsq(c, &data, Y, nout, C, w, k, o.ridge, W, &info->rank));
    /* W̃ [k + 1, m]: row 0 the bias, row 1 + i unit i  →  b [m], W [m, k] */
    for (int64_t j = 0; j < nout; ++j) {
      dpt_vec_set(t, params, bi.offset + (size_t)j, W[j]);
      for (int64_t i = 0; i < k; ++i) dpt_vec_set(t, params, Wi.offset + (size_t)(j * k + i), W[(1 + i) * nout + j]);
    }
    info->closed_form = true;
  } else {
    DPT_TRY(fit_gd(c, m, X, y, count, n, ci.offset, ci.count + wi.count, o.fit_epochs, o.fit_lr));
    info->gd_steps = o.fit_epochs;
  }
  DPT_TRY(mean_loss(c, m, X, y, count, n, &info->loss));
  if (info->frozen_count) {
    st = dpt_alloc(info->frozen_count, dpt_dtype_size(t), "rbf fit: frozen centers and widths", &info->frozen_values);
    DPT_TRY(dpt_comm_agree(c, st));
    dpt_vec_copy(t, info->frozen_count, dpt_elem(t, params, info->frozen_offset), info->frozen_values);
  }
done:
  dpt_free(&Xd);
  dpt_free(&C);
  dpt_free(&w);
  dpt_free(&Y);
  dpt_free(&W);
  return st;
}

void dpt_rbf_fit_info_free(dpt_rbf_fit_info *info) { dpt_free(&info->frozen_values); }

void dpt_rbf_hold_grads(const dpt_rbf_fit_info *info, dpt_dtype t, void *grads) {
  if (info->frozen_count) dpt_vec_zero(t, info->frozen_count, dpt_elem(t, grads, info->frozen_offset));
}

void dpt_rbf_hold_params(const dpt_rbf_fit_info *info, dpt_dtype t, void *params) {
  if (info->frozen_count && info->frozen_values)
    dpt_vec_copy(t, info->frozen_count, info->frozen_values, dpt_elem(t, params, info->frozen_offset));
}

dpt_status dpt_rbf_fit_dataset(const dpt_comm *c, dpt_model *m, dpt_config *cfg, dpt_dataset *ds, uint64_t seed,
                               dpt_rbf_fit_info *info) {
  memset(info, 0, sizeof *info);
  dpt_param_info ci;
  if (find_tensor(m, "layer_0/centers", &ci) < 0) return DPT_OK; /* the same answer on every rank */
  const dpt_dtype t = dpt_model_dtype(m);
  const int64_t n = dpt_dataset_rows(ds), d = dpt_dataset_features(ds), k = dpt_dataset_outputs(ds);
  const bool labels = dpt_dataset_task(ds) != DPT_TASK_REGRESSION;
  int64_t begin, count;
  dpt_shard_range(n, c->size, c->rank, &begin, &count);
  dpt_status st = DPT_OK;
  int64_t *rows = NULL;
  void *X = NULL, *values = NULL;
  int32_t *lab = NULL;
  st = dpt_alloc((size_t)count, sizeof *rows, "rbf fit: row ids", &rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)(count * d), dpt_dtype_size(t), "rbf fit: training rows", &X);
  if (st == DPT_OK && labels) st = dpt_alloc((size_t)count, sizeof *lab, "rbf fit: labels", &lab);
  if (st == DPT_OK && !labels) st = dpt_alloc((size_t)(count * k), dpt_dtype_size(t), "rbf fit: targets", &values);
  DPT_TRY(dpt_comm_agree(c, st));
  for (int64_t i = 0; i < count; ++i) rows[i] = begin + i;
  DPT_TRY(dpt_comm_agree(c, dpt_dataset_read_rows(ds, rows, count, t, X, lab, values)));
  dpt_targets y = {lab, values};
  DPT_TRY(dpt_rbf_fit(c, m, cfg, X, &y, count, begin, n, seed, info));
done:
  dpt_free(&rows);
  dpt_free(&X);
  dpt_free(&lab);
  dpt_free(&values);
  return st;
}

dpt_status dpt_rbf_fit_resume(dpt_model *m, dpt_config *cfg, dpt_rbf_fit_info *info) {
  memset(info, 0, sizeof *info);
  dpt_param_info ci, wi;
  if (find_tensor(m, "layer_0/centers", &ci) < 0) return DPT_OK;
  DPT_CHECK(find_tensor(m, "layer_0/widths", &wi) >= 0 && wi.offset == ci.offset + ci.count, DPT_ERR_INTERNAL,
            "rbf resume: layer_0/widths does not follow layer_0/centers in the flat buffer");
  dpt_rbf_options o;
  DPT_CALL(dpt_rbf_options_read(cfg, "layer.0", ci.shape[0], &o));
  const dpt_dtype t = dpt_model_dtype(m);
  info->has_rbf = true;
  info->learn = o.learn;
  info->frozen_offset = ci.offset;
  info->frozen_count = o.learn == DPT_RBF_LEARN_2STEP ? ci.count + wi.count : 0;
  info->loss = NAN;
  if (info->frozen_count) {
    DPT_CALL(dpt_alloc(info->frozen_count, dpt_dtype_size(t), "rbf resume: frozen centers and widths",
                       &info->frozen_values));
    dpt_vec_copy(t, info->frozen_count, dpt_elem(t, dpt_model_params(m), info->frozen_offset), info->frozen_values);
  }
  return DPT_OK;
}

/* ops.c — the built-in operators' rules (graph.h): linear, act, maxout.
 * The linear map is dtype-generic through dpt_gemm; the elementwise rules come from
 * ops_kernels.inc, included once per dtype. */
#include <string.h>

#include "dptrain/activation.h"
#include "dptrain/graph.h"

/* Elements between d1 and d2 in an act node's aux (its capacity in rows). */
static size_t aux_stride(const dpt_graph *g, const dpt_node *y) {
  return (size_t)((y->batch_rows ? g->capacity : y->rows) * y->cols);
}

#define T float
#define FN(name) name##_f32
#define ACT_EVAL dpt_act_eval_f32
#include "tensor_kernels.inc"
#include "ops_kernels.inc"
#undef T
#undef FN
#undef ACT_EVAL
#define T double
#define FN(name) name##_f64
#define ACT_EVAL dpt_act_eval_f64
#include "tensor_kernels.inc"
#include "ops_kernels.inc"
#undef T
#undef FN
#undef ACT_EVAL

DPT_OP_BY_DTYPE(act_forward)
DPT_OP_BY_DTYPE(act_vjp)
DPT_OP_BY_DTYPE(act_jvp)
DPT_OP_BY_DTYPE(act_vjp_tangent)
DPT_OP_BY_DTYPE(maxout_forward)
DPT_OP_BY_DTYPE(maxout_vjp)
DPT_OP_BY_DTYPE(maxout_jvp)
DPT_OP_BY_DTYPE(maxout_vjp_tangent)

static size_t act_aux(const dpt_graph *g, const dpt_node *y, int64_t rows) {
  return 2 * (size_t)(rows * y->cols) * dpt_dtype_size(g->dtype);
}
static size_t maxout_aux(const dpt_graph *g, const dpt_node *y, int64_t rows) {
  (void)g;
  return (size_t)(rows * y->cols) * sizeof(int32_t);
}

const dpt_op dpt_op_act = {"act", act_forward, act_vjp, act_jvp, act_vjp_tangent, act_aux};
const dpt_op dpt_op_maxout = {"maxout", maxout_forward, maxout_vjp, maxout_jvp, maxout_vjp_tangent, maxout_aux};

/* ---- linear: y[n, out] = x[n, in] W[out, in]^T + b --------------------------------------- */

static dpt_status linear_forward(dpt_graph *g, dpt_node *y) {
  dpt_node *x = dpt_graph_in(g, y, 0), *W = dpt_graph_in(g, y, 1);
  int64_t n = y->rows, out = y->cols, in = x->cols;
  double beta = 0;
  if (y->n_in > 2) {
    dpt_rows_set(g->dtype, n, out, dpt_graph_in(g, y, 2)->value, y->value);
    beta = 1;
  }
  dpt_gemm(g->dtype, false, true, n, out, in, 1.0, x->value, in, W->value, in, beta, y->value, out);
  return DPT_OK;
}

/* x̄ += ȳ W;  W̄ += ȳ^T x;  b̄ += Σ_rows ȳ */
static dpt_status linear_vjp(dpt_graph *g, dpt_node *y) {
  dpt_node *x = dpt_graph_in(g, y, 0), *W = dpt_graph_in(g, y, 1);
  int64_t n = y->rows, out = y->cols, in = x->cols;
  if (x->grad) dpt_gemm(g->dtype, false, false, n, in, out, 1.0, y->grad, out, W->value, in, 1.0, x->grad, in);
  if (W->grad) dpt_gemm(g->dtype, true, false, out, in, n, 1.0, y->grad, out, x->value, in, 1.0, W->grad, in);
  if (y->n_in > 2 && dpt_graph_in(g, y, 2)->grad) dpt_colsum_add(g->dtype, n, out, y->grad, dpt_graph_in(g, y, 2)->grad);
  return DPT_OK;
}

/* ẏ = ẋ W^T + x Ẇ^T + ḃ */
static dpt_status linear_jvp(dpt_graph *g, dpt_node *y) {
  dpt_node *x = dpt_graph_in(g, y, 0), *W = dpt_graph_in(g, y, 1);
  int64_t n = y->rows, out = y->cols, in = x->cols;
  double beta = 0;
  if (y->n_in > 2 && dpt_graph_in(g, y, 2)->has_tangent) {
    dpt_rows_set(g->dtype, n, out, dpt_graph_in(g, y, 2)->tangent, y->tangent);
    beta = 1;
  }
  if (x->has_tangent) {
    dpt_gemm(g->dtype, false, true, n, out, in, 1.0, x->tangent, in, W->value, in, beta, y->tangent, out);
    beta = 1;
  }
  if (W->has_tangent) {
    dpt_gemm(g->dtype, false, true, n, out, in, 1.0, x->value, in, W->tangent, in, beta, y->tangent, out);
    beta = 1;
  }
  if (beta == 0) dpt_vec_zero(g->dtype, (size_t)(n * out), y->tangent);
  return DPT_OK;
}

/* Differentiating the three backward lines along (ẋ, Ẇ, ḃ) with ȳ -> ȳ + ε R{ȳ}:
 *   R{x̄} += R{ȳ} W + ȳ Ẇ;   R{W̄} += R{ȳ}^T x + ȳ^T ẋ;   R{b̄} += Σ_rows R{ȳ} */
static dpt_status linear_vjp_tangent(dpt_graph *g, dpt_node *y) {
  dpt_node *x = dpt_graph_in(g, y, 0), *W = dpt_graph_in(g, y, 1);
  int64_t n = y->rows, out = y->cols, in = x->cols;
  dpt_dtype t = g->dtype;
  if (x->grad_tangent) {
    dpt_gemm(t, false, false, n, in, out, 1.0, y->grad_tangent, out, W->value, in, 1.0, x->grad_tangent, in);
    if (W->has_tangent) dpt_gemm(t, false, false, n, in, out, 1.0, y->grad, out, W->tangent, in, 1.0, x->grad_tangent, in);
  }
  if (W->grad_tangent) {
    dpt_gemm(t, true, false, out, in, n, 1.0, y->grad_tangent, out, x->value, in, 1.0, W->grad_tangent, in);
    if (x->has_tangent) dpt_gemm(t, true, false, out, in, n, 1.0, y->grad, out, x->tangent, in, 1.0, W->grad_tangent, in);
  }
  if (y->n_in > 2 && dpt_graph_in(g, y, 2)->grad_tangent)
    dpt_colsum_add(t, n, out, y->grad_tangent, dpt_graph_in(g, y, 2)->grad_tangent);
  return DPT_OK;
}

const dpt_op dpt_op_linear = {"linear", linear_forward, linear_vjp, linear_jvp, linear_vjp_tangent, NULL};

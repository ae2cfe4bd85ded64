/* loss.c — fused output activation + loss operators (see loss.h). */
#include "dptrain/loss.h"

#include <math.h>

const char *const dpt_loss_names[] = {"l2", "bce", "ce", NULL};
const char *const dpt_output_names[] = {"identity", "sigmoid", "softmax", NULL};

dpt_loss_kind dpt_loss_for_output(dpt_output o) { return (dpt_loss_kind)o; }
dpt_output dpt_output_for_loss(dpt_loss_kind l) { return (dpt_output)l; }

#define T float
#define FN(name) name##_f32
#include "loss_kernels.inc"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "loss_kernels.inc"
#undef T
#undef FN

DPT_OP_BY_DTYPE(loss_forward)
DPT_OP_BY_DTYPE(loss_vjp)
DPT_OP_BY_DTYPE(loss_jvp)
DPT_OP_BY_DTYPE(loss_vjp_tangent)

/* ρ or σ for every element of z: as many rows as z holds (the loss node itself is 1 x 1). */
static size_t loss_aux(const dpt_graph *g, const dpt_node *y, int64_t rows) {
  (void)rows;
  const dpt_node *z = &g->nodes[y->in[0]];
  return (size_t)((z->batch_rows ? g->capacity : z->rows) * z->cols) * dpt_dtype_size(g->dtype);
}

const dpt_op dpt_op_loss = {"loss", loss_forward, loss_vjp, loss_jvp, loss_vjp_tangent, loss_aux};

void dpt_output_apply(dpt_output o, dpt_dtype t, int64_t n, int64_t k, const void *z, void *out) {
  if (t == DPT_F32)
    output_apply_f32(o, n, k, z, out);
  else
    output_apply_f64(o, n, k, z, out);
}

int64_t dpt_output_correct(dpt_output o, dpt_dtype t, int64_t n, int64_t k, const void *z, const int32_t *labels) {
  return t == DPT_F32 ? output_correct_f32(o, n, k, z, labels) : output_correct_f64(o, n, k, z, labels);
}

double dpt_loss_row(dpt_loss_kind kind, int64_t k, const double *z, int32_t label, const double *y, double *g,
                    const double *v, double *Hv) {
  double l = 0;
  if (kind == DPT_LOSS_L2) {
    for (int64_t j = 0; j < k; ++j) {
      double d = z[j] - y[j];
      l += d * d;
      if (g) g[j] = 2 * d;
      if (Hv) Hv[j] = 2 * v[j];
    }
  } else if (kind == DPT_LOSS_BCE) {
    double ez = exp(-fabs(z[0])), s = z[0] >= 0 ? 1 / (1 + ez) : ez / (1 + ez);
    l = fmax(z[0], 0.0) - label * z[0] + log1p(ez);
    /* σ(z) − 1 = −σ(−z): the second form keeps the relative accuracy for large z */
    if (g) g[0] = label == 1 ? -(z[0] >= 0 ? ez / (1 + ez) : 1 / (1 + ez)) : s;
    if (Hv) Hv[0] = s * (1 - s) * v[0];
  } else {
    double m = z[0], s = 0, pv = 0;
    for (int64_t j = 1; j < k; ++j) m = fmax(m, z[j]);
    for (int64_t j = 0; j < k; ++j) s += exp(z[j] - m);
    l = m + log(s) - z[label];
    for (int64_t j = 0; j < k; ++j) pv += exp(z[j] - m) / s * (v ? v[j] : 0);
    for (int64_t j = 0; j < k; ++j) {
      double p = exp(z[j] - m) / s;
      if (g) g[j] = p - (j == label);
      if (Hv) Hv[j] = p * (v[j] - pv);
    }
  }
  return l;
}

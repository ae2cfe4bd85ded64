/* loss.h — output activations fused with their loss, in numerically stable form.
 *
 * Notation: z[n, k] logits (the output layer's affine map), per-row loss ℓ_r, and
 *   L = scale * Σ_r ℓ_r      (scale = 1 / n_global makes L the mean over the global batch)
 *
 *   l2   (output identity, regression):  ℓ = Σ_j (y_j − z_j)²      — the seed's ℓ2, no ½
 *        ∂ℓ/∂z = 2 (z − y),  ∂²ℓ/∂z² = 2 I
 *   bce  (output sigmoid, binary, k = 1): ℓ = −t log σ(z) − (1−t) log(1−σ(z))
 *        = max(z, 0) − t z + log1p(e^{−|z|})   (finite for every finite z)
 *        ∂ℓ/∂z = σ(z) − t,  ∂²ℓ/∂z² = σ(z)(1 − σ(z))
 *   ce   (output softmax, multiclass):    ℓ = lse(z) − z_t,  lse(z) = m + log Σ_j e^{z_j − m}, m = max_j z_j
 *        ∂ℓ/∂z = ρ − e_t,  ∂²ℓ/∂z² = diag(ρ) − ρ ρ^T   (ρ = softmax(z); Jacobian ρ_i(δ_ij − ρ_j))
 *
 * The loss operator dpt_op_loss is a graph operator (graph.h) with one input (z) and a
 * scalar output; it reads g->run.y (targets) and g->run.scale. Its forward checks the
 * labels (binary: 0 or 1; multiclass: 0..k−1) and fails with DPT_ERR_INPUT naming the row. */
#ifndef DPTRAIN_LOSS_H
#define DPTRAIN_LOSS_H

#include <stdint.h>
#include "dptrain/graph.h"
#include "dptrain/types.h"

typedef enum dpt_loss_kind { DPT_LOSS_L2 = 0, DPT_LOSS_BCE = 1, DPT_LOSS_CE = 2 } dpt_loss_kind;
typedef enum dpt_output { DPT_OUTPUT_IDENTITY = 0, DPT_OUTPUT_SIGMOID = 1, DPT_OUTPUT_SOFTMAX = 2 } dpt_output;

/* Config names, NULL-terminated, in enum order. */
extern const char *const dpt_loss_names[];   /* "l2", "bce", "ce" */
extern const char *const dpt_output_names[]; /* "identity", "sigmoid", "softmax" */
/* The loss that fits an output (identity→l2, sigmoid→bce, softmax→ce), and the reverse. */
dpt_loss_kind dpt_loss_for_output(dpt_output o);
dpt_output dpt_output_for_loss(dpt_loss_kind l);

typedef struct dpt_loss_attr {
  dpt_loss_kind kind;
} dpt_loss_attr;

extern const dpt_op dpt_op_loss;

/* out[n, k] = output activation of z (identity, σ, or softmax per row). out may alias z. */
void dpt_output_apply(dpt_output o, dpt_dtype t, int64_t n, int64_t k, const void *z, void *out);
/* Rows whose prediction equals the label: binary z > 0 ⇔ class 1; multiclass arg-max
 * (ties: lowest index). Regression: 0. labels may be NULL (then 0). */
int64_t dpt_output_correct(dpt_output o, dpt_dtype t, int64_t n, int64_t k, const void *z, const int32_t *labels);

/* Scalar reference of one row's loss in double (tests and gradcheck): ℓ and, when not
 * NULL, g[k] = ∂ℓ/∂z and Hv[k] = (∂²ℓ/∂z²) v. label used by bce/ce, y[k] by l2. */
double dpt_loss_row(dpt_loss_kind kind, int64_t k, const double *z, int32_t label, const double *y, double *g,
                    const double *v, double *Hv);

#endif

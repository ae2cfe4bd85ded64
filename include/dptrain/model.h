/* model.h — a feed-forward network built from layers on the engine's graph, with all
 * parameters in one flat buffer and all gradients in a second one of the same layout.
 *
 * Config ([model] and [layer.N], read by dpt_model_create before any work):
 *   model.layers     = 64,64        hidden widths (may be empty: a linear model); each >= 1
 *   model.activation = tanh         hidden activation (activation.h names)
 *   model.output     = identity|sigmoid|softmax   default from the task (regression, binary,
 *                      multiclass); must fit the task
 *   model.loss       = l2|bce|ce    default from the output; must fit it (loss.h)
 *   model.init       = he|xavier|normal   default he for the ReLU family (relu, leaky_relu,
 *                      prelu, elu, selu, gelu, silu, softplus), xavier otherwise. Any other
 *                      value is a model file (`train --init FILE`, read by the checkpoint
 *                      module after dpt_model_init_params): the draws use the default.
 *   [layer.N], N = 0 .. H (H = number of hidden layers; layer.H is the output layer):
 *     type = dense (default) | maxout | activation (| rbf when that layer type is linked)
 *     units (hidden layers; overrides model.layers[N]), activation (hidden dense layers),
 *     pieces (maxout, k >= 2), <activation>.<param> (e.g. prelu.alpha, soboleva.a .. d,
 *     elu.alpha; also accepted in [model] as the default of every layer), per_unit (bool,
 *     parameters per unit; default model.per_unit, false),
 *     learn (bool: learned parameters; default model.learn, else true for prelu and false
 *     otherwise),
 *     weights = w1,w2,...  bias = b1,...  explicit initial values (row-major [out, in] and
 *     [out]; the count must match the shape).
 *
 * Initialization (dpt_model_init_params): deterministic in the seed alone. Weight element
 * i of parameter tensor t is a standard normal from Box–Muller on two uniforms drawn from
 * splitmix64 of (seed, t, i) (counter-based: no state, independent of order and rank;
 * dpt_rng_normal in layer.h), times the standard deviation
 *   he: sqrt(2 / fan_in),  xavier: sqrt(2 / (fan_in + fan_out)),  normal: model.init_std
 *   (default 0.01);
 * biases 0; activation parameters their configured values (table defaults); explicit
 * weights/bias from the config replace the draws.
 *
 * Flat layout (checkpoints and model files use it): tensors are ordered so that the
 * backward pass finalizes them front to back — the output layer first, layer 0 last; within
 * a layer, learned activation parameters first, then W, then b. Names are "layer_N/W"
 * ([out, in], row-major), "layer_N/b" ([out]), "layer_N/<activation>" ([nparams] or
 * [nparams, units] per unit, e.g. "layer_1/prelu"). dpt_model_tensor_info lists them in
 * flat order (offsets increasing).
 *
 * Ownership: dpt_model_create allocates; dpt_model_destroy(&m) frees everything (the
 * buffers returned by dpt_model_params / dpt_model_grads are owned by the model and valid
 * until it is destroyed). The config is only read during create. Not collective. */
#ifndef DPTRAIN_MODEL_H
#define DPTRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "dptrain/config.h"
#include "dptrain/graph.h"
#include "dptrain/loss.h"
#include "dptrain/types.h"

typedef struct dpt_model dpt_model;

/* One parameter tensor of the flat buffer. */
typedef struct dpt_param_info {
  char name[64];     /* "layer_0/W" */
  size_t offset;     /* first element in the flat buffer */
  size_t count;      /* elements */
  int ndim;          /* 1 or 2 */
  int64_t shape[4];  /* W: [out, in]; b: [out] */
  int layer;         /* N of layer_N */
} dpt_param_info;

dpt_status dpt_model_create(dpt_config *cfg, dpt_dtype dtype, int64_t n_in, int64_t n_out, dpt_task task,
                            dpt_model **out);
/* The same, refused before anything of a layer's size is allocated when the config describes
 * more than max_params parameters (max_params > 0): a model file bounds the model its config
 * may describe by the values the file holds (modelfile.c). */
dpt_status dpt_model_create_bounded(dpt_config *cfg, dpt_dtype dtype, int64_t n_in, int64_t n_out, dpt_task task,
                                    int64_t max_params, dpt_model **out);
void dpt_model_destroy(dpt_model **m);

dpt_dtype dpt_model_dtype(const dpt_model *m);
int64_t dpt_model_inputs(const dpt_model *m);
int64_t dpt_model_outputs(const dpt_model *m);
dpt_loss_kind dpt_model_loss(const dpt_model *m);
dpt_output dpt_model_output(const dpt_model *m);

size_t dpt_model_num_params(const dpt_model *m);
void *dpt_model_params(dpt_model *m); /* flat [num_params] buffer in dtype, owned by the model */
void *dpt_model_grads(dpt_model *m);  /* flat [num_params] gradient buffer, owned by the model */
int dpt_model_num_tensors(const dpt_model *m);
void dpt_model_tensor_info(const dpt_model *m, int i, dpt_param_info *info);

dpt_status dpt_model_init_params(dpt_model *m, uint64_t seed);
dpt_status dpt_model_zero_grads(dpt_model *m);

/* X [n, n_in] in dtype. loss += scale * sum over rows of per-row loss; grads += scale * its
 * gradient. ready(ctx, offset, count) is called during the backward pass as soon as
 * grads[offset, offset+count) is final (last layer first: offsets increase), once per
 * parameter tensor, so buckets can be reduced while the backward pass goes on; ready may
 * be NULL. n may be 0 (loss and grads unchanged, ready still called for every tensor).
 * The graph is built for the largest n seen so far (at most 4096 rows: larger n are
 * processed in chunks of 4096 rows whose sums add up, which bounds the memory of
 * full-batch passes); smaller n reuse it (no allocation). The same holds for the passes
 * below. Rows in error messages are counted from the first row of X. */
dpt_status dpt_model_forward_backward(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale,
                                      double *loss, dpt_grad_ready_fn ready, void *ctx);
/* The same without the ready callback, accumulating into grads [num_params] in dtype
 * (borrowed for the call) instead of the model's own buffer (exact mode's leaf buffers,
 * reduce.h). */
dpt_status dpt_model_forward_backward_into(dpt_model *m, void *grads, const void *X, const dpt_targets *y, int64_t n,
                                           double scale, double *loss);
/* Forward only: loss += (as above); when correct != NULL, *correct += the count of correctly
 * classified rows (classification; 0 for regression); out (may be NULL) gets [n, n_out]
 * outputs after the output activation. y may be NULL when loss == NULL. */
dpt_status dpt_model_evaluate(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale,
                              double *loss, int64_t *correct, void *out);
/* Seconds spent in the forward and in the backward pass of dpt_model_forward_backward since
 * the previous call (the training loop's phase timers); resets both. */
void dpt_model_take_pass_times(dpt_model *m, double *forward_s, double *backward_s);
/* Forward mode: *dloss += scale * (∇ Σ_rows ℓ) · v, v [num_params] in dtype. */
dpt_status dpt_model_jvp(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale,
                         const void *v, double *dloss);
/* hv += scale * (H v) where H is the Hessian of the summed loss over these rows w.r.t. the
 * flat parameters (forward-over-reverse, exact); v and hv are [num_params] in dtype.
 * The gradient buffer is not touched. */
dpt_status dpt_model_hvp(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale,
                         const void *v, void *hv);

#endif

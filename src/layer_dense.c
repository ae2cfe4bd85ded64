/* layer_dense.c — the dense, maxout and activation layer types (layer.h).
 *
 *   dense       y = f(x W^T + b)            W [out, in], b [out], f the layer's activation
 *                                           (the output layer: f = identity; the output
 *                                           activation is fused with the loss, loss.h)
 *   maxout      y_c = max_j (x W^T + b)_{c k + j}, j < k    W [units k, in], b [units k]
 *   activation  y = f(x)                    no weights; f may have learned parameters */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/activation.h"
#include "dptrain/layer.h"

typedef struct affine {
  dpt_layer_act act;
  dpt_act_attr attr;
  dpt_maxout_attr maxout;
  int64_t units, rows; /* units after the layer; rows of W (units * pieces for maxout) */
  int W, b;            /* indices into L->params */
  double *w_init, *b_init; /* explicit initial values from the config, or NULL (owned) */
} affine;

static void affine_destroy(dpt_layer *L) {
  affine *a = L->priv;
  if (!a) return;
  dpt_layer_act_free(&a->act);
  dpt_free(&a->w_init);
  dpt_free(&a->b_init);
  dpt_free(&L->priv);
}

/* Reads "<section>.<name> = v1,v2,..." when given: exactly count values. */
static dpt_status read_values(dpt_config *cfg, const dpt_layer *L, const char *name, size_t count,
                              const char *shape, double **out) {
  char key[96];
  snprintf(key, sizeof key, "%s.%s", L->section, name);
  *out = NULL;
  if (!dpt_config_has(cfg, key)) return DPT_OK;
  /* A value is one line of the saved config (config.c: under 200 characters), so a list is
   * short; 512 bounds the allocation before the list is read. */
  DPT_CHECK(count <= 512, DPT_ERR_INPUT, "%s: explicit values are for small layers: %s has %zu elements (at most 512)",
            key, shape, count);
  double *v;
  int n;
  DPT_CALL(dpt_alloc(count + 1, sizeof *v, key, &v));
  dpt_status st = dpt_config_get_double_list(cfg, key, NULL, v, (int)count + 1, &n);
  if (st == DPT_OK && (size_t)n != count)
    st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "%s: expected %zu values (shape %s), got %d", key,
                       count, shape, n);
  if (st != DPT_OK) {
    dpt_free(&v);
    dpt_error_push(__FILE__, __LINE__, __func__);
    return st;
  }
  *out = v;
  return DPT_OK;
}

/* Width of a hidden layer: <section>.units, default from model.layers. */
static dpt_status read_units(dpt_layer *L, dpt_config *cfg, int64_t *units) {
  char key[96];
  snprintf(key, sizeof key, "%s.units", L->section);
  DPT_CALL(dpt_config_get_int(cfg, key, L->n_out, 1, (int64_t)1 << 30, units));
  return DPT_OK;
}

static dpt_status affine_configure(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d, bool maxout) {
  affine *a;
  DPT_CALL(dpt_calloc(1, sizeof *a, "layer", &a));
  L->priv = a;
  char key[96];
  int64_t pieces = 1;
  if (L->is_output) {
    a->units = L->n_out;
  } else {
    DPT_CALL(read_units(L, cfg, &a->units));
    if (maxout) {
      snprintf(key, sizeof key, "%s.pieces", L->section);
      DPT_CALL(dpt_config_get_int(cfg, key, 2, 2, 1024, &pieces));
    }
  }
  a->maxout.pieces = pieces;
  a->rows = a->units * pieces;
  /* W's size before anything is allocated per unit (a per-unit activation's values) */
  DPT_CHECK(L->n_in > 0 && a->rows <= INT_MAX / L->n_in, DPT_ERR_INPUT,
            "%s%s: %lld units (x %lld pieces) of %lld inputs: expected a weight matrix of at most %d elements "
            "(the int BLAS takes)", L->section, L->is_output ? " (the output layer)" : ".units", (long long)a->units,
            (long long)pieces, (long long)L->n_in, INT_MAX);
  DPT_CHECK(d->max_params <= 0 || a->rows <= d->max_params / (L->n_in + 1), DPT_ERR_INPUT,
            "%s: %lld units (x %lld pieces) of %lld inputs: expected at most %lld parameters in all", L->section,
            (long long)a->units, (long long)pieces, (long long)L->n_in, (long long)d->max_params);
  if (L->is_output || maxout)
    DPT_CALL(dpt_layer_read_act(L, cfg, d, DPT_ACT_IDENTITY, false, a->units, &a->act));
  else
    DPT_CALL(dpt_layer_read_act(L, cfg, d, d->act, true, a->units, &a->act));
  L->n_out = a->units;
  DPT_CALL(dpt_layer_act_declare(L, &a->act, a->units));
  DPT_CALL(dpt_layer_add_param(L, "W", a->rows, L->n_in, &a->W));
  DPT_CALL(dpt_layer_add_param(L, "b", a->rows, 0, &a->b));
  char shape[64];
  snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)a->rows, (long long)L->n_in);
  DPT_CALL(read_values(cfg, L, "weights", L->params[a->W].count, shape, &a->w_init));
  snprintf(shape, sizeof shape, "[%lld]", (long long)a->rows);
  DPT_CALL(read_values(cfg, L, "bias", L->params[a->b].count, shape, &a->b_init));
  return DPT_OK;
}

static dpt_status dense_configure(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d) {
  return affine_configure(L, cfg, d, false);
}
static dpt_status maxout_configure(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d) {
  DPT_CHECK(!L->is_output, DPT_ERR_INPUT, "%s.type: the output layer must be dense (or rbf), got maxout", L->section);
  return affine_configure(L, cfg, d, true);
}

/* Init of the affine layers: W ~ N(0, std²) by model.init, b = 0, explicit values win. The
 * weight's fan-out is the layer's rows (units * pieces). */
static dpt_status affine_init(dpt_layer *L, void *params, uint64_t seed) {
  affine *a = L->priv;
  dpt_layer_param *W = &L->params[a->W], *b = &L->params[a->b];
  double std = dpt_init_std(L->defaults.init, L->defaults.init_std, L->n_in, a->rows);
  dpt_layer_fill_normal(L, params, a->W, seed, std);
  dpt_vec_zero(L->dtype, b->count, dpt_elem(L->dtype, params, b->offset));
  if (a->w_init)
    for (size_t i = 0; i < W->count; ++i) dpt_vec_set(L->dtype, params, W->offset + i, a->w_init[i]);
  if (a->b_init)
    for (size_t i = 0; i < b->count; ++i) dpt_vec_set(L->dtype, params, b->offset + i, a->b_init[i]);
  dpt_layer_act_init(L, &a->act, params, a->units);
  return DPT_OK;
}

static dpt_status affine_build(dpt_layer *L, dpt_graph *g, int input, int *output, bool maxout) {
  affine *a = L->priv;
  int in[3] = {input, -1, -1}, z;
  DPT_CALL(dpt_layer_param_node(L, g, a->W, &in[1]));
  DPT_CALL(dpt_layer_param_node(L, g, a->b, &in[2]));
  DPT_CALL(dpt_graph_op(g, &dpt_op_linear, in, 3, true, 0, a->rows, false, NULL, &z));
  if (maxout) {
    DPT_CALL(dpt_graph_op(g, &dpt_op_maxout, &z, 1, true, 0, a->units, false, &a->maxout, output));
    return DPT_OK;
  }
  DPT_CALL(dpt_layer_act_build(L, &a->act, &a->attr, g, z, a->units, output));
  return DPT_OK;
}
static dpt_status dense_build(dpt_layer *L, dpt_graph *g, int input, int *output) {
  return affine_build(L, g, input, output, false);
}
static dpt_status maxout_build(dpt_layer *L, dpt_graph *g, int input, int *output) {
  return affine_build(L, g, input, output, true);
}

const dpt_layer_type dpt_layer_dense = {"dense", dense_configure, affine_init, dense_build, affine_destroy};
const dpt_layer_type dpt_layer_maxout = {"maxout", maxout_configure, affine_init, maxout_build, affine_destroy};

/* ---- activation layer ---------------------------------------------------------------- */

typedef struct act_layer {
  dpt_layer_act act;
  dpt_act_attr attr;
} act_layer;

static dpt_status act_configure(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d) {
  DPT_CHECK(!L->is_output, DPT_ERR_INPUT, "%s.type: the output layer must be dense (or rbf), got activation",
            L->section);
  DPT_CHECK(L->n_out == L->n_in, DPT_ERR_INPUT,
            "%s.type: an activation layer keeps its input width %lld, but model.layers gives it %lld", L->section,
            (long long)L->n_in, (long long)L->n_out);
  act_layer *a;
  DPT_CALL(dpt_calloc(1, sizeof *a, "layer", &a));
  L->priv = a;
  DPT_CALL(dpt_layer_read_act(L, cfg, d, d->act, true, L->n_in, &a->act));
  DPT_CALL(dpt_layer_act_declare(L, &a->act, L->n_in));
  return DPT_OK;
}
static dpt_status act_init(dpt_layer *L, void *params, uint64_t seed) {
  (void)seed;
  dpt_layer_act_init(L, &((act_layer *)L->priv)->act, params, L->n_in);
  return DPT_OK;
}
static dpt_status act_build(dpt_layer *L, dpt_graph *g, int input, int *output) {
  act_layer *a = L->priv;
  DPT_CALL(dpt_layer_act_build(L, &a->act, &a->attr, g, input, L->n_in, output));
  return DPT_OK;
}
static void act_destroy(dpt_layer *L) {
  act_layer *a = L->priv;
  if (!a) return;
  dpt_layer_act_free(&a->act);
  dpt_free(&L->priv);
}
const dpt_layer_type dpt_layer_activation = {"activation", act_configure, act_init, act_build, act_destroy};

/* layer.h — the layer interface: how a layer type reads its config, declares its
 * parameter tensors, initializes them and adds its nodes to the graph.
 *
 * Layer types register by name in the table in src/model.c (dense, maxout, activation;
 * the RBF module adds rbf from src/layer_rbf.c by adding one line there). The graph walker
 * knows nothing about layers. A layer type is a small function table; per-layer private
 * data hangs off dpt_layer.priv, owned by the layer (freed by its destroy).
 *
 * Sequence (dpt_model_create): the model fills index, section, n_in, is_output, n_out
 * (output layer: the model's n_out; hidden: from model.layers, 0 when not listed) and the
 * model-wide defaults, then calls configure (reads keys, sets n_out, declares tensors with
 * dpt_layer_add_param in the order their gradients become final in the backward pass);
 * the model then assigns flat offsets; init and build follow. */
#ifndef DPTRAIN_LAYER_H
#define DPTRAIN_LAYER_H

#include <stdbool.h>
#include <stdint.h>
#include "dptrain/config.h"
#include "dptrain/graph.h"
#include "dptrain/types.h"

enum { DPT_LAYER_MAX_PARAMS = 8 };

/* Model-wide settings a layer may use. */
typedef struct dpt_layer_defaults {
  int act;         /* model.activation (dpt_act) */
  int init;        /* DPT_INIT_* */
  double init_std; /* model.init_std */
  int64_t max_params; /* > 0: a layer needing more parameters is refused before it allocates */
} dpt_layer_defaults;

enum { DPT_INIT_HE = 0, DPT_INIT_XAVIER = 1, DPT_INIT_NORMAL = 2 };

typedef struct dpt_layer_param {
  char name[32];    /* after "layer_N/": "W", "b", "prelu" */
  int ndim;
  int64_t shape[2];
  size_t offset, count; /* set by the model */
  int node;             /* PARAM node id, set by build */
} dpt_layer_param;

typedef struct dpt_layer dpt_layer;

typedef struct dpt_layer_type {
  const char *name;
  /* Reads its keys under L->section (and the model defaults), sets L->n_out (>= 1) and
   * declares its parameter tensors. Errors name the key. */
  dpt_status (*configure)(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d);
  /* Writes initial values into its tensors (params is the flat buffer); seed as given to
   * dpt_model_init_params; tensor ids for dpt_rng_normal via L->params[j] order. */
  dpt_status (*init)(dpt_layer *L, void *params, uint64_t seed);
  /* Adds its nodes reading node `input` ([batch, n_in]); *output gets a node [batch, n_out]. */
  dpt_status (*build)(dpt_layer *L, dpt_graph *g, int input, int *output);
  /* Frees L->priv (may be NULL). */
  void (*destroy)(dpt_layer *L);
} dpt_layer_type;

struct dpt_layer {
  const dpt_layer_type *type;
  int index;          /* N */
  char section[32];   /* "layer.N" */
  bool is_output;
  dpt_dtype dtype;
  int64_t n_in, n_out;
  int n_params;
  dpt_layer_param params[DPT_LAYER_MAX_PARAMS];
  int first_tensor;   /* model-wide id of params[0] (for the RNG stream) */
  dpt_layer_defaults defaults; /* model-wide settings (init, activation) */
  void *priv;         /* owned by the layer type */
};

/* Declares a parameter tensor of shape [rows] (cols == 0) or [rows, cols]; *j its index. */
dpt_status dpt_layer_add_param(dpt_layer *L, const char *name, int64_t rows, int64_t cols, int *j);
/* Adds a PARAM node for L->params[j] ([rows, cols]; 1-D tensors as [1, rows]). */
dpt_status dpt_layer_param_node(dpt_layer *L, dpt_graph *g, int j, int *node);

/* Counter-based normal draw: element i of model tensor t for this seed (splitmix64 +
 * Box–Muller). Pure function. */
double dpt_rng_normal(uint64_t seed, uint64_t t, uint64_t i);
/* Fills params tensor j of L with N(0, std²) draws. */
void dpt_layer_fill_normal(dpt_layer *L, void *params, int j, uint64_t seed, double std);
/* The standard deviation of a weight init for fan_in/fan_out. */
double dpt_init_std(int init, double init_std, int64_t fan_in, int64_t fan_out);

/* Activation config shared by layer types: reads <section>.activation (default def_act),
 * the activation's parameters <section>.<act>.<param> (default model.<act>.<param>, then
 * the table default), per_unit and learn. */
typedef struct dpt_layer_act {
  int act;            /* dpt_act */
  int nparams;
  double p[4];        /* values (shared) */
  bool per_unit, learn;
  int param;          /* index into L->params when learned, else -1 */
  void *fixed;        /* [nparams] or [nparams, units] in dtype when not learned (owned) */
} dpt_layer_act;
dpt_status dpt_layer_read_act(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d, int def_act,
                              bool read_key, int64_t units, dpt_layer_act *a);
/* Declares the learned parameter tensor (call in configure, before W/b). */
dpt_status dpt_layer_act_declare(dpt_layer *L, dpt_layer_act *a, int64_t units);
/* Writes the activation's initial parameter values (learned) into params. */
void dpt_layer_act_init(dpt_layer *L, dpt_layer_act *a, void *params, int64_t units);
/* Adds the act node after node x (no node for identity without parameters: *y = x).
 * attr must live as long as the graph. */
dpt_status dpt_layer_act_build(dpt_layer *L, dpt_layer_act *a, dpt_act_attr *attr, dpt_graph *g, int x,
                               int64_t units, int *y);
void dpt_layer_act_free(dpt_layer_act *a);

extern const dpt_layer_type dpt_layer_dense;
extern const dpt_layer_type dpt_layer_maxout;
extern const dpt_layer_type dpt_layer_activation;

#endif

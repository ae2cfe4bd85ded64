/* graph.h — the computational graph: nodes, the operator table, and the walkers
 * (forward, reverse mode, forward mode, exact H·v).
 *
 * The graph is data. A node is {op, inputs, value, grad, tangent, grad_tangent}; an
 * operator is a table entry of rules (dpt_op). The walkers below loop over the nodes and
 * call those rules; they contain no operator-specific code.
 *
 *   forward      value(y) = f(values of inputs)                              (op->forward)
 *   reverse      grad(x_i) += J_i^T grad(y), last node first                   (op->vjp)
 *   forward mode tangent(y) = sum_i J_i tangent(x_i), first node first        (op->jvp)
 *   H·v          Pearlmutter's R-operator (forward over reverse): the reverse pass is
 *                differentiated along the tangent direction. For y = f(x_1..x_k) the
 *                backward line x̄_i += J_i(x)^T ȳ has the directional derivative
 *                R{x̄_i} += J_i(x)^T R{ȳ} + (Σ_j ∂_j J_i(x)[ẋ_j])^T ȳ          (op->vjp_tangent)
 *                With the parameters' tangent = v, R{θ̄} is exactly H·v.
 *
 * Node kinds: INPUT (batch data, value bound per call, no gradient), PARAM (a view of a
 * range of the model's flat parameter buffer; its grad / tangent / grad_tangent are views of
 * the flat gradient / v / hv buffers bound per call), CONST (fixed values owned by the
 * creator, e.g. activation parameters that are not learned), OP.
 *
 * Rows: nodes marked batch_rows have as many rows as the current batch (dpt_graph_set_rows,
 * at most the capacity given to dpt_graph_finalize); their buffers are sized for the
 * capacity, so a short batch needs no allocation. Loss nodes are scalars: their value is
 * node->loss (double) and their tangent node->loss_tangent.
 *
 * Memory: every buffer of every OP node lives in one arena allocated by
 * dpt_graph_finalize (values, grads, op caches) and a second arena for tangents allocated
 * at the first forward-mode or H·v pass; dpt_graph_destroy frees both at once. The steady
 * state (same or smaller batch) allocates nothing.
 *
 * Ownership: dpt_graph_create allocates, dpt_graph_destroy(&g) frees. attr pointers given
 * to dpt_graph_op are borrowed (owned by the layer that built the node, which must outlive
 * the graph). Bound buffers (input values, flat parameter/gradient/v/hv buffers, targets)
 * are borrowed for the duration of the walker call. */
#ifndef DPTRAIN_GRAPH_H
#define DPTRAIN_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dptrain/tensor.h"
#include "dptrain/types.h"

typedef struct dpt_graph dpt_graph;
typedef struct dpt_node dpt_node;

/* Called when grads[offset, offset + count) of the flat buffer is final (comm.h style ready
 * callback for bucketed reductions). */
typedef void (*dpt_grad_ready_fn)(void *ctx, size_t offset, size_t count);

/* Targets of a batch: labels for classification, values for regression. Borrowed. */
typedef struct dpt_targets {
  const int32_t *labels; /* [n] class ids (binary: 0/1, multiclass: 0..k-1), or NULL */
  const void *values;    /* [n, k] float targets in the model dtype (regression), or NULL */
} dpt_targets;

/* An operator: its rules. Each returns DPT_OK or an error (e.g. a label out of range).
 * Rules read g (dtype, current rows, targets, scale, mode) and the nodes' buffers; they
 * never allocate. A rule may skip an input whose grad (grad_tangent) is NULL: nothing
 * upstream needs it. Inputs without a tangent have has_tangent == false. */
typedef struct dpt_op {
  const char *name;
  dpt_status (*forward)(dpt_graph *g, dpt_node *y);     /* y->value (or y->loss) and y->aux */
  dpt_status (*vjp)(dpt_graph *g, dpt_node *y);         /* inputs' grad += J^T y->grad */
  dpt_status (*jvp)(dpt_graph *g, dpt_node *y);         /* y->tangent = J · inputs' tangents */
  dpt_status (*vjp_tangent)(dpt_graph *g, dpt_node *y); /* inputs' grad_tangent += R{J^T ȳ} */
  /* Bytes of per-node cache (aux) for a node with `rows` rows; NULL when none. */
  size_t (*aux_bytes)(const dpt_graph *g, const dpt_node *y, int64_t rows);
} dpt_op;

/* For operator implementations: defines the rule `name` that calls name_f32 or name_f64 (the
 * two instantiations of a kernel file included once per dtype) by the graph's dtype. */
#define DPT_OP_BY_DTYPE(name)                                                                  \
  static dpt_status name(dpt_graph *g, dpt_node *y) {                                          \
    return g->dtype == DPT_F32 ? name##_f32(g, y) : name##_f64(g, y);                          \
  }

typedef enum dpt_node_kind { DPT_NODE_INPUT, DPT_NODE_PARAM, DPT_NODE_CONST, DPT_NODE_OP } dpt_node_kind;

enum { DPT_GRAPH_MAX_INPUTS = 4 };

struct dpt_node {
  dpt_node_kind kind;
  const dpt_op *op; /* OP nodes */
  int in[DPT_GRAPH_MAX_INPUTS];
  int n_in;
  int64_t rows, cols;  /* current shape (rows = batch rows when batch_rows) */
  bool batch_rows;     /* rows follow the batch */
  bool is_loss;        /* scalar output in loss / loss_tangent */
  bool needs_grad;     /* a parameter is upstream (reverse mode computes its grad) */
  bool has_tangent;    /* set by the forward-mode walker */
  void *value;         /* [rows, cols] */
  void *grad;          /* [rows, cols] or NULL */
  void *tangent;       /* [rows, cols] or NULL */
  void *grad_tangent;  /* [rows, cols] or NULL */
  void *aux;           /* op cache, op->aux_bytes */
  const void *attr;    /* op attributes (borrowed) */
  double loss, loss_tangent;
  size_t param_offset, param_count; /* PARAM: range of the flat buffer */
  int first_reader;                 /* PARAM: lowest node id that reads it: the reverse walk
                                       reaches it last, so the grad is final after it */
};

/* Mode flags the rules read. */
typedef struct dpt_graph_run {
  double scale;              /* loss ops: value and gradient scaled by this */
  const dpt_targets *y;      /* loss ops */
  bool want_d2;              /* forward: also cache second derivatives (H·v pass) */
  int64_t row0;              /* index of the first row in the caller's batch (for messages) */
} dpt_graph_run;

struct dpt_graph {
  dpt_dtype dtype;
  int n_nodes, cap_nodes;
  dpt_node *nodes;
  int64_t rows, capacity; /* current batch rows, rows the buffers hold */
  bool finalized;
  void *arena, *tarena;   /* owned */
  dpt_graph_run run;
};

dpt_status dpt_graph_create(dpt_dtype dtype, dpt_graph **out);
void dpt_graph_destroy(dpt_graph **g);

/* Node constructors: *id gets the new node's index (nodes are in topological order:
 * inputs must exist already). Shapes are checked against the BLAS int range. */
dpt_status dpt_graph_input(dpt_graph *g, int64_t cols, int *id);                  /* [batch, cols] */
dpt_status dpt_graph_param(dpt_graph *g, int64_t rows, int64_t cols, size_t offset, int *id);
dpt_status dpt_graph_const(dpt_graph *g, int64_t rows, int64_t cols, const void *value, int *id);
/* An operator node [batch or fixed rows, cols]. */
dpt_status dpt_graph_op(dpt_graph *g, const dpt_op *op, const int *inputs, int n_inputs, bool batch_rows,
                        int64_t rows, int64_t cols, bool is_loss, const void *attr, int *id);

/* Allocates the arena for batches of up to capacity rows (capacity 0 is allowed). */
dpt_status dpt_graph_finalize(dpt_graph *g, int64_t capacity);
/* Sets the current batch rows (n <= capacity). */
dpt_status dpt_graph_set_rows(dpt_graph *g, int64_t n);
/* Binds an INPUT node's values for the next walk ([rows, cols], borrowed). */
void dpt_graph_bind_input(dpt_graph *g, int id, const void *X);
/* Binds the flat buffers: PARAM node p views params + offset; grads, v and hv the same
 * way (any may be NULL: then no PARAM gets that buffer). */
void dpt_graph_bind_flat(dpt_graph *g, void *params, void *grads, const void *v, void *hv);

/* Walkers. forward: every OP node's value, in order. */
dpt_status dpt_graph_forward(dpt_graph *g);
/* Forward for nodes 0 .. last only (e.g. the logits without the loss). */
dpt_status dpt_graph_forward_until(dpt_graph *g, int last);
/* Reverse mode after forward: zeroes the OP nodes' grads, seeds the loss nodes (their rule
 * applies run.scale), walks back; PARAM grads (flat buffer) are accumulated (+=). After the
 * last consumer of a PARAM has run, ready(ctx, offset, count) is called for it (ready may
 * be NULL). PARAMs are announced in the order their gradient becomes final. */
dpt_status dpt_graph_backward(dpt_graph *g, dpt_grad_ready_fn ready, void *ctx);
/* Forward mode after forward: tangents of every node from the PARAMs' tangents (bound v);
 * INPUT and CONST nodes have none. The loss node's loss_tangent = scale * dL·v. */
dpt_status dpt_graph_jvp(dpt_graph *g);
/* H·v: forward (with second derivatives), forward mode, then one reverse walk running
 * vjp and vjp_tangent per node; PARAM grad_tangents (bound hv) accumulate scale * H v.
 * PARAM grads are not touched (bind grads = NULL to skip their computation). */
dpt_status dpt_graph_hvp(dpt_graph *g);

/* The node's input j. */
static inline dpt_node *dpt_graph_in(dpt_graph *g, const dpt_node *y, int j) { return &g->nodes[y->in[j]]; }

/* ---- Built-in operators (src/ops.c) ------------------------------------------------
 * linear   y[n, out] = x[n, in] · W[out, in]^T (+ 1 b[1, out]^T)   inputs x, W (, b)
 *          the dense layer's affine map; all products through dpt_gemm (BLAS).
 * act      y = f(x; p) elementwise, f from the activation table (activation.h)
 *          inputs x (, p: [1, nparams] shared or [nparams, cols] per unit; a PARAM when
 *          learned, a CONST when fixed). attr: dpt_act_attr.
 * maxout   y[n, u] = max_j x[n, u*k + j], j < k (unit c's pieces are the k adjacent
 *          columns c*k .. c*k+k-1). The gradient goes to the arg-max piece only (ties: the
 *          lowest j). attr: dpt_maxout_attr. */
extern const dpt_op dpt_op_linear;
extern const dpt_op dpt_op_act;
extern const dpt_op dpt_op_maxout;

typedef struct dpt_act_attr {
  int act;       /* dpt_act (activation.h) */
  bool per_unit; /* p is [nparams, cols] */
} dpt_act_attr;

typedef struct dpt_maxout_attr {
  int64_t pieces; /* k >= 2 */
} dpt_maxout_attr;

#endif

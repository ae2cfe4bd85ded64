/* graph.c — nodes, arena and the four walkers (see graph.h). No operator-specific code. */
#include "dptrain/graph.h"

#include <stdlib.h>
#include <string.h>

enum { ALIGN = 64 };

static size_t align_up(size_t b) { return (b + ALIGN - 1) / ALIGN * ALIGN; }

dpt_status dpt_graph_create(dpt_dtype dtype, dpt_graph **out) {
  dpt_graph *g;
  DPT_CALL(dpt_calloc(1, sizeof *g, "graph", &g));
  g->dtype = dtype;
  g->run.scale = 1.0;
  *out = g;
  return DPT_OK;
}

void dpt_graph_destroy(dpt_graph **pg) {
  if (!pg || !*pg) return;
  dpt_graph *g = *pg;
  free(g->arena);
  free(g->tarena);
  dpt_free(&g->nodes);
  dpt_free(pg);
}

static dpt_status new_node(dpt_graph *g, dpt_node_kind kind, int64_t rows, int64_t cols, int *id) {
  DPT_CHECK(!g->finalized, DPT_ERR_INTERNAL, "graph: node added after finalize");
  DPT_CALL(dpt_tensor_check_shape(rows, cols, "graph node"));
  if (g->n_nodes == g->cap_nodes) {
    int cap = g->cap_nodes ? 2 * g->cap_nodes : 16;
    dpt_node *nn;
    DPT_CALL(dpt_calloc((size_t)cap, sizeof *nn, "graph nodes", &nn));
    if (g->n_nodes) memcpy(nn, g->nodes, (size_t)g->n_nodes * sizeof *nn);
    dpt_free(&g->nodes);
    g->nodes = nn;
    g->cap_nodes = cap;
  }
  *id = g->n_nodes++;
  dpt_node *n = &g->nodes[*id];
  memset(n, 0, sizeof *n);
  n->kind = kind;
  n->rows = rows;
  n->cols = cols;
  n->first_reader = -1;
  return DPT_OK;
}

dpt_status dpt_graph_input(dpt_graph *g, int64_t cols, int *id) {
  DPT_CALL(new_node(g, DPT_NODE_INPUT, 0, cols, id));
  g->nodes[*id].batch_rows = true;
  return DPT_OK;
}

dpt_status dpt_graph_param(dpt_graph *g, int64_t rows, int64_t cols, size_t offset, int *id) {
  DPT_CALL(new_node(g, DPT_NODE_PARAM, rows, cols, id));
  dpt_node *n = &g->nodes[*id];
  n->needs_grad = true;
  n->param_offset = offset;
  n->param_count = (size_t)(rows * cols);
  return DPT_OK;
}

dpt_status dpt_graph_const(dpt_graph *g, int64_t rows, int64_t cols, const void *value, int *id) {
  DPT_CALL(new_node(g, DPT_NODE_CONST, rows, cols, id));
  g->nodes[*id].value = (void *)value; /* read only: no rule writes a CONST node's value */
  return DPT_OK;
}

dpt_status dpt_graph_op(dpt_graph *g, const dpt_op *op, const int *inputs, int n_inputs, bool batch_rows,
                        int64_t rows, int64_t cols, bool is_loss, const void *attr, int *id) {
  DPT_CHECK(n_inputs >= 1 && n_inputs <= DPT_GRAPH_MAX_INPUTS, DPT_ERR_INTERNAL, "graph: op %s: %d inputs",
            op->name, n_inputs);
  for (int j = 0; j < n_inputs; ++j)
    DPT_CHECK(inputs[j] >= 0 && inputs[j] < g->n_nodes, DPT_ERR_INTERNAL, "graph: op %s: input %d is node %d of %d",
              op->name, j, inputs[j], g->n_nodes);
  DPT_CALL(new_node(g, DPT_NODE_OP, batch_rows ? 0 : rows, cols, id));
  dpt_node *n = &g->nodes[*id];
  n->op = op;
  n->n_in = n_inputs;
  n->batch_rows = batch_rows;
  n->is_loss = is_loss;
  n->attr = attr;
  for (int j = 0; j < n_inputs; ++j) {
    dpt_node *x = &g->nodes[inputs[j]];
    n->in[j] = inputs[j];
    n->needs_grad = n->needs_grad || x->needs_grad;
    if (x->kind == DPT_NODE_PARAM && x->first_reader < 0) x->first_reader = *id;
  }
  return DPT_OK;
}

/* Walks the OP nodes and either measures (base == NULL) or carves the arena. */
static size_t layout(dpt_graph *g, char *base, bool tangents) {
  size_t off = 0, es = dpt_dtype_size(g->dtype);
  for (int i = 0; i < g->n_nodes; ++i) {
    dpt_node *n = &g->nodes[i];
    if (n->kind != DPT_NODE_OP) continue;
    int64_t rows = n->batch_rows ? g->capacity : n->rows;
    size_t bytes = n->is_loss ? 0 : align_up((size_t)(rows * n->cols) * es);
    if (!tangents) {
      if (base) n->value = base + off;
      off += bytes;
      if (n->needs_grad) {
        if (base) n->grad = base + off;
        off += bytes;
      }
      size_t aux = n->op->aux_bytes ? align_up(n->op->aux_bytes(g, n, rows)) : 0;
      if (base) n->aux = aux ? base + off : NULL;
      off += aux;
    } else {
      if (base) n->tangent = base + off;
      off += bytes;
      if (n->needs_grad) {
        if (base) n->grad_tangent = base + off;
        off += bytes;
      }
    }
  }
  return off;
}

static dpt_status arena(dpt_graph *g, bool tangents) {
  size_t bytes = layout(g, NULL, tangents);
  void *p = NULL;
  if (posix_memalign(&p, ALIGN, bytes ? bytes : ALIGN) != 0)
    return dpt_error_set(DPT_ERR_MEMORY, __FILE__, __LINE__, __func__, "graph arena: cannot allocate %zu bytes",
                         bytes);
  memset(p, 0, bytes ? bytes : ALIGN);
  layout(g, p, tangents);
  if (tangents)
    g->tarena = p;
  else
    g->arena = p;
  return DPT_OK;
}

dpt_status dpt_graph_finalize(dpt_graph *g, int64_t capacity) {
  DPT_CHECK(!g->finalized, DPT_ERR_INTERNAL, "graph: finalized twice");
  for (int i = 0; i < g->n_nodes; ++i)
    if (g->nodes[i].batch_rows) DPT_CALL(dpt_tensor_check_shape(capacity, g->nodes[i].cols, "batch"));
  g->capacity = capacity;
  DPT_CALL(arena(g, false));
  g->finalized = true;
  DPT_CALL(dpt_graph_set_rows(g, capacity));
  return DPT_OK;
}

dpt_status dpt_graph_set_rows(dpt_graph *g, int64_t n) {
  DPT_CHECK(n >= 0 && n <= g->capacity, DPT_ERR_INTERNAL, "graph: %lld rows, capacity %lld", (long long)n,
            (long long)g->capacity);
  g->rows = n;
  for (int i = 0; i < g->n_nodes; ++i)
    if (g->nodes[i].batch_rows) g->nodes[i].rows = n;
  return DPT_OK;
}

void dpt_graph_bind_input(dpt_graph *g, int id, const void *X) { g->nodes[id].value = (void *)X; }

void dpt_graph_bind_flat(dpt_graph *g, void *params, void *grads, const void *v, void *hv) {
  dpt_dtype t = g->dtype;
  for (int i = 0; i < g->n_nodes; ++i) {
    dpt_node *n = &g->nodes[i];
    if (n->kind != DPT_NODE_PARAM) continue;
    n->value = params ? dpt_elem(t, params, n->param_offset) : NULL;
    n->grad = grads ? dpt_elem(t, grads, n->param_offset) : NULL;
    n->tangent = v ? (void *)dpt_elem_c(t, v, n->param_offset) : NULL; /* read only during walks */
    n->grad_tangent = hv ? dpt_elem(t, hv, n->param_offset) : NULL;
  }
}

dpt_status dpt_graph_forward(dpt_graph *g) { return dpt_graph_forward_until(g, g->n_nodes - 1); }

dpt_status dpt_graph_forward_until(dpt_graph *g, int last) {
  for (int i = 0; i <= last && i < g->n_nodes; ++i) {
    dpt_node *n = &g->nodes[i];
    if (n->kind == DPT_NODE_OP) DPT_CALL(n->op->forward(g, n));
  }
  return DPT_OK;
}

static void zero_op_buffers(dpt_graph *g, bool grads, bool grad_tangents) {
  size_t es = dpt_dtype_size(g->dtype);
  for (int i = 0; i < g->n_nodes; ++i) {
    dpt_node *n = &g->nodes[i];
    if (n->kind != DPT_NODE_OP || n->is_loss) continue;
    size_t bytes = (size_t)(n->rows * n->cols) * es;
    if (grads && n->grad) memset(n->grad, 0, bytes);
    if (grad_tangents && n->grad_tangent) memset(n->grad_tangent, 0, bytes);
  }
}

/* Announces the PARAMs whose first reader is node i (the last the reverse walk visits). */
static void announce(dpt_graph *g, int i, dpt_grad_ready_fn ready, void *ctx) {
  if (!ready) return;
  for (int p = 0; p < g->n_nodes; ++p) {
    dpt_node *n = &g->nodes[p];
    if (n->kind == DPT_NODE_PARAM && n->first_reader == i) ready(ctx, n->param_offset, n->param_count);
  }
}

static dpt_status reverse(dpt_graph *g, bool with_tangent, dpt_grad_ready_fn ready, void *ctx) {
  for (int i = g->n_nodes - 1; i >= 0; --i) {
    dpt_node *n = &g->nodes[i];
    if (n->kind == DPT_NODE_OP && n->needs_grad) {
      DPT_CALL(n->op->vjp(g, n));
      if (with_tangent && n->has_tangent) DPT_CALL(n->op->vjp_tangent(g, n));
    }
    announce(g, i, ready, ctx);
  }
  /* A PARAM no op reads (cannot happen for a built model) is final from the start. */
  announce(g, -1, ready, ctx);
  return DPT_OK;
}

dpt_status dpt_graph_backward(dpt_graph *g, dpt_grad_ready_fn ready, void *ctx) {
  zero_op_buffers(g, true, false);
  return reverse(g, false, ready, ctx);
}

dpt_status dpt_graph_jvp(dpt_graph *g) {
  if (!g->tarena) DPT_CALL(arena(g, true));
  for (int i = 0; i < g->n_nodes; ++i) {
    dpt_node *n = &g->nodes[i];
    switch (n->kind) {
      case DPT_NODE_INPUT:
      case DPT_NODE_CONST: n->has_tangent = false; break;
      case DPT_NODE_PARAM: n->has_tangent = n->tangent != NULL; break;
      case DPT_NODE_OP:
        n->has_tangent = false;
        for (int j = 0; j < n->n_in; ++j) n->has_tangent = n->has_tangent || g->nodes[n->in[j]].has_tangent;
        n->loss_tangent = 0;
        if (n->has_tangent)
          DPT_CALL(n->op->jvp(g, n));
        else if (!n->is_loss)
          memset(n->tangent, 0, (size_t)(n->rows * n->cols) * dpt_dtype_size(g->dtype));
        break;
    }
  }
  return DPT_OK;
}

dpt_status dpt_graph_hvp(dpt_graph *g) {
  bool d2 = g->run.want_d2;
  g->run.want_d2 = true;
  dpt_status st = dpt_graph_forward(g);
  g->run.want_d2 = d2;
  DPT_CALL(st);
  DPT_CALL(dpt_graph_jvp(g));
  zero_op_buffers(g, true, true);
  return reverse(g, true, NULL, NULL);
}

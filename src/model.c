/* model.c — config -> layers -> flat buffers -> graph; the model's passes (model.h). */
#include "dptrain/model.h"

#include <time.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/activation.h"
#include "dptrain/layer.h"
#include "dptrain/rbf.h"

enum { MAX_LAYERS = 64 };

/* The layer registry: config name -> type. New layer types add one line here. */
static const dpt_layer_type *const layer_types[] = {&dpt_layer_dense, &dpt_layer_maxout, &dpt_layer_activation,
                                                    &dpt_layer_rbf};
enum { N_LAYER_TYPES = sizeof layer_types / sizeof layer_types[0] };

struct dpt_model {
  dpt_dtype dtype;
  int64_t n_in, n_out;
  dpt_task task;
  dpt_output output;
  dpt_loss_kind loss;
  dpt_loss_attr loss_attr;
  int n_layers;
  dpt_layer *layers; /* owned, [n_layers] */
  int n_tensors;
  dpt_param_info *tensors; /* owned, [n_tensors], flat order */
  size_t n_params;
  int64_t max_params;   /* > 0: the bound of dpt_model_create_bounded */
  void *params, *grads; /* owned, [n_params] */
  dpt_graph *g;         /* owned; built for g->capacity rows */
  int input_node, logits_node, loss_node;
  dpt_targets chunk_y; /* targets of the rows in the current pass (views of the caller's) */
  double t_forward, t_backward; /* seconds in forward_backward's two passes since the last read */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dpt_model_take_pass_times(dpt_model *m, double *forward_s, double *backward_s) {
  *forward_s = m->t_forward;
  *backward_s = m->t_backward;
  m->t_forward = m->t_backward = 0.0;
}

static const char *const init_names[] = {"he", "xavier", "normal", NULL};

static bool relu_family(dpt_act a) {
  return a == DPT_ACT_RELU || a == DPT_ACT_LEAKY_RELU || a == DPT_ACT_PRELU || a == DPT_ACT_ELU ||
         a == DPT_ACT_SELU || a == DPT_ACT_GELU || a == DPT_ACT_SILU || a == DPT_ACT_SOFTPLUS;
}

static dpt_status read_model_keys(dpt_model *m, dpt_config *cfg, int64_t *widths, int *n_hidden,
                                  dpt_layer_defaults *d) {
  DPT_CALL(dpt_config_get_int_list(cfg, "model.layers", NULL, 1, (int64_t)1 << 30, widths, MAX_LAYERS - 1, n_hidden));
  const char *actname;
  dpt_act act;
  DPT_CALL(dpt_config_get_string(cfg, "model.activation", "tanh", &actname));
  DPT_CALL(dpt_act_parse(actname, "model.activation", &act));
  d->act = (int)act;

  static const dpt_output for_task[] = {DPT_OUTPUT_IDENTITY, DPT_OUTPUT_SIGMOID, DPT_OUTPUT_SOFTMAX};
  int o, l, init;
  DPT_CALL(dpt_config_get_choice(cfg, "model.output", dpt_output_names, dpt_output_names[for_task[m->task]], &o));
  DPT_CHECK((dpt_output)o == for_task[m->task], DPT_ERR_INPUT, "model.output: expected %s for a %s task, got %s",
            dpt_output_names[for_task[m->task]], dpt_task_name(m->task), dpt_output_names[o]);
  m->output = (dpt_output)o;
  DPT_CALL(dpt_config_get_choice(cfg, "model.loss", dpt_loss_names, dpt_loss_names[dpt_loss_for_output(m->output)], &l));
  DPT_CHECK((dpt_loss_kind)l == dpt_loss_for_output(m->output), DPT_ERR_INPUT,
            "model.loss: expected %s for output %s, got %s", dpt_loss_names[dpt_loss_for_output(m->output)],
            dpt_output_names[o], dpt_loss_names[l]);
  m->loss = (dpt_loss_kind)l;
  /* model.init is shared with the checkpoint module: a scheme name here, anything else is a
   * model file to load weights from (`train --init FILE`), which that module reads after
   * dpt_model_init_params; the draws then use the default scheme. */
  const char *init_value;
  DPT_CALL(dpt_config_get_string(cfg, "model.init", NULL, &init_value));
  init = relu_family(act) ? DPT_INIT_HE : DPT_INIT_XAVIER;
  for (int i = 0; init_value && init_names[i]; ++i)
    if (!strcmp(init_value, init_names[i])) init = i;
  d->init = init;
  d->init_std = 0.01;
  if (init == DPT_INIT_NORMAL)
    DPT_CALL(dpt_config_get_double(cfg, "model.init_std", 0.01, 0.0, 1e6, DPT_RANGE_OPEN_LO, &d->init_std));
  return DPT_OK;
}

static dpt_status configure_layer(dpt_model *m, dpt_config *cfg, dpt_layer *L, const dpt_layer_defaults *d) {
  const char *names[N_LAYER_TYPES + 1];
  for (int i = 0; i < N_LAYER_TYPES; ++i) names[i] = layer_types[i]->name;
  names[N_LAYER_TYPES] = NULL;
  char key[64];
  int t;
  snprintf(key, sizeof key, "%s.type", L->section);
  DPT_CALL(dpt_config_get_choice(cfg, key, names, "dense", &t));
  L->type = layer_types[t];
  L->dtype = m->dtype;
  L->defaults = *d;
  DPT_CALL(L->type->configure(L, cfg, d));
  DPT_CHECK(L->n_out >= 1, DPT_ERR_INTERNAL, "%s: layer type %s gave width %lld", L->section, L->type->name,
            (long long)L->n_out);
  return DPT_OK;
}

/* Flat order: last layer first; within a layer the declaration order. */
static dpt_status lay_out(dpt_model *m) {
  int nt = 0;
  for (int i = 0; i < m->n_layers; ++i) nt += m->layers[i].n_params;
  DPT_CALL(dpt_calloc((size_t)(nt ? nt : 1), sizeof *m->tensors, "tensor list", &m->tensors));
  size_t off = 0;
  int t = 0;
  for (int i = m->n_layers - 1; i >= 0; --i) {
    dpt_layer *L = &m->layers[i];
    L->first_tensor = t;
    for (int j = 0; j < L->n_params; ++j, ++t) {
      dpt_layer_param *p = &L->params[j];
      DPT_CHECK(off <= SIZE_MAX - p->count, DPT_ERR_MEMORY, "model: parameter count overflows");
      p->offset = off;
      dpt_param_info *info = &m->tensors[t];
      snprintf(info->name, sizeof info->name, "layer_%d/%s", L->index, p->name);
      info->offset = off;
      info->count = p->count;
      info->ndim = p->ndim;
      info->shape[0] = p->shape[0];
      info->shape[1] = p->ndim == 2 ? p->shape[1] : 0;
      info->layer = L->index;
      off += p->count;
    }
  }
  m->n_tensors = nt;
  m->n_params = off;
  return DPT_OK;
}

static dpt_status create(dpt_model *m, dpt_config *cfg) {
  int64_t widths[MAX_LAYERS];
  int n_hidden = 0;
  dpt_layer_defaults d;
  DPT_CALL(read_model_keys(m, cfg, widths, &n_hidden, &d));
  d.max_params = m->max_params;
  int sec[MAX_LAYERS], n_sec;
  DPT_CALL(dpt_config_sections(cfg, "layer", sec, MAX_LAYERS, &n_sec));
  for (int i = 0; i < n_sec; ++i)
    DPT_CHECK(sec[i] <= n_hidden, DPT_ERR_INPUT,
              "[layer.%d]: no such layer: model.layers lists %d hidden layers, so the layers are layer.0 .. layer.%d "
              "(layer.%d is the output layer)",
              sec[i], n_hidden, n_hidden, n_hidden);
  DPT_CALL(dpt_calloc((size_t)n_hidden + 1, sizeof *m->layers, "layers", &m->layers));
  m->n_layers = n_hidden + 1; /* only now: dpt_model_destroy walks layers[0 .. n_layers) */
  int64_t width = m->n_in;
  for (int i = 0; i < m->n_layers; ++i) {
    dpt_layer *L = &m->layers[i];
    L->index = i;
    snprintf(L->section, sizeof L->section, "layer.%d", i);
    L->is_output = i == n_hidden;
    L->n_in = width;
    L->n_out = L->is_output ? m->n_out : widths[i];
    DPT_CALL(configure_layer(m, cfg, L, &d));
    DPT_CHECK(!L->is_output || L->n_out == m->n_out, DPT_ERR_INPUT, "%s: the output layer must give %lld outputs, got %lld",
              L->section, (long long)m->n_out, (long long)L->n_out);
    width = L->n_out;
  }
  DPT_CALL(lay_out(m));
  DPT_CHECK(m->max_params <= 0 || m->n_params <= (size_t)m->max_params, DPT_ERR_INPUT,
            "model: the config describes %zu parameters: expected at most %lld", m->n_params,
            (long long)m->max_params);
  { /* parameters and gradients alone must fit this machine's memory (else calloc fails or the
     * node swaps, naming no key) */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    double mem = pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
    double need = 2.0 * (double)m->n_params * (double)dpt_dtype_size(m->dtype);
    DPT_CHECK(mem <= 0.0 || need <= mem, DPT_ERR_INPUT,
              "model.layers: the model has %zu parameters, %.3g GiB with their gradients: more than this machine's "
              "%.3g GiB of memory",
              m->n_params, need / (1 << 30), mem / (1 << 30));
  }
  DPT_CALL(dpt_calloc(m->n_params ? m->n_params : 1, dpt_dtype_size(m->dtype), "parameters", &m->params));
  DPT_CALL(dpt_calloc(m->n_params ? m->n_params : 1, dpt_dtype_size(m->dtype), "gradients", &m->grads));
  return DPT_OK;
}

dpt_status dpt_model_create(dpt_config *cfg, dpt_dtype dtype, int64_t n_in, int64_t n_out, dpt_task task,
                            dpt_model **out) {
  DPT_CALL(dpt_model_create_bounded(cfg, dtype, n_in, n_out, task, 0, out));
  return DPT_OK;
}

dpt_status dpt_model_create_bounded(dpt_config *cfg, dpt_dtype dtype, int64_t n_in, int64_t n_out, dpt_task task,
                                    int64_t max_params, dpt_model **out) {
  *out = NULL;
  DPT_CHECK(n_in >= 1 && n_out >= 1, DPT_ERR_INPUT, "model: expected at least 1 input and 1 output, got %lld and %lld",
            (long long)n_in, (long long)n_out);
  DPT_CHECK(task != DPT_TASK_BINARY || n_out == 1, DPT_ERR_INPUT,
            "model: a binary task has 1 output (the logit of class 1), got %lld", (long long)n_out);
  DPT_CHECK(task != DPT_TASK_MULTICLASS || n_out >= 2, DPT_ERR_INPUT,
            "model: a multiclass task has at least 2 outputs (one per class), got %lld", (long long)n_out);
  dpt_model *m;
  DPT_CALL(dpt_calloc(1, sizeof *m, "model", &m));
  m->dtype = dtype;
  m->n_in = n_in;
  m->n_out = n_out;
  m->task = task;
  m->max_params = max_params;
  m->input_node = m->logits_node = m->loss_node = -1;
  dpt_status st = create(m, cfg);
  if (st != DPT_OK) {
    dpt_model_destroy(&m);
    dpt_error_push(__FILE__, __LINE__, __func__);
    return st;
  }
  m->loss_attr.kind = m->loss;
  *out = m;
  return DPT_OK;
}

void dpt_model_destroy(dpt_model **pm) {
  if (!pm || !*pm) return;
  dpt_model *m = *pm;
  for (int i = 0; i < m->n_layers; ++i)
    if (m->layers[i].type && m->layers[i].type->destroy) m->layers[i].type->destroy(&m->layers[i]);
  dpt_free(&m->layers);
  dpt_free(&m->tensors);
  dpt_free(&m->params);
  dpt_free(&m->grads);
  dpt_graph_destroy(&m->g);
  dpt_free(pm);
}

dpt_dtype dpt_model_dtype(const dpt_model *m) { return m->dtype; }
int64_t dpt_model_inputs(const dpt_model *m) { return m->n_in; }
int64_t dpt_model_outputs(const dpt_model *m) { return m->n_out; }
dpt_loss_kind dpt_model_loss(const dpt_model *m) { return m->loss; }
dpt_output dpt_model_output(const dpt_model *m) { return m->output; }
size_t dpt_model_num_params(const dpt_model *m) { return m->n_params; }
void *dpt_model_params(dpt_model *m) { return m->params; }
void *dpt_model_grads(dpt_model *m) { return m->grads; }
int dpt_model_num_tensors(const dpt_model *m) { return m->n_tensors; }
void dpt_model_tensor_info(const dpt_model *m, int i, dpt_param_info *info) { *info = m->tensors[i]; }

dpt_status dpt_model_init_params(dpt_model *m, uint64_t seed) {
  for (int i = 0; i < m->n_layers; ++i) DPT_CALL(m->layers[i].type->init(&m->layers[i], m->params, seed));
  return DPT_OK;
}

dpt_status dpt_model_zero_grads(dpt_model *m) {
  dpt_vec_zero(m->dtype, m->n_params, m->grads);
  return DPT_OK;
}

/* Builds the graph for batches of up to capacity rows (input -> layers -> loss). */
static dpt_status build(dpt_model *m, int64_t capacity) {
  dpt_graph_destroy(&m->g);
  DPT_CALL(dpt_graph_create(m->dtype, &m->g));
  dpt_graph *g = m->g;
  int x;
  DPT_CALL(dpt_graph_input(g, m->n_in, &m->input_node));
  x = m->input_node;
  for (int i = 0; i < m->n_layers; ++i) DPT_CALL(m->layers[i].type->build(&m->layers[i], g, x, &x));
  m->logits_node = x;
  DPT_CALL(dpt_graph_op(g, &dpt_op_loss, &x, 1, false, 1, 1, true, &m->loss_attr, &m->loss_node));
  DPT_CALL(dpt_graph_finalize(g, capacity));
  return DPT_OK;
}

/* Rows per pass: larger batches are processed in chunks of this many rows (the results are
 * sums over rows, so they add up), which bounds the graph's memory for full-batch methods. */
enum { CHUNK = 4096 };

/* Prepares the graph for rows [off, off + n) of X and y: rebuilds only when n exceeds its
 * capacity. */
static dpt_status prepare(dpt_model *m, const void *X, const dpt_targets *y, int64_t off, int64_t n, double scale) {
  if (!m->g || n > m->g->capacity) DPT_CALL(build(m, n));
  DPT_CALL(dpt_graph_set_rows(m->g, n));
  size_t es = dpt_dtype_size(m->dtype);
  dpt_graph_bind_input(m->g, m->input_node, n ? (const char *)X + (size_t)(off * m->n_in) * es : NULL);
  m->chunk_y.labels = y && y->labels && n ? y->labels + off : NULL;
  m->chunk_y.values = y && y->values && n ? (const char *)y->values + (size_t)(off * m->n_out) * es : NULL;
  m->g->run.scale = scale;
  m->g->run.y = &m->chunk_y;
  m->g->run.want_d2 = false;
  m->g->run.row0 = off;
  return DPT_OK;
}

static dpt_status check_rows(const void *X, int64_t n) {
  DPT_CHECK(n >= 0, DPT_ERR_INPUT, "model: expected a row count >= 0, got %lld", (long long)n);
  DPT_CHECK(n == 0 || X, DPT_ERR_INPUT, "model: %lld rows but no input matrix", (long long)n);
  return DPT_OK;
}

/* The chunks of n rows: [off, off + len); at least one (empty) chunk for n = 0. */
#define FOR_CHUNKS(n, off, len) \
  for (int64_t off = 0, len = (n) < CHUNK ? (n) : CHUNK; off == 0 || off < (n); off += CHUNK, len = (n) - off < CHUNK ? (n) - off : CHUNK)

static dpt_status forward_backward(dpt_model *m, void *grads, const void *X, const dpt_targets *y, int64_t n,
                                   double scale, double *loss, dpt_grad_ready_fn ready, void *ctx) {
  DPT_CALL(check_rows(X, n));
  FOR_CHUNKS(n, off, len) {
    DPT_CALL(prepare(m, X, y, off, len, scale));
    dpt_graph_bind_flat(m->g, m->params, grads, NULL, NULL);
    double t0 = now_s();
    DPT_CALL(dpt_graph_forward(m->g));
    double t1 = now_s();
    /* only the last chunk's backward pass finalizes the gradients */
    DPT_CALL(dpt_graph_backward(m->g, off + len >= n ? ready : NULL, ctx));
    m->t_forward += t1 - t0;
    m->t_backward += now_s() - t1;
    if (loss) *loss += m->g->nodes[m->loss_node].loss;
  }
  return DPT_OK;
}

dpt_status dpt_model_forward_backward(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale,
                                      double *loss, dpt_grad_ready_fn ready, void *ctx) {
  DPT_CALL(forward_backward(m, m->grads, X, y, n, scale, loss, ready, ctx));
  return DPT_OK;
}

dpt_status dpt_model_forward_backward_into(dpt_model *m, void *grads, const void *X, const dpt_targets *y, int64_t n,
                                           double scale, double *loss) {
  DPT_CALL(forward_backward(m, grads, X, y, n, scale, loss, NULL, NULL));
  return DPT_OK;
}

dpt_status dpt_model_evaluate(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale,
                              double *loss, int64_t *correct, void *out) {
  DPT_CALL(check_rows(X, n));
  size_t es = dpt_dtype_size(m->dtype);
  FOR_CHUNKS(n, off, len) {
    DPT_CALL(prepare(m, X, y, off, len, scale));
    dpt_graph_bind_flat(m->g, m->params, NULL, NULL, NULL);
    DPT_CALL(dpt_graph_forward_until(m->g, loss ? m->loss_node : m->logits_node));
    const void *z = m->g->nodes[m->logits_node].value;
    if (loss) *loss += m->g->nodes[m->loss_node].loss;
    if (correct) *correct += dpt_output_correct(m->output, m->dtype, len, m->n_out, z, m->chunk_y.labels);
    if (out) dpt_output_apply(m->output, m->dtype, len, m->n_out, z, (char *)out + (size_t)(off * m->n_out) * es);
  }
  return DPT_OK;
}

dpt_status dpt_model_jvp(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale, const void *v,
                         double *dloss) {
  DPT_CALL(check_rows(X, n));
  FOR_CHUNKS(n, off, len) {
    DPT_CALL(prepare(m, X, y, off, len, scale));
    dpt_graph_bind_flat(m->g, m->params, NULL, v, NULL);
    DPT_CALL(dpt_graph_forward(m->g));
    DPT_CALL(dpt_graph_jvp(m->g));
    *dloss += m->g->nodes[m->loss_node].loss_tangent;
  }
  return DPT_OK;
}

dpt_status dpt_model_hvp(dpt_model *m, const void *X, const dpt_targets *y, int64_t n, double scale, const void *v,
                         void *hv) {
  DPT_CALL(check_rows(X, n));
  FOR_CHUNKS(n, off, len) {
    DPT_CALL(prepare(m, X, y, off, len, scale));
    dpt_graph_bind_flat(m->g, m->params, NULL, v, hv);
    DPT_CALL(dpt_graph_hvp(m->g));
  }
  return DPT_OK;
}

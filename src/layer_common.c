/* layer_common.c — helpers shared by layer types (see layer.h): parameter declaration,
 * the counter-based initializer, and the activation part of a layer. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/activation.h"
#include "dptrain/layer.h"

dpt_status dpt_layer_add_param(dpt_layer *L, const char *name, int64_t rows, int64_t cols, int *j) {
  DPT_CHECK(L->n_params < DPT_LAYER_MAX_PARAMS, DPT_ERR_INTERNAL, "%s: too many parameter tensors", L->section);
  DPT_CALL(dpt_tensor_check_shape(rows, cols ? cols : 1, L->section));
  dpt_layer_param *p = &L->params[L->n_params];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ndim = cols ? 2 : 1;
  p->shape[0] = rows;
  p->shape[1] = cols;
  p->count = (size_t)(rows * (cols ? cols : 1));
  p->node = -1;
  *j = L->n_params++;
  return DPT_OK;
}

dpt_status dpt_layer_param_node(dpt_layer *L, dpt_graph *g, int j, int *node) {
  dpt_layer_param *p = &L->params[j];
  int64_t rows = p->ndim == 2 ? p->shape[0] : 1, cols = p->ndim == 2 ? p->shape[1] : p->shape[0];
  DPT_CALL(dpt_graph_param(g, rows, cols, p->offset, node));
  p->node = *node;
  return DPT_OK;
}

/* splitmix64 (Steele, Lea, Flood 2014): a bijective mix of a 64-bit counter. */
static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* Uniform in (0, 1]: the top 53 bits, shifted by one so log() is finite. */
static double unit(uint64_t r) { return ((double)(r >> 11) + 1.0) * 0x1.0p-53; }

double dpt_rng_normal(uint64_t seed, uint64_t t, uint64_t i) {
  /* The stream of tensor t is keyed by (seed, t); element i uses counters 2i and 2i+1. */
  uint64_t key = splitmix64(splitmix64(seed) ^ (t * 0xd1b54a32d192ed03ULL));
  double u1 = unit(splitmix64(key ^ (2 * i))), u2 = unit(splitmix64(key ^ (2 * i + 1)));
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2) /* 2π */;
}

void dpt_layer_fill_normal(dpt_layer *L, void *params, int j, uint64_t seed, double std) {
  dpt_layer_param *p = &L->params[j];
  for (size_t i = 0; i < p->count; ++i)
    dpt_vec_set(L->dtype, params, p->offset + i, std * dpt_rng_normal(seed, (uint64_t)(L->first_tensor + j), i));
}

double dpt_init_std(int init, double init_std, int64_t fan_in, int64_t fan_out) {
  switch (init) {
    case DPT_INIT_HE: return sqrt(2.0 / (double)(fan_in > 0 ? fan_in : 1));
    case DPT_INIT_XAVIER: return sqrt(2.0 / (double)(fan_in + fan_out > 0 ? fan_in + fan_out : 1));
    default: return init_std;
  }
}

dpt_status dpt_layer_read_act(dpt_layer *L, dpt_config *cfg, const dpt_layer_defaults *d, int def_act,
                              bool read_key, int64_t units, dpt_layer_act *a) {
  (void)d;
  memset(a, 0, sizeof *a);
  a->param = -1;
  char key[128];
  dpt_act act = (dpt_act)def_act;
  if (read_key) {
    const char *name;
    snprintf(key, sizeof key, "%s.activation", L->section);
    DPT_CALL(dpt_config_get_string(cfg, key, dpt_act_get((dpt_act)def_act)->name, &name));
    DPT_CALL(dpt_act_parse(name, key, &act));
  }
  const dpt_act_info *info = dpt_act_get(act);
  a->act = (int)act;
  a->nparams = info->nparams;
  if (info->nparams == 0) {
    static const char *const param_keys[] = {"learn", "per_unit"};
    for (int i = 0; i < 2; ++i) {
      snprintf(key, sizeof key, "%s.%s", L->section, param_keys[i]);
      DPT_CHECK(!dpt_config_has(cfg, key), DPT_ERR_INPUT, "%s: activation %s has no parameters, so no %s", key,
                info->name, param_keys[i]);
    }
    return DPT_OK;
  }
  for (int j = 0; j < info->nparams; ++j) {
    char mkey[128];
    double def;
    snprintf(mkey, sizeof mkey, "model.%s.%s", info->name, info->param_names[j]);
    snprintf(key, sizeof key, "%s.%s.%s", L->section, info->name, info->param_names[j]);
    if (dpt_config_has(cfg, mkey))
      DPT_CALL(dpt_config_get_double(cfg, mkey, info->param_defaults[j], -DBL_MAX, DBL_MAX, DPT_RANGE_CLOSED, &def));
    else
      def = info->param_defaults[j];
    DPT_CALL(dpt_config_get_double(cfg, key, def, -DBL_MAX, DBL_MAX, DPT_RANGE_CLOSED, &a->p[j]));
  }
  bool def_per_unit = false, def_learn = act == DPT_ACT_PRELU;
  if (dpt_config_has(cfg, "model.per_unit")) DPT_CALL(dpt_config_get_bool(cfg, "model.per_unit", false, &def_per_unit));
  if (dpt_config_has(cfg, "model.learn")) DPT_CALL(dpt_config_get_bool(cfg, "model.learn", def_learn, &def_learn));
  snprintf(key, sizeof key, "%s.per_unit", L->section);
  DPT_CALL(dpt_config_get_bool(cfg, key, def_per_unit, &a->per_unit));
  snprintf(key, sizeof key, "%s.learn", L->section);
  DPT_CALL(dpt_config_get_bool(cfg, key, def_learn, &a->learn));
  DPT_CHECK(!a->learn || info->learnable, DPT_ERR_INPUT, "%s: activation %s: expected learn = false (its parameters are fixed), got true",
            key, info->name);
  if (!a->learn) {
    size_t count = (size_t)info->nparams * (size_t)(a->per_unit ? units : 1);
    DPT_CALL(dpt_alloc(count, dpt_dtype_size(L->dtype), "activation parameters", &a->fixed));
    for (size_t i = 0; i < count; ++i)
      dpt_vec_set(L->dtype, a->fixed, i, a->p[a->per_unit ? i / (size_t)units : i]);
  }
  return DPT_OK;
}

dpt_status dpt_layer_act_declare(dpt_layer *L, dpt_layer_act *a, int64_t units) {
  if (!a->learn || a->nparams == 0) return DPT_OK;
  DPT_CALL(dpt_layer_add_param(L, dpt_act_get((dpt_act)a->act)->name, a->nparams, a->per_unit ? units : 0, &a->param));
  return DPT_OK;
}

void dpt_layer_act_init(dpt_layer *L, dpt_layer_act *a, void *params, int64_t units) {
  if (a->param < 0) return;
  dpt_layer_param *p = &L->params[a->param];
  for (size_t i = 0; i < p->count; ++i)
    dpt_vec_set(L->dtype, params, p->offset + i, a->p[a->per_unit ? i / (size_t)units : i]);
}

dpt_status dpt_layer_act_build(dpt_layer *L, dpt_layer_act *a, dpt_act_attr *attr, dpt_graph *g, int x,
                               int64_t units, int *y) {
  if (a->act == DPT_ACT_IDENTITY && a->nparams == 0) {
    *y = x;
    return DPT_OK;
  }
  attr->act = a->act;
  attr->per_unit = a->per_unit;
  int in[2] = {x, -1}, n_in = 1;
  if (a->nparams > 0) {
    if (a->param >= 0)
      DPT_CALL(dpt_layer_param_node(L, g, a->param, &in[1]));
    else
      DPT_CALL(dpt_graph_const(g, a->per_unit ? a->nparams : 1, a->per_unit ? units : a->nparams, a->fixed, &in[1]));
    n_in = 2;
  }
  DPT_CALL(dpt_graph_op(g, &dpt_op_act, in, n_in, true, 0, units, false, attr, y));
  return DPT_OK;
}

void dpt_layer_act_free(dpt_layer_act *a) { dpt_free(&a->fixed); }

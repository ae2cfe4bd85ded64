/* optim.c — first-order optimizers over the flat parameter buffer (optim.h). */
/* Built with -fno-math-errno (launch/optim/CMakeLists.txt sets it on this file): sqrt of a
 * non-negative number never sets errno, and without the flag GCC keeps a scalar libm call in
 * each loop of the adaptive rules (to set errno on negative input), which blocks
 * vectorization. Results per element are unchanged: IEEE sqrt is correctly rounded. */
#include "dptrain/optim.h"

#include <math.h>
#include <string.h>

typedef enum opt_type {
  OPT_SGD,
  OPT_MOMENTUM,
  OPT_NESTEROV,
  OPT_ADAGRAD,
  OPT_RMSPROP,
  OPT_ADADELTA,
  OPT_ADAM,
  OPT_ADAMW
} opt_type;

static const char *const TYPE_NAMES[] = {"sgd",      "momentum", "nesterov", "adagrad", "rmsprop",
                                         "adadelta", "adam",     "adamw",    NULL};

enum { MAX_STATES = 8 };

struct dpt_optim {
  opt_type type;
  dpt_dtype dtype;
  size_t n;
  /* hyper-parameters (optim.h for symbols) */
  double lr, base_lr, momentum, rho, beta1, beta2, delta, weight_decay, clip_norm;
  /* state */
  int64_t t;
  double beta1_power, beta2_power; /* Πβ₁, Πβ₂ over the steps taken (adam) */
  void *buf[3];                    /* per-parameter arrays [n] in dtype, owned; NULL if unused */
  void *keep;                      /* Nesterov: θ saved by prepare [n], owned; NULL otherwise */
  bool prepared;                   /* prepare called, step not yet */
  /* per step */
  double clip_scale; /* c of optim.h */
  double grad_norm;  /* ‖∇J‖₂ before clipping, NaN when not computed */
  /* the named state, one table (optim.h) */
  dpt_state_info states[MAX_STATES];
  int n_states;
};

#define T float
#define SQRT sqrtf
#define FN(x) x##_f32
#include "optim_step.inc"
#undef T
#undef SQRT
#undef FN
#define T double
#define SQRT sqrt
#define FN(x) x##_f64
#include "optim_step.inc"
#undef T
#undef SQRT
#undef FN

static void add_state(dpt_optim *o, const char *name, void *data, size_t count, dpt_state_type type) {
  o->states[o->n_states++] = (dpt_state_info){name, data, count, type};
}

/* Allocates the zeroed per-parameter array slot and names it. */
static dpt_status add_array(dpt_optim *o, int slot, const char *name) {
  DPT_CALL(dpt_calloc(o->n, dpt_dtype_size(o->dtype), "optimizer state", &o->buf[slot]));
  add_state(o, name, o->buf[slot], o->n, (dpt_state_type)o->dtype);
  return DPT_OK;
}

/* Reads the keys that apply to o->type. */
static dpt_status read_keys(dpt_config *cfg, dpt_optim *o) {
  const opt_type ty = o->type;
  const double def_lr = ty == OPT_ADAM || ty == OPT_ADAMW ? 1e-3 : ty == OPT_ADADELTA ? 1.0 : 1e-2;
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.lr", def_lr, 0.0, INFINITY, DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI,
                                 &o->lr));
  if (ty == OPT_MOMENTUM || ty == OPT_NESTEROV || ty == OPT_RMSPROP)
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.momentum", ty == OPT_RMSPROP ? 0.0 : 0.9, 0.0, 1.0,
                                   DPT_RANGE_OPEN_HI, &o->momentum));
  if (ty == OPT_RMSPROP || ty == OPT_ADADELTA)
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.rho", 0.9, 0.0, 1.0, DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI,
                                   &o->rho));
  if (ty == OPT_ADAM || ty == OPT_ADAMW) {
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.beta1", 0.9, 0.0, 1.0, DPT_RANGE_OPEN_HI, &o->beta1));
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.beta2", 0.999, 0.0, 1.0, DPT_RANGE_OPEN_HI, &o->beta2));
  }
  if (ty >= OPT_ADAGRAD)
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.delta", ty == OPT_ADADELTA ? 1e-6 : 1e-8, 0.0, INFINITY,
                                   DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI, &o->delta));
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.weight_decay", ty == OPT_ADAMW ? 0.01 : 0.0, 0.0, INFINITY,
                                 DPT_RANGE_OPEN_HI, &o->weight_decay));
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.clip_norm", 0.0, 0.0, INFINITY, DPT_RANGE_OPEN_HI, &o->clip_norm));
  return DPT_OK;
}

/* Every [optimizer] key this module knows and the types it applies to (bit per opt_type). */
#define BIT(t) (1u << (t))
static const dpt_config_key_use KEYS[] = {
    {"optimizer.lr", ~0u},
    {"optimizer.momentum", BIT(OPT_MOMENTUM) | BIT(OPT_NESTEROV) | BIT(OPT_RMSPROP)},
    {"optimizer.rho", BIT(OPT_RMSPROP) | BIT(OPT_ADADELTA)},
    {"optimizer.centered", BIT(OPT_RMSPROP)},
    {"optimizer.beta1", BIT(OPT_ADAM) | BIT(OPT_ADAMW)},
    {"optimizer.beta2", BIT(OPT_ADAM) | BIT(OPT_ADAMW)},
    {"optimizer.delta", BIT(OPT_ADAGRAD) | BIT(OPT_RMSPROP) | BIT(OPT_ADADELTA) | BIT(OPT_ADAM) | BIT(OPT_ADAMW)},
    {"optimizer.weight_decay", ~0u},
    {"optimizer.clip_norm", ~0u},
};

/* A given key of this module that the type does not read is an error that says so (rather
 * than the generic "unknown key" of dpt_config_check_unused). */
static dpt_status check_keys_apply(const dpt_config *cfg, opt_type type) {
  return dpt_config_check_applies(cfg, KEYS, sizeof KEYS / sizeof KEYS[0], (unsigned)type, "optimizer.type", TYPE_NAMES[type]);
}

dpt_status dpt_optim_create(dpt_config *cfg, dpt_dtype dtype, size_t n, dpt_optim **out) {
  dpt_status st = DPT_OK;
  dpt_optim *o = NULL;
  *out = NULL;
  DPT_TRY_CHECK(dtype == DPT_F32 || dtype == DPT_F64, DPT_ERR_INTERNAL, "optimizer: unknown dtype %d", (int)dtype);
  DPT_TRY(dpt_calloc(1, sizeof *o, "optimizer", &o));
  o->dtype = dtype;
  o->n = n;
  int type;
  DPT_TRY(dpt_config_get_choice(cfg, "optimizer.type", TYPE_NAMES, "sgd", &type));
  o->type = (opt_type)type;
  DPT_TRY(check_keys_apply(cfg, o->type));
  DPT_TRY(read_keys(cfg, o));
  o->base_lr = o->lr;
  o->beta1_power = 1.0;
  o->beta2_power = 1.0;
  o->clip_scale = 1.0;
  o->grad_norm = NAN;

  add_state(o, "t", &o->t, 1, DPT_STATE_I64);
  add_state(o, "lr", &o->lr, 1, DPT_STATE_F64);
  switch (o->type) {
  case OPT_SGD:
    break;
  case OPT_MOMENTUM:
    DPT_TRY(add_array(o, 0, "v"));
    break;
  case OPT_NESTEROV:
    DPT_TRY(add_array(o, 0, "v"));
    DPT_TRY(dpt_alloc(n, dpt_dtype_size(dtype), "optimizer look-ahead copy", &o->keep));
    break;
  case OPT_ADAGRAD:
    DPT_TRY(add_array(o, 0, "r"));
    break;
  case OPT_RMSPROP: {
    bool centered;
    DPT_TRY(dpt_config_get_bool(cfg, "optimizer.centered", false, &centered));
    DPT_TRY(add_array(o, 0, "r"));
    if (o->momentum > 0) DPT_TRY(add_array(o, 1, "v"));
    if (centered) DPT_TRY(add_array(o, 2, "g_mean"));
    break;
  }
  case OPT_ADADELTA:
    DPT_TRY(add_array(o, 0, "r"));
    DPT_TRY(add_array(o, 1, "s"));
    break;
  case OPT_ADAM:
  case OPT_ADAMW:
    DPT_TRY(add_array(o, 0, "m"));
    DPT_TRY(add_array(o, 1, "v"));
    add_state(o, "beta1_power", &o->beta1_power, 1, DPT_STATE_F64);
    add_state(o, "beta2_power", &o->beta2_power, 1, DPT_STATE_F64);
    break;
  }
  *out = o;
  o = NULL;
done:
  dpt_optim_destroy(&o);
  return st;
}

void dpt_optim_destroy(dpt_optim **o) {
  if (!o || !*o) return;
  for (int i = 0; i < 3; ++i) dpt_free(&(*o)->buf[i]);
  dpt_free(&(*o)->keep);
  dpt_free(o);
}

dpt_status dpt_optim_prepare(dpt_optim *o, void *params) {
  if (o->type != OPT_NESTEROV) return DPT_OK;
  DPT_CHECK(!o->prepared, DPT_ERR_INTERNAL, "optimizer nesterov: dpt_optim_prepare called twice without a step");
  if (o->dtype == DPT_F32)
    nesterov_prepare_f32(o, params);
  else
    nesterov_prepare_f64(o, params);
  o->prepared = true;
  return DPT_OK;
}

void dpt_optim_cancel(dpt_optim *o, void *params) {
  if (o->type != OPT_NESTEROV || !o->prepared) return;
  if (o->dtype == DPT_F32)
    nesterov_cancel_f32(o, params);
  else
    nesterov_cancel_f64(o, params);
  o->prepared = false;
}

dpt_status dpt_optim_step(dpt_optim *o, void *params, const void *grads) {
  DPT_CHECK(o->type != OPT_NESTEROV || o->prepared, DPT_ERR_INTERNAL,
            "optimizer nesterov: dpt_optim_step without dpt_optim_prepare (the gradient must be taken at θ + βv)");
  o->clip_scale = 1.0;
  o->grad_norm = NAN;
  if (o->clip_norm > 0) {
    o->grad_norm = o->dtype == DPT_F32 ? grad_norm_f32(grads, o->n) : grad_norm_f64(grads, o->n);
    if (o->grad_norm > o->clip_norm) o->clip_scale = o->clip_norm / o->grad_norm;
  }
  o->t += 1;
  if (o->type == OPT_ADAM || o->type == OPT_ADAMW) {
    o->beta1_power *= o->beta1;
    o->beta2_power *= o->beta2;
  }
  if (o->dtype == DPT_F32)
    update_f32(o, params, grads);
  else
    update_f64(o, params, grads);
  o->prepared = false;
  return DPT_OK;
}

void dpt_optim_set_lr(dpt_optim *o, double lr) { o->lr = lr; }
double dpt_optim_lr(const dpt_optim *o) { return o->lr; }
double dpt_optim_base_lr(const dpt_optim *o) { return o->base_lr; }

bool dpt_optim_has_momentum(const dpt_optim *o) {
  return o->type == OPT_MOMENTUM || o->type == OPT_NESTEROV || o->type == OPT_ADAM || o->type == OPT_ADAMW ||
         (o->type == OPT_RMSPROP && o->buf[1] != NULL);
}

void dpt_optim_set_momentum(dpt_optim *o, double beta) {
  if (!dpt_optim_has_momentum(o)) return;
  if (o->type == OPT_ADAM || o->type == OPT_ADAMW)
    o->beta1 = beta;
  else
    o->momentum = beta;
}

double dpt_optim_momentum(const dpt_optim *o) {
  if (!dpt_optim_has_momentum(o)) return 0.0;
  return o->type == OPT_ADAM || o->type == OPT_ADAMW ? o->beta1 : o->momentum;
}

const char *dpt_optim_type_name(const dpt_optim *o) { return TYPE_NAMES[o->type]; }
dpt_dtype dpt_optim_dtype(const dpt_optim *o) { return o->dtype; }
size_t dpt_optim_size(const dpt_optim *o) { return o->n; }
size_t dpt_optim_memory(const dpt_optim *o) {
  size_t arrays = (o->keep != NULL);
  for (int i = 0; i < 3; ++i) arrays += o->buf[i] != NULL;
  return arrays * o->n * dpt_dtype_size(o->dtype);
}
int64_t dpt_optim_steps(const dpt_optim *o) { return o->t; }
double dpt_optim_grad_norm(const dpt_optim *o) { return o->grad_norm; }
int dpt_optim_num_states(const dpt_optim *o) { return o->n_states; }

void dpt_optim_state(dpt_optim *o, int i, dpt_state_info *info) {
  if (i < 0 || i >= o->n_states) {
    *info = (dpt_state_info){NULL, NULL, 0, DPT_STATE_F64};
    return;
  }
  *info = o->states[i];
}

/* second_order_options.c — method names, defaults and [optimizer] keys (second_order.h). */
#include "dptrain/second_order.h"

#include <string.h>

static const char *const method_names[] = {"cg", "newton", "newton_cg", "bfgs", "lbfgs", "sfn", NULL};

bool dpt_second_order_is_method(const char *type) {
  if (!type) return false;
  for (int i = 0; method_names[i]; ++i)
    if (strcmp(type, method_names[i]) == 0) return true;
  return false;
}

void dpt_so_options_default(dpt_so_method method, dpt_so_options *o) {
  memset(o, 0, sizeof *o);
  o->method = method;
  o->cg_variant = DPT_CG_PRPLUS;
  o->history = 10;
  o->line_search = DPT_LS_WOLFE;
  /* N&W: c2 = 0.9 for (quasi-)Newton, 0.1 for nonlinear CG */
  o->ls = (dpt_ls_params){.c1 = 1e-4, .c2 = method == DPT_SO_CG ? 0.1 : 0.9, .alpha_max = 1e4, .max_evals = 30};
  o->max_iters = 100;
  o->max_evals = 1000;
  o->restart = 0;
  o->tol_grad = 1e-6;
  o->tol_rel = 1e-12;
  o->damping = method == DPT_SO_NEWTON_CG ? 1e-4 : 0.0;
  o->lanczos_k = 20;
  o->dense_limit = 2000;
}

dpt_status dpt_so_options_read(dpt_config *cfg, dpt_so_options *o) {
  const char *type;
  DPT_CALL(dpt_config_get_string(cfg, "optimizer.type", "sgd", &type));
  int m = -1;
  for (int i = 0; method_names[i]; ++i)
    if (strcmp(type, method_names[i]) == 0) m = i;
  DPT_CHECK(m >= 0, DPT_ERR_INPUT, "optimizer.type = %s: expected a second-order method (cg, newton, newton_cg, bfgs, "
            "lbfgs, sfn)", type);
  dpt_so_options_default((dpt_so_method)m, o);
  static const char *const variants[] = {"fr", "pr", "prplus", NULL};
  static const char *const searches[] = {"armijo", "wolfe", "none", NULL};
  int idx;
  int64_t v;
  if (o->method == DPT_SO_CG) {
    DPT_CALL(dpt_config_get_choice(cfg, "optimizer.cg_variant", variants, "prplus", &idx));
    o->cg_variant = (dpt_cg_variant)idx;
    DPT_CALL(dpt_config_get_int(cfg, "optimizer.restart", 0, 0, INT64_C(1) << 40, &o->restart));
  }
  if (o->method == DPT_SO_LBFGS) {
    DPT_CALL(dpt_config_get_int(cfg, "optimizer.history", 10, 1, 1000, &v));
    o->history = (int)v;
  }
  DPT_CALL(dpt_config_get_choice(cfg, "optimizer.line_search", searches, "wolfe", &idx));
  o->line_search = (dpt_ls_kind)idx;
  DPT_CHECK(o->line_search != DPT_LS_NONE || o->method == DPT_SO_NEWTON || o->method == DPT_SO_SFN, DPT_ERR_INPUT,
            "optimizer.line_search = none: only newton and sfn take unit steps; %s needs armijo or wolfe", type);
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.c1", o->ls.c1, 0.0, 1.0, DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI,
                                 &o->ls.c1));
  if (o->line_search == DPT_LS_WOLFE)
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.c2", o->ls.c2, 0.0, 1.0, DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI,
                                   &o->ls.c2));
  DPT_CALL(dpt_ls_params_check(&o->ls, o->line_search));
  DPT_CALL(dpt_config_get_int(cfg, "optimizer.max_iters", o->max_iters, 1, INT64_C(1) << 40, &o->max_iters));
  DPT_CALL(dpt_config_get_int(cfg, "optimizer.max_evals", o->max_evals, 1, INT64_C(1) << 40, &o->max_evals));
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.tol_grad", o->tol_grad, 0.0, 1e300, DPT_RANGE_CLOSED, &o->tol_grad));
  DPT_CALL(dpt_config_get_double(cfg, "optimizer.tol_rel", o->tol_rel, 0.0, 1.0, DPT_RANGE_CLOSED, &o->tol_rel));
  if (o->method == DPT_SO_NEWTON || o->method == DPT_SO_NEWTON_CG || o->method == DPT_SO_SFN)
    DPT_CALL(dpt_config_get_double(cfg, "optimizer.damping", o->damping, 0.0, 1e300, DPT_RANGE_CLOSED, &o->damping));
  if (o->method == DPT_SO_NEWTON || o->method == DPT_SO_BFGS || o->method == DPT_SO_SFN)
    DPT_CALL(dpt_config_get_int(cfg, "optimizer.dense_limit", o->dense_limit, 1, 100000, &o->dense_limit));
  if (o->method == DPT_SO_SFN) {
    DPT_CALL(dpt_config_get_int(cfg, "optimizer.lanczos_k", o->lanczos_k, 1, 10000, &v));
    o->lanczos_k = (int)v;
  }
  return DPT_OK;
}

const char *dpt_so_stop_name(dpt_so_stop s) {
  switch (s) {
    case DPT_SO_STOP_GRAD: return "gradient norm <= tol_grad";
    case DPT_SO_STOP_REL: return "relative loss change <= tol_rel";
    case DPT_SO_STOP_ITERS: return "max_iters reached";
    case DPT_SO_STOP_EVALS: return "max_evals reached";
    case DPT_SO_STOP_LINESEARCH: return "no acceptable step after a steepest-descent restart";
  }
  return "?";
}

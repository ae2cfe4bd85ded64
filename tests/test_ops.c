/* test_ops.c — the built-in operators (linear, act for every activation, maxout): reverse
 * mode, forward mode and H·v vs central differences in float64 (tolerances in
 * engine_check.h), the documented subgradients at kinks, and finiteness at |x| = 50, 500. */
#include <math.h>

#include "engine_check.h"
#include "dptrain/activation.h"

enum { N = 3, K = 4 };

/* x (PARAM [N, K] at offset 0) [-> p (PARAM at offset N*K, or CONST)] -> act -> ℓ2 vs Y. */
typedef struct act_graph {
  dpt_graph *g;
  dpt_act_attr attr;
  dpt_loss_attr loss;
  dpt_targets y;
  double Y[N * K];
  double fixed[4 * K];
  size_t np;
} act_graph;

static void make_act_graph(act_graph *a, dpt_act act, bool learn, bool per_unit, const double *params) {
  const dpt_act_info *info = dpt_act_get(act);
  uint64_t s = 99;
  for (int i = 0; i < N * K; ++i) a->Y[i] = test_rand(&s);
  a->attr.act = (int)act;
  a->attr.per_unit = per_unit;
  a->loss.kind = DPT_LOSS_L2;
  a->y.labels = NULL;
  a->y.values = a->Y;
  assert_dpt_ok(dpt_graph_create(DPT_F64, &a->g));
  int in[2], n_in = 1, y, l;
  assert_dpt_ok(dpt_graph_param(a->g, N, K, 0, &in[0]));
  a->np = N * K;
  if (info->nparams) {
    int64_t rows = per_unit ? info->nparams : 1, cols = per_unit ? K : info->nparams;
    for (int j = 0; j < info->nparams; ++j)
      for (int c = 0; c < (per_unit ? K : 1); ++c) a->fixed[per_unit ? j * K + c : j] = params[j] + 0.05 * c;
    if (learn) {
      assert_dpt_ok(dpt_graph_param(a->g, rows, cols, N * K, &in[1]));
      a->np += (size_t)(rows * cols);
    } else {
      assert_dpt_ok(dpt_graph_const(a->g, rows, cols, a->fixed, &in[1]));
    }
    n_in = 2;
  }
  assert_dpt_ok(dpt_graph_op(a->g, &dpt_op_act, in, n_in, false, N, K, false, &a->attr, &y));
  assert_dpt_ok(dpt_graph_op(a->g, &dpt_op_loss, &y, 1, false, 1, 1, true, &a->loss, &l));
  assert_dpt_ok(dpt_graph_finalize(a->g, 0));
  a->g->run.y = &a->y;
  a->g->run.scale = 0.5;
}

/* theta: x at points of both signs with 0.2 <= |x| <= 2 (away from every kink), then the
 * learned parameters. */
static void fill_theta(const act_graph *a, double *th) {
  uint64_t s = 1234;
  for (int i = 0; i < N * K; ++i) {
    double u = test_rand(&s);
    th[i] = (u < 0 ? -1 : 1) * (0.2 + 1.8 * fabs(u));
  }
  for (size_t i = N * K; i < a->np; ++i) th[i] = a->fixed[i - N * K];
}

static void test_act_every_activation(void **state) {
  (void)state;
  for (int act = 0; act < DPT_ACT_COUNT; ++act) {
    const dpt_act_info *info = dpt_act_get((dpt_act)act);
    double params[4];
    for (int j = 0; j < info->nparams; ++j) params[j] = info->param_defaults[j] * (1 + 0.1 * (j + 1));
    for (int variant = 0; variant < (info->learnable ? 3 : 1); ++variant) {
      bool learn = variant > 0, per_unit = variant == 2;
      act_graph a;
      make_act_graph(&a, (dpt_act)act, learn, per_unit, params);
      double th[N * K + 4 * K];
      fill_theta(&a, th);
      char what[96];
      snprintf(what, sizeof what, "act %s%s%s", info->name, learn ? " learned" : "", per_unit ? " per unit" : "");
      assert_check(check_graph(a.g, th, a.np, 7), what);
      dpt_graph_destroy(&a.g);
    }
  }
}

/* At x = 0 the op's gradient is ȳ · f'(0) with the table's documented f'(0): relu 0,
 * leaky_relu 0.01, prelu α, step 0. Exact: one multiplication. */
static void test_act_kinks(void **state) {
  (void)state;
  const struct {
    dpt_act act;
    double d1;
  } kinks[] = {{DPT_ACT_RELU, 0.0}, {DPT_ACT_LEAKY_RELU, 0.01}, {DPT_ACT_PRELU, 0.25}, {DPT_ACT_STEP, 0.0}};
  for (size_t i = 0; i < sizeof kinks / sizeof kinks[0]; ++i) {
    act_graph a;
    double p[1] = {0.25};
    make_act_graph(&a, kinks[i].act, false, false, p);
    a.fixed[0] = 0.25;
    double th[N * K] = {0}, gr[N * K];
    graph_grad(a.g, th, N * K, gr);
    dpt_act_derivs D;
    dpt_act_scalar(kinks[i].act, p, 0.0, &D);
    for (int e = 0; e < N * K; ++e) {
      double expect = 0.5 * 2 * (D.f - a.Y[e]) * kinks[i].d1; /* scale · ∂ℓ/∂y · f'(0) */
      if (fabs(gr[e] - expect) > 1e-15) fail_msg("%s: x̄ at 0 = %g, expected %g", dpt_act_get(kinks[i].act)->name, gr[e], expect);
    }
    dpt_graph_destroy(&a.g);
  }
}

/* |x| = 50 and 500 for every activation: reverse mode, forward mode and H·v against
 * central differences too (tolerances as above: the FD step 1e-5·|x| stays far from every
 * kink, and the vector-relative error compares the saturated, near-0 derivatives on the
 * scale of the largest component). */
static void test_act_awkward_derivatives(void **state) {
  (void)state;
  /* Soboleva's parameter derivatives carry powers of x (∂³f/∂a³ ~ x³ e^{(a−c)x}): at
   * x = 500 the central difference's own truncation error h²/6·x³ ≈ 4e-6 relative exceeds
   * the tolerance, so its learned parameters are checked at |x| = 50 and 5 (error ≈ 4e-8) and
   * its x-derivatives at 500 with fixed parameters. */
  for (int act = 0; act <= DPT_ACT_COUNT; ++act) {
    bool sob_learned = act == DPT_ACT_COUNT;
    const dpt_act_info *info = dpt_act_get(sob_learned ? DPT_ACT_SOBOLEVA : (dpt_act)act);
    act_graph a;
    bool learn = sob_learned || (info->learnable && act != DPT_ACT_SOBOLEVA);
    make_act_graph(&a, sob_learned ? DPT_ACT_SOBOLEVA : (dpt_act)act, learn, false, info->param_defaults);
    double th[N * K + 4];
    const double pts[4] = {50, -50, sob_learned ? 5 : 500, sob_learned ? -5 : -500};
    for (int i = 0; i < N * K; ++i) th[i] = pts[i % 4];
    for (size_t i = N * K; i < a.np; ++i) th[i] = a.fixed[i - N * K];
    char what[64];
    snprintf(what, sizeof what, "act %s%s at |x| = 50, 500", info->name, learn ? " learned" : "");
    assert_check(check_graph(a.g, th, a.np, 13), what);
    dpt_graph_destroy(&a.g);
  }
}

/* |x| = 50 and 500: value, gradient and H·v finite for every activation. */
static void test_act_awkward(void **state) {
  (void)state;
  for (int act = 0; act < DPT_ACT_COUNT; ++act) {
    const dpt_act_info *info = dpt_act_get((dpt_act)act);
    act_graph a;
    make_act_graph(&a, (dpt_act)act, info->learnable, false, info->param_defaults);
    double th[N * K + 4], gr[N * K + 4], v[N * K + 4], hv[N * K + 4] = {0};
    const double pts[4] = {50, -50, 500, -500};
    for (int i = 0; i < N * K; ++i) th[i] = pts[i % 4];
    for (size_t i = N * K; i < a.np; ++i) th[i] = a.fixed[i - N * K];
    for (size_t i = 0; i < a.np; ++i) v[i] = 1;
    graph_grad(a.g, th, a.np, gr);
    dpt_graph_bind_flat(a.g, th, NULL, v, hv);
    assert_dpt_ok(dpt_graph_hvp(a.g));
    assert_true(isfinite(a.g->nodes[a.g->n_nodes - 1].loss));
    for (size_t i = 0; i < a.np; ++i)
      if (!isfinite(gr[i]) || !isfinite(hv[i])) fail_msg("%s at |x| = 50/500: grad %g hv %g", info->name, gr[i], hv[i]);
    dpt_graph_destroy(&a.g);
  }
}

/* linear: x, W, b all PARAMs (every rule's every term), then tanh, then CE. */
static void test_linear(void **state) {
  (void)state;
  enum { IN = 3, OUT = 4 };
  for (int bias = 0; bias < 2; ++bias) {
    dpt_graph *g;
    int in[3], z, h, l;
    dpt_act_attr at = {DPT_ACT_TANH, false};
    dpt_loss_attr la = {DPT_LOSS_CE};
    assert_dpt_ok(dpt_graph_create(DPT_F64, &g));
    assert_dpt_ok(dpt_graph_param(g, N, IN, 0, &in[0]));
    assert_dpt_ok(dpt_graph_param(g, OUT, IN, N * IN, &in[1]));
    assert_dpt_ok(dpt_graph_param(g, 1, OUT, N * IN + OUT * IN, &in[2]));
    assert_dpt_ok(dpt_graph_op(g, &dpt_op_linear, in, 2 + bias, false, N, OUT, false, NULL, &z));
    assert_dpt_ok(dpt_graph_op(g, &dpt_op_act, &z, 1, false, N, OUT, false, &at, &h));
    assert_dpt_ok(dpt_graph_op(g, &dpt_op_loss, &h, 1, false, 1, 1, true, &la, &l));
    assert_dpt_ok(dpt_graph_finalize(g, 0));
    int32_t lab[N] = {3, 0, 1};
    dpt_targets y = {lab, NULL};
    g->run.y = &y;
    g->run.scale = 1.0 / N;
    size_t np = N * IN + OUT * IN + OUT;
    double th[N * IN + OUT * IN + OUT];
    uint64_t s = 5;
    for (size_t i = 0; i < np; ++i) th[i] = test_rand(&s);
    /* without bias the b PARAM is unused: its gradient must stay 0 (FD gives 0 too) */
    assert_check(check_graph(g, th, np, 8), bias ? "linear with bias" : "linear without bias");
    dpt_graph_destroy(&g);
  }
}

/* maxout k = 3 over distinct values; ties send the gradient to the lowest piece. */
static void test_maxout(void **state) {
  (void)state;
  enum { U = 2, P = 3 };
  dpt_graph *g;
  int x, y, l;
  dpt_maxout_attr ma = {P};
  dpt_loss_attr la = {DPT_LOSS_L2};
  assert_dpt_ok(dpt_graph_create(DPT_F64, &g));
  assert_dpt_ok(dpt_graph_param(g, N, U * P, 0, &x));
  assert_dpt_ok(dpt_graph_op(g, &dpt_op_maxout, &x, 1, false, N, U, false, &ma, &y));
  assert_dpt_ok(dpt_graph_op(g, &dpt_op_loss, &y, 1, false, 1, 1, true, &la, &l));
  assert_dpt_ok(dpt_graph_finalize(g, 0));
  double Y[N * U] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6};
  dpt_targets t = {NULL, Y};
  g->run.y = &t;
  g->run.scale = 1;
  /* distinct values 0.1 apart: the FD step 1e-5 never changes the arg-max */
  double th[N * U * P];
  for (int i = 0; i < N * U * P; ++i) th[i] = 0.1 * ((i * 7) % (N * U * P)) - 0.8;
  assert_check(check_graph(g, th, N * U * P, 9), "maxout");
  double tie[N * U * P] = {1, 1, 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, gr[N * U * P];
  graph_grad(g, tie, N * U * P, gr);
  /* row 0: unit 0 = max(1, 1, 0) -> piece 0 gets 2(1 − 0.1) = 1.8, piece 1 nothing;
   * unit 1 = max(2, 0, 2) -> piece 0 (column 3) gets 2(2 + 0.2) = 4.4. Exact sums. */
  assert_true(fabs(gr[0] - 1.8) < 1e-15 && gr[1] == 0 && gr[2] == 0);
  assert_true(fabs(gr[3] - 4.4) < 1e-15 && gr[4] == 0 && gr[5] == 0);
  dpt_graph_destroy(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_act_every_activation), cmocka_unit_test(test_act_kinks), cmocka_unit_test(test_act_awkward),
      cmocka_unit_test(test_act_awkward_derivatives),
      cmocka_unit_test(test_linear),               cmocka_unit_test(test_maxout),
  };
  return dpt_test_run(tests);
}

/* test_loss.c — the fused output+loss operators: value against the textbook formula,
 * reverse mode, forward mode and H·v vs central differences (float64), awkward logits
 * |z| = 50 and 500 (finite, exact limits), float32 finiteness, outputs and accuracy. */
#include <float.h>
#include <math.h>

#include "engine_check.h"

/* A graph z (PARAM [n, k], theta = logits) -> loss. */
typedef struct loss_graph {
  dpt_graph *g;
  dpt_loss_attr attr;
} loss_graph;

static dpt_graph *make_loss_graph(dpt_dtype t, dpt_loss_attr *attr, int64_t n, int64_t k) {
  dpt_graph *g;
  int z, l;
  assert_dpt_ok(dpt_graph_create(t, &g));
  assert_dpt_ok(dpt_graph_param(g, n, k, 0, &z));
  assert_dpt_ok(dpt_graph_op(g, &dpt_op_loss, &z, 1, false, 1, 1, true, attr, &l));
  assert_dpt_ok(dpt_graph_finalize(g, 0));
  return g;
}

/* Every loss at ordinary points: gradient, forward mode, H·v (tolerances: engine_check.h). */
static void test_loss_derivatives(void **state) {
  (void)state;
  enum { N = 4, K = 3 };
  uint64_t s = 17;
  double Y[N * K];
  int32_t cls[N] = {0, 2, 1, 2}, bin[N] = {1, 0, 0, 1};
  for (int i = 0; i < N * K; ++i) Y[i] = test_rand(&s);
  for (int kind = 0; kind < 3; ++kind) {
    dpt_loss_attr attr = {(dpt_loss_kind)kind};
    int64_t k = kind == DPT_LOSS_BCE ? 1 : K;
    dpt_graph *g = make_loss_graph(DPT_F64, &attr, N, k);
    dpt_targets y = {kind == DPT_LOSS_BCE ? bin : cls, Y};
    g->run.y = &y;
    g->run.scale = 0.25;
    double th[N * K];
    for (int i = 0; i < N * K; ++i) th[i] = 2 * test_rand(&s);
    assert_check(check_graph(g, th, (size_t)(N * k), 3), dpt_loss_names[kind]);
    /* the value: scale · Σ rows of the direct formula (no stabilisation needed at |z| < 2);
     * tolerance 1e-14: a few double roundings of O(1) terms */
    double ref = 0;
    for (int r = 0; r < N; ++r) {
      const double *z = th + r * k;
      if (kind == DPT_LOSS_L2)
        for (int j = 0; j < K; ++j) ref += (Y[r * K + j] - z[j]) * (Y[r * K + j] - z[j]);
      else if (kind == DPT_LOSS_BCE) {
        double p = 1 / (1 + exp(-z[0]));
        ref += -(bin[r] * log(p) + (1 - bin[r]) * log(1 - p));
      } else {
        double se = 0;
        for (int j = 0; j < K; ++j) se += exp(z[j]);
        ref += -log(exp(z[cls[r]]) / se);
      }
    }
    ref *= 0.25;
    double l = graph_loss(g, th);
    assert_true(fabs(l - ref) <= 1e-14 * fabs(ref));
    dpt_graph_destroy(&g);
  }
}

/* |z| = 50 and 500: finite values, gradients and H·v, equal to their exact limits. */
static void test_loss_awkward(void **state) {
  (void)state;
  int32_t one = 1, zero = 0, c0 = 0, c2 = 2;
  const double zs[] = {50, -50, 500, -500};
  for (int i = 0; i < 4; ++i) {
    double z = zs[i], g[3], hv[3], v[3] = {1, 1, 1};
    /* BCE, t = 1: ℓ = softplus(−z); t = 0: ℓ = softplus(z) */
    double l1 = dpt_loss_row(DPT_LOSS_BCE, 1, &z, one, NULL, g, v, hv);
    assert_true(isfinite(l1) && isfinite(g[0]) && isfinite(hv[0]));
    if (z > 0) {
      /* e^{−50} ≈ 2e-22: the loss is that small and the gradient −e^{−z}; rel. 1e-12 */
      assert_true(fabs(l1 - exp(-z)) <= 1e-12 * exp(-z));
      assert_true(fabs(g[0] + exp(-z)) <= 1e-12 * exp(-z));
    } else {
      assert_true(fabs(l1 + z) <= 1e-14 * fabs(z)); /* −z + log1p(e^{z}) = −z to double precision */
      assert_true(g[0] == -1.0 + 1 / (1 + exp(-z)) || fabs(g[0] + 1) < 1e-15);
    }
    double l0 = dpt_loss_row(DPT_LOSS_BCE, 1, &z, zero, NULL, g, NULL, NULL);
    assert_true(isfinite(l0) && fabs(l0 - fmax(z, 0) - log1p(exp(-fabs(z)))) <= 1e-14 * fmax(1, fabs(z)));
    /* CE over (z, 0, −z): label 0 -> lse − z; label 2 -> lse + z, lse = |z| + log1p(...) */
    double zz[3] = {z, 0, -z};
    double lc0 = dpt_loss_row(DPT_LOSS_CE, 3, zz, c0, NULL, g, v, hv);
    double lc2 = dpt_loss_row(DPT_LOSS_CE, 3, zz, c2, NULL, g, v, hv);
    assert_true(isfinite(lc0) && isfinite(lc2));
    double lse = fabs(z) + log1p(exp(-fabs(z)) + exp(-2 * fabs(z)));
    assert_true(fabs(lc0 - (lse - z)) <= 1e-13 * fmax(1, fabs(z)));
    assert_true(fabs(lc2 - (lse + z)) <= 1e-13 * fmax(1, fabs(z)));
    for (int j = 0; j < 3; ++j) assert_true(isfinite(g[j]) && isfinite(hv[j]));
    /* H·(1,1,1) = 0 for softmax (shift invariance), to rounding: |hv| < 1e-15 */
    for (int j = 0; j < 3; ++j) assert_true(fabs(hv[j]) < 1e-15);
  }
  /* the graph operator in both dtypes at |z| = 500: finite loss and gradient */
  for (int t = 0; t < 2; ++t) {
    dpt_loss_attr attr = {DPT_LOSS_CE};
    dpt_graph *g = make_loss_graph((dpt_dtype)t, &attr, 2, 3);
    int32_t lab[2] = {0, 2};
    dpt_targets y = {lab, NULL};
    g->run.y = &y;
    double th64[6] = {500, 0, -500, 500, 0, -500}, gr64[6] = {0};
    float th32[6] = {500, 0, -500, 500, 0, -500}, gr32[6] = {0};
    void *th = t ? (void *)th64 : (void *)th32, *gr = t ? (void *)gr64 : (void *)gr32;
    dpt_graph_bind_flat(g, th, gr, NULL, NULL);
    assert_dpt_ok(dpt_graph_forward(g));
    assert_dpt_ok(dpt_graph_backward(g, NULL, NULL));
    /* row 0: loss ≈ 0; row 1: loss 1000 (lse(500, 0, −500) − (−500)); rel. 1e-6 covers f32 */
    assert_true(fabs(g->nodes[1].loss - 1000.0) < 1e-6 * 1000);
    for (int i = 0; i < 6; ++i) assert_true(isfinite(dpt_vec_get((dpt_dtype)t, gr, (size_t)i)));
    /* gradient of row 1 = ρ − e_2 = (1, 0, −1) up to e^{−500} */
    assert_true(fabs(dpt_vec_get((dpt_dtype)t, gr, 3) - 1) < 1e-6 && fabs(dpt_vec_get((dpt_dtype)t, gr, 5) + 1) < 1e-6);
    dpt_graph_destroy(&g);
  }
}

/* Outputs after the output activation and the accuracy count. */
static void test_outputs(void **state) {
  (void)state;
  double z[4] = {0, 1, -2, 50}, out[4];
  dpt_output_apply(DPT_OUTPUT_SIGMOID, DPT_F64, 4, 1, z, out);
  /* σ(0) = 1/2 exactly; σ(1) to 1e-15 */
  assert_true(out[0] == 0.5 && fabs(out[1] - 1 / (1 + exp(-1.0))) < 1e-15 && out[3] <= 1.0);
  int32_t lab[4] = {0, 1, 0, 1};
  assert_int_equal(dpt_output_correct(DPT_OUTPUT_SIGMOID, DPT_F64, 4, 1, z, lab), 4); /* z > 0 ⇔ class 1 */
  double zs[6] = {1, 3, 2, 500, 500, -500}, ps[6];
  dpt_output_apply(DPT_OUTPUT_SOFTMAX, DPT_F64, 2, 3, zs, ps);
  /* rows sum to 1 within 2 ulps; the tie 500, 500 splits evenly */
  assert_true(fabs(ps[0] + ps[1] + ps[2] - 1) < 4e-16 && ps[3] == 0.5 && ps[4] == 0.5 && ps[5] == 0.0);
  int32_t cl[2] = {1, 0};
  assert_int_equal(dpt_output_correct(DPT_OUTPUT_SOFTMAX, DPT_F64, 2, 3, zs, cl), 2); /* tie -> lowest index */
  assert_int_equal(dpt_output_correct(DPT_OUTPUT_IDENTITY, DPT_F64, 2, 3, zs, cl), 0);
  float zf[2] = {-500, 500}, of[2];
  dpt_output_apply(DPT_OUTPUT_SIGMOID, DPT_F32, 2, 1, zf, of);
  assert_true(of[0] == 0.0f && of[1] == 1.0f);
}

/* Bad labels: a one-line error naming the row, in forward (before any gradient). */
static void test_bad_labels(void **state) {
  (void)state;
  dpt_loss_attr attr = {DPT_LOSS_BCE};
  dpt_graph *g = make_loss_graph(DPT_F64, &attr, 3, 1);
  int32_t lab[3] = {0, 1, 2};
  dpt_targets y = {lab, NULL};
  double th[3] = {0, 0, 0};
  g->run.y = &y;
  dpt_graph_bind_flat(g, th, NULL, NULL, NULL);
  assert_dpt_fails(dpt_graph_forward(g), DPT_ERR_INPUT, "labels: row 2: expected 0 or 1");
  dpt_targets none = {NULL, NULL};
  g->run.y = &none;
  assert_dpt_fails(dpt_graph_forward(g), DPT_ERR_INPUT, "expected class labels");
  dpt_graph_destroy(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loss_derivatives),
      cmocka_unit_test(test_loss_awkward),
      cmocka_unit_test(test_outputs),
      cmocka_unit_test(test_bad_labels),
  };
  return dpt_test_run(tests);
}

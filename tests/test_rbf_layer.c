/* test_rbf_layer.c — the rbf operator (reverse mode, forward mode, H·v vs central
 * differences, in float64, with the input x as a parameter so every rule is exercised), the
 * rbf layer in a model (config errors, f32 vs f64), and 2-step / 3-step learning on sin on
 * [−π, π] and on two moons, at 1–3 ranks.
 * dpt-test: ranks=1,2,3 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "engine_check.h"
#include "dptrain/config.h"
#include "dptrain/loss.h"
#include "dptrain/model.h"
#include "dptrain/rbf.h"

#define DPT_PI 3.14159265358979323846

/* ---- the operator ---------------------------------------------------------------------- */

enum { N = 4, D = 3, K = 5 };

/* x (PARAM [N, D]) , μ (PARAM [K, D]), σ (PARAM [1, K]) -> rbf -> ℓ2 vs Y, or (dense) a
 * linear map [K -> 2] and softmax + CE, so ȳ and R{ȳ} are not trivial. */
typedef struct rbf_graph {
  dpt_graph *g;
  dpt_loss_attr loss;
  dpt_targets y;
  double Y[N * K];
  int32_t labels[N];
} rbf_graph;

static void make_rbf_graph(rbf_graph *a, bool ce) {
  uint64_t s = 5;
  for (int i = 0; i < N * K; ++i) a->Y[i] = 0.5 + 0.5 * test_rand(&s);
  for (int i = 0; i < N; ++i) a->labels[i] = i % 2;
  a->loss.kind = ce ? DPT_LOSS_CE : DPT_LOSS_L2;
  a->y.labels = ce ? a->labels : NULL;
  a->y.values = ce ? NULL : a->Y;
  assert_dpt_ok(dpt_graph_create(DPT_F64, &a->g));
  int in[3], y, l;
  assert_dpt_ok(dpt_graph_param(a->g, N, D, 0, &in[0]));
  assert_dpt_ok(dpt_graph_param(a->g, K, D, N * D, &in[1]));
  assert_dpt_ok(dpt_graph_param(a->g, 1, K, N * D + K * D, &in[2]));
  assert_dpt_ok(dpt_graph_op(a->g, &dpt_op_rbf, in, 3, false, N, K, false, NULL, &y));
  if (ce) {
    int lin[2] = {y, -1};
    assert_dpt_ok(dpt_graph_param(a->g, 2, K, N * D + K * D + K, &lin[1]));
    assert_dpt_ok(dpt_graph_op(a->g, &dpt_op_linear, lin, 2, false, N, 2, false, NULL, &y));
  }
  assert_dpt_ok(dpt_graph_op(a->g, &dpt_op_loss, &y, 1, false, 1, 1, true, &a->loss, &l));
  assert_dpt_ok(dpt_graph_finalize(a->g, 0));
  a->g->run.y = &a->y;
  a->g->run.scale = 0.5;
}

static void test_op_derivatives(void **state) {
  (void)state;
  for (int ce = 0; ce < 2; ++ce) {
    rbf_graph a;
    make_rbf_graph(&a, ce);
    size_t np = N * D + K * D + K + (ce ? 2 * K : 0);
    double th[N * D + K * D + K + 2 * K];
    uint64_t s = 77;
    for (size_t i = 0; i < np; ++i) th[i] = test_rand(&s);
    /* widths in [0.6, 1.4]: away from 0, so every unit responds to the points in [−1, 1]³ */
    for (int i = 0; i < K; ++i) th[N * D + K * D + i] = 1.0 + 0.4 * test_rand(&s);
    assert_check(check_graph(a.g, th, np, 11), ce ? "rbf -> linear -> softmax+CE" : "rbf -> l2");
    dpt_graph_destroy(&a.g);
  }
}

/* The value is exp(−‖x − μ‖² / 2σ²) at a hand-computed point: x = (1, 2, 2), μ = 0, σ = 1.5
 * gives exp(−9 / 4.5) = e^−2. Tolerance 4 ulp (a GEMM, three additions and exp). */
static void test_op_value(void **state) {
  (void)state;
  dpt_graph *g;
  assert_dpt_ok(dpt_graph_create(DPT_F64, &g));
  int in[3], y;
  assert_dpt_ok(dpt_graph_param(g, 1, 3, 0, &in[0]));
  assert_dpt_ok(dpt_graph_param(g, 1, 3, 3, &in[1]));
  assert_dpt_ok(dpt_graph_param(g, 1, 1, 6, &in[2]));
  assert_dpt_ok(dpt_graph_op(g, &dpt_op_rbf, in, 3, false, 1, 1, false, NULL, &y));
  assert_dpt_ok(dpt_graph_finalize(g, 0));
  double th[7] = {1, 2, 2, 0, 0, 0, 1.5};
  dpt_graph_bind_flat(g, th, NULL, NULL, NULL);
  assert_dpt_ok(dpt_graph_forward(g));
  double v = ((double *)g->nodes[y].value)[0];
  assert_true(fabs(v - exp(-2.0)) <= 4 * DBL_EPSILON * exp(-2.0));
  dpt_graph_destroy(&g);
}

/* ---- data sets ---------------------------------------------------------------------------- */

/* n points of sin on [−π, π] (x evenly spaced), targets sin x. */
static void sine(int64_t n, double *X, double *Y) {
  for (int64_t i = 0; i < n; ++i) {
    X[i] = -DPT_PI + 2 * DPT_PI * (double)i / (double)(n - 1);
    Y[i] = sin(X[i]);
  }
}

/* Two interleaved half circles with N(0, 0.1²)-ish noise (uniform, sd 0.1), labels 0/1. */
static void moons(int64_t n, double *X, int32_t *lab) {
  uint64_t s = 3;
  for (int64_t i = 0; i < n; ++i) {
    double t = DPT_PI * dpt_test_uniform(&s);
    double nx = 0.35 * (2 * dpt_test_uniform(&s) - 1), ny = 0.35 * (2 * dpt_test_uniform(&s) - 1);
    if (i % 2 == 0) {
      X[2 * i] = cos(t) + 0.5 * nx;
      X[2 * i + 1] = sin(t) + 0.5 * ny;
      lab[i] = 0;
    } else {
      X[2 * i] = 1 - cos(t) + 0.5 * nx;
      X[2 * i + 1] = 0.5 - sin(t) + 0.5 * ny;
      lab[i] = 1;
    }
  }
}

static dpt_model *make_model(const char *ini, dpt_dtype t, int64_t n_in, int64_t n_out, dpt_task task,
                             dpt_config **cfg) {
  assert_dpt_ok(dpt_config_create(cfg));
  assert_dpt_ok(dpt_config_load_string(*cfg, ini, "t.ini"));
  dpt_model *m = NULL;
  assert_dpt_ok(dpt_model_create(*cfg, t, n_in, n_out, task, &m));
  assert_dpt_ok(dpt_model_init_params(m, 1));
  return m;
}

/* 3-step: full-batch Adam (β1 0.9, β2 0.999, ε 1e-8) on every parameter (the shape of the
 * training loop's step: gradients summed over ranks, the same step on every rank), steps of
 * size lr. Returns the mean loss at the end. */
static double train_all(dpt_model *m, const double *X, const dpt_targets *y, int64_t count, int64_t n, int steps,
                        double lr) {
  size_t np = dpt_model_num_params(m);
  double *p = dpt_model_params(m), *gr = dpt_model_grads(m), loss = 0;
  double *m1 = calloc(np, sizeof *m1), *m2 = calloc(np, sizeof *m2);
  for (int e = 1; e <= steps; ++e) {
    assert_dpt_ok(dpt_model_zero_grads(m));
    loss = 0;
    assert_dpt_ok(dpt_model_forward_backward(m, X, y, count, 1.0 / n, &loss, NULL, NULL));
    MPI_Allreduce(MPI_IN_PLACE, gr, (int)np, MPI_DOUBLE, MPI_SUM, dpt_test_world.comm);
    for (size_t i = 0; i < np; ++i) {
      m1[i] = 0.9 * m1[i] + 0.1 * gr[i];
      m2[i] = 0.999 * m2[i] + 0.001 * gr[i] * gr[i];
      double mh = m1[i] / (1 - pow(0.9, e)), vh = m2[i] / (1 - pow(0.999, e));
      p[i] -= lr * mh / (sqrt(vh) + 1e-8);
    }
  }
  free(m1), free(m2);
  loss = 0;
  assert_dpt_ok(dpt_model_evaluate(m, X, y, count, 1.0 / n, &loss, NULL, NULL));
  MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, dpt_test_world.comm);
  return loss;
}

/* ---- 2-step and 3-step learning ------------------------------------------------------------ */

static void test_sine_two_and_three_step(void **state) {
  (void)state;
  const int64_t n = 200;
  double X[200], Y[200];
  sine(n, X, Y);
  int64_t b, cnt;
  dpt_shard_range(n, dpt_test_world.size, dpt_test_world.rank, &b, &cnt);
  dpt_config *cfg;
  dpt_model *m = make_model("[model]\nlayers = 6\n[layer.0]\ntype = rbf\nplacement = kmeans++\nwidth = nearest\n"
                            "learn = 3step\n",
                            DPT_F64, 1, 1, DPT_TASK_REGRESSION, &cfg);
  dpt_targets y = {NULL, Y + b};
  dpt_rbf_fit_info info;
  assert_dpt_ok(dpt_rbf_fit(&dpt_test_world, m, cfg, X + b, &y, cnt, b, n, 9, &info));
  assert_dpt_ok(dpt_config_check_unused(cfg));
  assert_true(info.has_rbf && info.closed_form);
  assert_int_equal(info.rank, 7);
  assert_int_equal(info.frozen_count, 0); /* 3-step: nothing frozen */
  /* 2-step with 6 Gaussians fits sin to a mean squared error of 1.05e-3 (measured; the
   * bound 2e-3 fails for a wrong fit, e.g. the initial weights give ~0.5) */
  print_message("sine: 2-step loss %.3g\n", info.loss);
  assert_true(info.loss < 2e-3);
  /* the closed form is a minimum over the output weights: gradient w.r.t. W, b ≈ 0
   * (relative to the gradient scale 1; rounding of the normal equations ~1e-10) */
  assert_dpt_ok(dpt_model_zero_grads(m));
  double l = 0;
  assert_dpt_ok(dpt_model_forward_backward(m, X + b, &y, cnt, 1.0 / n, &l, NULL, NULL));
  double *gr = dpt_model_grads(m);
  size_t np = dpt_model_num_params(m);
  MPI_Allreduce(MPI_IN_PLACE, gr, (int)np, MPI_DOUBLE, MPI_SUM, dpt_test_world.comm);
  dpt_param_info wi;
  for (int i = 0; i < dpt_model_num_tensors(m); ++i) {
    dpt_model_tensor_info(m, i, &wi);
    if (wi.layer == 1)
      for (size_t j = 0; j < wi.count; ++j) assert_true(fabs(gr[wi.offset + j]) < 1e-6);
  }
  /* 3-step: training centers, widths and weights together lowers the loss further */
  double l3 = train_all(m, X + b, &y, cnt, n, 500, 0.01);
  print_message("sine: 3-step loss %.3g\n", l3);
  assert_true(l3 < 0.8 * info.loss);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
}

static void test_moons_two_and_three_step(void **state) {
  (void)state;
  const int64_t n = 300;
  double X[600];
  int32_t lab[300];
  moons(n, X, lab);
  int64_t b, cnt;
  dpt_shard_range(n, dpt_test_world.size, dpt_test_world.rank, &b, &cnt);
  dpt_config *cfg;
  dpt_model *m = make_model("[model]\nlayers = 8\n[layer.0]\ntype = rbf\nplacement = kmeans++\nwidth = spread\n"
                            "learn = 2step\nfit_epochs = 300\nfit_lr = 2\n",
                            DPT_F64, 2, 1, DPT_TASK_BINARY, &cfg);
  dpt_targets y = {lab + b, NULL};
  dpt_rbf_fit_info info;
  assert_dpt_ok(dpt_rbf_fit(&dpt_test_world, m, cfg, X + 2 * b, &y, cnt, b, n, 4, &info));
  assert_true(info.has_rbf && !info.closed_form);
  assert_int_equal(info.gd_steps, 300);
  /* 2-step froze centers and widths: they still equal the placement's */
  dpt_param_info ci;
  dpt_model_tensor_info(m, 2, &ci);
  assert_string_equal(ci.name, "layer_0/centers");
  assert_int_equal(info.frozen_offset, ci.offset);
  assert_int_equal(info.frozen_count, 8 * 2 + 8);
  double centers[16], widths[8];
  dpt_rbf_options o;
  assert_dpt_ok(dpt_rbf_options_read(cfg, "layer.0", 8, &o));
  double *Xs = X + 2 * b;
  dpt_rbf_data data = {.X = Xs, .count = cnt, .begin = b, .n = n, .d = 2};
  assert_dpt_ok(dpt_rbf_place(&dpt_test_world, &data, &o, 4, centers, widths));
  assert_memory_equal(centers, (double *)dpt_model_params(m) + ci.offset, sizeof centers);
  assert_memory_equal(widths, (double *)dpt_model_params(m) + ci.offset + 16, sizeof widths);
  /* the fit learned something: BCE well below log 2 (chance) */
  /* a resumed run gets the same frozen range and values without refitting */
  dpt_rbf_fit_info again;
  assert_dpt_ok(dpt_rbf_fit_resume(m, cfg, &again));
  assert_true(again.has_rbf && again.learn == DPT_RBF_LEARN_2STEP);
  assert_int_equal(again.frozen_offset, info.frozen_offset);
  assert_int_equal(again.frozen_count, info.frozen_count);
  assert_memory_equal(again.frozen_values, info.frozen_values, info.frozen_count * sizeof(double));
  dpt_rbf_fit_info_free(&again);
  dpt_rbf_fit_info_free(&info);
  assert_null(info.frozen_values);
  print_message("moons: 2-step loss %.3g\n", info.loss);
  assert_true(info.loss < 0.45);
  double l3 = train_all(m, X + 2 * b, &y, cnt, n, 500, 0.01);
  print_message("moons: 3-step loss %.3g\n", l3);
  assert_true(l3 < 0.8 * info.loss);
  /* accuracy after 3-step: the moons are separable up to the noise band; > 90% */
  int64_t correct = 0;
  double loss = 0;
  assert_dpt_ok(dpt_model_evaluate(m, X + 2 * b, &y, cnt, 1.0 / n, &loss, &correct, NULL));
  MPI_Allreduce(MPI_IN_PLACE, &correct, 1, MPI_INT64_T, MPI_SUM, dpt_test_world.comm);
  assert_true(correct > 0.9 * n);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
}

/* f32 model: the same 2-step fit as in f64 to float rounding (the placement is in float64
 * on the f32 rows; the weights differ by the f32 rounding of the features, ~1e-6 relative,
 * times the conditioning of the fit: 1e-3 on the loss leaves margin). */
static void test_f32_matches_f64(void **state) {
  (void)state;
  const int64_t n = 120;
  double X[120], Y[120];
  float Xf[120], Yf[120];
  sine(n, X, Y);
  for (int i = 0; i < n; ++i) Xf[i] = (float)X[i], Yf[i] = (float)Y[i];
  int64_t b, cnt;
  dpt_shard_range(n, dpt_test_world.size, dpt_test_world.rank, &b, &cnt);
  const char *ini = "[model]\nlayers = 5\n[layer.0]\ntype = rbf\nplacement = random_samples\nwidth = global\n"
                    "sigma = 0.9\nridge = 1e-6\n";
  dpt_config *c64, *c32;
  dpt_model *m64 = make_model(ini, DPT_F64, 1, 1, DPT_TASK_REGRESSION, &c64);
  dpt_model *m32 = make_model(ini, DPT_F32, 1, 1, DPT_TASK_REGRESSION, &c32);
  dpt_targets y64 = {NULL, Y + b}, y32 = {NULL, Yf + b};
  dpt_rbf_fit_info i64, i32;
  assert_dpt_ok(dpt_rbf_fit(&dpt_test_world, m64, c64, X + b, &y64, cnt, b, n, 2, &i64));
  assert_dpt_ok(dpt_rbf_fit(&dpt_test_world, m32, c32, Xf + b, &y32, cnt, b, n, 2, &i32));
  print_message("f64 loss %.6g, f32 loss %.6g\n", i64.loss, i32.loss);
  assert_true(fabs(i64.loss - i32.loss) < 1e-3 * fmax(i64.loss, 1e-2));
  dpt_rbf_fit_info_free(&i64);
  dpt_rbf_fit_info_free(&i32);
  dpt_model_destroy(&m64);
  dpt_model_destroy(&m32);
  dpt_config_destroy(&c64);
  dpt_config_destroy(&c32);
}

/* ---- config errors ------------------------------------------------------------------------- */

static void test_layer_config_errors(void **state) {
  (void)state;
  const char *bad[][2] = {
      {"[model]\nlayers = 4\n[layer.1]\ntype = rbf\n", "layer.1.type: rbf is a hidden layer"},
      {"[model]\nlayers = 4,3\n[layer.1]\ntype = rbf\n", "layer.1.type: rbf must be the first layer"},
      {"[model]\nlayers = 4\n[layer.0]\ntype = rbf\nplacement = kmeans\n", "layer.0.placement"},
      {"[model]\nlayers = 4\n[layer.0]\ntype = rbf\nsigma = 0\n", "layer.0.sigma"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    dpt_config *cfg;
    dpt_model *m = NULL;
    assert_dpt_ok(dpt_config_create(&cfg));
    assert_dpt_ok(dpt_config_load_string(cfg, bad[i][0], "t.ini"));
    assert_dpt_fails(dpt_model_create(cfg, DPT_F64, 2, 1, DPT_TASK_REGRESSION, &m), DPT_ERR_INPUT, bad[i][1]);
    assert_null(m);
    dpt_config_destroy(&cfg);
  }
  /* more centers than training rows: refused by the fit before any work, on every rank */
  dpt_config *cfg;
  dpt_model *m = make_model("[model]\nlayers = 20\n[layer.0]\ntype = rbf\n", DPT_F64, 1, 1, DPT_TASK_REGRESSION, &cfg);
  double X[10], Y[10];
  sine(10, X, Y);
  int64_t b, cnt;
  dpt_shard_range(10, dpt_test_world.size, dpt_test_world.rank, &b, &cnt);
  dpt_targets y = {NULL, Y + b};
  dpt_rbf_fit_info info;
  assert_dpt_fails(dpt_rbf_fit(&dpt_test_world, m, cfg, X + b, &y, cnt, b, 10, 1, &info), DPT_ERR_INPUT,
                   "layer.0.units: expected at most N = 10");
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_op_value),
      cmocka_unit_test(test_op_derivatives),
      cmocka_unit_test(test_sine_two_and_three_step),
      cmocka_unit_test(test_moons_two_and_three_step),
      cmocka_unit_test(test_f32_matches_f64),
      cmocka_unit_test(test_layer_config_errors),
  };
  return dpt_test_run(tests);
}

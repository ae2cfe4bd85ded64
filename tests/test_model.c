/* test_model.c — the model: config -> layers -> flat buffers; gradients, forward mode and
 * H·v of whole networks vs central differences (float64), dtype agreement, the ready
 * callback, short and empty batches, initialization, invalid configs. */
#include <math.h>
#include <stdio.h>

#include "engine_check.h"
#include "dptrain/config.h"
#include "dptrain/model.h"

static dpt_config *cfg_from(const char *text) {
  dpt_config *cfg;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "test.ini"));
  return cfg;
}

static dpt_model *model_from(const char *text, dpt_dtype t, int64_t n_in, int64_t n_out, dpt_task task) {
  dpt_config *cfg = cfg_from(text);
  dpt_model *m;
  assert_dpt_ok(dpt_model_create(cfg, t, n_in, n_out, task, &m));
  assert_dpt_ok(dpt_config_check_unused(cfg));
  dpt_config_destroy(&cfg);
  return m;
}

/* Random inputs and targets for n rows (labels or values by task). */
typedef struct batch {
  double *X, *Y;
  float *Xf, *Yf;
  int32_t *labels;
  int64_t n;
} batch;

static batch make_batch(int64_t n, int64_t n_in, int64_t n_out, dpt_task task, uint64_t seed) {
  batch b = {calloc((size_t)(n * n_in) + 1, 8), calloc((size_t)(n * n_out) + 1, 8), calloc((size_t)(n * n_in) + 1, 4),
             calloc((size_t)(n * n_out) + 1, 4), calloc((size_t)n + 1, 4), n};
  for (int64_t i = 0; i < n * n_in; ++i) b.Xf[i] = (float)(b.X[i] = 1.5 * test_rand(&seed));
  for (int64_t i = 0; i < n * n_out; ++i) b.Yf[i] = (float)(b.Y[i] = test_rand(&seed));
  for (int64_t r = 0; r < n; ++r) {
    uint64_t u = (uint64_t)((test_rand(&seed) + 1) * 1000);
    b.labels[r] = task == DPT_TASK_BINARY ? (int32_t)(u % 2) : (int32_t)(u % (uint64_t)n_out);
  }
  return b;
}
static void free_batch(batch *b) { free(b->X), free(b->Y), free(b->Xf), free(b->Yf), free(b->labels); }
static dpt_targets targets_of(const batch *b, dpt_task task, dpt_dtype t) {
  dpt_targets y = {NULL, NULL};
  if (task == DPT_TASK_REGRESSION)
    y.values = t == DPT_F32 ? (const void *)b->Yf : (const void *)b->Y;
  else
    y.labels = b->labels;
  return y;
}

static double model_loss(dpt_model *m, const batch *b, const dpt_targets *y, double scale) {
  double l = 0;
  assert_dpt_ok(dpt_model_evaluate(m, b->X, y, b->n, scale, &l, NULL, NULL));
  return l;
}

/* Gradient, forward mode and H·v of the model API vs central differences (float64). */
static check_result model_check(const char *text, int64_t n_in, int64_t n_out, dpt_task task, int64_t n) {
  dpt_model *m = model_from(text, DPT_F64, n_in, n_out, task);
  assert_dpt_ok(dpt_model_init_params(m, 7));
  size_t np = dpt_model_num_params(m);
  double *th = dpt_model_params(m), *g = dpt_model_grads(m);
  batch b = make_batch(n, n_in, n_out, task, 11);
  dpt_targets y = targets_of(&b, task, DPT_F64);
  double scale = 1.0 / (double)n, loss = 0;
  double *fd = calloc(np, 8), *v = calloc(np, 8), *hv = calloc(np, 8), *gp = calloc(np, 8), *gm = calloc(np, 8);
  check_result r;
  assert_dpt_ok(dpt_model_zero_grads(m));
  assert_dpt_ok(dpt_model_forward_backward(m, b.X, &y, n, scale, &loss, NULL, NULL));
  assert_true(fabs(loss - model_loss(m, &b, &y, scale)) <= 1e-14 * fabs(loss)); /* same arithmetic: equal to rounding */
  for (size_t i = 0; i < np; ++i) {
    double t = th[i], h = FD_H * fmax(1.0, fabs(t));
    th[i] = t + h;
    double lp = model_loss(m, &b, &y, scale);
    th[i] = t - h;
    double lm = model_loss(m, &b, &y, scale);
    th[i] = t;
    fd[i] = (lp - lm) / (2 * h);
  }
  r.grad = vec_rel_err(g, fd, np);
  uint64_t s = 5;
  for (size_t i = 0; i < np; ++i) v[i] = test_rand(&s);
  double jv = 0, ref = 0;
  assert_dpt_ok(dpt_model_jvp(m, b.X, &y, n, scale, v, &jv));
  for (size_t i = 0; i < np; ++i) ref += fd[i] * v[i];
  r.jvp = fabs(jv - ref) / fmax(fabs(ref), 1e-12);
  assert_dpt_ok(dpt_model_hvp(m, b.X, &y, n, scale, v, hv));
  for (int sign = 1; sign >= -1; sign -= 2) {
    for (size_t i = 0; i < np; ++i) th[i] += sign * FD_H * v[i];
    assert_dpt_ok(dpt_model_zero_grads(m));
    assert_dpt_ok(dpt_model_forward_backward(m, b.X, &y, n, scale, NULL, NULL, NULL));
    memcpy(sign > 0 ? gp : gm, g, np * 8);
    for (size_t i = 0; i < np; ++i) th[i] -= sign * FD_H * v[i];
  }
  for (size_t i = 0; i < np; ++i) fd[i] = (gp[i] - gm[i]) / (2 * FD_H);
  r.hvp = vec_rel_err(hv, fd, np);
  free(fd), free(v), free(hv), free(gp), free(gm);
  free_batch(&b);
  dpt_model_destroy(&m);
  return r;
}

static void test_gradients_regression(void **state) {
  (void)state;
  assert_check(model_check("[model]\nlayers = 4\nactivation = tanh\n", 3, 2, DPT_TASK_REGRESSION, 5), "3-4-2 tanh l2");
  assert_check(model_check("[model]\nlayers = 5,4\nactivation = softplus\n", 3, 2, DPT_TASK_REGRESSION, 6),
               "3-5-4-2 softplus l2");
  assert_check(model_check("[model]\nlayers =\n", 3, 1, DPT_TASK_REGRESSION, 4), "linear l2");
}

static void test_gradients_classification(void **state) {
  (void)state;
  assert_check(model_check("[model]\nlayers = 5\nactivation = sigmoid\n", 3, 1, DPT_TASK_BINARY, 7),
               "3-5-1 sigmoid bce");
  /* relu: random points are away from the kink (probability of |x| < h is ~1e-5 per unit) */
  assert_check(model_check("[model]\nlayers = 6,5\nactivation = relu\n", 4, 3, DPT_TASK_MULTICLASS, 6),
               "4-6-5-3 relu ce");
}

static void test_gradients_layer_types(void **state) {
  (void)state;
  assert_check(model_check("[model]\nlayers = 4,4\n[layer.0]\ntype = maxout\npieces = 3\n[layer.1]\nactivation = tanh\n",
                           3, 2, DPT_TASK_REGRESSION, 5),
               "maxout k=3");
  assert_check(model_check("[model]\nlayers = 4,4\nactivation = tanh\n[layer.1]\ntype = activation\nactivation = softplus\n",
                           3, 3, DPT_TASK_MULTICLASS, 5),
               "activation layer");
  assert_check(model_check("[model]\nlayers = 4\nactivation = prelu\n[layer.0]\nper_unit = true\nprelu.alpha = 0.3\n", 3,
                           2, DPT_TASK_REGRESSION, 6),
               "prelu learned per unit");
  assert_check(model_check("[model]\nlayers = 4\nactivation = prelu\n", 3, 1, DPT_TASK_BINARY, 6), "prelu learned shared");
}

/* float32 and float64 runs of the same model agree to float precision: the gradient's
 * relative error is bounded by ~depth·n·eps_f32 ≈ 1e-5 for these sizes; 1e-4 leaves margin. */
static void test_dtype_agreement(void **state) {
  (void)state;
  const char *text = "[model]\nlayers = 8,8\nactivation = tanh\n";
  dpt_model *m64 = model_from(text, DPT_F64, 5, 3, DPT_TASK_MULTICLASS);
  dpt_model *m32 = model_from(text, DPT_F32, 5, 3, DPT_TASK_MULTICLASS);
  assert_dpt_ok(dpt_model_init_params(m64, 3));
  assert_dpt_ok(dpt_model_init_params(m32, 3));
  size_t np = dpt_model_num_params(m64);
  assert_int_equal(np, dpt_model_num_params(m32));
  const double *p64 = dpt_model_params(m64);
  const float *p32 = dpt_model_params(m32);
  for (size_t i = 0; i < np; ++i) assert_true(p32[i] == (float)p64[i]); /* same draws, rounded once */
  batch b = make_batch(9, 5, 3, DPT_TASK_MULTICLASS, 2);
  dpt_targets y = targets_of(&b, DPT_TASK_MULTICLASS, DPT_F64);
  double l64 = 0, l32 = 0;
  assert_dpt_ok(dpt_model_zero_grads(m64));
  assert_dpt_ok(dpt_model_zero_grads(m32));
  assert_dpt_ok(dpt_model_forward_backward(m64, b.X, &y, 9, 1.0 / 9, &l64, NULL, NULL));
  assert_dpt_ok(dpt_model_forward_backward(m32, b.Xf, &y, 9, 1.0 / 9, &l32, NULL, NULL));
  assert_true(fabs(l64 - l32) < 1e-5 * fabs(l64));
  double *g32 = calloc(np, 8);
  for (size_t i = 0; i < np; ++i) g32[i] = ((float *)dpt_model_grads(m32))[i];
  double e = vec_rel_err(g32, dpt_model_grads(m64), np);
  if (!(e < 1e-4)) fail_msg("f32 vs f64 gradient rel. error %.3g (tol 1e-4)", e);
  free(g32);
  free_batch(&b);
  dpt_model_destroy(&m64);
  dpt_model_destroy(&m32);
}

/* The ready callback: one call per tensor, offsets increasing from 0 (last layer first),
 * covering the buffer exactly, also for an empty batch. */
typedef struct ready_log {
  size_t next;
  int calls;
  bool ordered;
} ready_log;
static void on_ready(void *ctx, size_t offset, size_t count) {
  ready_log *r = ctx;
  r->ordered = r->ordered && offset == r->next;
  r->next = offset + count;
  r->calls++;
}

static void test_ready_and_empty_batch(void **state) {
  (void)state;
  dpt_model *m = model_from("[model]\nlayers = 6,4\nactivation = prelu\n", DPT_F64, 3, 2, DPT_TASK_REGRESSION);
  assert_dpt_ok(dpt_model_init_params(m, 1));
  size_t np = dpt_model_num_params(m);
  batch b = make_batch(4, 3, 2, DPT_TASK_REGRESSION, 3);
  dpt_targets y = targets_of(&b, DPT_TASK_REGRESSION, DPT_F64);
  for (int64_t n = 4; n >= 0; n -= 4) {
    ready_log r = {0, 0, true};
    double loss = 0;
    assert_dpt_ok(dpt_model_zero_grads(m));
    assert_dpt_ok(dpt_model_forward_backward(m, b.X, &y, n, 0.25, &loss, on_ready, &r));
    assert_true(r.ordered);
    assert_int_equal(r.calls, dpt_model_num_tensors(m));
    assert_int_equal(r.next, np);
    if (n == 0) {
      assert_true(loss == 0.0);
      for (size_t i = 0; i < np; ++i) assert_true(((double *)dpt_model_grads(m))[i] == 0.0);
    }
  }
  /* n = 0 with X = NULL (a rank with no rows) */
  ready_log r = {0, 0, true};
  assert_dpt_ok(dpt_model_forward_backward(m, NULL, NULL, 0, 1.0, NULL, on_ready, &r));
  assert_int_equal(r.calls, dpt_model_num_tensors(m));
  free_batch(&b);
  dpt_model_destroy(&m);
}

/* A short batch after a long one reuses the graph and gives bitwise the result of a model
 * that only ever saw the short batch. */
static void test_short_batch(void **state) {
  (void)state;
  const char *text = "[model]\nlayers = 7\nactivation = tanh\n";
  dpt_model *a = model_from(text, DPT_F32, 4, 3, DPT_TASK_MULTICLASS), *b2 = model_from(text, DPT_F32, 4, 3, DPT_TASK_MULTICLASS);
  assert_dpt_ok(dpt_model_init_params(a, 9));
  assert_dpt_ok(dpt_model_init_params(b2, 9));
  batch b = make_batch(10, 4, 3, DPT_TASK_MULTICLASS, 4);
  dpt_targets y = targets_of(&b, DPT_TASK_MULTICLASS, DPT_F32);
  double la = 0, lb = 0;
  assert_dpt_ok(dpt_model_forward_backward(a, b.Xf, &y, 10, 0.1, &la, NULL, NULL));
  la = 0;
  assert_dpt_ok(dpt_model_zero_grads(a));
  assert_dpt_ok(dpt_model_forward_backward(a, b.Xf, &y, 3, 0.1, &la, NULL, NULL));
  assert_dpt_ok(dpt_model_forward_backward(b2, b.Xf, &y, 3, 0.1, &lb, NULL, NULL));
  assert_true(la == lb);
  assert_memory_equal(dpt_model_grads(a), dpt_model_grads(b2), dpt_model_num_params(a) * sizeof(float));
  free_batch(&b);
  dpt_model_destroy(&a);
  dpt_model_destroy(&b2);
}

/* The seed's linear example: θ0 = (bias 10, weight 5) of a 1 -> 1 layer; ℓ2 without ½. */
static void test_seed_linear(void **state) {
  (void)state;
  dpt_model *m = model_from("[layer.0]\nweights = 5\nbias = 10\n", DPT_F64, 1, 1, DPT_TASK_REGRESSION);
  assert_dpt_ok(dpt_model_init_params(m, 123));
  assert_int_equal(dpt_model_num_params(m), 2);
  dpt_param_info w, bi;
  dpt_model_tensor_info(m, 0, &w);
  dpt_model_tensor_info(m, 1, &bi);
  assert_string_equal(w.name, "layer_0/W");
  assert_string_equal(bi.name, "layer_0/b");
  double *p = dpt_model_params(m);
  assert_true(p[0] == 5.0 && p[1] == 10.0);
  /* x = (1, 2), y = (14, 21): residuals ŷ − y = (15 − 14, 20 − 21) = (1, −1); L = (1 + 1)/2 = 1;
   * ∂L/∂w = (2·1·1 + 2·(−1)·2)/2 = −1; ∂L/∂b = (2 − 2)/2 = 0. Exact in binary floating point. */
  double X[2] = {1, 2}, Y[2] = {14, 21}, loss = 0;
  dpt_targets y = {NULL, Y};
  assert_dpt_ok(dpt_model_forward_backward(m, X, &y, 2, 0.5, &loss, NULL, NULL));
  assert_true(loss == 1.0);
  double *g = dpt_model_grads(m);
  assert_true(g[0] == -1.0 && g[1] == 0.0);
  double out[2];
  int64_t correct = 0;
  assert_dpt_ok(dpt_model_evaluate(m, X, NULL, 2, 1.0, NULL, &correct, out));
  assert_true(out[0] == 15.0 && out[1] == 20.0 && correct == 0);
  dpt_model_destroy(&m);
}

static void test_layout_and_init(void **state) {
  (void)state;
  dpt_model *m = model_from("[model]\nlayers = 200,3\nactivation = relu\n[layer.1]\nactivation = prelu\n", DPT_F64, 50, 2,
                            DPT_TASK_MULTICLASS);
  const char *names[] = {"layer_2/W", "layer_2/b", "layer_1/prelu", "layer_1/W", "layer_1/b", "layer_0/W", "layer_0/b"};
  assert_int_equal(dpt_model_num_tensors(m), 7);
  size_t off = 0;
  for (int i = 0; i < 7; ++i) {
    dpt_param_info t;
    dpt_model_tensor_info(m, i, &t);
    assert_string_equal(t.name, names[i]);
    assert_int_equal(t.offset, off);
    off += t.count;
  }
  dpt_param_info w0;
  dpt_model_tensor_info(m, 5, &w0);
  assert_int_equal(w0.shape[0], 200);
  assert_int_equal(w0.shape[1], 50);
  assert_int_equal(off, dpt_model_num_params(m));
  assert_dpt_ok(dpt_model_init_params(m, 42));
  double *p = dpt_model_params(m);
  /* He init of layer_0/W: 10000 draws of N(0, 2/50); the sample variance is within
   * 4 standard errors (sqrt(2/10000) relative ≈ 1.4%, so 6%) of 0.04. */
  double s2 = 0;
  for (size_t i = 0; i < w0.count; ++i) s2 += p[w0.offset + i] * p[w0.offset + i];
  s2 /= (double)w0.count;
  assert_true(fabs(s2 / 0.04 - 1) < 0.06);
  dpt_param_info al;
  dpt_model_tensor_info(m, 2, &al);
  assert_true(p[al.offset] == 0.25); /* prelu default α */
  double first = p[0];
  assert_dpt_ok(dpt_model_init_params(m, 42));
  assert_true(p[0] == first); /* deterministic in the seed */
  assert_dpt_ok(dpt_model_init_params(m, 43));
  assert_true(p[0] != first);
  dpt_model_destroy(&m);
}

static void expect_error(const char *text, dpt_task task, int64_t n_out, const char *needle) {
  dpt_config *cfg = cfg_from(text);
  dpt_model *m = NULL;
  assert_dpt_fails(dpt_model_create(cfg, DPT_F32, 3, n_out, task, &m), DPT_ERR_INPUT, needle);
  assert_null(m);
  dpt_config_destroy(&cfg);
}

static void test_invalid_configs(void **state) {
  (void)state;
  expect_error("[model]\nactivation = swish\n", DPT_TASK_REGRESSION, 1, "model.activation");
  expect_error("[model]\nlayers = 4\n[layer.0]\nactivation = nope\n", DPT_TASK_REGRESSION, 1, "layer.0.activation");
  expect_error("[model]\nlayers = 4,0\n", DPT_TASK_REGRESSION, 1, "model.layers");
  expect_error("[model]\nlayers = 4\n[layer.0]\nunits = 0\n", DPT_TASK_REGRESSION, 1, "layer.0.units");
  expect_error("[model]\nlayers = 4\n[layer.0]\ntype = maxout\npieces = 1\n", DPT_TASK_REGRESSION, 1, "layer.0.pieces");
  expect_error("[model]\nloss = ce\n", DPT_TASK_REGRESSION, 1, "model.loss");
  expect_error("[model]\noutput = softmax\nloss = bce\n", DPT_TASK_MULTICLASS, 3, "model.loss");
  expect_error("[model]\noutput = sigmoid\n", DPT_TASK_MULTICLASS, 3, "model.output");
  expect_error("[model]\nlayers = 4\n[layer.2]\nunits = 3\n", DPT_TASK_REGRESSION, 1, "layer.2");
  expect_error("[layer.0]\nweights = 1,2\n", DPT_TASK_REGRESSION, 1, "layer.0.weights");
  expect_error("[layer.0]\ntype = conv\n", DPT_TASK_REGRESSION, 1, "layer.0.type");
  expect_error("[model]\nlayers = 4\n[layer.0]\nactivation = tanh\nlearn = true\n", DPT_TASK_REGRESSION, 1,
               "layer.0.learn");
}

/* Labels out of range are refused with the row named; evaluation counts correct rows. */
static void test_labels_and_accuracy(void **state) {
  (void)state;
  dpt_model *m = model_from("[layer.0]\nweights = 1,0,0, 0,1,0, 0,0,1\nbias = 0,0,0\n", DPT_F64, 3, 3,
                            DPT_TASK_MULTICLASS);
  assert_dpt_ok(dpt_model_init_params(m, 0));
  double X[6] = {3, 1, 0, 0, 0, 2}; /* arg-max 0 and 2 */
  int32_t good[2] = {0, 1}, bad[2] = {0, 3};
  dpt_targets y = {good, NULL};
  int64_t correct = 0;
  double loss = 0, out[6];
  assert_dpt_ok(dpt_model_evaluate(m, X, &y, 2, 1.0, &loss, &correct, out));
  assert_int_equal(correct, 1);
  /* softmax rows sum to 1 within a few double ulps */
  assert_true(fabs(out[0] + out[1] + out[2] - 1) < 1e-15);
  y.labels = bad;
  assert_dpt_fails(dpt_model_forward_backward(m, X, &y, 2, 1.0, &loss, NULL, NULL), DPT_ERR_INPUT, "row 1");
  dpt_model_destroy(&m);
}

/* Batches above the 4096-row chunk: gradients equal (to rounding) the sum of two calls split
 * elsewhere, ready is called once per tensor, outputs of rows past the first chunk are
 * right, and label errors name the row of the whole batch. Tolerance 1e-12 relative: the
 * split only reorders sums of ~4100 O(1) double terms. */
static void test_large_batch_chunks(void **state) {
  (void)state;
  const int64_t n = 4096 + 37;
  dpt_model *m = model_from("[model]\nlayers = 3\nactivation = tanh\n", DPT_F64, 2, 3, DPT_TASK_MULTICLASS);
  assert_dpt_ok(dpt_model_init_params(m, 4));
  batch b = make_batch(n, 2, 3, DPT_TASK_MULTICLASS, 6);
  dpt_targets y = targets_of(&b, DPT_TASK_MULTICLASS, DPT_F64);
  size_t np = dpt_model_num_params(m);
  double l1 = 0, l2 = 0, *g1 = calloc(np, 8);
  ready_log r = {0, 0, true};
  assert_dpt_ok(dpt_model_zero_grads(m));
  assert_dpt_ok(dpt_model_forward_backward(m, b.X, &y, n, 1.0 / (double)n, &l1, on_ready, &r));
  assert_int_equal(r.calls, dpt_model_num_tensors(m));
  memcpy(g1, dpt_model_grads(m), np * 8);
  assert_dpt_ok(dpt_model_zero_grads(m));
  dpt_targets y2 = {b.labels + 1000, NULL};
  assert_dpt_ok(dpt_model_forward_backward(m, b.X, &y, 1000, 1.0 / (double)n, &l2, NULL, NULL));
  assert_dpt_ok(dpt_model_forward_backward(m, b.X + 1000 * 2, &y2, n - 1000, 1.0 / (double)n, &l2, NULL, NULL));
  assert_true(fabs(l1 - l2) <= 1e-12 * fabs(l1));
  assert_true(vec_rel_err(g1, dpt_model_grads(m), np) < 1e-12);
  double *out = calloc((size_t)(n * 3), 8), one[3];
  assert_dpt_ok(dpt_model_evaluate(m, b.X, NULL, n, 1.0, NULL, NULL, out));
  assert_dpt_ok(dpt_model_evaluate(m, b.X + (n - 1) * 2, NULL, 1, 1.0, NULL, NULL, one));
  for (int j = 0; j < 3; ++j) assert_true(fabs(out[(n - 1) * 3 + j] - one[j]) <= 1e-15); /* BLAS may order a row's 2-term sums differently for 1 row: a few ulps of values <= 1 */
  b.labels[4100] = 7;
  assert_dpt_fails(dpt_model_evaluate(m, b.X, &y, n, 1.0, &l1, NULL, NULL), DPT_ERR_INPUT, "row 4100");
  free(out);
  free(g1);
  free_batch(&b);
  dpt_model_destroy(&m);
}

/* model.init: normal with init_std scales the draws; a value that is not a scheme is a model
 * file for the checkpoint module (not an error here) and the draws use the default (he for
 * relu): the same numbers as init = he. Draws are the same normals times the scale, so the
 * ratios are exact up to one rounding (1e-15). */
static void test_init_key(void **state) {
  (void)state;
  dpt_model *a = model_from("[model]\nlayers = 4\nactivation = relu\ninit = normal\ninit_std = 0.5\n", DPT_F64, 8, 1,
                            DPT_TASK_REGRESSION);
  dpt_model *b = model_from("[model]\nlayers = 4\nactivation = relu\ninit = out/model.h5\n", DPT_F64, 8, 1,
                            DPT_TASK_REGRESSION);
  dpt_model *c = model_from("[model]\nlayers = 4\nactivation = relu\ninit = he\n", DPT_F64, 8, 1, DPT_TASK_REGRESSION);
  assert_dpt_ok(dpt_model_init_params(a, 3));
  assert_dpt_ok(dpt_model_init_params(b, 3));
  assert_dpt_ok(dpt_model_init_params(c, 3));
  dpt_param_info w0;
  dpt_model_tensor_info(a, 2, &w0);
  assert_string_equal(w0.name, "layer_0/W");
  const double *pa = dpt_model_params(a), *pb = dpt_model_params(b), *pc = dpt_model_params(c);
  for (size_t i = w0.offset; i < w0.offset + w0.count; ++i) {
    assert_true(pb[i] == pc[i]);
    assert_true(fabs(pa[i] / pc[i] - 0.5 / sqrt(2.0 / 8)) < 1e-15);
  }
  dpt_model_destroy(&a);
  dpt_model_destroy(&b);
  dpt_model_destroy(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gradients_regression),     cmocka_unit_test(test_gradients_classification),
      cmocka_unit_test(test_gradients_layer_types),    cmocka_unit_test(test_dtype_agreement),
      cmocka_unit_test(test_ready_and_empty_batch),    cmocka_unit_test(test_short_batch),
      cmocka_unit_test(test_seed_linear),              cmocka_unit_test(test_layout_and_init),
      cmocka_unit_test(test_invalid_configs),          cmocka_unit_test(test_labels_and_accuracy),
      cmocka_unit_test(test_large_batch_chunks),       cmocka_unit_test(test_init_key),
  };
  return dpt_test_run(tests);
}

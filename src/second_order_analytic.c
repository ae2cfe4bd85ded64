/* second_order_analytic.c — analytic objectives for tests and demos (second_order.h). */
#include "dptrain/second_order.h"

#include <cblas.h>

/* f = ½ xᵀAx − bᵀx, ∇f = Ax − b, ∇²f = A. A [n, n] row-major symmetric. */
static dpt_status quad_eval(void *ctx, const double *x, double *f, double *g) {
  const dpt_quadratic *q = ctx;
  size_t n = q->n;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double ax = 0.0; /* (Ax)_i */
    for (size_t j = 0; j < n; ++j) ax += q->A[i * n + j] * x[j];
    sum += 0.5 * x[i] * ax - q->b[i] * x[i];
    if (g) g[i] = ax - q->b[i];
  }
  *f = sum;
  return DPT_OK;
}

static dpt_status quad_hvp(void *ctx, const double *x, const double *v, double *hv) {
  (void)x;
  const dpt_quadratic *q = ctx;
  int n = (int)q->n;
  cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, 1.0, q->A, n, v, 1, 0.0, hv, 1);
  return DPT_OK;
}

dpt_objective dpt_objective_quadratic(dpt_quadratic *q) {
  return (dpt_objective){.n = q->n, .ctx = q, .eval = quad_eval, .hvp = quad_hvp};
}

/* f = (1 − x)² + 100 (y − x²)²
 * ∇f = (−2(1 − x) − 400 x (y − x²), 200 (y − x²))
 * ∇²f = [[2 − 400 (y − x²) + 800 x², −400 x], [−400 x, 200]] */
static dpt_status rosen_eval(void *ctx, const double *x, double *f, double *g) {
  (void)ctx;
  double a = 1.0 - x[0], b = x[1] - x[0] * x[0];
  *f = a * a + 100.0 * b * b;
  if (g) {
    g[0] = -2.0 * a - 400.0 * x[0] * b;
    g[1] = 200.0 * b;
  }
  return DPT_OK;
}

static dpt_status rosen_hvp(void *ctx, const double *x, const double *v, double *hv) {
  (void)ctx;
  double h00 = 2.0 - 400.0 * (x[1] - x[0] * x[0]) + 800.0 * x[0] * x[0], h01 = -400.0 * x[0], h11 = 200.0;
  hv[0] = h00 * v[0] + h01 * v[1];
  hv[1] = h01 * v[0] + h11 * v[1];
  return DPT_OK;
}

dpt_objective dpt_objective_rosenbrock(void) {
  return (dpt_objective){.n = 2, .ctx = NULL, .eval = rosen_eval, .hvp = rosen_hvp};
}

/* f = x² − y², ∇f = (2x, −2y), ∇²f = diag(2, −2): a saddle at the origin. */
static dpt_status saddle_eval(void *ctx, const double *x, double *f, double *g) {
  (void)ctx;
  *f = x[0] * x[0] - x[1] * x[1];
  if (g) {
    g[0] = 2.0 * x[0];
    g[1] = -2.0 * x[1];
  }
  return DPT_OK;
}

static dpt_status saddle_hvp(void *ctx, const double *x, const double *v, double *hv) {
  (void)ctx;
  (void)x;
  hv[0] = 2.0 * v[0];
  hv[1] = -2.0 * v[1];
  return DPT_OK;
}

dpt_objective dpt_objective_saddle(void) {
  return (dpt_objective){.n = 2, .ctx = NULL, .eval = saddle_eval, .hvp = saddle_hvp};
}

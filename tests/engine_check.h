/* engine_check.h — finite-difference checks of a graph's reverse mode, forward mode and
 * H·v, shared by the engine's tests (test_ops, test_loss, test_graph, test_hvp).
 *
 * The graph's last node is a loss node; its PARAMs view a flat float64 buffer theta[np].
 *
 * Tolerances and why:
 *  - gradient and forward mode vs central differences with step h = 1e-5 (scaled by
 *    max(1, |θ_i|)): truncation error h²/6·|L'''| ~ 1e-11 and rounding eps·|L|/h ~ 1e-11
 *    relative for the O(1) losses used here, so a relative error below 1e-6 leaves four
 *    orders of margin while any wrong rule (a missing term, a wrong sign) gives O(1).
 *  - H·v vs central differences of the reverse-mode gradient, same h: the same error terms
 *    one derivative higher; the acceptance tolerance 1e-5 is used there.
 * Relative error of vectors: ||a − b||∞ / max(||b||∞, 1e-12) (an elementwise ratio is
 * meaningless for components that are 0 in exact arithmetic). */
#ifndef DPT_ENGINE_CHECK_H
#define DPT_ENGINE_CHECK_H

#include <math.h>
#include "testutil.h"
#include "dptrain/graph.h"
#include "dptrain/loss.h"

#define GRAD_TOL 1e-6
#define HVP_TOL 1e-5
#define FD_H 1e-5

static inline double vec_rel_err(const double *a, const double *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = fmax(num, fabs(a[i] - b[i]));
    den = fmax(den, fabs(b[i]));
  }
  return num / fmax(den, 1e-12);
}

static inline double graph_loss(dpt_graph *g, double *theta) {
  dpt_graph_bind_flat(g, theta, NULL, NULL, NULL);
  assert_dpt_ok(dpt_graph_forward(g));
  return g->nodes[g->n_nodes - 1].loss;
}

static inline void graph_grad(dpt_graph *g, double *theta, size_t np, double *grad) {
  memset(grad, 0, np * sizeof *grad);
  dpt_graph_bind_flat(g, theta, grad, NULL, NULL);
  assert_dpt_ok(dpt_graph_forward(g));
  assert_dpt_ok(dpt_graph_backward(g, NULL, NULL));
}

/* Deterministic pseudo-random values in [-1, 1). */
static inline double test_rand(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) * 0x1.0p-52 - 1.0;
}

/* Reverse mode, forward mode and H·v of g at theta vs central differences; returns the
 * three relative errors. */
typedef struct check_result {
  double grad, jvp, hvp;
} check_result;

static inline check_result check_graph(dpt_graph *g, double *theta, size_t np, uint64_t seed) {
  check_result r = {0, 0, 0};
  double *grad = calloc(np, sizeof *grad), *fd = calloc(np, sizeof *fd), *v = calloc(np, sizeof *v);
  double *hv = calloc(np, sizeof *hv), *gp = calloc(np, sizeof *gp), *gm = calloc(np, sizeof *gm);
  double *fdh = calloc(np, sizeof *fdh);
  assert_non_null(fdh);
  graph_grad(g, theta, np, grad);
  for (size_t i = 0; i < np; ++i) {
    double t = theta[i], h = FD_H * fmax(1.0, fabs(t));
    theta[i] = t + h;
    double lp = graph_loss(g, theta);
    theta[i] = t - h;
    double lm = graph_loss(g, theta);
    theta[i] = t;
    fd[i] = (lp - lm) / (2 * h);
  }
  r.grad = vec_rel_err(grad, fd, np);

  for (size_t i = 0; i < np; ++i) v[i] = test_rand(&seed);
  dpt_graph_bind_flat(g, theta, NULL, v, NULL);
  assert_dpt_ok(dpt_graph_forward(g));
  assert_dpt_ok(dpt_graph_jvp(g));
  double jv = g->nodes[g->n_nodes - 1].loss_tangent, ref = 0;
  for (size_t i = 0; i < np; ++i) ref += fd[i] * v[i];
  r.jvp = fabs(jv - ref) / fmax(fabs(ref), 1e-12);

  dpt_graph_bind_flat(g, theta, NULL, v, hv);
  assert_dpt_ok(dpt_graph_hvp(g));
  for (size_t i = 0; i < np; ++i) theta[i] += FD_H * v[i];
  graph_grad(g, theta, np, gp);
  for (size_t i = 0; i < np; ++i) theta[i] -= 2 * FD_H * v[i];
  graph_grad(g, theta, np, gm);
  for (size_t i = 0; i < np; ++i) theta[i] += FD_H * v[i];
  for (size_t i = 0; i < np; ++i) fdh[i] = (gp[i] - gm[i]) / (2 * FD_H);
  r.hvp = vec_rel_err(hv, fdh, np);
  free(grad), free(fd), free(v), free(hv), free(gp), free(gm), free(fdh);
  return r;
}

#define assert_check(res, what)                                                                      \
  do {                                                                                               \
    check_result r_ = (res);                                                                         \
    if (!(r_.grad < GRAD_TOL && r_.jvp < GRAD_TOL && r_.hvp < HVP_TOL))                               \
      fail_msg("%s: rel. errors grad %.3g jvp %.3g hvp %.3g (tol %.0e, %.0e, %.0e)", what, r_.grad,  \
               r_.jvp, r_.hvp, GRAD_TOL, GRAD_TOL, HVP_TOL);                                         \
  } while (0)

#endif

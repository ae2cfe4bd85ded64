/* so_demo.c — paths of gradient descent and the second-order methods of second_order.h on
 * analytic problems, for launch/second-order-demo.
 *   dpt-so-demo rosenbrock OUTDIR   GD, CG, BFGS, L-BFGS, Newton from (-1.2, 1)
 *   dpt-so-demo seed OUTDIR         the same on the seed lecture's regression
 *                                   y = 3x + 2 + U(-0.1, 0.1), N = 30, J = 1/(2N) sum r^2,
 *                                   from theta = (10, 5)
 *   dpt-so-demo saddle OUTDIR       Newton (undamped, full steps) and saddle-free Newton on
 *                                   x^2 - y^2 from (1, 0.01)
 * Writes OUTDIR/NAME.dat ("iter x y loss" per line), OUTDIR/grid.dat (the loss on a grid for
 * contours) and prints "NAME x y loss iterations evaluations" of each final point. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/second_order.h"

enum { NSEED = 30 };
static double seed_x[NSEED], seed_y[NSEED];

static dpt_status seed_eval(void *ctx, const double *t, double *f, double *g) {
  (void)ctx;
  double s = 0.0, g0 = 0.0, g1 = 0.0;
  for (int i = 0; i < NSEED; i++) {
    const double r = t[0] + t[1] * seed_x[i] - seed_y[i];
    s += r * r;
    g0 += r;
    g1 += r * seed_x[i];
  }
  *f = s / (2.0 * NSEED);
  if (g) {
    g[0] = g0 / NSEED;
    g[1] = g1 / NSEED;
  }
  return DPT_OK;
}
static dpt_status seed_hvp(void *ctx, const double *t, const double *v, double *hv) {
  (void)ctx;
  (void)t;
  double sx = 0.0, sxx = 0.0;
  for (int i = 0; i < NSEED; i++) sx += seed_x[i], sxx += seed_x[i] * seed_x[i];
  hv[0] = v[0] + sx / NSEED * v[1];
  hv[1] = sx / NSEED * v[0] + sxx / NSEED * v[1];
  return DPT_OK;
}

static double uniform(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static FILE *open_out(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.dat", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "dpt-so-demo: cannot write %s\n", path);
    exit(1);
  }
  return f;
}

static void die(void) {
  dpt_error_print(stderr);
  exit(1);
}

/* Gradient descent with a fixed step. */
static void run_gd(dpt_objective *obj, const double *x0, double lr, int iters, const char *dir) {
  double x[2] = {x0[0], x0[1]}, f, g[2];
  FILE *out = open_out(dir, "gd");
  for (int k = 0; k <= iters; k++) {
    if (dpt_objective_eval(obj, x, &f, g) != DPT_OK) die();
    fprintf(out, "%d %.17g %.17g %.17g\n", k, x[0], x[1], f);
    if (k == iters) break;
    x[0] -= lr * g[0];
    x[1] -= lr * g[1];
  }
  fclose(out);
  printf("gd %.9g %.9g %.6g %d %lld\n", x[0], x[1], f, iters, (long long)obj->n_evals);
}

/* A method of second_order.h one iteration at a time (its state carries over), logging x. */
static void run_method(dpt_objective *obj, const double *x0, dpt_so_method m, const char *name, int iters,
                       const char *dir) {
  dpt_so_options o;
  dpt_so_options_default(&o, m);
  /* x^2 - y^2 is unbounded below: the strong-Wolfe expansion would run to its step limit, so
   * saddle-free Newton takes plain Armijo steps from alpha = 1 there. */
  if (m == DPT_SO_SFN) o.line_search = DPT_LS_ARMIJO;
  o.max_iters = 1;
  o.tol_rel = 0.0;
  o.tol_grad = 1e-10;
  dpt_so_solver *s = NULL;
  if (dpt_so_create(&o, 2, &s) != DPT_OK) die();
  double x[2] = {x0[0], x0[1]}, f;
  FILE *out = open_out(dir, name);
  if (dpt_objective_eval(obj, x, &f, NULL) != DPT_OK) die();
  fprintf(out, "0 %.17g %.17g %.17g\n", x[0], x[1], f);
  int k = 0;
  for (k = 1; k <= iters; k++) {
    dpt_so_result r;
    if (dpt_so_minimize(s, obj, x, NULL, NULL, &r) != DPT_OK) die();
    if (r.iters == 0) break; /* converged or the line search cannot improve */
    fprintf(out, "%d %.17g %.17g %.17g\n", k, x[0], x[1], r.loss);
    f = r.loss;
  }
  fclose(out);
  dpt_so_destroy(&s);
  printf("%s %.9g %.9g %.6g %d %lld\n", name, x[0], x[1], f, k - 1, (long long)obj->n_evals);
}

static void grid(dpt_objective *obj, const char *dir, double x0, double x1, double y0, double y1) {
  FILE *out = open_out(dir, "grid");
  for (int i = 0; i <= 120; i++) {
    for (int j = 0; j <= 120; j++) {
      const double p[2] = {x0 + (x1 - x0) * i / 120.0, y0 + (y1 - y0) * j / 120.0};
      double f;
      if (obj->eval(obj->ctx, p, &f, NULL) != DPT_OK) die();
      fprintf(out, "%.9g %.9g %.9g\n", p[0], p[1], f);
    }
    fprintf(out, "\n");
  }
  fclose(out);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: dpt-so-demo rosenbrock|seed|saddle OUTDIR\n");
    return 2;
  }
  const char *dir = argv[2];
  static const dpt_so_method M[] = {DPT_SO_CG, DPT_SO_BFGS, DPT_SO_LBFGS, DPT_SO_NEWTON};
  static const char *const NAMES[] = {"cg", "bfgs", "lbfgs", "newton"};
  if (strcmp(argv[1], "rosenbrock") == 0 || strcmp(argv[1], "seed") == 0) {
    const bool rosen = argv[1][0] == 'r';
    dpt_objective proto = rosen ? dpt_objective_rosenbrock()
                                : (dpt_objective){.n = 2, .eval = seed_eval, .hvp = seed_hvp};
    if (!rosen) {
      uint64_t st = 2024;
      for (int i = 0; i < NSEED; i++) {
        seed_x[i] = uniform(&st);
        seed_y[i] = 3.0 * seed_x[i] + 2.0 + 0.2 * (uniform(&st) - 0.5);
      }
    }
    const double x0[2] = {rosen ? -1.2 : 10.0, rosen ? 1.0 : 5.0};
    dpt_objective obj = proto;
    /* GD: lr 1e-3 on Rosenbrock (stable: 2 / lambda_max along the valley ~ 2e-3), 0.5 on the
     * seed problem (lambda_max of its Hessian is about 1.4). */
    run_gd(&obj, x0, rosen ? 1e-3 : 0.5, rosen ? 5000 : 1000, dir);
    for (int i = 0; i < 4; i++) {
      obj = proto;
      run_method(&obj, x0, M[i], NAMES[i], 500, dir);
    }
    if (rosen) grid(&proto, dir, -2.0, 2.0, -1.0, 3.0);
    else grid(&proto, dir, -2.0, 12.0, -2.0, 8.0);
    return 0;
  }
  if (strcmp(argv[1], "saddle") == 0) {
    dpt_objective obj = dpt_objective_saddle();
    const double x0[2] = {1.0, 0.01};
    /* Newton: full steps x - H^-1 g with the indefinite H (dsysv), attracted to (0, 0). */
    double x[2] = {x0[0], x0[1]}, f = 0.0, g[2];
    FILE *out = open_out(dir, "newton");
    for (int k = 0; k <= 5; k++) {
      if (dpt_objective_eval(&obj, x, &f, g) != DPT_OK) die();
      fprintf(out, "%d %.17g %.17g %.17g\n", k, x[0], x[1], f);
      double H[4] = {2.0, 0.0, 0.0, -2.0}, p[2] = {-g[0], -g[1]};
      lapack_int piv[2];
      if (LAPACKE_dsysv(LAPACK_ROW_MAJOR, 'L', 2, 1, H, 2, piv, p, 1) != 0) return 1;
      x[0] += p[0];
      x[1] += p[1];
    }
    fclose(out);
    printf("newton %.9g %.9g %.6g 5 %lld\n", x[0], x[1], f, (long long)obj.n_evals);
    obj = dpt_objective_saddle();
    run_method(&obj, x0, DPT_SO_SFN, "sfn", 4, dir);
    grid(&obj, dir, -1.5, 1.5, -1.5, 1.5);
    return 0;
  }
  fprintf(stderr, "dpt-so-demo: unknown problem '%s' (expected rosenbrock, seed or saddle)\n", argv[1]);
  return 2;
}

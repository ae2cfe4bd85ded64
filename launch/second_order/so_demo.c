/* so_demo.c — dpt-so-demo SEED.h5 OUTDIR: writes the iterates of GD, CG, BFGS, L-BFGS and
 * Newton (second_order.h) on Rosenbrock from (−1.2, 1) and on the seed lecture's regression
 * (θ = (bias, weight) from (10, 5), the model-backed objective over SEED.h5), and of Newton
 * and saddle-free Newton on x² − y² from (1, 0.3), as OUTDIR/<problem>_<method>.dat
 * ("iter x y f" per line), with loss grids OUTDIR/<problem>_grid.dat for the contours, and
 * prints "<problem> <method> iters evals x y f" per run. Single process (MPI for the
 * dataset). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/dataset.h"
#include "dptrain/model.h"
#include "dptrain/second_order.h"

typedef struct path_log {
  FILE *f;
  int ib, iw; /* seed: indices of the bias and the weight in the flat buffer */
} path_log;

static void log_path(void *ctx, const dpt_so_iter *it) {
  path_log *l = ctx;
  fprintf(l->f, "%lld %.12g %.12g %.12g\n", (long long)it->iter, it->x[l->ib], it->x[l->iw], it->f);
}

static const dpt_so_method methods[] = {DPT_SO_GD, DPT_SO_CG, DPT_SO_BFGS, DPT_SO_LBFGS, DPT_SO_NEWTON};
static const char *const names[] = {"gd", "cg", "bfgs", "lbfgs", "newton"};

static dpt_status run_analytic(const char *out, const char *problem, dpt_objective obj, const double *x0,
                               dpt_so_options *o, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s_%s.dat", out, problem, name);
  path_log l = {fopen(path, "w"), 0, 1};
  DPT_CHECK(l.f, DPT_ERR_IO, "%s: cannot open for writing", path);
  dpt_so *s = NULL;
  double x[2] = {x0[0], x0[1]};
  dpt_so_result r;
  dpt_status st = dpt_so_create(o, 2, &s);
  if (st == DPT_OK) st = dpt_so_minimize(s, &obj, x, log_path, &l, &r);
  dpt_so_destroy(&s);
  fclose(l.f);
  DPT_CALL(st);
  printf("%s %s %lld %lld %.6f %.6f %.3e\n", problem, name, (long long)r.iters, (long long)r.evals, x[0], x[1], r.f);
  return DPT_OK;
}

static dpt_status grid(const char *out, const char *problem, dpt_objective obj, double x0, double x1, double y0,
                       double y1, int n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s_grid.dat", out, problem);
  FILE *f = fopen(path, "w");
  DPT_CHECK(f, DPT_ERR_IO, "%s: cannot open for writing", path);
  for (int i = 0; i <= n; ++i) {
    for (int j = 0; j <= n; ++j) {
      double x[2] = {x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * j / n}, v;
      dpt_status st = dpt_objective_eval(&obj, x, &v, NULL);
      if (st != DPT_OK) {
        fclose(f);
        return st;
      }
      fprintf(f, "%.9g %.9g %.9g\n", x[0], x[1], v);
    }
    fprintf(f, "\n");
  }
  fclose(f);
  return DPT_OK;
}

/* The seed's objective on (bias, weight) for the contour grid: the mean ℓ2 loss, evaluated
 * by the model over all rows. */
typedef struct seed_ctx {
  dpt_model *m;
  const double *X, *y;
  int64_t n;
  int ib, iw;
} seed_ctx;

static dpt_status seed_eval(void *ctx, const double *x, double *f, double *g) {
  (void)g;
  seed_ctx *s = ctx;
  double *p = dpt_model_params(s->m);
  p[s->ib] = x[0];
  p[s->iw] = x[1];
  *f = 0.0;
  dpt_targets t = {NULL, s->y};
  return dpt_model_evaluate(s->m, s->X, &t, s->n, 1.0 / (double)s->n, f, NULL, NULL);
}

static dpt_status run(const dpt_comm *c, const char *seed, const char *out) {
  dpt_status st = DPT_OK;
  dpt_config *cfg = NULL;
  dpt_dataset *ds = NULL;
  dpt_model *m = NULL;
  double *X = NULL, *y = NULL;
  int64_t *rows = NULL;
  /* Rosenbrock: every method from (−1.2, 1) with the strong Wolfe search */
  const double r0[2] = {-1.2, 1.0};
  for (int k = 0; k < 5; ++k) {
    dpt_so_options o;
    dpt_so_options_default(methods[k], &o);
    o.max_iters = k == 0 ? 5000 : 500;
    o.max_evals = 100000;
    o.tol_grad = 1e-8;
    DPT_TRY(run_analytic(out, "rosen", dpt_objective_rosenbrock(), r0, &o, names[k]));
  }
  DPT_TRY(grid(out, "rosen", dpt_objective_rosenbrock(), -2.0, 2.0, -1.0, 3.0, 120));
  /* x² − y² from (1, 0.3): Newton (unit steps) is attracted to the saddle; SFN escapes */
  const double s0[2] = {1.0, 0.3};
  for (int k = 0; k < 2; ++k) {
    dpt_so_options o;
    dpt_so_options_default(k ? DPT_SO_SFN : DPT_SO_NEWTON, &o);
    o.line_search = DPT_LS_NONE;
    o.max_iters = 3;
    o.tol_grad = 1e-12;
    DPT_TRY(run_analytic(out, "saddle", dpt_objective_saddle(), s0, &o, k ? "sfn" : "newton"));
  }
  DPT_TRY(grid(out, "saddle", dpt_objective_saddle(), -1.5, 1.5, -3.0, 3.0, 80));
  /* the seed lecture's regression: θ0 + θ1 x, ℓ2, θ = (10, 5) */
  DPT_TRY(dpt_config_create(&cfg));
  DPT_TRY(dpt_config_load_string(cfg,
                                 "[model]\nlayers =\noutput = identity\nloss = l2\n[layer.0]\nweights = 5\nbias = 10\n",
                                 "seed model"));
  DPT_TRY(dpt_dataset_open(c, seed, "train", &ds));
  DPT_TRY(dpt_model_create(cfg, DPT_F64, dpt_dataset_features(ds), dpt_dataset_outputs(ds), dpt_dataset_task(ds), &m));
  int ib = -1, iw = -1;
  for (int t = 0; t < dpt_model_num_tensors(m); ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    if (strcmp(info.name, "layer_0/b") == 0) ib = (int)info.offset;
    if (strcmp(info.name, "layer_0/W") == 0) iw = (int)info.offset;
  }
  DPT_TRY_CHECK(ib >= 0 && iw >= 0 && dpt_model_num_params(m) == 2, DPT_ERR_INTERNAL, "seed model: unexpected layout");
  for (int k = 0; k < 5; ++k) {
    DPT_TRY(dpt_model_init_params(m, 1));
    dpt_so_options o;
    dpt_so_options_default(methods[k], &o);
    o.max_iters = 200;
    o.tol_grad = 1e-10;
    char path[1024];
    snprintf(path, sizeof path, "%s/seed_%s.dat", out, names[k]);
    path_log l = {fopen(path, "w"), ib, iw};
    DPT_TRY_CHECK(l.f, DPT_ERR_IO, "%s: cannot open for writing", path);
    dpt_so_train_result r;
    st = dpt_second_order_train(c, &o, m, ds, log_path, &l, &r);
    fclose(l.f);
    DPT_TRY(st);
    const double *p = dpt_model_params(m);
    printf("seed %s %lld %lld %.6f %.6f %.3e\n", names[k], (long long)r.iters, (long long)r.evals, p[ib], p[iw],
           r.loss);
  }
  /* contour grid of the seed loss around the paths */
  int64_t n = dpt_dataset_rows(ds);
  DPT_TRY(dpt_alloc((size_t)n, sizeof *rows, "rows", &rows));
  DPT_TRY(dpt_alloc((size_t)n, sizeof *X, "X", &X));
  DPT_TRY(dpt_alloc((size_t)n, sizeof *y, "y", &y));
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  DPT_TRY(dpt_dataset_read_rows(ds, rows, n, DPT_F64, X, NULL, y));
  seed_ctx sc = {m, X, y, n, ib, iw};
  dpt_objective so = {.n = 2, .ctx = &sc, .eval = seed_eval};
  DPT_TRY(grid(out, "seed", so, -2.0, 12.0, -1.0, 7.0, 80));
done:
  dpt_free(&rows);
  dpt_free(&X);
  dpt_free(&y);
  dpt_model_destroy(&m);
  dpt_dataset_close(&ds);
  dpt_config_destroy(&cfg);
  return st;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: dpt-so-demo SEED.h5 OUTDIR\n");
    return 2;
  }
  dpt_comm_preinit(); /* Open MPI parameters (comm.h) */
  MPI_Init(&argc, &argv);
  dpt_comm c;
  dpt_status st = dpt_comm_init_world(&c);
  if (st == DPT_OK) st = run(&c, argv[1], argv[2]);
  if (st != DPT_OK) dpt_error_print(stderr);
  if (st == DPT_OK || dpt_error_code() != DPT_ERR_MPI) dpt_comm_finalize(&c);
  MPI_Finalize();
  return st == DPT_OK ? 0 : 1;
}

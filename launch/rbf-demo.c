/* rbf-demo.c — the two RBF demos behind launch/rbf-demo (built by that script against
 * build/libdptrain.a), run under MPI with the rows sharded over the ranks:
 *
 *   rbf-demo sine  OUTDIR   y = sin(x) + noise on [−π, π]: 2-step fit (K-means++ centers,
 *                           spread widths, least squares), then 3-step (Adam on centers,
 *                           widths and weights); writes the data, both fits on a grid, and
 *                           each unit's weighted Gaussian.
 *   rbf-demo moons OUTDIR   two moons, binary: 2-step (centers, widths, then gradient descent
 *                           on the output weights), then 3-step; writes the points, the
 *                           centers and P(class 1) on a grid for both, for the decision
 *                           boundary (the 0.5 contour).
 *
 * Rank 0 writes the .dat files (whitespace columns, gnuplot's format) and prints the losses.
 * Everything here uses the public API: model.h, rbf.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/model.h"
#include "dptrain/rbf.h"

#define PI 3.14159265358979323846

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return (double)(mix(s) >> 11) * 0x1.0p-53; }

static FILE *out_file(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) fprintf(stderr, "rbf-demo: %s: cannot create\n", path);
  return f;
}

/* 3-step: full-batch Adam on every parameter, gradients summed over ranks. */
static dpt_status train_all(const dpt_comm *c, dpt_model *m, const double *X, const dpt_targets *y, int64_t count,
                            int64_t n, int steps, double lr, double *loss_out) {
  size_t np = dpt_model_num_params(m);
  double *p = dpt_model_params(m), *g = dpt_model_grads(m);
  double *m1 = calloc(np, sizeof *m1), *m2 = calloc(np, sizeof *m2);
  DPT_CHECK(m1 && m2, DPT_ERR_MEMORY, "rbf-demo: Adam state");
  dpt_status st = DPT_OK;
  for (int e = 1; e <= steps && st == DPT_OK; ++e) {
    double loss = 0;
    st = dpt_model_zero_grads(m);
    if (st == DPT_OK) st = dpt_model_forward_backward(m, X, y, count, 1.0 / (double)n, &loss, NULL, NULL);
    st = dpt_comm_agree(c, st);
    if (st != DPT_OK) break;
    MPI_Allreduce(MPI_IN_PLACE, g, (int)np, MPI_DOUBLE, MPI_SUM, c->comm);
    for (size_t i = 0; i < np; ++i) {
      m1[i] = 0.9 * m1[i] + 0.1 * g[i];
      m2[i] = 0.999 * m2[i] + 0.001 * g[i] * g[i];
      p[i] -= lr * (m1[i] / (1 - pow(0.9, e))) / (sqrt(m2[i] / (1 - pow(0.999, e))) + 1e-8);
    }
  }
  free(m1);
  free(m2);
  DPT_CALL(st);
  double loss = 0;
  DPT_CALL(dpt_comm_agree(c, dpt_model_evaluate(m, X, y, count, 1.0 / (double)n, &loss, NULL, NULL)));
  MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, c->comm);
  *loss_out = loss;
  return DPT_OK;
}

/* The model's outputs on rows G [ng, d] (every rank computes all; rank 0 writes). */
static dpt_status predict(dpt_model *m, const double *G, int64_t ng, double *out) {
  return dpt_model_evaluate(m, G, NULL, ng, 1.0, NULL, NULL, out);
}

static void centers_of(dpt_model *m, double *C, double *w, int64_t k, int64_t d) {
  for (int i = 0; i < dpt_model_num_tensors(m); ++i) {
    dpt_param_info t;
    dpt_model_tensor_info(m, i, &t);
    const double *p = (const double *)dpt_model_params(m) + t.offset;
    if (!strcmp(t.name, "layer_0/centers")) memcpy(C, p, (size_t)(k * d) * sizeof *C);
    if (!strcmp(t.name, "layer_0/widths")) memcpy(w, p, (size_t)k * sizeof *w);
  }
}

static double weight_of(dpt_model *m, int64_t i, int64_t k) {
  for (int t = 0; t < dpt_model_num_tensors(m); ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    if (!strcmp(info.name, "layer_1/W")) return ((const double *)dpt_model_params(m))[info.offset + (size_t)i];
  }
  (void)k;
  return 0;
}

static dpt_status demo(const dpt_comm *c, const char *which, const char *dir) {
  const bool sine = !strcmp(which, "sine");
  const int64_t n = sine ? 300 : 400, d = sine ? 1 : 2, k = sine ? 8 : 12;
  double *X = malloc((size_t)(n * d) * sizeof *X), *Y = malloc((size_t)n * sizeof *Y);
  int32_t *lab = malloc((size_t)n * sizeof *lab);
  DPT_CHECK(X && Y && lab, DPT_ERR_MEMORY, "rbf-demo: data");
  uint64_t s = 2024;
  for (int64_t i = 0; i < n; ++i) {
    if (sine) {
      X[i] = -PI + 2 * PI * unif(&s);
      Y[i] = sin(X[i]) + 0.1 * (2 * unif(&s) - 1);
    } else {
      double t = PI * unif(&s), nx = 0.15 * (2 * unif(&s) - 1), ny = 0.15 * (2 * unif(&s) - 1);
      lab[i] = (int32_t)(i % 2);
      X[2 * i] = (lab[i] ? 1 - cos(t) : cos(t)) + nx;
      X[2 * i + 1] = (lab[i] ? 0.5 - sin(t) : sin(t)) + ny;
    }
  }
  int64_t b, cnt;
  dpt_shard_range(n, c->size, c->rank, &b, &cnt);
  char ini[512];
  snprintf(ini, sizeof ini,
           "[model]\nlayers = %lld\n[layer.0]\ntype = rbf\nplacement = kmeans++\nwidth = %s\nwidth_factor = %s\n"
           "learn = 3step\nfit_epochs = 1000\nfit_lr = 2\n",
           (long long)k, sine ? "spread" : "nearest", sine ? "1.5" : "1");
  dpt_config *cfg = NULL;
  dpt_model *m = NULL;
  DPT_CALL(dpt_config_create(&cfg));
  DPT_CALL(dpt_config_load_string(cfg, ini, "rbf-demo"));
  DPT_CALL(dpt_model_create(cfg, DPT_F64, d, 1, sine ? DPT_TASK_REGRESSION : DPT_TASK_BINARY, &m));
  DPT_CALL(dpt_model_init_params(m, 1));
  dpt_targets y = {sine ? NULL : lab + b, sine ? Y + b : NULL};
  dpt_rbf_fit_info info;
  DPT_CALL(dpt_rbf_fit(c, m, cfg, X + b * d, &y, cnt, b, n, 7, &info));
  DPT_CALL(dpt_config_check_unused(cfg));

  /* grid */
  const int64_t gs = sine ? 400 : 120, ng = sine ? gs : gs * gs;
  double *G = malloc((size_t)(ng * d) * sizeof *G), *P2 = malloc((size_t)ng * sizeof *P2),
         *P3 = malloc((size_t)ng * sizeof *P3);
  double C2[64], w2[32], C3[64], w3[32], a2[32];
  DPT_CHECK(G && P2 && P3, DPT_ERR_MEMORY, "rbf-demo: grid");
  for (int64_t i = 0; i < ng; ++i) {
    if (sine) {
      G[i] = -PI + 2 * PI * (double)i / (double)(gs - 1);
    } else {
      G[2 * i] = -1.5 + 4.0 * (double)(i % gs) / (double)(gs - 1);
      G[2 * i + 1] = -1.0 + 2.5 * (double)(i / gs) / (double)(gs - 1);
    }
  }
  DPT_CALL(predict(m, G, ng, P2));
  centers_of(m, C2, w2, k, d);
  for (int64_t i = 0; i < k; ++i) a2[i] = weight_of(m, i, k);
  double loss3 = 0;
  DPT_CALL(train_all(c, m, X + b * d, &y, cnt, n, sine ? 2000 : 1500, 0.01, &loss3));
  DPT_CALL(predict(m, G, ng, P3));
  centers_of(m, C3, w3, k, d);

  if (c->rank == 0) {
    printf("rbf-demo %s: N = %lld rows on %d rank(s), %lld units; 2-step loss %.5g (%s), 3-step loss %.5g\n", which,
           (long long)n, c->size, (long long)k, info.loss, info.closed_form ? "least squares" : "gradient descent",
           loss3);
    FILE *f = out_file(dir, "data.dat");
    if (f) {
      for (int64_t i = 0; i < n; ++i)
        sine ? fprintf(f, "%.9g %.9g\n", X[i], Y[i]) : fprintf(f, "%.9g %.9g %d\n", X[2 * i], X[2 * i + 1], lab[i]);
      fclose(f);
    }
    f = out_file(dir, "fit.dat");
    if (f) {
      for (int64_t i = 0; i < ng; ++i) {
        if (sine) fprintf(f, "%.9g %.9g %.9g %.9g\n", G[i], P2[i], P3[i], sin(G[i]));
        else {
          fprintf(f, "%.9g %.9g %.9g %.9g\n", G[2 * i], G[2 * i + 1], P2[i], P3[i]);
          if (i % gs == gs - 1) fprintf(f, "\n"); /* gnuplot grid rows */
        }
      }
      fclose(f);
    }
    f = out_file(dir, "centers.dat");
    if (f) {
      for (int64_t i = 0; i < k; ++i)
        sine ? fprintf(f, "%.9g %.9g %.9g %.9g %.9g\n", C2[i], w2[i], a2[i], C3[i], w3[i])
             : fprintf(f, "%.9g %.9g %.9g %.9g %.9g %.9g\n", C2[2 * i], C2[2 * i + 1], w2[i], C3[2 * i],
                       C3[2 * i + 1], w3[i]);
      fclose(f);
    }
    if (sine) {
      /* each unit's contribution a_i exp(−(x − μ_i)² / 2σ_i²) of the 2-step fit */
      f = out_file(dir, "units.dat");
      if (f) {
        for (int64_t i = 0; i < k; ++i) {
          for (int64_t j = 0; j < gs; ++j) {
            double x = G[j];
            fprintf(f, "%.9g %.9g\n", x, a2[i] * exp(-(x - C2[i]) * (x - C2[i]) / (2 * w2[i] * w2[i])));
          }
          fprintf(f, "\n\n");
        }
        fclose(f);
      }
    }
  }
  free(X), free(Y), free(lab), free(G), free(P2), free(P3);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
  return DPT_OK;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  dpt_comm c;
  dpt_status st = dpt_comm_init_world(&c);
  if (st == DPT_OK && (argc != 3 || (strcmp(argv[1], "sine") && strcmp(argv[1], "moons"))))
    st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "usage: rbf-demo sine|moons OUTDIR");
  if (st == DPT_OK) st = demo(&c, argv[1], argv[2]);
  st = dpt_comm_agree(&c, st);
  if (st != DPT_OK && c.rank == 0) dpt_error_print(stderr);
  dpt_comm_finalize(&c);
  MPI_Finalize();
  return st == DPT_OK ? 0 : 1;
}

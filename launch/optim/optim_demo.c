/* optim_demo.c — dpt-optim-demo: the seed lecture's first-order optimizer examples, run
 * through dptrain's optimizers (optim.h), writing trajectories for launch/seed-optimizers
 * and launch/adaptive-demo to draw.
 *
 *   dpt-optim-demo seed DATA.h5 OUTDIR [--steps N]
 *       The seed's regression example: X [N, 1] and y [N, 1] (float64) from DATA.h5 (as
 *       written by `dpt-generate seed`), model ρ(x) = θ₀ + θ₁x, loss
 *       L(θ) = 1/N Σ (y_i − ρ(x_i))², full-batch gradient, θ0 = (10, 5), α = 0.005,
 *       N steps (1000): SGD, momentum (β = 0.6), Nesterov (β = 0.8).
 *   dpt-optim-demo quadratic OUTDIR [--steps N]
 *       A badly conditioned quadratic J(θ) = ½(0.1 θ₀² + 10 θ₁²) (condition number 100)
 *       from θ0 = (−9, 1.5), N steps (200): SGD (α = 0.19, just under the stability limit
 *       2/10), Adagrad (α = 1), RMSProp (α = 0.1), Adam (α = 0.3).
 *
 *   dpt-optim-demo bench [--n N] [--dtype f32|f64]
 *       Time of one optimizer step per type on N parameters (default 4194304), as memory
 *       traffic: the bytes of the arrays each rule streams (θ read+write, ∇J read, each state
 *       array read+write) divided by the best of 5 steps, reported as a ratio to the
 *       bandwidth of a triad a = b + s·c over arrays of the same size measured in the same
 *       run (a memory-bound rule cannot beat it, so 1.0 is the ceiling).
 *
 * For each method NAME (seed, quadratic) it writes OUTDIR/NAME.dat ("step theta0 theta1 loss", step 0 = θ0)
 * and prints "NAME theta0 theta1 loss" for the final step; OUTDIR/grid.dat holds the loss
 * on a grid ("theta0 theta1 loss", blank line between rows) for contour plots.
 * Exit status 0, or 1 with a one-line message. Serial: one process. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dptrain/config.h"
#include "dptrain/error.h"
#include "dptrain/optim.h"

typedef struct method {
  const char *name;
  const char *ini; /* [optimizer] section for dpt_optim_create */
} method;

/* The objective: loss and gradient at θ [2]. */
typedef struct problem {
  int64_t n;       /* seed: samples */
  double *x, *y;   /* seed: [n] each, owned */
  double a[2];     /* quadratic: curvatures (when x == NULL) */
} problem;

static double loss_grad(const problem *p, const double *th, double *g) {
  if (!p->x) { /* J = ½ Σ a_i θ_i² */
    if (g) {
      g[0] = p->a[0] * th[0];
      g[1] = p->a[1] * th[1];
    }
    return 0.5 * (p->a[0] * th[0] * th[0] + p->a[1] * th[1] * th[1]);
  }
  /* L = 1/N Σ r_i², r_i = y_i − θ₀ − θ₁x_i; ∂L/∂θ₀ = −2/N Σ r_i, ∂L/∂θ₁ = −2/N Σ r_i x_i */
  double l = 0, g0 = 0, g1 = 0;
  for (int64_t i = 0; i < p->n; ++i) {
    double r = p->y[i] - th[0] - th[1] * p->x[i];
    l += r * r;
    g0 += r;
    g1 += r * p->x[i];
  }
  if (g) {
    g[0] = -2.0 * g0 / (double)p->n;
    g[1] = -2.0 * g1 / (double)p->n;
  }
  return l / (double)p->n;
}

static int fail(const char *what) {
  fprintf(stderr, "dpt-optim-demo: error: %s\n", what);
  return 1;
}

/* Reads a float64 dataset of shape [n] or [n, 1] into a new array; n must be in [1, 10^6]
 * (checked before allocating). */
static int read_column(hid_t file, const char *path, const char *name, int64_t *n, double **out) {
  char msg[512];
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  if (ds < 0) {
    snprintf(msg, sizeof msg, "%s: dataset %s: expected it to exist, got none", path, name);
    return fail(msg);
  }
  hid_t space = H5Dget_space(ds);
  hsize_t dims[2] = {0, 0};
  int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (rank >= 1 && rank <= 2) H5Sget_simple_extent_dims(space, dims, NULL);
  int ok = (rank == 1 || (rank == 2 && dims[1] == 1)) && dims[0] >= 1 && dims[0] <= 1000000 &&
           (*n < 0 || (int64_t)dims[0] == *n);
  if (!ok) {
    snprintf(msg, sizeof msg, "%s: dataset %s: expected shape [N] or [N, 1] with 1 <= N <= 1000000%s, got rank %d [%llu, %llu]",
             path, name, *n < 0 ? "" : " matching X", rank, (unsigned long long)dims[0], (unsigned long long)dims[1]);
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return fail(msg);
  }
  *n = (int64_t)dims[0];
  *out = malloc((size_t)*n * sizeof(double));
  herr_t e = *out ? H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) : -1;
  H5Sclose(space);
  H5Dclose(ds);
  if (e < 0) {
    snprintf(msg, sizeof msg, "%s: dataset %s: cannot be read as float64", path, name);
    return fail(msg);
  }
  return 0;
}

static int load_seed(const char *path, problem *p) {
  char msg[512];
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages, not HDF5's stack dumps */
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    snprintf(msg, sizeof msg, "%s: cannot open as HDF5 (run: build/dpt-generate seed %s)", path, path);
    return fail(msg);
  }
  p->n = -1;
  int rc = read_column(file, path, "X", &p->n, &p->x) || read_column(file, path, "y", &p->n, &p->y);
  H5Fclose(file);
  return rc;
}

/* Runs one method from θ0 for steps steps, writing OUTDIR/NAME.dat; final θ in th. */
static int run_method(const problem *p, const method *m, const double *theta0, int64_t steps, const char *outdir,
                      double *th) {
  char path[4096], msg[4600];
  dpt_config *cfg = NULL;
  dpt_optim *o = NULL;
  FILE *f = NULL;
  int rc = 1;
  snprintf(path, sizeof path, "%s/%s.dat", outdir, m->name);
  if (dpt_config_create(&cfg) || dpt_config_load_string(cfg, m->ini, m->name) ||
      dpt_optim_create(cfg, DPT_F64, 2, &o) || dpt_config_check_unused(cfg)) {
    snprintf(msg, sizeof msg, "%s", dpt_error_message());
    fail(msg);
    goto done;
  }
  f = fopen(path, "w");
  if (!f) {
    snprintf(msg, sizeof msg, "%s: cannot open for writing", path);
    fail(msg);
    goto done;
  }
  th[0] = theta0[0];
  th[1] = theta0[1];
  fprintf(f, "# %s: step theta0 theta1 loss\n", m->name);
  fprintf(f, "0 %.17g %.17g %.17g\n", th[0], th[1], loss_grad(p, th, NULL));
  for (int64_t t = 1; t <= steps; ++t) {
    double g[2];
    if (dpt_optim_prepare(o, th)) break; /* Nesterov: θ + βv */
    loss_grad(p, th, g);
    if (dpt_optim_step(o, th, g)) break;
    fprintf(f, "%lld %.17g %.17g %.17g\n", (long long)t, th[0], th[1], loss_grad(p, th, NULL));
  }
  if (dpt_error_code() != DPT_OK) {
    snprintf(msg, sizeof msg, "%s", dpt_error_message());
    fail(msg);
    goto done;
  }
  if (fclose(f) != 0) {
    f = NULL;
    snprintf(msg, sizeof msg, "%s: cannot write", path);
    fail(msg);
    goto done;
  }
  f = NULL;
  printf("%-9s %.4f %.4f %.6g\n", m->name, th[0], th[1], loss_grad(p, th, NULL));
  rc = 0;
done:
  if (f) fclose(f);
  dpt_optim_destroy(&o);
  dpt_config_destroy(&cfg);
  return rc;
}

static int write_grid(const problem *p, const char *outdir, const double *lo, const double *hi) {
  char path[4096], msg[4200];
  snprintf(path, sizeof path, "%s/grid.dat", outdir);
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(msg, sizeof msg, "%s: cannot open for writing", path);
    return fail(msg);
  }
  const int K = 121;
  for (int i = 0; i < K; ++i) {
    for (int j = 0; j < K; ++j) {
      double th[2] = {lo[0] + (hi[0] - lo[0]) * i / (K - 1), lo[1] + (hi[1] - lo[1]) * j / (K - 1)};
      fprintf(f, "%.6g %.6g %.6g\n", th[0], th[1], loss_grad(p, th, NULL));
    }
    fputc('\n', f);
  }
  if (fclose(f) != 0) {
    snprintf(msg, sizeof msg, "%s: cannot write", path);
    return fail(msg);
  }
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Arrays streamed per parameter by each rule (read + write counted separately). */
static const struct {
  const char *ini;
  int streams;
} BENCH[] = {
    {"[optimizer]\ntype = sgd\n", 3},      /* θ rw, g r */
    {"[optimizer]\ntype = momentum\n", 5}, /* θ rw, g r, v rw */
    {"[optimizer]\ntype = nesterov\n", 10}, /* prepare: θ rw, keep w, v r; step: θ rw, keep r, g r, v rw */
    {"[optimizer]\ntype = adagrad\n", 5},  /* θ rw, g r, r rw */
    {"[optimizer]\ntype = rmsprop\n", 5},  /* θ rw, g r, r rw */
    {"[optimizer]\ntype = adadelta\n", 7}, /* θ rw, g r, r rw, s rw */
    {"[optimizer]\ntype = adam\n", 7},     /* θ rw, g r, m rw, v rw */
    {"[optimizer]\ntype = adamw\n", 7},
};

static int bench(int64_t n, dpt_dtype dtype) {
  const size_t es = dpt_dtype_size(dtype);
  const int reps = 5;
  char *a = calloc((size_t)n, es), *b = calloc((size_t)n, es), *c = calloc((size_t)n, es);
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    return fail("bench: out of memory");
  }
  /* triad a = b + s·c: 3 streams, the reference bandwidth */
  double best = INFINITY;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    if (dtype == DPT_F32) {
      float *x = (float *)a;
      const float *y = (const float *)b, *z = (const float *)c;
      for (int64_t i = 0; i < n; ++i) x[i] = y[i] + 0.5f * z[i];
    } else {
      double *x = (double *)a;
      const double *y = (const double *)b, *z = (const double *)c;
      for (int64_t i = 0; i < n; ++i) x[i] = y[i] + 0.5 * z[i];
    }
    double t = now() - t0;
    if (t < best) best = t;
  }
  const double triad_bw = 3.0 * (double)es * (double)n / best;
  /* keep the triad's result observable so it is not optimized away */
  double sink = dtype == DPT_F32 ? (double)((float *)a)[n - 1] : ((double *)a)[n - 1];
  printf("bench: n = %lld parameters, %s; triad a = b + s*c: %.2f GB/s (best of %d)%s\n", (long long)n,
         dpt_dtype_name(dtype), triad_bw / 1e9, reps, sink != 0 ? " " : "");
  printf("%-9s %12s %10s %12s %s\n", "type", "ns/param", "streams", "GB/s", "ratio to triad");
  /* gradient of ½‖θ‖²-like magnitude: small values keep every rule finite */
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == DPT_F32) ((float *)c)[i] = 1e-3f * (float)(i % 7);
    else ((double *)c)[i] = 1e-3 * (double)(i % 7);
  }
  int rc = 0;
  for (size_t k = 0; k < sizeof BENCH / sizeof BENCH[0] && !rc; ++k) {
    dpt_config *cfg = NULL;
    dpt_optim *o = NULL;
    if (dpt_config_create(&cfg) || dpt_config_load_string(cfg, BENCH[k].ini, "bench") ||
        dpt_optim_create(cfg, dtype, (size_t)n, &o)) {
      rc = fail(dpt_error_message());
    } else {
      best = INFINITY;
      for (int r = 0; r < reps + 1 && !rc; ++r) { /* the first step touches fresh state pages: not timed */
        double t0 = now();
        if (dpt_optim_prepare(o, b) || dpt_optim_step(o, b, c)) rc = fail(dpt_error_message());
        double t = now() - t0;
        if (r > 0 && t < best) best = t;
      }
      double bw = BENCH[k].streams * (double)es * (double)n / best;
      if (!rc)
        printf("%-9s %12.3f %10d %12.2f %.2f\n", dpt_optim_type_name(o), 1e9 * best / (double)n, BENCH[k].streams,
               bw / 1e9, bw / triad_bw);
    }
    dpt_optim_destroy(&o);
    dpt_config_destroy(&cfg);
  }
  free(a), free(b), free(c);
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "bench")) {
    int64_t n = 4194304;
    dpt_dtype dtype = DPT_F32;
    for (int i = 2; i < argc; i += 2) {
      if (i + 1 >= argc) return fail("bench: expected --n N or --dtype f32|f64");
      if (!strcmp(argv[i], "--n")) {
        char *end;
        long long v = strtoll(argv[i + 1], &end, 10);
        if (*end || v < 1 || v > (1LL << 31)) return fail("bench --n: expected an integer in [1, 2^31]");
        n = v;
      } else if (!strcmp(argv[i], "--dtype")) {
        if (dpt_dtype_parse(argv[i + 1], "bench --dtype", &dtype)) return fail(dpt_error_message());
      } else {
        return fail("bench: expected --n N or --dtype f32|f64");
      }
    }
    return bench(n, dtype);
  }
  if (argc < 3) {
    fprintf(stderr, "usage: dpt-optim-demo seed DATA.h5 OUTDIR [--steps N]\n"
                    "       dpt-optim-demo quadratic OUTDIR [--steps N]\n"
                    "       dpt-optim-demo bench [--n N] [--dtype f32|f64]\n");
    return 2;
  }
  const int seed = !strcmp(argv[1], "seed");
  if (!seed && strcmp(argv[1], "quadratic")) return fail("first argument: expected seed or quadratic");
  int next = seed ? 4 : 3;
  if (argc < next) return fail("missing OUTDIR");
  const char *outdir = argv[next - 1];
  int64_t steps = seed ? 1000 : 200;
  if (argc == next + 2 && !strcmp(argv[next], "--steps")) {
    char *end;
    long long v = strtoll(argv[next + 1], &end, 10);
    if (*end || v < 1 || v > 10000000) return fail("--steps: expected an integer in [1, 10000000]");
    steps = v;
  } else if (argc != next) {
    return fail("unexpected arguments (expected only --steps N after OUTDIR)");
  }

  problem p = {0};
  int rc = 0;
  if (seed) {
    static const method M[] = {
        {"sgd", "[optimizer]\ntype = sgd\nlr = 0.005\n"},
        {"momentum", "[optimizer]\ntype = momentum\nlr = 0.005\nmomentum = 0.6\n"},
        {"nesterov", "[optimizer]\ntype = nesterov\nlr = 0.005\nmomentum = 0.8\n"},
    };
    if (load_seed(argv[2], &p)) {
      free(p.x);
      free(p.y);
      return 1;
    }
    const double theta0[2] = {10.0, 5.0}, lo[2] = {0.0, 0.0}, hi[2] = {12.0, 6.0};
    for (size_t k = 0; k < sizeof M / sizeof M[0] && !rc; ++k) {
      double th[2];
      rc = run_method(&p, &M[k], theta0, steps, outdir, th);
    }
    if (!rc) rc = write_grid(&p, outdir, lo, hi);
  } else {
    static const method M[] = {
        {"sgd", "[optimizer]\ntype = sgd\nlr = 0.19\n"},
        {"adagrad", "[optimizer]\ntype = adagrad\nlr = 1.0\n"},
        {"rmsprop", "[optimizer]\ntype = rmsprop\nlr = 0.1\n"},
        {"adam", "[optimizer]\ntype = adam\nlr = 0.3\n"},
    };
    p.a[0] = 0.1;
    p.a[1] = 10.0;
    const double theta0[2] = {-9.0, 1.5}, lo[2] = {-10.0, -2.0}, hi[2] = {2.0, 2.0};
    for (size_t k = 0; k < sizeof M / sizeof M[0] && !rc; ++k) {
      double th[2];
      rc = run_method(&p, &M[k], theta0, steps, outdir, th);
    }
    if (!rc) rc = write_grid(&p, outdir, lo, hi);
  }
  free(p.x);
  free(p.y);
  return rc;
}

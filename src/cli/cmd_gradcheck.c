/* cmd_gradcheck.c — `dptrain gradcheck CONFIG --random [--key=value ...]`.
 *
 * Builds the configured model in float64 at a deterministic random point (parameters from
 * train.seed, inputs and targets from the same seed) and compares, per parameter tensor:
 *   reverse   the gradient of L = (1/n) Σ_rows ℓ against central differences
 *             (L(θ + h e_i) − L(θ − h e_i)) / 2h on up to gradcheck.samples coordinates;
 *   forward   the forward-mode derivative along a random direction supported on the tensor
 *             against the central difference of L along it;
 *   hvp       the tensor's slice of the exact H·v (v random over all parameters) against
 *             (∇L(θ + h v) − ∇L(θ − h v)) / 2h.
 * h = 1e-5 · max(1, |θ_i|) (1e-5 along v). Error of a tensor: max |a − b| over its entries /
 * max(max |b|, 1e-6 · max over the whole model |b|, 1e-12): components that are tiny next to
 * the model's largest are compared on the model's scale, where central differences are
 * meaningful. Exit 1 when an error exceeds gradcheck.tol (reverse, forward; default 1e-6)
 * or gradcheck.hvp_tol (default 1e-5).
 *
 * Data: the first gradcheck.rows rows of data.train (read collectively, as stored: no
 * standardization), or with --random deterministic random inputs and targets.
 * CONFIG may be a training config: keys of other modules ([train], [optimizer], [data] ...)
 * are ignored; unknown keys of [model], [layer.N] and [gradcheck] are errors.
 *
 * Keys (command line --gradcheck.KEY=V, or the short flags --random --rows):
 *   gradcheck.random = false   true: random inputs instead of data.train
 *   gradcheck.rows = 4         samples
 *   gradcheck.inputs = 3, gradcheck.outputs, gradcheck.task = regression|binary|multiclass
 *                              with --random: the shapes of the random data (outputs
 *                              default 1, or 3 for multiclass)
 *   gradcheck.samples = 64     coordinates checked per tensor by central differences
 * Every rank computes the same check (it is small); rank 0 prints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dptrain/dataset.h"
#include "dptrain/model.h"

typedef struct gc_data {
  int64_t n, n_in, n_out;
  dpt_task task;
  double *X, *Y;
  int32_t *labels;
  dpt_targets y;
} gc_data;

static double rnd(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) * 0x1.0p-52 - 1.0;
}

static double loss_at(dpt_model *m, const gc_data *d, dpt_status *st) {
  double l = 0;
  if (*st == DPT_OK) *st = dpt_model_evaluate(m, d->X, &d->y, d->n, 1.0 / (double)d->n, &l, NULL, NULL);
  return l;
}

static dpt_status grad_at(dpt_model *m, const gc_data *d, double *g) {
  DPT_CALL(dpt_model_zero_grads(m));
  DPT_CALL(dpt_model_forward_backward(m, d->X, &d->y, d->n, 1.0 / (double)d->n, NULL, NULL, NULL));
  memcpy(g, dpt_model_grads(m), dpt_model_num_params(m) * sizeof *g);
  return DPT_OK;
}

typedef struct gc_row {
  double rev, fwd, hvp;
} gc_row;

static double max_abs(const double *x, size_t n) {
  double a = 0;
  for (size_t i = 0; i < n; ++i) a = fmax(a, fabs(x[i]));
  return a;
}

static dpt_status check(dpt_model *m, const gc_data *d, int64_t samples, uint64_t seed, gc_row *rows) {
  dpt_status st = DPT_OK;
  size_t np = dpt_model_num_params(m);
  int nt = dpt_model_num_tensors(m);
  double *th = dpt_model_params(m);
  double *g = NULL, *fd = NULL, *v = NULL, *hv = NULL, *gp = NULL, *gm = NULL, *fdh = NULL;
  bool *sampled = NULL;
  DPT_TRY(dpt_calloc(np, sizeof *g, "gradient", &g));
  DPT_TRY(dpt_calloc(np, sizeof *fd, "differences", &fd));
  DPT_TRY(dpt_calloc(np, sizeof *v, "direction", &v));
  DPT_TRY(dpt_calloc(np, sizeof *hv, "H·v", &hv));
  DPT_TRY(dpt_calloc(np, sizeof *gp, "gradient", &gp));
  DPT_TRY(dpt_calloc(np, sizeof *gm, "gradient", &gm));
  DPT_TRY(dpt_calloc(np, sizeof *fdh, "differences", &fdh));
  DPT_TRY(dpt_calloc(np, sizeof *sampled, "samples", &sampled));
  DPT_TRY(grad_at(m, d, g));
  /* reverse mode: central differences on up to `samples` evenly spaced coordinates per tensor */
  for (int t = 0; t < nt; ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    size_t stride = info.count > (size_t)samples ? (info.count + (size_t)samples - 1) / (size_t)samples : 1;
    for (size_t k = 0; k < info.count; k += stride) {
      size_t i = info.offset + k;
      double t0 = th[i], h = 1e-5 * fmax(1.0, fabs(t0));
      th[i] = t0 + h;
      double lp = loss_at(m, d, &st);
      th[i] = t0 - h;
      double lm = loss_at(m, d, &st);
      th[i] = t0;
      DPT_TRY(st);
      fd[i] = (lp - lm) / (2 * h);
      sampled[i] = true;
    }
  }
  double gscale = 0;
  for (size_t i = 0; i < np; ++i)
    if (sampled[i]) gscale = fmax(gscale, fabs(fd[i]));
  for (int t = 0; t < nt; ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    double num = 0, den = 0;
    for (size_t i = info.offset; i < info.offset + info.count; ++i)
      if (sampled[i]) num = fmax(num, fabs(g[i] - fd[i])), den = fmax(den, fabs(fd[i]));
    rows[t].rev = num / fmax(fmax(den, 1e-6 * gscale), 1e-12);
  }
  /* forward mode: one direction per tensor */
  for (int t = 0; t < nt; ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    memset(v, 0, np * sizeof *v);
    for (size_t i = info.offset; i < info.offset + info.count; ++i) v[i] = rnd(&seed);
    double jv = 0, ref, lp, lm, dir = 0;
    DPT_TRY(dpt_model_jvp(m, d->X, &d->y, d->n, 1.0 / (double)d->n, v, &jv));
    for (size_t i = info.offset; i < info.offset + info.count; ++i) th[i] += 1e-5 * v[i];
    lp = loss_at(m, d, &st);
    for (size_t i = info.offset; i < info.offset + info.count; ++i) th[i] -= 2e-5 * v[i];
    lm = loss_at(m, d, &st);
    for (size_t i = info.offset; i < info.offset + info.count; ++i) th[i] += 1e-5 * v[i];
    DPT_TRY(st);
    ref = (lp - lm) / 2e-5;
    for (size_t i = info.offset; i < info.offset + info.count; ++i) dir += fabs(g[i] * v[i]);
    rows[t].fwd = fabs(jv - ref) / fmax(fmax(fabs(ref), 1e-6 * dir), 1e-12);
  }
  /* H·v with v over all parameters */
  for (size_t i = 0; i < np; ++i) v[i] = rnd(&seed);
  DPT_TRY(dpt_model_hvp(m, d->X, &d->y, d->n, 1.0 / (double)d->n, v, hv));
  for (size_t i = 0; i < np; ++i) th[i] += 1e-5 * v[i];
  DPT_TRY(grad_at(m, d, gp));
  for (size_t i = 0; i < np; ++i) th[i] -= 2e-5 * v[i];
  DPT_TRY(grad_at(m, d, gm));
  for (size_t i = 0; i < np; ++i) th[i] += 1e-5 * v[i];
  for (size_t i = 0; i < np; ++i) fdh[i] = (gp[i] - gm[i]) / 2e-5;
  double hscale = max_abs(fdh, np);
  for (int t = 0; t < nt; ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    double num = 0, den = 0;
    for (size_t i = info.offset; i < info.offset + info.count; ++i)
      num = fmax(num, fabs(hv[i] - fdh[i])), den = fmax(den, fabs(fdh[i]));
    rows[t].hvp = num / fmax(fmax(den, 1e-6 * hscale), 1e-12);
  }
done:
  dpt_free(&g), dpt_free(&fd), dpt_free(&v), dpt_free(&hv), dpt_free(&gp), dpt_free(&gm), dpt_free(&fdh);
  dpt_free(&sampled);
  return st;
}

/* Unknown keys of the sections gradcheck owns ([model], [layer.N], [gradcheck]) are errors;
 * keys of other modules (a training config) are marked read and ignored. The key is taken
 * from dpt_config_check_unused's message "<origin>: <key>: unknown key ...". */
static dpt_status check_unused_own_keys(dpt_config *cfg) {
  for (;;) {
    dpt_status st = dpt_config_check_unused(cfg);
    if (st == DPT_OK) return DPT_OK;
    const char *msg = dpt_error_message(), *end = strstr(msg, ": unknown key");
    char key[256];
    size_t len = 0;
    if (end) {
      const char *start = end;
      while (start > msg && !(start[-1] == ' ' && start - 1 > msg && start[-2] == ':')) --start;
      len = (size_t)(end - start);
      if (len > 0 && len < sizeof key) memcpy(key, start, len);
    }
    if (len == 0 || len >= sizeof key) return st;
    key[len] = '\0';
    if (!strncmp(key, "model.", 6) || !strncmp(key, "layer.", 6) || !strncmp(key, "gradcheck.", 10)) return st;
    dpt_error_clear();
    const char *ignored;
    DPT_CALL(dpt_config_get_string(cfg, key, NULL, &ignored));
  }
}

static dpt_status run(const dpt_comm *c, int argc, char **argv) {
  dpt_status st = DPT_OK;
  dpt_config *cfg = NULL;
  dpt_model *m = NULL;
  gc_data d = {0};
  gc_row *rows = NULL;
  dpt_dataset *ds = NULL;
  int64_t *ids = NULL;
  const char *pos[2];
  int npos = 0;
  static const char *const tasks[] = {"regression", "binary", "multiclass", NULL};
  DPT_TRY_TO(args, dpt_config_create(&cfg));
  DPT_TRY_TO(args, dpt_cli_apply_args(cfg, argc, argv, pos, 2, &npos));
  DPT_TRY_CHECK_TO(args, npos == 1, DPT_ERR_INPUT, "gradcheck: expected one CONFIG file argument, got %d", npos);
args:
  DPT_TRY(dpt_comm_agree(c, st)); /* the local phase: every rank goes on to the collectives, or none */
  DPT_TRY(dpt_cli_load_config(c, cfg, pos[0]));
  DPT_TRY(dpt_cli_apply_args(cfg, argc, argv, pos, 2, &npos)); /* the command line wins over the file */
  bool random;
  int task;
  int64_t samples, seed;
  double tol, hvp_tol;
  const char *train;
  DPT_TRY(dpt_config_get_bool(cfg, "gradcheck.random", false, &random));
  DPT_TRY(dpt_config_get_string(cfg, "data.train", NULL, &train));
  DPT_TRY_CHECK(random || train, DPT_ERR_INPUT,
                "gradcheck: data.train: expected a dataset file (or --random for random inputs), got none");
  DPT_TRY(dpt_config_get_int(cfg, "gradcheck.rows", 4, 1, 4096, &d.n));
  DPT_TRY(dpt_config_get_int(cfg, "gradcheck.samples", 64, 1, 1 << 30, &samples));
  DPT_TRY(dpt_config_get_double(cfg, "gradcheck.tol", 1e-6, 0, 1, DPT_RANGE_OPEN_LO, &tol));
  DPT_TRY(dpt_config_get_double(cfg, "gradcheck.hvp_tol", 1e-5, 0, 1, DPT_RANGE_OPEN_LO, &hvp_tol));
  DPT_TRY(dpt_config_get_int(cfg, "train.seed", 0, 0, INT64_MAX, &seed));
  uint64_t s = (uint64_t)seed * 2654435761ULL + 1;
  if (random) {
    DPT_TRY(dpt_config_get_int(cfg, "gradcheck.inputs", 3, 1, 1 << 20, &d.n_in));
    DPT_TRY(dpt_config_get_choice(cfg, "gradcheck.task", tasks, "regression", &task));
    d.task = (dpt_task)task;
    DPT_TRY(dpt_config_get_int(cfg, "gradcheck.outputs", d.task == DPT_TASK_MULTICLASS ? 3 : 1, 1, 1 << 20, &d.n_out));
  } else {
    DPT_TRY(dpt_dataset_open(c, train, "train", &ds));
    d.n = d.n < dpt_dataset_rows(ds) ? d.n : dpt_dataset_rows(ds);
    d.n_in = dpt_dataset_features(ds);
    d.n_out = dpt_dataset_outputs(ds);
    d.task = dpt_dataset_task(ds);
    DPT_TRY_CHECK(d.n >= 1, DPT_ERR_INPUT, "gradcheck: %s: expected at least one row, got none", train);
  }
  /* local steps (allocations can fail on one rank), agreed before the collective row read */
  st = dpt_model_create(cfg, DPT_F64, d.n_in, d.n_out, d.task, &m);
  if (st == DPT_OK) st = check_unused_own_keys(cfg);
  if (st == DPT_OK) st = dpt_calloc((size_t)(d.n * d.n_in), sizeof *d.X, "inputs", &d.X);
  if (st == DPT_OK) st = dpt_calloc((size_t)(d.n * d.n_out), sizeof *d.Y, "targets", &d.Y);
  if (st == DPT_OK) st = dpt_calloc((size_t)d.n, sizeof *d.labels, "labels", &d.labels);
  if (st == DPT_OK && !random) st = dpt_calloc((size_t)d.n, sizeof *ids, "row ids", &ids);
  DPT_TRY(dpt_comm_agree(c, st));
  if (random) {
    for (int64_t i = 0; i < d.n * d.n_in; ++i) d.X[i] = 2 * rnd(&s);
    for (int64_t i = 0; i < d.n * d.n_out; ++i) d.Y[i] = rnd(&s);
    for (int64_t r = 0; r < d.n; ++r)
      d.labels[r] = (int32_t)((uint64_t)((rnd(&s) + 1) * 1e6) % (uint64_t)(d.task == DPT_TASK_BINARY ? 2 : d.n_out));
  } else {
    for (int64_t r = 0; r < d.n; ++r) ids[r] = r;
    DPT_TRY(dpt_dataset_read_rows(ds, ids, d.n, DPT_F64, d.X, d.task == DPT_TASK_REGRESSION ? NULL : d.labels,
                                  d.task == DPT_TASK_REGRESSION ? d.Y : NULL));
  }
  d.y.labels = d.task == DPT_TASK_REGRESSION ? NULL : d.labels;
  d.y.values = d.task == DPT_TASK_REGRESSION ? d.Y : NULL;
  DPT_TRY(dpt_model_init_params(m, (uint64_t)seed));
  int nt = dpt_model_num_tensors(m);
  DPT_TRY(dpt_calloc((size_t)(nt ? nt : 1), sizeof *rows, "results", &rows));
  DPT_TRY(check(m, &d, samples, s, rows));
  if (c->rank == 0) {
    printf("gradcheck: %s, %lld %s rows, %lld -> %lld (%s), %zu parameters, float64\n", pos[0], (long long)d.n,
           random ? "random" : train, (long long)d.n_in, (long long)d.n_out, dpt_task_name(d.task),
           dpt_model_num_params(m));
    printf("%-24s %10s %12s %12s %12s\n", "tensor", "count", "reverse", "forward", "hvp");
    for (int t = 0; t < nt; ++t) {
      dpt_param_info info;
      dpt_model_tensor_info(m, t, &info);
      printf("%-24s %10zu %12.3e %12.3e %12.3e\n", info.name, info.count, rows[t].rev, rows[t].fwd, rows[t].hvp);
    }
    printf("tolerance: reverse and forward %.1e, hvp %.1e (relative to central differences)\n", tol, hvp_tol);
  }
  for (int t = 0; t < nt; ++t) {
    dpt_param_info info;
    dpt_model_tensor_info(m, t, &info);
    DPT_TRY_CHECK(rows[t].rev <= tol && rows[t].fwd <= tol && rows[t].hvp <= hvp_tol, DPT_ERR_NUMERIC,
                  "gradcheck: %s: relative errors reverse %.3e, forward %.3e, hvp %.3e: expected at most %.1e, %.1e, "
                  "%.1e",
                  info.name, rows[t].rev, rows[t].fwd, rows[t].hvp, tol, tol, hvp_tol);
  }
done:
  dpt_free(&rows);
  dpt_free(&ids);
  dpt_dataset_close(&ds);
  dpt_free(&d.X), dpt_free(&d.Y), dpt_free(&d.labels);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
  return st;
}

int dpt_cmd_gradcheck(const dpt_comm *c, int argc, char **argv) {
  for (int i = 1; i < argc; ++i)
    if (!strcmp(argv[i], "--help")) {
      if (c->rank == 0)
        printf("usage: dptrain gradcheck CONFIG [--random] [--rows N] [--gradcheck.inputs=N] [--gradcheck.outputs=K]\n"
               "       [--gradcheck.task=regression|binary|multiclass] [--gradcheck.samples=64]\n"
               "       [--gradcheck.tol=1e-6] [--gradcheck.hvp_tol=1e-5] [--key=value ...]\n"
               "Compares reverse mode, forward mode and H.v of the configured model with central\n"
               "finite differences in float64; prints the worst relative error per parameter tensor;\n"
               "exits 1 above tolerance.\n");
      return 0;
    }
  return dpt_cli_finish(c, run(c, argc, argv));
}

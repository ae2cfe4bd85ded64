/* eval_common.c — see eval_common.h. */
#include "eval_common.h"

#include <string.h>

#include "dptrain/watchdog.h"

enum { CHUNK_ROWS = 4096 };

dpt_status dpt_eval_read_plan(dpt_config *cfg, dpt_eval_plan *p) {
  DPT_CALL(dpt_config_get_int(cfg, "run.threads", 0, 0, 4096, &p->threads));
  DPT_CALL(dpt_config_get_double(cfg, "parallel.timeout", DPT_WATCHDOG_DEFAULT_TIMEOUT_S, 0.0, 1e9,
                                 DPT_RANGE_CLOSED, &p->timeout));
  return DPT_OK;
}

dpt_status dpt_eval_open(const dpt_comm *c, const dpt_eval_plan *p, const char *what, const char *model_path,
                         const char *data_path, dpt_loaded_model *lm, dpt_dataset **ds) {
  int used;
  if (p->timeout > 0) DPT_CALL(dpt_watchdog_find_peers(c)); /* the same command line on every rank */
  DPT_CALL(dpt_comm_agree(c, dpt_watchdog_start(p->timeout, c->rank))); /* a stalled rank (watchdog.h) */
  dpt_watchdog_enter(what, true); /* collective reads and writes, agreed per chunk */
  DPT_CALL(dpt_comm_set_blas_threads(c, (int)p->threads, &used));
  DPT_CALL(dpt_modelfile_load(c, model_path, lm));
  DPT_CALL(dpt_dataset_open(c, data_path, "train", ds));
  return DPT_OK;
}

static double get(dpt_dtype t, const void *p, int64_t i) {
  return t == DPT_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

static void set(dpt_dtype t, void *p, int64_t i, double v) {
  if (t == DPT_F64)
    ((double *)p)[i] = v;
  else
    ((float *)p)[i] = (float)v;
}

dpt_status dpt_eval_rows(const dpt_comm *c, dpt_loaded_model *lm, dpt_dataset *ds, dpt_eval_sums *sums, void **out,
                         int64_t *first, int64_t *count) {
  dpt_status st = DPT_OK;
  int64_t N = dpt_dataset_rows(ds), d = dpt_dataset_features(ds), k = dpt_dataset_outputs(ds);
  dpt_dtype dt = lm->dtype;
  size_t es = dpt_dtype_size(dt);
  bool regression = lm->task == DPT_TASK_REGRESSION;
  int64_t *rows = NULL;
  void *X = NULL, *values = NULL;
  int32_t *labels = NULL;
  memset(sums, 0, sizeof *sums);
  if (out) *out = NULL;
  DPT_CHECK(d == lm->n_in && dpt_dataset_task(ds) == lm->task && k == lm->n_out, DPT_ERR_INPUT,
            "dataset: %lld features, task %s, %lld outputs; the model expects %lld features, task %s, %lld outputs",
            (long long)d, dpt_task_name(dpt_dataset_task(ds)), (long long)k, (long long)lm->n_in,
            dpt_task_name(lm->task), (long long)lm->n_out);
  dpt_shard_range(N, c->size, c->rank, first, count);
  int64_t per_rank = (N + c->size - 1) / c->size, chunks = (per_rank + CHUNK_ROWS - 1) / CHUNK_ROWS;
  st = dpt_alloc(CHUNK_ROWS, sizeof *rows, "row ids", &rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)(CHUNK_ROWS * d), es, "inputs", &X);
  if (st == DPT_OK && regression) st = dpt_alloc((size_t)(CHUNK_ROWS * k), es, "targets", &values);
  if (st == DPT_OK && !regression) st = dpt_alloc(CHUNK_ROWS, sizeof *labels, "labels", &labels);
  if (st == DPT_OK && out) st = dpt_alloc((size_t)(*count * k), es, "outputs", out);
  DPT_TRY(dpt_comm_agree(c, st));
  for (int64_t ch = 0; ch < chunks; ++ch) { /* the same number of collective reads on every rank */
    int64_t b = ch * CHUNK_ROWS, n = *count - b;
    if (n < 0) n = 0;
    if (n > CHUNK_ROWS) n = CHUNK_ROWS;
    for (int64_t i = 0; i < n; ++i) rows[i] = *first + b + i;
    DPT_TRY(dpt_dataset_read_rows(ds, rows, n, dt, X, labels, values));
    if (lm->mean)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j)
          set(dt, X, i * d + j, (get(dt, X, i * d + j) - lm->mean[j]) / lm->std[j]);
    dpt_targets y = {labels, values};
    void *o = out ? (char *)*out + (size_t)(b * k) * es : NULL;
    st = n > 0 ? dpt_model_evaluate(lm->model, X, &y, n, 1.0 / (double)N, &sums->loss,
                                    regression ? NULL : &sums->correct, o)
               : DPT_OK;
    DPT_TRY(dpt_comm_agree(c, st));
    if (regression)
      for (int64_t i = 0; i < n * k; ++i) {
        double v = get(dt, values, i);
        sums->y_sum += v;
        sums->y_sq += v * v;
      }
  }
done:
  dpt_free(&rows);
  dpt_free(&X);
  dpt_free(&values);
  dpt_free(&labels);
  if (st != DPT_OK && out) dpt_free(out);
  return st;
}

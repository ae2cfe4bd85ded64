/* cmd_predict.c — `dptrain predict MODEL DATA --out FILE.h5`: the model's outputs (after the
 * output function: values, sigmoid probability, softmax probabilities) for every row of
 * DATA's /X, one row per input row in input order, written in parallel (each rank its
 * contiguous block of rows, collective HDF5) to dataset /outputs of FILE.h5, atomically
 * (tmp + rename). Classification also gets /predicted (class ids as float: arg-max, or
 * p > 0.5). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "eval_common.h"
#include "dptrain/watchdog.h"

static void usage(FILE *f) {
  fprintf(f, "usage: dptrain predict MODEL DATA --out FILE.h5 [--threads N] [--timeout S] [--section.key=value ...]\n"
             "       mpirun -n P dptrain predict MODEL DATA --out FILE.h5 ...\n\n"
             "Writes MODEL's outputs (after the output function) for every row of DATA's /X, in input\n"
             "order, to /outputs of FILE.h5 (classification also /predicted, the class ids), in\n"
             "parallel, atomically. --threads: BLAS threads per rank (run.threads, 0 = auto);\n"
             "--timeout: seconds without progress before the watchdog ends the job\n"
             "(parallel.timeout, default 600, 0 = never). Exit code 0 on success, 1 on any error.\n");
}

static dpt_status run(const dpt_comm *c, int argc, char **argv) {
  dpt_status st = DPT_OK;
  dpt_config *cfg = NULL;
  dpt_dataset *ds = NULL;
  dpt_ckpt_file *f = NULL;
  void *out = NULL, *pred = NULL;
  dpt_loaded_model lm;
  memset(&lm, 0, sizeof lm);
  const char *pos[2], *out_path = NULL;
  int npos = 0;
  dpt_eval_plan plan = {0};
  DPT_TRY_TO(args, dpt_config_create(&cfg));
  DPT_TRY_TO(args, dpt_cli_apply_args(cfg, argc, argv, pos, 2, &npos));
  DPT_TRY_CHECK_TO(args, npos == 2, DPT_ERR_INPUT, "predict: expected MODEL DATA --out FILE.h5");
  DPT_TRY_TO(args, dpt_config_get_string(cfg, "run.out", NULL, &out_path));
  DPT_TRY_CHECK_TO(args, out_path && *out_path, DPT_ERR_INPUT, "predict: --out FILE.h5 is required");
  DPT_TRY_TO(args, dpt_eval_read_plan(cfg, &plan));
  DPT_TRY_TO(args, dpt_config_check_unused(cfg));
args:
  DPT_TRY(dpt_comm_agree(c, st)); /* the local phase: every rank goes on to the collectives, or none */
  DPT_TRY(dpt_eval_open(c, &plan, "predicting", pos[0], pos[1], &lm, &ds));
  dpt_eval_sums s;
  int64_t first, count, N = dpt_dataset_rows(ds), k = lm.n_out;
  DPT_TRY(dpt_eval_rows(c, &lm, ds, &s, &out, &first, &count));
  DPT_TRY(dpt_ckpt_create(c, out_path, DPT_CKPT_FORMAT_PREDICTIONS, &f));
  int64_t shape[2] = {N, k};
  DPT_TRY(dpt_ckpt_put_rows(f, "outputs", lm.dtype, 2, shape, first, count, out));
  if (lm.task != DPT_TASK_REGRESSION) {
    DPT_TRY(dpt_comm_agree(c, dpt_alloc((size_t)count, sizeof(float), "predicted classes", &pred)));
    for (int64_t i = 0; i < count; ++i) {
      int64_t best = 0;
      double bv = -1;
      for (int64_t j = 0; j < k; ++j) {
        double v = lm.dtype == DPT_F64 ? ((double *)out)[i * k + j] : ((float *)out)[i * k + j];
        if (v > bv) bv = v, best = j;
      }
      ((float *)pred)[i] = k == 1 ? (float)(bv > 0.5) : (float)best;
    }
    int64_t pshape[1] = {N};
    DPT_TRY(dpt_ckpt_put_rows(f, "predicted", DPT_F32, 1, pshape, first, count, pred));
  }
  DPT_TRY(dpt_ckpt_put_string(f, "model", pos[0]));
  DPT_TRY(dpt_ckpt_put_string(f, "data", pos[1]));
  DPT_TRY(dpt_ckpt_commit(&f));
  if (c->rank == 0) {
    printf("predict: %lld rows x %lld outputs written to %s (/outputs)\n", (long long)N, (long long)k, out_path);
    fflush(stdout);
  }
done:
  dpt_watchdog_stop();
  dpt_ckpt_discard(&f);
  dpt_free(&out);
  dpt_free(&pred);
  dpt_dataset_close(&ds);
  dpt_loaded_model_free(&lm);
  dpt_config_destroy(&cfg);
  return st;
}

int dpt_cmd_predict(const dpt_comm *c, int argc, char **argv) {
  if (dpt_cli_wants_help(c, argc, argv, usage)) return 0;
  return dpt_cli_finish(c, run(c, argc, argv));
}

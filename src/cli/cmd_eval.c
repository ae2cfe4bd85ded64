/* cmd_eval.c — `dptrain eval MODEL DATA`: loss and accuracy (classification) or R²
 * (regression) of a model file or checkpoint on the /X, /y split of an HDF5 dataset, in
 * parallel, every sample exactly once; sums are reduced over ranks in double. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "eval_common.h"
#include "dptrain/watchdog.h"

static void usage(FILE *f) {
  fprintf(f, "usage: dptrain eval MODEL DATA [--threads N] [--timeout S] [--section.key=value ...]\n"
             "       mpirun -n P dptrain eval MODEL DATA ...\n\n"
             "Loss and accuracy (classification) or R^2 (regression) of MODEL (a model file or a\n"
             "checkpoint) on the /X, /y split of the HDF5 dataset DATA, every row once, in parallel.\n"
             "--threads: BLAS threads per rank (run.threads, 0 = auto); --timeout: seconds without\n"
             "progress before the watchdog ends the job (parallel.timeout, default 600, 0 = never).\n"
             "Exit code 0 on success, 1 on any error.\n");
}

static dpt_status run(const dpt_comm *c, int argc, char **argv) {
  dpt_status st = DPT_OK;
  dpt_config *cfg = NULL;
  dpt_dataset *ds = NULL;
  dpt_loaded_model lm;
  memset(&lm, 0, sizeof lm);
  const char *pos[2];
  int npos = 0;
  dpt_eval_plan plan = {0};
  DPT_TRY_TO(args, dpt_config_create(&cfg));
  DPT_TRY_TO(args, dpt_cli_apply_args(cfg, argc, argv, pos, 2, &npos));
  DPT_TRY_CHECK_TO(args, npos == 2, DPT_ERR_INPUT,
                   "eval: expected MODEL DATA (a model file or checkpoint, and an HDF5 dataset)");
  DPT_TRY_TO(args, dpt_eval_read_plan(cfg, &plan));
  DPT_TRY_TO(args, dpt_config_check_unused(cfg));
args:
  DPT_TRY(dpt_comm_agree(c, st)); /* the local phase: every rank goes on to the collectives, or none */
  DPT_TRY(dpt_eval_open(c, &plan, "evaluating", pos[0], pos[1], &lm, &ds));
  dpt_eval_sums s;
  int64_t first, count;
  st = dpt_eval_rows(c, &lm, ds, &s, NULL, &first, &count);
  DPT_TRY(dpt_comm_agree(c, st));
  double v[4] = {s.loss, (double)s.correct, s.y_sum, s.y_sq}, sse_scale;
  DPT_TRY_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_DOUBLE, MPI_SUM, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "eval: MPI_Allreduce failed");
  int64_t N = dpt_dataset_rows(ds);
  if (c->rank == 0) {
    printf("eval: %s on %s: %lld rows, %d rank(s)\n", pos[0], pos[1], (long long)N, c->size);
    printf("loss %.9g", v[0]);
    if (lm.task == DPT_TASK_REGRESSION) {
      /* ℓ2 loss is the mean over rows of the summed squared error: SSE = loss·N */
      double total = (double)N * (double)lm.n_out, sst = v[3] - v[2] * v[2] / total;
      sse_scale = v[0] * (double)N;
      printf("  r2 %.6f\n", sst > 0 ? 1.0 - sse_scale / sst : NAN);
    } else {
      printf("  accuracy %.6f  (%lld of %lld)\n", N ? v[1] / (double)N : NAN, (long long)v[1], (long long)N);
    }
    fflush(stdout);
  }
done:
  dpt_watchdog_stop();
  dpt_dataset_close(&ds);
  dpt_loaded_model_free(&lm);
  dpt_config_destroy(&cfg);
  return st;
}

int dpt_cmd_eval(const dpt_comm *c, int argc, char **argv) {
  if (dpt_cli_wants_help(c, argc, argv, usage)) return 0;
  return dpt_cli_finish(c, run(c, argc, argv));
}

/* cmd_train.c — `dptrain train CONFIG [--key=value ...]`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dptrain/train.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dptrain train CONFIG.ini [--section.key=value ...] [flags]\n"
          "       mpirun -n P dptrain train CONFIG.ini ...\n\n"
          "Trains the network described by CONFIG (INI: [data] [model] [layer.N] [train] [optimizer]\n"
          "[schedule] [parallel] [checkpoint] [run]) on the HDF5 dataset data.train. Any key can be set\n"
          "or overridden on the command line as --section.key=value (e.g. --optimizer.lr=0.01).\n"
          "Rank 0 prints the fully resolved config first. Unknown keys are errors.\n\nflags:\n");
  dpt_cli_print_aliases(f);
}

int dpt_cmd_train(const dpt_comm *c, int argc, char **argv) {
  if (dpt_cli_wants_help(c, argc, argv, usage)) return 0;
  dpt_config *cfg = NULL;
  const char *pos[2];
  int npos = 0;
  dpt_status st = dpt_config_create(&cfg);
  if (st == DPT_OK) st = dpt_cli_apply_args(cfg, argc, argv, pos, 2, &npos);
  if (st == DPT_OK && npos != 1)
    st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                       "train: expected one CONFIG file argument, got %d (see dptrain train --help)", npos);
  st = dpt_comm_agree(c, st); /* every rank reaches the collective load, or none */
  if (st == DPT_OK) {
    /* File first, then the command line again so it wins over the file. */
    dpt_config *file_cfg = NULL;
    st = dpt_config_create(&file_cfg);
    st = dpt_comm_agree(c, st);
    if (st == DPT_OK) st = dpt_cli_load_config(c, file_cfg, pos[0]);
    if (st == DPT_OK) st = dpt_cli_apply_args(file_cfg, argc, argv, pos, 2, &npos);
    dpt_config_destroy(&cfg);
    cfg = file_cfg;
  }
  int rc = dpt_cli_finish(c, st);
  if (rc != 0) {
    dpt_config_destroy(&cfg);
    return rc;
  }
  dpt_train_result res;
  st = dpt_train_run(c, cfg, &res, NULL, NULL);
  if (st == DPT_OK && c->rank == 0)
    printf("final: epochs %lld  steps %lld  train_loss %.6g  time %.3f s\n", (long long)res.epochs,
           (long long)res.steps, res.train_loss, res.seconds);
  dpt_config_destroy(&cfg);
  return dpt_cli_finish(c, st);
}

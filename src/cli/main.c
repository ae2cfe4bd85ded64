/* main.c — `dptrain <command>`: MPI set-up and dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct command {
  const char *name;
  int (*run)(const dpt_comm *c, int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"train", dpt_cmd_train, "train a model: dptrain train CONFIG [--key=value ...]"},
    {"eval", dpt_cmd_eval, "evaluate a model file on a dataset: dptrain eval MODEL DATA"},
    {"predict", dpt_cmd_predict, "write predictions: dptrain predict MODEL DATA --out FILE.h5"},
    {"convert", dpt_cmd_convert, "convert CSV, .npy or MNIST IDX files to dptrain's HDF5 layout"},
    {"inspect", dpt_cmd_inspect, "describe an HDF5 dataset: shapes, dtypes, balance, statistics"},
    {"gradcheck", dpt_cmd_gradcheck, "check reverse mode, forward mode and H.v against finite differences"},
    {"bench", dpt_cmd_bench, "benchmarks against this machine's own sgemm and MPI_Allreduce rates"},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
  fprintf(f,
          "usage: dptrain <command> [arguments]\n"
          "       mpirun -n P dptrain <command> [arguments]\n\n"
          "Data-parallel training of feed-forward and RBF networks (MPI, OpenBLAS, HDF5).\n\ncommands:\n");
  for (int i = 0; i < NCOMMANDS; ++i) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n`dptrain <command> --help` describes a command. Exit codes: 0 success, 1 error,\n"
             "%d stopped by a signal after writing a checkpoint (requeue the job).\n", DPT_EXIT_PREEMPTED);
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return argc < 2 ? 1 : 0;
  }
  const command *cmd = NULL;
  for (int i = 0; i < NCOMMANDS; ++i)
    if (!strcmp(argv[1], commands[i].name)) cmd = &commands[i];
  if (!cmd) {
    fprintf(stderr, "dptrain: error: unknown command '%s' (expected one of train, eval, predict, convert, inspect, "
                    "gradcheck, bench)\n", argv[1]);
    return 1;
  }
  dpt_comm_preinit(); /* Open MPI parameters (comm.h) */
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  dpt_comm c;
  int rc;
  if (dpt_comm_init_world(&c) != DPT_OK) {
    dpt_error_print(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
  rc = cmd->run(&c, argc - 1, argv + 1);
  dpt_comm_finalize(&c);
  MPI_Finalize();
  return rc;
}

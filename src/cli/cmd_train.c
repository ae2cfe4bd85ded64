/* cmd_train.c — `dptrain train CONFIG [--key=value ...]`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int dpt_cmd_train(const dpt_comm *c, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return dpt_cli_finish(c, dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__, "train: not built yet"));
}

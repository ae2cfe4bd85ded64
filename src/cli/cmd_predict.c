/* cmd_predict.c — `dptrain predict`. Placeholder until the checkpoint/model files (issue 7) lands. */
#include "cli.h"

int dpt_cmd_predict(const dpt_comm *c, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return dpt_cli_finish(c, dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                                         "dptrain predict: not built yet"));
}

/* cmd_eval.c — `dptrain eval`. Placeholder until the checkpoint/model files (issue 7) lands. */
#include "cli.h"

int dpt_cmd_eval(const dpt_comm *c, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return dpt_cli_finish(c, dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                                         "dptrain eval: not built yet"));
}

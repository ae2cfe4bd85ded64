/* cmd_inspect.c — `dptrain inspect`. Placeholder until the data pipeline (issue 5) lands. */
#include "cli.h"

int dpt_cmd_inspect(const dpt_comm *c, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return dpt_cli_finish(c, dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                                         "dptrain inspect: not built yet"));
}

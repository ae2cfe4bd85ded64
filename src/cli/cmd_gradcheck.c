/* cmd_gradcheck.c — `dptrain gradcheck`. Placeholder until the engine (issue 3) lands. */
#include "cli.h"

int dpt_cmd_gradcheck(const dpt_comm *c, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return dpt_cli_finish(c, dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                                         "dptrain gradcheck: not built yet"));
}

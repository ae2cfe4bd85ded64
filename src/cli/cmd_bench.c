/* cmd_bench.c — `dptrain bench`. Placeholder until the engine (issue 3) lands. */
#include "cli.h"

int dpt_cmd_bench(const dpt_comm *c, int argc, char **argv) {
  (void)argc;
  (void)argv;
  return dpt_cli_finish(c, dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                                         "dptrain bench: not built yet"));
}

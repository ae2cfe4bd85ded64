/* cmd_bench.c — `dptrain bench`. Placeholder until the engine (issue 3) lands, except
 * --allreduce (bench_allreduce.c). */
#include <string.h>

#include "cli.h"

int dpt_bench_allreduce(const dpt_comm *c, int argc, char **argv);
int dpt_bench_checkpoint(const dpt_comm *c, int argc, char **argv); /* bench_checkpoint.c */

int dpt_cmd_bench(const dpt_comm *c, int argc, char **argv) {
  for (int i = 1; i < argc; ++i)
    if (!strcmp(argv[i], "--allreduce")) return dpt_bench_allreduce(c, argc, argv);
  for (int i = 1; i < argc; ++i)
    if (!strcmp(argv[i], "--checkpoint")) return dpt_bench_checkpoint(c, argc, argv);
  return dpt_cli_finish(c, dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__, "dptrain bench: not built yet"));
}

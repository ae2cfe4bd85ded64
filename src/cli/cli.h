/* cli.h — the dptrain command: subcommands and shared argument handling.
 * Every subcommand runs inside MPI (main() initializes and finalizes it), returns the
 * process exit code, and prints errors once (rank 0) after agreeing them across ranks. */
#ifndef DPTRAIN_CLI_H
#define DPTRAIN_CLI_H

#include "dptrain/comm.h"
#include "dptrain/config.h"

/* argv[0] is the subcommand name. */
int dpt_cmd_train(const dpt_comm *c, int argc, char **argv);
int dpt_cmd_eval(const dpt_comm *c, int argc, char **argv);
int dpt_cmd_predict(const dpt_comm *c, int argc, char **argv);
int dpt_cmd_convert(const dpt_comm *c, int argc, char **argv);
int dpt_cmd_inspect(const dpt_comm *c, int argc, char **argv);
int dpt_cmd_gradcheck(const dpt_comm *c, int argc, char **argv);
int dpt_cmd_bench(const dpt_comm *c, int argc, char **argv);

/* Applies command-line settings to cfg: "--section.key=value", "--section.key value",
 * and the short flags of the alias table in options.c ("--dtype f64" -> train.dtype).
 * Arguments that are not options are returned in positional[] (at most max_pos, count in
 * *npos). Errors name the argument. */
dpt_status dpt_cli_apply_args(dpt_config *cfg, int argc, char **argv, const char **positional, int max_pos,
                              int *npos);
/* Loads the INI file at path into cfg, collectively: rank 0 reads it (at most 16 MiB) and
 * broadcasts the text, every rank parses the same bytes, so a file that is missing on some
 * node or differs between nodes cannot give ranks different configs. Errors are agreed. */
dpt_status dpt_cli_load_config(const dpt_comm *c, dpt_config *cfg, const char *path);
/* Prints the short flags and what key each sets. */
void dpt_cli_print_aliases(FILE *f);

/* Whether argv[1..] holds --help or -h; if so rank 0 prints usage to stdout (the caller
 * returns 0). Local: every rank sees the same command line. */
bool dpt_cli_wants_help(const dpt_comm *c, int argc, char **argv, void (*usage)(FILE *));

/* Agrees st across ranks; prints the agreed error once on rank 0; returns the exit code. */
int dpt_cli_finish(const dpt_comm *c, dpt_status st);

#endif

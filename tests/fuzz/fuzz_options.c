/* fuzz_options.c — fuzz target: a command line through dpt_cli_apply_args as `dptrain train`
 * (cmd_train.c) uses it, without running training: the input is split on '\n' (or '\0') into
 * argv[1..] (argv[0] = "train"); --help/-h stops as there; the arguments go into an empty
 * config, one CONFIG argument is required; a fixed INI text stands for the CONFIG file
 * ("fuzz.ini") and the arguments are applied again over it; then the readers that need no
 * model sizes (checkpoint, reduce, optimizer, schedule, second-order options) and the resolved
 * config as text; then, on a scratch config, a typed getter (int, double, bool, list) on every
 * key given.
 *
 * Invariants (abort() when one fails): a failure has a non-empty one-line message that names
 * an argument of the command line, a key ("section.") or the file "fuzz.ini"; no crash, no
 * sanitizer report; every object is destroyed and the error cleared per input.
 * DPT_FUZZ_VERBOSE=1 prints each input's outcome. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dptrain/checkpoint.h"
#include "dptrain/config.h"
#include "dptrain/error.h"
#include "dptrain/optim.h"
#include "dptrain/reduce.h"
#include "dptrain/second_order.h"

enum { MAX_ARGS = 64 };

static const char FILE_TEXT[] = "[data]\ntrain = data/spiral.h5\n\n[model]\nlayers = 8,8\nactivation = tanh\n\n"
                                "[train]\nepochs = 3\nbatch = 32\n\n[optimizer]\ntype = momentum\nlr = 0.1\n";

static void check_message(dpt_status st, int argc, char **argv) {
  const char *msg = dpt_error_message();
  if (getenv("DPT_FUZZ_VERBOSE")) fprintf(stderr, "fuzz_options: %s\n", st == DPT_OK ? "ok" : msg);
  if (st == DPT_OK) return;
  if (msg[0] == '\0' || strchr(msg, '\n')) {
    fprintf(stderr, "fuzz_options: status %d with a message that is empty or not one line: '%s'\n", (int)st, msg);
    abort();
  }
  bool named = strstr(msg, "fuzz.ini") || strstr(msg, "train:");
  for (int i = 1; !named && i < argc; ++i) named = argv[i][0] == '\0' && strstr(msg, "''"); /* an empty one */
  static const char *const sections[] = {"data.", "model.", "layer.", "train.", "optimizer.", "schedule.",
                                         "parallel.", "checkpoint.", "run.", "gradcheck.", NULL};
  for (int i = 0; !named && sections[i]; ++i) named = strstr(msg, sections[i]) != NULL;
  /* an argument, or its option part (before '=', with or without the "--"), at most as long
   * as a message holds */
  for (int i = 1; !named && i < argc; ++i)
    for (int form = 0; !named && form < 3; ++form) {
      char part[200];
      const char *a = form == 2 && strncmp(argv[i], "--", 2) == 0 ? argv[i] + 2 : argv[i];
      size_t len = form == 0 ? strlen(a) : strcspn(a, "=");
      if (len >= sizeof part) len = sizeof part - 1;
      memcpy(part, a, len);
      part[len] = '\0';
      named = part[0] && strstr(msg, part);
    }
  if (!named) {
    fprintf(stderr, "fuzz_options: the error names no argument, key or file: '%s'\n", msg);
    abort();
  }
}

/* Each key given on the command line through one of the typed getters (picked by its first
 * letter), on a scratch config: a value of another type must be an error naming the key,
 * never a crash. */
static dpt_status read_given(dpt_config *cfg, int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--", 2) != 0) continue;
    char key[256];
    size_t len = strcspn(argv[i] + 2, "=");
    if (len >= sizeof key) continue;
    memcpy(key, argv[i] + 2, len);
    key[len] = '\0';
    if (!strchr(key, '.') || !dpt_config_has(cfg, key)) continue;
    int64_t v, list[16];
    double d, dl[16];
    bool b;
    int n;
    switch (key[0] % 5) {
    case 0: DPT_CALL(dpt_config_get_int(cfg, key, 0, INT64_MIN, INT64_MAX, &v)); break;
    case 1: DPT_CALL(dpt_config_get_double(cfg, key, 0.0, -1e300, 1e300, DPT_RANGE_CLOSED, &d)); break;
    case 2: DPT_CALL(dpt_config_get_bool(cfg, key, false, &b)); break;
    case 3: DPT_CALL(dpt_config_get_int_list(cfg, key, NULL, INT64_MIN, INT64_MAX, list, 16, &n)); break;
    default: DPT_CALL(dpt_config_get_double_list(cfg, key, NULL, dl, 16, &n)); break;
    }
  }
  return DPT_OK;
}

static dpt_status run(int argc, char **argv, dpt_config **cfg, dpt_optim **o, dpt_schedule **sched) {
  const char *pos[2];
  int npos = 0;
  dpt_config *file_cfg = NULL;
  DPT_CALL(dpt_config_create(cfg));
  DPT_CALL(dpt_cli_apply_args(*cfg, argc, argv, pos, 2, &npos));
  DPT_CHECK(npos == 1, DPT_ERR_INPUT, "train: expected one CONFIG file argument, got %d (see dptrain train --help)",
            npos);
  DPT_CALL(dpt_config_create(&file_cfg));
  dpt_config_destroy(cfg);
  *cfg = file_cfg;
  DPT_CALL(dpt_config_load_string(*cfg, FILE_TEXT, "fuzz.ini"));
  DPT_CALL(dpt_cli_apply_args(*cfg, argc, argv, pos, 2, &npos));
  dpt_checkpoint_plan cp;
  dpt_reduce_opts ro;
  const char *otype;
  DPT_CALL(dpt_checkpoint_read_config(*cfg, &cp));
  DPT_CALL(dpt_reduce_opts_read(*cfg, &ro));
  DPT_CALL(dpt_config_get_string(*cfg, "optimizer.type", "sgd", &otype));
  if (dpt_second_order_is_method(otype)) {
    dpt_so_options so;
    DPT_CALL(dpt_so_options_read(*cfg, &so));
  } else {
    DPT_CALL(dpt_optim_create(*cfg, DPT_F32, 100, o));
    DPT_CALL(dpt_schedule_create(*cfg, sched));
  }
  char *text = NULL;
  DPT_CALL(dpt_config_to_string(*cfg, &text));
  free(text);
  return DPT_OK;
}

static void usage(FILE *f) { (void)f; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1), *argv[MAX_ARGS + 1];
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  int argc = 0;
  argv[argc++] = "train";
  for (size_t i = 0; i < size && argc < MAX_ARGS;) { /* split on '\n' and '\0' */
    size_t len = strcspn(text + i, "\n");
    text[i + len] = '\0';
    argv[argc++] = text + i;
    i += len + 1;
  }
  argv[argc] = NULL;
  dpt_comm c = {0};
  dpt_config *cfg = NULL;
  dpt_optim *o = NULL;
  dpt_schedule *sched = NULL;
  if (!dpt_cli_wants_help(&c, argc, argv, usage)) {
    check_message(run(argc, argv, &cfg, &o, &sched), argc, argv);
    dpt_error_clear();
    dpt_config_destroy(&cfg);
    const char *pos[MAX_ARGS];
    int npos;
    dpt_status st = dpt_config_create(&cfg);
    if (st == DPT_OK) st = dpt_cli_apply_args(cfg, argc, argv, pos, MAX_ARGS, &npos);
    if (st == DPT_OK) st = read_given(cfg, argc, argv);
    check_message(st, argc, argv);
  }
  dpt_error_clear();
  dpt_schedule_destroy(&sched);
  dpt_optim_destroy(&o);
  dpt_config_destroy(&cfg);
  free(text);
  return 0;
}

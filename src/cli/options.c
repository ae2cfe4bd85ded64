/* options.c — command-line overrides, the table of short flags, the shared config file
 * (see cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "dptrain/types.h"

typedef struct alias {
  const char *flag; /* without the leading "--" */
  const char *key;  /* config key it sets */
  const char *flag_value; /* value when given without one (boolean flags), else NULL */
  const char *help;
} alias;

/* One table for every short flag of every subcommand. */
static const alias aliases[] = {
    {"dtype", "train.dtype", NULL, "f32 or f64 for parameters and arithmetic"},
    {"seed", "train.seed", NULL, "seed of initialization, sampling and placement"},
    {"epochs", "train.epochs", NULL, "number of epochs"},
    {"batch", "train.batch", NULL, "global mini-batch size B (0 = full batch)"},
    {"lr", "optimizer.lr", NULL, "learning rate"},
    {"optimizer", "optimizer.type", NULL, "optimizer name"},
    {"schedule", "schedule.type", NULL, "learning-rate schedule name"},
    {"on-nonfinite", "train.on_nonfinite", NULL, "abort or skip a step whose loss/gradient is not finite"},
    {"reduce", "parallel.reduce", NULL, "fast (bucketed overlapped allreduce) or exact (bitwise reproducible)"},
    {"bucket-mb", "parallel.bucket_mb", NULL, "allreduce bucket size in MiB"},
    {"micro-batch", "parallel.micro_batch", NULL, "exact mode: micro-batch size (independent of ranks)"},
    {"accumulate", "parallel.accumulate", NULL, "micro-steps per optimizer step (one reduction)"},
    {"check-sync", "parallel.check_sync", NULL, "verify parameters are identical on all ranks every N steps"},
    {"timeout", "parallel.timeout", NULL, "seconds without progress before the watchdog ends the job (0 = never)"},
    {"shuffle", "data.shuffle", NULL, "global, local or none"},
    {"standardize", "data.standardize", "true", "standardize features with training-set mean/std"},
    {"threads", "run.threads", NULL, "BLAS threads per rank (0 = auto)"},
    {"trace", "run.trace", NULL, "write a Chrome trace-event JSON timeline"},
    {"metrics", "run.metrics", NULL, "write per-epoch metrics CSV"},
    {"checkpoint-every", "checkpoint.every", NULL, "checkpoint every N steps"},
    {"checkpoint-dir", "checkpoint.dir", NULL, "directory for checkpoints"},
    {"keep", "checkpoint.keep", NULL, "keep the last K checkpoints"},
    {"resume", "checkpoint.resume", NULL, "resume from FILE or 'latest'"},
    {"init", "model.init", NULL, "initialize parameters from a model file"},
    {"out", "run.out", NULL, "output file"},
    {"random", "gradcheck.random", "true", "gradcheck: random inputs instead of data.train"},
    {"rows", "gradcheck.rows", NULL, "gradcheck: number of samples"},
};

bool dpt_cli_wants_help(const dpt_comm *c, int argc, char **argv, void (*usage)(FILE *)) {
  for (int i = 1; i < argc; ++i)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      if (c->rank == 0) usage(stdout);
      return true;
    }
  return false;
}

void dpt_cli_print_aliases(FILE *f) {
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; ++i)
    fprintf(f, "  --%-18s %-22s %s\n", aliases[i].flag, aliases[i].key, aliases[i].help);
}

static const alias *find_alias(const char *flag, size_t len) {
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; ++i)
    if (strlen(aliases[i].flag) == len && !strncmp(aliases[i].flag, flag, len)) return &aliases[i];
  return NULL;
}

dpt_status dpt_cli_apply_args(dpt_config *cfg, int argc, char **argv, const char **positional, int max_pos,
                              int *npos) {
  *npos = 0;
  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      DPT_CHECK(*npos < max_pos, DPT_ERR_INPUT, "command line: unexpected argument '%s'", a);
      positional[(*npos)++] = a;
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    DPT_CHECK(len > 0, DPT_ERR_INPUT, "command line: '%s': expected an option name after '--' (--section.key=value)", a);
    const alias *al = find_alias(name, len);
    char key[256];
    DPT_CHECK(len < sizeof key, DPT_ERR_INPUT, "command line: option '%s' too long", a);
    if (al) {
      snprintf(key, sizeof key, "%s", al->key);
    } else {
      DPT_CHECK(memchr(name, '.', len), DPT_ERR_INPUT,
                "command line: unknown option '%.*s' (use --section.key=value or a flag listed by --help)", (int)len + 2, a);
      snprintf(key, sizeof key, "%.*s", (int)len, name);
    }
    const char *value;
    if (eq) {
      value = eq + 1;
    } else if (al && al->flag_value) {
      value = al->flag_value;
    } else {
      DPT_CHECK(i + 1 < argc, DPT_ERR_INPUT, "command line: option '%s' needs a value", a);
      value = argv[++i];
    }
    DPT_CALL(dpt_config_set(cfg, key, value, "command line"));
  }
  return DPT_OK;
}

int dpt_cli_finish(const dpt_comm *c, dpt_status st) {
  dpt_status agreed = dpt_comm_agree(c, st);
  if (agreed != DPT_OK && c->rank == 0) dpt_error_print(stderr);
  return dpt_status_exit_code(agreed);
}

dpt_status dpt_cli_load_config(const dpt_comm *c, dpt_config *cfg, const char *path) {
  char *text = NULL;
  long long len = 0;
  dpt_status st = DPT_OK;
  if (c->rank == 0)
    st = path[0] ? dpt_config_read_text(path, &text, &len)
                 : dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                                 "command line: expected a CONFIG file name, got an empty argument");
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK) { /* rank 0 checked len against DPT_CONFIG_MAX_BYTES before sending it */
    DPT_CALL_MPI(MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, c->comm));
    if (c->rank != 0) st = dpt_alloc((size_t)len + 1, 1, "config file text", &text);
    st = dpt_comm_agree(c, st);
  }
  if (st == DPT_OK) {
    DPT_CALL_MPI(MPI_Bcast(text, (int)len + 1, MPI_CHAR, 0, c->comm));
    st = dpt_config_load_string(cfg, text, path); /* the same text: the same result on every rank */
  }
  dpt_free(&text);
  return st;
}

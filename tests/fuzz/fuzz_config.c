/* fuzz_config.c — fuzz target: an INI text through dpt_config_load_string and then through the
 * readers a training run uses (train.c's dpt_train_run, in its order, as far as they need no
 * MPI communication and no data file): the run plan's keys, dpt_checkpoint_read_config,
 * dpt_reduce_opts_read, dpt_model_create (2 inputs; the task, hence the outputs, from the
 * input's size), then dpt_so_options_read for a second-order optimizer.type, else
 * dpt_optim_create, dpt_schedule_create (and a few of its learning rates) and the loader's
 * keys; last dpt_config_check_unused; then the resolved config as text must load again as
 * itself (checkpoints and model files store it).
 *
 * Invariants (abort() when one fails): a failure has a non-empty one-line message that names
 * the file ("fuzz.ini") or a key/section of a known module ("optimizer.lr", "layer.1");
 * no crash, no sanitizer report; every object is destroyed and the error cleared per input.
 * Inputs whose layer widths would make a model of more than MAX_PARAMS parameters (a
 * legitimate request, not a bug) stop after the load, so that one input cannot allocate
 * gigabytes; a layer too wide for the readers (which must refuse it before allocating for
 * it) does not count. DPT_FUZZ_VERBOSE=1 prints each input's outcome. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/config.h"
#include "dptrain/error.h"
#include "dptrain/model.h"
#include "dptrain/optim.h"
#include "dptrain/reduce.h"
#include "dptrain/second_order.h"
#include "dptrain/types.h"

enum { N_IN = 2, MAX_HIDDEN = 63 };
static const double MAX_PARAMS = 1 << 20;

/* The sections the readers own: an error must name one of them as "section." or the file. */
static const char *const SECTIONS[] = {"data.", "model.", "layer.", "train.", "optimizer.", "schedule.",
                                       "parallel.", "checkpoint.", "run.", NULL};

static void check_message(dpt_status st) {
  const char *msg = dpt_error_message();
  if (getenv("DPT_FUZZ_VERBOSE")) fprintf(stderr, "fuzz_config: %s\n", st == DPT_OK ? "ok" : msg);
  if (st == DPT_OK) return;
  if (msg[0] == '\0' || strchr(msg, '\n')) {
    fprintf(stderr, "fuzz_config: status %d with a message that is empty or not one line: '%s'\n", (int)st, msg);
    abort();
  }
  bool named = strstr(msg, "fuzz.ini") != NULL;
  for (int i = 0; !named && SECTIONS[i]; ++i) named = strstr(msg, SECTIONS[i]) != NULL;
  if (!named) {
    fprintf(stderr, "fuzz_config: the error names neither the file nor a key: '%s'\n", msg);
    abort();
  }
}

/* An upper bound of the parameter count the model keys ask for, up to the first layer whose
 * weight matrix the readers refuse (more than INT_MAX elements: nothing is allocated from
 * there on), on a scratch copy of the config so that nothing is marked used; a key that does
 * not parse counts as absent (the real readers then refuse it). */
static double param_bound(const char *text, int64_t n_out) {
  dpt_config *cfg = NULL;
  double total = 0.0;
  int64_t widths[MAX_HIDDEN];
  int n_hidden = 0;
  if (dpt_config_create(&cfg) != DPT_OK || dpt_config_load_string(cfg, text, "fuzz.ini") != DPT_OK ||
      dpt_config_get_int_list(cfg, "model.layers", NULL, 1, INT64_MAX, widths, MAX_HIDDEN, &n_hidden) != DPT_OK)
    n_hidden = 0;
  int64_t in = N_IN;
  for (int i = 0; cfg && i <= n_hidden; ++i) {
    char key[64];
    const char *type = NULL;
    int64_t units = i < n_hidden ? widths[i] : n_out, pieces = 1;
    snprintf(key, sizeof key, "layer.%d.type", i);
    if (dpt_config_get_string(cfg, key, "dense", &type) != DPT_OK || !type) type = "dense";
    if (!strcmp(type, "activation")) { /* keeps its width; nparams per unit at most */
      total += 8.0 * (double)in;
      continue;
    }
    snprintf(key, sizeof key, "layer.%d.units", i);
    if (i < n_hidden && dpt_config_get_int(cfg, key, units, 1, INT64_MAX, &units) != DPT_OK) units = widths[i];
    snprintf(key, sizeof key, "layer.%d.pieces", i);
    if (!strcmp(type, "maxout") && dpt_config_get_int(cfg, key, 2, 1, 1024, &pieces) != DPT_OK) pieces = 2;
    if (units > INT_MAX / pieces || units * pieces > INT_MAX / in) break; /* refused before any allocation */
    total += (double)(units * pieces) * (double)(in + 1) + 8.0 * (double)units; /* W, b, activation */
    in = units;
  }
  dpt_config_destroy(&cfg);
  dpt_error_clear();
  return total;
}

/* The run plan's keys (train.c read_plan) and the loader's (loader.c), which need the data. */
static dpt_status read_plan(dpt_config *cfg, dpt_dtype *dtype) {
  const char *s;
  int64_t v;
  double d;
  bool b;
  DPT_CALL(dpt_config_get_string(cfg, "data.train", NULL, &s));
  DPT_CALL(dpt_config_get_string(cfg, "data.val", NULL, &s));
  DPT_CALL(dpt_config_get_int(cfg, "train.epochs", 10, 1, INT64_C(1) << 40, &v));
  DPT_CALL(dpt_config_get_int(cfg, "train.batch", 32, 0, INT64_C(1) << 40, &v));
  DPT_CALL(dpt_config_get_int(cfg, "train.seed", 1, 0, INT64_MAX, &v));
  DPT_CALL(dpt_config_get_string(cfg, "train.dtype", "f32", &s));
  DPT_CALL(dpt_dtype_parse(s, "train.dtype", dtype));
  DPT_CALL(dpt_config_get_int(cfg, "train.log_every", 0, 0, INT64_C(1) << 40, &v));
  DPT_CALL(dpt_config_get_int(cfg, "run.threads", 0, 0, 4096, &v));
  DPT_CALL(dpt_config_get_bool(cfg, "run.quiet", false, &b));
  DPT_CALL(dpt_config_get_bool(cfg, "run.print_params", false, &b));
  DPT_CALL(dpt_config_get_string(cfg, "run.trace", NULL, &s));
  DPT_CALL(dpt_config_get_string(cfg, "run.metrics", NULL, &s));
  DPT_CALL(dpt_config_get_int(cfg, "run.progress", -1, -1, 1, &v));
  DPT_CALL(dpt_config_get_double(cfg, "run.progress_every", 30.0, 0.0, 1e9, DPT_RANGE_OPEN_LO, &d));
  DPT_CALL(dpt_config_get_double(cfg, "parallel.timeout", 60.0, 0.0, 1e9, DPT_RANGE_CLOSED, &d));
  return DPT_OK;
}

static dpt_status read_loader(dpt_config *cfg) {
  static const char *const modes[] = {"global", "local", "none", NULL};
  int mode;
  bool standardize;
  DPT_CALL(dpt_config_get_choice(cfg, "data.shuffle", modes, "global", &mode));
  DPT_CALL(dpt_config_get_bool(cfg, "data.standardize", false, &standardize));
  return DPT_OK;
}

/* Everything after the load; *m, *o, *sched are the caller's to destroy. */
static dpt_status run_readers(dpt_config *cfg, dpt_task task, int64_t n_out, dpt_model **m, dpt_optim **o,
                              dpt_schedule **sched) {
  dpt_dtype dtype = DPT_F32;
  dpt_checkpoint_plan cp;
  dpt_reduce_opts ro;
  DPT_CALL(read_plan(cfg, &dtype));
  DPT_CALL(dpt_checkpoint_read_config(cfg, &cp));
  DPT_CALL(dpt_reduce_opts_read(cfg, &ro));
  DPT_CALL(dpt_model_create(cfg, dtype, N_IN, n_out, task, m));
  const char *init_file, *otype;
  DPT_CALL(dpt_config_get_string(cfg, "model.init", NULL, &init_file));
  DPT_CALL(dpt_config_get_string(cfg, "optimizer.type", "sgd", &otype));
  if (dpt_second_order_is_method(otype)) {
    dpt_so_options so;
    const char *unused;
    DPT_CALL(dpt_so_options_read(cfg, &so));
    DPT_CALL(dpt_config_get_string(cfg, "data.shuffle", NULL, &unused));
  } else {
    DPT_CALL(dpt_optim_create(cfg, dtype, dpt_model_num_params(*m), o));
    DPT_CALL(dpt_schedule_create(cfg, sched));
    static const int64_t steps[] = {0, 1, 7, 1000, INT64_C(1) << 40};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; ++i) {
      dpt_schedule_apply(*sched, *o, steps[i], steps[i] / 10);
      dpt_schedule_end_epoch(*sched, steps[i], 1.0 / (double)(i + 1));
    }
    DPT_CALL(read_loader(cfg));
  }
  DPT_CALL(dpt_config_check_unused(cfg));
  return DPT_OK;
}

/* The resolved config as text (what checkpoints and model files store, and eval, predict and
 * --resume load again) loads again, to the same text. */
static void check_round_trip(const dpt_config *cfg) {
  char *text = NULL, *again = NULL;
  dpt_config *copy = NULL;
  if (dpt_config_to_string(cfg, &text) != DPT_OK) abort();
  dpt_status st = dpt_config_create(&copy);
  if (st == DPT_OK) st = dpt_config_load_string(copy, text, "resolved.ini");
  if (st == DPT_OK) st = dpt_config_to_string(copy, &again);
  if (st != DPT_OK || strcmp(text, again) != 0) {
    fprintf(stderr, "fuzz_config: the resolved config does not load again as itself (%s):\n%s\n", dpt_error_message(),
            text);
    abort();
  }
  free(again);
  free(text);
  dpt_config_destroy(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  /* the task from the input's size: every task's output checks get their share */
  static const dpt_task tasks[] = {DPT_TASK_REGRESSION, DPT_TASK_BINARY, DPT_TASK_MULTICLASS};
  static const int64_t outputs[] = {2, 1, 3};
  dpt_task task = tasks[size % 3];
  int64_t n_out = outputs[size % 3];
  dpt_config *cfg = NULL;
  dpt_model *m = NULL;
  dpt_optim *o = NULL;
  dpt_schedule *sched = NULL;
  dpt_status st = dpt_config_create(&cfg);
  if (st == DPT_OK) st = dpt_config_load_string(cfg, text, "fuzz.ini");
  check_message(st);
  if (st == DPT_OK && param_bound(text, n_out) <= MAX_PARAMS) {
    st = run_readers(cfg, task, n_out, &m, &o, &sched);
    check_message(st);
    if (st == DPT_OK) check_round_trip(cfg);
  }
  dpt_error_clear();
  dpt_schedule_destroy(&sched);
  dpt_optim_destroy(&o);
  dpt_model_destroy(&m);
  dpt_config_destroy(&cfg);
  free(text);
  return 0;
}

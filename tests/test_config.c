/* test_config.c — INI + command-line config: typed getters, ranges, unknown keys. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/model.h"

static void test_file_and_overrides(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\nlr = 0.5\ntype = sgd\n[layer.1]\nunits = 8\n[layer.0]\nunits=4\n", "t.ini"));
  assert_dpt_ok(dpt_config_set(cfg, "optimizer.lr", "0.25", "command line"));
  double lr;
  assert_dpt_ok(dpt_config_get_double(cfg, "optimizer.lr", 1.0, 0.0, 10.0, DPT_RANGE_OPEN_LO, &lr));
  assert_true(lr == 0.25); /* exact: decimal 0.25 is a binary fraction */
  int idx;
  const char *const opts[] = {"sgd", "adam", NULL};
  assert_dpt_ok(dpt_config_get_choice(cfg, "optimizer.type", opts, "adam", &idx));
  assert_int_equal(idx, 0);
  int secs[4], n;
  assert_dpt_ok(dpt_config_sections(cfg, "layer", secs, 4, &n));
  assert_int_equal(n, 2);
  assert_int_equal(secs[0], 0);
  assert_int_equal(secs[1], 1);
  int64_t u;
  assert_dpt_ok(dpt_config_get_int(cfg, "layer.0.units", 1, 1, 100, &u));
  assert_int_equal(u, 4);
  /* layer.1.units never read: unknown key */
  assert_dpt_fails(dpt_config_check_unused(cfg), DPT_ERR_INPUT, "layer.1.units");
  assert_dpt_ok(dpt_config_get_int(cfg, "layer.1.units", 1, 1, 100, &u));
  assert_dpt_ok(dpt_config_check_unused(cfg));
  int64_t e;
  assert_dpt_ok(dpt_config_get_int(cfg, "train.epochs", 7, 1, 100, &e));
  assert_int_equal(e, 7);
  char *text = NULL;
  assert_dpt_ok(dpt_config_to_string(cfg, &text));
  assert_non_null(strstr(text, "[train]\nepochs = 7"));
  assert_non_null(strstr(text, "lr = 0.25"));
  free(text);
  dpt_config_destroy(&cfg);
  assert_null(cfg);
}

static void test_bad_values(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\nlr = -1\nbeta = 1.0\nm = x\n", "bad.ini"));
  double v;
  assert_dpt_fails(dpt_config_get_double(cfg, "optimizer.lr", 1.0, 0.0, 1e9, DPT_RANGE_OPEN_LO, &v), DPT_ERR_INPUT,
                   "bad.ini [optimizer]: optimizer.lr: expected a number in (0");
  assert_dpt_fails(dpt_config_get_double(cfg, "optimizer.beta", 0.9, 0.0, 1.0, DPT_RANGE_OPEN_HI, &v), DPT_ERR_INPUT,
                   "optimizer.beta");
  int64_t m;
  assert_dpt_fails(dpt_config_get_int(cfg, "optimizer.m", 5, 1, 100, &m), DPT_ERR_INPUT, "expected an integer");
  assert_dpt_fails(dpt_config_load_string(cfg, "nosection = 1\n", "x.ini"), DPT_ERR_INPUT, "x.ini");
  assert_dpt_fails(dpt_config_load_file(cfg, "/nonexistent/cfg.ini"), DPT_ERR_IO, "/nonexistent/cfg.ini");
  dpt_config_destroy(&cfg);
}

/* Found by fuzzing (tests/fuzz/fuzz_config.c): inih parses on after a failed line, and the
 * next good line used to erase the first error, leaving "x.ini:1: not a valid INI line". */
static void test_first_load_error_kept(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_fails(dpt_config_load_string(cfg, "lr = 1\n[optimizer]\ntype = sgd\n", "x.ini"), DPT_ERR_INPUT,
                   "x.ini: key 'lr' is outside any [section]");
  dpt_config_destroy(&cfg);
}

/* inih splits a line longer than its buffer and parses the rest as a line of its own (a
 * silently truncated value, an error on a line number the file does not have): refused. */
static void test_long_line(void **state) {
  (void)state;
  char text[400] = "[model]\nlayers = ";
  for (int i = 0; i < 100; ++i) strcat(text, "8,");
  strcat(text, "8\n[train]\nepochs = 3\n");
  dpt_config *cfg = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_fails(dpt_config_load_string(cfg, text, "long.ini"), DPT_ERR_INPUT,
                   "long.ini:2: a line of 210 characters: expected at most 198");
  dpt_config_destroy(&cfg);
  /* 198 characters still load, and a long comment line, with the right line numbers after them */
  char ok[1024] = "[run]\ntrace = ";
  while (strlen(ok) < 6 + 198) strcat(ok, "a");
  strcat(ok, "\n; a comment line longer than the reader's buffer is dropped, not split:");
  for (int i = 0; i < 20; ++i) strcat(ok, " key = value");
  strcat(ok, "\nbad line\n");
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_fails(dpt_config_load_string(cfg, ok, "ok.ini"), DPT_ERR_INPUT, "ok.ini:4: not a valid INI line");
  dpt_config_destroy(&cfg);
  /* the resolved config (stored in model files and checkpoints) loads again when a line of
   * the file was at the limit: it used to be written as "trace = a...", 2 characters longer */
  char full[400] = "[run]\ntrace=";
  while (strlen(full) < 6 + 198) strcat(full, "a");
  char *resolved = NULL;
  const char *trace;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, full, "full.ini"));
  assert_dpt_ok(dpt_config_get_string(cfg, "run.trace", NULL, &trace));
  assert_dpt_ok(dpt_config_to_string(cfg, &resolved));
  dpt_config_destroy(&cfg);
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, resolved, "resolved.ini"));
  assert_dpt_ok(dpt_config_get_string(cfg, "run.trace", NULL, &trace));
  assert_int_equal(strlen(trace), 192);
  free(resolved);
  dpt_config_destroy(&cfg);
}

/* A value starting with ';' ("trace =;x") was written back as "trace = ;x", which reads as an
 * empty value and an inline comment: a model file's config lost it. */
static void test_resolved_semicolon_value(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  char *resolved = NULL;
  const char *trace;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[run]\ntrace =;x\n", "semi.ini"));
  assert_dpt_ok(dpt_config_get_string(cfg, "run.trace", NULL, &trace));
  assert_string_equal(trace, ";x");
  assert_dpt_ok(dpt_config_to_string(cfg, &resolved));
  dpt_config_destroy(&cfg);
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, resolved, "resolved.ini"));
  assert_dpt_ok(dpt_config_get_string(cfg, "run.trace", NULL, &trace));
  assert_string_equal(trace, ";x");
  free(resolved);
  dpt_config_destroy(&cfg);
}

/* inih took an indented line after a key as a continuation of its value: "metrics = m.csv"
 * became the value of run.trace, silently. Indentation is now dropped. */
static void test_indented_lines(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  const char *trace, *metrics;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[run]\ntrace = out.json\n    metrics = m.csv\n\t[train]\n  epochs = 4\n",
                                       "ind.ini"));
  assert_dpt_ok(dpt_config_get_string(cfg, "run.trace", NULL, &trace));
  assert_dpt_ok(dpt_config_get_string(cfg, "run.metrics", NULL, &metrics));
  assert_string_equal(trace, "out.json");
  assert_string_equal(metrics, "m.csv");
  assert_true(dpt_config_has(cfg, "train.epochs"));
  dpt_config_destroy(&cfg);
  /* a value continued on an indented line is a line without '=' */
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_fails(dpt_config_load_string(cfg, "[model]\nlayers = 8,\n   8\n", "cont.ini"), DPT_ERR_INPUT,
                   "cont.ini:3: not a valid INI line");
  dpt_config_destroy(&cfg);
}

/* A model whose parameters and gradients alone exceed the machine's memory is refused naming
 * model.layers before they are allocated (30 layers of 40000 units: 4.64e10 parameters,
 * 691 GiB in f64 with gradients; no test machine has that). */
static void test_model_beyond_memory(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  dpt_model *m = NULL;
  char text[512] = "[model]\nlayers = 40000";
  for (int i = 1; i < 30; ++i) strcat(text, ",40000");
  strcat(text, "\n");
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "big.ini"));
  assert_dpt_fails(dpt_model_create(cfg, DPT_F64, 2, 1, DPT_TASK_REGRESSION, &m), DPT_ERR_INPUT,
                   "model.layers: the model has 46401320001 parameters, 691 GiB with their gradients: more than "
                   "this machine's");
  assert_null(m);
  dpt_config_destroy(&cfg);
}

/* A command-line value must survive the resolved config that model files and checkpoints
 * keep: blanks around it are dropped, a value the INI reader would cut or end early is refused
 * naming the key. */
static void test_set_values_that_save(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  const char *trace;
  char *resolved = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_set(cfg, "run.trace", "  t.json\t", "command line"));
  assert_dpt_ok(dpt_config_get_string(cfg, "run.trace", NULL, &trace));
  assert_string_equal(trace, "t.json");
  assert_dpt_fails(dpt_config_set(cfg, "run.trace", "a.json ;b", "command line"), DPT_ERR_INPUT,
                   "command line: run.trace: expected no ' ;' in a value");
  assert_dpt_fails(dpt_config_set(cfg, "run.trace", "a\nmetrics = m.csv", "command line"), DPT_ERR_INPUT,
                   "command line: run.trace: expected a value on one line");
  /* "weights=" + value must fit one 198-character line: 190 characters do, 191 do not */
  char v[256] = "";
  while (strlen(v) < 190) strcat(v, "1");
  assert_dpt_ok(dpt_config_set(cfg, "layer.0.weights", v, "command line"));
  strcat(v, "1");
  assert_dpt_fails(dpt_config_set(cfg, "layer.0.weights", v, "command line"), DPT_ERR_INPUT,
                   "command line: layer.0.weights: a value of 191 characters: expected at most 190");
  assert_dpt_ok(dpt_config_to_string(cfg, &resolved));
  dpt_config_destroy(&cfg);
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, resolved, "resolved.ini"));
  assert_dpt_ok(dpt_config_get_string(cfg, "layer.0.weights", NULL, &trace));
  assert_int_equal(strlen(trace), 190);
  assert_dpt_ok(dpt_config_get_string(cfg, "run.trace", NULL, &trace));
  assert_string_equal(trace, "t.json");
  free(resolved);
  dpt_config_destroy(&cfg);
}

/* A key not given: every getter gets its own default, also after another getter asked for
 * the same key with another (it used to get the first one's). */
static void test_defaults_per_getter(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  const char *s;
  int k = -1, n = -1;
  int64_t list[4];
  const char *const choices[] = {"a", "b", NULL};
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_get_string(cfg, "x.s", NULL, &s));
  assert_null(s);
  assert_dpt_ok(dpt_config_get_string(cfg, "x.s", "later", &s));
  assert_string_equal(s, "later");
  assert_dpt_ok(dpt_config_get_choice(cfg, "x.s", choices, "b", &k));
  assert_int_equal(k, 1);
  assert_dpt_ok(dpt_config_get_int_list(cfg, "x.l", "1,2", 0, 9, list, 4, &n));
  assert_int_equal(n, 2);
  assert_dpt_ok(dpt_config_get_int_list(cfg, "x.l", "3,4,5", 0, 9, list, 4, &n));
  assert_int_equal(n, 3);
  assert_int_equal(list[2], 5);
  dpt_config_destroy(&cfg);
}

/* A hidden layer too wide for its weight matrix is refused before anything is allocated per
 * unit: a per-unit activation used to allocate and fill units values (GiB) first. */
static void test_wide_layer_refused_early(void **state) {
  (void)state;
  dpt_config *cfg = NULL;
  dpt_model *m = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[model]\nlayers = 1073741824\nactivation = elu\nper_unit = true\n",
                                       "wide.ini"));
  assert_dpt_fails(dpt_model_create(cfg, DPT_F64, 2, 1, DPT_TASK_BINARY, &m), DPT_ERR_INPUT,
                   "layer.0.units: 1073741824 units (x 1 pieces) of 2 inputs: expected a weight matrix of at most");
  assert_null(m);
  dpt_config_destroy(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_file_and_overrides),
      cmocka_unit_test(test_bad_values),
      cmocka_unit_test(test_first_load_error_kept),
      cmocka_unit_test(test_long_line),
      cmocka_unit_test(test_indented_lines),
      cmocka_unit_test(test_resolved_semicolon_value),
      cmocka_unit_test(test_wide_layer_refused_early),
      cmocka_unit_test(test_set_values_that_save),
      cmocka_unit_test(test_defaults_per_getter),
      cmocka_unit_test(test_model_beyond_memory),
  };
  return dpt_test_run(tests);
}

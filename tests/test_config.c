/* test_config.c — INI + command-line config: typed getters, ranges, unknown keys. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "dptrain/config.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_file_and_overrides),
      cmocka_unit_test(test_bad_values),
  };
  return dpt_test_run(tests);
}

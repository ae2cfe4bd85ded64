/* test_schedule.c — learning-rate schedules against their closed forms (optim.h), with the
 * boundaries: warm-up, linear's end, step's epochs and milestones, plateau's patience,
 * threshold, cooldown and floor, 1-cycle's phases and momentum, SGDR's restarts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/optim.h"

static const double PI = 3.14159265358979323846;

/* Relative tolerance of a closed form recomputed here: both sides do a handful of double
 * operations (one cos or pow), so they agree within a few ulps of 2.2e-16. */
#define REL 1e-14
#define assert_close(got, want)                                                              \
  do {                                                                                       \
    double g_ = (got), w_ = (want);                                                          \
    if (!(fabs(g_ - w_) <= REL * fabs(w_) + 1e-300))                                         \
      fail_msg("%s = %.17g, want %.17g", #got, g_, w_);                                      \
  } while (0)

static dpt_schedule *make(const char *ini) {
  dpt_config *cfg = NULL;
  dpt_schedule *s = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, ini, "t.ini"));
  assert_dpt_ok(dpt_schedule_create(cfg, &s));
  assert_dpt_ok(dpt_config_check_unused(cfg));
  dpt_config_destroy(&cfg);
  return s;
}

static dpt_status try_make(const char *ini) {
  dpt_config *cfg = NULL;
  dpt_schedule *s = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, ini, "bad.ini"));
  dpt_status st = dpt_schedule_create(cfg, &s);
  dpt_schedule_destroy(&s);
  dpt_config_destroy(&cfg);
  return st;
}

static void test_constant_and_warmup(void **state) {
  (void)state;
  dpt_schedule *s = make("");
  assert_string_equal(dpt_schedule_type_name(s), "constant");
  for (int64_t k = 0; k < 5; ++k) assert_true(dpt_schedule_lr(s, 0.1, k, k) == 0.1); /* exact: α₀ itself */
  assert_true(isnan(dpt_schedule_momentum(s, 0)));
  dpt_schedule_destroy(&s);

  s = make("[schedule]\nwarmup_steps = 4\n");
  assert_close(dpt_schedule_lr(s, 0.1, 0, 0), 0.1 * 0.25); /* (0 + 1)/4 */
  assert_close(dpt_schedule_lr(s, 0.1, 1, 0), 0.1 * 0.5);
  assert_close(dpt_schedule_lr(s, 0.1, 3, 0), 0.1); /* last warm-up step reaches α₀ */
  assert_true(dpt_schedule_lr(s, 0.1, 4, 1) == 0.1);
  dpt_schedule_destroy(&s);

  /* warm-up multiplies any schedule: linear at step 1 of 10, warm-up 2 */
  s = make("[schedule]\ntype = linear\nsteps = 10\nlr_final = 0\nwarmup_steps = 2\n");
  assert_close(dpt_schedule_lr(s, 1.0, 1, 0), (1.0 - 0.1) * 1.0);
  assert_close(dpt_schedule_lr(s, 1.0, 0, 0), 1.0 * 0.5);
  dpt_schedule_destroy(&s);
}

static void test_linear(void **state) {
  (void)state;
  dpt_schedule *s = make("[schedule]\ntype = linear\nsteps = 100\nlr_final = 0.01\n");
  assert_true(dpt_schedule_lr(s, 0.1, 0, 0) == 0.1); /* exact: α₀ + (α_f − α₀)·0 */
  assert_close(dpt_schedule_lr(s, 0.1, 50, 0), 0.055);
  assert_close(dpt_schedule_lr(s, 0.1, 99, 0), 0.1 - 0.09 * 0.99);
  assert_close(dpt_schedule_lr(s, 0.1, 100, 0), 0.01); /* T reached */
  assert_close(dpt_schedule_lr(s, 0.1, 1000, 0), 0.01); /* stays after T */
  dpt_schedule_destroy(&s);
}

static void test_step(void **state) {
  (void)state;
  dpt_schedule *s = make("[schedule]\ntype = step\nevery = 3\n");
  const double want[8] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25}; /* halved every 3 epochs */
  for (int64_t e = 0; e < 8; ++e) assert_true(dpt_schedule_lr(s, 1.0, 1000 * e, e) == want[e]); /* exact: powers of 2 */
  dpt_schedule_destroy(&s);

  s = make("[schedule]\ntype = step\nmilestones = 2, 5\nfactor = 0.1\n");
  assert_close(dpt_schedule_lr(s, 1.0, 0, 1), 1.0);
  assert_close(dpt_schedule_lr(s, 1.0, 0, 2), 0.1); /* at the milestone */
  assert_close(dpt_schedule_lr(s, 1.0, 0, 4), 0.1);
  assert_close(dpt_schedule_lr(s, 1.0, 0, 5), 0.01);
  assert_close(dpt_schedule_lr(s, 1.0, 0, 50), 0.01);
  dpt_schedule_destroy(&s);
}

/* Feeds plateau a loss sequence and checks the lr after each epoch's decision. */
static void feed(dpt_schedule *s, const double *loss, const double *lr_after, int n) {
  for (int e = 0; e < n; ++e) {
    dpt_schedule_end_epoch(s, e, loss[e]);
    double lr = dpt_schedule_lr(s, 1.0, 0, e + 1);
    if (lr != lr_after[e]) /* exact: powers of ½ and the floor */
      fail_msg("epoch %d: loss %g -> lr %g, want %g", e, loss[e], lr, lr_after[e]);
  }
}

static void test_plateau(void **state) {
  (void)state;
  /* patience 2: the 3rd epoch in a row without improvement halves */
  dpt_schedule *s = make("[schedule]\ntype = plateau\npatience = 2\n");
  const double l1[8] = {5, 4, 4, 4, 4, 3, 3.5, 3.2};
  const double r1[8] = {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5};
  feed(s, l1, r1, 8);
  dpt_schedule_destroy(&s);

  /* threshold (rel 0.1): 4 → 3.7 is not an improvement (needs < 3.6); patience 0 halves at
   * once; cooldown 2 keeps the next 2 epochs from counting; floor 0.2 */
  s = make("[schedule]\ntype = plateau\npatience = 0\nthreshold = 0.1\ncooldown = 2\nlr_min = 0.2\n");
  const double l2[9] = {4, 3.7, 3.7, 3.7, 3.7, 3.7, 3.7, 3.7, 3.7};
  const double r2[9] = {1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2};
  feed(s, l2, r2, 9);
  dpt_state_info info;
  dpt_schedule_state(s, 1, &info);
  assert_string_equal(info.name, "best");
  assert_true(*(double *)info.data == 4.0); /* exact: the stored loss */
  dpt_schedule_destroy(&s);

  /* abs threshold; a NaN loss is never an improvement */
  s = make("[schedule]\ntype = plateau\npatience = 1\nthreshold = 0.5\nthreshold_mode = abs\n");
  const double l3[5] = {4, 3.6, NAN, 3.0, 2.9};
  const double r3[5] = {1, 1, 0.5, 0.5, 0.5};
  feed(s, l3, r3, 5);
  dpt_schedule_destroy(&s);
}

static void test_onecycle(void **state) {
  (void)state;
  /* total 100, pct 0.3: phase 1 ends at step e1 = 29, phase 2 at e2 = 99 */
  dpt_schedule *s = make("[schedule]\ntype = onecycle\ntotal_steps = 100\nmax_lr = 1\n");
  const double lr_i = 1.0 / 25, lr_end = lr_i / 1e4;
  assert_close(dpt_schedule_lr(s, 0.5, 0, 0), lr_i);
  assert_close(dpt_schedule_momentum(s, 0), 0.95);
  assert_close(dpt_schedule_lr(s, 0.5, 29, 0), 1.0); /* peak */
  assert_close(dpt_schedule_momentum(s, 29), 0.85); /* momentum inverse: lowest at the peak */
  assert_close(dpt_schedule_lr(s, 0.5, 99, 0), lr_end);
  assert_close(dpt_schedule_momentum(s, 99), 0.95);
  assert_close(dpt_schedule_lr(s, 0.5, 500, 0), lr_end); /* stays after the end */
  /* inside the phases: step 10 is p = 10/29 of phase 1, step 64 is p = 35/70 of phase 2 */
  assert_close(dpt_schedule_lr(s, 0.5, 10, 0), 1.0 + (lr_i - 1.0) * (1 + cos(PI * 10.0 / 29.0)) / 2);
  assert_close(dpt_schedule_lr(s, 0.5, 64, 0), lr_end + (1.0 - lr_end) * (1 + cos(PI * 35.0 / 70.0)) / 2);
  assert_close(dpt_schedule_momentum(s, 64), 0.95 + (0.85 - 0.95) * (1 + cos(PI * 35.0 / 70.0)) / 2);
  dpt_schedule_destroy(&s);

  /* max_lr defaults to α₀; apply sets the optimizer's α and β */
  dpt_config *cfg = NULL;
  dpt_optim *o = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(
      cfg, "[optimizer]\ntype = momentum\nlr = 0.2\n[schedule]\ntype = onecycle\ntotal_steps = 10\npct_start = 0.5\n",
      "t.ini"));
  assert_dpt_ok(dpt_optim_create(cfg, DPT_F64, 1, &o));
  assert_dpt_ok(dpt_schedule_create(cfg, &s));
  dpt_schedule_apply(s, o, 4, 0); /* e1 = 4: the peak */
  assert_close(dpt_optim_lr(o), 0.2);
  assert_close(dpt_optim_momentum(o), 0.85);
  assert_true(dpt_optim_base_lr(o) == 0.2); /* the base is not touched */
  dpt_schedule_destroy(&s);
  dpt_optim_destroy(&o);
  dpt_config_destroy(&cfg);
}

static void test_sgdr(void **state) {
  (void)state;
  /* T0 = 10, T_mult = 2: cycles [0,10), [10,30), [30,70) */
  dpt_schedule *s = make("[schedule]\ntype = sgdr\nt0 = 10\nt_mult = 2\nlr_min = 0.01\n");
  const double a0 = 0.1, m = 0.01;
  assert_true(dpt_schedule_lr(s, a0, 0, 0) == a0); /* exact: cos 0 = 1 */
  assert_close(dpt_schedule_lr(s, a0, 5, 0), m + (a0 - m) * 0.5 * (1 + cos(PI * 0.5)));
  assert_close(dpt_schedule_lr(s, a0, 9, 0), m + (a0 - m) * 0.5 * (1 + cos(PI * 0.9)));
  assert_true(dpt_schedule_lr(s, a0, 10, 0) == a0); /* restart */
  assert_close(dpt_schedule_lr(s, a0, 29, 0), m + (a0 - m) * 0.5 * (1 + cos(PI * 19.0 / 20.0)));
  assert_true(dpt_schedule_lr(s, a0, 30, 0) == a0); /* restart */
  assert_close(dpt_schedule_lr(s, a0, 50, 0), m + (a0 - m) * 0.5 * (1 + cos(PI * 20.0 / 40.0)));
  assert_true(dpt_schedule_lr(s, a0, 70, 0) == a0);

  dpt_config *cfg = NULL;
  dpt_optim *o = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[optimizer]\nlr = 0.1\n", "t.ini"));
  assert_dpt_ok(dpt_optim_create(cfg, DPT_F64, 1, &o));
  dpt_schedule_apply(s, o, 45, 0);
  dpt_state_info info;
  dpt_schedule_state(s, 1, &info);
  assert_string_equal(info.name, "cycle");
  assert_int_equal(*(int64_t *)info.data, 2);
  assert_close(dpt_optim_lr(o), m + (a0 - m) * 0.5 * (1 + cos(PI * 15.0 / 40.0)));
  dpt_optim_destroy(&o);
  dpt_config_destroy(&cfg);
  dpt_schedule_destroy(&s);

  s = make("[schedule]\ntype = sgdr\nt0 = 4\n"); /* T_mult = 1: period 4, lr_min 0 */
  assert_true(dpt_schedule_lr(s, 1.0, 8, 0) == 1.0);
  assert_close(dpt_schedule_lr(s, 1.0, 10, 0), 0.5 * (1 + cos(PI * 0.5)));
  dpt_schedule_destroy(&s);
}

static void test_invalid(void **state) {
  (void)state;
  assert_dpt_fails(try_make("[schedule]\ntype = cosine\n"), DPT_ERR_INPUT, "schedule.type: expected one of constant");
  assert_dpt_fails(try_make("[schedule]\ntype = sgdr\nt0 = 5\nt_mult = 0\n"), DPT_ERR_INPUT,
                   "schedule.t_mult: expected an integer in [1");
  assert_dpt_fails(try_make("[schedule]\ntype = sgdr\nt0 = 5\nt_mult = 1.5\n"), DPT_ERR_INPUT, "schedule.t_mult");
  assert_dpt_fails(try_make("[schedule]\ntype = sgdr\n"), DPT_ERR_INPUT, "schedule.t0");
  assert_dpt_fails(try_make("[schedule]\ntype = linear\n"), DPT_ERR_INPUT, "schedule.steps");
  assert_dpt_fails(try_make("[schedule]\ntype = step\nevery = 2\nfactor = 1\n"), DPT_ERR_INPUT, "schedule.factor");
  assert_dpt_fails(try_make("[schedule]\ntype = step\n"), DPT_ERR_INPUT, "exactly one");
  assert_dpt_fails(try_make("[schedule]\ntype = step\nevery = 2\nmilestones = 3\n"), DPT_ERR_INPUT, "got both");
  assert_dpt_fails(try_make("[schedule]\ntype = step\nmilestones = 3, 3\n"), DPT_ERR_INPUT, "increasing");
  assert_dpt_fails(try_make("[schedule]\ntype = plateau\npatience = -1\n"), DPT_ERR_INPUT, "schedule.patience");
  assert_dpt_fails(try_make("[schedule]\ntype = plateau\nthreshold_mode = max\n"), DPT_ERR_INPUT,
                   "schedule.threshold_mode");
  assert_dpt_fails(try_make("[schedule]\ntype = onecycle\n"), DPT_ERR_INPUT, "schedule.total_steps");
  assert_dpt_fails(try_make("[schedule]\ntype = onecycle\ntotal_steps = 4\n"), DPT_ERR_INPUT, "schedule.pct_start");
  assert_dpt_fails(try_make("[schedule]\ntype = onecycle\ntotal_steps = 100\nmax_lr = 0\n"), DPT_ERR_INPUT,
                   "schedule.max_lr");
  assert_dpt_fails(try_make("[schedule]\ntype = onecycle\ntotal_steps = 100\nbase_momentum = 0.99\n"), DPT_ERR_INPUT,
                   "schedule.base_momentum");
  assert_dpt_fails(try_make("[schedule]\nwarmup_steps = -3\n"), DPT_ERR_INPUT, "schedule.warmup_steps");
  assert_dpt_fails(try_make("[schedule]\ntype = linear\nsteps = 4\nt0 = 3\n"), DPT_ERR_INPUT,
                   "schedule.t0: does not apply to schedule.type = linear (its keys: type, warmup_steps, lr_final, steps)");
  assert_dpt_fails(try_make("[schedule]\nfactor = 0.1\n"), DPT_ERR_INPUT,
                   "schedule.factor: does not apply to schedule.type = constant");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constant_and_warmup), cmocka_unit_test(test_linear), cmocka_unit_test(test_step),
      cmocka_unit_test(test_plateau),             cmocka_unit_test(test_onecycle), cmocka_unit_test(test_sgdr),
      cmocka_unit_test(test_invalid),
  };
  return dpt_test_run(tests);
}

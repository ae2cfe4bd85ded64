/* test_optim.c — first-order optimizers: first steps against hand/independent values, the
 * seed's momentum and Nesterov forms, convergence on a quadratic, clipping, weight decay,
 * f32 against f64, state save/restore, invalid hyper-parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/optim.h"

/* An optimizer from INI text; the test fails on any error. Keys must all be used. */
static dpt_optim *make(const char *ini, dpt_dtype dtype, size_t n) {
  dpt_config *cfg = NULL;
  dpt_optim *o = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, ini, "t.ini"));
  assert_dpt_ok(dpt_optim_create(cfg, dtype, n, &o));
  assert_dpt_ok(dpt_config_check_unused(cfg));
  dpt_config_destroy(&cfg);
  return o;
}

/* dpt_optim_create's status for INI text (the error stays for assert_dpt_fails). */
static dpt_status try_make(const char *ini) {
  dpt_config *cfg = NULL;
  dpt_optim *o = NULL;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, ini, "bad.ini"));
  dpt_status st = dpt_optim_create(cfg, DPT_F64, 4, &o);
  dpt_optim_destroy(&o);
  dpt_config_destroy(&cfg);
  return st;
}

/* J(θ) = ½ Σ a_i (θ_i − c_i)², ∇J = a ⊙ (θ − c), on 2 parameters, in double. */
static const double QA[2] = {1.0, 4.0};

static void quad_grad_f64(const double *th, const double *c, double *g) {
  for (int i = 0; i < 2; ++i) g[i] = QA[i] * (th[i] - c[i]);
}

static void quad_grad_f32(const float *th, const double *c, float *g) {
  for (int i = 0; i < 2; ++i) g[i] = (float)QA[i] * (th[i] - (float)c[i]);
}

/* One training step of the loop's protocol: prepare, gradient at params, step. */
static void step_f64(dpt_optim *o, double *th, const double *c) {
  double g[2];
  assert_dpt_ok(dpt_optim_prepare(o, th));
  quad_grad_f64(th, c, g);
  assert_dpt_ok(dpt_optim_step(o, th, g));
}

static void step_f32(dpt_optim *o, float *th, const double *c) {
  float g[2];
  assert_dpt_ok(dpt_optim_prepare(o, th));
  quad_grad_f32(th, c, g);
  assert_dpt_ok(dpt_optim_step(o, th, g));
}

static const double ZERO[2] = {0.0, 0.0};

/* θ after steps 1, 2, 3 from θ0 = (1, −0.5) on J = ½(θ₁² + 4θ₂²), computed by an independent
 * float64 implementation of optim.h's rules (Python, written from the formulas, not from
 * the C code). */
static const struct {
  const char *ini;
  double theta[6];
} FIRST_STEPS[] = {
    {"[optimizer]\ntype = sgd\nlr = 0.1\n",
     {0.90000000000000002, -0.29999999999999999, 0.81000000000000005, -0.17999999999999999, 0.72900000000000009,
      -0.108}},
    {"[optimizer]\ntype = momentum\nlr = 0.1\nmomentum = 0.5\n",
     {0.90000000000000002, -0.29999999999999999, 0.76000000000000001, -0.079999999999999988, 0.61399999999999999,
      0.062}},
    {"[optimizer]\ntype = nesterov\nlr = 0.1\nmomentum = 0.5\n",
     {0.90000000000000002, -0.29999999999999999, 0.76500000000000001, -0.12, 0.62775000000000003,
      -0.018000000000000002}},
    {"[optimizer]\ntype = adagrad\nlr = 0.1\n",
     {0.90000000099999999, -0.40000000050000001, 0.83310352829392664, -0.33753049594084605, 0.78045618308938258,
      -0.29089917758012196}},
    {"[optimizer]\ntype = rmsprop\nlr = 0.1\n",
     {0.68377224398316172, -0.18377223898316197, 0.49887062011723743, -0.06953148500837375, 0.36918056742779404,
      -0.024435297063996934}},
    {"[optimizer]\ntype = rmsprop\nlr = 0.1\nmomentum = 0.5\ncentered = true\n",
     {0.66666667777777744, -0.16666667222222215, 0.29890102794912349, 0.11373185886437764, 0.020840878654614481,
      0.17742042452596843}},
    {"[optimizer]\ntype = adadelta\n",
     {0.99683773815110133, -0.49683772629267131, 0.99359819840765173, -0.49360307051547558, 0.99030908280083763,
      -0.49032568171940238}},
    {"[optimizer]\ntype = adam\nlr = 0.1\n",
     {0.90000000099999999, -0.40000000050000001, 0.80041222971233816, -0.30118742062343007, 0.70158627450441502,
      -0.20487125097072389}},
    {"[optimizer]\ntype = adamw\nlr = 0.1\nweight_decay = 0.1\n",
     {0.89000000099999999, -0.3950000005, 0.78157185695416109, -0.29233870322270744, 0.67510122318920074,
      -0.19341560270340274}},
    {"[optimizer]\ntype = sgd\nlr = 0.1\nweight_decay = 0.5\nclip_norm = 1\n",
     {0.90527864045000417, -0.3855572809000084, 0.80939227266282188, -0.28003923482104753, 0.71035505687309253,
      -0.18498274835973288}},
    {"[optimizer]\ntype = nesterov\nlr = 0.1\nmomentum = 0.5\nweight_decay = 0.5\n",
     {0.84999999999999998, -0.27500000000000002, 0.65874999999999995, -0.089374999999999982, 0.47865624999999995,
      0.0018906250000000208}},
};
enum { N_FIRST = sizeof FIRST_STEPS / sizeof FIRST_STEPS[0] };

static void test_first_steps_f64(void **state) {
  (void)state;
  for (int k = 0; k < N_FIRST; ++k) {
    dpt_optim *o = make(FIRST_STEPS[k].ini, DPT_F64, 2);
    double th[2] = {1.0, -0.5};
    for (int t = 0; t < 3; ++t) {
      step_f64(o, th, ZERO);
      for (int i = 0; i < 2; ++i) {
        /* 1e-14 absolute on values of order 1: both sides do the same float64 operations in
         * the same order, so they agree to the last bit or within a few ulps (2.2e-16 each)
         * where a compiler or libm rounds differently. */
        double want = FIRST_STEPS[k].theta[2 * t + i];
        if (fabs(th[i] - want) > 1e-14)
          fail_msg("%s step %d theta[%d] = %.17g, want %.17g", FIRST_STEPS[k].ini, t + 1, i, th[i], want);
      }
    }
    assert_int_equal(dpt_optim_steps(o), 3);
    dpt_optim_destroy(&o);
    assert_null(o);
  }
}

/* The seed's Algorithms 2 and 3 written out by hand on J = ½θ², θ0 = 1, α = 0.1, β = 0.5. */
static void test_seed_forms(void **state) {
  (void)state;
  /* momentum: v1 = −0.1, θ1 = 0.9; v2 = 0.5·(−0.1) − 0.1·0.9 = −0.14, θ2 = 0.76;
   * v3 = −0.07 − 0.076 = −0.146, θ3 = 0.614 */
  dpt_optim *o = make("[optimizer]\ntype = momentum\nlr = 0.1\nmomentum = 0.5\n", DPT_F64, 1);
  double th = 1.0, g;
  const double mom[3] = {0.9, 0.76, 0.614};
  for (int t = 0; t < 3; ++t) {
    assert_dpt_ok(dpt_optim_prepare(o, &th));
    assert_true(th == (t == 0 ? 1.0 : mom[t - 1])); /* exact: prepare is a no-op for momentum */
    g = th;
    assert_dpt_ok(dpt_optim_step(o, &th, &g));
    assert_float_equal(th, mom[t], 1e-15); /* a few roundings of numbers of order 1 */
  }
  dpt_optim_destroy(&o);

  /* Nesterov: the gradient is taken at θ + βv.
   * t=0: look-ahead 1 + 0.5·0 = 1, v1 = −0.1·1 = −0.1, θ1 = 0.9
   * t=1: look-ahead 0.9 + 0.5·(−0.1) = 0.85, v2 = −0.05 − 0.085 = −0.135, θ2 = 0.765
   * t=2: look-ahead 0.765 − 0.0675 = 0.6975, v3 = −0.0675 − 0.06975 = −0.13725, θ3 = 0.62775 */
  o = make("[optimizer]\ntype = nesterov\nlr = 0.1\nmomentum = 0.5\n", DPT_F64, 1);
  th = 1.0;
  const double look[3] = {1.0, 0.85, 0.6975}, nes[3] = {0.9, 0.765, 0.62775};
  for (int t = 0; t < 3; ++t) {
    assert_dpt_ok(dpt_optim_prepare(o, &th));
    assert_float_equal(th, look[t], 1e-15); /* same: a few roundings of order-1 numbers */
    g = th;
    assert_dpt_ok(dpt_optim_step(o, &th, &g));
    assert_float_equal(th, nes[t], 1e-15);
  }
  dpt_state_info info;
  dpt_optim_state(o, 2, &info);
  assert_string_equal(info.name, "v");
  assert_float_equal(*(double *)info.data, -0.13725, 1e-15);
  dpt_optim_destroy(&o);
}

/* Nesterov protocol errors and cancel. */
static void test_nesterov_protocol(void **state) {
  (void)state;
  dpt_optim *o = make("[optimizer]\ntype = nesterov\nlr = 0.1\nmomentum = 0.5\n", DPT_F64, 1);
  double th = 1.0, g = 1.0;
  assert_dpt_fails(dpt_optim_step(o, &th, &g), DPT_ERR_INTERNAL, "without dpt_optim_prepare");
  assert_dpt_ok(dpt_optim_prepare(o, &th));
  assert_dpt_fails(dpt_optim_prepare(o, &th), DPT_ERR_INTERNAL, "twice");
  assert_dpt_ok(dpt_optim_step(o, &th, &g)); /* v = −0.1, θ = 0.9 */
  assert_dpt_ok(dpt_optim_prepare(o, &th));  /* θ + βv = 0.85 */
  assert_float_equal(th, 0.85, 1e-15);       /* one rounding */
  dpt_optim_cancel(o, &th);                  /* step skipped: back to θ exactly */
  assert_true(th == 0.9);                    /* exact: restored from the saved copy */
  assert_dpt_ok(dpt_optim_prepare(o, &th));
  dpt_optim_destroy(&o);
}

/* Every rule converges on J = ½(θ₁−3)² + 2(θ₂+1)², in f64 and f32. */
static void test_convergence(void **state) {
  (void)state;
  static const struct {
    const char *ini;
    int steps;
  } CASES[] = {
      {"[optimizer]\ntype = sgd\nlr = 0.2\n", 200},
      {"[optimizer]\ntype = momentum\nlr = 0.1\nmomentum = 0.6\n", 200},
      {"[optimizer]\ntype = nesterov\nlr = 0.1\nmomentum = 0.8\n", 200},
      {"[optimizer]\ntype = adagrad\nlr = 1.0\n", 400},
      {"[optimizer]\ntype = rmsprop\nlr = 0.01\n", 1000},
      {"[optimizer]\ntype = rmsprop\nlr = 0.01\nmomentum = 0.5\ncentered = true\n", 1000},
      {"[optimizer]\ntype = adadelta\nlr = 1.0\ndelta = 1e-4\n", 2000},
      {"[optimizer]\ntype = adam\nlr = 0.05\n", 1000},
      {"[optimizer]\ntype = adamw\nlr = 0.05\nweight_decay = 0\n", 1000},
  };
  const double c[2] = {3.0, -1.0};
  for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; ++k) {
    dpt_optim *o = make(CASES[k].ini, DPT_F64, 2);
    double th[2] = {0.0, 0.0};
    for (int t = 0; t < CASES[k].steps; ++t) step_f64(o, th, c);
    /* 2e-2: the minimum is (3, −1); RMSProp/Adam with a constant α hover within about α of
     * it, the others converge geometrically far below this bound. */
    if (fabs(th[0] - c[0]) > 2e-2 || fabs(th[1] - c[1]) > 2e-2)
      fail_msg("%s did not converge: (%g, %g)", CASES[k].ini, th[0], th[1]);
    dpt_optim_destroy(&o);

    o = make(CASES[k].ini, DPT_F32, 2);
    float tf[2] = {0.0f, 0.0f};
    for (int t = 0; t < CASES[k].steps; ++t) step_f32(o, tf, c);
    if (fabs(tf[0] - c[0]) > 2e-2 || fabs(tf[1] - c[1]) > 2e-2)
      fail_msg("%s (f32) did not converge: (%g, %g)", CASES[k].ini, (double)tf[0], (double)tf[1]);
    dpt_optim_destroy(&o);
  }
}

/* f32 follows f64 over the first steps of every case of FIRST_STEPS. */
static void test_f32_matches_f64(void **state) {
  (void)state;
  for (int k = 0; k < N_FIRST; ++k) {
    dpt_optim *o = make(FIRST_STEPS[k].ini, DPT_F32, 2);
    float th[2] = {1.0f, -0.5f};
    for (int t = 0; t < 3; ++t) {
      step_f32(o, th, ZERO);
      for (int i = 0; i < 2; ++i) {
        /* 1e-5: float32 rounding (6e-8 relative) over ~10 operations per step, three steps,
         * amplified at most ~10x by divisions by √r of order 0.1 */
        double want = FIRST_STEPS[k].theta[2 * t + i];
        if (fabs((double)th[i] - want) > 1e-5)
          fail_msg("%s f32 step %d theta[%d] = %.9g, want %.9g", FIRST_STEPS[k].ini, t + 1, i, (double)th[i], want);
      }
    }
    dpt_optim_destroy(&o);
  }
}

/* Clipping by the global norm over the whole buffer, and the reported norm. */
static void test_clip_norm(void **state) {
  (void)state;
  dpt_optim *o = make("[optimizer]\ntype = sgd\nlr = 1\nclip_norm = 1\n", DPT_F64, 3);
  double th[3] = {0, 0, 0}, g[3] = {3, 0, 4}; /* ‖g‖ = 5 > 1: g becomes (0.6, 0, 0.8) */
  assert_dpt_ok(dpt_optim_step(o, th, g));
  assert_float_equal(dpt_optim_grad_norm(o), 5.0, 1e-15); /* √25 is exact; bound for libm */
  assert_float_equal(th[0], -0.6, 1e-15);                 /* one division and product */
  assert_float_equal(th[1], 0.0, 0.0);                    /* exact: 0·c */
  assert_float_equal(th[2], -0.8, 1e-15);
  double small[3] = {0.3, 0, 0.4}; /* ‖g‖ = 0.5 ≤ 1: unchanged */
  assert_dpt_ok(dpt_optim_step(o, th, small));
  assert_float_equal(th[0], -0.9, 1e-15);
  assert_float_equal(th[2], -1.2, 1e-15);
  dpt_optim_destroy(&o);
  o = make("[optimizer]\ntype = sgd\nlr = 1\n", DPT_F64, 3);
  assert_dpt_ok(dpt_optim_step(o, th, g));
  assert_true(isnan(dpt_optim_grad_norm(o))); /* not computed without clipping */
  dpt_optim_destroy(&o);
}

/* Runs n_steps of the protocol with a schedule (global step = epoch·4 + i, 4 steps an epoch,
 * plateau fed a made-up validation loss). */
static void run_steps(dpt_optim *o, dpt_schedule *s, double *th, int64_t from, int64_t n_steps) {
  const double c[2] = {3.0, -1.0};
  for (int64_t step = from; step < from + n_steps; ++step) {
    dpt_schedule_apply(s, o, step, step / 4);
    step_f64(o, th, c);
    if (step % 4 == 3) dpt_schedule_end_epoch(s, step / 4, 1.0 + 1.0 / (double)(1 + (step / 4) % 3));
  }
}

static size_t state_bytes(const dpt_state_info *info) {
  return info->count * (info->type == DPT_STATE_F32 ? sizeof(float) : 8);
}

/* Saving every named state after 6 steps and restoring it into fresh objects continues
 * bitwise identically. */
static void test_state_restore_bitwise(void **state) {
  (void)state;
  static const char *const CASES[] = {
      "[optimizer]\ntype = sgd\nlr = 0.1\n[schedule]\ntype = plateau\npatience = 0\n",
      "[optimizer]\ntype = momentum\nlr = 0.05\n[schedule]\ntype = onecycle\ntotal_steps = 20\n",
      "[optimizer]\ntype = nesterov\nlr = 0.05\n[schedule]\ntype = sgdr\nt0 = 3\nt_mult = 2\n",
      "[optimizer]\ntype = adagrad\nlr = 0.5\n[schedule]\ntype = step\nevery = 1\n",
      "[optimizer]\ntype = rmsprop\nlr = 0.01\nmomentum = 0.5\ncentered = true\n[schedule]\ntype = linear\nsteps = 10\n",
      "[optimizer]\ntype = adadelta\n[schedule]\ntype = constant\nwarmup_steps = 4\n",
      "[optimizer]\ntype = adam\nlr = 0.05\n[schedule]\ntype = onecycle\ntotal_steps = 20\n",
      "[optimizer]\ntype = adamw\nlr = 0.05\nclip_norm = 1\n[schedule]\ntype = plateau\npatience = 1\ncooldown = 1\n",
  };
  for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; ++k) {
    dpt_config *cfg = NULL;
    dpt_optim *o = NULL, *o2 = NULL;
    dpt_schedule *s = NULL, *s2 = NULL;
    assert_dpt_ok(dpt_config_create(&cfg));
    assert_dpt_ok(dpt_config_load_string(cfg, CASES[k], "t.ini"));
    assert_dpt_ok(dpt_optim_create(cfg, DPT_F64, 2, &o));
    assert_dpt_ok(dpt_schedule_create(cfg, &s));
    assert_dpt_ok(dpt_optim_create(cfg, DPT_F64, 2, &o2));
    assert_dpt_ok(dpt_schedule_create(cfg, &s2));
    assert_dpt_ok(dpt_config_check_unused(cfg));
    dpt_config_destroy(&cfg);

    double th[2] = {0.0, 0.0};
    run_steps(o, s, th, 0, 6);
    /* save: copy every named piece out */
    double saved_th[2] = {th[0], th[1]};
    unsigned char blob[4096];
    size_t used = 0;
    for (int i = 0; i < dpt_optim_num_states(o); ++i) {
      dpt_state_info info;
      dpt_optim_state(o, i, &info);
      memcpy(blob + used, info.data, state_bytes(&info));
      used += state_bytes(&info);
    }
    for (int i = 0; i < dpt_schedule_num_states(s); ++i) {
      dpt_state_info info;
      dpt_schedule_state(s, i, &info);
      memcpy(blob + used, info.data, state_bytes(&info));
      used += state_bytes(&info);
    }
    run_steps(o, s, th, 6, 10);

    /* restore into the fresh pair, by name and order */
    size_t off = 0;
    for (int i = 0; i < dpt_optim_num_states(o2); ++i) {
      dpt_state_info info, ref;
      dpt_optim_state(o2, i, &info);
      dpt_optim_state(o, i, &ref);
      assert_string_equal(info.name, ref.name);
      memcpy(info.data, blob + off, state_bytes(&info));
      off += state_bytes(&info);
    }
    for (int i = 0; i < dpt_schedule_num_states(s2); ++i) {
      dpt_state_info info;
      dpt_schedule_state(s2, i, &info);
      memcpy(info.data, blob + off, state_bytes(&info));
      off += state_bytes(&info);
    }
    assert_int_equal(off, used);
    double th2[2] = {saved_th[0], saved_th[1]};
    run_steps(o2, s2, th2, 6, 10);
    if (memcmp(th, th2, sizeof th) != 0)
      fail_msg("%s: restored run differs: (%.17g, %.17g) vs (%.17g, %.17g)", CASES[k], th[0], th[1], th2[0], th2[1]);
    assert_true(dpt_optim_lr(o) == dpt_optim_lr(o2)); /* exact: same inputs, same operations */
    dpt_optim_destroy(&o);
    dpt_optim_destroy(&o2);
    dpt_schedule_destroy(&s);
    dpt_schedule_destroy(&s2);
    assert_null(s);
  }
}

/* Each type's state names, and the bytes of its per-parameter arrays (dpt_optim_memory, the
 * optimizer's share of train's node memory check). */
static void test_state_names(void **state) {
  (void)state;
  static const struct {
    const char *ini;
    const char *names;
    size_t arrays; /* per-parameter arrays: dpt_optim_memory = arrays x 5 x 4 bytes */
  } CASES[] = {
      {"[optimizer]\ntype = sgd\n", "t lr", 0},
      {"[optimizer]\ntype = momentum\n", "t lr v", 1},
      {"[optimizer]\ntype = nesterov\n", "t lr v", 2}, /* v and the look-ahead copy */
      {"[optimizer]\ntype = adagrad\n", "t lr r", 1},
      {"[optimizer]\ntype = rmsprop\n", "t lr r", 1},
      {"[optimizer]\ntype = rmsprop\nmomentum = 0.9\ncentered = true\n", "t lr r v g_mean", 3},
      {"[optimizer]\ntype = adadelta\n", "t lr r s", 2},
      {"[optimizer]\ntype = adam\n", "t lr m v beta1_power beta2_power", 2},
      {"[optimizer]\ntype = adamw\n", "t lr m v beta1_power beta2_power", 2},
  };
  for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; ++k) {
    dpt_optim *o = make(CASES[k].ini, DPT_F32, 5);
    char names[128] = "";
    for (int i = 0; i < dpt_optim_num_states(o); ++i) {
      dpt_state_info info;
      dpt_optim_state(o, i, &info);
      if (i) strcat(names, " ");
      strcat(names, info.name);
      if (info.count == 5) assert_int_equal(info.type, DPT_STATE_F32);
      else assert_int_equal(info.count, 1);
    }
    assert_string_equal(names, CASES[k].names);
    assert_int_equal(dpt_optim_memory(o), CASES[k].arrays * 5 * sizeof(float));
    dpt_optim_destroy(&o);
  }
}

static void test_defaults_and_momentum(void **state) {
  (void)state;
  dpt_optim *o = make("[optimizer]\ntype = adam\n", DPT_F64, 1);
  assert_true(dpt_optim_lr(o) == 1e-3); /* exact: the default as written */
  assert_true(dpt_optim_has_momentum(o));
  assert_true(dpt_optim_momentum(o) == 0.9);
  dpt_optim_set_momentum(o, 0.85);
  assert_true(dpt_optim_momentum(o) == 0.85);
  assert_string_equal(dpt_optim_type_name(o), "adam");
  dpt_optim_destroy(&o);
  o = make("[optimizer]\ntype = rmsprop\n", DPT_F64, 1);
  assert_false(dpt_optim_has_momentum(o)); /* rmsprop without momentum: nothing to cycle */
  dpt_optim_set_momentum(o, 0.5);
  assert_true(dpt_optim_momentum(o) == 0.0);
  dpt_optim_destroy(&o);
  o = make("", DPT_F64, 1); /* defaults: sgd, α = 0.01 */
  assert_string_equal(dpt_optim_type_name(o), "sgd");
  assert_true(dpt_optim_lr(o) == 0.01);
  dpt_optim_destroy(&o);
}

/* Adam's bias correction uses the product of the β₁ actually used (1-cycle varies β₁): with
 * a constant gradient g = 1, m̂ = m/(1 − Πβ₁) is exactly 1 whatever the β₁ sequence, so
 * each step moves θ by α/(δ + 1). (β₁^t with the current β₁ would give m̂ = 0.28/0.36.) */
static void test_adam_varying_beta1(void **state) {
  (void)state;
  dpt_optim *o = make("[optimizer]\ntype = adam\nlr = 0.5\n", DPT_F64, 1);
  double th = 0.0, g = 1.0;
  dpt_optim_set_momentum(o, 0.9);
  assert_dpt_ok(dpt_optim_step(o, &th, &g)); /* m = 0.1, Πβ₁ = 0.9 */
  dpt_optim_set_momentum(o, 0.8);
  assert_dpt_ok(dpt_optim_step(o, &th, &g)); /* m = 0.08 + 0.2 = 0.28, Πβ₁ = 0.72 */
  /* 1e-15: m̂ = 0.28/0.28 and v̂ = 1 up to a few roundings of order-1 numbers */
  assert_float_equal(th, -2.0 * 0.5 / (1e-8 + 1.0), 1e-15);
  dpt_state_info info;
  dpt_optim_state(o, 4, &info);
  assert_string_equal(info.name, "beta1_power");
  assert_float_equal(*(double *)info.data, 0.72, 1e-16); /* one rounding of 0.9·0.8 */
  dpt_optim_destroy(&o);
}

/* The seed's momentum when a schedule changes α: only the new gradient's share uses the new
 * α (v ← βv − α_t g), unlike PyTorch's form, which rescales the whole velocity. */
static void test_momentum_lr_change(void **state) {
  (void)state;
  dpt_optim *o = make("[optimizer]\ntype = momentum\nlr = 0.1\nmomentum = 0.5\n", DPT_F64, 1);
  double th = 1.0, g = 1.0;
  assert_dpt_ok(dpt_optim_step(o, &th, &g)); /* v = −0.1, θ = 0.9 */
  dpt_optim_set_lr(o, 0.2);
  assert_true(dpt_optim_lr(o) == 0.2);
  assert_true(dpt_optim_base_lr(o) == 0.1); /* α₀ for the schedules is kept */
  assert_dpt_ok(dpt_optim_step(o, &th, &g)); /* v = −0.05 − 0.2 = −0.25, θ = 0.65 */
  assert_float_equal(th, 0.65, 1e-15); /* PyTorch's form would give 0.9 − 0.2·1.5 = 0.6 */
  dpt_optim_destroy(&o);
}

static void test_invalid(void **state) {
  (void)state;
  assert_dpt_fails(try_make("[optimizer]\ntype = sgd\nlr = 0\n"), DPT_ERR_INPUT, "optimizer.lr: expected a number in (0");
  assert_dpt_fails(try_make("[optimizer]\ntype = adam\nlr = -0.1\n"), DPT_ERR_INPUT, "optimizer.lr");
  assert_dpt_fails(try_make("[optimizer]\ntype = momentum\nmomentum = 1\n"), DPT_ERR_INPUT,
                   "optimizer.momentum: expected a number in [0, 1)");
  assert_dpt_fails(try_make("[optimizer]\ntype = nesterov\nmomentum = -0.1\n"), DPT_ERR_INPUT, "optimizer.momentum");
  assert_dpt_fails(try_make("[optimizer]\ntype = rmsprop\nrho = 0\n"), DPT_ERR_INPUT,
                   "optimizer.rho: expected a number in (0, 1)");
  assert_dpt_fails(try_make("[optimizer]\ntype = adadelta\nrho = 1\n"), DPT_ERR_INPUT, "optimizer.rho");
  assert_dpt_fails(try_make("[optimizer]\ntype = adam\nbeta1 = 1\n"), DPT_ERR_INPUT, "optimizer.beta1");
  assert_dpt_fails(try_make("[optimizer]\ntype = adam\nbeta2 = 1.5\n"), DPT_ERR_INPUT, "optimizer.beta2");
  assert_dpt_fails(try_make("[optimizer]\ntype = adagrad\ndelta = 0\n"), DPT_ERR_INPUT, "optimizer.delta");
  assert_dpt_fails(try_make("[optimizer]\ntype = sgd\nweight_decay = -1\n"), DPT_ERR_INPUT, "optimizer.weight_decay");
  assert_dpt_fails(try_make("[optimizer]\ntype = sgd\nclip_norm = -1\n"), DPT_ERR_INPUT, "optimizer.clip_norm");
  assert_dpt_fails(try_make("[optimizer]\ntype = lion\n"), DPT_ERR_INPUT,
                   "optimizer.type: expected one of sgd, momentum, nesterov");
  assert_dpt_fails(try_make("[optimizer]\nlr = fast\n"), DPT_ERR_INPUT, "optimizer.lr");

  /* a key of another type is refused, naming the keys the type does read */
  assert_dpt_fails(try_make("[optimizer]\ntype = sgd\nmomentum = 0.9\n"), DPT_ERR_INPUT,
                   "optimizer.momentum: does not apply to optimizer.type = sgd (its keys: type, lr, weight_decay, "
                   "clip_norm)");
  assert_dpt_fails(try_make("[optimizer]\ntype = adam\nrho = 0.9\n"), DPT_ERR_INPUT,
                   "optimizer.rho: does not apply to optimizer.type = adam (its keys: type, lr, beta1, beta2, delta");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_steps_f64),  cmocka_unit_test(test_seed_forms),
      cmocka_unit_test(test_nesterov_protocol), cmocka_unit_test(test_convergence),
      cmocka_unit_test(test_f32_matches_f64),  cmocka_unit_test(test_clip_norm),
      cmocka_unit_test(test_state_restore_bitwise), cmocka_unit_test(test_state_names),
      cmocka_unit_test(test_defaults_and_momentum), cmocka_unit_test(test_adam_varying_beta1),
      cmocka_unit_test(test_momentum_lr_change),    cmocka_unit_test(test_invalid),
  };
  return dpt_test_run(tests);
}

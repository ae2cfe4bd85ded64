/* schedule.c — learning-rate schedules (optim.h): closed forms of (step, epoch), plus
 * reduce-on-plateau's counters. */
#include <math.h>
#include <string.h>

#include "dptrain/optim.h"

typedef enum sched_type { SCH_CONSTANT, SCH_LINEAR, SCH_STEP, SCH_PLATEAU, SCH_ONECYCLE, SCH_SGDR } sched_type;

static const char *const TYPE_NAMES[] = {"constant", "linear", "step", "plateau", "onecycle", "sgdr", NULL};
static const double PI = 3.14159265358979323846;

enum { MAX_MILESTONES = 64, MAX_STATES = 6 };

struct dpt_schedule {
  sched_type type;
  int64_t warmup; /* W */
  /* linear */
  double lr_final;
  int64_t steps;
  /* step, plateau */
  double factor;
  int64_t every; /* 0 when milestones are used */
  int64_t milestones[MAX_MILESTONES];
  int n_milestones;
  /* plateau (lr_min also sgdr) */
  int64_t patience, cooldown;
  double threshold, lr_min;
  bool threshold_abs;
  /* onecycle */
  double max_lr; /* 0: the optimizer's base lr */
  int64_t total;
  double pct_start, div_factor, final_div_factor, base_momentum, max_momentum;
  bool cycle_momentum;
  /* sgdr */
  int64_t t0, t_mult;
  /* state */
  double lr;    /* last α applied */
  int64_t cycle; /* sgdr: cycle of the last step applied */
  double best;  /* plateau */
  int64_t bad_epochs, cooldown_left, reductions;
  dpt_state_info states[MAX_STATES];
  int n_states;
};

static dpt_status read_required_int(dpt_config *cfg, const char *key, const char *type, int64_t lo, int64_t *out) {
  DPT_CHECK(dpt_config_has(cfg, key), DPT_ERR_INPUT, "%s: expected an integer >= %lld for schedule.type = %s, got none",
            key, (long long)lo, type);
  return dpt_config_get_int(cfg, key, lo, lo, INT64_MAX, out);
}

static dpt_status read_keys(dpt_config *cfg, dpt_schedule *s) {
  const char *name = TYPE_NAMES[s->type];
  const int open = DPT_RANGE_OPEN_LO | DPT_RANGE_OPEN_HI;
  DPT_CALL(dpt_config_get_int(cfg, "schedule.warmup_steps", 0, 0, INT64_MAX, &s->warmup));
  switch (s->type) {
  case SCH_CONSTANT:
    break;
  case SCH_LINEAR:
    DPT_CALL(dpt_config_get_double(cfg, "schedule.lr_final", 0.0, 0.0, INFINITY, DPT_RANGE_OPEN_HI, &s->lr_final));
    DPT_CALL(read_required_int(cfg, "schedule.steps", name, 1, &s->steps));
    break;
  case SCH_STEP: {
    DPT_CALL(dpt_config_get_double(cfg, "schedule.factor", 0.5, 0.0, 1.0, open, &s->factor));
    bool has_every = dpt_config_has(cfg, "schedule.every"), has_ms = dpt_config_has(cfg, "schedule.milestones");
    DPT_CHECK(has_every != has_ms, DPT_ERR_INPUT,
              "schedule.every, schedule.milestones: expected exactly one of the two for schedule.type = step, got %s",
              has_every ? "both" : "neither");
    if (has_every) {
      DPT_CALL(dpt_config_get_int(cfg, "schedule.every", 1, 1, INT64_MAX, &s->every));
    } else {
      DPT_CALL(dpt_config_get_int_list(cfg, "schedule.milestones", NULL, 1, INT64_MAX, s->milestones, MAX_MILESTONES,
                                       &s->n_milestones));
      DPT_CHECK(s->n_milestones > 0, DPT_ERR_INPUT, "schedule.milestones: expected at least one epoch, got none");
      for (int i = 1; i < s->n_milestones; ++i)
        DPT_CHECK(s->milestones[i] > s->milestones[i - 1], DPT_ERR_INPUT,
                  "schedule.milestones: expected increasing epochs, got %lld after %lld", (long long)s->milestones[i],
                  (long long)s->milestones[i - 1]);
    }
    break;
  }
  case SCH_PLATEAU: {
    DPT_CALL(dpt_config_get_double(cfg, "schedule.factor", 0.5, 0.0, 1.0, open, &s->factor));
    DPT_CALL(dpt_config_get_int(cfg, "schedule.patience", 10, 0, INT64_MAX, &s->patience));
    DPT_CALL(dpt_config_get_double(cfg, "schedule.threshold", 1e-4, 0.0, INFINITY, DPT_RANGE_OPEN_HI, &s->threshold));
    static const char *const modes[] = {"rel", "abs", NULL};
    int mode;
    DPT_CALL(dpt_config_get_choice(cfg, "schedule.threshold_mode", modes, "rel", &mode));
    s->threshold_abs = mode == 1;
    DPT_CALL(dpt_config_get_int(cfg, "schedule.cooldown", 0, 0, INT64_MAX, &s->cooldown));
    DPT_CALL(dpt_config_get_double(cfg, "schedule.lr_min", 0.0, 0.0, INFINITY, DPT_RANGE_OPEN_HI, &s->lr_min));
    break;
  }
  case SCH_ONECYCLE: {
    DPT_CALL(read_required_int(cfg, "schedule.total_steps", name, 2, &s->total));
    if (dpt_config_has(cfg, "schedule.max_lr"))
      DPT_CALL(dpt_config_get_double(cfg, "schedule.max_lr", 1.0, 0.0, INFINITY, open, &s->max_lr));
    DPT_CALL(dpt_config_get_double(cfg, "schedule.pct_start", 0.3, 0.0, 1.0, open, &s->pct_start));
    double e1 = s->pct_start * (double)s->total - 1.0, e2 = (double)s->total - 1.0;
    DPT_CHECK(e1 >= 1.0 && e2 > e1, DPT_ERR_INPUT,
              "schedule.pct_start: expected both phases of %lld steps to last at least one step "
              "(1 <= pct_start * total_steps - 1 < total_steps - 1), got %g",
              (long long)s->total, s->pct_start);
    DPT_CALL(dpt_config_get_double(cfg, "schedule.div_factor", 25.0, 1.0, INFINITY, DPT_RANGE_OPEN_HI, &s->div_factor));
    DPT_CALL(dpt_config_get_double(cfg, "schedule.final_div_factor", 1e4, 1.0, INFINITY, DPT_RANGE_OPEN_HI,
                                   &s->final_div_factor));
    DPT_CALL(dpt_config_get_bool(cfg, "schedule.cycle_momentum", true, &s->cycle_momentum));
    DPT_CALL(dpt_config_get_double(cfg, "schedule.base_momentum", 0.85, 0.0, 1.0, DPT_RANGE_OPEN_HI,
                                   &s->base_momentum));
    DPT_CALL(dpt_config_get_double(cfg, "schedule.max_momentum", 0.95, 0.0, 1.0, DPT_RANGE_OPEN_HI,
                                   &s->max_momentum));
    DPT_CHECK(s->base_momentum <= s->max_momentum, DPT_ERR_INPUT,
              "schedule.base_momentum: expected at most schedule.max_momentum (%g), got %g", s->max_momentum,
              s->base_momentum);
    break;
  }
  case SCH_SGDR:
    DPT_CALL(read_required_int(cfg, "schedule.t0", name, 1, &s->t0));
    DPT_CALL(dpt_config_get_int(cfg, "schedule.t_mult", 1, 1, 1 << 20, &s->t_mult));
    DPT_CALL(dpt_config_get_double(cfg, "schedule.lr_min", 0.0, 0.0, INFINITY, DPT_RANGE_OPEN_HI, &s->lr_min));
    break;
  }
  return DPT_OK;
}

/* Every [schedule] key this module knows and the types it applies to (bit per sched_type). */
#define BIT(t) (1u << (t))
static const dpt_config_key_use KEYS[] = {
    {"schedule.warmup_steps", ~0u},
    {"schedule.lr_final", BIT(SCH_LINEAR)},
    {"schedule.steps", BIT(SCH_LINEAR)},
    {"schedule.factor", BIT(SCH_STEP) | BIT(SCH_PLATEAU)},
    {"schedule.every", BIT(SCH_STEP)},
    {"schedule.milestones", BIT(SCH_STEP)},
    {"schedule.patience", BIT(SCH_PLATEAU)},
    {"schedule.threshold", BIT(SCH_PLATEAU)},
    {"schedule.threshold_mode", BIT(SCH_PLATEAU)},
    {"schedule.cooldown", BIT(SCH_PLATEAU)},
    {"schedule.lr_min", BIT(SCH_PLATEAU) | BIT(SCH_SGDR)},
    {"schedule.total_steps", BIT(SCH_ONECYCLE)},
    {"schedule.max_lr", BIT(SCH_ONECYCLE)},
    {"schedule.pct_start", BIT(SCH_ONECYCLE)},
    {"schedule.div_factor", BIT(SCH_ONECYCLE)},
    {"schedule.final_div_factor", BIT(SCH_ONECYCLE)},
    {"schedule.cycle_momentum", BIT(SCH_ONECYCLE)},
    {"schedule.base_momentum", BIT(SCH_ONECYCLE)},
    {"schedule.max_momentum", BIT(SCH_ONECYCLE)},
    {"schedule.t0", BIT(SCH_SGDR)},
    {"schedule.t_mult", BIT(SCH_SGDR)},
};

/* A given key of this module that the type does not read is an error that says so. */
static dpt_status check_keys_apply(const dpt_config *cfg, sched_type type) {
  return dpt_config_check_applies(cfg, KEYS, sizeof KEYS / sizeof KEYS[0], (unsigned)type, "schedule.type", TYPE_NAMES[type]);
}

static void add_state(dpt_schedule *s, const char *name, void *data, dpt_state_type type) {
  s->states[s->n_states++] = (dpt_state_info){name, data, 1, type};
}

dpt_status dpt_schedule_create(dpt_config *cfg, dpt_schedule **out) {
  dpt_status st = DPT_OK;
  dpt_schedule *s = NULL;
  *out = NULL;
  DPT_TRY(dpt_calloc(1, sizeof *s, "schedule", &s));
  int type;
  DPT_TRY(dpt_config_get_choice(cfg, "schedule.type", TYPE_NAMES, "constant", &type));
  s->type = (sched_type)type;
  DPT_TRY(check_keys_apply(cfg, s->type));
  DPT_TRY(read_keys(cfg, s));
  s->lr = NAN;
  s->best = INFINITY;
  add_state(s, "lr", &s->lr, DPT_STATE_F64);
  if (s->type == SCH_PLATEAU) {
    add_state(s, "best", &s->best, DPT_STATE_F64);
    add_state(s, "bad_epochs", &s->bad_epochs, DPT_STATE_I64);
    add_state(s, "cooldown_left", &s->cooldown_left, DPT_STATE_I64);
    add_state(s, "reductions", &s->reductions, DPT_STATE_I64);
  }
  if (s->type == SCH_SGDR) add_state(s, "cycle", &s->cycle, DPT_STATE_I64);
  *out = s;
  s = NULL;
done:
  dpt_schedule_destroy(&s);
  return st;
}

void dpt_schedule_destroy(dpt_schedule **s) { dpt_free(s); }

/* b + (a − b)(1 + cos πp)/2: from a at p = 0 to b at p = 1 (p clamped). */
static double cos_anneal(double a, double b, double p) {
  if (p < 0) p = 0;
  if (p > 1) p = 1;
  return b + (a - b) * (1.0 + cos(PI * p)) / 2.0;
}

/* SGDR: the cycle holding step, its first step and its length. */
static void sgdr_cycle(const dpt_schedule *s, int64_t step, int64_t *cycle, int64_t *start, int64_t *len) {
  if (s->t_mult == 1) {
    *cycle = step / s->t0;
    *start = *cycle * s->t0;
    *len = s->t0;
    return;
  }
  int64_t i = 0, b = 0, l = s->t0;
  while (step - b >= l) { /* lengths grow geometrically: O(log step) turns */
    b += l;
    l *= s->t_mult;
    i += 1;
  }
  *cycle = i;
  *start = b;
  *len = l;
}

/* Onecycle's phase for step: writes the annealing ends and progress p. */
static void onecycle_phase(const dpt_schedule *s, double max_lr, int64_t step, double *lr, double *mom) {
  const double lr_i = max_lr / s->div_factor, lr_end = lr_i / s->final_div_factor;
  const double e1 = s->pct_start * (double)s->total - 1.0, e2 = (double)s->total - 1.0;
  const double x = (double)step;
  if (x <= e1) {
    double p = x / e1;
    *lr = cos_anneal(lr_i, max_lr, p);
    *mom = cos_anneal(s->max_momentum, s->base_momentum, p);
  } else {
    double p = (x - e1) / (e2 - e1);
    *lr = cos_anneal(max_lr, lr_end, p);
    *mom = cos_anneal(s->base_momentum, s->max_momentum, p);
  }
}

double dpt_schedule_lr(const dpt_schedule *s, double base_lr, int64_t step, int64_t epoch) {
  double lr = base_lr;
  switch (s->type) {
  case SCH_CONSTANT:
    break;
  case SCH_LINEAR: {
    double p = step >= s->steps ? 1.0 : (double)step / (double)s->steps;
    lr = base_lr + (s->lr_final - base_lr) * p;
    break;
  }
  case SCH_STEP: {
    int64_t k = 0;
    if (s->every > 0)
      k = epoch / s->every;
    else
      while (k < s->n_milestones && s->milestones[k] <= epoch) ++k;
    lr = base_lr * pow(s->factor, (double)k);
    break;
  }
  case SCH_PLATEAU:
    lr = fmax(base_lr * pow(s->factor, (double)s->reductions), s->lr_min);
    break;
  case SCH_ONECYCLE: {
    double mom;
    onecycle_phase(s, s->max_lr > 0 ? s->max_lr : base_lr, step, &lr, &mom);
    break;
  }
  case SCH_SGDR: {
    int64_t cycle, start, len;
    sgdr_cycle(s, step, &cycle, &start, &len);
    lr = s->lr_min + (base_lr - s->lr_min) * (1.0 + cos(PI * (double)(step - start) / (double)len)) / 2.0;
    break;
  }
  }
  if (step < s->warmup) lr *= (double)(step + 1) / (double)s->warmup;
  return lr;
}

double dpt_schedule_momentum(const dpt_schedule *s, int64_t step) {
  if (s->type != SCH_ONECYCLE || !s->cycle_momentum) return NAN;
  double lr, mom;
  onecycle_phase(s, 1.0, step, &lr, &mom);
  return mom;
}

void dpt_schedule_apply(dpt_schedule *s, dpt_optim *o, int64_t step, int64_t epoch) {
  s->lr = dpt_schedule_lr(s, dpt_optim_base_lr(o), step, epoch);
  dpt_optim_set_lr(o, s->lr);
  double mom = dpt_schedule_momentum(s, step);
  if (!isnan(mom)) dpt_optim_set_momentum(o, mom);
  if (s->type == SCH_SGDR) {
    int64_t start, len;
    sgdr_cycle(s, step, &s->cycle, &start, &len);
  }
}

void dpt_schedule_end_epoch(dpt_schedule *s, int64_t epoch, double val_loss) {
  (void)epoch;
  if (s->type != SCH_PLATEAU) return;
  /* PyTorch ReduceLROnPlateau, mode min (a NaN loss is never an improvement) */
  double bound = s->threshold_abs ? s->best - s->threshold : s->best * (1.0 - s->threshold);
  if (val_loss < bound) { /* best starts at +inf: any finite loss improves */
    s->best = val_loss;
    s->bad_epochs = 0;
  } else {
    s->bad_epochs += 1;
  }
  if (s->cooldown_left > 0) {
    s->cooldown_left -= 1;
    s->bad_epochs = 0;
  }
  if (s->bad_epochs > s->patience) {
    s->reductions += 1;
    s->cooldown_left = s->cooldown;
    s->bad_epochs = 0;
  }
}

const char *dpt_schedule_type_name(const dpt_schedule *s) { return TYPE_NAMES[s->type]; }
int dpt_schedule_num_states(const dpt_schedule *s) { return s->n_states; }

void dpt_schedule_state(dpt_schedule *s, int i, dpt_state_info *info) {
  if (i < 0 || i >= s->n_states) {
    *info = (dpt_state_info){NULL, NULL, 0, DPT_STATE_F64};
    return;
  }
  *info = s->states[i];
}

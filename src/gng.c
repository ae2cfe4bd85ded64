/* gng.c — growing neural gas (B. Fritzke, "A growing neural gas network learns
 * topologies", NIPS 1995) on a sample of the training rows gathered to every rank; every
 * rank runs the same deterministic loop, so the nodes are identical on every rank and for
 * any P (the sample is the same rows in the same order for any P). */
#include <math.h>
#include <string.h>

#include "dptrain/rbf.h"
#include "dptrain/types.h"
#include "dptrain/watchdog.h"
#include "rbf_private.h"

typedef struct gng {
  int64_t d, cap, nn; /* features, node budget, nodes in use */
  double *w;          /* [cap, d] node positions */
  double *err;        /* [cap] accumulated squared error */
  int32_t *age;       /* [cap, cap] edge ages, −1 = no edge (symmetric) */
} gng;

static int32_t *edge(gng *g, int64_t a, int64_t b) { return g->age + a * g->cap + b; }

static void connect(gng *g, int64_t a, int64_t b, int32_t v) {
  *edge(g, a, b) = v;
  *edge(g, b, a) = v;
}

static bool has_edges(gng *g, int64_t a) {
  for (int64_t j = 0; j < g->nn; ++j)
    if (*edge(g, a, j) >= 0) return true;
  return false;
}

/* Removes node a by moving the last node into its place. */
static void remove_node(gng *g, int64_t a) {
  int64_t last = g->nn - 1;
  if (a != last) {
    memcpy(g->w + a * g->d, g->w + last * g->d, (size_t)g->d * sizeof *g->w);
    g->err[a] = g->err[last];
    for (int64_t j = 0; j < g->nn; ++j) {
      int32_t v = *edge(g, last, j);
      *edge(g, a, j) = v;
      *edge(g, j, a) = v;
    }
    *edge(g, a, a) = -1;
  }
  for (int64_t j = 0; j < g->nn; ++j) connect(g, last, j, -1);
  g->nn--;
}

/* One input signal ξ (Fritzke's steps 2–8 and the error decay of step 9). */
static void adapt(gng *g, const double *xi, const dpt_rbf_options *o) {
  const int64_t d = g->d;
  /* 3. nearest s1 and second-nearest s2 (ties to the lowest index) */
  int64_t s1 = -1, s2 = -1;
  double d1 = INFINITY, d2 = INFINITY;
  for (int64_t i = 0; i < g->nn; ++i) {
    double t = dpt_rbf_dist2(g->w + i * d, xi, d);
    if (t < d1) {
      s2 = s1, d2 = d1;
      s1 = i, d1 = t;
    } else if (t < d2) {
      s2 = i, d2 = t;
    }
  }
  /* 4. age the edges of s1; 5. error; 6. move s1 and its neighbours towards ξ */
  g->err[s1] += d1;
  for (int64_t t = 0; t < d; ++t) g->w[s1 * d + t] += o->gng_eps_b * (xi[t] - g->w[s1 * d + t]);
  for (int64_t j = 0; j < g->nn; ++j)
    if (*edge(g, s1, j) >= 0) {
      connect(g, s1, j, *edge(g, s1, j) + 1);
      for (int64_t t = 0; t < d; ++t) g->w[j * d + t] += o->gng_eps_n * (xi[t] - g->w[j * d + t]);
    }
  /* 7. connect s1 and s2 with age 0 */
  connect(g, s1, s2, 0);
  /* 8. remove edges older than a_max, then nodes left without edges (only s1's former
   * neighbours can be; remove the higher indices first so lower ones keep their place) */
  for (int64_t j = g->nn - 1; j >= 0; --j)
    if (*edge(g, s1, j) > o->gng_age_max) {
      connect(g, s1, j, -1);
      if (!has_edges(g, j)) {
        remove_node(g, j);
        if (s1 == g->nn) s1 = j; /* s1 was the last node: it moved into j's place */
      }
    }
}

/* 9. insert a node halfway between the node q of largest error and its neighbour f of
 * largest error. */
static void insert(gng *g, const dpt_rbf_options *o) {
  const int64_t d = g->d;
  int64_t q = 0;
  for (int64_t i = 1; i < g->nn; ++i)
    if (g->err[i] > g->err[q]) q = i;
  int64_t f = -1;
  for (int64_t j = 0; j < g->nn; ++j)
    if (*edge(g, q, j) >= 0 && (f < 0 || g->err[j] > g->err[f])) f = j;
  if (f < 0) return; /* cannot happen: every node has an edge after step 8 */
  int64_t r = g->nn++;
  for (int64_t t = 0; t < d; ++t) g->w[r * d + t] = 0.5 * (g->w[q * d + t] + g->w[f * d + t]);
  connect(g, q, f, -1);
  connect(g, q, r, 0);
  connect(g, r, f, 0);
  g->err[q] *= o->gng_alpha;
  g->err[f] *= o->gng_alpha;
  g->err[r] = g->err[q];
}

dpt_status dpt_gng_fit(const dpt_comm *c, const dpt_rbf_data *data, const dpt_rbf_options *o, uint64_t seed,
                       double *centers, int64_t *signals) {
  DPT_CALL(dpt_rbf_options_check(o, data->n, data->d));
  const int64_t d = data->d, cap = o->units;
  const int64_t S = o->gng_sample < data->n ? o->gng_sample : data->n;
  const int64_t refine = o->gng_refine >= 0 ? o->gng_refine : o->gng_lambda * cap; /* −1: λ · units */
  dpt_status st = DPT_OK;
  int64_t *ids = NULL;
  double *sample = NULL;
  gng g = {.d = d, .cap = cap, .nn = 0, .w = NULL, .err = NULL, .age = NULL};
  st = dpt_alloc((size_t)S, sizeof *ids, "gng: sample ids", &ids);
  if (st == DPT_OK) st = dpt_alloc((size_t)S * (size_t)d, sizeof *sample, "gng: sample", &sample);
  if (st == DPT_OK) st = dpt_alloc((size_t)cap * (size_t)d, sizeof *g.w, "gng: nodes", &g.w);
  if (st == DPT_OK) st = dpt_calloc((size_t)cap, sizeof *g.err, "gng: errors", &g.err);
  if (st == DPT_OK) st = dpt_alloc((size_t)cap * (size_t)cap, sizeof *g.age, "gng: edge ages", &g.age);
  if (st == DPT_OK) {
    dpt_rbf_rng srng;
    dpt_rbf_rng_init(&srng, seed, DPT_RBF_STREAM_GNG_SAMPLE);
    st = dpt_rbf_distinct_ids(&srng, data->n, S, ids);
  }
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY(dpt_rbf_fetch_rows(c, data, ids, S, sample));
  for (int64_t i = 0; i < cap * cap; ++i) g.age[i] = -1;

  /* From here on every rank computes the same thing from the same sample: no MPI. */
  dpt_rbf_rng rng;
  dpt_rbf_rng_init(&rng, seed, DPT_RBF_STREAM_GNG);
  /* 0. two nodes at random sample rows, no edges */
  for (int64_t i = 0; i < 2; ++i)
    memcpy(g.w + i * d, sample + (int64_t)dpt_rbf_rng_below(&rng, (uint64_t)S) * d, (size_t)d * sizeof *g.w);
  g.nn = 2;
  /* Grow to the budget (a node every λ signals), then refine for gng_refine signals;
   * a node removed late is grown back. The limit only guards against a budget that cannot
   * be held (edges aging out faster than nodes are inserted). */
  const int64_t limit = 20 * o->gng_lambda * cap + 2 * refine + 1000;
  int64_t s = 0, full_since = -1;
  const double decay = 1.0 - o->gng_beta;
  while (s < limit) {
    const double *xi = sample + (int64_t)dpt_rbf_rng_below(&rng, (uint64_t)S) * d;
    adapt(&g, xi, o);
    ++s;
    if (s % 4096 == 0) dpt_watchdog_progress(); /* a long local loop (watchdog.h) */
    if (s % o->gng_lambda == 0 && g.nn < cap) insert(&g, o);
    for (int64_t i = 0; i < g.nn; ++i) g.err[i] *= decay;
    if (g.nn < cap) full_since = -1;
    else if (full_since < 0) full_since = s;
    if (full_since >= 0 && s - full_since >= refine) break;
  }
  DPT_TRY_CHECK(g.nn == cap && full_since >= 0 && s - full_since >= refine, DPT_ERR_INPUT,
                "%s.gng_age_max: growing neural gas could not hold %lld nodes within %lld signals (has %lld); "
                "raise gng_age_max or lower gng_lambda",
                o->section, (long long)cap, (long long)limit, (long long)g.nn);
  memcpy(centers, g.w, (size_t)cap * (size_t)d * sizeof *centers);
  if (signals) *signals = s;
done:
  dpt_free(&ids);
  dpt_free(&sample);
  dpt_free(&g.w);
  dpt_free(&g.err);
  dpt_free(&g.age);
  return st;
}

/* rbf.c — RBF options, shards, random placement, widths, features and the least-squares
 * output fit (see rbf.h). K-means is in kmeans.c, growing neural gas in gng.c. */
#include "dptrain/rbf.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "dptrain/types.h"
#include "rbf_private.h"

/* ---- options ---------------------------------------------------------------------- */

static const char *const placement_names[] = {"random_box", "random_samples", "kmeans++", "gng", NULL};
static const char *const width_names[] = {"spread", "nearest", "global", NULL};
static const char *const learn_names[] = {"2step", "3step", NULL};

/* The most GNG nodes: the edge-age matrix is units² int32. */
#define DPT_GNG_MAX_UNITS 4096

void dpt_rbf_options_default(dpt_rbf_options *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->section, sizeof o->section, "layer");
  o->units = 0;
  o->placement = DPT_RBF_KMEANSPP;
  o->width = DPT_RBF_WIDTH_SPREAD;
  o->width_factor = 1.0;
  o->sigma = 0.0;
  o->kmeans_iters = 100;
  o->kmeans_tol = 1e-4;
  /* Fritzke (1995), "A growing neural gas network learns topologies", section 4 */
  o->gng_lambda = 100;
  o->gng_eps_b = 0.2;
  o->gng_eps_n = 0.006;
  o->gng_alpha = 0.5;
  o->gng_beta = 0.005;
  o->gng_age_max = 50;
  o->gng_sample = 20000;
  o->gng_refine = -1; /* -1: λ · units */
  o->learn = DPT_RBF_LEARN_2STEP;
  o->ridge = 1e-8;
  o->fit_epochs = 500;
  o->fit_lr = 0.5;
}

dpt_status dpt_rbf_options_read(dpt_config *cfg, const char *section, int64_t def_units, dpt_rbf_options *o) {
  dpt_rbf_options_default(o);
  DPT_CHECK(strlen(section) < sizeof o->section, DPT_ERR_INPUT, "%s: section name too long", section);
  snprintf(o->section, sizeof o->section, "%s", section);
  char key[96];
  int idx = 0;
#define KEY(name) (snprintf(key, sizeof key, "%s." name, section), key)
  DPT_CALL(dpt_config_get_int(cfg, KEY("units"), def_units, 1, INT32_MAX, &o->units));
  DPT_CALL(dpt_config_get_choice(cfg, KEY("placement"), placement_names, "kmeans++", &idx));
  o->placement = (dpt_rbf_placement)idx;
  DPT_CALL(dpt_config_get_choice(cfg, KEY("width"), width_names, "spread", &idx));
  o->width = (dpt_rbf_width)idx;
  DPT_CALL(dpt_config_get_double(cfg, KEY("width_factor"), 1.0, 0.0, 1e6, DPT_RANGE_OPEN_LO, &o->width_factor));
  if (dpt_config_has(cfg, KEY("sigma")))
    DPT_CALL(dpt_config_get_double(cfg, key, 1.0, 0.0, 1e300, DPT_RANGE_OPEN_LO, &o->sigma));
  DPT_CALL(dpt_config_get_int(cfg, KEY("kmeans_iters"), 100, 0, 1000000, &o->kmeans_iters));
  DPT_CALL(dpt_config_get_double(cfg, KEY("kmeans_tol"), 1e-4, 0.0, 1.0, DPT_RANGE_CLOSED, &o->kmeans_tol));
  DPT_CALL(dpt_config_get_int(cfg, KEY("gng_lambda"), 100, 1, 1000000000, &o->gng_lambda));
  DPT_CALL(dpt_config_get_double(cfg, KEY("gng_eps_b"), 0.2, 0.0, 1.0, DPT_RANGE_OPEN_LO, &o->gng_eps_b));
  DPT_CALL(dpt_config_get_double(cfg, KEY("gng_eps_n"), 0.006, 0.0, 1.0, DPT_RANGE_CLOSED, &o->gng_eps_n));
  DPT_CALL(dpt_config_get_double(cfg, KEY("gng_alpha"), 0.5, 0.0, 1.0, DPT_RANGE_CLOSED, &o->gng_alpha));
  DPT_CALL(dpt_config_get_double(cfg, KEY("gng_beta"), 0.005, 0.0, 1.0, DPT_RANGE_OPEN_HI, &o->gng_beta));
  DPT_CALL(dpt_config_get_int(cfg, KEY("gng_age_max"), 50, 1, 1000000000, &o->gng_age_max));
  DPT_CALL(dpt_config_get_int(cfg, KEY("gng_sample"), 20000, 2, 100000000, &o->gng_sample));
  DPT_CALL(dpt_config_get_int(cfg, KEY("gng_refine"), o->gng_lambda * o->units, 0, INT64_MAX / 4, &o->gng_refine));
  DPT_CALL(dpt_config_get_choice(cfg, KEY("learn"), learn_names, "2step", &idx));
  o->learn = (dpt_rbf_learn)idx;
  DPT_CALL(dpt_config_get_double(cfg, KEY("ridge"), 1e-8, 0.0, 1e12, DPT_RANGE_CLOSED, &o->ridge));
  DPT_CALL(dpt_config_get_int(cfg, KEY("fit_epochs"), 500, 0, 100000000, &o->fit_epochs));
  DPT_CALL(dpt_config_get_double(cfg, KEY("fit_lr"), 0.5, 0.0, 1e6, DPT_RANGE_OPEN_LO, &o->fit_lr));
#undef KEY
  return DPT_OK;
}

dpt_status dpt_rbf_options_check(const dpt_rbf_options *o, int64_t n, int64_t d) {
  const char *s = o->section;
  DPT_CHECK(d >= 1, DPT_ERR_INPUT, "%s: rbf layer: expected at least 1 input feature, got %lld", s, (long long)d);
  DPT_CHECK(n >= 1, DPT_ERR_INPUT, "%s: rbf layer: expected at least 1 training row to place centers, got 0", s);
  DPT_CHECK(o->units >= 1 && o->units <= n, DPT_ERR_INPUT,
            "%s.units: expected at most N = %lld centers (the training rows), got %lld", s, (long long)n,
            (long long)o->units);
  DPT_CHECK((unsigned)o->placement <= DPT_RBF_GNG, DPT_ERR_INPUT, "%s.placement: unknown placement %d", s,
            (int)o->placement);
  DPT_CHECK((unsigned)o->width <= DPT_RBF_WIDTH_GLOBAL, DPT_ERR_INPUT, "%s.width: unknown width %d", s, (int)o->width);
  DPT_CHECK(o->width_factor > 0.0 && isfinite(o->width_factor), DPT_ERR_INPUT,
            "%s.width_factor: expected a number > 0, got %g", s, o->width_factor);
  DPT_CHECK(o->sigma >= 0.0 && isfinite(o->sigma), DPT_ERR_INPUT, "%s.sigma: expected a number > 0, got %g", s,
            o->sigma);
  DPT_CHECK(o->width != DPT_RBF_WIDTH_NEAREST || o->units >= 2, DPT_ERR_INPUT,
            "%s.width: nearest needs at least 2 centers (units), got %lld", s, (long long)o->units);
  DPT_CHECK(o->ridge >= 0.0 && isfinite(o->ridge), DPT_ERR_INPUT, "%s.ridge: expected a number >= 0, got %g", s,
            o->ridge);
  DPT_CHECK(o->kmeans_iters >= 0, DPT_ERR_INPUT, "%s.kmeans_iters: expected >= 0, got %lld", s,
            (long long)o->kmeans_iters);
  if (o->placement == DPT_RBF_GNG) {
    int64_t sample = o->gng_sample < n ? o->gng_sample : n;
    DPT_CHECK(o->units >= 2 && o->units <= DPT_GNG_MAX_UNITS, DPT_ERR_INPUT,
              "%s.units: gng expected 2 to %d nodes, got %lld", s, DPT_GNG_MAX_UNITS, (long long)o->units);
    DPT_CHECK(sample >= 2, DPT_ERR_INPUT, "%s.gng_sample: expected at least 2 rows to sample, got %lld", s,
              (long long)sample);
    DPT_CHECK(o->gng_lambda >= 1, DPT_ERR_INPUT, "%s.gng_lambda: expected >= 1, got %lld", s,
              (long long)o->gng_lambda);
    DPT_CHECK(o->gng_age_max >= 1, DPT_ERR_INPUT, "%s.gng_age_max: expected >= 1, got %lld", s,
              (long long)o->gng_age_max);
    DPT_CHECK(o->gng_eps_b > 0.0 && o->gng_eps_b <= 1.0 && o->gng_eps_n >= 0.0 && o->gng_eps_n <= 1.0, DPT_ERR_INPUT,
              "%s.gng_eps_b: expected 0 < eps_b <= 1 and 0 <= eps_n <= 1, got %g, %g", s, o->gng_eps_b,
              o->gng_eps_n);
  }
  return DPT_OK;
}

/* ---- shards ------------------------------------------------------------------------ */

dpt_status dpt_rbf_data_check(const dpt_comm *c, const dpt_rbf_data *data) {
  long long mine[3] = {data->count, data->n, data->d}, lo[3], hi[3], before = 0, total = 0;
  long long cnt = data->count;
  DPT_CALL_MPI(MPI_Allreduce(mine, lo, 3, MPI_LONG_LONG, MPI_MIN, c->comm));
  DPT_CALL_MPI(MPI_Allreduce(mine, hi, 3, MPI_LONG_LONG, MPI_MAX, c->comm));
  DPT_CALL_MPI(MPI_Exscan(&cnt, &before, 1, MPI_LONG_LONG, MPI_SUM, c->comm));
  if (c->rank == 0) before = 0; /* MPI_Exscan leaves rank 0's result undefined */
  DPT_CALL_MPI(MPI_Allreduce(&cnt, &total, 1, MPI_LONG_LONG, MPI_SUM, c->comm));
  dpt_status st = DPT_OK;
  if (lo[1] != hi[1] || lo[2] != hi[2])
    st = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                       "rbf data: expected the same N and d on every rank, got N in [%lld, %lld], d in [%lld, %lld]",
                       lo[1], hi[1], lo[2], hi[2]);
  else if (lo[0] < 0 || total != data->n)
    st = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                       "rbf data: expected shards of %lld rows in all, got %lld", (long long)data->n, total);
  else if (data->begin != before)
    st = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                       "rbf data: expected this rank's shard to begin at row %lld (rank order), got %lld", before,
                       (long long)data->begin);
  else if (data->count > 0 && !data->X)
    st = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__, "rbf data: %lld rows but no matrix",
                       (long long)data->count);
  for (int64_t i = 0; st == DPT_OK && i < data->count * data->d; ++i)
    if (!isfinite(data->X[i]))
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                         "rbf data: row %lld, feature %lld: expected a finite number, got %g",
                         (long long)(data->begin + i / data->d), (long long)(i % data->d), data->X[i]);
  return dpt_comm_agree(c, st);
}

dpt_status dpt_rbf_bounds(const dpt_comm *c, const dpt_rbf_data *data, double *lo, double *hi) {
  int64_t d = data->d;
  int dn;
  DPT_CALL(dpt_cast_int(d, "rbf data: features", &dn));
  for (int64_t j = 0; j < d; ++j) {
    lo[j] = INFINITY;
    hi[j] = -INFINITY;
  }
  for (int64_t i = 0; i < data->count; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double v = data->X[i * d + j];
      if (v < lo[j]) lo[j] = v;
      if (v > hi[j]) hi[j] = v;
    }
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, lo, dn, MPI_DOUBLE, MPI_MIN, c->comm));
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, hi, dn, MPI_DOUBLE, MPI_MAX, c->comm));
  for (int64_t j = 0; j < d; ++j)
    if (lo[j] > hi[j]) lo[j] = hi[j] = 0.0; /* N == 0 */
  return DPT_OK;
}

/* ---- random placement ----------------------------------------------------------------- */

dpt_status dpt_rbf_distinct_ids(dpt_rbf_rng *rng, int64_t n, int64_t m, int64_t *ids) {
  DPT_CHECK(m >= 0 && m <= n, DPT_ERR_INTERNAL, "distinct ids: %lld of %lld", (long long)m, (long long)n);
  /* Floyd: for j = n − m .. n − 1 draw t in [0, j]; take t unless taken, else j.
   * Membership in an open-addressing hash set of capacity ≥ 2m. */
  size_t cap = 16;
  while (cap < 2 * (size_t)m) cap *= 2;
  int64_t *set;
  DPT_CALL(dpt_alloc(cap, sizeof *set, "distinct ids: hash set", &set));
  for (size_t i = 0; i < cap; ++i) set[i] = -1;
  int64_t got = 0;
  for (int64_t j = n - m; j < n; ++j) {
    int64_t t = (int64_t)dpt_rbf_rng_below(rng, (uint64_t)j + 1);
    for (int pass = 0; pass < 2; ++pass) {
      size_t h = (size_t)(((uint64_t)t * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
      while (set[h] != -1 && set[h] != t) h = (h + 1) & (cap - 1);
      if (set[h] == -1) {
        set[h] = t;
        ids[got++] = t;
        break;
      }
      t = j; /* t was taken; j cannot be (all taken ids are < j) */
    }
  }
  dpt_free(&set);
  return DPT_OK;
}

dpt_status dpt_rbf_fetch_rows(const dpt_comm *c, const dpt_rbf_data *data, const int64_t *ids, int64_t m,
                              double *out) {
  int64_t d = data->d;
  memset(out, 0, (size_t)m * (size_t)d * sizeof *out);
  for (int64_t r = 0; r < m; ++r) {
    int64_t i = ids[r] - data->begin;
    if (i >= 0 && i < data->count)
      for (int64_t j = 0; j < d; ++j) out[r * d + j] = data->X[i * d + j] + 0.0; /* −0 → +0: same for any P */
  }
  /* Zero-filled buffer that only owners fill: the sum is exact. In chunks that fit an int. */
  const int64_t chunk = (int64_t)1 << 24;
  for (int64_t off = 0; off < m * d; off += chunk) {
    int64_t len = m * d - off < chunk ? m * d - off : chunk;
    DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, out + off, (int)len, MPI_DOUBLE, MPI_SUM, c->comm));
  }
  return DPT_OK;
}

dpt_status dpt_rbf_place_random_box(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, uint64_t seed,
                                    double *centers) {
  int64_t d = data->d;
  double *lo = NULL, *hi = NULL;
  dpt_status st = dpt_alloc(2 * (size_t)d, sizeof *lo, "rbf: bounding box", &lo);
  DPT_CALL(dpt_comm_agree(c, st));
  hi = lo + d;
  st = dpt_rbf_bounds(c, data, lo, hi);
  if (st == DPT_OK) {
    dpt_rbf_rng rng;
    dpt_rbf_rng_init(&rng, seed, DPT_RBF_STREAM_BOX);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < d; ++j) centers[i * d + j] = lo[j] + (hi[j] - lo[j]) * dpt_rbf_rng_uniform(&rng);
  }
  dpt_free(&lo);
  return st;
}

dpt_status dpt_rbf_place_random_samples(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, uint64_t seed,
                                        double *centers) {
  DPT_CHECK(k >= 0 && k <= data->n, DPT_ERR_INPUT, "rbf: expected at most N = %lld random samples, got %lld",
            (long long)data->n, (long long)k);
  int64_t *ids = NULL;
  dpt_status st = dpt_alloc((size_t)k, sizeof *ids, "rbf: sample ids", &ids);
  if (st == DPT_OK) {
    dpt_rbf_rng rng;
    dpt_rbf_rng_init(&rng, seed, DPT_RBF_STREAM_SAMPLES);
    st = dpt_rbf_distinct_ids(&rng, data->n, k, ids);
  }
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK) st = dpt_rbf_fetch_rows(c, data, ids, k, centers);
  dpt_free(&ids);
  return st;
}

/* ---- widths ------------------------------------------------------------------------ */

/* Distance from center i to the nearest other center (plain loop), or 0 when k == 1. */
static double nearest_other(const double *centers, int64_t k, int64_t d, int64_t i) {
  double best = INFINITY;
  for (int64_t j = 0; j < k; ++j)
    if (j != i) {
      double t = dpt_rbf_dist2(centers + i * d, centers + j * d, d);
      if (t < best) best = t;
    }
  return k > 1 ? sqrt(best) : 0.0;
}

/* Per-center RMS distance of the members: fixed-point sums of the squared distances
 * (P-independent). rms[i] = 0 for an empty cluster. */
static dpt_status cluster_rms(const dpt_comm *c, const dpt_rbf_data *data, const double *centers, int64_t k,
                              double *rms) {
  int64_t d = data->d, n = data->count;
  dpt_status st = DPT_OK;
  int64_t *index = NULL, *acc = NULL;
  double *dist = NULL;
  int kn2;
  st = dpt_cast_int(2 * k, "rbf: 2 x units", &kn2);
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *index, "rbf spread: assignment", &index);
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *dist, "rbf spread: distances", &dist);
  if (st == DPT_OK) st = dpt_calloc(2 * (size_t)k, sizeof *acc, "rbf spread: sums", &acc);
  if (st == DPT_OK) st = dpt_kmeans_assign(data->X, n, d, centers, k, index, dist);
  DPT_TRY(dpt_comm_agree(c, st));
  double maxd = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (dist[i] > maxd) maxd = dist[i];
  if (MPI_Allreduce(MPI_IN_PLACE, &maxd, 1, MPI_DOUBLE, MPI_MAX, c->comm) != MPI_SUCCESS)
    DPT_TRY_CHECK(0, DPT_ERR_MPI, "rbf spread: MPI_Allreduce failed");
  double scale = dpt_rbf_fixed_scale(data->n, maxd);
  for (int64_t i = 0; i < n; ++i) {
    acc[index[i]] += dpt_rbf_fixq(dist[i] * scale);
    acc[k + index[i]] += 1;
  }
  if (MPI_Allreduce(MPI_IN_PLACE, acc, kn2, MPI_INT64_T, MPI_SUM, c->comm) != MPI_SUCCESS)
    DPT_TRY_CHECK(0, DPT_ERR_MPI, "rbf spread: MPI_Allreduce failed");
  for (int64_t i = 0; i < k; ++i) rms[i] = acc[k + i] > 0 ? sqrt((double)acc[i] / scale / (double)acc[k + i]) : 0.0;
done:
  dpt_free(&index);
  dpt_free(&dist);
  dpt_free(&acc);
  return st;
}

dpt_status dpt_rbf_widths(const dpt_comm *c, const dpt_rbf_data *data, const dpt_rbf_options *o,
                          const double *centers, double *widths) {
  int64_t k = o->units, d = data->d;
  const char *s = o->section;
  if (o->width == DPT_RBF_WIDTH_SPREAD) {
    /* A cluster with no spread (one member, or all members on the center) takes the
     * distance to the nearest other center instead. */
    DPT_CALL(cluster_rms(c, data, centers, k, widths));
    for (int64_t i = 0; i < k; ++i) {
      if (!(widths[i] > 0.0)) widths[i] = nearest_other(centers, k, d, i);
      widths[i] *= o->width_factor;
    }
  } else if (o->width == DPT_RBF_WIDTH_NEAREST) {
    for (int64_t i = 0; i < k; ++i) widths[i] = o->width_factor * nearest_other(centers, k, d, i);
  } else {
    double sigma = o->sigma;
    if (!(sigma > 0.0)) {
      /* d_max / sqrt(2k), d_max the largest distance between centers (Haykin); with one
       * center the bounding-box diagonal. */
      double dmax = 0.0;
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = i + 1; j < k; ++j) {
          double t = dpt_rbf_dist2(centers + i * d, centers + j * d, d);
          if (t > dmax) dmax = t;
        }
      dmax = sqrt(dmax);
      if (k == 1) {
        double *lo;
        DPT_CALL(dpt_comm_agree(c, dpt_alloc(2 * (size_t)d, sizeof *lo, "rbf: bounding box", &lo)));
        dpt_status st = dpt_rbf_bounds(c, data, lo, lo + d);
        dmax = sqrt(dpt_rbf_dist2(lo, lo + d, d));
        dpt_free(&lo);
        DPT_CALL(st);
      }
      sigma = dmax / sqrt(2.0 * (double)k);
    }
    for (int64_t i = 0; i < k; ++i) widths[i] = sigma;
  }
  for (int64_t i = 0; i < k; ++i)
    DPT_CHECK(widths[i] > 0.0 && isfinite(widths[i]), DPT_ERR_INPUT,
              "%s.width: %s gives sigma_%lld = %g, expected > 0 (centers or samples coincide; set width = global "
              "with sigma)",
              s, width_names[o->width], (long long)i, widths[i]);
  return DPT_OK;
}

dpt_status dpt_rbf_place(const dpt_comm *c, const dpt_rbf_data *data, const dpt_rbf_options *o, uint64_t seed,
                         double *centers, double *widths) {
  DPT_CALL(dpt_rbf_options_check(o, data->n, data->d));
  DPT_CALL(dpt_rbf_data_check(c, data));
  switch (o->placement) {
  case DPT_RBF_RANDOM_BOX: DPT_CALL(dpt_rbf_place_random_box(c, data, o->units, seed, centers)); break;
  case DPT_RBF_RANDOM_SAMPLES: DPT_CALL(dpt_rbf_place_random_samples(c, data, o->units, seed, centers)); break;
  case DPT_RBF_KMEANSPP:
    DPT_CALL(dpt_kmeans_seed(c, data, o->units, seed, centers));
    DPT_CALL(dpt_kmeans_lloyd(c, data, o->units, o->kmeans_iters, o->kmeans_tol, centers, NULL, NULL));
    break;
  case DPT_RBF_GNG: DPT_CALL(dpt_gng_fit(c, data, o, seed, centers, NULL)); break;
  }
  DPT_CALL(dpt_rbf_widths(c, data, o, centers, widths));
  return DPT_OK;
}

/* ---- features and least squares ---------------------------------------------------------- */

dpt_status dpt_rbf_features(const double *X, int64_t n, int64_t d, const double *centers, const double *widths,
                            int64_t k, double *Phi) {
  // X: [n, d], centers: [k, d], widths: [k], Phi: [n, k + 1]
  int ni, di, ki, ld;
  DPT_CALL(dpt_cast_int(n, "rbf features: rows", &ni));
  DPT_CALL(dpt_cast_int(d, "rbf features: features", &di));
  DPT_CALL(dpt_cast_int(k, "rbf features: units", &ki));
  DPT_CALL(dpt_cast_int(k + 1, "rbf features: units + 1", &ld));
  for (int64_t i = 0; i < k; ++i)
    DPT_CHECK(widths[i] > 0.0 && isfinite(widths[i]), DPT_ERR_INPUT, "rbf features: sigma_%lld: expected > 0, got %g",
              (long long)i, widths[i]);
  if (n == 0) return DPT_OK;
  /* ‖x − μ‖² = ‖x‖² − 2 x·μ + ‖μ‖²: the cross term as one GEMM into Phi[:, 1:] */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, ki, di, -2.0, X, di, centers, di, 0.0, Phi + 1, ld);
  for (int64_t r = 0; r < n; ++r) {
    double xx = 0.0;
    for (int64_t j = 0; j < d; ++j) xx += X[r * d + j] * X[r * d + j];
    double *row = Phi + r * (k + 1);
    row[0] = 1.0;
    for (int64_t i = 0; i < k; ++i) {
      double cc = 0.0;
      for (int64_t j = 0; j < d; ++j) cc += centers[i * d + j] * centers[i * d + j];
      double dist = xx + row[1 + i] + cc;
      if (dist < 0.0) dist = 0.0; /* rounding */
      row[1 + i] = exp(-dist / (2.0 * widths[i] * widths[i]));
    }
  }
  return DPT_OK;
}

/* Rank 0 solves (A + N·ridge·I') W = B, A [p, p] symmetric (upper filled), B [p, m]. */
static dpt_status solve_normal(double *A, double *B, int64_t p, int64_t m, double nridge, int64_t *rank_out) {
  int pi, mi;
  DPT_CALL(dpt_cast_int(p, "rbf lstsq: units + 1", &pi));
  DPT_CALL(dpt_cast_int(m, "rbf lstsq: outputs", &mi));
  for (int64_t i = 0; i < p; ++i)
    for (int64_t j = 0; j < i; ++j) A[i * p + j] = A[j * p + i];
  for (int64_t i = 1; i < p; ++i) A[i * p + i] += nridge;
  dpt_status st = DPT_OK;
  double *A2 = NULL, *B2 = NULL, *sv = NULL;
  DPT_TRY(dpt_alloc((size_t)p * (size_t)p, sizeof *A2, "rbf lstsq: matrix copy", &A2));
  DPT_TRY(dpt_alloc((size_t)p * (size_t)m, sizeof *B2, "rbf lstsq: rhs copy", &B2));
  memcpy(A2, A, (size_t)p * (size_t)p * sizeof *A);
  memcpy(B2, B, (size_t)p * (size_t)m * sizeof *B);
  lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', pi, mi, A2, pi, B2, mi);
  if (info == 0) {
    memcpy(B, B2, (size_t)p * (size_t)m * sizeof *B);
    *rank_out = p;
    goto done;
  }
  DPT_TRY_CHECK(info > 0, DPT_ERR_INTERNAL, "rbf lstsq: LAPACKE_dposv: argument %d invalid", (int)-info);
  /* Not positive definite (ridge 0 and coinciding or far-away units): minimum-norm solve. */
  DPT_TRY(dpt_alloc((size_t)p, sizeof *sv, "rbf lstsq: singular values", &sv));
  lapack_int rank = 0;
  info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, pi, pi, mi, A, pi, B, mi, sv, (double)p * DBL_EPSILON, &rank);
  DPT_TRY_CHECK(info == 0, DPT_ERR_NUMERIC, "rbf lstsq: LAPACKE_dgelsd failed (info %d): the normal equations of the "
                "output fit did not converge; set a ridge > 0", (int)info);
  *rank_out = rank;
done:
  dpt_free(&A2);
  dpt_free(&B2);
  dpt_free(&sv);
  return st;
}

dpt_status dpt_rbf_lstsq(const dpt_comm *c, const dpt_rbf_data *data, const double *Y, int64_t m,
                         const double *centers, const double *widths, int64_t k, double ridge, double *W,
                         int64_t *rank_out) {
  // X: [count, d], Y: [count, m], Phi block: [bs, k + 1], A = ΦᵀΦ: [p, p], W = ΦᵀY: [p, m]
  const int64_t p = k + 1, d = data->d, bs = 256;
  int pi, mi, an, wn;
  DPT_CHECK(ridge >= 0.0 && isfinite(ridge), DPT_ERR_INPUT, "rbf lstsq: ridge: expected >= 0, got %g", ridge);
  DPT_CALL(dpt_cast_int(p, "rbf lstsq: units + 1", &pi));
  DPT_CALL(dpt_cast_int(m, "rbf lstsq: outputs", &mi));
  DPT_CALL(dpt_cast_int(p * p, "rbf lstsq: (units + 1)^2", &an));
  DPT_CALL(dpt_cast_int(p * m, "rbf lstsq: (units + 1) x outputs", &wn));
  dpt_status st = DPT_OK;
  double *A = NULL, *Phi = NULL;
  int64_t rank = 0;
  st = dpt_calloc((size_t)an, sizeof *A, "rbf lstsq: normal matrix", &A);
  if (st == DPT_OK) st = dpt_alloc((size_t)bs * (size_t)p, sizeof *Phi, "rbf lstsq: feature block", &Phi);
  memset(W, 0, (size_t)wn * sizeof *W);
  for (int64_t r0 = 0; st == DPT_OK && r0 < data->count; r0 += bs) {
    int64_t nb = data->count - r0 < bs ? data->count - r0 : bs;
    st = dpt_rbf_features(data->X + r0 * d, nb, d, centers, widths, k, Phi);
    if (st != DPT_OK) break;
    /* A += Φᵀ Φ (upper triangle), W += Φᵀ Y */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, pi, (int)nb, 1.0, Phi, pi, 1.0, A, pi);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, pi, mi, (int)nb, 1.0, Phi, pi, Y + r0 * m, mi, 1.0, W, mi);
  }
  DPT_TRY(dpt_comm_agree(c, st));
  if (MPI_Allreduce(MPI_IN_PLACE, A, an, MPI_DOUBLE, MPI_SUM, c->comm) != MPI_SUCCESS ||
      MPI_Allreduce(MPI_IN_PLACE, W, wn, MPI_DOUBLE, MPI_SUM, c->comm) != MPI_SUCCESS)
    DPT_TRY_CHECK(0, DPT_ERR_MPI, "rbf lstsq: MPI_Allreduce of the normal equations failed");
  /* One rank solves and broadcasts, so every rank holds the same W and took the same
   * branch (Cholesky or SVD). */
  if (c->rank == 0) st = solve_normal(A, W, p, m, (double)data->n * ridge, &rank);
  DPT_TRY(dpt_comm_agree(c, st));
  if (MPI_Bcast(W, wn, MPI_DOUBLE, 0, c->comm) != MPI_SUCCESS ||
      MPI_Bcast(&rank, 1, MPI_INT64_T, 0, c->comm) != MPI_SUCCESS)
    DPT_TRY_CHECK(0, DPT_ERR_MPI, "rbf lstsq: MPI_Bcast of the weights failed");
  if (rank_out) *rank_out = rank;
done:
  dpt_free(&A);
  dpt_free(&Phi);
  return st;
}

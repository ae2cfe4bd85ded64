/* test_rbf.c — RBF placement (random box, random samples, K-means++ + Lloyd, GNG), widths
 * and the least-squares output fit, distributed over ranks.
 * Same-for-any-P checks compare, inside one run, the world's result (P ranks, also with an
 * empty shard on rank 0) with the result on MPI_COMM_SELF holding all rows (P = 1), bitwise.
 * dpt-test: ranks=1,2,3 */
#include <math.h>
#include <float.h>
#include <string.h>

#include <lapacke.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/rbf.h"

#define DPT_PI 3.14159265358979323846

/* |a − b| ≤ tol in double (cmocka's assert_float_equal works in float). */
#define assert_double_equal(a, b, tol)                                                        \
  do {                                                                                        \
    double a_ = (a), b_ = (b);                                                                \
    if (!(fabs(a_ - b_) <= (tol))) fail_msg("%s = %.17g, expected %.17g ± %g", #a, a_, b_, (double)(tol)); \
  } while (0)

/* ---- fixtures ---------------------------------------------------------------------- */

/* One process alone: the P = 1 reference inside an MPI run. */
static dpt_comm self_comm(void) {
  dpt_comm c = {.comm = MPI_COMM_SELF, .rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
  return c;
}

/* The whole matrix as one shard. */
static dpt_rbf_data whole(const double *X, int64_t n, int64_t d) {
  dpt_rbf_data s = {.X = X, .count = n, .begin = 0, .n = n, .d = d};
  return s;
}

/* This rank's shard: even split, or (skew) rank 0 empty and the rest split over the
 * others when P > 1. */
static dpt_rbf_data shard(const double *X, int64_t n, int64_t d, bool skew) {
  const dpt_comm *c = &dpt_test_world;
  int64_t b, cnt;
  if (skew && c->size > 1) {
    if (c->rank == 0) b = 0, cnt = 0;
    else dpt_shard_range(n, c->size - 1, c->rank - 1, &b, &cnt);
  } else {
    dpt_shard_range(n, c->size, c->rank, &b, &cnt);
  }
  dpt_rbf_data s = {.X = X + b * d, .count = cnt, .begin = b, .n = n, .d = d};
  return s;
}

/* n points in 4 square blobs of half-width h around (±5, ±5), blob i % 4 for row i. */
static double *blobs(int64_t n, double h, uint64_t seed) {
  static const double cx[4] = {-5, 5, -5, 5}, cy[4] = {-5, -5, 5, 5};
  double *X = malloc((size_t)n * 2 * sizeof *X);
  uint64_t s = seed;
  for (int64_t i = 0; i < n; ++i) {
    X[2 * i] = cx[i % 4] + h * (2 * dpt_test_uniform(&s) - 1);
    X[2 * i + 1] = cy[i % 4] + h * (2 * dpt_test_uniform(&s) - 1);
  }
  return X;
}

/* Uniform points in [0,1)^d (many near-ties for K-means). */
static double *uniform(int64_t n, int64_t d, uint64_t seed) {
  double *X = malloc((size_t)(n * d) * sizeof *X);
  uint64_t s = seed;
  for (int64_t i = 0; i < n * d; ++i) X[i] = dpt_test_uniform(&s);
  return X;
}

static dpt_rbf_options opts(int64_t units, dpt_rbf_placement p, dpt_rbf_width w) {
  dpt_rbf_options o;
  dpt_rbf_options_default(&o);
  snprintf(o.section, sizeof o.section, "layer.0");
  o.units = units;
  o.placement = p;
  o.width = w;
  return o;
}

/* ---- placement ----------------------------------------------------------------------- */

static void test_kmeanspp_finds_blobs(void **state) {
  (void)state;
  const int64_t n = 400;
  double *X = blobs(n, 0.5, 11);
  dpt_rbf_data data = shard(X, n, 2, false);
  double C[8];
  int64_t iters = 0;
  double inertia = 0;
  assert_dpt_ok(dpt_kmeans_seed(&dpt_test_world, &data, 4, 5, C));
  assert_dpt_ok(dpt_kmeans_lloyd(&dpt_test_world, &data, 4, 50, 1e-9, C, &iters, &inertia));
  /* Each blob's mean is its true center ± sampling noise: a uniform on [−0.5, 0.5] has sd
   * 0.29, the mean of 100 such has sd 0.029; 0.15 is > 5 sd. Each blob found exactly once. */
  int hit[4] = {0};
  static const double cx[4] = {-5, 5, -5, 5}, cy[4] = {-5, -5, 5, 5};
  for (int j = 0; j < 4; ++j) {
    int found = -1;
    for (int b = 0; b < 4; ++b)
      if (fabs(C[2 * j] - cx[b]) < 0.15 && fabs(C[2 * j + 1] - cy[b]) < 0.15) found = b;
    assert_true(found >= 0);
    hit[found]++;
  }
  for (int b = 0; b < 4; ++b) assert_int_equal(hit[b], 1);
  /* converged: one more iteration finds the same assignment (shift 0 < tol) */
  assert_true(iters >= 1 && iters < 50);
  /* inertia = Σ‖x − μ‖² ≈ n · 2 · (1/12) for uniform half-width 0.5 (variance 1/12 per axis);
   * within 20% (sampling noise of 400 points is a few %). */
  assert_true(fabs(inertia - n * 2.0 / 12.0) < 0.2 * n * 2.0 / 12.0);
  free(X);
}

/* Every placement gives bitwise the same centers and widths for P ranks (even or with an
 * empty rank) as for one process holding everything. */
static void check_same_for_any_p(dpt_rbf_options o, const double *X, int64_t n, int64_t d, uint64_t seed) {
  dpt_comm self = self_comm();
  dpt_rbf_data all = whole(X, n, d);
  int64_t k = o.units;
  double *c1 = calloc((size_t)(k * d), sizeof *c1), *w1 = calloc((size_t)k, sizeof *w1);
  double *cp = calloc((size_t)(k * d), sizeof *cp), *wp = calloc((size_t)k, sizeof *wp);
  assert_dpt_ok(dpt_rbf_place(&self, &all, &o, seed, c1, w1));
  for (int skew = 0; skew < 2; ++skew) {
    dpt_rbf_data part = shard(X, n, d, skew);
    memset(cp, 0, (size_t)(k * d) * sizeof *cp);
    assert_dpt_ok(dpt_rbf_place(&dpt_test_world, &part, &o, seed, cp, wp));
    /* tolerance: none — the contract is bitwise equality */
    assert_memory_equal(c1, cp, (size_t)(k * d) * sizeof *cp);
    assert_memory_equal(w1, wp, (size_t)k * sizeof *wp);
  }
  /* the same on every rank */
  double *c0 = malloc((size_t)(k * d) * sizeof *c0);
  memcpy(c0, cp, (size_t)(k * d) * sizeof *c0);
  MPI_Bcast(c0, (int)(k * d), MPI_DOUBLE, 0, dpt_test_world.comm);
  assert_memory_equal(c0, cp, (size_t)(k * d) * sizeof *cp);
  free(c0);
  free(c1), free(w1), free(cp), free(wp);
}

static void test_kmeans_same_for_any_p(void **state) {
  (void)state;
  /* uniform data: no cluster structure, many near-ties, clusters of very different sizes */
  double *X = uniform(1500, 3, 99);
  dpt_rbf_options o = opts(16, DPT_RBF_KMEANSPP, DPT_RBF_WIDTH_SPREAD);
  o.kmeans_iters = 30;
  o.kmeans_tol = 0; /* all 30 iterations */
  check_same_for_any_p(o, X, 1500, 3, 2024);
  free(X);
}

static void test_random_and_gng_same_for_any_p(void **state) {
  (void)state;
  double *X = uniform(500, 2, 7);
  check_same_for_any_p(opts(10, DPT_RBF_RANDOM_BOX, DPT_RBF_WIDTH_NEAREST), X, 500, 2, 1);
  check_same_for_any_p(opts(10, DPT_RBF_RANDOM_SAMPLES, DPT_RBF_WIDTH_GLOBAL), X, 500, 2, 2);
  dpt_rbf_options g = opts(12, DPT_RBF_GNG, DPT_RBF_WIDTH_SPREAD);
  g.gng_sample = 300;
  g.gng_refine = 500;
  check_same_for_any_p(g, X, 500, 2, 3);
  free(X);
}

static void test_random_placements(void **state) {
  (void)state;
  const int64_t n = 100;
  double *X = uniform(n, 2, 5);
  for (int64_t i = 0; i < n; ++i) X[2 * i] = 10 + 2 * X[2 * i]; /* box [10, 12) x [0, 1) */
  dpt_rbf_data data = shard(X, n, 2, true);
  double C[2 * 100];
  /* box: inside the data's bounding box */
  assert_dpt_ok(dpt_rbf_place_random_box(&dpt_test_world, &data, 20, 3, C));
  for (int j = 0; j < 20; ++j) {
    assert_true(C[2 * j] >= 10 && C[2 * j] < 12);
    assert_true(C[2 * j + 1] >= 0 && C[2 * j + 1] < 1);
  }
  /* samples: all n rows when k = n, each exactly once (distinct ids) */
  assert_dpt_ok(dpt_rbf_place_random_samples(&dpt_test_world, &data, n, 3, C));
  int seen[100] = {0};
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i)
      if (C[2 * j] == X[2 * i] && C[2 * j + 1] == X[2 * i + 1]) seen[i]++;
  for (int i = 0; i < n; ++i) assert_int_equal(seen[i], 1);
  free(X);
}

static void test_gng_covers_ring(void **state) {
  (void)state;
  /* 2000 points on the annulus 0.9 ≤ r ≤ 1 */
  const int64_t n = 2000;
  double *X = malloc((size_t)n * 2 * sizeof *X);
  uint64_t s = 17;
  for (int64_t i = 0; i < n; ++i) {
    double a = 2 * DPT_PI * dpt_test_uniform(&s), r = 0.9 + 0.1 * dpt_test_uniform(&s);
    X[2 * i] = r * cos(a);
    X[2 * i + 1] = r * sin(a);
  }
  dpt_rbf_data data = shard(X, n, 2, false);
  dpt_rbf_options o = opts(24, DPT_RBF_GNG, DPT_RBF_WIDTH_NEAREST);
  double C[48];
  int64_t signals = 0;
  assert_dpt_ok(dpt_gng_fit(&dpt_test_world, &data, &o, 8, C, &signals));
  /* reached the budget: 22 insertions at one per λ = 100 signals, then λ·units refining */
  assert_true(signals >= 100 * 22 + 100 * 24);
  /* nodes on the ring: radius within [0.8, 1.05] (the annulus ± half a node spacing) */
  int sector[12] = {0};
  for (int j = 0; j < 24; ++j) {
    double r = hypot(C[2 * j], C[2 * j + 1]);
    assert_true(r > 0.8 && r < 1.05);
    int sec = (int)floor((atan2(C[2 * j + 1], C[2 * j]) + DPT_PI) / (2 * DPT_PI) * 12);
    sector[sec % 12]++;
  }
  /* covers it: every 30° sector holds a node, and every point is within 0.35 of a node
   * (24 nodes around a circle of length 2π are ~0.26 apart) */
  for (int q = 0; q < 12; ++q) assert_true(sector[q] >= 1);
  for (int64_t i = 0; i < n; ++i) {
    double best = INFINITY;
    for (int j = 0; j < 24; ++j) best = fmin(best, hypot(X[2 * i] - C[2 * j], X[2 * i + 1] - C[2 * j + 1]));
    assert_true(best < 0.35);
  }
  free(X);
}

/* An empty cluster takes the row farthest from its center: data {0, 1, 2, 10}, centers
 * start at {100, 0}; center 0 gets no row, takes 10 (farthest from center 1 = 0), center 1
 * becomes the mean 3.25; the next assignment gives {10} and {0, 1, 2}: centers {10, 1}
 * exactly (fixed-point sums of integers relative to the box middle 5). */
static void test_lloyd_empty_cluster(void **state) {
  (void)state;
  double X[4] = {0, 1, 2, 10};
  for (int skew = 0; skew < 2; ++skew) {
    dpt_rbf_data data = shard(X, 4, 1, skew);
    double C[2] = {100, 0};
    int64_t iters = 0;
    assert_dpt_ok(dpt_kmeans_lloyd(&dpt_test_world, &data, 2, 10, 1e-12, C, &iters, NULL));
    assert_double_equal(C[0], 10.0, 0.0);
    assert_double_equal(C[1], 1.0, 0.0);
    assert_int_equal(iters, 3); /* {10, 3.25}, {10, 1}, then no shift */
  }
}

/* GNG whose edges age out at once (a_max = 1) cannot hold 24 nodes: a one-line error naming
 * the key, on every rank, instead of a loop without end. */
static void test_gng_budget_error(void **state) {
  (void)state;
  double *X = uniform(400, 2, 21);
  dpt_rbf_data data = shard(X, 400, 2, false);
  dpt_rbf_options o = opts(24, DPT_RBF_GNG, DPT_RBF_WIDTH_NEAREST);
  o.gng_age_max = 1;
  o.gng_lambda = 1000;
  double C[48];
  int64_t signals = 0;
  dpt_status st = dpt_gng_fit(&dpt_test_world, &data, &o, 8, C, &signals);
  if (st == DPT_OK) fail_msg("gng with a_max = 1 held 24 nodes after %lld signals", (long long)signals);
  assert_int_equal(st, DPT_ERR_INPUT);
  assert_non_null(strstr(dpt_error_message(), "layer.0.gng_age_max"));
  dpt_error_clear();
  free(X);
}

/* ---- widths -------------------------------------------------------------------------- */

static void test_widths(void **state) {
  (void)state;
  /* two clusters on a line: {−1, 1} around 0 and {9, 11} around 10 (d = 1) */
  double X[4] = {-1, 1, 9, 11}, C[2] = {0, 10}, w[2];
  dpt_rbf_data data = shard(X, 4, 1, true);
  dpt_rbf_options o = opts(2, DPT_RBF_KMEANSPP, DPT_RBF_WIDTH_SPREAD);
  o.width_factor = 2;
  /* spread: RMS distance of members = 1, × 2. The fixed-point sums hold 1 exactly. */
  assert_dpt_ok(dpt_rbf_widths(&dpt_test_world, &data, &o, C, w));
  assert_double_equal(w[0], 2.0, 0.0);
  assert_double_equal(w[1], 2.0, 0.0);
  /* nearest: 10 × 2 */
  o.width = DPT_RBF_WIDTH_NEAREST;
  assert_dpt_ok(dpt_rbf_widths(&dpt_test_world, &data, &o, C, w));
  assert_double_equal(w[0], 20.0, 0.0);
  /* global: d_max / sqrt(2k) = 10 / 2 when sigma is not set; sigma when set */
  o.width = DPT_RBF_WIDTH_GLOBAL;
  assert_dpt_ok(dpt_rbf_widths(&dpt_test_world, &data, &o, C, w));
  assert_double_equal(w[1], 5.0, 1e-15); /* one rounding in sqrt and the division */
  o.sigma = 0.25;
  assert_dpt_ok(dpt_rbf_widths(&dpt_test_world, &data, &o, C, w));
  assert_double_equal(w[0], 0.25, 0.0);
  /* coinciding centers give a zero nearest width: an error naming the key */
  double C2[2] = {3, 3};
  o.width = DPT_RBF_WIDTH_NEAREST;
  assert_dpt_fails(dpt_rbf_widths(&dpt_test_world, &data, &o, C2, w), DPT_ERR_INPUT, "layer.0.width");
}

/* ---- least squares ----------------------------------------------------------------------- */

/* y = (sin x, cos x) on [−π, π]; W from the distributed normal equations vs the float64
 * reference: the stacked system [Φ; sqrt(Nλ) I'] W = [Y; 0] solved by SVD (dgelsd) on the
 * whole matrix, a different algorithm from Cholesky on ΦᵀΦ. */
static void test_lstsq_matches_reference(void **state) {
  (void)state;
  const int64_t n = 301, k = 9, p = k + 1, m = 2;
  const double ridge = 1e-6;
  double *X = malloc(n * sizeof *X), *Y = malloc(n * m * sizeof *Y);
  for (int64_t i = 0; i < n; ++i) {
    X[i] = -DPT_PI + 2 * DPT_PI * (double)i / (double)(n - 1);
    Y[2 * i] = sin(X[i]);
    Y[2 * i + 1] = cos(X[i]);
  }
  double C[9], w[9], W[20];
  for (int i = 0; i < k; ++i) C[i] = -DPT_PI + 2 * DPT_PI * i / (k - 1.0), w[i] = 0.8;
  dpt_rbf_data data = shard(X, n, 1, true);
  int64_t rank = 0;
  int64_t b = data.begin;
  assert_dpt_ok(dpt_rbf_lstsq(&dpt_test_world, &data, Y + b * m, m, C, w, k, ridge, W, &rank));
  assert_int_equal(rank, p); /* Cholesky succeeded */

  /* reference */
  double *S = calloc((size_t)((n + k) * p), sizeof *S), *R = calloc((size_t)((n + k) * m), sizeof *R), sv[10];
  assert_dpt_ok(dpt_rbf_features(X, n, 1, C, w, k, S));
  memcpy(R, Y, n * m * sizeof *R);
  for (int64_t i = 0; i < k; ++i) S[(n + i) * p + 1 + i] = sqrt(n * ridge);
  lapack_int rk;
  assert_int_equal(LAPACKE_dgelsd(LAPACK_ROW_MAJOR, (int)(n + k), (int)p, (int)m, S, (int)p, R, (int)m, sv, -1, &rk), 0);
  assert_int_equal(rk, p);
  /* Normal equations lose accuracy with κ(ΦᵀΦ + NλI') = κ(S)²: forward error ≲ c κ(S)² u.
   * Tolerance 10 κ(S)² u relative to max |W_ref| (c = 10 covers the O(p) constant here). */
  double kappa = sv[0] / sv[p - 1], wmax = 0, err = 0;
  for (int64_t i = 0; i < p * m; ++i) {
    wmax = fmax(wmax, fabs(R[i]));
    err = fmax(err, fabs(R[i] - W[i]));
  }
  print_message("lstsq: kappa(S) = %.3g, max |W - W_ref| / max|W_ref| = %.3g\n", kappa, err / wmax);
  assert_true(kappa * kappa * DBL_EPSILON < 1e-3); /* the comparison means something */
  assert_true(err <= 10 * kappa * kappa * DBL_EPSILON * wmax);
  /* and the fit is good: 9 Gaussians fit sin and cos on [−π, π] to RMS < 0.01 */
  double *Phi = malloc(n * p * sizeof *Phi), sse = 0;
  assert_dpt_ok(dpt_rbf_features(X, n, 1, C, w, k, Phi));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < m; ++o) {
      double f = 0;
      for (int64_t j = 0; j < p; ++j) f += Phi[i * p + j] * W[j * m + o];
      sse += (f - Y[i * m + o]) * (f - Y[i * m + o]);
    }
  assert_true(sqrt(sse / (n * m)) < 0.01);
  free(Phi), free(S), free(R), free(X), free(Y);
}

/* ridge 0 and more units than rows: ΦᵀΦ is singular; whichever solve runs, the minimum-
 * norm (or any) solution interpolates the 3 rows. */
static void test_lstsq_singular_interpolates(void **state) {
  (void)state;
  double X[3] = {-1, 0, 2}, Y[3] = {1, -2, 0.5}, C[5] = {-2, -1, 0, 1, 2}, w[5] = {1, 1, 1, 1, 1}, W[6];
  dpt_rbf_data data = shard(X, 3, 1, false);
  assert_dpt_ok(dpt_rbf_lstsq(&dpt_test_world, &data, Y + data.begin, 1, C, w, 5, 0.0, W, NULL));
  double Phi[18];
  assert_dpt_ok(dpt_rbf_features(X, 3, 1, C, w, 5, Phi));
  for (int i = 0; i < 3; ++i) {
    double f = 0;
    for (int j = 0; j < 6; ++j) f += Phi[i * 6 + j] * W[j];
    /* 1e-6: ΦᵀΦ's rank cut at rcond 6u squares Φ's conditioning (≈ 1e3 here) */
    assert_double_equal(f, Y[i], 1e-6);
  }
}

/* ---- settings -------------------------------------------------------------------------- */

static void test_bad_settings(void **state) {
  (void)state;
  dpt_config *cfg;
  dpt_rbf_options o;
  const char *bad[][2] = {
      {"[layer.0]\nunits = 4\nplacement = kmeans\n", "layer.0.placement"},
      {"[layer.0]\nunits = 4\nsigma = 0\n", "layer.0.sigma"},
      {"[layer.0]\nunits = 4\nsigma = -1\n", "layer.0.sigma"},
      {"[layer.0]\nunits = 4\nwidth = wide\n", "layer.0.width"},
      {"[layer.0]\nunits = 0\n", "layer.0.units"},
      {"[layer.0]\nunits = 4\nlearn = 4step\n", "layer.0.learn"},
      {"[layer.0]\nunits = 4\nridge = -1\n", "layer.0.ridge"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    assert_dpt_ok(dpt_config_create(&cfg));
    assert_dpt_ok(dpt_config_load_string(cfg, bad[i][0], "t.ini"));
    assert_dpt_fails(dpt_rbf_options_read(cfg, "layer.0", 16, &o), DPT_ERR_INPUT, bad[i][1]);
    dpt_config_destroy(&cfg);
  }
  /* a good section, then checks against the data */
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(
      cfg, "[layer.0]\nunits = 8\nplacement = gng\nwidth = global\nsigma = 0.5\nlearn = 3step\n", "t.ini"));
  assert_dpt_ok(dpt_rbf_options_read(cfg, "layer.0", 16, &o));
  assert_int_equal(o.units, 8);
  assert_int_equal(o.placement, DPT_RBF_GNG);
  assert_int_equal(o.width, DPT_RBF_WIDTH_GLOBAL);
  assert_double_equal(o.sigma, 0.5, 0.0);
  assert_int_equal(o.learn, DPT_RBF_LEARN_3STEP);
  assert_dpt_ok(dpt_config_check_unused(cfg));
  dpt_config_destroy(&cfg);
  assert_dpt_ok(dpt_rbf_options_check(&o, 8, 2));
  assert_dpt_fails(dpt_rbf_options_check(&o, 7, 2), DPT_ERR_INPUT, "layer.0.units: expected at most N = 7");
  /* the same through dpt_rbf_place, on every rank, before any collective work */
  double X[6] = {0, 1, 2, 3, 4, 5}, C[16], w[8];
  dpt_rbf_data data = shard(X, 3, 2, false);
  assert_dpt_fails(dpt_rbf_place(&dpt_test_world, &data, &o, 1, C, w), DPT_ERR_INPUT, "layer.0.units");
  o = opts(1, DPT_RBF_KMEANSPP, DPT_RBF_WIDTH_NEAREST);
  assert_dpt_fails(dpt_rbf_options_check(&o, 3, 2), DPT_ERR_INPUT, "layer.0.width: nearest needs at least 2");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kmeanspp_finds_blobs),     cmocka_unit_test(test_kmeans_same_for_any_p),
      cmocka_unit_test(test_random_and_gng_same_for_any_p), cmocka_unit_test(test_random_placements),
      cmocka_unit_test(test_gng_covers_ring),          cmocka_unit_test(test_widths),
      cmocka_unit_test(test_lstsq_matches_reference),  cmocka_unit_test(test_lstsq_singular_interpolates),
      cmocka_unit_test(test_bad_settings),       cmocka_unit_test(test_lloyd_empty_cluster),
      cmocka_unit_test(test_gng_budget_error),
  };
  return dpt_test_run(tests);
}

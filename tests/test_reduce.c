/* test_reduce.c — the gradient reducers (fast and exact), the non-finite policy, broadcast,
 * the sync check and the phase timers, at several rank counts.
 * dpt-test: ranks=1,2,3,4 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/reduce.h"
#include "dptrain/timer.h"

/* A one-rank world inside this process: the P = 1 reference for the rank-count comparisons. */
static dpt_comm self_comm(void) {
  dpt_comm s;
  memset(&s, 0, sizeof s);
  MPI_Comm_dup(MPI_COMM_SELF, &s.comm);
  MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN);
  s.rank = 0;
  s.size = 1;
  s.local_rank = 0;
  s.local_size = 1;
  return s;
}

/* splitmix64 of (a, b): a deterministic value in [0, 1) for term a, element b. */
static double unit(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b * 0xD1B54A32D192ED03ULL + 0x1234567ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

/* A reducer over g[n] in dtype on c, in `mode` with the non-finite `policy` (the other
 * options their defaults). */
static dpt_reducer *new_reducer(const dpt_comm *c, dpt_reduce_mode mode, dpt_nonfinite_policy policy, dpt_dtype dtype,
                                size_t n, void *g) {
  dpt_reduce_opts o;
  dpt_reduce_opts_default(&o);
  o.mode = mode;
  o.on_nonfinite = policy;
  dpt_reducer *r;
  assert_dpt_ok(dpt_reducer_create(c, &o, dtype, n, g, &r));
  return r;
}

/* Term j of element i: mixed signs, magnitudes over many binades; term scales differ by
 * term; elements 1024..2047 are all zeros; a few elements
 * are huge or tiny. */
static double term_value(int j, size_t i) {
  if (i >= 1024 && i < 2048) return 0.0;
  double v = (unit((uint64_t)j, i) - 0.5) * ldexp(1.0, (int)(unit((uint64_t)j + 1000, i) * 40.0) - 20);
  v *= ldexp(1.0, (j * 7) % 23 - 11);
  if (i == 5) v *= 1e20;
  if (i == 6) v *= 1e-25;
  return v;
}

/* ------------------------------------------------------------------ options */

static void test_opts_read(void **state) {
  (void)state;
  dpt_config *cfg;
  dpt_reduce_opts o;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_reduce_opts_read(cfg, &o));
  assert_int_equal(o.mode, DPT_REDUCE_FAST);
  assert_true(o.bucket_mb == 4.0);
  assert_int_equal(o.micro_batch, 32);
  assert_int_equal(o.accumulate, 1);
  assert_int_equal(o.check_sync, 0);
  assert_int_equal(o.on_nonfinite, DPT_NONFINITE_ABORT);
  assert_dpt_ok(dpt_config_load_string(
      cfg, "[parallel]\nreduce = exact\nbucket_mb = 0.5\nmicro_batch = 8\naccumulate = 3\ncheck_sync = 10\n"
           "[train]\non_nonfinite = skip\n",
      "t.ini"));
  assert_dpt_ok(dpt_reduce_opts_read(cfg, &o));
  assert_int_equal(o.mode, DPT_REDUCE_EXACT);
  assert_true(o.bucket_mb == 0.5);
  assert_int_equal(o.micro_batch, 8);
  assert_int_equal(o.accumulate, 3);
  assert_int_equal(o.check_sync, 10);
  assert_int_equal(o.on_nonfinite, DPT_NONFINITE_SKIP);
  dpt_config_destroy(&cfg);

  const char *bad[][2] = {{"parallel.reduce", "slow"},  {"parallel.bucket_mb", "0"},
                          {"parallel.micro_batch", "0"}, {"parallel.accumulate", "-1"},
                          {"parallel.check_sync", "x"},  {"train.on_nonfinite", "ignore"}};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; ++k) {
    assert_dpt_ok(dpt_config_create(&cfg));
    assert_dpt_ok(dpt_config_set(cfg, bad[k][0], bad[k][1], "command line"));
    assert_dpt_fails(dpt_reduce_opts_read(cfg, &o), DPT_ERR_INPUT, bad[k][0]);
    dpt_config_destroy(&cfg);
  }
}

/* ------------------------------------------------------------------ fast mode */

/* Every rank holds x_r[i] = term_value(r, i); the reduced buffer must be the sum over
 * ranks. Tolerance: a float sum of P terms in any order is within (P-1) u sum|x_r| of the
 * exact sum (u = 2^-24 for f32, 2^-53 for f64; Higham's gamma_{P-1} bound, first order);
 * the f64 reference adds at most (P-1) 2^-53 sum|x_r|. */
static void check_fast(dpt_dtype dtype, int ready_pattern) {
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 10007;
  dpt_reduce_opts o;
  dpt_reduce_opts_default(&o);
  o.bucket_mb = 0.01; /* 2621 f32 or 1310 f64 elements: several buckets, none aligned to the ranges */
  size_t es = dpt_dtype_size(dtype);
  void *g = malloc(n * es);
  for (size_t i = 0; i < n; ++i) {
    double v = term_value(c->rank, i);
    if (dtype == DPT_F32) ((float *)g)[i] = (float)v;
    else ((double *)g)[i] = v;
  }
  dpt_reducer *r;
  assert_dpt_ok(dpt_reducer_create(c, &o, dtype, n, g, &r));
  size_t nb = (n + dpt_reducer_bucket_elems(r) - 1) / dpt_reducer_bucket_elems(r);
  assert_true(nb >= 4);
  for (int step = 0; step < 2; ++step) { /* twice: begin must reset the bucket state */
    if (step == 1)
      for (size_t i = 0; i < n; ++i) {
        double v = term_value(c->rank, i);
        if (dtype == DPT_F32) ((float *)g)[i] = (float)v;
        else ((double *)g)[i] = v;
      }
    assert_dpt_ok(dpt_reducer_begin(r, 0));
    const size_t cuts[] = {0, 1000, 5000, 5001, 10007};
    if (ready_pattern == 1) /* engine order: increasing offsets, one range per tensor */
      for (int k = 0; k < 4; ++k) dpt_reducer_ready(r, cuts[k], cuts[k + 1] - cuts[k]);
    if (ready_pattern == 2) /* reverse order: buckets still start in ascending order */
      for (int k = 3; k >= 0; --k) dpt_reducer_ready(r, cuts[k], cuts[k + 1] - cuts[k]);
    /* ready_pattern 0: never called, finish reduces everything */
    double loss = c->rank + 1.0;
    bool skip = true;
    assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
    assert_false(skip);
    assert_true(loss == c->size * (c->size + 1) / 2.0); /* small integers: exact */
    double u = dtype == DPT_F32 ? 0x1p-24 : 0x1p-53;
    for (size_t i = 0; i < n; ++i) {
      double ref = 0, mag = 0;
      for (int q = 0; q < c->size; ++q) {
        double v = term_value(q, i);
        if (dtype == DPT_F32) v = (float)v;
        ref += v;
        mag += fabs(v);
      }
      double got = dtype == DPT_F32 ? ((float *)g)[i] : ((double *)g)[i];
      double tol = (c->size - 1) * (u + 0x1p-53) * mag;
      if (fabs(got - ref) > tol) fail_msg("element %zu: got %.17g, want %.17g +- %.3g", i, got, ref, tol);
    }
  }
  dpt_reducer_stats s;
  dpt_reducer_get_stats(r, &s);
  assert_int_equal(s.steps, 2);
  assert_int_equal(s.buckets, (int64_t)nb);
  if (ready_pattern == 0) {
    assert_int_equal(s.started_in_backward, 0);
    assert_int_equal(s.started_in_finish, 2 * (int64_t)nb);
  } else {
    assert_int_equal(s.started_in_backward, 2 * (int64_t)nb);
    assert_int_equal(s.started_in_finish, 0);
  }
  dpt_reducer_destroy(&r);
  assert_null(r);
  free(g);
}

static void test_fast_f32_engine_order(void **state) { (void)state; check_fast(DPT_F32, 1); }
static void test_fast_f32_reverse_order(void **state) { (void)state; check_fast(DPT_F32, 2); }
static void test_fast_f64_no_ready(void **state) { (void)state; check_fast(DPT_F64, 0); }

/* ------------------------------------------------------------------ exact mode */

/* The reference: the tree of reduce.h over the leaves j in [lo, hi) that are present, in
 * double, written directly as its definition (a node with one present child is that child). */
static bool tree_ref(const bool *present, const double *leaf, int64_t lo, int64_t hi, int64_t M, double *out) {
  if (lo >= M) return false;
  if (hi - lo == 1) {
    *out = leaf[lo];
    return present[lo];
  }
  int64_t mid = lo + (hi - lo) / 2;
  double a = 0, b = 0;
  bool pa = tree_ref(present, leaf, lo, mid, M, &a), pb = tree_ref(present, leaf, mid, hi, M, &b);
  *out = pa && pb ? a + b : pa ? a : b;
  return pa || pb;
}

/* Which terms the rank deposits: 0 contiguous ranges, 1 round robin (non-contiguous; in
 * descending order), 2 all on the last rank (the others hold none), 3 contiguous ranges of the terms j % 3 != 1 only
 * (absent leaves inside the tree). */
static bool owns(int assign, int64_t j, int64_t M, const dpt_comm *c) {
  int64_t b, cnt;
  dpt_shard_range(M, c->size, c->rank, &b, &cnt);
  switch (assign) {
  case 0: return j >= b && j < b + cnt;
  case 1: return j % c->size == c->rank;
  case 2: return c->rank == c->size - 1;
  default: return j % 3 != 1 && j >= b && j < b + cnt;
  }
}

/* Runs one exact step on comm c over n elements; this rank deposits its terms, in ascending
 * j, or descending for the round robin (any order gives the same nodes); chunk: the
 * reducer's MPI chunk (0: default); api: 0 dpt_reducer_deposit (a copy) with the default
 * merge passes, 1 the leaf buffers with a merge pass at every deposit, 2 the leaf buffers
 * with a pass every 3 held leaves (merges at several points of a step). */
static void exact_step(const dpt_comm *c, dpt_dtype dtype, size_t n, int64_t M, int assign, size_t chunk, int api,
                       void *g, double *loss) {
  dpt_reduce_opts o;
  dpt_reduce_opts_default(&o);
  o.mode = DPT_REDUCE_EXACT;
  size_t es = dpt_dtype_size(dtype);
  void *term = malloc(n * es + 1);
  dpt_reducer *r;
  assert_dpt_ok(dpt_reducer_create(c, &o, dtype, n, g, &r));
  if (chunk) dpt_reducer_set_chunk(r, chunk);
  if (api) dpt_reducer_set_leaf_cap(r, api == 1 ? 1 : 3);
  for (int rep = 0; rep < 2; ++rep) { /* twice: the reducer is reused across steps */
    assert_dpt_ok(dpt_reducer_begin(r, M));
    for (int64_t jj = 0; jj < M; ++jj) {
      int64_t j = assign == 1 ? M - 1 - jj : jj;
      if (!owns(assign, j, M, c)) continue;
      void *dst = term;
      if (api) {
        assert_dpt_ok(dpt_reducer_leaf(r, &dst));
        for (size_t i = 0; i < n * es; ++i) assert_int_equal(((unsigned char *)dst)[i], 0); /* zeroed */
      }
      for (size_t i = 0; i < n; ++i) {
        double v = term_value((int)j, i);
        if (dtype == DPT_F32) ((float *)dst)[i] = (float)v;
        else ((double *)dst)[i] = v;
      }
      if (api)
        assert_dpt_ok(dpt_reducer_deposit_leaf(r, j, term_value((int)j, 7) * 1e3));
      else
        assert_dpt_ok(dpt_reducer_deposit(r, j, term, term_value((int)j, 7) * 1e3));
    }
    bool skip = true;
    assert_dpt_ok(dpt_reducer_finish(r, loss, &skip));
    assert_false(skip);
  }
  dpt_reducer_destroy(&r);
  free(term);
}

/* Bitwise: the world's result, for every way of spreading the terms over the ranks (and
 * with a small MPI chunk: several rounds of the exchange), equals the tree of the terms
 * computed directly in this process, rounded once to the dtype. */
static void check_exact_bitwise(dpt_dtype dtype, int64_t M) {
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 3001; /* not a multiple of any rank count; elements 1024..2047 all zero */
  size_t es = dpt_dtype_size(dtype);
  void *want = malloc(n * es + 1), *got = malloc(n * es + 1);
  bool *present = malloc((size_t)M + 1);
  double *leaf = malloc(((size_t)M + 1) * sizeof *leaf);
  int64_t pow2 = 1;
  while (pow2 < M) pow2 *= 2;
  for (int assign = 0; assign < 4; ++assign) {
    /* the expected values: present leaves are those some rank owns */
    for (int64_t j = 0; j < M; ++j) present[j] = assign != 3 || j % 3 != 1;
    double lwant = 0, lgot = -1, v;
    for (int64_t j = 0; j < M; ++j) leaf[j] = term_value((int)j, 7) * 1e3;
    if (M > 0 && tree_ref(present, leaf, 0, pow2, M, &v)) lwant = v;
    for (size_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < M; ++j)
        leaf[j] = dtype == DPT_F32 ? (double)(float)term_value((int)j, i) : term_value((int)j, i);
      double s = 0;
      if (M > 0 && tree_ref(present, leaf, 0, pow2, M, &v)) s = v;
      if (dtype == DPT_F32) ((float *)want)[i] = (float)s;
      else ((double *)want)[i] = s;
    }
    for (int k = 0; k < 4; ++k) { /* default; small MPI chunk; the leaf buffers, two merge schedules */
      exact_step(c, dtype, n, M, assign, k == 1 ? 7 : 0, k < 2 ? 0 : k - 1, got, &lgot);
      assert_memory_equal(want, got, n * es);
      assert_memory_equal(&lwant, &lgot, sizeof lwant);
    }
  }
  for (size_t i = 1024; i < 2048; ++i)
    assert_true(dtype == DPT_F32 ? ((float *)got)[i] == 0.0f : ((double *)got)[i] == 0.0);
  free(want);
  free(got);
  free(present);
  free(leaf);
}

static void test_exact_bitwise_f32(void **state) { (void)state; check_exact_bitwise(DPT_F32, 13); }
static void test_exact_bitwise_f64(void **state) { (void)state; check_exact_bitwise(DPT_F64, 13); }
static void test_exact_bitwise_fewer_terms_than_ranks(void **state) { (void)state; check_exact_bitwise(DPT_F32, 2); }
static void test_exact_bitwise_one_term(void **state) { (void)state; check_exact_bitwise(DPT_F64, 1); }
static void test_exact_bitwise_many_terms(void **state) { (void)state; check_exact_bitwise(DPT_F32, 37); }

/* Random schedules: 40 trials, each with M in [1, 64] terms, each term absent (1 in 5) or
 * owned by a random rank, every rank depositing its terms in its own random order through
 * the leaf buffers, with a random merge cap (1..9, merge passes at varied points) — the
 * result and the loss equal the tree of the present terms computed directly, bitwise. The
 * draws come from unit() with fixed seeds, the same on every rank (ownership) or per rank
 * (order). */
static void test_exact_random_schedules(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 67;
  float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
  int64_t order[64];
  bool present[64];
  double leaf[64];
  dpt_reduce_opts o;
  dpt_reduce_opts_default(&o);
  o.mode = DPT_REDUCE_EXACT;
  dpt_reducer *r;
  assert_dpt_ok(dpt_reducer_create(c, &o, DPT_F32, n, got, &r));
  for (uint64_t trial = 0; trial < 40; ++trial) {
    int64_t M = 1 + (int64_t)(unit(trial, 1) * 64), pow2 = 1, mine = 0;
    while (pow2 < M) pow2 *= 2;
    dpt_reducer_set_leaf_cap(r, 1 + (size_t)(unit(trial, 2) * 9));
    for (int64_t j = 0; j < M; ++j) {
      present[j] = unit(trial, 100 + (uint64_t)j) >= 0.2;
      if (present[j] && (int)(unit(trial, 200 + (uint64_t)j) * c->size) == c->rank) order[mine++] = j;
    }
    for (int64_t k = mine - 1; k > 0; --k) { /* Fisher-Yates, per rank */
      int64_t q = (int64_t)(unit(trial * 16 + (uint64_t)c->rank, 300 + (uint64_t)k) * (double)(k + 1));
      int64_t tmp = order[k];
      order[k] = order[q];
      order[q] = tmp;
    }
    double v, lwant = 0.0, lgot = -1.0;
    for (size_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < M; ++j) leaf[j] = (double)(float)term_value((int)j, i);
      want[i] = tree_ref(present, leaf, 0, pow2, M, &v) ? (float)v : 0.0f;
    }
    for (int64_t j = 0; j < M; ++j) leaf[j] = (double)j + 0.25;
    if (tree_ref(present, leaf, 0, pow2, M, &v)) lwant = v;
    assert_dpt_ok(dpt_reducer_begin(r, M));
    for (int64_t k = 0; k < mine; ++k) {
      void *buf;
      assert_dpt_ok(dpt_reducer_leaf(r, &buf));
      for (size_t i = 0; i < n; ++i) ((float *)buf)[i] = (float)term_value((int)order[k], i);
      assert_dpt_ok(dpt_reducer_deposit_leaf(r, order[k], (double)order[k] + 0.25));
    }
    bool skip = true;
    assert_dpt_ok(dpt_reducer_finish(r, &lgot, &skip));
    assert_false(skip);
    assert_memory_equal(want, got, n * sizeof *got);
    assert_memory_equal(&lwant, &lgot, sizeof lwant);
  }
  dpt_reducer_destroy(&r);
  free(got);
  free(want);
}

/* No terms at all (M = 0): every element and the loss are 0, on every rank. */
static void test_exact_no_terms(void **state) {
  (void)state;
  const size_t n = 50;
  float *g = malloc(n * sizeof *g);
  for (size_t i = 0; i < n; ++i) g[i] = 9.0f;
  double loss = -1;
  exact_step(&dpt_test_world, DPT_F32, n, 0, 0, 0, 0, g, &loss);
  for (size_t i = 0; i < n; ++i) assert_true(g[i] == 0.0f);
  assert_true(loss == 0.0);
  free(g);
}

/* Exact fixed-point value of a double that is a multiple of 2^-64 below 2^62 in magnitude. */
__extension__ typedef __int128 i128;
static i128 fixed64(double x) { return (i128)ldexpl((long double)x, 64); }
static long double from_fixed(i128 v) { return ldexpl((long double)v, -64); }
static i128 abs128(i128 v) { return v < 0 ? -v : v; }

/* The accuracy bounds of reduce.h, element by element, against the exact sum S. The terms
 * are floats in [2^-29, 2^30) in magnitude (multiples of 2^-53), in nearly cancelling pairs
 * (where a float32 sum loses bits). Every sum of such numbers, and every floating-point
 * rounding of one, is a multiple of 2^-64 below 2^40, so S, D (f64 reducer), R (f32
 * reducer) and the float32 sequential sum F are exact in 128-bit fixed point with unit
 * 2^-64: the errors |X - S| are computed exactly. The bound side, gamma = ((1 + u)^h - 1)
 * sum|g| with u = 2^-53 and h = ceil(log2 M), is computed in long double from exact inputs;
 * the one comparison of an exact error with it allows a relative 2^-60 for the long double
 * roundings of the bound and of the error's conversion (each below 2^-63 relative). */
static void test_exact_accuracy_bound(void **state) {
  (void)state;
  dpt_comm self = self_comm();
  const int M = 16, h = 4;
  const size_t n = 2048;
  float *terms = malloc((size_t)M * n * sizeof *terms), *R = malloc(n * sizeof *R);
  double *T = malloc((size_t)M * n * sizeof *T), *D = malloc(n * sizeof *D);
  for (int j = 0; j < M; ++j)
    for (size_t i = 0; i < n; ++i) {
      /* pairs of nearly cancelling terms: magnitude 2^e per element and pair */
      int e = (int)((i + 7 * (size_t)(j / 2)) % 57) - 28;
      double big = (unit((uint64_t)(j / 2), i) + 0.5) * ldexp(1.0, e);
      double v = (j % 2 ? -big : big) * (1.0 + 1e-4 * unit((uint64_t)j + 77, i));
      terms[(size_t)j * n + i] = (float)v;
      T[(size_t)j * n + i] = (double)(float)v;
    }
  dpt_reduce_opts o;
  dpt_reduce_opts_default(&o);
  o.mode = DPT_REDUCE_EXACT;
  dpt_reducer *r32, *r64;
  double loss = 0;
  bool skip;
  assert_dpt_ok(dpt_reducer_create(&self, &o, DPT_F32, n, R, &r32));
  assert_dpt_ok(dpt_reducer_create(&self, &o, DPT_F64, n, D, &r64));
  assert_dpt_ok(dpt_reducer_begin(r32, M));
  assert_dpt_ok(dpt_reducer_begin(r64, M));
  for (int j = 0; j < M; ++j) {
    assert_dpt_ok(dpt_reducer_deposit(r32, j, terms + (size_t)j * n, 0.0));
    assert_dpt_ok(dpt_reducer_deposit(r64, j, T + (size_t)j * n, 0.0));
  }
  assert_dpt_ok(dpt_reducer_finish(r32, &loss, &skip));
  assert_dpt_ok(dpt_reducer_finish(r64, &loss, &skip));
  const long double u = 0x1p-53L, slack = 1.0L + 0x1p-60L;
  long double gamma_h = powl(1.0L + u, h) - 1.0L;
  int better = 0, inexact = 0;
  for (size_t i = 0; i < n; ++i) {
    i128 S = 0, mag = 0;
    float F = 0;
    for (int j = 0; j < M; ++j) {
      S += fixed64(T[(size_t)j * n + i]);
      mag += abs128(fixed64(T[(size_t)j * n + i]));
      F += terms[(size_t)j * n + i];
    }
    long double bound = gamma_h * from_fixed(mag) * slack;
    long double eD = from_fixed(abs128(fixed64(D[i]) - S)), eR = from_fixed(abs128(fixed64((double)R[i]) - S));
    long double eF = from_fixed(abs128(fixed64((double)F) - S));
    long double half_ulp = 0.5L * (nextafterf(fabsf(R[i]), INFINITY) - fabsf(R[i]));
    /* the R = D case needs R's own result: D rounded to float is R */
    assert_true(R[i] == (float)D[i]);
    if (eD > bound) fail_msg("element %zu: |D - S| = %Lg > ((1+u)^h - 1) sum|g| = %Lg", i, eD, bound);
    if (eR > eF + 2 * bound) fail_msg("element %zu: |R - S| = %Lg > |F - S| + 2 gamma = %Lg", i, eR, eF + 2 * bound);
    if (eR > half_ulp + bound) fail_msg("element %zu: |R - S| = %Lg > ulp/2 + gamma = %Lg", i, eR, half_ulp + bound);
    better += eR < eF;
    inexact += eD > 0;
  }
  /* the data make the float32 sum lose bits to cancellation: exact mode must do better on
   * many; and the double tree must round on some, or the bound on D is not exercised */
  assert_true(better > (int)n / 4);
  assert_true(inexact > 0);
  dpt_reducer_destroy(&r32);
  dpt_reducer_destroy(&r64);
  MPI_Comm_free(&self.comm);
  free(terms);
  free(T);
  free(R);
  free(D);
}

/* Misuse of deposit, agreed by finish on every rank: a term outside [0, M), a term twice
 * on one rank, one term deposited on two ranks. */
static void test_exact_misuse(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 64;
  float *g = calloc(n, sizeof *g);
  dpt_reducer *r = new_reducer(c, DPT_REDUCE_EXACT, DPT_NONFINITE_ABORT, DPT_F32, n, g);
  double loss;
  bool skip;
  assert_dpt_ok(dpt_reducer_begin(r, 4));
  if (c->rank == c->size - 1) assert_dpt_ok(dpt_reducer_deposit(r, 4, g, 0.0));
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "term 4 outside the 4 terms");
  assert_dpt_ok(dpt_reducer_begin(r, 4));
  if (c->rank == 0) { /* 2 and 3 are held (as leaves or merged into (1, 1)): term 3 again is inside */
    assert_dpt_ok(dpt_reducer_deposit(r, 2, g, 0.0));
    assert_dpt_ok(dpt_reducer_deposit(r, 3, g, 0.0));
    assert_dpt_ok(dpt_reducer_deposit(r, 3, g, 0.0));
  }
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "term 3 deposited twice on this rank");
  if (c->size > 1) {
    assert_dpt_ok(dpt_reducer_begin(r, 4));
    assert_dpt_ok(dpt_reducer_deposit(r, c->rank == 0 ? 0 : 3, g, 0.0)); /* rank 0 and every other: 3 twice */
    if (c->rank == 0) assert_dpt_ok(dpt_reducer_deposit(r, 3, g, 0.0));
    assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "term 3 deposited on more than one rank");
  }
  assert_dpt_ok(dpt_reducer_begin(r, 4)); /* a leaf deposit without its buffer */
  if (c->rank == 0) assert_dpt_ok(dpt_reducer_deposit_leaf(r, 0, 0.0));
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "leaf buffer never handed out");
  /* still usable: terms 0..3 of 0.5 each on any ranks sum to 2 */
  for (size_t i = 0; i < n; ++i) g[i] = 0.5f;
  assert_dpt_ok(dpt_reducer_begin(r, 4));
  for (int64_t j = 0; j < 4; ++j)
    if (j % c->size == c->rank) assert_dpt_ok(dpt_reducer_deposit(r, j, g, 1.0));
  assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
  for (size_t i = 0; i < n; ++i) assert_true(g[i] == 2.0f); /* small multiples of 2^-1: exact */
  assert_true(loss == 4.0);
  dpt_reducer_destroy(&r);
  free(g);
}

/* Misuse found with a non-finite value in the same step is reported, not dropped with the
 * step (even under skip): a term out of range on the rank that also saw a NaN loss, or on
 * another rank; a term deposited on two ranks; ranks that declared different M; a leaf
 * buffer asked for twice, left undeposited, or overwritten by a copy (a dropped one is not). */
static void test_exact_misuse_outranks_nonfinite(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 16;
  float *g = calloc(n, sizeof *g);
  dpt_reducer *r = new_reducer(c, DPT_REDUCE_EXACT, DPT_NONFINITE_SKIP, DPT_F32, n, g);
  double loss;
  bool skip;
  void *leaf;
  /* the NaN loss first, then the misuse, on rank 0 */
  assert_dpt_ok(dpt_reducer_begin(r, 2));
  if (c->rank == 0) {
    assert_dpt_ok(dpt_reducer_deposit(r, 0, g, NAN));
    assert_dpt_ok(dpt_reducer_deposit(r, 7, g, 0.0));
  }
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "term 7 outside the 2 terms");
  /* the NaN on rank 0, the misuse on the last rank */
  assert_dpt_ok(dpt_reducer_begin(r, 2));
  if (c->rank == 0) assert_dpt_ok(dpt_reducer_deposit(r, 0, g, NAN));
  if (c->rank == c->size - 1) assert_dpt_ok(dpt_reducer_deposit(r, 9, g, 0.0));
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "term 9 outside the 2 terms");
  if (c->size > 1) {
    /* the NaN on rank 0, term 1 on every rank */
    assert_dpt_ok(dpt_reducer_begin(r, 2));
    if (c->rank == 0) assert_dpt_ok(dpt_reducer_deposit(r, 0, g, NAN));
    assert_dpt_ok(dpt_reducer_deposit(r, 1, g, 0.0));
    assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "term 1 deposited on more than one rank");
    /* M differs between ranks */
    assert_dpt_ok(dpt_reducer_begin(r, c->rank == 0 ? 2 : 8));
    if (c->rank == 0) assert_dpt_ok(dpt_reducer_deposit(r, 0, g, 1.0));
    assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL,
                     "the ranks declared different numbers of terms at begin (2 to 8)");
  }
  /* a leaf asked for twice; one never deposited; a copy deposited over a leaf that is out */
  assert_dpt_ok(dpt_reducer_begin(r, 4));
  if (c->rank == 0) {
    assert_dpt_ok(dpt_reducer_leaf(r, &leaf));
    assert_dpt_ok(dpt_reducer_leaf(r, &leaf));
    assert_dpt_ok(dpt_reducer_deposit_leaf(r, 0, 0.0));
  }
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "a second leaf buffer asked for");
  assert_dpt_ok(dpt_reducer_begin(r, 4));
  if (c->rank == c->size - 1) assert_dpt_ok(dpt_reducer_leaf(r, &leaf));
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "handed out and never deposited");
  assert_dpt_ok(dpt_reducer_begin(r, 4));
  if (c->rank == 0) {
    assert_dpt_ok(dpt_reducer_leaf(r, &leaf));
    assert_dpt_ok(dpt_reducer_deposit(r, 1, g, 0.0));
    assert_dpt_ok(dpt_reducer_deposit_leaf(r, 0, 0.0));
  }
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "deposit of a copy while a leaf buffer is out");
  /* a leaf dropped (its term failed, the caller fails the step) is not misuse */
  assert_dpt_ok(dpt_reducer_begin(r, 2));
  if (c->rank == 0) {
    assert_dpt_ok(dpt_reducer_leaf(r, &leaf));
    dpt_reducer_drop_leaf(r);
  }
  assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
  assert_false(skip);
  /* still usable, and a NaN alone is skipped on every rank */
  assert_dpt_ok(dpt_reducer_begin(r, 2));
  if (c->rank == 0) assert_dpt_ok(dpt_reducer_deposit(r, 0, g, NAN));
  assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
  assert_true(skip);
  dpt_reducer_destroy(&r);
  free(g);
}

/* Finite terms whose sum is not finite: the same decision at every P. Exact f32: two terms of
 * 3e38 sum to 6e38 in double, which rounds to a float infinity (FLT_MAX ~ 3.4e38); exact f64:
 * 1e308 + 1e308 overflows the double sum (on a merge pass when one rank holds both terms, in
 * the root otherwise); fast f32 at P > 1: 3e38 from the last rank, 5e37 from the others (at
 * P = 2 and 3 below FLT_MAX / 2P, so only the last rank looks at the sum). */
static void test_sum_overflow(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 8;
  for (int policy = 0; policy < 2; ++policy) {
    for (int mode = 0; mode < 3; ++mode) { /* exact f32, exact f64, fast f32 */
      if (mode == 2 && c->size == 1) continue; /* one rank's finite sum is itself */
      dpt_dtype dt = mode == 1 ? DPT_F64 : DPT_F32;
      void *g = calloc(n, 8);
      for (size_t i = 0; i < n; ++i) {
        if (dt == DPT_F32) ((float *)g)[i] = i != 5 ? 1.0f : mode == 2 && c->rank < c->size - 1 ? 5e37f : 3e38f;
        else ((double *)g)[i] = i == 5 ? 1e308 : 1.0;
      }
      dpt_reducer *r = new_reducer(c, mode == 2 ? DPT_REDUCE_FAST : DPT_REDUCE_EXACT,
                                   policy ? DPT_NONFINITE_SKIP : DPT_NONFINITE_ABORT, dt, n, g);
      double loss = 1.0;
      bool skip = false;
      assert_dpt_ok(dpt_reducer_begin(r, mode == 2 ? 0 : 2));
      if (mode != 2)
        for (int64_t j = 0; j < 2; ++j)
          if (j % c->size == c->rank) assert_dpt_ok(dpt_reducer_deposit(r, j, g, 1.0));
      /* f64 on one rank: the merge pass sees it as that rank's non-finite gradient */
      const char *want = mode == 1 && c->size == 1 ? "rank 0: non-finite gradient" : "non-finite gradient sum";
      if (policy == 0) {
        assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_NUMERIC, want);
      } else {
        assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
        assert_true(skip);
      }
      dpt_reducer_destroy(&r);
      free(g);
    }
  }
}

/* ------------------------------------------------------------------ non-finite, misuse */

static void test_nonfinite_fast_abort_and_skip(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 3000;
  float *g = calloc(n, sizeof *g);
  for (int policy = 0; policy < 2; ++policy) {
    dpt_reduce_opts o;
    dpt_reduce_opts_default(&o);
    o.bucket_mb = 0.004;
    o.on_nonfinite = policy ? DPT_NONFINITE_SKIP : DPT_NONFINITE_ABORT;
    dpt_reducer *r;
    assert_dpt_ok(dpt_reducer_create(c, &o, DPT_F32, n, g, &r));
    for (size_t i = 0; i < n; ++i) g[i] = 1.0f;
    if (c->rank == c->size - 1) g[2500] = NAN;
    assert_dpt_ok(dpt_reducer_begin(r, 0));
    dpt_reducer_ready(r, 0, n);
    double loss = 1.0;
    bool skip = false;
    char want[64];
    snprintf(want, sizeof want, "rank %d: non-finite gradient", c->size - 1);
    if (policy == 0) {
      assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_NUMERIC, want);
    } else {
      assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
      assert_true(skip);
      /* next step is clean and not skipped */
      for (size_t i = 0; i < n; ++i) g[i] = 1.0f;
      assert_dpt_ok(dpt_reducer_begin(r, 0));
      loss = 1.0;
      assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
      assert_false(skip);
      assert_true(g[2500] == (float)c->size);
      dpt_reducer_stats s;
      dpt_reducer_get_stats(r, &s);
      assert_int_equal(s.skipped, 1);
    }
    dpt_reducer_destroy(&r);
  }
  free(g);
}

static void test_nonfinite_exact_loss(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 100;
  float *g = calloc(n, sizeof *g);
  dpt_reducer *r = new_reducer(c, DPT_REDUCE_EXACT, DPT_NONFINITE_ABORT, DPT_F32, n, g);
  assert_dpt_ok(dpt_reducer_begin(r, c->size));
  assert_dpt_ok(dpt_reducer_deposit(r, c->rank, g, c->rank == 0 ? INFINITY : 1.0));
  double loss;
  bool skip;
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_NUMERIC, "rank 0: non-finite loss");
  /* the reducer stays usable: a clean step sums exactly */
  for (size_t i = 0; i < n; ++i) g[i] = 0.1f;
  assert_dpt_ok(dpt_reducer_begin(r, c->size));
  assert_dpt_ok(dpt_reducer_deposit(r, c->rank, g, 0.25));
  assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
  assert_true(loss == 0.25 * c->size);                /* multiples of 2^-2: exact */
  assert_true(g[0] == (float)(c->size * (double)0.1f)); /* P * 0.1f correctly rounded */
  dpt_reducer_destroy(&r);
  free(g);
}

/* A non-finite value in the last rank's terms stops every rank naming it (abort) or skips
 * the step on every rank (skip); the next clean step sums exactly. Three ways in: a NaN in
 * the second term, merged with the first (the merge pass checks the merged node); +Inf and
 * -Inf in two merged terms (their node holds a NaN); a NaN in a term left unmerged (its
 * sibling is not deposited: finish checks it). */
static void test_nonfinite_exact_grad(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 3000;
  float *g = calloc(n, sizeof *g);
  for (int policy = 0; policy < 6; ++policy) {
    int way = policy / 2;
    dpt_reducer *r = new_reducer(c, DPT_REDUCE_EXACT, policy % 2 ? DPT_NONFINITE_SKIP : DPT_NONFINITE_ABORT, DPT_F32, n, g);
    double loss;
    bool skip = false;
    assert_dpt_ok(dpt_reducer_begin(r, 2 * c->size));
    for (int k = way == 2 ? 1 : 0; k < 2; ++k) {
      for (size_t i = 0; i < n; ++i) g[i] = 1.0f;
      if (c->rank == c->size - 1 && (way != 1 || k == 1)) g[2500] = way == 1 ? -INFINITY : NAN;
      if (c->rank == c->size - 1 && way == 1 && k == 0) g[2500] = INFINITY;
      assert_dpt_ok(dpt_reducer_deposit(r, 2 * c->rank + k, g, 1.0));
    }
    char want[64];
    snprintf(want, sizeof want, "rank %d: non-finite gradient", c->size - 1);
    if (policy % 2 == 0) {
      assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_NUMERIC, want);
    } else {
      assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
      assert_true(skip);
    }
    assert_dpt_ok(dpt_reducer_begin(r, 2 * c->size));
    for (int k = 0; k < 2; ++k) {
      for (size_t i = 0; i < n; ++i) g[i] = 1.0f;
      assert_dpt_ok(dpt_reducer_deposit(r, 2 * c->rank + k, g, 1.0));
    }
    assert_dpt_ok(dpt_reducer_finish(r, &loss, &skip));
    assert_false(skip);
    for (size_t i = 0; i < n; ++i) assert_true(g[i] == (float)(2 * c->size)); /* small integers: exact */
    assert_true(loss == 2.0 * c->size);
    dpt_reducer_destroy(&r);
  }
  free(g);
}

static void test_misuse_is_agreed(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 100;
  float *g = calloc(n, sizeof *g);
  dpt_reducer *r = new_reducer(c, DPT_REDUCE_FAST, DPT_NONFINITE_ABORT, DPT_F32, n, g);
  assert_dpt_ok(dpt_reducer_begin(r, 0));
  if (c->rank == c->size - 1) dpt_reducer_ready(r, 90, 20); /* past the end */
  double loss = 0;
  bool skip;
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "ready range [90, 110) outside");
  /* reported twice */
  assert_dpt_ok(dpt_reducer_begin(r, 0));
  dpt_reducer_ready(r, 0, 100);
  if (c->rank == 0) dpt_reducer_ready(r, 10, 1);
  assert_dpt_fails(dpt_reducer_finish(r, &loss, &skip), DPT_ERR_INTERNAL, "reported ready twice");
  dpt_reducer_destroy(&r);
  free(g);
}

/* ------------------------------------------------------------------ broadcast, sync check */

static void test_broadcast_and_check_sync(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  const size_t n = 1000;
  double *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; ++i) p[i] = c->rank == 0 ? term_value(3, i) : -1.0;
  assert_dpt_ok(dpt_reduce_broadcast(c, p, DPT_F64, n));
  for (size_t i = 0; i < n; ++i) assert_true(p[i] == term_value(3, i));
  const dpt_reduce_tensor t[] = {{"layer_1/W", 0, 600}, {"layer_1/b", 600, 20}, {"layer_0/W", 620, 380}};
  assert_dpt_ok(dpt_reduce_check_sync(c, p, DPT_F64, t, 3, 5));
  if (c->size > 1) {
    /* the last rank's copy of layer_1/b and layer_0/W drift; the first differing tensor is named */
    if (c->rank == c->size - 1) {
      p[610] = nextafter(p[610], 1e300);
      p[700] += 1.0;
    }
    char want[96];
    snprintf(want, sizeof want, "tensor 'layer_1/b' on rank(s) %d differs", c->size - 1);
    assert_dpt_fails(dpt_reduce_check_sync(c, p, DPT_F64, t, 3, 7), DPT_ERR_INTERNAL, want);
  }
  /* the hash sees a one-bit change anywhere, tail bytes included */
  unsigned char bytes[13] = {0};
  uint64_t h0 = dpt_reduce_hash(bytes, sizeof bytes);
  for (size_t k = 0; k < sizeof bytes; ++k) {
    bytes[k] ^= 1;
    assert_true(dpt_reduce_hash(bytes, sizeof bytes) != h0);
    bytes[k] ^= 1;
  }
  assert_true(dpt_reduce_hash(bytes, 12) != h0); /* length counts */
  free(p);
}

/* ------------------------------------------------------------------ timers */

static void test_timers(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  dpt_timers t;
  dpt_timers_reset(&t);
  dpt_timer_start(&t, DPT_PHASE_DATA);
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  dpt_timer_stop(&t, DPT_PHASE_DATA);
  dpt_timer_stop(&t, DPT_PHASE_OPTIMIZER); /* never started: adds nothing */
  /* a lower bound only: a sleep never returns early (MPI_Wtime resolution is far below 1 ms) */
  assert_true(t.total[DPT_PHASE_DATA] >= 0.019);
  assert_true(t.total[DPT_PHASE_OPTIMIZER] == 0.0);
  /* known totals: rank r spent r + 1 seconds in comm_wait */
  t.total[DPT_PHASE_COMM_WAIT] = c->rank + 1.0;
  dpt_phase_stats s;
  assert_dpt_ok(dpt_timers_summarize(c, &t, &s));
  if (c->rank == 0) {
    assert_true(s.max[DPT_PHASE_COMM_WAIT] == c->size);
    assert_true(fabs(s.mean[DPT_PHASE_COMM_WAIT] - (c->size + 1) / 2.0) < 1e-12); /* sum of small ints / P */
  }
  assert_string_equal(dpt_phase_name(DPT_PHASE_COMM_WAIT), "comm_wait");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_opts_read),
      cmocka_unit_test(test_fast_f32_engine_order),
      cmocka_unit_test(test_fast_f32_reverse_order),
      cmocka_unit_test(test_fast_f64_no_ready),
      cmocka_unit_test(test_exact_bitwise_f32),
      cmocka_unit_test(test_exact_bitwise_f64),
      cmocka_unit_test(test_exact_bitwise_fewer_terms_than_ranks),
      cmocka_unit_test(test_exact_bitwise_one_term),
      cmocka_unit_test(test_exact_bitwise_many_terms),
      cmocka_unit_test(test_exact_random_schedules),
      cmocka_unit_test(test_exact_no_terms),
      cmocka_unit_test(test_exact_accuracy_bound),
      cmocka_unit_test(test_exact_misuse),
      cmocka_unit_test(test_exact_misuse_outranks_nonfinite),
      cmocka_unit_test(test_sum_overflow),
      cmocka_unit_test(test_nonfinite_fast_abort_and_skip),
      cmocka_unit_test(test_nonfinite_exact_loss),
      cmocka_unit_test(test_nonfinite_exact_grad),
      cmocka_unit_test(test_misuse_is_agreed),
      cmocka_unit_test(test_broadcast_and_check_sync),
      cmocka_unit_test(test_timers),
  };
  return dpt_test_run(tests);
}

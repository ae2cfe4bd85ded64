/* rbf_private.h — helpers shared by rbf.c, kmeans.c and gng.c (not installed). */
#ifndef DPTRAIN_RBF_PRIVATE_H
#define DPTRAIN_RBF_PRIVATE_H

#include <math.h>
#include <stdint.h>

#include "dptrain/rbf.h"

/* Stream ids: each use of the seed draws from its own stream, so adding draws to one
 * placement never shifts another. */
enum {
  DPT_RBF_STREAM_BOX = 1,
  DPT_RBF_STREAM_SAMPLES = 2,
  DPT_RBF_STREAM_KMEANS = 3,
  DPT_RBF_STREAM_GNG_SAMPLE = 4,
  DPT_RBF_STREAM_GNG = 5
};

/* splitmix64: a seeded stream that every rank advances identically. */
typedef struct dpt_rbf_rng {
  uint64_t s;
} dpt_rbf_rng;

static inline uint64_t dpt_rbf_rng_next(dpt_rbf_rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline void dpt_rbf_rng_init(dpt_rbf_rng *r, uint64_t seed, uint64_t stream) {
  r->s = seed ^ (stream * 0xD1B54A32D192ED03ull);
  (void)dpt_rbf_rng_next(r);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double dpt_rbf_rng_uniform(dpt_rbf_rng *r) { return (double)(dpt_rbf_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, m), m ≥ 1, without modulo bias (rejection). */
static inline uint64_t dpt_rbf_rng_below(dpt_rbf_rng *r, uint64_t m) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % m;
  uint64_t x;
  do x = dpt_rbf_rng_next(r);
  while (x >= limit);
  return x % m;
}

/* The fixed-point scale for sums of n values of magnitude ≤ maxabs: the largest power of
 * two s with n · maxabs · s ≤ 2^61, so every rounded value and every partial sum fits in an
 * int64 with a bit to spare. 1 when n or maxabs is 0. */
static inline double dpt_rbf_fixed_scale(int64_t n, double maxabs) {
  if (n <= 0 || !(maxabs > 0.0)) return 1.0;
  double s = 0x1.0p61 / ((double)n * maxabs);
  int e;
  frexp(s, &e); /* s = f · 2^e, f in [0.5, 1) */
  return ldexp(1.0, e - 1);
}

/* v rounded to the nearest integer (halves away from zero) for fixed-point sums, |v| ≤ 2^62.
 * Any deterministic rounding keeps sums P-independent; this one is an inline conversion
 * where llround is a library call (it costs a quarter of a Lloyd iteration). */
static inline int64_t dpt_rbf_fixq(double v) { return (int64_t)(v < 0.0 ? v - 0.5 : v + 0.5); }

/* ‖a − b‖² by a plain loop in index order (the reference distance: deterministic). */
static inline double dpt_rbf_dist2(const double *a, const double *b, int64_t d) {
  double s = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    double t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

/* m distinct global ids in [0, n) (Floyd's algorithm, m ≤ n), in draw order. */
dpt_status dpt_rbf_distinct_ids(dpt_rbf_rng *rng, int64_t n, int64_t m, int64_t *ids);

#endif

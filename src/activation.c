/* activation.c — the transfer operator table, its f32/f64 vector kernels and the scalar
 * derivative set (see activation.h for the formulas and the values at kinks).
 *
 * Layout of this file:
 *   1. the table and the parser;
 *   2. double element functions (stable forms) on a branch-free exp/expm1/log1p the
 *      compiler vectorizes: one source of truth for the f64 kernel and dpt_act_scalar;
 *   3. float element functions, the same formulas on a float exp/expm1/log1p;
 *   4. the loops (one per operator and dtype; the switch over the operator is outside them);
 *   5. dpt_act_scalar, with Soboleva's derivatives through its parameters. */
#include "dptrain/activation.h"

/* The loops below pick between two computed values (x ≥ 0 ? q : e·q); GCC turns such
 * selects into vector blends only when floating-point operations may be speculated, which
 * its default -ftrapping-math forbids. dptrain never reads the FP exception flags, so this
 * file is compiled without that assumption (results are unchanged: no fast-math). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Element functions are forced inline into every loop body that uses them (six per
 * operator and dtype): a call in the loop would stop the vectorizer. */
#if defined(__GNUC__)
#define ACT_INLINE static inline __attribute__((always_inline))
#else
#define ACT_INLINE static inline
#endif

/* ---- 1. table ---------------------------------------------------------------------- */

static const dpt_act_info act_table[DPT_ACT_COUNT] = {
    [DPT_ACT_IDENTITY] = {"identity", 0, {NULL}, {0}, false, "smooth: no kinks"},
    [DPT_ACT_STEP] = {"step", 0, {NULL}, {0}, false,
                      "f(0) = 1 (x >= 0 branch); f' = f'' = 0 everywhere, x = 0 included"},
    [DPT_ACT_SIGMOID] = {"sigmoid", 0, {NULL}, {0}, false, "smooth: no kinks"},
    [DPT_ACT_TANH] = {"tanh", 0, {NULL}, {0}, false, "smooth: no kinks"},
    [DPT_ACT_SOBOLEVA] = {"soboleva", 4, {"a", "b", "c", "d"}, {1.0, 1.0, 1.0, 1.0}, true,
                          "smooth: no kinks"},
    [DPT_ACT_RELU] = {"relu", 0, {NULL}, {0}, false, "f(0) = 0, f'(0) = 0, f''(0) = 0 (x <= 0 side)"},
    [DPT_ACT_LEAKY_RELU] = {"leaky_relu", 0, {NULL}, {0}, false,
                            "f(0) = 0, f'(0) = 0.01, f''(0) = 0 (x <= 0 branch)"},
    [DPT_ACT_PRELU] = {"prelu", 1, {"alpha"}, {0.25}, true,
                       "f(0) = 0, f'(0) = alpha, f''(0) = 0, df/dalpha(0) = 0, d2f/dx dalpha(0) = 1 "
                       "(x <= 0 branch)"},
    [DPT_ACT_GELU] = {"gelu", 0, {NULL}, {0}, false, "smooth: no kinks"},
    [DPT_ACT_ELU] = {"elu", 1, {"alpha"}, {1.0}, false,
                     "f(0) = 0, f'(0) = alpha, f''(0) = alpha (x <= 0 branch)"},
    [DPT_ACT_SELU] = {"selu", 0, {NULL}, {0}, false,
                      "f(0) = 0, f'(0) = lambda*alpha, f''(0) = lambda*alpha (x <= 0 branch)"},
    [DPT_ACT_SILU] = {"silu", 0, {NULL}, {0}, false, "smooth: no kinks"},
    [DPT_ACT_GAUSSIAN] = {"gaussian", 0, {NULL}, {0}, false, "smooth: no kinks"},
    [DPT_ACT_SOFTPLUS] = {"softplus", 0, {NULL}, {0}, false, "smooth: no kinks"},
};

const dpt_act_info *dpt_act_get(dpt_act a) {
  if ((unsigned)a >= (unsigned)DPT_ACT_COUNT) return NULL;
  return &act_table[a];
}

dpt_status dpt_act_parse(const char *name, const char *key, dpt_act *out) {
  for (int i = 0; i < DPT_ACT_COUNT; ++i) {
    if (name && !strcmp(name, act_table[i].name)) {
      *out = (dpt_act)i;
      return DPT_OK;
    }
  }
  return dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                       "%s: expected an activation (identity, step, sigmoid, tanh, soboleva, relu, leaky_relu, "
                       "prelu, gelu, elu, selu, silu, gaussian, softplus), got '%s'",
                       key ? key : "activation", name ? name : "(null)");
}

/* ---- 2. double element functions --------------------------------------------------
 * Each computes f = ρ(x), g = ρ'(x), h = ρ''(x) for one x; p0..p3 are the operator's
 * parameters (unused ones are ignored). Only exponentials of non-positive arguments are
 * taken (Soboleva: see there), so nothing overflows for finite x. */

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT2PI 0.39894228040143267794

ACT_INLINE double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

ACT_INLINE void d_identity(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  *f = x, *g = 1.0, *h = 0.0;
}

ACT_INLINE void d_step(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  *f = x >= 0.0 ? 1.0 : 0.0, *g = 0.0, *h = 0.0;
}

/* dexp(y): e^y and expm1(y) in double without libm, so the f64 loops vectorize. The
 * same construction as fexp below (which is documented there), at double precision:
 * ln 2 split as fdlibm's 32-bit head + tail, p the degree-13 Taylor polynomial of expm1
 * on |r| ≤ ln2/2 (remainder r¹⁴/14! < 1.2e-17 relative: a tenth of an ulp), 2^n built
 * from the bits of the rounded y/ln 2 (the 1.5·2^52 trick leaves n in the low bits, so no
 * double→int64 conversion is needed). For y ≤ 709 (callers pass y ≤ 0); e^y below e^{−708}
 * flushes to 0. */
ACT_INLINE void dexp_parts(double y, double *e, double *em1) {
  const double lo = -708.0;
  double yc = y > lo ? y : lo; /* NaN takes lo: the bit tricks below must see a number */
  const double magic = 6755399441055744.0; /* 1.5·2^52 */
  double t = yc * 1.44269504088896338700 + magic, nf = t - magic;
  double r = (yc - nf * 6.93147180369123816490e-01) - nf * 1.90821492927058770002e-10;
  double p = r + r * r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 +
             r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 +
             r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800.0))))))))))));
  uint64_t tb, mb;
  memcpy(&tb, &t, sizeof tb);
  memcpy(&mb, &magic, sizeof mb);
  uint64_t bits = (tb - mb + 1023u) << 52; /* n + 1023 in the exponent field */
  double s;
  memcpy(&s, &bits, sizeof s);
  *e = y < lo ? 0.0 : s + s * p;
  *em1 = (s - 1.0) + s * p;
}

/* NaN in, NaN out for the smooth operators' values (the exponentials above take NaN as
 * their lower clamp, so it has to be put back). */
ACT_INLINE double keep_nan_d(double x, double v) { return x != x ? x : v; }

/* log1p(u) for u = e^{−|x|} ∈ [0, 1] (em1 = u − 1 = expm1(−|x|)), as f_log1p_exp_neg below
 * at double precision: |z| ≤ 0.172, eleven terms of 2(z + z³/3 + ...) leave under 1e-18. */
ACT_INLINE double d_log1p_exp_neg(double e, double em1) {
  bool big = e > 0.41421356237309504880;
  double w = big ? 0.5 * em1 : e;
  double off = big ? 0.69314718055994530942 : 0.0;
  double z = w / (2.0 + w), z2 = z * z;
  return off + 2.0 * z * (1.0 + z2 * (1.0 / 3 + z2 * (1.0 / 5 + z2 * (1.0 / 7 + z2 * (1.0 / 9 + z2 * (1.0 / 11 +
               z2 * (1.0 / 13 + z2 * (1.0 / 15 + z2 * (1.0 / 17 + z2 * (1.0 / 19 + z2 * (1.0 / 21)))))))))));
}

/* σ(x) from e = e^{−|x|}: σ(|x|) = 1/(1+e), σ(−|x|) = e/(1+e); σ' = e/(1+e)²;
 * 1 − 2σ(x) = sign(x)·expm1(−|x|)/(1+e). */
ACT_INLINE void d_sigmoid_parts(double x, double *s, double *ds, double *one_m_2s) {
  double ax = fabs(x), e, em1;
  dexp_parts(-ax, &e, &em1);
  double q = 1.0 / (1.0 + e);
  *s = keep_nan_d(x, x >= 0.0 ? q : e * q);
  *ds = e * q * q;
  *one_m_2s = (x >= 0.0 ? em1 : -em1) * q;
}

ACT_INLINE void d_sigmoid(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  double t;
  d_sigmoid_parts(x, f, g, &t);
  *h = *g * t;
}

/* tanh|x| = −m/(2+m) with m = expm1(−2|x|); 1 − tanh|x| = 2e^{−2|x|}/(2+m) (no cancellation). */
ACT_INLINE void d_tanh(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  double ax = fabs(x), e, m;
  dexp_parts(-2.0 * ax, &e, &m);
  double inv = 1.0 / (2.0 + m);
  double t = -m * inv, omt = 2.0 * e * inv;
  *f = keep_nan_d(x, x < 0.0 ? -t : t);
  *g = omt * (1.0 + t);
  *h = -2.0 * *f * *g;
}

/* Soboleva: with m = max(cx, −dx) factored out of numerator and denominator,
 * N = e^{ax−m} − e^{−bx−m}, D = e^{cx−m} + e^{−dx−m} ∈ [1, 2], f = N/D,
 * f' = (N' − fD')/D, f'' = (N'' − 2f'D' − fD'')/D. clamp bounds the numerator's exponents
 * (only reached when a > c or b > d, where ρ itself grows without bound). |x| is clamped
 * at 1e150 so that products with the parameters cannot overflow. */
#define SOBOLEVA_XMAX 1e150
#define SOBOLEVA_CLAMP64 700.0 /* e^700 = 1e304: room for the a², b² factors of f'' */
#define SOBOLEVA_CLAMP32 80.0  /* e^80 = 5.5e34: the same room below FLT_MAX */
ACT_INLINE void d_soboleva_c(double x, double a, double b, double c, double d, double clamp, double *f,
                             double *g, double *h) {
  x = clampd(x, -SOBOLEVA_XMAX, SOBOLEVA_XMAX);
  double cx = c * x, dx = -d * x, m = cx > dx ? cx : dx, ua = a * x - m, ub = -b * x - m, em1;
  double ea, eb, ec, ed;
  dexp_parts(ua < clamp ? ua : clamp, &ea, &em1);
  dexp_parts(ub < clamp ? ub : clamp, &eb, &em1);
  dexp_parts(cx - m, &ec, &em1);
  dexp_parts(dx - m, &ed, &em1);
  double N = ea - eb, N1 = a * ea + b * eb, N2 = a * a * ea - b * b * eb;
  double D = ec + ed, D1 = c * ec - d * ed, D2 = c * c * ec + d * d * ed;
  double fv = N / D, gv = (N1 - fv * D1) / D;
  *f = keep_nan_d(x, fv), *g = gv, *h = (N2 - 2.0 * gv * D1 - fv * D2) / D;
}

ACT_INLINE void d_soboleva(double x, double a, double b, double c, double d, double *f, double *g, double *h) {
  d_soboleva_c(x, a, b, c, d, SOBOLEVA_CLAMP64, f, g, h);
}

ACT_INLINE void d_relu(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  *f = x > 0.0 ? x : 0.0, *g = x > 0.0 ? 1.0 : 0.0, *h = 0.0;
}

ACT_INLINE void d_prelu(double x, double alpha, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p1, (void)p2, (void)p3;
  *f = x > 0.0 ? x : alpha * x, *g = x > 0.0 ? 1.0 : alpha, *h = 0.0;
}

ACT_INLINE void d_leaky_relu(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  d_prelu(x, DPT_LEAKY_SLOPE, 0, 0, 0, f, g, h);
}

/* GELU: Φ(x) = ½erfc(−x/√2) (no cancellation for x ≪ 0); φ(x) = e^{−x²/2}/√(2π) with x
 * clamped to ±40 where φ underflows to 0 anyway (so x² cannot overflow). */
ACT_INLINE void d_gelu(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  double Phi = 0.5 * erfc(-x * INV_SQRT2), xc = clampd(x, -40.0, 40.0);
  double phi = INV_SQRT2PI * exp(-0.5 * xc * xc);
  *f = x * Phi, *g = Phi + xc * phi, *h = phi * (2.0 - xc * xc);
}

ACT_INLINE void d_elu(double x, double alpha, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p1, (void)p2, (void)p3;
  double xn = x > 0.0 ? 0.0 : x, e, em1;
  dexp_parts(xn, &e, &em1);
  *f = x > 0.0 ? x : alpha * em1, *g = x > 0.0 ? 1.0 : alpha * e, *h = x > 0.0 ? 0.0 : alpha * e;
}

ACT_INLINE void d_selu(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  d_elu(x, DPT_SELU_ALPHA, 0, 0, 0, f, g, h);
  *f *= DPT_SELU_LAMBDA, *g *= DPT_SELU_LAMBDA, *h *= DPT_SELU_LAMBDA;
}

/* SiLU: f = xσ, f' = σ + xσ', f'' = σ'(2 + x(1 − 2σ)). */
ACT_INLINE void d_silu(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  double s, ds, t;
  d_sigmoid_parts(x, &s, &ds, &t);
  *f = x * s, *g = s + x * ds, *h = ds * (2.0 + x * t);
}

/* Gaussian: x clamped to ±28 where e^{−x²} underflows to 0 anyway. */
ACT_INLINE void d_gaussian(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  double xc = clampd(x, -28.0, 28.0), e, em1;
  dexp_parts(-xc * xc, &e, &em1);
  *f = keep_nan_d(x, e), *g = -2.0 * xc * e, *h = (4.0 * xc * xc - 2.0) * e;
}

/* softplus = max(x, 0) + log1p(e^{−|x|}); f' = σ(x), f'' = σ'(x). */
ACT_INLINE void d_softplus(double x, double p0, double p1, double p2, double p3, double *f, double *g, double *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  double ax = fabs(x), e, em1;
  dexp_parts(-ax, &e, &em1);
  double q = 1.0 / (1.0 + e);
  *g = x >= 0.0 ? q : e * q;
  *h = e * q * q;
  *f = keep_nan_d(x, (x > 0.0 ? x : 0.0) + d_log1p_exp_neg(e, em1));
}

/* ---- 3. float element functions ----------------------------------------------------
 * fexp(y) for y ≤ 0: e^y = 2^n (1 + p(r)) with n = round(y/ln 2), r = y − n ln 2 (Cody–Waite,
 * ln 2 split in a 9-bit head and a tail, so n·head is exact), |r| ≤ ln2/2, p the degree-7
 * Taylor polynomial of expm1 (remainder r⁸/8! < 1.5e-8 relative: under a quarter ulp).
 * expm1(y) = (2^n − 1) + 2^n p, exact in its first term, so it keeps full relative
 * accuracy near 0 where n = 0. For y ≤ 88 (callers pass y ≤ 0); y is clamped at −87.3
 * (2^n stays a normal float) and e^y below that flushes to 0. Branch-free: n by the
 * 1.5·2^23 rounding trick, 2^n by building the exponent bits; the compiler vectorizes
 * loops over it. */

ACT_INLINE void fexp_parts(float y, float *e, float *em1) {
  const float lo = -87.3f;
  float yc = y > lo ? y : lo; /* NaN takes lo: the float→int conversion must see a number */
  const float magic = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
  float nf = (yc * 1.44269504088896341f + magic) - magic;
  float r = (yc - nf * 0.693359375f) - nf * -2.12194440e-4f;
  float p = r + r * r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 +
             r * (1.0f / 5040))))));
  uint32_t bits = (uint32_t)((int32_t)nf + 127) << 23;
  float s;
  memcpy(&s, &bits, sizeof s);
  *e = y < lo ? 0.0f : s + s * p;
  *em1 = (s - 1.0f) + s * p;
}

ACT_INLINE float keep_nan_f(float x, float v) { return x != x ? x : v; }

ACT_INLINE float clampf_(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

ACT_INLINE void f_identity(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  *f = x, *g = 1.0f, *h = 0.0f;
}

ACT_INLINE void f_step(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  *f = x >= 0.0f ? 1.0f : 0.0f, *g = 0.0f, *h = 0.0f;
}

ACT_INLINE void f_sigmoid_parts(float x, float *s, float *ds, float *one_m_2s) {
  float ax = fabsf(x), e, em1;
  fexp_parts(-ax, &e, &em1);
  float q = 1.0f / (1.0f + e);
  *s = keep_nan_f(x, x >= 0.0f ? q : e * q);
  *ds = e * q * q;
  *one_m_2s = (x >= 0.0f ? em1 : -em1) * q;
}

ACT_INLINE void f_sigmoid(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  float t;
  f_sigmoid_parts(x, f, g, &t);
  *h = *g * t;
}

/* tanh in f32, the same formula as d_tanh on an exponential of its own that drops the
 * work fexp_parts does for other callers:
 *  - the clamp is a max (lo > y ? lo : y keeps a NaN y), and NaN flows through r, p and m
 *    into t, so no compare-and-blend is needed to put it back;
 *  - n comes from the bits of the rounded sum (as dexp_parts), with no float→int
 *    conversion (which NaN would make undefined);
 *  - the sign goes on by flipping t's sign bit with x's (bit operations, no blend);
 *  - the reduction and the polynomial use fused multiply-adds written as fmaf, which IEEE
 *    754 defines as one rounding: the x86-64-v3 clone does them in hardware, the baseline
 *    clone (CPUs without FMA) in libm, and both give the same bits (ranks on different CPUs
 *    agree); C17 mode keeps -ffp-contract=off, so no other operation is fused.
 * Measured (a 64×64 block, y and f′, one core): 0.75–0.83 ns per element, against 1.25 for
 * the same formula without FMA and with blends for the clamp and the sign. */
ACT_INLINE void f_tanh(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  const float lo = -87.3f, magic = 12582912.0f; /* 1.5·2^23 */
  float y = -2.0f * fabsf(x);
  float yc = lo > y ? lo : y; /* NaN stays NaN */
  float tr = fmaf(yc, 1.44269504088896341f, magic), nf = tr - magic;
  float r = fmaf(nf, 2.12194440e-4f, fmaf(nf, -0.693359375f, yc)); /* yc − n·ln2 in two parts */
  float q = fmaf(r, 1.0f / 5040, 1.0f / 720);
  q = fmaf(r, q, 1.0f / 120);
  q = fmaf(r, q, 1.0f / 24);
  q = fmaf(r, q, 1.0f / 6);
  q = fmaf(r, q, 0.5f);
  float p = fmaf(r * r, q, r); /* expm1(r) */
  uint32_t tb, mb;
  memcpy(&tb, &tr, sizeof tb);
  memcpy(&mb, &magic, sizeof mb);
  uint32_t bits = (tb - mb + 127u) << 23; /* n + 127 in the exponent field */
  float s;
  memcpy(&s, &bits, sizeof s);
  float e = y < lo ? 0.0f : fmaf(s, p, s), m = fmaf(s, p, s - 1.0f); /* e^y, expm1(y); flush as fexp_parts */
  float inv = 1.0f / (2.0f + m);
  float t = -m * inv, omt = 2.0f * e * inv;
  uint32_t xs, ts;
  memcpy(&xs, &x, sizeof xs);
  memcpy(&ts, &t, sizeof ts);
  ts ^= xs & 0x80000000u; /* t ≥ 0 (or NaN): copysign */
  float fv;
  memcpy(&fv, &ts, sizeof fv);
  float gv = fmaf(omt, t, omt); /* (1 − t)(1 + t) */
  *f = fv, *g = gv, *h = -2.0f * fv * gv;
}

/* Soboleva in f32: evaluated in double (the loop still vectorizes), with the exponent
 * clamp at 80 so a saturated float result stays finite. */
ACT_INLINE void f_soboleva(float x, float a, float b, float c, float d, float *f, float *g, float *h) {
  double fd, gd, hd;
  d_soboleva_c(x, a, b, c, d, SOBOLEVA_CLAMP32, &fd, &gd, &hd);
  *f = (float)fd, *g = (float)gd, *h = (float)hd;
}

ACT_INLINE void f_relu(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  *f = x > 0.0f ? x : 0.0f, *g = x > 0.0f ? 1.0f : 0.0f, *h = 0.0f;
}

ACT_INLINE void f_prelu(float x, float alpha, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p1, (void)p2, (void)p3;
  *f = x > 0.0f ? x : alpha * x, *g = x > 0.0f ? 1.0f : alpha, *h = 0.0f;
}

ACT_INLINE void f_leaky_relu(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  f_prelu(x, (float)DPT_LEAKY_SLOPE, 0, 0, 0, f, g, h);
}

/* GELU in f32: Φ(x) = ½erfc(−x/√2), with erfc in the form
 *   erfc(z) = t·exp(−z² + P(t)),  t = 1/(1 + z/2) ∈ (0, 1],  z = |x|/√2 ≥ 0,
 * where P(t) = ln(erfc(z)/t) + z² is smooth on [0, 1] (P(0) = −ln(2√π)); P is our own
 * degree-10 Chebyshev fit, made with mpmath (40 digits):
 *   mpmath.chebyfit(P, [0, 1], 11, error=True)  ->  max |error| 9.9e-8,
 * i.e. a relative error of erfc under one float ulp before float rounding (Horner in
 * float adds about 2e-7). Φ(x) = ½erfc(z) for x < 0 (full relative accuracy in the
 * tail), 1 − ½erfc(z) for x ≥ 0. Φ and φ = e^{−x²/2}/√(2π) both go through fexp; x is
 * clamped to ±14, past which φ and ½erfc(|x|/√2) are below FLT_MIN (flushed) and x²
 * cannot overflow. */
ACT_INLINE void f_gelu(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  float xc = clampf_(x, -14.0f, 14.0f), z = fabsf(xc) * (float)INV_SQRT2;
  float t = 1.0f / (1.0f + 0.5f * z);
  float poly = -1.26551221f + t * (1.000020943f + t * (0.3741760882f + t * (0.09577241224f +
               t * (-0.1800615123f + t * (0.2567150674f + t * (-1.086955619f + t * (1.423171945f +
               t * (-0.7684580855f + t * (0.1463613845f + t * 0.004769650984f)))))))));
  float ec, phi, em1;
  fexp_parts(-z * z + poly, &ec, &em1);
  fexp_parts(-0.5f * xc * xc, &phi, &em1);
  phi *= (float)INV_SQRT2PI;
  float half_erfc = 0.5f * t * ec;
  float Phi = x < 0.0f ? half_erfc : 1.0f - half_erfc;
  *f = x * Phi, *g = Phi + xc * phi, *h = phi * (2.0f - xc * xc);
}

ACT_INLINE void f_elu(float x, float alpha, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p1, (void)p2, (void)p3;
  float xn = x > 0.0f ? 0.0f : x, e, em1;
  fexp_parts(xn, &e, &em1);
  *f = x > 0.0f ? x : alpha * em1, *g = x > 0.0f ? 1.0f : alpha * e, *h = x > 0.0f ? 0.0f : alpha * e;
}

ACT_INLINE void f_selu(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  const float lam = (float)DPT_SELU_LAMBDA;
  float fv, gv, hv;
  f_elu(x, (float)DPT_SELU_ALPHA, 0, 0, 0, &fv, &gv, &hv);
  *f = lam * fv, *g = lam * gv, *h = lam * hv;
}

ACT_INLINE void f_silu(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  float s, ds, t;
  f_sigmoid_parts(x, &s, &ds, &t);
  *f = x * s, *g = s + x * ds, *h = ds * (2.0f + x * t);
}

ACT_INLINE void f_gaussian(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  float xc = clampf_(x, -10.0f, 10.0f), e, em1;
  fexp_parts(-xc * xc, &e, &em1);
  *f = keep_nan_f(x, e), *g = -2.0f * xc * e, *h = (4.0f * xc * xc - 2.0f) * e;
}

/* log1p(u) for u = e^{−|x|} ∈ [0, 1]: log1p(u) = 2 atanh(u/(2+u)). For u > √2 − 1 the
 * argument is reduced with 1 + u = 2(1 + w), w = (u − 1)/2 = expm1(−|x|)/2, adding ln 2.
 * Then |z| = |w/(2+w)| ≤ 0.172 and five terms of 2(z + z³/3 + ... + z⁹/9) leave a
 * remainder under 1e-9 relative. */
ACT_INLINE float f_log1p_exp_neg(float e, float em1) {
  bool big = e > 0.41421356f;
  float w = big ? 0.5f * em1 : e;
  float off = big ? 0.693147181f : 0.0f;
  float z = w / (2.0f + w), z2 = z * z;
  return off + 2.0f * z * (1.0f + z2 * (1.0f / 3 + z2 * (1.0f / 5 + z2 * (1.0f / 7 + z2 * (1.0f / 9)))));
}

ACT_INLINE void f_softplus(float x, float p0, float p1, float p2, float p3, float *f, float *g, float *h) {
  (void)p0, (void)p1, (void)p2, (void)p3;
  float ax = fabsf(x), e, em1;
  fexp_parts(-ax, &e, &em1);
  float q = 1.0f / (1.0f + e);
  *g = x >= 0.0f ? q : e * q;
  *h = e * q * q;
  *f = keep_nan_f(x, (x > 0.0f ? x : 0.0f) + f_log1p_exp_neg(e, em1));
}

/* ---- 4. loops --------------------------------------------------------------------
 * One kernel per (operator, dtype), walking the values in chunks of ACT_CHUNK. Outputs
 * that are NULL go to a stack scratch chunk, so each loop body is straight-line code.
 * Shared parameters are loaded into locals before the loop; per-unit parameters are read
 * from their [nparams][cols] rows. */

#define ACT_CHUNK 256

/* Each kernel is compiled twice, for baseline x86-64 (SSE2: 4 floats a vector) and for
 * x86-64-v3 (AVX2 + FMA: 8 floats); the loader picks the one the CPU runs. C17 mode keeps
 * -ffp-contract=off, so the compiler fuses nothing on its own: only explicit fmaf calls are
 * fused (f_tanh), and those round once in both clones. Both clones thus round every
 * operation the same way and give the same bits: ranks on different CPUs agree. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define ACT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ACT_CLONES
#endif

/* The chunk loop over len elements: STORE writes the outputs wanted (NULL ones go to the
 * scratch chunk); PARAMS(k) gives element k's parameters. */
#define ACT_SPAN(T, ELEM, PARAMS, STORE)                                                              \
  for (int64_t k = 0; k < len; ++k) {                                                              \
    T f, g, h;                                                                                     \
    ELEM(xi[k], PARAMS(k), &f, &g, &h);                                                            \
    STORE;                                                                                         \
  }
#define ACT_SHARED(k) p0, p1, p2, p3
#define ACT_PER_UNIT(k) q0[k], q1[k], q2[k], q3[k]
#define ACT_STORE_Y (yo[k] = f, (void)g, (void)h)
#define ACT_STORE_YG (yo[k] = f, go[k] = g, (void)h)
#define ACT_STORE_YGH (yo[k] = f, go[k] = g, ho[k] = h)

/* Three loop bodies by the outputs asked for: y (inference, forward), y and f' (the
 * forward pass of training), all three (H·v); the compiler drops what a body never stores. */
#define ACT_SPANS(T, ELEM, PARAMS)                                                                 \
  if (!d1 && !d2) {                                                                                \
    ACT_SPAN(T, ELEM, PARAMS, ACT_STORE_Y)                                                         \
  } else if (!d2) {                                                                                \
    ACT_SPAN(T, ELEM, PARAMS, ACT_STORE_YG)                                                        \
  } else {                                                                                         \
    ACT_SPAN(T, ELEM, PARAMS, ACT_STORE_YGH)                                                       \
  }

#define DEFINE_KERNEL(NAME, T, ELEM, HAS_PARAMS)                                                   \
  ACT_CLONES static void NAME(const T *P, int np, bool per_unit, int64_t rows, int64_t cols,      \
                              const T *x, T *y, T *d1, T *d2) {                                    \
    T sy[ACT_CHUNK], sg[ACT_CHUNK], sh[ACT_CHUNK];                                                 \
    if (!(HAS_PARAMS && per_unit)) {                                                               \
      const T p0 = np > 0 ? P[0] : 0, p1 = np > 1 ? P[1] : 0, p2 = np > 2 ? P[2] : 0,             \
              p3 = np > 3 ? P[3] : 0;                                                              \
      const int64_t n = rows * cols;                                                               \
      for (int64_t i0 = 0; i0 < n; i0 += ACT_CHUNK) {                                              \
        const int64_t len = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;                               \
        T *yo = y ? y + i0 : sy, *go = d1 ? d1 + i0 : sg, *ho = d2 ? d2 + i0 : sh;                \
        const T *xi = x + i0;                                                                      \
        ACT_SPANS(T, ELEM, ACT_SHARED)                                                             \
      }                                                                                            \
      return;                                                                                      \
    }                                                                                              \
    for (int64_t r = 0; r < rows; ++r) {                                                           \
      for (int64_t c0 = 0; c0 < cols; c0 += ACT_CHUNK) {                                           \
        const int64_t len = cols - c0 < ACT_CHUNK ? cols - c0 : ACT_CHUNK, o = r * cols + c0;      \
        T *yo = y ? y + o : sy, *go = d1 ? d1 + o : sg, *ho = d2 ? d2 + o : sh;                   \
        const T *xi = x + o, *q0 = P + c0, *q1 = np > 1 ? P + cols + c0 : q0,                      \
                *q2 = np > 2 ? P + 2 * cols + c0 : q0, *q3 = np > 3 ? P + 3 * cols + c0 : q0;      \
        ACT_SPANS(T, ELEM, ACT_PER_UNIT)                                                           \
      }                                                                                            \
    }                                                                                              \
  }

/* HAS_PARAMS = 0: the per-unit path is dead code (the entry points force shared
 * parameters for operators without any) and is never compiled. */
#define DEFINE_KERNELS(op, HAS_PARAMS)                \
  DEFINE_KERNEL(k64_##op, double, d_##op, HAS_PARAMS) \
  DEFINE_KERNEL(k32_##op, float, f_##op, HAS_PARAMS)

DEFINE_KERNELS(identity, 0)
DEFINE_KERNELS(step, 0)
DEFINE_KERNELS(sigmoid, 0)
DEFINE_KERNELS(tanh, 0)
DEFINE_KERNELS(soboleva, 1)
DEFINE_KERNELS(relu, 0)
DEFINE_KERNELS(leaky_relu, 0)
DEFINE_KERNELS(prelu, 1)
DEFINE_KERNELS(gelu, 0)
DEFINE_KERNELS(elu, 1)
DEFINE_KERNELS(selu, 0)
DEFINE_KERNELS(silu, 0)
DEFINE_KERNELS(gaussian, 0)
DEFINE_KERNELS(softplus, 0)

typedef void (*kernel64_fn)(const double *, int, bool, int64_t, int64_t, const double *, double *, double *,
                            double *);
typedef void (*kernel32_fn)(const float *, int, bool, int64_t, int64_t, const float *, float *, float *, float *);

static const kernel64_fn kernels64[DPT_ACT_COUNT] = {
    [DPT_ACT_IDENTITY] = k64_identity, [DPT_ACT_STEP] = k64_step,         [DPT_ACT_SIGMOID] = k64_sigmoid,
    [DPT_ACT_TANH] = k64_tanh,         [DPT_ACT_SOBOLEVA] = k64_soboleva, [DPT_ACT_RELU] = k64_relu,
    [DPT_ACT_LEAKY_RELU] = k64_leaky_relu, [DPT_ACT_PRELU] = k64_prelu,   [DPT_ACT_GELU] = k64_gelu,
    [DPT_ACT_ELU] = k64_elu,           [DPT_ACT_SELU] = k64_selu,         [DPT_ACT_SILU] = k64_silu,
    [DPT_ACT_GAUSSIAN] = k64_gaussian, [DPT_ACT_SOFTPLUS] = k64_softplus,
};
static const kernel32_fn kernels32[DPT_ACT_COUNT] = {
    [DPT_ACT_IDENTITY] = k32_identity, [DPT_ACT_STEP] = k32_step,         [DPT_ACT_SIGMOID] = k32_sigmoid,
    [DPT_ACT_TANH] = k32_tanh,         [DPT_ACT_SOBOLEVA] = k32_soboleva, [DPT_ACT_RELU] = k32_relu,
    [DPT_ACT_LEAKY_RELU] = k32_leaky_relu, [DPT_ACT_PRELU] = k32_prelu,   [DPT_ACT_GELU] = k32_gelu,
    [DPT_ACT_ELU] = k32_elu,           [DPT_ACT_SELU] = k32_selu,         [DPT_ACT_SILU] = k32_silu,
    [DPT_ACT_GAUSSIAN] = k32_gaussian, [DPT_ACT_SOFTPLUS] = k32_softplus,
};

void dpt_act_eval_f64(dpt_act a, const double *params, bool per_unit, int64_t rows, int64_t cols,
                      const double *x, double *y, double *d1, double *d2) {
  if ((unsigned)a >= (unsigned)DPT_ACT_COUNT || rows <= 0 || cols <= 0 || (!y && !d1 && !d2)) return;
  const dpt_act_info *info = &act_table[a];
  double defaults[DPT_ACT_MAX_PARAMS];
  for (int j = 0; j < DPT_ACT_MAX_PARAMS; ++j) defaults[j] = info->param_defaults[j];
  if (info->nparams == 0 || params == NULL) params = defaults, per_unit = false;
  kernels64[a](params, info->nparams, per_unit, rows, cols, x, y, d1, d2);
}

void dpt_act_eval_f32(dpt_act a, const float *params, bool per_unit, int64_t rows, int64_t cols, const float *x,
                      float *y, float *d1, float *d2) {
  if ((unsigned)a >= (unsigned)DPT_ACT_COUNT || rows <= 0 || cols <= 0 || (!y && !d1 && !d2)) return;
  const dpt_act_info *info = &act_table[a];
  float defaults[DPT_ACT_MAX_PARAMS];
  for (int j = 0; j < DPT_ACT_MAX_PARAMS; ++j) defaults[j] = (float)info->param_defaults[j];
  if (info->nparams == 0 || params == NULL) params = defaults, per_unit = false;
  kernels32[a](params, info->nparams, per_unit, rows, cols, x, y, d1, d2);
}

/* ---- 5. scalar derivative set ------------------------------------------------------
 * Soboleva through (u_0..u_4) = (x, a, b, c, d): with N = A − B, D = C + E and the four
 * exponentials A = e^{ax}, B = e^{−bx}, C = e^{cx}, E = e^{−dx} (each scaled by e^{−m} as
 * in d_soboleva_c; the ratio does not see it), differentiating N = fD twice gives
 *   f_u  = (N_u − f D_u) / D,
 *   f_uv = (N_uv − f_u D_v − f_v D_u − f D_uv) / D,
 * and each exponential e^{kx} (k = a, −b, c, −d) has the derivatives
 *   ∂/∂x = k e, ∂/∂k = x e, ∂²/∂x² = k² e, ∂²/∂x∂k = (1 + kx) e, ∂²/∂k² = x² e
 * (∂/∂b = −∂/∂k for k = −b, likewise d). */
static void soboleva_scalar(const double *p, double x, dpt_act_derivs *out) {
  double f, g, h;
  d_soboleva_c(x, p[0], p[1], p[2], p[3], SOBOLEVA_CLAMP64, &f, &g, &h);
  x = clampd(x, -SOBOLEVA_XMAX, SOBOLEVA_XMAX);
  double a = p[0], b = p[1], c = p[2], d = p[3];
  double cx = c * x, dx = -d * x, m = cx > dx ? cx : dx;
  /* the exponentials, with their rate k and sign σ in N (A − B) or D (C + E) */
  const double k[4] = {a, -b, c, -d};
  const double u[4] = {fmin(a * x - m, SOBOLEVA_CLAMP64), fmin(-b * x - m, SOBOLEVA_CLAMP64), cx - m, dx - m};
  double e[4], em1;
  for (int i = 0; i < 4; ++i) dexp_parts(u[i], &e[i], &em1); /* as d_soboleva_c */
  const double sgn[4] = {1.0, -1.0, 1.0, 1.0};  /* A − B; C + E */
  const double dk[4] = {1.0, -1.0, 1.0, -1.0}; /* ∂k/∂(its parameter) */
  double Nu[5] = {0}, Du[5] = {0}, Nuv[5][5] = {{0}}, Duv[5][5] = {{0}};
  for (int i = 0; i < 4; ++i) {
    double *U = i < 2 ? Nu : Du, (*UV)[5] = i < 2 ? Nuv : Duv;
    double s = sgn[i] * e[i];
    int j = 1 + i; /* parameter index of this exponential */
    U[0] += k[i] * s;
    U[j] += dk[i] * x * s;
    UV[0][0] += k[i] * k[i] * s;
    UV[0][j] += dk[i] * (1.0 + k[i] * x) * s;
    UV[j][0] = UV[0][j];
    UV[j][j] += x * x * s;
  }
  double D = e[2] + e[3], fu[5];
  for (int u = 0; u < 5; ++u) fu[u] = (Nu[u] - f * Du[u]) / D;
  fu[0] = g; /* the same closed form as the kernel, so scalar and kernel agree to the bit */
  out->f = f, out->d1 = g, out->d2 = h;
  for (int i = 0; i < 4; ++i) {
    out->dp[i] = fu[1 + i];
    out->dxdp[i] = (Nuv[0][1 + i] - fu[0] * Du[1 + i] - fu[1 + i] * Du[0] - f * Duv[0][1 + i]) / D;
    for (int j = 0; j < 4; ++j)
      out->dpdp[i][j] = (Nuv[1 + i][1 + j] - fu[1 + i] * Du[1 + j] - fu[1 + j] * Du[1 + i] - f * Duv[1 + i][1 + j]) / D;
  }
}

void dpt_act_scalar(dpt_act a, const double *params, double x, dpt_act_derivs *out) {
  memset(out, 0, sizeof *out);
  const dpt_act_info *info = dpt_act_get(a);
  if (!info) return;
  double p[DPT_ACT_MAX_PARAMS];
  for (int j = 0; j < DPT_ACT_MAX_PARAMS; ++j)
    p[j] = (params && j < info->nparams) ? params[j] : info->param_defaults[j];
  switch (a) {
    case DPT_ACT_SOBOLEVA:
      soboleva_scalar(p, x, out);
      return;
    case DPT_ACT_PRELU:
      /* f = αx (x ≤ 0): ∂f/∂α = x, ∂²f/∂x∂α = 1, ∂²f/∂α² = 0; 0 for x > 0. */
      d_prelu(x, p[0], 0, 0, 0, &out->f, &out->d1, &out->d2);
      out->dp[0] = x > 0.0 ? 0.0 : x;
      out->dxdp[0] = x > 0.0 ? 0.0 : 1.0;
      return;
    case DPT_ACT_ELU:
      /* f = α expm1(x) (x ≤ 0): ∂f/∂α = expm1(x), ∂²f/∂x∂α = e^x, ∂²f/∂α² = 0. */
      d_elu(x, p[0], 0, 0, 0, &out->f, &out->d1, &out->d2);
      {
        double e, em1;
        dexp_parts(x > 0.0 ? 0.0 : x, &e, &em1);
        out->dp[0] = x > 0.0 ? 0.0 : em1;
        out->dxdp[0] = x > 0.0 ? 0.0 : e;
      }
      return;
    default:
      dpt_act_eval_f64(a, NULL, false, 1, 1, &x, &out->f, &out->d1, &out->d2);
      return;
  }
}

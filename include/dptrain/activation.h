/* activation.h — the seed's transfer operators ρ as one table {name, params, f, f', f''}.
 *
 * One elementwise operator of the engine serves every activation: it calls the vector
 * kernels below for y = ρ(x), ρ'(x), ρ''(x), and dpt_act_scalar() for the derivatives
 * through learnable parameters (PReLU α, Soboleva a, b, c, d).
 *
 * Operators (the seed's notation; x ∈ ℝ is one pre-activation):
 *   identity    ρ(x) = x                                   ρ' = 1, ρ'' = 0
 *   step        ρ(x) = 0 if x < 0, 1 if x ≥ 0              ρ' = ρ'' = 0 everywhere (x = 0 too)
 *   sigmoid     ρ(x) = 1 / (1 + e^{−x})                    ρ' = ρ(1 − ρ), ρ'' = ρ'(1 − 2ρ)
 *   tanh        ρ(x) = (e^x − e^{−x}) / (e^x + e^{−x})     ρ' = 1 − ρ², ρ'' = −2ρρ'
 *   soboleva    ρ(x) = (e^{ax} − e^{−bx}) / (e^{cx} + e^{−dx}), a, b, c, d ∈ ℝ
 *                 (defaults 1, 1, 1, 1: then ρ = tanh); learnable
 *   relu        ρ(x) = max(0, x)                           ρ'(0) = 0, ρ'' = 0
 *   leaky_relu  ρ(x) = 0.01x if x ≤ 0, x if x > 0          ρ'(0) = 0.01 (x ≤ 0 branch)
 *   prelu       ρ(x) = αx if x ≤ 0, x if x > 0, α ∈ ℝ⁺     ρ'(0) = α (x ≤ 0 branch);
 *                 (default α = 0.25); learnable, shared or per unit
 *   gelu        ρ(x) = ½x(1 + erf(x/√2)) = xΦ(x)           ρ' = Φ + xφ, ρ'' = φ(2 − x²),
 *                 φ(x) = e^{−x²/2}/√(2π) (exact erf form, not the tanh approximation)
 *   elu         ρ(x) = α(e^x − 1) if x ≤ 0, x if x > 0     ρ'(0) = ρ''(0) = α (x ≤ 0 branch)
 *                 (default α = 1)
 *   selu        ρ(x) = λ·elu_α(x), α = 1.6732632423543772, λ = 1.0507009873554805
 *                                                          ρ'(0) = ρ''(0) = λα (x ≤ 0 branch)
 *   silu        ρ(x) = x / (1 + e^{−x}) = xσ(x)            ρ' = σ + xσ(1 − σ)
 *   gaussian    ρ(x) = e^{−x²}                             ρ' = −2xρ, ρ'' = (4x² − 2)ρ
 *   softplus    ρ(x) = ln(1 + e^x)                         ρ' = σ(x), ρ'' = σ(x)(1 − σ(x))
 * At a kink the value and derivatives are those of the branch the seed's case split
 * assigns to x = 0 (relu: max(0, 0) = 0 with ρ'(0) = 0 as for x < 0); step's derivative is
 * taken as 0 everywhere (its distributional derivative, a Dirac at 0, is not usable).
 *
 * Numerics: every operator returns finite f, f', f'' for every finite x in both dtypes
 * wherever the true value is representable: exponentials are only taken of non-positive
 * arguments (stable forms: σ via e^{−|x|}, softplus = max(x, 0) + log1p(e^{−|x|}), tanh
 * via expm1(−2|x|), Soboleva with the dominant exponential of its denominator factored out).
 * The only exception is Soboleva with a > c or b > d, whose true value grows without bound:
 * there the exponent is clamped (at 80 in f32, 700 in f64) so f, f', f'' saturate at a
 * large finite value (the parameter derivatives, x·e^{(a−c)x}, may still overflow there).
 * Likewise SELU (λx) and PReLU with α > 1 (αx) overflow where the true value is beyond
 * the dtype's range (|x| near FLT_MAX in f32).
 * Both kernels use branch-free exp/expm1/log1p of their own (the compiler vectorizes the
 * loops; AVX2 + FMA are used where the CPU has them, with the same bits): measured in test_activation, tanh and sigmoid
 * are within 3 ulps in f32 and f64, every f32 output within 16 ulps (+ the function's own
 * condition) of the f64 value. Results below FLT_MIN (f32) / e^{−708} (f64) flush to 0.
 * GELU's erfc (f64 only) comes from libm. f64 values equal dpt_act_scalar's to the bit.
 *
 * NaN: the smooth operators give NaN for a NaN input (so a diverged run stays visible);
 * the piecewise ones follow their comparisons (relu(NaN) = 0, step(NaN) = 0).
 *
 * Nothing here allocates; all pointers are borrowed from the caller for the call. */
#ifndef DPTRAIN_ACTIVATION_H
#define DPTRAIN_ACTIVATION_H

#include <stdbool.h>
#include <stdint.h>
#include "dptrain/error.h"

typedef enum dpt_act {
  DPT_ACT_IDENTITY, DPT_ACT_STEP, DPT_ACT_SIGMOID, DPT_ACT_TANH, DPT_ACT_SOBOLEVA, DPT_ACT_RELU,
  DPT_ACT_LEAKY_RELU, DPT_ACT_PRELU, DPT_ACT_GELU, DPT_ACT_ELU, DPT_ACT_SELU, DPT_ACT_SILU,
  DPT_ACT_GAUSSIAN, DPT_ACT_SOFTPLUS, DPT_ACT_COUNT
} dpt_act;

#define DPT_ACT_MAX_PARAMS 4

/* SELU's constants, full precision (Klambauer et al. 2017). */
#define DPT_SELU_ALPHA 1.6732632423543772
#define DPT_SELU_LAMBDA 1.0507009873554805
/* Leaky ReLU's slope for x ≤ 0 (the seed's 0.01). */
#define DPT_LEAKY_SLOPE 0.01

typedef struct dpt_act_info {
  const char *name;            /* config name: "identity", "step", "sigmoid", "tanh", "soboleva", "relu",
                                  "leaky_relu", "prelu", "gelu", "elu", "selu", "silu", "gaussian", "softplus" */
  int nparams;                 /* 0..4: soboleva a,b,c,d; prelu alpha; elu alpha */
  const char *param_names[4];  /* "a".."d", "alpha"; NULL past nparams */
  double param_defaults[4];    /* soboleva 1,1,1,1 (= tanh); prelu 0.25; elu 1.0 */
  bool learnable;              /* params may be trained (soboleva, prelu) */
  const char *at_kinks;        /* documented value/derivative at non-differentiable points */
} dpt_act_info;

/* The table entry of a (static storage, never freed); NULL when a is out of range. */
const dpt_act_info *dpt_act_get(dpt_act a);

/* Parses a config name (exact, lower case). key names the config key for the message:
 * "<key>: expected an activation (identity, step, ...), got 'name'" with DPT_ERR_INPUT. */
dpt_status dpt_act_parse(const char *name, const char *key /* for the message */, dpt_act *out);

/* Vector kernels. x, y, d1, d2: [rows, cols] row-major; y = f(x), d1 = f'(x), d2 = f''(x);
 * any of y/d1/d2 may be NULL (not computed). params: nparams values shared by all units, or
 * [nparams][cols] (param j of unit c at params[j*cols + c]) when per_unit. params may be
 * NULL (the defaults of the table, shared); it is ignored when nparams == 0. Outputs may
 * alias x (in-place), never each other. rows or cols may be 0; an a out of range computes
 * nothing (callers hold values from dpt_act_parse). */
void dpt_act_eval_f32(dpt_act a, const float *params, bool per_unit, int64_t rows, int64_t cols,
                      const float *x, float *y, float *d1, float *d2);
void dpt_act_eval_f64(dpt_act a, const double *params, bool per_unit, int64_t rows, int64_t cols,
                      const double *x, double *y, double *d1, double *d2);

/* Scalar, full derivative set in double (for parameter gradients, H·v through learnable
 * parameters, gradcheck): f, f', f'', and per parameter j: ∂f/∂p_j, ∂²f/∂x∂p_j, ∂²f/∂p_i∂p_j.
 * Entries past nparams are 0. params: nparams values, or NULL for the defaults. The
 * parameter derivatives are given for every operator with parameters (elu too, although
 * its α is not learnable). */
typedef struct dpt_act_derivs { double f, d1, d2, dp[4], dxdp[4], dpdp[4][4]; } dpt_act_derivs;
void dpt_act_scalar(dpt_act a, const double *params, double x, dpt_act_derivs *out);

#endif

/* optim.h — first-order optimizers over the flat parameter buffer, learning-rate schedules,
 * gradient clipping by global norm, weight decay; state exposed by name for checkpoints.
 *
 * Symbols are the seed lecture's: θ parameters, ∇J(θ) the gradient (the mean over the global
 * batch, already identical on every rank after the allreduce), α the learning rate, β the
 * momentum parameter, ρ the decay of a moving average, δ the small constant that keeps a
 * division finite, t the step count (1 for the first step), ⊙ the elementwise product.
 * Every rule below acts elementwise on the flat buffers; "g" is the gradient actually used:
 *
 *   g = c ∇J(θ) + λθ          c = min(1, clip_norm / ‖∇J‖₂) when clip_norm > 0, else 1
 *                              (‖·‖₂ over the whole flat buffer = over all tensors; the
 *                              buffer is the allreduced one, so also over all ranks);
 *                              λ = weight_decay (L2), except AdamW (decoupled, see there).
 *
 * [optimizer] type = ...
 *   sgd       θ ← θ − α g                                          (seed Algorithm 1)
 *   momentum  v ← βv − α g ;  θ ← θ + v                            (seed Algorithm 2)
 *             PyTorch writes v ← βv + g, θ ← θ − α v: the same sequence while α is constant,
 *             but when a schedule changes α, PyTorch rescales the whole velocity at once,
 *             the seed's form only the new gradient's share.
 *   nesterov  v ← βv − α ∇J(θ + βv) ;  θ ← θ + v                   (seed Algorithm 3)
 *             dpt_optim_prepare moves the parameters to the look-ahead θ + βv (and keeps θ);
 *             the gradient is computed there; dpt_optim_step restores θ and applies the
 *             update (L2 decay uses the look-ahead point, where J is differentiated).
 *             PyTorch (nesterov=True) uses the Sutskever reformulation in the shifted
 *             variable θ' = θ + βv, which never evaluates at the look-ahead explicitly.
 *   adagrad   r ← r + g⊙g ;  θ ← θ − α/(δ + √r) ⊙ g                  δ = 1e-8 (seed)
 *             PyTorch: same placement of δ (default 1e-10); Keras/TF start r at 0.1.
 *   rmsprop   r ← ρr + (1−ρ) g⊙g ;  θ ← θ − α/(δ + √r) ⊙ g           ρ = 0.9, δ = 1e-8
 *             centered = true: also ḡ ← ρḡ + (1−ρ) g and √r becomes √(r − ḡ⊙ḡ)
 *             momentum = β > 0: v ← βv − α/(δ + √r) ⊙ g ;  θ ← θ + v
 *             PyTorch: δ outside the root as here (its default ρ is 0.99); Goodfellow's
 *             Algorithm 8.5 and TensorFlow put δ inside: α/√(δ + r).
 *   adadelta  r ← ρr + (1−ρ) g⊙g ;  Δ = −√(s + δ)/√(r + δ) ⊙ g ;  s ← ρs + (1−ρ) Δ⊙Δ ;
 *             θ ← θ + αΔ                                 ρ = 0.9, δ = 1e-6, α = 1 (Zeiler's
 *             rule has no α; PyTorch's lr multiplies Δ as here)
 *   adam      m ← β₁m + (1−β₁) g ;  v ← β₂v + (1−β₂) g⊙g ;
 *             m̂ = m/(1 − Πβ₁) ;  v̂ = v/(1 − Πβ₂) ;  θ ← θ − α m̂/(δ + √v̂)
 *             β₁ = 0.9, β₂ = 0.999, δ = 1e-8, α = 1e-3. Πβ is the product of the β used in
 *             steps 1..t (= β^t while β is constant; exact when 1-cycle varies β₁).
 *             Evaluated as PyTorch does: θ ← θ − (α/(1−Πβ₁)) · m/(√v/√(1−Πβ₂) + δ)
 *             (the same value up to rounding). Kingma & Ba's "efficient" form and TensorFlow use
 *             α√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + δ̂), i.e. δ not scaled by the bias correction.
 *   adamw     θ ← θ − αλθ, then the adam rule with g = c∇J (decoupled decay, λ default 0.01)
 *             PyTorch writes θ ← θ(1 − αλ): the same.
 *
 * Keys (read by dpt_optim_create; only those that apply to the type are read, and a given key
 * that does not apply is an error naming the keys of the type):
 *   optimizer.type          sgd|momentum|nesterov|adagrad|rmsprop|adadelta|adam|adamw (sgd)
 *   optimizer.lr            α > 0      (1e-2; adam/adamw 1e-3; adadelta 1)
 *   optimizer.momentum      β ∈ [0, 1) (momentum/nesterov 0.9; rmsprop 0 = none)
 *   optimizer.rho           ρ ∈ (0, 1) (rmsprop, adadelta: 0.9)
 *   optimizer.centered      bool       (rmsprop: false)
 *   optimizer.beta1/beta2   ∈ [0, 1)   (adam, adamw: 0.9, 0.999)
 *   optimizer.delta         δ > 0      (adadelta 1e-6, others 1e-8)
 *   optimizer.weight_decay  λ ≥ 0      (0; adamw 0.01)
 *   optimizer.clip_norm     ≥ 0        (0 = no clipping)
 *
 * Arithmetic is in the buffers' dtype (float or double), except the clipping norm, summed in
 * double. The step is a deterministic function of (state, params, grads): identical inputs
 * on every rank give bitwise identical outputs.
 *
 * Ownership: dpt_optim_create allocates the optimizer and its state; dpt_optim_destroy(&o)
 * frees them and sets o to NULL. params and grads are borrowed (the model owns them). The
 * pointers in dpt_state_info are borrowed from the optimizer/schedule and valid until it is
 * destroyed. Nothing here is collective. */
#ifndef DPTRAIN_OPTIM_H
#define DPTRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/config.h"
#include "dptrain/error.h"
#include "dptrain/types.h"

typedef struct dpt_optim dpt_optim;
typedef struct dpt_schedule dpt_schedule;

/* Element type of one named piece of state. */
typedef enum dpt_state_type {
  DPT_STATE_F32 = DPT_F32, /* float array (optimizer state in f32 runs) */
  DPT_STATE_F64 = DPT_F64, /* double array or scalar */
  DPT_STATE_I64 = 2        /* int64_t counter */
} dpt_state_type;

/* One named piece of optimizer or schedule state, for checkpoints: saving copies count
 * elements out of data, restoring copies them back in (data is writable). Restoring every
 * piece of a freshly created object of the same config continues the run bitwise. */
typedef struct dpt_state_info {
  const char *name;    /* "v", "m", "r", "t", "lr", ... (static string) */
  void *data;          /* borrowed; count elements of type */
  size_t count;        /* elements: n for per-parameter arrays, 1 for scalars */
  dpt_state_type type; /* element type */
} dpt_state_info;

/* ---- optimizer ------------------------------------------------------------------------- */

/* Reads the [optimizer] keys (above), checks them (a bad value is an error naming the key),
 * and allocates zeroed state for n parameters of dtype. */
dpt_status dpt_optim_create(dpt_config *cfg, dpt_dtype dtype, size_t n, dpt_optim **out);
void dpt_optim_destroy(dpt_optim **o);

/* Call before computing the gradient of each step. Nesterov: θ is saved and params become
 * θ + βv (the look-ahead); every other type: nothing. Fails (internal error) when called
 * twice without a step in between. */
dpt_status dpt_optim_prepare(dpt_optim *o, void *params);
/* One update of params [n] from grads [n] (both in the optimizer's dtype) by the rule of the
 * type. Nesterov requires dpt_optim_prepare before it (internal error otherwise). */
dpt_status dpt_optim_step(dpt_optim *o, void *params, const void *grads);
/* Undoes dpt_optim_prepare when the step is skipped (non-finite gradient agreed across
 * ranks): Nesterov restores θ; no-op otherwise or when not prepared. */
void dpt_optim_cancel(dpt_optim *o, void *params);

/* The learning rate α used by the next step (set by the schedule before each step). */
void dpt_optim_set_lr(dpt_optim *o, double lr);
double dpt_optim_lr(const dpt_optim *o);
/* optimizer.lr as configured: the schedules' α₀. */
double dpt_optim_base_lr(const dpt_optim *o);
/* Whether the type has a momentum-like coefficient a schedule may cycle: β (momentum,
 * nesterov, rmsprop with momentum > 0) or β₁ (adam, adamw). */
bool dpt_optim_has_momentum(const dpt_optim *o);
/* Sets/returns that coefficient (β or β₁); set is ignored when there is none, get returns 0. */
void dpt_optim_set_momentum(dpt_optim *o, double beta);
double dpt_optim_momentum(const dpt_optim *o);
/* "sgd", "momentum", ... */
const char *dpt_optim_type_name(const dpt_optim *o);
dpt_dtype dpt_optim_dtype(const dpt_optim *o);
size_t dpt_optim_size(const dpt_optim *o);
/* Bytes of the optimizer's per-parameter arrays (its state and Nesterov's look-ahead copy). */
size_t dpt_optim_memory(const dpt_optim *o);
/* Steps taken (t). */
int64_t dpt_optim_steps(const dpt_optim *o);
/* ‖∇J‖₂ of the last step's gradient before clipping (computed only when clip_norm > 0;
 * NaN otherwise). */
double dpt_optim_grad_norm(const dpt_optim *o);

/* State by name: i in [0, dpt_optim_num_states(o)). Read or restore it between steps (after
 * dpt_optim_step or dpt_optim_cancel): after dpt_optim_prepare, Nesterov's params hold the
 * look-ahead θ + βv, not θ. Always "t" (int64) and "lr" (double),
 * then per type: momentum/nesterov "v"; adagrad "r"; rmsprop "r" (+ "g_mean" when centered,
 * + "v" with momentum); adadelta "r", "s"; adam/adamw "m", "v", "beta1_power",
 * "beta2_power" (Πβ₁, Πβ₂, double). Arrays have n elements of the dtype. */
int dpt_optim_num_states(const dpt_optim *o);
void dpt_optim_state(dpt_optim *o, int i, dpt_state_info *info);

/* ---- schedules ------------------------------------------------------------------------- *
 * step: the global step index (0 for the first step of the run, counting across epochs);
 * epoch: 0 for the first epoch. α₀ = optimizer.lr. Closed forms, before warm-up:
 *   constant  α = α₀
 *   linear    α = α₀ + (α_f − α₀) · min(step, T)/T              (lr_final α_f, steps T)
 *   step      α = α₀ · factor^k, k = ⌊epoch/every⌋, or k = #{milestones ≤ epoch}
 *   plateau   α = max(α₀ · factor^k, lr_min), k = reductions so far. At the end of each
 *             epoch (val_loss already reduced over ranks, so every rank decides alike), as
 *             PyTorch's ReduceLROnPlateau: improvement when val < best·(1 − threshold)
 *             (rel) or val < best − threshold (abs); else bad_epochs += 1; during cooldown
 *             bad_epochs is reset to 0 and cooldown counts down; when bad_epochs > patience,
 *             k += 1, cooldown restarts, bad_epochs = 0. (patience = 2: the 3rd epoch in a
 *             row without improvement reduces.)
 *   onecycle  PyTorch's OneCycleLR (cosine, two phases): α_i = max_lr/div_factor,
 *             α_min = α_i/final_div_factor, e₁ = pct_start·total − 1, e₂ = total − 1;
 *             step ≤ e₁: α = cos_anneal(α_i → max_lr, step/e₁), β = cos_anneal(max_m → base_m)
 *             else:      α = cos_anneal(max_lr → α_min, (step−e₁)/(e₂−e₁)), β base_m → max_m
 *             with cos_anneal(a → b, p) = b + (a − b)(1 + cos πp)/2, p clamped to [0, 1]
 *             (after the last step α stays at α_min). β is the optimizer's momentum or β₁,
 *             set only when cycle_momentum and the optimizer has one.
 *   sgdr      cycles of length T_i = T0·T_mult^i steps, starting at S_i = Σ_{j<i} T_j;
 *             α = lr_min + (α₀ − lr_min)(1 + cos(π (step − S_i)/T_i))/2
 * warmup_steps W > 0 (any type): α ← α · (step + 1)/W for step < W.
 *
 * Keys ([schedule]; only those of the type are read; a given key of another type is an error):
 *   schedule.type            constant|linear|step|plateau|onecycle|sgdr (constant)
 *   schedule.warmup_steps    ≥ 0 (0)
 *   linear:   schedule.lr_final ≥ 0 (0), schedule.steps ≥ 1 (required)
 *   step:     schedule.factor ∈ (0, 1) (0.5), schedule.every ≥ 1 epochs or
 *             schedule.milestones = e1, e2, ... (increasing epochs; exactly one of the two)
 *   plateau:  schedule.factor (0.5), schedule.patience ≥ 0 (10), schedule.threshold ≥ 0
 *             (1e-4), schedule.threshold_mode rel|abs (rel), schedule.cooldown ≥ 0 (0),
 *             schedule.lr_min ≥ 0 (0)
 *   onecycle: schedule.total_steps ≥ 2 (required), schedule.max_lr > 0 (optimizer.lr),
 *             schedule.pct_start ∈ (0, 1) (0.3), schedule.div_factor ≥ 1 (25),
 *             schedule.final_div_factor ≥ 1 (1e4), schedule.cycle_momentum (true),
 *             schedule.base_momentum (0.85) ≤ schedule.max_momentum (0.95), both in [0, 1)
 *   sgdr:     schedule.t0 ≥ 1 steps (required), schedule.t_mult ≥ 1 integer (1),
 *             schedule.lr_min ≥ 0 (0)
 *
 * Ownership: dpt_schedule_create allocates, dpt_schedule_destroy(&s) frees and sets NULL. */

dpt_status dpt_schedule_create(dpt_config *cfg, dpt_schedule **out);
void dpt_schedule_destroy(dpt_schedule **s);
/* Sets the optimizer's α (and β/β₁ for onecycle) for this step: call before
 * dpt_optim_prepare. */
void dpt_schedule_apply(dpt_schedule *s, dpt_optim *o, int64_t step, int64_t epoch);
/* End of an epoch: plateau's decision on the reduced validation loss; no-op otherwise. */
void dpt_schedule_end_epoch(dpt_schedule *s, int64_t epoch, double val_loss);
/* The closed forms above, without side effects: α for (step, epoch) given α₀ = base_lr and
 * the current plateau state; the cycled momentum (NaN when the schedule does not cycle it). */
double dpt_schedule_lr(const dpt_schedule *s, double base_lr, int64_t step, int64_t epoch);
double dpt_schedule_momentum(const dpt_schedule *s, int64_t step);
/* "constant", "linear", ... */
const char *dpt_schedule_type_name(const dpt_schedule *s);

/* State by name: "lr" (last α applied, double) always; plateau "best" (double),
 * "bad_epochs", "cooldown_left", "reductions" (int64); sgdr "cycle" (int64, the cycle of the
 * last step applied). Only plateau's counters are needed to continue (the others are
 * functions of step and epoch and are there to be read), but restoring all is harmless. */
int dpt_schedule_num_states(const dpt_schedule *s);
void dpt_schedule_state(dpt_schedule *s, int i, dpt_state_info *info);

#endif

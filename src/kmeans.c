/* kmeans.c — K-means++ seeding and Lloyd iterations over sharded rows, bitwise identical
 * for any number of ranks (see rbf.h for how). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "dptrain/rbf.h"
#include "dptrain/types.h"
#include "rbf_private.h"

/* Rows per GEMM block in the assignment: the [block, k] product stays in cache. */
#define DPT_KMEANS_BLOCK 2048

/* Nearest center of each row of a block. G [nb, k] is scratch, cnorm [k] the ‖μ_j‖².
 * GEMM gives g_j = ‖x‖² − 2x·μ_j + ‖μ_j‖² with |g_j − ‖x − μ_j‖²| and the plain loop's error
 * both below δ_j / 2, δ_j = 16 (d + 4) u (‖x‖² + ‖μ_j‖²) (a generous multiple of the
 * textbook γ_{d+2} bound). Every j with g_j − δ_j ≤ g_min + δ_min may be the plain loop's
 * argmin; with δ_max = tol (‖x‖² + max_j ‖μ_j‖²) all of them lie in g_j ≤ g_min + 2 δ_max, so
 * when a second g is that close the plain-loop distances of those j decide (ties to the
 * lowest index). The result equals the plain loop's argmin for any GEMM blocking. */
static void assign_block(const double *X, int nb, int d, const double *C, int k, const double *cnorm, double *G,
                         int64_t *index, double *dist) {
  // X: [nb, d], C: [k, d], G: [nb, k]
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, k, d, 1.0, X, d, C, d, 0.0, G, k);
  const double tol = 16.0 * (d + 4) * DBL_EPSILON;
  double cmax = 0.0;
  for (int j = 0; j < k; ++j)
    if (cnorm[j] > cmax) cmax = cnorm[j];
  for (int r = 0; r < nb; ++r) {
    const double *x = X + (int64_t)r * d;
    double *g = G + (int64_t)r * k;
    double xx = 0.0;
    for (int j = 0; j < d; ++j) xx += x[j] * x[j];
    /* one pass: smallest and second smallest g */
    int best = 0;
    double g1 = INFINITY, g2 = INFINITY;
    for (int j = 0; j < k; ++j) {
      double v = xx - 2.0 * g[j] + cnorm[j];
      g[j] = v;
      if (v < g1) {
        g2 = g1;
        g1 = v;
        best = j;
      } else if (v < g2) {
        g2 = v;
      }
    }
    /* with δ ≤ δ_max = tol (‖x‖² + max ‖μ‖²) for every j, the candidates are within
     * 2 δ_max of the smallest; usually only the smallest is */
    double bound = g1 + 2.0 * tol * (xx + cmax), bd;
    if (g2 <= bound) {
      best = -1;
      bd = INFINITY;
      for (int j = 0; j < k; ++j)
        if (g[j] <= bound) {
          double t = dpt_rbf_dist2(x, C + (int64_t)j * d, d);
          if (t < bd) {
            bd = t;
            best = j;
          }
        }
    } else {
      bd = dpt_rbf_dist2(x, C + (int64_t)best * d, d);
    }
    if (best < 0) best = 0; /* NaN row (dpt_rbf_data_check refuses them): stay in bounds */
    index[r] = best;
    if (dist) dist[r] = bd;
  }
}

dpt_status dpt_kmeans_assign(const double *X, int64_t n, int64_t d, const double *centers, int64_t k,
                             int64_t *index, double *dist) {
  int di, ki;
  DPT_CALL(dpt_cast_int(d, "kmeans: features", &di));
  DPT_CALL(dpt_cast_int(k, "kmeans: centers", &ki));
  DPT_CHECK(k >= 1, DPT_ERR_INTERNAL, "kmeans: expected at least 1 center");
  if (n == 0) return DPT_OK;
  double *G, *cnorm;
  DPT_CALL(dpt_alloc((size_t)DPT_KMEANS_BLOCK * (size_t)k + (size_t)k, sizeof *G, "kmeans: distance block", &G));
  cnorm = G + (size_t)DPT_KMEANS_BLOCK * (size_t)k;
  for (int64_t j = 0; j < k; ++j) {
    double s = 0.0;
    for (int64_t t = 0; t < d; ++t) s += centers[j * d + t] * centers[j * d + t];
    cnorm[j] = s;
  }
  for (int64_t r0 = 0; r0 < n; r0 += DPT_KMEANS_BLOCK) {
    int nb = (int)(n - r0 < DPT_KMEANS_BLOCK ? n - r0 : DPT_KMEANS_BLOCK);
    assign_block(X + r0 * d, nb, di, centers, ki, cnorm, G, index + r0, dist ? dist + r0 : NULL);
  }
  dpt_free(&G);
  return DPT_OK;
}

/* The global id whose D² weight interval contains target t in the global cumulative sum
 * (in global row order), agreed on every rank. q [count] are this rank's weights. */
static dpt_status pick_weighted(const dpt_comm *c, const dpt_rbf_data *data, const int64_t *q, int64_t local,
                                int64_t offset, int64_t t, int64_t *id) {
  int64_t mine = -1;
  if (t >= offset && t < offset + local) {
    int64_t cum = offset;
    for (int64_t i = 0; i < data->count; ++i) {
      cum += q[i];
      if (cum > t) {
        mine = data->begin + i;
        break;
      }
    }
  }
  DPT_CALL_MPI(MPI_Allreduce(&mine, id, 1, MPI_INT64_T, MPI_MAX, c->comm));
  DPT_CHECK(*id >= 0 && *id < data->n, DPT_ERR_INTERNAL, "kmeans++: weighted draw found no row (t = %lld)",
            (long long)t);
  return DPT_OK;
}

dpt_status dpt_kmeans_seed(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, uint64_t seed, double *centers) {
  const int64_t n = data->count, d = data->d;
  DPT_CHECK(k >= 1 && k <= data->n, DPT_ERR_INPUT, "kmeans++: expected 1 to N = %lld centers, got %lld",
            (long long)data->n, (long long)k);
  dpt_status st = DPT_OK;
  double *d2 = NULL;
  int64_t *q = NULL;
  st = dpt_alloc((size_t)n, sizeof *d2, "kmeans++: D^2", &d2);
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *q, "kmeans++: D^2 weights", &q);
  DPT_TRY(dpt_comm_agree(c, st));
  for (int64_t i = 0; i < n; ++i) d2[i] = INFINITY;
  dpt_rbf_rng rng;
  dpt_rbf_rng_init(&rng, seed, DPT_RBF_STREAM_KMEANS);
  int64_t id = (int64_t)dpt_rbf_rng_below(&rng, (uint64_t)data->n);
  DPT_TRY(dpt_rbf_fetch_rows(c, data, &id, 1, centers));
  for (int64_t j = 1; j < k; ++j) {
    /* D²(x) = min over chosen centers of ‖x − μ‖² (plain loop: the same value on any rank) */
    const double *mu = centers + (j - 1) * d;
    double maxd = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      double t = dpt_rbf_dist2(data->X + i * d, mu, d);
      if (t < d2[i]) d2[i] = t;
      if (d2[i] > maxd) maxd = d2[i];
    }
    if (MPI_Allreduce(MPI_IN_PLACE, &maxd, 1, MPI_DOUBLE, MPI_MAX, c->comm) != MPI_SUCCESS)
      DPT_TRY_CHECK(0, DPT_ERR_MPI, "kmeans++: MPI_Allreduce failed");
    /* Fixed-point weights: the global cumulative sum is exact, so the row drawn does not
     * depend on how rows are split over ranks. */
    double scale = dpt_rbf_fixed_scale(data->n, maxd);
    int64_t local = 0, offset = 0, total = 0;
    for (int64_t i = 0; i < n; ++i) {
      q[i] = dpt_rbf_fixq(d2[i] * scale);
      local += q[i];
    }
    if (MPI_Allreduce(&local, &total, 1, MPI_INT64_T, MPI_SUM, c->comm) != MPI_SUCCESS ||
        MPI_Exscan(&local, &offset, 1, MPI_INT64_T, MPI_SUM, c->comm) != MPI_SUCCESS)
      DPT_TRY_CHECK(0, DPT_ERR_MPI, "kmeans++: MPI_Allreduce/MPI_Exscan failed");
    if (c->rank == 0) offset = 0;
    if (total > 0) {
      int64_t t = (int64_t)dpt_rbf_rng_below(&rng, (uint64_t)total);
      DPT_TRY(pick_weighted(c, data, q, local, offset, t, &id));
    } else {
      /* every row sits on a chosen center: fewer distinct rows than k */
      id = (int64_t)dpt_rbf_rng_below(&rng, (uint64_t)data->n);
    }
    DPT_TRY(dpt_rbf_fetch_rows(c, data, &id, 1, centers + j * d));
  }
done:
  dpt_free(&d2);
  dpt_free(&q);
  return st;
}

/* The row farthest from its center among rows not yet taken (dist < 0 = taken), lowest
 * global id on ties; fetched into out [d] and marked taken. */
static dpt_status take_farthest(const dpt_comm *c, const dpt_rbf_data *data, double *dist, double *out) {
  double best = -1.0;
  int64_t at = -1;
  for (int64_t i = 0; i < data->count; ++i)
    if (dist[i] > best) {
      best = dist[i];
      at = i;
    }
  double gbest = best;
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, &gbest, 1, MPI_DOUBLE, MPI_MAX, c->comm));
  int64_t mine = (at >= 0 && best == gbest) ? data->begin + at : INT64_MAX, id = INT64_MAX;
  DPT_CALL_MPI(MPI_Allreduce(&mine, &id, 1, MPI_INT64_T, MPI_MIN, c->comm));
  DPT_CHECK(id != INT64_MAX, DPT_ERR_INTERNAL, "kmeans: no row left for an empty cluster");
  DPT_CALL(dpt_rbf_fetch_rows(c, data, &id, 1, out));
  if (id >= data->begin && id < data->begin + data->count) dist[id - data->begin] = -1.0;
  return DPT_OK;
}

dpt_status dpt_kmeans_lloyd(const dpt_comm *c, const dpt_rbf_data *data, int64_t k, int64_t max_iters, double tol,
                            double *centers, int64_t *iters, double *inertia) {
  const int64_t n = data->count, d = data->d;
  int kdn;
  DPT_CALL(dpt_cast_int(k * d + k, "kmeans: centers x (features + 1)", &kdn));
  DPT_CHECK(k >= 1 && k <= data->n, DPT_ERR_INPUT, "kmeans: expected 1 to N = %lld centers, got %lld",
            (long long)data->n, (long long)k);
  if (iters) *iters = 0;
  if (inertia) *inertia = 0.0;
  dpt_status st = DPT_OK;
  double *box = NULL, *dist = NULL, *prev = NULL;
  int64_t *index = NULL, *acc = NULL;
  st = dpt_alloc(2 * (size_t)d, sizeof *box, "kmeans: bounding box", &box);
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *dist, "kmeans: distances", &dist);
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *index, "kmeans: assignment", &index);
  if (st == DPT_OK) st = dpt_alloc((size_t)kdn, sizeof *acc, "kmeans: sums", &acc);
  if (st == DPT_OK) st = dpt_alloc((size_t)(k * d), sizeof *prev, "kmeans: previous centers", &prev);
  DPT_TRY(dpt_comm_agree(c, st));
  double *lo = box, *hi = box + d;
  DPT_TRY(dpt_rbf_bounds(c, data, lo, hi));
  /* Fixed point relative to the box middle: |x − mid| ≤ half range ≤ M, scale for 2M. */
  double diag = sqrt(dpt_rbf_dist2(lo, hi, d)), M = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    double h = 0.5 * (hi[j] - lo[j]);
    if (h > M) M = h;
    lo[j] = 0.5 * (lo[j] + hi[j]); /* lo now holds mid */
  }
  const double *mid = lo;
  const double scale = dpt_rbf_fixed_scale(data->n, 2.0 * M);
  for (int64_t it = 1; it <= max_iters; ++it) {
    /* assignment step */
    DPT_TRY(dpt_comm_agree(c, dpt_kmeans_assign(data->X, n, d, centers, k, index, dist)));
    /* update step: μ_j = mid + (Σ_{x in j} round((x − mid) · s)) / s / |j| */
    memset(acc, 0, (size_t)kdn * sizeof *acc);
    int64_t *cnt = acc + k * d;
    double local_inertia = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double *x = data->X + i * d;
      int64_t *sum = acc + index[i] * d;
      for (int64_t j = 0; j < d; ++j) sum[j] += dpt_rbf_fixq((x[j] - mid[j]) * scale);
      cnt[index[i]] += 1;
      local_inertia += dist[i];
    }
    if (MPI_Allreduce(MPI_IN_PLACE, acc, kdn, MPI_INT64_T, MPI_SUM, c->comm) != MPI_SUCCESS ||
        MPI_Allreduce(MPI_IN_PLACE, &local_inertia, 1, MPI_DOUBLE, MPI_SUM, c->comm) != MPI_SUCCESS)
      DPT_TRY_CHECK(0, DPT_ERR_MPI, "kmeans: MPI_Allreduce of the cluster sums failed");
    if (inertia) *inertia = local_inertia;
    memcpy(prev, centers, (size_t)(k * d) * sizeof *prev);
    for (int64_t j = 0; j < k; ++j)
      if (cnt[j] > 0)
        for (int64_t t = 0; t < d; ++t) centers[j * d + t] = mid[t] + (double)acc[j * d + t] / (double)cnt[j] / scale;
    for (int64_t j = 0; j < k; ++j)
      if (cnt[j] == 0) DPT_TRY(take_farthest(c, data, dist, centers + j * d));
    double shift = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      double t = dpt_rbf_dist2(centers + j * d, prev + j * d, d);
      if (t > shift) shift = t;
    }
    if (iters) *iters = it;
    if (!(diag > 0.0) || sqrt(shift) < tol * diag) break;
  }
done:
  dpt_free(&box);
  dpt_free(&dist);
  dpt_free(&prev);
  dpt_free(&index);
  dpt_free(&acc);
  return st;
}

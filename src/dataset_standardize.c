/* dataset_standardize.c — data.standardize: per-feature mean and standard deviation of /X
 * over the whole training set, computed in parallel, applied to every later read.
 *
 * Each rank reads its contiguous shard (dpt_shard_range) in blocks of ~1 Mi values (bounded
 * memory; every rank makes the same number of collective reads, empty ones included) and sums
 * x − s and (x − s)² in double, where s is row 0 (the same shift on every rank): shifting
 * keeps the one-pass variance formula accurate when |mean| ≫ std. One MPI_Allreduce of 2·d
 * doubles gives mean = s + S1/N and the population variance (S2 − S1²/N)/N. A constant
 * feature (std 0) gets std 1, so it maps to 0 instead of dividing by zero. */
#include <math.h>
#include <string.h>

#include "dataset_internal.h"

#define STD_BLOCK_VALUES ((int64_t)1 << 20)

void dpt_dataset_transform(const dpt_dataset *ds, dpt_dtype dtype, void *X, int64_t n) {
  if (ds->scale == 1.0 && !ds->mean) return;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < ds->d; ++j) {
      size_t at = (size_t)i * (size_t)ds->d + (size_t)j;
      double v = dtype == DPT_F64 ? ((double *)X)[at] : (double)((float *)X)[at];
      v *= ds->scale;
      if (ds->mean) v = (v - ds->mean[j]) / ds->std[j];
      if (dtype == DPT_F64)
        ((double *)X)[at] = v;
      else
        ((float *)X)[at] = (float)v;
    }
}

void dpt_dataset_standardization(const dpt_dataset *ds, const double **mean, const double **std) {
  *mean = ds->mean;
  *std = ds->std;
}

dpt_status dpt_dataset_set_standardization(dpt_dataset *ds, const double *mean, const double *std) {
  dpt_free(&ds->mean);
  dpt_free(&ds->std);
  if (!mean || !std) return DPT_OK;
  for (int64_t j = 0; j < ds->d; ++j)
    DPT_CHECK(isfinite(mean[j]) && isfinite(std[j]) && std[j] > 0, DPT_ERR_INPUT,
              "%s: standardization of feature %lld: mean %g, std %g (expected finite, std > 0)", ds->path,
              (long long)j, mean[j], std[j]);
  double *m = NULL, *s = NULL;
  DPT_CALL(dpt_alloc((size_t)ds->d, sizeof *m, "standardization mean", &m));
  dpt_status st = dpt_alloc((size_t)ds->d, sizeof *s, "standardization std", &s);
  if (st != DPT_OK) {
    dpt_free(&m);
    return st;
  }
  memcpy(m, mean, (size_t)ds->d * sizeof *m);
  memcpy(s, std, (size_t)ds->d * sizeof *s);
  ds->mean = m;
  ds->std = s;
  return DPT_OK;
}

dpt_status dpt_dataset_standardize(dpt_dataset *ds) {
  const dpt_comm *c = ds->c;
  dpt_status st = DPT_OK;
  int64_t d = ds->d, begin, count, *rows = NULL, zero = 0;
  double *x = NULL, *shift = NULL, *sums = NULL, *mean = NULL, *sd = NULL;
  dpt_free(&ds->mean); /* statistics of the stored (scaled) values, not of standardized ones */
  dpt_free(&ds->std);
  dpt_shard_range(ds->n, c->size, c->rank, &begin, &count);
  int64_t block = STD_BLOCK_VALUES / d > 0 ? STD_BLOCK_VALUES / d : 1;
  int64_t most = (ds->n + c->size - 1) / c->size; /* the largest shard: sets the round count */
  int64_t rounds = (most + block - 1) / block;
  if (block > count) block = count > 0 ? count : 1;
  st = dpt_alloc((size_t)block, sizeof *rows, "standardize rows", &rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)block * (size_t)d, sizeof *x, "standardize block", &x);
  if (st == DPT_OK) st = dpt_alloc((size_t)d, sizeof *shift, "standardize shift", &shift);
  if (st == DPT_OK) st = dpt_calloc(2 * (size_t)d, sizeof *sums, "standardize sums", &sums);
  if (st == DPT_OK) st = dpt_alloc((size_t)d, sizeof *mean, "standardize mean", &mean);
  if (st == DPT_OK) st = dpt_alloc((size_t)d, sizeof *sd, "standardize std", &sd);
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY(dpt_dataset_read_rows(ds, &zero, 1, DPT_F64, shift, NULL, NULL));
  for (int64_t r = 0, done_rows = 0; r < rounds; ++r) {
    int64_t m = count - done_rows < block ? count - done_rows : block;
    for (int64_t i = 0; i < m; ++i) rows[i] = begin + done_rows + i;
    DPT_TRY(dpt_dataset_read_rows(ds, rows, m, DPT_F64, x, NULL, NULL));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < d; ++j) {
        double v = x[i * d + j] - shift[j];
        sums[j] += v;
        sums[d + j] += v * v;
      }
    done_rows += m;
  }
  DPT_TRY_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums, 2 * (int)d, MPI_DOUBLE, MPI_SUM, c->comm) == MPI_SUCCESS,
                DPT_ERR_MPI, "%s: standardization: MPI_Allreduce of %lld sums failed", ds->path, (long long)(2 * d));
  for (int64_t j = 0; j < d; ++j) {
    double n = (double)ds->n, s1 = sums[j] / n, var = sums[d + j] / n - s1 * s1;
    mean[j] = shift[j] + s1;
    sd[j] = var > 0 ? sqrt(var) : 0;
    if (!(sd[j] > 0)) sd[j] = 1; /* constant feature */
  }
  DPT_TRY(dpt_comm_agree(c, dpt_dataset_set_standardization(ds, mean, sd))); /* an allocation: agreed */
done:
  dpt_free(&rows);
  dpt_free(&x);
  dpt_free(&shift);
  dpt_free(&sums);
  dpt_free(&mean);
  dpt_free(&sd);
  return st;
}

/* loader.c — this rank's part of every global batch (see dataset.h).
 *
 * Sample order: data.shuffle = global: a permutation of all N rows drawn from (seed, epoch)
 * alone (Fisher–Yates driven by splitmix64 of seed and epoch), the same on every rank for any
 * P; the global batch `step` is positions [step·B, min((step+1)·B, N)) of it, and this rank
 * reads the rows of its part (dpt_shard_batch). none: the identity order. local: each rank
 * takes the contiguous shard dpt_shard_range(N, P, r) and permutes it from (seed, epoch,
 * rank): least coordination, but the batches then depend on P (not rank-count invariant).
 * A full batch (B = 0 or B >= N) is read once and kept. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/dataset.h"

typedef enum shuffle_mode { SHUFFLE_GLOBAL, SHUFFLE_LOCAL, SHUFFLE_NONE } shuffle_mode;

struct dpt_loader {
  const dpt_comm *c;   /* borrowed */
  dpt_dataset *ds;     /* borrowed */
  dpt_dtype dtype;
  shuffle_mode mode;
  int64_t batch, micro, steps, cap; /* cap: most rows this rank gets in one batch */
  uint64_t seed;
  int64_t *perm;       /* owned [N] (global/none) or [shard] (local): order of the current epoch */
  int64_t perm_epoch;  /* epoch perm holds, -1 none */
  int64_t shard_begin, shard_count;
  int64_t *rows;       /* owned [cap] */
  void *X, *values;    /* owned [cap, d], [cap, k] */
  int32_t *labels;     /* owned [cap] */
  bool full_cached;    /* full batch already read */
};

static uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Fisher–Yates with a counter-based stream: identical on every platform and rank. */
static void permute(int64_t *p, int64_t n, uint64_t key) {
  uint64_t state = mix(key);
  for (int64_t i = n - 1; i > 0; --i) {
    state = mix(state);
    int64_t j = (int64_t)(state % (uint64_t)(i + 1));
    int64_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
}

static void make_order(dpt_loader *l, int64_t epoch) {
  if (l->perm_epoch == epoch) return;
  int64_t n = l->mode == SHUFFLE_LOCAL ? l->shard_count : dpt_dataset_rows(l->ds);
  int64_t base = l->mode == SHUFFLE_LOCAL ? l->shard_begin : 0;
  for (int64_t i = 0; i < n; ++i) l->perm[i] = base + i;
  if (l->mode == SHUFFLE_GLOBAL) permute(l->perm, n, l->seed * 0x100000001B3ULL ^ mix((uint64_t)epoch));
  if (l->mode == SHUFFLE_LOCAL)
    permute(l->perm, n, l->seed * 0x100000001B3ULL ^ mix((uint64_t)epoch) ^ mix(0xABCDull + (uint64_t)l->c->rank));
  l->perm_epoch = epoch;
}

int64_t dpt_loader_steps_per_epoch(const dpt_loader *l) { return l->steps; }

int64_t dpt_loader_sample(dpt_loader *l, int64_t epoch, int64_t pos) {
  make_order(l, epoch);
  return l->perm[pos];
}

void dpt_loader_destroy(dpt_loader **l) {
  if (!l || !*l) return;
  dpt_free(&(*l)->perm);
  dpt_free(&(*l)->rows);
  dpt_free(&(*l)->X);
  dpt_free(&(*l)->values);
  dpt_free(&(*l)->labels);
  dpt_free(l);
}

dpt_status dpt_loader_create(const dpt_comm *c, dpt_dataset *ds, dpt_config *cfg, dpt_dtype dtype, int64_t batch,
                             int64_t micro, uint64_t seed, dpt_loader **out) {
  static const char *const modes[] = {"global", "local", "none", NULL};
  int mode;
  *out = NULL;
  DPT_CALL(dpt_config_get_choice(cfg, "data.shuffle", modes, "global", &mode));
  dpt_loader *l;
  DPT_CALL(dpt_calloc(1, sizeof *l, "loader", &l));
  int64_t n = dpt_dataset_rows(ds);
  l->c = c;
  l->ds = ds;
  l->dtype = dtype;
  l->mode = (shuffle_mode)mode;
  l->batch = batch <= 0 || batch > n ? n : batch;
  l->micro = micro;
  l->seed = seed;
  l->perm_epoch = -1;
  l->steps = (n + l->batch - 1) / l->batch;
  dpt_shard_range(n, c->size, c->rank, &l->shard_begin, &l->shard_count);
  int64_t begin, count;
  if (l->mode == SHUFFLE_LOCAL) {
    dpt_shard_range(l->batch, c->size, c->rank, &begin, &count);
    l->cap = count;
  } else {
    dpt_shard_batch(l->batch, micro, c->size, c->rank, &begin, &count);
    l->cap = count;
    if (micro > 0) {
      /* exact mode: a short batch can give this rank MORE rows than a full one (fewer
       * micro-batches shift towards lower ranks), so bound by ceil(micro-batches / P) whole
       * micro-batches */
      int64_t n_micro = (l->batch + micro - 1) / micro, most = (n_micro + c->size - 1) / c->size * micro;
      l->cap = most < l->batch ? most : l->batch;
    }
  }
  int64_t d = dpt_dataset_features(ds), k = dpt_dataset_outputs(ds);
  size_t es = dpt_dtype_size(dtype);
  bool regression = dpt_dataset_task(ds) == DPT_TASK_REGRESSION;
  dpt_status st = dpt_alloc((size_t)(l->mode == SHUFFLE_LOCAL ? l->shard_count : n), sizeof(int64_t), "sample order", &l->perm);
  if (st == DPT_OK) st = dpt_alloc((size_t)l->cap, sizeof(int64_t), "batch rows", &l->rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)(l->cap * d), es, "batch X", &l->X);
  if (st == DPT_OK && regression) st = dpt_alloc((size_t)(l->cap * k), es, "batch y", &l->values);
  if (st == DPT_OK && !regression) st = dpt_alloc((size_t)l->cap, sizeof(int32_t), "batch labels", &l->labels);
  st = dpt_comm_agree(c, st);
  if (st != DPT_OK) {
    dpt_loader_destroy(&l);
    return st;
  }
  *out = l;
  return DPT_OK;
}

dpt_status dpt_loader_batch(dpt_loader *l, int64_t epoch, int64_t step, dpt_batch *out) {
  int64_t n = dpt_dataset_rows(l->ds), begin, count, n_global;
  memset(out, 0, sizeof *out);
  DPT_CHECK(step >= 0 && step < l->steps, DPT_ERR_INTERNAL, "loader: step %lld outside [0, %lld)", (long long)step,
            (long long)l->steps);
  int64_t lo = step * l->batch, hi = lo + l->batch < n ? lo + l->batch : n;
  n_global = hi - lo;
  bool full = l->steps == 1;
  if (l->mode == SHUFFLE_LOCAL && !full) {
    /* each rank walks its own shard: its part of step s is [s·b_r, (s+1)·b_r) ∩ shard */
    int64_t b_r, pos, total = 0;
    dpt_shard_range(l->batch, l->c->size, l->c->rank, &pos, &b_r);
    make_order(l, epoch);
    int64_t a = step * b_r, z = a + b_r < l->shard_count ? a + b_r : l->shard_count;
    count = z > a ? z - a : 0;
    for (int64_t i = 0; i < count; ++i) l->rows[i] = l->perm[a + i];
    DPT_CALL_MPI(MPI_Allreduce(&count, &total, 1, MPI_INT64_T, MPI_SUM, l->c->comm));
    int64_t before = 0;
    DPT_CALL_MPI(MPI_Exscan(&count, &before, 1, MPI_INT64_T, MPI_SUM, l->c->comm));
    begin = l->c->rank == 0 ? 0 : before;
    n_global = total;
  } else {
    dpt_shard_batch(n_global, l->micro, l->c->size, l->c->rank, &begin, &count);
    if (full) {
      for (int64_t i = 0; i < count; ++i) l->rows[i] = lo + begin + i; /* full batch: file order */
    } else {
      make_order(l, epoch);
      for (int64_t i = 0; i < count; ++i) l->rows[i] = l->perm[lo + begin + i];
    }
  }
  if (!(full && l->full_cached)) {
    DPT_CALL(dpt_dataset_read_rows(l->ds, l->rows, count, l->dtype, l->X, l->labels, l->values));
    l->full_cached = full;
  }
  out->X = l->X;
  out->y.labels = l->labels;
  out->y.values = l->values;
  out->n = count;
  out->n_global = n_global;
  out->first = begin;
  return DPT_OK;
}

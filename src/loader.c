/* loader.c — this rank's part of every global batch (see dataset.h).
 *
 * Sample order: data.shuffle = global: a permutation of all N rows drawn from (seed, epoch)
 * alone (Fisher–Yates driven by splitmix64 of seed and epoch), the same on every rank for any
 * P; the global batch `step` is positions [step·B, min((step+1)·B, N)) of it, and this rank
 * reads the rows of its part (dpt_shard_batch). none: the identity order. local: each rank
 * takes the contiguous shard dpt_shard_range(N, P, r) and permutes it from (seed, epoch,
 * rank), and serves it spread evenly over the epoch's steps (every row once an epoch; a
 * global batch holds about B rows): least coordination, but the batches then depend on P
 * (not rank-count invariant).
 * A full batch (B = 0 or B >= N) is read once and kept.
 *
 * I/O: a collective HDF5 read per step costs a round of MPI-IO coordination however few rows
 * it moves, and a shuffled epoch scatters each rank's rows over the whole file (one row per
 * run: slow hyperslab unions). So at the first batch of an epoch the loader does the
 * two-phase exchange itself: every rank reads a contiguous part of the file (its shard
 * dpt_shard_range(N, P, r), in rounds of at most a quarter of it so memory stays near its
 * share) and an MPI_Alltoallv sends each row to the rank that computes it this epoch; every
 * rank knows the whole epoch's order, so senders and receivers agree on the row order without
 * sending indices. The rows of each step then sit contiguously in the epoch buffer (no copy
 * per step). I/O per rank is N/P rows read sequentially. With local shuffle the rank's contiguous shard is read once, in the first
 * epoch, and each step gathers its permuted rows from it. */
#include <limits.h>
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
  void *X, *values;    /* owned [cap, d], [cap, k] (batch buffers: full batch, local shuffle) */
  int32_t *labels;     /* owned [cap] */
  bool full_cached;    /* full batch already read */
  /* epoch buffer (global/none shuffle) or shard buffer (local shuffle) */
  int64_t ep_cap;      /* rows it holds at most */
  int64_t ep_epoch;    /* epoch loaded, -1 none (local: shard loaded once, ep_epoch = 0) */
  int64_t *ep_rows;    /* owned [ep_cap] row ids in the order stored */
  void *ep_X, *ep_values; /* owned [ep_cap, d], [ep_cap, k] */
  int32_t *ep_labels;  /* owned [ep_cap] */
  int64_t *step_off;   /* owned [steps + 1]: first epoch-buffer row of each step */
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
  dpt_free(&(*l)->ep_rows);
  dpt_free(&(*l)->ep_X);
  dpt_free(&(*l)->ep_values);
  dpt_free(&(*l)->ep_labels);
  dpt_free(&(*l)->step_off);
  dpt_free(l);
}

dpt_status dpt_loader_create(const dpt_comm *c, dpt_dataset *ds, dpt_config *cfg, dpt_dtype dtype, int64_t batch,
                             int64_t micro, uint64_t seed, dpt_loader **out) {
  static const char *const modes[] = {"global", "local", "none", NULL};
  int mode;
  *out = NULL;
  DPT_CALL(dpt_config_get_choice(cfg, "data.shuffle", modes, "global", &mode));
  bool standardize = false;
  const double *mean, *std;
  DPT_CALL(dpt_config_get_bool(cfg, "data.standardize", false, &standardize));
  dpt_dataset_standardization(ds, &mean, &std);
  if (standardize && !mean) DPT_CALL(dpt_dataset_standardize(ds));
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
    /* its shard spread evenly over the steps: at most ceil(shard / steps) rows a step */
    (void)begin;
    count = (l->shard_count + l->steps - 1) / l->steps;
    l->cap = count;
  } else {
    dpt_shard_batch(l->batch, micro, c->size, c->rank, &begin, &count); /* counts grow with n_global */
    l->cap = count;
  }
  int64_t d = dpt_dataset_features(ds), k = dpt_dataset_outputs(ds);
  size_t es = dpt_dtype_size(dtype);
  bool regression = dpt_dataset_task(ds) == DPT_TASK_REGRESSION;
  dpt_status st = dpt_alloc((size_t)(l->mode == SHUFFLE_LOCAL ? l->shard_count : n), sizeof(int64_t), "sample order", &l->perm);
  if (st == DPT_OK) st = dpt_alloc((size_t)l->cap, sizeof(int64_t), "batch rows", &l->rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)(l->cap * d), es, "batch X", &l->X);
  if (st == DPT_OK && regression) st = dpt_alloc((size_t)(l->cap * k), es, "batch y", &l->values);
  if (st == DPT_OK && !regression) st = dpt_alloc((size_t)l->cap, sizeof(int32_t), "batch labels", &l->labels);
  /* epoch buffer: the sum of this rank's parts over the steps of an epoch (local: its shard) */
  l->ep_epoch = -1;
  if (l->steps > 1) {
    if (l->mode == SHUFFLE_LOCAL) {
      l->ep_cap = l->shard_count;
    } else {
      for (int64_t s = 0; s < l->steps; ++s) {
        int64_t lo = s * l->batch, hi = lo + l->batch < n ? lo + l->batch : n;
        dpt_shard_batch(hi - lo, micro, c->size, c->rank, &begin, &count);
        l->ep_cap += count;
      }
    }
    if (st == DPT_OK) st = dpt_alloc((size_t)l->ep_cap, sizeof(int64_t), "epoch rows", &l->ep_rows);
    if (st == DPT_OK) st = dpt_alloc((size_t)(l->ep_cap * d), es, "epoch X", &l->ep_X);
    if (st == DPT_OK && regression) st = dpt_alloc((size_t)(l->ep_cap * k), es, "epoch y", &l->ep_values);
    if (st == DPT_OK && !regression) st = dpt_alloc((size_t)l->ep_cap, sizeof(int32_t), "epoch labels", &l->ep_labels);
    if (st == DPT_OK) st = dpt_alloc((size_t)l->steps + 1, sizeof(int64_t), "step offsets", &l->step_off);
  }
  st = dpt_comm_agree(c, st);
  if (st != DPT_OK) {
    dpt_loader_destroy(&l);
    return st;
  }
  *out = l;
  return DPT_OK;
}

/* Global/none shuffle: every row this rank computes in `epoch` into the epoch buffer, read as
 * contiguous shards and redistributed with MPI_Alltoallv (see the top of this file). */
static dpt_status load_epoch(dpt_loader *l, int64_t epoch) {
  dpt_status st = DPT_OK;
  const dpt_comm *c = l->c;
  int P = c->size, me = c->rank;
  int64_t n = dpt_dataset_rows(l->ds), d = dpt_dataset_features(l->ds), k = dpt_dataset_outputs(l->ds);
  size_t es = dpt_dtype_size(l->dtype), xrow = (size_t)d * es;
  size_t yrow = l->ep_labels ? sizeof(int32_t) : (size_t)k * es, row_bytes = xrow + yrow;
  int32_t *dest = NULL;   /* [n] rank computing each row this epoch */
  int64_t *pos = NULL;    /* [n] its position in that rank's epoch buffer */
  int64_t *rows = NULL;   /* [chunk] row ids read this round */
  unsigned char *rx = NULL, *ry = NULL, *sendbuf = NULL, *recvbuf = NULL;
  int *scount = NULL, *sdispl = NULL, *rcount = NULL, *rdispl = NULL;
  make_order(l, epoch);
  /* rounds: each rank reads at most `chunk` rows of its shard per round; same round count everywhere */
  int64_t shard_max = (n + P - 1) / P, chunk = (shard_max + 3) / 4;
  if (chunk < 1) chunk = 1;
  if ((double)chunk * (double)row_bytes > 256.0 * 1048576.0) chunk = (int64_t)(256.0 * 1048576.0 / (double)row_bytes) + 1;
  int64_t rounds = (shard_max + chunk - 1) / chunk;
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *dest, "epoch row owners", &dest);
  if (st == DPT_OK) st = dpt_alloc((size_t)n, sizeof *pos, "epoch row positions", &pos);
  if (st == DPT_OK) st = dpt_alloc((size_t)chunk, sizeof *rows, "epoch read rows", &rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)chunk, xrow, "epoch read X", &rx);
  if (st == DPT_OK) st = dpt_alloc((size_t)chunk, yrow, "epoch read y", &ry);
  if (st == DPT_OK) st = dpt_alloc((size_t)chunk, row_bytes, "epoch send buffer", &sendbuf);
  if (st == DPT_OK) st = dpt_alloc((size_t)P, sizeof(int), "send counts", &scount);
  if (st == DPT_OK) st = dpt_alloc((size_t)P, sizeof(int), "send displacements", &sdispl);
  if (st == DPT_OK) st = dpt_alloc((size_t)P, sizeof(int), "receive counts", &rcount);
  if (st == DPT_OK) st = dpt_alloc((size_t)P, sizeof(int), "receive displacements", &rdispl);
  DPT_TRY(dpt_comm_agree(c, st)); /* no rank enters the exchange after a failed allocation */
  for (int64_t s = 0, m = 0; s < l->steps; ++s) {
    int64_t lo = s * l->batch, hi = lo + l->batch < n ? lo + l->batch : n;
    for (int r = 0; r < P; ++r) {
      int64_t begin, count;
      dpt_shard_batch(hi - lo, l->micro, P, r, &begin, &count);
      for (int64_t i = 0; i < count; ++i) {
        int64_t row = l->perm[lo + begin + i];
        dest[row] = r;
        pos[row] = r == me ? m + i : -1;
      }
      if (r == me) {
        l->step_off[s] = m;
        for (int64_t i = 0; i < count; ++i) l->ep_rows[m + i] = l->perm[lo + begin + i];
        m += count;
      }
    }
    if (s + 1 == l->steps) l->step_off[l->steps] = m;
  }
  int64_t shard_begin, shard_count;
  dpt_shard_range(n, P, me, &shard_begin, &shard_count);
  size_t recv_cap = 0;
  for (int64_t round = 0; round < rounds; ++round) {
    /* this round's rows of my shard */
    int64_t a = shard_begin + round * chunk, b = a + chunk;
    if (a > shard_begin + shard_count) a = shard_begin + shard_count;
    if (b > shard_begin + shard_count) b = shard_begin + shard_count;
    for (int64_t r = a; r < b; ++r) rows[r - a] = r;
    DPT_TRY(dpt_dataset_read_rows(l->ds, rows, b - a, l->dtype, rx, l->ep_labels ? (int32_t *)ry : NULL,
                                  l->ep_labels ? NULL : ry));
    /* pack by destination, rows in file order */
    for (int q = 0; q < P; ++q) scount[q] = 0;
    for (int64_t r = a; r < b; ++r) scount[dest[r]] += (int)row_bytes;
    for (int q = 0, off = 0; q < P; ++q) {
      sdispl[q] = off;
      off += scount[q];
    }
    {
      int fill[P > 0 ? P : 1];
      for (int q = 0; q < P; ++q) fill[q] = sdispl[q];
      for (int64_t r = a; r < b; ++r) {
        unsigned char *dst = sendbuf + fill[dest[r]];
        memcpy(dst, rx + (size_t)(r - a) * xrow, xrow);
        memcpy(dst + xrow, ry + (size_t)(r - a) * yrow, yrow);
        fill[dest[r]] += (int)row_bytes;
      }
    }
    /* what I receive from each sender: the rows of its round range that I compute */
    size_t total = 0;
    for (int q = 0; q < P; ++q) {
      int64_t qb, qc;
      dpt_shard_range(n, P, q, &qb, &qc);
      int64_t qa = qb + round * chunk, qz = qa + chunk;
      if (qa > qb + qc) qa = qb + qc;
      if (qz > qb + qc) qz = qb + qc;
      int64_t cnt = 0;
      for (int64_t r = qa; r < qz; ++r) cnt += dest[r] == me;
      rcount[q] = (int)((size_t)cnt * row_bytes);
      rdispl[q] = (int)total;
      total += (size_t)cnt * row_bytes;
    }
    if (total > (size_t)INT_MAX)
      st = dpt_error_set(DPT_ERR_MEMORY, __FILE__, __LINE__, __func__,
                         "loader: %zu bytes to receive in one round exceed MPI's int count", total);
    else if (total > recv_cap) {
      dpt_free(&recvbuf);
      st = dpt_alloc(total, 1, "epoch receive buffer", &recvbuf);
      recv_cap = st == DPT_OK ? total : 0;
    }
    DPT_TRY(dpt_comm_agree(c, st));
    DPT_TRY_CHECK(MPI_Alltoallv(sendbuf, scount, sdispl, MPI_BYTE, recvbuf ? recvbuf : sendbuf, rcount, rdispl, MPI_BYTE,
                                c->comm) == MPI_SUCCESS,
                  DPT_ERR_MPI, "loader: MPI_Alltoallv of epoch %lld failed", (long long)epoch);
    /* unpack: sender by sender, its rows in file order */
    size_t at = 0;
    for (int q = 0; q < P; ++q) {
      int64_t qb, qc;
      dpt_shard_range(n, P, q, &qb, &qc);
      int64_t qa = qb + round * chunk, qz = qa + chunk;
      if (qa > qb + qc) qa = qb + qc;
      if (qz > qb + qc) qz = qb + qc;
      for (int64_t r = qa; r < qz; ++r) {
        if (dest[r] != me) continue;
        int64_t p = pos[r];
        memcpy((unsigned char *)l->ep_X + (size_t)p * xrow, recvbuf + at, xrow);
        if (l->ep_labels)
          memcpy(l->ep_labels + p, recvbuf + at + xrow, yrow);
        else
          memcpy((unsigned char *)l->ep_values + (size_t)p * yrow, recvbuf + at + xrow, yrow);
        at += row_bytes;
      }
    }
  }
  l->ep_epoch = epoch;
done:
  dpt_free(&dest);
  dpt_free(&pos);
  dpt_free(&rows);
  dpt_free(&rx);
  dpt_free(&ry);
  dpt_free(&sendbuf);
  dpt_free(&recvbuf);
  dpt_free(&scount);
  dpt_free(&sdispl);
  dpt_free(&rcount);
  dpt_free(&rdispl);
  return st;
}

/* Local shuffle: the rank's contiguous shard, read once. */
static dpt_status load_shard(dpt_loader *l) {
  for (int64_t i = 0; i < l->shard_count; ++i) l->ep_rows[i] = l->shard_begin + i;
  DPT_CALL(dpt_dataset_read_rows(l->ds, l->ep_rows, l->shard_count, l->dtype, l->ep_X, l->ep_labels, l->ep_values));
  l->ep_epoch = 0;
  return DPT_OK;
}

dpt_status dpt_loader_batch(dpt_loader *l, int64_t epoch, int64_t step, dpt_batch *out) {
  int64_t n = dpt_dataset_rows(l->ds), begin, count, n_global;
  int64_t d = dpt_dataset_features(l->ds), k = dpt_dataset_outputs(l->ds);
  size_t es = dpt_dtype_size(l->dtype);
  memset(out, 0, sizeof *out);
  DPT_CHECK(step >= 0 && step < l->steps, DPT_ERR_INTERNAL, "loader: step %lld outside [0, %lld)", (long long)step,
            (long long)l->steps);
  int64_t lo = step * l->batch, hi = lo + l->batch < n ? lo + l->batch : n;
  n_global = hi - lo;
  if (l->steps == 1) { /* full batch: file order, read once */
    dpt_shard_batch(n_global, l->micro, l->c->size, l->c->rank, &begin, &count);
    if (!l->full_cached) {
      for (int64_t i = 0; i < count; ++i) l->rows[i] = lo + begin + i;
      DPT_CALL(dpt_dataset_read_rows(l->ds, l->rows, count, l->dtype, l->X, l->labels, l->values));
      l->full_cached = true;
    }
    out->X = l->X;
    out->y.labels = l->labels;
    out->y.values = l->values;
  } else if (l->mode == SHUFFLE_LOCAL) {
    /* each rank walks its own shard, spread evenly over the steps (the first shard % steps
     * steps one row more), so every row of the shard is served once an epoch whatever B and P;
     * a global batch then holds about B rows (the sum of the ranks' parts) */
    int64_t total = 0, before = 0;
    if (l->ep_epoch < 0) DPT_CALL(load_shard(l));
    make_order(l, epoch);
    const int64_t base = l->shard_count / l->steps, rem = l->shard_count % l->steps;
    int64_t a = step * base + (step < rem ? step : rem);
    count = base + (step < rem ? 1 : 0);
    for (int64_t i = 0; i < count; ++i) {
      int64_t src = l->perm[a + i] - l->shard_begin;
      memcpy((char *)l->X + (size_t)(i * d) * es, (const char *)l->ep_X + (size_t)(src * d) * es, (size_t)d * es);
      if (l->labels) l->labels[i] = l->ep_labels[src];
      if (l->values)
        memcpy((char *)l->values + (size_t)(i * k) * es, (const char *)l->ep_values + (size_t)(src * k) * es,
               (size_t)k * es);
    }
    DPT_CALL_MPI(MPI_Allreduce(&count, &total, 1, MPI_INT64_T, MPI_SUM, l->c->comm));
    DPT_CALL_MPI(MPI_Exscan(&count, &before, 1, MPI_INT64_T, MPI_SUM, l->c->comm));
    begin = l->c->rank == 0 ? 0 : before;
    n_global = total;
    out->X = l->X;
    out->y.labels = l->labels;
    out->y.values = l->values;
  } else {
    if (l->ep_epoch != epoch) DPT_CALL(load_epoch(l, epoch));
    dpt_shard_batch(n_global, l->micro, l->c->size, l->c->rank, &begin, &count);
    int64_t off = l->step_off[step];
    DPT_CHECK(l->step_off[step + 1] - off == count, DPT_ERR_INTERNAL, "loader: step %lld holds %lld rows, expected %lld",
              (long long)step, (long long)(l->step_off[step + 1] - off), (long long)count);
    out->X = (const char *)l->ep_X + (size_t)(off * d) * es;
    out->y.labels = l->ep_labels ? l->ep_labels + off : NULL;
    out->y.values = l->ep_values ? (const char *)l->ep_values + (size_t)(off * k) * es : NULL;
  }
  out->n = count;
  out->n_global = n_global;
  out->first = begin;
  return DPT_OK;
}

/* loader.c — this rank's part of every global batch (see dataset.h).
 *
 * Sample order: data.shuffle = global: a permutation of all N rows drawn from (seed, epoch)
 * alone (Fisher–Yates driven by splitmix64 of seed and epoch), the same on every rank for any
 * P; the global batch `step` is positions [step·B, min((step+1)·B, N)) of it, and this rank
 * reads the rows of its part (dpt_shard_batch). none: the identity order. local: each rank
 * takes the contiguous shard dpt_shard_range(N, P, r) and permutes it from (seed, epoch,
 * rank): least coordination, but the batches then depend on P (not rank-count invariant).
 * A full batch (B = 0 or B >= N) is read once and kept.
 *
 * I/O: each rank reads its contiguous shard dpt_shard_range(N, P, r) of the file ONCE, in
 * file order, straight into its shard buffer (one sequential collective read, no staging copy)
 * and keeps it: the data set is held once across the ranks, each rank holding its share.
 * A step gathers this rank's rows of the global batch into the batch buffer (a copy the step
 * needs anyway, into a buffer that stays in cache). With global/none shuffle a rank also needs
 * rows held by other ranks: these travel in windows of consecutive steps (sized so a window
 * moves about 1/16 of a shard, at most 64 MiB a rank), one MPI_Alltoallv per window, into a
 * window buffer the steps gather from. Every rank knows the whole epoch's order, so senders
 * and receivers agree on which rows go where, in which order, without sending indices.
 * Per epoch, a rank moves (P−1)/P of its rows through MPI and copies each of its rows once
 * into a batch; the file is read once per run (earlier versions re-read every shard each
 * epoch and scattered every row to its epoch position: 0.53× / 0.44× of the read() rate).
 * With local shuffle no row leaves its rank (the steps walk the rank's permuted shard). */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
  void *X, *values;    /* owned [cap, d], [cap, k]: the batch buffers every step fills */
  int32_t *labels;     /* owned [cap] */
  bool full_cached;    /* full batch already read */
  /* this rank's shard, file order, read once (all modes, when an epoch has several steps) */
  bool shard_loaded;
  int64_t *ep_rows;    /* owned [shard_count] row ids (the read's row list) */
  void *ep_X, *ep_values; /* owned [shard_count, d], [shard_count, k] */
  int32_t *ep_labels;  /* owned [shard_count] */
  /* the current window of steps (global/none shuffle): rows from other ranks */
  int64_t win_steps;   /* steps per window */
  int64_t win_epoch, win_index; /* window held (-1: none) */
  int64_t *win_slot;   /* owned [win_steps * cap]: per row of mine in the window (step order): its slot in
                        * win_buf, or -1 - (its position in my shard) */
  int64_t *win_off;    /* owned [win_steps + 1]: first win_slot entry of each step of the window */
  unsigned char *win_buf;  /* owned [win_cap * row_bytes]: received rows, x then y */
  unsigned char *send_buf; /* owned [win_cap * row_bytes]: rows this rank sends in a window */
  int64_t win_cap;     /* capacity of win_buf and send_buf in rows (grown as needed) */
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
  dpt_free(&(*l)->win_slot);
  dpt_free(&(*l)->win_off);
  dpt_free(&(*l)->win_buf);
  dpt_free(&(*l)->send_buf);
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
  dpt_status st = dpt_calloc(1, sizeof *l, "loader", &l);
  if (st != DPT_OK) return dpt_comm_agree(c, st); /* pairs with the others' agreement below */
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
  if (l->mode == SHUFFLE_LOCAL && l->steps > 1) {
    /* step s takes shard positions [s·S/steps, (s+1)·S/steps): every row once per epoch */
    l->cap = (l->shard_count + l->steps - 1) / l->steps;
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
  st = dpt_alloc((size_t)(l->mode == SHUFFLE_LOCAL ? l->shard_count : n), sizeof(int64_t), "sample order", &l->perm);
  if (st == DPT_OK) st = dpt_alloc((size_t)l->cap, sizeof(int64_t), "batch rows", &l->rows);
  if (st == DPT_OK) st = dpt_alloc((size_t)(l->cap * d), es, "batch X", &l->X);
  if (st == DPT_OK && regression) st = dpt_alloc((size_t)(l->cap * k), es, "batch y", &l->values);
  if (st == DPT_OK && !regression) st = dpt_alloc((size_t)l->cap, sizeof(int32_t), "batch labels", &l->labels);
  /* shard buffer (file order) and, for global/none shuffle, the window of steps */
  l->win_epoch = l->win_index = -1;
  if (l->steps > 1) {
    if (st == DPT_OK) st = dpt_alloc((size_t)l->shard_count, sizeof(int64_t), "shard rows", &l->ep_rows);
    if (st == DPT_OK) st = dpt_alloc((size_t)(l->shard_count * d), es, "shard X", &l->ep_X);
    if (st == DPT_OK && regression) st = dpt_alloc((size_t)(l->shard_count * k), es, "shard y", &l->ep_values);
    if (st == DPT_OK && !regression) st = dpt_alloc((size_t)l->shard_count, sizeof(int32_t), "shard labels", &l->ep_labels);
    if (l->mode != SHUFFLE_LOCAL) {
      size_t row_bytes = (size_t)d * es + (regression ? (size_t)k * es : sizeof(int32_t));
      /* the same on every rank (the windows' exchanges are collective): from N, P and B only */
      int64_t target = n / c->size / 16, most = (int64_t)((64u << 20) / row_bytes); /* rows per rank */
      if (target > most) target = most;
      l->win_steps = target * c->size / l->batch;
      if (l->win_steps < 1) l->win_steps = 1;
      if (l->win_steps > l->steps) l->win_steps = l->steps;
      if (st == DPT_OK) st = dpt_alloc((size_t)(l->win_steps * l->cap), sizeof(int64_t), "window slots", &l->win_slot);
      if (st == DPT_OK) st = dpt_alloc((size_t)l->win_steps + 1, sizeof(int64_t), "window offsets", &l->win_off);
    }
  }
  st = dpt_comm_agree(c, st);
  if (st != DPT_OK) {
    dpt_loader_destroy(&l);
    return st;
  }
  *out = l;
  return DPT_OK;
}

/* The rank holding global row `row`: the inverse of dpt_shard_range(n, P, q). */
static int row_owner(int64_t n, int P, int64_t row) {
  int64_t base = n / P, extra = n % P, cut = extra * (base + 1);
  return row < cut ? (int)(row / (base + 1)) : (int)(extra + (row - cut) / base);
}

/* Global/none shuffle: the rows of steps [w·win_steps, ...) of `epoch` that this rank computes
 * but other ranks hold come to win_buf, with one MPI_Alltoallv (see the top of this file). */
static dpt_status exchange_window(dpt_loader *l, int64_t epoch, int64_t w) {
  dpt_status st = DPT_OK;
  const dpt_comm *c = l->c;
  int P = c->size, me = c->rank;
  int64_t n = dpt_dataset_rows(l->ds), d = dpt_dataset_features(l->ds), k = dpt_dataset_outputs(l->ds);
  size_t es = dpt_dtype_size(l->dtype), xrow = (size_t)d * es;
  size_t yrow = l->ep_labels ? sizeof(int32_t) : (size_t)k * es, row_bytes = xrow + yrow;
  int64_t first = w * l->win_steps, last = first + l->win_steps < l->steps ? first + l->win_steps : l->steps;
  int64_t *scount = NULL, *rcount = NULL, *sfill = NULL, *rfill = NULL; /* [P] rows */
  int *sc = NULL, *sd = NULL, *rc = NULL, *rd = NULL;                   /* [P] bytes for MPI */
  make_order(l, epoch);
  st = dpt_calloc((size_t)P * 4, sizeof(int64_t), "window counts", &scount);
  if (st == DPT_OK) st = dpt_alloc((size_t)P * 4, sizeof(int), "window byte counts", &sc);
  if (st == DPT_OK) {
    rcount = scount + P, sfill = rcount + P, rfill = sfill + P;
    sd = sc + P, rc = sd + P, rd = rc + P;
    /* pass 1: rows each rank sends me and I send each rank, in the window's global order
     * (step, then rank, then position in the rank's part) */
    for (int64_t s = first; s < last; ++s) {
      int64_t lo = s * l->batch, hi = lo + l->batch < n ? lo + l->batch : n;
      for (int r = 0; r < P; ++r) {
        int64_t begin, count;
        dpt_shard_batch(hi - lo, l->micro, P, r, &begin, &count);
        for (int64_t i = 0; i < count; ++i) {
          int o = row_owner(n, P, l->perm[lo + begin + i]);
          if (r == me && o != me) rcount[o]++;
          else if (r != me && o == me) scount[r]++;
        }
      }
    }
    int64_t stot = 0, rtot = 0;
    for (int q = 0; q < P; ++q) sfill[q] = stot, rfill[q] = rtot, stot += scount[q], rtot += rcount[q];
    int64_t need = stot > rtot ? stot : rtot;
    if ((double)need * (double)row_bytes > (double)INT_MAX)
      st = dpt_error_set(DPT_ERR_MEMORY, __FILE__, __LINE__, __func__,
                         "loader: a window of %lld rows exceeds MPI's int count of bytes", (long long)need);
    else if (need > l->win_cap) {
      dpt_free(&l->win_buf);
      dpt_free(&l->send_buf);
      l->win_cap = 0;
      st = dpt_alloc((size_t)need, row_bytes, "window receive buffer", &l->win_buf);
      if (st == DPT_OK) st = dpt_alloc((size_t)need, row_bytes, "window send buffer", &l->send_buf);
      if (st == DPT_OK) l->win_cap = need;
    }
    for (int q = 0; q < P && st == DPT_OK; ++q) {
      sc[q] = (int)(scount[q] * (int64_t)row_bytes), sd[q] = (int)(sfill[q] * (int64_t)row_bytes);
      rc[q] = (int)(rcount[q] * (int64_t)row_bytes), rd[q] = (int)(rfill[q] * (int64_t)row_bytes);
    }
  }
  DPT_TRY(dpt_comm_agree(c, st)); /* no rank enters the exchange after a failed allocation */
  /* pass 2: my rows' slots, and the rows I send packed by destination */
  int64_t m = 0;
  for (int64_t s = first; s < last; ++s) {
    int64_t lo = s * l->batch, hi = lo + l->batch < n ? lo + l->batch : n;
    l->win_off[s - first] = m;
    for (int r = 0; r < P; ++r) {
      int64_t begin, count;
      dpt_shard_batch(hi - lo, l->micro, P, r, &begin, &count);
      for (int64_t i = 0; i < count; ++i) {
        int64_t row = l->perm[lo + begin + i];
        int o = row_owner(n, P, row);
        if (r == me) {
          l->win_slot[m++] = o == me ? -1 - (row - l->shard_begin) : rfill[o]++;
        } else if (o == me) {
          int64_t src = row - l->shard_begin;
          unsigned char *dst = l->send_buf + (size_t)sfill[r]++ * row_bytes;
          memcpy(dst, (const unsigned char *)l->ep_X + (size_t)src * xrow, xrow);
          if (l->ep_labels)
            memcpy(dst + xrow, l->ep_labels + src, yrow);
          else
            memcpy(dst + xrow, (const unsigned char *)l->ep_values + (size_t)src * yrow, yrow);
        }
      }
    }
  }
  l->win_off[last - first] = m;
  DPT_TRY_CHECK(MPI_Alltoallv(l->send_buf, sc, sd, MPI_BYTE, l->win_buf, rc, rd, MPI_BYTE, c->comm) == MPI_SUCCESS,
                DPT_ERR_MPI, "loader: MPI_Alltoallv of epoch %lld, window %lld failed", (long long)epoch,
                (long long)w);
  l->win_epoch = epoch;
  l->win_index = w;
done:
  dpt_free(&scount);
  dpt_free(&sc);
  return st;
}

/* The shard buffer is gathered from row by row in random order: with 4 KiB pages nearly
 * every row misses the TLB (launch/bench-io, P = 1: an epoch of a 1 GiB shard took 0.62–0.69 s,
 * with transparent huge pages 0.25–0.50 s in three runs). Advice only: where the kernel
 * declines (THP off), nothing changes. */
static void advise_huge_pages(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, z = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
  if (p && z > a) (void)madvise((void *)a, z - a, MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

/* This rank's contiguous shard, in file order, read once (collective). */
static dpt_status load_shard(dpt_loader *l) {
  size_t es = dpt_dtype_size(l->dtype);
  advise_huge_pages(l->ep_X, (size_t)(l->shard_count * dpt_dataset_features(l->ds)) * es);
  for (int64_t i = 0; i < l->shard_count; ++i) l->ep_rows[i] = l->shard_begin + i;
  DPT_CALL(dpt_dataset_read_rows(l->ds, l->ep_rows, l->shard_count, l->dtype, l->ep_X, l->ep_labels, l->ep_values));
  l->shard_loaded = true;
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
    /* each rank walks its own shard, split evenly over the steps: its part of step s is
     * [s·S/steps, (s+1)·S/steps) of its permuted shard (S rows), so each row comes once */
    int64_t total = 0, before = 0;
    if (!l->shard_loaded) DPT_CALL(load_shard(l));
    make_order(l, epoch);
    int64_t a = step * l->shard_count / l->steps, z = (step + 1) * l->shard_count / l->steps;
    count = z - a;
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
    if (!l->shard_loaded) DPT_CALL(load_shard(l));
    int64_t w = step / l->win_steps;
    if (l->win_epoch != epoch || l->win_index != w) DPT_CALL(exchange_window(l, epoch, w));
    dpt_shard_batch(n_global, l->micro, l->c->size, l->c->rank, &begin, &count);
    int64_t off = l->win_off[step - w * l->win_steps];
    DPT_CHECK(l->win_off[step - w * l->win_steps + 1] - off == count, DPT_ERR_INTERNAL,
              "loader: step %lld holds %lld rows, expected %lld", (long long)step,
              (long long)(l->win_off[step - w * l->win_steps + 1] - off), (long long)count);
    size_t xrow = (size_t)d * es, yrow = l->labels ? sizeof(int32_t) : (size_t)k * es, row_bytes = xrow + yrow;
    for (int64_t i = 0; i < count; ++i) {
      int64_t slot = l->win_slot[off + i];
      char *xo = (char *)l->X + (size_t)i * xrow;
      if (slot < 0) { /* a row of my shard */
        int64_t src = -1 - slot;
        memcpy(xo, (const char *)l->ep_X + (size_t)src * xrow, xrow);
        if (l->labels) l->labels[i] = l->ep_labels[src];
        if (l->values) memcpy((char *)l->values + (size_t)i * yrow, (const char *)l->ep_values + (size_t)src * yrow, yrow);
      } else { /* received this window */
        const unsigned char *in = l->win_buf + (size_t)slot * row_bytes;
        memcpy(xo, in, xrow);
        if (l->labels) memcpy(l->labels + i, in + xrow, yrow);
        if (l->values) memcpy((char *)l->values + (size_t)i * yrow, in + xrow, yrow);
      }
    }
    out->X = l->X;
    out->y.labels = l->labels;
    out->y.values = l->values;
  }
  out->n = count;
  out->n_global = n_global;
  out->first = begin;
  return DPT_OK;
}

/* reduce.c — fast bucketed reducer, exact binned fixed-point reducer, non-finite agreement,
 * broadcast and sync check (see reduce.h). */
#include "dptrain/reduce.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ANCHOR_EMPTY INT_MIN        /* a block that has seen only zeros */
#define MPI_CHUNK ((size_t)1 << 28) /* elements per MPI call: counts are int */

/* Kinds of local trouble, agreed at finish: code = rank * 4 + kind, lowest wins. */
enum { BAD_NONE = 0, BAD_LOSS = 1, BAD_GRAD = 2, BAD_MISUSE = 3 };

struct dpt_reducer {
  dpt_comm comm; /* copy of the caller's (the MPI_Comm handle is borrowed) */
  dpt_reduce_opts opts;
  dpt_dtype dtype;
  size_t n;
  void *grads; /* borrowed [n] */
  int bad;     /* BAD_* seen on this rank this step (the first) */
  char misuse[160];
  dpt_reducer_stats stats;
  /* fast mode */
  size_t bucket_elems, n_buckets;
  size_t *filled;   /* [n_buckets] elements reported ready this step */
  MPI_Request *req; /* [n_buckets] */
  double *t_start, *t_done; /* [n_buckets] MPI_Wtime when each bucket's allreduce started / was seen complete */
  size_t next;      /* buckets [0, next) are started (ascending order only) */
  size_t done;      /* buckets [0, done) are known complete */
  /* exact mode */
  size_t n_blocks;  /* gradient blocks + 1 (the loss) */
  int *anchor;      /* [n_blocks] exponent A of each block, multiple of W, or ANCHOR_EMPTY */
  int *anchor_all;  /* [n_blocks] agreed anchors */
  int64_t *words;   /* [2 (n + 1) + 1]: (w0, w1) per element, element n is the loss; last: term count */
  int W;            /* bin width in bits this step */
  int64_t terms;    /* declared terms this step (all ranks) */
  int64_t deposited;
};

/* ---------------------------------------------------------------- options */

void dpt_reduce_opts_default(dpt_reduce_opts *o) {
  o->mode = DPT_REDUCE_FAST;
  o->bucket_mb = 4.0;
  o->micro_batch = 32;
  o->accumulate = 1;
  o->check_sync = 0;
  o->on_nonfinite = DPT_NONFINITE_ABORT;
}

dpt_status dpt_reduce_opts_read(dpt_config *cfg, dpt_reduce_opts *o) {
  static const char *const modes[] = {"fast", "exact", NULL};
  static const char *const policies[] = {"abort", "skip", NULL};
  int mode, policy;
  dpt_reduce_opts_default(o);
  DPT_CALL(dpt_config_get_choice(cfg, "parallel.reduce", modes, "fast", &mode));
  DPT_CALL(dpt_config_get_double(cfg, "parallel.bucket_mb", 4.0, 0.0, 1024.0, DPT_RANGE_OPEN_LO, &o->bucket_mb));
  DPT_CALL(dpt_config_get_int(cfg, "parallel.micro_batch", 32, 1, (int64_t)1 << 30, &o->micro_batch));
  DPT_CALL(dpt_config_get_int(cfg, "parallel.accumulate", 1, 1, (int64_t)1 << 20, &o->accumulate));
  DPT_CALL(dpt_config_get_int(cfg, "parallel.check_sync", 0, 0, INT64_MAX, &o->check_sync));
  DPT_CALL(dpt_config_get_choice(cfg, "train.on_nonfinite", policies, "abort", &policy));
  o->mode = (dpt_reduce_mode)mode;
  o->on_nonfinite = (dpt_nonfinite_policy)policy;
  return DPT_OK;
}

/* ---------------------------------------------------------------- helpers */

static void note_bad(dpt_reducer *r, int kind) {
  if (r->bad == BAD_NONE) r->bad = kind;
}

static void note_misuse(dpt_reducer *r, const char *what) {
  if (r->bad == BAD_NONE) snprintf(r->misuse, sizeof r->misuse, "%s", what);
  note_bad(r, BAD_MISUSE);
}

/* True when some element of x[count] is NaN or infinite (exponent bits all ones). */
static bool has_nonfinite(const void *x, dpt_dtype dtype, size_t count) {
  if (dtype == DPT_F32) {
    const uint32_t *b = x;
    uint32_t m = 0;
    for (size_t i = 0; i < count; ++i) {
      uint32_t a = b[i] & 0x7fffffffu;
      m = a > m ? a : m;
    }
    return m >= 0x7f800000u;
  }
  const uint64_t *b = x;
  uint64_t m = 0;
  for (size_t i = 0; i < count; ++i) {
    uint64_t a = b[i] & 0x7fffffffffffffffull;
    m = a > m ? a : m;
  }
  return m >= 0x7ff0000000000000ull;
}

static MPI_Datatype mpi_type(dpt_dtype t) { return t == DPT_F64 ? MPI_DOUBLE : MPI_FLOAT; }

/* In-place allreduce of a long array in chunks of at most MPI_CHUNK elements. */
static dpt_status allreduce_chunked(const dpt_comm *c, void *buf, size_t n, MPI_Datatype type, size_t esize,
                                    MPI_Op op) {
  for (size_t off = 0; off < n; off += MPI_CHUNK) {
    size_t cnt = n - off < MPI_CHUNK ? n - off : MPI_CHUNK;
    DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * esize, (int)cnt, type, op, c->comm));
  }
  return DPT_OK;
}

/* ---------------------------------------------------------------- create / destroy */

dpt_status dpt_reducer_create(const dpt_comm *c, const dpt_reduce_opts *opts, dpt_dtype dtype, size_t n, void *grads,
                              dpt_reducer **out) {
  *out = NULL;
  dpt_status st = DPT_OK;
  dpt_reducer *r = NULL;
  DPT_TRY(dpt_calloc(1, sizeof *r, "gradient reducer", &r));
  r->comm = *c;
  r->opts = *opts;
  r->dtype = dtype;
  r->n = n;
  r->grads = grads;
  size_t es = dpt_dtype_size(dtype);
  double be = floor(opts->bucket_mb * 1048576.0 / (double)es);
  r->bucket_elems = be < 1.0 ? 1 : be > (double)MPI_CHUNK ? MPI_CHUNK : (size_t)be;
  if (opts->mode == DPT_REDUCE_FAST) {
    r->n_buckets = (n + r->bucket_elems - 1) / r->bucket_elems;
    r->stats.buckets = (int64_t)r->n_buckets;
    DPT_TRY(dpt_calloc(r->n_buckets, sizeof *r->filled, "reducer bucket counters", &r->filled));
    DPT_TRY(dpt_alloc(r->n_buckets, sizeof *r->req, "reducer requests", &r->req));
    for (size_t b = 0; b < r->n_buckets; ++b) r->req[b] = MPI_REQUEST_NULL;
    DPT_TRY(dpt_calloc(r->n_buckets, sizeof *r->t_start, "reducer bucket start times", &r->t_start));
    DPT_TRY(dpt_calloc(r->n_buckets, sizeof *r->t_done, "reducer bucket completion times", &r->t_done));
  } else {
    r->n_blocks = (n + DPT_REDUCE_EXACT_BLOCK - 1) / DPT_REDUCE_EXACT_BLOCK + 1;
    DPT_TRY(dpt_alloc(r->n_blocks, sizeof *r->anchor, "exact reducer anchors", &r->anchor));
    DPT_TRY(dpt_alloc(r->n_blocks, sizeof *r->anchor_all, "exact reducer anchors", &r->anchor_all));
    DPT_TRY_CHECK(n < SIZE_MAX / 4, DPT_ERR_MEMORY, "exact reducer: %zu elements overflow", n);
    DPT_TRY(dpt_calloc(2 * (n + 1) + 1, sizeof *r->words, "exact reducer accumulator (16 bytes per parameter)",
                       &r->words));
  }
  *out = r;
  r = NULL;
done:
  dpt_reducer_destroy(&r);
  return st;
}

void dpt_reducer_destroy(dpt_reducer **rp) {
  dpt_reducer *r = rp ? *rp : NULL;
  if (!r) return;
  if (r->req) {
    for (size_t b = 0; b < r->next; ++b)
      if (r->req[b] != MPI_REQUEST_NULL) MPI_Wait(&r->req[b], MPI_STATUS_IGNORE);
  }
  dpt_free(&r->filled);
  dpt_free(&r->req);
  dpt_free(&r->t_start);
  dpt_free(&r->t_done);
  dpt_free(&r->anchor);
  dpt_free(&r->anchor_all);
  dpt_free(&r->words);
  dpt_free(rp);
}

void dpt_reducer_get_stats(const dpt_reducer *r, dpt_reducer_stats *out) { *out = r->stats; }
const dpt_reduce_opts *dpt_reducer_opts(const dpt_reducer *r) { return &r->opts; }
size_t dpt_reducer_bucket_elems(const dpt_reducer *r) { return r->bucket_elems; }

/* ---------------------------------------------------------------- step */

dpt_status dpt_reducer_begin(dpt_reducer *r, int64_t terms) {
  DPT_CHECK(r->next == r->done, DPT_ERR_INTERNAL, "reducer: begin called before the previous step's finish");
  r->bad = BAD_NONE;
  r->misuse[0] = '\0';
  r->next = r->done = 0;
  if (r->opts.mode == DPT_REDUCE_FAST) {
    memset(r->filled, 0, r->n_buckets * sizeof *r->filled);
    return DPT_OK;
  }
  DPT_CHECK(terms >= 1 && terms <= ((int64_t)1 << 30), DPT_ERR_INTERNAL,
            "exact reducer: terms per step: expected 1 .. 2^30, got %lld", (long long)terms);
  int c = 0;
  while (((int64_t)1 << c) < terms) ++c;
  r->W = 62 - c; /* M terms of |piece| < 2^W sum to < 2^62 in every word */
  r->terms = terms;
  r->deposited = 0;
  for (size_t b = 0; b < r->n_blocks; ++b) r->anchor[b] = ANCHOR_EMPTY;
  memset(r->words, 0, (2 * (r->n + 1) + 1) * sizeof *r->words);
  return DPT_OK;
}

static size_t bucket_size(const dpt_reducer *r, size_t b) {
  size_t lo = b * r->bucket_elems, hi = lo + r->bucket_elems;
  return (hi > r->n ? r->n : hi) - lo;
}

static void start_bucket(dpt_reducer *r, size_t b) {
  size_t es = dpt_dtype_size(r->dtype), cnt = bucket_size(r, b);
  char *p = (char *)r->grads + b * r->bucket_elems * es;
  if (has_nonfinite(p, r->dtype, cnt)) note_bad(r, BAD_GRAD);
  if (r->t_start) r->t_start[b] = MPI_Wtime();
  int rc = MPI_Iallreduce(MPI_IN_PLACE, p, (int)cnt, mpi_type(r->dtype), MPI_SUM, r->comm.comm, &r->req[b]);
  /* a failed start leaves the ranks' collective sequences different: no agreement is possible */
  if (rc != MPI_SUCCESS) dpt_comm_abort(&r->comm, "gradient reducer: MPI_Iallreduce of bucket %zu failed (error %d)", b, rc);
}

static void progress(dpt_reducer *r) {
  while (r->done < r->next) {
    int flag = 0;
    int rc = MPI_Test(&r->req[r->done], &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) dpt_comm_abort(&r->comm, "gradient reducer: MPI_Test failed (error %d)", rc);
    if (!flag) break;
    if (r->t_done) r->t_done[r->done] = MPI_Wtime();
    r->done++;
  }
}

void dpt_reducer_ready(void *ctx, size_t offset, size_t count) {
  dpt_reducer *r = ctx;
  if (r->opts.mode != DPT_REDUCE_FAST || count == 0) return;
  if (offset > r->n || count > r->n - offset) {
    char m[160];
    snprintf(m, sizeof m, "gradient reducer: ready range [%zu, %zu) outside the buffer of %zu elements", offset,
             offset + count, r->n);
    note_misuse(r, m);
    return;
  }
  size_t be = r->bucket_elems, end = offset + count;
  for (size_t b = offset / be; b * be < end; ++b) {
    size_t lo = b * be > offset ? b * be : offset, hi = (b + 1) * be < end ? (b + 1) * be : end;
    r->filled[b] += hi - lo;
    if (r->filled[b] > bucket_size(r, b) || b < r->next) {
      char m[160];
      snprintf(m, sizeof m, "gradient reducer: elements of bucket %zu reported ready twice in one step", b);
      note_misuse(r, m);
      return;
    }
  }
  while (r->next < r->n_buckets && r->filled[r->next] == bucket_size(r, r->next)) {
    start_bucket(r, r->next);
    r->next++;
    r->stats.started_in_backward++;
  }
  progress(r);
}

/* ---------------------------------------------------------------- exact mode */

/* Smallest multiple of W that is >= e. */
static int align_up(int e, int W) { return e >= 0 ? (e + W - 1) / W * W : -((-e) / W) * W; }

/* Moves the words of elements [i0, i1) from anchor `from` to the larger anchor `to`. */
static void shift_words(int64_t *w, size_t i0, size_t i1, int from, int to, int W) {
  int d = (to - from) / W;
  for (size_t i = i0; i < i1; ++i) {
    w[2 * i + 1] = d == 1 ? w[2 * i] : 0;
    w[2 * i] = 0;
  }
}

/* Deposits one term per element of [i0, i1): g(i) as double, block anchor A. Each term adds
 * trunc(g / 2^(A-2W)) split exactly as p0 * 2^W + p1 with |p0|, |p1| < 2^W. */
#define DEPOSIT_LOOP(GET)                                                  \
  do {                                                                     \
    double s0 = ldexp(1.0, W - A), s1 = ldexp(1.0, W);                     \
    for (size_t i = i0; i < i1; ++i) {                                     \
      double t = (GET) * s0;   /* |t| < 2^W, exact (power-of-two scale) */ \
      int64_t p0 = (int64_t)t; /* trunc toward zero */                     \
      double rem = (t - (double)p0) * s1; /* exact: the fraction bits of t */ \
      w[2 * i] += p0;                                                      \
      w[2 * i + 1] += (int64_t)rem;                                        \
    }                                                                      \
  } while (0)

static void deposit_block(dpt_reducer *r, size_t b, size_t i0, size_t i1, const void *g, double maxabs,
                          double loss) {
  if (maxabs == 0.0) return;
  int e, W = r->W;
  frexp(maxabs, &e); /* maxabs < 2^e */
  int A = align_up(e, W);
  int64_t *w = r->words;
  if (r->anchor[b] == ANCHOR_EMPTY) {
    r->anchor[b] = A;
  } else if (A > r->anchor[b]) {
    shift_words(w, i0, i1, r->anchor[b], A, W);
    r->anchor[b] = A;
  } else {
    A = r->anchor[b];
  }
  if (!g) {
    DEPOSIT_LOOP(loss);
  } else if (r->dtype == DPT_F32) {
    const float *x = g;
    DEPOSIT_LOOP((double)x[i]);
  } else {
    const double *x = g;
    DEPOSIT_LOOP(x[i]);
  }
}

dpt_status dpt_reducer_deposit(dpt_reducer *r, const void *grads, double loss) {
  if (r->opts.mode != DPT_REDUCE_EXACT) {
    note_misuse(r, "gradient reducer: deposit called in fast mode");
    return DPT_OK;
  }
  if (++r->deposited > r->terms) {
    note_misuse(r, "exact reducer: more terms deposited than declared at begin");
    return DPT_OK;
  }
  if (!isfinite(loss)) {
    note_bad(r, BAD_LOSS);
    return DPT_OK;
  }
  size_t B = DPT_REDUCE_EXACT_BLOCK;
  for (size_t b = 0; b + 1 < r->n_blocks; ++b) {
    size_t i0 = b * B, i1 = i0 + B < r->n ? i0 + B : r->n;
    double m;
    if (r->dtype == DPT_F32) {
      const uint32_t *bits = (const uint32_t *)grads;
      uint32_t mb = 0;
      for (size_t i = i0; i < i1; ++i) {
        uint32_t a = bits[i] & 0x7fffffffu;
        mb = a > mb ? a : mb;
      }
      if (mb >= 0x7f800000u) {
        note_bad(r, BAD_GRAD);
        return DPT_OK;
      }
      float f;
      memcpy(&f, &mb, sizeof f);
      m = f;
    } else {
      const uint64_t *bits = (const uint64_t *)grads;
      uint64_t mb = 0;
      for (size_t i = i0; i < i1; ++i) {
        uint64_t a = bits[i] & 0x7fffffffffffffffull;
        mb = a > mb ? a : mb;
      }
      if (mb >= 0x7ff0000000000000ull) {
        note_bad(r, BAD_GRAD);
        return DPT_OK;
      }
      memcpy(&m, &mb, sizeof m);
    }
    deposit_block(r, b, i0, i1, grads, m, 0.0);
  }
  deposit_block(r, r->n_blocks - 1, r->n, r->n + 1, NULL, fabs(loss), loss);
  return DPT_OK;
}

/* value = (w0 * 2^W + w1) * 2^(A - 2W), rounded once to the destination type. The 128-bit
 * integer V = w0 * 2^W + w1 is exact (|w0|, |w1| < 2^62, W <= 62). V is cut to its top 63
 * bits with a sticky bit for the rest (so the hardware int64 -> float conversion rounds
 * exactly as rounding V itself would: 63 >= 53 + 2 bits), then scaled by a power of two. */
__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;

static int64_t top63(const int64_t *w, int W, int *shift) {
  int128 v = (int128)w[0] * ((int64_t)1 << W) + w[1];
  bool neg = v < 0;
  uint128 a = neg ? -(uint128)v : (uint128)v;
  uint64_t hi = (uint64_t)(a >> 64);
  int bits = hi ? 128 - __builtin_clzll(hi) : (uint64_t)a ? 64 - __builtin_clzll((uint64_t)a) : 0;
  int s = bits > 63 ? bits - 63 : 0;
  uint64_t mag = (uint64_t)(a >> s) | (uint64_t)((a & (((uint128)1 << s) - 1)) != 0);
  *shift = s;
  return neg ? -(int64_t)mag : (int64_t)mag;
}

static double exact_value_f64(const int64_t *w, int A, int W) {
  int s;
  int64_t m = top63(w, W, &s);
  return ldexp((double)m, s + A - 2 * W); /* exact unless the result is subnormal */
}

static float exact_value_f32(const int64_t *w, int A, int W) {
  int s;
  int64_t m = top63(w, W, &s);
  int e = s + A - 2 * W;
  double f = (double)(float)m; /* the one rounding, to 24 bits */
  if (e >= -1022 && e <= 1023) {
    uint64_t bits = (uint64_t)(1023 + e) << 52;
    double p;
    memcpy(&p, &bits, sizeof p);
    return (float)(f * p); /* exact (power of two) unless the float result is subnormal */
  }
  return (float)ldexp(f, e);
}

static dpt_status exact_finish(dpt_reducer *r, double *loss) {
  const dpt_comm *c = &r->comm;
  size_t B = DPT_REDUCE_EXACT_BLOCK, n = r->n;
  memcpy(r->anchor_all, r->anchor, r->n_blocks * sizeof *r->anchor);
  DPT_CALL(allreduce_chunked(c, r->anchor_all, r->n_blocks, MPI_INT, sizeof(int), MPI_MAX));
  for (size_t b = 0; b < r->n_blocks; ++b) {
    size_t i0 = b + 1 < r->n_blocks ? b * B : n;
    size_t i1 = b + 1 < r->n_blocks ? (i0 + B < n ? i0 + B : n) : n + 1;
    if (r->anchor[b] != ANCHOR_EMPTY && r->anchor[b] < r->anchor_all[b])
      shift_words(r->words, i0, i1, r->anchor[b], r->anchor_all[b], r->W);
  }
  size_t nw = 2 * (n + 1) + 1;
  r->words[nw - 1] = r->deposited;
  DPT_CALL(allreduce_chunked(c, r->words, nw, MPI_INT64_T, sizeof(int64_t), MPI_SUM));
  DPT_CHECK(r->words[nw - 1] <= r->terms, DPT_ERR_INTERNAL,
            "exact reducer: %lld terms deposited over all ranks, %lld declared at begin",
            (long long)r->words[nw - 1], (long long)r->terms);
  for (size_t b = 0; b + 1 < r->n_blocks; ++b) {
    size_t i0 = b * B, i1 = i0 + B < n ? i0 + B : n;
    int A = r->anchor_all[b];
    if (r->dtype == DPT_F32) {
      float *g = r->grads;
      for (size_t i = i0; i < i1; ++i) g[i] = A == ANCHOR_EMPTY ? 0.0f : exact_value_f32(r->words + 2 * i, A, r->W);
    } else {
      double *g = r->grads;
      for (size_t i = i0; i < i1; ++i) g[i] = A == ANCHOR_EMPTY ? 0.0 : exact_value_f64(r->words + 2 * i, A, r->W);
    }
  }
  int A = r->anchor_all[r->n_blocks - 1];
  *loss = A == ANCHOR_EMPTY ? 0.0 : exact_value_f64(r->words + 2 * n, A, r->W);
  return DPT_OK;
}

/* ---------------------------------------------------------------- finish */

dpt_status dpt_reducer_finish(dpt_reducer *r, double *loss, bool *skip) {
  double t0 = MPI_Wtime();
  const dpt_comm *c = &r->comm;
  *skip = false;
  if (r->opts.mode == DPT_REDUCE_FAST) {
    if (!isfinite(*loss)) note_bad(r, BAD_LOSS);
    while (r->next < r->n_buckets) {
      start_bucket(r, r->next);
      r->next++;
      r->stats.started_in_finish++;
    }
    for (; r->done < r->next; r->done++) {
      int rc = MPI_Wait(&r->req[r->done], MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) dpt_comm_abort(c, "gradient reducer: MPI_Wait failed (error %d)", rc);
      if (r->t_done) r->t_done[r->done] = MPI_Wtime();
    }
  }
  /* one small allreduce agrees on trouble: the lowest rank that had any, and what */
  int mine = r->bad == BAD_NONE ? INT_MAX : c->rank * 4 + r->bad, first = INT_MAX;
  DPT_CALL_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm));
  if (first == INT_MAX) {
    if (r->opts.mode == DPT_REDUCE_FAST)
      DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, loss, 1, MPI_DOUBLE, MPI_SUM, c->comm));
    else
      DPT_CALL(exact_finish(r, loss));
  }
  r->stats.steps++;
  r->stats.wait_s += MPI_Wtime() - t0;
  if (first == INT_MAX) return DPT_OK;
  int rank = first / 4, kind = first % 4;
  if (kind == BAD_MISUSE) {
    /* the message lives on the failing rank: dpt_comm_agree carries it to everyone */
    dpt_status local = DPT_OK;
    if (r->bad == BAD_MISUSE) local = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__, "%s", r->misuse);
    else if (r->bad != BAD_NONE) local = dpt_error_set(DPT_ERR_NUMERIC, __FILE__, __LINE__, __func__, "non-finite value");
    return dpt_comm_agree(c, local);
  }
  const char *what = kind == BAD_LOSS ? "loss" : "gradient";
  if (r->opts.on_nonfinite == DPT_NONFINITE_SKIP) {
    *skip = true;
    r->stats.skipped++;
    return DPT_OK;
  }
  return dpt_error_set(DPT_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                       "rank %d: non-finite %s (NaN or Inf) in step %lld; train.on_nonfinite = abort "
                       "(set it to skip to drop such steps)",
                       rank, what, (long long)r->stats.steps);
}

/* ---------------------------------------------------------------- broadcast, sync check */

dpt_status dpt_reduce_broadcast(const dpt_comm *c, void *buf, dpt_dtype dtype, size_t n) {
  size_t es = dpt_dtype_size(dtype);
  for (size_t off = 0; off < n; off += MPI_CHUNK) {
    size_t cnt = n - off < MPI_CHUNK ? n - off : MPI_CHUNK;
    DPT_CALL_MPI(MPI_Bcast((char *)buf + off * es, (int)cnt, mpi_type(dtype), 0, c->comm));
  }
  return DPT_OK;
}

uint64_t dpt_reduce_hash(const void *data, size_t bytes) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a offset basis */
  const uint64_t prime = 0x100000001b3ull;
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * prime; /* xor and multiplication by an odd number are bijections */
  }
  for (; i < bytes; ++i) h = (h ^ p[i]) * prime;
  h ^= (uint64_t)bytes;
  return h * prime;
}

dpt_status dpt_reduce_check_sync(const dpt_comm *c, const void *params, dpt_dtype dtype, const dpt_reduce_tensor *t,
                                 int n_tensors, int64_t step) {
  dpt_status st = DPT_OK;
  uint64_t *h = NULL, *all = NULL;
  size_t es = dpt_dtype_size(dtype);
  DPT_TRY(dpt_alloc(2 * (size_t)(n_tensors > 0 ? n_tensors : 0), sizeof *h, "sync-check hashes", &h));
  for (int i = 0; i < n_tensors; ++i) {
    h[i] = dpt_reduce_hash((const char *)params + t[i].offset * es, t[i].count * es);
    h[n_tensors + i] = ~h[i]; /* MIN of ~h is ~(MAX of h): one allreduce gives both */
  }
  int cnt;
  DPT_TRY(dpt_cast_int(2 * (int64_t)n_tensors, "sync-check tensors", &cnt));
  DPT_TRY_CHECK(MPI_Allreduce(MPI_IN_PLACE, h, cnt, MPI_UINT64_T, MPI_MIN, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "sync check: MPI_Allreduce failed");
  int bad = -1;
  for (int i = 0; i < n_tensors && bad < 0; ++i)
    if (h[i] != ~h[n_tensors + i]) bad = i;
  if (bad < 0) goto done;
  /* every rank agrees on `bad` (it came from reduced values): gather that tensor's hashes */
  uint64_t mine = dpt_reduce_hash((const char *)params + t[bad].offset * es, t[bad].count * es);
  DPT_TRY(dpt_alloc((size_t)c->size, sizeof *all, "sync-check hashes", &all));
  DPT_TRY_CHECK(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "sync check: MPI_Allgather failed");
  char ranks[256] = "";
  int listed = 0, differ = 0;
  for (int q = 1; q < c->size; ++q)
    if (all[q] != all[0]) {
      differ++;
      if (listed < 16) {
        size_t len = strlen(ranks);
        snprintf(ranks + len, sizeof ranks - len, "%s%d", listed ? "," : "", q);
        listed++;
      }
    }
  st = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                     "check-sync at step %lld: parameters diverged: tensor '%s' on rank(s) %s%s differs from "
                     "rank 0's copy",
                     (long long)step, t[bad].name, ranks, differ > listed ? ",..." : "");
done:
  dpt_free(&h);
  dpt_free(&all);
  return st;
}

size_t dpt_reducer_bucket_times(const dpt_reducer *r, const double **start, const double **done) {
  *start = r->t_start;
  *done = r->t_done;
  return r->opts.mode == DPT_REDUCE_FAST ? r->n_buckets : 0;
}

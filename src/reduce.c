/* reduce.c — fast bucketed reducer, exact pairwise-tree reducer, non-finite agreement,
 * broadcast and sync check (see reduce.h). */
#include "dptrain/reduce.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPI_CHUNK ((size_t)1 << 28) /* elements per MPI call: counts are int */
#define LEAF_BUDGET ((size_t)128 << 20) /* bytes of node buffers for leaves held unmerged (2 to 16) */

/* Kinds of trouble, agreed at finish (bad_code): misuse first (on any rank), then a rank's
 * own non-finite loss or gradient (the lowest rank), then a non-finite sum of finite terms. */
enum { BAD_NONE = 0, BAD_LOSS = 1, BAD_GRAD = 2, BAD_MISUSE = 3, BAD_SUM = 4 };

/* A node (level L, index i) of the exact-mode tree: it covers leaves [i 2^L, (i+1) 2^L). */
typedef struct exact_node {
  int level;
  int64_t index;
  double loss; /* the node's loss sum */
} exact_node;

/* A node in a list sorted by start (a merge pass's held nodes, finish's gathered nodes):
 * its tree position and where its data lies (g: its position in the unsorted list). */
typedef struct gathered_node {
  int64_t start, end; /* leaves [start, end) */
  int level;
  int64_t index;
  size_t g;
} gathered_node;

/* A merge pass's stack entry: a node made of the sorted parts from position a on. */
typedef struct merge_entry {
  int level;
  int64_t index;
  size_t a;
} merge_entry;

/* One instruction of a node's evaluation program (compile, run_prog): with src >= 0, slot
 * depth = part src, or = fl(part src + part src2) when src2 >= 0 (two sibling parts: the
 * commonest add, done without a trip through a slot); src = -1 adds slot depth + 1 into
 * slot depth. */
typedef struct prog_op {
  int depth;
  int64_t src, src2;
} prog_op;

/* A part of a program: its values, float when isf, else double. */
typedef struct prog_src {
  const void *p;
  bool isf;
} prog_src;

/* Elements per block of a program run: small, so that the slots stay in L1 next to the
 * parts' streams (measured on the bench model: 32 to 64 run a merge of 8 leaves about twice
 * as fast as 512). */
#define PROG_BLOCK 32
#define PROG_DEPTH 32 /* slots: a tree of at most 2^30 leaves needs 31 */

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
  /* Finite terms can sum to an infinity only where some rank holds an element above
   * max / P (max: the dtype's largest finite value): a rank with an element above max / 2P
   * (a factor 2 of margin for the sum's roundings) checks the sum at finish, so every
   * overflow is seen by at least one rank, at no cost in a step without such elements. */
  uint64_t big_bits; /* the bits of max / 2P */
  bool big;          /* this step, some element above it here */
  /* exact mode */
  int64_t terms;      /* M: the tree's leaves this step are 0..M-1 */
  exact_node *nodes;  /* [cap_nodes] the complete tree nodes this rank holds: [0, n_nodes) */
  double **bufs;      /* [cap_nodes] node k's values in bufs[k]; bufs[n_nodes, n_bufs): spares
                         (n doubles each, allocated when first needed, kept across steps) */
  size_t n_nodes, n_bufs, cap_nodes;
  size_t leaf_cap;    /* held leaves that start a merge pass (LEAF_BUDGET) */
  bool leaf_out;      /* a leaf buffer was handed out and not deposited yet */
  gathered_node *part; /* [cap_nodes] merge pass scratch: the held nodes sorted */
  merge_entry *stk;   /* [cap_nodes] merge pass scratch: the stack */
  prog_op *ops;       /* [2 cap_nodes + 1] merge pass scratch: a program */
  prog_src *src;      /* [cap_nodes] merge pass scratch: the parts */
  bool *keep;         /* [cap_nodes] merge pass scratch: nodes kept */
  double *lossv;      /* [cap_nodes] merge pass scratch: the parts' losses */
  double *tmp;        /* [PROG_DEPTH * PROG_BLOCK] a program's slots */
  double *recv;       /* [recv_cap] finish: this rank's slice of every node */
  size_t recv_cap;
  size_t chunk;       /* most elements per block in one MPI call of finish */
  int64_t *meta;      /* [3 cap_nodes] finish: (level, index, loss bits) of each node */
  int *counts, *displs, *scount, *rcount, *zero; /* [P] finish: collective counts */
  MPI_Datatype *stype, *rtype;                    /* [P] finish: datatypes per peer */
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

/* Misuse outranks a non-finite value seen before it: the first misuse is kept. */
static void note_misuse(dpt_reducer *r, const char *what) {
  if (r->bad == BAD_MISUSE) return;
  snprintf(r->misuse, sizeof r->misuse, "%s", what);
  r->bad = BAD_MISUSE;
}

/* The agreement code of trouble `bad` on `rank` of P: the lowest code over the ranks is
 * reported (see the enum); INT64_MAX for none. */
static int64_t bad_code(int bad, int rank, int P) {
  if (bad == BAD_NONE) return INT64_MAX;
  int64_t cls = bad == BAD_MISUSE ? 0 : bad == BAD_SUM ? 2 : 1;
  return (cls * P + rank) * 8 + bad;
}

/* The largest |x[i]| of x[count] as its bit pattern without the sign (IEEE order: a larger
 * pattern is a larger magnitude; infinities and NaNs above every finite value). */
static uint64_t max_abs_bits(const void *x, dpt_dtype dtype, size_t count) {
  if (dtype == DPT_F32) {
    const uint32_t *b = x;
    uint32_t m = 0;
    for (size_t i = 0; i < count; ++i) {
      uint32_t a = b[i] & 0x7fffffffu;
      m = a > m ? a : m;
    }
    return m;
  }
  const uint64_t *b = x;
  uint64_t m = 0;
  for (size_t i = 0; i < count; ++i) {
    uint64_t a = b[i] & 0x7fffffffffffffffull;
    m = a > m ? a : m;
  }
  return m;
}

static uint64_t inf_bits(dpt_dtype dtype) { return dtype == DPT_F32 ? 0x7f800000u : 0x7ff0000000000000ull; }

/* True when some element of x[count] is NaN or infinite (exponent bits all ones). */
static bool has_nonfinite(const void *x, dpt_dtype dtype, size_t count) {
  return max_abs_bits(x, dtype, count) >= inf_bits(dtype);
}

static MPI_Datatype mpi_type(dpt_dtype t) { return t == DPT_F64 ? MPI_DOUBLE : MPI_FLOAT; }

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
    double big = (dtype == DPT_F32 ? FLT_MAX : DBL_MAX) / (2.0 * (double)c->size);
    if (dtype == DPT_F32) {
      float f = (float)big;
      uint32_t u;
      memcpy(&u, &f, sizeof u);
      r->big_bits = u;
    } else {
      memcpy(&r->big_bits, &big, sizeof big);
    }
    r->n_buckets = (n + r->bucket_elems - 1) / r->bucket_elems;
    r->stats.buckets = (int64_t)r->n_buckets;
    DPT_TRY(dpt_calloc(r->n_buckets, sizeof *r->filled, "reducer bucket counters", &r->filled));
    DPT_TRY(dpt_alloc(r->n_buckets, sizeof *r->req, "reducer requests", &r->req));
    for (size_t b = 0; b < r->n_buckets; ++b) r->req[b] = MPI_REQUEST_NULL;
    DPT_TRY(dpt_calloc(r->n_buckets, sizeof *r->t_start, "reducer bucket start times", &r->t_start));
    DPT_TRY(dpt_calloc(r->n_buckets, sizeof *r->t_done, "reducer bucket completion times", &r->t_done));
  } else {
    size_t P = (size_t)c->size;
    DPT_TRY(dpt_alloc(P, sizeof *r->counts, "exact reducer counts", &r->counts));
    DPT_TRY(dpt_alloc(P, sizeof *r->displs, "exact reducer counts", &r->displs));
    DPT_TRY(dpt_alloc(P, sizeof *r->scount, "exact reducer counts", &r->scount));
    DPT_TRY(dpt_alloc(P, sizeof *r->rcount, "exact reducer counts", &r->rcount));
    DPT_TRY(dpt_calloc(P, sizeof *r->zero, "exact reducer counts", &r->zero));
    DPT_TRY(dpt_alloc(P, sizeof *r->stype, "exact reducer datatypes", &r->stype));
    DPT_TRY(dpt_alloc(P, sizeof *r->rtype, "exact reducer datatypes", &r->rtype));
    for (size_t q = 0; q < P; ++q) r->stype[q] = r->rtype[q] = MPI_DATATYPE_NULL;
    DPT_TRY(dpt_alloc(PROG_DEPTH * PROG_BLOCK, sizeof *r->tmp, "exact reducer block slots", &r->tmp));
    size_t fit = LEAF_BUDGET / (n > 0 ? n * sizeof(double) : 1);
    r->leaf_cap = fit < 2 ? 2 : fit > 16 ? 16 : fit;
  }
  r->chunk = MPI_CHUNK;
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
  for (size_t k = 0; k < r->n_bufs; ++k) dpt_free(&r->bufs[k]);
  dpt_free(&r->bufs);
  dpt_free(&r->nodes);
  dpt_free(&r->recv);
  dpt_free(&r->meta);
  dpt_free(&r->part);
  dpt_free(&r->stk);
  dpt_free(&r->ops);
  dpt_free(&r->src);
  dpt_free(&r->keep);
  dpt_free(&r->lossv);
  dpt_free(&r->tmp);
  dpt_free(&r->counts);
  dpt_free(&r->displs);
  dpt_free(&r->scount);
  dpt_free(&r->rcount);
  dpt_free(&r->zero);
  dpt_free(&r->stype);
  dpt_free(&r->rtype);
  dpt_free(rp);
}

void dpt_reducer_get_stats(const dpt_reducer *r, dpt_reducer_stats *out) { *out = r->stats; }
const dpt_reduce_opts *dpt_reducer_opts(const dpt_reducer *r) { return &r->opts; }
size_t dpt_reducer_bucket_elems(const dpt_reducer *r) { return r->bucket_elems; }
size_t dpt_reducer_memory_floor(const dpt_reducer *r) {
  return r->opts.mode == DPT_REDUCE_EXACT ? 2 * r->n * sizeof(double) : 0;
}

/* ---------------------------------------------------------------- step */

dpt_status dpt_reducer_begin(dpt_reducer *r, int64_t terms) {
  DPT_CHECK(r->next == r->done, DPT_ERR_INTERNAL, "reducer: begin called before the previous step's finish");
  r->bad = BAD_NONE;
  r->misuse[0] = '\0';
  r->next = r->done = 0;
  if (r->opts.mode == DPT_REDUCE_FAST) {
    memset(r->filled, 0, r->n_buckets * sizeof *r->filled);
    r->big = false;
    return DPT_OK;
  }
  DPT_CHECK(terms >= 0 && terms <= ((int64_t)1 << 30), DPT_ERR_INTERNAL,
            "exact reducer: terms per step: expected 0 .. 2^30, got %lld", (long long)terms);
  r->terms = terms;
  r->n_nodes = 0;
  r->leaf_out = false;
  return DPT_OK;
}

void dpt_reducer_set_leaf_cap(dpt_reducer *r, size_t leaves) { r->leaf_cap = leaves < 1 ? 1 : leaves; }

void dpt_reducer_set_chunk(dpt_reducer *r, size_t elems) { r->chunk = elems < 1 ? 1 : elems > MPI_CHUNK ? MPI_CHUNK : elems; }

static size_t bucket_size(const dpt_reducer *r, size_t b) {
  size_t lo = b * r->bucket_elems, hi = lo + r->bucket_elems;
  return (hi > r->n ? r->n : hi) - lo;
}

static void start_bucket(dpt_reducer *r, size_t b) {
  size_t es = dpt_dtype_size(r->dtype), cnt = bucket_size(r, b);
  char *p = (char *)r->grads + b * r->bucket_elems * es;
  uint64_t m = max_abs_bits(p, r->dtype, cnt);
  if (m >= inf_bits(r->dtype)) note_bad(r, BAD_GRAD);
  else if (m > r->big_bits) r->big = true;
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

/* The fixed tree over the leaves 0..M-1: node (L, i) covers leaves [i 2^L, (i+1) 2^L); the
 * root is (H, 0) with H = ceil(log2 M). A node's value is fl(left + right) in double when
 * both children hold a deposited leaf, the one child's value when only one does, absent
 * when none does. A rank holds nodes all of whose 2^L leaves it deposited itself (complete
 * nodes); a merge pass replaces held siblings by their parent, recursively: the values are
 * the tree's, whichever rank computed them and in whatever order the leaves came. */

/* Grows the node list (and the merge pass's scratch, sized by it) so that position k has a
 * data buffer of n doubles; k is at most n_bufs. */
static dpt_status ensure_node(dpt_reducer *r, size_t k) {
  if (k < r->n_bufs) return DPT_OK;
  if (k >= r->cap_nodes) {
    /* each array grows to cap; one that fails stays as it was, large enough for the old cap */
    size_t cap = r->cap_nodes ? 2 * r->cap_nodes : 16;
    DPT_CALL(dpt_grow(&r->nodes, cap, sizeof *r->nodes, "exact reducer node list"));
    DPT_CALL(dpt_grow(&r->bufs, cap, sizeof *r->bufs, "exact reducer node list"));
    DPT_CALL(dpt_grow(&r->meta, 3 * cap, sizeof *r->meta, "exact reducer node metadata"));
    DPT_CALL(dpt_grow(&r->part, cap, sizeof *r->part, "exact reducer merge scratch"));
    DPT_CALL(dpt_grow(&r->stk, cap, sizeof *r->stk, "exact reducer merge scratch"));
    DPT_CALL(dpt_grow(&r->ops, 2 * cap + 1, sizeof *r->ops, "exact reducer merge scratch"));
    DPT_CALL(dpt_grow(&r->src, cap, sizeof *r->src, "exact reducer merge scratch"));
    DPT_CALL(dpt_grow(&r->keep, cap, sizeof *r->keep, "exact reducer merge scratch"));
    DPT_CALL(dpt_grow(&r->lossv, cap, sizeof *r->lossv, "exact reducer merge scratch"));
    r->cap_nodes = cap;
  }
  DPT_CALL(dpt_alloc(r->n, sizeof(double), "exact reducer tree node (8 bytes per parameter)", &r->bufs[k]));
  r->n_bufs = k + 1;
  return DPT_OK;
}

/* A node's values are stored in its buffer as float when it is a leaf of an f32 reducer
 * (exact: a leaf is one term), as double otherwise; a float node is widened when it first
 * takes part in an add. */
static bool stored_float(const dpt_reducer *r, int level) { return r->dtype == DPT_F32 && level == 0; }

static int by_start(const void *pa, const void *pb) {
  const gathered_node *a = pa, *b = pb;
  return (a->start > b->start) - (a->start < b->start);
}

/* Compiles the evaluation of node (L, i) from the nodes s[a, b) (sorted by start, disjoint,
 * all inside it) into a program for a stack of blocks: op (d, g) loads part g into slot d,
 * op (d, -1) sets slot d = fl(slot d + slot d + 1), left + right. Appends to ops; the value
 * ends in slot `depth`. Returns false when no part lies in the node (it is absent). */
static bool compile(const gathered_node *s, size_t a, size_t b, int L, int64_t i, int depth, prog_op *ops,
                    size_t *n_ops) {
  if (a == b) return false;
  if (s[a].level == L) { /* disjoint: the only one in range */
    ops[(*n_ops)++] = (prog_op){depth, (int64_t)s[a].g, -1};
    return true;
  }
  int64_t mid = (2 * i + 1) << (L - 1);
  size_t k = a;
  while (k < b && s[k].start < mid) ++k;
  if (k - a == 1 && b - k == 1) { /* each child is one part (its value, whatever its level) */
    ops[(*n_ops)++] = (prog_op){depth, (int64_t)s[a].g, (int64_t)s[k].g};
    return true;
  }
  bool left = compile(s, a, k, L - 1, 2 * i, depth, ops, n_ops);
  bool right = compile(s, k, b, L - 1, 2 * i + 1, depth + left, ops, n_ops);
  if (left && right) ops[(*n_ops)++] = (prog_op){depth, -1, -1};
  return left || right;
}

/* Runs the program over elements [0, len) of its parts src[g] (values from src[g].p on),
 * block by block (PROG_BLOCK elements, the slots in tmp), so that each part is read once
 * and the value written once: as double into res or, when out is not NULL, rounded once to
 * dtype into out (neither one of the parts). No parts: zeros. Returns true when `check`
 * and a value as stored is a NaN or an infinity: then so was a part, or the sum overflowed
 * (the double sum of float parts cannot, but its rounding to float can), as NaN and
 * infinity survive every add. */
static bool run_prog(const prog_op *ops, size_t n_ops, const prog_src *src, size_t len, double *tmp, double *res,
                     void *out, dpt_dtype dtype, bool check) {
  double z = 0.0; /* sum of value * 0: NaN exactly when some value is not finite */
  for (size_t i0 = 0; i0 < len; i0 += PROG_BLOCK) {
    size_t bl = len - i0 < PROG_BLOCK ? len - i0 : PROG_BLOCK;
    if (n_ops == 0) memset(tmp, 0, bl * sizeof *tmp);
    for (size_t k = 0; k < n_ops; ++k) {
      double *t = tmp + (size_t)ops[k].depth * PROG_BLOCK;
      if (ops[k].src < 0) {
        const double *u = t + PROG_BLOCK;
        for (size_t i = 0; i < bl; ++i) t[i] = t[i] + u[i];
        continue;
      }
      const prog_src *p = &src[ops[k].src];
      if (p->isf) {
        const float *x = (const float *)p->p + i0;
        for (size_t i = 0; i < bl; ++i) t[i] = (double)x[i];
      } else {
        memcpy(t, (const double *)p->p + i0, bl * sizeof *t);
      }
      if (ops[k].src2 < 0) continue;
      const prog_src *q = &src[ops[k].src2];
      if (q->isf) {
        const float *y = (const float *)q->p + i0;
        for (size_t i = 0; i < bl; ++i) t[i] = t[i] + (double)y[i];
      } else {
        const double *y = (const double *)q->p + i0;
        for (size_t i = 0; i < bl; ++i) t[i] = t[i] + y[i];
      }
    }
    if (!out)
      memcpy(res + i0, tmp, bl * sizeof *tmp);
    else if (dtype == DPT_F32)
      for (size_t i = 0; i < bl; ++i) ((float *)out)[i0 + i] = (float)tmp[i];
    else
      memcpy((double *)out + i0, tmp, bl * sizeof *tmp);
    if (check && out && dtype == DPT_F32) /* a finite double may round to a float infinity */
      for (size_t i = 0; i < bl; ++i) z += (double)((float *)out)[i0 + i] * 0.0;
    else if (check)
      for (size_t i = 0; i < bl; ++i) z += tmp[i] * 0.0;
  }
  return z != z;
}

/* The program run on one value per part (the losses, loss[g]). */
static double run_prog_scalar(const prog_op *ops, size_t n_ops, const double *loss) {
  double t[PROG_DEPTH + 1];
  for (size_t k = 0; k < n_ops; ++k) {
    if (ops[k].src < 0) t[ops[k].depth] = t[ops[k].depth] + t[ops[k].depth + 1];
    else if (ops[k].src2 < 0) t[ops[k].depth] = loss[ops[k].src];
    else t[ops[k].depth] = loss[ops[k].src] + loss[ops[k].src2];
  }
  return n_ops ? t[0] : 0.0;
}

/* The merge pass: every maximal node made of held siblings replaces them, one at a time.
 * Its parts are read once (run_prog) and its value written into the first spare buffer
 * (dpt_reducer_leaf keeps one); the parts' buffers become spares. The new node's values
 * are checked for NaN and infinity (so every leaf in it is). Allocates nothing (the
 * scratch grows with the node list); without a spare it leaves the nodes as they are
 * (finish takes any disjoint set). */
static void merge_held(dpt_reducer *r) {
  while (r->n_nodes >= 2 && r->n_bufs > r->n_nodes) {
    const size_t h = r->n_nodes;
    gathered_node *s = r->part;
    for (size_t k = 0; k < h; ++k) {
      const exact_node *e = &r->nodes[k];
      s[k] = (gathered_node){.start = e->index << e->level, .end = (e->index + 1) << e->level, .level = e->level,
                             .index = e->index, .g = k};
      r->src[k] = (prog_src){.p = r->bufs[k], .isf = stored_float(r, e->level)};
      r->lossv[k] = e->loss;
    }
    qsort(s, h, sizeof *s, by_start);
    /* in start order, each node joins the stack and merges with its left sibling on top,
     * repeatedly: the stack then holds the maximal nodes, entry e over the parts s[a, next a) */
    size_t top = 0, e = 0, a = 0, b = 0;
    for (size_t k = 0; k < h; ++k) {
      r->stk[top++] = (merge_entry){.level = s[k].level, .index = s[k].index, .a = k};
      while (top >= 2 && r->stk[top - 2].level == r->stk[top - 1].level && r->stk[top - 2].index % 2 == 0 &&
             r->stk[top - 2].index + 1 == r->stk[top - 1].index) {
        r->stk[top - 2].level++;
        r->stk[top - 2].index /= 2;
        top--;
      }
    }
    for (e = 0; e < top; ++e) {
      a = r->stk[e].a;
      b = e + 1 < top ? r->stk[e + 1].a : h;
      if (b - a >= 2) break;
    }
    if (e == top) return; /* nothing to merge */
    size_t n_ops = 0;
    compile(s, a, b, r->stk[e].level, r->stk[e].index, 0, r->ops, &n_ops);
    if (run_prog(r->ops, n_ops, r->src, r->n, r->tmp, r->bufs[h], NULL, r->dtype, true)) note_bad(r, BAD_GRAD);
    r->nodes[h] = (exact_node){.level = r->stk[e].level, .index = r->stk[e].index,
                               .loss = run_prog_scalar(r->ops, n_ops, r->lossv)};
    /* the kept nodes and the new one (at h) move to the front, their order kept; the
     * parts' buffers become spares */
    for (size_t k = 0; k <= h; ++k) r->keep[k] = true;
    for (size_t k = a; k < b; ++k) r->keep[s[k].g] = false;
    size_t w = 0;
    for (size_t k = 0; k <= h; ++k) {
      if (!r->keep[k]) continue;
      exact_node tn = r->nodes[w];
      double *tb = r->bufs[w];
      r->nodes[w] = r->nodes[k];
      r->bufs[w] = r->bufs[k];
      r->nodes[k] = tn;
      r->bufs[k] = tb;
      w++;
    }
    r->n_nodes = w;
  }
}

dpt_status dpt_reducer_leaf(dpt_reducer *r, void **buf) {
  *buf = NULL;
  DPT_CHECK(r->opts.mode == DPT_REDUCE_EXACT, DPT_ERR_INTERNAL, "gradient reducer: leaf buffer asked for in fast mode");
  if (r->leaf_out) note_misuse(r, "exact reducer: a second leaf buffer asked for before the first was deposited");
  DPT_CALL(ensure_node(r, r->n_nodes));
  DPT_CALL(ensure_node(r, r->n_nodes + 1)); /* the merge pass's spare */
  *buf = r->bufs[r->n_nodes];
  memset(*buf, 0, r->n * dpt_dtype_size(r->dtype));
  r->leaf_out = true;
  return DPT_OK;
}

void dpt_reducer_drop_leaf(dpt_reducer *r) { r->leaf_out = false; }

dpt_status dpt_reducer_deposit_leaf(dpt_reducer *r, int64_t j, double loss) {
  char msg[160];
  bool given = r->leaf_out;
  r->leaf_out = false;
  if (r->opts.mode != DPT_REDUCE_EXACT || !given) {
    note_misuse(r, r->opts.mode != DPT_REDUCE_EXACT ? "gradient reducer: deposit called in fast mode"
                                                    : "exact reducer: deposit of a leaf buffer never handed out");
    return DPT_OK;
  }
  if (j < 0 || j >= r->terms) {
    snprintf(msg, sizeof msg, "exact reducer: term %lld outside the %lld terms declared at begin", (long long)j,
             (long long)r->terms);
    note_misuse(r, msg);
    return DPT_OK;
  }
  for (size_t k = 0; k < r->n_nodes; ++k)
    if (j >> r->nodes[k].level == r->nodes[k].index) {
      snprintf(msg, sizeof msg, "exact reducer: term %lld deposited twice on this rank", (long long)j);
      note_misuse(r, msg);
      return DPT_OK;
    }
  /* held even when the step is lost (a non-finite value): finish still checks where the
   * terms were deposited, and merge passes keep the memory bounded */
  if (!isfinite(loss)) note_bad(r, BAD_LOSS);
  r->nodes[r->n_nodes++] = (exact_node){.level = 0, .index = j, .loss = loss};
  size_t leaves = 0; /* held unmerged */
  for (size_t k = 0; k < r->n_nodes; ++k) leaves += r->nodes[k].level == 0;
  if (leaves >= r->leaf_cap) merge_held(r);
  return DPT_OK;
}

dpt_status dpt_reducer_deposit(dpt_reducer *r, int64_t j, const void *grads, double loss) {
  if (r->opts.mode != DPT_REDUCE_EXACT) {
    note_misuse(r, "gradient reducer: deposit called in fast mode");
    return DPT_OK;
  }
  if (r->leaf_out) { /* the copy would overwrite the buffer handed out */
    note_misuse(r, "exact reducer: deposit of a copy while a leaf buffer is out (deposit_leaf it first)");
    return DPT_OK;
  }
  void *buf;
  DPT_CALL(dpt_reducer_leaf(r, &buf));
  memcpy(buf, grads, r->n * dpt_dtype_size(r->dtype));
  DPT_CALL(dpt_reducer_deposit_leaf(r, j, loss));
  return DPT_OK;
}

/* Elements [lo, lo + len) of the n split into P contiguous slices: slice q. */
static void slice_of(size_t n, int P, int q, size_t *lo, size_t *len) {
  int64_t b, c;
  dpt_shard_range((int64_t)n, P, q, &b, &c);
  *lo = (size_t)b;
  *len = (size_t)c;
}

/* An MPI datatype covering count blocks of len elements of types type[] at absolute
 * addresses addr[] (to be used with MPI_BOTTOM); MPI_BYTE with a count 0 when empty. A
 * failure here cannot be agreed (the peers are entering the collective): abort. */
static void blocks_type(int count, size_t len, MPI_Aint *addr, MPI_Datatype *type, int *lens, const dpt_comm *c,
                        MPI_Datatype *t, int *n) {
  if (count == 0 || len == 0) {
    *t = MPI_BYTE;
    *n = 0;
    return;
  }
  *n = 1;
  for (int k = 0; k < count; ++k) lens[k] = (int)len;
  int rc = MPI_Type_create_struct(count, lens, addr, type, t);
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(t);
  if (rc != MPI_SUCCESS) dpt_comm_abort(c, "exact reducer: building an MPI datatype failed (error %d)", rc);
}

static void free_types(MPI_Datatype *t, int P) {
  for (int q = 0; q < P; ++q)
    if (t[q] != MPI_BYTE && t[q] != MPI_DATATYPE_NULL) MPI_Type_free(&t[q]);
}

/* Collective. Evaluates the tree: gathers node positions and losses everywhere, sends slice q
 * of every node to rank q, which evaluates its slice; the slices, rounded once to dtype,
 * are then gathered by every rank into the gradient buffer. check_only: stops after the
 * checks of where the terms were deposited (a step with a non-finite value). *sum_bad: set
 * on every rank when some rank's slice of the root is not finite (the gradient buffer is
 * then not complete). */
static dpt_status exact_finish(dpt_reducer *r, double *loss, bool check_only, bool *sum_bad) {
  const dpt_comm *c = &r->comm;
  const int P = c->size, me = c->rank;
  const size_t n = r->n, chunk = r->chunk;
  dpt_status st = DPT_OK;
  int *counts = r->counts, *displs = r->displs, *scount = r->scount, *rcount = r->rcount, *zero = r->zero;
  int64_t *meta = r->meta, *meta_all = NULL;
  MPI_Datatype *stype = r->stype, *rtype = r->rtype, *btype = NULL;
  gathered_node *s = NULL;
  prog_op *ops = NULL;
  prog_src *src = NULL;
  size_t total = 0, n_ops = 0;
  double *losses = NULL;
  MPI_Aint *addr = NULL;
  int *lens = NULL;
  /* 1. node metadata (level, index, loss bits), tiny: gathered by every rank. Nothing here
   * can fail before the first collective (the buffers are the reducer's). */
  for (size_t k = 0; k < r->n_nodes; ++k) {
    meta[3 * k] = r->nodes[k].level;
    meta[3 * k + 1] = r->nodes[k].index;
    memcpy(&meta[3 * k + 2], &r->nodes[k].loss, sizeof(double));
  }
  int mine = (int)(3 * r->n_nodes); /* nodes <= the terms' 2^30 */
  DPT_TRY_CHECK(MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "exact reducer: MPI_Allgather of node counts failed");
  for (int q = 0; q < P; ++q) {
    displs[q] = (int)(3 * total);
    total += (size_t)counts[q] / 3;
    DPT_TRY_CHECK(3 * total <= INT_MAX, DPT_ERR_INTERNAL, "exact reducer: %zu tree nodes over all ranks", total);
  }
  /* every rank allocates the same sizes; a failure is agreed before the next collective */
  st = dpt_alloc(3 * total, sizeof *meta_all, "exact reducer node metadata", &meta_all);
  if (st == DPT_OK) st = dpt_alloc(total, sizeof *s, "exact reducer node list", &s);
  if (st == DPT_OK) st = dpt_alloc(2 * total + 1, sizeof *ops, "exact reducer plan", &ops);
  if (st == DPT_OK) st = dpt_alloc(total, sizeof *losses, "exact reducer losses", &losses);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *addr, "exact reducer addresses", &addr);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *btype, "exact reducer datatypes", &btype);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *src, "exact reducer node slices", &src);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *lens, "exact reducer block lengths", &lens);
  size_t lo_me, len_me;
  slice_of(n, P, me, &lo_me, &len_me);
  if (st == DPT_OK && total * len_me > r->recv_cap) {
    dpt_free(&r->recv);
    r->recv_cap = 0;
    st = dpt_alloc(total * len_me, sizeof *r->recv, "exact reducer receive buffer (8 bytes per parameter and node / P)",
                   &r->recv);
    if (st == DPT_OK) r->recv_cap = total * len_me;
  }
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY_CHECK(MPI_Allgatherv(meta, mine, MPI_INT64_T, meta_all, counts, displs, MPI_INT64_T, c->comm) ==
                    MPI_SUCCESS,
                DPT_ERR_MPI, "exact reducer: MPI_Allgatherv of node metadata failed");
  /* 2. the same checks and plan on every rank (from the same gathered metadata) */
  for (size_t g = 0; g < total; ++g) {
    int L = (int)meta_all[3 * g];
    s[g] = (gathered_node){.start = meta_all[3 * g + 1] << L, .end = (meta_all[3 * g + 1] + 1) << L, .level = L,
                           .index = meta_all[3 * g + 1], .g = g};
    memcpy(&losses[g], &meta_all[3 * g + 2], sizeof(double));
  }
  qsort(s, total, sizeof *s, by_start);
  for (size_t k = 1; k < total; ++k)
    DPT_TRY_CHECK(s[k].start >= s[k - 1].end, DPT_ERR_INTERNAL,
                  "exact reducer: term %lld deposited on more than one rank", (long long)s[k].start);
  if (check_only) goto done;
  int H = 0;
  while (((int64_t)1 << H) < r->terms) ++H;
  compile(s, 0, total, H, 0, 0, ops, &n_ops);
  *loss = run_prog_scalar(ops, n_ops, losses);
  /* 3. slice q of every node to rank q (chunks of at most `chunk` elements per block);
   * leaves of an f32 reducer travel as float, other nodes as double. src[g]: where node
   * g's slice of this rank lies (as float or double, its own storage): its own buffer for
   * this rank's nodes, else recv + g * len_me. */
  size_t lo_q, len_q, rounds = (n / (size_t)P + 1 + chunk - 1) / chunk, g_me = (size_t)displs[me] / 3;
  for (size_t g = 0; g < total; ++g)
    src[g] = (prog_src){.p = r->recv + g * len_me, .isf = stored_float(r, (int)meta_all[3 * g])};
  for (size_t k = 0; k < r->n_nodes; ++k)
    src[g_me + k].p = src[g_me + k].isf ? (const void *)((const float *)r->bufs[k] + lo_me)
                                        : (const void *)(r->bufs[k] + lo_me);
  for (size_t c0 = 0, rd = 0; rd < rounds; ++rd, c0 += chunk) {
    for (int q = 0; q < P; ++q) {
      slice_of(n, P, q, &lo_q, &len_q);
      size_t len = q == me || len_q <= c0 ? 0 : len_q - c0 < chunk ? len_q - c0 : chunk;
      for (size_t k = 0; len && k < r->n_nodes; ++k) {
        bool f = stored_float(r, r->nodes[k].level);
        MPI_Get_address(f ? (void *)((float *)r->bufs[k] + lo_q + c0) : (void *)(r->bufs[k] + lo_q + c0), &addr[k]);
        btype[k] = f ? MPI_FLOAT : MPI_DOUBLE;
      }
      blocks_type((int)r->n_nodes, len, addr, btype, lens, c, &stype[q], &scount[q]);
      size_t len_r = q == me || len_me <= c0 ? 0 : len_me - c0 < chunk ? len_me - c0 : chunk;
      int cnt_p = counts[q] / 3;
      for (int k = 0; len_r && k < cnt_p; ++k) {
        size_t g = (size_t)displs[q] / 3 + (size_t)k;
        MPI_Get_address(src[g].isf ? (const void *)((const float *)src[g].p + c0)
                                   : (const void *)((const double *)src[g].p + c0),
                        &addr[k]);
        btype[k] = src[g].isf ? MPI_FLOAT : MPI_DOUBLE;
      }
      blocks_type(cnt_p, len_r, addr, btype, lens, c, &rtype[q], &rcount[q]);
    }
    int rc = MPI_Alltoallw(MPI_BOTTOM, scount, zero, stype, MPI_BOTTOM, rcount, zero, rtype, c->comm);
    free_types(stype, P);
    free_types(rtype, P);
    for (int q = 0; q < P; ++q) stype[q] = rtype[q] = MPI_DATATYPE_NULL;
    DPT_TRY_CHECK(rc == MPI_SUCCESS, DPT_ERR_MPI, "exact reducer: MPI_Alltoallw of tree nodes failed (error %d)", rc);
  }
  /* 4. this rank's slice of the root, rounded once to dtype, each node slice read once;
   * finite terms can still sum to an infinity (f64) or round to one (f32): agreed */
  void *out = (char *)r->grads + lo_me * dpt_dtype_size(r->dtype);
  int over = run_prog(ops, n_ops, src, len_me, r->tmp, NULL, out, r->dtype, true), any = 0;
  DPT_TRY_CHECK(MPI_Allreduce(&over, &any, 1, MPI_INT, MPI_MAX, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                "exact reducer: MPI_Allreduce of the sum's check failed");
  *sum_bad = any != 0;
  if (any) goto done;
  /* 5. every rank gets every slice (in dtype) */
  size_t es = dpt_dtype_size(r->dtype);
  MPI_Datatype base = r->dtype == DPT_F32 ? MPI_FLOAT : MPI_DOUBLE;
  for (size_t c0 = 0, rd = 0; rd < rounds; ++rd, c0 += chunk) {
    size_t len_s = len_me > c0 ? (len_me - c0 < chunk ? len_me - c0 : chunk) : 0;
    MPI_Aint a0 = 0;
    if (len_s) MPI_Get_address((char *)r->grads + (lo_me + c0) * es, &a0);
    for (int q = 0; q < P; ++q) {
      slice_of(n, P, q, &lo_q, &len_q);
      size_t len = len_q > c0 ? (len_q - c0 < chunk ? len_q - c0 : chunk) : 0;
      blocks_type(q == me ? 0 : 1, len_s, &a0, &base, lens, c, &stype[q], &scount[q]);
      if (len) MPI_Get_address((char *)r->grads + (lo_q + c0) * es, &addr[0]);
      blocks_type(q == me ? 0 : 1, len, addr, &base, lens, c, &rtype[q], &rcount[q]);
    }
    int rc = MPI_Alltoallw(MPI_BOTTOM, scount, zero, stype, MPI_BOTTOM, rcount, zero, rtype, c->comm);
    free_types(stype, P);
    free_types(rtype, P);
    for (int q = 0; q < P; ++q) stype[q] = rtype[q] = MPI_DATATYPE_NULL;
    DPT_TRY_CHECK(rc == MPI_SUCCESS, DPT_ERR_MPI, "exact reducer: MPI_Alltoallw of the sum failed (error %d)", rc);
  }
done:
  free_types(stype, P);
  free_types(rtype, P);
  for (int q = 0; q < P; ++q) stype[q] = rtype[q] = MPI_DATATYPE_NULL;
  dpt_free(&meta_all);
  dpt_free(&s);
  dpt_free(&ops);
  dpt_free(&losses);
  dpt_free(&addr);
  dpt_free(&lens);
  dpt_free(&btype);
  dpt_free(&src);
  return st;
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
    if (r->bad == BAD_NONE && r->big && has_nonfinite(r->grads, r->dtype, r->n))
      note_bad(r, BAD_SUM); /* finite terms whose sum overflows */
  } else {
    if (r->leaf_out) note_misuse(r, "exact reducer: a leaf buffer was handed out and never deposited");
    r->leaf_out = false;
    if (r->bad == BAD_NONE) {
      /* the last merges; leaves left unmerged are checked here (merged nodes were when made) */
      merge_held(r);
      for (size_t k = 0; k < r->n_nodes && r->bad == BAD_NONE; ++k)
        if (r->nodes[k].level == 0 && has_nonfinite(r->bufs[k], r->dtype, r->n)) note_bad(r, BAD_GRAD);
    }
  }
  /* one small allreduce agrees on trouble (the lowest code, bad_code) and checks that every
   * rank declared the same number of terms at begin */
  int64_t terms = r->opts.mode == DPT_REDUCE_EXACT ? r->terms : 0;
  int64_t v[3] = {bad_code(r->bad, c->rank, c->size), terms, -terms};
  DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_INT64_T, MPI_MIN, c->comm));
  r->stats.steps++;
  DPT_CHECK(v[1] == -v[2], DPT_ERR_INTERNAL,
            "exact reducer: the ranks declared different numbers of terms at begin (%lld to %lld): M must be the "
            "same on every rank", (long long)v[1], (long long)-v[2]);
  int64_t first = v[0];
  bool sum_bad = false;
  if (first == INT64_MAX && r->opts.mode == DPT_REDUCE_FAST)
    DPT_CALL_MPI(MPI_Allreduce(MPI_IN_PLACE, loss, 1, MPI_DOUBLE, MPI_SUM, c->comm));
  else if (first == INT64_MAX)
    DPT_CALL(exact_finish(r, loss, false, &sum_bad));
  else if (r->opts.mode == DPT_REDUCE_EXACT && first % 8 != BAD_MISUSE)
    DPT_CALL(exact_finish(r, loss, true, &sum_bad)); /* a term on two ranks outranks the non-finite value */
  if (sum_bad) first = bad_code(BAD_SUM, 0, c->size);
  r->stats.wait_s += MPI_Wtime() - t0;
  if (first == INT64_MAX) return DPT_OK;
  int rank = (int)(first / 8 % c->size), kind = (int)(first % 8);
  if (kind == BAD_MISUSE) {
    /* the message lives on the ranks that misused: dpt_comm_agree carries the lowest's */
    dpt_status local = DPT_OK;
    if (r->bad == BAD_MISUSE) local = dpt_error_set(DPT_ERR_INTERNAL, __FILE__, __LINE__, __func__, "%s", r->misuse);
    return dpt_comm_agree(c, local);
  }
  if (r->opts.on_nonfinite == DPT_NONFINITE_SKIP) {
    *skip = true;
    r->stats.skipped++;
    return DPT_OK;
  }
  if (kind == BAD_SUM)
    return dpt_error_set(DPT_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                         "non-finite gradient sum in step %lld: every rank's terms are finite, their sum over ranks "
                         "overflows; train.on_nonfinite = abort (set it to skip to drop such steps)",
                         (long long)r->stats.steps);
  return dpt_error_set(DPT_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                       "rank %d: non-finite %s (NaN or Inf) in step %lld; train.on_nonfinite = abort "
                       "(set it to skip to drop such steps)",
                       rank, kind == BAD_LOSS ? "loss" : "gradient", (long long)r->stats.steps);
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
  DPT_TRY(dpt_comm_agree(c, dpt_alloc(2 * (size_t)(n_tensors > 0 ? n_tensors : 0), sizeof *h, "sync-check hashes", &h)));
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
  DPT_TRY(dpt_comm_agree(c, dpt_alloc((size_t)c->size, sizeof *all, "sync-check hashes", &all)));
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

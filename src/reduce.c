/* reduce.c — fast bucketed reducer, exact pairwise-tree reducer, non-finite agreement,
 * broadcast and sync check (see reduce.h). */
#include "dptrain/reduce.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPI_CHUNK ((size_t)1 << 28) /* elements per MPI call: counts are int */

/* Kinds of local trouble, agreed at finish: code = rank * 4 + kind, lowest wins. */
enum { BAD_NONE = 0, BAD_LOSS = 1, BAD_GRAD = 2, BAD_MISUSE = 3 };

/* A node (level L, index i) of the exact-mode tree: it covers leaves [i 2^L, (i+1) 2^L). */
typedef struct exact_node {
  int level;
  int64_t index;
  double loss; /* the node's loss sum */
} exact_node;

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
  int64_t terms;      /* M: the tree's leaves this step are 0..M-1 */
  exact_node *nodes;  /* [cap_nodes] the complete tree nodes this rank holds: [0, n_nodes) */
  double **bufs;      /* [cap_nodes] node k's values in bufs[k]; bufs[n_nodes, n_bufs): spares
                         (n doubles each, allocated when first needed, kept across steps) */
  size_t n_nodes, n_bufs, cap_nodes;
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
    size_t P = (size_t)c->size;
    DPT_TRY(dpt_alloc(P, sizeof *r->counts, "exact reducer counts", &r->counts));
    DPT_TRY(dpt_alloc(P, sizeof *r->displs, "exact reducer counts", &r->displs));
    DPT_TRY(dpt_alloc(P, sizeof *r->scount, "exact reducer counts", &r->scount));
    DPT_TRY(dpt_alloc(P, sizeof *r->rcount, "exact reducer counts", &r->rcount));
    DPT_TRY(dpt_calloc(P, sizeof *r->zero, "exact reducer counts", &r->zero));
    DPT_TRY(dpt_alloc(P, sizeof *r->stype, "exact reducer datatypes", &r->stype));
    DPT_TRY(dpt_alloc(P, sizeof *r->rtype, "exact reducer datatypes", &r->rtype));
    for (size_t q = 0; q < P; ++q) r->stype[q] = r->rtype[q] = MPI_DATATYPE_NULL;
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
  DPT_CHECK(terms >= 0 && terms <= ((int64_t)1 << 30), DPT_ERR_INTERNAL,
            "exact reducer: terms per step: expected 0 .. 2^30, got %lld", (long long)terms);
  r->terms = terms;
  r->n_nodes = 0;
  return DPT_OK;
}

void dpt_reducer_set_chunk(dpt_reducer *r, size_t elems) { r->chunk = elems < 1 ? 1 : elems > MPI_CHUNK ? MPI_CHUNK : elems; }

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

/* The fixed tree over the leaves 0..M-1: node (L, i) covers leaves [i 2^L, (i+1) 2^L); the
 * root is (H, 0) with H = ceil(log2 M). A node's value is fl(left + right) in double when
 * both children hold a deposited leaf, the one child's value when only one does, absent
 * when none does. A rank holds nodes all of whose 2^L leaves it deposited itself (complete
 * nodes), merging two when they are siblings: their values are the tree's, whichever rank
 * computed them and in whatever order the leaves came. */

/* Grows the node list so that position k has a data buffer of n doubles. */
static dpt_status ensure_node(dpt_reducer *r, size_t k) {
  if (k < r->n_bufs) return DPT_OK;
  if (k >= r->cap_nodes) {
    size_t cap = r->cap_nodes ? 2 * r->cap_nodes : 16;
    exact_node *nodes = NULL;
    double **bufs = NULL;
    int64_t *meta = NULL;
    dpt_status st = dpt_alloc(cap, sizeof *nodes, "exact reducer node list", &nodes);
    if (st == DPT_OK) st = dpt_calloc(cap, sizeof *bufs, "exact reducer node list", &bufs);
    if (st == DPT_OK) st = dpt_alloc(3 * cap, sizeof *meta, "exact reducer node metadata", &meta);
    if (st != DPT_OK) {
      dpt_free(&nodes);
      dpt_free(&bufs);
      DPT_CALL(st);
    }
    if (r->n_nodes) memcpy(nodes, r->nodes, r->n_nodes * sizeof *nodes);
    if (r->n_bufs) memcpy(bufs, r->bufs, r->n_bufs * sizeof *bufs);
    dpt_free(&r->nodes);
    dpt_free(&r->bufs);
    dpt_free(&r->meta);
    r->nodes = nodes;
    r->bufs = bufs;
    r->meta = meta;
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

/* acc[i] = left[i] + acc[i] for the elements [i0, i0 + len) of a node stored as float or
 * double. */
static void add_left(double *acc, const void *left, bool left_f, size_t i0, size_t len) {
  if (left_f) {
    const float *x = (const float *)left + i0;
    for (size_t i = 0; i < len; ++i) acc[i] = (double)x[i] + acc[i];
  } else {
    const double *x = (const double *)left + i0;
    for (size_t i = 0; i < len; ++i) acc[i] = x[i] + acc[i];
  }
}

/* Adds leaf g (in dtype) and merges it with the m held nodes part[0..m), the siblings on
 * its path upwards (lowest first), in one pass: per element
 *   acc = g[i]; acc = node_part[0][i] + acc; ...; dst[i] = acc
 * (each step fl(sibling + node) in double: the tree's fl(left + right), addition being
 * commutative); with m = 0 dst receives the leaf as it is stored. dst is not one of the
 * nodes read. Returns true when g holds a NaN or an infinity (dst is then garbage). */
#define LEAF_BLOCK 512
static bool push_leaf(dpt_reducer *r, const void *g, const size_t *part, size_t m, void *dst) {
  double acc[LEAF_BLOCK];
  bool bad = false;
  const size_t n = r->n;
  for (size_t i0 = 0; i0 < n && !bad; i0 += LEAF_BLOCK) {
    size_t len = n - i0 < LEAF_BLOCK ? n - i0 : LEAF_BLOCK;
    if (r->dtype == DPT_F32) {
      const uint32_t *bits = (const uint32_t *)g + i0;
      uint32_t w = 0; /* largest |bits|: non-finite when the exponent is all ones */
      for (size_t i = 0; i < len; ++i) {
        uint32_t a = bits[i] & 0x7fffffffu;
        w = a > w ? a : w;
      }
      bad = w >= 0x7f800000u;
      if (m == 0) {
        memcpy((float *)dst + i0, (const float *)g + i0, len * sizeof(float));
        continue;
      }
      const float *x = (const float *)g + i0;
      for (size_t i = 0; i < len; ++i) acc[i] = (double)x[i];
    } else {
      const uint64_t *bits = (const uint64_t *)g + i0;
      uint64_t w = 0;
      for (size_t i = 0; i < len; ++i) {
        uint64_t a = bits[i] & 0x7fffffffffffffffull;
        w = a > w ? a : w;
      }
      bad = w >= 0x7ff0000000000000ull;
      memcpy(acc, (const double *)g + i0, len * sizeof *acc);
    }
    for (size_t t = 0; t < m; ++t)
      add_left(acc, r->bufs[part[t]], stored_float(r, r->nodes[part[t]].level), i0, len);
    memcpy((double *)dst + i0, acc, len * sizeof *acc);
  }
  return bad;
}

/* The held node (level, index), or n_nodes when there is none. */
static size_t find_node(const dpt_reducer *r, int level, int64_t index) {
  size_t k = 0;
  while (k < r->n_nodes && (r->nodes[k].level != level || r->nodes[k].index != index)) ++k;
  return k;
}

dpt_status dpt_reducer_deposit(dpt_reducer *r, int64_t j, const void *grads, double loss) {
  char msg[160];
  if (r->opts.mode != DPT_REDUCE_EXACT) {
    note_misuse(r, "gradient reducer: deposit called in fast mode");
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
  if (r->bad != BAD_NONE) return DPT_OK; /* the step is lost anyway */
  if (!isfinite(loss)) {
    note_bad(r, BAD_LOSS);
    return DPT_OK;
  }
  /* the path of leaf (0, j) upwards: while the sibling of the node reached is held here,
   * they merge (the held nodes are disjoint, so each sibling is held whole or not at all) */
  exact_node cur = {.level = 0, .index = j, .loss = loss};
  size_t part[64], m = 0, k;
  while ((k = find_node(r, cur.level, cur.index ^ 1)) < r->n_nodes) {
    part[m++] = k;
    cur.loss = r->nodes[k].loss + cur.loss;
    cur.level++;
    cur.index >>= 1;
  }
  /* the result goes to the spare buffer after the held nodes, then the merged nodes leave
   * (each swapped with the last; in descending position order, so none moves before it
   * leaves), their buffers becoming spares */
  size_t top = r->n_nodes;
  DPT_CALL(ensure_node(r, top));
  if (push_leaf(r, grads, part, m, r->bufs[top])) {
    note_bad(r, BAD_GRAD);
    return DPT_OK;
  }
  r->nodes[top] = cur;
  r->n_nodes = top + 1;
  for (size_t a = 1; a < m; ++a) /* insertion sort, descending (m <= 31) */
    for (size_t b = a; b > 0 && part[b - 1] < part[b]; --b) {
      size_t t = part[b];
      part[b] = part[b - 1];
      part[b - 1] = t;
    }
  for (size_t t = 0; t < m; ++t) {
    size_t p = part[t], last = r->n_nodes - 1;
    exact_node tn = r->nodes[p];
    double *tb = r->bufs[p];
    r->nodes[p] = r->nodes[last];
    r->bufs[p] = r->bufs[last];
    r->nodes[last] = tn;
    r->bufs[last] = tb;
    r->n_nodes--;
  }
  return DPT_OK;
}

/* One node of the gathered list: its tree position and where its data lies. */
typedef struct gathered_node {
  int64_t start, end; /* leaves [start, end) */
  int level;
  int64_t index;
  size_t g; /* position in the gather order (rank, then its node list order) */
} gathered_node;

static int by_start(const void *pa, const void *pb) {
  const gathered_node *a = pa, *b = pb;
  return (a->start > b->start) - (a->start < b->start);
}

/* Plans the evaluation of node (L, i) from the gathered nodes s[a, b) (sorted, disjoint, all
 * inside the node): appends (dst, src) pairs meaning value[dst] += value[src] in order;
 * returns the gather position holding the node's value, or -1 when it is absent. */
static int64_t plan_node(const gathered_node *s, size_t a, size_t b, int L, int64_t i, size_t *plan, size_t *n_plan) {
  if (a == b) return -1;
  if (s[a].level == L) return (int64_t)s[a].g; /* disjoint: the only one in range */
  int64_t mid = (2 * i + 1) << (L - 1);
  size_t k = a;
  while (k < b && s[k].start < mid) ++k;
  int64_t left = plan_node(s, a, k, L - 1, 2 * i, plan, n_plan);
  int64_t right = plan_node(s, k, b, L - 1, 2 * i + 1, plan, n_plan);
  if (left < 0) return right;
  if (right < 0) return left;
  plan[2 * *n_plan] = (size_t)left;
  plan[2 * *n_plan + 1] = (size_t)right;
  ++*n_plan;
  return left;
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

/* acc = a + b over the elements [i0, i0 + bl) (a, b stored as float or double). */
static void add_block(double *acc, const void *a, bool a_f, const void *b, bool b_f, size_t i0, size_t bl) {
  if (b_f) {
    const float *x = (const float *)b + i0;
    for (size_t i = 0; i < bl; ++i) acc[i] = (double)x[i];
  } else {
    memcpy(acc, (const double *)b + i0, bl * sizeof *acc);
  }
  add_left(acc, a, a_f, i0, bl);
}

/* res = a + b over len elements (a the left node, b the right, each stored as float or
 * double), as double into res, or, when out is not NULL, rounded once to dtype into out.
 * res may be a itself; a float a widened in place is done in blocks from the end: the
 * doubles written over elements [i0, i0 + bl) cover only floats of index >= i0, all read by
 * then. */
static void add_slices(double *res, const void *a, bool a_f, const void *b, bool b_f, size_t len, void *out,
                       dpt_dtype dtype) {
  double acc[LEAF_BLOCK];
  if (!out && a_f && (const void *)res == a) {
    for (size_t end = len; end > 0;) {
      size_t bl = end < LEAF_BLOCK ? end : LEAF_BLOCK, i0 = end - bl;
      end = i0;
      add_block(acc, a, a_f, b, b_f, i0, bl);
      memcpy(res + i0, acc, bl * sizeof *acc);
    }
    return;
  }
  for (size_t i0 = 0; i0 < len; i0 += LEAF_BLOCK) {
    size_t bl = len - i0 < LEAF_BLOCK ? len - i0 : LEAF_BLOCK;
    add_block(acc, a, a_f, b, b_f, i0, bl);
    if (!out)
      memcpy(res + i0, acc, bl * sizeof *acc);
    else if (dtype == DPT_F32)
      for (size_t i = 0; i < bl; ++i) ((float *)out)[i0 + i] = (float)acc[i];
    else
      memcpy((double *)out + i0, acc, bl * sizeof *acc);
  }
}

static void free_types(MPI_Datatype *t, int P) {
  for (int q = 0; q < P; ++q)
    if (t[q] != MPI_BYTE && t[q] != MPI_DATATYPE_NULL) MPI_Type_free(&t[q]);
}

/* Collective. Evaluates the tree: gathers node positions and losses everywhere, sends slice q
 * of every node to rank q, which evaluates its slice; the slices, rounded once to dtype,
 * are then gathered by every rank into the gradient buffer. */
static dpt_status exact_finish(dpt_reducer *r, double *loss) {
  const dpt_comm *c = &r->comm;
  const int P = c->size, me = c->rank;
  const size_t n = r->n, chunk = r->chunk;
  dpt_status st = DPT_OK;
  int *counts = r->counts, *displs = r->displs, *scount = r->scount, *rcount = r->rcount, *zero = r->zero;
  int64_t *meta = r->meta, *meta_all = NULL;
  MPI_Datatype *stype = r->stype, *rtype = r->rtype, *btype = NULL;
  gathered_node *s = NULL;
  size_t *plan = NULL, total = 0, n_plan = 0;
  double *losses = NULL;
  MPI_Aint *addr = NULL;
  int *lens = NULL;
  bool *isf = NULL;
  void **node = NULL;
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
  if (st == DPT_OK) st = dpt_alloc(2 * total, sizeof *plan, "exact reducer plan", &plan);
  if (st == DPT_OK) st = dpt_alloc(total, sizeof *losses, "exact reducer losses", &losses);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *addr, "exact reducer addresses", &addr);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *btype, "exact reducer datatypes", &btype);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *isf, "exact reducer node types", &isf);
  if (st == DPT_OK) st = dpt_alloc(total + 1, sizeof *node, "exact reducer node slices", &node);
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
  int H = 0;
  while (((int64_t)1 << H) < r->terms) ++H;
  int64_t root = plan_node(s, 0, total, H, 0, plan, &n_plan);
  for (size_t k = 0; k < n_plan; ++k) losses[plan[2 * k]] += losses[plan[2 * k + 1]];
  *loss = root < 0 ? 0.0 : losses[root];
  /* 3. slice q of every node to rank q (chunks of at most `chunk` elements per block);
   * leaves of an f32 reducer travel as float, other nodes as double. node[g]: where node
   * g's slice of this rank lies (as float or double, its own storage): its own buffer for
   * this rank's nodes, else recv + g * len_me. */
  size_t lo_q, len_q, rounds = (n / (size_t)P + 1 + chunk - 1) / chunk, g_me = (size_t)displs[me] / 3;
  for (size_t g = 0; g < total; ++g) {
    isf[g] = stored_float(r, (int)meta_all[3 * g]);
    node[g] = r->recv + g * len_me;
  }
  for (size_t k = 0; k < r->n_nodes; ++k)
    node[g_me + k] = isf[g_me + k] ? (void *)((float *)r->bufs[k] + lo_me) : (void *)(r->bufs[k] + lo_me);
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
        MPI_Get_address(isf[g] ? (void *)((float *)node[g] + c0) : (void *)((double *)node[g] + c0), &addr[k]);
        btype[k] = isf[g] ? MPI_FLOAT : MPI_DOUBLE;
      }
      blocks_type(cnt_p, len_r, addr, btype, lens, c, &rtype[q], &rcount[q]);
    }
    int rc = MPI_Alltoallw(MPI_BOTTOM, scount, zero, stype, MPI_BOTTOM, rcount, zero, rtype, c->comm);
    free_types(stype, P);
    free_types(rtype, P);
    for (int q = 0; q < P; ++q) stype[q] = rtype[q] = MPI_DATATYPE_NULL;
    DPT_TRY_CHECK(rc == MPI_SUCCESS, DPT_ERR_MPI, "exact reducer: MPI_Alltoallw of tree nodes failed (error %d)", rc);
  }
  /* 4. this rank's slice of the root, rounded once to dtype (the last add writes it);
   * each add writes into the left node's slot of recv */
  void *out = (char *)r->grads + lo_me * dpt_dtype_size(r->dtype);
  for (size_t k = 0; len_me && k < n_plan; ++k) {
    size_t d = plan[2 * k], b = plan[2 * k + 1];
    double *res = r->recv + d * len_me;
    add_slices(res, node[d], isf[d], node[b], isf[b], len_me, k + 1 == n_plan ? out : NULL, r->dtype);
    node[d] = res;
    isf[d] = false;
  }
  if (len_me && n_plan == 0) {
    if (root < 0) {
      memset(out, 0, len_me * dpt_dtype_size(r->dtype));
    } else if (isf[root]) {
      memcpy(out, node[root], len_me * sizeof(float));
    } else {
      const double *v = node[root];
      if (r->dtype == DPT_F32)
        for (size_t i = 0; i < len_me; ++i) ((float *)out)[i] = (float)v[i];
      else
        memcpy(out, v, len_me * sizeof *v);
    }
  }
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
  dpt_free(&plan);
  dpt_free(&losses);
  dpt_free(&addr);
  dpt_free(&lens);
  dpt_free(&btype);
  dpt_free(&isf);
  dpt_free(&node);
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

/* test_parallel.c — one truth for any rank count: mini-batch training of an MLP with the
 * engine's model and the reducers, at P = 1..4 ranks, compared with a one-rank run of the
 * same training inside this process (the P = 1 layout).
 *
 * The loop mirrors the training loop's data-parallel contract (ARCHITECTURE.md): the sample
 * order is a function of (seed, epoch); global batch B is split by dpt_shard_batch (fast:
 * even rows; exact: whole micro-batches); each rank scales by 1/n_global; SGD is applied to
 * the reduced gradient identically on every rank. Cases: B not divisible by P, a short
 * last batch, ranks with no rows (B smaller than P), f32 and f64.
 * dpt-test: ranks=1,2,3,4 */
#include <math.h>
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/model.h"
#include "dptrain/reduce.h"

enum { N_ROWS = 103, N_IN = 6, N_OUT = 3, EPOCHS = 3 };

static double unit(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b * 0xD1B54A32D192ED03ULL + 99;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

/* Three noisy classes in 6 dimensions (every rank builds the same set). */
static double x_at(int64_t row, int j) { return 2.0 * unit((uint64_t)row, (uint64_t)j) - 1.0 + 0.5 * (row % 3) * (j % 2); }
static int32_t label_at(int64_t row) { return (int32_t)(row % 3); }

/* Permutation of the rows for an epoch: a function of (seed, epoch) alone. */
static void epoch_order(int64_t epoch, int64_t *perm) {
  for (int64_t i = 0; i < N_ROWS; ++i) perm[i] = i;
  for (int64_t i = N_ROWS - 1; i > 0; --i) {
    int64_t j = (int64_t)(unit(1000 + (uint64_t)epoch, (uint64_t)i) * (double)(i + 1));
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

static dpt_model *make_model(dpt_dtype dtype) {
  dpt_config *cfg;
  dpt_model *m;
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, "[model]\nlayers = 16,12\nactivation = tanh\n", "test.ini"));
  assert_dpt_ok(dpt_model_create(cfg, dtype, N_IN, N_OUT, DPT_TASK_MULTICLASS, &m));
  dpt_config_destroy(&cfg);
  return m;
}

typedef struct run_opts {
  dpt_reduce_mode mode;
  int64_t batch, micro;
  dpt_dtype dtype;
  double bucket_mb;
  int poison_rank; /* >= 0: this rank's rows get a NaN input in epoch 1 */
  int64_t accumulate;
} run_opts;

/* Trains a fresh model on comm c; params (num_params in dtype) get the result. Returns the
 * status of the first failing step (agreed) or DPT_OK. *losses gets the sum of the global
 * step losses. */
static dpt_status train(const dpt_comm *c, const run_opts *ro, void **params, size_t *np, double *losses) {
  dpt_model *m = make_model(ro->dtype);
  size_t n = dpt_model_num_params(m), es = dpt_dtype_size(ro->dtype);
  assert_dpt_ok(dpt_model_init_params(m, 42));
  assert_dpt_ok(dpt_reduce_broadcast(c, dpt_model_params(m), ro->dtype, n));
  dpt_reduce_opts o;
  dpt_reduce_opts_default(&o);
  o.mode = ro->mode;
  o.micro_batch = ro->micro;
  o.bucket_mb = ro->bucket_mb;
  o.accumulate = ro->accumulate;
  dpt_reducer *r;
  assert_dpt_ok(dpt_reducer_create(c, &o, ro->dtype, n, dpt_model_grads(m), &r));
  int nt = dpt_model_num_tensors(m);
  dpt_param_info *info = calloc((size_t)nt, sizeof *info);
  dpt_reduce_tensor *tens = calloc((size_t)nt, sizeof *tens);
  for (int i = 0; i < nt; ++i) {
    dpt_model_tensor_info(m, i, &info[i]);
    tens[i] = (dpt_reduce_tensor){info[i].name, info[i].offset, info[i].count};
  }
  int64_t perm[N_ROWS];
  void *X = malloc((size_t)ro->batch * N_IN * es);
  int32_t *y = malloc((size_t)ro->batch * sizeof *y);
  const double lr = 0.1;
  dpt_status st = DPT_OK;
  *losses = 0;
  int64_t micro = ro->mode == DPT_REDUCE_EXACT ? ro->micro : 0;
  for (int64_t epoch = 0; epoch < EPOCHS && st == DPT_OK; ++epoch) {
    epoch_order(epoch, perm);
    /* one optimizer step = ro->accumulate consecutive global batches, one reduction */
    for (int64_t first = 0; first < N_ROWS && st == DPT_OK; first += ro->batch * ro->accumulate) {
      int64_t span = N_ROWS - first < ro->batch * ro->accumulate ? N_ROWS - first : ro->batch * ro->accumulate;
      int64_t micro_steps = (span + ro->batch - 1) / ro->batch;
      double scale = 1.0 / (double)span, loss = 0;
      bool skip;
      assert_dpt_ok(dpt_reducer_begin(r, dpt_reducer_terms(r, ro->batch)));
      assert_dpt_ok(dpt_model_zero_grads(m));
      for (int64_t a = 0; a < ro->accumulate; ++a) { /* every rank makes every call, even with no rows */
        int64_t bfirst = first + a * ro->batch;
        int64_t n_global = a < micro_steps ? (N_ROWS - bfirst < ro->batch ? N_ROWS - bfirst : ro->batch) : 0, b, cnt;
        dpt_shard_batch(n_global, micro, c->size, c->rank, &b, &cnt);
        for (int64_t i = 0; i < cnt; ++i) {
          int64_t row = perm[bfirst + b + i];
          for (int j = 0; j < N_IN; ++j) {
            double v = x_at(row, j);
            if (ro->poison_rank == c->rank && epoch == 1 && i == 0 && j == 0) v = NAN;
            if (ro->dtype == DPT_F32) ((float *)X)[i * N_IN + j] = (float)v;
            else ((double *)X)[i * N_IN + j] = v;
          }
          y[i] = label_at(row);
        }
        dpt_targets t = {y, NULL};
        assert_dpt_ok(dpt_reducer_add_batch(r, m, X, &t, cnt, b, a, scale, a == ro->accumulate - 1, &loss, NULL));
      }
      st = dpt_reducer_finish(r, &loss, &skip);
      if (st != DPT_OK) break;
      *losses += loss;
      /* SGD, identical on every rank */
      if (ro->dtype == DPT_F32) {
        float *p = dpt_model_params(m);
        const float *g = dpt_model_grads(m);
        for (size_t i = 0; i < n; ++i) p[i] -= (float)lr * g[i];
      } else {
        double *p = dpt_model_params(m);
        const double *g = dpt_model_grads(m);
        for (size_t i = 0; i < n; ++i) p[i] -= lr * g[i];
      }
      assert_dpt_ok(dpt_reduce_check_sync(c, dpt_model_params(m), ro->dtype, tens, nt, first));
    }
  }
  *np = n;
  *params = malloc(n * es);
  memcpy(*params, dpt_model_params(m), n * es);
  free(X);
  free(y);
  free(info);
  free(tens);
  dpt_reducer_destroy(&r);
  dpt_model_destroy(&m);
  return st;
}

static dpt_comm self_comm(void) {
  dpt_comm s;
  memset(&s, 0, sizeof s);
  MPI_Comm_dup(MPI_COMM_SELF, &s.comm);
  MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN);
  s.size = s.local_size = 1;
  return s;
}

static void compare(const run_opts *ro) {
  dpt_comm self = self_comm();
  void *ref, *got;
  size_t nr, ng;
  double lref, lgot;
  assert_dpt_ok(train(&self, ro, &ref, &nr, &lref));
  assert_dpt_ok(train(&dpt_test_world, ro, &got, &ng, &lgot));
  assert_int_equal(nr, ng);
  /* training moved the parameters (the comparison is not of untouched initial values) */
  dpt_model *m0 = make_model(ro->dtype);
  assert_dpt_ok(dpt_model_init_params(m0, 42));
  size_t es = dpt_dtype_size(ro->dtype);
  assert_true(memcmp(dpt_model_params(m0), ref, nr * es) != 0);
  dpt_model_destroy(&m0);
  if (ro->mode == DPT_REDUCE_EXACT) {
    assert_memory_equal(ref, got, nr * es); /* bitwise, for every P */
    assert_memory_equal(&lref, &lgot, sizeof lref);
  } else {
    /* float sums over ranks in another order: rounding differences of ~1e-7 relative per
     * step, carried through 3 epochs of SGD, stay well within 1e-5 relative (the issue's
     * bound); tiny elements are measured against the tensor-wide scale max|p| */
    double pmax = 0;
    for (size_t i = 0; i < nr; ++i) {
      double a = ro->dtype == DPT_F32 ? ((float *)ref)[i] : ((double *)ref)[i];
      pmax = fmax(pmax, fabs(a));
    }
    for (size_t i = 0; i < nr; ++i) {
      double a = ro->dtype == DPT_F32 ? ((float *)ref)[i] : ((double *)ref)[i];
      double b = ro->dtype == DPT_F32 ? ((float *)got)[i] : ((double *)got)[i];
      if (fabs(a - b) > 1e-5 * fmax(fabs(a), 1e-2 * pmax)) fail_msg("param %zu: P=1 %.9g, P=%d %.9g", i, a, dpt_test_world.size, b);
    }
    assert_true(fabs(lref - lgot) <= 1e-5 * fabs(lref));
  }
  free(ref);
  free(got);
  MPI_Comm_free(&self.comm);
}

static void test_exact_bitwise_b22_micro4(void **state) {
  (void)state; /* 103 rows: 4 full batches + 15; 6 micro-batches per batch (last 2 rows) */
  run_opts ro = {DPT_REDUCE_EXACT, 22, 4, DPT_F32, 4.0, -1, 1};
  compare(&ro);
}

static void test_exact_bitwise_ranks_without_rows(void **state) {
  (void)state; /* B = 6, micro 4: 2 micro-batches, so at P = 3, 4 some ranks get no rows */
  run_opts ro = {DPT_REDUCE_EXACT, 6, 4, DPT_F64, 4.0, -1, 1};
  compare(&ro);
}

static void test_exact_bitwise_accumulate(void **state) {
  (void)state; /* 2 batches of 10 per step, micro 3: 4 micro-batches each, the last of 1 row */
  run_opts ro = {DPT_REDUCE_EXACT, 10, 3, DPT_F32, 4.0, -1, 2};
  compare(&ro);
}

static void test_fast_close_accumulate(void **state) {
  (void)state;
  run_opts ro = {DPT_REDUCE_FAST, 10, 0, DPT_F32, 0.0005, -1, 3};
  compare(&ro);
}

static void test_fast_close_b22(void **state) {
  (void)state; /* tiny buckets so several allreduces overlap the backward pass */
  run_opts ro = {DPT_REDUCE_FAST, 22, 0, DPT_F32, 0.0005, -1, 1};
  compare(&ro);
}

static void test_fast_close_ranks_without_rows(void **state) {
  (void)state; /* B = 3: at P = 4 one rank has no rows in every step */
  run_opts ro = {DPT_REDUCE_FAST, 3, 0, DPT_F64, 4.0, -1, 1};
  compare(&ro);
}

/* A NaN in one rank's rows: every rank stops at the same step with one message naming it. */
static void test_nan_on_one_rank_stops_all(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  for (int mode = 0; mode < 2; ++mode) {
    run_opts ro = {(dpt_reduce_mode)mode, 22, 4, DPT_F32, 4.0, c->size - 1, 1};
    void *p;
    size_t np;
    double l;
    char want[64];
    snprintf(want, sizeof want, "rank %d: non-finite", c->size - 1);
    dpt_status st = train(c, &ro, &p, &np, &l);
    assert_int_equal(st, DPT_ERR_NUMERIC);
    assert_non_null(strstr(dpt_error_message(), want));
    dpt_error_clear();
    free(p);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_bitwise_b22_micro4),
      cmocka_unit_test(test_exact_bitwise_ranks_without_rows),
      cmocka_unit_test(test_exact_bitwise_accumulate),
      cmocka_unit_test(test_fast_close_accumulate),
      cmocka_unit_test(test_fast_close_b22),
      cmocka_unit_test(test_fast_close_ranks_without_rows),
      cmocka_unit_test(test_nan_on_one_rank_stops_all),
  };
  return dpt_test_run(tests);
}

/* test_loader.c — the loader's batches at P ranks against a one-rank loader in the same
 * process: global shuffle gives the same global batches (ids and order) for every P, in fast
 * and exact mode; each rank's part is dpt_shard_batch's; rows travel with their targets;
 * none is the identity order; local shuffle serves each rank rows of its own shard only and
 * every sample once an epoch (it dropped rows at P = 3, N = 37, B = 8 before loader.c spread
 * each shard evenly over the steps).
 * dpt-test: ranks=1,2,3,4 */
#include <stdio.h>

#include "testutil.h"
#include "dptrain/dataset.h"

enum { N = 37, D = 2, B = 8 };
static char dir[400];

/* X[i] = (i, -i), y[i] = 2 i (regression, k = 1): every value is a small integer, exact in
 * float64, so comparisons below are exact (tolerance 0). */
static void write_files(char *world_path, char *self_path) {
  static double X[N * D], y[N];
  for (int i = 0; i < N; ++i) X[i * D] = i, X[i * D + 1] = -i, y[i] = 2.0 * i;
  snprintf(world_path, 512, "%s/world.h5", dir);
  snprintf(self_path, 512, "%s/self.h5", dir);
  /* two copies: one opened over the world, one by each rank alone (HDF5 shares the state of
   * a file opened twice in a process, which would mix the two communicators). Collective. */
  assert_int_equal(dpt_test_write_dataset(world_path, NULL, NULL, 0, X, N, D, NULL, y, 1, "regression"), 0);
  assert_int_equal(dpt_test_write_dataset(self_path, NULL, NULL, 0, X, N, D, NULL, y, 1, "regression"), 0);
}

static dpt_config *config(const char *shuffle) {
  dpt_config *cfg = NULL;
  char text[64];
  snprintf(text, sizeof text, "[data]\nshuffle = %s\n", shuffle);
  assert_dpt_ok(dpt_config_create(&cfg));
  assert_dpt_ok(dpt_config_load_string(cfg, text, "t.ini"));
  return cfg;
}

/* Checks this rank's rows (x1 = -x0, y = 2 x0) and returns their ids. */
static void rows_of(const dpt_batch *b, int64_t *ids) {
  const double *x = b->X, *v = b->y.values;
  for (int64_t i = 0; i < b->n; ++i) {
    assert_true(x[i * D + 1] == -x[i * D]);
    assert_true(v[i] == 2.0 * x[i * D]);
    ids[i] = (int64_t)x[i * D];
    assert_in_range(ids[i], 0, N - 1);
  }
}

/* The global batch assembled from every rank's part (each part placed at b.first). */
static void global_ids(const dpt_batch *b, int64_t *all) {
  int64_t mine[B], part[B];
  for (int i = 0; i < B; ++i) mine[i] = 0;
  rows_of(b, part);
  for (int64_t i = 0; i < b->n; ++i) mine[b->first + i] = part[i] + 1; /* 0 = not mine */
  MPI_Allreduce(mine, all, B, MPI_INT64_T, MPI_SUM, dpt_test_world.comm);
  for (int64_t i = 0; i < b->n_global; ++i) all[i] -= 1;
}

static void check_invariant(const char *shuffle, int64_t micro) {
  char wp[512], sp[512];
  write_files(wp, sp);
  static dpt_comm self;
  self.comm = MPI_COMM_SELF, self.rank = 0, self.size = 1, self.local_rank = 0, self.local_size = 1;
  dpt_config *cw = config(shuffle), *cs = config(shuffle);
  dpt_dataset *dw = NULL, *dsf = NULL;
  dpt_loader *lw = NULL, *ls = NULL;
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, wp, "train", &dw));
  assert_dpt_ok(dpt_dataset_open(&self, sp, "train", &dsf));
  assert_dpt_ok(dpt_loader_create(&dpt_test_world, dw, cw, DPT_F64, B, micro, 11, &lw));
  assert_dpt_ok(dpt_loader_create(&self, dsf, cs, DPT_F64, B, 0, 11, &ls));
  const int64_t steps = (N + B - 1) / B;
  assert_int_equal(dpt_loader_steps_per_epoch(lw), steps);
  int64_t first_order[N], moved = 0;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    int count[N] = {0};
    for (int64_t s = 0; s < steps; ++s) {
      dpt_batch bw, bs;
      int64_t all[B], ref[B];
      assert_dpt_ok(dpt_loader_batch(lw, epoch, s, &bw));
      assert_dpt_ok(dpt_loader_batch(ls, epoch, s, &bs));
      const int64_t ng = s < steps - 1 ? B : N - (steps - 1) * B;
      assert_int_equal(bw.n_global, ng);
      assert_int_equal(bs.n_global, ng);
      assert_int_equal(bs.n, ng);
      int64_t begin, cnt;
      dpt_shard_batch(ng, micro, dpt_test_world.size, dpt_test_world.rank, &begin, &cnt);
      if (cnt > 0) assert_int_equal(bw.first, begin); /* an empty part has no position */
      assert_int_equal(bw.n, cnt);
      if (micro > 0 && cnt > 0) assert_int_equal(bw.first % micro, 0);
      global_ids(&bw, all);
      rows_of(&bs, ref);
      for (int64_t i = 0; i < ng; ++i) {
        const int64_t pos = s * B + i;
        assert_int_equal(all[i], ref[i]); /* same global batch as one rank */
        if (!strcmp(shuffle, "none")) assert_int_equal(all[i], pos);
        if (epoch == 0) first_order[pos] = all[i];
        else moved += first_order[pos] != all[i];
        ++count[all[i]];
      }
    }
    for (int i = 0; i < N; ++i) assert_int_equal(count[i], 1); /* each sample once per epoch */
  }
  /* global: epoch 1 is a new order (a permutation equal to epoch 0's would be a broken
   * sampler; the chance for a correct one is 1/37!) */
  if (!strcmp(shuffle, "global")) assert_true(moved > 0);
  else assert_int_equal(moved, 0);
  dpt_loader_destroy(&lw);
  dpt_loader_destroy(&ls);
  dpt_dataset_close(&dw);
  dpt_dataset_close(&dsf);
  dpt_config_destroy(&cw);
  dpt_config_destroy(&cs);
}

static void test_global_fast(void **state) {
  (void)state;
  check_invariant("global", 0);
}

static void test_global_exact(void **state) {
  (void)state;
  check_invariant("global", 3);
}

static void test_none_exact(void **state) {
  (void)state;
  check_invariant("none", 3);
}

/* local: every row a rank gets lies in its contiguous shard dpt_shard_range(N, P, r). */
static void test_local_own_shard(void **state) {
  (void)state;
  char wp[512], sp[512];
  write_files(wp, sp);
  dpt_config *cfg = config("local");
  dpt_dataset *ds = NULL;
  dpt_loader *l = NULL;
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, wp, "train", &ds));
  assert_dpt_ok(dpt_loader_create(&dpt_test_world, ds, cfg, DPT_F64, B, 0, 11, &l));
  int64_t lo, cnt;
  dpt_shard_range(N, dpt_test_world.size, dpt_test_world.rank, &lo, &cnt);
  int64_t total = 0;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    int seen[N] = {0}, all[N];
    for (int64_t s = 0; s < dpt_loader_steps_per_epoch(l); ++s) {
      dpt_batch b;
      int64_t ids[B];
      assert_dpt_ok(dpt_loader_batch(l, epoch, s, &b));
      assert_in_range(b.n, 0, B);
      rows_of(&b, ids);
      for (int64_t i = 0; i < b.n; ++i) assert_in_range(ids[i], lo, lo + cnt - 1), ++seen[ids[i]];
      total += b.n;
    }
    /* every sample once an epoch over all ranks, whatever B and P */
    MPI_Allreduce(seen, all, N, MPI_INT, MPI_SUM, dpt_test_world.comm);
    for (int i = 0; i < N; ++i) assert_int_equal(all[i], 1);
  }
  int64_t sum = 0;
  MPI_Allreduce(&total, &sum, 1, MPI_INT64_T, MPI_SUM, dpt_test_world.comm);
  assert_int_equal(sum, 2 * N); /* two epochs of N rows over all ranks */
  dpt_loader_destroy(&l);
  dpt_dataset_close(&ds);
  dpt_config_destroy(&cfg);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "%s", dpt_test_tmpdir());
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_global_fast, setup),
      cmocka_unit_test_setup(test_global_exact, setup),
      cmocka_unit_test_setup(test_none_exact, setup),
      cmocka_unit_test_setup(test_local_own_shard, setup),
  };
  return dpt_test_run(tests);
}

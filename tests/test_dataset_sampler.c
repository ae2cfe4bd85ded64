/* test_dataset_sampler.c — the loader at P = 1..4: with global shuffle the global batches
 * (ids and order) are the same for every P — checked against a fixed fingerprint of epoch 0
 * recorded at P = 1, so each rank count is compared with the same known value — each sample
 * is seen once per epoch, targets travel with their rows, also in exact (micro-batch) mode;
 * with local shuffle each rank sees exactly its contiguous shard, once per epoch.
 * dpt-test: ranks=1,2,3,4 */
#include <stdio.h>

#include "testutil.h"
#include "dptrain/config.h"
#include "dptrain/dataset.h"

enum { N = 50, B = 8 };

static dpt_loader *make(dpt_dataset **ds, dpt_config **cfg, const char *mode, int64_t micro) {
  char p[512];
  snprintf(p, sizeof p, "%s/seq.h5", dpt_test_tmpdir());
  static double X[N], y[N];
  for (int i = 0; i < N; ++i) X[i] = i, y[i] = 2 * i;
  assert_int_equal(dpt_test_write_dataset(p, NULL, NULL, 0, X, N, 1, NULL, y, 1, "regression"), 0);
  dpt_loader *l = NULL;
  assert_dpt_ok(dpt_config_create(cfg));
  assert_dpt_ok(dpt_config_set(*cfg, "data.shuffle", mode, "test"));
  assert_dpt_ok(dpt_dataset_open(&dpt_test_world, p, "train", ds));
  assert_dpt_ok(dpt_loader_create(&dpt_test_world, *ds, *cfg, DPT_F64, B, micro, 42, &l));
  return l;
}

/* The global batch `s` of `epoch`, gathered from every rank's part (ids; y checked = 2x). */
static void gather(dpt_loader *l, int64_t epoch, int64_t s, int *ids, int64_t *n) {
  dpt_batch b;
  assert_dpt_ok(dpt_loader_batch(l, epoch, s, &b));
  double mine[B] = {0}, all[B];
  for (int64_t i = 0; i < b.n; ++i) {
    double x = ((const double *)b.X)[i];
    assert_true(((const double *)b.y.values)[i] == 2 * x); /* exact: small integers */
    mine[b.first + i] = x + 1;
  }
  MPI_Allreduce(mine, all, B, MPI_DOUBLE, MPI_SUM, dpt_test_world.comm);
  *n = b.n_global;
  for (int64_t i = 0; i < *n; ++i) ids[i] = (int)all[i] - 1;
}

static void check_global(int64_t micro) {
  dpt_dataset *ds = NULL;
  dpt_config *cfg = NULL;
  dpt_loader *l = make(&ds, &cfg, "global", micro);
  assert_int_equal(dpt_loader_steps_per_epoch(l), (N + B - 1) / B);
  /* epoch 0's first batch as produced at P = 1 (seed 42): the same at every P */
  static const int expect[B] = {23, 9, 45, 7, 47, 22, 38, 20};
  for (int epoch = 0; epoch < 3; ++epoch) {
    int count[N] = {0}, ids[B];
    for (int64_t s = 0; s < dpt_loader_steps_per_epoch(l); ++s) {
      int64_t n;
      gather(l, epoch, s, ids, &n);
      assert_int_equal(n, s * B + B <= N ? B : N - s * B);
      for (int64_t i = 0; i < n; ++i) {
        assert_in_range(ids[i], 0, N - 1);
        ++count[ids[i]];
        if (epoch == 0 && s == 0) assert_int_equal(ids[i], expect[i]);
      }
    }
    for (int i = 0; i < N; ++i) assert_int_equal(count[i], 1); /* each sample once per epoch */
  }
  dpt_loader_destroy(&l);
  dpt_dataset_close(&ds);
  dpt_config_destroy(&cfg);
}

static void test_global_same_for_every_p(void **state) {
  (void)state;
  check_global(0);
}

static void test_global_exact_mode(void **state) {
  (void)state;
  check_global(2);
}

static void test_local_shard_once(void **state) {
  (void)state;
  dpt_dataset *ds = NULL;
  dpt_config *cfg = NULL;
  dpt_loader *l = make(&ds, &cfg, "local", 0);
  int64_t begin, count;
  dpt_shard_range(N, dpt_test_world.size, dpt_test_world.rank, &begin, &count);
  for (int epoch = 0; epoch < 2; ++epoch) {
    int seen[N] = {0};
    for (int64_t s = 0; s < dpt_loader_steps_per_epoch(l); ++s) {
      dpt_batch b;
      assert_dpt_ok(dpt_loader_batch(l, epoch, s, &b));
      for (int64_t i = 0; i < b.n; ++i) ++seen[(int)((const double *)b.X)[i]];
    }
    int bad = -1, any;
    for (int i = 0; i < N && bad < 0; ++i)
      if (seen[i] != (i >= begin && i < begin + count ? 1 : 0)) bad = i;
    /* agree before asserting: a rank leaving early would strand the others in a collective */
    int mine = bad >= 0;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, dpt_test_world.comm);
    if (any) fail_msg("rank %d: row %d seen %d times in epoch %d (shard [%lld, %lld))", dpt_test_world.rank, bad,
                      bad >= 0 ? seen[bad] : -1, epoch, (long long)begin, (long long)(begin + count));
  }
  dpt_loader_destroy(&l);
  dpt_dataset_close(&ds);
  dpt_config_destroy(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_global_same_for_every_p),
      cmocka_unit_test(test_global_exact_mode),
      cmocka_unit_test(test_local_shard_once),
  };
  return dpt_test_run(tests);
}

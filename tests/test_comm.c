/* test_comm.c — error agreement across ranks and batch sharding.
 * dpt-test: ranks=1,2,3,4 */
#include <string.h>

#include "testutil.h"
#include "dptrain/comm.h"

static void test_shard_range_covers_once(void **state) {
  (void)state;
  for (int64_t n = 0; n < 20; ++n)
    for (int p = 1; p <= 5; ++p) {
      int64_t next = 0;
      for (int r = 0; r < p; ++r) {
        int64_t b, c;
        dpt_shard_range(n, p, r, &b, &c);
        assert_int_equal(b, next); /* contiguous, in order */
        assert_true(c == n / p || c == n / p + 1);
        next = b + c;
      }
      assert_int_equal(next, n);
    }
}

static void test_agree_lowest_failing_rank(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  assert_int_equal(dpt_comm_agree(c, DPT_OK), DPT_OK);
  /* the last rank fails with a format error; every rank must see it */
  dpt_status local = DPT_OK;
  if (c->rank == c->size - 1) local = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__, "bad shard");
  dpt_status st = dpt_comm_agree(c, local);
  assert_int_equal(st, DPT_ERR_FORMAT);
  assert_non_null(strstr(dpt_error_message(), "bad shard"));
  if (c->size > 1) {
    char want[32];
    snprintf(want, sizeof want, "rank %d:", c->size - 1);
    assert_non_null(strstr(dpt_error_message(), want));
  }
  dpt_error_clear();
  bool any;
  assert_dpt_ok(dpt_comm_any(c, c->rank == 0, &any));
  assert_true(any);
  assert_dpt_ok(dpt_comm_any(c, false, &any));
  assert_false(any);
}

/* The training loop's end-of-step check: status and flag agreed in one call. */
static void test_agree_any(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  bool any = true;
  assert_int_equal(dpt_comm_agree_any(c, DPT_OK, false, &any), DPT_OK);
  assert_false(any);
  assert_int_equal(dpt_comm_agree_any(c, DPT_OK, c->rank == c->size - 1, &any), DPT_OK);
  assert_true(any);
  /* rank 0 raises the flag, the last rank fails (rank 0 too at P = 1): both outcomes everywhere */
  dpt_status local = DPT_OK;
  if (c->rank == c->size - 1) local = dpt_error_set(DPT_ERR_NUMERIC, __FILE__, __LINE__, __func__, "loss not finite");
  any = false;
  assert_int_equal(dpt_comm_agree_any(c, local, c->rank == 0, &any), DPT_ERR_NUMERIC);
  assert_true(any);
  assert_non_null(strstr(dpt_error_message(), "loss not finite"));
  if (c->size > 1) {
    char want[32];
    snprintf(want, sizeof want, "rank %d:", c->size - 1);
    assert_non_null(strstr(dpt_error_message(), want));
  }
  dpt_error_clear();
}

/* A collective call's outcome: succeeded everywhere, or failed everywhere (the lowest
 * failing rank's message on every rank). Failed on some ranks only aborts the job: that case
 * is cli_fault.sh's (it cannot return). */
static void test_agree_collective(void **state) {
  (void)state;
  const dpt_comm *c = &dpt_test_world;
  assert_int_equal(dpt_comm_agree_collective(c, DPT_OK, "opening"), DPT_OK);
  dpt_status local = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "cannot open r%d", c->rank);
  assert_int_equal(dpt_comm_agree_collective(c, local, "opening"), DPT_ERR_IO);
  assert_non_null(strstr(dpt_error_message(), "cannot open r0"));
  dpt_error_clear();
}

/* Every rank uses the smallest requested BLAS thread count: rank r asks for r + 2. */
static void test_blas_threads_agreed(void **state) {
  (void)state;
  int used = -1;
  assert_int_equal(dpt_comm_set_blas_threads(&dpt_test_world, dpt_test_world.rank + 2, &used), DPT_OK);
  assert_int_equal(used, 2);
  assert_int_equal(dpt_comm_set_blas_threads(&dpt_test_world, 1, &used), DPT_OK); /* as the other tests run */
  assert_int_equal(used, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shard_range_covers_once),
      cmocka_unit_test(test_agree_lowest_failing_rank),
      cmocka_unit_test(test_agree_any),
      cmocka_unit_test(test_agree_collective),
      cmocka_unit_test(test_blas_threads_agreed),
  };
  return dpt_test_run(tests);
}

/* test_tensor.c — the BLAS boundary (dpt_gemm in every transpose combination, both dtypes,
 * empty dimensions) and the elementwise kernels, against plain loops. */
#include <limits.h>
#include <math.h>

#include "testutil.h"
#include "dptrain/tensor.h"

/* Reference C = alpha op(A) op(B) + beta C in double. */
static void ref_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double *A, const double *B, double beta,
                     double *C) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < k; ++p) s += (ta ? A[p * m + i] : A[i * k + p]) * (tb ? B[j * k + p] : B[p * n + j]);
      C[i * n + j] = alpha * s + beta * C[i * n + j];
    }
}

static void test_gemm(void **state) {
  (void)state;
  enum { M = 5, Nn = 4, Kk = 3 };
  double A[M * Kk], B[Kk * Nn], C[M * Nn], R[M * Nn];
  float Af[M * Kk], Bf[Kk * Nn], Cf[M * Nn];
  for (int i = 0; i < M * Kk; ++i) Af[i] = (float)(A[i] = (i % 7) * 0.25 - 0.5);
  for (int i = 0; i < Kk * Nn; ++i) Bf[i] = (float)(B[i] = (i % 5) * 0.5 - 1);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      for (int i = 0; i < M * Nn; ++i) Cf[i] = (float)(C[i] = R[i] = i * 0.125);
      ref_gemm(ta, tb, M, Nn, Kk, 2.0, A, B, 0.5, R);
      dpt_gemm(DPT_F64, ta, tb, M, Nn, Kk, 2.0, A, ta ? M : Kk, B, tb ? Kk : Nn, 0.5, C, Nn);
      dpt_gemm(DPT_F32, ta, tb, M, Nn, Kk, 2.0, Af, ta ? M : Kk, Bf, tb ? Kk : Nn, 0.5, Cf, Nn);
      /* inputs are multiples of 1/8 with few terms: every product and sum is exact in both
       * dtypes, so the results must be equal, not just close */
      for (int i = 0; i < M * Nn; ++i) {
        assert_true(C[i] == R[i]);
        assert_true((double)Cf[i] == R[i]);
      }
    }
  /* k = 0: C = beta C; m = 0 or n = 0: nothing touched */
  double c2[2] = {3, 4};
  dpt_gemm(DPT_F64, false, false, 1, 2, 0, 1.0, NULL, 1, NULL, 2, 0.5, c2, 2);
  assert_true(c2[0] == 1.5 && c2[1] == 2.0);
  dpt_gemm(DPT_F64, false, false, 1, 2, 0, 1.0, NULL, 1, NULL, 2, 0.0, c2, 2);
  assert_true(c2[0] == 0.0 && c2[1] == 0.0);
  c2[0] = 7;
  dpt_gemm(DPT_F64, false, false, 0, 2, 3, 1.0, NULL, 3, NULL, 2, 0.0, c2, 2);
  assert_true(c2[0] == 7);
}

static void test_kernels(void **state) {
  (void)state;
  for (int t = 0; t < 2; ++t) {
    dpt_dtype dt = (dpt_dtype)t;
    double xd[6] = {1, 2, 3, 4, 5, 6}, yd[6] = {1, 1, 1, 1, 1, 1}, bd[3] = {0, 0, 0};
    float xf[6] = {1, 2, 3, 4, 5, 6}, yf[6] = {1, 1, 1, 1, 1, 1}, bf[3] = {0, 0, 0};
    void *x = t ? (void *)xd : (void *)xf, *y = t ? (void *)yd : (void *)yf, *b = t ? (void *)bd : (void *)bf;
    /* small integers and halves: every operation below is exact */
    dpt_vec_axpy(dt, 6, 0.5, x, y);
    assert_true(dpt_vec_get(dt, y, 5) == 4.0);
    assert_true(dpt_vec_dot(dt, 6, x, x) == 91.0);
    dpt_colsum_add(dt, 2, 3, x, b); /* x as [2, 3] */
    assert_true(dpt_vec_get(dt, b, 0) == 5 && dpt_vec_get(dt, b, 1) == 7 && dpt_vec_get(dt, b, 2) == 9);
    dpt_rows_set(dt, 2, 3, b, y);
    assert_true(dpt_vec_get(dt, y, 3) == 5 && dpt_vec_get(dt, y, 5) == 9);
    dpt_vec_mul(dt, 6, x, x, y);
    assert_true(dpt_vec_get(dt, y, 2) == 9);
    dpt_vec_mul_add(dt, 6, x, x, y);
    assert_true(dpt_vec_get(dt, y, 2) == 18);
    dpt_vec_copy(dt, 6, x, y);
    assert_true(dpt_vec_get(dt, y, 4) == 5);
    dpt_vec_zero(dt, 6, y);
    assert_true(dpt_vec_get(dt, y, 4) == 0);
    dpt_vec_set(dt, y, 1, -2.5);
    assert_true(dpt_vec_get(dt, y, 1) == -2.5);
  }
}

static void test_shape_check(void **state) {
  (void)state;
  assert_dpt_ok(dpt_tensor_check_shape(INT_MAX, 1, "x"));
  assert_dpt_ok(dpt_tensor_check_shape(0, 5, "x"));
  assert_dpt_fails(dpt_tensor_check_shape(65536, 65536, "layer_0/W"), DPT_ERR_INPUT, "layer_0/W");
  assert_dpt_fails(dpt_tensor_check_shape(-1, 2, "x"), DPT_ERR_INPUT, "shape [-1, 2]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gemm),
      cmocka_unit_test(test_kernels),
      cmocka_unit_test(test_shape_check),
  };
  return dpt_test_run(tests);
}

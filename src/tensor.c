/* tensor.c — the BLAS boundary and elementwise kernels (see tensor.h). */
#include "dptrain/tensor.h"

#include <cblas.h>
#include <limits.h>

#define T float
#define FN(name) name##_f32
#include "tensor_kernels.inc"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "tensor_kernels.inc"
#undef T
#undef FN

dpt_status dpt_tensor_check_shape(int64_t rows, int64_t cols, const char *what) {
  DPT_CHECK(rows >= 0 && cols >= 0 && rows <= INT_MAX && cols <= INT_MAX && (cols == 0 || rows <= INT_MAX / cols),
            DPT_ERR_INPUT, "%s: shape [%lld, %lld]: expected at most %d elements (the int BLAS takes)", what,
            (long long)rows, (long long)cols, INT_MAX);
  return DPT_OK;
}

static dpt_gemm_call *trace_log;
static int trace_cap, *trace_count;

void dpt_gemm_trace(dpt_gemm_call *log, int cap, int *count) {
  trace_log = log;
  trace_cap = cap;
  trace_count = count;
  if (count) *count = 0;
}

void dpt_gemm(dpt_dtype t, bool transA, bool transB, int64_t m, int64_t n, int64_t k, double alpha, const void *A,
              int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (trace_log) {
    if (*trace_count < trace_cap)
      trace_log[*trace_count] = (dpt_gemm_call){t, transA, transB, m, n, k, lda, ldb, ldc, alpha, beta};
    ++*trace_count;
  }
  if (k == 0) {
    /* BLAS would scale C by beta; do it here so no zero-sized A/B reach it. */
    if (beta == 1.0) return;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        size_t e = (size_t)(i * ldc + j);
        dpt_vec_set(t, C, e, beta == 0.0 ? 0.0 : beta * dpt_vec_get(t, C, e));
      }
    return;
  }
  /* Sizes were checked against INT_MAX by dpt_tensor_check_shape when the graph was built. */
  enum CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
  if (t == DPT_F32)
    cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, (float)alpha, A, (int)lda, B, (int)ldb, (float)beta,
                C, (int)ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* The elementwise kernels run on every step: compiled for baseline x86-64 (SSE2) and for AVX2,
 * the loader picks the one the CPU runs (as activation.c does). No FMA contraction in C17
 * mode, so both clones round identically. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

#define DISPATCH(call32, call64) \
  do {                           \
    if (t == DPT_F32)            \
      call32;                    \
    else                         \
      call64;                    \
  } while (0)

CLONES void dpt_vec_zero(dpt_dtype t, size_t n, void *y) { DISPATCH(zero_f32(n, y), zero_f64(n, y)); }
CLONES void dpt_vec_axpy(dpt_dtype t, size_t n, double a, const void *x, void *y) {
  DISPATCH(axpy_f32(n, (float)a, x, y), axpy_f64(n, a, x, y));
}
CLONES void dpt_vec_copy(dpt_dtype t, size_t n, const void *x, void *y) { DISPATCH(copy_f32(n, x, y), copy_f64(n, x, y)); }
double dpt_vec_dot(dpt_dtype t, size_t n, const void *x, const void *y) {
  return t == DPT_F32 ? dot_f32(n, x, y) : dot_f64(n, x, y);
}
CLONES void dpt_colsum_add(dpt_dtype t, int64_t rows, int64_t cols, const void *X, void *b) {
  DISPATCH(colsum_add_f32(rows, cols, X, b), colsum_add_f64(rows, cols, X, b));
}
CLONES void dpt_rows_set(dpt_dtype t, int64_t rows, int64_t cols, const void *b, void *Y) {
  DISPATCH(rows_set_f32(rows, cols, b, Y), rows_set_f64(rows, cols, b, Y));
}
CLONES void dpt_vec_mul_add(dpt_dtype t, size_t n, const void *X, const void *D, void *Y) {
  DISPATCH(mul_add_f32(n, X, D, Y), mul_add_f64(n, X, D, Y));
}
CLONES void dpt_vec_mul(dpt_dtype t, size_t n, const void *X, const void *D, void *Y) {
  DISPATCH(mul_f32(n, X, D, Y), mul_f64(n, X, D, Y));
}
double dpt_vec_get(dpt_dtype t, const void *x, size_t i) {
  return t == DPT_F32 ? (double)((const float *)x)[i] : ((const double *)x)[i];
}
void dpt_vec_set(dpt_dtype t, void *x, size_t i, double v) {
  if (t == DPT_F32)
    ((float *)x)[i] = (float)v;
  else
    ((double *)x)[i] = v;
}

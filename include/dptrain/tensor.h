/* tensor.h — dense row-major float32/float64 arrays, the BLAS boundary, elementwise kernels.
 *
 * The only place that switches on the dtype for arithmetic: callers pass a dpt_dtype and
 * untyped pointers; every kernel exists for float and double from one source
 * (src/tensor_kernels.inc, included once per dtype).
 *
 * A dpt_tensor is a borrowed view: it never owns its data. Shapes are [rows, cols],
 * row-major (element (i, j) at data[i * cols + j]). Sizes given to BLAS are int: the
 * graph checks every shape against INT_MAX once when it is built (dpt_tensor_check_shape),
 * so the kernels below cast without a further check. */
#ifndef DPTRAIN_TENSOR_H
#define DPTRAIN_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dptrain/types.h"

typedef struct dpt_tensor {
  dpt_dtype dtype;
  int64_t rows, cols;
  void *data; /* borrowed, [rows, cols] */
} dpt_tensor;

/* Checks that rows, cols and rows*cols fit the int BLAS takes; what names the tensor. */
dpt_status dpt_tensor_check_shape(int64_t rows, int64_t cols, const char *what);

/* Pointer to element i of a dtype array. */
static inline void *dpt_elem(dpt_dtype t, void *p, size_t i) {
  return (char *)p + i * (t == DPT_F32 ? sizeof(float) : sizeof(double));
}
static inline const void *dpt_elem_c(dpt_dtype t, const void *p, size_t i) {
  return (const char *)p + i * (t == DPT_F32 ? sizeof(float) : sizeof(double));
}

/* C[m, n] = alpha * op(A) op(B) + beta * C, row-major, through cblas_sgemm / cblas_dgemm.
 * op(A) is [m, k] (A stored [k, m] when transA); op(B) is [k, n]. lda/ldb/ldc are row
 * strides. m, n or k == 0 is allowed (C is scaled by beta when k == 0). Sizes must have
 * passed dpt_tensor_check_shape. */
void dpt_gemm(dpt_dtype t, bool transA, bool transB, int64_t m, int64_t n, int64_t k, double alpha, const void *A,
              int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc);

/* Benchmark instrumentation: while a log is installed, every dpt_gemm call appends its
 * arguments (not the data) so `dptrain bench` can replay exactly the same BLAS calls on
 * their own. Process-global, not thread-safe; install NULL to stop. Calls past cap are
 * counted in *count but not stored. */
typedef struct dpt_gemm_call {
  dpt_dtype dtype;
  bool transA, transB;
  int64_t m, n, k, lda, ldb, ldc;
  double alpha, beta;
} dpt_gemm_call;
void dpt_gemm_trace(dpt_gemm_call *log, int cap, int *count);

/* y[0..n) = 0 */
void dpt_vec_zero(dpt_dtype t, size_t n, void *y);
/* y += a * x, n elements */
void dpt_vec_axpy(dpt_dtype t, size_t n, double a, const void *x, void *y);
/* y = x, n elements */
void dpt_vec_copy(dpt_dtype t, size_t n, const void *x, void *y);
/* sum_i x[i] * y[i] in double */
double dpt_vec_dot(dpt_dtype t, size_t n, const void *x, const void *y);
/* b[0..cols) += sum over rows of X[rows, cols] */
void dpt_colsum_add(dpt_dtype t, int64_t rows, int64_t cols, const void *X, void *b);
/* Y[r, :] = b for each row r (broadcast a [cols] row) */
void dpt_rows_set(dpt_dtype t, int64_t rows, int64_t cols, const void *b, void *Y);
/* Y[i] += X[i] * D[i], n elements (the chain rule through an elementwise op) */
void dpt_vec_mul_add(dpt_dtype t, size_t n, const void *X, const void *D, void *Y);
/* Y[i] = X[i] * D[i] */
void dpt_vec_mul(dpt_dtype t, size_t n, const void *X, const void *D, void *Y);
/* element i as double / set element i from double */
double dpt_vec_get(dpt_dtype t, const void *x, size_t i);
void dpt_vec_set(dpt_dtype t, void *x, size_t i, double v);

#endif

/* convert_npy.c — NumPy .npy pairs (X.npy [N, d], y.npy [N] or [N, k]) to HDF5, streamed.
 *
 * The .npy header is parsed here (format versions 1.0, 2.0 and 3.0): dtype '<f4', '<f8',
 * '|u1', '<i8', '<i4' (also '<u1'), C order only. Every size in a header is checked against
 * the file's real size before anything is allocated. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert.h"
#include "dptrain/types.h"

#define NPY_MAX_HEADER 65536
#define NPY_BLOCK_BYTES ((size_t)8 << 20)

typedef struct npy {
  FILE *f;
  int rank;
  int64_t dims[2];
  char kind;    /* 'f', 'i', 'u' */
  int size;     /* bytes per element */
  hid_t mem;    /* HDF5 native type of the elements */
} npy;

static dpt_status npy_open(const char *path, npy *a) {
  memset(a, 0, sizeof *a);
  a->f = fopen(path, "rb");
  DPT_CHECK(a->f, DPT_ERR_IO, "%s: cannot open (missing or unreadable)", path);
  unsigned char pre[12];
  size_t got = fread(pre, 1, 10, a->f);
  DPT_CHECK(got == 10 && !memcmp(pre, "\x93NUMPY", 6), DPT_ERR_FORMAT, "%s: not a NumPy .npy file (no \\x93NUMPY magic)",
            path);
  int major = pre[6];
  DPT_CHECK(major >= 1 && major <= 3, DPT_ERR_FORMAT, "%s: .npy format version %d.%d not supported (expected 1-3)",
            path, major, pre[7]);
  uint64_t hlen = pre[8] | (uint64_t)pre[9] << 8, off = 10;
  if (major >= 2) {
    DPT_CHECK(fread(pre + 10, 1, 2, a->f) == 2, DPT_ERR_FORMAT, "%s: truncated .npy header", path);
    hlen |= (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    off = 12;
  }
  DPT_CHECK(hlen > 0 && hlen <= NPY_MAX_HEADER, DPT_ERR_FORMAT, "%s: .npy header length %llu (expected 1..%d)", path,
            (unsigned long long)hlen, NPY_MAX_HEADER);
  char h[NPY_MAX_HEADER + 1];
  DPT_CHECK(fread(h, 1, hlen, a->f) == hlen, DPT_ERR_FORMAT, "%s: truncated .npy header", path);
  h[hlen] = 0;
  const char *p = strstr(h, "'descr'");
  DPT_CHECK(p, DPT_ERR_FORMAT, "%s: .npy header has no 'descr'", path);
  p = strchr(p + 7, '\'');
  DPT_CHECK(p, DPT_ERR_FORMAT, "%s: .npy header: unreadable 'descr'", path);
  char descr[16] = "";
  sscanf(p + 1, "%15[^']", descr);
  if (!strcmp(descr, "<f4")) a->kind = 'f', a->size = 4, a->mem = H5T_NATIVE_FLOAT;
  else if (!strcmp(descr, "<f8")) a->kind = 'f', a->size = 8, a->mem = H5T_NATIVE_DOUBLE;
  else if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1")) a->kind = 'u', a->size = 1, a->mem = H5T_NATIVE_UINT8;
  else if (!strcmp(descr, "<i4")) a->kind = 'i', a->size = 4, a->mem = H5T_NATIVE_INT32;
  else if (!strcmp(descr, "<i8")) a->kind = 'i', a->size = 8, a->mem = H5T_NATIVE_INT64;
  else
    return dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                         "%s: .npy dtype '%s' not supported (expected '<f4', '<f8', '|u1', '<i4' or '<i8')", path, descr);
  p = strstr(h, "'fortran_order'");
  DPT_CHECK(p && strstr(p, "False") && (!strstr(p, "True") || strstr(p, "False") < strstr(p, "True")), DPT_ERR_FORMAT,
            "%s: .npy array in Fortran order (expected C order: save np.ascontiguousarray(a))", path);
  p = strstr(h, "'shape'");
  DPT_CHECK(p && (p = strchr(p, '(')), DPT_ERR_FORMAT, "%s: .npy header has no 'shape'", path);
  ++p;
  a->rank = 0;
  while (*p && *p != ')') {
    while (*p == ' ' || *p == ',') ++p;
    if (*p == ')') break;
    DPT_CHECK(isdigit((unsigned char)*p) && a->rank < 2, DPT_ERR_FORMAT,
              "%s: .npy shape: expected 1 or 2 non-negative dimensions", path);
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    DPT_CHECK(v < (1ULL << 40), DPT_ERR_FORMAT, "%s: .npy shape: dimension %llu is beyond 2^40", path, v);
    a->dims[a->rank++] = (int64_t)v;
    p = end;
  }
  DPT_CHECK(a->rank >= 1, DPT_ERR_FORMAT, "%s: .npy shape: a scalar (expected 1 or 2 dimensions)", path);
  if (a->rank == 1) a->dims[1] = 1;
  DPT_CHECK(a->dims[0] >= 1 && a->dims[1] >= 1, DPT_ERR_FORMAT,
            "%s: .npy shape [%lld, %lld] is empty (expected at least 1 row and 1 column)", path, (long long)a->dims[0],
            (long long)a->dims[1]);
  DPT_CHECK(a->dims[1] < (1 << 24), DPT_ERR_FORMAT, "%s: .npy shape: %lld columns (at most 2^24)", path,
            (long long)a->dims[1]);
  struct stat sb;
  DPT_CHECK(fstat(fileno(a->f), &sb) == 0, DPT_ERR_IO, "%s: cannot stat", path);
  /* dims[0] < 2^40 times a row < 2^27 bytes can pass 2^64: compared by division first */
  uint64_t row = (uint64_t)a->dims[1] * (uint64_t)a->size, head = off + hlen;
  bool huge = (uint64_t)a->dims[0] > (UINT64_MAX - head) / row;
  uint64_t need = huge ? UINT64_MAX : head + (uint64_t)a->dims[0] * row;
  DPT_CHECK(!huge && (uint64_t)sb.st_size == need, DPT_ERR_FORMAT,
            "%s: file has %llu bytes but its header [%lld, %lld] x %d bytes needs %s%llu (truncated or not C order?)",
            path, (unsigned long long)sb.st_size, (long long)a->dims[0], (long long)a->dims[1], a->size,
            huge ? "more than " : "", (unsigned long long)need);
  return DPT_OK;
}

static void npy_close(npy *a) {
  if (a->f) fclose(a->f);
  a->f = NULL;
}

/* First non-finite value's row in a float block, -1 when none. */
static int64_t first_nonfinite(const npy *a, const void *buf, int64_t rows) {
  if (a->kind != 'f') return -1;
  for (int64_t i = 0; i < rows * a->dims[1]; ++i) {
    double v = a->size == 4 ? ((const float *)buf)[i] : ((const double *)buf)[i];
    if (!isfinite(v)) return i / a->dims[1];
  }
  return -1;
}

dpt_status dpt_convert_npy(const char *x_path, const char *y_path, const dpt_convert_args *args) {
  dpt_status st = DPT_OK;
  npy x = {0}, y = {0};
  dpt_h5out o = {.file = -1, .X = -1, .y = -1};
  unsigned char *xb = NULL, *yb = NULL;
  DPT_TRY(npy_open(x_path, &x));
  DPT_TRY(npy_open(y_path, &y));
  DPT_TRY_CHECK(x.rank == 2, DPT_ERR_FORMAT, "%s: X must be 2-D [N, d], found %d dimension(s)", x_path, x.rank);
  DPT_TRY_CHECK(x.dims[0] == y.dims[0], DPT_ERR_FORMAT, "%s has %lld rows but %s has %lld (N must match)", y_path,
                (long long)y.dims[0], x_path, (long long)x.dims[0]);
  bool labels = y.rank == 1 && y.kind != 'f';
  const char *task = args->task ? args->task : labels ? "multiclass" : "regression";
  DPT_TRY_CHECK(labels == (strcmp(task, "regression") != 0), DPT_ERR_INPUT,
                "%s: task %s does not fit its dtype (integer [N] labels need binary/multiclass, floats regression)",
                y_path, task);
  bool f64 = args->dtype && !strcmp(args->dtype, "f64");
  hid_t xt = x.kind == 'u' ? H5T_STD_U8LE : (x.size == 8 && x.kind == 'f') || f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
  hid_t yt = labels ? H5T_STD_I32LE : (y.size == 8 || f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE);
  DPT_TRY(dpt_h5out_create(&o, args->out, x.dims[0], x.dims[1], xt, labels ? 0 : y.dims[1], yt, &args->opts));
  size_t xrow = (size_t)x.dims[1] * (size_t)x.size, yrow = (size_t)y.dims[1] * (size_t)y.size;
  int64_t block = (int64_t)(NPY_BLOCK_BYTES / (xrow + yrow));
  if (block < 1) block = 1;
  if (block > x.dims[0]) block = x.dims[0];
  DPT_TRY(dpt_alloc((size_t)block, xrow, "npy X block", &xb));
  DPT_TRY(dpt_alloc((size_t)block, yrow, "npy y block", &yb));
  for (int64_t r = 0; r < x.dims[0]; r += block) {
    int64_t m = x.dims[0] - r < block ? x.dims[0] - r : block;
    DPT_TRY_CHECK(fread(xb, xrow, (size_t)m, x.f) == (size_t)m, DPT_ERR_IO, "%s: read failed at row %lld", x_path,
                  (long long)r);
    DPT_TRY_CHECK(fread(yb, yrow, (size_t)m, y.f) == (size_t)m, DPT_ERR_IO, "%s: read failed at row %lld", y_path,
                  (long long)r);
    int64_t bad = first_nonfinite(&x, xb, m);
    DPT_TRY_CHECK(bad < 0, DPT_ERR_FORMAT, "%s: row %lld: non-finite value", x_path, (long long)(r + bad));
    bad = first_nonfinite(&y, yb, m);
    DPT_TRY_CHECK(bad < 0, DPT_ERR_FORMAT, "%s: row %lld: non-finite value", y_path, (long long)(r + bad));
    if (labels)
      for (int64_t i = 0; i < m; ++i) {
        int64_t v = y.size == 8 ? ((int64_t *)yb)[i] : y.size == 4 ? ((int32_t *)yb)[i] : ((uint8_t *)yb)[i];
        DPT_TRY_CHECK(v >= 0 && v <= INT32_MAX, DPT_ERR_FORMAT, "%s: row %lld: label %lld (expected 0 .. 2^31-1)",
                      y_path, (long long)(r + i), (long long)v);
        DPT_TRY_CHECK(strcmp(task, "binary") || v <= 1, DPT_ERR_FORMAT,
                      "%s: row %lld: label %lld with task binary (expected 0 or 1)", y_path, (long long)(r + i),
                      (long long)v);
      }
    DPT_TRY(dpt_h5out_write(&o, m, x.mem, xb, y.mem, yb));
  }
  DPT_TRY(dpt_h5out_finish(&o, task, 0, NULL, 0));
done:
  if (st != DPT_OK) dpt_h5out_abort(&o);
  npy_close(&x);
  npy_close(&y);
  dpt_free(&xb);
  dpt_free(&yb);
  return st;
}

/* convert_idx.c — MNIST IDX pairs (images: magic 0x00000803 [N, rows, cols] uint8; labels:
 * 0x00000801 [N] uint8; big-endian header) to HDF5: /X uint8 [N, rows*cols] with scale 1/255,
 * /y int32 labels, task multiclass. Streamed; header sizes checked against the file size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert.h"
#include "dptrain/types.h"

#define IDX_BLOCK_ROWS 8192
#define IDX_BLOCK_BYTES ((size_t)8 << 20)

typedef struct idx {
  FILE *f;
  int ndim;
  uint64_t dims[3];
  uint64_t row; /* bytes per item */
} idx;

static dpt_status idx_open(const char *path, int want_ndim, idx *a) {
  memset(a, 0, sizeof *a);
  a->f = fopen(path, "rb");
  DPT_CHECK(a->f, DPT_ERR_IO, "%s: cannot open (missing or unreadable)", path);
  unsigned char h[16];
  DPT_CHECK(fread(h, 1, 4, a->f) == 4 && h[0] == 0 && h[1] == 0, DPT_ERR_FORMAT,
            "%s: not an IDX file (expected magic 0x0000TTDD)", path);
  DPT_CHECK(h[2] == 0x08, DPT_ERR_FORMAT, "%s: IDX element type 0x%02x not supported (expected 0x08, unsigned byte)",
            path, h[2]);
  a->ndim = h[3];
  DPT_CHECK(a->ndim == want_ndim, DPT_ERR_FORMAT, "%s: IDX file has %d dimensions (expected %d: %s)", path, a->ndim,
            want_ndim, want_ndim == 3 ? "images [N, rows, cols]" : "labels [N]");
  DPT_CHECK(fread(h, 4, (size_t)a->ndim, a->f) == (size_t)a->ndim, DPT_ERR_FORMAT, "%s: truncated IDX header", path);
  a->row = 1;
  for (int i = 0; i < a->ndim; ++i) {
    a->dims[i] = (uint64_t)h[4 * i] << 24 | (uint64_t)h[4 * i + 1] << 16 | (uint64_t)h[4 * i + 2] << 8 | h[4 * i + 3];
    if (i > 0) a->row *= a->dims[i];
  }
  struct stat sb;
  DPT_CHECK(fstat(fileno(a->f), &sb) == 0, DPT_ERR_IO, "%s: cannot stat", path);
  /* row < 2^64 (two dimensions < 2^32), but items x row can pass 2^64: compared by division first */
  uint64_t head = 4 + 4 * (uint64_t)a->ndim;
  bool huge = a->row > 0 && a->dims[0] > (UINT64_MAX - head) / a->row;
  uint64_t need = huge ? UINT64_MAX : head + a->dims[0] * a->row;
  DPT_CHECK(a->dims[0] > 0 && a->row > 0 && !huge && (uint64_t)sb.st_size == need, DPT_ERR_FORMAT,
            "%s: file has %llu bytes but its IDX header (%llu items of %llu bytes) needs %s%llu (truncated?)", path,
            (unsigned long long)sb.st_size, (unsigned long long)a->dims[0], (unsigned long long)a->row,
            huge ? "more than " : "", (unsigned long long)need);
  return DPT_OK;
}

dpt_status dpt_convert_idx(const char *images, const char *labels, const dpt_convert_args *args) {
  dpt_status st = DPT_OK;
  idx xi = {0}, yi = {0};
  dpt_h5out o = {.file = -1, .X = -1, .y = -1};
  unsigned char *xb = NULL, *yb = NULL;
  DPT_TRY(idx_open(images, 3, &xi));
  DPT_TRY(idx_open(labels, 1, &yi));
  DPT_TRY_CHECK(xi.dims[0] == yi.dims[0], DPT_ERR_FORMAT, "%s has %llu labels but %s has %llu images (N must match)",
                labels, (unsigned long long)yi.dims[0], images, (unsigned long long)xi.dims[0]);
  const char *task = args->task ? args->task : "multiclass";
  DPT_TRY_CHECK(strcmp(task, "regression"), DPT_ERR_INPUT,
                "%s: task regression does not fit IDX class labels (expected binary or multiclass)", labels);
  DPT_TRY(dpt_h5out_create(&o, args->out, (int64_t)xi.dims[0], (int64_t)xi.row, H5T_STD_U8LE, 0, H5T_STD_I32LE,
                           &args->opts));
  /* a block: at most IDX_BLOCK_ROWS items, 8 MiB (or one item) and the file's items */
  uint64_t block = IDX_BLOCK_BYTES / xi.row;
  if (block > IDX_BLOCK_ROWS) block = IDX_BLOCK_ROWS;
  if (block > xi.dims[0]) block = xi.dims[0];
  if (block < 1) block = 1;
  DPT_TRY(dpt_alloc((size_t)block, (size_t)xi.row, "IDX image block", &xb));
  DPT_TRY(dpt_alloc((size_t)block, 1, "IDX label block", &yb));
  for (uint64_t r = 0; r < xi.dims[0]; r += block) {
    size_t m = xi.dims[0] - r < block ? (size_t)(xi.dims[0] - r) : (size_t)block;
    DPT_TRY_CHECK(fread(xb, (size_t)xi.row, m, xi.f) == m, DPT_ERR_IO, "%s: read failed at image %llu", images,
                  (unsigned long long)r);
    DPT_TRY_CHECK(fread(yb, 1, m, yi.f) == m, DPT_ERR_IO, "%s: read failed at label %llu", labels,
                  (unsigned long long)r);
    for (size_t i = 0; i < m && !strcmp(task, "binary"); ++i)
      DPT_TRY_CHECK(yb[i] <= 1, DPT_ERR_FORMAT, "%s: item %llu: label %d with task binary (expected 0 or 1)", labels,
                    (unsigned long long)(r + i), yb[i]);
    DPT_TRY(dpt_h5out_write(&o, (int64_t)m, H5T_NATIVE_UINT8, xb, H5T_NATIVE_UINT8, yb));
  }
  DPT_TRY(dpt_h5out_finish(&o, task, 1.0 / 255.0, NULL, 0));
done:
  if (st != DPT_OK) dpt_h5out_abort(&o);
  if (xi.f) fclose(xi.f);
  if (yi.f) fclose(yi.f);
  dpt_free(&xb);
  dpt_free(&yb);
  return st;
}

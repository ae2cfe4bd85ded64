/* cmd_inspect.c — `dptrain inspect FILE [--all]`: describes an HDF5 dataset (data/FORMAT.md).
 *
 * Rank 0 reads the file serially, streaming each dataset in blocks of rows (bounded memory:
 * at most ~8 MiB per block whatever the file's size) and prints, for /X, /y, /X_val, /y_val:
 * shape, element type, layout (contiguous or chunk shape), filters, and
 *   - float or uint8 data: per-column min / max / mean and the count of non-finite values
 *     (with the first row holding one);
 *   - integer labels: the class balance (count and share per label) and negative labels.
 * Then every rank opens the file through dpt_dataset_open (the same validation as training):
 * "valid: yes" or the one-line error, and the exit code says which (0 valid, 1 not). */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dptrain/dataset.h"

#define INSPECT_BLOCK_VALUES ((size_t)1 << 20) /* doubles per streamed block (8 MiB) */
#define INSPECT_MAX_CLASSES ((int64_t)1 << 20) /* histogram limit for integer labels */
#define INSPECT_SHOWN_COLUMNS 16               /* columns listed without --all */

static void usage(FILE *f) {
  fprintf(f,
          "usage: dptrain inspect FILE.h5 [--all]\n\n"
          "Prints the shapes, element types, chunking and filters of /X, /y (and /X_val, /y_val),\n"
          "the class balance of integer labels, per-column min/max/mean and the count of non-finite\n"
          "values (--all lists every column, else the first %d), then validates the file as\n"
          "`dptrain train` would. Exit code 0 when the file is a valid dataset, 1 otherwise.\n",
          INSPECT_SHOWN_COLUMNS);
}

static const char *type_name(hid_t t, char *buf, size_t len) {
  H5T_class_t cls = H5Tget_class(t);
  size_t sz = H5Tget_size(t);
  if (cls == H5T_FLOAT)
    snprintf(buf, len, "float%zu", sz * 8);
  else if (cls == H5T_INTEGER)
    snprintf(buf, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", sz * 8);
  else if (cls == H5T_STRING)
    snprintf(buf, len, "string");
  else
    snprintf(buf, len, "other (HDF5 class %d)", (int)cls);
  return buf;
}

static void print_layout(hid_t d) {
  hid_t p = H5Dget_create_plist(d);
  if (p < 0) return;
  if (H5Pget_layout(p) == H5D_CHUNKED) {
    hsize_t ch[8];
    int r = H5Pget_chunk(p, 8, ch);
    printf("  layout: chunked [");
    for (int i = 0; i < r; ++i) printf("%s%llu", i ? ", " : "", (unsigned long long)ch[i]);
    printf("]\n");
  } else {
    printf("  layout: %s\n", H5Pget_layout(p) == H5D_COMPACT ? "compact" : "contiguous");
  }
  int nf = H5Pget_nfilters(p);
  printf("  filters: ");
  if (nf <= 0) printf("none");
  for (int i = 0; i < nf; ++i) {
    unsigned flags, cd[8];
    size_t ncd = 8;
    char name[64] = "";
    H5Z_filter_t f = H5Pget_filter2(p, (unsigned)i, &flags, &ncd, cd, sizeof name, name, NULL);
    if (f == H5Z_FILTER_DEFLATE && ncd > 0)
      printf("%sgzip(level %u)", i ? ", " : "", cd[0]);
    else if (f == H5Z_FILTER_SHUFFLE)
      printf("%sshuffle", i ? ", " : "");
    else
      printf("%s%s (id %d)", i ? ", " : "", name[0] ? name : "filter", (int)f);
  }
  printf("\n");
  H5Pclose(p);
}

/* Streams a 1-D integer dataset: label range and class balance. */
static dpt_status label_balance(const char *path, const char *name, hid_t d, hsize_t n) {
  dpt_status st = DPT_OK;
  int64_t *buf = NULL, *hist = NULL, hist_len = 0, negative = 0, lo = INT64_MAX, hi = INT64_MIN, first_neg = -1;
  bool too_many = false;
  hid_t fs = H5Dget_space(d), ms = -1;
  size_t block = INSPECT_BLOCK_VALUES;
  DPT_TRY(dpt_alloc(block, sizeof *buf, "inspect label block", &buf));
  for (hsize_t r0 = 0; r0 < n; r0 += block) {
    hsize_t cnt = n - r0 < block ? n - r0 : block;
    ms = H5Screate_simple(1, &cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &r0, NULL, &cnt, NULL);
    herr_t e = H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    ms = -1;
    DPT_TRY_CHECK(e >= 0, DPT_ERR_IO, "%s: /%s: reading rows %llu..%llu failed (truncated file?)", path, name,
                  (unsigned long long)r0, (unsigned long long)(r0 + cnt));
    for (hsize_t i = 0; i < cnt; ++i) {
      int64_t v = buf[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (v < 0) {
        if (first_neg < 0) first_neg = (int64_t)(r0 + i);
        ++negative;
        continue;
      }
      if (too_many || v >= INSPECT_MAX_CLASSES) {
        too_many = true;
        continue;
      }
      if (v >= hist_len) {
        int64_t len = hist_len ? hist_len : 16;
        while (len <= v) len *= 2;
        int64_t *h = realloc(hist, (size_t)len * sizeof *h);
        DPT_TRY_CHECK(h, DPT_ERR_MEMORY, "inspect: out of memory for a %lld-class histogram", (long long)len);
        memset(h + hist_len, 0, (size_t)(len - hist_len) * sizeof *h);
        hist = h;
        hist_len = len;
      }
      ++hist[v];
    }
  }
  printf("  labels: min %lld  max %lld\n", (long long)lo, (long long)hi);
  if (negative) printf("  negative labels: %lld (first at row %lld)\n", (long long)negative, (long long)first_neg);
  if (too_many) {
    printf("  class balance: not shown (labels reach %lld, more than %lld classes)\n", (long long)hi,
           (long long)INSPECT_MAX_CLASSES);
  } else {
    printf("  class balance:\n");
    for (int64_t c = 0; c <= hi && c < hist_len; ++c)
      printf("    %lld: %lld (%.2f%%)\n", (long long)c, (long long)hist[c], 100.0 * (double)hist[c] / (double)n);
  }
done:
  if (ms >= 0) H5Sclose(ms);
  H5Sclose(fs);
  dpt_free(&buf);
  free(hist);
  return st;
}

/* Streams an [N] or [N, k] numeric dataset: per-column min/max/mean, non-finite count. */
static dpt_status column_stats(const char *path, const char *name, hid_t d, hsize_t n, hsize_t k, bool all) {
  dpt_status st = DPT_OK;
  double *buf = NULL, *mn = NULL, *mx = NULL, *sum = NULL;
  int64_t nonfinite = 0, first_bad = -1;
  hid_t fs = H5Dget_space(d), ms = -1;
  int rank = H5Sget_simple_extent_ndims(fs);
  hsize_t block = INSPECT_BLOCK_VALUES / k ? INSPECT_BLOCK_VALUES / k : 1;
  DPT_TRY(dpt_alloc((size_t)(block * k), sizeof *buf, "inspect block", &buf));
  DPT_TRY(dpt_alloc((size_t)k, sizeof *mn, "inspect min", &mn));
  DPT_TRY(dpt_alloc((size_t)k, sizeof *mx, "inspect max", &mx));
  DPT_TRY(dpt_calloc((size_t)k, sizeof *sum, "inspect sum", &sum));
  for (hsize_t j = 0; j < k; ++j) {
    mn[j] = INFINITY;
    mx[j] = -INFINITY;
  }
  for (hsize_t r0 = 0; r0 < n; r0 += block) {
    hsize_t cnt = n - r0 < block ? n - r0 : block;
    hsize_t start[2] = {r0, 0}, count[2] = {cnt, k};
    ms = H5Screate_simple(rank, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    herr_t e = H5Dread(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    ms = -1;
    DPT_TRY_CHECK(e >= 0, DPT_ERR_IO, "%s: /%s: reading rows %llu..%llu failed (truncated file?)", path, name,
                  (unsigned long long)r0, (unsigned long long)(r0 + cnt));
    for (hsize_t i = 0; i < cnt; ++i)
      for (hsize_t j = 0; j < k; ++j) {
        double v = buf[i * k + j];
        if (!isfinite(v)) {
          if (first_bad < 0) first_bad = (int64_t)(r0 + i);
          ++nonfinite;
          continue;
        }
        if (v < mn[j]) mn[j] = v;
        if (v > mx[j]) mx[j] = v;
        sum[j] += v;
      }
  }
  printf("  non-finite values: %lld", (long long)nonfinite);
  if (nonfinite) printf(" (first at row %lld)", (long long)first_bad);
  printf("\n  column statistics (finite values; stored values, before any scale):\n");
  hsize_t shown = all || k <= INSPECT_SHOWN_COLUMNS ? k : INSPECT_SHOWN_COLUMNS;
  for (hsize_t j = 0; j < shown; ++j)
    printf("    %llu: min %.6g  max %.6g  mean %.6g\n", (unsigned long long)j, mn[j], mx[j], sum[j] / (double)n);
  if (shown < k) printf("    ... %llu more columns (--all lists them)\n", (unsigned long long)(k - shown));
done:
  if (ms >= 0) H5Sclose(ms);
  H5Sclose(fs);
  dpt_free(&buf);
  dpt_free(&mn);
  dpt_free(&mx);
  dpt_free(&sum);
  return st;
}

static dpt_status describe(const char *path, hid_t file, const char *name, bool all) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return DPT_OK;
  hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  DPT_CHECK(d >= 0, DPT_ERR_FORMAT, "%s: /%s: not a dataset", path, name);
  hid_t s = H5Dget_space(d), t = H5Dget_type(d);
  int rank = H5Sget_simple_extent_ndims(s);
  hsize_t dims[8] = {0};
  if (rank > 0 && rank <= 8) H5Sget_simple_extent_dims(s, dims, NULL);
  char tn[64];
  printf("/%s: [", name);
  for (int i = 0; i < rank && i < 8; ++i) printf("%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  printf("] %s\n", type_name(t, tn, sizeof tn));
  print_layout(d);
  if (H5Aexists(d, "scale") > 0) {
    hid_t a = H5Aopen(d, "scale", H5P_DEFAULT);
    double sc = NAN;
    if (a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &sc) >= 0) printf("  attribute scale: %.9g\n", sc);
    if (a >= 0) H5Aclose(a);
  }
  H5T_class_t cls = H5Tget_class(t);
  dpt_status st = DPT_OK;
  if (rank == 1 && cls == H5T_INTEGER && dims[0] > 0)
    st = label_balance(path, name, d, dims[0]);
  else if ((rank == 1 || rank == 2) && (cls == H5T_FLOAT || cls == H5T_INTEGER) && dims[0] > 0 &&
           (rank == 1 || (dims[1] > 0 && dims[1] < ((hsize_t)1 << 24))))
    st = column_stats(path, name, d, dims[0], rank == 2 ? dims[1] : 1, all);
  else
    printf("  (no statistics: expected [N] labels or a non-empty [N, k] numeric array)\n");
  H5Tclose(t);
  H5Sclose(s);
  H5Dclose(d);
  return st;
}

static void print_root_attrs(hid_t file) {
  const char *names[] = {"task", "classes"};
  for (int i = 0; i < 2; ++i) {
    if (H5Aexists(file, names[i]) <= 0) continue;
    hid_t a = H5Aopen(file, names[i], H5P_DEFAULT), t = H5Aget_type(a), s = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    printf("attribute %s:", names[i]);
    size_t size = H5Tget_size(t);
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) <= 0 && n > 0 && n < 65536 && size > 0 &&
        size <= 4096) { /* fixed-length strings (h5py's np.bytes_, the seed files), not NUL-terminated when full */
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, size);
      char *v = malloc((size_t)n * size);
      if (v && H5Aread(a, mt, v) >= 0)
        for (hssize_t j = 0; j < n; ++j) printf(" %.*s", (int)size, v + (size_t)j * size);
      else
        printf(" (unreadable)");
      free(v);
      H5Tclose(mt);
    } else if (H5Tget_class(t) == H5T_STRING && n > 0 && n < 65536) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      char **v = calloc((size_t)n, sizeof *v);
      if (v && H5Aread(a, mt, v) >= 0) {
        for (hssize_t j = 0; j < n; ++j) printf(" %s", v[j] ? v[j] : "");
        H5Dvlen_reclaim(mt, s, H5P_DEFAULT, v);
      } else {
        printf(" (unreadable)");
      }
      free(v);
      H5Tclose(mt);
    } else {
      printf(" (not a string)");
    }
    printf("\n");
    H5Sclose(s);
    H5Tclose(t);
    H5Aclose(a);
  }
}

static dpt_status inspect_rank0(const char *path, bool all) {
  htri_t is = H5Fis_hdf5(path);
  DPT_CHECK(is >= 0, DPT_ERR_IO, "%s: cannot read the file (missing or unreadable)", path);
  DPT_CHECK(is > 0, DPT_ERR_FORMAT, "%s: not an HDF5 file (expected dptrain's layout, data/FORMAT.md)", path);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  DPT_CHECK(file >= 0, DPT_ERR_FORMAT, "%s: cannot open as HDF5 (truncated or damaged?)", path);
  printf("file: %s\n", path);
  print_root_attrs(file);
  dpt_status st = DPT_OK;
  const char *names[] = {"X", "y", "X_val", "y_val"};
  for (int i = 0; i < 4 && st == DPT_OK; ++i) st = describe(path, file, names[i], all);
  H5Fclose(file);
  fflush(stdout);
  return st;
}

int dpt_cmd_inspect(const dpt_comm *c, int argc, char **argv) {
  const char *path = NULL;
  bool all = false;
  dpt_status st = DPT_OK;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      if (c->rank == 0) usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--all"))
      all = true;
    else if (argv[i][0] == '-' && st == DPT_OK)
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "inspect: unknown option '%s' (expected --all)",
                         argv[i]);
    else if (!path)
      path = argv[i];
    else if (st == DPT_OK)
      st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                         "inspect: expected one FILE argument, got a second one '%s'", argv[i]);
  }
  if (st == DPT_OK && !path)
    st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "inspect: expected a FILE argument (dptrain inspect FILE.h5)");
  int rc = dpt_cli_finish(c, st);
  if (rc) return rc;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  st = c->rank == 0 ? inspect_rank0(path, all) : DPT_OK;
  rc = dpt_cli_finish(c, st);
  if (rc) return rc;
  dpt_dataset *ds = NULL;
  st = dpt_dataset_open(c, path, "train", &ds);
  if (st == DPT_OK && c->rank == 0)
    printf("valid: yes (task %s, %lld rows, %lld features, %lld outputs%s)\n", dpt_task_name(dpt_dataset_task(ds)),
           (long long)dpt_dataset_rows(ds), (long long)dpt_dataset_features(ds), (long long)dpt_dataset_outputs(ds),
           dpt_dataset_has_val(ds) ? ", with a validation split" : "");
  if (st == DPT_OK && dpt_dataset_has_val(ds)) {
    dpt_dataset *v = NULL;
    st = dpt_dataset_open(c, path, "val", &v);
    dpt_dataset_close(&v);
  }
  dpt_dataset_close(&ds);
  if (st != DPT_OK && c->rank == 0) printf("valid: no\n");
  fflush(stdout);
  return dpt_cli_finish(c, st);
}

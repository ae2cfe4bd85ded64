/* convert_csv.c — CSV (header row, comma-separated numbers, one label column chosen by name)
 * to HDF5, in two streaming passes over the file:
 *   1. count rows, check every row has the header's field count and numeric features, and
 *      collect the distinct labels (classification) or check they are numbers (regression);
 *   2. write blocks of rows.
 * Classification labels are mapped to 0 .. K-1 in numeric order when every label is an
 * integer, else in byte order of the strings, and recorded in the root `classes` attribute.
 * Integer labels are classes by value ("1", "01" and "+1" are one class, named "1").
 * Task: --task, else regression when a label is a non-integer number, binary for 2 classes,
 * else multiclass. With --dtype f32 every value written must be within the f32 range.
 * Memory: one line, one block of rows, the distinct labels (≤ 65536). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "dptrain/types.h"
#include "dptrain/watchdog.h"

#define CSV_MAX_CLASSES 65536
#define CSV_BLOCK_VALUES ((size_t)1 << 20)

typedef struct labels {
  char **v;     /* owned strings: in byte order while reading, then sorted by labels_sort */
  int64_t n, cap;
  bool all_int; /* every label parses as an integer */
  bool all_num; /* every label parses as a finite number */
  int64_t full; /* first line whose label did not fit in the full set (0: none) */
} labels;

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) ++s;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) --e;
  *e = 0;
  if (e - s >= 2 && *s == '"' && e[-1] == '"') {
    e[-1] = 0;
    ++s;
  }
  return s;
}

/* Splits line in place at commas; returns the field count (fields[] holds at most max). */
static int64_t split(char *line, char **fields, int64_t max) {
  int64_t n = 0;
  char *p = line;
  for (;;) {
    char *c = strchr(p, ',');
    if (c) *c = 0;
    if (n < max) fields[n] = trim(p);
    ++n;
    if (!c) break;
    p = c + 1;
  }
  return n;
}

/* A number spelled by the whole of s (an overflow gives ±inf, an underflow a tiny or zero value). */
static bool parse_num(const char *s, double *v) {
  char *end;
  *v = strtod(s, &end);
  return *s && !*end;
}

/* Whether a finite v converts to the output type (a double beyond FLT_MAX has no float). */
static bool fits(double v, bool f64) { return f64 || fabs(v) <= FLT_MAX; }

/* Whether a line holds nothing but whitespace (skipped like an empty line). */
static bool blank(const char *s) {
  while (isspace((unsigned char)*s)) ++s;
  return !*s;
}

static int cmp_label_int;
static int cmp_label(const void *a, const void *b) {
  const char *x = *(char *const *)a, *y = *(char *const *)b;
  if (cmp_label_int) {
    long long p = strtoll(x, NULL, 10), q = strtoll(y, NULL, 10);
    return (p > q) - (p < q);
  }
  return strcmp(x, y);
}

static bool is_int(const char *s) {
  char *end;
  errno = 0;
  (void)strtoll(s, &end, 10);
  return *s && !*end && errno == 0;
}

/* Inserts s into the set, kept in byte order (a binary search per row, not a scan of K); when
 * the set is full, notes the line instead (an error unless the task turns out regression). */
static dpt_status label_add(labels *L, const char *s, const char *path, int64_t line) {
  int64_t lo = 0, hi = L->n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2, c = strcmp(L->v[mid], s);
    if (c == 0) return DPT_OK;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  if (L->n == CSV_MAX_CLASSES) {
    if (!L->full) L->full = line;
    return DPT_OK;
  }
  if (L->n == L->cap) {
    int64_t cap = L->cap ? 2 * L->cap : 16;
    char **v = realloc(L->v, (size_t)cap * sizeof *v);
    DPT_CHECK(v, DPT_ERR_MEMORY, "%s: out of memory for the label set", path);
    L->v = v;
    L->cap = cap;
  }
  char *copy;
  DPT_CALL(dpt_strdup(s, "label", &copy));
  memmove(L->v + lo + 1, L->v + lo, (size_t)(L->n - lo) * sizeof *L->v);
  L->v[lo] = copy;
  L->n++;
  return DPT_OK;
}

static int64_t label_index(const labels *L, const char *s) {
  char *const *hit = bsearch(&s, L->v, (size_t)L->n, sizeof *L->v, cmp_label);
  return hit ? hit - L->v : -1;
}

/* cmp_label, then equal integers by spelling: the shortest first, then in byte order. */
static int cmp_label_spelling(const void *a, const void *b) {
  int c = cmp_label(a, b);
  if (c) return c;
  const char *x = *(char *const *)a, *y = *(char *const *)b;
  size_t p = strlen(x), q = strlen(y);
  return p != q ? (p > q) - (p < q) : strcmp(x, y);
}

/* Sorts the set (by value when every label is an integer, else by bytes) and keeps one label
 * of each value: integer labels spelled differently ("1", "01", "+1") are one class, named
 * by its shortest spelling. */
static void labels_sort(labels *L) {
  cmp_label_int = L->all_int;
  qsort(L->v, (size_t)L->n, sizeof *L->v, cmp_label_spelling);
  int64_t m = 0;
  for (int64_t i = 0; i < L->n; ++i) {
    if (m > 0 && cmp_label(&L->v[m - 1], &L->v[i]) == 0) dpt_free(&L->v[i]);
    else L->v[m++] = L->v[i];
  }
  L->n = m;
}

dpt_status dpt_convert_csv(const char *csv, const char *label, const dpt_convert_args *args) {
  dpt_status st = DPT_OK;
  FILE *f = NULL;
  char *line = NULL, **fields = NULL;
  size_t cap = 0;
  labels L = {.all_int = true, .all_num = true};
  dpt_h5out o = {.file = -1, .X = -1, .y = -1};
  void *xb = NULL;
  void *yb = NULL;
  f = fopen(csv, "r");
  DPT_TRY_CHECK(f, DPT_ERR_IO, "%s: cannot open (missing or unreadable)", csv);
  DPT_TRY_CHECK(getline(&line, &cap, f) > 0, DPT_ERR_FORMAT, "%s: empty (expected a header row)", csv);
  int64_t ncol = 1;
  for (const char *p = line; *p; ++p) ncol += *p == ',';
  DPT_TRY_CHECK(ncol >= 2 && ncol < (1 << 24), DPT_ERR_FORMAT,
                "%s: header has %lld columns (expected a label column and at least one feature)", csv, (long long)ncol);
  DPT_TRY(dpt_alloc((size_t)ncol, sizeof *fields, "CSV fields", &fields));
  split(line, fields, ncol);
  int64_t lab = -1;
  for (int64_t j = 0; j < ncol; ++j)
    if (!strcmp(fields[j], label)) lab = j;
  DPT_TRY_CHECK(lab >= 0, DPT_ERR_INPUT, "%s: no column named '%s' in the header (--label)", csv, label);
  bool f64 = args->dtype && !strcmp(args->dtype, "f64");
  int64_t d = ncol - 1, n = 0, lineno = 1, wide_label = 0; /* wide_label: first line of a label beyond f32 */
  /* pass 1 */
  while (getline(&line, &cap, f) > 0) {
    ++lineno;
    dpt_watchdog_progress();
    if (blank(line)) continue;
    int64_t nf = split(line, fields, ncol);
    DPT_TRY_CHECK(nf == ncol, DPT_ERR_FORMAT, "%s: line %lld: %lld fields (the header has %lld)", csv,
                  (long long)lineno, (long long)nf, (long long)ncol);
    for (int64_t j = 0; j < ncol; ++j) {
      double v;
      bool num = parse_num(fields[j], &v) && isfinite(v);
      if (j == lab) {
        if (num && !fits(v, f64) && !wide_label) wide_label = lineno;
        L.all_num &= num;
        L.all_int &= is_int(fields[j]);
        if (!args->task || strcmp(args->task, "regression")) DPT_TRY(label_add(&L, fields[j], csv, lineno));
        if (args->task && !strcmp(args->task, "regression"))
          DPT_TRY_CHECK(num, DPT_ERR_FORMAT, "%s: line %lld: column %s: '%s' is not a finite number (task regression)",
                        csv, (long long)lineno, label, fields[j]);
      } else {
        DPT_TRY_CHECK(num, DPT_ERR_FORMAT, "%s: line %lld: column %lld: '%s' is not a finite number", csv,
                      (long long)lineno, (long long)(j + 1), fields[j]);
        DPT_TRY_CHECK(fits(v, f64), DPT_ERR_FORMAT,
                      "%s: line %lld: column %lld: '%s' is beyond the f32 range (expected |x| <= 3.4e38, or "
                      "--dtype f64)", csv, (long long)lineno, (long long)(j + 1), fields[j]);
      }
    }
    ++n;
  }
  DPT_TRY_CHECK(!ferror(f), DPT_ERR_IO, "%s: read error", csv);
  DPT_TRY_CHECK(n > 0, DPT_ERR_FORMAT, "%s: no data rows after the header", csv);
  const char *task = args->task;
  if (!task) task = L.all_num && !L.all_int ? "regression" : "multiclass"; /* binary: below, for 2 classes */
  bool regression = !strcmp(task, "regression");
  if (!regression) {
    DPT_TRY_CHECK(!L.full, DPT_ERR_FORMAT,
                  "%s: line %lld: column %s has more than %d distinct labels (expected classes; regression? use --task "
                  "regression)", csv, (long long)L.full, label, CSV_MAX_CLASSES);
    labels_sort(&L);
    DPT_TRY_CHECK(strcmp(task, "binary") || L.n <= 2, DPT_ERR_FORMAT,
                  "%s: column %s has %lld distinct labels (task binary needs 2)", csv, label, (long long)L.n);
    if (!args->task && L.n == 2) task = "binary";
  } else {
    DPT_TRY_CHECK(!wide_label, DPT_ERR_FORMAT,
                  "%s: line %lld: column %s: target beyond the f32 range (expected |y| <= 3.4e38, or --dtype f64)", csv,
                  (long long)wide_label, label);
  }
  size_t es = f64 ? 8 : 4;
  int64_t block = (int64_t)(CSV_BLOCK_VALUES / (size_t)ncol);
  if (block < 1) block = 1;
  if (block > n) block = n;
  DPT_TRY(dpt_alloc((size_t)block * (size_t)d, es, "CSV X block", &xb));
  DPT_TRY(dpt_alloc((size_t)block, 8, "CSV y block", &yb));
  DPT_TRY(dpt_h5out_create(&o, args->out, n, d, f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, regression ? 1 : 0,
                           regression ? (f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE) : H5T_STD_I32LE, &args->opts));
  /* pass 2 */
  rewind(f);
  DPT_TRY_CHECK(getline(&line, &cap, f) > 0, DPT_ERR_IO, "%s: changed while converting", csv);
  int64_t m = 0;
  lineno = 1;
  while (getline(&line, &cap, f) > 0) {
    ++lineno;
    dpt_watchdog_progress();
    if (blank(line)) continue;
    DPT_TRY_CHECK(split(line, fields, ncol) == ncol, DPT_ERR_IO, "%s: line %lld: changed while converting", csv,
                  (long long)lineno);
    for (int64_t j = 0, c = 0; j < ncol; ++j) {
      double v = 0;
      if (j == lab) {
        if (regression) {
          parse_num(fields[j], &v);
          if (f64) ((double *)yb)[m] = v;
          else ((float *)yb)[m] = (float)v;
        } else {
          ((int32_t *)yb)[m] = (int32_t)label_index(&L, fields[j]);
        }
        continue;
      }
      parse_num(fields[j], &v);
      if (f64) ((double *)xb)[m * d + c++] = v;
      else ((float *)xb)[m * d + c++] = (float)v;
    }
    if (++m == block) {
      DPT_TRY(dpt_h5out_write(&o, m, f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, xb,
                              regression ? (f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT) : H5T_NATIVE_INT32, yb));
      m = 0;
    }
  }
  DPT_TRY(dpt_h5out_write(&o, m, f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, xb,
                          regression ? (f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT) : H5T_NATIVE_INT32, yb));
  DPT_TRY(dpt_h5out_finish(&o, task, 0, regression ? NULL : L.v, regression ? 0 : L.n));
done:
  if (st != DPT_OK) dpt_h5out_abort(&o);
  if (f) fclose(f);
  free(line);
  dpt_free(&fields);
  dpt_free(&xb);
  dpt_free(&yb);
  for (int64_t i = 0; i < L.n; ++i) dpt_free(&L.v[i]);
  free(L.v);
  return st;
}

/* generate.c — dpt-generate: small deterministic datasets in dptrain's HDF5 layout
 * (data/FORMAT.md). Serial: run it as one process.
 *
 *   dpt-generate seed OUT.h5 [--seed S]
 *       the seed lecture's regression example: N = 30, x ~ N(0, 1), y = 3x + 2 + U(-0.1, 0.1)
 *   dpt-generate spiral OUT.h5 [--rows N] [--classes K] [--seed S] [--val M]
 *       K interleaved 2-D spirals with Gaussian noise (needs a nonlinear model)
 *   dpt-generate moons OUT.h5 [--rows N] [--seed S] [--val M]       two moons, binary
 *   dpt-generate sine OUT.h5 [--rows N] [--seed S] [--val M]        y = sin(x), x ~ U(-pi, pi)
 *   dpt-generate synthetic OUT.h5 --rows N --features D [--classes K] [--seed S] [--dtype f32|f64]
 *       x ~ N(0, 1); labels of a random linear teacher (K classes) or its output (K = 0:
 *       regression); for benchmarks and scaling studies; written in chunks (bounded memory)
 *
 * The file is written under OUT.h5.tmp and renamed, so a failed run never leaves a partial
 * file under the final name. Exit status 0 on success, 1 with a one-line message otherwise. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

typedef struct rng {
  uint64_t s;
} rng;

/* splitmix64: small, seedable, identical on every platform. */
static uint64_t rng_next(rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
/* uniform in [0, 1) with 53 random bits */
static double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }
/* standard normal, Box-Muller (one value per call, the pair's second discarded: simple) */
static double rng_normal(rng *r) {
  double u1 = rng_uniform(r), u2 = rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2);
}

static int fail(const char *msg, const char *what) {
  fprintf(stderr, "dpt-generate: error: %s: %s\n", what, msg);
  return 1;
}

typedef struct out_file {
  hid_t file;
  char tmp[4096];
  const char *path;
} out_file;

static int out_open(out_file *o, const char *path) {
  o->path = path;
  if (snprintf(o->tmp, sizeof o->tmp, "%s.tmp", path) >= (int)sizeof o->tmp) return fail("path too long", path);
  o->file = H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (o->file < 0) return fail("cannot create the file", o->tmp);
  return 0;
}

static int out_close(out_file *o, int ok) {
  herr_t e = H5Fclose(o->file);
  if (!ok || e < 0) {
    remove(o->tmp);
    return ok ? fail("cannot close the file", o->tmp) : 1;
  }
  if (rename(o->tmp, o->path) != 0) {
    remove(o->tmp);
    return fail("cannot rename the temporary file into place", o->path);
  }
  return 0;
}

static int write_attr_string(hid_t obj, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
  H5Tset_size(type, strlen(value) + 1);
  hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = attr >= 0 ? H5Awrite(attr, type, value) : -1;
  if (attr >= 0) H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  return e < 0 ? -1 : 0;
}

/* Writes a whole 1-D or 2-D dataset (chunked by rows). */
static int write_dataset(hid_t file, const char *name, hid_t memtype, hid_t filetype, int rank, hsize_t n,
                         hsize_t d, const void *data) {
  hsize_t dims[2] = {n, d}, chunk[2] = {n < 4096 ? (n ? n : 1) : 4096, d ? d : 1};
  hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, rank, chunk);
  hid_t ds = H5Dcreate2(file, name, filetype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  herr_t e = ds >= 0 ? H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
  if (ds >= 0) H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  return e < 0 ? -1 : 0;
}

/* One split (train or val) held in memory: X [n, d] double, labels or values. */
typedef struct split {
  int64_t n, d, k; /* k: classes (labels) or target width (values) */
  double *X, *values;
  int32_t *labels;
} split;

static int write_split(hid_t file, const split *s, const char *xname, const char *yname) {
  if (write_dataset(file, xname, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 2, (hsize_t)s->n, (hsize_t)s->d, s->X)) return -1;
  if (s->labels) return write_dataset(file, yname, H5T_NATIVE_INT32, H5T_STD_I32LE, 1, (hsize_t)s->n, 0, s->labels);
  return write_dataset(file, yname, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 2, (hsize_t)s->n, (hsize_t)s->k, s->values);
}

static int alloc_split(split *s, int64_t n, int64_t d, int64_t k, int classification) {
  memset(s, 0, sizeof *s);
  s->n = n;
  s->d = d;
  s->k = k;
  s->X = calloc((size_t)(n * d + 1), sizeof(double));
  if (classification)
    s->labels = calloc((size_t)n + 1, sizeof(int32_t));
  else
    s->values = calloc((size_t)(n * k + 1), sizeof(double));
  return s->X && (s->labels || s->values) ? 0 : -1;
}

static void free_split(split *s) {
  free(s->X);
  free(s->values);
  free(s->labels);
}

typedef enum kind { SEED, SPIRAL, MOONS, SINE } kind;

static void fill(kind k, rng *r, split *s) {
  for (int64_t i = 0; i < s->n; ++i) {
    double *x = s->X + i * s->d;
    switch (k) {
    case SEED:
      x[0] = rng_normal(r);
      s->values[i] = 3.0 * x[0] + 2.0 + (rng_uniform(r) * 0.2 - 0.1);
      break;
    case SPIRAL: {
      int32_t c = (int32_t)(i % s->k);
      double t = rng_uniform(r), ang = 4.0 * t + 2.0 * PI * c / (double)s->k;
      x[0] = t * cos(ang) + 0.04 * rng_normal(r);
      x[1] = t * sin(ang) + 0.04 * rng_normal(r);
      s->labels[i] = c;
      break;
    }
    case MOONS: {
      int32_t c = (int32_t)(i % 2);
      double a = PI * rng_uniform(r);
      x[0] = c ? 1.0 - cos(a) : cos(a);
      x[1] = c ? 0.5 - sin(a) : sin(a);
      x[0] += 0.1 * rng_normal(r);
      x[1] += 0.1 * rng_normal(r);
      s->labels[i] = c;
      break;
    }
    case SINE:
      x[0] = -PI + 2.0 * PI * rng_uniform(r);
      s->values[i] = sin(x[0]);
      break;
    }
  }
}

static int gen_small(kind k, const char *path, int64_t n, int64_t classes, int64_t nval, uint64_t seed) {
  int64_t d = (k == SEED || k == SINE) ? 1 : 2, kk = (k == SEED || k == SINE) ? 1 : classes;
  int classification = !(k == SEED || k == SINE);
  const char *task = k == SEED || k == SINE ? "regression" : (kk == 2 ? "binary" : "multiclass");
  rng r = {seed};
  split tr, va;
  if (alloc_split(&tr, n, d, kk, classification) || alloc_split(&va, nval, d, kk, classification))
    return fail("out of memory", path);
  fill(k, &r, &tr);
  fill(k, &r, &va);
  out_file o;
  if (out_open(&o, path)) return 1;
  int ok = write_split(o.file, &tr, "X", "y") == 0 && (nval == 0 || write_split(o.file, &va, "X_val", "y_val") == 0) &&
           write_attr_string(o.file, "task", task) == 0;
  free_split(&tr);
  free_split(&va);
  return out_close(&o, ok) || !ok ? fail("cannot write the datasets", path) : 0;
}

/* Large synthetic set, written in blocks of rows so memory stays bounded. */
static int gen_synthetic(const char *path, int64_t n, int64_t d, int64_t classes, uint64_t seed, int f64) {
  int64_t k = classes > 0 ? classes : 1;
  rng r = {seed};
  double *teacher = malloc(sizeof(double) * (size_t)(k * d));
  if (!teacher) return fail("out of memory", path);
  for (int64_t i = 0; i < k * d; ++i) teacher[i] = rng_normal(&r) / sqrt((double)d);
  out_file o;
  if (out_open(&o, path)) {
    free(teacher);
    return 1;
  }
  hsize_t dims[2] = {(hsize_t)n, (hsize_t)d}, ydims[2] = {(hsize_t)n, (hsize_t)k};
  hsize_t block = 8192, chunk[2] = {n < (int64_t)block ? (hsize_t)(n ? n : 1) : block, (hsize_t)d};
  hid_t xs = H5Screate_simple(2, dims, NULL), ys = H5Screate_simple(classes > 0 ? 1 : 2, ydims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), ycpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 2, chunk);
  hsize_t ychunk[2] = {chunk[0], (hsize_t)k};
  H5Pset_chunk(ycpl, classes > 0 ? 1 : 2, ychunk);
  hid_t ftype = f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
  hid_t xd = H5Dcreate2(o.file, "X", ftype, xs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  hid_t yd = H5Dcreate2(o.file, "y", classes > 0 ? H5T_STD_I32LE : ftype, ys, H5P_DEFAULT, ycpl, H5P_DEFAULT);
  double *xb = malloc(sizeof(double) * block * (size_t)d), *yv = malloc(sizeof(double) * block * (size_t)k);
  int32_t *yl = malloc(sizeof(int32_t) * block);
  int ok = xd >= 0 && yd >= 0 && xb && yv && yl;
  for (int64_t row = 0; ok && row < n; row += (int64_t)block) {
    hsize_t m = (hsize_t)(n - row < (int64_t)block ? n - row : (int64_t)block);
    for (hsize_t i = 0; i < m; ++i) {
      double *x = xb + i * (size_t)d;
      for (int64_t j = 0; j < d; ++j) x[j] = rng_normal(&r);
      int32_t best = 0;
      double bestv = -HUGE_VAL;
      for (int64_t c = 0; c < k; ++c) {
        double s = 0;
        for (int64_t j = 0; j < d; ++j) s += teacher[c * d + j] * x[j];
        yv[i * (size_t)k + (size_t)c] = s;
        if (s > bestv) bestv = s, best = (int32_t)c;
      }
      yl[i] = best;
    }
    hsize_t start[2] = {(hsize_t)row, 0}, cnt[2] = {m, (hsize_t)d}, ycnt[2] = {m, (hsize_t)k};
    hid_t mx = H5Screate_simple(2, cnt, NULL), my = H5Screate_simple(classes > 0 ? 1 : 2, ycnt, NULL);
    H5Sselect_hyperslab(xs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    H5Sselect_hyperslab(ys, H5S_SELECT_SET, start, NULL, ycnt, NULL);
    ok = H5Dwrite(xd, H5T_NATIVE_DOUBLE, mx, xs, H5P_DEFAULT, xb) >= 0 &&
         H5Dwrite(yd, classes > 0 ? H5T_NATIVE_INT32 : H5T_NATIVE_DOUBLE, my, ys, H5P_DEFAULT,
                  classes > 0 ? (void *)yl : (void *)yv) >= 0;
    H5Sclose(mx);
    H5Sclose(my);
  }
  ok = ok && write_attr_string(o.file, "task", classes > 2 ? "multiclass" : classes == 2 ? "binary" : "regression") == 0;
  if (xd >= 0) H5Dclose(xd);
  if (yd >= 0) H5Dclose(yd);
  H5Sclose(xs);
  H5Sclose(ys);
  H5Pclose(dcpl);
  H5Pclose(ycpl);
  free(xb);
  free(yv);
  free(yl);
  free(teacher);
  return out_close(&o, ok) || !ok ? fail("cannot write the datasets", path) : 0;
}

static int parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  long long x = strtoll(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
    fprintf(stderr, "dpt-generate: error: %s: expected an integer in [%lld, %lld], got '%s'\n", flag, (long long)lo,
            (long long)hi, v);
    return -1;
  }
  *out = x;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: dpt-generate seed|spiral|moons|sine|synthetic OUT.h5 [--rows N] [--features D] "
                    "[--classes K] [--val M] [--seed S] [--dtype f32|f64]\n");
    return 1;
  }
  int64_t rows = -1, features = 16, classes = -1, val = -1, seed = 20240301;
  int f64 = 0;
  for (int i = 3; i < argc; i += 2) {
    if (i + 1 >= argc) return fail("option needs a value", argv[i]);
    const char *f = argv[i], *v = argv[i + 1];
    int bad = 0;
    if (!strcmp(f, "--rows")) bad = parse_i64(f, v, 1, INT64_C(1) << 40, &rows);
    else if (!strcmp(f, "--features")) bad = parse_i64(f, v, 1, 1 << 20, &features);
    else if (!strcmp(f, "--classes")) bad = parse_i64(f, v, 0, 1 << 20, &classes);
    else if (!strcmp(f, "--val")) bad = parse_i64(f, v, 0, INT64_C(1) << 40, &val);
    else if (!strcmp(f, "--seed")) bad = parse_i64(f, v, 0, INT64_MAX, &seed);
    else if (!strcmp(f, "--dtype")) {
      if (strcmp(v, "f32") && strcmp(v, "f64")) return fail("expected f32 or f64", "--dtype");
      f64 = !strcmp(v, "f64");
    } else
      return fail("unknown option", f);
    if (bad) return 1;
  }
  const char *what = argv[1], *out = argv[2];
  if (!strcmp(what, "seed")) return gen_small(SEED, out, 30, 1, 0, (uint64_t)seed);
  if (!strcmp(what, "spiral"))
    return gen_small(SPIRAL, out, rows > 0 ? rows : 600, classes > 1 ? classes : 3, val >= 0 ? val : 300, (uint64_t)seed);
  if (!strcmp(what, "moons")) return gen_small(MOONS, out, rows > 0 ? rows : 400, 2, val >= 0 ? val : 200, (uint64_t)seed);
  if (!strcmp(what, "sine")) return gen_small(SINE, out, rows > 0 ? rows : 200, 1, val >= 0 ? val : 100, (uint64_t)seed);
  if (!strcmp(what, "synthetic")) {
    if (rows <= 0) return fail("--rows is required", "synthetic");
    return gen_synthetic(out, rows, features, classes < 0 ? 10 : classes, (uint64_t)seed, f64);
  }
  return fail("unknown dataset kind (expected seed, spiral, moons, sine or synthetic)", what);
}

/* checkpoint_io.c — named records in a parallel HDF5 file: tensors (row blocks per rank,
 * collective transfer, CRC-32 per tensor), scalar/string attributes, atomic commit
 * (tmp -> flush -> close -> fsync -> barrier -> rename -> fsync dir). See checkpoint.h. */
#include "dptrain/checkpoint.h"
#include "h5_mpio.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dpt_ckpt_file {
  dpt_comm c;         /* copy of the caller's value (borrowed communicator) */
  hid_t file;
  bool writing;
  bool marked;        /* has a dptrain `format` attribute: crc32 required on tensors */
  char format[64];
  char path[4096];    /* final name */
  char tmp[4100];     /* path + ".tmp" while writing */
  struct written {    /* checksummed tensors written, verified by dpt_ckpt_commit */
    char name[256];
    dpt_dtype dtype;
    int ndim;
    int64_t shape[DPT_CKPT_MAX_DIMS];
  } *written;         /* owned; [nwritten] of capacity cap_written */
  int nwritten, cap_written;
};

static void free_handle(dpt_ckpt_file **fp) {
  if (*fp) free((*fp)->written);
  dpt_free(fp);
}

/* ---- CRC-32 (slicing by 8) ---------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static bool crc_ready = false;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    crc_table[0][i] = c;
  }
  for (int t = 1; t < 8; ++t)
    for (int i = 0; i < 256; ++i)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
  crc_ready = true;
}

static uint32_t load_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t dpt_crc32(uint32_t crc, const void *buf, size_t n) {
  if (!crc_ready) crc_init();
  const unsigned char *p = buf;
  crc = ~crc;
  while (n >= 8) {
    uint32_t one = load_le32(p) ^ crc, two = load_le32(p + 4);
    crc = crc_table[7][one & 0xff] ^ crc_table[6][(one >> 8) & 0xff] ^ crc_table[5][(one >> 16) & 0xff] ^
          crc_table[4][one >> 24] ^ crc_table[3][two & 0xff] ^ crc_table[2][(two >> 8) & 0xff] ^
          crc_table[1][(two >> 16) & 0xff] ^ crc_table[0][two >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* ---- helpers ---------------------------------------------------------------------------------- */

/* The innermost HDF5 error description (the cause), for messages. */
static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
  if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc);
  return 0;
}

static const char *h5_reason(void) {
  static _Thread_local char buf[256];
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, buf);
  H5Eclear2(H5E_DEFAULT);
  return buf[0] ? buf : "HDF5 call failed";
}

static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static hid_t h5_mem_type(dpt_dtype t) { return t == DPT_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT; }
static hid_t h5_file_type(dpt_dtype t) { return t == DPT_F64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE; }

static dpt_status check_name(const dpt_ckpt_file *f, const char *name) {
  size_t len = name ? strlen(name) : 0;
  DPT_CHECK(len > 0 && len < 256 && name[0] != '/' && name[len - 1] != '/' && !strstr(name, "//"), DPT_ERR_INTERNAL,
            "%s: record name '%s': expected 'group/name' without leading, trailing or double '/'", f->path,
            name ? name : "(null)");
  return DPT_OK;
}

/* Splits "a/b/c" into group "a/b" (or "" for the root) and leaf "c". */
static void split_name(const char *name, char *group, size_t ng, const char **leaf) {
  const char *slash = strrchr(name, '/');
  if (!slash) {
    group[0] = '\0';
    *leaf = name;
  } else {
    snprintf(group, ng, "%.*s", (int)(slash - name), name);
    *leaf = slash + 1;
  }
}

/* Opens group "a/b" (creating missing parts when create); "" is the root. Caller closes. */
static dpt_status open_group(dpt_ckpt_file *f, const char *group, bool create, hid_t *out) {
  *out = H5I_INVALID_HID;
  char path[300] = "/";
  if (!group[0]) {
    *out = H5Gopen2(f->file, "/", H5P_DEFAULT);
    DPT_CHECK(*out >= 0, DPT_ERR_IO, "%s: cannot open the root group: %s", f->path, h5_reason());
    return DPT_OK;
  }
  const char *p = group;
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    size_t used = strlen(path);
    snprintf(path + used, sizeof path - used, "%s%.*s", used > 1 ? "/" : "", (int)len, p);
    htri_t exists = H5Lexists(f->file, path, H5P_DEFAULT);
    DPT_CHECK(exists >= 0, DPT_ERR_FORMAT, "%s: group %s: %s", f->path, path, h5_reason());
    if (!exists) {
      DPT_CHECK(create, DPT_ERR_FORMAT, "%s: group %s: not found", f->path, path);
      hid_t g = H5Gcreate2(f->file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      DPT_CHECK(g >= 0, DPT_ERR_IO, "%s: cannot create group %s: %s", f->path, path, h5_reason());
      H5Gclose(g);
    }
    p += len;
    if (*p == '/') ++p;
  }
  *out = H5Gopen2(f->file, path, H5P_DEFAULT);
  DPT_CHECK(*out >= 0, DPT_ERR_FORMAT, "%s: group %s: %s", f->path, path, h5_reason());
  return DPT_OK;
}

static int64_t shape_elems(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

static void shape_text(int ndim, const int64_t *shape, char *out, size_t n) {
  size_t used = (size_t)snprintf(out, n, "[");
  for (int i = 0; i < ndim && used < n; ++i)
    used += (size_t)snprintf(out + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (used < n) snprintf(out + used, n - used, "]");
}

static dpt_status check_shape(const dpt_ckpt_file *f, const char *name, int ndim, const int64_t *shape) {
  DPT_CHECK(ndim >= 1 && ndim <= DPT_CKPT_MAX_DIMS, DPT_ERR_INTERNAL, "%s: tensor %s: %d dimensions, expected 1..%d",
            f->path, name, ndim, DPT_CKPT_MAX_DIMS);
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) {
    DPT_CHECK(shape[i] >= 0 && (shape[i] == 0 || n <= INT64_MAX / shape[i]), DPT_ERR_INTERNAL,
              "%s: tensor %s: bad dimension %d = %lld", f->path, name, i, (long long)shape[i]);
    n *= shape[i];
  }
  return DPT_OK;
}

/* The file and memory selections of the row block [first, first + nrows) and a collective
 * transfer list, for a collective H5Dread/H5Dwrite that every rank joins (an empty block selects
 * nothing). The caller closes the three ids it gets (also on failure: invalid ones are negative). */
static dpt_status select_rows(const dpt_ckpt_file *f, hid_t dset, const char *name, int ndim, const int64_t *shape,
                              int64_t first, int64_t nrows, hid_t *fspace, hid_t *mspace, hid_t *dxpl) {
  dpt_status st = DPT_OK;
  hsize_t start[DPT_CKPT_MAX_DIMS] = {0}, count[DPT_CKPT_MAX_DIMS];
  for (int i = 0; i < ndim; ++i) count[i] = (hsize_t)shape[i];
  start[0] = (hsize_t)first;
  count[0] = (hsize_t)nrows;
  *fspace = H5Dget_space(dset);
  *dxpl = H5Pcreate(H5P_DATASET_XFER);
  *mspace = H5I_INVALID_HID;
  DPT_TRY_CHECK(*fspace >= 0 && *dxpl >= 0 && H5Pset_dxpl_mpio(*dxpl, H5FD_MPIO_COLLECTIVE) >= 0, DPT_ERR_IO,
                "%s: tensor %s: %s", f->path, name, h5_reason());
  if (nrows > 0) {
    *mspace = H5Screate_simple(ndim, count, NULL);
    DPT_TRY_CHECK(*mspace >= 0 && H5Sselect_hyperslab(*fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0,
                  DPT_ERR_IO, "%s: tensor %s: selection: %s", f->path, name, h5_reason());
  } else {
    hsize_t one = 1;
    *mspace = H5Screate_simple(1, &one, NULL);
    DPT_TRY_CHECK(*mspace >= 0 && H5Sselect_none(*mspace) >= 0 && H5Sselect_none(*fspace) >= 0, DPT_ERR_IO,
                  "%s: tensor %s: selection: %s", f->path, name, h5_reason());
  }
done:
  return st;
}

/* Writes this rank's row block [first, first + nrows) of the dataset (collective). */
static dpt_status write_rows(dpt_ckpt_file *f, hid_t dset, const char *name, dpt_dtype dtype, int ndim,
                             const int64_t *shape, int64_t first, int64_t nrows, const void *rows) {
  dpt_status st = DPT_OK;
  hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
  /* agreed: a rank whose selection failed must not leave the others in the collective write */
  DPT_TRY(dpt_comm_agree(&f->c, select_rows(f, dset, name, ndim, shape, first, nrows, &fspace, &mspace, &dxpl)));
  static const double dummy = 0;
  DPT_TRY_CHECK(H5Dwrite(dset, h5_mem_type(dtype), mspace, fspace, dxpl, nrows > 0 ? rows : (const void *)&dummy) >= 0,
                DPT_ERR_IO, "%s: cannot write tensor %s: %s", f->path, name, h5_reason());
done:
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  if (dxpl >= 0) H5Pclose(dxpl);
  return st;
}

static dpt_status write_attr(dpt_ckpt_file *f, const char *name, hid_t ftype, hid_t mtype, const void *value) {
  dpt_status st = DPT_OK;
  char group[256];
  const char *leaf;
  hid_t g = H5I_INVALID_HID, space = H5I_INVALID_HID, a = H5I_INVALID_HID;
  DPT_TRY(check_name(f, name));
  split_name(name, group, sizeof group, &leaf);
  DPT_TRY(open_group(f, group, true, &g));
  if (H5Aexists(g, leaf) > 0) H5Adelete(g, leaf);
  space = H5Screate(H5S_SCALAR);
  a = H5Acreate2(g, leaf, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  DPT_TRY_CHECK(a >= 0 && H5Awrite(a, mtype, value) >= 0, DPT_ERR_IO, "%s: cannot write %s: %s", f->path, name,
                h5_reason());
done:
  if (a >= 0) H5Aclose(a);
  if (space >= 0) H5Sclose(space);
  if (g >= 0) H5Gclose(g);
  return st;
}

static dpt_status fsync_path(const char *path, bool directory) {
  int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  DPT_CHECK(fd >= 0, DPT_ERR_IO, "%s: cannot open to sync: %s", path, strerror(errno));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  DPT_CHECK(rc == 0, DPT_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
  return DPT_OK;
}

static void dir_of(const char *path, char *out, size_t n) {
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(out, n, ".");
  else if (slash == path) snprintf(out, n, "/");
  else snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* ---- writing ------------------------------------------------------------------------------------ */

/* Local: the handle's names. */
static dpt_status create_prepare(const dpt_comm *c, const char *path, const char *format, dpt_ckpt_file *f) {
  h5_quiet();
  f->c = *c;
  f->file = H5I_INVALID_HID;
  f->writing = true;
  f->marked = true;
  DPT_CHECK(strlen(path) < sizeof f->path, DPT_ERR_INPUT, "%s: path too long", path);
  DPT_CHECK(strlen(format) < sizeof f->format, DPT_ERR_INTERNAL, "format name too long");
  snprintf(f->path, sizeof f->path, "%s", path);
  snprintf(f->tmp, sizeof f->tmp, "%s.tmp", path);
  snprintf(f->format, sizeof f->format, "%s", format);
  return DPT_OK;
}

/* Local: can this rank create files in the directory of path? */
static dpt_status writable_dir(const char *path) {
  char dir[4096];
  DPT_CHECK(strlen(path) < sizeof dir, DPT_ERR_INPUT, "%s: path too long", path);
  dir_of(path, dir, sizeof dir);
  DPT_CHECK(access(dir, W_OK | X_OK) == 0, DPT_ERR_IO, "%s: cannot create: directory %s: %s", path, dir,
            strerror(errno));
  return DPT_OK;
}

dpt_status dpt_ckpt_create(const dpt_comm *c, const char *path, const char *format, dpt_ckpt_file **out) {
  *out = NULL;
  dpt_ckpt_file *f = NULL;
  hid_t fapl = H5I_INVALID_HID;
  dpt_status st = dpt_calloc(1, sizeof *f, "checkpoint handle", &f);
  if (st == DPT_OK) f->file = H5I_INVALID_HID;
  if (st == DPT_OK) st = writable_dir(path);
  if (st == DPT_OK) st = create_prepare(c, path, format, f);
  st = dpt_comm_agree(c, st); /* no rank enters the collective create alone (h5_mpio.h) */
  if (st == DPT_OK) st = dpt_h5_mpio_fapl(c, f->tmp, DPT_H5_CREATE, &fapl);
  if (st == DPT_OK) {
    f->file = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f->file >= 0) dpt_h5_mpio_watch(f->file, f->tmp);
    if (f->file < 0) st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot create: %s", f->tmp,
                                        h5_reason());
    st = dpt_comm_agree_collective(c, st, "creating the checkpoint file");
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (st == DPT_OK) {
    int64_t version = DPT_CKPT_FORMAT_VERSION;
    st = dpt_ckpt_put_string(f, "format", format);
    if (st == DPT_OK) st = write_attr(f, "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version);
    st = dpt_comm_agree(c, st);
  }
  if (st != DPT_OK) {
    if (f && f->file >= 0) dpt_ckpt_discard(&f);
    free_handle(&f);
    return st;
  }
  *out = f;
  return DPT_OK;
}

/* The local part of creating a tensor dataset: checks, group, dataset (no agreement). */
static dpt_status create_dataset(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                                 int64_t first, int64_t nrows, hid_t *g, hid_t *space, hid_t *dset) {
  char group[256];
  const char *leaf;
  DPT_CHECK(f->writing, DPT_ERR_INTERNAL, "%s: not open for writing", f->path);
  DPT_CALL(check_name(f, name));
  DPT_CALL(check_shape(f, name, ndim, shape));
  DPT_CHECK(first >= 0 && nrows >= 0 && first + nrows <= shape[0], DPT_ERR_INTERNAL,
            "%s: tensor %s: rows [%lld, %lld) outside [0, %lld)", f->path, name, (long long)first,
            (long long)(first + nrows), (long long)shape[0]);
  split_name(name, group, sizeof group, &leaf);
  DPT_CALL(open_group(f, group, true, g));
  hsize_t dims[DPT_CKPT_MAX_DIMS];
  for (int i = 0; i < ndim; ++i) dims[i] = (hsize_t)shape[i];
  *space = H5Screate_simple(ndim, dims, NULL);
  *dset = *space >= 0 ? H5Dcreate2(*g, leaf, h5_file_type(dtype), *space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                      : H5I_INVALID_HID;
  DPT_CHECK(*space >= 0 && *dset >= 0, DPT_ERR_IO, "%s: cannot create tensor %s: %s", f->path, name, h5_reason());
  return DPT_OK;
}

/* Every rank passes the same agreement points in the same order whatever fails where, so
 * the agreements (collective) always match up and no rank waits in an HDF5 collective
 * call the others skipped. */
static dpt_status put_local(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                            int64_t first, int64_t nrows, const void *data, bool replicated) {
  dpt_status st = DPT_OK;
  hid_t g = H5I_INVALID_HID, space = H5I_INVALID_HID, dset = H5I_INVALID_HID, aspace = H5I_INVALID_HID,
        attr = H5I_INVALID_HID;
  st = create_dataset(f, name, dtype, ndim, shape, first, nrows, &g, &space, &dset);
  DPT_TRY(dpt_comm_agree(&f->c, st));
  if (shape_elems(ndim, shape) > 0) {
    size_t row_bytes = (size_t)shape_elems(ndim - 1, shape + 1) * dpt_dtype_size(dtype);
    const char *rows = data;
    if (replicated) rows += (size_t)first * row_bytes;
    st = write_rows(f, dset, name, dtype, ndim, shape, first, nrows, rows);
    DPT_TRY(dpt_comm_agree(&f->c, st)); /* a full disk can fail one rank's write only */
  }
  if (replicated) {
    uint32_t crc = dpt_crc32(0, data, (size_t)shape_elems(ndim, shape) * dpt_dtype_size(dtype));
    aspace = H5Screate(H5S_SCALAR);
    attr = H5Acreate2(dset, "crc32", H5T_STD_U32LE, aspace, H5P_DEFAULT, H5P_DEFAULT);
    DPT_TRY_CHECK(aspace >= 0 && attr >= 0 && H5Awrite(attr, H5T_NATIVE_UINT32, &crc) >= 0, DPT_ERR_IO,
                  "%s: tensor %s: cannot write its checksum: %s", f->path, name, h5_reason());
  }
done:
  if (attr >= 0) H5Aclose(attr);
  if (aspace >= 0) H5Sclose(aspace);
  if (dset >= 0) H5Dclose(dset);
  if (space >= 0) H5Sclose(space);
  if (g >= 0) H5Gclose(g);
  return st;
}

static dpt_status remember(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape) {
  if (f->nwritten == f->cap_written) {
    int cap = f->cap_written ? 2 * f->cap_written : 16;
    struct written *w = realloc(f->written, sizeof *w * (size_t)cap);
    DPT_CHECK(w != NULL, DPT_ERR_MEMORY, "%s: list of tensors: out of memory", f->path);
    f->written = w;
    f->cap_written = cap;
  }
  struct written *w = &f->written[f->nwritten++];
  snprintf(w->name, sizeof w->name, "%s", name);
  w->dtype = dtype;
  w->ndim = ndim;
  for (int i = 0; i < ndim; ++i) w->shape[i] = shape[i];
  return DPT_OK;
}

dpt_status dpt_ckpt_put_tensor(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                               const void *data) {
  int64_t first = 0, nrows = 0;
  if (ndim >= 1) dpt_shard_range(shape[0], f->c.size, f->c.rank, &first, &nrows);
  dpt_status st = put_local(f, name, dtype, ndim, shape, first, nrows, data, true);
  if (st == DPT_OK) st = remember(f, name, dtype, ndim, shape);
  return dpt_comm_agree(&f->c, st);
}

dpt_status dpt_ckpt_put_rows(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                             int64_t first_row, int64_t nrows, const void *rows) {
  return dpt_comm_agree(&f->c, put_local(f, name, dtype, ndim, shape, first_row, nrows, rows, false));
}

dpt_status dpt_ckpt_put_int(dpt_ckpt_file *f, const char *name, int64_t v) {
  return dpt_comm_agree(&f->c, write_attr(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v));
}

dpt_status dpt_ckpt_put_double(dpt_ckpt_file *f, const char *name, double v) {
  return dpt_comm_agree(&f->c, write_attr(f, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v));
}

dpt_status dpt_ckpt_put_string(dpt_ckpt_file *f, const char *name, const char *s) {
  dpt_status st = DPT_OK;
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0 || H5Tset_size(t, strlen(s) + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)
    st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: string type for %s: %s", f->path, name,
                       h5_reason());
  else
    st = write_attr(f, name, t, t, s);
  if (t >= 0) H5Tclose(t);
  return dpt_comm_agree(&f->c, st);
}

dpt_status dpt_ckpt_agree(const dpt_ckpt_file *f, dpt_status local) { return dpt_comm_agree(&f->c, local); }

static dpt_status verify_written(dpt_ckpt_file *w) {
  dpt_status st = DPT_OK;
  dpt_ckpt_file *r = NULL;
  void *buf = NULL;
  size_t cap = 0;
  const char *formats[] = {w->format, NULL};
  DPT_TRY(dpt_ckpt_open(&w->c, w->tmp, formats, false, &r));
  for (int i = 0; i < w->nwritten; ++i) {
    const struct written *t = &w->written[i];
    size_t bytes = (size_t)shape_elems(t->ndim, t->shape) * dpt_dtype_size(t->dtype);
    if (bytes > cap) {
      dpt_free(&buf);
      cap = 0;
      st = dpt_alloc(bytes, 1, "checkpoint verification buffer", &buf);
      DPT_TRY(dpt_comm_agree(&w->c, st));
      cap = bytes;
    }
    DPT_TRY(dpt_ckpt_get_tensor(r, t->name, t->dtype, t->ndim, t->shape, buf));
  }
done:
  dpt_free(&buf);
  dpt_ckpt_close(&r);
  if (st != DPT_OK) {
    /* the agreed message may start with the failing rank ("rank R: "): it stays in front */
    const char *inner = dpt_error_message(), *colon = strstr(inner, ": ");
    int rank_len = !strncmp(inner, "rank ", 5) && colon ? (int)(colon + 2 - inner) : 0;
    char msg[1024 + 4200];
    if (st == DPT_ERR_MEMORY) /* the check itself could not run: say so, not "damaged" */
      snprintf(msg, sizeof msg, "%.*s%s: cannot verify the written file: %s", rank_len, inner, w->tmp,
               inner + rank_len);
    else if (st == DPT_ERR_IO) /* reading failed (what was read was not found damaged) */
      snprintf(msg, sizeof msg, "%.*s%s: cannot read the written file back: %s", rank_len, inner, w->tmp,
               inner + rank_len);
    else
      snprintf(msg, sizeof msg, "%.*s%s: written but does not read back intact (disk full?): %s", rank_len, inner,
               w->tmp, inner + rank_len);
    if (st != DPT_ERR_MEMORY) st = DPT_ERR_IO;
    dpt_error_replace(st, msg);
  }
  return st;
}

dpt_status dpt_ckpt_commit(dpt_ckpt_file **fp) {
  dpt_ckpt_file *f = *fp;
  dpt_comm c = f->c;
  dpt_status st = DPT_OK;
  if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0)
    st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: flush failed: %s", f->tmp, h5_reason());
  if (H5Fclose(f->file) < 0 && st == DPT_OK)
    st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: close failed: %s", f->tmp, h5_reason());
  dpt_h5_mpio_unwatch(f->file);
  f->file = H5I_INVALID_HID;
  /* Every rank syncs: on a parallel file system each client flushes the blocks it wrote. */
  if (st == DPT_OK) st = fsync_path(f->tmp, false);
  st = dpt_comm_agree(&c, st); /* also the barrier: every rank has finished and synced */
  /* Read back and check every checksum before publishing: Open MPI's default MPI-IO
   * component (OMPIO) can report success for a collective write that hit a full disk. */
  if (st == DPT_OK) st = verify_written(f);
  if (st == DPT_OK && c.rank == 0) {
    char dir[4096];
    dir_of(f->path, dir, sizeof dir);
    if (rename(f->tmp, f->path) != 0)
      st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "%s: cannot rename to %s: %s", f->tmp, f->path,
                         strerror(errno));
    else
      st = fsync_path(dir, true);
  }
  st = dpt_comm_agree(&c, st);
  if (st != DPT_OK && c.rank == 0) unlink(f->tmp);
  free_handle(fp);
  return st;
}

void dpt_ckpt_discard(dpt_ckpt_file **fp) {
  dpt_ckpt_file *f = fp ? *fp : NULL;
  if (!f) return;
  if (f->file >= 0) {
    if (f->writing) {
      /* The write failed, often for lack of space. HDF5's close flushes metadata, and a
       * flush that fails on one rank only leaves the ranks in different barriers (a
       * hang). Rank 0 first frees the space the abandoned file holds, so the flush has
       * room; the file is removed below anyway. */
      if (f->c.rank == 0 && truncate(f->tmp, 0) != 0) { /* nothing more to free */
      }
      MPI_Barrier(f->c.comm);
    }
    H5Fclose(f->file);
    dpt_h5_mpio_unwatch(f->file);
  }
  H5Eclear2(H5E_DEFAULT);
  if (f->writing) {
    MPI_Barrier(f->c.comm);
    if (f->c.rank == 0) unlink(f->tmp);
  }
  free_handle(fp);
}

/* ---- reading ------------------------------------------------------------------------------------- */

static dpt_status read_attr_string(dpt_ckpt_file *f, hid_t obj, const char *attr_name, const char *name, char **s) {
  dpt_status st = DPT_OK;
  hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID, mt = H5I_INVALID_HID, space = H5I_INVALID_HID;
  *s = NULL;
  a = H5Aopen(obj, attr_name, H5P_DEFAULT);
  DPT_TRY_CHECK(a >= 0, DPT_ERR_FORMAT, "%s: %s: not found", f->path, name);
  t = H5Aget_type(a);
  space = H5Aget_space(a);
  DPT_TRY_CHECK(t >= 0 && H5Tget_class(t) == H5T_STRING, DPT_ERR_FORMAT, "%s: %s: expected a string", f->path, name);
  DPT_TRY_CHECK(H5Sget_simple_extent_npoints(space) == 1, DPT_ERR_FORMAT, "%s: %s: expected a single string",
                f->path, name);
  if (H5Tis_variable_str(t) > 0) {
    char *vs = NULL;
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    DPT_TRY_CHECK(H5Aread(a, mt, &vs) >= 0 && vs, DPT_ERR_FORMAT, "%s: %s: %s", f->path, name, h5_reason());
    st = dpt_alloc(strlen(vs) + 1, 1, name, s);
    if (st == DPT_OK) memcpy(*s, vs, strlen(vs) + 1);
    H5free_memory(vs);
    DPT_TRY(st);
  } else {
    size_t size = H5Tget_size(t);
    DPT_TRY_CHECK(size > 0 && size < (size_t)64 << 20, DPT_ERR_FORMAT, "%s: %s: string of %zu bytes", f->path, name,
                  size);
    DPT_TRY(dpt_calloc(size + 1, 1, name, s));
    DPT_TRY_CHECK(H5Aread(a, t, *s) >= 0, DPT_ERR_FORMAT, "%s: %s: %s", f->path, name, h5_reason());
  }
done:
  if (st != DPT_OK) dpt_free(s);
  if (mt >= 0) H5Tclose(mt);
  if (space >= 0) H5Sclose(space);
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return st;
}

/* Local: can this rank read path, and is it HDF5? Agreed before the collective open, so that
 * a file one rank cannot see (a node-local path) stops every rank instead of leaving the
 * others in H5Fopen (h5_mpio.h). */
static dpt_status open_prepare(const dpt_comm *c, const char *path, dpt_ckpt_file *f) {
  h5_quiet();
  f->c = *c;
  f->file = H5I_INVALID_HID;
  DPT_CHECK(strlen(path) < sizeof f->path, DPT_ERR_INPUT, "%s: path too long", path);
  snprintf(f->path, sizeof f->path, "%s", path);
  DPT_CHECK(access(path, R_OK) == 0, DPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  htri_t is = H5Fis_hdf5(path);
  DPT_CHECK(is >= 0, DPT_ERR_IO, "%s: cannot read the file", path);
  DPT_CHECK(is > 0, DPT_ERR_FORMAT, "%s: not an HDF5 file (truncated or damaged?)", path);
  return DPT_OK;
}

/* Local, after the collective open: the format marks (agreed by the caller). */
static dpt_status open_check(dpt_ckpt_file *f, const char *const *formats, bool allow_unmarked) {
  dpt_status st = DPT_OK;
  hid_t root = H5I_INVALID_HID;
  char *format = NULL;
  const char *path = f->path;
  root = H5Gopen2(f->file, "/", H5P_DEFAULT);
  DPT_TRY_CHECK(root >= 0, DPT_ERR_FORMAT, "%s: root group: %s", path, h5_reason());
  if (H5Aexists(root, "format") > 0) {
    DPT_TRY(read_attr_string(f, root, "format", "attribute format", &format));
    bool ok = false;
    for (int i = 0; formats && formats[i]; ++i) ok |= !strcmp(formats[i], format);
    char expected[256] = "";
    for (int i = 0; formats && formats[i]; ++i)
      snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s", i ? " or " : "", formats[i]);
    DPT_TRY_CHECK(ok, DPT_ERR_FORMAT, "%s: format '%s', expected %s", path, format, expected);
    snprintf(f->format, sizeof f->format, "%s", format);
    f->marked = true;
    int64_t version = 0;
    hid_t a = H5Aopen(root, "format_version", H5P_DEFAULT);
    herr_t rc = a >= 0 ? dpt_h5_read_one(a, H5T_NATIVE_INT64, &version) : -1;
    if (a >= 0) H5Aclose(a);
    DPT_TRY_CHECK(rc >= 0, DPT_ERR_FORMAT,
                  "%s: attribute format_version missing or unreadable (expected a single integer)", path);
    DPT_TRY_CHECK(version >= 1, DPT_ERR_FORMAT, "%s: attribute format_version %lld: expected 1..%d (damaged file?)",
                  path, (long long)version, DPT_CKPT_FORMAT_VERSION);
    DPT_TRY_CHECK(version <= DPT_CKPT_FORMAT_VERSION, DPT_ERR_FORMAT,
                  "%s: format %s version %lld, this dptrain reads versions 1..%d (HINT: use a newer dptrain)", path,
                  format, (long long)version, DPT_CKPT_FORMAT_VERSION);
  } else {
    DPT_TRY_CHECK(allow_unmarked, DPT_ERR_FORMAT, "%s: no 'format' attribute: not a dptrain file (expected %s)", path,
                  formats && formats[0] ? formats[0] : "a dptrain format");
    f->format[0] = '\0';
    f->marked = false;
  }
done:
  dpt_free(&format);
  if (root >= 0) H5Gclose(root);
  return st;
}

dpt_status dpt_ckpt_open(const dpt_comm *c, const char *path, const char *const *formats, bool allow_unmarked,
                         dpt_ckpt_file **out) {
  *out = NULL;
  dpt_ckpt_file *f = NULL;
  hid_t fapl = H5I_INVALID_HID;
  dpt_status st = dpt_calloc(1, sizeof *f, "checkpoint handle", &f);
  if (st == DPT_OK) f->file = H5I_INVALID_HID;
  if (st == DPT_OK) st = open_prepare(c, path, f);
  st = dpt_comm_agree(c, st);
  if (st == DPT_OK) st = dpt_h5_mpio_fapl(c, path, 0, &fapl);
  if (st == DPT_OK) {
    f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f->file >= 0) dpt_h5_mpio_watch(f->file, path);
    if (f->file < 0)
      st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                         "%s: not a readable HDF5 file (truncated or damaged?): %s", path, h5_reason());
    st = dpt_comm_agree_collective(c, st, "opening the checkpoint file");
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (st == DPT_OK) st = open_check(f, formats, allow_unmarked);
  st = dpt_comm_agree(c, st);
  if (st != DPT_OK) {
    if (f) {
      f->writing = false;
      dpt_ckpt_close(&f);
    }
    return st;
  }
  *out = f;
  return DPT_OK;
}

void dpt_ckpt_close(dpt_ckpt_file **fp) {
  dpt_ckpt_file *f = fp ? *fp : NULL;
  if (!f) return;
  if (f->writing) {
    dpt_ckpt_discard(fp);
    return;
  }
  if (f->file >= 0) {
    H5Fclose(f->file);
    dpt_h5_mpio_unwatch(f->file);
  }
  H5Eclear2(H5E_DEFAULT);
  free_handle(fp);
}

const char *dpt_ckpt_format(const dpt_ckpt_file *f) { return f->format; }
const char *dpt_ckpt_path(const dpt_ckpt_file *f) { return f->path; }

bool dpt_ckpt_has(dpt_ckpt_file *f, const char *name) {
  char group[256], path[300];
  const char *leaf;
  if (check_name(f, name) != DPT_OK) {
    dpt_error_clear();
    return false;
  }
  split_name(name, group, sizeof group, &leaf);
  snprintf(path, sizeof path, "/%s", name);
  /* walk the path so H5Lexists never sees a missing intermediate group */
  char prefix[300] = "";
  for (const char *p = name;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - name) : strlen(name);
    snprintf(prefix, sizeof prefix, "/%.*s", (int)len, name);
    if (!slash) break;
    if (H5Lexists(f->file, prefix, H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    p = slash + 1;
  }
  if (H5Lexists(f->file, path, H5P_DEFAULT) > 0) return true;
  bool found = false;
  hid_t g = group[0] ? H5Gopen2(f->file, group, H5P_DEFAULT) : H5Gopen2(f->file, "/", H5P_DEFAULT);
  if (g >= 0) {
    found = H5Aexists(g, leaf) > 0;
    H5Gclose(g);
  }
  H5Eclear2(H5E_DEFAULT);
  return found;
}

static dpt_status open_tensor(dpt_ckpt_file *f, const char *name, hid_t *dset, dpt_dtype *stored, int *ndim,
                              int64_t *shape) {
  dpt_status st = DPT_OK;
  hid_t t = H5I_INVALID_HID, space = H5I_INVALID_HID;
  char path[300];
  *dset = H5I_INVALID_HID;
  DPT_CALL(check_name(f, name));
  DPT_CHECK(dpt_ckpt_has(f, name), DPT_ERR_FORMAT, "%s: tensor %s: not found", f->path, name);
  snprintf(path, sizeof path, "/%s", name);
  *dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  DPT_TRY_CHECK(*dset >= 0, DPT_ERR_FORMAT, "%s: tensor %s: not a dataset: %s", f->path, name, h5_reason());
  t = H5Dget_type(*dset);
  space = H5Dget_space(*dset);
  DPT_TRY_CHECK(t >= 0 && space >= 0, DPT_ERR_FORMAT, "%s: tensor %s: %s", f->path, name, h5_reason());
  size_t size = H5Tget_size(t);
  DPT_TRY_CHECK(H5Tget_class(t) == H5T_FLOAT && (size == 4 || size == 8), DPT_ERR_FORMAT,
                "%s: tensor %s: element type is not float32 or float64", f->path, name);
  *stored = size == 8 ? DPT_F64 : DPT_F32;
  int nd = H5Sget_simple_extent_ndims(space);
  DPT_TRY_CHECK(nd >= 1 && nd <= DPT_CKPT_MAX_DIMS, DPT_ERR_FORMAT, "%s: tensor %s: %d dimensions, expected 1..%d",
                f->path, name, nd, DPT_CKPT_MAX_DIMS);
  hsize_t dims[DPT_CKPT_MAX_DIMS];
  H5Sget_simple_extent_dims(space, dims, NULL);
  *ndim = nd;
  for (int i = 0; i < nd; ++i) {
    DPT_TRY_CHECK(dims[i] <= (hsize_t)INT64_MAX, DPT_ERR_FORMAT, "%s: tensor %s: dimension too large", f->path, name);
    shape[i] = (int64_t)dims[i];
  }
  /* the shape is trusted (callers allocate by it) only when the data is there */
  unsigned long long have, need;
  const char *unit;
  DPT_TRY_CHECK(dpt_h5_stored(*dset, &have, &need, &unit) == 0, DPT_ERR_FORMAT,
                "%s: tensor %s: cannot read its storage layout: %s", f->path, name, h5_reason());
  if (have < need) {
    char text[128];
    shape_text(nd, shape, text, sizeof text);
    DPT_TRY(dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                          "%s: tensor %s: declares %s but stores only %llu of the %llu %s it needs (damaged file?)",
                          f->path, name, text, have, need, unit));
  }
done:
  if (t >= 0) H5Tclose(t);
  if (space >= 0) H5Sclose(space);
  if (st != DPT_OK && *dset >= 0) {
    H5Dclose(*dset);
    *dset = H5I_INVALID_HID;
  }
  return st;
}

dpt_status dpt_ckpt_tensor_shape(dpt_ckpt_file *f, const char *name, dpt_dtype *stored, int *ndim, int64_t *shape) {
  hid_t dset;
  dpt_status st = open_tensor(f, name, &dset, stored, ndim, shape);
  if (st == DPT_OK) H5Dclose(dset);
  return dpt_comm_agree(&f->c, st);
}

/* Reads this rank's row block (collective), then assembles the whole tensor on every rank. */
static dpt_status read_all(dpt_ckpt_file *f, hid_t dset, const char *name, dpt_dtype dtype, int ndim,
                           const int64_t *shape, void *buf) {
  dpt_status st = DPT_OK;
  hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
  int *counts = NULL, *displs = NULL;
  int P = f->c.size;
  size_t row_bytes = (size_t)shape_elems(ndim - 1, shape + 1) * dpt_dtype_size(dtype);
  int64_t first, nrows;
  dpt_shard_range(shape[0], P, f->c.rank, &first, &nrows);
  /* agreed: a rank whose selection failed must not leave the others in the collective read */
  DPT_TRY(dpt_comm_agree(&f->c, select_rows(f, dset, name, ndim, shape, first, nrows, &fspace, &mspace, &dxpl)));
  double dummy;
  herr_t rc = H5Dread(dset, h5_mem_type(dtype), mspace, fspace, dxpl,
                      nrows > 0 ? (char *)buf + (size_t)first * row_bytes : (void *)&dummy);
  if (rc < 0)
    st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                       "%s: tensor %s: cannot read (truncated or damaged file?): %s", f->path, name, h5_reason());
  if (st == DPT_OK && P > 1) st = dpt_alloc((size_t)P, sizeof(int), "gather counts", &counts);
  if (st == DPT_OK && P > 1) st = dpt_alloc((size_t)P, sizeof(int), "gather offsets", &displs);
  DPT_TRY(dpt_comm_agree(&f->c, st)); /* before the allgather: no rank may skip it alone */
  if (P > 1) {
    for (int r = 0; r < P; ++r) {
      int64_t b, n;
      dpt_shard_range(shape[0], P, r, &b, &n);
      DPT_TRY(dpt_cast_int((int64_t)((size_t)n * row_bytes), "tensor bytes per rank", &counts[r]));
      DPT_TRY(dpt_cast_int((int64_t)((size_t)b * row_bytes), "tensor bytes", &displs[r]));
    }
    int mrc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, counts, displs, MPI_BYTE, f->c.comm);
    DPT_TRY_CHECK(mrc == MPI_SUCCESS, DPT_ERR_MPI, "%s: tensor %s: MPI_Allgatherv failed (%d)", f->path, name, mrc);
  }
done:
  dpt_free(&counts);
  dpt_free(&displs);
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  if (dxpl >= 0) H5Pclose(dxpl);
  return st;
}

/* The local part of reading a tensor: open, check the shape, a buffer for conversion. */
static dpt_status open_checked(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                               hid_t *dset, dpt_dtype *stored, void **tmp) {
  int nd = 0;
  int64_t dims[DPT_CKPT_MAX_DIMS];
  DPT_CALL(check_shape(f, name, ndim, shape));
  DPT_CALL(open_tensor(f, name, dset, stored, &nd, dims));
  bool same_shape = nd == ndim;
  for (int i = 0; same_shape && i < nd; ++i) same_shape = dims[i] == shape[i];
  if (!same_shape) {
    char got[128], want[128];
    shape_text(nd, dims, got, sizeof got);
    shape_text(ndim, shape, want, sizeof want);
    return dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__, "%s: tensor %s: shape %s in the file, expected %s",
                         f->path, name, got, want);
  }
  if (*stored != dtype) DPT_CALL(dpt_alloc((size_t)shape_elems(ndim, shape), dpt_dtype_size(*stored), name, tmp));
  return DPT_OK;
}

dpt_status dpt_ckpt_get_tensor(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                               void *data) {
  dpt_status st = DPT_OK;
  hid_t dset = H5I_INVALID_HID, attr = H5I_INVALID_HID;
  void *tmp = NULL;
  dpt_dtype stored = dtype;
  size_t n = (size_t)shape_elems(ndim, shape);
  void *buf = data;
  st = open_checked(f, name, dtype, ndim, shape, &dset, &stored, &tmp);
  if (tmp) buf = tmp;
  DPT_TRY(dpt_comm_agree(&f->c, st)); /* every rank reaches read_all's collective calls, or none */
  if (n > 0) DPT_TRY(read_all(f, dset, name, stored, ndim, shape, buf));
  htri_t has_crc = H5Aexists(dset, "crc32");
  DPT_TRY_CHECK(has_crc > 0 || !f->marked, DPT_ERR_FORMAT, "%s: tensor %s: no crc32 checksum attribute", f->path,
                name);
  if (has_crc > 0) {
    uint32_t want = 0;
    attr = H5Aopen(dset, "crc32", H5P_DEFAULT);
    DPT_TRY_CHECK(attr >= 0 && dpt_h5_read_one(attr, H5T_NATIVE_UINT32, &want) >= 0, DPT_ERR_FORMAT,
                  "%s: tensor %s: unreadable crc32 attribute (expected a single uint32)", f->path, name);
    uint32_t got = dpt_crc32(0, buf, n * dpt_dtype_size(stored));
    DPT_TRY_CHECK(got == want, DPT_ERR_FORMAT,
                  "%s: tensor %s: checksum mismatch (crc32 of the data 0x%08x, stored 0x%08x): the file is damaged",
                  f->path, name, got, want);
  }
  if (stored != dtype) {
    if (dtype == DPT_F32)
      for (size_t i = 0; i < n; ++i) ((float *)data)[i] = (float)((const double *)tmp)[i];
    else
      for (size_t i = 0; i < n; ++i) ((double *)data)[i] = (double)((const float *)tmp)[i];
  }
done:
  H5Eclear2(H5E_DEFAULT);
  dpt_free(&tmp);
  if (attr >= 0) H5Aclose(attr);
  if (dset >= 0) H5Dclose(dset);
  return dpt_comm_agree(&f->c, st);
}

static dpt_status get_attr(dpt_ckpt_file *f, const char *name, hid_t *g, hid_t *a, hid_t *t) {
  char group[256];
  const char *leaf;
  *g = *a = *t = H5I_INVALID_HID;
  DPT_CALL(check_name(f, name));
  DPT_CHECK(dpt_ckpt_has(f, name), DPT_ERR_FORMAT, "%s: %s: not found", f->path, name);
  split_name(name, group, sizeof group, &leaf);
  DPT_CALL(open_group(f, group, false, g));
  *a = H5Aopen(*g, leaf, H5P_DEFAULT);
  *t = *a >= 0 ? H5Aget_type(*a) : H5I_INVALID_HID;
  DPT_CHECK(*a >= 0 && *t >= 0, DPT_ERR_FORMAT, "%s: %s: not an attribute", f->path, name);
  return DPT_OK;
}

static void close_attr(hid_t g, hid_t a, hid_t t) {
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  if (g >= 0) H5Gclose(g);
  H5Eclear2(H5E_DEFAULT);
}

dpt_status dpt_ckpt_get_int(dpt_ckpt_file *f, const char *name, int64_t *v) {
  dpt_status st = DPT_OK;
  hid_t g, a, t;
  DPT_TRY(get_attr(f, name, &g, &a, &t));
  DPT_TRY_CHECK(H5Tget_class(t) == H5T_INTEGER, DPT_ERR_FORMAT, "%s: %s: expected an integer", f->path, name);
  DPT_TRY_CHECK(dpt_h5_read_one(a, H5T_NATIVE_INT64, v) >= 0, DPT_ERR_FORMAT, "%s: %s: expected a single integer",
                f->path, name);
done:
  close_attr(g, a, t);
  return dpt_comm_agree(&f->c, st);
}

dpt_status dpt_ckpt_get_double(dpt_ckpt_file *f, const char *name, double *v) {
  dpt_status st = DPT_OK;
  hid_t g, a, t;
  DPT_TRY(get_attr(f, name, &g, &a, &t));
  DPT_TRY_CHECK(H5Tget_class(t) == H5T_FLOAT || H5Tget_class(t) == H5T_INTEGER, DPT_ERR_FORMAT,
                "%s: %s: expected a number", f->path, name);
  DPT_TRY_CHECK(dpt_h5_read_one(a, H5T_NATIVE_DOUBLE, v) >= 0, DPT_ERR_FORMAT, "%s: %s: expected a single number",
                f->path, name);
done:
  close_attr(g, a, t);
  return dpt_comm_agree(&f->c, st);
}

dpt_status dpt_ckpt_get_string(dpt_ckpt_file *f, const char *name, char **s) {
  dpt_status st = DPT_OK;
  hid_t g, a, t;
  char group[256];
  const char *leaf;
  *s = NULL;
  DPT_TRY(get_attr(f, name, &g, &a, &t));
  split_name(name, group, sizeof group, &leaf);
  DPT_TRY(read_attr_string(f, g, leaf, name, s));
done:
  close_attr(g, a, t);
  st = dpt_comm_agree(&f->c, st);
  if (st != DPT_OK) dpt_free(s);
  return st;
}

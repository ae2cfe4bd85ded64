/* fuzz_checkpoint.c — fuzz target: checkpoints and model files through dpt_checkpoint_load
 * (`dptrain train` with checkpoint.resume) and dpt_modelfile_load (`dptrain eval`/`predict`).
 *
 * Structure-aware: LLVMFuzzerInitialize writes a real checkpoint with the real writer
 * (dpt_checkpoint_save: an MLP with standardization, Adam, a plateau schedule, a history) and
 * lists its records (every dataset and every attribute). The input is a recipe: byte 0 picks
 * the reader (bit 0: model-file load, else checkpoint load), then each pair of bytes (target,
 * action) and the bytes an action needs edit one record of a copy of that file with the HDF5
 * API: delete it; replace an attribute by another type, value, length or rank; replace a
 * tensor by another shape (huge ones only declared, chunked), element type, rank or values
 * (NaN, Inf), with or without a matching crc32; replace the stored config. The empty recipe is
 * the valid checkpoint.
 *
 * Invariants (abort when one fails): the reader returns; a failure has a non-empty one-line
 * message naming the file; no HDF5 object of any file is left open; with libFuzzer, no
 * allocation above -malloc_limit_mb (a size read from the file is checked before it is used). */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/error.h"
#include "fuzz_h5.h"
#include "dptrain/model.h"
#include "dptrain/optim.h"

static const char *const g_ini =
    "[model]\nlayers = 5\nactivation = tanh\n[optimizer]\ntype = adam\nlr = 0.01\n"
    "[schedule]\ntype = plateau\npatience = 1\n";
enum { N_IN = 3, N_OUT = 2, MAX_RECORDS = 96 };

static unsigned char *g_base; /* the valid checkpoint's bytes */
static size_t g_base_size;
typedef struct record {
  char object[128]; /* the dataset's or the attribute's object, "/..." */
  char attr[64];    /* "" for a dataset */
} record;
static record g_rec[MAX_RECORDS];
static int g_nrec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The training objects a run would have, from the config. */
typedef struct run {
  dpt_config *cfg;
  dpt_model *m;
  dpt_optim *o;
  dpt_schedule *s;
} run;

static void run_create(run *r) {
  if (dpt_config_create(&r->cfg) != DPT_OK || dpt_config_load_string(r->cfg, g_ini, "fuzz") != DPT_OK ||
      dpt_model_create(r->cfg, DPT_F32, N_IN, N_OUT, DPT_TASK_MULTICLASS, &r->m) != DPT_OK ||
      dpt_optim_create(r->cfg, DPT_F32, dpt_model_num_params(r->m), &r->o) != DPT_OK ||
      dpt_schedule_create(r->cfg, &r->s) != DPT_OK) {
    fprintf(stderr, "fuzz_checkpoint: setup: %s\n", dpt_error_message());
    abort();
  }
}

static void run_destroy(run *r) {
  dpt_schedule_destroy(&r->s);
  dpt_optim_destroy(&r->o);
  dpt_model_destroy(&r->m);
  dpt_config_destroy(&r->cfg);
}

/* The state as the training loop (train.c) sets it up before a resume: the history columns
 * it appends rows of. */
static void state_of(run *r, dpt_train_state *st) {
  memset(st, 0, sizeof *st);
  st->model = r->m;
  st->optim = r->o;
  st->schedule = r->s;
  st->cfg = r->cfg;
  st->task = DPT_TASK_MULTICLASS;
  snprintf(st->history_names, sizeof st->history_names, "epoch,train_loss,val_loss,val_metric,lr");
}

static herr_t list_attr(hid_t loc, const char *name, const H5A_info_t *info, void *obj) {
  (void)loc;
  (void)info;
  if (g_nrec < MAX_RECORDS) {
    snprintf(g_rec[g_nrec].object, sizeof g_rec[0].object, "%s", (const char *)obj);
    snprintf(g_rec[g_nrec].attr, sizeof g_rec[0].attr, "%s", name);
    ++g_nrec;
  }
  return 0;
}

static herr_t list_object(hid_t root, const char *name, const H5O_info_t *info, void *unused) {
  (void)unused;
  char obj[128];
  snprintf(obj, sizeof obj, "/%s", strcmp(name, ".") ? name : "");
  if (info->type == H5O_TYPE_DATASET && g_nrec < MAX_RECORDS) {
    snprintf(g_rec[g_nrec].object, sizeof g_rec[0].object, "%s", obj);
    g_rec[g_nrec++].attr[0] = '\0';
  }
  hsize_t idx = 0;
  H5Aiterate_by_name(root, obj, H5_INDEX_NAME, H5_ITER_INC, &idx, list_attr, obj, H5P_DEFAULT);
  return 0;
}

static void free_base(void) { free(g_base); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_h5_init();
  atexit(free_base);
  /* the valid checkpoint, written by the real writer */
  char dir[] = "/tmp/fuzz-checkpoint-base-XXXXXX", path[128];
  if (!mkdtemp(dir)) abort();
  run r;
  run_create(&r);
  if (dpt_model_init_params(r.m, 7) != DPT_OK) abort();
  dpt_train_state st;
  state_of(&r, &st);
  static const double mean[N_IN] = {0.5, -1.0, 2.0}, sd[N_IN] = {1.0, 0.25, 3.0};
  static double history[2 * 5] = {0, 1.5, 1.6, 0.5, 0.01, 1, 1.2, 1.3, 0.6, 0.01};
  st.stdz.mean = mean;
  st.stdz.std = sd;
  st.seed = 42;
  st.epoch = 2;
  st.step_in_epoch = 1;
  st.global_step = 5;
  st.epoch_loss_sum = 3.5;
  st.epoch_rows = 7;
  st.history = history;
  st.history_rows = 2;
  st.history_cols = 5;
  if (dpt_checkpoint_save(&g_comm, dir, 0, &st, path, sizeof path) != DPT_OK) {
    fprintf(stderr, "fuzz_checkpoint: setup: %s\n", dpt_error_message());
    abort();
  }
  run_destroy(&r);
  FILE *f = fopen(path, "rb");
  if (!f || fseek(f, 0, SEEK_END) != 0) abort();
  g_base_size = (size_t)ftell(f);
  g_base = malloc(g_base_size);
  rewind(f);
  if (!g_base || fread(g_base, 1, g_base_size, f) != g_base_size) abort();
  fclose(f);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) abort();
  H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, list_object, NULL);
  H5Fclose(file);
  unlink(path);
  rmdir(dir);
  if (g_nrec < 10) abort();
  /* MPI-IO's one-time allocations (components loaded at first use): not a leak of an input */
  static const uint8_t warm[] = {1};
  LLVMFuzzerTestOneInput(NULL, 0);
  LLVMFuzzerTestOneInput(warm, sizeof warm);
  for (int i = 0; getenv("DPT_FUZZ_VERBOSE") && i < g_nrec; ++i)
    fprintf(stderr, "fuzz_checkpoint: record %d: %s%s%s\n", i, g_rec[i].object, g_rec[i].attr[0] ? " @" : "",
            g_rec[i].attr);
  return 0;
}


static uint32_t crc_of(const void *buf, size_t bytes) { return dpt_crc32(0, buf, bytes); }

static const char *const g_texts[] = {
    "f64", "f32", "sgd", "adam", "plateau", "cosine", "", "regression", "binary", "multiclass",
    "dptrain-model", "dptrain-predictions", "layer_0/W,layer_0/b",
    "epoch,train_loss", "nonsense value with spaces",
    /* configs: other architectures, huge ones, broken text */
    "[model]\nlayers = 5\nactivation = tanh\n",
    "[model]\nlayers = 5,5\nactivation = relu\n",
    "[model]\nlayers = 1000000\n", /* 10^8 units: model.c allocates 2.4 GB before any check (report) */
    "[model]\nlayers = 4096,4096,4096\n",
    "[model]\nlayers = \n",
    "[model\nlayers = 5\n",
    "[layer.0]\ntype = rbf\nunits = 5\n[model]\nlayers = 5\n",
    "[model]\nlayers = 5\n[train]\ndtype = f64\n",
};
enum { NTEXTS = sizeof g_texts / sizeof g_texts[0] };
static const int64_t g_ints[] = {0, -1, 1, 2, 3, 5, 2147483648LL, (int64_t)1 << 40, INT64_MAX, INT64_MIN,
                                 100000000, 4, (int64_t)1 << 31, (int64_t)1 << 24, 65};
enum { NINTS = sizeof g_ints / sizeof g_ints[0] };
static const double g_doubles[] = {0.0, NAN, INFINITY, -INFINITY, -1.0, 1e300, 5e-324, 0.5};
enum { NDOUBLES = sizeof g_doubles / sizeof g_doubles[0] };

/* Replaces attribute `name` of obj by the recipe's kind and value. */
static void put_attr(recipe *r, hid_t obj, const char *name) {
  unsigned kind = pick(r, 9), v = take(r);
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  if (kind == 0) return; /* deleted */
  hsize_t three = 3;
  hid_t space = kind == 5 || kind == 6 ? H5Screate_simple(1, &three, NULL) : kind == 8 ? H5Screate(H5S_NULL)
                                                                                         : H5Screate(H5S_SCALAR);
  const char *text = g_texts[v % NTEXTS];
  int64_t iv[3] = {g_ints[v % NINTS], g_ints[v % NINTS], g_ints[v % NINTS]};
  double dv = g_doubles[v % NDOUBLES];
  hid_t t = -1;
  if (kind == 1 || kind == 6) t = H5Tcopy(H5T_STD_I64LE);
  else if (kind == 2) t = H5Tcopy(H5T_IEEE_F64LE);
  else if (kind == 3 || kind == 5 || kind == 8) {
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(text) + 1);
  } else if (kind == 4) {
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
  } else if (kind == 7) t = H5Tcopy(H5T_STD_U8LE);
  hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    if (kind == 1 || kind == 6) H5Awrite(a, H5T_NATIVE_INT64, iv);
    else if (kind == 2) H5Awrite(a, H5T_NATIVE_DOUBLE, &dv);
    else if (kind == 3) H5Awrite(a, t, text);
    else if (kind == 4) H5Awrite(a, t, &text);
    else if (kind == 5) {
      size_t len = strlen(text) + 1;
      char *buf = calloc(3, len);
      for (int i = 0; buf && i < 3; ++i) memcpy(buf + (size_t)i * len, text, len);
      if (buf) H5Awrite(a, t, buf);
      free(buf);
    } else if (kind == 7) {
      uint8_t u = (uint8_t)v;
      H5Awrite(a, H5T_NATIVE_UINT8, &u);
    }
    H5Aclose(a);
  }
  H5Tclose(t);
  H5Sclose(space);
}

/* Replaces dataset `name` (in group g) by the recipe's shape, type and values. */
static void put_tensor(recipe *r, hid_t file, const char *obj) {
  hid_t d = H5Dopen2(file, obj, H5P_DEFAULT);
  if (d < 0) return;
  hid_t s = H5Dget_space(d);
  hsize_t dims[H5S_MAX_RANK] = {1, 1, 1, 1};
  int rank = H5Sget_simple_extent_ndims(s), stored_rank = rank;
  if (rank >= 1) H5Sget_simple_extent_dims(s, dims, NULL);
  if (rank < 1 || rank > 4) rank = 1;
  H5Sclose(s);
  hsize_t n = 1;
  for (int i = 0; i < rank; ++i) n = dims[i] <= 4096 && n <= 4096 ? n * dims[i] : 4097;
  /* an earlier edit declared it huge or of another rank: its values are not used */
  if (n > 4096 || stored_rank != rank) n = 0;
  double *vals = calloc(n ? n : 1, sizeof *vals);
  if (!vals) abort();
  if (n) H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
  H5Dclose(d);
  H5Ldelete(file, obj, H5P_DEFAULT);
  unsigned what = pick(r, 10), arg = take(r), crc_mode = pick(r, 4);
  if (what == 0) { /* deleted */
    free(vals);
    return;
  }
  if (what == 1) { /* a group in its place */
    hid_t g = H5Gcreate2(file, obj, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) H5Gclose(g);
    free(vals);
    return;
  }
  static const hsize_t sizes[] = {0, 1, 2, 3, 4, 5, 6, 10, (hsize_t)1 << 20, (hsize_t)1 << 31, (hsize_t)1 << 40,
                                  ((hsize_t)1 << 62) + 1};
  hid_t ftype = H5Tcopy(H5T_IEEE_F32LE);
  bool chunked = false;
  if (what == 2) { /* another extent in one dimension */
    dims[arg % (unsigned)rank] = sizes[(arg / 4) % (sizeof sizes / sizeof sizes[0])];
  } else if (what == 3) { /* another rank */
    rank = (int)(arg % 6);
    for (int i = 0; i < 4; ++i)
      if (i >= 1 && dims[i] == 0) dims[i] = 1;
  } else if (what == 4) { /* another element type */
    static const hid_t *const types[] = {&H5T_IEEE_F64LE_g, &H5T_STD_I32LE_g, &H5T_IEEE_F32BE_g, &H5T_STD_U8LE_g,
                                         &H5T_IEEE_F64BE_g, &H5T_STD_I64LE_g};
    H5Tclose(ftype);
    ftype = H5Tcopy(*types[arg % 6]);
  } else if (what == 5) { /* a value NaN, Inf or huge */
    if (n) vals[arg % n] = g_doubles[(arg / 8) % NDOUBLES];
  } else if (what == 6) { /* float64 where float32 was */
    H5Tclose(ftype);
    ftype = H5Tcopy(H5T_IEEE_F64LE);
  } else if (what == 7) { /* strings */
    H5Tclose(ftype);
    ftype = H5Tcopy(H5T_C_S1);
    H5Tset_size(ftype, 4);
  }
  hsize_t dims5[5] = {dims[0], dims[1], dims[2], dims[3], 2};
  hsize_t real = 1; /* what is written */
  bool whole = true;  /* all of the declared extent is written */
  for (int i = 0; i < rank; ++i) {
    if (dims5[i] > 64) chunked = true, whole = false;
    real *= dims5[i] > 64 ? 1 : dims5[i];
  }
  if (what == 8) chunked = true; /* the same, chunked */
  hsize_t maxdims[5] = {H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED};
  s = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims5, chunked ? maxdims : NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunked && rank > 0) {
    hsize_t chunk[5] = {1, 1, 1, 1, 1};
    H5Pset_chunk(dcpl, rank, chunk);
  }
  d = H5Dcreate2(file, obj, ftype, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d >= 0 && H5Tget_class(ftype) != H5T_STRING && real > 0 && real <= n) {
    /* the values, into the leading corner the old extent and the new share */
    hsize_t start[5] = {0}, cnt[5];
    for (int i = 0; i < rank; ++i) cnt[i] = dims5[i] > 64 ? 1 : dims5[i];
    hid_t fs = H5Dget_space(d), ms = rank ? H5Screate_simple(rank, cnt, NULL) : H5Screate(H5S_SCALAR);
    if (rank) H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, vals);
    H5Sclose(ms);
    H5Sclose(fs);
  }
  if (d >= 0 && crc_mode != 3) { /* a crc32 of what is stored (as float32 or float64 bytes) */
    uint32_t crc = 0;
    size_t es = H5Tget_size(ftype);
    if (whole && real <= n && (es == 4 || es == 8)) {
      void *buf = calloc(real ? real : 1, es);
      if (!buf) abort();
      H5Dread(d, es == 8 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
      crc = crc_of(buf, real * es);
      free(buf);
    }
    if (crc_mode == 1) crc ^= 1;
    hid_t as = H5Screate(H5S_SCALAR), a = H5Acreate2(d, "crc32", H5T_STD_U32LE, as, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
      H5Awrite(a, H5T_NATIVE_UINT32, &crc);
      H5Aclose(a);
    }
    H5Sclose(as);
  }
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(s);
  H5Tclose(ftype);
  free(vals);
}

/* Writes the valid checkpoint to path, then applies the recipe's edits. */
static void write_file(recipe *r, const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(g_base, 1, g_base_size, f) != g_base_size || fclose(f) != 0) abort();
  hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) abort();
  for (int edits = 0; edits < 8 && r->n > 0; ++edits) {
    const record *rec = &g_rec[take(r) % (unsigned)g_nrec];
    if (H5Lexists(file, rec->object, H5P_DEFAULT) <= 0 && strcmp(rec->object, "/")) continue;
    if (rec->attr[0]) {
      hid_t o = H5Oopen(file, rec->object, H5P_DEFAULT);
      if (o < 0) continue;
      put_attr(r, o, rec->attr);
      H5Oclose(o);
    } else {
      H5O_info_t info;
      if (H5Oget_info_by_name(file, rec->object, &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_DATASET)
        put_tensor(r, file, rec->object);
    }
  }
  H5Fclose(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  recipe r = {data, size};
  char dir[] = "/tmp/fuzz-checkpoint-XXXXXX", path[64];
  if (!mkdtemp(dir)) abort();
  snprintf(path, sizeof path, "%s/ckpt-00000005.h5", dir);
  unsigned how = take(&r);
  write_file(&r, path);
  dpt_status st;
  if (how & 1) { /* dptrain eval / predict */
    dpt_loaded_model lm;
    st = dpt_modelfile_load(&g_comm, path, &lm);
    check_failure("fuzz_checkpoint", st, path);
    if (st == DPT_OK) {
      bool bad = lm.n_in != dpt_model_inputs(lm.model) || lm.n_out != dpt_model_outputs(lm.model);
      for (int64_t j = 0; lm.std && j < lm.n_in; ++j)
        bad |= !(lm.std[j] > 0) || !isfinite(lm.std[j]) || !isfinite(lm.mean[j]);
      if (bad) {
        fprintf(stderr, "fuzz_checkpoint: loaded a model with bad sizes or standardization\n");
        abort();
      }
      dpt_loaded_model_free(&lm);
    }
  } else { /* dptrain train with checkpoint.resume */
    run rr;
    run_create(&rr);
    dpt_train_state s;
    state_of(&rr, &s);
    st = dpt_checkpoint_load(&g_comm, path, &s);
    check_failure("fuzz_checkpoint", st, path);
    if (st == DPT_OK && s.history && (s.history_rows < 0 || s.history_cols != 5)) abort(); /* 0 rows: fine */
    dpt_free(&s.history);
    run_destroy(&rr);
  }
  check_closed("fuzz_checkpoint");
  unlink(path);
  if (rmdir(dir) != 0) abort();
  return 0;
}

/* checkpoint.h — HDF5 checkpoint and model files (parallel, atomic, checksummed), checkpoint
 * naming/retention/resume selection, and the stop-signal flag for preemption.
 *
 * Layer 1, dpt_ckpt_file: a file of named records written and read collectively through
 * parallel HDF5 (MPI-IO driver).
 *   - tensors: "group/sub/name" -> dataset /group/sub/name, f32 or f64, up to
 *     DPT_CKPT_MAX_DIMS dimensions, C order. Written by all ranks: each rank writes the
 *     disjoint block of leading-dimension rows dpt_shard_range(shape[0], P, rank) with a
 *     collective transfer (a rank with no rows joins with an empty selection). Read the same
 *     way, then assembled on every rank with MPI_Allgatherv, so a file written by P ranks is
 *     read by any Q ranks.
 *   - checksums: each tensor dataset has an attribute `crc32` (uint32): the CRC-32 (IEEE,
 *     zlib's crc32) of the full tensor's values as little-endian IEEE bytes in C order, i.e.
 *     Python `zlib.crc32(arr.astype('<f4').tobytes())`. Tensors written by put_tensor are
 *     replicated on every rank (parameters, optimizer state), so every rank computes the
 *     checksum of the full tensor itself and no gather is needed; on read every rank checks
 *     it after assembling the full tensor.
 *   - scalars and strings: "group/name" -> attribute `name` on group /group ("name" alone:
 *     on the root group). Every rank passes the same value.
 *   - the root carries `format` (string, e.g. "dptrain-checkpoint") and `format_version`.
 * Writing is atomic: records go to "<path>.tmp"; dpt_ckpt_commit() flushes and closes it,
 * every rank fsyncs it, all ranks meet, then rank 0 renames it to <path> and fsyncs the
 * directory. A crash, a kill or a full disk before the rename leaves <path> (and every older
 * file) as it was; a stale .tmp is overwritten by the next write.
 *
 * Layer 2, checkpoints in a directory: "<dir>/ckpt-<step, 8 digits>.h5", retention of the
 * last K, and resume selection (a FILE, or `latest` = the newest that loads, falling back
 * to older ones with a message saying so).
 *
 * Every function taking a dpt_comm or a dpt_ckpt_file is collective: all ranks call it with
 * the same arguments, and its status is agreed across ranks (dpt_comm_agree), so every
 * rank returns the same status and message.
 *
 * Ownership: dpt_ckpt_create/dpt_ckpt_open allocate the handle; dpt_ckpt_commit,
 * dpt_ckpt_discard and dpt_ckpt_close free it and set the pointer to NULL. Names, paths
 * and data are borrowed for the duration of the call. */
#ifndef DPTRAIN_CHECKPOINT_H
#define DPTRAIN_CHECKPOINT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/error.h"
#include "dptrain/model.h"
#include "dptrain/types.h"

enum { DPT_CKPT_MAX_DIMS = 4, DPT_CKPT_FORMAT_VERSION = 1 };

#define DPT_CKPT_FORMAT_CHECKPOINT "dptrain-checkpoint"
#define DPT_CKPT_FORMAT_MODEL "dptrain-model"
#define DPT_CKPT_FORMAT_PREDICTIONS "dptrain-predictions"

typedef struct dpt_ckpt_file dpt_ckpt_file;

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32): crc = dpt_crc32(0, buf, n) for a whole
 * buffer; pass the previous value to continue over a following buffer. Not collective. */
uint32_t dpt_crc32(uint32_t crc, const void *buf, size_t n);

/* ---- writing ------------------------------------------------------------------------ */

/* Creates "<path>.tmp" (truncating a stale one) and writes the format attributes. */
dpt_status dpt_ckpt_create(const dpt_comm *c, const char *path, const char *format, dpt_ckpt_file **out);
/* A replicated tensor: every rank passes the same full data [shape] in dtype; each rank
 * writes its block of rows; the crc32 attribute is stored. ndim in [1, DPT_CKPT_MAX_DIMS]. */
dpt_status dpt_ckpt_put_tensor(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                               const void *data);
/* A distributed tensor: this rank holds rows [first_row, first_row + nrows) of the global
 * [shape] tensor (rows of different ranks are disjoint and cover shape[0]). No checksum is
 * stored (used for prediction outputs). */
dpt_status dpt_ckpt_put_rows(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                             int64_t first_row, int64_t nrows, const void *rows);
dpt_status dpt_ckpt_put_int(dpt_ckpt_file *f, const char *name, int64_t v);
dpt_status dpt_ckpt_put_double(dpt_ckpt_file *f, const char *name, double v);
dpt_status dpt_ckpt_put_string(dpt_ckpt_file *f, const char *name, const char *s);
/* Collective: dpt_comm_agree over the file's ranks, for a local step between two puts (e.g.
 * building a string to store) that may fail on one rank: every rank then leaves together
 * instead of the others waiting in the next put. */
dpt_status dpt_ckpt_agree(const dpt_ckpt_file *f, dpt_status local);
/* Makes the file durable and visible under its final name (see above); frees *f. On
 * failure the .tmp is removed and the final name is untouched. */
dpt_status dpt_ckpt_commit(dpt_ckpt_file **f);
/* Closes and removes the .tmp without publishing it (after a failed put); frees *f.
 * NULL-safe. */
void dpt_ckpt_discard(dpt_ckpt_file **f);

/* ---- reading ------------------------------------------------------------------------ */

/* Opens an existing file read-only. formats: NULL-terminated list of accepted `format`
 * values; a file with another format or a version newer than DPT_CKPT_FORMAT_VERSION is
 * refused. allow_unmarked: accept a file without a `format` attribute (a model file made
 * with h5py); such a file's tensors need no crc32. Files with a dptrain format must carry a
 * crc32 on every tensor. */
dpt_status dpt_ckpt_open(const dpt_comm *c, const char *path, const char *const *formats, bool allow_unmarked,
                         dpt_ckpt_file **out);
void dpt_ckpt_close(dpt_ckpt_file **f);
/* The `format` attribute ("" for an unmarked file). Borrowed from f. */
const char *dpt_ckpt_format(const dpt_ckpt_file *f);
const char *dpt_ckpt_path(const dpt_ckpt_file *f);
/* True when the record exists (tensor dataset or scalar attribute). Not an error if not. */
bool dpt_ckpt_has(dpt_ckpt_file *f, const char *name);
/* Stored element type (f32/f64; other types are an error naming the tensor) and shape. */
dpt_status dpt_ckpt_tensor_shape(dpt_ckpt_file *f, const char *name, dpt_dtype *stored, int *ndim, int64_t *shape);
/* Reads a whole tensor into data (every rank gets it all). The stored shape must equal
 * [ndim, shape] (else: error saying both); values are converted to dtype when the stored
 * type differs; the crc32 is checked on the stored values (mismatch: error naming the
 * tensor and both checksums). */
dpt_status dpt_ckpt_get_tensor(dpt_ckpt_file *f, const char *name, dpt_dtype dtype, int ndim, const int64_t *shape,
                               void *data);
dpt_status dpt_ckpt_get_int(dpt_ckpt_file *f, const char *name, int64_t *v);
dpt_status dpt_ckpt_get_double(dpt_ckpt_file *f, const char *name, double *v);
/* *s is allocated (caller frees with dpt_free). Fixed- or variable-length strings. */
dpt_status dpt_ckpt_get_string(dpt_ckpt_file *f, const char *name, char **s);

/* ---- checkpoints in a directory ----------------------------------------------------------- */

/* "<dir>/ckpt-<step %08lld>.h5" into out[n]. Not collective. */
dpt_status dpt_checkpoint_path(const char *dir, int64_t step, char *out, size_t n);
/* Creates dir (and parents) when missing: rank 0 does it, the result is agreed. */
dpt_status dpt_checkpoint_mkdir(const dpt_comm *c, const char *dir);
/* The steps of the checkpoints in dir, newest first (rank 0 lists, the list is broadcast);
 * *steps is allocated (caller frees with dpt_free), *n may be 0. A missing dir gives n = 0. */
dpt_status dpt_checkpoint_list(const dpt_comm *c, const char *dir, int64_t **steps, int *n);
/* Keeps the newest keep checkpoints in dir and removes the rest (rank 0); keep <= 0 keeps
 * all. */
dpt_status dpt_checkpoint_prune(const dpt_comm *c, const char *dir, int keep);

/* Loads the checkpoint at path into the caller's state; collective; returns an agreed
 * status. Must (re)set everything it restores, since a failed attempt may be followed by
 * another file. */
typedef dpt_status (*dpt_checkpoint_load_fn)(void *ctx, const char *path);
/* spec is a file path or "latest". A path: load it (errors are returned). "latest": try
 * the checkpoints of dir newest first; each one refused is reported on rank 0's stderr
 * ("checkpoint A refused: <why>; falling back to B") and the next older is tried. No
 * checkpoint in dir at all: *loaded = false and DPT_OK (a fresh start, e.g. the first run
 * of a requeued job). Checkpoints present but none loads: error. On success *loaded = true
 * and used (may be NULL) gets the path loaded. */
dpt_status dpt_checkpoint_resume(const dpt_comm *c, const char *spec, const char *dir, dpt_checkpoint_load_fn load,
                                 void *ctx, bool *loaded, char *used, size_t used_size);

/* ---- model files and the model part of checkpoints (modelfile.c) --------------------------- */

/* Feature standardization applied before the model: x' = (x - mean) / std, [n_in] each. */
typedef struct dpt_standardize {
  const double *mean, *std; /* borrowed; both NULL when the data is not standardized */
} dpt_standardize;

/* Writes the model into an open file: tensors model/<name> (dpt_model_tensor_info names,
 * e.g. model/layer_0/W [out, in]) with checksums, and the description attributes of
 * data/FORMAT.md (n_in, n_out, task, output, loss, dtype, tensor list; per layer: type,
 * activation, units; standardization as model/standardize/mean and std; the resolved
 * config as the root attribute `config`). cfg is the run's config (read, not changed
 * apart from recording the keys it looks up). */
dpt_status dpt_modelfile_put(dpt_ckpt_file *f, dpt_model *m, dpt_task task, dpt_config *cfg,
                             const dpt_standardize *stdz);
/* A model file at path (format dptrain-model), written atomically. */
dpt_status dpt_modelfile_save(const dpt_comm *c, const char *path, dpt_model *m, dpt_task task, dpt_config *cfg,
                              const dpt_standardize *stdz);
/* Reads model/<name> for every tensor of m into its flat parameter buffer. Another
 * architecture is refused with what differs (a missing, extra or differently shaped
 * tensor, n_in/n_out); same_dtype: the stored dtype must be the model's (checkpoints),
 * else values are converted (model files, --init). */
dpt_status dpt_modelfile_get_params(dpt_ckpt_file *f, dpt_model *m, bool same_dtype);
/* model.init_file: loads the weights of a dptrain model file, a checkpoint, or a file
 * made with h5py in the model/layer_N/W layout (no checksums or attributes needed). */
dpt_status dpt_modelfile_init(const dpt_comm *c, const char *path, dpt_model *m);

/* A model rebuilt from a model file or checkpoint (eval, predict). Owns everything. */
typedef struct dpt_loaded_model {
  dpt_model *model;  /* owned */
  dpt_config *cfg;   /* owned: the config stored in the file */
  dpt_task task;
  dpt_dtype dtype;
  int64_t n_in, n_out;
  double *mean, *std; /* owned, [n_in], or NULL when the model was trained without standardization */
} dpt_loaded_model;
/* Builds the model the file describes (from its stored config and sizes) in the file's
 * dtype and loads its parameters. */
dpt_status dpt_modelfile_load(const dpt_comm *c, const char *path, dpt_loaded_model *out);
void dpt_loaded_model_free(dpt_loaded_model *lm);

/* ---- training checkpoints (checkpoint_state.c) ------------------------------------------ */

typedef struct dpt_optim dpt_optim;       /* optim.h */
typedef struct dpt_schedule dpt_schedule; /* optim.h */

/* Everything a run needs to continue exactly. The sample order is a function of (seed,
 * epoch), so (seed, epoch, step_in_epoch) is the data position; global_step numbers the
 * optimizer steps taken. Pointers are borrowed from the training loop. */
typedef struct dpt_train_state {
  dpt_model *model;          /* parameters (model/...) */
  dpt_optim *optim;          /* optimizer state by name (optim/...); may be NULL */
  dpt_schedule *schedule;    /* schedule state by name (schedule/...); may be NULL */
  dpt_config *cfg;           /* the run's resolved config (stored as text) */
  dpt_task task;
  dpt_standardize stdz;      /* feature standardization, or {NULL, NULL} */
  uint64_t seed;             /* train.seed */
  int64_t epoch;             /* epoch to continue in (0-based) */
  int64_t step_in_epoch;     /* next step within that epoch */
  int64_t global_step;       /* optimizer steps taken so far */
  double epoch_loss_sum;     /* training loss summed over the rows of this epoch's steps so far */
  int64_t epoch_rows;        /* rows those steps covered */
  /* Metrics history, one row per finished epoch: [history_rows, history_cols] doubles with
   * comma-separated column names history_names ("epoch,train_loss,..."). history is owned
   * by whoever holds the state (allocated with dpt_alloc, freed with dpt_free); load frees
   * the previous array and allocates the stored one (NULL when the file has none). */
  double *history;
  int64_t history_rows;
  int history_cols;
  char history_names[512];
} dpt_train_state;

/* The [checkpoint] keys: every (steps; 0 = only at the end when dir is given), dir
 * (default "checkpoints"), keep (0 = all; default 3), resume (FILE or latest; NULL =
 * fresh start), model_out (a model file written at the end; NULL = none). enabled: every > 0
 * or dir given. Strings are borrowed from cfg. */
typedef struct dpt_checkpoint_plan {
  int64_t every, keep;
  const char *dir, *resume, *model_out;
  bool enabled;
} dpt_checkpoint_plan;
dpt_status dpt_checkpoint_read_config(dpt_config *cfg, dpt_checkpoint_plan *p);

/* Writes <dir>/ckpt-<global_step>.h5 (atomic; creates dir), then keeps the newest keep
 * checkpoints (keep <= 0: all). path (may be NULL) gets the file written. */
dpt_status dpt_checkpoint_save(const dpt_comm *c, const char *dir, int keep, dpt_train_state *s, char *path,
                               size_t path_size);
/* Restores s->model's parameters, s->optim's and s->schedule's state, the position and the
 * history from a checkpoint. Refused with what differs: another dtype, architecture,
 * optimizer type or schedule type, another history than s->history_names says when it is set
 * on entry (the columns the caller appends rows of); a damaged tensor names itself. */
dpt_status dpt_checkpoint_load(const dpt_comm *c, const char *path, dpt_train_state *s);

/* ---- stop signals (preemption) ------------------------------------------------------------ */

/* Installs handlers for SIGTERM and SIGUSR1: the first sets a flag (sig_atomic_t) that the
 * training loop polls at step boundaries; a second one ends the process at once with
 * _exit(128 + signal) (no checkpoint). Not collective. */
dpt_status dpt_signals_install(void);
/* Restores the previous handlers and clears the flag. */
void dpt_signals_restore(void);
/* True once a stop signal arrived on this rank. Async-signal-safe read. */
bool dpt_signals_stop_requested(void);
/* The signal number received (0 when none). */
int dpt_signals_received(void);
/* Collective: true on every rank when any rank received a stop signal, so all ranks stop
 * at the same step boundary. */
dpt_status dpt_signals_agree_stop(const dpt_comm *c, bool *stop);

/* Fault injection for the preemption tests, driven by the environment:
 *   DPT_FAULT=signal@K  raises SIGUSR1 at step boundary K (a real signal through the handler)
 *   DPT_FAULT=kill@K    raises SIGKILL at step boundary K
 *   DPT_FAULT=kill-in-save@K  raises SIGKILL in the middle of writing checkpoint K
 *   DPT_FAULT=stall@K   stops making progress at step boundary K (sleeps for ever; the
 *                       watchdog of watchdog.h ends the job)
 *   DPT_FAULT=freeze@K  raises SIGSTOP at step boundary K (the whole process stops, its
 *                       watchdog too; the other ranks' watchdogs end the job)
 * on the rank DPT_FAULT_RANK (default 0). where is "step" or "save". Does nothing when
 * DPT_FAULT is unset. Not collective. */
void dpt_signals_fault_point(const dpt_comm *c, const char *where, int64_t step);

#endif

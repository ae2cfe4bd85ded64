/* dataset.h — dptrain's HDF5 dataset layout (data/FORMAT.md), validated collective reads,
 * and the loader that serves each rank its part of every global batch.
 *
 * Layout: /X [N, d] float32 or float64; /y [N] integer class labels (binary, multiclass) or
 * [N, k] float targets (regression); root attribute `task` = regression|binary|multiclass;
 * optional validation split /X_val, /y_val in the same file.
 *
 * Collective: open, read_rows, close, loader_create and loader_batch are collective over the
 * communicator given at open; every rank calls them even when it has nothing to read (an
 * empty selection). Errors are agreed across ranks before returning.
 * Ownership: open/create allocate, close/destroy free (and set the pointer to NULL). */
#ifndef DPTRAIN_DATASET_H
#define DPTRAIN_DATASET_H

#include <stdint.h>
#include "dptrain/comm.h"
#include "dptrain/config.h"
#include "dptrain/graph.h"
#include "dptrain/types.h"

typedef struct dpt_dataset dpt_dataset;
typedef struct dpt_loader dpt_loader;

/* split: "train" reads /X,/y; "val" reads /X_val,/y_val when present, else /X,/y. */
dpt_status dpt_dataset_open(const dpt_comm *c, const char *path, const char *split, dpt_dataset **out);
void dpt_dataset_close(dpt_dataset **ds);
int64_t dpt_dataset_rows(const dpt_dataset *ds);
int64_t dpt_dataset_features(const dpt_dataset *ds);
dpt_task dpt_dataset_task(const dpt_dataset *ds);
/* classes (multiclass), 1 (binary), k (regression) */
int64_t dpt_dataset_outputs(const dpt_dataset *ds);
/* True when the file holds a /X_val, /y_val split (checked at open of the train split). */
bool dpt_dataset_has_val(const dpt_dataset *ds);
const char *dpt_dataset_path(const dpt_dataset *ds);

/* Collective. rows: n global row ids (any order, duplicates allowed); X gets [n, d] in dtype,
 * labels [n] (classification) or values [n, k] in dtype (regression); the other may be NULL. */
dpt_status dpt_dataset_read_rows(dpt_dataset *ds, const int64_t *rows, int64_t n, dpt_dtype dtype, void *X,
                                 int32_t *labels, void *values);

/* data.standardize. Collective: per-feature mean and population standard deviation of /X
 * (after the uint8 scale) over all N rows, in double, from one pass over each rank's shard and
 * one MPI sum; a constant feature gets std 1. Every later read returns (x - mean) / std. */
dpt_status dpt_dataset_standardize(dpt_dataset *ds);
/* Uses given statistics ([d] each, copied; both NULL: none), e.g. the training set's for the
 * validation set or a model file's for prediction. Not collective. */
dpt_status dpt_dataset_set_standardization(dpt_dataset *ds, const double *mean, const double *std);
/* The statistics in use: borrowed [d] arrays valid until close or the next set; both NULL
 * when the data is not standardized (the layout of checkpoint.h's dpt_standardize). */
void dpt_dataset_standardization(const dpt_dataset *ds, const double **mean, const double **std);

typedef struct dpt_batch {
  const void *X;  /* [n, d] in dtype, borrowed from the loader until the next call */
  dpt_targets y;  /* borrowed likewise */
  int64_t n;        /* rows on this rank */
  int64_t n_global; /* rows in this global batch */
  int64_t first;    /* position of this rank's first row within the global batch */
} dpt_batch;

/* Reads data.shuffle (global|local|none) and data.standardize (bool, default false: when
 * true and ds is not standardized yet, calls dpt_dataset_standardize(ds)). batch: global B (0 = full batch); micro: 0 fast
 * mode (even split), > 0 exact mode micro-batches (dpt_shard_batch). */
dpt_status dpt_loader_create(const dpt_comm *c, dpt_dataset *ds, dpt_config *cfg, dpt_dtype dtype, int64_t batch,
                             int64_t micro, uint64_t seed, dpt_loader **out);
void dpt_loader_destroy(dpt_loader **l);
int64_t dpt_loader_steps_per_epoch(const dpt_loader *l);
/* Global row id at position pos of epoch's sample order (a function of seed and epoch). */
int64_t dpt_loader_sample(dpt_loader *l, int64_t epoch, int64_t pos);
dpt_status dpt_loader_batch(dpt_loader *l, int64_t epoch, int64_t step, dpt_batch *out);

#endif

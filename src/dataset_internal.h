/* dataset_internal.h — the dataset struct, shared by dataset.c and dataset_standardize.c only. */
#ifndef DPTRAIN_DATASET_INTERNAL_H
#define DPTRAIN_DATASET_INTERNAL_H

#include <hdf5.h>

#include "dptrain/dataset.h"

/* The most classes a labelled dataset may have (labels 0 .. 2^24 - 1), as for d and k. */
#define DPT_DATASET_MAX_CLASSES ((int64_t)1 << 24)

struct dpt_dataset {
  const dpt_comm *c;  /* borrowed */
  char *path;         /* owned */
  hid_t file, X, y;   /* owned HDF5 handles */
  int64_t n, d, k;    /* rows, features, outputs */
  int64_t classes;    /* classification: label range [0, classes) */
  dpt_task task;
  bool y_is_labels, has_val;
  double scale;       /* uint8 X: value = stored * scale; else 1 */
  double *mean, *std; /* owned [d] each, NULL when not standardized (dataset_standardize.c) */
};

/* Applies scale and standardization to n rows of X [n, d] in dtype (after the finite check). */
void dpt_dataset_transform(const dpt_dataset *ds, dpt_dtype dtype, void *X, int64_t n);

#endif

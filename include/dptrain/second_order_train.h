/* second_order_train.h — full-batch second-order training of a model (see second_order.h).
 *
 * The objective is the mean loss over the whole training set: each rank reads its even
 * shard (dpt_shard_range of N rows) once with dpt_dataset_read_rows, computes its part of
 * the value, gradient and H.v with scale 1/N, and MPI_Allreduce sums them in double, so every
 * rank sees identical values and takes the same line-search and CG branches. Fast mode only:
 * the sum's rounding depends on the rank count (exact mode's reducer is not used here).
 *
 * Collective over c. The model's parameters are the start and receive the result. Rank 0
 * prints one line per iteration unless quiet. Buffers are owned and freed inside. */
#ifndef DPTRAIN_SECOND_ORDER_TRAIN_H
#define DPTRAIN_SECOND_ORDER_TRAIN_H

#include <stdbool.h>
#include "dptrain/comm.h"
#include "dptrain/dataset.h"
#include "dptrain/model.h"
#include "dptrain/second_order.h"

dpt_status dpt_second_order_train(const dpt_comm *c, const dpt_so_options *opts, dpt_model *m, dpt_dataset *train,
                                  dpt_dtype dtype, bool quiet, dpt_so_result *res);

#endif

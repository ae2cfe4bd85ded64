/* reduce_step.c — the training loop's side of a data-parallel step: forward+backward over this
 * rank's rows, feeding the reducer (see reduce.h, dpt_reducer_add_batch). */
#include "dptrain/reduce.h"

int64_t dpt_reducer_terms(const dpt_reducer *r, int64_t batch_global) {
  const dpt_reduce_opts *o = dpt_reducer_opts(r);
  if (o->mode == DPT_REDUCE_FAST) return 0;
  int64_t per = (batch_global + o->micro_batch - 1) / o->micro_batch;
  return (per > 0 ? per : 1) * o->accumulate; /* an upper bound: short batches deposit fewer */
}

dpt_status dpt_reducer_add_batch(dpt_reducer *r, dpt_model *m, const void *X, const dpt_targets *y, int64_t n,
                                 int64_t first, int64_t micro_step, double scale, bool last, double *loss,
                                 dpt_timers *timers) {
  const dpt_reduce_opts *o = dpt_reducer_opts(r);
  if (o->mode == DPT_REDUCE_EXACT && n > 0)
    DPT_CHECK(first % o->micro_batch == 0, DPT_ERR_INPUT,
              "exact mode (parallel.reduce = exact): this rank's rows start at position %lld of the global batch, "
              "not at a whole micro-batch of parallel.micro_batch = %lld rows (data.shuffle = local does not cut "
              "whole micro-batches: use global or none)",
              (long long)first, (long long)o->micro_batch);
  if (timers) dpt_timer_start(timers, DPT_PHASE_BACKWARD);
  dpt_status st = DPT_OK;
  if (o->mode == DPT_REDUCE_FAST) {
    st = dpt_model_forward_backward(m, X, y, n, scale, loss, last ? dpt_reducer_ready : NULL, r);
  } else {
    /* micro-batch b of the global batch in micro-step i is term j = b * accumulate + i, so
     * that over the micro-steps a rank's terms fill one contiguous range */
    int64_t acc = o->accumulate, j = first / o->micro_batch * acc + micro_step;
    size_t es = dpt_dtype_size(dpt_model_dtype(m));
    size_t in = (size_t)dpt_model_inputs(m), out = (size_t)dpt_model_outputs(m);
    for (int64_t k = 0; k < n && st == DPT_OK; k += o->micro_batch, j += acc) {
      int64_t rows = n - k < o->micro_batch ? n - k : o->micro_batch;
      dpt_targets yk = {y->labels ? y->labels + k : NULL,
                        y->values ? (const char *)y->values + (size_t)k * out * es : NULL};
      double l = 0;
      void *leaf = NULL; /* zeroed by the reducer; the engine writes the term into it */
      st = dpt_reducer_leaf(r, &leaf);
      if (st == DPT_OK)
        st = dpt_model_forward_backward_into(m, leaf, (const char *)X + (size_t)k * in * es, &yk, rows, scale, &l);
      if (st == DPT_OK) st = dpt_reducer_deposit_leaf(r, j, l);
      else if (leaf) dpt_reducer_drop_leaf(r); /* this error, agreed after finish, ends the step */
    }
  }
  if (timers) dpt_timer_stop(timers, DPT_PHASE_BACKWARD);
  if (st != DPT_OK) dpt_error_push(__FILE__, __LINE__, __func__);
  return st;
}

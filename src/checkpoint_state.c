/* checkpoint_state.c — what a training checkpoint holds and how it is restored: model
 * parameters, optimizer and schedule state by name (optim.h), data position and seed,
 * config, dtype, metrics history (see checkpoint.h and data/FORMAT.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/optim.h"

static const char *const ckpt_formats[] = {DPT_CKPT_FORMAT_CHECKPOINT, NULL};

/* One piece of named state: int64 counters as attributes, float arrays (and double
 * scalars) as checksummed tensors [count]. */
static dpt_status put_state(dpt_ckpt_file *f, const char *group, const dpt_state_info *info) {
  char rec[128];
  snprintf(rec, sizeof rec, "%s/%s", group, info->name);
  if (info->type == DPT_STATE_I64) {
    DPT_CHECK(info->count == 1, DPT_ERR_INTERNAL, "%s: int64 state with %zu elements", rec, info->count);
    return dpt_ckpt_put_int(f, rec, *(const int64_t *)info->data);
  }
  int64_t shape[1] = {(int64_t)info->count};
  return dpt_ckpt_put_tensor(f, rec, (dpt_dtype)info->type, 1, shape, info->data);
}

static dpt_status get_state(dpt_ckpt_file *f, const char *group, const dpt_state_info *info) {
  char rec[128];
  snprintf(rec, sizeof rec, "%s/%s", group, info->name);
  DPT_CHECK(dpt_ckpt_has(f, rec), DPT_ERR_FORMAT, "%s: no %s state '%s' in the checkpoint", dpt_ckpt_path(f), group,
            info->name);
  if (info->type == DPT_STATE_I64) return dpt_ckpt_get_int(f, rec, (int64_t *)info->data);
  int64_t shape[1] = {(int64_t)info->count};
  dpt_dtype stored;
  int nd;
  int64_t fshape[DPT_CKPT_MAX_DIMS];
  DPT_CALL(dpt_ckpt_tensor_shape(f, rec, &stored, &nd, fshape));
  DPT_CHECK(stored == (dpt_dtype)info->type, DPT_ERR_FORMAT, "%s: dtype differs: %s is %s in the checkpoint, %s here",
            dpt_ckpt_path(f), rec, dpt_dtype_name(stored), dpt_dtype_name((dpt_dtype)info->type));
  return dpt_ckpt_get_tensor(f, rec, (dpt_dtype)info->type, 1, shape, info->data);
}

/* An optimizer state read from a checkpoint is used as it is by the next step: a step count
 * below 0 or a value that is not finite (the file's checksum only says it was written so)
 * is refused, naming the record and the first bad element. */
static dpt_status check_optim_state(dpt_ckpt_file *f, const dpt_state_info *info) {
  if (info->type == DPT_STATE_I64) {
    int64_t v = *(const int64_t *)info->data;
    DPT_CHECK(v >= 0, DPT_ERR_FORMAT, "%s: optim/%s: %lld (expected >= 0)", dpt_ckpt_path(f), info->name,
              (long long)v);
    return DPT_OK;
  }
  for (size_t i = 0; i < info->count; ++i) {
    double v = info->type == DPT_STATE_F32 ? (double)((const float *)info->data)[i] : ((const double *)info->data)[i];
    DPT_CHECK(isfinite(v), DPT_ERR_FORMAT, "%s: optim/%s: element %zu is %g (expected finite values)",
              dpt_ckpt_path(f), info->name, i, v);
  }
  return DPT_OK;
}

static dpt_status put_all(const dpt_comm *c, dpt_ckpt_file *f, dpt_train_state *s) {
  DPT_CALL(dpt_modelfile_put(f, s->model, s->task, s->cfg, &s->stdz));
  /* test hook: a rank killed in the middle of writing (after the parameters) */
  dpt_signals_fault_point(c, "save", s->global_step);
  if (s->optim) {
    DPT_CALL(dpt_ckpt_put_string(f, "optim/type", dpt_optim_type_name(s->optim)));
    for (int i = 0; i < dpt_optim_num_states(s->optim); ++i) {
      dpt_state_info info;
      dpt_optim_state(s->optim, i, &info);
      DPT_CALL(put_state(f, "optim", &info));
    }
  }
  if (s->schedule) {
    DPT_CALL(dpt_ckpt_put_string(f, "schedule/type", dpt_schedule_type_name(s->schedule)));
    for (int i = 0; i < dpt_schedule_num_states(s->schedule); ++i) {
      dpt_state_info info;
      dpt_schedule_state(s->schedule, i, &info);
      DPT_CALL(put_state(f, "schedule", &info));
    }
  }
  DPT_CALL(dpt_ckpt_put_string(f, "train/dtype", dpt_dtype_name(dpt_model_dtype(s->model))));
  DPT_CALL(dpt_ckpt_put_int(f, "train/seed", (int64_t)s->seed));
  DPT_CALL(dpt_ckpt_put_int(f, "train/epoch", s->epoch));
  DPT_CALL(dpt_ckpt_put_int(f, "train/step_in_epoch", s->step_in_epoch));
  DPT_CALL(dpt_ckpt_put_int(f, "train/global_step", s->global_step));
  DPT_CALL(dpt_ckpt_put_int(f, "train/ranks", c->size));
  DPT_CALL(dpt_ckpt_put_double(f, "train/epoch_loss_sum", s->epoch_loss_sum));
  DPT_CALL(dpt_ckpt_put_int(f, "train/epoch_rows", s->epoch_rows));
  if (s->history && s->history_rows > 0 && s->history_cols > 0) {
    int64_t shape[2] = {s->history_rows, s->history_cols};
    DPT_CALL(dpt_ckpt_put_tensor(f, "train/history", DPT_F64, 2, shape, s->history));
    DPT_CALL(dpt_ckpt_put_string(f, "train/history_columns", s->history_names));
  }
  return DPT_OK;
}

dpt_status dpt_checkpoint_save(const dpt_comm *c, const char *dir, int keep, dpt_train_state *s, char *path,
                               size_t path_size) {
  char file[4200];
  DPT_CALL(dpt_checkpoint_path(dir, s->global_step, file, sizeof file));
  DPT_CALL(dpt_checkpoint_mkdir(c, dir));
  dpt_ckpt_file *f = NULL;
  DPT_CALL(dpt_ckpt_create(c, file, DPT_CKPT_FORMAT_CHECKPOINT, &f));
  dpt_status st = put_all(c, f, s);
  if (st != DPT_OK) {
    dpt_ckpt_discard(&f);
    dpt_error_push(__FILE__, __LINE__, __func__);
    return st;
  }
  DPT_CALL(dpt_ckpt_commit(&f));
  DPT_CALL(dpt_checkpoint_prune(c, dir, keep));
  if (path) snprintf(path, path_size, "%s", file);
  return DPT_OK;
}

static dpt_status check_type(dpt_ckpt_file *f, const char *rec, const char *what, const char *here) {
  char *stored = NULL;
  DPT_CHECK(dpt_ckpt_has(f, rec), DPT_ERR_FORMAT, "%s: the checkpoint has no %s state, this run uses %s %s",
            dpt_ckpt_path(f), what, what, here);
  DPT_CALL(dpt_ckpt_get_string(f, rec, &stored));
  bool same = !strcmp(stored, here);
  dpt_status st = DPT_OK;
  if (!same)
    st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                       "%s: %s differs: the checkpoint was written with %s %s, this run uses %s", dpt_ckpt_path(f), what,
                       what, stored, here);
  dpt_free(&stored);
  return st;
}

static dpt_status load_all(const dpt_comm *c, dpt_ckpt_file *f, dpt_train_state *s) {
  const char *path = dpt_ckpt_path(f);
  char *dtype = NULL;
  DPT_CALL(dpt_ckpt_get_string(f, "train/dtype", &dtype));
  bool same = !strcmp(dtype, dpt_dtype_name(dpt_model_dtype(s->model)));
  dpt_status st = DPT_OK;
  if (!same)
    st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                       "%s: dtype differs: the checkpoint is %s, this run uses %s (train.dtype)", path, dtype,
                       dpt_dtype_name(dpt_model_dtype(s->model)));
  dpt_free(&dtype);
  DPT_CALL(st);
  DPT_CALL(dpt_modelfile_get_params(f, s->model, true));
  if (s->optim) {
    DPT_CALL(check_type(f, "optim/type", "optimizer", dpt_optim_type_name(s->optim)));
    for (int i = 0; i < dpt_optim_num_states(s->optim); ++i) {
      dpt_state_info info;
      dpt_optim_state(s->optim, i, &info);
      DPT_CALL(get_state(f, "optim", &info));
      DPT_CALL(check_optim_state(f, &info));
    }
  }
  if (s->schedule) {
    DPT_CALL(check_type(f, "schedule/type", "schedule", dpt_schedule_type_name(s->schedule)));
    for (int i = 0; i < dpt_schedule_num_states(s->schedule); ++i) {
      dpt_state_info info;
      dpt_schedule_state(s->schedule, i, &info);
      DPT_CALL(get_state(f, "schedule", &info));
    }
  }
  int64_t seed = 0;
  DPT_CALL(dpt_ckpt_get_int(f, "train/seed", &seed));
  DPT_CALL(dpt_ckpt_get_int(f, "train/epoch", &s->epoch));
  DPT_CALL(dpt_ckpt_get_int(f, "train/step_in_epoch", &s->step_in_epoch));
  DPT_CALL(dpt_ckpt_get_int(f, "train/global_step", &s->global_step));
  s->seed = (uint64_t)seed;
  DPT_CALL(dpt_ckpt_get_double(f, "train/epoch_loss_sum", &s->epoch_loss_sum));
  DPT_CALL(dpt_ckpt_get_int(f, "train/epoch_rows", &s->epoch_rows));
  DPT_CHECK(s->epoch >= 0 && s->step_in_epoch >= 0 && s->global_step >= 0, DPT_ERR_FORMAT,
            "%s: train/epoch %lld, step_in_epoch %lld, global_step %lld: expected values >= 0", path,
            (long long)s->epoch, (long long)s->step_in_epoch, (long long)s->global_step);
  /* the columns the caller will append rows of (none: any) */
  char want[sizeof s->history_names];
  snprintf(want, sizeof want, "%s", s->history_names);
  int64_t want_cols = 0;
  for (const char *p = want; *p; ++p) want_cols += *p == ',';
  want_cols += want[0] != '\0';
  dpt_free(&s->history);
  s->history_rows = 0;
  s->history_cols = 0;
  s->history_names[0] = '\0';
  if (dpt_ckpt_has(f, "train/history")) {
    dpt_dtype stored;
    int nd;
    int64_t shape[DPT_CKPT_MAX_DIMS];
    DPT_CALL(dpt_ckpt_tensor_shape(f, "train/history", &stored, &nd, shape));
    DPT_CHECK(nd == 2 && shape[0] <= ((int64_t)1 << 24) && shape[1] >= 1 && shape[1] <= 64, DPT_ERR_FORMAT,
              "%s: train/history: expected [epochs <= 2^24, columns 1..64]", path);
    DPT_CHECK(!want_cols || shape[1] == want_cols, DPT_ERR_FORMAT,
              "%s: train/history: %lld columns, expected %lld (%s)", path, (long long)shape[1], (long long)want_cols,
              want);
    DPT_CALL(dpt_comm_agree(c, dpt_alloc((size_t)(shape[0] * shape[1]), sizeof(double), "metrics history",
                                         &s->history)));
    DPT_CALL(dpt_ckpt_get_tensor(f, "train/history", DPT_F64, 2, shape, s->history));
    s->history_rows = shape[0];
    s->history_cols = (int)shape[1];
    char *names = NULL;
    DPT_CALL(dpt_ckpt_get_string(f, "train/history_columns", &names));
    bool same = !want_cols || !strcmp(names, want);
    snprintf(s->history_names, sizeof s->history_names, "%s", names);
    dpt_free(&names);
    DPT_CHECK(same, DPT_ERR_FORMAT, "%s: train/history_columns: '%s', expected '%s'", path, s->history_names, want);
  }
  return DPT_OK;
}

dpt_status dpt_checkpoint_load(const dpt_comm *c, const char *path, dpt_train_state *s) {
  dpt_ckpt_file *f = NULL;
  DPT_CALL(dpt_ckpt_open(c, path, ckpt_formats, false, &f));
  dpt_status st = load_all(c, f, s);
  dpt_ckpt_close(&f);
  /* every call above is agreed or depends only on the file's content, which all ranks read
   * identically; agree once more so a local failure (allocation) cannot split the ranks */
  st = dpt_comm_agree(c, st);
  if (st != DPT_OK) dpt_error_push(__FILE__, __LINE__, __func__);
  return st;
}

dpt_status dpt_checkpoint_read_config(dpt_config *cfg, dpt_checkpoint_plan *p) {
  memset(p, 0, sizeof *p);
  bool dir_given = dpt_config_has(cfg, "checkpoint.dir");
  DPT_CALL(dpt_config_get_int(cfg, "checkpoint.every", 0, 0, 99999999, &p->every));
  DPT_CALL(dpt_config_get_string(cfg, "checkpoint.dir", "checkpoints", &p->dir));
  DPT_CALL(dpt_config_get_int(cfg, "checkpoint.keep", 3, 0, 1000000, &p->keep));
  DPT_CALL(dpt_config_get_string(cfg, "checkpoint.resume", NULL, &p->resume));
  DPT_CALL(dpt_config_get_string(cfg, "checkpoint.model_out", NULL, &p->model_out));
  DPT_CHECK(p->dir[0] != '\0', DPT_ERR_INPUT, "checkpoint.dir: expected a directory, got an empty value");
  DPT_CHECK(!p->resume || p->resume[0] != '\0', DPT_ERR_INPUT,
            "checkpoint.resume: expected a checkpoint file or 'latest', got an empty value");
  p->enabled = p->every > 0 || dir_given;
  return DPT_OK;
}

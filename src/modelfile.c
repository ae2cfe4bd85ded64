/* modelfile.c — the model part of model files and checkpoints: tensors model/layer_N/...,
 * description attributes readable with h5py, architecture checks on load, --init from
 * any file in the layout, and rebuilding a model for eval/predict (see checkpoint.h and
 * data/FORMAT.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/checkpoint.h"
#include "dptrain/loss.h"

enum { MAX_LAYER_SECTIONS = 256 };

static const char *const model_formats[] = {DPT_CKPT_FORMAT_MODEL, DPT_CKPT_FORMAT_CHECKPOINT, NULL};

static void tensor_record(char *out, size_t n, const char *name) { snprintf(out, n, "model/%s", name); }

static int max_layer(const dpt_model *m, dpt_config *cfg) {
  int top = -1, sec[MAX_LAYER_SECTIONS], nsec = 0;
  for (int i = 0; i < dpt_model_num_tensors(m); ++i) {
    dpt_param_info info;
    dpt_model_tensor_info(m, i, &info);
    if (info.layer > top) top = info.layer;
  }
  if (dpt_config_sections(cfg, "layer", sec, MAX_LAYER_SECTIONS, &nsec) == DPT_OK)
    for (int i = 0; i < nsec; ++i)
      if (sec[i] > top) top = sec[i];
  dpt_error_clear();
  return top;
}

dpt_status dpt_modelfile_put(dpt_ckpt_file *f, dpt_model *m, dpt_task task, dpt_config *cfg,
                             const dpt_standardize *stdz) {
  dpt_dtype dt = dpt_model_dtype(m);
  const char *params = dpt_model_params(m);
  size_t esz = dpt_dtype_size(dt);
  int nt = dpt_model_num_tensors(m);
  char rec[128];
  char list[4096] = "";
  for (int i = 0; i < nt; ++i) {
    dpt_param_info info;
    dpt_model_tensor_info(m, i, &info);
    tensor_record(rec, sizeof rec, info.name);
    DPT_CALL(dpt_ckpt_put_tensor(f, rec, dt, info.ndim, info.shape, params + info.offset * esz));
    size_t used = strlen(list);
    snprintf(list + used, sizeof list - used, "%s%s", i ? "," : "", info.name);
  }
  DPT_CALL(dpt_ckpt_put_int(f, "model/n_in", dpt_model_inputs(m)));
  DPT_CALL(dpt_ckpt_put_int(f, "model/n_out", dpt_model_outputs(m)));
  DPT_CALL(dpt_ckpt_put_int(f, "model/num_tensors", nt));
  DPT_CALL(dpt_ckpt_put_int(f, "model/num_params", (int64_t)dpt_model_num_params(m)));
  DPT_CALL(dpt_ckpt_put_string(f, "model/tensors", list));
  DPT_CALL(dpt_ckpt_put_string(f, "model/task", dpt_task_name(task)));
  DPT_CALL(dpt_ckpt_put_string(f, "model/output", dpt_output_names[dpt_model_output(m)]));
  DPT_CALL(dpt_ckpt_put_string(f, "model/loss", dpt_loss_names[dpt_model_loss(m)]));
  DPT_CALL(dpt_ckpt_put_string(f, "model/dtype", dpt_dtype_name(dt)));
  /* per layer: type, activation (the output layer's is the output function) */
  int top = max_layer(m, cfg);
  const char *model_act = "tanh";
  DPT_CALL(dpt_config_get_string(cfg, "model.activation", "tanh", &model_act));
  for (int L = 0; L <= top; ++L) {
    char key[64], name[64];
    const char *type = "dense", *act = model_act;
    snprintf(key, sizeof key, "layer.%d.type", L);
    if (dpt_config_has(cfg, key)) DPT_CALL(dpt_config_get_string(cfg, key, "dense", &type));
    snprintf(key, sizeof key, "layer.%d.activation", L);
    if (dpt_config_has(cfg, key)) DPT_CALL(dpt_config_get_string(cfg, key, model_act, &act));
    if (L == top) act = dpt_output_names[dpt_model_output(m)];
    snprintf(name, sizeof name, "model/layer_%d/type", L);
    DPT_CALL(dpt_ckpt_put_string(f, name, type));
    snprintf(name, sizeof name, "model/layer_%d/activation", L);
    DPT_CALL(dpt_ckpt_put_string(f, name, act));
  }
  bool standardized = stdz && stdz->mean && stdz->std;
  DPT_CALL(dpt_ckpt_put_int(f, "model/standardized", standardized));
  if (standardized) {
    int64_t shape[1] = {dpt_model_inputs(m)};
    DPT_CALL(dpt_ckpt_put_tensor(f, "model/standardize/mean", DPT_F64, 1, shape, stdz->mean));
    DPT_CALL(dpt_ckpt_put_tensor(f, "model/standardize/std", DPT_F64, 1, shape, stdz->std));
  }
  char *text = NULL;
  dpt_status st = dpt_ckpt_agree(f, dpt_config_to_string(cfg, &text)); /* allocates: may fail on one rank */
  if (st == DPT_OK) st = dpt_ckpt_put_string(f, "config", text);
  free(text);
  return st;
}

dpt_status dpt_modelfile_save(const dpt_comm *c, const char *path, dpt_model *m, dpt_task task, dpt_config *cfg,
                              const dpt_standardize *stdz) {
  dpt_ckpt_file *f = NULL;
  DPT_CALL(dpt_ckpt_create(c, path, DPT_CKPT_FORMAT_MODEL, &f));
  dpt_status st = dpt_modelfile_put(f, m, task, cfg, stdz);
  if (st != DPT_OK) {
    dpt_ckpt_discard(&f);
    return st;
  }
  DPT_CALL(dpt_ckpt_commit(&f));
  return DPT_OK;
}

static void shape_str(int nd, const int64_t *s, char *out, size_t n) {
  size_t u = (size_t)snprintf(out, n, "[");
  for (int i = 0; i < nd && u < n; ++i) u += (size_t)snprintf(out + u, n - u, "%s%lld", i ? ", " : "", (long long)s[i]);
  if (u < n) snprintf(out + u, n - u, "]");
}

dpt_status dpt_modelfile_get_params(dpt_ckpt_file *f, dpt_model *m, bool same_dtype) {
  const char *path = dpt_ckpt_path(f);
  dpt_dtype dt = dpt_model_dtype(m);
  char *params = dpt_model_params(m);
  size_t esz = dpt_dtype_size(dt);
  int nt = dpt_model_num_tensors(m);
  char rec[128];
  /* sizes and tensor count first: the clearest statement of what differs */
  if (dpt_ckpt_has(f, "model/n_in")) {
    int64_t n_in = 0, n_out = 0, count = 0;
    DPT_CALL(dpt_ckpt_get_int(f, "model/n_in", &n_in));
    DPT_CALL(dpt_ckpt_get_int(f, "model/n_out", &n_out));
    DPT_CHECK(n_in == dpt_model_inputs(m) && n_out == dpt_model_outputs(m), DPT_ERR_FORMAT,
              "%s: architecture differs: the file's model maps %lld inputs to %lld outputs, this model %lld to %lld",
              path, (long long)n_in, (long long)n_out, (long long)dpt_model_inputs(m),
              (long long)dpt_model_outputs(m));
    if (dpt_ckpt_has(f, "model/num_tensors")) {
      DPT_CALL(dpt_ckpt_get_int(f, "model/num_tensors", &count));
      if (count != nt) {
        char *list = NULL;
        DPT_CALL(dpt_ckpt_get_string(f, "model/tensors", &list));
        dpt_status st = dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                                      "%s: architecture differs: the file has %lld parameter tensors (%s), this model "
                                      "%d",
                                      path, (long long)count, list, nt);
        dpt_free(&list);
        return st;
      }
    }
  }
  for (int i = 0; i < nt; ++i) {
    dpt_param_info info;
    dpt_model_tensor_info(m, i, &info);
    tensor_record(rec, sizeof rec, info.name);
    DPT_CHECK(dpt_ckpt_has(f, rec), DPT_ERR_FORMAT, "%s: architecture differs: no tensor %s in the file (this model has one)",
              path, rec);
    dpt_dtype stored;
    int nd;
    int64_t shape[DPT_CKPT_MAX_DIMS];
    DPT_CALL(dpt_ckpt_tensor_shape(f, rec, &stored, &nd, shape));
    bool same = nd == info.ndim;
    for (int d = 0; same && d < nd; ++d) same = shape[d] == info.shape[d];
    if (!same) {
      char a[96], b[96];
      shape_str(nd, shape, a, sizeof a);
      shape_str(info.ndim, info.shape, b, sizeof b);
      return dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                           "%s: architecture differs: tensor %s is %s in the file, %s in this model", path, rec, a, b);
    }
    DPT_CHECK(!same_dtype || stored == dt, DPT_ERR_FORMAT,
              "%s: dtype differs: tensor %s is %s in the file, this run uses %s (train.dtype)", path, rec,
              dpt_dtype_name(stored), dpt_dtype_name(dt));
    DPT_CALL(dpt_ckpt_get_tensor(f, rec, dt, info.ndim, info.shape, params + info.offset * esz));
  }
  return DPT_OK;
}

dpt_status dpt_modelfile_init(const dpt_comm *c, const char *path, dpt_model *m) {
  dpt_ckpt_file *f = NULL;
  DPT_CALL(dpt_ckpt_open(c, path, model_formats, true, &f));
  dpt_status st = dpt_modelfile_get_params(f, m, false);
  dpt_ckpt_close(&f);
  if (st != DPT_OK) dpt_error_push(__FILE__, __LINE__, __func__);
  return st;
}

static dpt_status load_into(const dpt_comm *c, dpt_ckpt_file *f, dpt_loaded_model *lm) {
  const char *path = dpt_ckpt_path(f);
  char *text = NULL, *s = NULL;
  dpt_status st = DPT_OK;
  DPT_TRY(dpt_ckpt_get_string(f, "config", &text));
  DPT_TRY(dpt_ckpt_get_int(f, "model/n_in", &lm->n_in));
  DPT_TRY(dpt_ckpt_get_int(f, "model/n_out", &lm->n_out));
  DPT_TRY(dpt_ckpt_get_string(f, "model/task", &s));
  DPT_TRY(dpt_comm_agree(c, dpt_task_parse(s, path, &lm->task)));
  dpt_free(&s);
  DPT_TRY(dpt_ckpt_get_string(f, "model/dtype", &s));
  DPT_TRY(dpt_comm_agree(c, dpt_dtype_parse(s, path, &lm->dtype)));
  dpt_free(&s);
  DPT_TRY_CHECK(lm->n_in >= 1 && lm->n_in <= (int64_t)1 << 31 && lm->n_out >= 1 && lm->n_out <= (int64_t)1 << 31,
                DPT_ERR_FORMAT, "%s: model/n_in %lld, n_out %lld: expected 1..2^31", path, (long long)lm->n_in,
                (long long)lm->n_out);
  /* Sizes from the file are checked against something real before a model of that size is
   * allocated: the values the file has room for (stat is local: the least over the ranks, so
   * that every rank decides alike). Every input and output has at least one parameter stored
   * (a weight of the first layer, a bias of the last; a model of parameter-free layers only is
   * not one dptrain trains), and the config may not describe more parameters than that. */
  int64_t room = 0;
  {
    struct stat sb;
    int64_t mine = stat(path, &sb) == 0 ? (int64_t)sb.st_size / (int64_t)dpt_dtype_size(lm->dtype) : 0;
    DPT_TRY_CHECK(MPI_Allreduce(&mine, &room, 1, MPI_INT64_T, MPI_MIN, c->comm) == MPI_SUCCESS, DPT_ERR_MPI,
                  "%s: MPI_Allreduce failed", path);
  }
  DPT_TRY_CHECK(lm->n_in <= room && lm->n_out <= room, DPT_ERR_FORMAT,
                "%s: model/n_in %lld, n_out %lld: more than the file's %lld values can hold parameters for "
                "(damaged file?)",
                path, (long long)lm->n_in, (long long)lm->n_out, (long long)room);
  DPT_TRY(dpt_comm_agree(c, dpt_config_create(&lm->cfg))); /* allocations agreed: a collective read follows */
  {
    char name[4200];
    snprintf(name, sizeof name, "%s:config", path);
    DPT_TRY(dpt_comm_agree(c, dpt_config_load_string(lm->cfg, text, name)));
  }
  st = dpt_model_create_bounded(lm->cfg, lm->dtype, lm->n_in, lm->n_out, lm->task, room, &lm->model);
  if (st != DPT_OK) { /* the config and sizes come from the file: say which */
    char msg[1024 + 4200];
    snprintf(msg, sizeof msg, "%s: cannot rebuild the model it describes (attribute config, model/n_in, n_out): %s",
             path, dpt_error_message());
    dpt_error_replace(st, msg);
  }
  DPT_TRY(dpt_comm_agree(c, st));
  DPT_TRY(dpt_modelfile_get_params(f, lm->model, true));
  int64_t standardized = 0;
  if (dpt_ckpt_has(f, "model/standardized")) DPT_TRY(dpt_ckpt_get_int(f, "model/standardized", &standardized));
  if (standardized) {
    int64_t shape[1] = {lm->n_in};
    st = dpt_alloc((size_t)lm->n_in, sizeof(double), "standardization mean", &lm->mean);
    if (st == DPT_OK) st = dpt_alloc((size_t)lm->n_in, sizeof(double), "standardization std", &lm->std);
    DPT_TRY(dpt_comm_agree(c, st));
    DPT_TRY(dpt_ckpt_get_tensor(f, "model/standardize/mean", DPT_F64, 1, shape, lm->mean));
    DPT_TRY(dpt_ckpt_get_tensor(f, "model/standardize/std", DPT_F64, 1, shape, lm->std));
    /* eval and predict compute (x - mean) / std with these */
    for (int64_t j = 0; j < lm->n_in; ++j)
      DPT_TRY_CHECK(isfinite(lm->mean[j]) && isfinite(lm->std[j]) && lm->std[j] > 0, DPT_ERR_FORMAT,
                    "%s: model/standardize: feature %lld has mean %g, std %g (expected finite values, std > 0)", path,
                    (long long)j, lm->mean[j], lm->std[j]);
  }
done:
  dpt_free(&text);
  dpt_free(&s);
  return st;
}

dpt_status dpt_modelfile_load(const dpt_comm *c, const char *path, dpt_loaded_model *out) {
  memset(out, 0, sizeof *out);
  dpt_ckpt_file *f = NULL;
  DPT_CALL(dpt_ckpt_open(c, path, model_formats, false, &f));
  dpt_status st = load_into(c, f, out);
  dpt_ckpt_close(&f);
  if (st != DPT_OK) {
    dpt_loaded_model_free(out);
    dpt_error_push(__FILE__, __LINE__, __func__);
  }
  return st;
}

void dpt_loaded_model_free(dpt_loaded_model *lm) {
  dpt_model_destroy(&lm->model);
  dpt_config_destroy(&lm->cfg);
  dpt_free(&lm->mean);
  dpt_free(&lm->std);
}

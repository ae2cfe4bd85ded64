/* checkpoint.c — checkpoints in a directory: names, creation of the directory, listing,
 * retention (keep the last K) and resume selection with fall-back (see checkpoint.h). */
#include "dptrain/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

dpt_status dpt_checkpoint_path(const char *dir, int64_t step, char *out, size_t n) {
  DPT_CHECK(step >= 0 && step <= 99999999, DPT_ERR_INPUT, "checkpoint step %lld: expected 0..99999999",
            (long long)step);
  int len = snprintf(out, n, "%s/ckpt-%08lld.h5", dir, (long long)step);
  DPT_CHECK(len > 0 && (size_t)len < n, DPT_ERR_INPUT, "checkpoint.dir '%s': path too long", dir);
  return DPT_OK;
}

static dpt_status mkdir_p(const char *dir) {
  char path[4096];
  DPT_CHECK(strlen(dir) > 0 && strlen(dir) < sizeof path, DPT_ERR_INPUT, "checkpoint.dir '%s': expected a path", dir);
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; ++p) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "checkpoint.dir: cannot create %s: %s", path,
                             strerror(errno));
      *p = saved;
      if (saved == '\0') break;
    }
  }
  struct stat sb;
  DPT_CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), DPT_ERR_IO, "checkpoint.dir: %s: expected a directory", dir);
  return DPT_OK;
}

dpt_status dpt_checkpoint_mkdir(const dpt_comm *c, const char *dir) {
  dpt_status st = c->rank == 0 ? mkdir_p(dir) : DPT_OK;
  return dpt_comm_agree(c, st);
}

static int cmp_desc(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Step of "ckpt-NNNNNNNN.h5", or -1 for any other name. */
static int64_t parse_name(const char *name) {
  if (strlen(name) != 16 || strncmp(name, "ckpt-", 5) != 0 || strcmp(name + 13, ".h5") != 0) return -1;
  int64_t step = 0;
  for (int i = 5; i < 13; ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

static dpt_status list_local(const char *dir, int64_t **steps, int *n) {
  *n = 0;
  *steps = NULL;
  DIR *d = opendir(dir);
  if (!d) {
    DPT_CHECK(errno == ENOENT, DPT_ERR_IO, "checkpoint.dir %s: cannot list: %s", dir, strerror(errno));
    return dpt_alloc(1, sizeof(int64_t), "checkpoint list", steps);
  }
  dpt_status st = DPT_OK;
  int cap = 16;
  st = dpt_alloc((size_t)cap, sizeof(int64_t), "checkpoint list", steps);
  for (struct dirent *e; st == DPT_OK && (e = readdir(d));) {
    int64_t s = parse_name(e->d_name);
    if (s < 0) continue;
    if (*n == cap) {
      int64_t *bigger = realloc(*steps, sizeof(int64_t) * (size_t)cap * 2);
      if (!bigger) {
        st = dpt_error_set(DPT_ERR_MEMORY, __FILE__, __LINE__, __func__, "checkpoint list: out of memory");
        break;
      }
      *steps = bigger;
      cap *= 2;
    }
    (*steps)[(*n)++] = s;
  }
  closedir(d);
  if (st != DPT_OK) {
    dpt_free(steps);
    *n = 0;
    return st;
  }
  qsort(*steps, (size_t)*n, sizeof(int64_t), cmp_desc);
  return DPT_OK;
}

dpt_status dpt_checkpoint_list(const dpt_comm *c, const char *dir, int64_t **steps, int *n) {
  *steps = NULL;
  *n = 0;
  dpt_status st = c->rank == 0 ? list_local(dir, steps, n) : DPT_OK;
  st = dpt_comm_agree(c, st);
  if (st != DPT_OK) return st;
  DPT_CALL_MPI(MPI_Bcast(n, 1, MPI_INT, 0, c->comm));
  if (c->rank != 0) st = dpt_alloc((size_t)*n + 1, sizeof(int64_t), "checkpoint list", steps);
  st = dpt_comm_agree(c, st); /* no rank leaves rank 0 alone in the broadcast */
  if (st != DPT_OK) {
    dpt_free(steps);
    *n = 0;
    return st;
  }
  DPT_CALL_MPI(MPI_Bcast(*steps, *n, MPI_INT64_T, 0, c->comm));
  return DPT_OK;
}

dpt_status dpt_checkpoint_prune(const dpt_comm *c, const char *dir, int keep) {
  if (keep <= 0) return DPT_OK;
  dpt_status st = DPT_OK;
  if (c->rank == 0) {
    int64_t *steps = NULL;
    int n = 0;
    st = list_local(dir, &steps, &n);
    for (int i = keep; st == DPT_OK && i < n; ++i) {
      char path[4200];
      st = dpt_checkpoint_path(dir, steps[i], path, sizeof path);
      if (st == DPT_OK && unlink(path) != 0 && errno != ENOENT)
        st = dpt_error_set(DPT_ERR_IO, __FILE__, __LINE__, __func__, "checkpoint.keep: cannot remove %s: %s", path,
                           strerror(errno));
    }
    dpt_free(&steps);
  }
  return dpt_comm_agree(c, st);
}

dpt_status dpt_checkpoint_resume(const dpt_comm *c, const char *spec, const char *dir, dpt_checkpoint_load_fn load,
                                 void *ctx, bool *loaded, char *used, size_t used_size) {
  *loaded = false;
  if (strcmp(spec, "latest") != 0) {
    DPT_CALL(load(ctx, spec));
    *loaded = true;
    if (used) snprintf(used, used_size, "%s", spec);
    return DPT_OK;
  }
  int64_t *steps = NULL;
  int n = 0;
  DPT_CALL(dpt_checkpoint_list(c, dir, &steps, &n));
  dpt_status st = DPT_OK;
  char path[4200], first_error[1024] = "";
  for (int i = 0; i < n; ++i) {
    st = dpt_checkpoint_path(dir, steps[i], path, sizeof path);
    if (st != DPT_OK) break;
    st = load(ctx, path); /* agreed by the loader: every rank takes the same branch */
    if (st == DPT_OK) {
      *loaded = true;
      if (used) snprintf(used, used_size, "%s", path);
      break;
    }
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", dpt_error_message());
    if (c->rank == 0) {
      char next[4200] = "no older checkpoint";
      if (i + 1 < n) dpt_checkpoint_path(dir, steps[i + 1], next, sizeof next);
      fprintf(stderr, "dptrain: checkpoint %s refused: %s; falling back to %s\n", path, dpt_error_message(), next);
      fflush(stderr);
    }
    dpt_error_clear();
  }
  dpt_free(&steps);
  if (n > 0 && !*loaded && st != DPT_OK)
    return dpt_error_set(DPT_ERR_FORMAT, __FILE__, __LINE__, __func__,
                         "checkpoint.resume = latest: none of the %d checkpoints in %s loads (newest refused: %s)", n,
                         dir, first_error);
  if (n == 0 && c->rank == 0) {
    fprintf(stderr, "dptrain: checkpoint.resume = latest: no checkpoint in %s; starting from step 0\n", dir);
    fflush(stderr);
  }
  return st;
}

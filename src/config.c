/* config.c — key/value store from INI (libinih) and --key=value, typed getters (config.h). */
#include "dptrain/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/types.h"

/* The longest line inih reads whole: its buffer holds the line, its newline and a NUL. */
enum { LINE_CHARS = INI_MAX_LINE - 2 };

typedef struct entry {
  char *key;    /* "section.name" */
  char *value;  /* NULL when only a default was resolved */
  char *origin; /* "file.ini:12", "command line" or "default" */
  bool given;   /* from file or command line */
  bool used;    /* read by a getter */
} entry;

struct dpt_config {
  entry *items; /* owned, each string owned */
  size_t n, cap;
};

static char *dup_str(const char *s) {
  size_t len = strlen(s) + 1;
  char *d = malloc(len);
  if (d) memcpy(d, s, len);
  return d;
}

dpt_status dpt_config_create(dpt_config **out) {
  DPT_CALL(dpt_calloc(1, sizeof(dpt_config), "config", out));
  return DPT_OK;
}

void dpt_config_destroy(dpt_config **cfg) {
  if (!cfg || !*cfg) return;
  for (size_t i = 0; i < (*cfg)->n; ++i) {
    free((*cfg)->items[i].key);
    free((*cfg)->items[i].value);
    free((*cfg)->items[i].origin);
  }
  free((*cfg)->items);
  dpt_free(cfg);
}

static entry *find(const dpt_config *cfg, const char *key) {
  for (size_t i = 0; i < cfg->n; ++i)
    if (!strcmp(cfg->items[i].key, key)) return &cfg->items[i];
  return NULL;
}

static dpt_status put(dpt_config *cfg, const char *key, const char *value, const char *origin, bool given) {
  entry *e = find(cfg, key);
  if (!e) {
    if (cfg->n == cfg->cap) {
      size_t cap = cfg->cap ? 2 * cfg->cap : 32;
      entry *items = realloc(cfg->items, cap * sizeof *items);
      DPT_CHECK(items, DPT_ERR_MEMORY, "config: out of memory");
      cfg->items = items;
      cfg->cap = cap;
    }
    e = &cfg->items[cfg->n++];
    memset(e, 0, sizeof *e);
    e->key = dup_str(key);
    DPT_CHECK(e->key, DPT_ERR_MEMORY, "config: out of memory");
  }
  free(e->value);
  free(e->origin);
  e->value = value ? dup_str(value) : NULL;
  e->origin = dup_str(origin);
  DPT_CHECK((!value || e->value) && e->origin, DPT_ERR_MEMORY, "config: out of memory");
  e->given = e->given || given;
  return DPT_OK;
}

/* A value must survive the resolved config text that model files and checkpoints keep
 * (dpt_config_to_string, read again by eval, predict and --resume): surrounding blanks are
 * dropped (as the INI reader drops them), and a value that the reader would cut or end early
 * is refused: a line break, an inline comment (';' after a blank), or a "name=value" line
 * longer than the reader's buffer. Values read from a file always pass. */
dpt_status dpt_config_set(dpt_config *cfg, const char *key, const char *value, const char *origin) {
  const char *dot = strrchr(key, '.');
  DPT_CHECK(dot && dot != key && dot[1], DPT_ERR_INPUT, "%s: config key '%s' is not of the form section.name",
            origin, key);
  if (!value) return put(cfg, key, value, origin, true);
  const char *blanks = " \t\v\f";
  size_t lo = strspn(value, blanks), len = strlen(value + lo);
  while (len > 0 && strchr(blanks, value[lo + len - 1])) --len;
  const char *v = value + lo;
  DPT_CHECK(strcspn(v, "\r\n") >= len, DPT_ERR_INPUT, "%s: %s: expected a value on one line, got a line break",
            origin, key);
  for (size_t i = 1; i < len; ++i)
    DPT_CHECK(v[i] != ';' || !strchr(blanks, v[i - 1]), DPT_ERR_INPUT,
              "%s: %s: expected no ' ;' in a value (the config file reads it as a comment), got '%.*s'", origin, key,
              (int)len, v);
  size_t line = strlen(dot + 1) + 1 + len;
  DPT_CHECK(line <= LINE_CHARS, DPT_ERR_INPUT,
            "%s: %s: a value of %zu characters: expected at most %zu for this key (one line of the saved config, "
            "at most %d characters)",
            origin, key, len, LINE_CHARS - strlen(dot + 1) - 1, LINE_CHARS);
  char *copy;
  DPT_CALL(dpt_alloc(len + 1, 1, key, &copy));
  memcpy(copy, v, len);
  copy[len] = '\0';
  dpt_status st = put(cfg, key, copy, origin, true);
  dpt_free(&copy);
  return st;
}

typedef struct load_ctx {
  dpt_config *cfg;
  const char *name;
  dpt_status st;
} load_ctx;

/* Debian's libinih is built without line numbers in the callback: origins name the file and
 * section; syntax errors still name the line (ini_parse's return value). */
static int on_ini_entry(void *user, const char *section, const char *name, const char *value) {
  load_ctx *ctx = user;
  char key[512], origin[512];
  if (ctx->st != DPT_OK) return 0; /* inih parses on after an error: keep the first one */
  if (!section[0]) {
    ctx->st = dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                            "%s: key '%s' is outside any [section]", ctx->name, name);
    return 0;
  }
  snprintf(key, sizeof key, "%s.%s", section, name);
  snprintf(origin, sizeof origin, "%s [%s]", ctx->name, section);
  ctx->st = dpt_config_set(ctx->cfg, key, value, origin);
  return ctx->st == DPT_OK;
}

static dpt_status finish_load(load_ctx *ctx, int rc) {
  if (ctx->st != DPT_OK) return ctx->st;
  DPT_CHECK(rc >= 0, DPT_ERR_IO, "%s: cannot open the config file", ctx->name);
  DPT_CHECK(rc == 0, DPT_ERR_INPUT, "%s:%d: not a valid INI line (expected [section] or key = value)", ctx->name,
            rc);
  return DPT_OK;
}

dpt_status dpt_config_read_text(const char *path, char **text, long long *len) {
  dpt_status st = DPT_OK;
  *text = NULL;
  FILE *f = fopen(path, "rb");
  DPT_CHECK(f, DPT_ERR_IO, "%s: cannot open the config file: %s", path, strerror(errno));
  struct stat sb;
  DPT_TRY_CHECK(fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode), DPT_ERR_INPUT,
                "%s: not a regular file (expected an INI config file)", path);
  long long n = fseek(f, 0, SEEK_END) == 0 ? (long long)ftell(f) : -1;
  DPT_TRY_CHECK(n >= 0 && fseek(f, 0, SEEK_SET) == 0, DPT_ERR_IO, "%s: cannot read the config file: %s", path,
                strerror(errno));
  DPT_TRY_CHECK(n <= DPT_CONFIG_MAX_BYTES, DPT_ERR_INPUT, "%s: %lld bytes: expected a config file of at most %d bytes",
                path, n, DPT_CONFIG_MAX_BYTES);
  DPT_TRY(dpt_alloc((size_t)n + 1, 1, "config file text", text));
  DPT_TRY_CHECK(fread(*text, 1, (size_t)n, f) == (size_t)n, DPT_ERR_IO, "%s: cannot read the config file", path);
  DPT_TRY_CHECK(!memchr(*text, '\0', (size_t)n), DPT_ERR_INPUT, "%s: a NUL byte: expected a text (INI) file", path);
  (*text)[n] = '\0';
  *len = n;
done:
  fclose(f);
  if (st != DPT_OK) dpt_free(text);
  return st;
}

dpt_status dpt_config_load_file(dpt_config *cfg, const char *path) {
  char *text;
  long long len;
  DPT_CALL(dpt_config_read_text(path, &text, &len));
  dpt_status st = dpt_config_load_string(cfg, text, path);
  dpt_free(&text);
  DPT_CALL(st);
  return DPT_OK;
}

/* The text inih parses: each line without its leading whitespace, and no line longer than
 * inih's buffer (*out owned by the caller).
 *  - inih takes an indented line after a key as a continuation of that key's value and calls
 *    the handler with the same key again, so "trace = a.json" followed by "  metrics = m.csv"
 *    silently set run.trace = "metrics = m.csv": indentation is dropped (a key on an indented
 *    line is a key; a continued value becomes a line without '=', an error).
 *  - inih reads a line into INI_MAX_LINE bytes and parses what does not fit as the next line
 *    (a truncated value, then "not a valid INI line" or a key of its own): such lines are
 *    refused, naming them (a long comment line is dropped); the limit leaves room for the
 *    newline, so line numbers stay right. dpt_config_load_file reads the file and comes here. */
static dpt_status unindent_lines(const char *text, const char *name, char **out) {
  size_t n = strlen(text);
  DPT_CALL(dpt_alloc(n + 1, 1, "config text", out));
  char *q = *out;
  int line = 1;
  for (const char *p = text; *p; ++line) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f') ++p;
    size_t len = strcspn(p, "\n");
    if (len > LINE_CHARS && (*p == ';' || *p == '#')) len = 0; /* a comment: nothing to split */
    if (len > LINE_CHARS) {
      dpt_free(out);
      return dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__,
                           "%s:%d: a line of %zu characters: expected at most %d (the INI reader's buffer)", name,
                           line, len, LINE_CHARS);
    }
    memcpy(q, p, len);
    q += len;
    p += strcspn(p, "\n");
    if (*p) *q++ = *p++;
  }
  *q = '\0';
  return DPT_OK;
}

dpt_status dpt_config_load_string(dpt_config *cfg, const char *text, const char *name) {
  load_ctx ctx = {cfg, name, DPT_OK};
  char *lines;
  DPT_CALL(unindent_lines(text, name, &lines));
  int rc = ini_parse_string(lines, on_ini_entry, &ctx);
  dpt_free(&lines);
  DPT_CALL(finish_load(&ctx, rc));
  return DPT_OK;
}

/* Looks up key, marks it used; when absent records def (if any) as resolved value. */
/* The entry of key, marked used; a key not given is recorded with the first default asked
 * for (what dpt_config_print shows). Getters take their own default for a key not given, so
 * that a reader with another default than an earlier one gets its own. */
static dpt_status lookup(dpt_config *cfg, const char *key, const char *def_text, entry **out) {
  entry *e = find(cfg, key);
  if (!e) {
    DPT_CALL(put(cfg, key, def_text, "default", false));
    e = find(cfg, key);
  }
  e->used = true;
  *out = e;
  return DPT_OK;
}

dpt_status dpt_config_get_int(dpt_config *cfg, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out) {
  entry *e;
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)def);
  DPT_CALL(lookup(cfg, key, buf, &e));
  if (!e->given) {
    *out = def;
    return DPT_OK;
  }
  char *end;
  errno = 0;
  long long v = strtoll(e->value, &end, 10);
  DPT_CHECK(errno == 0 && end != e->value && *end == '\0', DPT_ERR_INPUT,
            "%s: %s: expected an integer, got '%s'", e->origin, key, e->value);
  DPT_CHECK(v >= lo && v <= hi, DPT_ERR_INPUT, "%s: %s: expected an integer in [%lld, %lld], got %lld", e->origin,
            key, (long long)lo, (long long)hi, v);
  *out = v;
  return DPT_OK;
}

static dpt_status parse_double(const char *text, const char *origin, const char *key, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  DPT_CHECK(errno != ERANGE && end != text && *end == '\0' && isfinite(v), DPT_ERR_INPUT,
            "%s: %s: expected a finite number, got '%s'", origin, key, text);
  *out = v;
  return DPT_OK;
}

dpt_status dpt_config_get_double(dpt_config *cfg, const char *key, double def, double lo, double hi, int range,
                                 double *out) {
  entry *e;
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", def);
  DPT_CALL(lookup(cfg, key, buf, &e));
  if (!e->given) {
    *out = def;
    return DPT_OK;
  }
  double v = 0.0;
  DPT_CALL(parse_double(e->value, e->origin, key, &v));
  bool ok_lo = (range & DPT_RANGE_OPEN_LO) ? v > lo : v >= lo;
  bool ok_hi = (range & DPT_RANGE_OPEN_HI) ? v < hi : v <= hi;
  DPT_CHECK(ok_lo && ok_hi, DPT_ERR_INPUT, "%s: %s: expected a number in %c%g, %g%c, got %s", e->origin, key,
            (range & DPT_RANGE_OPEN_LO) ? '(' : '[', lo, hi, (range & DPT_RANGE_OPEN_HI) ? ')' : ']', e->value);
  *out = v;
  return DPT_OK;
}

dpt_status dpt_config_get_bool(dpt_config *cfg, const char *key, bool def, bool *out) {
  entry *e;
  DPT_CALL(lookup(cfg, key, def ? "true" : "false", &e));
  if (!e->given) {
    *out = def;
    return DPT_OK;
  }
  const char *v = e->value;
  if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on")) {
    *out = true;
  } else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off")) {
    *out = false;
  } else {
    return dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "%s: %s: expected true or false, got '%s'",
                         e->origin, key, v);
  }
  return DPT_OK;
}

dpt_status dpt_config_get_string(dpt_config *cfg, const char *key, const char *def, const char **out) {
  entry *e;
  DPT_CALL(lookup(cfg, key, def, &e));
  *out = e->given ? e->value : def;
  return DPT_OK;
}

dpt_status dpt_config_get_choice(dpt_config *cfg, const char *key, const char *const *choices, const char *def,
                                 int *index) {
  entry *e;
  DPT_CALL(lookup(cfg, key, def, &e));
  const char *v = e->given ? e->value : def;
  DPT_CHECK(v, DPT_ERR_INPUT, "%s: a value is required", key);
  for (int i = 0; choices[i]; ++i)
    if (!strcmp(v, choices[i])) {
      *index = i;
      return DPT_OK;
    }
  char list[512] = "";
  for (int i = 0; choices[i]; ++i) {
    strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
    strncat(list, choices[i], sizeof list - strlen(list) - 1);
  }
  return dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "%s: %s: expected one of %s, got '%s'",
                       e->origin, key, list, v);
}

/* Splits a comma list into at most max tokens, calling fn on each. */
static dpt_status split_list(const char *text, const char *origin, const char *key, int max, int *n,
                             dpt_status (*fn)(const char *tok, int i, void *ctx), void *ctx) {
  char buf[1024];
  DPT_CHECK(strlen(text) < sizeof buf, DPT_ERR_INPUT, "%s: %s: list too long", origin, key);
  strcpy(buf, text);
  int count = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    DPT_CHECK(count < max, DPT_ERR_INPUT, "%s: %s: at most %d values allowed", origin, key, max);
    DPT_CALL(fn(tok, count, ctx));
    ++count;
  }
  *n = count;
  return DPT_OK;
}

typedef struct int_list_ctx {
  int64_t *out, lo, hi;
  const char *origin, *key;
} int_list_ctx;

static dpt_status int_tok(const char *tok, int i, void *p) {
  int_list_ctx *c = p;
  char *end;
  errno = 0;
  long long v = strtoll(tok, &end, 10);
  DPT_CHECK(errno == 0 && *end == '\0', DPT_ERR_INPUT, "%s: %s: expected a list of integers, got '%s'", c->origin,
            c->key, tok);
  DPT_CHECK(v >= c->lo && v <= c->hi, DPT_ERR_INPUT, "%s: %s: expected integers in [%lld, %lld], got %lld",
            c->origin, c->key, (long long)c->lo, (long long)c->hi, v);
  c->out[i] = v;
  return DPT_OK;
}

dpt_status dpt_config_get_int_list(dpt_config *cfg, const char *key, const char *def, int64_t lo, int64_t hi,
                                   int64_t *out, int max, int *n) {
  entry *e;
  DPT_CALL(lookup(cfg, key, def, &e));
  *n = 0;
  const char *v = e->given ? e->value : def;
  if (!v) return DPT_OK;
  int_list_ctx c = {out, lo, hi, e->origin, key};
  DPT_CALL(split_list(v, e->origin, key, max, n, int_tok, &c));
  return DPT_OK;
}

typedef struct dbl_list_ctx {
  double *out;
  const char *origin, *key;
} dbl_list_ctx;

static dpt_status dbl_tok(const char *tok, int i, void *p) {
  dbl_list_ctx *c = p;
  DPT_CALL(parse_double(tok, c->origin, c->key, &c->out[i]));
  return DPT_OK;
}

dpt_status dpt_config_get_double_list(dpt_config *cfg, const char *key, const char *def, double *out, int max,
                                      int *n) {
  entry *e;
  DPT_CALL(lookup(cfg, key, def, &e));
  *n = 0;
  const char *v = e->given ? e->value : def;
  if (!v) return DPT_OK;
  dbl_list_ctx c = {out, e->origin, key};
  DPT_CALL(split_list(v, e->origin, key, max, n, dbl_tok, &c));
  return DPT_OK;
}

bool dpt_config_has(const dpt_config *cfg, const char *key) {
  const entry *e = find(cfg, key);
  return e && e->given;
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

dpt_status dpt_config_sections(const dpt_config *cfg, const char *prefix, int *out, int max, int *n) {
  size_t plen = strlen(prefix);
  int count = 0;
  for (size_t i = 0; i < cfg->n; ++i) {
    const char *k = cfg->items[i].key;
    if (!cfg->items[i].given || strncmp(k, prefix, plen) != 0 || k[plen] != '.') continue;
    char *end;
    errno = 0;
    long v = strtol(k + plen + 1, &end, 10);
    if (end == k + plen + 1 || *end != '.') continue;
    DPT_CHECK(errno != ERANGE && v >= 0 && v < 1000000, DPT_ERR_INPUT,
              "%s: section [%.*s]: expected an index in [0, 999999] after '%s.'", cfg->items[i].origin,
              (int)(end - k), k, prefix);
    bool seen = false;
    for (int j = 0; j < count; ++j) seen = seen || out[j] == (int)v;
    if (seen) continue;
    DPT_CHECK(count < max, DPT_ERR_INPUT, "%s: at most %d [%s.N] sections allowed", cfg->items[i].origin, max, prefix);
    out[count++] = (int)v;
  }
  qsort(out, (size_t)count, sizeof *out, cmp_int);
  *n = count;
  return DPT_OK;
}

dpt_status dpt_config_check_applies(const dpt_config *cfg, const dpt_config_key_use *keys, size_t n, unsigned type,
                                    const char *type_key, const char *type_name) {
  for (size_t k = 0; k < n; ++k) {
    if (!dpt_config_has(cfg, keys[k].key) || (keys[k].types & (1u << type))) continue;
    char list[512] = "";
    for (size_t j = 0; j < n; ++j)
      if (keys[j].types & (1u << type)) {
        const char *dot = strrchr(keys[j].key, '.');
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", dot ? dot + 1 : keys[j].key);
      }
    return dpt_error_set(DPT_ERR_INPUT, __FILE__, __LINE__, __func__, "%s: does not apply to %s = %s (its keys: type, %s)",
                         keys[k].key, type_key, type_name, list);
  }
  return DPT_OK;
}

dpt_status dpt_config_check_unused(const dpt_config *cfg) {
  for (size_t i = 0; i < cfg->n; ++i) {
    const entry *e = &cfg->items[i];
    DPT_CHECK(!e->given || e->used, DPT_ERR_INPUT, "%s: %s: unknown key (no setting has this name; see dptrain train --help)",
              e->origin, e->key);
  }
  return DPT_OK;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp((*(const entry *const *)a)->key, (*(const entry *const *)b)->key);
}

/* Writes the resolved config into a memory stream (f) or file. */
static void print_to(const dpt_config *cfg, FILE *f, bool origins) {
  const entry **sorted = malloc((cfg->n ? cfg->n : 1) * sizeof *sorted);
  if (!sorted) return;
  size_t m = 0;
  for (size_t i = 0; i < cfg->n; ++i)
    if (cfg->items[i].value && (cfg->items[i].used || cfg->items[i].given)) sorted[m++] = &cfg->items[i];
  qsort(sorted, m, sizeof *sorted, cmp_entry);
  char section[512] = "";
  for (size_t i = 0; i < m; ++i) {
    const char *k = sorted[i]->key, *dot = strrchr(k, '.');
    size_t slen = (size_t)(dot - k);
    if (strlen(section) != slen || strncmp(section, k, slen) != 0) {
      snprintf(section, sizeof section, "%.*s", (int)slen, k);
      fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
    }
    if (origins)
      fprintf(f, "%-20s = %-24s ; %s\n", dot + 1, sorted[i]->value, sorted[i]->origin);
    else /* text to load again, as "key=value" when the file held it so: a line at the length limit
          * must still fit, and a value starting with ';' is not an inline comment only there */
      fprintf(f, "%s%s%s\n", dot + 1,
              strlen(dot + 1) + 3 + strlen(sorted[i]->value) <= LINE_CHARS && sorted[i]->value[0] != ';' ? " = " : "=",
              sorted[i]->value);
  }
  free(sorted);
}

void dpt_config_print(const dpt_config *cfg, FILE *f) { print_to(cfg, f, true); }

dpt_status dpt_config_to_string(const dpt_config *cfg, char **out) {
  size_t len = 0;
  *out = NULL;
  FILE *f = open_memstream(out, &len);
  DPT_CHECK(f, DPT_ERR_MEMORY, "config: cannot open a memory stream");
  print_to(cfg, f, false);
  fclose(f);
  DPT_CHECK(*out, DPT_ERR_MEMORY, "config: out of memory");
  return DPT_OK;
}

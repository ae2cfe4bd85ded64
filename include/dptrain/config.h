/* config.h — INI file + command-line overrides -> typed, validated values.
 *
 * A dpt_config is a key/value store: keys are "section.name" ("optimizer.lr",
 * "layer.1.units"), filled from an INI file (libinih) and then from --section.name=value
 * arguments, which win. Each module reads its own keys through the typed getters below,
 * which check type and range and name the key, its value and where it came from
 * (file:line or command line) in the error. A getter records the value it resolved
 * (default included), so dpt_config_print() shows the fully resolved config, and marks
 * the key used: dpt_config_check_unused() then refuses keys no module asked for
 * (misspellings). All reading happens before any work (the "run plan").
 *
 * Ownership: dpt_config_create() allocates; dpt_config_destroy(&cfg) frees and sets NULL.
 * Strings returned by getters are borrowed from the config and live until it is destroyed.
 * Not collective: every rank parses the same file and arguments. */
#ifndef DPTRAIN_CONFIG_H
#define DPTRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "dptrain/error.h"

typedef struct dpt_config dpt_config;

dpt_status dpt_config_create(dpt_config **out);
void dpt_config_destroy(dpt_config **cfg);

/* Reads an INI file; later values for the same key replace earlier ones. Errors name the
 * file and line. */
dpt_status dpt_config_load_file(dpt_config *cfg, const char *path);
/* Local: the whole file path (a regular file of at most DPT_CONFIG_MAX_BYTES, no NUL byte) in
 * a new NUL-terminated buffer *text of *len bytes, owned by the caller (dpt_free). The command
 * line reads it on rank 0 and broadcasts it (options.c). */
enum { DPT_CONFIG_MAX_BYTES = 16 << 20 };
dpt_status dpt_config_read_text(const char *path, char **text, long long *len);
/* Parses INI text held in memory (name is used in messages). */
dpt_status dpt_config_load_string(dpt_config *cfg, const char *text, const char *name);
/* Sets "section.name" = value; origin is shown in messages and the printout. */
dpt_status dpt_config_set(dpt_config *cfg, const char *key, const char *value, const char *origin);

/* Range flags for numeric getters: bounds are inclusive unless marked open. */
enum { DPT_RANGE_CLOSED = 0, DPT_RANGE_OPEN_LO = 1, DPT_RANGE_OPEN_HI = 2 };

/* Typed getters: absent key -> the default (recorded as resolved). A present key that does
 * not parse or is out of range is an error naming it. */
dpt_status dpt_config_get_int(dpt_config *cfg, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out);
dpt_status dpt_config_get_double(dpt_config *cfg, const char *key, double def, double lo, double hi, int range,
                                 double *out);
dpt_status dpt_config_get_bool(dpt_config *cfg, const char *key, bool def, bool *out);
/* def may be NULL: then an absent key gives *out = NULL and is not printed. */
dpt_status dpt_config_get_string(dpt_config *cfg, const char *key, const char *def, const char **out);
/* One of choices (NULL-terminated); *index is its position. */
dpt_status dpt_config_get_choice(dpt_config *cfg, const char *key, const char *const *choices, const char *def,
                                 int *index);
/* Comma-separated lists: at most max values, each in [lo, hi]. def is a list string or NULL. */
dpt_status dpt_config_get_int_list(dpt_config *cfg, const char *key, const char *def, int64_t lo, int64_t hi,
                                   int64_t *out, int max, int *n);
dpt_status dpt_config_get_double_list(dpt_config *cfg, const char *key, const char *def, double *out, int max,
                                      int *n);

/* True when the key was given (file or command line). Does not mark it used. */
bool dpt_config_has(const dpt_config *cfg, const char *key);
/* Numbered sections "prefix.N" (e.g. prefix "layer": layer.0, layer.1, ...): writes the
 * sorted distinct N into out (at most max) and their count into *n. */
dpt_status dpt_config_sections(const dpt_config *cfg, const char *prefix, int *out, int max, int *n);

/* Keys of a section that only some types read (e.g. optimizer.momentum for momentum and
 * Nesterov): types is a bit set over the module's type enum. */
typedef struct dpt_config_key_use {
  const char *key;
  unsigned types;
} dpt_config_key_use;
/* Error for the first given key whose types do not include type (bit index): "KEY: does not
 * apply to TYPE_KEY = TYPE_NAME (its keys: type, ...)" — more helpful than "unknown key". */
dpt_status dpt_config_check_applies(const dpt_config *cfg, const dpt_config_key_use *keys, size_t n, unsigned type,
                                    const char *type_key, const char *type_name);

/* Error for the first given key that no getter read: "unknown key". */
dpt_status dpt_config_check_unused(const dpt_config *cfg);
/* Prints the resolved config as INI (sections sorted, origins as comments). */
void dpt_config_print(const dpt_config *cfg, FILE *f);
/* The resolved config as INI text (for checkpoints and model files); caller frees. */
dpt_status dpt_config_to_string(const dpt_config *cfg, char **out);

#endif

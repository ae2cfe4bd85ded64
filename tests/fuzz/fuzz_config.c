/* fuzz_config.c — fuzz target: an INI text through dpt_config_load_string.
 * Invariant: success, or a failure with a non-empty one-line message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/config.h"
#include "dptrain/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  dpt_config *cfg = NULL;
  if (dpt_config_create(&cfg) == DPT_OK) {
    dpt_status st = dpt_config_load_string(cfg, text, "fuzz.ini");
    const char *msg = dpt_error_message();
    if (st != DPT_OK && (msg[0] == '\0' || strchr(msg, '\n'))) abort();
  }
  dpt_error_clear();
  dpt_config_destroy(&cfg);
  free(text);
  return 0;
}

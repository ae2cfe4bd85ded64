/* fuzz_csv.c — fuzz target: a CSV file through dpt_convert_csv (src/cli/convert_csv.c).
 * Input: byte 0 chooses the options (bits 0-3 the --label: 0..13 the name of that header
 * column when it exists, else "label"; 14 "label"; 15 a name no header has; bits 4-7 as in
 * fh_args), the rest is the CSV text. Invariants: convert_harness.h, with N = the count of
 * non-blank lines after the header. */
#include <ctype.h>

#include "convert_harness.h"

/* Whitespace and then a pair of outer quotes stripped, as the converter reads a header field. */
static void field_name(const char *s, size_t len, char *out, size_t cap) {
  while (len && isspace((unsigned char)*s)) ++s, --len;
  while (len && isspace((unsigned char)s[len - 1])) --len;
  if (len >= 2 && s[0] == '"' && s[len - 1] == '"') ++s, len -= 2;
  if (len >= cap) len = cap - 1;
  memcpy(out, s, len);
  out[len] = '\0';
}

/* The name of header column k of text (NUL-terminated), or "label" when there is none. */
static void column_name(const char *text, int k, char *out, size_t cap) {
  snprintf(out, cap, "label");
  size_t end = strcspn(text, "\n");
  const char *p = text;
  for (int j = 0; p < text + end; ++j) {
    const char *c = memchr(p, ',', (size_t)(text + end - p));
    size_t len = c ? (size_t)(c - p) : (size_t)(text + end - p);
    if (j == k) {
      field_name(p, len, out, cap);
      return;
    }
    if (!c) return;
    p = c + 1;
  }
}

/* Data rows the converter counts: lines after the first with a non-space byte before any NUL. */
static int64_t data_rows(const uint8_t *csv, size_t size) {
  int64_t n = 0;
  size_t i = 0;
  while (i < size && csv[i] != '\n') ++i;
  while (i < size) {
    ++i; /* past the '\n' */
    bool ink = false, nul = false;
    for (; i < size && csv[i] != '\n'; ++i) {
      nul |= csv[i] == 0;
      ink |= !nul && !isspace(csv[i]);
    }
    n += ink;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FH_MAX_INPUT) return 0;
  char csv[300], out[300], label[256];
  fh_write("in.csv", data + 1, size - 1, csv, sizeof csv);
  snprintf(out, sizeof out, "%s/out.h5", fh_scratch());
  int pick = data[0] & 15;
  if (pick < 14) {
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    column_name(text, pick, label, sizeof label);
    free(text);
  } else {
    snprintf(label, sizeof label, pick == 14 ? "label" : "no such column");
  }
  dpt_convert_args a = fh_args(data[0], out);
  dpt_status st = dpt_convert_csv(csv, label, &a);
  const char *inputs[] = {csv};
  fh_check(st, inputs, 1, out, st == DPT_OK ? data_rows(data + 1, size - 1) : -1);
  return 0;
}

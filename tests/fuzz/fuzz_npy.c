/* fuzz_npy.c — fuzz target: a pair of NumPy .npy files through dpt_convert_npy
 * (src/cli/convert_npy.c). Input: byte 0 the options (fh_args), bytes 1-2 the length L of
 * X.npy (little-endian; clamped to what is there), then X.npy's L bytes, then y.npy.
 * Invariants: convert_harness.h (N not predicted: /X and /y rows must agree). */
#include "convert_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size > FH_MAX_INPUT) return 0;
  size_t lx = (size_t)data[1] | (size_t)data[2] << 8;
  if (lx > size - 3) lx = size - 3;
  char x[300], y[300], out[300];
  fh_write("X.npy", data + 3, lx, x, sizeof x);
  fh_write("y.npy", data + 3 + lx, size - 3 - lx, y, sizeof y);
  snprintf(out, sizeof out, "%s/out.h5", fh_scratch());
  dpt_convert_args a = fh_args(data[0], out);
  dpt_status st = dpt_convert_npy(x, y, &a);
  const char *inputs[] = {x, y};
  fh_check(st, inputs, 2, out, -1);
  return 0;
}

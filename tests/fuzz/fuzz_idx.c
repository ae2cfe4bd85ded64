/* fuzz_idx.c — fuzz target: an MNIST IDX pair (images, labels) through dpt_convert_idx
 * (src/cli/convert_idx.c). Input: byte 0 the options (fh_args), bytes 1-2 the length L of
 * the images file (little-endian; clamped to what is there), then its L bytes, then the
 * labels file. Invariants: convert_harness.h, with N = the images header's item count. */
#include "convert_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size > FH_MAX_INPUT) return 0;
  size_t li = (size_t)data[1] | (size_t)data[2] << 8;
  if (li > size - 3) li = size - 3;
  const uint8_t *img = data + 3;
  char images[300], labels[300], out[300];
  fh_write("images.idx", img, li, images, sizeof images);
  fh_write("labels.idx", img + li, size - 3 - li, labels, sizeof labels);
  snprintf(out, sizeof out, "%s/out.h5", fh_scratch());
  dpt_convert_args a = fh_args(data[0], out);
  dpt_status st = dpt_convert_idx(images, labels, &a);
  int64_t n = -1; /* the images header's item count, big-endian */
  if (li >= 8) n = (int64_t)((uint32_t)img[4] << 24 | (uint32_t)img[5] << 16 | (uint32_t)img[6] << 8 | img[7]);
  const char *inputs[] = {images, labels};
  fh_check(st, inputs, 2, out, n);
  return 0;
}

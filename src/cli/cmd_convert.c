/* cmd_convert.c — `dptrain convert`: CSV, NumPy .npy pairs or MNIST IDX pairs to dptrain's
 * HDF5 layout (data/FORMAT.md). Rank 0 converts (streaming, bounded memory, written to a
 * temporary name and renamed at the end) under a watchdog (watchdog.h: a read or write that
 * never returns ends the job naming the call and the file; the converters mark progress per
 * line or block); the other ranks wait for the agreed result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "dptrain/types.h"
#include "dptrain/watchdog.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dptrain convert --csv FILE.csv --label NAME OUT.h5 [options]\n"
          "       dptrain convert --x X.npy --y y.npy OUT.h5 [options]\n"
          "       dptrain convert --idx-images IMAGES --idx-labels LABELS OUT.h5 [options]\n\n"
          "Writes /X, /y and the task attribute (data/FORMAT.md), streaming: files larger than memory\n"
          "convert fine. OUT is written as OUT.tmp.<pid> and renamed only when complete.\n"
          "  CSV: a header row; --label names the target column; class labels are mapped to 0..K-1\n"
          "       (numeric order when all are integers, else string order) and kept in `classes`.\n"
          "  .npy: X [N, d] and y [N] (integer labels) or [N]/[N, k] floats; dtypes <f4 <f8 |u1 <i4 <i8.\n"
          "  IDX: MNIST images (uint8, stored as uint8 with scale 1/255) and labels.\n"
          "options:\n"
          "  --task regression|binary|multiclass   (default: inferred from the targets)\n"
          "  --dtype f32|f64                        float type of CSV values (default f32)\n"
          "  --chunk ROWS                           rows per HDF5 chunk (default 4096)\n"
          "  --gzip LEVEL                           1..9: shuffle + deflate compression (default 0: none)\n"
          "  --timeout S                            seconds without progress (a hung read or write) before\n"
          "                                         the watchdog ends the job (default 600, 0 = never)\n");
}

static dpt_status parse_int(const char *opt, const char *v, long lo, long hi, long *out) {
  char *end;
  long x = v ? strtol(v, &end, 10) : 0;
  DPT_CHECK(v && *v && !*end && x >= lo && x <= hi, DPT_ERR_INPUT, "convert: %s '%s': expected an integer in [%ld, %ld]",
            opt, v ? v : "", lo, hi);
  *out = x;
  return DPT_OK;
}

static dpt_status parse(int argc, char **argv, const char **csv, const char **label, const char **xn, const char **yn,
                        const char **ii, const char **il, dpt_convert_args *a, double *timeout) {
  a->opts.chunk_rows = 4096;
  *timeout = DPT_WATCHDOG_DEFAULT_TIMEOUT_S;
  for (int i = 1; i < argc; ++i) {
    const char *o = argv[i];
    if (o[0] != '-') {
      DPT_CHECK(!a->out, DPT_ERR_INPUT, "convert: a second output '%s' (expected one OUT.h5)", o);
      a->out = o;
      continue;
    }
    const char **dst = !strcmp(o, "--csv")          ? csv
                       : !strcmp(o, "--label")      ? label
                       : !strcmp(o, "--x")          ? xn
                       : !strcmp(o, "--y")          ? yn
                       : !strcmp(o, "--idx-images") ? ii
                       : !strcmp(o, "--idx-labels") ? il
                       : !strcmp(o, "--task")       ? &a->task
                       : !strcmp(o, "--dtype")      ? &a->dtype
                                                    : NULL;
    bool num = !strcmp(o, "--chunk") || !strcmp(o, "--gzip"), secs = !strcmp(o, "--timeout");
    DPT_CHECK(dst || num || secs, DPT_ERR_INPUT, "convert: unknown option '%s' (see dptrain convert --help)", o);
    DPT_CHECK(i + 1 < argc, DPT_ERR_INPUT, "convert: %s needs a value", o);
    const char *v = argv[++i];
    if (secs) {
      char *end;
      *timeout = strtod(v, &end);
      DPT_CHECK(*v && !*end && *timeout >= 0.0 && *timeout <= 1e9, DPT_ERR_INPUT,
                "convert: --timeout '%s': expected seconds in [0, 1e9]", v);
    } else if (dst) {
      *dst = v;
    } else {
      long x = 0;
      DPT_CALL(parse_int(o, v, !strcmp(o, "--gzip") ? 0 : 1, !strcmp(o, "--gzip") ? 9 : 1L << 30, &x));
      if (!strcmp(o, "--gzip")) a->opts.gzip = (int)x;
      else a->opts.chunk_rows = x;
    }
  }
  DPT_CHECK(a->out, DPT_ERR_INPUT, "convert: expected an OUT.h5 argument (see dptrain convert --help)");
  DPT_CHECK(!a->task || !strcmp(a->task, "regression") || !strcmp(a->task, "binary") || !strcmp(a->task, "multiclass"),
            DPT_ERR_INPUT, "convert: --task '%s': expected regression, binary or multiclass", a->task);
  DPT_CHECK(!a->dtype || !strcmp(a->dtype, "f32") || !strcmp(a->dtype, "f64"), DPT_ERR_INPUT,
            "convert: --dtype '%s': expected f32 or f64", a->dtype);
  int kinds = (*csv != NULL) + (*xn || *yn) + (*ii || *il);
  DPT_CHECK(kinds == 1, DPT_ERR_INPUT, "convert: give exactly one input: --csv, --x/--y or --idx-images/--idx-labels");
  DPT_CHECK(!*csv || *label, DPT_ERR_INPUT, "convert: --csv needs --label NAME (the target column)");
  DPT_CHECK(!(*xn || *yn) || (*xn && *yn), DPT_ERR_INPUT, "convert: .npy input needs both --x X.npy and --y y.npy");
  DPT_CHECK(!(*ii || *il) || (*ii && *il), DPT_ERR_INPUT, "convert: IDX input needs both --idx-images and --idx-labels");
  return DPT_OK;
}

int dpt_cmd_convert(const dpt_comm *c, int argc, char **argv) {
  if (dpt_cli_wants_help(c, argc, argv, usage)) return 0;
  const char *csv = NULL, *label = NULL, *xn = NULL, *yn = NULL, *ii = NULL, *il = NULL;
  dpt_convert_args a = {0};
  double timeout;
  dpt_status st = parse(argc, argv, &csv, &label, &xn, &yn, &ii, &il, &a, &timeout);
  int rc = dpt_cli_finish(c, st);
  if (rc) return rc;
  if (c->rank == 0) {
    /* only rank 0 works; the others wait as long as it progresses, and the launcher ends
     * them when its watchdog ends it */
    st = dpt_watchdog_start(timeout, c->rank);
    if (st == DPT_OK) {
      dpt_watchdog_enter("converting", false);
      st = csv ? dpt_convert_csv(csv, label, &a) : xn ? dpt_convert_npy(xn, yn, &a) : dpt_convert_idx(ii, il, &a);
      dpt_watchdog_stop();
    }
    if (st == DPT_OK) printf("wrote %s\n", a.out);
    fflush(stdout);
  }
  return dpt_cli_finish(c, st);
}

/* replay.c — runs a fuzz harness (tests/fuzz/fuzz_*.c) over files, without libFuzzer: the
 * ctest regression run of the committed corpora (tests/fuzz/corpus/NAME/) in every build.
 *
 * usage: fuzz_NAME_replay PATH...   (a directory: each regular file in it, in name order)
 * Calls LLVMFuzzerInitialize first when the harness defines it, then LLVMFuzzerTestOneInput on
 * each input; a harness aborts when an invariant fails, so a returning run passed. Exits 1 when
 * an input cannot be read or when no input was found (an empty or mistyped corpus path). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Runs one file; 0 when it was read and replayed. */
static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: error: cannot open '%s'\n", path);
    return 1;
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0) {
    fprintf(stderr, "replay: error: cannot stat '%s'\n", path);
    fclose(f);
    return 1;
  }
  size_t size = (size_t)sb.st_size;
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf || fread(buf, 1, size, f) != size) {
    fprintf(stderr, "replay: error: cannot read the %zu bytes of '%s'\n", size, path);
    free(buf);
    fclose(f);
    return 1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, size);
  free(buf);
  return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replays a file or every regular file of a directory (name order); adds to *count. */
static int replay_path(const char *path, int *count) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    fprintf(stderr, "replay: error: no file or directory '%s'\n", path);
    return 1;
  }
  if (!S_ISDIR(sb.st_mode)) {
    ++*count;
    return replay_file(path);
  }
  struct dirent **list = NULL;
  int n = scandir(path, &list, NULL, NULL), rc = 0;
  if (n < 0) {
    fprintf(stderr, "replay: error: cannot list the directory '%s'\n", path);
    return 1;
  }
  char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
  int m = 0;
  for (int k = 0; k < n; ++k) {
    if (names && list[k]->d_name[0] != '.') {
      size_t len = strlen(path) + strlen(list[k]->d_name) + 2;
      names[m] = malloc(len);
      if (names[m]) snprintf(names[m++], len, "%s/%s", path, list[k]->d_name);
    }
    free(list[k]);
  }
  free(list);
  if (!names) return 1;
  qsort(names, (size_t)m, sizeof *names, by_name);
  for (int k = 0; k < m; ++k) {
    if (stat(names[k], &sb) == 0 && S_ISREG(sb.st_mode)) {
      ++*count;
      rc |= replay_file(names[k]);
    }
    free(names[k]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int count = 0, rc = 0;
  for (int k = 1; k < argc; ++k) rc |= replay_path(argv[k], &count);
  if (count == 0) {
    fprintf(stderr, "replay: error: no input found in the paths given\n");
    return 1;
  }
  printf("replay: %d input(s) replayed, %s\n", count, rc ? "some could not be read" : "every invariant held");
  return rc;
}

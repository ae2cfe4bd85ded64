/* io_fault.c — an LD_PRELOAD library for the I/O fault tests (not part of dptrain): one read
 * or one write of an HDF5 file fails with EIO on one MPI rank, as a failing disk or network
 * file system would make it fail.
 *
 *   DPT_IO_FAULT=read@K | write@K   the K-th (from 1) pread/pread64/preadv call (read) or
 *                                    pwrite/pwrite64/pwritev call (write) of this process on a
 *                                    file whose path contains ".h5" returns -1 with errno EIO
 *   DPT_IO_FAULT=hang-read@K | hang-write@K   that call never returns, as on a hung network
 *                                    file system: it blocks in a read of a pipe nobody writes
 *                                    (a system call, as a hung file system's would be; the
 *                                    watchdog's test, watchdog.h)
 *   DPT_FAULT_RANK=R                 only on MPI_COMM_WORLD rank R (default 0), as the launcher
 *                                    names it (OMPI_COMM_WORLD_RANK, PMIX_RANK or PMI_RANK)
 *
 * The failing call writes "io-fault: rank R: <call> #K of <path> fails with EIO" (or "hangs")
 * to stderr, so that a run which ends well after it can be told apart from one the fault never
 * reached.
 * HDF5's sec2 driver and both of Open MPI's MPI-IO components (OMPIO's fbtl posix, ROMIO)
 * make these libc calls through the dynamic linker, which is what lets a preloaded library
 * interpose them. Used by launch/fault-sweep --fault read|write and tests/cli_fault.sh. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

enum { OP_NONE, OP_READ, OP_WRITE };

static int g_op = -1;  /* which calls fail here: -1 not yet read from the environment */
static long g_at, g_count;
static int g_hang; /* the call hangs instead of failing */

/* This process's MPI_COMM_WORLD rank as the launcher gave it, NULL when not launched so. */
static const char *my_rank(void) {
  const char *me = getenv("OMPI_COMM_WORLD_RANK");
  if (!me) me = getenv("PMIX_RANK");
  if (!me) me = getenv("PMI_RANK");
  return me;
}

static void setup(void) {
  if (g_op >= 0) return;
  g_op = OP_NONE;
  const char *f = getenv("DPT_IO_FAULT"), *want = getenv("DPT_FAULT_RANK"), *me = my_rank();
  if (!f || !me || atoi(me) != (want ? atoi(want) : 0)) return;
  char *end;
  if (!strncmp(f, "hang-", 5)) g_hang = 1, f += 5;
  if (!strncmp(f, "read@", 5)) g_op = OP_READ, g_at = strtol(f + 5, &end, 10);
  else if (!strncmp(f, "write@", 6)) g_op = OP_WRITE, g_at = strtol(f + 6, &end, 10);
  else return;
  if (*end || g_at < 1) g_op = OP_NONE;
}

/* Whether this call (op, on fd) is the one to fail; counts the calls on HDF5 files. */
static int fails(int op, int fd, const char *call) {
  setup();
  if (g_op != op) return 0;
  char link[64], path[1024];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  if (!strstr(path, ".h5") || ++g_count != g_at) return 0;
  if (g_hang) {
    fprintf(stderr, "io-fault: rank %s: %s #%ld of %s hangs\n", my_rank(), call, g_count, path);
    int never[2];
    char byte;
    if (pipe(never) == 0)
      for (;;) (void)!read(never[0], &byte, 1);
    for (;;) pause();
  }
  fprintf(stderr, "io-fault: rank %s: %s #%ld of %s fails with EIO\n", my_rank(), call, g_count, path);
  errno = EIO;
  return 1;
}

/* The libc function `name`, looked up once past this library (copied through memcpy: ISO C
 * has no cast from dlsym's object pointer to a function pointer, POSIX guarantees the bits). */
#define REAL(name)                                   \
  static __typeof__(name) *real_##name;              \
  if (!real_##name) {                                \
    void *sym = dlsym(RTLD_NEXT, #name);             \
    memcpy(&real_##name, &sym, sizeof sym);          \
  }

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
  REAL(pread);
  return fails(OP_READ, fd, "pread") ? -1 : real_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) {
  REAL(pread64);
  return fails(OP_READ, fd, "pread64") ? -1 : real_pread64(fd, buf, n, off);
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off) {
  REAL(preadv);
  return fails(OP_READ, fd, "preadv") ? -1 : real_preadv(fd, iov, cnt, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  REAL(pwrite);
  return fails(OP_WRITE, fd, "pwrite") ? -1 : real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  REAL(pwrite64);
  return fails(OP_WRITE, fd, "pwrite64") ? -1 : real_pwrite64(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  REAL(pwritev);
  return fails(OP_WRITE, fd, "pwritev") ? -1 : real_pwritev(fd, iov, cnt, off);
}

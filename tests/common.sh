# common.sh — sourced by the shell tests (ctest sets DPTRAIN, MPIEXEC, DPT_SOURCE_DIR,
# DPT_BINARY_DIR): a scratch directory $dir removed at exit (kept when DPT_TEST_KEEP is set),
# $bin the directory of the dptrain binaries, and `check NAME CONDITION`, which prints
# ok/FAIL and sets fail=1 on a failure (the test ends with `exit $fail`).
set -u
dir=$(mktemp -d)
trap '[ -n "${DPT_TEST_KEEP:-}" ] || rm -rf "$dir"' EXIT
bin=$(dirname "$DPTRAIN")
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

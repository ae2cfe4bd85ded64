#!/usr/bin/env bash
# cli_checkpoint_io.sh — the checkpoint file tests under Open MPI's other MPI-IO component
# (ROMIO; ctest runs them under the default, OMPIO): collective HDF5 writes and reads with
# ranks that have no rows, the full-disk case, resharding, at 2 and 3 ranks, within a time
# limit (a hang fails the test).
# dpt-test: timeout=180
set -u
fail=0
bin="$DPT_BINARY_DIR/tests"
for np in 2 3; do
  for t in test_checkpoint test_checkpoint_state; do
    timeout 120 $MPIEXEC --mca io romio321 -n $np "$bin/$t" > /dev/null 2>&1
    rc=$?
    if [ $rc = 0 ]; then echo "ok: $t under ROMIO at $np ranks"; else echo "FAIL: $t under ROMIO at $np ranks (rc $rc)"; fail=1; fi
  done
done
exit $fail

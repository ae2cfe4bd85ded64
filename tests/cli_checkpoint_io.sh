#!/usr/bin/env bash
# cli_checkpoint_io.sh — the checkpoint file tests under Open MPI's other MPI-IO component
# (OMPIO, Open MPI's own default; ctest runs them under dptrain's, ROMIO: dpt_comm_preinit):
# collective HDF5 writes and reads with ranks that have no rows, the full-disk case (whose
# in-process test runs under OMPIO only, see test_checkpoint.c), resharding, at 2 and 3
# ranks, within a time limit (a hang fails the test).
# dpt-test: timeout=180
set -u
fail=0
bin="$DPT_BINARY_DIR/tests"
for np in 2 3; do
  for t in test_checkpoint test_checkpoint_state; do
    timeout 120 $MPIEXEC --mca io ompio -n $np "$bin/$t" > /dev/null 2>&1
    rc=$?
    if [ $rc = 0 ]; then echo "ok: $t under OMPIO at $np ranks"; else echo "FAIL: $t under OMPIO at $np ranks (rc $rc)"; fail=1; fi
  done
done
exit $fail

#!/usr/bin/env bash
# cli_fault.sh — failures on one rank that cannot be agreed end every rank within seconds,
# with one line naming the rank and the cause and a non-zero exit, no hang: an MPI call that
# fails on one rank only (a truncated receive on the last rank while the others wait in a
# barrier), a collective open that failed on the last rank only, an allocation that fails
# on one rank (DPT_FAULT=alloc@K) at sampled points of a training run, an exact-mode run and
# an L-BFGS run, and a read or a write of an HDF5 file that fails with EIO on one rank
# (DPT_IO_FAULT, the preloaded tests/io_fault.c) at sampled points of a training run with
# checkpoints and a model file, and at every point of `dptrain convert` (launch/fault-sweep;
# every point: run it with --stride 1).
# dpt-test: timeout=500
. "$DPT_SOURCE_DIR/tests/common.sh"

# fault MODE NP: runs tests/fault_mpi.c's MODE at NP ranks into $dir/MODE-NP.txt; checks that
# every rank stopped, non-zero and in time, and that the call did not return; sets $out, $last
fault() {
  local start rc took
  out=$dir/$1-$2.txt last=$(($2 - 1))
  start=$(date +%s)
  timeout 60 $MPIEXEC -n $2 "$DPT_FAULT_MPI" $1 > "$out" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  check "$1, $2 ranks: non-zero exit, not the timeout's (rc $rc)" "[ $rc != 0 ] && [ $rc != 124 ]"
  check "$1, $2 ranks: stopped within 30 s (took $took s)" "[ $took -lt 30 ]"
  check "$1, $2 ranks: the call did not return" "! grep -q 'instead of aborting' $out"
}
for np in 2 3; do
  fault recv $np
  check "recv, $np ranks: one line names rank $last and the MPI error" \
    "[ \$(grep -c '^dptrain: fatal on rank $last: MPI call failed: .*TRUNCATE\\|^dptrain: fatal on rank $last: MPI call failed: .*truncat' $out) = 1 ]"
  fault collective $np
  check "collective, $np ranks: one line, from rank 0, naming the failing rank $last and its error" \
    "[ \$(grep -c '^dptrain: fatal' $out) = 1 ] && grep -q '^dptrain: fatal on rank 0: opening the test file succeeded on some ranks only; rank $last: test.h5: cannot open\$' $out"
done

# a prime stride samples allocation points from setup to the last checkpoint and model file
export DPT_BUILD_DIR=$DPT_BINARY_DIR
sweep() { "$DPT_SOURCE_DIR/launch/fault-sweep" --timeout 60 "$@" > "$dir/sweep.txt" 2>&1; rc=$?; }
sweep --scenario train --rank 1 --stride 23
check "allocation failures on rank 1 of 2 while training stop every rank with one line: $(tail -1 $dir/sweep.txt)" \
  "[ $rc = 0 ] && grep -q 'all points up to it covered' $dir/sweep.txt"
[ $rc = 0 ] || cat "$dir/sweep.txt"
sweep --scenario exact --rank 0 --stride 29
check "allocation failures on rank 0 of 2 in exact mode stop every rank with one line: $(tail -1 $dir/sweep.txt)" \
  "[ $rc = 0 ] && grep -q 'all points up to it covered' $dir/sweep.txt"
[ $rc = 0 ] || cat "$dir/sweep.txt"
sweep --scenario second-order --np 3 --rank 2 --stride 31
check "allocation failures on rank 2 of 3 under L-BFGS stop every rank with one line: $(tail -1 $dir/sweep.txt)" \
  "[ $rc = 0 ] && grep -q 'all points up to it covered' $dir/sweep.txt"
[ $rc = 0 ] || cat "$dir/sweep.txt"
sweep --scenario train --fault read --rank 1 --stride 13
check "read errors on rank 1 of 2 while training stop every rank with one line: $(tail -1 $dir/sweep.txt)" \
  "[ $rc = 0 ] && grep -q 'all points up to it covered' $dir/sweep.txt"
[ $rc = 0 ] || cat "$dir/sweep.txt"
sweep --scenario train --fault write --rank 0 --stride 7
check "write errors on rank 0 of 2 while training stop every rank with one line: $(tail -1 $dir/sweep.txt)" \
  "[ $rc = 0 ] && grep -q 'all points up to it covered' $dir/sweep.txt"
[ $rc = 0 ] || cat "$dir/sweep.txt"
sweep --scenario convert --fault write --rank 0
check "every write error of dptrain convert stops every rank with one line, no partial file: $(tail -1 $dir/sweep.txt)" \
  "[ $rc = 0 ] && grep -q 'all points up to it covered' $dir/sweep.txt"
[ $rc = 0 ] || cat "$dir/sweep.txt"
[ $fail = 0 ] || cat "$dir"/recv-*.txt "$dir"/collective-*.txt
exit $fail

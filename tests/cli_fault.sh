#!/usr/bin/env bash
# cli_fault.sh — an MPI call that fails on one rank only (a truncated receive on the last
# rank while the others wait in a barrier) ends every rank within seconds: one line naming
# the rank and MPI's reason, a non-zero exit, no hang.
# dpt-test: timeout=120
. "$DPT_SOURCE_DIR/tests/common.sh"

for np in 2 3; do
  start=$(date +%s)
  timeout 60 $MPIEXEC -n $np "$DPT_FAULT_MPI" > "$dir/out$np.txt" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  last=$((np - 1))
  check "$np ranks: non-zero exit, not the timeout's (rc $rc)" "[ $rc != 0 ] && [ $rc != 124 ]"
  check "$np ranks: stopped within 30 s (took $took s)" "[ $took -lt 30 ]"
  check "$np ranks: one line names rank $last and the MPI error" \
    "[ \$(grep -c '^dptrain: fatal on rank $last: MPI call failed: .*TRUNCATE\\|^dptrain: fatal on rank $last: MPI call failed: .*truncat' $dir/out$np.txt) = 1 ]"
  check "$np ranks: the call did not return" "! grep -q 'instead of aborting' $dir/out$np.txt"
done
[ $fail = 0 ] || cat "$dir"/out*.txt
exit $fail

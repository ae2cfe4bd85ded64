#!/usr/bin/env bash
# cli_watchdog.sh — a rank that stalls without an error does not leave the others waiting
# (include/dptrain/watchdog.h). With --timeout 2 (parallel.timeout): a rank that stops making
# progress at step 5 (DPT_FAULT=stall@5) ends the job within seconds with one line naming
# itself; a rank stopped by SIGSTOP (DPT_FAULT=freeze@5, its watchdog stopped too) is named
# by rank 0, which waits for it, and on "another node" than rank 0's by its node's other rank;
# a rank killed while the launcher does not end the job
# (--enable-recovery) leaves no rank waiting, and rank 0 names it; a write or a read of an
# HDF5 file that never returns (the preloaded tests/io_fault.c, DPT_IO_FAULT=hang-write@K) is
# named by the rank it hangs on, and no checkpoint is published; a hung read in `dptrain eval`
# and a hung write in `dptrain predict` end them the same way (no output file published), and
# their --help says so; sampled sweeps of hanging reads and writes over a training run
# (launch/fault-sweep --fault hang-read|hang-write); the whole job stopped for 4 s (twice the
# limit; SIGSTOP, SIGCONT, as a scheduler suspends a job) trains on to exit 0; a bad limit is
# an error naming the key.
# dpt-test: timeout=360
. "$DPT_SOURCE_DIR/tests/common.sh"

"$bin/dpt-generate" spiral "$dir/sp.h5" --rows 300 > /dev/null || exit 1
sed "s#data/spiral.h5#$dir/sp.h5#; s/epochs = 60/epochs = 3/" "$DPT_SOURCE_DIR/data/spiral.ini" > "$dir/sp.ini"

# stalled NAME NP ENV...: runs 3 epochs at NP ranks with a 2 s limit and the environment
# ENV, into $dir/NAME.txt; checks a non-zero exit within 30 s; sets $out and $first (the
# first "dptrain: fatal" line)
stalled() {
  local name=$1 np=$2 start rc took
  shift 2
  out=$dir/$name.txt
  start=$(date +%s)
  env "$@" timeout 60 $MPIEXEC -n "$np" "$DPTRAIN" train "$dir/sp.ini" --run.quiet=true --timeout=2 \
    --checkpoint.every=5 --checkpoint.dir="$dir/ck-$name" > "$out" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  first=$(grep -m1 '^dptrain: fatal' "$out")
  check "$name: non-zero exit, not the timeout's (rc $rc)" "[ $rc != 0 ] && [ $rc != 124 ]"
  check "$name: stopped within 30 s (took $took s)" "[ $took -lt 30 ]"
}

stalled stall 2 DPT_FAULT=stall@5 DPT_FAULT_RANK=1
check "stall: the first line names rank 1, the phase and the step: $first" \
  "[[ \"\$first\" == 'dptrain: fatal on rank 1: no progress for '*' s in training step (step 5): this rank is stalled there, or waits for a rank that is (parallel.timeout = 2 s); stopping all' ]]"

stalled freeze 3 DPT_FAULT=freeze@5 DPT_FAULT_RANK=2
check "freeze: rank 0 reports the wait at step 5 and names rank 2 as stopped: $first" \
  "[[ \"\$first\" == 'dptrain: fatal on rank 0: no progress for '*' s in agreeing on errors (step 5), which waits for every rank: on this node, rank 2 (pid '*') is stopped (SIGSTOP or a debugger) (parallel.timeout = 2 s); stopping all' ]]"

# The same on "two nodes" of two ranks each (DPT_TEST_NODE_SIZE=2, watchdog.c's test hook):
# rank 3, stopped, is on another node than rank 0, which cannot see it; rank 2, its node's
# other rank, names it before rank 0 would say only that a rank is stalled.
stalled freeze-node 4 DPT_FAULT=freeze@5 DPT_FAULT_RANK=3 DPT_TEST_NODE_SIZE=2
check "freeze on another node: rank 2 names rank 3 as stopped: $first" \
  "[[ \"\$first\" == 'dptrain: fatal on rank 2: no progress for '*' s in '*'(step 5), which waits for every rank: on this node, rank 3 (pid '*') is stopped (SIGSTOP or a debugger) (parallel.timeout = 2 s); stopping all' ]]"

# A rank killed while the launcher is told not to end the job (--enable-recovery): the
# others end themselves, each with its line; rank 0 names the dead rank.
start=$(date +%s)
DPT_FAULT=kill@5 DPT_FAULT_RANK=1 timeout 60 $MPIEXEC --enable-recovery -n 3 "$DPTRAIN" train "$dir/sp.ini" \
  --run.quiet=true --timeout=2 > "$dir/recovery.txt" 2>&1
rc=$? took=$(( $(date +%s) - start ))
check "killed rank, no launcher help: every rank stopped within 30 s, not by the timeout (rc $rc, $took s)" \
  "[ $rc != 124 ] && [ $took -lt 30 ]"
check "killed rank, no launcher help: ranks 0 and 2 each ended with a line" \
  "grep -q '^dptrain: fatal on rank 0: ' $dir/recovery.txt && grep -q '^dptrain: fatal on rank 2: ' $dir/recovery.txt"
check "killed rank, no launcher help: rank 0 names rank 1 as exited" \
  "grep -q '^dptrain: fatal on rank 0: .* which waits for every rank: on this node, rank 1 (pid [0-9]*) has exited' $dir/recovery.txt"

# the first write of the first checkpoint (step 5) hangs on rank 1; the 20th read (of the data,
# while setting up) on rank 0. Naming the blocked call needs /proc/PID/task/TID/syscall.
hung_io() {
  stalled hang-write 2 LD_PRELOAD="$DPT_IO_FAULT_LIB" DPT_IO_FAULT=hang-write@1 DPT_FAULT_RANK=1
  check "hang-write: the fault was reached" "grep -q 'io-fault: rank 1: .* of .*ckpt-00000005.h5.tmp hangs' $out"
  check "hang-write: rank 1 names the blocked system call: $first" \
    "[[ \"\$first\" == 'dptrain: fatal on rank 1: no progress for '*' s in writing a checkpoint (step 5): blocked in the system call read on pipe:'*'(a hung file system?)'* ]]"
  check "hang-write: no checkpoint published" "[ ! -e $dir/ck-hang-write/ckpt-00000005.h5 ]"
  stalled hang-read 2 LD_PRELOAD="$DPT_IO_FAULT_LIB" DPT_IO_FAULT=hang-read@20 DPT_FAULT_RANK=0
  check "hang-read: the fault was reached" "grep -q 'io-fault: rank 0: .* #20 of .*sp.h5 hangs' $out"
  check "hang-read: rank 0 names the blocked system call: $first" \
    "[[ \"\$first\" == 'dptrain: fatal on rank 0: no progress for '*' s in '*': blocked in the system call read on pipe:'*'(a hung file system?)'* ]]"

  # eval and predict: the watchdog runs there too
  timeout 60 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/sp.ini" --run.quiet=true --checkpoint.model_out="$dir/m.h5" \
    > "$dir/model.txt" 2>&1
  check "a model file for eval and predict" "[ $? = 0 ] && [ -f $dir/m.h5 ]"
  # eval: rank 1's second read (the model file) hangs; predict: its first write of the output
  for cmd in eval predict; do
    out=() fault=hang-read@2
    [ $cmd = predict ] && out=(--out="$dir/p.h5") fault=hang-write@1
    start=$(date +%s)
    LD_PRELOAD="$DPT_IO_FAULT_LIB" DPT_IO_FAULT=$fault DPT_FAULT_RANK=1 timeout 60 $MPIEXEC -n 2 "$DPTRAIN" $cmd \
      "$dir/m.h5" "$dir/sp.h5" "${out[@]}" --timeout=2 > "$dir/$cmd.txt" 2>&1
    rc=$? took=$(( $(date +%s) - start ))
    first=$(grep -m1 '^dptrain: fatal' "$dir/$cmd.txt")
    check "$cmd, $fault on rank 1: reached, exit 1 within 30 s (rc $rc, $took s)" \
      "grep -q '^io-fault: rank 1: .* hangs' $dir/$cmd.txt && [ $rc = 1 ] && [ $took -lt 30 ]"
    check "$cmd: rank 1 names the blocked system call: $first" \
      "[[ \"\$first\" == 'dptrain: fatal on rank 1: no progress for '*' s in '*'ing: blocked in the system call read on pipe:'* ]]"
  done
  check "predict: the output hung while written; only its temporary is left" \
    "grep -q 'io-fault: rank 1: .* of .*p.h5.tmp hangs' $dir/predict.txt && [ ! -e $dir/p.h5 ]"

  # sampled sweeps over the whole training run (every point: launch/fault-sweep --stride 1)
  local f
  for f in "hang-write --rank 1 --stride 11" "hang-read --rank 0 --stride 47"; do
    DPT_BUILD_DIR=$DPT_BINARY_DIR "$DPT_SOURCE_DIR/launch/fault-sweep" --timeout 60 --scenario train --fault $f \
      > "$dir/sweep.txt" 2>&1
    rc=$?
    check "fault-sweep --fault $f: every hang ends the job, its first line naming the rank and the call: $(tail -1 $dir/sweep.txt)" \
      "[ $rc = 0 ] && grep -q 'all points up to it covered' $dir/sweep.txt"
    [ $rc = 0 ] || cat "$dir/sweep.txt"
  done
}
if cat /proc/self/syscall > /dev/null 2>&1; then
  hung_io
else
  echo "no /proc/self/syscall here: the hung-I/O cases are skipped"
fi
for cmd in eval predict; do
  check "$cmd --help documents --timeout" "\"$DPTRAIN\" $cmd --help | grep -q -- '--timeout: seconds without'"
done

# The whole job stopped for 4 s, twice the limit, 1.5 s after the start (both ranks running
# by then: checked); 8000 epochs take ~5 s on 2 ranks here.
timeout 120 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/sp.ini" --run.quiet=true --timeout=2 --train.epochs=8000 \
  > "$dir/suspend.txt" 2>&1 &
job=$!
sleep 1.5
ranks=$(pgrep -P "$(pgrep -P $job | head -1)" -x dptrain | tr '\n' ' ')
check "suspend: 2 ranks running when the job is stopped (pids: $ranks)" "[ \$(echo $ranks | wc -w) = 2 ]"
[ -n "$ranks" ] && kill -STOP $ranks
sleep 4
[ -n "$ranks" ] && kill -CONT $ranks
wait $job
rc=$?
check "suspend: the job trains on to exit 0 (rc $rc)" "[ $rc = 0 ] && grep -q '^final: epochs 8000' $dir/suspend.txt"

timeout 60 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/sp.ini" --timeout=-1 > "$dir/bad.txt" 2>&1
rc=$?
check "bad limit: exit 1 with one line naming parallel.timeout (rc $rc)" \
  "[ $rc = 1 ] && [ \$(grep -c 'parallel.timeout' $dir/bad.txt) = 1 ]"

[ $fail = 0 ] || cat "$dir"/*.txt
exit $fail

#!/usr/bin/env bash
# cli_full_disk.sh — the disk fills up while `dptrain train` writes a checkpoint (a 1 MiB
# tmpfs mounted for the test, filled up once the first checkpoints are there; mounting needs
# root, as in CI: skipped otherwise). Every rank stops within seconds, non-zero, no hang,
# with a line naming the file and the cause; the last good checkpoint is unchanged and
# training resumes from it once there is room again. The metrics CSV on the full disk stops
# the run with one agreed line naming it. Under dptrain's MPI-IO (ROMIO, chosen by
# dpt_comm_preinit) the failed write is fatal by design (src/h5_mpio.h).
# dpt-test: timeout=180
. "$DPT_SOURCE_DIR/tests/common.sh"
if [ "$(id -u)" != 0 ]; then
  echo "skipped: mounting a small tmpfs needs root"
  exit 0
fi
mnt=$dir/small
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=1m tmpfs "$mnt" 2> /dev/null; then
  echo "skipped: cannot mount a tmpfs here"
  exit 0
fi
trap 'umount "$mnt"; [ -n "${DPT_TEST_KEEP:-}" ] || rm -rf "$dir"' EXIT

"$bin/dpt-generate" spiral "$dir/sp.h5" --rows 200 > /dev/null || exit 1
run() { # args...; sets rc and took
  local start
  start=$(date +%s)
  timeout 60 $MPIEXEC -n 2 "$DPTRAIN" train "$DPT_SOURCE_DIR/data/spiral.ini" --data.train="$dir/sp.h5" \
    --run.quiet=true --checkpoint.dir="$mnt/ck" --checkpoint.every=5 "$@" > "$dir/out.txt" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
}

run --epochs 1
check "with room: the first run writes its checkpoints (rc $rc)" "[ $rc = 0 ] && ls $mnt/ck/ckpt-*.h5 > /dev/null"
last=$(ls "$mnt"/ck/ckpt-*.h5 | tail -1)
sum=$(md5sum < "$last")

dd if=/dev/zero of="$mnt/filler" bs=4096 2> /dev/null # until the disk is full
run --epochs 3 --resume latest
cp "$dir/out.txt" "$dir/full.txt"
check "disk full: every rank stops, non-zero, not the timeout's (rc $rc)" "[ $rc != 0 ] && [ $rc != 124 ]"
check "disk full: within 30 s (took $took s)" "[ $took -lt 30 ]"
check "disk full: a line names a rank, the checkpoint file and the cause" \
  "grep -q '^dptrain: \\(error\\|fatal\\).*rank [0-9].*ck/ckpt-[0-9]*[.]h5.*No space left on device' $dir/full.txt"
[ $fail = 0 ] || cat "$dir/full.txt"
check "disk full: the last good checkpoint is unchanged" "[ \"\$(md5sum < $last)\" = \"$sum\" ]"
check "disk full: no newer checkpoint was published" "[ \"\$(ls $mnt/ck/ckpt-*.h5 | tail -1)\" = $last ]"

# the metrics CSV (plain stdio, rank 0) on the full disk: an agreed error naming the file
timeout 60 $MPIEXEC -n 2 "$DPTRAIN" train "$DPT_SOURCE_DIR/data/spiral.ini" --data.train="$dir/sp.h5" \
  --run.quiet=true --epochs 1 --run.metrics="$mnt/metrics.csv" > "$dir/metrics.txt" 2>&1
rc=$?
check "disk full, metrics CSV: every rank stops, non-zero (rc $rc)" "[ $rc != 0 ] && [ $rc != 124 ]"
check "disk full, metrics CSV: one line names the file and the cause" \
  "[ \$(grep -c '^dptrain: error: rank 0: .*metrics.csv: run.metrics: .*No space left on device' $dir/metrics.txt) = 1 ]"

rm -f "$mnt/filler" "$mnt"/ck/*.tmp "$mnt/metrics.csv"
run --epochs 3 --resume latest
check "room again: training resumes from the last good checkpoint (rc $rc)" \
  "[ $rc = 0 ] && grep -q 'resum' $dir/out.txt"
[ $rc = 0 ] || cat "$dir/out.txt"
exit $fail

#!/usr/bin/env bash
# cli_io_components.sh — the read path under both Open MPI I/O components at 2 ranks: OMPIO
# (the default) and ROMIO (--mca io romio321), on a contiguous and on a chunked, shuffle+gzip
# compressed copy of the same data. Training reads the same rows in the same order under
# each, so the printed parameters must be bitwise identical across all four runs.
# dpt-test: timeout=300
. "$DPT_SOURCE_DIR/tests/common.sh"

"$bin/dpt-generate" spiral "$dir/plain.h5" > /dev/null || exit 1
# the same data, chunked (64 rows) and shuffle+gzip compressed, bit for bit: h5repack
# (hdf5-tools) when present, else the compressed half is skipped and says so
files="plain"
if command -v h5repack > /dev/null; then
  h5repack -l CHUNK=64x2 -f SHUF -f GZIP=5 "$dir/plain.h5" "$dir/gz.h5" && files="plain gz"
else
  echo "note: h5repack not found: the compressed copy is not tested here (test_dataset_std covers it)"
fi
[ -e "$dir/gz.h5" ] && check "compressed copy has filters" \
  "timeout 60 $MPIEXEC -n 1 \"$DPTRAIN\" inspect $dir/gz.h5 | grep -q 'filters: shuffle, gzip(level 5)'"

for f in $files; do
  for io in ompio romio321; do
    timeout 120 $MPIEXEC --mca io $io -n 2 "$DPTRAIN" train "$DPT_SOURCE_DIR/data/spiral.ini" \
      --data.train="$dir/$f.h5" --train.epochs=3 --run.print_params=true > "$dir/$f.$io.txt" 2>&1
    check "$f file, io $io, 2 ranks: exit 0" "[ $? = 0 ]"
    grep '^param' "$dir/$f.$io.txt" > "$dir/$f.$io.params"
    check "$f file, io $io: parameters printed" "[ -s $dir/$f.$io.params ]"
  done
done
for f in $files; do
  for io in ompio romio321; do
    check "$f/$io parameters identical to plain/ompio" "cmp -s $dir/plain.ompio.params $dir/$f.$io.params"
  done
done
exit $fail

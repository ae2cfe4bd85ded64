#!/usr/bin/env bash
# cli_convert.sh — `dptrain convert` from CSV, .npy and MNIST IDX files (made here with perl,
# byte by byte), checked through `dptrain inspect` (exact shapes, types, class balance and
# column statistics of small known inputs), a 2-rank training run on a converted file, and
# bad inputs: one error line naming the file, non-zero exit on every rank, no hang, and no
# output file left behind (a good OUT is never replaced by a failed conversion); a read that
# never returns ends the job through rank 0's watchdog.
# dpt-test: timeout=240
. "$DPT_SOURCE_DIR/tests/common.sh"
run() { timeout 60 $MPIEXEC -n "$@"; }
# converted OUT ARGS...: `dptrain convert ARGS OUT` on 1 rank, then `dptrain inspect OUT`
# into $dir/i.txt
converted() {
  local out=$1
  shift
  run 1 "$DPTRAIN" convert "$@" "$out" > /dev/null 2>&1
  run 1 "$DPTRAIN" inspect "$out" > "$dir/i.txt" 2>&1
}

# ---- CSV: string classes mapped in string order, recorded in `classes`
printf 'a,b,species\n1,2,setosa\n3,4,virginica\n5,6.5,setosa\n7,8,versicolor\n' > "$dir/t.csv"
run 2 "$DPTRAIN" convert --csv "$dir/t.csv" --label species "$dir/t.h5" > "$dir/o.txt" 2>&1
check "csv: exit 0 at 2 ranks" "[ $? = 0 ]"
run 1 "$DPTRAIN" inspect "$dir/t.h5" > "$dir/i.txt" 2>&1
check "csv: inspect exit 0" "[ $? = 0 ]"
check "csv: /X [4, 2] float32" "grep -q '^/X: \[4, 2\] float32' $dir/i.txt"
check "csv: /y [4] int32" "grep -q '^/y: \[4\] int32' $dir/i.txt"
check "csv: classes in string order" "grep -q '^attribute classes: setosa versicolor virginica$' $dir/i.txt"
check "csv: task multiclass (3 classes)" "grep -q '^attribute task: multiclass$' $dir/i.txt"
check "csv: balance 2/1/1" "grep -q '0: 2 (50.00%)' $dir/i.txt && grep -q '1: 1 (25.00%)' $dir/i.txt && grep -q '2: 1 (25.00%)' $dir/i.txt"
# column b = 2, 4, 6.5, 8: mean 5.125 exactly representable
check "csv: column 1 min 2 max 8 mean 5.125" "grep -q '1: min 2  max 8  mean 5.125' $dir/i.txt"
check "csv: valid" "grep -q '^valid: yes (task multiclass, 4 rows, 2 features, 3 outputs)' $dir/i.txt"

# integer labels keep numeric order (10 after 9); two classes -> binary
printf 'y,x\n9,1\n10,2\n9,3\n' > "$dir/b.csv"
converted "$dir/b.h5" --csv "$dir/b.csv" --label y
check "csv: integer classes numeric order, binary" "grep -q '^attribute classes: 9 10$' $dir/i.txt && grep -q '^attribute task: binary$' $dir/i.txt && grep -q '0: 2 (66.67%)' $dir/i.txt"

# regression inferred from non-integer labels; f64 and gzip
printf 'x1,x2,t\n0.5,1,0.25\n1.5,2,2.25\n' > "$dir/r.csv"
converted "$dir/r.h5" --csv "$dir/r.csv" --label t --dtype f64 --gzip 4 --chunk 1
check "csv: regression /y [2, 1] float64" "grep -q '^/y: \[2, 1\] float64' $dir/i.txt && grep -q '^attribute task: regression$' $dir/i.txt"
check "csv: gzip + shuffle, chunk 1 row" "grep -q 'filters: shuffle, gzip(level 4)' $dir/i.txt && grep -q 'layout: chunked \[1, 2\]' $dir/i.txt"
check "csv: target mean 1.25" "sed -n '/^\/y/,\$p' $dir/i.txt | grep -q '0: min 0.25  max 2.25  mean 1.25'"

# ---- .npy: X <f4 [3, 2], y <i8 [3]
npy() { # file descr shape-string packfmt values...
  local f=$1 descr=$2 shape=$3 fmt=$4; shift 4
  perl -e '
    my ($descr, $shape, $fmt, @v) = @ARGV;
    my $h = "{'"'"'descr'"'"': '"'"'$descr'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': $shape, }";
    my $total = 10 + length($h) + 1; my $pad = (64 - $total % 64) % 64;
    $h .= " " x $pad . "\n";
    print "\x93NUMPY\x01\x00", pack("v", length($h)), $h, pack("$fmt*", @v);' "$descr" "$shape" "$fmt" "$@" > "$f"
}
npy "$dir/X.npy" '<f4' '(3, 2)' 'f<' 1 2 3 4 5 6
npy "$dir/y.npy" '<i8' '(3,)' 'q<' 0 2 1
run 2 "$DPTRAIN" convert --x "$dir/X.npy" --y "$dir/y.npy" "$dir/n.h5" > /dev/null 2>&1
check "npy: exit 0 at 2 ranks" "[ $? = 0 ]"
run 1 "$DPTRAIN" inspect "$dir/n.h5" > "$dir/i.txt" 2>&1
check "npy: shapes and stats" "grep -q '^/X: \[3, 2\] float32' $dir/i.txt && grep -q '0: min 1  max 5  mean 3' $dir/i.txt && grep -q '1: min 2  max 6  mean 4' $dir/i.txt"
check "npy: 3 classes, one each" "grep -q '^valid: yes (task multiclass, 3 rows, 2 features, 3 outputs)' $dir/i.txt"

# ---- IDX: 2 images 2x2, labels 3 and 1
perl -e 'print pack("N", 0x803), pack("N3", 2, 2, 2), pack("C*", 0, 255, 51, 102, 255, 0, 0, 0)' > "$dir/img.idx"
perl -e 'print pack("N", 0x801), pack("N", 2), pack("C*", 3, 1)' > "$dir/lab.idx"
run 1 "$DPTRAIN" convert --idx-images "$dir/img.idx" --idx-labels "$dir/lab.idx" "$dir/m.h5" > /dev/null 2>&1
check "idx: exit 0" "[ $? = 0 ]"
run 2 "$DPTRAIN" inspect "$dir/m.h5" > "$dir/i.txt" 2>&1
check "idx: /X [2, 4] uint8 with scale 1/255" "grep -q '^/X: \[2, 4\] uint8' $dir/i.txt && grep -q 'attribute scale: 0.00392156863' $dir/i.txt"
check "idx: labels 1 and 3" "grep -q 'labels: min 1  max 3' $dir/i.txt && grep -q '^valid: yes (task multiclass, 2 rows, 4 features, 4 outputs)' $dir/i.txt"

# ---- a converted file trains at 2 ranks
cat > "$dir/train.ini" <<EOF
[data]
train = $dir/t.h5
[model]
layers = 4
activation = tanh
[train]
epochs = 2
batch = 2
EOF
run 2 "$DPTRAIN" train "$dir/train.ini" > "$dir/tr.txt" 2>&1
check "converted CSV trains at 2 ranks" "[ $? = 0 ] && grep -q '^final:' $dir/tr.txt"

# ---- bad inputs
cp "$dir/t.h5" "$dir/keep.h5"
expect_error() { # name, pattern, command...
  local name=$1 pat=$2; shift 2
  timeout 60 "$@" > "$dir/err.txt" 2>&1
  local rc=$?
  check "$name: non-zero exit (rc $rc, not a timeout)" "[ $rc != 0 ] && [ $rc != 124 ]"
  check "$name: one error line naming '$pat'" "[ \$(grep -c '^dptrain: error:' $dir/err.txt) = 1 ] && grep -q -- '$pat' $dir/err.txt"
}
printf 'a,b,c\n1,2,x\n3,oops,y\n' > "$dir/bad.csv"
expect_error "csv non-number" "bad.csv: line 3: column 2" $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/bad.csv" --label c "$dir/keep.h5"
check "failed conversion leaves the old output intact" "cmp -s $dir/t.h5 $dir/keep.h5 && ! ls $dir/keep.h5.tmp.* 2>/dev/null"
printf 'a,b,c\n1,2,x\n3,4\n' > "$dir/short.csv"
expect_error "csv short row" "short.csv: line 3: 2 fields" $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/short.csv" --label c "$dir/o.h5"
printf 'a,b,c\n1,nan,x\n' > "$dir/nan.csv"
expect_error "csv non-finite" "nan.csv: line 2" $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/nan.csv" --label c "$dir/o.h5"
expect_error "csv no label column" "no column named .zz." $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/t.csv" --label zz "$dir/o.h5"
npy "$dir/i2.npy" '<i2' '(3, 2)' 's<' 1 2 3 4 5 6
expect_error "npy unsupported dtype" "i2.npy: .npy dtype .<i2." $MPIEXEC -n 2 "$DPTRAIN" convert --x "$dir/i2.npy" --y "$dir/y.npy" "$dir/o.h5"
npy "$dir/big.npy" '<f4' '(1000000000000, 1000)' 'f<' 1 2
expect_error "npy header claims too much" "big.npy: file has 136 bytes but its header" $MPIEXEC -n 2 "$DPTRAIN" convert --x "$dir/big.npy" --y "$dir/y.npy" "$dir/o.h5"
head -c 140 "$dir/X.npy" > "$dir/trunc.npy"
expect_error "npy truncated" "trunc.npy: file has 140 bytes" $MPIEXEC -n 2 "$DPTRAIN" convert --x "$dir/trunc.npy" --y "$dir/y.npy" "$dir/o.h5"
npy "$dir/y4.npy" '<i8' '(4,)' 'q<' 0 1 1 0
expect_error "npy N mismatch" "y4.npy has 4 rows" $MPIEXEC -n 2 "$DPTRAIN" convert --x "$dir/X.npy" --y "$dir/y4.npy" "$dir/o.h5"
npy "$dir/Xnan.npy" '<f4' '(3, 2)' 'f<' 1 2 3 NaN 5 6
expect_error "npy non-finite" "Xnan.npy: row 1: non-finite" $MPIEXEC -n 2 "$DPTRAIN" convert --x "$dir/Xnan.npy" --y "$dir/y.npy" "$dir/o.h5"
head -c 15 "$dir/img.idx" > "$dir/trunc.idx"
expect_error "idx truncated" "trunc.idx" $MPIEXEC -n 2 "$DPTRAIN" convert --idx-images "$dir/trunc.idx" --idx-labels "$dir/lab.idx" "$dir/o.h5"
expect_error "idx images as labels" "lab.idx: IDX file has 1 dimensions" $MPIEXEC -n 2 "$DPTRAIN" convert --idx-images "$dir/lab.idx" --idx-labels "$dir/lab.idx" "$dir/o.h5"
expect_error "two inputs" "exactly one input" $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/t.csv" --label c --x "$dir/X.npy" --y "$dir/y.npy" "$dir/o.h5"
expect_error "bad gzip level" "--gzip .12." $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/t.csv" --label species --gzip 12 "$dir/o.h5"
# regressions found by fuzzing the converters (tests/fuzz/fuzz_csv.c, fuzz_npy.c, fuzz_idx.c)
printf 'a,b,c\n1,1e39,x\n' > "$dir/wide.csv"
expect_error "csv value beyond f32" "wide.csv: line 2: column 2: .1e39. is beyond the f32 range" $MPIEXEC -n 1 "$DPTRAIN" convert --csv "$dir/wide.csv" --label c "$dir/o.h5"
printf 'a,t\n1,0.5\n2,-1e300\n' > "$dir/widey.csv"
expect_error "csv target beyond f32" "widey.csv: line 3: column t: target beyond the f32 range" $MPIEXEC -n 1 "$DPTRAIN" convert --csv "$dir/widey.csv" --label t "$dir/o.h5"
run 1 "$DPTRAIN" convert --csv "$dir/wide.csv" --label c --dtype f64 "$dir/wide.h5" > /dev/null 2>&1
check "csv value beyond f32 converts with --dtype f64" "[ $? = 0 ] && [ -e $dir/wide.h5 ]"
printf '"a",b,"c"\n"1",2,"x"\n"3",4,"y"\n' > "$dir/quoted.csv"
converted "$dir/quoted.h5" --csv "$dir/quoted.csv" --label c
check "csv quoted first and last fields" "grep -q '^attribute classes: x y$' $dir/i.txt && grep -q '0: min 1  max 3  mean 2' $dir/i.txt"
printf 'a,y\n1,1\n2,01\n3,+1\n4,2\n' > "$dir/same.csv"
converted "$dir/same.h5" --csv "$dir/same.csv" --label y
check "csv integer labels 1, 01, +1 are one class" "grep -q '^attribute classes: 1 2$' $dir/i.txt && grep -q '0: 3 (75.00%)' $dir/i.txt && grep -q '^attribute task: binary$' $dir/i.txt"
perl -e 'print "x,t\n"; print "$_,", $_ + 0.5, "\n" for 1 .. 70000' > "$dir/many.csv"
run 1 "$DPTRAIN" convert --csv "$dir/many.csv" --label t "$dir/many.h5" > /dev/null 2>&1
check "csv regression inferred with 70000 distinct targets" "[ $? = 0 ] && [ -e $dir/many.h5 ]"
perl -e 'print "x,c\n"; print "$_,c$_\n" for 1 .. 70000' > "$dir/manyc.csv"
expect_error "csv more than 65536 classes" "manyc.csv: line 65538: column c has more than 65536 distinct labels" $MPIEXEC -n 1 "$DPTRAIN" convert --csv "$dir/manyc.csv" --label c "$dir/o.h5"
npy "$dir/y20.npy" '<f4' '(3, 0)' 'f<'
expect_error "npy y with 0 columns" "y20.npy: .npy shape \[3, 0\] is empty" $MPIEXEC -n 1 "$DPTRAIN" convert --x "$dir/X.npy" --y "$dir/y20.npy" "$dir/o.h5"
npy "$dir/X0.npy" '<f4' '(0, 2)' 'f<'
expect_error "npy X with 0 rows" "X0.npy: .npy shape \[0, 2\] is empty" $MPIEXEC -n 1 "$DPTRAIN" convert --x "$dir/X0.npy" --y "$dir/y.npy" "$dir/o.h5"
npy "$dir/wrap.npy" '<f8' '(549755813888, 4194304)' 'd<'
expect_error "npy size wrapping 2^64" "wrap.npy: file has 128 bytes but its header .* needs more than" $MPIEXEC -n 1 "$DPTRAIN" convert --x "$dir/wrap.npy" --y "$dir/wrap.npy" "$dir/o.h5"
perl -e 'print pack("N", 0x803), pack("N3", 256, 1 << 28, 1 << 28)' > "$dir/wrap.idx"
perl -e 'print pack("N", 0x801), pack("N", 256), "\0" x 256' > "$dir/lab256.idx"
expect_error "idx size wrapping 2^64" "wrap.idx: file has 16 bytes but its IDX header .* needs more than" $MPIEXEC -n 1 "$DPTRAIN" convert --idx-images "$dir/wrap.idx" --idx-labels "$dir/lab256.idx" "$dir/o.h5"
expect_error "idx task regression" "lab.idx: task regression does not fit" $MPIEXEC -n 1 "$DPTRAIN" convert --idx-images "$dir/img.idx" --idx-labels "$dir/lab.idx" --task regression "$dir/o.h5"
check "no output left by failed conversions" "[ ! -e $dir/o.h5 ] && ! ls $dir/*.tmp.* 2>/dev/null"
# a chunk of 4096 wide rows would pass HDF5's 4 GiB limit: chunks hold at most 64 MiB. X is
# 600 x 16384 f64 zeros (75 MiB, a sparse file: the header, then truncate), gzip'd output
npy "$dir/wideX.npy" '<f8' '(600, 16384)' 'd<'
truncate -s $((128 + 600 * 16384 * 8)) "$dir/wideX.npy"
npy "$dir/y600.npy" '<i8' '(600,)' 'q<' $(for i in $(seq 600); do echo $((i % 2)); done)
converted "$dir/wideX.h5" --x "$dir/wideX.npy" --y "$dir/y600.npy" --gzip 1
check "npy wide rows: chunks of at most 64 MiB (512 rows of 128 KiB)" "grep -q 'layout: chunked \[512, 16384\]' $dir/i.txt"
# fixed-length string attributes (the seed's files, h5py's np.bytes_) are shown, not '(unreadable)'
"$bin/dpt-generate" spiral "$dir/sp.h5" --rows 30 > /dev/null || exit 1 # task: a fixed-length string
run 1 "$DPTRAIN" inspect "$dir/sp.h5" > "$dir/i.txt" 2>&1
check "inspect fixed-length task attribute" "grep -q '^attribute task: multiclass$' $dir/i.txt"
echo "not hdf5" > "$dir/text.h5"
expect_error "inspect not HDF5" "text.h5: not an HDF5 file" $MPIEXEC -n 2 "$DPTRAIN" inspect "$dir/text.h5"
# a read that never returns (a FIFO whose writer stalls after two lines, as a hung file
# system would): rank 0's watchdog names the call and the file and the job ends, rank 1
# included, within seconds; no output is left
mkfifo "$dir/hang.csv"
(printf 'a,b,y\n1,2,0\n'; sleep 40) > "$dir/hang.csv" &
writer=$!
start=$(date +%s)
timeout 60 $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/hang.csv" --label y "$dir/hang.h5" --timeout 2 \
  > "$dir/hang.txt" 2>&1
rc=$? took=$(( $(date +%s) - start ))
pkill -P $writer 2> /dev/null; kill $writer 2> /dev/null
first=$(grep -m1 '^dptrain: fatal' "$dir/hang.txt")
check "hung read: non-zero exit within 20 s (rc $rc, took $took s)" "[ $rc != 0 ] && [ $rc != 124 ] && [ $took -lt 20 ]"
check "hung read: rank 0 names the call and the file: $first" \
  "[[ \"\$first\" == 'dptrain: fatal on rank 0: no progress for '*' s in converting: blocked in the system call read on $dir/hang.csv'* ]]"
check "hung read: no output left" "! ls $dir/hang.h5* 2> /dev/null"
expect_error "convert --timeout not a number" "--timeout .soon.: expected seconds" $MPIEXEC -n 2 "$DPTRAIN" convert --csv "$dir/t.csv" \
  --label species "$dir/o.h5" --timeout soon
run 1 "$DPTRAIN" convert --help > "$dir/help.txt" 2>&1
check "convert --help describes --timeout" "grep -q -- '--timeout S' $dir/help.txt"
expect_error "inspect missing file" "nope.h5" $MPIEXEC -n 2 "$DPTRAIN" inspect "$dir/nope.h5"
exit $fail

#!/usr/bin/env bash
# cli_train.sh — `dptrain train` as users run it: the seed example on 1, 2 and 3 ranks gives
# the same parameters (1e-6 relative), and bad input exits non-zero on every rank with a
# one-line error naming the file or key, within a time limit (no hang).
# dpt-test: timeout=240
. "$DPT_SOURCE_DIR/tests/common.sh"

"$bin/dpt-generate" seed "$dir/seed.h5" || exit 1
sed "s#data/seed.h5#$dir/seed.h5#" "$DPT_SOURCE_DIR/data/seed.ini" > "$dir/seed.ini"
for np in 1 2 3; do
  timeout 120 $MPIEXEC -n $np "$DPTRAIN" train "$dir/seed.ini" --run.print_params=true > "$dir/out$np.txt" 2>&1
  check "seed example at $np ranks exits 0" "[ $? = 0 ]"
done
# parameters equal to 1e-6 relative across rank counts
p1=$(grep '^param' "$dir/out1.txt")
for np in 2 3; do
  pn=$(grep '^param' "$dir/out$np.txt")
  check "params at $np ranks equal those at 1 rank" \
    "paste <(echo \"\$p1\" | awk '{print \$4}') <(echo \"\$pn\" | awk '{print \$4}') | awk '{d=\$1-\$2; if (d<0) d=-d; a=\$1<0?-\$1:\$1; if (d > 1e-6*a) exit 1}'"
done
check "seed example within 0.05 of (2, 3)" \
  "awk '/^param layer_0\\/b/ {b=\$4} /^param layer_0\\/W/ {w=\$4} END {exit !(b>1.95 && b<2.05 && w>2.95 && w<3.05)}' $dir/out1.txt"

# --standardize: statistics saved with the model and applied again by eval
"$bin/dpt-generate" moons "$dir/moons.h5" --rows 400 --val 0 || exit 1
timeout 120 $MPIEXEC -n 2 "$DPTRAIN" train "$DPT_SOURCE_DIR/data/spiral.ini" --data.train="$dir/moons.h5" \
  --data.standardize=true --epochs 15 --checkpoint.model_out="$dir/model.h5" --run.quiet=true > "$dir/std.txt" 2>&1
check "training with --standardize writes a model file" "[ $? = 0 ] && [ -f $dir/model.h5 ]"
check "the model file holds the standardization" "h5ls -r $dir/model.h5 | grep -q 'standardize/mean'"
timeout 60 $MPIEXEC -n 2 "$DPTRAIN" eval "$dir/model.h5" "$dir/moons.h5" > "$dir/eval.txt" 2>&1
check "eval applies it (accuracy >= 0.95 on two moons)" "awk '/accuracy/ {exit !(\$4 >= 0.95)}' $dir/eval.txt"

# bad input: non-zero exit, one error line naming the culprit, no hang
expect_error() { # name, pattern, command...
  local name=$1 pat=$2; shift 2
  timeout 60 "$@" > "$dir/err.txt" 2>&1
  local rc=$?
  check "$name: non-zero exit (rc $rc, not a timeout)" "[ $rc != 0 ] && [ $rc != 124 ]"
  check "$name: one error line naming '$pat'" "[ \$(grep -c '^dptrain: error:' $dir/err.txt) = 1 ] && grep -q -- '$pat' $dir/err.txt"
}
expect_error "missing config" "nope.ini" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/nope.ini"
expect_error "missing dataset" "missing.h5" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --data.train="$dir/missing.h5"
echo "not hdf5" > "$dir/text.h5"
expect_error "not HDF5" "text.h5" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --data.train="$dir/text.h5"
expect_error "unknown key" "optimizer.lrr" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --optimizer.lrr=1
expect_error "out-of-range value" "train.epochs" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --epochs=-3
expect_error "unknown flag" "--frobnicate" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --frobnicate
expect_error "config is a directory" "not a regular file" $MPIEXEC -n 2 "$DPTRAIN" train "$dir"
printf '[train]\nepochs = 2\0\n' > "$dir/nul.ini"
expect_error "config with a NUL byte" "nul.ini: a NUL byte" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/nul.ini"
# found by fuzzing the config and options parsers (tests/fuzz/fuzz_config.c, fuzz_options.c)
expect_error "empty config argument" "expected a CONFIG file name" $MPIEXEC -n 2 "$DPTRAIN" train ""
expect_error "option without a name" "expected an option name" $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --=3
printf 'lr = 1\n[train]\nepochs = 2\n' > "$dir/nosection.ini"
expect_error "key outside a section, then good lines" "nosection.ini: key .lr. is outside any" \
  $MPIEXEC -n 2 "$DPTRAIN" train "$dir/nosection.ini"
{ printf '[model]\nlayers = '; for i in $(seq 100); do printf '8,'; done; printf '8\n'; } > "$dir/long.ini"
expect_error "a line longer than the INI reader's buffer" "long.ini:2: a line of 210 characters" \
  $MPIEXEC -n 2 "$DPTRAIN" train "$dir/long.ini"
# a model whose training state cannot fit this node is refused naming model.layers before
# any of it is touched (Linux grants the memory lazily: else the OOM killer ends the run,
# naming nothing). Width w from this machine's memory: parameters and gradients are 0.6 of
# it (allowed alone); Nesterov's velocity and look-ahead copy add 0.6 on 1 rank; momentum's
# velocity on 2 ranks of the node makes 2 x 0.9. Under strict overcommit
# (vm.overcommit_memory = 2) the allocation itself fails first, naming what it allocates.
mem_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
w=$(awk -v m="$mem_kb" 'BEGIN {printf "%d", sqrt(0.6 * m * 1024 / 8)}')
want="model.layers: training needs"
[ "$(cat /proc/sys/vm/overcommit_memory 2>/dev/null)" = 2 ] && want="cannot allocate"
big=("$DPTRAIN" train "$DPT_SOURCE_DIR/data/spiral.ini" --data.train="$dir/moons.h5" --model.layers="$w,$w")
expect_error "Nesterov's state would not fit this node" "$want" $MPIEXEC -n 1 "${big[@]}" --optimizer.type=nesterov
check "the message gives the optimizer's share" \
  "[ '$want' != 'model.layers: training needs' ] || grep -q 'optimizer.type = nesterov arrays' $dir/err.txt"
expect_error "two ranks' training state would not fit this node" "$want" $MPIEXEC -n 2 "${big[@]}" --optimizer.type=momentum
check "the message counts the node's ranks" \
  "[ '$want' != 'model.layers: training needs' ] || grep -q 'on this node (2 rank(s)' $dir/err.txt"
# one rank cannot see a file the others can (a node-local path; simulated with MPMD, each
# rank its own arguments): every rank stops with that rank's error, no hang
expect_error "dataset missing on rank 1 only" "rank 1: $dir/only-on-0.h5: no such file" \
  $MPIEXEC -n 1 "$DPTRAIN" train "$dir/seed.ini" --epochs 1 --run.quiet=true : \
  -n 1 "$DPTRAIN" train "$dir/seed.ini" --epochs 1 --data.train="$dir/only-on-0.h5"
# the config file is read by rank 0 alone and broadcast: ranks that cannot see it (or see
# another copy) train with rank 0's
timeout 60 $MPIEXEC -n 1 "$DPTRAIN" train "$dir/seed.ini" --epochs 2 \
  --run.print_params=true : -n 1 "$DPTRAIN" train "$dir/absent.ini" --epochs 2 --run.print_params=true \
  > "$dir/mpmd.txt" 2>&1
check "config missing on rank 1's node: rank 0's is used (exit 0)" "[ $? = 0 ] && grep -q '^param' $dir/mpmd.txt"
exit $fail

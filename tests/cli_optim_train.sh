#!/usr/bin/env bash
# cli_optim_train.sh — optimizers and schedules through `dptrain train` on the seed example:
# the schedule's lr is the one logged each epoch (step: halved every epoch, exact in binary
# up to the printed digits), the adaptive rules reach the least-squares fit within 0.05 of
# (2, 3), and invalid hyper-parameters stop every rank before training with one error line
# naming the key (non-zero exit, no hang).
# dpt-test: timeout=240
. "$DPT_SOURCE_DIR/tests/common.sh"

"$bin/dpt-generate" seed "$dir/seed.h5" || exit 1
sed "s#data/seed.h5#$dir/seed.h5#" "$DPT_SOURCE_DIR/data/seed.ini" > "$dir/seed.ini"

# step schedule, every epoch (= every step here: full batch): 0.005, 0.0025, 0.00125, 0.000625
timeout 120 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --epochs=4 --train.log_every=1 \
  --schedule.type=step --schedule.every=1 > "$dir/step.txt" 2>&1
check "step schedule run exits 0" "[ $? = 0 ]"
lrs=$(awk '/^epoch / {for (i = 1; i < NF; ++i) if ($i == "lr") printf "%s ", $(i + 1)}' "$dir/step.txt")
check "logged lr per epoch is 0.005 0.0025 0.00125 0.000625 (got: $lrs)" "[ \"$lrs\" = '0.005 0.0025 0.00125 0.000625 ' ]"

# adaptive rules through the loop (2 ranks)
for spec in "adam 0.1" "adamw 0.1" "adagrad 1" "rmsprop 0.01"; do
  set -- $spec
  extra=""
  [ "$1" = adamw ] && extra="--optimizer.weight_decay=0"
  timeout 120 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --optimizer.type=$1 --optimizer.lr=$2 $extra \
    --run.print_params=true --run.quiet=true > "$dir/$1.txt" 2>&1
  check "$1 (lr $2) within 0.05 of (2, 3)" \
    "awk '/^param layer_0\\/b/ {b=\$4} /^param layer_0\\/W/ {w=\$4} END {exit !(b>1.95 && b<2.05 && w>2.95 && w<3.05)}' $dir/$1.txt"
done

# invalid hyper-parameters: refused before any training
expect_error() { # name, pattern, dptrain arguments...
  local name=$1 pat=$2; shift 2
  timeout 60 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/seed.ini" --train.log_every=1 "$@" > "$dir/err.txt" 2>&1
  local rc=$?
  check "$name: non-zero exit (rc $rc, not a timeout)" "[ $rc != 0 ] && [ $rc != 124 ]"
  check "$name: one error line naming '$pat'" "[ \$(grep -c '^dptrain: error:' $dir/err.txt) = 1 ] && grep -q -- '$pat' $dir/err.txt"
  check "$name: no epoch ran" "! grep -q '^epoch ' $dir/err.txt"
}
expect_error "zero lr" "optimizer.lr" --optimizer.lr=0
expect_error "negative lr" "optimizer.lr" --optimizer.lr=-0.1
expect_error "momentum 1" "optimizer.momentum" --optimizer.type=momentum --optimizer.momentum=1
expect_error "negative beta1" "optimizer.beta1" --optimizer.type=adam --optimizer.beta1=-0.5
expect_error "rho 0" "optimizer.rho" --optimizer.type=rmsprop --optimizer.rho=0
expect_error "rho 1" "optimizer.rho" --optimizer.type=adadelta --optimizer.rho=1
expect_error "unknown optimizer" "optimizer.type" --optimizer.type=lion
expect_error "unknown schedule" "schedule.type" --schedule.type=cosine
expect_error "T_mult < 1" "schedule.t_mult" --schedule.type=sgdr --schedule.t0=10 --schedule.t_mult=0
expect_error "momentum for sgd" "optimizer.momentum: does not apply to optimizer.type = sgd" --optimizer.momentum=0.9
exit $fail

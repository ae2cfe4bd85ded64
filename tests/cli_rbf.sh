#!/bin/bash
# cli_rbf.sh — RBF layers through the command: `dptrain gradcheck` builds rbf models from the
# config (the layer registry) and their centers' and widths' gradients, forward-mode
# derivatives and H·v pass the central-difference check for every task, on 1 and 2 ranks;
# invalid rbf settings stop with a one-line error naming the key and exit 1 on every rank;
# dptrain train runs 2-step (centers, widths fixed) and 3-step learning.
. "$DPT_SOURCE_DIR/tests/common.sh"
die() { echo "FAIL: $*"; exit 1; } # these checks stop at the first failure

cat > "$dir/rbf.ini" <<'INI'
[model]
layers = 6
[layer.0]
type = rbf
INI
cat > "$dir/deep.ini" <<'INI'
[model]
layers = 5,4
activation = tanh
[layer.0]
type = rbf
placement = gng
width = nearest
INI

# 1. every task, both models: all tensors listed, check passes
for ini in rbf deep; do
  tasks="regression binary multiclass"
  [ $ini = deep ] && tasks=multiclass
  for task in $tasks; do
    out=$("$DPTRAIN" gradcheck "$dir/$ini.ini" --random --gradcheck.task=$task 2>&1) || die "$ini $task: $out"
    for t in layer_0/centers layer_0/widths layer_1/W layer_1/b; do
      grep -q "^$t " <<<"$out" || die "$ini $task: tensor $t not listed: $out"
    done
  done
done

# 2. on 2 ranks: printed once, passes
out=$($MPIEXEC -n 2 "$DPTRAIN" gradcheck "$dir/deep.ini" --random --rows 5 2>&1) || die "2 ranks: $out"
[ "$(grep -c '^layer_0/centers ' <<<"$out")" = 1 ] || die "2 ranks: expected one report: $out"

# 3. bad settings: exit 1, the key in a one-line error (printed once with 2 ranks)
check_bad() { # ini-text key-needle [np]
  printf '%s\n' "$1" > "$dir/bad.ini"
  if [ "${3:-1}" = 1 ]; then
    out=$("$DPTRAIN" gradcheck "$dir/bad.ini" --random 2>&1) && die "accepted: $1"
  else
    out=$($MPIEXEC -n $3 "$DPTRAIN" gradcheck "$dir/bad.ini" --random 2>&1) && die "np $3: accepted: $1"
  fi
  grep -q "$2" <<<"$out" || die "message lacks '$2': $out"
  [ "$(grep -c 'error' <<<"$out")" = 1 ] || die "expected one error line: $out"
}
check_bad $'[model]\nlayers = 4\n[layer.0]\ntype = rbf\nplacement = kmeans' "layer.0.placement" 2
check_bad $'[model]\nlayers = 4\n[layer.0]\ntype = rbf\nsigma = -1' "layer.0.sigma"
check_bad $'[model]\nlayers = 4\n[layer.1]\ntype = rbf' "layer.1.type: rbf is a hidden layer"
check_bad $'[model]\nlayers = 4,3\n[layer.1]\ntype = rbf' "layer.1.type: rbf must be the first layer"
# 4. dptrain train with an rbf layer: 2-step places and fits before the loop, then keeps the
#    centers and widths fixed (AdamW's weight decay included) while the output weights train;
#    1 and 2 ranks give the same centers (placement is bitwise P-independent); 3-step moves them.
GEN=$bin/dpt-generate
"$GEN" moons "$dir/moons.h5" --rows 300 >/dev/null || die "dpt-generate moons"
cat > "$dir/moons.ini" <<INI
[data]
train = $dir/moons.h5
[model]
layers = 8
[layer.0]
type = rbf
learn = 2step
fit_epochs = 100
fit_lr = 2
[train]
batch = 64
[optimizer]
type = adamw
lr = 0.01
INI
run() { # np epochs extra-args...
  local np=$1 ep=$2
  shift 2
  $MPIEXEC -n $np "$DPTRAIN" train "$dir/moons.ini" --epochs $ep --run.print_params=true "$@" 2>&1
}
a=$(run 1 1) || die "2-step, 1 epoch: $a"
grep -q "^# rbf: 2-step learning, centers and widths placed, output weights by gradient descent" <<<"$a" \
  || die "2-step: no fit line: $a"
b=$(run 2 8) || die "2-step, 8 epochs, 2 ranks: $b"
for t in layer_0/centers layer_0/widths; do
  [ "$(grep "^param $t " <<<"$a")" = "$(grep "^param $t " <<<"$b")" ] || die "2-step: $t moved or differs across P"
done
[ "$(grep "^param layer_1/W " <<<"$a")" != "$(grep "^param layer_1/W " <<<"$b")" ] || die "2-step: output weights did not train"
c=$(run 1 8 --layer.0.learn=3step) || die "3-step: $c"
[ "$(grep "^param layer_0/centers " <<<"$a")" != "$(grep "^param layer_0/centers " <<<"$c")" ] || die "3-step: centers did not train"
# more centers than training rows: refused before training, key named, exit 1 on 2 ranks
out=$(run 2 1 --model.layers=400 --layer.0.units=400) && die "400 centers on 300 rows accepted"
grep -q "layer.0.units: expected at most N = 300" <<<"$out" || die "units > N: $out"
echo "cli_rbf: ok"

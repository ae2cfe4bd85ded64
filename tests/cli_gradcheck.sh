#!/bin/bash
# cli_gradcheck.sh — `dptrain gradcheck`: passes on correct models (every tensor listed) at
# random inputs and on the first rows of a dataset,
# fails (exit 1, one-line error naming the tensor) when the tolerance cannot be met, and
# refuses invalid model configs with the key named, on 1 and 2 ranks.
. "$DPT_SOURCE_DIR/tests/common.sh"
die() { echo "FAIL: $*"; exit 1; } # these checks stop at the first failure

cat > "$dir/mlp.ini" <<'INI'
[model]
layers = 5,4
activation = tanh
[layer.1]
activation = prelu
per_unit = true
INI
cat > "$dir/maxout.ini" <<'INI'
[model]
layers = 4,3
activation = softplus
[layer.0]
type = maxout
pieces = 3
INI

# 1. correct models pass, every tensor is listed
for task in regression binary multiclass; do
  out=$("$DPTRAIN" gradcheck "$dir/mlp.ini" --random --gradcheck.task=$task 2>&1) || die "mlp $task: $out"
  for t in layer_2/W layer_2/b layer_1/prelu layer_1/W layer_1/b layer_0/W layer_0/b; do
    grep -q "^$t " <<<"$out" || die "mlp $task: tensor $t not listed: $out"
  done
done
out=$("$DPTRAIN" gradcheck "$dir/maxout.ini" --random --rows 6 --seed 3 2>&1) || die "maxout: $out"

# 1b. the first rows of a dataset (data.train), from a training config: other modules' keys
#     ([train], [optimizer], [data] shuffle) are ignored, the model's are checked
GEN=$bin/dpt-generate
"$GEN" spiral "$dir/spiral.h5" --rows 40 >/dev/null || die "dpt-generate"
sed "s|data/spiral.h5|$dir/spiral.h5|" "${DPT_SOURCE_DIR:-.}/data/spiral.ini" > "$dir/spiral.ini"
out=$($MPIEXEC -n 2 "$DPTRAIN" gradcheck "$dir/spiral.ini" --rows 6 2>&1) || die "spiral: $out"
grep -q "6 $dir/spiral.h5 rows, 2 -> 3 (multiclass)" <<<"$out" || die "spiral header: $out"
grep -q "^layer_0/W " <<<"$out" || die "spiral tensors: $out"
out=$("$DPTRAIN" gradcheck "$dir/spiral.ini" --model.activaton=relu 2>&1) && die "misspelled model key accepted"
grep -q "model.activaton: unknown key" <<<"$out" || die "misspelled key message: $out"
out=$("$DPTRAIN" gradcheck "$dir/mlp.ini" 2>&1) && die "no data accepted"
grep -q "error: gradcheck: data.train: expected a dataset file" <<<"$out" || die "no data message: $out"

# 2. on 2 ranks: same result, printed once
out=$($MPIEXEC -n 2 "$DPTRAIN" gradcheck "$dir/mlp.ini" --random 2>&1) || die "2 ranks: $out"
[ "$(grep -c '^layer_0/W ' <<<"$out")" = 1 ] || die "2 ranks: expected one report: $out"

# 3. an impossible tolerance fails with exit 1 and names a tensor
out=$("$DPTRAIN" gradcheck "$dir/mlp.ini" --random --gradcheck.tol=1e-300 2>&1) && die "tol 1e-300 passed: $out"
grep -q "error: gradcheck: layer_.*expected at most" <<<"$out" || die "tol message: $out"

# 4. invalid configs: one line naming the key, non-zero exit (on 2 ranks: every rank exits)
check_bad() { # ranks, key, extra args
  local np=$1 key=$2; shift 2
  local run="$DPTRAIN"; [ "$np" = 1 ] || run="$MPIEXEC -n $np $DPTRAIN"
  out=$($run gradcheck "$dir/mlp.ini" --random "$@" 2>&1) && die "$key accepted: $out"
  grep -q "error: .*$key" <<<"$out" || die "$key: message lacks the key: $out"
  [ "$(grep -c 'error' <<<"$out")" = 1 ] || die "$key: expected one error line: $out"
}
check_bad 2 model.activation --model.activation=swish
check_bad 1 layer.0.pieces --layer.0.type=maxout --layer.0.pieces=1
check_bad 1 model.loss --model.loss=ce
check_bad 1 model.layers --model.layers=5,0
check_bad 1 layer.1.units --layer.1.units=0
check_bad 1 model.nonsense --model.nonsense=1
"$DPTRAIN" gradcheck 2>/dev/null && die "no CONFIG accepted"
echo "cli_gradcheck: ok"

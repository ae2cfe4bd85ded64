#!/usr/bin/env bash
# cli_checkpoint_eval.sh — `dptrain eval` and `dptrain predict` on a trained model file:
# the same loss (1e-6 relative: per-rank partial sums in double, added in another order)
# and the same accuracy at 1 and 3 ranks; predictions one row per input row in input order
# at 1 and 3 ranks (outputs within 1e-5: f32 BLAS kernels round differently for other
# block sizes; predicted classes identical); bad input refused with one error line.
# dpt-test: timeout=180
. "$DPT_SOURCE_DIR/tests/common.sh"

"$bin/dpt-generate" spiral "$dir/sp.h5" --rows 300 > /dev/null || exit 1
"$bin/dpt-generate" sine "$dir/sine.h5" --rows 50 > /dev/null || exit 1
sed "s#data/spiral.h5#$dir/sp.h5#; s/epochs = 60/epochs = 3/" "$DPT_SOURCE_DIR/data/spiral.ini" > "$dir/sp.ini"
timeout 120 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/sp.ini" --run.quiet=true --checkpoint.model_out="$dir/m.h5" \
  --checkpoint.dir="$dir/ck" > "$dir/train.txt" 2>&1
check "train writes a model file" "[ $? = 0 ] && [ -f $dir/m.h5 ]"
check "model file layout: model/layer_0/W [32, 2] with crc32, format attribute" \
  "h5dump -a /format $dir/m.h5 | grep -q 'dptrain-model' && h5dump -H -d /model/layer_0/W $dir/m.h5 | grep -q 'SIMPLE { ( 32, 2 )' && h5dump -A -d /model/layer_0/W $dir/m.h5 | grep -q crc32"
for np in 1 3; do
  timeout 60 $MPIEXEC -n $np "$DPTRAIN" eval "$dir/m.h5" "$dir/sp.h5" > "$dir/e$np.txt" 2>&1
  check "eval at $np rank(s) exits 0" "[ $? = 0 ]"
done
l1=$(awk '/^loss/ {print $2}' "$dir/e1.txt"); l3=$(awk '/^loss/ {print $2}' "$dir/e3.txt")
check "eval loss $l1 vs $l3 within 1e-6 relative" "awk -v a=$l1 -v b=$l3 'BEGIN {d=a-b; if (d<0) d=-d; exit !(a > 0 && d <= 1e-6*a)}'"
check "eval accuracy identical and counts 300 rows" \
  "[ \"\$(awk '/^loss/ {print \$4, \$7}' $dir/e1.txt)\" = \"\$(awk '/^loss/ {print \$4, \$7}' $dir/e3.txt)\" ] && grep -q 'of 300' $dir/e1.txt"
# a checkpoint is a model file too
timeout 60 $MPIEXEC -n 2 "$DPTRAIN" eval "$dir/ck/ckpt-00000030.h5" "$dir/sp.h5" > "$dir/ec.txt" 2>&1
check "eval of the final checkpoint gives the same loss" "[ \"\$(awk '/^loss/' $dir/ec.txt)\" != '' ] && [ \"\$(awk '/^loss/ {print \$4}' $dir/ec.txt)\" = \"\$(awk '/^loss/ {print \$4}' $dir/e1.txt)\" ]"
for np in 1 3; do
  timeout 60 $MPIEXEC -n $np "$DPTRAIN" predict "$dir/m.h5" "$dir/sp.h5" --out "$dir/p$np.h5" > "$dir/p$np.txt" 2>&1
  check "predict at $np rank(s) exits 0, no .tmp left" "[ $? = 0 ] && [ -f $dir/p$np.h5 ] && [ ! -f $dir/p$np.h5.tmp ]"
done
vals() { h5dump -d "$2" -y -w 0 "$1" | awk '/DATA \{/ {f=1; next} /\}/ {f=0} f' | tr ',' '\n' | awk 'NF {print $1}'; }
check "predictions: 300 x 3 outputs" "[ \$(vals $dir/p1.h5 /outputs | wc -l) = 900 ]"
check "predictions at 1 and 3 ranks within 1e-5" \
  "paste <(vals $dir/p1.h5 /outputs) <(vals $dir/p3.h5 /outputs) | awk '{d=\$1-\$2; if (d<0) d=-d; if (d > 1e-5) exit 1}'"
check "predicted classes identical" "[ \"\$(vals $dir/p1.h5 /predicted)\" = \"\$(vals $dir/p3.h5 /predicted)\" ]"
check "predicted classes give eval's accuracy" \
  "[ \$(paste <(vals $dir/p1.h5 /predicted) <(h5dump -d /y -y -w 0 $dir/sp.h5 | awk '/DATA \{/ {f=1; next} /\}/ {f=0} f' | tr ',' '\n' | awk 'NF {print \$1}') | awk '\$1==\$2 {n++} END {print n}') = \$(awk '/^loss/ {print \$5}' $dir/e1.txt | tr -d '(') ]"

expect_error() { # name, pattern, command...
  local name=$1 pat=$2; shift 2
  timeout 60 "$@" > "$dir/err.txt" 2>&1
  local rc=$?
  check "$name: non-zero exit (rc $rc, not a timeout)" "[ $rc != 0 ] && [ $rc != 124 ]"
  check "$name: one error line naming '$pat'" "[ \$(grep -c '^dptrain: error:' $dir/err.txt) = 1 ] && grep -q -- '$pat' $dir/err.txt"
}
expect_error "eval of a dataset as the model" "not a dptrain file" $MPIEXEC -n 2 "$DPTRAIN" eval "$dir/sp.h5" "$dir/sp.h5"
expect_error "predict without --out" "--out FILE.h5 is required" $MPIEXEC -n 2 "$DPTRAIN" predict "$dir/m.h5" "$dir/sp.h5"
expect_error "eval on a dataset of another shape" "the model expects 2 features, task multiclass" \
  $MPIEXEC -n 2 "$DPTRAIN" eval "$dir/m.h5" "$dir/sine.h5"
expect_error "eval of a missing model" "nope.h5: cannot open" $MPIEXEC -n 2 "$DPTRAIN" eval "$dir/nope.h5" "$dir/sp.h5"
exit $fail

#!/bin/bash
# cli_bench.sh — `dptrain bench` (engine part): runs a tiny model and prints the step, the
# same BLAS calls alone and their ratio; `bench --parallel` at 2 ranks prints every figure;
# bad arguments give a one-line error and exit 1.
# (Figures are not asserted: performance is reported by the bench, not timed in tests.)
set -u
DPTRAIN=${DPTRAIN:-build/dptrain}
fail() { echo "FAIL: $*"; exit 1; }

out=$(OPENBLAS_NUM_THREADS=1 "$DPTRAIN" bench --model 6-8-3 --act tanh --batch 5 --steps 2 --rounds 2 --threads 1 2>&1) \
  || fail "bench: $out"
grep -q "bench: model 6-8-3, activation tanh, softmax+ce, batch 5, f32, 1 BLAS thread, 83 parameters" <<<"$out" \
  || fail "header: $out"
# 6-8-3 at batch 5: forward 2·5·(6·8 + 8·3), dW 2·5·(6·8 + 8·3), dX of layer 1 only 2·5·8·3 = 1680 flops
grep -q "flops per step (5 sgemm calls, no input gradient): 1680" <<<"$out" || fail "flops: $out"
grep -q "ratio step rate / sgemm rate" <<<"$out" || fail "ratio: $out"
out=$("$DPTRAIN" bench --model 4-1 --act relu --batch 3 --dtype f64 --steps 1 --rounds 1 2>&1) || fail "f64: $out"
grep -q "l2, batch 3, f64" <<<"$out" || fail "f64 header: $out"

bad() { # expected text, args
  local want=$1; shift
  out=$("$DPTRAIN" bench "$@" 2>&1) && fail "accepted: $*: $out"
  grep -q "error: .*$want" <<<"$out" || fail "$*: message lacks '$want': $out"
  [ "$(grep -c error <<<"$out")" = 1 ] || fail "$*: expected one line: $out"
}
bad "--model" --model 784-0-10
bad "--model" --model 784
bad "model.activation" --model 4-4-1 --act swish
bad "train.batch" --model 4-4-1 --batch 0
bad "--steps" --model 4-4-1 --steps 0
bad "train.dtype" --model 4-4-1 --dtype f16

# bench --parallel at 2 ranks, a tiny model: every figure of README "Data parallelism" printed
MPIEXEC=${MPIEXEC:-mpiexec --oversubscribe}
out=$($MPIEXEC -n 2 "$DPTRAIN" bench --parallel --inputs 6 --layers 8 --outputs 3 --batch 5 --micro 2 --steps 2 \
  --rounds 1 2>&1) || fail "bench --parallel: $out"
grep -q "P = 2 ranks, 1 BLAS thread(s) per rank, 83 parameters" <<<"$out" || fail "parallel header: $out"
for key in weak_scaling_efficiency compute_ceiling efficiency_vs_ceiling allreduce_hidden_share overlap_gain \
  exact_over_fast shm_reduce_saving; do
  grep -q "^$key [0-9.-]" <<<"$out" || fail "bench --parallel: no $key: $out"
done
[ "$(grep -c '^weak_scaling_efficiency' <<<"$out")" = 1 ] || fail "bench --parallel: rank 0 alone prints: $out"
out=$($MPIEXEC -n 2 "$DPTRAIN" bench --parallel --micro 0 2>&1) && fail "--micro 0 accepted: $out"
[ "$(grep -c 'error: .*--micro: expected an integer' <<<"$out")" = 1 ] || fail "--micro 0: one error line: $out"
out=$($MPIEXEC -n 2 "$DPTRAIN" bench --parallel --steps 2 --colour red 2>&1) && fail "unknown flag accepted: $out"
grep -q "error: .*unknown argument '--colour'" <<<"$out" || fail "unknown flag message: $out"
echo "cli_bench: ok"

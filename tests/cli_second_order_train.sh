#!/usr/bin/env bash
# cli_second_order_train.sh — `dptrain train` with a second-order optimizer on 2 ranks: the
# per-iteration log and the summary line are printed once (rank 0), the loss at least halves
# (a 2-8-3 tanh net on three spirals starts at 0.99; 30 L-BFGS iterations reach 0.24 — a
# broken gradient or reduction would not halve it), and a refused setting exits non-zero
# with a one-line error naming the key, as does a history too large for the node.
# dpt-test: timeout=120
set -euo pipefail
BIN=${DPT_BINARY_DIR:?}
read -r -a MPI <<< "${MPIEXEC:-mpiexec --oversubscribe}"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$BIN/dpt-generate" spiral "$OUT/s.h5" --rows 300 --val 0 > /dev/null
printf '[data]\ntrain = %s\n[model]\nlayers = 8\nactivation = tanh\n[train]\ndtype = f64\n[optimizer]\ntype = lbfgs\nmax_iters = 30\n' \
  "$OUT/s.h5" > "$OUT/a.ini"
"${MPI[@]}" -n 2 "$BIN/dptrain" train "$OUT/a.ini" < /dev/null > "$OUT/log" 2>&1 || { cat "$OUT/log"; echo "FAIL: train"; exit 1; }
[ "$(grep -c '^iter 0 ' "$OUT/log")" = 1 ] || { cat "$OUT/log"; echo "FAIL: iteration log not printed once"; exit 1; }
[ "$(grep -c '^lbfgs: ' "$OUT/log")" = 1 ] || { cat "$OUT/log"; echo "FAIL: summary not printed once"; exit 1; }
first=$(awk '/^iter 0 / {print $4}' "$OUT/log")
last=$(awk '/^lbfgs: / {for (i = 1; i < NF; ++i) if ($i == "loss") print $(i + 1)}' "$OUT/log")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a != "" && b != "" && b < 0.5 * a) }' ||
  { echo "FAIL: loss $first -> $last"; exit 1; }
echo "ok: lbfgs on 2 ranks, loss $first -> $last"
set +e
"${MPI[@]}" -n 2 "$BIN/dptrain" train "$OUT/a.ini" --optimizer.type=newton --optimizer.dense_limit=10 < /dev/null > "$OUT/err" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || { echo "FAIL: dense_limit refusal exited 0"; exit 1; }
[ "$(grep -c 'optimizer.dense_limit = 10' "$OUT/err")" = 1 ] || { cat "$OUT/err"; echo "FAIL: no single error naming optimizer.dense_limit"; exit 1; }
echo "ok: refusal names optimizer.dense_limit (exit $rc)"
# an L-BFGS history that cannot fit this node (2 ranks x 0.75 of its memory in S and Y,
# the width chosen from MemTotal for history 500) is refused naming model.layers and the
# solver's share before the history is touched; under strict overcommit the allocation
# itself fails first
mem_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
w=$(awk -v m="$mem_kb" 'BEGIN {printf "%d", sqrt(0.75 * m * 1024 / (16 * 500))}')
want="model.layers: training needs"
[ "$(cat /proc/sys/vm/overcommit_memory 2>/dev/null)" = 2 ] && want="cannot allocate"
set +e
timeout 60 "${MPI[@]}" -n 2 "$BIN/dptrain" train "$OUT/a.ini" --model.layers="$w,$w" --optimizer.history=500 \
  < /dev/null > "$OUT/err" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$OUT/err"; echo "FAIL: oversized history: exit $rc"; exit 1; }
[ "$(grep -c '^dptrain: error:' "$OUT/err")" = 1 ] && grep -q "$want" "$OUT/err" ||
  { cat "$OUT/err"; echo "FAIL: oversized history: no single error naming '$want'"; exit 1; }
[ "$want" != "model.layers: training needs" ] || grep -q "on this node (2 rank(s) .*second-order solver" "$OUT/err" ||
  { cat "$OUT/err"; echo "FAIL: oversized history: the message does not give the solver's share"; exit 1; }
echo "ok: an L-BFGS history too large for the node is refused (exit $rc)"

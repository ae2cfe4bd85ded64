#!/usr/bin/env bash
# cli_adaptive_demo.sh — launch/adaptive-demo: on the badly conditioned quadratic (minimum
# loss 0) Adagrad and Adam end far below SGD (SGD's flat direction shrinks by (1 − 0.019)
# per step: loss ~2e-3 after 200 steps; Adagrad ~3e-7, Adam ~6e-9, so a factor 100 is a
# safe margin), and the three PNGs exist and are PNG files over 10 kB.
# dpt-test: timeout=120
set -euo pipefail
# PNG: the 8-byte signature, and `file` agrees when it is installed
is_png() {
  [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
  if command -v file >/dev/null; then file "$1" | grep -q "PNG image data"; fi
}
BIN=${DPT_BINARY_DIR:?}
SRC=${DPT_SOURCE_DIR:?}
[ -x "$BIN/dpt-optim-demo" ] || { echo "FAIL: $BIN/dpt-optim-demo not built"; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
DPT_BUILD_DIR=$BIN "$SRC/launch/adaptive-demo" "$OUT"
loss() { awk -v m="$1" '$1 == m { print $4 }' "$OUT/final.txt"; }
sgd=$(loss sgd)
for m in adagrad adam; do
  l=$(loss "$m")
  awk -v a="$l" -v s="$sgd" 'BEGIN { exit !(a * 100 < s) }' || { echo "FAIL: $m loss $l not 100x below SGD's $sgd"; exit 1; }
  echo "ok: $m loss $l < SGD $sgd / 100"
done
for p in adaptive_paths adaptive_loss adaptive_compare; do
  f="$OUT/$p.png"
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 10000 ] && is_png "$f" ||
    { echo "FAIL: $f missing, small or not PNG"; exit 1; }
  echo "ok: $p.png"
done

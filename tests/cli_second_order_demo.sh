#!/usr/bin/env bash
# cli_second_order_demo.sh — launch/second-order-demo: on Rosenbrock CG, BFGS, L-BFGS and
# Newton end within 1e-6 of (1, 1) (they stop at |g| <= 1e-8, the Hessian's smallest
# eigenvalue there is ~0.4); on the seed regression all five methods end at the same
# least-squares fit (to 1e-5: GD stops at |g| <= 1e-10 on a problem with condition ~40);
# on x^2 - y^2 Newton ends on the saddle (0, 0) and saddle-free Newton at y = 0.3 * 2^3 = 2.4;
# the three PNGs exist, are PNG files and are not trivial (> 10 kB).
# dpt-test: timeout=120
set -euo pipefail
BIN=${DPT_BINARY_DIR:?}
SRC=${DPT_SOURCE_DIR:?}
for t in dpt-so-demo dpt-generate; do
  [ -x "$BIN/$t" ] || { echo "FAIL: $BIN/$t not built"; exit 1; }
done
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
DPT_BUILD_DIR=$BIN "$SRC/launch/second-order-demo" "$OUT"
near() { # label x y want_x want_y tol
  awk -v x="$2" -v y="$3" -v a="$4" -v b="$5" -v t="$6" 'BEGIN { d0 = x - a; d1 = y - b;
    if (d0 < 0) d0 = -d0; if (d1 < 0) d1 = -d1; exit !(x != "" && d0 <= t && d1 <= t) }' ||
    { echo "FAIL: $1 ended at ($2, $3), not within $6 of ($4, $5)"; exit 1; }
  echo "ok: $1 ($2, $3)"
}
get() { awk -v p="$1" -v m="$2" '$1 == p && $2 == m {print $5, $6}' "$OUT/final.txt"; }
for m in cg bfgs lbfgs newton; do
  read -r x y <<< "$(get rosen $m)"
  near "rosenbrock $m" "$x" "$y" 1 1 1e-6
done
read -r bx by <<< "$(get seed newton)"
for m in gd cg bfgs lbfgs; do
  read -r x y <<< "$(get seed $m)"
  near "seed $m" "$x" "$y" "$bx" "$by" 1e-5
done
read -r x y <<< "$(get saddle newton)"
near "saddle newton" "$x" "$y" 0 0 1e-12
read -r x y <<< "$(get saddle sfn)"
near "saddle sfn" "$x" "$y" 0 2.4 1e-12
for p in so_rosenbrock so_seed so_saddle; do
  f="$OUT/$p.png"
  [ -f "$f" ] || { echo "FAIL: $f missing"; exit 1; }
  [ "$(od -An -tx1 -N8 "$f" | tr -d ' \n')" = 89504e470d0a1a0a ] || { echo "FAIL: $f is not a PNG"; exit 1; }
  [ "$(stat -c %s "$f")" -gt 10000 ] || { echo "FAIL: $f is too small to hold a plot"; exit 1; }
  echo "ok: $f"
done

#!/usr/bin/env bash
# cli_metrics.sh — a training run's per-epoch metrics CSV (one row per epoch, the documented
# columns), its merged trace (valid trace-event JSON, one track per rank, steps with nested
# phases), and no progress bar when stdout is not a terminal.
# dpt-test: timeout=180
. "$DPT_SOURCE_DIR/tests/common.sh"
"$bin/dpt-generate" spiral "$dir/s.h5" --rows 300 --val 90 || exit 1
cat > "$dir/s.ini" <<INI
[data]
train = $dir/s.h5
[model]
layers = 16
[train]
epochs = 4
batch = 32
[optimizer]
type = sgd
lr = 0.1
INI
timeout 120 $MPIEXEC -n 2 "$DPTRAIN" train "$dir/s.ini" --run.metrics="$dir/m.csv" --run.trace="$dir/t.json" > "$dir/out.txt" 2>&1
check "training with metrics and trace exits 0" "[ $? = 0 ]"
check "metrics CSV has a header and one row per epoch" "[ \$(wc -l < $dir/m.csv) = 5 ]"
cols="epoch,steps,train_loss,val_loss,val_acc,lr,samples_per_s,skipped_steps,data_s_max,data_s_mean,forward_s_max,forward_s_mean,backward_s_max,backward_s_mean,comm_wait_s_max,comm_wait_s_mean,optimizer_s_max,optimizer_s_mean,sync_check_s_max,sync_check_s_mean"
check "metrics CSV columns are the documented ones" "[ \"\$(head -1 $dir/m.csv)\" = '$cols' ]"
check "epochs numbered 1..4" "[ \"\$(cut -d, -f1 $dir/m.csv | tail -n +2 | tr '\n' ' ')\" = '1 2 3 4 ' ]"
check "no progress bar (no carriage return) when stdout is a pipe" "! grep -q \$'\r' $dir/out.txt"
py=$(command -v python3 || true)
if [ -n "$py" ]; then
  check "trace is valid JSON with one track per rank and nested phases" "$py - '$dir/t.json' <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
ev = t['traceEvents']
names = {e['pid'] for e in ev if e.get('name') == 'process_name'}
assert names == {0, 1}, names
for pid in (0, 1):
    steps = [e for e in ev if e.get('ph') == 'X' and e['pid'] == pid and e['name'] == 'step']
    assert len(steps) == 4 * 10, len(steps)  # 4 epochs x ceil(300 / 32) steps
    phases = [e for e in ev if e.get('ph') == 'X' and e['pid'] == pid and e['tid'] == 0 and e['name'] != 'step']
    # ts and dur are printed to 0.001 us (each off by up to 0.0005), so an end ts + dur is off by
    # up to 0.001 on each side: a phase that ends when its step ends may look 0.002 us later
    tol = 2.5e-3
    for p in phases:
        assert any(s['ts'] - tol <= p['ts'] and p['ts'] + p['dur'] <= s['ts'] + s['dur'] + tol for s in steps), p
PY"
fi
bash "$DPT_SOURCE_DIR/launch/plot-metrics" "$dir/m.csv" "$dir/plot" > /dev/null 2>&1
check "launch/plot-metrics draws three PNGs" \
  "for f in loss metric phases; do head -c 8 $dir/plot-\$f.png | od -An -tx1 | grep -q '89 50 4e 47' && [ \$(stat -c %s $dir/plot-\$f.png) -gt 5000 ] || exit 1; done"
exit $fail

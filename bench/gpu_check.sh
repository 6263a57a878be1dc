#!/usr/bin/env bash
# The one prepared device check (issue 13, item 6). Run from the repository root of a copy on
# the device machine; everything it writes goes to $OUT (default /tmp/gpu-check), ending with
# $OUT/gpu.md, the page to commit as docs/results/gpu.md.
#
#   bash bench/gpu_check.sh                    # on a GPU machine: about 6-8 minutes on one modern GPU
#   QUICK=1 DEVICE=cpu bash bench/gpu_check.sh # the CPU smoke path: tiny sizes, same steps (tests this script)
#
# Steps: install this package onto the machine's own torch without dependencies (from
# $WHEELS with --no-index when given: the device has no internet), the speed-switch tests,
# bench/throughput.py and bench/speed_switches.py on the device, and DeepMimic Table 1 on
# full MNIST with 3 seeds ($MNIST: the idx folder, carried along; default data/mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/gpu-check}
MNIST=${MNIST:-data/mnist}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
log() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$OUT/steps.log"; }

log "install (no dependencies; the machine's torch is kept)"
if [ -n "${WHEELS:-}" ]; then
  $PY -m pip install --quiet --no-index --find-links "$WHEELS" pydantic pyyaml safetensors tqdm matplotlib pytest >>"$OUT/install.log" 2>&1 || true
fi
$PY -m pip install --quiet --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1
$PY - >"$OUT/device.txt" <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"device {torch.cuda.get_device_name(0)}, bf16 native {torch.cuda.is_bf16_supported(including_emulation=False)}")
EOF
cat "$OUT/device.txt" | tee -a "$OUT/steps.log"

if [ "$QUICK" = 1 ]; then
  DATA=(--dataset mnist-5k); ROUNDS=1; EPOCHS=2; SEEDS=1  # speed_switches takes the median of epochs 2..
  TABLE=(--set data.name=mnist-5k --set data.root=null --set mentor.train.epochs=1 --set students.0.train.epochs=1 --set students.1.train.epochs=1)
else
  DATA=(--dataset mnist --root "$MNIST"); ROUNDS=5; EPOCHS=3; SEEDS=3
  TABLE=(--set "data.root=$MNIST")
fi

log "tests: speed switches and the trainer"
$PY -m pytest -q -p no:cacheprovider tests/engine/test_speed_switches.py tests/engine/test_trainer.py >"$OUT/tests.txt" 2>&1 || true
tail -1 "$OUT/tests.txt" | tee -a "$OUT/steps.log"

log "throughput: engine vs bare loop on $DEVICE"
$PY bench/throughput.py "${DATA[@]}" --model mnist-mentor --device "$DEVICE" --rounds "$ROUNDS" >"$OUT/throughput.txt" 2>&1 || true
tail -3 "$OUT/throughput.txt" | tee -a "$OUT/steps.log"

log "speed switches (bf16, channels_last, compile) on $DEVICE"
$PY bench/speed_switches.py "${DATA[@]}" --model mnist-mentor --device "$DEVICE" --epochs "$EPOCHS" >"$OUT/speed_switches.txt" 2>&1 || true
tail -12 "$OUT/speed_switches.txt" | tee -a "$OUT/steps.log"

for seed in $(seq 0 $((SEEDS - 1))); do
  log "Table 1 on MNIST, seed $seed"
  $PY -m deepmimic run configs/mnist-table1.yaml "${TABLE[@]}" --set "train.device=$DEVICE" --set "train.seed=$seed" \
      --set "split.seed=$seed" --out "$OUT/table1-seed$seed" --no-progress >"$OUT/table1-seed$seed.txt" 2>&1 || true
  grep -E "^\| (Mentor|Student)" "$OUT/table1-seed$seed.txt" | tee -a "$OUT/steps.log" || true
done

$PY - "$OUT" <<'EOF'
import datetime, json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
lines = [f"# Device check ({datetime.date.today()})", "", "Produced by `bench/gpu_check.sh`; raw outputs beside it in the run's folder.", "",
         "## Device", "", "```", (out / "device.txt").read_text().strip(), "```", ""]
for name in ("tests", "throughput", "speed_switches"):
    text = (out / f"{name}.txt").read_text().strip().splitlines() if (out / f"{name}.txt").exists() else []
    lines += [f"## {name}", "", "```", *text[-14:], "```", ""]
rows = {}
for path in sorted(out.glob("table1-seed*/results.json")):
    results = json.loads(path.read_text())
    for model in [results["mentor"], *results["students"]]:
        rows.setdefault(model["name"], []).append(100 * model["accuracy"])
if rows:
    lines += ["## Table 1 on MNIST", "", "| model | accuracy % (mean ± std over seeds) | seeds |", "|---|---|---|"]
    for name, values in rows.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {name} | {statistics.mean(values):.2f} ± {spread:.2f} | {len(values)} |")
(out / "gpu.md").write_text("\n".join(lines) + "\n")
print(f"wrote {out / 'gpu.md'}")
EOF
log "done"

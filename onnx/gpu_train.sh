#!/usr/bin/env bash
# The GPU training sweep behind the committed generator (one call on a lent H100/H200; see
# onnx/README.md). Four recipes train side by side on one GPU for $MINUTES each, then
# gpu_bench.py measures the generator's GPU throughput. Results go to $OUT (the device tool's
# return folder) or ./onnx/runs/gpu-out:
#   $OUT/<recipe>.pt    E + G + config (export.py --run takes a folder holding it as model.pt)
#   $OUT/logs.tgz       every run's log.csv, train_meta.json, stdout, and the bench JSON
# Needs onnx/assets/{vgg19_q.bin,content_train.npz} and onnx/styles/ (made here by check.sh and
# one train.py run; carried to the GPU box, which reaches no registry).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-onnx/runs/gpu-out}"
MINUTES="${MINUTES:-7.5}"
RUNS=/tmp/stylecast-gpu-runs
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$RUNS/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$RUNS/gpu.txt"

common=(--device "${DEVICE:-cuda}" --minutes "$MINUTES" --size "${SIZE:-256}" --batch "${BATCH:-16}" --workers 3 --log-every 20
        --lr-final 0.1 --ckpt-every 1)
declare -A recipe=(
  [a]="--w-style 4 --w-content 4 --layer-weights 1 1 0.5 0.25"
  [b]="--w-style 8 --w-content 2 --layer-weights 1 1 1 0.5 --amp"
  [c]="--w-style 12 --w-content 1.5 --layer-weights 1 1 1 1 --amp"
  [d]="--w-style 8 --w-content 2 --layer-weights 1 1 1 0.5 --n-res 5 --amp"
  # second call: fine-tune a and b on 12 more references per influencer (make_styles.py --extra 12)
  [e]="--w-style 4 --w-content 4 --layer-weights 1 1 0.5 0.25 --extra-refs --init onnx/runs/gpu_a/model.pt"
  [f]="--w-style 8 --w-content 2 --layer-weights 1 1 1 0.5 --amp --extra-refs --init onnx/runs/gpu_b/model.pt"
)
RECIPES="${RECIPES:-a b c d}"
collect() {
  for r in $RECIPES; do
    [ -f "$RUNS/$r/model.pt" ] && cp "$RUNS/$r/model.pt" "$OUT/$r.pt.tmp" && mv "$OUT/$r.pt.tmp" "$OUT/$r.pt"
  done
  tar -czf "$OUT/logs.tgz.tmp" -C "$RUNS" --exclude='*.pt' --exclude='*.tmp' . && mv "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"
}
pids=()
for r in $RECIPES; do
  # shellcheck disable=SC2086
  "${PYTHON:-python3}" onnx/train.py "${common[@]}" ${recipe[$r]} --out "$RUNS/$r" > "$RUNS/$r.stdout" 2>&1 &
  pids+=($!)
done
# copy what exists every minute, so a call cut short still returns the latest weights
( while sleep 60; do collect; done ) & copier=$!
for p in "${pids[@]}"; do wait "$p"; echo "train pid $p exit $?"; done
kill "$copier" 2>/dev/null
for r in $RECIPES; do echo "== $r"; tail -c 600 "$RUNS/$r.stdout"; echo; done
[ -n "${SKIP_BENCH:-}" ] || timeout 60 "${PYTHON:-python3}" onnx/gpu_bench.py > "$RUNS/gpu_bench.jsonl" 2>&1; echo "bench exit $?"
cat "$RUNS/gpu_bench.jsonl"
collect
ls -la "$OUT"

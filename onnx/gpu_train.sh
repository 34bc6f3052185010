#!/usr/bin/env bash
# The GPU training behind the committed generator (see MODEL_CARD.md), for a lent H100/H200:
#   MINUTES=7.25 MINUTES2=3.4 bash onnx/gpu_train.sh
# Stage 1 trains recipes a-d side by side on one GPU for $MINUTES each; stage 2 fine-tunes a
# and b (as e and f) for $MINUTES2 on the extra references (make_styles.py --extra 12, made
# beforehand: the GPU box reaches no registry). Then gpu_bench.py measures the generator's GPU
# throughput. RECIPES / RECIPES2 pick the recipes of each stage (RECIPES2="" skips stage 2);
# INIT_DIR is where stage 2 finds a/model.pt and b/model.pt (default: stage 1's output).
# Results go to $OUT (the device tool's return folder) or onnx/runs/gpu-out:
#   $OUT/<recipe>.pt    E + G + config (export.py --run takes a folder holding it as model.pt)
#   $OUT/logs.tgz       every run's log.csv, train_meta.json, stdout, and the bench JSON
# Carry onnx/assets/{vgg19_q.bin,content_train.npz} and onnx/styles (check.sh, one train.py run
# and make_styles.py --extra 12 make them here).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-onnx/runs/gpu-out}"
RUNS=/tmp/stylecast-gpu-runs
INIT_DIR="${INIT_DIR:-$RUNS}"
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$RUNS/gpu.txt"
"${PYTHON:-python3}" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$RUNS/gpu.txt"

common=(--device "${DEVICE:-cuda}" --size "${SIZE:-256}" --batch "${BATCH:-16}" --workers 3 --log-every 20
        --lr-final 0.1 --ckpt-every 1)
declare -A recipe=(
  [a]="--w-style 4 --w-content 4 --layer-weights 1 1 0.5 0.25"
  [b]="--w-style 8 --w-content 2 --layer-weights 1 1 1 0.5 --amp"
  [c]="--w-style 12 --w-content 1.5 --layer-weights 1 1 1 1 --amp"
  [d]="--w-style 8 --w-content 2 --layer-weights 1 1 1 0.5 --n-res 5 --amp"
  [e]="--w-style 4 --w-content 4 --layer-weights 1 1 0.5 0.25 --extra-refs --init $INIT_DIR/a/model.pt"
  [f]="--w-style 8 --w-content 2 --layer-weights 1 1 1 0.5 --amp --extra-refs --init $INIT_DIR/b/model.pt"
)
done_recipes=""
collect() {
  for r in $done_recipes; do
    [ -f "$RUNS/$r/model.pt" ] && cp "$RUNS/$r/model.pt" "$OUT/$r.pt.tmp" && mv "$OUT/$r.pt.tmp" "$OUT/$r.pt"
  done
  tar -czf "$OUT/logs.tgz.tmp" -C "$RUNS" --exclude='*.pt' --exclude='*.tmp' . && mv "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"
}
stage() {  # stage MINUTES RECIPE...
  local minutes=$1; shift
  local pids=()
  for r in "$@"; do
    done_recipes="$done_recipes $r"
    # shellcheck disable=SC2086
    "${PYTHON:-python3}" onnx/train.py "${common[@]}" --minutes "$minutes" ${recipe[$r]} --out "$RUNS/$r" \
      > "$RUNS/$r.stdout" 2>&1 &
    pids+=($!)
  done
  # copy what exists every minute, so a call cut short still returns the latest weights
  ( while sleep 60; do collect; done ) & local copier=$!
  for p in "${pids[@]}"; do wait "$p"; echo "train pid $p exit $?"; done
  kill "$copier" 2>/dev/null
  for r in "$@"; do echo "== $r"; tail -c 600 "$RUNS/$r.stdout"; echo; done
}
# shellcheck disable=SC2086
stage "${MINUTES:-7.25}" ${RECIPES:-a b c d}
if [ -n "${RECIPES2-e f}" ]; then
  # shellcheck disable=SC2086
  stage "${MINUTES2:-3.4}" ${RECIPES2-e f}
fi
[ -n "${SKIP_BENCH:-}" ] || timeout 60 "${PYTHON:-python3}" onnx/gpu_bench.py > "$RUNS/gpu_bench.jsonl" 2>&1
echo "bench exit $?"
[ -f "$RUNS/gpu_bench.jsonl" ] && cat "$RUNS/gpu_bench.jsonl"
collect
ls -la "$OUT"

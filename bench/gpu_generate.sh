#!/usr/bin/env bash
# GPU figures for BENCHMARKS.md ("Generation on a GPU"), run on the lent GPU box: CUDA 13 and
# cuDNN 9 come from its PyTorch venv's nvidia wheels; it has no Postgres and reaches no
# registry. What it needs travels in .gpu/ (made here by bench/gpu_payload.sh):
#   cuda.xz.part*  libonnxruntime_providers_cuda.so from the onnxruntime-gpu 1.31.1 wheel, xz, split
#   rest.tar.xz    generate-bench built with `--features cuda` (stripped) and the wheel's
#                  onnxruntime/ package without the CUDA provider (libonnxruntime.so, pybind)
# plus onnx/vgg19_features.onnx and onnx/styles/content_full/ (built by onnx/check.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work=/tmp/stylecast-gpu
mkdir -p "$work/stage"
cat .gpu/cuda.xz.part* > "$work/cuda.xz"
python3 - "$work" <<'EOF'
import lzma, shutil, sys, tarfile
work = sys.argv[1]
tarfile.open(".gpu/rest.tar.xz").extractall(f"{work}/stage")
with lzma.open(f"{work}/cuda.xz") as src, open(f"{work}/stage/ort/onnxruntime/capi/libonnxruntime_providers_cuda.so", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 24)
EOF
capi="$work/stage/ort/onnxruntime/capi"
nvidia="$(python3 -c 'import nvidia; print(nvidia.__path__[0])')"
export LD_LIBRARY_PATH="$nvidia/cu13/lib:$nvidia/cudnn/lib:$capi:${LD_LIBRARY_PATH:-}"
export ORT_DYLIB_PATH="$capi/libonnxruntime.so.1.31.1"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
requests="${REQUESTS:-96}"
echo "## Two aspect ratios in turn (the photo and the photo turned 90°), max batch 4: square frames off, then on (the default)"
for frames in never gpu; do
  "$work/stage/generate-bench" --in-process --requests "$requests" --concurrency 1,8,32 --mixed-shapes --square-frames "$frames"
done
[[ "${ONLY_MIXED:-0}" == 1 ]] && exit 0
echo "## Stylecast render path in process, CUDA (sessions 2 x 1 thread)"
# Batches padded to max batch on CUDA (generate.pad_batches = "gpu", the default). The
# memory-pattern sweep that found the cause is bench/results/gpu_generate_h200_memory_pattern.txt.
for batch in 1 4 8; do
  "$work/stage/generate-bench" --in-process --requests "$requests" --concurrency 1,8,16,32 --max-batch "$batch"
done
echo "## Python reference, onnxruntime-gpu + Pillow"
PYTHONPATH="$work/stage/ort" python3 bench/reference_generate.py --provider cuda --requests "$requests" --concurrency 1,8,16,32

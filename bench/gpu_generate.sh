#!/usr/bin/env bash
# GPU figures for BENCHMARKS.md ("Generation on a GPU"), run on the lent GPU box: CUDA 13 and
# cuDNN 9 come from its PyTorch venv's nvidia wheels; it has no Postgres and reaches no
# registry. What it needs travels in .gpu/ (made here by bench/gpu_payload.sh):
#   cuda.xz.part*  libonnxruntime_providers_cuda.so from the onnxruntime-gpu 1.31.1 wheel, xz, split
#   rest.tar.xz    generate-bench built with `--features cuda` (stripped) and the wheel's
#                  onnxruntime/ package without the CUDA provider (libonnxruntime.so, pybind)
#   pg.tar.xz      (MODE=http) this machine's PostgreSQL 15 server and the libraries it links,
#                  made by bench/gpu_payload.sh, so the service runs over HTTP with its database
# plus onnx/vgg19_features.onnx and onnx/styles/ (built by onnx/check.sh).
# MODE=http: the real service over HTTP with Postgres, next to the render path in process and
# the Python reference, in one run. Otherwise: the in-process sweeps below.
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

# Postgres refuses to run as root, and the box runs everything as root: the server runs as
# nobody, from the carried binaries unpacked under / (their compiled-in paths).
start_postgres() {
  local data=/tmp/stylecast-pgdata bin=/usr/lib/postgresql/15/bin
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env LD_LIBRARY_PATH=/opt/pglibs "$@"; }
  # A rerun on the same warm machine finds the server still up.
  [[ -x "$bin/pg_ctl" ]] && as_nobody "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 && return
  python3 -c 'import tarfile; tarfile.open(".gpu/pg.tar.xz").extractall("/")'
  rm -rf "$data" && mkdir -p "$data" && chown 65534:65534 "$data"
  as_nobody "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 --no-locale >/dev/null
  as_nobody "$bin/pg_ctl" -D "$data" -l /tmp/stylecast-pg.log -w start \
    -o "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=/tmp -c jit=off -c shared_buffers=1GB -c max_connections=200"
}

if [[ "${MODE:-}" == http ]]; then
  start_postgres
  echo "## Stylecast over HTTP with Postgres, CUDA (the service's default settings)"
  "$work/stage/generate-bench" --requests "$requests" --concurrency 1,8,16,32
  echo "## The render path in process, same settings"
  "$work/stage/generate-bench" --in-process --requests "$requests" --concurrency 1,8,16,32
  echo "## Python reference, onnxruntime-gpu + Pillow"
  PYTHONPATH="$work/stage/ort" python3 bench/reference_generate.py --provider cuda --requests "$requests" --concurrency 1,8,16,32
  exit 0
fi
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

#!/usr/bin/env bash
# Makes .gpu/ for bench/gpu_generate.sh (run here, on the dev machine): the CUDA execution
# provider of the onnxruntime-gpu wheel, xz-compressed and split into pieces that fit the GPU
# box's 64 MiB per call with the working tree, and the rest (the wheel's libonnxruntime.so and
# Python package, generate-bench built with --features cuda) as one archive.
# Then, with the device tool: one `run` per .gpu/cuda.xz.part* (carry just that piece),
# and a last one carrying the final piece, .gpu/rest.tar.xz, onnx/vgg19_features.onnx and
# onnx/styles/content_full that runs `bash bench/gpu_generate.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
  --platform manylinux_2_28_x86_64 -d "$work/wheel" onnxruntime-gpu==1.31.1 >&2
unzip -q "$work"/wheel/*.whl 'onnxruntime/*' -d "$work/stage/ort"
cargo build --release --features cuda --bin generate-bench >&2
strip -o "$work/stage/generate-bench" target/release/generate-bench
rm -rf .gpu && mkdir -p .gpu
capi="$work/stage/ort/onnxruntime/capi"
xz -6 -T2 -c "$capi/libonnxruntime_providers_cuda.so" | split -b 58000000 - .gpu/cuda.xz.part
rm "$capi/libonnxruntime_providers_cuda.so" "$capi/libonnxruntime_providers_tensorrt.so"
tar -C "$work/stage" -cf - . | xz -6 -T2 > .gpu/rest.tar.xz
ls -l .gpu

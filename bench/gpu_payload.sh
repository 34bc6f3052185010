#!/usr/bin/env bash
# Makes .gpu/ for bench/gpu_generate.sh (run here, on the dev machine): the CUDA execution
# provider of the onnxruntime-gpu wheel, xz-compressed and split into pieces that fit the GPU
# box's 64 MiB per call with the working tree, and the rest (the wheel's libonnxruntime.so and
# Python package, generate-bench built with --features cuda) as one archive.
# Then, with the device tool: one `run` per .gpu/cuda.xz.part* (carry just that piece),
# and a last one carrying the final piece, .gpu/rest.tar.xz, onnx/vgg19_features.onnx and
# onnx/styles that runs `bash bench/gpu_generate.sh` (with MODE=http, .gpu/pg.tar.xz too, on
# a call of its own if the last one would pass 64 MiB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
  --platform manylinux_2_28_x86_64 -d "$work/wheel" onnxruntime-gpu==1.31.1 >&2
mkdir -p "$work/stage/ort"
unzip -q "$work"/wheel/*.whl 'onnxruntime/*' -d "$work/stage/ort"
cargo build --release --features cuda --bin generate-bench >&2
strip -o "$work/stage/generate-bench" target/release/generate-bench
rm -rf .gpu && mkdir -p .gpu
capi="$work/stage/ort/onnxruntime/capi"
xz -6 -T2 -c "$capi/libonnxruntime_providers_cuda.so" | split -b 58000000 - .gpu/cuda.xz.part
rm "$capi/libonnxruntime_providers_cuda.so" "$capi/libonnxruntime_providers_tensorrt.so"
tar -C "$work/stage" -cf - . | xz -6 -T2 > .gpu/rest.tar.xz
# This machine's Postgres server for MODE=http (the GPU box has none), unpacked there under /:
# initdb, pg_ctl, postgres, their modules and share files, the libraries they link (glibc
# excepted) in /opt/pglibs, and the UTC zone file. JIT stays off there, so no LLVM.
pg="$work/pg"
bin=/usr/lib/postgresql/15/bin
mkdir -p "$pg$bin" "$pg/usr/share/postgresql" "$pg/opt/pglibs" "$pg/usr/share/zoneinfo/Etc"
cp -a "$bin"/{postgres,initdb,pg_ctl} "$pg$bin/"
cp -a /usr/lib/postgresql/15/lib "$pg/usr/lib/postgresql/15/"
rm -rf "$pg"/usr/lib/postgresql/15/lib/{bitcode,llvmjit.so,llvmjit_types.bc}
cp -a /usr/share/postgresql/15 "$pg/usr/share/postgresql/"
cp -a /usr/share/zoneinfo/{UTC,GMT} "$pg/usr/share/zoneinfo/"
cp -a /usr/share/zoneinfo/Etc/UTC "$pg/usr/share/zoneinfo/Etc/"
for b in postgres initdb pg_ctl; do ldd "$bin/$b"; done | awk '/=>/ {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libresolv|libpthread|libdl|librt)\.so|ld-linux' | xargs -I{} cp -L {} "$pg/opt/pglibs/"
# Named, not ".": unpacking "." under / would give / the temporary folder's mode (0700).
tar -C "$pg" -cf - usr opt | xz -6 -T2 > .gpu/pg.tar.xz
ls -l .gpu

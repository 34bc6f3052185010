#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that ort loads at run time (load-dynamic).
# No Debian package ships it and ort's own download host is unreachable here, so the
# library comes out of the PyPI onnxruntime wheel, pinned by sha256 (see shared ORT.md).
# Prints the library path on stdout; idempotent and quiet when already installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="1.31.1"
wheel="onnxruntime-${version}-cp311-cp311-manylinux_2_28_x86_64.whl"
sha256="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
dest="${root}/.ort"
lib="${dest}/libonnxruntime.so.${version}"

if [[ -f "$lib" ]]; then
  echo "$lib"
  exit 0
fi
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp \
  --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$tmp" "onnxruntime==${version}" >&2
echo "${sha256}  ${tmp}/${wheel}" | sha256sum -c --quiet - >&2
python3 - "$tmp/$wheel" "$lib" <<'PY'
import sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
name = "onnxruntime/capi/libonnxruntime.so." + out.rsplit(".so.", 1)[1]
with zipfile.ZipFile(wheel) as z, z.open(name) as src, open(out + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
shutil.move(out + ".tmp", out)
PY
ln -sf "libonnxruntime.so.${version}" "${dest}/libonnxruntime.so"
echo "$lib"

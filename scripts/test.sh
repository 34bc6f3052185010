#!/usr/bin/env bash
# The test suite: installs what the tests need (the ONNX Runtime library; a small Python venv
# that fetches the pinned third-party weights, builds vgg19_features.onnx and the demo style
# photos), starts Postgres and Redis when none answer, then runs the model checks (Python,
# onnxruntime), formatting and lint checks, every Rust test (real Postgres, Redis, models), and
# the reliability checks of the real binary (tests/reliability/run.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/services.sh

prepare

bash onnx/check.sh
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets
# The real binary under crash, Postgres restarts, fuzz and debug logging (tests/reliability/).
bash tests/reliability/run.sh

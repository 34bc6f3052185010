#!/usr/bin/env bash
# The test suite: installs what the tests need (ONNX Runtime library), starts Postgres and
# Redis when none answer, then runs formatting and lint checks and every Rust test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/services.sh

ORT_DYLIB_PATH="$(bash scripts/install-ort.sh)"
export ORT_DYLIB_PATH
ensure_services

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets

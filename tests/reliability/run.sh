#!/usr/bin/env bash
# The reliability checks of CI (tests/reliability/README.md), each against the real
# `stylecast serve` binary: Postgres restarted under load, secrets absent from debug logs,
# durability under SIGKILL, HTTP-level fuzz. Each exits non-zero with the property that
# failed. Sizes can be overridden: CRASH_EVENTS (default 200000), FUZZ_REQUESTS (default
# 2000 in CI; the documented full run is 10000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

cargo build --quiet --bin stylecast
export STYLECAST_BIN="${STYLECAST_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/stylecast}"

python3 tests/reliability/pg_restart.py
python3 tests/reliability/secrets_in_logs.py
python3 tests/reliability/crash.py --events "${CRASH_EVENTS:-200000}"
python3 tests/reliability/http_fuzz.py --requests "${FUZZ_REQUESTS:-2000}"

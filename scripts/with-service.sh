#!/usr/bin/env bash
# Runs a command against the real service: a fresh database loaded by `stylecast demo`
# (demo influencers, users, embeddings), Redis, the ONNX models, and `stylecast serve` on a
# free port. The command sees STYLECAST_URL and STYLECAST_ADMIN_KEY; the database is
# dropped and the server stopped afterwards. Used by the OpenAPI and browser tests.
#
#   scripts/with-service.sh NAME COMMAND...      (NAME labels the log in test-artifacts/)
#
# Expects the services up (scripts/services.sh) and the binary built (BIN, default
# target/debug/stylecast).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
name="$1"
shift
bin="${BIN:-${CARGO_TARGET_DIR:-target}/debug/stylecast}"
[[ -x "$bin" ]] || { echo "error: $bin is not built (cargo build --bin stylecast)" >&2; exit 1; }

database="stylecast_it_${name//[^a-z0-9]/_}_$$"
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}/${database}"
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export STYLECAST__REDIS__KEY_PREFIX="it:${database}:"
export STYLECAST_ADMIN_KEY="it-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
# The fuzzer sends hundreds of requests a second; the limit itself is tested in tests/api.
export STYLECAST__AUTH__RATE_LIMIT_PER_SEC=0
export STYLECAST__LOG__FORMAT=json
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export STYLECAST__SERVER__PORT="$port"
export STYLECAST_URL="http://127.0.0.1:${port}"
mkdir -p test-artifacts
log="test-artifacts/service-${name}.log"

server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  psql -q "${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}/postgres" \
    -c "DROP DATABASE IF EXISTS \"${database}\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$bin" demo
"$bin" serve >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 60); do
  if curl -fsS "${STYLECAST_URL}/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "error: the service exited; see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "${STYLECAST_URL}/readyz" >/dev/null || { echo "error: the service is not ready; see $log" >&2; exit 1; }
"$@"

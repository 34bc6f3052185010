#!/usr/bin/env bash
# One command from a fresh clone to a running service: installs the ONNX Runtime library,
# builds the model assets (onnx/check.sh), starts Postgres and Redis when none answer,
# builds, migrates, loads the demo data (`stylecast demo`: influencers with their reference
# photos and styles, users with engagement, embeddings; idempotent) and serves on :8080,
# where / is the demo page and /docs the API reference.
# Prints an admin key for the API (or uses STYLECAST_ADMIN_KEY when set).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/services.sh

prepare
# The third-party VGG19 features model and the demo style photos are built, not committed.
bash onnx/check.sh >&2
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/stylecast}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
if [[ -z "${STYLECAST_ADMIN_KEY:-}" ]]; then
  STYLECAST_ADMIN_KEY="admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  export STYLECAST_ADMIN_KEY
  echo "admin key for this run: ${STYLECAST_ADMIN_KEY}" >&2
fi
cargo build --release --bin stylecast
"${CARGO_TARGET_DIR:-target}"/release/stylecast demo
echo "demo page: http://127.0.0.1:8080/ (paste the admin key above); API reference: http://127.0.0.1:8080/docs/" >&2
exec "${CARGO_TARGET_DIR:-target}"/release/stylecast serve "$@"

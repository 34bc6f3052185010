#!/usr/bin/env bash
# Recommendation quality and training speed on MovieLens-100k (see bench/eval_recs.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ ! -x bench/.venv/bin/python ]]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
fi
cargo build --release --quiet --bin stylecast
exec bench/.venv/bin/python bench/eval_recs.py "$@"

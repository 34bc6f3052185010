#!/usr/bin/env bash
# Recommendation quality and training speed on MovieLens-100k (see bench/eval_recs.py).
#   bash bench/eval-recs.sh           in process: the Rust ALS on the matrix, beside `implicit`
#   bash bench/eval-recs.sh --live    the live path (bench/eval_live.py): events over HTTP,
#                                     `stylecast embed`, the recommendations API
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ ! -x bench/.venv/bin/python ]]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
fi
cargo build --release --quiet --bin stylecast
# implicit's advice: no OpenBLAS thread pool under its own solver threads.
export OPENBLAS_NUM_THREADS=1
if [[ "${1:-}" == "--live" ]]; then
  shift
  exec bench/.venv/bin/python bench/eval_live.py "$@"
fi
exec bench/.venv/bin/python bench/eval_recs.py "$@"

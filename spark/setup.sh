#!/usr/bin/env bash
# The venv that runs spark/als.py (spark/.venv, git-ignored): PySpark from the registry.
# Prints the venv's python; idempotent and quick when installed. Spark itself needs Java 17
# (`java -version`); without it the job cannot run and tests/api/spark.rs says so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=spark/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import pyspark, numpy" 2>/dev/null; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r spark/requirements.txt >&2
fi
echo "$PWD/$venv/bin/python"

#!/usr/bin/env bash
# Fuzzes every operation of the live service's OpenAPI document with Schemathesis (PyPI,
# installed into tests/openapi/.venv): no 5xx, and every response must match the document
# (status codes, content types, headers, bodies). Run inside scripts/with-service.sh.
# Examples per operation are capped so the run stays around a minute on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$(cat "$here/schemathesis.version")"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$(cat "$here/schemathesis.version")"
fi
: "${STYLECAST_URL:?run me through scripts/with-service.sh}"
mkdir -p "$root/test-artifacts/schemathesis"
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/schemathesis" run "${STYLECAST_URL}/openapi.json" \
  --header "Authorization: Bearer ${STYLECAST_ADMIN_KEY}" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" \
  --seed 20261126 \
  --workers 2 \
  --request-timeout 30 \
  --report junit --report-dir "$root/test-artifacts/schemathesis"

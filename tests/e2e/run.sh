#!/usr/bin/env bash
# Installs what the browser test needs (Debian's chromium; playwright-core from npm into
# tests/e2e/node_modules, pinned by package-lock.json) and runs it. Run inside
# scripts/with-service.sh, which serves the demo data.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium from Debian's packages" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "error: /usr/bin/chromium is missing: apt-get install chromium" >&2
    exit 1
  fi
fi
if ! command -v npm >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
  else
    echo "error: npm is missing: apt-get install nodejs npm" >&2
    exit 1
  fi
fi
cd "$here"
[[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund >&2
node --test demo.test.mjs

#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer. Where they do not:
# docker compose when a Docker engine runs, otherwise local server binaries (installed
# from Debian's packages when missing and we are root). Sourced by run.sh and test.sh.
set -euo pipefail

services_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

postgres_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { [[ "$( (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3) 2>/dev/null)" == "+PONG" ]]; }

wait_for() {
  local what="$1" check="$2"
  for _ in $(seq 1 60); do
    if "$check"; then return 0; fi
    sleep 1
  done
  echo "error: $what did not come up on 127.0.0.1" >&2
  return 1
}

docker_engine() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

apt_install() {
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $* from Debian's packages" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
  else
    echo "error: $* missing; install it (or start Docker) and retry" >&2
    return 1
  fi
}

start_local_postgres() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [[ -z "$bin" ]]; then apt_install postgresql; bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"; fi
  local data="${services_root}/.pgdata"
  local run_as=()
  # initdb refuses to run as root: use the postgres system user when we are root.
  if [[ $(id -u) -eq 0 ]]; then run_as=(runuser -u postgres --); mkdir -p "$data" && chown postgres "$data"; fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    "${run_as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
  fi
  "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -o "-p 5432 -k /tmp -h 127.0.0.1" start >/dev/null
}

start_local_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
}

ensure_services() {
  if postgres_up && redis_up; then return 0; fi
  if docker_engine; then
    echo "starting Postgres and Redis with docker compose" >&2
    docker compose -f "${services_root}/docker-compose.yml" up -d postgres redis >&2
  else
    postgres_up || { echo "starting a local Postgres in .pgdata" >&2; start_local_postgres; }
    redis_up || { echo "starting a local Redis" >&2; start_local_redis; }
  fi
  wait_for Postgres postgres_up
  wait_for Redis redis_up
}

# What both the service and the tests need: the ONNX Runtime library and the services.
prepare() {
  ORT_DYLIB_PATH="$(bash "${services_root}/scripts/install-ort.sh")"
  export ORT_DYLIB_PATH
  ensure_services
}

#!/usr/bin/env bash
# A Postgres sized for a million users, for bench/scale.py (issue 19): the same server binary
# as the machine's, on port 5433, with its data in bench/.pgdata-sized, and the memory and
# checkpoint settings that docker-compose.yml gives the service's Postgres. SIZED_PG_OPTIONS adds
# more `-c` settings, for experiments. Durability is untouched (fsync, synchronous_commit and
# full_page_writes stay on).
#
#   bash bench/postgres-sized.sh start
#   SCALE_DATABASE_SERVER=postgres://postgres@127.0.0.1:5433 bench/.venv/bin/python bench/scale.py
#   bash bench/postgres-sized.sh stop
#
# Why: at 1M users × 10M events the indexes that every event touches at a random place (the
# affinity and likes keys, the events' user index) outgrow the default 128 MB of shared
# buffers, so each batch evicts dirty pages to the OS and reads them back. The background
# writer's defaults (100 pages per 200 ms, 4 MB/s) leave nearly all of that eviction to the
# ingesting backends, and 16 MB of WAL buffers filled 56k times in one 1M seed; the settings
# below hand writes to the background writer and cut WAL-buffer stalls to 4k (BENCHMARKS.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$root/bench/.pgdata-sized"
port=5433
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
run_as=()
if [[ $(id -u) -eq 0 ]]; then run_as=(runuser -u postgres --); fi

case "${1:-}" in
  start)
    mkdir -p "$data"
    [[ $(id -u) -eq 0 ]] && chown postgres "$data"
    [[ -f "$data/PG_VERSION" ]] || "${run_as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $port -k /tmp -h 127.0.0.1 -c shared_buffers=2GB -c max_wal_size=8GB -c checkpoint_timeout=15min -c wal_compression=lz4 -c wal_buffers=64MB -c bgwriter_delay=50ms -c bgwriter_lru_maxpages=1000 -c bgwriter_lru_multiplier=4 ${SIZED_PG_OPTIONS:-}" \
      start >/dev/null
    echo "postgres://postgres@127.0.0.1:$port"
    ;;
  stop)
    "${run_as[@]}" "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

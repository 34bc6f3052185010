#!/usr/bin/env python3
"""Postgres restarted under load: the real `stylecast serve` binary runs against a private
Postgres cluster; while clients ingest and read, the cluster is stopped (fast shutdown,
then, in a second round, an immediate one that drops connections like a crash).

While Postgres is down every request must answer 503 with `Retry-After` and a JSON `code`
within the configured acquire timeout (plus a small allowance), and `/readyz` must say not
ready; when it is back the service must recover by itself (2xx again, `/readyz` 200)
without a restart. Afterwards every event whose batch got a 2xx is stored.

    python3 tests/reliability/pg_restart.py [--acquire-timeout 2] [--outage 6]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
import uuid

import common
from common import CheckFailed, PrivatePostgres, Server, TransportError, check, log

SLACK_SECONDS = 1.5  # scheduling and request handling on a busy 2-core machine


class Traffic:
    """Clients that ingest small batches and read users in a loop, recording every answer."""

    def __init__(self, port: int, key: str, clients: int = 4):
        self.port, self.key = port, key
        self.lock = threading.Lock()
        self.records: list[tuple[float, float, str, int, str | None, str | None]] = []
        self.acknowledged: list[str] = []
        self.ids = itertools.count()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(clients)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def run(self, n: int):
        while not self.stop.is_set():
            if n % 2 == 0:
                with self.lock:
                    first = next(self.ids)
                    ids = [next(self.ids) for _ in range(19)] + [first]
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
                body = json.dumps(
                    [
                        {"event_id": f"pg{i}", "user": f"u{i % 37}", "influencer": f"i{i % 11}", "kind": "like",
                         "occurred_at": now}
                        for i in ids
                    ]
                ).encode()
                what, method, path = "ingest", "POST", "/v1/events"
                headers = {**common.bearer(self.key), "Content-Type": "application/json"}
            else:
                what, method, path, body = "read", "GET", f"/v1/users/u{n}", None
                headers = common.bearer(self.key)
            sent = time.monotonic()
            try:
                response = common.request(self.port, method, path, headers, body, timeout=60)
            except TransportError as err:
                self.record(sent, time.monotonic(), what, 0, None, str(err))
                continue
            if what == "ingest" and response.status == 200:
                with self.lock:
                    self.acknowledged.extend(f"pg{i}" for i in ids)
            # An error's code; a success's body (so a success while down shows what it said).
            detail = response.error_code() if response.status >= 400 else response.body[:200].decode("latin-1")
            self.record(sent, time.monotonic(), what, response.status, response.headers.get("retry-after"), detail)
            time.sleep(0.02)

    def record(self, sent, answered, what, status, retry_after, code):
        with self.lock:
            self.records.append((sent, answered, what, status, retry_after, code))

    def between(self, start: float, end: float):
        with self.lock:
            return [r for r in self.records if start <= r[0] < end]


def outage_round(pg: PrivatePostgres, server: Server, traffic: Traffic, mode: str, outage: float,
                 acquire_timeout: float) -> dict:
    before = time.monotonic()
    time.sleep(2)
    stopped_at = time.monotonic()
    healthy = traffic.between(before, stopped_at)
    check(healthy and all(200 <= r[3] < 300 for r in healthy),
          f"{mode}: not every request succeeded before the outage: {sorted({r[3] for r in healthy})}")

    log(f"{mode}: stopping Postgres")
    pg.stop(mode)
    check(pg.wait_sessions_gone(), f"{mode}: sessions with Postgres still open 15 s after pg_ctl stop returned")
    down_since = time.monotonic()
    check(not pg.accepts_connections(), f"{mode}: Postgres still accepts connections after pg_ctl stop returned")
    time.sleep(outage / 2)
    ready = common.request(server.port, "GET", "/readyz?capability=ingest", timeout=10)
    check(ready.status == 503 and ready.json()["ready"] is False,
          f"{mode}: /readyz answered {ready.status} while Postgres was down")
    check("retry-after" in ready.headers, f"{mode}: /readyz 503 without Retry-After")
    time.sleep(outage / 2)
    log(f"{mode}: starting Postgres again")
    restart_began = time.monotonic()
    pg.start()
    up_at = time.monotonic()

    # Requests sent after the stop completed and answered before the restart began (Postgres
    # accepts connections before `pg_ctl start -w` returns, and a request waiting for a
    # connection then rightly succeeds).
    during = [r for r in traffic.between(down_since, restart_began) if r[1] < restart_began]
    check(len(during) >= 4, f"{mode}: only {len(during)} requests during the outage")
    wrong = [r for r in during if r[3] != 503 or not r[4] or r[5] != "unavailable"]
    check(not wrong, f"{mode}: answers other than 503 + Retry-After + code while down: {wrong[:5]}")
    slowest = max(r[1] - r[0] for r in during)
    check(slowest <= acquire_timeout + SLACK_SECONDS,
          f"{mode}: a request took {slowest:.2f}s while down (acquire timeout {acquire_timeout}s)")
    codes = sorted({r[5] for r in during})

    # Recovery without a restart of the service.
    deadline = up_at + acquire_timeout + 15
    while time.monotonic() < deadline:
        if common.request(server.port, "GET", "/readyz?capability=ingest", timeout=10).status == 200:
            break
        time.sleep(0.1)
    else:
        raise CheckFailed(f"{mode}: /readyz not ready {acquire_timeout + 15}s after Postgres came back")
    ready_after = time.monotonic() - up_at
    recovered_at = time.monotonic()
    time.sleep(3)
    after = traffic.between(recovered_at + acquire_timeout, time.monotonic())
    check(after and all(200 <= r[3] < 300 for r in after),
          f"{mode}: requests after recovery did not all succeed: {sorted({r[3] for r in after})}")
    check(server.alive() and server.starts == 1, f"{mode}: the service restarted or died")
    # What happened to requests in flight at the moment of the stop (no 500s, no hangs).
    edge = traffic.between(stopped_at - 1, down_since)
    check(all(r[3] in (200, 503) for r in edge),
          f"{mode}: requests in flight at the stop got {sorted({r[3] for r in edge})}")
    return {
        "requests_during_outage": len(during),
        "codes": codes,
        "slowest_answer_while_down_s": round(slowest, 2),
        "ready_again_after_s": round(ready_after, 2),
        "requests_ok_after": len(after),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acquire-timeout", type=int, default=2)
    parser.add_argument("--outage", type=float, default=6.0)
    args = parser.parse_args()

    pg = PrivatePostgres()
    logs = common.artifacts_dir("pg_restart")
    server = None
    traffic = None
    try:
        pg.start()
        env = common.base_env(pg.url("stylecast"), f"pg-admin-{uuid.uuid4()}", models=False)
        env["STYLECAST__DATABASE__ACQUIRE_TIMEOUT_SECS"] = str(args.acquire_timeout)
        server = Server(env, logs / "server.log")
        server.start()
        log(f"{common.binary()} on :{server.port}, private Postgres on :{pg.port}")
        # The users the readers read exist before the first healthy window.
        seed = [{"event_id": f"seed{i}", "user": f"u{i}", "influencer": "i0", "kind": "view",
                 "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))} for i in range(37)]
        seeded = common.request(server.port, "POST", "/v1/events", {**common.bearer(env["STYLECAST_ADMIN_KEY"]),
                                "Content-Type": "application/json"}, json.dumps(seed).encode())
        check(seeded.status == 200, f"seeding users: {seeded.status}")
        traffic = Traffic(server.port, env["STYLECAST_ADMIN_KEY"])
        traffic.start()
        results = {}
        for mode in ("fast", "immediate"):
            results[mode] = outage_round(pg, server, traffic, mode, args.outage, args.acquire_timeout)
        traffic.finish()
        ids = ",".join(traffic.acknowledged)
        stored = int(common.psql(pg.url("stylecast"),
                                 f"SELECT count(*) FROM engagement_events WHERE event_id = ANY('{{{ids}}}');"))
        check(stored == len(traffic.acknowledged),
              f"{len(traffic.acknowledged)} events acknowledged, {stored} of them stored")
        check(not common.panics_in(server.log_text()), f"a panic in {server.log_path}")
        log("PASS " + json.dumps({"acquire_timeout_s": args.acquire_timeout, "acknowledged_events": len(traffic.acknowledged),
                                  "stored_events": stored, **results}))
        return 0
    except CheckFailed as err:
        log(f"FAIL: {err}")
        log(f"server log: {logs / 'server.log'}; Postgres log: {pg.log_path}")
        return 1
    finally:
        if traffic:
            traffic.finish()
        if server:
            server.save()
        pg.destroy()


if __name__ == "__main__":
    sys.exit(main())

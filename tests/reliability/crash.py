#!/usr/bin/env python3
"""Durability under crash: the real `stylecast serve` binary ingests a stream of events
while it is SIGKILLed at random moments and restarted.

Clients POST batches (1–5,000 events, JSON or NDJSON) and, like a real producer, retry a
batch until it is acknowledged (2xx); retries are safe because `event_id` is the
idempotency key. Afterwards:

  * every event is in Postgres exactly once, with the user, influencer, kind, post and
    time it was sent with;
  * follows, likes and affinity equal `rebuild_state_from_log()` (compared inside a
    transaction that is rolled back, so the checked state is the one the service left).

    python3 tests/reliability/crash.py [--events 200000] [--min-kills 5] [--seed 7]

Exits non-zero with the failed property on any violation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import queue
import random
import sys
import threading
import time
import uuid

import common
from common import CheckFailed, Server, TransportError, check, log

KINDS = ["view"] * 40 + ["like"] * 20 + ["unlike"] * 8 + ["comment"] * 8 + ["share"] * 6 + ["follow"] * 12 + [
    "unfollow"
] * 6


def generate_events(count: int, rng: random.Random) -> list[dict]:
    """Skewed users and influencers and few posts, so toggles collide often and arrive out
    of order across batches; times over 50 days (two or three monthly partitions)."""
    now = dt.datetime.now(dt.timezone.utc)
    events = []
    for n in range(count):
        kind = rng.choice(KINDS)
        event = {
            "event_id": f"c{n:07d}-{rng.getrandbits(32):08x}",
            "user": f"u{int(rng.paretovariate(1.2)) % 3000}",
            "influencer": f"i{int(rng.paretovariate(1.0)) % 250}",
            "kind": kind,
            "occurred_at": (now - dt.timedelta(milliseconds=rng.randrange(50 * 86_400_000))).isoformat(
                timespec="milliseconds"
            ),
        }
        if kind in ("like", "unlike") and rng.random() < 0.7:
            event["post_id"] = f"p{rng.randrange(4)}"
        if rng.random() < 0.1:
            event["weight"] = round(rng.uniform(0.5, 2.0), 3)
        events.append(event)
    return events


def batches_of(events: list[dict], rng: random.Random) -> list[tuple[str, bytes, int]]:
    out = []
    at = 0
    while at < len(events):
        size = rng.choice([rng.randint(1, 50), rng.randint(1000, 5000), rng.randint(1000, 5000)])
        chunk = events[at : at + size]
        at += size
        if rng.random() < 0.5:
            out.append(("application/json", json.dumps(chunk).encode(), len(chunk)))
        else:
            ndjson = "\n".join(json.dumps(e) for e in chunk) + "\n"
            out.append(("application/x-ndjson", ndjson.encode(), len(chunk)))
    return out


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = 0
        self.acked_events = 0
        self.accepted = 0
        self.duplicates = 0
        self.retries = 0
        self.failures: dict[str, int] = {}
        self.in_flight = 0
        self.kills_in_flight = 0
        self.bad: list[str] = []

    def failure(self, what: str) -> None:
        with self.lock:
            self.retries += 1
            self.failures[what] = self.failures.get(what, 0) + 1


def client(port: int, key: str, work: queue.Queue, stats: Stats, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            content_type, body, size = work.get_nowait()
        except queue.Empty:
            return
        while not stop.is_set():
            with stats.lock:
                stats.in_flight += 1
            try:
                response = common.request(
                    port, "POST", "/v1/events", {**common.bearer(key), "Content-Type": content_type}, body, timeout=120
                )
            except TransportError:
                stats.failure("no response (server killed or down)")
                time.sleep(0.05)
                continue
            finally:
                with stats.lock:
                    stats.in_flight -= 1
            if 200 <= response.status < 300:
                report = response.json()
                with stats.lock:
                    stats.acked += 1
                    stats.acked_events += size
                    stats.accepted += report["accepted"]
                    stats.duplicates += report["duplicates"]
                    if report["rejected"]:
                        stats.bad.append(f"a batch had rejected events: {report['rejected'][:3]}")
                break
            if response.status in (429, 503):
                stats.failure(f"{response.status} {response.error_code()}")
                time.sleep(0.1)
                continue
            # Anything else is a bug: these batches are valid.
            with stats.lock:
                stats.bad.append(f"{response.status}: {response.body[:300]!r}")
            stop.set()
            return


def killer(server: Server, rng: random.Random, stats: Stats, done: threading.Event, kills: list[float]) -> None:
    """Kills the server at random moments of its uptime and restarts it at once."""
    while not done.is_set():
        if done.wait(rng.uniform(0.1, 0.6)):
            return
        with stats.lock:
            busy = stats.in_flight > 0
        server.kill()
        kills.append(time.monotonic())
        if busy:
            stats.kills_in_flight += 1
        server.start(wait_ready=False)
        try:
            server.wait_ready(120)
        except CheckFailed as err:
            stats.bad.append(f"restart failed: {err}")
            done.set()
            return


def verify(database_url: str, events: list[dict]) -> dict:
    log("checking every event is stored exactly once, as sent")
    counts = common.psql(
        database_url,
        "SELECT (SELECT count(*) FROM engagement_events), (SELECT count(DISTINCT event_id) FROM engagement_events),"
        " (SELECT count(*) FROM event_keys);",
    ).split("|")
    rows, distinct, keys = (int(c) for c in counts)
    check(rows == distinct, f"{rows - distinct} events are stored more than once")
    check(keys == rows, f"event_keys holds {keys} ids for {rows} events")
    check(rows == len(events), f"{rows} events stored, {len(events)} acknowledged")
    stored = common.psql(
        database_url,
        "COPY (SELECT e.event_id, u.external_id, i.external_id, e.kind, coalesce(e.post_id, ''),"
        " (extract(epoch FROM e.occurred_at) * 1000)::bigint, e.weight"
        " FROM engagement_events e JOIN users u ON u.id = e.user_id JOIN influencers i ON i.id = e.influencer_id)"
        " TO STDOUT;",
    )
    found = {}
    for line in stored.splitlines():
        event_id, user, influencer, kind, post, millis, weight = line.split("\t")
        found[event_id] = (user, influencer, kind, post, int(millis), round(float(weight), 3))
    mismatched = 0
    for e in events:
        millis = int(dt.datetime.fromisoformat(e["occurred_at"]).timestamp() * 1000 + 0.5)
        sent = (e["user"], e["influencer"], e["kind"], e.get("post_id", ""), millis, round(e.get("weight", 1.0), 3))
        got = found.get(e["event_id"])
        if got is None:
            raise CheckFailed(f"acknowledged event {e['event_id']} is missing")
        if got != sent:
            mismatched += 1
            if mismatched <= 3:
                log(f"  {e['event_id']}: sent {sent}, stored {got}")
    check(mismatched == 0, f"{mismatched} stored events differ from what was sent")

    log("checking follows, likes and affinity equal rebuild_state_from_log()")
    # Scores are stored at the 2020 epoch; a pair whose events cancel out may keep a
    # rounding residue far below one unit of today's weight (as in tests/api/events.rs).
    diff = common.psql(
        database_url,
        """
        BEGIN;
        CREATE TEMP TABLE f0 AS SELECT user_id, influencer_id, active, changed_by_event, weight FROM follows;
        CREATE TEMP TABLE l0 AS SELECT user_id, influencer_id, post_id, active, changed_by_event, weight FROM likes;
        CREATE TEMP TABLE a0 AS SELECT user_id, influencer_id, score_ref FROM affinity;
        SELECT rebuild_state_from_log();
        SELECT (SELECT count(*) FROM f0), (SELECT count(*) FROM l0), (SELECT count(*) FROM a0),
          (SELECT count(*) FROM ((TABLE f0 EXCEPT SELECT user_id, influencer_id, active, changed_by_event, weight FROM follows)
                           UNION ALL (SELECT user_id, influencer_id, active, changed_by_event, weight FROM follows EXCEPT TABLE f0)) d),
          (SELECT count(*) FROM ((TABLE l0 EXCEPT SELECT user_id, influencer_id, post_id, active, changed_by_event, weight FROM likes)
                           UNION ALL (SELECT user_id, influencer_id, post_id, active, changed_by_event, weight FROM likes EXCEPT TABLE l0)) d),
          (SELECT count(*) FROM a0 FULL JOIN affinity a USING (user_id, influencer_id)
             WHERE abs(coalesce(a0.score_ref, 0) - coalesce(a.score_ref, 0))
                   > 1e-9 * greatest(affinity_growth(now()), abs(coalesce(a.score_ref, 0))));
        ROLLBACK;
        """,
    ).strip().splitlines()[-1]
    follows, likes, pairs, follow_diff, like_diff, affinity_diff = (int(v) for v in diff.split("|"))
    check(follows > 0 and likes > 0 and pairs > 0, "the state tables are empty: nothing was checked")
    check(follow_diff == 0, f"{follow_diff} follow rows differ from the recomputation")
    check(like_diff == 0, f"{like_diff} like rows differ from the recomputation")
    check(affinity_diff == 0, f"{affinity_diff} affinity pairs differ from the recomputation")
    return {"follows": follows, "likes": likes, "affinity_pairs": pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--min-kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    events = generate_events(args.events, rng)
    work: queue.Queue = queue.Queue()
    batches = batches_of(events, rng)
    for batch in batches:
        work.put(batch)
    name, database_url = common.create_database("stylecast_crash")
    logs = common.artifacts_dir("crash")
    server = Server(common.base_env(database_url, f"crash-admin-{uuid.uuid4()}", models=False), logs / "server.log")
    admin_key = server.env["STYLECAST_ADMIN_KEY"]
    stats = Stats()
    kills: list[float] = []
    try:
        log(f"{common.binary()} against {name}: {len(events)} events in {len(batches)} batches")
        server.start()
        started = time.monotonic()
        stop = threading.Event()
        done = threading.Event()
        clients = [
            threading.Thread(target=client, args=(server.port, admin_key, work, stats, stop))
            for _ in range(args.clients)
        ]
        for thread in clients:
            thread.start()
        chaos = threading.Thread(target=killer, args=(server, random.Random(args.seed + 1), stats, done, kills))
        chaos.start()
        for thread in clients:
            thread.join()
        done.set()
        chaos.join()
        elapsed = time.monotonic() - started
        check(not stats.bad, f"unexpected answers: {stats.bad[:5]}")
        check(stats.acked == len(batches), f"{stats.acked} of {len(batches)} batches acknowledged")
        check(
            len(kills) >= args.min_kills,
            f"only {len(kills)} kills (want {args.min_kills}): the run was too short to test crashes",
        )
        # A batch is one transaction: one whose reply was lost was either rolled back
        # (its retry accepts every event) or committed (its retry finds them all duplicates).
        check(
            stats.duplicates == len(events) - stats.accepted,
            f"replies accepted {stats.accepted} and reported {stats.duplicates} duplicates of {len(events)} events",
        )
        server.wait_ready()
        state = verify(database_url, events)
        check(not common.panics_in(server.log_text()), f"a panic in {server.log_path}")
        figures = {
            "events": len(events),
            "batches": len(batches),
            "kills": len(kills),
            "kills_with_requests_in_flight": stats.kills_in_flight,
            "server_starts": server.starts,
            "retries": stats.retries,
            "retry_reasons": stats.failures,
            "accepted_in_acknowledged_replies": stats.accepted,
            "committed_but_reply_lost": len(events) - stats.accepted,
            "duplicates_reported": stats.duplicates,
            "seconds": round(elapsed, 1),
            **state,
        }
        log("PASS " + json.dumps(figures))
        return 0
    except CheckFailed as err:
        log(f"FAIL: {err}")
        log(f"server log: {server.log_path}")
        return 1
    finally:
        server.save()
        if not args.keep_database:
            common.drop_database(name)


if __name__ == "__main__":
    sys.exit(main())

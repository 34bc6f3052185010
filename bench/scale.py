#!/usr/bin/env python3
"""Stylecast at a million users on one machine (issue 19), with the release binary.

For a baseline population (100k users x 5k influencers x 1M events) and the full one
(1M x 50k x 10M), each in its own fresh database:

1. `stylecast seed` through the real ingest path: wall time and events/s. The full run's
   rate is reported as a ratio of the baseline's.
2. `stylecast serve` before any model exists: uncached recommendation latency (popularity)
   over distinct random users, through HTTP, one request at a time.
3. `stylecast embed` with default settings: wall time, training time, peak RSS
   (/usr/bin/time).
4. The same matrix (exported from the `affinity` view, confidence 1 + alpha * affinity) fitted
   by `implicit` with the same factors, regularisation, iterations and CG, on the same cores,
   in the same run: the training-time ratio.
5. Uncached recommendation latency again, now from the ALS model (other distinct users).

    cargo build --release --bin stylecast
    bench/.venv/bin/python bench/scale.py            # both populations
    bench/.venv/bin/python bench/scale.py --only full --skip-seed   # reuse the seeded database

Prints a Markdown table and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("SCALE_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
POPULATIONS = {
    "baseline": (100_000, 5_000, 1_000_000),
    "full": (1_000_000, 50_000, 10_000_000),
    "smoke": (2_000, 100, 20_000),
}


def run(cmd, env, **kw):
    return subprocess.run(cmd, env={**os.environ, "RUST_LOG": "warn", **env}, check=True, capture_output=True,
                          text=True, **kw)


def psql(db, sql):
    return subprocess.run(["psql", "-qAtX", f"{SERVER}/{db}", "-c", sql], check=True, capture_output=True,
                          text=True).stdout


def fresh_database(name):
    psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql("postgres", f'CREATE DATABASE "{name}"')


@functools.cache
def checkpoint_count_sql():
    """Postgres 15 keeps checkpoints in pg_stat_bgwriter; 17 moved them to pg_stat_checkpointer."""
    if int(psql("postgres", "SHOW server_version_num")) >= 170000:
        return "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
    return "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"


def wal_counters():
    """The server's checkpoint count and WAL position (bytes), read before and after a seed."""
    count, lsn = psql("postgres", f"SELECT ({checkpoint_count_sql()}), pg_current_wal_lsn() - '0/0'").strip().split("|")
    return int(count), int(float(lsn))


def seed(binary, db, users, influencers, events, extra=()):
    checkpoints_before, wal_before = wal_counters()
    started = time.perf_counter()
    out = run([binary, "seed", "--users", str(users), "--influencers", str(influencers), "--events", str(events),
               *extra],
              {"DATABASE_URL": f"{SERVER}/{db}"}).stdout
    seconds = time.perf_counter() - started
    checkpoints_after, wal_after = wal_counters()
    accepted = int(re.search(r"(\d+) accepted", out).group(1))
    checkpoints, wal_gb = checkpoints_after - checkpoints_before, (wal_after - wal_before) / 1e9
    return {"seconds": seconds, "events_per_sec": events / seconds, "accepted": accepted, "checkpoints": checkpoints,
            "wal_gb": wal_gb, "output": f"{out.strip()}; {checkpoints} checkpoints, {wal_gb:.1f} GB of WAL"}


def embed(binary, db):
    started = time.perf_counter()
    result = run(["/usr/bin/time", "-v", binary, "embed"], {"DATABASE_URL": f"{SERVER}/{db}"})
    seconds = time.perf_counter() - started
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    phase = {name: re.search(rf"{name} in ([\d.]+)\s*s", result.stdout) for name in ("loaded", "trained", "written")}
    figure = {name: float(m.group(1)) if m else None for name, m in phase.items()}
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "train_seconds": figure["trained"],
            "load_seconds": figure["loaded"], "write_seconds": figure["written"], "output": result.stdout.strip()}


def implicit_fit(db, factors=64, regularization=0.05, alpha=10.0, iterations=15, threads=None):
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with tempfile.NamedTemporaryFile(suffix=".tsv") as tmp:
        subprocess.run(["psql", "-qAtX", f"{SERVER}/{db}", "-c",
                        "\\copy (SELECT user_id, influencer_id, affinity_now(score_ref) FROM affinity "
                        f"WHERE score_ref > 0) TO '{tmp.name}'"], check=True)
        data = np.loadtxt(tmp.name, dtype=np.float64, delimiter="\t", ndmin=2)
    users, user_index = np.unique(data[:, 0].astype(np.int64), return_inverse=True)
    items, item_index = np.unique(data[:, 1].astype(np.int64), return_inverse=True)
    matrix = sp.csr_matrix(((1.0 + alpha * data[:, 2]).astype(np.float32), (user_index, item_index)),
                           shape=(len(users), len(items)))
    model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=1.0,
                                    iterations=iterations, use_cg=True, calculate_training_loss=False,
                                    random_state=42, num_threads=threads or os.cpu_count() or 1)
    with threadpool_limits(1, "blas"):
        started = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - started
    return {"train_seconds": seconds, "users": len(users), "influencers": len(items), "cells": matrix.nnz}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, db, extra_env=None):
        self.port = free_port()
        env = {**os.environ, **(extra_env or {}), "DATABASE_URL": f"{SERVER}/{db}",
               "STYLECAST__SERVER__PORT": str(self.port),
               "STYLECAST__EMBEDDING__REBUILD_INTERVAL_SECS": "0", "STYLECAST__FEED__SERVE_WORKER": "false",
               "STYLECAST__AUTH__RATE_LIMIT_PER_SEC": "0", "STYLECAST_ADMIN_KEY": "scale-bench-admin",
               "RUST_LOG": "warn"}
        env.pop("REDIS_URL", None)
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if self.get("/readyz?capability=recommend")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("stylecast serve did not become ready")

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", path, headers={"Authorization": "Bearer scale-bench-admin"})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def latency(server, users, n, rng, strategy):
    """Sequential requests for n distinct users never asked before: every one a cache miss."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    headers = {"Authorization": "Bearer scale-bench-admin"}
    picks = rng.sample(range(users), n)
    # One request first, for a user outside the sample: after start-up the service computes
    # the popularity ranking once (seconds at a million users) and loads the model.
    conn.request("GET", "/v1/users/warm-up/recommendations?k=20", headers=headers)
    conn.getresponse().read()
    times, strategies = [], {}
    for user in picks:
        started = time.perf_counter()
        conn.request("GET", f"/v1/users/seed_u{user:07}/recommendations?k=20", headers=headers)
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {body[:200]}")
        got = json.loads(body)["strategy"]
        strategies[got] = strategies.get(got, 0) + 1
    conn.close()
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
    return {"n": n, "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": times[-1], "strategies": strategies,
            "expected": strategy}


def post_events(server, events):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", "/v1/events", body=json.dumps(events),
                 headers={"Authorization": "Bearer scale-bench-admin", "Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body, (time.perf_counter() - started) * 1000


def erasure(server, events_for_subject=10_000):
    """Erase a user with 10,000 events while other users' batches keep arriving."""
    now = time.time()
    stamp = lambda n: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400 - n))
    subject = f"erase_me_{int(now)}"
    events = [{"event_id": f"{subject}-{n}", "user": subject, "influencer": f"seed_i{n % 50_000:05}",
               "kind": "view", "occurred_at": stamp(n)} for n in range(events_for_subject)]
    status, body, _ = post_events(server, events)
    assert status == 200 and body["accepted"] == events_for_subject, body
    import threading
    others, stop = [], threading.Event()

    def ingest_others():
        batch = 0
        while not stop.is_set():
            batch += 1
            rows = [{"event_id": f"other-{now}-{batch}-{n}", "user": f"other_u{n}", "influencer": "seed_i00001",
                     "kind": "view", "occurred_at": stamp(n)} for n in range(500)]
            others.append(post_events(server, rows)[2])

    thread = threading.Thread(target=ingest_others)
    thread.start()
    time.sleep(1.0)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    started = time.perf_counter()
    conn.request("DELETE", f"/v1/users/{subject}", headers={"Authorization": "Bearer scale-bench-admin"})
    response = conn.getresponse()
    report = json.loads(response.read())
    erase_ms = (time.perf_counter() - started) * 1000
    time.sleep(1.0)
    stop.set()
    thread.join()
    assert response.status == 200, report
    others.sort()
    return {"erase_ms": erase_ms, "removed": report["removed"], "other_batches": len(others),
            "other_batch_p50_ms": others[len(others) // 2], "other_batch_max_ms": others[-1]}


def wait_for_model(server, users, rng):
    deadline = time.time() + 120
    while time.time() < deadline:
        status, body = server.get(f"/v1/users/seed_u{rng.randrange(users):07}/recommendations?k=1")
        if status == 200 and json.loads(body)["strategy"] == "als":
            return
        time.sleep(1)
    raise RuntimeError("the service never loaded the model")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target/release/stylecast"))
    parser.add_argument("--only", choices=sorted(POPULATIONS), action="append")
    parser.add_argument("--skip-seed", action="store_true", help="reuse the databases a previous run seeded")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed-only", action="store_true",
                        help="only seed the populations and print the ingest ratio (see --seed-args)")
    parser.add_argument("--seed-args", default="", help="extra arguments for stylecast seed, e.g. '--concurrency 2'")
    parser.add_argument("--erasure-only", action="store_true",
                        help="only time the erasure of a 10,000-event user on the seeded databases")
    args = parser.parse_args()
    if args.erasure_only:
        for name in args.only or ["full"]:
            server = Server(args.binary, f"stylecast_scale_{name}")
            try:
                print(f"{name}: erasure {json.dumps(erasure(server))}", flush=True)
            finally:
                server.stop()
        return
    rng = random.Random(7)
    results = {}
    for name in args.only or ["baseline", "full"]:
        users, influencers, events = POPULATIONS[name]
        db = f"stylecast_scale_{name}"
        result = results.setdefault(name, {"users": users, "influencers": influencers, "events": events})
        if not args.skip_seed:
            fresh_database(db)
            result["seed"] = seed(args.binary, db, users, influencers, events, args.seed_args.split())
            print(f"{name}: {result['seed']['output']}", flush=True)
        if args.seed_only:
            continue
        psql(db, "DELETE FROM embedding_models")
        server = Server(args.binary, db)
        try:
            result["popularity_latency"] = latency(server, users, args.requests, rng, "popularity")
            print(f"{name}: popularity {result['popularity_latency']}", flush=True)
            result["embed"] = embed(args.binary, db)
            print(f"{name}: embed {result['embed']['seconds']:.1f} s, peak {result['embed']['peak_rss_mb']:.0f} MB",
                  flush=True)
            wait_for_model(server, users, rng)
            result["als_latency"] = latency(server, users, args.requests, rng, "als")
            print(f"{name}: als {result['als_latency']}", flush=True)
            result["erasure"] = erasure(server)
            print(f"{name}: erasure {result['erasure']}", flush=True)
        finally:
            server.stop()
        result["implicit"] = implicit_fit(db, threads=os.cpu_count())
        print(f"{name}: implicit {result['implicit']}", flush=True)
    if args.seed_only:
        rates = {name: r["seed"]["events_per_sec"] for name, r in results.items()}
        print(f"seed events/s: {rates}")
        if len(rates) == 2:
            print(f"ingest rate at 1M users / at 100k users = {rates['full'] / rates['baseline']:.2f}")
        return
    out = ROOT / "bench/results/scale.json"
    out.write_text(json.dumps(results, indent=2))
    print("\n| population | seed events/s | embed s (train s) | peak RSS MB | implicit train s | ours / implicit "
          "| popularity p50 / p99 ms | ALS p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        seed_rate = f"{r['seed']['events_per_sec']:,.0f}" if "seed" in r else "–"
        train = r["embed"]["train_seconds"]
        ratio = f"{train / r['implicit']['train_seconds']:.2f}" if train else "–"
        print(f"| {r['users']:,} × {r['influencers']:,} × {r['events']:,} | {seed_rate} | {r['embed']['seconds']:.1f} "
              f"({train}) | {r['embed']['peak_rss_mb']:.0f} | {r['implicit']['train_seconds']:.1f} | {ratio} | "
              f"{r['popularity_latency']['p50_ms']:.2f} / {r['popularity_latency']['p99_ms']:.2f} | "
              f"{r['als_latency']['p50_ms']:.2f} / {r['als_latency']['p99_ms']:.2f} |")
    if "baseline" in results and "full" in results and "seed" in results["full"]:
        print(f"\ningest rate at 1M users / at 100k users = "
              f"{results['full']['seed']['events_per_sec'] / results['baseline']['seed']['events_per_sec']:.2f}")


if __name__ == "__main__":
    sys.exit(main())

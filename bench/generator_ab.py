#!/usr/bin/env python3
"""Time two generator ONNX files on the same inputs, alternating, in one run.

  git show REV:onnx/generator.onnx > /tmp/old.onnx; git show REV:onnx/golden/generator_style.npy > /tmp/old.npy
  onnx/.venv-check/bin/python bench/generator_ab.py /tmp/old.onnx /tmp/old.npy \
      onnx/generator.onnx onnx/golden/generator_style.npy

Each generator gets its own golden style code (the code widths may differ between versions).
Random content at 256, 512, 1024 and 2048 px square, 1 and 2 threads, median of 7 (3 at 2048).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx"))
import eval as ev  # noqa: E402
from export import bench as median_ms  # noqa: E402  (warm-up run, then the median in ms)


def main(argv) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    a_path, a_code, b_path, b_code = argv
    print("| input | threads | A ms | B ms | B / A |\n|---|---|---|---|---|")
    for threads in (1, 2):
        a = (ev.session(a_path, threads), np.load(a_code))
        b = (ev.session(b_path, threads), np.load(b_code))
        for side in (256, 512, 1024, 2048):
            if threads == 2 and side > 512:
                continue
            x = np.random.default_rng(side).random((1, 3, side, side), dtype=np.float32)
            reps = 3 if side >= 2048 else 7
            ta = median_ms(a[0], {"content": x, "style": a[1]}, reps)
            tb = median_ms(b[0], {"content": x, "style": b[1]}, reps)
            print(f"| {side}² | {threads} | {ta:.1f} | {tb:.1f} | {tb / ta:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

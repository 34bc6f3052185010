#!/usr/bin/env python3
"""Generator throughput on a CUDA GPU through PyTorch (the service's CUDA path is ort's CUDA
execution provider; this measures the network itself on the same card).

  python3 onnx/gpu_bench.py [--run onnx/runs/gpu_b]   # weights do not change the speed

Prints one JSON line per (precision, size, batch): median ms per batch and images/s over
timed repetitions after warm-up, synchronised with torch.cuda.synchronize()."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from models import STYLE_DIM, Generator  # noqa: E402


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--n-res", type=int, default=3)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    G = Generator(args.base, args.n_res).to(dev).eval()
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    for precision in ("fp32", "tf32", "fp16"):
        torch.backends.cudnn.allow_tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
        for size in (256, 512):
            for batch in (1, 8, 32):
                x = torch.rand(batch, 3, size, size, device=dev)
                s = torch.randn(batch, STYLE_DIM, device=dev)

                def run():
                    with torch.inference_mode(), torch.autocast("cuda", torch.float16,
                                                                enabled=precision == "fp16"):
                        G(x, s)

                ms = timed(run, args.reps)
                print(json.dumps({"precision": precision, "size": size, "batch": batch,
                                  "ms_per_batch": round(ms, 3), "images_per_s": round(batch * 1e3 / ms, 1)}),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

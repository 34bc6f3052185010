#!/usr/bin/env python3
"""Reference Python generation path for BENCHMARKS.md: what a plain onnxruntime + Pillow
service does per request — decode the upload, fit it (longest side = size, sides multiples
of 8), run the generator with an influencer's style code, encode PNG — timed sequentially
and from 8 threads (onnxruntime releases the GIL while it runs). Same model file, same
intra-op threads as the Rust service.

    bench/.venv/bin/python bench/reference_generate.py --requests 24
    python3 bench/reference_generate.py --provider cuda     # with onnxruntime-gpu
"""
import argparse
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def fit(image, size):
    w, h = image.size
    scale = min(size / max(w, h), 1.0)
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    if (sw, sh) != (w, h):
        image = image.resize((sw, sh), Image.BICUBIC)
    cw, ch = sw // 8 * 8, sh // 8 * 8
    left, top = (sw - cw) // 2, (sh - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--provider", default="cpu", choices=["cpu", "cuda"],
                        help="cuda needs onnxruntime-gpu (the GPU box)")
    parser.add_argument("--photo", default=str(ROOT / "onnx/styles/content_full/coffee.png"))
    args = parser.parse_args()

    manifest = json.loads((ROOT / "onnx/models.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(ROOT / "onnx" / manifest["models"]["generator"]["file"]), options,
                                   providers=["CUDAExecutionProvider"] if args.provider == "cuda"
                                   else ["CPUExecutionProvider"])
    print("providers:", session.get_providers())
    codes = json.loads((ROOT / "onnx/golden/influencer_codes.json").read_text())["codes"]
    code = np.asarray(codes["noir_nadia"], dtype=np.float32).reshape(1, -1)
    photo = Path(args.photo).read_bytes()

    def one(size):
        image = fit(Image.open(io.BytesIO(photo)).convert("RGB"), size)
        content = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
        out = session.run(None, {"content": content, "style": code})[0][0]
        pixels = (np.clip(out, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return len(buffer.getvalue())

    print("| size | concurrency | requests | images/s (Python reference) |")
    print("|---:|---:|---:|---:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        one(size)
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda _: one(size), range(args.requests)))
            rate = args.requests / (time.perf_counter() - started)
            print(f"| {size}² | {concurrency} | {args.requests} | {rate:.2f} |")


if __name__ == "__main__":
    main()

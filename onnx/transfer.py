"""Training-free colour transfers in numpy: the floor a learned model must beat (issue 18).

  mkl(content, ref)       Pitié & Kokaram's linear Monge-Kantorovich transfer: matches the
                          mean and covariance of RGB pixels (Pitié et al., CVMP 2007).
  reinhard(content, ref)  Reinhard et al. 2001: per-channel mean/std in a decorrelated space.

Images are HxWx3 float32 in [0, 1]; outputs are clipped to [0, 1].
"""
from __future__ import annotations

import numpy as np


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def mkl(content: np.ndarray, ref: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    x = content.reshape(-1, 3).astype(np.float64)
    y = ref.reshape(-1, 3).astype(np.float64)
    mx, my = x.mean(0), y.mean(0)
    ca = np.cov(x, rowvar=False) + eps * np.eye(3)
    cb = np.cov(y, rowvar=False) + eps * np.eye(3)
    ra = _sqrtm_psd(ca)
    ra_inv = np.linalg.inv(ra)
    t = ra_inv @ _sqrtm_psd(ra @ cb @ ra) @ ra_inv
    out = (x - mx) @ t.T + my
    return np.clip(out.reshape(content.shape), 0, 1).astype(np.float32)


# Ruderman's lαβ is log-LMS; a fixed decorrelating (opponent) matrix is close enough here.
_OPP = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, -0.5], [-0.25, 0.5, -0.25]], np.float64)


def reinhard(content: np.ndarray, ref: np.ndarray) -> np.ndarray:
    x = content.reshape(-1, 3).astype(np.float64) @ _OPP.T
    y = ref.reshape(-1, 3).astype(np.float64) @ _OPP.T
    out = (x - x.mean(0)) / (x.std(0) + 1e-6) * y.std(0) + y.mean(0)
    out = out @ np.linalg.inv(_OPP).T
    return np.clip(out.reshape(content.shape), 0, 1).astype(np.float32)

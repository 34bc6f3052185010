"""The look generator (training) and the held-out set (evaluation) keep their promises (issue 18)."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

ONNX_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ONNX_DIR))
import heldout  # noqa: E402
import looks  # noqa: E402


def _photo():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 31
    return np.clip(np.stack([xx, yy, 1 - xx * yy], -1) * 0.8 + rng.random((32, 32, 3)) * 0.1, 0, 1).astype(np.float32)


def test_every_seed_draws_a_new_look_and_the_same_seed_the_same():
    x = _photo()
    digests = set()
    for seed in range(2000):
        y = looks.look_from_seed(seed)[0](x)
        assert y.shape == x.shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
        digests.add(hashlib.sha1(np.round(y, 3).tobytes()).hexdigest())
    assert len(digests) >= 1990, len(digests)
    a, b = looks.look_from_seed(7)[0](x), looks.look_from_seed(7)[0](x)
    assert np.array_equal(a, b)


def test_looks_compose_every_training_family():
    seen = set()
    for seed in range(500):
        seen.update(looks.look_from_seed(seed)[1])
    assert seen == {name for name, _, _ in looks.TRAINING_FAMILIES}


def test_held_out_families_are_not_training_families():
    training = {name for name, _, _ in looks.TRAINING_FAMILIES}
    assert not training & set(looks.HELDOUT_FAMILIES)


def test_evaluation_photos_never_train():
    assert not set(heldout.PHOTOS) & set(heldout.TRAINING_SOURCES)


@pytest.fixture(scope="module")
def held_out_set():
    try:
        return heldout.references(), heldout.contents()
    except SystemExit as missing:
        pytest.fail(str(missing))


def test_the_held_out_set_has_what_item_3_asks_for(held_out_set):
    refs, cons = held_out_set
    assert len(cons) >= 5 and len(refs) >= 8
    assert sum(r.family == "photo" for r in refs) >= 3
    assert sum(r.family.startswith("held-out") for r in refs) >= 2
    pairs = heldout.pairs(refs, cons)
    assert len(pairs) == len(refs) * len(cons) - len(refs)
    assert all(refs[k].base != name for name, _, k in pairs)


def test_broken_means_what_the_issue_says():
    grey = np.full((10, 10, 3), 0.5, np.float32)
    assert not heldout.broken(grey)
    assert heldout.broken(np.ones((10, 10, 3), np.float32))
    mostly_white = grey.copy()
    mostly_white[:4] = 1.0  # 40 % pure white
    assert heldout.broken(mostly_white)
    assert heldout.broken(np.full((10, 10, 3), 0.03, np.float32))

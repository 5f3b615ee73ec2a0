"""Images of every mode a PNG or JPEG holds read with the right values, or are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lsd.data.images import read_rgb


def pixels(path) -> np.ndarray:
    return np.asarray(read_rgb(path))


def test_16_bit_grey_is_rescaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896], [65535, 128, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    expected = np.round(values / 257.0).astype(np.uint8)  # 0, 1, 128, 255, 0, 4
    assert np.array_equal(pixels(tmp_path / "grey16.png"), np.repeat(expected[..., None], 3, axis=-1))


def test_a_palette_image_with_transparency_reads_its_colours(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "palette.png", transparency=0)
    assert pixels(tmp_path / "palette.png").tolist() == [[[10, 20, 30], [200, 100, 50]]]


@pytest.mark.parametrize(
    ("mode", "value", "rgb"),
    [("L", 77, [77, 77, 77]), ("LA", (77, 0), [77, 77, 77]), ("RGBA", (1, 2, 3, 0), [1, 2, 3]), ("1", 1, [255] * 3)],
)
def test_grey_alpha_and_bilevel_keep_their_colour_values(tmp_path, mode, value, rgb):
    Image.new(mode, (3, 2), value).save(tmp_path / "image.png")
    assert pixels(tmp_path / "image.png").reshape(-1, 3).tolist() == [rgb] * 6


def test_a_float_image_is_refused_by_name_and_mode(tmp_path):
    path = tmp_path / "depth.tiff"
    Image.fromarray(np.full((2, 2), 0.5, np.float32)).save(path)
    with pytest.raises(ValueError, match=rf"image {path}: PIL mode 'F' is not read \(it would be clipped\)"):
        read_rgb(path)

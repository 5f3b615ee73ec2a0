"""The no-learning baselines: a fixed grid and per-image k-means on colour (and position)."""

from __future__ import annotations

import pytest
import torch

from lsd.baselines import grid_segmentation, kmeans_segmentation
from lsd.metrics import segmentation_scores


def test_grid_is_row_major_blocks():
    ids = grid_segmentation(2, 6, 4, rows=3, cols=2)
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3], [4, 4, 5, 5], [4, 4, 5, 5]])
    assert ids.shape == (2, 6, 4) and ids.dtype == torch.long
    assert torch.equal(ids[0], expected) and torch.equal(ids[1], expected)


def test_grid_rejects_empty_sizes():
    with pytest.raises(ValueError, match="positive"):
        grid_segmentation(1, 8, 8, rows=0)


def _three_colour_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A 16x16 image: left half red, top-right green, bottom-right blue; and its region ids."""
    regions = torch.zeros(16, 16, dtype=torch.long)
    regions[:8, 8:] = 1
    regions[8:, 8:] = 2
    palette = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    image = palette[regions].permute(2, 0, 1)  # (3, 16, 16)
    return image, regions


def test_kmeans_recovers_flat_colour_regions_exactly():
    image, regions = _three_colour_scene()
    ids = kmeans_segmentation(image[None], 3)
    scores = segmentation_scores(regions[None] + 1, ids, num_slots=3)  # every region is an object
    assert scores["fg_ari"] == pytest.approx(1.0)
    assert scores["mbo"] == pytest.approx(1.0)


def test_position_term_splits_a_uniform_image_into_halves():
    image = torch.ones(1, 3, 8, 8)  # one colour everywhere: only position can separate pixels
    left_right = (torch.arange(8) >= 4).long().expand(1, 8, 8)
    top_bottom = left_right.transpose(1, 2)
    colour_only = kmeans_segmentation(image, 2)
    with_position = kmeans_segmentation(image, 2, position_weight=1.0)
    assert colour_only.unique().numel() == 1  # identical pixels: one cluster, the other stays empty
    # both halvings are optimal; k-means with position must find one of them exactly
    best = max(segmentation_scores(t + 1, with_position, num_slots=2)["mbo"] for t in (left_right, top_bottom))
    assert best == pytest.approx(1.0)


def test_an_images_segmentation_does_not_depend_on_its_batch():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 12, 12, generator=generator) * 2 - 1
    whole = kmeans_segmentation(images, 4, seed=3)
    parts = torch.cat(
        [kmeans_segmentation(images[:1], 4, seed=3), kmeans_segmentation(images[1:], 4, seed=3, indices=[1, 2, 3])]
    )
    assert torch.equal(whole, parts)
    assert not torch.equal(whole, kmeans_segmentation(images, 4, seed=4))  # the seed matters on random pixels


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": torch.zeros(1, 1, 4, 4)}, r"\(B, 3, H, W\)"),
        ({"num_segments": 0}, "must be >= 1"),
        ({"indices": [0, 1]}, "indices"),
    ],
)
def test_kmeans_rejects_bad_arguments(kwargs, match):
    arguments = {"images": torch.zeros(1, 3, 4, 4), "num_segments": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        kmeans_segmentation(**arguments)

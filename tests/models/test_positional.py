import math

import pytest
import torch

from lsd.models.positional import (
    CartesianPositionalEmbedding,
    LearnedPositionalEmbedding1D,
    SinCosPositionalEmbedding2D,
    build_positional_embedding,
    cartesian_grid,
    sincos_table,
)


def test_cartesian_grid_known_values():
    grid = cartesian_grid(2)[0]  # (4, 2, 2): cell centres 0.25, 0.75
    x = torch.tensor([[0.25, 0.75], [0.25, 0.75]])  # varies along width
    y = torch.tensor([[0.25, 0.25], [0.75, 0.75]])  # varies along height
    torch.testing.assert_close(grid, torch.stack([x, y, 1 - x, 1 - y]))


def test_sincos_table_known_values():
    channels, res = 8, 3
    table = sincos_table(channels, res)[0]  # (8, 3, 3); channel quarters: sin(col), cos(col), sin(row), cos(row)
    for r in range(res):
        for c in range(res):
            # lowest frequency index 0 has omega = 1; index 1 has omega = 10000 ** -0.5
            assert table[0, r, c] == pytest.approx(math.sin(c), abs=1e-6)
            assert table[1, r, c] == pytest.approx(math.sin(c * 0.01), abs=1e-6)
            assert table[2, r, c] == pytest.approx(math.cos(c), abs=1e-6)
            assert table[4, r, c] == pytest.approx(math.sin(r), abs=1e-6)
            assert table[6, r, c] == pytest.approx(math.cos(r), abs=1e-6)


def test_cartesian_adds_projection_of_grid_row_major():
    emb = CartesianPositionalEmbedding(channels=5, resolution=3)
    tokens = torch.randn(2, 9, 5)
    out = emb(tokens)
    grid = cartesian_grid(3)[0]  # (4, 3, 3)
    w, b = emb.projection.weight[:, :, 0, 0], emb.projection.bias
    for r in range(3):
        for c in range(3):
            expected = tokens[:, r * 3 + c] + w @ grid[:, r, c] + b
            torch.testing.assert_close(out[:, r * 3 + c], expected)


@pytest.mark.parametrize(
    "cls", [CartesianPositionalEmbedding, SinCosPositionalEmbedding2D, LearnedPositionalEmbedding1D]
)
def test_wrong_token_count_is_a_clear_error(cls):
    emb = cls(8, 4)
    with pytest.raises(ValueError, match=r"\(B, 16, C\)"):
        emb(torch.zeros(1, 15, 8))


def test_sincos_gamma_scales_the_table():
    emb = SinCosPositionalEmbedding2D(8, 2)
    tokens = torch.zeros(1, 4, 8)
    base = emb(tokens)
    with torch.no_grad():
        emb.gamma.fill_(3.0)
    torch.testing.assert_close(emb(tokens), 3 * base)


def test_build_rejects_unknown_kind_and_none_is_identity():
    assert build_positional_embedding("none", 8, 4) is None
    with pytest.raises(ValueError, match="pos_type"):
        build_positional_embedding("rotary", 8, 4)

"""DINOv2Backbone: transformers Dinov2Model patch tokens as a (B, C, H/14, W/14) feature map."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from lsd.models.dinov2 import DINOv2Backbone  # noqa: E402
from lsd.models.pretrained import PretrainedNotFound  # noqa: E402

from ._roundtrip import assert_round_trip  # noqa: E402

HIDDEN, PATCH, RES = 32, 14, 28
SIDE = RES // PATCH  # 2x2 patch grid


def _dinov2_config(num_register_tokens: int = 0):
    kwargs = dict(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=PATCH,
        image_size=RES,
    )
    if num_register_tokens:
        return transformers.Dinov2WithRegistersConfig(**kwargs, num_register_tokens=num_register_tokens)
    return transformers.Dinov2Config(**kwargs)


def _perturb_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seed-specific values in every parameter (LayerNorm ones/zeros, CLS, mask token, ...)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def _backbone(num_register_tokens: int = 0, seed: int = 0) -> DINOv2Backbone:
    torch.manual_seed(seed)
    cfg = _dinov2_config(num_register_tokens)
    return _perturb_(DINOv2Backbone(dinov2_config=cfg.to_dict(), input_resolution=RES), seed + 100).eval()


def _pixels(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, RES, RES, generator=torch.Generator().manual_seed(seed))


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("num_register_tokens", [0, 4])
def test_feature_map_is_row_major_patch_tokens(num_register_tokens):
    backbone = _backbone(num_register_tokens)
    # An independent transformers model with the same weights gives the token sequence.
    model_cls = transformers.Dinov2WithRegistersModel if num_register_tokens else transformers.Dinov2Model
    reference = model_cls(_dinov2_config(num_register_tokens)).eval()
    reference.load_state_dict(backbone.model.state_dict())
    pixels = _pixels()
    with torch.no_grad():
        tokens = reference(pixel_values=pixels).last_hidden_state  # (B, 1 + registers + 4, C)
        features = backbone(pixels)

    assert tokens.shape == (2, 1 + num_register_tokens + SIDE * SIDE, HIDDEN)
    assert features.shape == (2, HIDDEN, SIDE, SIDE)
    first_patch = 1 + num_register_tokens  # after CLS and the registers
    for j in range(SIDE * SIDE):
        row, col = j // SIDE, j % SIDE
        torch.testing.assert_close(features[:, :, row, col], tokens[:, first_patch + j], rtol=0, atol=0)
    # Neither CLS nor a register token leaks into the map.
    extra = tokens[:, :first_patch]  # (B, 1 + registers, C)
    flat = features.flatten(2).transpose(1, 2)  # (B, 4, C)
    assert not any(torch.equal(flat[b, i], extra[b, k]) for b in range(2) for i in range(4) for k in range(first_patch))


def test_feature_map_follows_image_layout():
    """With attention switched off, editing one 14x14 image patch changes only its own map cell."""
    backbone = _backbone()
    pixels = _pixels(batch=1)
    edited = pixels.clone()
    edited[:, :, 0:PATCH, PATCH : 2 * PATCH] += 3.0  # top-right patch: row 0, col 1
    with torch.no_grad():
        # Zero each attention output projection (o_proj in transformers 5, output.dense in 4).
        for layer in backbone.model.encoder.layer:
            attention = layer.attention
            out_proj = attention.o_proj if hasattr(attention, "o_proj") else attention.output.dense
            out_proj.weight.zero_()
            out_proj.bias.zero_()
        delta = (backbone(edited) - backbone(pixels)).abs().sum(1)[0]  # (2, 2)
    assert delta[0, 1] > 0
    assert delta[0, 0] == 0 and delta[1, 0] == 0 and delta[1, 1] == 0


def test_feature_properties():
    backbone = _backbone()
    assert backbone.feature_channels == HIDDEN
    assert backbone.feature_resolution == SIDE
    bigger = DINOv2Backbone(dinov2_config=_dinov2_config().to_dict(), input_resolution=56)
    assert bigger.feature_resolution == 4
    assert bigger(torch.zeros(1, 3, 56, 56)).shape == (1, bigger.feature_channels, 4, 4)


def test_save_and_from_pretrained_round_trip_is_exact(tmp_path):
    pixels = _pixels()
    loaded = assert_round_trip(_backbone(seed=1), tmp_path / "backbone", lambda m: m(pixels))
    assert type(loaded) is DINOv2Backbone and loaded.config.input_resolution == RES
    assert loaded.model.config.hidden_size == HIDDEN


def test_from_dinov2_local_folder_loads_saved_weights(tmp_path):
    torch.manual_seed(2)
    saved = _perturb_(transformers.Dinov2Model(_dinov2_config()), 7).eval()
    saved.save_pretrained(tmp_path / "dinov2")

    torch.manual_seed(99)
    backbone = DINOv2Backbone.from_dinov2(tmp_path / "dinov2", input_resolution=RES).eval()

    _assert_same_state(backbone.model.state_dict(), saved.state_dict())
    assert backbone.config.input_resolution == RES
    assert backbone.feature_channels == HIDDEN
    pixels = _pixels()
    with torch.no_grad():
        tokens = saved(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(backbone(pixels)[:, :, 1, 0], tokens[:, 1 + 2], rtol=0, atol=0)


def test_from_dinov2_keeps_the_register_tokens_of_a_with_registers_checkpoint(tmp_path):
    """A plain Dinov2Model would silently drop them and give different features."""
    torch.manual_seed(0)
    saved = _perturb_(transformers.Dinov2WithRegistersModel(_dinov2_config(4)), 5).eval()
    saved.save_pretrained(tmp_path / "regs")
    backbone = DINOv2Backbone.from_dinov2(tmp_path / "regs", input_resolution=RES).eval()
    _assert_same_state(backbone.model.state_dict(), saved.state_dict())
    pixels = _pixels()
    with torch.no_grad():
        tokens = saved(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(backbone(pixels)[:, :, 0, 1], tokens[:, 1 + 4 + 1], rtol=0, atol=0)


def test_other_model_types_are_refused():
    with pytest.raises(ValueError, match="'vit'"):
        DINOv2Backbone(dinov2_config={"model_type": "vit"}, input_resolution=RES)


def test_from_dinov2_missing_path_raises(tmp_path):
    missing = tmp_path / "no-dinov2"
    with pytest.raises(PretrainedNotFound) as info:
        DINOv2Backbone.from_dinov2(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("shape", [(2, 3, 42, 42), (2, 3, 28, 42), (3, 28, 28), (2, 3, 14, 14)])
def test_wrong_input_size_raises_with_expected_shape(shape):
    backbone = _backbone()
    with pytest.raises(ValueError, match=r"\(B, 3, 28, 28\)"):
        backbone(torch.zeros(shape))


def test_input_resolution_not_multiple_of_patch_raises():
    with pytest.raises(ValueError, match="patch_size"):
        DINOv2Backbone(dinov2_config=_dinov2_config().to_dict(), input_resolution=30)

"""The shared round-trip tester fails on what a broken save/load would do."""

from __future__ import annotations

import pytest
import torch

from lsd.models.slot_attention import SlotAttention

from ._roundtrip import assert_round_trip

CFG = dict(num_slots=3, input_size=8, out_size=8, slot_size=8, mlp_hidden_size=8, input_resolution=2)


def test_a_changed_weight_or_config_is_caught(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = SlotAttention(**CFG)
    assert_round_trip(model, tmp_path / "ok")
    original = SlotAttention.from_pretrained.__func__

    def perturbed(cls, folder, **kwargs):
        loaded = original(cls, folder, **kwargs)
        with torch.no_grad():
            loaded.project_q.weight.add_(1e-7)
        return loaded

    monkeypatch.setattr(SlotAttention, "from_pretrained", classmethod(perturbed))
    with pytest.raises(AssertionError, match="project_q.weight"):
        assert_round_trip(model, tmp_path / "bad")
    monkeypatch.setattr(
        SlotAttention, "from_pretrained", classmethod(lambda cls, f: SlotAttention(**CFG, epsilon=1e-3))
    )
    with pytest.raises(AssertionError):
        assert_round_trip(model, tmp_path / "config")

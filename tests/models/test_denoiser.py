import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from lsd.backends import KernelBackendUnavailable
from lsd.models.denoiser import PositionalAttnProcessor, SlotConditionedUNet

from ..release_fixture import TINY_UNET, pos_attention_layers
from ._roundtrip import assert_round_trip


def make(pos_type="cartesian", seed=0):
    torch.manual_seed(seed)
    unet = SlotConditionedUNet(**TINY_UNET, pos_type=pos_type)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if ".pos_emb." in name:
                p.add_(0.3 * torch.randn_like(p))  # learned tables start near 0; make them matter
    return unet


def inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 8, 8, generator=gen), torch.tensor([3, 900]), torch.randn(2, 5, 16, generator=gen)


def hooked_plain_unet(ours: SlotConditionedUNet) -> UNet2DConditionModel:
    """Release semantics: a plain UNet whose attention modules get ours' embedding added to their
    first input by a forward pre-hook."""
    plain = UNet2DConditionModel(**TINY_UNET)
    plain.load_state_dict({k: v for k, v in ours.state_dict().items() if ".pos_emb." not in k})
    for path in pos_attention_layers(plain):
        emb = ours.get_submodule(path).pos_emb

        def add(module, args, kwargs, emb=emb):
            return (emb(args[0]), *args[1:]), kwargs

        plain.get_submodule(path).register_forward_pre_hook(add, with_kwargs=True)
    return plain


def test_every_cross_attention_transformer_block_gets_embeddings_sized_to_its_grid():
    unet = make()
    expected = pos_attention_layers(unet)  # attn1 and attn2 of every transformer block
    found = {
        name.removesuffix(".pos_emb"): m.resolution for name, m in unet.named_modules() if name.endswith(".pos_emb")
    }
    assert found == expected
    assert set(expected.values()) == {8, 4}  # several resolutions exercised
    for path in expected:
        attn = unet.get_submodule(path)
        assert attn.pos_emb.projection.out_channels == attn.to_q.in_features


@pytest.mark.parametrize("pos_type", ["cartesian", "sincos", "learned"])
def test_output_equals_release_semantics(pos_type):
    unet = make(pos_type)
    sample, t, slots = inputs()
    expected = hooked_plain_unet(unet)(sample, t, encoder_hidden_states=slots).sample
    torch.testing.assert_close(unet(sample, t, encoder_hidden_states=slots).sample, expected, rtol=1e-5, atol=1e-6)


def test_cross_attention_embedding_touches_queries_only():
    unet = make()
    path = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    captured = {}

    def record_input(module, args, kwargs):
        captured["query_in"] = args[0]

    def capturing_sdpa(attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        captured["query_seen"], captured["kv_seen"] = hidden_states, encoder_hidden_states
        return AttnProcessor2_0()(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

    unet.get_submodule(path).register_forward_pre_hook(record_input, with_kwargs=True)
    unet.set_attn_processor({**unet.attn_processors, f"{path}.processor": capturing_sdpa})
    sample, t, slots = inputs()
    unet(sample, t, encoder_hidden_states=slots)
    emb = unet.get_submodule(path).pos_emb
    torch.testing.assert_close(captured["query_seen"], emb(captured["query_in"]))
    assert torch.equal(captured["kv_seen"], slots)


def test_none_is_the_plain_unet():
    unet = make("none")
    assert not any(name.endswith("pos_emb") for name, _ in unet.named_modules())
    plain = UNet2DConditionModel(**TINY_UNET)
    plain.load_state_dict(unet.state_dict())
    sample, t, slots = inputs()
    torch.testing.assert_close(
        unet(sample, t, encoder_hidden_states=slots).sample, plain(sample, t, encoder_hidden_states=slots).sample
    )


def test_swapping_processors_keeps_the_embeddings():
    unet = make()
    sample, t, slots = inputs()
    reference = unet(sample, t, encoder_hidden_states=slots).sample
    unet.set_default_attn_processor()  # diffusers' non-SDPA processor
    procs = list(unet.attn_processors.values())
    assert all(isinstance(p, PositionalAttnProcessor) and isinstance(p.inner, AttnProcessor) for p in procs)
    torch.testing.assert_close(unet(sample, t, encoder_hidden_states=slots).sample, reference, rtol=1e-5, atol=1e-5)
    unet.set_attn_processor(AttnProcessor2_0())
    torch.testing.assert_close(unet(sample, t, encoder_hidden_states=slots).sample, reference, rtol=1e-6, atol=1e-6)


def test_wrong_latent_size_is_a_clear_error():
    unet = make()
    with pytest.raises(ValueError, match="8x8 grid"):
        unet(torch.zeros(1, 4, 16, 16), 0, encoder_hidden_states=torch.zeros(1, 5, 16))


def test_unknown_pos_type_and_backend(monkeypatch):
    from lsd.models.attention import SlotCrossAttnProcessor

    with pytest.raises(ValueError, match="pos_type"):
        SlotConditionedUNet(**TINY_UNET, pos_type="rope")
    unet = make()
    assert unet.set_kernel_backend("torch") == "torch"
    # Available on CPU under TRITON_INTERPRET=1 (tests/conftest.py): the fused processor serves the
    # cross-attention layers (inside the positional wrapper), SDPA the self-attention ones.
    assert unet.set_kernel_backend("triton") == "triton"
    for name, proc in unet.attn_processors.items():
        inner = proc.inner if isinstance(proc, PositionalAttnProcessor) else proc
        expected = SlotCrossAttnProcessor if name.endswith("attn2.processor") else AttnProcessor2_0
        assert type(inner) is expected, name
    assert unet.set_kernel_backend("torch") == "torch"
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(KernelBackendUnavailable, match="TRITON_INTERPRET=1"):
        unet.set_kernel_backend("triton")
    assert unet.kernel_backend == "torch"
    with pytest.raises(ValueError, match="unknown kernel backend"):
        unet.set_kernel_backend("cuda")


@pytest.mark.parametrize("pos_type", ["cartesian", "sincos", "learned", "none"])
def test_save_load_round_trip_is_exact(tmp_path, pos_type):
    sample, t, slots = inputs()
    loaded = assert_round_trip(make(pos_type), tmp_path, lambda m: m(sample, t, encoder_hidden_states=slots).sample)
    assert type(loaded) is SlotConditionedUNet and loaded.config.pos_type == pos_type

import pytest
import torch

from lsd.backends import KernelBackendUnavailable
from lsd.models.slot_attention import SlotAttention, slot_attention_updates_ref

from ._roundtrip import assert_round_trip
from .slot_attention_oracle import oracle_slot_attention

CFG = dict(
    num_iterations=3, num_slots=5, num_heads=1, input_size=12, out_size=10, slot_size=16,
    mlp_hidden_size=20, input_resolution=4, epsilon=1e-6,
)  # fmt: skip


def public_config(model):
    return {k: v for k, v in model.config.items() if not k.startswith("_")}


def make(seed=0, **overrides):
    torch.manual_seed(seed)
    model = SlotAttention(**{**CFG, **overrides}).double()
    # non-trivial norms/biases so the oracle comparison exercises them
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def features(batch=2, frames=None, seed=1):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, CFG["input_size"], 4, 4) if frames is None else (batch, frames, CFG["input_size"], 4, 4)
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def noise_for(model, batch=2, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.config.num_slots, model.config.slot_size, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("frames", [None, 3])
def test_matches_independent_oracle(heads, frames):
    model = make(num_heads=heads)
    feats, noise = features(frames=frames), noise_for(model)
    out = model(feats, noise=noise)
    video = feats if frames else feats.unsqueeze(1)
    slots, attn = oracle_slot_attention(model.state_dict(), dict(model.config), video, noise)
    if not frames:
        slots, attn = slots[:, 0], attn[:, 0]
    torch.testing.assert_close(out.slots, slots, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.attn, attn, rtol=1e-10, atol=1e-10)


def test_learnable_init_matches_oracle_and_ignores_batch_noise():
    model = make(learnable_slot_init=True)
    feats = features()
    out = model(feats)
    slots, attn = oracle_slot_attention(model.state_dict(), dict(model.config), feats.unsqueeze(1), None)
    torch.testing.assert_close(out.slots, slots[:, 0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.initial_slots(3), model.slot_mu.expand(3, -1, -1))
    with pytest.raises(ValueError, match="learnable_slot_init"):
        model(feats, noise=noise_for(model))


def test_shapes_and_dtypes():
    model = SlotAttention(**{**CFG, "num_heads": 2})
    out = model(features().float())
    assert out.slots.shape == (2, 5, 10) and out.slots.dtype == torch.float32
    assert out.attn.shape == (2, 2, 16, 5) and out.attn.dtype == torch.float32
    assert out.hidden.shape == (2, 5, 16)
    video = model(features(frames=3).float())
    assert video.slots.shape == (2, 3, 5, 10) and video.attn.shape == (2, 3, 2, 16, 5)


@pytest.mark.parametrize("heads", [1, 4])
def test_attention_is_a_distribution_over_heads_and_slots(heads):
    model = make(num_heads=heads)
    attn = model(features(), noise=noise_for(model)).attn  # (B, H, N, S)
    torch.testing.assert_close(attn.sum(dim=(1, 3)), torch.ones(2, 16, dtype=torch.float64))
    assert (attn >= 0).all()


def test_normalised_weights_sum_to_one_over_inputs():
    # updates = w^T v with w normalised over inputs: for v = 1 every update is exactly 1.
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 7, 4, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 3, 50, 4, generator=gen, dtype=torch.float64)
    updates, attn = slot_attention_updates_ref(q, k, torch.ones(2, 3, 50, 4, dtype=torch.float64), 1e-6)
    torch.testing.assert_close(updates, torch.ones_like(updates))
    # and a weighted mean lies within the range of the values
    v = torch.randn(2, 3, 50, 4, generator=gen, dtype=torch.float64)
    updates, _ = slot_attention_updates_ref(q, k, v, 1e-6)
    assert (updates <= v.amax(dim=2, keepdim=True) + 1e-12).all()
    assert (updates >= v.amin(dim=2, keepdim=True) - 1e-12).all()


def test_epsilon_is_added_before_normalising():
    # a slot that receives no attention still averages all inputs uniformly thanks to epsilon
    k = torch.zeros(1, 1, 3, 1, dtype=torch.float64)
    k[0, 0, :, 0] = torch.tensor([1000.0, 1000.0, 1000.0])
    q = torch.tensor([[[[1.0], [-1.0]]]], dtype=torch.float64)  # slot 1 gets ~0 attention
    v = torch.tensor([[[[1.0], [2.0], [6.0]]]], dtype=torch.float64)
    updates, attn = slot_attention_updates_ref(q, k, v, 1e-6)
    assert attn[0, 0, :, 1].max() < 1e-300
    torch.testing.assert_close(updates[0, 0, 1, 0], torch.tensor(3.0, dtype=torch.float64))


@pytest.mark.parametrize("heads", [1, 2])
def test_slot_permutation_equivariance(heads):
    model = make(num_heads=heads)
    feats, noise = features(), noise_for(model)
    perm = torch.tensor([3, 0, 4, 1, 2])
    out = model(feats, noise=noise)
    permuted = model(feats, noise=noise[:, perm])
    torch.testing.assert_close(permuted.slots, out.slots[:, perm], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(permuted.attn, out.attn[..., perm], rtol=1e-10, atol=1e-10)


def test_noise_makes_results_reproducible_and_matters():
    model = make()
    feats = features()
    a = model(feats, noise=noise_for(model, seed=5)).slots
    b = model(feats, noise=noise_for(model, seed=5)).slots
    c = model(feats, noise=noise_for(model, seed=6)).slots
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_bi_level_forward_equals_plain_and_gradient_is_straight_through():
    plain = make(learnable_slot_init=True)
    bi = make(learnable_slot_init=True, bi_level=True)
    bi.load_state_dict(plain.state_dict())
    feats = features()
    # x + mu - mu is x up to one rounding step
    torch.testing.assert_close(bi(feats).slots, plain(feats).slots, rtol=1e-12, atol=1e-12)

    bi(feats).slots.square().sum().backward()

    # Expected: run all but the last iteration without gradient, then the last from a leaf.
    tokens = plain.embed_inputs(feats.unsqueeze(1))[:, 0]
    k, v = plain.project_inputs(tokens)
    with torch.no_grad():
        slots = plain.initial_slots(2)
        for _ in range(plain.config.num_iterations - 1):
            slots, _ = plain.step(slots, k, v)
    leaf = slots.clone().requires_grad_(True)
    last, _ = plain.step(leaf, k, v)
    plain.out_linear(plain.out_layer_norm(last)).square().sum().backward()

    torch.testing.assert_close(bi.slot_mu.grad, leaf.grad.sum(0, keepdim=True), rtol=1e-10, atol=1e-12)
    for name in ("project_q.weight", "gru.weight_hh", "mlp.0.weight", "project_k.weight", "in_mlp.0.weight"):
        torch.testing.assert_close(
            bi.get_parameter(name).grad, plain.get_parameter(name).grad, rtol=1e-10, atol=1e-12, msg=name
        )


@pytest.mark.parametrize("heads", [1, 2])
def test_logit_scale_multiplies_the_logits(heads):
    # logit_scale=c must equal the release model (c=1) whose key projection is c times larger,
    # and sharpen the attention of the same parameters.
    scaled = make(num_heads=heads, logit_scale=2.5)
    release = SlotAttention(**{**CFG, "num_heads": heads}).double()
    state = dict(scaled.state_dict())
    state["project_k.weight"] = 2.5 * state["project_k.weight"]
    release.load_state_dict(state)
    feats, noise = features(), noise_for(scaled)
    a, b = scaled(feats, noise=noise), release(feats, noise=noise)
    torch.testing.assert_close(a.slots, b.slots, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a.attn, b.attn, rtol=1e-10, atol=1e-10)
    plain = SlotAttention(**{**CFG, "num_heads": heads}).double()
    plain.load_state_dict(scaled.state_dict())
    entropy = lambda attn: -(attn * attn.log()).sum(-1).mean()  # noqa: E731
    k, v = plain.project_inputs(plain.embed_inputs(feats.unsqueeze(1))[:, 0])
    k_scaled, _ = scaled.project_inputs(scaled.embed_inputs(feats.unsqueeze(1))[:, 0])
    slots = plain.initial_slots(2, noise)
    assert entropy(scaled.step(slots, k_scaled, v)[1]) < entropy(plain.step(slots, k, v)[1])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="logit_scale"):
        SlotAttention(**{**CFG, "logit_scale": 0.0})
    with pytest.raises(ValueError, match="divisible"):
        SlotAttention(**{**CFG, "num_heads": 3})
    with pytest.raises(ValueError, match="learnable_slot_init"):
        SlotAttention(**{**CFG, "bi_level": True})
    model = SlotAttention(**CFG)
    with pytest.raises(ValueError, match="input_size, input_resolution"):
        model(torch.zeros(2, 12, 5, 5))
    with pytest.raises(ValueError, match=r"\(B, num_slots, slot_size\)"):
        model(torch.zeros(2, 12, 4, 4), noise=torch.zeros(2, 4, 16))
    with pytest.raises(ValueError, match="features must be"):
        model(torch.zeros(12, 4, 4))


def test_kernel_backend_selection(monkeypatch):
    model = SlotAttention(**CFG)
    assert model.set_kernel_backend("torch") == "torch"
    # The fused ops ship with lsd_kernels and run on CPU under TRITON_INTERPRET=1 (tests/conftest.py).
    assert model.set_kernel_backend("auto") == "triton"
    assert model.set_kernel_backend("triton") == "triton" and model.kernel_backend == "triton"
    assert model.set_kernel_backend("torch") == "torch"
    # Without the interpreter, a CPU module cannot run Triton: "triton" raises with the reason,
    # "auto" falls back to the reference.
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(KernelBackendUnavailable, match="triton.*CUDA device.*TRITON_INTERPRET=1"):
        model.set_kernel_backend("triton")
    assert model.kernel_backend == "torch"  # a failed switch changes nothing
    assert model.set_kernel_backend("auto") == "torch"
    with pytest.raises(ValueError, match="unknown kernel backend"):
        model.set_kernel_backend("cuda")


def test_save_load_round_trip_is_exact(tmp_path):
    model = make(num_heads=2).float()
    feats, noise = features().float(), noise_for(model).float()
    loaded = assert_round_trip(model, tmp_path, lambda m: m(feats, noise=noise).slots)
    assert type(loaded) is SlotAttention and loaded.config.num_heads == 2

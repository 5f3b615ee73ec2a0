"""The fused kernels inside the models: backend "triton" against "torch", torch.compile, training.

CPU under TRITON_INTERPRET=1 (tests/conftest.py). Compile tests use the "aot_eager" backend:
it traces the custom ops through their fake and autograd registrations exactly as inductor does,
but inductor's C++ code generation takes minutes on a 2-core CPU (the inductor variant is marked
slow).
"""

from __future__ import annotations

import copy

import pytest
import torch

from lsd.configs import build_model
from lsd.models.denoiser import SlotConditionedUNet
from lsd.models.slot_attention import SlotAttention
from lsd.training.objective import training_loss

from ..release_fixture import TINY_SLOT_ATTN, TINY_UNET
from ._compare import FP32_ATOL, FP32_RTOL, assert_close

#: Learning rate of the training comparison. It uses plain SGD: its update is linear in the
#: gradient, so float-level gradient differences between the backends stay float-level in the
#: weights. (AdamW's m / sqrt(v) is scale-free: a weight whose gradient is ~0 moves by up to lr per
#: step on float noise alone, which made an AdamW comparison depend on the CPU's reduction order.)
TRAIN_LR = 0.1
#: Weights move by about 4e-2 in 5 steps; the backends differed by 1.2e-7 (2 threads, this CPU).
TRAIN_PARAM_ATOL = 1e-5


def slot_attention_and_inputs(seed=0):
    torch.manual_seed(seed)
    model = SlotAttention(**TINY_SLOT_ATTN)
    gen = torch.Generator().manual_seed(seed + 1)
    features = torch.randn(2, TINY_SLOT_ATTN["input_size"], 8, 8, generator=gen)
    noise = torch.randn(2, TINY_SLOT_ATTN["num_slots"], TINY_SLOT_ATTN["slot_size"], generator=gen)
    return model, features, noise


def unet_and_inputs(seed=0):
    torch.manual_seed(seed)
    unet = SlotConditionedUNet(**TINY_UNET)
    gen = torch.Generator().manual_seed(seed + 1)
    latents = torch.randn(2, 4, 8, 8, generator=gen)
    slots = torch.randn(2, 5, TINY_UNET["cross_attention_dim"], generator=gen)
    return unet, latents, torch.tensor([3, 900]), slots


def slot_attention_step(model, features, noise):
    """Outputs and parameter gradients of a loss touching slots and attention maps."""
    model.zero_grad()
    out = model(features, noise=noise)
    (out.slots.square().mean() + out.attn.square().sum()).backward()
    grads = {name.removeprefix("_orig_mod."): p.grad.clone() for name, p in model.named_parameters()}
    return out.slots.detach(), out.attn.detach(), grads


def unet_step(unet, latents, timesteps, slots):
    unet.zero_grad()
    slots = slots.detach().requires_grad_()
    pred = unet(latents, timesteps, encoder_hidden_states=slots).sample
    pred.square().mean().backward()
    grads = {
        name.removeprefix("_orig_mod."): p.grad.clone() for name, p in unet.named_parameters() if p.grad is not None
    }
    return pred.detach(), slots.grad, grads


def assert_steps_close(ours, ref, names):
    for name, a, e in zip(names, ours[:-1], ref[:-1], strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)
    assert ours[-1].keys() == ref[-1].keys()
    for name in ref[-1]:
        assert_close(ours[-1][name], ref[-1][name], f"grad of {name}", atol=FP32_ATOL, rtol=FP32_RTOL)


def test_slot_attention_triton_backend_matches_torch():
    model, features, noise = slot_attention_and_inputs()
    assert model.set_kernel_backend("torch") == "torch"
    ref = slot_attention_step(model, features, noise)
    assert model.set_kernel_backend("triton") == "triton"
    ours = slot_attention_step(model, features, noise)
    assert_steps_close(ours, ref, ("slots", "attn"))


def test_denoiser_triton_backend_matches_torch():
    unet, *inputs = unet_and_inputs()
    assert unet.set_kernel_backend("torch") == "torch"
    ref = unet_step(unet, *inputs)
    assert unet.set_kernel_backend("triton") == "triton"
    ours = unet_step(unet, *inputs)
    assert_steps_close(ours, ref, ("pred", "d slots"))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_slot_attention_runs_twice_without_recompiling(backend):
    model, features, noise = slot_attention_and_inputs()
    ref = slot_attention_step(model, features, noise)  # eager torch backend
    model.set_kernel_backend("triton")
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(2):
            ours = slot_attention_step(compiled, features, noise)
            assert_steps_close(ours, ref, ("slots", "attn"))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_denoiser_runs_twice_without_recompiling(backend):
    unet, *inputs = unet_and_inputs()
    ref = unet_step(unet, *inputs)  # eager torch backend (SDPA)
    unet.set_kernel_backend("triton")
    compiled = torch.compile(unet, fullgraph=True, backend=backend)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(2):
            ours = unet_step(compiled, *inputs)
            assert_steps_close(ours, ref, ("pred", "d slots"))


def train(model, backend, steps=5):
    """``steps`` SGD steps of the LSD loss on fixed data and draws; returns the losses."""
    model.set_kernel_backend(backend)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=TRAIN_LR)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 2 - 1
    losses = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = training_loss(model, images, generator=torch.Generator().manual_seed(100 + step)).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_training_with_triton_kernels_matches_torch():
    torch.manual_seed(0)
    ref_model = build_model("tiny")
    model = copy.deepcopy(ref_model)
    initial = {name: p.detach().clone() for name, p in ref_model.named_parameters()}
    ref_losses = train(ref_model, "torch")
    losses = train(model, "triton")
    assert_close(torch.tensor(losses), torch.tensor(ref_losses), "losses", atol=1e-6, rtol=1e-5)
    ref_params = dict(ref_model.named_parameters())
    moved = max((p.detach() - initial[name]).abs().max().item() for name, p in ref_params.items())
    assert moved > 1000 * TRAIN_PARAM_ATOL, f"training barely changed the weights (max change {moved:.2e})"
    for name, p in model.named_parameters():
        assert_close(p.detach(), ref_params[name].detach(), name, atol=TRAIN_PARAM_ATOL, rtol=0)

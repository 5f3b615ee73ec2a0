"""Slot attention (the whole module: input MLP, k/v projections, 3 iterations, output head),
forward and forward+backward, at the MOVi-E shape and a small one.

Providers (reference first): ``eager`` (the readable torch reference, what the release runs),
``compile`` (``torch.compile`` of the same module) and ``triton`` (the fused read-out kernel,
CUDA only). On a GPU the module runs under bf16 autocast with fp32 weights; on CPU in fp32.

FLOPs are counted by ``FlopCounterMode`` on the eager reference and checked against the
hand-written formula :func:`slot_attention_flops` (docs/perf.md derives it).
"""

from __future__ import annotations

import contextlib
import time

import pytest
import torch

from lsd.configs import load_config
from lsd.models.slot_attention import SlotAttention

from ._perf import Work, compile_backend, count_flops, max_rel_diff, measure, skip_unless_runnable, sync

PROVIDERS = ("eager", "compile", "triton")  # the reference first: its median is the groups' baseline
REFERENCE = "eager"
#: shape name -> (config whose slot_attention entry is used, batch on CPU, batch on GPU). MOVi-E at
#: batch 4 on CPU keeps forward+backward near 0.5 s per call on one shared core.
SHAPES = {"movi-e": ("movi-e", 4, 32), "small": ("tiny", 8, 64)}
#: Largest max|provider - eager| / max|eager| allowed on the output (forward: slots; backward: the
#: features' gradient), checked once before timing.
TOLERANCE = {"fp32": 1e-3, "bf16 autocast": 5e-2}


def slot_attention_config(config_name: str) -> dict:
    """The ``slot_attention`` entry of a shipped model config, without ``_class_name``."""
    cfg = dict(load_config(config_name)["slot_attention"])
    cfg.pop("_class_name")
    return cfg


def slot_attention_flops(cfg: dict, batch: int, backward: bool) -> int:
    """FLOPs of one :class:`SlotAttention` call on ``(batch, C, R, R)`` features, written by hand:
    the matmuls and the 1x1 convolution that ``FlopCounterMode`` counts (2 FLOPs per
    multiply-add; layer norms, softmax and other elementwise ops are not counted).

    With ``C`` = input_size, ``D`` = slot_size (= heads x head dim), ``S`` slots, ``M`` MLP width,
    ``O`` out_size, ``T`` iterations and ``N = R^2`` inputs, per image::

        in_mlp         2 * 2*N*C*C
        k, v           2 * 2*N*C*D
        per iteration  2*S*D*D        q projection
                       2*N*S*D        logits k.q (summed over heads: H * N*S*d = N*S*D)
                       2*N*S*D        weighted sum of v
                       2 * 2*S*D*3D   GRU cell: input and hidden linears, 3 gates
                       2 * 2*S*D*M    slot MLP
        output         2*S*D*O

    plus the positional table, a 1x1 conv of the 4-channel grid computed once per call (not per
    image): ``2*4*C*N``. Backward: every matmul costs twice its forward (input and weight
    gradients); the conv only its weight gradient (the grid needs none).
    """
    c, d, s, m, o = cfg["input_size"], cfg["slot_size"], cfg["num_slots"], cfg["mlp_hidden_size"], cfg["out_size"]
    t, n = cfg["num_iterations"], cfg["input_resolution"] ** 2
    per_iteration = 2 * s * d * d + 2 * (2 * n * s * d) + 2 * (2 * s * d * 3 * d) + 2 * (2 * s * d * m)
    per_image = 2 * (2 * n * c * c) + 2 * (2 * n * c * d) + t * per_iteration + 2 * s * d * o
    pos = 2 * 4 * c * n
    matmuls = batch * per_image
    return 3 * matmuls + 2 * pos if backward else matmuls + pos


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _inputs(cfg: dict, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    res = cfg["input_resolution"]
    features = torch.randn(batch, cfg["input_size"], res, res, generator=gen)
    noise = torch.randn(batch, cfg["num_slots"], cfg["slot_size"], generator=gen)
    return features.to(device), noise.to(device)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
def test_flop_formula_matches_counter(shape: str, backward: bool) -> None:
    """The hand formula equals FlopCounterMode's count (also asserted in every benchmark)."""
    config_name, _, _ = SHAPES[shape]
    cfg = slot_attention_config(config_name)
    torch.manual_seed(0)
    module = SlotAttention(**cfg)
    features, noise = _inputs(cfg, 2, torch.device("cpu"))
    features.requires_grad_(backward)

    def call() -> None:
        out = module(features, noise=noise)
        if backward:
            out.slots.square().mean().backward()

    assert count_flops(call) == slot_attention_flops(cfg, 2, backward)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
def test_slot_attention(benchmark, device: torch.device, backward: bool, shape: str, provider: str) -> None:
    """Features ``(B, C, R, R)`` -> slots ``(B, S, O)`` (and, with backward, all gradients)."""
    skip_unless_runnable(provider, device)
    config_name, batch_cpu, batch_gpu = SHAPES[shape]
    cfg = slot_attention_config(config_name)
    batch = batch_gpu if device.type == "cuda" else batch_cpu
    dtype = "bf16 autocast" if device.type == "cuda" else "fp32"
    torch.manual_seed(0)
    module = SlotAttention(**cfg).to(device)
    features, noise = _inputs(cfg, batch, device)
    features.requires_grad_(backward)

    def make_call(fn):
        def call() -> torch.Tensor:
            """Forward (no grad) -> slots; or forward + backward -> the features' gradient."""
            if not backward:
                with torch.no_grad(), _autocast(device):
                    out = fn(features, noise=noise).slots
                sync(device)
                return out
            module.zero_grad(set_to_none=True)
            features.grad = None
            with _autocast(device):
                loss = fn(features, noise=noise).slots.float().square().mean()
            loss.backward()
            sync(device)
            return features.grad

        return call

    reference_call = make_call(module)
    flops = count_flops(reference_call)
    assert flops == slot_attention_flops(cfg, batch, backward), "FLOP formula disagrees with FlopCounterMode"
    expected = reference_call().clone()

    compile_s = None
    if provider == "triton":
        module.set_kernel_backend("triton")
        call = make_call(module)
    elif provider == "compile":
        torch._dynamo.reset()
        compiled = torch.compile(module, dynamic=False, backend=compile_backend(benchmark))
        call = make_call(compiled)
        start = time.perf_counter()
        call()  # compiles, outside the timed rounds
        compile_s = time.perf_counter() - start
    else:
        call = reference_call
    err = max_rel_diff(call(), expected)
    assert err <= TOLERANCE[dtype], f"{provider} differs from eager by {err:.3g} (relative to the largest value)"

    res = cfg["input_resolution"]
    heads, slots, slot_size = cfg["num_heads"], cfg["num_slots"], cfg["slot_size"]
    measure(
        benchmark,
        call,
        group=f"slot_attention {'fwd+bwd' if backward else 'fwd'} {shape}",
        provider=provider,
        reference=REFERENCE,
        device=device,
        work=Work(
            flops=flops,
            items=batch,
            shapes={
                "features": [batch, cfg["input_size"], res, res],
                "q": [batch, heads, slots, slot_size // heads],
                "k,v": [batch, heads, res * res, slot_size // heads],
            },
            dtype=dtype,
            extra={"config": config_name, "batch": batch, "num_iterations": cfg["num_iterations"]},
        ),
        compile_s=compile_s,
        max_rel_err=err,
    )

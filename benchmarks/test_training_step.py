"""One full LSD training step (VAE encode, backbone, slot attention, denoiser, loss, backward,
AdamW update): the tiny config on CPU (fp32), the MOVi-E config on a GPU (bf16 autocast, fp32
weights; the SD 2.1 VAE's shapes with random weights).

Providers (reference first): ``eager`` (as the release trains), ``compile`` (``Module.compile()``
of the backbone, slot attention and denoiser; the frozen VAE stays eager) and ``compile+triton``
(the same with the fused kernels, CUDA only). FLOPs: ``FlopCounterMode`` over the eager forward
and backward (the optimizer's elementwise update is not counted).
"""

from __future__ import annotations

import contextlib
import time

import pytest
import torch

from lsd.training.objective import training_loss

from ._models import build_lsd, config_for, resolution
from ._perf import Work, compile_backend, count_flops, measure, skip_unless_runnable, sync

PROVIDERS = ("eager", "compile", "compile+triton")
REFERENCE = "eager"
BATCH = {"cpu": 8, "cuda": 8}
#: |first loss - eager loss| / eager loss allowed (same weights, same random draws).
TOLERANCE = {"fp32": 1e-4, "bf16 autocast": 3e-2}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_training_step(benchmark, device: torch.device, provider: str) -> None:
    """Images ``(B, 3, R, R)`` -> one optimizer step; records images/s."""
    skip_unless_runnable(provider, device)
    config = config_for(device)
    batch = BATCH[device.type]
    dtype = "bf16 autocast" if device.type == "cuda" else "fp32"
    model = build_lsd(config, device)
    optimizer = torch.optim.AdamW([p for group in model.parameter_groups().values() for p in group], lr=1e-4)
    side = resolution(config)
    images = (torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)

    def loss_and_backward() -> torch.Tensor:
        generator = torch.Generator(device).manual_seed(0)  # the same draws every step
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
        with autocast:
            loss = training_loss(model, images, generator=generator).loss
        loss.backward()
        return loss.detach()

    def step() -> torch.Tensor:
        loss = loss_and_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        return loss

    flops_box: list[int] = []
    loss_box: list[torch.Tensor] = []
    flops_box.append(count_flops(lambda: loss_box.append(loss_and_backward())))
    optimizer.zero_grad(set_to_none=True)
    reference_loss = loss_box[0].item()

    if "triton" in provider:
        model.set_kernel_backend("triton")
    compile_s = None
    if "compile" in provider:
        torch._dynamo.reset()
        for name in ("backbone", "slot_attention", "unet"):
            getattr(model, name).compile(dynamic=False, backend=compile_backend(benchmark))
        start = time.perf_counter()
    else:
        start = None
    first_loss = step().item()  # compiles (compile providers), outside the timed rounds
    if start is not None:
        compile_s = time.perf_counter() - start
    err = abs(first_loss - reference_loss) / abs(reference_loss)
    assert err <= TOLERANCE[dtype], f"{provider}: first loss {first_loss} vs eager {reference_loss}"

    measure(
        benchmark,
        step,
        group=f"training_step {config}",
        provider=provider,
        reference=REFERENCE,
        device=device,
        work=Work(
            flops=flops_box[0],
            items=batch,
            shapes={"images": [batch, 3, side, side]},
            dtype=dtype,
            extra={"config": config, "batch": batch, "optimizer": "AdamW"},
        ),
        compile_s=compile_s,
        max_rel_err=err,
    )

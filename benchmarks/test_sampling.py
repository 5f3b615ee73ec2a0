"""Sampling throughput: ``LSDPipeline(slots=...)`` from slots to images with DDIM and
DPM-Solver++ at 25 steps (25 denoiser calls and one VAE decode), in fp32; the tiny config on CPU,
the MOVi-E config on a GPU.

Providers (reference first): ``eager`` (torch attention, as the release samples) and ``triton``
(the fused slot cross-attention in the denoiser, CUDA only). Records images/s; FLOPs counted by
``FlopCounterMode`` over one eager pipeline call.
"""

from __future__ import annotations

import pytest
import torch

from lsd.pipelines import LSDPipeline

from ._models import build_lsd, config_for, resolution
from ._perf import Work, count_flops, max_rel_diff, measure, skip_unless_runnable, sync

PROVIDERS = ("eager", "triton")
REFERENCE = "eager"
SAMPLERS = ("ddim", "dpm")
STEPS = 25
BATCH = {"cpu": 8, "cuda": 8}
#: Relative image difference allowed after 25 steps (fp32 on both paths).
TOLERANCE = 1e-2


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampling(benchmark, device: torch.device, sampler: str, provider: str) -> None:
    """Slots ``(B, S, out_size)`` -> images ``(B, 3, R, R)``."""
    skip_unless_runnable(provider, device)
    config = config_for(device)
    batch = BATCH[device.type]
    model = build_lsd(config, device).eval()
    side = resolution(config)
    images = (torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    with torch.no_grad():
        slots = model.encode(images, noise=None).slots
    pipe = LSDPipeline.from_model(model)
    pipe.set_progress_bar_config(disable=True)

    def call() -> torch.Tensor:
        generator = torch.Generator(device).manual_seed(0)
        out = pipe(slots=slots, num_inference_steps=STEPS, generator=generator, sampler=sampler, output_type="pt")
        out = out.images
        sync(device)
        return out

    flops = count_flops(call)
    expected = call()
    if provider == "triton":
        model.set_kernel_backend("triton")
    err = max_rel_diff(call(), expected)
    assert err <= TOLERANCE, f"{provider} images differ from eager by {err:.3g} (relative)"

    measure(
        benchmark,
        call,
        group=f"sampling {sampler} {STEPS} steps {config}",
        provider=provider,
        reference=REFERENCE,
        device=device,
        work=Work(
            flops=flops,
            items=batch,
            shapes={"slots": list(slots.shape), "images": [batch, 3, side, side]},
            dtype="fp32",
            extra={"config": config, "batch": batch, "sampler": sampler, "steps": STEPS},
        ),
        max_rel_err=err,
    )

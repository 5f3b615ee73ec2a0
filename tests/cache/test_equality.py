"""Training on cached frozen outputs computes what training on the images computes.

Two levels:
- the draw: given the same posterior mean/log-variance (features), the loss and every gradient
  are bitwise equal to the uncached step's, for per-sample and single generators;
- the cache: each image is encoded alone, which is bitwise what diffusers' sliced encode gives;
  against a batched encode the difference is bounded by the batched encode's own float32 error
  (measured against a float64 encode here).
"""

from __future__ import annotations

import pytest
import torch

from lsd.models.autoencoder import posterior_moments
from lsd.training.objective import training_loss

from ._models import generators, images, tiny_stable_lsd

SEEDS = (0, 1, 2)


def _loss_and_grads(model, pixels, gens, **kwargs):
    model.zero_grad(set_to_none=True)
    out = training_loss(model, pixels, generator=gens, **kwargs)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), out.mse.detach(), grads


def _assert_bitwise(reference, cached) -> None:
    (loss_a, mse_a, grads_a), (loss_b, mse_b, grads_b) = reference, cached
    assert torch.equal(loss_a, loss_b), (loss_a.item(), loss_b.item())
    assert torch.equal(mse_a, mse_b)
    assert grads_a.keys() == grads_b.keys() and grads_a
    unequal = [name for name in grads_a if not torch.equal(grads_a[name], grads_b[name])]
    assert not unequal, f"{len(unequal)} gradients differ, e.g. {unequal[:3]}"


def _posterior(vae, pixels):
    mean, logvar = posterior_moments(vae, pixels)
    return torch.cat([mean, logvar], dim=1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("per_sample", [True, False], ids=["per-sample-generators", "one-generator"])
def test_tiny_cached_posterior_gives_bitwise_equal_loss_and_gradients(tiny_model, seed, per_sample):
    pixels = images(2, 32, seed)
    gens = (lambda: generators(seed, 2)) if per_sample else (lambda: torch.Generator().manual_seed(seed))
    reference = _loss_and_grads(tiny_model, pixels, gens())
    cached = _loss_and_grads(tiny_model, pixels, gens(), posterior=_posterior(tiny_model.vae, pixels))
    _assert_bitwise(reference, cached)


@pytest.mark.parametrize("seed", SEEDS)
def test_stable_lsd_cached_posterior_and_backbone_features_give_bitwise_equal_loss_and_gradients(seed):
    model = tiny_stable_lsd(seed)
    pixels, view = images(2, 32, seed), images(2, 28, seed + 10)
    reference = _loss_and_grads(model, pixels, generators(seed, 2), backbone_pixel_values=view)
    with torch.no_grad():
        features = model.backbone(view)
    cached = _loss_and_grads(
        model, None, generators(seed, 2), posterior=_posterior(model.vae, pixels), backbone_features=features
    )
    _assert_bitwise(reference, cached)
    # only slot attention trains: the gradients reach it through the frozen UNet's cross-attention
    assert {name.split(".")[0] for name in cached[2]} == {"slot_attention"}


def test_backbone_features_are_refused_for_a_backbone_that_trains(tiny_model):
    with pytest.raises(ValueError, match="only when it is frozen"):
        training_loss(tiny_model, images(2, 32, 0), backbone_features=torch.zeros(2, 24, 8, 8))


def test_a_cached_posterior_needs_an_autoencoder_kl():
    from lsd.configs import build_model

    standin = build_model("standin")
    with pytest.raises(TypeError, match="PixelUnshuffleAutoencoder"):
        training_loss(standin, None, posterior=torch.zeros(1, 96, 16, 16))


def _encode_bound(vae, pixels):
    """(max |batched - alone|, max |batched - float64|, max |alone - float64|) of the posterior mean
    and log-variance."""
    batched = _posterior(vae, pixels)
    alone = torch.cat([_posterior(vae, pixels[i : i + 1]) for i in range(len(pixels))])
    exact = _posterior(vae.double(), pixels.double())
    vae.float()
    return (
        (batched - alone).abs().max().item(),
        (batched.double() - exact).abs().max().item(),
        (alone.double() - exact).abs().max().item(),
    )


def test_image_alone_encode_equals_sliced_encode_bitwise_and_batched_within_its_float64_error(tiny_model):
    vae, pixels = tiny_model.vae, images(4, 32, 5)
    alone = torch.cat([_posterior(vae, pixels[i : i + 1]) for i in range(4)])
    vae.enable_slicing()
    try:
        assert torch.equal(alone, _posterior(vae, pixels))  # what the cache stores = the sliced encode
    finally:
        vae.disable_slicing()
    between, batched_error, alone_error = _encode_bound(vae, pixels)
    assert between <= 2 * max(batched_error, alone_error) + 1e-7, (between, batched_error, alone_error)


@pytest.mark.slow
def test_movi_e_architecture_cached_posterior_is_bitwise_and_the_encode_within_float64_error():
    """The MOVi-E model (random init) with the SD 2.1 VAE's architecture, batch 2, three seeds."""
    from diffusers import AutoencoderKL

    from lsd.configs import build_model
    from lsd.models.architectures import SD21_VAE

    torch.manual_seed(0)
    model = build_model("movi-e", vae=AutoencoderKL(**SD21_VAE))
    for seed in SEEDS:
        pixels = images(2, 256, seed)
        posterior = _posterior(model.vae, pixels)
        reference = _loss_and_grads(model, pixels, generators(seed, 2))
        _assert_bitwise(reference, _loss_and_grads(model, pixels, generators(seed, 2), posterior=posterior))
    between, batched_error, alone_error = _encode_bound(model.vae, images(2, 256, 7))
    # measured (CPU, torch 2.13): 9.8e-7 between, 1.5e-6 and 1.1e-6 against float64
    assert between <= 2 * max(batched_error, alone_error), (between, batched_error, alone_error)

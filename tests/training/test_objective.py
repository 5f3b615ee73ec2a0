"""The training objective against a literal re-statement of the release's loss (train_lsd.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr

from lsd.configs import build_model, load_config
from lsd.training.objective import LSDObjective, training_loss


def release_loss(model, pixel_values, generator, noise_offset=0.0, snr_gamma=None):
    """The release's training step, written out line by line with the same random draws in the
    same order (VAE posterior sample, noise, offset noise, timesteps, slot-init noise)."""
    vae, scheduler = model.vae, model.scheduler
    latents = vae.encode(pixel_values).latent_dist.sample(generator=generator) * vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=generator)
    if noise_offset:
        noise += noise_offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=generator)
    bsz = latents.shape[0]
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (bsz,), generator=generator).long()
    noisy_latents = scheduler.add_noise(latents, noise, timesteps)
    sa = model.slot_attention.config
    slot_init = torch.randn((bsz, sa.num_slots, sa.slot_size), generator=generator)
    slots = model.slot_attention(model.backbone(pixel_values), noise=slot_init).slots
    model_pred = model.unet(noisy_latents, timesteps, slots).sample
    if scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = scheduler.get_velocity(latents, noise, timesteps)
    if snr_gamma is None:
        return F.mse_loss(model_pred.float(), target.float(), reduction="mean")
    snr = compute_snr(scheduler, timesteps)
    mse_loss_weights = torch.stack([snr, snr_gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0]
    if scheduler.config.prediction_type == "epsilon":
        mse_loss_weights = mse_loss_weights / snr
    else:
        mse_loss_weights = mse_loss_weights / (snr + 1)
    loss = F.mse_loss(model_pred.float(), target.float(), reduction="none")
    loss = loss.mean(dim=list(range(1, len(loss.shape)))) * mse_loss_weights
    return loss.mean()


@pytest.mark.parametrize(
    "prediction_type, objective",
    [("epsilon", {}), ("v_prediction", {"noise_offset": 0.1, "snr_gamma": 5.0}), ("epsilon", {"snr_gamma": 2.0})],
    ids=["epsilon", "v-offset-snr", "epsilon-snr"],
)
def test_loss_and_gradients_equal_the_releases(images, prediction_type, objective):
    config = load_config("tiny")
    config["scheduler"]["prediction_type"] = prediction_type
    config["objective"].update(objective)
    torch.manual_seed(0)
    model = build_model(config)
    params = [p for p in model.parameters() if p.requires_grad]

    ours = LSDObjective(model)(images, generator=torch.Generator().manual_seed(11)).loss
    ours_grads = torch.autograd.grad(ours, params)
    theirs = release_loss(model, images, torch.Generator().manual_seed(11), **objective)
    their_grads = torch.autograd.grad(theirs, params)

    assert ours.item() > 1e-3
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)  # the mean is taken in two stages in ours
    for p, a, b in zip(params, ours_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8, msg=lambda m, shape=tuple(p.shape): f"{shape}: {m}")
    # the module and the function are one computation
    again = training_loss(model, images, generator=torch.Generator().manual_seed(11)).loss
    assert torch.equal(again, ours)

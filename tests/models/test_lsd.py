import math
import os

import pytest
import torch

import lsd
from lsd.backends import KernelBackendUnavailable
from lsd.configs import build_model, load_config
from lsd.models.autoencoder import PixelUnshuffleAutoencoder
from lsd.models.lsd import DiffusionObjective, LatentSlotDiffusion, attention_to_segmentation
from lsd.training.objective import min_snr_weights, training_loss

from ._roundtrip import assert_round_trip


def public(config):
    return {k: v for k, v in config.items() if not k.startswith("_")}


def tiny(seed=0, **slot_attention):
    config = load_config("tiny")
    config["slot_attention"].update(slot_attention)
    torch.manual_seed(seed)
    return build_model(config)


def test_encode_shapes_and_dtypes(tiny_model, images):
    out = tiny_model.encode(images)
    assert out.slots.shape == (2, 4, 16) and out.slots.dtype == torch.float32
    assert out.attn.shape == (2, 2, 64, 4)  # (B, heads, N = 8*8, S)
    torch.testing.assert_close(out.attn.sum(dim=(1, 3)), torch.ones(2, 64))


def test_segment_is_argmax_of_bilinear_resized_head_summed_attention(tiny_model, images):
    noise = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(0))
    masks = tiny_model.segment(images, 48, noise=noise)
    assert masks.shape == (2, 48, 48) and masks.dtype == torch.int64
    assert masks.min() >= 0 and masks.max() < 4
    attn = tiny_model.encode(images, noise=noise).attn
    assert torch.equal(masks, attention_to_segmentation(attn, (48, 48)))


def test_attention_to_segmentation_known_answer():
    # 2x2 grid, 2 slots, 2 heads: slot 0 dominates the left column, slot 1 the right one.
    left = torch.tensor([0.45, 0.05])  # per head: (slot0, slot1)
    right = torch.tensor([0.05, 0.45])
    attn = torch.stack([left, right, left, right])  # N = 4 in row-major order
    attn = torch.stack([attn, attn])[None]  # (1, H=2, N=4, S=2)
    masks = attention_to_segmentation(attn, (4, 4))
    expected = torch.tensor([[0, 0, 1, 1]] * 4)
    assert torch.equal(masks[0], expected)
    with pytest.raises(ValueError, match="square"):
        attention_to_segmentation(torch.rand(1, 1, 6, 2), 3)


class _Recorder(torch.nn.Module):
    """Stands in for the denoiser: records its input and returns a chosen prediction."""

    def __init__(self, unet, predict):
        super().__init__()
        self.unet, self.predict, self.seen = unet, predict, {}
        self.config = unet.config

    def forward(self, sample, timestep, encoder_hidden_states):
        self.seen.update(sample=sample, timestep=timestep, slots=encoder_hidden_states)
        return type("Out", (), {"sample": self.predict(sample, timestep)})()


def pixel_model(prediction_type="epsilon", **objective):
    """A model whose latents are known exactly (pixel_unshuffle) and a recording denoiser."""
    config = load_config("tiny")
    config["scheduler"]["prediction_type"] = prediction_type
    config["unet"]["in_channels"] = config["unet"]["out_channels"] = 12
    config["objective"].update(objective)
    torch.manual_seed(0)
    return build_model(config, vae=PixelUnshuffleAutoencoder(factor=2, scaling_factor=1.5))


def alphas_bar(t):
    betas = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)[t]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_loss_is_zero_exactly_when_the_denoiser_predicts_the_right_target(images, prediction_type):
    model = pixel_model(prediction_type)
    z = torch.nn.functional.pixel_unshuffle(images, 2) * 1.5
    noise = torch.randn_like(z)
    t = torch.tensor([20, 800])
    ab = alphas_bar(t).float()[:, None, None, None]
    target = noise if prediction_type == "epsilon" else ab.sqrt() * noise - (1 - ab).sqrt() * z
    model.unet = _Recorder(model.unet, lambda sample, timestep: target)
    out = training_loss(model, images, noise=noise, timesteps=t)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-10)
    torch.testing.assert_close(model.unet.seen["sample"], ab.sqrt() * z + (1 - ab).sqrt() * noise, rtol=1e-5, atol=1e-6)
    wrong = noise if prediction_type == "v_prediction" else ab.sqrt() * noise - (1 - ab).sqrt() * z
    model.unet.predict = lambda sample, timestep: wrong
    assert training_loss(model, images, noise=noise, timesteps=t).loss.item() > 1e-3


def test_offset_noise_is_constant_per_sample_and_channel(images):
    model = pixel_model(noise_offset=0.1)
    model.unet = _Recorder(model.unet, lambda sample, timestep: torch.zeros_like(sample))
    z = torch.nn.functional.pixel_unshuffle(images, 2) * 1.5
    noise = torch.randn_like(z)
    t = torch.tensor([500, 500])
    training_loss(model, images, noise=noise, timesteps=t, generator=torch.Generator().manual_seed(0))
    ab = alphas_bar(t).float()[:, None, None, None]
    offset = (model.unet.seen["sample"] - (ab.sqrt() * z + (1 - ab).sqrt() * noise)) / (1 - ab).sqrt()
    assert offset.abs().amax() > 1e-3  # the offset is there ...
    torch.testing.assert_close(
        offset, offset[..., :1, :1].expand_as(offset), rtol=0, atol=1e-5
    )  # ... constant over H, W
    assert offset[..., 0, 0].std() > 0.01  # and differs per (sample, channel)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_gamma_weights(images, prediction_type):
    gamma = 5.0
    model = pixel_model(prediction_type, snr_gamma=gamma)
    t = torch.tensor([10, 999])  # snr far above and far below gamma
    ab = alphas_bar(t)
    snr = ab / (1 - ab)
    expected = torch.minimum(snr, torch.tensor(gamma)) / (snr if prediction_type == "epsilon" else snr + 1)
    torch.testing.assert_close(min_snr_weights(model, t).double(), expected, rtol=1e-5, atol=0)
    out = training_loss(model, images, timesteps=t, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.loss, (out.mse * expected.float()).mean())
    assert not math.isclose(out.loss.item(), out.mse.mean().item(), rel_tol=1e-3)


def test_timesteps_are_drawn_from_the_configured_range(images):
    model = pixel_model(min_timestep=300, max_timestep=310)
    model.unet = _Recorder(model.unet, lambda sample, timestep: torch.zeros_like(sample))
    drawn = torch.cat(
        [training_loss(model, images, generator=torch.Generator().manual_seed(i)).timesteps for i in range(40)]
    )
    assert drawn.min() >= 300 and drawn.max() <= 310 and len(drawn.unique()) > 5
    with pytest.raises(ValueError, match="timestep range"):
        pixel_model(min_timestep=500, max_timestep=1000)


def test_training_loss_is_reproducible_with_a_generator(tiny_model, images):
    a = training_loss(tiny_model, images, generator=torch.Generator().manual_seed(3)).loss
    b = training_loss(tiny_model, images, generator=torch.Generator().manual_seed(3)).loss
    c = training_loss(tiny_model, images, generator=torch.Generator().manual_seed(4)).loss
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "slot_attention",
    [{}, {"learnable_slot_init": True}, {"learnable_slot_init": True, "bi_level": True}],
    ids=["gaussian", "learnable", "bi-level"],
)
def test_every_trainable_parameter_gets_a_gradient(images, slot_attention):
    model = tiny(**slot_attention)
    training_loss(model, images, generator=torch.Generator().manual_seed(0)).loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("vae.") for n in trainable)
    missing = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert len(trainable) == sum(len(g) for g in model.parameter_groups().values())


def test_frozen_components_get_no_gradient_and_no_group(images):
    config = load_config("tiny")
    config["frozen"] = ["unet"]
    model = build_model(config)
    assert model.parameter_groups()["decoder"] == []
    training_loss(model, images).loss.backward()
    assert all(p.grad is None for p in model.unet.parameters())
    assert all(
        p.grad is not None and p.grad.isfinite().all() and p.grad.abs().sum() > 0
        for p in model.slot_attention.parameters()
    )


def test_incompatible_components_are_refused(tiny_model):
    sa = lsd.SlotAttention(**{**tiny_model.slot_attention.config, "out_size": 20})
    with pytest.raises(ValueError, match="cross_attention_dim=16, slot_attention.out_size=20"):
        LatentSlotDiffusion(tiny_model.backbone, sa, tiny_model.unet, tiny_model.scheduler)
    with pytest.raises(ValueError, match="48 latent channels"):
        LatentSlotDiffusion(
            tiny_model.backbone, tiny_model.slot_attention, tiny_model.unet, tiny_model.scheduler,
            vae=PixelUnshuffleAutoencoder(factor=4),
        )  # fmt: skip
    with pytest.raises(ValueError, match="frozen"):
        LatentSlotDiffusion(
            tiny_model.backbone, tiny_model.slot_attention, tiny_model.unet, tiny_model.scheduler, frozen=["vae"]
        )


def test_kernel_backend(tiny_model, monkeypatch):
    assert tiny_model.set_kernel_backend("torch") == "torch"
    # Available on CPU under TRITON_INTERPRET=1 (tests/conftest.py), for both components.
    assert tiny_model.set_kernel_backend("triton") == "triton"
    assert tiny_model.slot_attention.kernel_backend == tiny_model.unet.kernel_backend == "triton"
    assert tiny_model.set_kernel_backend("auto") == "triton"
    assert tiny_model.set_kernel_backend("torch") == "torch"
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(KernelBackendUnavailable, match="TRITON_INTERPRET=1"):
        tiny_model.set_kernel_backend("triton")
    assert tiny_model.slot_attention.kernel_backend == "torch"  # raised before changing anything
    assert tiny_model.set_kernel_backend("auto") == "torch"
    with pytest.raises(ValueError, match="unknown kernel backend"):
        tiny_model.set_kernel_backend("cutlass")


@pytest.mark.parametrize("latent", ["kl", "pixel_unshuffle"])
def test_save_load_round_trip_is_exact(tmp_path, images, latent):
    config = load_config("tiny")
    if latent == "pixel_unshuffle":  # parameter-free autoencoder, as in the cpu config
        config["vae"] = {"_class_name": "PixelUnshuffleAutoencoder", "factor": 2, "scaling_factor": 2.0}
        config["unet"]["in_channels"] = config["unet"]["out_channels"] = 12
    config["objective"].update(noise_offset=0.05, snr_gamma=5.0)
    config["frozen"] = ["backbone"]
    torch.manual_seed(0)
    model = build_model(config)
    loaded = assert_round_trip(model, tmp_path / "model")
    assert loaded.objective == DiffusionObjective(noise_offset=0.05, snr_gamma=5.0)
    assert type(loaded.vae) is type(model.vae)
    assert public(loaded.vae.config) == public(model.vae.config)
    assert loaded.frozen == ("backbone",) and not any(p.requires_grad for p in loaded.backbone.parameters())
    assert public(loaded.scheduler.config) == public(model.scheduler.config)
    a = training_loss(model, images, generator=torch.Generator().manual_seed(7)).loss
    b = training_loss(loaded, images, generator=torch.Generator().manual_seed(7)).loss
    assert torch.equal(a, b)


def test_save_is_atomic(tmp_path, tiny_model, monkeypatch):
    target = tmp_path / "model"
    tiny_model.save_pretrained(target)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    tiny_model.save_pretrained(target)  # overwriting works
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(tiny_model.unet), "save_pretrained", boom)
    with pytest.raises(OSError, match="disk full"):
        tiny_model.save_pretrained(target)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before  # old model intact
    assert os.listdir(tmp_path) == ["model"]  # no temporary leftovers


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="lsd_config.json is missing"):
        LatentSlotDiffusion.from_pretrained(tmp_path)


def test_model_without_vae_explains_how_to_add_one(tiny_model, images):
    tiny_model.vae = None
    with pytest.raises(RuntimeError, match="load_pretrained_vae"):
        training_loss(tiny_model, images)
    assert tiny_model.encode(images).slots.shape == (2, 4, 16)  # encoding needs no VAE


def test_pixel_unshuffle_autoencoder_is_lossless():
    vae = PixelUnshuffleAutoencoder(factor=4, scaling_factor=2.0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    z = vae.encode_latents(x)
    assert z.shape == (2, 48, 16, 16)
    torch.testing.assert_close(z[:, :16].reshape(2, 4, 4, 16, 16)[:, 1, 2, 3, 5], 2.0 * x[:, 0, 3 * 4 + 1, 5 * 4 + 2])
    torch.testing.assert_close(vae.decode_latents(z), x)


def test_bf16_autocast_keeps_the_loss_in_float32_and_close_to_fp32(tiny_model, images):
    reference = training_loss(tiny_model, images, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = training_loss(tiny_model, images, generator=torch.Generator().manual_seed(0))
    assert mixed.encoding.slots.dtype == torch.bfloat16  # the networks ran in bf16 ...
    assert mixed.loss.dtype == torch.float32 and mixed.mse.dtype == torch.float32  # ... the MSE did not
    # bf16 has an 8-bit mantissa (relative step 2**-8 = 0.4%); the loss averages many such errors
    assert mixed.loss.item() == pytest.approx(reference.loss.item(), rel=2e-2)
    mixed.loss.backward()
    trainable = [(n, p) for n, p in tiny_model.named_parameters() if p.requires_grad]
    dead = [n for n, p in trainable if p.grad is None or not (p.grad.isfinite().all() and p.grad.abs().sum() > 0)]
    assert dead == []  # every trainable parameter got a finite, non-zero gradient


def test_models_import_neither_training_nor_pipelines():
    """Imports run one way: pipelines / training / evaluation -> models, not even lazily inside a function."""
    import ast
    from pathlib import Path

    upward = ("lsd.training", "lsd.pipelines", "lsd.evaluation", "lsd.reproduction")
    found = []
    for path in sorted(Path(lsd.__file__).parent.joinpath("models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            found += [f"{path.name}: {n}" for n in names if n.startswith(upward)]
    assert found == []

"""Loading checkpoints written in the LSD release's layout reproduces the release's outputs."""

import json

import pytest
import torch
from diffusers import AutoencoderKL

import lsd
from lsd.official import map_release_key
from lsd.training.objective import training_loss

from .models.slot_attention_oracle import oracle_slot_attention
from .release_fixture import (
    TINY_SLOT_ATTN,
    release_backbone_oracle,
    release_unet_oracle,
    write_release_checkpoint,
)


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    return write_release_checkpoint(tmp_path_factory.mktemp("release") / "checkpoint-200000")


def tiny_vae():
    """x4 down: 32 px images -> 8x8 latents, the tiny release UNet's sample_size."""
    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 8, 16), down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=4, layers_per_block=1, sample_size=32,
    )  # fmt: skip


def test_key_mapping():
    assert map_release_key("up_blocks.1.attentions.0.transformer_blocks.0.attn1.pos_emb.1.projection.weight") == (
        "up_blocks.1.attentions.0.transformer_blocks.0.attn1.pos_emb.projection.weight"
    )
    assert map_release_key("mid_block.attentions.0.transformer_blocks.0.attn2.pos_emb.pe") == (
        "mid_block.attentions.0.transformer_blocks.0.attn2.pos_emb.pe"
    )  # the release's learned embedding sits directly under pos_emb
    assert map_release_key("pos.projection.weight") == "pos.projection.weight"


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_denoiser_output_equals_release(tmp_path, fmt):
    root = write_release_checkpoint(tmp_path / "ckpt", seed=3, fmt=fmt)
    model = lsd.load_official_checkpoint(root, vae=tiny_vae())
    oracle = release_unet_oracle(root)
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=gen)
    slots = torch.randn(2, 5, 16, generator=gen)
    t = torch.tensor([10, 700])
    ours = model.unet(sample, t, encoder_hidden_states=slots).sample
    expected = oracle(sample, t, encoder_hidden_states=slots).sample
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    # the embeddings matter: without them the output differs
    plain = oracle.__class__.from_config(oracle.config)
    plain.load_state_dict(oracle.state_dict())
    assert not torch.allclose(plain(sample, t, encoder_hidden_states=slots).sample, expected, atol=1e-4)


def test_encoder_outputs_equal_release(release_dir):
    model = lsd.load_official_checkpoint(release_dir)
    gen = torch.Generator().manual_seed(1)
    pixels = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    noise = torch.randn(2, TINY_SLOT_ATTN["num_slots"], TINY_SLOT_ATTN["slot_size"], generator=gen)

    features = release_backbone_oracle(release_dir)(pixels)
    torch.testing.assert_close(model.backbone(pixels), features, rtol=1e-5, atol=1e-6)

    from safetensors.torch import load_file

    sa_state = load_file(release_dir / "multiheadstevesa" / "diffusion_pytorch_model.safetensors")
    slots, attn = oracle_slot_attention(sa_state, TINY_SLOT_ATTN, features.unsqueeze(1), noise)
    out = model.encode(pixels, noise=noise)
    torch.testing.assert_close(out.slots, slots[:, 0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.attn, attn[:, 0], rtol=1e-4, atol=1e-5)


def test_loaded_model_trains_when_given_a_vae(release_dir):
    model = lsd.load_official_checkpoint(release_dir, vae=tiny_vae())
    assert model.scheduler.config.beta_schedule == "linear" and model.scheduler.config.beta_end == 0.012
    loss = training_loss(model, torch.zeros(1, 3, 32, 32), generator=torch.Generator().manual_seed(0)).loss
    assert torch.isfinite(loss)
    without_vae = lsd.load_official_checkpoint(release_dir)
    with pytest.raises(RuntimeError, match="no autoencoder"):
        training_loss(without_vae, torch.zeros(1, 3, 32, 32))


def test_missing_subfolder_is_named(release_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "unetencoder").symlink_to(release_dir / "unetencoder")
    with pytest.raises(FileNotFoundError, match="multiheadstevesa/ is missing"):
        lsd.load_official_checkpoint(partial)
    with pytest.raises(lsd.PretrainedNotFound, match="does not exist"):  # the README's documented error
        lsd.load_official_checkpoint(tmp_path / "nope")


def test_wrong_class_and_unknown_field_are_refused(tmp_path):
    root = write_release_checkpoint(tmp_path / "ckpt")
    config_path = root / "multiheadstevesa" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "_class_name": "SlotAttentionV2"}))
    with pytest.raises(ValueError, match="SlotAttentionV2.*MultiHeadSTEVESA"):
        lsd.load_official_checkpoint(root)
    config_path.write_text(json.dumps({**config, "use_implicit_differentiation": True}))
    with pytest.raises(ValueError, match="use_implicit_differentiation"):
        lsd.load_official_checkpoint(root)


def test_mismatched_or_corrupt_weights_name_the_folder(tmp_path):
    root = write_release_checkpoint(tmp_path / "ckpt")
    config_path = root / "multiheadstevesa" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "mlp_hidden_size": 64}))
    with pytest.raises(ValueError, match="multiheadstevesa: weights do not match"):
        lsd.load_official_checkpoint(root)
    config_path.write_text(json.dumps(config))
    weights = root / "unetencoder" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="could not read weights .*unetencoder"):
        lsd.load_official_checkpoint(root)


def test_lsd_from_pretrained_points_release_folders_to_the_loader(release_dir):
    with pytest.raises(FileNotFoundError, match="load_official_checkpoint"):
        lsd.LatentSlotDiffusion.from_pretrained(release_dir)

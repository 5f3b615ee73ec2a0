"""Offline loading of pretrained VAE / UNet from local folders and the local Hugging Face cache."""

from __future__ import annotations

import pytest
import torch

from lsd.models.pretrained import PretrainedNotFound, load_pretrained_unet, load_pretrained_vae, resolve_pretrained

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _perturb_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter seed-specific values, so no default init can coincide with them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def _tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    return _perturb_(vae, seed + 100)


def _tiny_unet(seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=16,
        attention_head_dim=8,
    )
    return _perturb_(unet, seed + 100)


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so nothing installed on this machine can be picked up."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    return cache


def test_load_vae_from_local_folder_is_exact_and_frozen(tmp_path):
    vae = _tiny_vae()
    vae.save_pretrained(tmp_path / "vae")

    loaded = load_pretrained_vae(tmp_path, subfolder="vae")

    _assert_same_state(loaded, vae)
    params = list(loaded.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert not any(m.training for m in loaded.modules())
    # The frozen VAE still encodes like the original.
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = vae.eval().encode(x).latent_dist.mean
        torch.testing.assert_close(loaded.encode(x).latent_dist.mean, expected, rtol=0, atol=0)


def test_load_vae_from_repo_id_in_local_cache(empty_hub_cache):
    repo_dir = empty_hub_cache / "models--org--name"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    vae = _tiny_vae(seed=3)
    vae.save_pretrained(repo_dir / "snapshots" / COMMIT / "vae")

    loaded = load_pretrained_vae("org/name")

    _assert_same_state(loaded, vae)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_resolve_repo_id_in_cache_returns_snapshot_subfolder(empty_hub_cache):
    repo_dir = empty_hub_cache / "models--org--name"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    unet_dir = repo_dir / "snapshots" / COMMIT / "unet"
    unet_dir.mkdir(parents=True)
    (unet_dir / "config.json").write_text("{}")

    assert resolve_pretrained("org/name", "unet", "pretrained UNet") == unet_dir


def test_missing_local_path_raises_named_error(tmp_path, empty_hub_cache):
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(PretrainedNotFound) as info:
        load_pretrained_vae(missing)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(missing) in message
    assert "VAE" in message
    assert "local folder" in message


def _hub_cli_commands() -> set[str]:
    """The console scripts the installed huggingface_hub provides (``hf``; ``huggingface-cli`` before 1.0)."""
    from importlib.metadata import distribution

    scripts = {e.name for e in distribution("huggingface_hub").entry_points if e.group == "console_scripts"}
    return scripts & {"hf", "huggingface-cli"}


def test_repo_id_not_in_cache_names_repo_and_download_command(empty_hub_cache):
    with pytest.raises(PretrainedNotFound) as info:
        load_pretrained_vae("org/not-cached", subfolder="vae")
    message = str(info.value)
    assert "org/not-cached" in message
    # The advice names a download command this huggingface_hub actually installs.
    commands = _hub_cli_commands()
    assert commands
    assert any(f"`{cmd} download org/not-cached" in message for cmd in commands), message
    assert "vae/*" in message  # only the needed subfolder is downloaded
    assert str(empty_hub_cache) in message  # says where it looked


@pytest.mark.parametrize("name", ["my weights/vae", "ckpt/sd2.1--x"])
def test_missing_relative_path_that_is_no_valid_repo_id_raises_not_found(name, tmp_path, monkeypatch, empty_hub_cache):
    monkeypatch.chdir(tmp_path)  # a relative path with one "/" that exists nowhere
    with pytest.raises(PretrainedNotFound) as info:
        load_pretrained_vae(name)
    message = str(info.value)
    assert repr(name) in message
    assert f"download {name}" not in message  # not advised as a repo id: the Hub would reject it


def test_repo_in_cache_without_needed_subfolder_names_the_folder(empty_hub_cache):
    repo_dir = empty_hub_cache / "models--org--name"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    _tiny_vae().save_pretrained(repo_dir / "snapshots" / COMMIT / "vae")

    with pytest.raises(PretrainedNotFound) as info:
        load_pretrained_unet("org/name")  # only the VAE was cached
    message = str(info.value)
    assert str(repo_dir / "snapshots" / COMMIT / "unet") in message
    assert "config.json" in message


def test_existing_folder_without_config_names_the_folder(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(PretrainedNotFound) as info:
        load_pretrained_vae(tmp_path, subfolder="vae")
    message = str(info.value)
    assert str(tmp_path / "vae") in message
    assert "config.json" in message


def test_load_unet_from_local_folder_matches_original(tmp_path):
    unet = _tiny_unet()
    unet.save_pretrained(tmp_path / "unet")

    loaded = load_pretrained_unet(tmp_path)

    _assert_same_state(loaded, unet)
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 8, 8, generator=gen)
    context = torch.randn(2, 3, 16, generator=gen)
    timestep = torch.tensor([10, 500])
    with torch.no_grad():
        expected = unet.eval()(sample, timestep, encoder_hidden_states=context).sample
        out = loaded.eval()(sample, timestep, encoder_hidden_states=context).sample
    assert out.shape == (2, 4, 8, 8)
    assert expected.std() > 0  # a non-degenerate output, so the comparison means something
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_a_truncated_or_non_finite_pretrained_vae_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    from lsd._integrity import NonFiniteWeightsError

    _tiny_vae().save_pretrained(tmp_path / "vae")
    weights = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["encoder.conv_in.bias"][0] = float("nan")
    save_file(state, weights)
    with pytest.raises(NonFiniteWeightsError, match=r"pretrained VAE .*vae: tensor encoder\.conv_in\.bias holds NaN"):
        load_pretrained_vae(tmp_path, subfolder="vae")
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"pretrained VAE: cannot load .*vae \("):
        load_pretrained_vae(tmp_path, subfolder="vae")

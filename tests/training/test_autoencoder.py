import os
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from lsd.data.images import GlobImageDataset
from lsd.data.synthetic import SynthSpec, write_dataset
from lsd.models.autoencoder import PixelUnshuffleAutoencoder
from lsd.training.autoencoder import autoencoder_record, provide_autoencoder
from lsd.training.config import AutoencoderConfig


@pytest.fixture
def dataset(tmp_path):
    folder = write_dataset(
        tmp_path / "data",
        SynthSpec(name="s", level="easy", resolution=16, num_train=8, num_validation=0),
        progress=False,
    )
    return GlobImageDataset(folder / "s-train-with-label" / "images", 16, "**/*_image.png")


def test_train_kl_stage_trains_once_then_loads_from_cache(dataset, tmp_path, monkeypatch):
    config = AutoencoderConfig(
        kind="train_kl", train_steps=3, train_batch_size=4, block_out_channels=[8, 8], latent_channels=4
    )
    vae = provide_autoencoder(config, dataset, tmp_path / "cache")
    assert isinstance(vae, AutoencoderKL) and not any(p.requires_grad for p in vae.parameters())
    assert vae.config.scaling_factor != 0.18215  # estimated from the data, not SD's constant
    cached = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # beside it: its build lock
    assert len(cached) == 1 and cached[0].name.startswith("autoencoder-")

    monkeypatch.setattr("lsd.training.autoencoder.train_kl_autoencoder", lambda *a, **k: pytest.fail("retrained"))
    again = provide_autoencoder(config, dataset, tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), vae.state_dict().values(), strict=True))
    assert again.config.scaling_factor == pytest.approx(vae.config.scaling_factor)


def test_other_kinds_and_the_record(dataset, tmp_path):
    assert provide_autoencoder(AutoencoderConfig(kind="model"), dataset, tmp_path) is None
    lossless = provide_autoencoder(
        AutoencoderConfig(kind="pixel_unshuffle", factor=4, scaling_factor=2.0), dataset, tmp_path
    )
    assert isinstance(lossless, PixelUnshuffleAutoencoder) and lossless.latent_channels == 48
    assert autoencoder_record(AutoencoderConfig(kind="pixel_unshuffle")) == {
        "kind": "pixel_unshuffle",
        "factor": 4,
        "scaling_factor": 2.0,
    }
    from lsd.models.pretrained import PretrainedNotFound

    with pytest.raises(PretrainedNotFound):
        provide_autoencoder(AutoencoderConfig(kind="pretrained", path=str(tmp_path / "no-vae")), dataset, tmp_path)


def test_the_train_kl_cache_is_keyed_by_content_and_says_where_it_lives(dataset, tmp_path, capsys):
    config = AutoencoderConfig(
        kind="train_kl", train_steps=1, train_batch_size=4, block_out_channels=[8, 8], latent_channels=4
    )
    provide_autoencoder(config, dataset, tmp_path / "cache")
    first = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert f"autoencoder stage: trained and cached in {first}" in capsys.readouterr().err
    provide_autoencoder(config, dataset, tmp_path / "cache")
    assert f"autoencoder stage: reusing the cached autoencoder in {first}" in capsys.readouterr().err
    edited = Path(dataset.files[-1])  # same names, same count: only the content changed
    Image.new("RGB", (16, 16), (255, 0, 0)).save(edited)
    os.utime(edited, ns=(edited.stat().st_atime_ns, edited.stat().st_mtime_ns + 1_000_000_000))
    provide_autoencoder(config, dataset, tmp_path / "cache")
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2
    assert "trained and cached in" in capsys.readouterr().err

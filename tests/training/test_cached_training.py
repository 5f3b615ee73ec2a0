"""Training with ``cache.latents``: same losses and weights as encoding every step, reuse, refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from lsd.training.trainer import Trainer


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_cached_training_equals_training_that_encodes_each_image_alone(make_config, tmp_path):
    """The cache encodes each image alone, which is what diffusers' sliced encode does inside a batch:
    with it, every loss and every final weight is bitwise equal."""
    uncached = Trainer(make_config(output_dir=str(tmp_path / "uncached")))
    uncached.unwrapped.vae.enable_slicing()
    uncached.train()
    cached = Trainer(make_config(output_dir=str(tmp_path / "cached"), cache={"latents": True}))
    cached.train()
    assert _losses(tmp_path / "cached") == _losses(tmp_path / "uncached")
    want, got = uncached.unwrapped.state_dict(), cached.unwrapped.state_dict()
    assert not [name for name in want if not torch.equal(want[name], got[name])]
    assert (tmp_path / "cache").is_dir()  # default: beside the runs, shared by them


def test_cached_training_is_close_to_the_batched_encode(make_config, tmp_path):
    """Against the release's batched encode, the losses differ by float32 rounding only."""
    Trainer(make_config(output_dir=str(tmp_path / "batched"))).train()
    Trainer(make_config(output_dir=str(tmp_path / "cached"), cache={"latents": True})).train()
    assert _losses(tmp_path / "cached") == pytest.approx(_losses(tmp_path / "batched"), rel=1e-5)


def test_a_pixel_unshuffle_autoencoder_or_a_training_backbone_cannot_be_cached(make_config):
    unshuffle = make_config(
        model="standin", data={"resolution": 64}, autoencoder={"kind": "pixel_unshuffle"}, cache={"latents": True}
    )
    with pytest.raises(ValueError, match="cache.latents=true: the autoencoder is a PixelUnshuffleAutoencoder"):
        Trainer(unshuffle)
    with pytest.raises(ValueError, match="cache.backbone=true: the backbone trains"):
        Trainer(make_config(cache={"backbone": True}))


def test_lsd_train_refuses_a_stale_cache_in_one_line_and_rebuilds_on_request(make_config, tmp_path):
    config = make_config(cache={"latents": True, "dir": str(tmp_path / "c")}, train={"max_steps": 1})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    run = [sys.executable, "-m", "lsd", "train", "--config", str(path), "--no-progress", "--overwrite"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    image = sorted((tmp_path / "data").rglob("*train*/images/**/*_image.png"))[3]
    os.utime(image, ns=(10**18, 10**18))
    refused = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"lsd train: error: cache {tmp_path / 'c' / 'vae-posterior'} is stale: image "
        f"{image.parent.name}/{image.name} changed (modification time) (rebuild with --rebuild-cache)"
    )
    rebuilt = subprocess.run([*run, "--rebuild-cache"], capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]


def test_resuming_may_switch_the_cache_on(make_config, tmp_path):
    Trainer(make_config(train={"max_steps": 2})).train()
    resumed = Trainer(make_config(cache={"latents": True}))
    resumed.train(resume="latest")
    assert resumed.step == 4


def test_the_cache_holds_the_start_weights_of_init_from_not_the_random_init(make_config, tmp_path):
    """The cache is built after ``init_from`` (or a resumed checkpoint) has loaded the frozen weights."""
    from lsd.cache.keys import weights_digest
    from lsd.configs import build_model

    torch.manual_seed(123)  # other weights than the run's own random init
    source = build_model("tiny")
    source.save_pretrained(tmp_path / "source")
    config = make_config(init_from=str(tmp_path / "source"), cache={"latents": True}, train={"max_steps": 1})
    trainer = Trainer(config)
    trainer.train()
    manifest = json.loads((tmp_path / "cache").glob("*/vae-posterior/manifest.json").__next__().read_text())
    assert manifest["key"]["encoder"]["weights_sha256"] == weights_digest(source.vae)
    assert weights_digest(trainer.unwrapped.vae) == weights_digest(source.vae)

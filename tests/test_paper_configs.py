"""The paper recipe configs and their per-field provenance (lsd/configs/provenance/, docs/paper-configs.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import tomllib

import lsd.configs
from lsd.configs import available_configs, guessed_fields, load_config, provenance
from lsd.data.fixtures import write_clevr, write_ffhq, write_movi
from lsd.data.images import GlobImageDataset
from lsd.data.readers import open_dataset
from lsd.training.config import available_train_configs, load_train_config

CONFIGS = Path(lsd.configs.__file__).parent
REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIGS = ("movi-e", "coco", "movi-c", "clevr", "clevrtex", "ffhq")
TRAIN_CONFIGS = tuple(f"{name}-paper" for name in MODEL_CONFIGS)
SOURCES = {"paper", "release", "derived"}


def _leaves(node: dict, prefix: str = "") -> list[str]:
    """Dotted paths of every value that is not a non-empty dict (written here, not taken from lsd)."""
    out = []
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def _raw(name: str) -> dict:
    path = CONFIGS / f"{name}.json" if name in MODEL_CONFIGS else CONFIGS / "train" / f"{name}.json"
    return json.loads(path.read_text())


def _sidecar(name: str) -> dict:
    return json.loads((CONFIGS / "provenance" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", MODEL_CONFIGS + TRAIN_CONFIGS)
def test_every_field_has_provenance_and_every_entry_names_a_field(name):
    fields, entries = _leaves(_raw(name)), _sidecar(name)
    assert [f for f in fields if f not in entries] == []  # no field without a source
    assert [f for f in entries if f not in fields] == []  # no stale entry
    assert {e["source"] for e in entries.values()} <= SOURCES
    assert all(isinstance(e["note"], str) and e["note"] for e in entries.values())
    assert provenance(name) == {f: entries[f] for f in fields}
    assert guessed_fields(name) == [f for f in fields if entries[f]["source"] == "derived"]


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_paper_configs_validate_and_agree_with_their_model(name):
    model = load_config(name)
    train = load_train_config(f"{name}-paper")
    # every recipe reads the release's glob of training images, except CLEVR, which the release has no
    # loader for: its reader's own train split and crop
    assert train.model == name and train.data.kind == ("dataset" if name == "clevr" else "glob")
    assert train.data.resolution == model["resolution"]
    if train.data.dinov2_resolution is not None:  # Stable-LSD: the DINOv2 view the backbone is built for
        assert train.data.dinov2_resolution == model["backbone"]["input_resolution"]
    if model["backbone"].get("_class_name") == "CNNBackbone":  # pixels -> feature map -> slot attention grid
        assert model["backbone"]["input_resolution"] == model["resolution"]
        assert model["slot_attention"]["input_resolution"] == model["backbone"]["sample_size"]
        assert model["unet"]["sample_size"] == model["resolution"] // 8  # the SD VAE downsamples 8x


# What the brief and docs/datasets.md state, typed here: the resolution the paper states (for FFHQ
# only; MOVi-C and CLEVRTex keep the release's MOVi-E / COCO 256 px, a derived value), and the
# maximum object counts of the LSD evaluation (slot counts are guesses: max objects + 1).
PAPER_RESOLUTION = {"ffhq": 256}
DERIVED_RESOLUTION = {"movi-c": 256, "clevrtex": 256}
MAX_OBJECTS = {"movi-c": 10, "clevr": 10, "clevrtex": 10}


def test_the_known_facts_and_their_sources():
    for name, res in PAPER_RESOLUTION.items():
        assert load_config(name)["resolution"] == res and provenance(name)["resolution"]["source"] == "paper"
        assert provenance(f"{name}-paper")["data.resolution"]["source"] == "paper"
    for name, res in DERIVED_RESOLUTION.items():
        assert load_config(name)["resolution"] == res and "resolution" in guessed_fields(name)
        for field in (provenance(name)["resolution"], provenance(f"{name}-paper")["data.resolution"]):
            assert field["source"] == "derived" and "FFHQ only" in field["note"]
    assert load_config("clevr")["resolution"] == 128 and "resolution" in guessed_fields("clevr")
    for name, count in MAX_OBJECTS.items():
        assert load_config(name)["slot_attention"]["num_slots"] == count + 1
        assert "slot_attention.num_slots" in guessed_fields(name)
    assert provenance("movi-e")["slot_attention.num_slots"]["source"] == "release"
    assert "configs/movi-e/slot_attn/config.json" in provenance("movi-e")["slot_attention.num_slots"]["note"]
    assert provenance("coco-paper")["optim.lr"]["source"] == "release"
    # The new configs: nothing but the resolution comes from the paper or the release, except the
    # MOVi-C data layout (the release's dump script writes it).
    for name in ("movi-c", "clevr", "clevrtex", "ffhq"):
        known = [f for f in provenance(name) if f not in guessed_fields(name)]
        assert known == (["resolution"] if name in PAPER_RESOLUTION else [])
        known_train = {f for f in provenance(f"{name}-paper") if f not in guessed_fields(f"{name}-paper")}
        expected = {"data.resolution"} if name in PAPER_RESOLUTION else set()
        assert known_train == expected | ({"data.root", "data.pattern"} if name == "movi-c" else set())
    for name in ("movi-c", "clevr", "clevrtex", "ffhq"):
        notes = [provenance(name)[f]["note"] for f in ("unet.block_out_channels", "frozen")]
        assert all("derived from MOVi-E, not from the paper" in n for n in notes)
        assert "derived from MOVi-E, not from the paper" in provenance(f"{name}-paper")["optim.lr"]["note"]


def test_the_sidecars_are_not_configs_and_ship_as_package_data():
    names = set(available_configs())
    assert set(MODEL_CONFIGS) <= names and "provenance" not in names
    assert set(TRAIN_CONFIGS) <= set(available_train_configs())
    sidecars = {p.stem for p in (CONFIGS / "provenance").glob("*.json")}
    assert sidecars == set(MODEL_CONFIGS + TRAIN_CONFIGS)
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "provenance/*.json" in package_data["lsd.configs"]


def test_provenance_errors_name_the_file(monkeypatch):
    with pytest.raises(FileNotFoundError, match="no provenance for config 'cpu'"):
        provenance("cpu")
    config = _raw("movi-c")
    config["slot_attention"]["new_field"] = 1
    del config["objective"]["snr_gamma"]
    monkeypatch.setattr(lsd.configs, "shipped_config_json", lambda name: config)
    with pytest.raises(ValueError, match=r"movi-c\.json.*slot_attention\.new_field.*objective\.snr_gamma"):
        provenance("movi-c")


def _train_files(name: str, tmp_path: Path) -> set[Path]:
    data = load_train_config(name).data
    dataset = GlobImageDataset(tmp_path / data.root, data.resolution, data.pattern, data.portion)
    return {Path(f) for f in dataset.files}


def test_data_roots_and_patterns_select_the_train_images_of_the_real_layouts(tmp_path):
    # MOVi-C and CLEVR: written by the project's fixture writers in the layouts the readers read.
    movi = write_movi(tmp_path / "data", name="movi-c", split="train", num_videos=2, num_frames=5, size=8)
    # portion [0, 0.9] of 10 frames keeps 9 of them
    selected = _train_files("movi-c-paper", tmp_path)
    assert len(selected) == 9 and selected <= {item.image_path for item in movi}
    # CLEVR trains on the CLEVR reader's own train split (its crop), not a glob
    clevr = write_clevr(tmp_path / "data", split="train", num_images=2)
    write_clevr(tmp_path / "data", split="validation", num_images=1)
    data = load_train_config("clevr-paper").data
    assert (data.kind, data.dataset, data.split) == ("dataset", "clevr", "train")
    reader = open_dataset("clevr", tmp_path / data.root, split=data.split, resolution=data.resolution)
    assert set(reader.frames) == {item.image_path for item in clevr}
    # FFHQ: the first 60,000 images train, the last 10,000 validate.
    ffhq = write_ffhq(tmp_path / "data" / "ffhq", indices=(0, 1000, 59999, 60000, 69999), width=4, height=4)
    assert _train_files("ffhq-paper", tmp_path) == {item.image_path for item in ffhq[:3]}
    # CLEVRTex (docs/datasets.md): clevrtex_full/<idx // 1000>/CLEVRTEX_full_<idx:06d>.png; train = idx 10,000..49,999.
    folder = tmp_path / "data" / "clevrtex" / "clevrtex_full"
    for idx in (0, 9999, 10000, 25000, 49999):
        for suffix in (".png", "_flat.png", ".json"):
            path = folder / str(idx // 1000) / f"CLEVRTEX_full_{idx:06d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    expected = {folder / str(i // 1000) / f"CLEVRTEX_full_{i:06d}.png" for i in (10000, 25000, 49999)}
    assert _train_files("clevrtex-paper", tmp_path) == expected


def test_docs_paper_configs_is_current():
    spec = importlib.util.spec_from_file_location("provenance_table", REPO / "scripts" / "provenance_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    assert (REPO / "docs" / "paper-configs.md").read_text() == text, "rerun scripts/provenance_table.py"
    for name in ("movi-c", "clevr", "clevrtex", "ffhq"):  # one table per new paper config
        for config in (name, f"{name}-paper"):
            assert f"## `{config}`" in text
            assert all(f"| `{field}` |" in text for field in _leaves(_raw(config)))

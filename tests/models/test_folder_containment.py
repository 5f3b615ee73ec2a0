"""A model folder's names stay inside it: no component outside, no link leaving or dangling."""

from __future__ import annotations

import json
import shutil

import pytest

from lsd._integrity import OutsideFolderError, write_manifest
from lsd.models.lsd import LSD_CONFIG_NAME, LatentSlotDiffusion
from lsd.runs import MODEL_CONFIG, resolve_checkpoint


@pytest.fixture
def folder(tiny_model, tmp_path):
    path = tmp_path / "model"
    tiny_model.save_pretrained(path)
    return path


def test_the_run_module_names_the_model_config_file_as_the_model_does():
    assert MODEL_CONFIG == LSD_CONFIG_NAME


def test_a_component_named_outside_the_folder_is_refused_before_anything_is_read(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "x"
    shutil.copytree(folder / "unet", elsewhere)
    meta = json.loads((folder / LSD_CONFIG_NAME).read_text())
    meta["components"]["../elsewhere/x"] = meta["components"]["unet"]
    (folder / LSD_CONFIG_NAME).write_text(json.dumps(meta))
    write_manifest(folder)
    with pytest.raises(ValueError, match=r"lsd_config\.json: unknown component '\.\./elsewhere/x'; an lsd model has"):
        LatentSlotDiffusion.from_pretrained(folder)


@pytest.mark.parametrize("dangling", [False, True], ids=["leaving", "dangling"])
def test_a_link_leaving_a_model_folder_or_dangling_is_refused_naming_it(folder, tmp_path, dangling):
    outside = tmp_path / "shared-unet"
    shutil.move(folder / "unet", outside)
    if dangling:
        shutil.rmtree(outside)
    (folder / "unet").symlink_to(outside, target_is_directory=True)
    what = "a dangling link" if dangling else "a link leaving"
    for load in (LatentSlotDiffusion.from_pretrained, resolve_checkpoint):
        with pytest.raises(OutsideFolderError, match=rf"model folder: {folder / 'unet'} is {what}"):
            load(folder)


def test_a_link_inside_the_folder_is_allowed(folder, tiny_model):
    shutil.move(folder / "unet", folder / "unet-weights")
    (folder / "unet").symlink_to("unet-weights", target_is_directory=True)
    write_manifest(folder)
    loaded = LatentSlotDiffusion.from_pretrained(folder).unet.state_dict()
    assert all(loaded[k].equal(v) for k, v in tiny_model.unet.state_dict().items())

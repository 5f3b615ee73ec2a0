"""Shared, module-built inputs: the tiny model saved as an lsd model folder and 32 px synthetic scenes."""

from __future__ import annotations

import pytest
import torch

NUM_IMAGES = 6


@pytest.fixture(scope="session")
def synth_folder(tmp_path_factory):
    """Six 32 px 'easy' synthetic scenes in the MOVi layout (validation split)."""
    from lsd.data.synthetic import SynthSpec, write_dataset

    root = tmp_path_factory.mktemp("data")
    spec = SynthSpec(name="synth-t", level="easy", resolution=32, num_train=0, num_validation=NUM_IMAGES)
    return write_dataset(root, spec, progress=False)


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory):
    """The shipped tiny config (32 px, 4 slots), seeded, saved with ``save_pretrained``."""
    import lsd

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    lsd.build_model("tiny").save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def model(model_folder):
    from lsd.evaluation import load_model

    return load_model(model_folder)[0]


@pytest.fixture(scope="session")
def dataset(synth_folder):
    from lsd.evaluation import build_dataset

    return build_dataset("synth", synth_folder, split="validation", resolution=32)

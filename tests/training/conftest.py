import pytest

from lsd.training.config import load_train_config


def tiny_train_config(tmp_path, **sections):
    """A seconds-long training config: tiny model, 32 px synthetic scenes, pixel-unshuffle latents."""
    values = {
        "name": "test",
        "model": "tiny",
        "output_dir": str(tmp_path / "run"),
        "data": {"kind": "synth", "root": str(tmp_path / "data"), "resolution": 32, "synth_level": "easy",
                 "synth_num_train": 16, "synth_num_validation": 2},
        "autoencoder": {"kind": "model"},
        "optim": {"lr": 1e-3, "encoder_lr_scale": 2.0, "max_grad_norm": 1.0},
        "train": {"batch_size": 4, "grad_accum": 1, "max_steps": 4, "seed": 3, "log_every": 1, "diagnostic_every": 2},
        "checkpoint": {"every": 2, "total_limit": 3},
        "validation": {"every": 0},
    }  # fmt: skip
    for section, update in sections.items():
        if isinstance(update, dict) and isinstance(values.get(section), dict):
            values[section] = {**values.get(section, {}), **update}
        else:
            values[section] = update
    return load_train_config(values)


@pytest.fixture
def make_config(tmp_path):
    return lambda **sections: tiny_train_config(tmp_path, **sections)

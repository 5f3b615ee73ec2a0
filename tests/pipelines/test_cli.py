"""``lsd reconstruct``: a folder of images -> their slots -> decoded images."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from lsd.cli import main
from lsd.configs import build_model, load_config
from lsd.pipelines import LSDPipeline


@pytest.fixture(params=["kl", "pixel_unshuffle"])
def model_folder(request, tmp_path):
    """The tiny model with its KL autoencoder, or with the parameter-free latents of the stand-in models."""
    config = load_config("tiny")
    if request.param == "pixel_unshuffle":
        config["vae"] = {"_class_name": "PixelUnshuffleAutoencoder", "factor": 2, "scaling_factor": 2.0}
        config["unet"]["in_channels"] = config["unet"]["out_channels"] = 12
    torch.manual_seed(0)
    build_model(config).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def write_images(folder, count=3):
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    names = [f"img{i}.png" for i in range(count - 1)] + ["sub/last.png"]
    for name in names:
        PIL.Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / name)
    return names


def test_reconstruct_writes_one_image_per_input_equal_to_the_pipeline(model_folder, tmp_path, capsys):
    names = write_images(tmp_path / "images")
    args = ["reconstruct", str(tmp_path / "images"), "--model", str(model_folder), "--output", str(tmp_path / "out")]
    assert main([*args, "--steps", "2", "--batch-size", "2", "--seed", "3"]) == 0
    assert "3 reconstructions" in capsys.readouterr().out
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    assert written == sorted([*names, "inputs-vs-reconstructions.png"])  # and the side-by-side figure
    with PIL.Image.open(tmp_path / "out" / "inputs-vs-reconstructions.png") as figure:  # 3 rows x 2 columns
        assert figure.size[1] > 1.2 * figure.size[0]
    # the same as calling the pipeline on the image with the documented per-image generator
    pipe = LSDPipeline.from_pretrained(model_folder)
    pipe.set_progress_bar_config(disable=True)
    index = sorted(str(tmp_path / "images" / n) for n in names).index(str(tmp_path / "images" / "sub/last.png"))
    seed = int(np.random.SeedSequence((3, index)).generate_state(1, dtype=np.uint64)[0] >> 1)
    pixels = torch.from_numpy(np.array(PIL.Image.open(tmp_path / "images" / "sub/last.png"))).permute(2, 0, 1)
    expected = pipe(
        images=pixels[None].float() / 127.5 - 1, num_inference_steps=2, generator=[torch.Generator().manual_seed(seed)]
    )
    assert np.array_equal(np.array(PIL.Image.open(tmp_path / "out" / "sub/last.png")), np.array(expected.images[0]))


def test_reconstruct_bad_input_is_one_clear_error_line(model_folder, tmp_path, capsys):
    out = ["--model", str(model_folder), "--output", str(tmp_path / "out")]
    assert main(["reconstruct", str(tmp_path / "missing"), *out]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"lsd reconstruct: error: images folder {tmp_path / 'missing'} does not exist"
    )
    write_images(tmp_path / "images")
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    assert main(["reconstruct", str(tmp_path / "images"), *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read image" in err[0] and "broken.png" in err[0]
    assert not (tmp_path / "out").exists()  # nothing sampled before the check
    assert main(["reconstruct", str(tmp_path / "images"), "--model", str(tmp_path / "nope"), "--output", "x"]) == 2
    assert "checkpoint folder" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "images"), *out, "--guidance-scale", "2"]) == 2
    assert "--guidance-scale 2.0: " in capsys.readouterr().err
    (tmp_path / "images" / "broken.png").unlink()
    assert main(["reconstruct", str(tmp_path / "images"), *out, "--steps", "0"]) == 2
    assert "--steps and --batch-size must be >= 1" in capsys.readouterr().err

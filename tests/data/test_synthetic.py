import json

import numpy as np
import pytest
from PIL import Image

from lsd.data.synthetic import LEVELS, SHAPES, SynthSpec, render_scene, write_dataset


def test_scenes_are_a_pure_function_of_seed_split_index():
    a = render_scene(7, "train", 3, 48, "hard")
    b = render_scene(7, "train", 3, 48, "hard")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(render_scene(7, "train", 4, 48)[0], a[0])
    assert not np.array_equal(render_scene(7, "validation", 3, 48)[0], a[0])
    assert not np.array_equal(render_scene(8, "train", 3, 48)[0], a[0])


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_segments_and_instances_agree(level):
    for index in range(5):
        image, segment, instances = render_scene(0, "train", index, 64, level)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and segment.dtype == np.uint8
        spec = LEVELS[level]
        assert spec.min_objects <= len(instances) <= spec.max_objects
        counts = np.bincount(segment.ravel(), minlength=len(instances) + 1)[1:]
        assert [inst["visibility"] for inst in instances] == counts.tolist()  # id i <-> instances[i-1]
        assert counts.tolist() == sorted(counts.tolist(), reverse=True)  # MOVi: by visibility, descending
        for inst in instances:
            assert SHAPES[inst["category"]] == inst["asset_id"]
            assert 0 <= inst["image_positions"][0] <= 1 and 0 <= inst["image_positions"][1] <= 1
            assert np.asarray(inst["bboxes_3d"]).shape == (8, 3)


def test_hard_scenes_share_colours_and_occlude():
    from lsd.data.synthetic import _shape_mask, sample_scene

    centres = (np.arange(64) + 0.5) / 64
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    shared = occluded = 0
    for index in range(20):
        _, segment, instances = render_scene(0, "train", index, 64, "hard")
        colours = [inst["color_id"] for inst in instances]
        shared += len(colours) != len(set(colours))
        full_area = {obj.depth: _shape_mask(obj, yy, xx)[0].sum() for obj in sample_scene(0, "train", index, "hard")}
        occluded += any(inst["visibility"] < full_area[inst["depth"]] for inst in instances)
    assert shared >= 15 and occluded >= 15


def test_colour_alone_does_not_separate_objects_in_hard_scenes():
    # objects of the same palette colour exist in most scenes, so a colour clustering must merge them
    same_colour_pairs = 0
    for index in range(10):
        _, _, instances = render_scene(1, "train", index, 64, "hard")
        ids = [inst["color_id"] for inst in instances if inst["visibility"] > 0]
        same_colour_pairs += sum(ids.count(c) * (ids.count(c) - 1) // 2 for c in set(ids))
    assert same_colour_pairs >= 10


def test_smooth_level_backgrounds_have_no_stripes():
    # Same scenes (same random draws) with the background's stripe probability forced to 0 or 1:
    # the "smooth" level must render exactly the stripe-free version, whose background varies
    # much less from pixel to pixel than the striped one.
    from dataclasses import replace

    smooth = LEVELS["smooth"]
    striped = replace(smooth, background_stripes=1.0)

    def variation(image: np.ndarray, segment: np.ndarray) -> float:
        """Mean absolute step between neighbouring background pixels, summed over both axes."""
        pixels, total = image.astype(np.float64) / 255, 0.0
        for axis in (0, 1):
            steps = np.abs(np.diff(pixels, axis=axis)).sum(-1)
            head = np.take(segment, range(segment.shape[axis] - 1), axis=axis)
            both_background = (head == 0) & (np.diff(segment.astype(int), axis=axis) == 0)
            total += float(steps[both_background].mean())
        return total

    ratios = []
    for index in range(10):
        image, segment, _ = render_scene(3, "train", index, 64, "smooth")
        same, _, _ = render_scene(3, "train", index, 64, replace(smooth, background_stripes=0.0))
        assert np.array_equal(image, same)
        striped_image, striped_segment, _ = render_scene(3, "train", index, 64, striped)
        assert np.array_equal(segment, striped_segment)  # only the background changed
        ratios.append(variation(striped_image, striped_segment) / variation(image, segment))
    assert min(ratios) > 1.2 and np.mean(ratios) > 2


def test_write_dataset_movi_layout_cached_and_atomic(tmp_path, monkeypatch):
    spec = SynthSpec(name="s", level="easy", resolution=32, seed=1, num_train=3, num_validation=2)
    folder = write_dataset(tmp_path, spec, progress=False)
    base = folder / "s-validation-with-label"
    image = Image.open(base / "images" / "00000001" / "00000000_image.png")
    segment = Image.open(base / "labels" / "00000001" / "00000000_segment.png")
    assert image.mode == "RGB" and image.size == (32, 32) and segment.mode == "L"
    columns = json.loads((base / "labels" / "00000001" / "00000000_instances.json").read_text())
    expected_image, expected_segment, instances = render_scene(1, "validation", 1, 32, "easy")
    assert np.array_equal(np.asarray(image), expected_image) and np.array_equal(np.asarray(segment), expected_segment)
    assert columns["visibility"] == [inst["visibility"] for inst in instances]  # MOVi's column layout
    assert len(list((folder / "s-train-with-label" / "images").iterdir())) == 3

    # cached: a second call with the same spec writes nothing
    monkeypatch.setattr("lsd.data.synthetic.render_scene", lambda *a, **k: pytest.fail("regenerated"))
    assert write_dataset(tmp_path, spec, progress=False) == folder
    with pytest.raises(FileExistsError, match="different synthetic dataset"):
        write_dataset(tmp_path, SynthSpec(name="s", num_train=4), progress=False)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = render_scene

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr("lsd.data.synthetic.render_scene", dying)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path, SynthSpec(name="s", resolution=16, num_train=5, num_validation=0), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_real_movi_reader_reads_the_stand_in(tmp_path):
    from lsd.data.movi import MoviDataset

    spec = SynthSpec(name="synth-x", level="hard", resolution=32, seed=2, num_train=0, num_validation=3)
    write_dataset(tmp_path, spec, progress=False)
    dataset = MoviDataset(tmp_path, split="validation", name="synth-x", resolution=32)
    item = dataset[2]
    _, segment, instances = render_scene(2, "validation", 2, 32, "hard")
    assert np.array_equal(item["masks"].numpy(), segment.astype(np.int64))
    assert item["visible"][1 : len(instances) + 1].tolist() == [inst["visibility"] > 0 for inst in instances]

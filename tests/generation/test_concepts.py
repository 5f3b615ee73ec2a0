import json

import pytest
import torch

from lsd.generation import ConceptLibrary, collect_slots, shuffle_slots


def clustered_slots(num_images=40, num_slots=5, dim=8, num_concepts=6, seed=0):
    """Slots drawn around ``num_concepts`` well-separated centres (background: slot 0 of each image,
    around 2 other centres), so K-means recovers the concepts exactly."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:num_concepts] * 10
    background_centres = -10 * torch.eye(dim)[:2]
    labels = torch.randint(num_concepts, (num_images, num_slots), generator=g)
    slots = centres[labels] + 0.01 * torch.randn(num_images, num_slots, dim, generator=g)
    bg = torch.randint(2, (num_images,), generator=g)
    slots[:, 0] = background_centres[bg] + 0.01 * torch.randn(num_images, dim, generator=g)
    return slots, torch.zeros(num_images, dtype=torch.long), labels


def test_fit_recovers_separated_concepts_and_keeps_background_apart():
    slots, background, labels = clustered_slots()
    library = ConceptLibrary.fit(slots, background, num_concepts=6, num_background_concepts=2)
    assert library.object_slots.shape == (40 * 4, 8) and library.background_slots.shape == (40, 8)
    # every K-means cluster is exactly one true concept (a bijection between labellings)
    truth = labels[:, 1:].reshape(-1)
    pairs = set(zip(library.object_labels.tolist(), truth.tolist(), strict=True))
    assert len(pairs) == 6
    assert (library.background_slots[:, :2].sum(1) < -5).all()  # background members come from the background pool


def test_save_load_round_trip_is_exact_and_pickle_free(tmp_path):
    slots, background, _ = clustered_slots()
    library = ConceptLibrary.fit(slots, background, num_concepts=6, num_background_concepts=2, seed=3)
    folder = library.save(tmp_path / "lib")
    assert sorted(p.name for p in folder.iterdir()) == ["concepts.json", "concepts.safetensors"]
    meta = json.loads((folder / "concepts.json").read_text())
    assert meta["num_concepts"] == 6 and meta["num_background_concepts"] == 2 and meta["num_slots"] == 5
    loaded = ConceptLibrary.load(folder)
    for key in ("object_slots", "object_labels", "object_centroids", "background_slots", "background_labels"):
        assert torch.equal(getattr(loaded, key), getattr(library, key)), key
    assert loaded.meta == library.meta
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(loaded.compose(4, g1), library.compose(4, g2))


def test_load_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="concepts.json is missing"):
        ConceptLibrary.load(tmp_path)
    slots, background, _ = clustered_slots()
    folder = ConceptLibrary.fit(slots, background, 6, 2).save(tmp_path / "lib")
    meta = json.loads((folder / "concepts.json").read_text())
    (folder / "concepts.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="concepts.json: field 'format'"):
        ConceptLibrary.load(folder)


def test_compose_draws_distinct_concepts_one_background_and_is_seeded():
    slots, background, _ = clustered_slots()
    library = ConceptLibrary.fit(slots, background, num_concepts=6, num_background_concepts=2)
    scenes = library.compose(50, torch.Generator().manual_seed(0))
    assert scenes.shape == (50, 5, 8)
    object_concepts = library.concept_of(scenes[:, 1:])
    assert all(len(set(row.tolist())) == 4 for row in object_concepts)  # distinct concepts in each scene
    assert (scenes[:, 0, :2].sum(1) < -5).all()  # slot 0 is a background-concept member
    assert (scenes[:, 1:, :2].sum(-1) > -5).all()  # and only slot 0
    # every composed slot is a real member slot of the library
    members = torch.cat([library.object_slots, library.background_slots])
    assert (scenes.reshape(-1, 1, 8) == members.unsqueeze(0)).all(-1).any(-1).all()
    again = library.compose(50, torch.Generator().manual_seed(0))
    other = library.compose(50, torch.Generator().manual_seed(1))
    assert torch.equal(scenes, again) and not torch.equal(scenes, other)


def test_compose_needs_enough_concepts():
    slots, background, _ = clustered_slots(num_slots=8)
    with pytest.raises(ValueError, match="needs 7 distinct object concepts, the library has 6"):
        ConceptLibrary.fit(slots, background, num_concepts=6, num_background_concepts=2)


def test_collect_slots_encodes_each_image_with_its_own_noise(tiny_model, tiny_images):
    slots, background = collect_slots(tiny_model, tiny_images, num_images=6, batch_size=4)
    assert slots.shape == (6, 4, 16) and background.shape == (6,)
    alone, _ = collect_slots(tiny_model, tiny_images, num_images=6, batch_size=1)
    torch.testing.assert_close(slots, alone, rtol=1e-5, atol=1e-5)  # independent of the batching
    with pytest.raises(ValueError, match=r"num_images.*\[1, 12\]"):
        collect_slots(tiny_model, tiny_images, num_images=13)


def test_shuffle_slots_mixes_images_per_position_and_keeps_every_slot():
    slots = torch.arange(6 * 3, dtype=torch.float).reshape(6, 3, 1)
    shuffled = shuffle_slots(slots, torch.Generator().manual_seed(0))
    for s in range(3):  # each position is a permutation of that position's slots
        assert sorted(shuffled[:, s, 0].tolist()) == sorted(slots[:, s, 0].tolist())
    source_image = (shuffled[..., 0] - torch.arange(3)) // 3
    assert any(len(set(row.tolist())) > 1 for row in source_image)  # scenes mix several images

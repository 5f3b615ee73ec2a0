"""Face-part swapping: part -> slot assignment, the swap scores, the controls and the wiring."""

import PIL.Image
import pytest
import torch

from lsd.generation import (
    encode_images,
    image_generators,
    part_slots,
    part_swap_scores,
    plot_part_swaps,
    score_part_edit,
    slot_decoder,
)
from lsd.models.lsd import attention_to_segmentation

PARTS = ("skin", "hair", "eyes")


def test_each_part_gets_the_slot_of_highest_iou_and_absent_parts_get_minus_one():
    seg = torch.zeros(2, 4, 4, dtype=torch.long)
    seg[0, :2] = 1  # slot 1: the top half of image 0
    seg[0, 2:, 2:] = 2  # slot 2: the bottom-right quarter
    parts = torch.zeros(2, 4, 4, dtype=torch.long)
    parts[0, :2, :3] = 1  # part 1 (6 px) inside slot 1 (8 px): IoU 6/8
    parts[0, 2:, 3:] = 2  # part 2 (2 px) inside slot 2 (4 px): IoU 1/2; slot 0 (4 px) shares 0
    parts[0, 3, 0] = 3  # part 3: one pixel of slot 0 (IoU 1/4)
    # image 1: slot 3 covers everything; part 1 covers a ring; part 2, 3 absent
    seg[1] = 3
    parts[1, 0] = 1
    assert part_slots(seg, parts, num_slots=4, num_parts=3).tolist() == [[1, 2, 0], [3, -1, -1]]
    # a part split over two slots goes to the one it overlaps most relative to the union
    seg2 = torch.tensor([[[0, 0, 1, 1, 1, 1]]])
    parts2 = torch.tensor([[[1, 1, 1, 0, 0, 0]]])  # slot 0: IoU 2/3; slot 1: 1/6
    assert part_slots(seg2, parts2, 2, 1).tolist() == [[0]]
    with pytest.raises(ValueError, match=r"`part_masks` has part ids outside \[0, 2\]"):
        part_slots(seg, parts, 4, 2)
    with pytest.raises(ValueError, match="same size"):
        part_slots(seg, parts[:, :2], 4, 3)


def test_scores_identity_edit_0_pasted_donor_part_1_and_a_full_copy_loses_the_rest():
    gen = torch.Generator().manual_seed(0)
    rec, donor = torch.rand(3, 16, 16, generator=gen) * 2 - 1, torch.rand(3, 16, 16, generator=gen) * 2 - 1
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[4:8, 4:8] = True
    same = score_part_edit(rec, rec, donor, region, margin=1)
    assert same["success"] is False and same["kept"] is True and same["mae_to_original"] == 0.0
    assert same["changed"] is False  # kept trivially: nothing changed, and the record says so
    assert score_part_edit(rec + 1 / 255, rec, donor, region, margin=1)["changed"] is False  # under one level
    assert score_part_edit(rec + 3 / 255, rec, donor, region, margin=1)["changed"] is True
    pasted = score_part_edit(torch.where(region, donor, rec), rec, donor, region, margin=1)
    assert pasted["success"] is True and pasted["kept"] is True and pasted["mae_to_donor"] == 0.0
    assert pasted["mae_to_original"] == pytest.approx((donor - rec)[:, 4:8, 4:8].abs().mean().item())
    whole = score_part_edit(donor, rec, donor, region, margin=1)
    assert whole["success"] is True and whole["kept"] is False
    # the keep comparison leaves out the dilated region: damage in the 1-px ring does not count...
    ring = rec.clone()
    ring[:, 3, 3:9] = donor[:, 3, 3:9]
    assert score_part_edit(ring, rec, donor, region, margin=1)["rest_mae_to_original"] == 0.0
    # ...but damage further out does
    assert score_part_edit(ring, rec, donor, region, margin=0)["rest_mae_to_original"] > 0.0
    everything = torch.ones(16, 16, dtype=torch.bool)
    assert score_part_edit(rec, rec, donor, everything, margin=1)["kept"] is None  # nothing outside


class Faces:
    """Random 32 px 'faces' with 16 px GT part masks: skin in every face, hair in all but face 3,
    eyes only in faces 0 and 1 (so pair 1 shares two parts)."""

    def __init__(self, count: int = 4) -> None:
        gen = torch.Generator().manual_seed(7)
        self.pixels = torch.rand(count, 3, 32, 32, generator=gen) * 2 - 1
        self.masks = torch.zeros(count, 16, 16, dtype=torch.long)
        for i in range(count):
            self.masks[i, 4 + i : 14, 3:13] = 1
            if i != 3:
                self.masks[i, : 3 + i] = 2
            if i < 2:
                self.masks[i, 7:9, 5 + i : 11] = 3

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": self.pixels[index], "masks": self.masks[index], "index": index}


class RecordingDecoder:
    """Returns face a itself for a's own slots and the donor b (whole) for a swapped set; records
    which image (by its generator's seed) and which swap it was asked for."""

    def __init__(self, slots: torch.Tensor, pixels: torch.Tensor, seed: int) -> None:
        self.slots, self.pixels, self.calls = slots, pixels, []
        self.by_seed = {g.initial_seed(): i for i, g in enumerate(image_generators(seed, range(len(slots))))}

    def __call__(self, slots: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        out = []
        for row, gen in zip(slots, generators, strict=True):
            a = self.by_seed[gen.initial_seed()]  # which image's noise this decode uses
            changed = [k for k in range(len(row)) if not torch.allclose(row[k], self.slots[a, k], atol=1e-5)]
            if not changed:
                self.calls.append(("own", a))
                out.append(self.pixels[a])
                continue
            (k,) = changed  # exactly one slot replaced, by another image's slot
            [(b, j)] = [(b, j) for b in range(len(self.slots)) for j in range(self.slots.shape[1])
                      if b != a and torch.allclose(row[k], self.slots[b, j], atol=1e-5)]  # fmt: skip
            self.calls.append(("swap", a, k, b, j))
            out.append(self.pixels[b])
        return torch.stack(out)


def test_swaps_exchange_each_shared_parts_slots_with_the_reconstructions_noise(tiny_model, tmp_path):
    faces, seed = Faces(), 3
    slots = encode_images(tiny_model, faces.pixels, seed, list(range(4)))
    big_masks = faces.masks.repeat_interleave(2, 1).repeat_interleave(2, 2)  # the 16 px masks at 32 px
    segmentation = attention_to_segmentation(slots.attn, (32, 32))
    chosen = part_slots(segmentation, big_masks, 4, 3)
    decoder = RecordingDecoder(slots.slots, faces.pixels, seed)
    record = part_swap_scores(tiny_model, faces, num_pairs=2, seed=seed, decode=decoder, part_names=PARTS, batch_size=4)

    shared = {0: [1, 2, 3], 1: [1]}  # pair 0 (faces 0, 1) shares skin, hair, eyes; pair 1 (faces 2, 3) skin only
    expected = sorted(
        ("swap", 2 * i, int(chosen[2 * i, p - 1]), 2 * i + 1, int(chosen[2 * i + 1, p - 1]))
        for i, ps in shared.items()
        for p in ps
    )
    assert sorted(c for c in decoder.calls if c[0] == "swap") == expected
    assert sorted(c for c in decoder.calls if c[0] == "own") == [("own", 0), ("own", 2)]
    assert record["swaps"] == 4 and record["pairs_without_shared_part"] == 0
    assert {n: s["pairs"] for n, s in record["parts"].items()} == {"skin": 2, "hair": 1, "eyes": 1}
    # a' = b exactly: every swap succeeds and none keeps the rest; errors against a are |b - a| over R_p
    for name, p in zip(PARTS, (1, 2, 3), strict=True):
        summary = record["parts"][name]
        assert summary["success_rate"] == 1.0 and summary["kept_rate"] == 0.0 and summary["mae_to_donor"] == 0.0
        pairs = [i for i, ps in shared.items() if p in ps]
        errors = []
        for i in pairs:
            region = (big_masks[2 * i] == p) | (big_masks[2 * i + 1] == p)
            errors.append((faces.pixels[2 * i + 1] - faces.pixels[2 * i])[:, region].abs().mean().item())
        assert summary["mae_to_original"] == pytest.approx(sum(errors) / len(errors), rel=1e-5)
    assert record["mean"]["success_rate"] == 1.0 and record["mean"]["kept_rate"] == 0.0
    assert record["controls"]["no_swap"]["success_rate"] == 0.0 and record["controls"]["no_swap"]["kept_rate"] == 1.0
    assert record["controls"]["no_swap"]["changed_rate"] == 0.0 and record["mean"]["changed_rate"] == 1.0
    assert record["controls"]["copy_donor_part"]["success_rate"] == 1.0
    assert record["controls"]["copy_donor_part"]["kept_rate"] == 1.0
    images = record["images"]
    assert images["part"] == ["skin", "skin"] and images["pair"] == [0, 1]  # skin: the largest shared region
    assert torch.equal(images["a"], faces.pixels[[0, 2]]) and torch.equal(images["swapped"], faces.pixels[[1, 3]])
    plot_part_swaps(images, tmp_path / "swaps.png")
    assert PIL.Image.open(tmp_path / "swaps.png").size[0] > 4 * 32  # four columns of panels


def test_a_real_decoder_gives_the_same_record_whatever_the_batch_size(tiny_model):
    faces = Faces()
    decode = slot_decoder(tiny_model, num_inference_steps=2)
    runs = [
        part_swap_scores(tiny_model, faces, num_pairs=2, seed=0, decode=decode, part_names=PARTS, batch_size=size)
        for size in (1, 4)
    ]
    a, b = runs
    torch.testing.assert_close(a["images"]["swapped"], b["images"]["swapped"], rtol=0, atol=1e-5)
    for name in PARTS:
        for key in ("pairs", "success_rate", "kept_rate"):
            assert a["parts"][name][key] == b["parts"][name][key]
        assert a["parts"][name]["mae_to_donor"] == pytest.approx(b["parts"][name]["mae_to_donor"], abs=1e-5)
    # the swapped image differs from the reconstruction: the exchanged slot reached the decoder
    assert (a["images"]["swapped"] - a["images"]["reconstruction"]).abs().max() > 1e-3
    own = decode(encode_images(tiny_model, faces.pixels[[0]], 0, [0]).slots, image_generators(0, [0]))
    torch.testing.assert_close(a["images"]["reconstruction"][:1], own, rtol=0, atol=1e-5)


BAD = {
    "part ids beyond the names": (lambda f: f.masks.__setitem__((0, 0, 0), 4), r"dataset item 0: `masks` has part ids outside \[0, 3\]"),
    "float masks": (lambda f: setattr(f, "masks", f.masks.float()), r"dataset item 0: `masks` must be \(M, M\) integer"),
}  # fmt: skip


@pytest.mark.parametrize("spoil, message", list(BAD.values()), ids=list(BAD))
def test_bad_labels_are_refused_before_any_decoding(tiny_model, spoil, message):
    faces = Faces()
    spoil(faces)

    def never(slots, generators):
        raise AssertionError("decoded before checking the labels")

    with pytest.raises(ValueError, match=message):
        part_swap_scores(tiny_model, faces, num_pairs=2, seed=0, decode=never, part_names=PARTS)
    with pytest.raises(ValueError, match="needs 6 images, the dataset has 4"):
        part_swap_scores(Faces(), Faces(), num_pairs=3, seed=0, decode=never, part_names=PARTS)
    with pytest.raises(ValueError, match="`part_names` must be distinct"):
        part_swap_scores(tiny_model, Faces(), num_pairs=1, seed=0, decode=never, part_names=("a", "a"))

import pytest
import torch

from lsd.generation import (
    background_slot,
    image_generators,
    insert_slot,
    match_slots_by_mask,
    object_slots,
    remove_slot,
    replace_slot,
    slot_decoder,
    swap_slots,
)


def scene():
    """8x8: slot 2 everywhere (background), slot 0 a 3x3 object, slot 3 a 2x2 object touching the border."""
    seg = torch.full((1, 8, 8), 2)
    seg[0, 2:5, 2:5] = 0
    seg[0, 0:2, 6:8] = 3
    return seg


def test_background_is_the_slot_on_most_border_pixels_and_objects_come_largest_first():
    seg = scene()
    assert background_slot(seg, 4).tolist() == [2]
    assert object_slots(seg, 4, min_pixels=1) == [[0, 3]]
    assert object_slots(seg, 4, min_pixels=5) == [[0]]  # the 4-pixel object is too small
    tie = torch.zeros(1, 4, 4, dtype=torch.long)
    tie[0, :, 2:] = 1  # slots 0 and 1 share the border equally: the lower id wins
    assert background_slot(tie, 2).tolist() == [0]


def test_remove_insert_replace_change_only_the_named_slot():
    slots = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)
    removed = remove_slot(slots, torch.tensor([1, 3]))
    assert torch.equal(removed[0], slots[0, [0, 2, 3]]) and torch.equal(removed[1], slots[1, [0, 1, 2]])
    extra = torch.full((2, 3), -1.0)
    inserted = insert_slot(slots, extra)
    assert inserted.shape == (2, 5, 3) and torch.equal(inserted[:, :4], slots) and (inserted[:, 4] == -1).all()
    replaced = replace_slot(slots, torch.tensor([0, 2]), extra)
    assert (replaced[0, 0] == -1).all() and (replaced[1, 2] == -1).all()
    assert torch.equal(replaced[0, 1:], slots[0, 1:]) and torch.equal(slots[0, 0], torch.arange(3.0))  # input untouched
    with pytest.raises(ValueError, match=r"`index` has slot ids outside \[0, 4\)"):
        remove_slot(slots, 4)


def test_removing_a_slot_removes_it_from_the_denoisers_conditioning(tiny_model):
    """The UNet's cross-attention sees S - 1 slots, never the removed one; the image no longer
    depends on the removed slot's value (it did before the removal)."""
    seen = []
    hook = tiny_model.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True
    )
    try:
        decode = slot_decoder(tiny_model, num_inference_steps=2)
        slots = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(0))
        before = decode(slots, image_generators(0, [0]))
        changed = slots.clone()
        changed[0, 1] += 3.0
        assert not torch.allclose(decode(changed, image_generators(0, [0])), before)  # slot 1 matters
        seen.clear()
        after = decode(remove_slot(slots, 1), image_generators(0, [0]))
        after_changed = decode(remove_slot(changed, 1), image_generators(0, [0]))
    finally:
        hook.remove()
    assert seen and all(h.shape == (1, 3, 16) for h in seen)
    assert all(not (h == slots[0, 1]).all(-1).any() for h in seen)
    assert torch.equal(after, after_changed)


def test_matching_by_mask_pairs_overlapping_slots_and_swap_exchanges_them():
    a = torch.zeros(3, 4, 4, dtype=torch.bool)
    b = torch.zeros(3, 4, 4, dtype=torch.bool)
    a[0, :2], a[1, 2:, :2], a[2, 2:, 2:] = True, True, True
    b[2, :2], b[0, 2:, :2], b[1, 2:, 3:] = True, True, True  # same places, other ids
    assert sorted(match_slots_by_mask(a, b)) == [(0, 2), (1, 0), (2, 1)]
    sa, sb = torch.arange(6.0).reshape(3, 2), -torch.arange(6.0).reshape(3, 2)
    na, nb = swap_slots(sa, sb, [(0, 2)])
    assert torch.equal(na[0], sb[2]) and torch.equal(nb[2], sa[0])
    assert torch.equal(na[1:], sa[1:]) and torch.equal(nb[:2], sb[:2])
    with pytest.raises(ValueError, match="each slot at most once"):
        swap_slots(sa, sb, [(0, 1), (0, 2)])

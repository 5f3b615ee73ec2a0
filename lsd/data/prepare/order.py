"""The order in which ``tfds.load`` yields a split's records, from its shard lengths.

The release's dump numbers videos 0, 1, 2, ... in the order ``tfds.load`` yields them. tfds
4.9.10's default read (``shuffle_files=False``, ``ReadConfig`` defaults) is
``tf.data.Dataset.interleave`` over the non-empty shard files, in index order, with
``cycle_length=16`` and ``block_length=16`` (``tensorflow_datasets/core/reader.py``; a dataset
whose ``dataset_info.json`` says ``disableShuffling`` is read one shard after another). Its
deterministic order is that of TensorFlow's interleave (``interleave_dataset_op.cc``):

- a cycle of ``cycle_length`` slots, visited in turn; an empty slot opens the next unopened
  shard when its turn comes;
- a visit reads up to ``block_length`` records from the slot's shard; a shard found exhausted
  frees its slot at once and the turn passes on (so a shard of 16 records is found empty only
  on one extra, empty visit, and the freed slot opens a new shard a round later).

Checked against ``tfds.load`` on shards tfds wrote (tests/fixtures/movi_tfds: 2 shards of 18 + 17
records, and 17 shards of 16 or 17).
"""

from __future__ import annotations

from collections.abc import Sequence

#: tfds 4.9.10's ``ReadConfig`` defaults (``interleave_cycle_length`` 16 when files are not
#: shuffled, ``interleave_block_length`` 16).
CYCLE_LENGTH = 16
BLOCK_LENGTH = 16


def interleave_order(
    shard_lengths: Sequence[int], cycle_length: int = CYCLE_LENGTH, block_length: int = BLOCK_LENGTH
) -> list[tuple[int, int]]:
    """``(shard index, record index in the shard)`` of every record, in tfds's read order.

    Shards of length 0 are skipped (tfds leaves them out of its file list).
    """
    if cycle_length < 1 or block_length < 1:
        raise ValueError(f"cycle_length and block_length must be >= 1, got {cycle_length} and {block_length}")
    pending = [(shard, length) for shard, length in enumerate(shard_lengths) if length > 0]
    pending.reverse()  # pop() takes the next shard in index order
    slots: list[list[int] | None] = [None] * cycle_length  # [shard, next record, length]
    order: list[tuple[int, int]] = []
    slot, open_slots = 0, 0
    while pending or open_slots:
        current = slots[slot]
        if current is None and pending:
            shard, length = pending.pop()
            current = slots[slot] = [shard, 0, length]
            open_slots += 1
        if current is not None:
            shard, start, length = current
            taken = min(block_length, length - start)
            order.extend((shard, record) for record in range(start, start + taken))
            current[1] = start + taken
            if taken < block_length:  # found exhausted during this visit: the slot is freed
                slots[slot] = None
                open_slots -= 1
        slot = (slot + 1) % cycle_length
    return order


def read_order(shard_lengths: Sequence[int], disable_shuffling: bool = False) -> list[tuple[int, int]]:
    """tfds's default read order of a split (``disable_shuffling``: its ``dataset_info.json`` flag)."""
    return interleave_order(shard_lengths, cycle_length=1 if disable_shuffling else CYCLE_LENGTH)

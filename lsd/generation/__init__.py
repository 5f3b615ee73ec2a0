"""Compositional generation and object editing with slots (not in the LSD release; see docs/generation.md).

- :mod:`lsd.generation.decoding` -- :func:`slot_decoder` (the one slots -> images path),
  per-image seeded encoding and sampler noise.
- :mod:`lsd.generation.concepts` -- :class:`ConceptLibrary` (K-means slot concepts,
  ``compose``), :func:`shuffle_slots` (SlotDiffusion's bound).
- :mod:`lsd.generation.editing` -- background / object slots from attention masks; remove,
  insert, replace and swap slots.
- :mod:`lsd.generation.evaluate` -- :func:`evaluate_generation`: reconstruction PSNR, Frechet
  distances (own < composed < shuffled), automatic edit measures.
"""

from lsd.generation.concepts import ConceptLibrary, collect_slots, shuffle_slots
from lsd.generation.decoding import SlotDecoder, encode_images, image_generators, segment_images, slot_decoder
from lsd.generation.editing import (
    background_slot,
    insert_slot,
    match_slots_by_mask,
    object_slots,
    remove_slot,
    replace_slot,
    slot_areas,
    swap_slots,
)
from lsd.generation.evaluate import GenerationProtocol, evaluate_generation

__all__ = [
    "ConceptLibrary",
    "GenerationProtocol",
    "SlotDecoder",
    "background_slot",
    "collect_slots",
    "encode_images",
    "evaluate_generation",
    "image_generators",
    "insert_slot",
    "match_slots_by_mask",
    "object_slots",
    "remove_slot",
    "replace_slot",
    "segment_images",
    "shuffle_slots",
    "slot_areas",
    "slot_decoder",
    "swap_slots",
]

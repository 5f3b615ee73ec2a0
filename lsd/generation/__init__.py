"""Compositional generation and object editing with slots (not in the LSD release; see docs/generation.md).

- :mod:`lsd.generation.decoding` -- :func:`slot_decoder` (the one slots -> images path),
  per-image seeded encoding and sampler noise.
- :mod:`lsd.generation.concepts` -- :class:`ConceptLibrary` (K-means slot concepts,
  ``compose``), :func:`shuffle_slots` (SlotDiffusion's bound).
- :mod:`lsd.generation.editing` -- background / object slots from attention masks; remove,
  insert, replace and swap slots.
- :mod:`lsd.generation.evaluate` -- :func:`evaluate_generation`: reconstruction PSNR, Frechet
  distances (own < composed < shuffled), automatic edit measures.
- :mod:`lsd.generation.parts` -- :func:`part_swap_scores`: FFHQ face-part swapping, scored
  automatically; :func:`part_slots`, :func:`plot_part_swaps`.
- :mod:`lsd.generation.guidance` -- :func:`guidance_samples`: Stable-LSD samples at the release's
  classifier-free guidance scales and seeds; :func:`plot_guidance_grid`.
- :mod:`lsd.generation.commands` -- ``lsd compose``, ``lsd edit``, ``lsd evaluate-generation``.

Names are imported on first use, so that building the command-line parser imports neither torch
nor diffusers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsd._lazy import lazy_exports

_EXPORTS = {
    "ConceptLibrary": "lsd.generation.concepts",
    "collect_slots": "lsd.generation.concepts",
    "shuffle_slots": "lsd.generation.concepts",
    "SlotDecoder": "lsd.generation.decoding",
    "encode_images": "lsd.generation.decoding",
    "image_generators": "lsd.generation.decoding",
    "segment_images": "lsd.generation.decoding",
    "slot_decoder": "lsd.generation.decoding",
    "background_slot": "lsd.generation.editing",
    "insert_slot": "lsd.generation.editing",
    "match_slots_by_mask": "lsd.generation.editing",
    "object_slots": "lsd.generation.editing",
    "remove_slot": "lsd.generation.editing",
    "replace_slot": "lsd.generation.editing",
    "slot_areas": "lsd.generation.editing",
    "swap_slots": "lsd.generation.editing",
    "EditedScenes": "lsd.generation.evaluate",
    "GenerationProtocol": "lsd.generation.evaluate",
    "edit_scenes": "lsd.generation.evaluate",
    "evaluate_generation": "lsd.generation.evaluate",
    "score_edits": "lsd.generation.evaluate",
    "RELEASE_GUIDANCE_SCALES": "lsd.generation.guidance",
    "guidance_samples": "lsd.generation.guidance",
    "plot_guidance_grid": "lsd.generation.guidance",
    "part_slots": "lsd.generation.parts",
    "part_swap_scores": "lsd.generation.parts",
    "plot_part_swaps": "lsd.generation.parts",
    "score_part_edit": "lsd.generation.parts",
}

__all__ = [
    "RELEASE_GUIDANCE_SCALES",
    "ConceptLibrary",
    "EditedScenes",
    "GenerationProtocol",
    "SlotDecoder",
    "background_slot",
    "collect_slots",
    "edit_scenes",
    "encode_images",
    "evaluate_generation",
    "guidance_samples",
    "image_generators",
    "insert_slot",
    "match_slots_by_mask",
    "object_slots",
    "part_slots",
    "part_swap_scores",
    "plot_guidance_grid",
    "plot_part_swaps",
    "remove_slot",
    "replace_slot",
    "score_edits",
    "score_part_edit",
    "segment_images",
    "shuffle_slots",
    "slot_areas",
    "slot_decoder",
    "swap_slots",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs
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
    from lsd.generation.evaluate import EditedScenes, GenerationProtocol, edit_scenes, evaluate_generation, score_edits
    from lsd.generation.guidance import RELEASE_GUIDANCE_SCALES, guidance_samples, plot_guidance_grid
    from lsd.generation.parts import part_slots, part_swap_scores, plot_part_swaps, score_part_edit

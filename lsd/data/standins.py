"""Stand-ins for the paper's datasets, each written in that dataset's REAL on-disk layout so that
the real reader (:mod:`lsd.data.readers`) is the one that reads it back.

None of the paper's datasets can be downloaded here. A stand-in keeps each table's whole
pipeline honest (real reader, real training, real evaluation) on data whose objects, or face
parts, are known. It says nothing about the real dataset: every number measured on one is
labelled "stand-in". Scenes come from :mod:`lsd.data.synthetic` (2-D occluding shapes with
shading and textures) and are a pure function of ``(seed, split, index)``; faces come from
:func:`render_face` (parts drawn in order), a pure function of ``(seed, index)``.

Kinds and layouts (docs/datasets.md, "Stand-ins"):

- ``movi-c`` / ``movi-e``: the release's MOVi dump, ``<folder>/<kind>/<kind>-<split>-with-label/``
  (:func:`lsd.data.synthetic.write_dataset`); the ``medium`` level (3-6 objects) for MOVi-C, the
  ``hard`` level (6-12 small objects) for MOVi-E.
- ``clevr``: CLEVR-with-masks converted to the MOVi file naming,
  ``<folder>/clevr_with_masks/clevr_with_masks-<split>-with-label/{images,labels}/<i:08d>_*``:
  320 x 240 RGB, a 192 x 192 scene of 3-6 large solid or striped objects on a plain shaded
  background inside the usual crop box (the scene's background colour outside it), 11-long JSON arrays (entity 0 =
  background, padding entities with visibility 0).
- ``clevrtex``: ``<folder>/clevrtex_full/<i // 1000>/CLEVRTEX_full_<i:06d>{.png,_flat.png,.json}``:
  320 x 240 RGB with a 240 x 240 textured scene in the centre (its background colour outside), a palette
  ``_flat.png`` (raw index = object index), the JSON object list; splits by index fraction (test
  [0, 0.1), val [0.1, 0.2), train [0.2, 1)), so the set holds enough scenes for both requested counts.
- ``ffhq``: synthetic aligned faces at ``<folder>/images1024x1024/<i // 1000 * 1000:05d>/<i:05d>.png``
  (first ``num_train`` train, then ``num_validation`` validation, read by the real FFHQ reader with
  ``num_train``), their part labels BESIDE the FFHQ layout (real FFHQ has none) at
  ``<folder>/parts/<i // 1000 * 1000:05d>/<i:05d>_segment.png`` with ``parts/parts.json``; read
  with :class:`FFHQPartsDataset`.
- ``coco``: COCO 2017, ``<folder>/{train2017,val2017}/<id:012d>.jpg`` (96 x 80 and 80 x 96, so the
  centre crop matters) and ``<folder>/annotations/instances_{train,val}2017.json``. Each object's
  annotation is its whole (amodal) shape as compressed RLE, so occluding objects overlap and the
  reader's ``ignore`` mask is non-empty; every fourth image also has an ``iscrowd`` annotation the
  reader drops. Categories are the generator's six shapes (ids 1..6).

A stand-in lives in ``<root>/standin-<kind>-<resolution>px-seed<seed>-<train>+<validation>/`` with
``standin_spec.json``; it is written to a temporary folder and renamed into place, and reused when
the same spec is already there.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lsd._atomic import atomic_dir
from lsd.data._common import read_index_png
from lsd.data.clevrtex import CLEVRTEX_CLASSES
from lsd.data.ffhq import FFHQDataset
from lsd.data.sample import LabelledSample
from lsd.data.synthetic import (
    LEVELS,
    SHAPES,
    TEXTURES,
    SceneLevel,
    SynthSpec,
    amodal_masks,
    render_scene,
    write_dataset,
)

__all__ = [
    "FFHQPartsDataset",
    "FFHQ_STANDIN_PARTS",
    "STANDIN_KINDS",
    "StandinSpec",
    "read_standin_spec",
    "render_face",
    "standin_reader_root",
    "write_standin",
]

STANDIN_KINDS = ("movi-c", "movi-e", "clevr", "clevrtex", "ffhq", "coco")
SPEC_FILE = "standin_spec.json"

#: CLEVR-like scenes: 3-6 large objects, solid ("rubber") or striped ("metal"), 8 colours, plain background.
CLEVR_LEVEL = SceneLevel(3, 6, 0.12, 0.22, 8, ("solid", "stripes"), False)
CLEVR_CANVAS = (240, 320)  # rows, cols
CLEVR_BOX = (29, 221, 64, 256)  # rows [29, 221), cols [64, 256): the usual crop
CLEVRTEX_BOX = (0, 240, 40, 280)  # the LSD release's centre 240 x 240
#: The generator's six shapes as CLEVRTex shape names (CLEVRTex has four: the map merges two pairs).
CLEVRTEX_SHAPE_OF = {"circle": "sphere", "square": "cube", "triangle": "monkey", "ellipse": "cylinder",
                     "cross": "cube", "ring": "sphere"}  # fmt: skip
#: The generator's five textures as CLEVRTex material names (five of its sixty).
CLEVRTEX_MATERIAL_OF = dict(zip(TEXTURES, CLEVRTEX_CLASSES["material"][::12][:5], strict=True))
COCO_SIZE = 96  # the rendered square; images are its 96 x 80 or 80 x 96 centre

FFHQ_STANDIN_PARTS = ("skin", "hair", "left eye", "right eye", "brows", "nose", "mouth")


@dataclass(frozen=True)
class StandinSpec:
    """Everything that determines a stand-in (saved as ``standin_spec.json``).

    ``resolution``: the side of the scene content in pixels for ``movi-*`` and ``ffhq`` (the
    model's input side; CLEVR, CLEVRTex and COCO are written at their own canvas sizes and resized
    by their readers).
    """

    kind: str
    num_train: int
    num_validation: int
    seed: int = 0
    resolution: int = 64

    def __post_init__(self) -> None:
        if self.kind not in STANDIN_KINDS:
            raise ValueError(f"stand-in kind={self.kind!r}: expected one of {', '.join(STANDIN_KINDS)}")
        for name, low in (("num_train", 1), ("num_validation", 1), ("seed", 0), ("resolution", 16)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"stand-in {name}={value!r}: must be an integer >= {low}")

    @property
    def folder_name(self) -> str:
        return f"standin-{self.kind}-{self.resolution}px-seed{self.seed}-{self.num_train}+{self.num_validation}"


def read_standin_spec(folder: str | os.PathLike) -> StandinSpec:
    """The spec a stand-in folder was written from; an error names a missing or bad file."""
    path = Path(folder) / SPEC_FILE
    try:
        return StandinSpec(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} is not a stand-in (no {SPEC_FILE})") from None
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path} is not a stand-in spec: {err}") from err


def standin_reader_root(folder: str | os.PathLike) -> Path:
    """What the real reader takes as ``root`` for the stand-in in ``folder``."""
    folder = Path(folder)
    return folder / "images1024x1024" if read_standin_spec(folder).kind == "ffhq" else folder


def write_standin(root: str | os.PathLike, spec: StandinSpec, progress: bool = True) -> Path:
    """Write (or reuse) ``spec``'s stand-in under ``root``; returns its folder (module docstring)."""
    folder = Path(root) / spec.folder_name
    text = json.dumps(asdict(spec), indent=2, sort_keys=True)
    if (folder / SPEC_FILE).is_file():
        if (folder / SPEC_FILE).read_text() == text:
            return folder
        raise FileExistsError(f"{folder} holds a different stand-in (see its {SPEC_FILE}); remove it first")
    if folder.exists():
        raise FileExistsError(f"{folder} exists and is not a stand-in written by lsd")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(folder) as tmp:
        WRITERS[spec.kind](tmp, spec, progress)
        (tmp / SPEC_FILE).write_text(text)
    return folder


# --------------------------------------------------------------------------------------------
# MOVi
# --------------------------------------------------------------------------------------------


def _write_movi(folder: Path, spec: StandinSpec, progress: bool) -> None:
    level = "medium" if spec.kind == "movi-c" else "hard"
    synth = SynthSpec(name=spec.kind, level=level, resolution=spec.resolution, seed=spec.seed,
                      num_train=spec.num_train, num_validation=spec.num_validation)  # fmt: skip
    write_dataset(folder, synth, progress=progress)


# --------------------------------------------------------------------------------------------
# CLEVR with masks
# --------------------------------------------------------------------------------------------


def _place(image: np.ndarray, segment: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Put a rendered square scene into a 320 x 240 canvas at ``box`` (rows, cols); outside it the
    canvas is the scene's median background colour (no objects), ids 0."""
    r0, r1, c0, c1 = box
    background = segment == 0
    fill = np.median(image[background], axis=0) if background.any() else np.median(image.reshape(-1, 3), axis=0)
    canvas = np.empty((*CLEVR_CANVAS, 3), dtype=np.uint8)
    canvas[:] = np.round(fill).astype(np.uint8)
    canvas[r0:r1, c0:c1] = image
    ids = np.zeros(CLEVR_CANVAS, dtype=np.uint8)
    ids[r0:r1, c0:c1] = segment
    return canvas, ids


def clevr_scene(seed: int, split: str, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, list]]:
    """One CLEVR-like scene: RGB ``(240, 320, 3)`` uint8, entity ids ``(240, 320)`` uint8 and the
    11-long JSON arrays (index 0 = background; codes 1-based: ``color`` = palette entry + 1,
    ``material`` 1 solid / 2 striped, ``shape`` = generator shape + 1, ``size`` 1 small / 2
    large; ``x``, ``y`` in [-3, 3], ``z`` = drawing depth; ``rotation`` in degrees;
    ``pixel_coords`` = (x_px, y_px, depth) in the full image)."""
    side = CLEVR_BOX[1] - CLEVR_BOX[0]
    image, segment, instances = render_scene(seed, split, index, side, CLEVR_LEVEL)
    image, segment = _place(image, segment, CLEVR_BOX)
    entities = 11
    arrays: dict[str, list] = {key: [0.0] * entities for key in ("x", "y", "z", "rotation")}
    arrays |= {key: [0] * entities for key in ("color", "material", "shape", "size")}
    arrays["pixel_coords"] = [[0.0, 0.0, 0.0] for _ in range(entities)]
    arrays["visibility"] = [0] * entities
    arrays["visibility"][0] = int((segment == 0).sum())
    for j, inst in enumerate(instances, start=1):
        u, v = inst["image_positions"]
        arrays["x"][j], arrays["y"][j] = 6 * u - 3, 6 * v - 3
        arrays["z"][j] = float(inst["depth"])
        arrays["rotation"][j] = math.degrees(inst["rotation"]) % 360
        arrays["color"][j] = inst["color_id"] + 1
        arrays["material"][j] = 1 if TEXTURES[inst["texture"]] == "solid" else 2
        arrays["shape"][j] = inst["category"] + 1
        arrays["size"][j] = 1 if inst["scale"] < 0.17 else 2
        arrays["pixel_coords"][j] = [CLEVR_BOX[2] + u * side, CLEVR_BOX[0] + v * side, float(inst["depth"])]
        arrays["visibility"][j] = int(inst["visibility"])
    return image, segment, arrays


def _write_clevr(folder: Path, spec: StandinSpec, progress: bool) -> None:
    name = "clevr_with_masks"
    jobs = [("train", i) for i in range(spec.num_train)] + [("validation", i) for i in range(spec.num_validation)]
    for split, index in tqdm(jobs, desc="stand-in clevr", disable=not progress):
        image, segment, arrays = clevr_scene(spec.seed, split, index)
        base = folder / name / f"{name}-{split}-with-label"
        (base / "images").mkdir(parents=True, exist_ok=True)
        (base / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="RGB").save(base / "images" / f"{index:08d}_image.png")
        Image.fromarray(segment, mode="L").save(base / "labels" / f"{index:08d}_segment.png")
        (base / "labels" / f"{index:08d}_instances.json").write_text(json.dumps(arrays))


# --------------------------------------------------------------------------------------------
# CLEVRTex
# --------------------------------------------------------------------------------------------


def clevrtex_count(num_train: int, num_validation: int) -> int:
    """Scenes a CLEVRTex stand-in holds so that its train [0.2, 1) and val [0.1, 0.2) fractions
    hold at least ``num_train`` and ``num_validation`` scenes."""
    total = max(math.ceil(num_train / 0.8), 10 * num_validation, 10)
    while int(1.0 * total) - int(0.2 * total) < num_train or int(0.2 * total) - int(0.1 * total) < num_validation:
        total += 1
    return total


def clevrtex_scene(seed: int, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One CLEVRTex-like scene (the ``medium`` level: textured objects on a textured background):
    RGB ``(240, 320, 3)`` uint8, object indices ``(240, 320)`` uint8 and the JSON record."""
    side = CLEVRTEX_BOX[1] - CLEVRTEX_BOX[0]
    image, segment, instances = render_scene(seed, "train", index, side, "medium")
    image, segment = _place(image, segment, CLEVRTEX_BOX)
    objects = []
    for j, inst in enumerate(instances, start=1):
        u, v = inst["image_positions"]
        x_px, y_px = CLEVRTEX_BOX[2] + u * side, CLEVRTEX_BOX[0] + v * side
        size = "large" if inst["scale"] >= 0.16 else "medium" if inst["scale"] >= 0.12 else "small"
        objects.append({
            "index": j, "shape": CLEVRTEX_SHAPE_OF[SHAPES[inst["category"]]], "size": size,
            "material": CLEVRTEX_MATERIAL_OF[TEXTURES[inst["texture"]]],
            "color": CLEVRTEX_CLASSES["color"][inst["color_id"] % len(CLEVRTEX_CLASSES["color"])],
            "rotation": math.degrees(inst["rotation"]) % 360, "3d_coords": [6 * u - 3, 6 * v - 3, float(inst["depth"])],
            "pixel_coords": [x_px, y_px, float(inst["depth"])],
        })  # fmt: skip
    return image, segment, {"image_index": index, "num_objects": len(objects), "objects": objects}


def _write_clevrtex(folder: Path, spec: StandinSpec, progress: bool) -> None:
    palette = [int(v) for i in range(256) for v in ((37 * i) % 256, (91 * i + 40) % 256, (173 * i + 90) % 256)]
    for index in tqdm(range(clevrtex_count(spec.num_train, spec.num_validation)), desc="stand-in clevrtex",
                      disable=not progress):  # fmt: skip
        image, segment, record = clevrtex_scene(spec.seed, index)
        base = folder / "clevrtex_full" / str(index // 1000)
        base.mkdir(parents=True, exist_ok=True)
        stem = f"CLEVRTEX_full_{index:06d}"
        Image.fromarray(image, mode="RGB").save(base / f"{stem}.png")
        flat = Image.fromarray(segment, mode="P")
        flat.putpalette(palette)
        flat.save(base / f"{stem}_flat.png")
        (base / f"{stem}.json").write_text(json.dumps(record))


# --------------------------------------------------------------------------------------------
# FFHQ: faces built from parts
# --------------------------------------------------------------------------------------------

_SKIN = np.array([[241, 194, 160], [224, 172, 130], [198, 134, 96], [160, 104, 70], [112, 72, 48], [250, 214, 190]])
_HAIR = np.array([[30, 24, 20], [90, 56, 30], [170, 120, 60], [220, 190, 120], [140, 40, 30], [200, 200, 200]])
_IRIS = np.array([[60, 90, 160], [80, 60, 40], [60, 130, 80], [120, 100, 60]])
_LIPS = np.array([[180, 70, 80], [150, 60, 60], [210, 110, 120], [120, 50, 50]])


def render_face(seed: int, index: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic aligned face: RGB ``(R, R, 3)`` uint8 and part ids ``(R, R)`` uint8
    (0 background, ``i`` = :data:`FFHQ_STANDIN_PARTS` ``[i - 1]``).

    Drawn back to front: a two-colour background, long hair (half the faces), neck and ears, the
    face oval (shaded), the hair cap above a random hairline, brows, eyes (sclera and iris: one
    part per eye), nose, mouth. Skin tone, hair colour and style, iris and lip colours, mouth
    width and the face's place and size (a few per cent: faces stay aligned) vary per face.
    """
    rng = np.random.default_rng((seed, 7, index))
    centres = (np.arange(resolution) + 0.5) / resolution
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    top, bottom = rng.uniform(0.2, 0.9, 3), rng.uniform(0.1, 0.8, 3)
    image = top[None, None] * (1 - yy[..., None]) + bottom[None, None] * yy[..., None]
    parts = np.zeros((resolution, resolution), dtype=np.uint8)
    s = rng.uniform(0.92, 1.08)
    cx, cy = 0.5 + rng.normal(0, 0.015), 0.5 + rng.normal(0, 0.015)
    skin = _SKIN[rng.integers(len(_SKIN))] / 255 * rng.uniform(0.92, 1.05)
    hair = _HAIR[rng.integers(len(_HAIR))] / 255
    iris, lips = _IRIS[rng.integers(len(_IRIS))] / 255, _LIPS[rng.integers(len(_LIPS))] / 255
    long_hair, hairline = rng.random() < 0.5, cy - s * rng.uniform(0.13, 0.2)

    def ellipse(x0: float, y0: float, a: float, b: float) -> np.ndarray:
        return ((xx - x0) / a) ** 2 + ((yy - y0) / b) ** 2 <= 1

    def paint(mask: np.ndarray, part: int, colour: np.ndarray) -> None:
        nonlocal image
        image = np.where(mask[..., None], np.broadcast_to(colour, image.shape), image)
        parts[mask] = part

    face = ellipse(cx, cy, 0.25 * s, 0.32 * s)
    shade = np.clip(1.05 - 0.5 * ((xx - cx + 0.08) ** 2 + (yy - cy + 0.1) ** 2) / s**2, 0.7, 1.05)[..., None]
    if long_hair:
        paint(ellipse(cx, cy + 0.02 * s, 0.33 * s, 0.4 * s) & (yy < cy + 0.3 * s), 2, hair)
    paint((np.abs(xx - cx) < 0.1 * s) & (yy > cy + 0.2 * s), 1, skin * 0.85)  # neck
    paint(ellipse(cx - 0.25 * s, cy, 0.045 * s, 0.08 * s) | ellipse(cx + 0.25 * s, cy, 0.045 * s, 0.08 * s), 1, skin)
    paint(face, 1, np.clip(skin * shade, 0, 1))
    paint(ellipse(cx, cy - 0.06 * s, 0.28 * s, 0.32 * s) & (yy < hairline), 2, hair)
    brow_y = cy - 0.1 * s
    paint(ellipse(cx - 0.1 * s, brow_y, 0.065 * s, 0.016 * s) | ellipse(cx + 0.1 * s, brow_y, 0.065 * s, 0.016 * s),
          5, hair * 0.7)  # fmt: skip
    for part, x0 in ((3, cx - 0.1 * s), (4, cx + 0.1 * s)):
        eye = ellipse(x0, cy - 0.03 * s, 0.055 * s, 0.03 * s)
        paint(eye, part, np.array([0.95, 0.95, 0.93]))
        image = np.where((eye & ellipse(x0, cy - 0.03 * s, 0.024 * s, 0.024 * s))[..., None], iris, image)
    paint(ellipse(cx, cy + 0.06 * s, 0.035 * s, 0.07 * s), 6, np.clip(skin * 0.8, 0, 1))
    paint(ellipse(cx, cy + 0.18 * s, rng.uniform(0.07, 0.11) * s, 0.028 * s), 7, lips)
    pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return pixels, parts


def _ffhq_name(index: int) -> str:
    return f"{index // 1000 * 1000:05d}/{index:05d}"


def _write_ffhq(folder: Path, spec: StandinSpec, progress: bool) -> None:
    total = spec.num_train + spec.num_validation
    if total > 100_000:
        raise ValueError(f"stand-in ffhq: {total} faces do not fit FFHQ's 5-digit names")
    for index in tqdm(range(total), desc="stand-in ffhq", disable=not progress):
        image, parts = render_face(spec.seed, index, spec.resolution)
        image_path = folder / "images1024x1024" / f"{_ffhq_name(index)}.png"
        part_path = folder / "parts" / f"{_ffhq_name(index)}_segment.png"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        part_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="RGB").save(image_path)
        Image.fromarray(parts, mode="L").save(part_path)
    (folder / "parts" / "parts.json").write_text(json.dumps({"background": 0, "parts": list(FFHQ_STANDIN_PARTS)}))


class FFHQPartsDataset(Dataset):
    """The FFHQ stand-in's faces (read by the real :class:`~lsd.data.ffhq.FFHQDataset`) with their
    part labels (``<images root>/../parts/``), as :class:`~lsd.data.sample.LabelledSample` items.

    ``masks``: int64 ``(M, M)`` part ids (0 background, ``i`` = ``FFHQ_STANDIN_PARTS[i - 1]``),
    ``M = resolution`` (NEAREST resize of the square label image); ``visible``: bool ``(P + 1,)``,
    the parts present (entry 0: any background pixel); ``labels``: none; ``index``.
    """

    def __init__(self, root: str | os.PathLike, split: str, resolution: int, num_train: int) -> None:
        self.images = FFHQDataset(root, split, resolution=resolution, num_train=num_train)
        self.root = Path(root)
        self.parts_root = self.root.parent / "parts"
        if not (self.parts_root / "parts.json").is_file():
            raise FileNotFoundError(f"no part labels at {self.parts_root / 'parts.json'} (not the FFHQ stand-in)")
        self.resolution = resolution
        self.max_num_objects = len(FFHQ_STANDIN_PARTS)
        self.property_kinds: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.images)

    def pixel_values(self, index: int) -> torch.Tensor:
        """Item ``index``'s ``pixel_values`` alone (``(3, R, R)`` in [-1, 1], equal to
        ``self[index]["pixel_values"]``), without reading its labels: what training reads."""
        return self.images[index]["pixel_values"]

    def __getitem__(self, index: int) -> LabelledSample:
        item = self.images[index]
        image_path = Path(self.images.files[index])
        rel = image_path.relative_to(self.root)
        part_path = self.parts_root / rel.parent / f"{image_path.stem}_segment.png"
        ids = read_index_png(part_path, ("L",))
        if ids.shape[0] != ids.shape[1] or int(ids.max()) > self.max_num_objects:
            raise ValueError(f"part labels {part_path}: expected a square map of ids 0..{self.max_num_objects}")
        resized = np.asarray(Image.fromarray(ids).resize((self.resolution,) * 2, resample=Image.NEAREST))
        masks = torch.from_numpy(resized.astype(np.int64))
        present = torch.bincount(masks.flatten(), minlength=self.max_num_objects + 1) > 0
        return LabelledSample(pixel_values=item["pixel_values"], index=index, masks=masks, visible=present, labels={})


# --------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------


def _coco_crop(index: int) -> tuple[slice, slice]:
    """Landscape (96 x 80) for even indices, portrait (80 x 96) for odd: the rendered square's centre."""
    cut = slice(8, COCO_SIZE - 8)
    return (cut, slice(None)) if index % 2 == 0 else (slice(None), cut)


def coco_scene(seed: int, split: str, index: int) -> tuple[np.ndarray, list[np.ndarray], list[int], np.ndarray]:
    """One COCO-style scene: RGB ``(H, W, 3)`` uint8, each annotated object's whole (amodal) mask
    ``(H, W)`` bool in drawing order (later ones on top), its category id (generator shape + 1),
    and the visible ids ``(H, W)`` (0 = background, ``j`` = the ``j``-th annotation). Objects
    fully hidden or cropped away are not annotated, as COCO annotates what is seen."""
    from lsd.data.synthetic import sample_scene

    level = LEVELS["medium"]
    image, _, _ = render_scene(seed, split, index, COCO_SIZE, level)
    amodal = amodal_masks(seed, split, index, COCO_SIZE, level)
    objects = sample_scene(seed, split, index, level)
    rows, cols = _coco_crop(index)
    image, amodal = image[rows, cols], amodal[:, rows, cols]
    owner = np.zeros(image.shape[:2], dtype=np.int64)
    for k in range(len(objects)):
        owner[amodal[k]] = k + 1
    kept = [k for k in range(len(objects)) if (owner == k + 1).any()]
    ids = np.zeros_like(owner)
    for j, k in enumerate(kept, start=1):
        ids[owner == k + 1] = j
    return image, [amodal[k] for k in kept], [objects[k].shape + 1 for k in kept], ids


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}


def _write_coco(folder: Path, spec: StandinSpec, progress: bool) -> None:
    from pycocotools import mask as mask_utils

    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPES)]
    (folder / "annotations").mkdir(parents=True)
    for split, count in (("train", spec.num_train), ("val", spec.num_validation)):
        images_dir = folder / f"{split}2017"
        images_dir.mkdir()
        images, annotations = [], []
        for index in tqdm(range(count), desc=f"stand-in coco {split}", disable=not progress):
            image, masks, category_ids, _ = coco_scene(spec.seed, "train" if split == "train" else "validation", index)
            image_id = index + 1
            name = f"{image_id:012d}.jpg"
            Image.fromarray(image, mode="RGB").save(images_dir / name, quality=95)
            height, width = image.shape[:2]
            images.append({"id": image_id, "file_name": name, "height": height, "width": width})
            for mask, category in zip(masks, category_ids, strict=True):
                rle = _rle(mask)
                bbox = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()}).tolist()
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                    "segmentation": rle, "area": float(mask.sum()), "bbox": bbox, "iscrowd": 0})  # fmt: skip
            if index % 4 == 3:  # a crowd region in a corner (the reader drops crowd annotations)
                crowd = np.zeros((height, width), dtype=bool)
                crowd[: height // 4, : width // 4] = True
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                    "segmentation": _rle(crowd), "area": float(crowd.sum()),
                                    "bbox": [0.0, 0.0, float(width // 4), float(height // 4)], "iscrowd": 1})  # fmt: skip
        record = {"info": {"description": "lsd COCO-format stand-in (synthetic scenes, amodal masks)"},
                  "images": images, "annotations": annotations, "categories": categories}  # fmt: skip
        (folder / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(record))


WRITERS = {
    "movi-c": _write_movi,
    "movi-e": _write_movi,
    "clevr": _write_clevr,
    "clevrtex": _write_clevrtex,
    "ffhq": _write_ffhq,
    "coco": _write_coco,
}

"""Synthetic multi-object scenes written in the MOVi on-disk layout (the embedded stand-in).

Each scene is a few to many occluding 2-D objects (six shapes) with shading (a soft highlight
toward a shared light direction), material-like textures (solid, stripes, checker, dots, noise),
colours drawn from a small shared palette (so several objects, and the background, share colours)
on a smooth or textured background. Scenes are a pure function of ``(seed, split, index)``: the
same arguments always give the same pixels, whatever else is generated.

Written exactly like the LSD release's MOVi dump so that the real MOVi reader reads it::

    <root>/<name>/<name>-<split>-with-label/images/<scene:08d>/00000000_image.png
    <root>/<name>/<name>-<split>-with-label/labels/<scene:08d>/00000000_segment.png   (L, 0 = bg)
    <root>/<name>/<name>-<split>-with-label/labels/<scene:08d>/00000000_instances.json

Segment id ``i`` is ``instances[i - 1]``; instances are sorted by visible pixel count,
descending (MOVi's convention), and fully occluded objects are kept with ``visibility == 0``.
``instances.json`` holds MOVi's keys where they make sense in 2-D (``category``,
``image_positions``, ``scale``, ``visibility``, ``bboxes_3d`` as a flat box at the object's
depth, ``positions`` = (x, y, depth)) and the generator's own attributes (``color_id``,
``color``, ``texture``, ``rotation``, ``depth``, ``asset_id`` = shape name).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from lsd._atomic import atomic_dir

SHAPES = ("circle", "square", "triangle", "ellipse", "cross", "ring")
TEXTURES = ("solid", "stripes", "checker", "dots", "noise")
#: A shared palette: objects and backgrounds draw from it, so colour alone does not separate objects.
PALETTE = (
    np.array(
        [
            [220, 60, 50],
            [50, 110, 210],
            [60, 170, 80],
            [235, 200, 60],
            [160, 80, 190],
            [240, 140, 40],
            [70, 190, 200],
            [200, 200, 200],
            [120, 85, 60],
            [230, 120, 170],
        ],  # fmt: skip
        dtype=np.float64,
    )
    / 255.0
)
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class SceneLevel:
    """How hard the scenes are."""

    min_objects: int
    max_objects: int
    min_size: float  # object radius as a fraction of the image side
    max_size: float
    num_colors: int  # palette entries in use
    textures: tuple[str, ...]
    textured_background: bool
    background_stripes: float = 0.5  # probability that a textured background also gets stripes


#: Smallest image side the scene renderer supports (objects are drawn at >= 1 px).
MIN_RESOLUTION = 8

LEVELS = {
    # CLEVR-like: few large solid objects, distinct colours, plain shaded background.
    "easy": SceneLevel(2, 5, 0.12, 0.22, 10, ("solid",), False),
    # Textures and shared colours, a textured background, moderate occlusion.
    "medium": SceneLevel(3, 6, 0.10, 0.20, 6, TEXTURES, True),
    # As medium, but the background texture is only smooth two-colour noise (no stripes): the
    # objects, not the background, carry the high-frequency detail.
    "smooth": SceneLevel(3, 6, 0.10, 0.20, 6, TEXTURES, True, background_stripes=0.0),
    # MOVi-like: many small objects, few colours, textures everywhere, heavy occlusion.
    "hard": SceneLevel(6, 12, 0.06, 0.15, 5, TEXTURES, True),
}


@dataclass
class SceneObject:
    shape: int
    color_id: int
    texture: int
    x: float
    y: float
    size: float
    rotation: float
    depth: int


def _smooth_noise(rng: np.random.Generator, res: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], ``(res, res)``: bilinear upsampling of a ``cells``-grid."""
    grid = rng.random((cells + 1, cells + 1))
    coords = np.linspace(0, cells, res, endpoint=False) + cells / (2 * res)
    i0 = np.clip(np.floor(coords).astype(int), 0, cells - 1)
    t = coords - i0
    rows = grid[i0] * (1 - t)[:, None] + grid[i0 + 1] * t[:, None]  # (res, cells+1)
    return rows[:, i0] * (1 - t)[None, :] + rows[:, i0 + 1] * t[None, :]


def _background(rng: np.random.Generator, level: SceneLevel, res: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    if not level.textured_background:
        base = 0.35 + 0.25 * rng.random(3)
        gradient = 0.85 + 0.3 * (yy * rng.uniform(-0.5, 0.5) + xx * rng.uniform(-0.5, 0.5))
        return np.clip(base[None, None] * gradient[..., None], 0, 1)
    c1, c2 = PALETTE[rng.choice(level.num_colors, size=2, replace=False)]
    mix = _smooth_noise(rng, res, int(rng.integers(2, 6)))
    if rng.random() < level.background_stripes:  # add stripes of a random orientation
        angle = rng.uniform(0, np.pi)
        stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(15, 40))
        mix = 0.6 * mix + 0.4 * stripes
    image = c1[None, None] * mix[..., None] + c2[None, None] * (1 - mix[..., None])
    return np.clip(0.55 * image + 0.2, 0, 1)  # muted so objects are not trivially brighter


def _shape_mask(obj: SceneObject, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean mask of the object and its local coordinates ``(u, v)`` in units of its radius."""
    c, s = np.cos(obj.rotation), np.sin(obj.rotation)
    dx, dy = xx - obj.x, yy - obj.y
    u = (c * dx + s * dy) / obj.size
    v = (-s * dx + c * dy) / obj.size
    name = SHAPES[obj.shape]
    if name == "circle":
        mask = u**2 + v**2 <= 1
    elif name == "square":
        mask = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    elif name == "triangle":  # equilateral, circumradius 1
        mask = (v <= 0.5) & (np.sqrt(3) * u - v <= 1) & (-np.sqrt(3) * u - v <= 1)
    elif name == "ellipse":
        mask = (u / 1.0) ** 2 + (v / 0.55) ** 2 <= 1
    elif name == "cross":
        mask = ((np.abs(u) <= 0.95) & (np.abs(v) <= 0.32)) | ((np.abs(u) <= 0.32) & (np.abs(v) <= 0.95))
    else:  # ring
        r2 = u**2 + v**2
        mask = (r2 <= 1) & (r2 >= 0.3)
    return mask, u, v


def _texture(obj: SceneObject, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A per-pixel factor in [0.45, 1] modulating the object's colour."""
    name = TEXTURES[obj.texture]
    if name == "solid":
        return np.ones_like(u)
    if name == "stripes":
        return np.where(np.sin(u * 7.0) > 0, 1.0, 0.55)
    if name == "checker":
        return np.where((np.floor(u * 2.5) + np.floor(v * 2.5)) % 2 == 0, 1.0, 0.5)
    if name == "dots":
        return np.where(((u * 2.2) % 1 - 0.5) ** 2 + ((v * 2.2) % 1 - 0.5) ** 2 < 0.08, 0.45, 1.0)
    return 0.6 + 0.4 * rng.random(u.shape)  # noise


def sample_scene(seed: int, split: str, index: int, level: str | SceneLevel = "hard") -> list[SceneObject]:
    """The objects of scene ``index``, drawn from ``np.random.default_rng((seed, split, index))``."""
    level = LEVELS[level] if isinstance(level, str) else level
    rng = np.random.default_rng((seed, SPLIT_IDS[split], index, 0))
    count = int(rng.integers(level.min_objects, level.max_objects + 1))
    objects = []
    for depth in range(count):
        size = float(rng.uniform(level.min_size, level.max_size))
        objects.append(
            SceneObject(
                shape=int(rng.integers(len(SHAPES))),
                color_id=int(rng.integers(level.num_colors)),
                texture=TEXTURES.index(level.textures[int(rng.integers(len(level.textures)))]),
                x=float(rng.uniform(size * 0.6, 1 - size * 0.6)),
                y=float(rng.uniform(size * 0.6, 1 - size * 0.6)),
                size=size,
                rotation=float(rng.uniform(0, 2 * np.pi)),
                depth=depth,  # drawn in this order: later objects occlude earlier ones
            )
        )
    return objects


def render_scene(
    seed: int, split: str, index: int, resolution: int, level: str | SceneLevel = "hard"
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Render scene ``index``.

    Returns:
        image: ``(R, R, 3)`` uint8.
        segment: ``(R, R)`` uint8, 0 = background, ``i`` = ``instances[i - 1]``.
        instances: per-object dicts (MOVi keys + generator attributes), sorted by visibility.
    """
    level = LEVELS[level] if isinstance(level, str) else level
    objects = sample_scene(seed, split, index, level)
    rng = np.random.default_rng((seed, SPLIT_IDS[split], index, 1))
    centres = (np.arange(resolution) + 0.5) / resolution
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    image = _background(rng, level, resolution, yy, xx)
    owner = np.zeros((resolution, resolution), dtype=np.int64)  # 1 + draw index, 0 = background
    light = rng.uniform(-0.5, 0.5, size=2)
    for k, obj in enumerate(objects):
        mask, u, v = _shape_mask(obj, yy, xx)
        highlight = np.clip(1 - ((u - light[0]) ** 2 + (v - light[1]) ** 2) / 2.5, 0, 1)
        shade = (0.55 + 0.45 * highlight) * _texture(obj, u, v, rng)
        colour = PALETTE[obj.color_id][None, None] * shade[..., None]
        image = np.where(mask[..., None], colour, image)
        owner[mask] = k + 1
    visibility = np.bincount(owner.ravel(), minlength=len(objects) + 1)[1:]
    order = sorted(range(len(objects)), key=lambda k: (-visibility[k], k))  # stable: ties by depth
    segment = np.zeros_like(owner, dtype=np.uint8)
    instances = []
    for new_id, k in enumerate(order, start=1):
        segment[owner == k + 1] = new_id
        obj = objects[k]
        half = obj.size
        corners = [
            [obj.x + sx * half, obj.y + sy * half, float(obj.depth)] for sx in (-1, 1) for sy in (-1, 1) for _ in (0, 1)
        ]
        instances.append(
            {
                "category": obj.shape,
                "asset_id": SHAPES[obj.shape],
                "image_positions": [obj.x, obj.y],
                "positions": [obj.x, obj.y, float(obj.depth)],
                "scale": obj.size,
                "visibility": int(visibility[k]),
                "bboxes_3d": corners,
                "color_id": obj.color_id,
                "color": PALETTE[obj.color_id].tolist(),
                "texture": obj.texture,
                "rotation": obj.rotation,
                "depth": obj.depth,
            }
        )
    pixels = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return pixels, segment, instances


def amodal_masks(seed: int, split: str, index: int, resolution: int, level: str | SceneLevel = "hard") -> np.ndarray:
    """Each object's whole shape, occluded parts included, in drawing order (that of
    :func:`sample_scene`; later objects are drawn on top): bool ``(K, R, R)``. Two masks overlap
    where one object occludes the other (COCO-style annotations of the same scene)."""
    level = LEVELS[level] if isinstance(level, str) else level
    objects = sample_scene(seed, split, index, level)
    centres = (np.arange(resolution) + 0.5) / resolution
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    if not objects:
        return np.zeros((0, resolution, resolution), dtype=bool)
    return np.stack([_shape_mask(obj, yy, xx)[0] for obj in objects])


def _instances_json(instances: list[dict]) -> dict[str, list]:
    """Per-object dicts -> MOVi's column layout (one list per key, objects along axis 0)."""
    keys = instances[0].keys() if instances else []
    return {key: [inst[key] for inst in instances] for key in keys}


@dataclass
class SynthSpec:
    """Everything that determines a generated dataset (saved as ``synth_spec.json``)."""

    name: str = "synth"
    level: str = "hard"
    resolution: int = 64
    seed: int = 0
    num_train: int = 1000
    num_validation: int = 100
    num_test: int = 0

    def __post_init__(self) -> None:
        """Name the first bad field (before any scene is rendered)."""
        ints = {"resolution": (self.resolution, MIN_RESOLUTION), "seed": (self.seed, 0)}
        ints |= {f"num_{s}": (getattr(self, f"num_{s}"), 0) for s in ("train", "validation", "test")}
        for name, (value, low) in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"synthetic dataset {name}={value!r}: must be an integer >= {low}")
        if self.num_train + self.num_validation + self.num_test < 1:
            raise ValueError("synthetic dataset: num_train + num_validation + num_test must be >= 1")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"synthetic dataset name={self.name!r}: must be a plain folder name")
        if self.level not in LEVELS:
            raise ValueError(f"synthetic dataset level={self.level!r}: expected one of {sorted(LEVELS)}")


def write_dataset(root: str | os.PathLike, spec: SynthSpec, progress: bool = True) -> Path:
    """Write ``spec``'s scenes under ``root/<name>/`` in the MOVi layout; returns that folder.

    Cached: an existing folder with the same ``synth_spec.json`` is reused. Written to a
    temporary folder and renamed into place, so an interrupted run leaves nothing half-written.
    """
    if spec.level not in LEVELS:
        raise ValueError(f"unknown level {spec.level!r}; expected one of {sorted(LEVELS)}")
    target = Path(root) / spec.name
    spec_json = json.dumps(asdict(spec), indent=2, sort_keys=True)
    if (target / "synth_spec.json").is_file():
        if (target / "synth_spec.json").read_text() == spec_json:
            return target
        raise FileExistsError(
            f"{target} holds a different synthetic dataset (see its synth_spec.json); remove it first"
        )
    if target.exists():
        raise FileExistsError(f"{target} exists and is not a synthetic dataset written by lsd")
    with atomic_dir(target) as tmp:
        jobs = [
            (split, i)
            for split, n in (("train", spec.num_train), ("validation", spec.num_validation), ("test", spec.num_test))
            for i in range(n)
        ]
        for split, index in tqdm(jobs, desc=f"synth {spec.name} ({spec.level})", disable=not progress):
            image, segment, instances = render_scene(spec.seed, split, index, spec.resolution, spec.level)
            base = tmp / f"{spec.name}-{split}-with-label"
            image_dir, label_dir = base / "images" / f"{index:08d}", base / "labels" / f"{index:08d}"
            image_dir.mkdir(parents=True, exist_ok=True)
            label_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="RGB").save(image_dir / "00000000_image.png")
            Image.fromarray(segment, mode="L").save(label_dir / "00000000_segment.png")
            (label_dir / "00000000_instances.json").write_text(json.dumps(_instances_json(instances)))
        (tmp / "synth_spec.json").write_text(spec_json)
    return target

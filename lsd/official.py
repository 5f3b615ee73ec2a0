"""Loading checkpoints written by the LSD release (``train_lsd.py``) into :class:`LatentSlotDiffusion`.

A release checkpoint folder ``checkpoint-N/`` holds one diffusers ``save_pretrained`` folder per
trained component (config.json + diffusion_pytorch_model.safetensors, or .bin from older runs):

=================================  ==================================  ===========================
release subfolder / class          ours                                parameter-name mapping
=================================  ==================================  ===========================
``unetencoder/`` UNetEncoder       :class:`~lsd.models.backbone.CNNBackbone`        identical
``multiheadstevesa/`` MultiHeadSTEVESA  :class:`~lsd.models.slot_attention.SlotAttention`  identical
``unet2dconditionmodelwithpos/``   :class:`~lsd.models.denoiser.SlotConditionedUNet`  ``.pos_emb.1.`` -> ``.pos_emb.``
=================================  ==================================  ===========================

The VAE and the noise scheduler are not in release checkpoints: pass ``vae`` (a model or a local
path) and optionally ``scheduler`` (default: the release's MOVi-E scheduler config).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

RELEASE_LAYOUT = {
    # our component: (release subfolder, release class name)
    "backbone": ("unetencoder", "UNetEncoder"),
    "slot_attention": ("multiheadstevesa", "MultiHeadSTEVESA"),
    "unet": ("unet2dconditionmodelwithpos", "UNet2DConditionModelWithPos"),
}
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def map_release_key(key: str) -> str:
    """Release parameter name -> ours (the release wraps cartesian/sincos embeddings in an
    ``nn.Sequential`` whose index 1 holds the parameters)."""
    return key.replace(".pos_emb.1.", ".pos_emb.")


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            try:
                if name.endswith(".safetensors"):
                    from safetensors.torch import load_file

                    return load_file(path)
                return torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
            except Exception as err:  # corrupt or truncated files
                raise ValueError(f"could not read weights {path}: {err}") from err
    raise FileNotFoundError(f"{folder} has no weights file (expected one of {WEIGHT_FILES})")


def _build_from_release_config(cls: type, folder: Path, release_class: str):
    from lsd.models._config import init_defaults

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}: invalid JSON ({err})") from err
    class_name = config.get("_class_name")
    if class_name != release_class:
        raise ValueError(f"{config_path}: _class_name is {class_name!r}, expected the release's {release_class!r}")
    fields = {k: v for k, v in config.items() if not k.startswith("_")}
    unknown = set(fields) - set(init_defaults(cls))
    if unknown:
        raise ValueError(
            f"{config_path}: field(s) {sorted(unknown)} are not understood by {cls.__name__} with the installed "
            "diffusers; refusing to build a model that may differ from the checkpoint's"
        )
    return cls.from_config(fields)


def load_release_component(folder: str | os.PathLike, component: str):
    """Build one component from a release subfolder and load its weights (strictly)."""
    from lsd.models.backbone import CNNBackbone
    from lsd.models.denoiser import SlotConditionedUNet
    from lsd.models.slot_attention import SlotAttention

    classes = {"backbone": CNNBackbone, "slot_attention": SlotAttention, "unet": SlotConditionedUNet}
    folder = Path(folder)
    release_class = RELEASE_LAYOUT[component][1]
    model = _build_from_release_config(classes[component], folder, release_class)
    state = {map_release_key(k): v for k, v in _read_weights(folder).items()}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{folder}: weights do not match the {release_class} config: {err}") from err
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{folder}: weights do not match the {release_class} config: "
            f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
        )
    from lsd._integrity import check_finite

    check_finite(model.state_dict().items(), str(folder))
    return model.eval()


def load_official_checkpoint(path: str | os.PathLike, vae: Any = None, **components: Any):
    """Load a release checkpoint folder (``checkpoint-N/``) as a :class:`~lsd.LatentSlotDiffusion`.

    Args:
        path: folder holding ``unetencoder/``, ``multiheadstevesa/`` and
            ``unet2dconditionmodelwithpos/``.
        vae: the autoencoder the checkpoint was trained with (not stored by the release): a model,
            a local folder / cached repo id for :func:`lsd.load_pretrained_vae` (e.g.
            ``"stabilityai/stable-diffusion-2-1"``), or ``None`` to load without one (encoding,
            segmentation and ``model.unet`` work; latent operations raise until ``model.vae`` is set).
        components: replace or supply components (``scheduler=``, ``objective=``; and
            ``backbone=`` / ``unet=`` for Stable-LSD checkpoints, whose frozen parts are not saved).

    After loading, ``model.unet(z_t, t, encoder_hidden_states=slots).sample`` equals the
    release's ``UNet2DConditionModelWithPos`` output on the same weights.
    """
    from lsd.configs import build_component, load_config
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.models.pretrained import PretrainedNotFound, load_pretrained_vae

    root = Path(path)
    if not root.is_dir():
        layout = ", ".join(f"{subfolder}/" for subfolder, _ in RELEASE_LAYOUT.values())
        raise PretrainedNotFound(
            f"release checkpoint folder {root} does not exist: give the local folder the release's training wrote "
            f"(it holds {layout}); lsd never downloads"
        )
    for component, (subfolder, _) in RELEASE_LAYOUT.items():
        if component in components:
            continue
        folder = root / subfolder
        if not folder.is_dir():
            present = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise FileNotFoundError(
                f"{root} is not a release checkpoint: {subfolder}/ is missing (found {present}). "
                f"Pass {component}=... if this model keeps that component elsewhere."
            )
        components[component] = load_release_component(folder, component)
    if "scheduler" not in components:
        components["scheduler"] = build_component(load_config("movi-e")["scheduler"], "scheduler")
    if isinstance(vae, (str, os.PathLike)):
        vae = load_pretrained_vae(vae)
    return LatentSlotDiffusion(vae=vae, **components)

"""Loading pretrained components (SD 2.1 VAE / UNet, DINOv2) from local files only.

``name_or_path`` is either a local folder or a Hugging Face repo id. A repo id that names a part of
:mod:`lsd.weights` (the paper's SD 2.1 and DINOv2 components) is found through it: the lock written
by ``lsd weights fetch`` (files re-hashed), else the local cache under any of the part's sources
(mirrors included), checked against the expected architecture. Any other repo id must already be in
the local cache (``HF_HOME`` / ``HF_HUB_CACHE``). Nothing here touches the network: when the files
are absent, :class:`PretrainedNotFound` names the fetch command and the sources (docs/weights.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lsd.weights.locate import PretrainedNotFound, hub_cache, locate
from lsd.weights.registry import DINOV2_BASE_REPO, SD21_REPO

__all__ = ["DINOV2_BASE_REPO", "SD21_REPO", "PretrainedNotFound", "load_pretrained_unet", "load_pretrained_vae",
           "resolve_pretrained"]  # fmt: skip


def resolve_pretrained(
    name_or_path: str | os.PathLike, subfolder: str | None, what: str, config_name: str = "config.json"
) -> Path:
    """The local folder holding the component's ``config_name``.

    ``name_or_path`` is a local folder, or a repo id whose snapshot is already in the local Hugging
    Face cache (looked up offline). Raises :class:`PretrainedNotFound` with instructions otherwise.
    """
    path = Path(name_or_path).expanduser()
    name = str(name_or_path)
    is_repo_id = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if not path.exists() and is_repo_id:
        registered = locate(name, subfolder)  # a part lsd knows: lock, then cached sources
        if registered is not None:
            return _with_config(registered, config_name, what)
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(name, local_files_only=True))
        except LocalEntryNotFoundError:
            path = None
        except HFValidationError:  # e.g. "my weights/vae": a missing local path, not a repo id
            path, is_repo_id = None, False
    if path is None or not path.exists():
        sub = f" --include '{subfolder}/*'" if subfolder else ""
        repo = name if is_repo_id else "<repo-id>"
        raise PretrainedNotFound(
            f"{what} not found: {name!r} is neither a local folder nor in the local Hugging Face cache "
            f"({hub_cache()}); lsd never downloads while loading. On a machine with internet run "
            f"`hf download {repo}{sub}` (`huggingface-cli download ...` with huggingface_hub < 0.34), "
            "then copy that cache here (or set HF_HOME to it), or pass the path of a local folder holding the weights. "
            "The parts of the paper's configs have their own command: `lsd weights list`, `lsd weights fetch NAME`."
        )
    return _with_config(path / subfolder if subfolder else path, config_name, what)


def _with_config(folder: Path, config_name: str, what: str) -> Path:
    """``folder``, or :class:`PretrainedNotFound` when it lacks ``config_name``."""
    if not (folder / config_name).is_file():
        raise PretrainedNotFound(
            f"{what}: {folder} has no {config_name} (expected a folder written by save_pretrained)"
        )
    return folder


def _load(cls: type, folder: Path, what: str, **kwargs: Any):
    """``cls.from_pretrained(folder)`` offline, with an error naming the folder for an unreadable
    (e.g. truncated) weights file, and a check that no weight is NaN/inf."""
    from lsd._integrity import check_finite

    try:
        model = cls.from_pretrained(folder, local_files_only=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{what}: cannot load {folder} ({type(err).__name__}: {first})") from err
    check_finite(model.state_dict().items(), f"{what} {folder}")
    return model


def load_pretrained_vae(name_or_path: str | os.PathLike = SD21_REPO, subfolder: str | None = "vae", **kwargs: Any):
    """The frozen KL autoencoder (default: Stable Diffusion 2.1's VAE), ``requires_grad=False``."""
    from diffusers import AutoencoderKL

    folder = resolve_pretrained(name_or_path, subfolder, "pretrained VAE")
    vae = _load(AutoencoderKL, folder, "pretrained VAE", **kwargs)
    return vae.requires_grad_(False).eval()


def load_pretrained_unet(name_or_path: str | os.PathLike = SD21_REPO, subfolder: str | None = "unet", **kwargs: Any):
    """A pretrained ``UNet2DConditionModel`` (Stable-LSD's decoder: SD 2.1's UNet)."""
    from diffusers import UNet2DConditionModel

    folder = resolve_pretrained(name_or_path, subfolder, "pretrained UNet")
    return _load(UNet2DConditionModel, folder, "pretrained UNet", **kwargs)

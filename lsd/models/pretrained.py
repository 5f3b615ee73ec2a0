"""Loading pretrained components (SD 2.1 VAE / UNet, DINOv2) from local files only.

``name_or_path`` is either a local folder or a Hugging Face repo id that must already be in the
local cache (``HF_HOME`` / ``HF_HUB_CACHE``). Nothing here touches the network: when the files are
absent, :class:`PretrainedNotFound` names what is missing and how to provide it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Repo ids of the paper's pretrained components.
SD21_REPO = "stabilityai/stable-diffusion-2-1"
DINOV2_BASE_REPO = "facebook/dinov2-base"


class PretrainedNotFound(FileNotFoundError):
    """A pretrained component is neither a local folder nor in the local Hugging Face cache."""


def _hub_cache() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return HF_HUB_CACHE


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
            f"({_hub_cache()}); lsd never downloads. On a machine with internet run "
            f"`hf download {repo}{sub}` (`huggingface-cli download ...` with huggingface_hub < 0.34), "
            "then copy that cache here (or set HF_HOME to it), or pass the path of a local folder holding the weights."
        )
    folder = path / subfolder if subfolder else path
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

"""The pretrained parts lsd loads, where they come from, and the lock that pins them
(docs/weights.md). The ground floor: imports no models.

- :mod:`lsd.weights.registry`: the parts (SD 2.1 VAE / UNet / scheduler / text encoder /
  tokenizer, DINOv2 ViT-B/14, the FID Inception), their ordered sources and expected architecture;
- :mod:`lsd.weights.fetch`: ``lsd weights fetch`` through huggingface_hub;
- :mod:`lsd.weights.lock`: the lock file (every file's sha256), checked on every load;
- :mod:`lsd.weights.locate`: offline lookup for loaders (:class:`PretrainedNotFound` when absent).
"""

from lsd.weights.check import ArchitectureMismatch, check_architecture
from lsd.weights.fetch import FetchFailed, fetch_part
from lsd.weights.locate import PretrainedNotFound, locate, locate_part
from lsd.weights.lock import LockedFileChanged, lock_path, lsd_home, read_lock
from lsd.weights.registry import PARTS, Architecture, Part, get_part

__all__ = [
    "PARTS",
    "Architecture",
    "ArchitectureMismatch",
    "FetchFailed",
    "LockedFileChanged",
    "Part",
    "PretrainedNotFound",
    "check_architecture",
    "fetch_part",
    "get_part",
    "locate",
    "locate_part",
    "lock_path",
    "lsd_home",
    "read_lock",
]

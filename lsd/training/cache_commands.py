"""``lsd cache build|info|verify``: the caches of frozen outputs a training config uses
(:mod:`lsd.cache`, docs/perf.md "Cached latents")."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _config(args: argparse.Namespace):
    from lsd.training.config import load_train_config

    overrides = list(args.set or [])
    if args.cache_dir:
        overrides.append(f"cache.dir={args.cache_dir}")
    config = load_train_config(args.config, overrides)
    if not (config.cache.latents or config.cache.backbone):  # the command's purpose: cache what can be
        from lsd.configs import load_config

        frozen = load_config(config.model).get("frozen") or []
        config = load_train_config(
            args.config,
            [*overrides, "cache.latents=true", f"cache.backbone={'true' if 'backbone' in frozen else 'false'}"],
        )
    return config


def _folders(args: argparse.Namespace) -> list[Path]:
    """The cache folders named on the command line: a kind folder, or a run's cache folder."""
    from lsd.cache.store import MANIFEST

    folder = Path(args.folder)
    if (folder / MANIFEST).is_file():
        return [folder]
    found = sorted(p.parent for p in folder.glob(f"*/{MANIFEST}"))
    if not found:
        raise FileNotFoundError(f"{folder}: no lsd cache here ({MANIFEST} in it or in a subfolder)")
    return found


def _build(args: argparse.Namespace) -> int:
    from lsd.training.caching import cache_folder
    from lsd.training.trainer import Trainer

    config = _config(args)
    print(f"cache: {cache_folder(config)}")
    # the trainer's own data, autoencoder stage and model, with its start weights (init_from): the
    # cache a run of this config will find; under accelerate launch / torchrun each process builds its shards
    trainer = Trainer(config, rebuild_cache=args.rebuild, progress=not args.no_progress)
    trainer.load_start_weights()
    trainer.attach_cache()
    args.folder = str(cache_folder(config))
    return _info(args)


def _info(args: argparse.Namespace) -> int:
    from lsd.cache import CacheReader

    for folder in _folders(args):
        info = CacheReader(folder).describe()
        shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in info["tensors"].items())
        print(
            f"{info['folder']}: {info['kind']} of {info['encoder']}, {info['items']:,} images x "
            f"{len(info['views'])} view(s) ({', '.join(info['views'])}), {shapes} in {info['dtype']}; "
            f"{info['shards']} shard(s), {info['bytes'] / 2**20:,.1f} MiB ({info['bytes_per_item'] / 1024:,.1f} KiB "
            f"per image); images under {info['images_root']}"
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from lsd.cache import CacheReader

    bad = []
    for folder in _folders(args):
        problems = CacheReader(folder).verify()
        bad.extend(problems)
        print(f"{folder}: {'damaged' if problems else 'intact'} (sha256 of every shard)")
    if bad:
        raise ValueError("; ".join(bad) + " (rebuild with lsd cache build --rebuild)")
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``lsd cache`` with the subcommands build, info and verify."""
    cache = add("cache", help="cache what frozen networks compute (VAE posteriors, frozen backbone features)")
    sub = cache.add_subparsers(dest="cache_command", required=True, help="what to do with a cache")
    build = sub.add_parser(
        "build",
        help="one pass over a training config's images; resumable; multi-process under accelerate launch / torchrun",
    )
    build.add_argument("--config", required=True, help="shipped training config name or a JSON file")
    build.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    build.add_argument("--cache-dir", default=None, help="shortcut for --set cache.dir=... (default: beside the runs)")
    build.add_argument("--rebuild", action="store_true", help="replace a stale cache instead of refusing it")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=_build)
    info = sub.add_parser("info", help="what a cache folder holds: kind, images, views, shapes, size on disk")
    info.add_argument("folder", help="a cache folder (or the folder holding vae-posterior/, backbone-features/)")
    info.set_defaults(func=_info)
    verify = sub.add_parser("verify", help="check every shard's sha256 against the manifest")
    verify.add_argument("folder", help="a cache folder (or the folder holding vae-posterior/, backbone-features/)")
    verify.set_defaults(func=_verify)
    for parser in (build, info, verify):
        parser.add_argument("--debug", action="store_true", help="show the traceback of an error")


__all__ = ["add_commands"]

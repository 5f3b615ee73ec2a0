"""MOVi's TFDS release -> the LSD release's dump layout, resumably (``lsd data prepare``).

For each split: read ``dataset_info.json`` (shard lengths) and ``features.json`` (shapes and
fields) from the source, number the records in ``tfds.load`` order (:mod:`.order`), keep the
first ``limit``, verify the videos a previous run finished (:func:`.dump.verify_video`), then
stream only the shards that still hold missing videos, one after another, each record checked
(:mod:`.tfrecord`) and decoded (:mod:`.features`), and write each missing video atomically
(:mod:`.dump`). The disk is checked after the first video of a run, from its size, before the
rest is written.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lsd._atomic import check_output_dir, remove_stale, write_text_atomic
from lsd.data.prepare.dump import STATE_DIR, split_folder, verify_video, write_video
from lsd.data.prepare.features import MoviSpec, decode_record, movi_spec
from lsd.data.prepare.order import read_order
from lsd.data.prepare.source import Source, open_source
from lsd.data.prepare.tfrecord import CorruptRecordError, iter_records

#: ``lsd data prepare`` names -> TFDS dataset names.
TFDS_NAMES = {"movi-c": "movi_c", "movi-e": "movi_e"}
DEFAULT_SPLITS = ("train", "validation")
#: Free space kept beyond the estimate (fraction).
SPACE_MARGIN = 0.05


@dataclass
class SplitResult:
    """What one split's run did: ``videos`` in the split (after ``limit``), ``written`` now,
    ``verified`` already there, ``seconds`` spent writing, ``bytes_read`` from the source."""

    split: str
    folder: Path
    videos: int
    written: int
    verified: int
    seconds: float
    bytes_read: int

    @property
    def videos_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Release:
    """A TFDS release as read from its metadata."""

    source: Source
    name: str
    version: str
    spec: MoviSpec
    splits: dict[str, dict[str, Any]]
    file_format: str
    disable_shuffling: bool

    def shard_lengths(self, split: str) -> list[int]:
        return [int(n) for n in self.splits[split].get("shardLengths", [])]

    def shard_name(self, split: str, shard: int) -> str:
        total = len(self.shard_lengths(split))
        template = self.splits[split].get("filepathTemplate") or "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
        return (
            template.replace("{DATASET}", self.name)
            .replace("{SPLIT}", split)
            .replace("{FILEFORMAT}", self.file_format)
            .replace("{SHARD_X_OF_Y}", f"{shard:05d}-of-{total:05d}")
            .replace("{SHARD_INDEX}", f"{shard:05d}")
            .replace("{NUM_SHARDS}", f"{total:05d}")
        )


def _read_json(source: Source, name: str) -> Any:
    data = source.read_bytes(name)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{source.describe(name)} is not valid JSON: {err}") from err


def read_release(source: Source) -> Release:
    """Read and check ``dataset_info.json`` and ``features.json``."""
    info = _read_json(source, "dataset_info.json")
    where = source.describe("dataset_info.json")
    if not isinstance(info, dict) or not isinstance(info.get("splits"), list):
        raise ValueError(f"{where}: no 'splits' list (not a TFDS dataset_info.json)")
    splits = {str(s.get("name")): s for s in info["splits"] if isinstance(s, dict)}
    for name, entry in splits.items():
        lengths = entry.get("shardLengths")
        if not isinstance(lengths, list) or not all(str(n).isdigit() for n in lengths):
            raise ValueError(f"{where}: split {name!r} has no list of shard lengths ('shardLengths')")
    file_format = str(info.get("fileFormat") or "tfrecord")
    if file_format != "tfrecord":
        raise ValueError(f"{where}: file format {file_format!r}; only tfrecord shards are read")
    spec = movi_spec(_read_json(source, "features.json"), source.describe("features.json"))
    return Release(
        source, str(info.get("name", "")), str(info.get("version", "")), spec, splits, file_format,
        bool(info.get("disableShuffling", False)),
    )  # fmt: skip


def _check_state(folder: Path, identity: dict[str, Any]) -> None:
    """Refuse to mix two sources in one split folder; remember this one."""
    path = folder / STATE_DIR / "source.json"
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except json.JSONDecodeError:
            before = None
        if before != identity:
            raise ValueError(
                f"{folder} was prepared from {before}, not {identity}; choose another --out or delete that folder"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(identity, indent=1))


def _check_space(folder: Path, video_bytes: int, remaining: int) -> None:
    need = int(video_bytes * remaining * (1 + SPACE_MARGIN))
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OSError(
            f"not enough disk space in {folder}: {remaining} more videos of about {video_bytes / 1e6:.1f} MB need "
            f"{need / 1e9:.2f} GB, {free / 1e9:.2f} GB free"
        )


def _stream_shard(
    release: Release, split: str, shard: int, wanted: dict[int, int]
) -> Iterable[tuple[int, bytes, str, str]]:
    """``(video, record bytes, origin, where)`` for the wanted records of one shard (``wanted``:
    record -> video); reading stops after the last one. ``origin`` is tfds's id of the record
    (``<shard file>__<index>``), ``where`` names it for errors."""
    name = release.shard_name(split, shard)
    where = release.source.describe(name)
    expected = release.shard_lengths(split)[shard]
    last = max(wanted)
    with release.source.open(name) as stream:
        count = -1
        for count, data in enumerate(iter_records(stream, where)):
            if count in wanted:
                yield wanted[count], data, f"{name}__{count}", f"{where}: record {count}"
            if count >= last:
                return
    raise CorruptRecordError(
        f"{where}: holds {count + 1} records, dataset_info.json says {expected} (truncated shard?)"
    )


def _require_split(release: Release, split: str) -> None:
    if split not in release.splits:
        raise ValueError(f"{release.source.describe('dataset_info.json')} has no split {split!r} "
                         f"(it has {', '.join(sorted(release.splits))})")  # fmt: skip


def convert_record(spec: MoviSpec, folder: Path, video: int, data: bytes, origin: str, where: str) -> int:
    """Decode one record and write it as video ``video`` (in a worker process when ``workers > 1``);
    returns the bytes written."""
    return write_video(folder, video, decode_record(spec, data, where), origin)


class _Runner:
    """Runs :func:`convert_record` in this process (``workers == 1``) or in a pool of processes,
    at most ``2 * workers`` records in flight (each holds one record's bytes)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
        )
        self.pending: set[Future] = set()

    def submit(self, *args) -> list[int]:
        """Queue one record; returns the sizes of the videos finished meanwhile."""
        if self.pool is None:
            return [convert_record(*args)]
        self.pending.add(self.pool.submit(convert_record, *args))
        return self._collect(2 * self.workers)

    def _collect(self, limit: int) -> list[int]:
        sizes = []
        while len(self.pending) >= max(limit, 1):
            finished, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
            sizes += [future.result() for future in finished]
        return sizes

    def drain(self) -> list[int]:
        return self._collect(0) if self.pool is not None else []

    def close(self) -> None:
        if self.pool is not None:
            for future in self.pending:
                future.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)


def prepare_split(
    release: Release,
    dataset: str,
    split: str,
    out: Path,
    limit: int | None = None,
    progress: bool = True,
    workers: int = 1,
) -> SplitResult:
    """Write (or complete) one split's dump; see the module docstring. ``workers``: processes
    decoding and writing records (the shards are still read in order by this one)."""
    _require_split(release, split)
    order = read_order(release.shard_lengths(split), release.disable_shuffling)
    if limit is not None:
        order = order[:limit]
    folder = split_folder(out, dataset, split)
    spec = release.spec
    _check_state(folder, {"tfds": f"{release.name}:{release.version}", "split": split,
                          "frames": spec.frames, "height": spec.height, "width": spec.width})  # fmt: skip
    for part in ("images", "labels", STATE_DIR):  # what a killed run left half-written
        if (folder / part).is_dir():
            remove_stale(folder / part)
    done = {
        video
        for video in tqdm(range(len(order)), desc=f"{dataset} {split}: verify", unit="video", disable=not progress)
        if verify_video(folder, video)
    }
    todo: dict[int, dict[int, int]] = {}
    for video, (shard, record) in enumerate(order):
        if video not in done:
            todo.setdefault(shard, {})[record] = video
    missing = len(order) - len(done)
    bar = tqdm(total=missing, desc=f"{dataset} {split}", unit="video", disable=not progress)
    start, written, read_before = time.perf_counter(), 0, release.source.bytes_read
    runner = _Runner(workers)

    def finished(sizes: list[int]) -> None:
        nonlocal written
        for size in sizes:
            if written == 0:
                _check_space(folder, size, missing - 1)
            written += 1
            bar.update(1)
        bar.set_postfix(read=f"{(release.source.bytes_read - read_before) / 1e6:.1f} MB", refresh=False)

    try:
        for shard in sorted(todo):
            for video, data, origin, where in _stream_shard(release, split, shard, todo[shard]):
                finished(runner.submit(spec, folder, video, data, origin, where))
        finished(runner.drain())
    finally:
        runner.close()
        bar.close()
    seconds, bytes_read = time.perf_counter() - start, release.source.bytes_read - read_before
    return SplitResult(split, folder, len(order), written, len(done), seconds, bytes_read)


def prepare_movi(
    dataset: str,
    out: str | os.PathLike,
    splits: Iterable[str] = DEFAULT_SPLITS,
    source: str | None = None,
    limit: int | None = None,
    resolution: int = 256,
    progress: bool = True,
    workers: int = 1,
    **http_options: Any,
) -> list[SplitResult]:
    """Write ``<out>/<dataset>/<dataset>-<split>-with-label/`` for each split, in the layout the
    LSD release's dump script writes (what ``MoviDataset`` and ``--data`` read).

    ``source``: a local TFDS release folder (or data_dir), or an http(s) URL; default the public
    bucket's ``<name>/<resolution>x<resolution>/1.0.0``. ``limit``: the first N videos (in
    ``tfds.load`` order) of each split. ``workers``: processes that decode and write records.
    ``http_options``: ``retries``, ``backoff``, ``timeout`` of :class:`.source.HttpSource`.
    """
    if dataset not in TFDS_NAMES:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(sorted(TFDS_NAMES))}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if http_options.get("retries", 0) < 0:
        raise ValueError(f"--retries must be >= 0, got {http_options['retries']}")
    out = check_output_dir(out, "--out")
    release = read_release(open_source(source, TFDS_NAMES[dataset], f"{resolution}x{resolution}", **http_options))
    splits = list(splits)
    for split in splits:  # every split exists before any is written
        _require_split(release, split)
    return [prepare_split(release, dataset, split, Path(out), limit, progress, workers) for split in splits]

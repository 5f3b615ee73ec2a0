"""Several seeds of one table: train and evaluate per seed, then mean +- std beside each seed.

``--seeds 0,1,2`` runs :func:`lsd.reproduction.runner.run_table` once per seed, each into
``<output>/seed-<n>/`` with its own ``table.md``, ``table.csv``, ``results.json`` and figures
(training, evaluation slot noise, baselines and probes all take that seed). Then, in ``<output>``:

- ``table.md``: our columns as ``mean ± std`` over the seeds, then the paper's and the anchors'
  columns unchanged; below it the same table with each seed's value (``a / b / c``, in seed order).
- ``table.csv``: per method ``<method> mean``, ``<method> std`` and ``<method> seed <n>`` columns.
- ``results.json``: ``seeds``, ``std`` (the convention), per method and row ``mean``, ``std`` and
  ``per_seed``, and where each seed's own ``results.json`` lies.
- the terminal: ``mean ± std`` per method.

``std`` is the sample standard deviation (``n - 1`` in the denominator, as numpy's ``ddof=1``);
with one seed it is not defined (shown as ``—``). A value missing in any seed (a probe not fitted)
gives no mean. Methods are matched across seeds by their table label.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsd._atomic import check_output_dir, write_text_atomic

__all__ = ["STD_CONVENTION", "aggregate_seeds", "parse_seeds", "run_seeds", "seed_frames"]

STD_CONVENTION = "sample standard deviation over seeds (n - 1 in the denominator)"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct integers in ``[0, 2**32)``, in the order given.

    Raises:
        ValueError: naming ``--seeds`` and the bad entry.
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            seed = int(part)
        except ValueError:
            raise ValueError(f"--seeds {text!r}: {part!r} is not an integer (expected e.g. 0,1,2)") from None
        if not 0 <= seed < 2**32:
            raise ValueError(f"--seeds {text!r}: {seed} is outside [0, 2**32)")
        if seed in seeds:
            raise ValueError(f"--seeds {text!r}: seed {seed} is repeated")
        seeds.append(seed)
    return seeds


def _ours(table: pd.DataFrame) -> list[str]:
    """Our columns (the methods we ran): everything but the paper's, the anchors' and provenance."""
    from lsd.reproduction.table import ANCHOR_PREFIX, PROVENANCE_COLUMN

    return [c for c in table.columns if not str(c).startswith(("paper:", ANCHOR_PREFIX)) and c != PROVENANCE_COLUMN]


def seed_frames(records: dict[int, dict[str, Any]], dataset: str, rows: tuple[Any, ...]) -> dict[int, pd.DataFrame]:
    """Each seed's results table (:func:`lsd.reproduction.table.results_table`), on the rows and
    methods every seed has (a method missing from one seed is an error: the seeds must agree)."""
    from lsd.reproduction.table import results_table

    labels = [list(record["methods"]) for record in records.values()]
    if any(set(x) != set(labels[0]) for x in labels):
        raise ValueError(f"the seeds evaluated different methods: {labels}")
    frames = {seed: results_table(record["methods"], dataset, rows) for seed, record in records.items()}
    index, columns = next(iter(frames.values())).index, next(iter(frames.values())).columns
    for frame in frames.values():  # a row can be filled in one seed only (e.g. probes skipped)
        index, columns = index.union(frame.index, sort=False), columns.union(frame.columns, sort=False)
    out = {seed: frame.reindex(index=index, columns=columns) for seed, frame in frames.items()}
    for seed, frame in out.items():
        frame.attrs.update(frames[seed].attrs)
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    mean = math.fsum(values) / len(values)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return mean, std


def _text(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def aggregate_seeds(frames: dict[int, pd.DataFrame]) -> dict[str, Any]:
    """Mean, std and per-seed values of our columns across ``frames`` (seed -> results table).

    Returns ``{"summary": DataFrame (ours as "mean ± std" text, paper / anchor columns as
    numbers), "per_seed": DataFrame (our columns only, as "a / b / c"), "csv": DataFrame (numbers: mean, std,
    each seed), "values": {method: {row: {"mean", "std", "per_seed": {seed: value}}}}}``.
    """
    seeds = list(frames)
    first = frames[seeds[0]]
    ours = _ours(first)
    summary, per_seed = first.copy().astype(object), first.copy().astype(object)
    csv_columns: dict[str, list[float]] = {}
    values: dict[str, dict[str, Any]] = {}
    for method in ours:
        values[method] = {}
        means, stds = [], []
        per = {seed: [] for seed in seeds}
        for row in first.index:
            samples = [float(frames[seed].loc[row, method]) for seed in seeds]
            mean, std = _mean_std(samples)
            means.append(mean)
            stds.append(std)
            for seed, value in zip(seeds, samples, strict=True):
                per[seed].append(value)
            summary.loc[row, method] = "—" if math.isnan(mean) else f"{_text(mean)} ± {_text(std)}"
            per_seed.loc[row, method] = " / ".join(_text(v) for v in samples)
            values[method][row] = {
                "mean": None if math.isnan(mean) else mean,
                "std": None if math.isnan(std) else std,
                "per_seed": {str(s): (None if math.isnan(v) else v) for s, v in zip(seeds, samples, strict=True)},
            }
        csv_columns[f"{method} mean"] = means
        csv_columns[f"{method} std"] = stds
        for seed in seeds:
            csv_columns[f"{method} seed {seed}"] = per[seed]
    rest = first.drop(columns=ours)
    per_seed = per_seed[ours]  # the paper's and the anchors' columns are in the summary table
    csv = pd.concat([pd.DataFrame(csv_columns, index=first.index), rest], axis=1)
    for frame in (summary, per_seed, csv):
        frame.attrs.update(first.attrs)
    return {"summary": summary, "per_seed": per_seed, "csv": csv, "values": values}


def _plain_markdown(frame: pd.DataFrame) -> str:
    """A markdown table of text cells (the per-seed table: our columns only)."""
    lines = ["| " + " | ".join(["metric", *map(str, frame.columns)]) + " |", "|" + "---|" * (len(frame.columns) + 1)]
    lines += ["| " + " | ".join([str(label), *map(str, row)]) + " |" for label, row in frame.iterrows()]
    return "\n".join(lines)


def _heading(spec, record: dict[str, Any], seeds: list[int]) -> str:
    standin = record.get("data_label") == "stand-in"
    where = f"stand-in: not {spec.dataset}" if standin else f"{spec.dataset}, validation split"
    budget = record.get("budget", {}).get("name")
    listed = ", ".join(map(str, seeds))
    return (
        f"# {spec.title} ({where})\n\n"
        f"budget `{budget}`, seeds {listed}: our columns are mean ± std over the {len(seeds)} seeds "
        f"({STD_CONVENTION}); each seed's value is in the second table and in `seed-<n>/`. The paper's and "
        "the anchors' columns are published numbers (provenance and sources below; n/r = not recovered). "
        "Percentages x100.\n\n"
    )


def run_seeds(spec, opts, seeds: list[int]) -> dict[str, Any]:
    """Run ``spec`` once per seed (``<output>/seed-<n>``), then write the aggregate; returns its record."""
    from lsd.evaluation.report import versions
    from lsd.reproduction.runner import check_options, run_table
    from lsd.reproduction.table import TERMINAL_WIDTH, anchor_notes, to_markdown, to_terminal

    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    for seed in seeds:
        check_options(spec, replace(opts, seed=seed))  # every flag, before any compute
    output = check_output_dir(opts.output, "--output")
    output.mkdir(parents=True, exist_ok=True)
    records: dict[int, dict[str, Any]] = {}
    for number, seed in enumerate(seeds, start=1):
        print(f"== seed {seed} ({number} of {len(seeds)}) ==")
        record = run_table(spec, replace(opts, seed=seed, output=Path(output) / f"seed-{seed}"))
        if not record:  # a non-main process of a multi-process run
            return {}
        records[seed] = record
    frames = seed_frames(records, spec.paper_dataset, spec.rows)
    agg = aggregate_seeds(frames)
    first = records[seeds[0]]
    notes = list(dict.fromkeys(line for record in records.values() for line in record.get("notes", [])))
    notes += anchor_notes(agg["summary"])
    label = first.get("data_label", "stand-in")
    write_text_atomic(
        output / "table.csv",
        f"# data: {label}\n# seeds: {', '.join(map(str, seeds))}; std: {STD_CONVENTION}\n"
        + "".join(f"# {line}\n" for line in anchor_notes(agg["summary"]))
        + agg["csv"].to_csv(float_format="%.4f"),
    )
    body = [
        _heading(spec, first, seeds),
        to_markdown(agg["summary"]),
        "\n\nEach seed (in the order " + ", ".join(map(str, seeds)) + "):\n\n",
        _plain_markdown(agg["per_seed"]),
        "\n",
    ]
    if notes:
        body.append("\n" + "".join(f"- {line}\n" for line in notes))
    write_text_atomic(output / "table.md", "".join(body))
    result = {
        "task": spec.name,
        "data_label": label,
        "seeds": seeds,
        "std": STD_CONVENTION,
        "budget": first.get("budget"),
        "mask_resolution": first.get("mask_resolution"),
        "methods": agg["values"],
        "runs": {str(seed): f"seed-{seed}/results.json" for seed in seeds},
        "anchors": agg["summary"].attrs.get("anchors", {}),
        "notes": notes,
        "versions": versions(),
        "wall_seconds": math.fsum(r.get("wall_seconds", 0.0) for r in records.values()),
    }
    write_text_atomic(output / "results.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(f"\n{spec.title}: mean ± std over seeds {', '.join(map(str, seeds))}")
    print(to_terminal(agg["summary"]))
    for line in anchor_notes(agg["summary"]):
        print(textwrap.fill(line, TERMINAL_WIDTH, subsequent_indent="  "))
    print(f"table.md, table.csv and results.json over {len(seeds)} seeds in {output}")
    return result

"""``lsd bench-report RUN.json --output DIR``: a pytest-benchmark JSON file -> a markdown table of
ratios (``DIR/benchmarks.md``) and a bar chart (``DIR/benchmarks.png``).

Ratios are recomputed from the file alone: within each benchmark group, the reference is the
benchmark whose provider (``params["provider"]``) is the group's ``extra_info["reference_provider"]``,
and every provider's *speedup* is ``reference median / its median`` (> 1: faster than the
reference). The benchmarks under ``benchmarks/`` record what this needs (see
``benchmarks/_perf.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsd._atomic import atomic_write

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "group",
    "provider",
    "median_ms",
    "speedup",
    "gflop",
    "gflop_s",
    "pct_matmul_peak",
    "gb_s",
    "pct_copy_bw",
    "items_s",
]


def load_benchmark_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``--benchmark-json`` file; a clear ``ValueError`` naming the file otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list at the top level)")
    return data


def _provider(bench: dict[str, Any]) -> str:
    params = bench.get("params") or {}
    provider = params.get("provider", (bench.get("extra_info") or {}).get("provider"))
    if provider is None:
        raise ValueError(f"benchmark {bench.get('fullname', bench.get('name'))!r} has no 'provider' parameter")
    return str(provider)


def ratios_table(benchmark_json: dict[str, Any]) -> pd.DataFrame:
    """One row per benchmark, in the file's order, with the columns of :data:`COLUMNS`.

    ``speedup`` = median of the group's reference provider / this benchmark's median (NaN when
    the group's reference did not run); rates come from ``extra_info`` (``flops``, ``bytes``,
    ``items_per_call``, the measured peaks) and the median, so they are recomputed too.
    """
    import pandas as pd

    rows = []
    benchmarks = benchmark_json.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise ValueError("not a pytest-benchmark JSON document: no 'benchmarks' list")
    for bench in benchmarks:
        try:
            median = float(bench["stats"]["median"])
            group = bench["group"] or bench["name"]
        except (KeyError, TypeError) as err:
            raise ValueError(f"benchmark {bench.get('name')!r} lacks {err} (stats.median and group)") from err
        info = bench.get("extra_info") or {}
        flops, nbytes, items = info.get("flops"), info.get("bytes"), info.get("items_per_call")
        peak_flop_s = info.get("peak_matmul_gflop_s_measured")
        peak_gb_s = info.get("peak_copy_gb_s_measured")
        gflop_s = flops / median / 1e9 if flops else math.nan
        gb_s = nbytes / median / 1e9 if nbytes else math.nan
        rows.append(
            {
                "group": group,
                "provider": _provider(bench),
                "reference_provider": info.get("reference_provider"),
                "median_ms": median * 1e3,
                "gflop": flops / 1e9 if flops is not None else math.nan,
                "gflop_s": gflop_s,
                "pct_matmul_peak": 100 * gflop_s / peak_flop_s if peak_flop_s else math.nan,
                "gb_s": gb_s,
                "pct_copy_bw": 100 * gb_s / peak_gb_s if peak_gb_s else math.nan,
                "items_s": items / median if items else math.nan,
            }
        )
    table = pd.DataFrame(rows, columns=[*COLUMNS, "reference_provider"])
    speedups = []
    for row in table.itertuples():
        in_group = table[table.group == row.group]
        references = set(in_group.reference_provider.dropna())
        if len(references) > 1:
            raise ValueError(f"group {row.group!r} names several reference providers: {sorted(references)}")
        ref_rows = in_group[in_group.provider == next(iter(references))] if references else in_group.iloc[:0]
        speedups.append(ref_rows.median_ms.iloc[0] / row.median_ms if len(ref_rows) else math.nan)
    table["speedup"] = speedups
    return table[COLUMNS]


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


#: Column headers and decimals of the markdown table.
_HEADERS = {
    "group": ("group", 0),
    "provider": ("provider", 0),
    "median_ms": ("median ms", 3),
    "speedup": ("speedup vs ref", 2),
    "gflop": ("GFLOP", 3),
    "gflop_s": ("GFLOP/s", 2),
    "pct_matmul_peak": ("% matmul peak", 1),
    "gb_s": ("GB/s", 2),
    "pct_copy_bw": ("% copy BW", 1),
    "items_s": ("images/s", 1),
}


def markdown(table: pd.DataFrame, benchmark_json: dict[str, Any]) -> str:
    """The table as markdown, headed by the run's date, device and versions."""
    info = next((b.get("extra_info") or {} for b in benchmark_json["benchmarks"]), {})
    lines = [
        f"Run {benchmark_json.get('datetime', '?')} on {info.get('device_name', '?')}: torch {info.get('torch')}, "
        f"triton {info.get('triton')}, diffusers {info.get('diffusers')}, OMP_NUM_THREADS={info.get('omp_num_threads')}.",
        "",
        "speedup = median of the group's reference provider / this provider's median (> 1: faster).",
        "",
        "| " + " | ".join(h for h, _ in _HEADERS.values()) + " |",
        "|" + "|".join("---" if c in ("group", "provider") else "---:" for c in _HEADERS) + "|",
    ]
    for row in table.to_dict("records"):
        lines.append("| " + " | ".join(_fmt(row[c], d) for c, (_, d) in _HEADERS.items()) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(table: pd.DataFrame, path: Path) -> None:
    """Horizontal bars of the speedup of every (group, provider), a line at 1 (the reference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{g}  [{p}]" for g, p in zip(table.group, table.provider, strict=True)]
    values = table.speedup.fillna(0.0).to_list()
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) + 1.2))
    ax.barh(range(len(labels)), values, color=["#888888" if v == 1.0 else "#3572b0" for v in values])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speedup vs the group's reference (reference median / median)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def write_report(json_path: str | os.PathLike, output: str | os.PathLike) -> tuple[Path, Path]:
    """Read ``json_path``; write ``output/benchmarks.md`` and ``output/benchmarks.png``."""
    data = load_benchmark_json(json_path)
    try:
        table = ratios_table(data)
    except ValueError as err:
        raise ValueError(f"{json_path}: {err}") from err
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    md_path, png_path = out / "benchmarks.md", out / "benchmarks.png"
    text = markdown(table, data)
    atomic_write(md_path, lambda tmp: Path(tmp).write_text(text))
    bar_chart(table, png_path)
    return md_path, png_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (shared by ``lsd bench-report`` and ``python -m lsd.bench_report``)."""
    parser.add_argument("json", help="a file written by pytest --benchmark-json")
    parser.add_argument("--output", required=True, help="folder for benchmarks.md and benchmarks.png")


def main(argv: list[str] | None = None) -> int:
    """``python -m lsd.bench_report RUN.json --output DIR``."""
    parser = argparse.ArgumentParser(prog="lsd bench-report", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        md_path, png_path = write_report(args.json, args.output)
    except (FileNotFoundError, ValueError) as err:
        print(f"lsd bench-report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {md_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

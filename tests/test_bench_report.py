"""``lsd bench-report``: ratios recomputed from a pytest-benchmark JSON file, markdown and chart."""

from __future__ import annotations

import json
import math

import pytest

from lsd.bench_report import load_benchmark_json, ratios_table, write_report
from lsd.cli import main as cli_main


def _bench(group: str, provider: str, median: float, reference: str, **info) -> dict:
    """One entry as pytest-benchmark writes it (only the fields the report reads, plus a few)."""
    return {
        "group": group,
        "name": f"test_x[{provider}]",
        "fullname": f"benchmarks/test_x.py::test_x[{provider}]",
        "params": {"provider": provider},
        "param": provider,
        "extra_info": {"provider": provider, "reference_provider": reference, **info},
        "stats": {"min": median * 0.9, "max": median * 1.1, "mean": median, "median": median, "rounds": 5},
    }


RUN = {
    "machine_info": {"node": "test"},
    "datetime": "2026-11-24T00:00:00",
    "version": "5.3.1",
    "benchmarks": [
        # group A: eager is the reference; the in-run speedup fields are deliberately wrong, to
        # show the table recomputes them from the medians.
        _bench(
            "A",
            "eager",
            0.200,
            "eager",
            flops=2_000_000_000,
            items_per_call=8,
            speedup_vs_reference=9.0,
            peak_matmul_gflop_s_measured=40.0,
            device_name="cpu X",
            torch="2.13.0",
        ),  # fmt: skip
        _bench(
            "A",
            "compile",
            0.080,
            "eager",
            flops=2_000_000_000,
            items_per_call=8,
            speedup_vs_reference=9.0,
            peak_matmul_gflop_s_measured=40.0,
        ),  # fmt: skip
        _bench("A", "triton", 0.400, "eager", flops=2_000_000_000, items_per_call=8),
        # group B: memory-bound; its reference ("cpu") did not run.
        _bench("B", "cuda", 0.010, "cpu", bytes=500_000_000, peak_copy_gb_s_measured=100.0),
    ],
}


def test_ratios_recomputed_from_medians() -> None:
    table = ratios_table(RUN).set_index(["group", "provider"])
    # speedup = reference median / own median, by hand: 0.2/0.2, 0.2/0.08, 0.2/0.4
    assert table.loc[("A", "eager"), "speedup"] == pytest.approx(1.0)
    assert table.loc[("A", "compile"), "speedup"] == pytest.approx(2.5)
    assert table.loc[("A", "triton"), "speedup"] == pytest.approx(0.5)
    assert math.isnan(table.loc[("B", "cuda"), "speedup"])
    # rates: 2 GFLOP / 0.08 s = 25 GFLOP/s = 62.5 % of 40; 8 images / 0.08 s = 100 images/s
    assert table.loc[("A", "compile"), "gflop_s"] == pytest.approx(25.0)
    assert table.loc[("A", "compile"), "pct_matmul_peak"] == pytest.approx(62.5)
    assert table.loc[("A", "compile"), "items_s"] == pytest.approx(100.0)
    assert table.loc[("A", "compile"), "median_ms"] == pytest.approx(80.0)
    # 0.5 GB / 0.01 s = 50 GB/s = 50 % of 100; no FLOPs recorded
    assert table.loc[("B", "cuda"), "gb_s"] == pytest.approx(50.0)
    assert table.loc[("B", "cuda"), "pct_copy_bw"] == pytest.approx(50.0)
    assert math.isnan(table.loc[("B", "cuda"), "gflop_s"])


def test_conflicting_references_are_an_error() -> None:
    run = {"benchmarks": [_bench("A", "eager", 0.2, "eager"), _bench("A", "compile", 0.1, "compile")]}
    with pytest.raises(ValueError, match="several reference providers"):
        ratios_table(run)


def test_cli_writes_markdown_and_png(tmp_path, capsys) -> None:
    run_path = tmp_path / "run.json"
    run_path.write_text(json.dumps(RUN))
    assert cli_main(["bench-report", str(run_path), "--output", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "benchmarks.md").read_text()
    assert "| A | compile | 80.000 | 2.50 |" in text
    assert "| B | cuda | 10.000 | – |" in text
    assert "cpu X" in text and "2026-11-24" in text
    assert (tmp_path / "out" / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["benchmarks.md", "benchmarks.png"]  # no temp files


def test_malformed_json_names_the_file(tmp_path, capsys) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"benchmarks": [')
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_benchmark_json(bad)
    assert cli_main(["bench-report", str(bad), "--output", str(tmp_path / "out")]) == 2
    assert "broken.json: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out" / "benchmarks.md").exists()


def test_json_without_benchmarks_names_the_file(tmp_path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="other.json: not a pytest-benchmark JSON file"):
        write_report(other, tmp_path / "out")

"""scripts/gpu_check.py on CPU: argument parsing, the dry run and its table, and the readers of
what each GPU step writes (fed with files shaped as the steps write them)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def test_the_steps_fit_eight_minutes_and_the_dry_run_prints_the_table_last(gpu_check, capsys, tmp_path):
    steps = gpu_check.steps(tmp_path)
    assert [s.name for s in steps] == [
        "gpu-tests",
        "kernels-fp32",
        "kernels-fp16",
        "bench-gpu",
        "train-step",
        "benchmarks",
    ]
    assert sum(s.limit_s for s in steps) <= 8 * 60
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| step | status | s | result |" and len(lines) == 2 + len(steps)
    assert all("| dry-run |" in line for line in lines[2:])
    assert gpu_check.main(["--dry-run", "--only", "train-step", "--out", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_bad_arguments_and_no_gpu_are_one_clear_error(gpu_check, capsys, tmp_path):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--only", "everything"])
    assert "--only: unknown step(s) ['everything']" in capsys.readouterr().err
    pytest.importorskip("torch")
    import torch

    if not torch.cuda.is_available():
        assert gpu_check.main(["--out", str(tmp_path)]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def _case(op, shape, impl, ms, err):
    return {"op": op, "shape": shape, "impl": impl, "fwd_bwd_ms": ms, "max_err": err}


def test_kernel_verdicts_apply_the_twice_the_reference_error_rule(gpu_check):
    result = {
        "dtype": "bf16",
        "rows": [
            _case("slot_attention", "B32 N4096", "eager", 2.0, 0.02),
            _case("slot_attention", "B32 N4096", "fused", 0.5, 0.05),  # <= 2 * 0.02 + 0.01
            _case("slot_cross_attention", "B32 32x32", "eager", 1.0, 0.01),
            _case("slot_cross_attention", "B32 32x32", "fused", 2.0, 0.04),  # > 2 * 0.01 + 0.01
            _case("slot_cross_attention", "B32 32x32", "compile(ref)", 0.8, 0.01),
        ],
    }
    verdicts = gpu_check.kernel_verdicts(result)
    assert [(v["op"], v["ok"], v["speedup"]) for v in verdicts] == [
        ("slot_attention", True, 4.0),
        ("slot_cross_attention", False, 0.5),
    ]


def test_a_failing_kernel_or_a_timeout_marks_its_step(gpu_check, tmp_path):
    path = tmp_path / "k.json"
    path.write_text(
        json.dumps({"dtype": "fp32", "rows": [_case("op", "s", "eager", 1, 0), _case("op", "s", "fused", 1, 1)]})
    )
    step = gpu_check.Step("kernels-fp32", [sys.executable, "-c", "pass", "--json", str(path)], 30, "kernels")
    gpu_check.run_step(step, tmp_path)
    assert step.status == "FAIL" and step.summary.startswith("0/1 within error bound")
    slow = gpu_check.Step("slow", [sys.executable, "-c", "import time; time.sleep(5)"], 1, "pytest")
    gpu_check.run_step(slow, tmp_path)
    assert slow.status == "timeout" and (tmp_path / "slow.log").is_file()
    assert "| slow | timeout |" in gpu_check.table([slow])


def test_training_step_row_reads_images_per_second_and_mfu(gpu_check):
    info = {
        "provider": "eager",
        "items_per_s": 40.0,
        "fraction_of_matmul_peak": 0.25,
        "peak_matmul_gflop_s_measured": 790_000.0,
        "achieved_gflop_s": 197_500.0,
        "dtype": "bf16 autocast",
    }
    row = gpu_check.training_step_row({"benchmarks": [{"extra_info": info}, {"extra_info": {"provider": "compile"}}]})
    assert row == {
        "images_per_s": 40.0,
        "mfu": 0.25,
        "peak_tflop_s": 790.0,
        "achieved_tflop_s": 197.5,
        "dtype": "bf16 autocast",
    }
    assert (
        gpu_check.summarise_pytest("....\n== 3 passed, 1 skipped in 2.0s ==\n", Path("."), None)
        == "3 passed, 1 skipped in 2.0s"
    )

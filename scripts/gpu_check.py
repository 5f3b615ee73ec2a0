#!/usr/bin/env python
"""One prepared GPU check (``scripts/gpu_check.sh``, ``nox -s gpu``): every step the project can
only run on a CUDA GPU, each under its own time limit, and a short table printed LAST.

Steps (docs/perf.md, "GPU check"):

1. ``gpu-tests``: the GPU-marked tests (``pytest -m gpu``), the kernels at the MOVi-E shapes in
   fp32 / fp16 / bf16 among them.
2. ``kernels-fp32``, ``kernels-fp16``: ``python -m lsd_kernels.bench_gpu --dtype ... --no-compile``:
   the fused ops against the eager torch reference, both measured against an fp32 reference;
   a row passes when the kernel's error is within twice the same-dtype reference's (fp32:
   within 1e-3 absolute).
3. ``bench-gpu``: ``python -m lsd_kernels.bench_gpu`` (bf16, with ``torch.compile`` of the
   reference), which is also the bf16 kernel check.
4. ``train-step``: the MOVi-E training step under bf16 autocast
   (``benchmarks/test_training_step.py``, eager): images/s and MFU against the bf16 matmul peak
   measured on the same device.
5. ``benchmarks``: the other benchmark groups at the MOVi-E shape (``pytest benchmarks
   --benchmark-only``, small shapes and sampling left out), then ``lsd bench-report``.

Everything a step writes lands in ``--out`` (default ``$OUT`` when set, else ``gpu-check/``).
``--dry-run`` prints the commands and the table without running anything (no GPU needed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The whole check must fit a lent machine's 8 minutes of command time.
MAX_TOTAL_S = 480


@dataclass
class Step:
    """One step: a command, its time limit, and how to read what it wrote."""

    name: str
    command: list[str]
    limit_s: int
    summarise: str  # name of the summary function below
    status: str = "not run"
    seconds: float = 0.0
    summary: str = ""
    rows: list[dict] = field(default_factory=list)


def steps(out: Path, python: str = sys.executable) -> list[Step]:
    """The check's steps, in order, with their time limits (they sum to at most :data:`MAX_TOTAL_S`)."""
    bench = "benchmarks"
    return [
        Step(
            "gpu-tests", [python, "-m", "pytest", "-m", "gpu", "tests", "-q", "-p", "no:cacheprovider"], 100, "pytest"
        ),
        Step(
            "kernels-fp32",
            [
                python,
                "-m",
                "lsd_kernels.bench_gpu",
                "--dtype",
                "fp32",
                "--no-compile",
                "--json",
                str(out / "kernels-fp32.json"),
            ],
            50,
            "kernels",
        ),  # fmt: skip
        Step(
            "kernels-fp16",
            [
                python,
                "-m",
                "lsd_kernels.bench_gpu",
                "--dtype",
                "fp16",
                "--no-compile",
                "--json",
                str(out / "kernels-fp16.json"),
            ],
            50,
            "kernels",
        ),  # fmt: skip
        Step(
            "bench-gpu",
            [python, "-m", "lsd_kernels.bench_gpu", "--json", str(out / "kernels-bf16.json")],
            80,
            "kernels",
        ),
        Step(
            "train-step",
            [
                python,
                "-m",
                "pytest",
                f"{bench}/test_training_step.py",
                "-k",
                "eager",
                "--benchmark-only",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={out / 'train-step.json'}",
            ],
            70,
            "train_step",
        ),  # fmt: skip
        Step(
            "benchmarks",
            [
                python,
                "-m",
                "pytest",
                bench,
                "--benchmark-only",
                "-q",
                "-p",
                "no:cacheprovider",
                "-k",
                "not small and not sampling and not training_step",
                f"--benchmark-json={out / 'benchmarks.json'}",
            ],
            120,
            "benchmarks",
        ),  # fmt: skip
    ]


# -- reading what the steps wrote ----------------------------------------------------------------


def summarise_pytest(output: str, out: Path, step: Step) -> str:
    """``pytest -q``'s last summary line, e.g. ``12 passed, 2 skipped in 30.1s``."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    return lines[-1].strip("= ") if lines else "no pytest summary"


def kernel_verdicts(result: dict) -> list[dict]:
    """Rows of ``bench_gpu --json``: per (op, shape), the fused kernel against the eager reference
    (both measured against an fp32 reference): ``ok`` when the kernel's max error is at most twice
    the eager one's plus a floor (flash-attention's rule; the floor is 1e-3 in fp32, where the
    eager path is the fp32 reference itself)."""
    by_case: dict[tuple[str, str], dict[str, dict]] = {}
    for row in result["rows"]:
        by_case.setdefault((row["op"], row["shape"]), {})[row["impl"]] = row
    floor = 1e-3 if result["dtype"] == "fp32" else 1e-2
    verdicts = []
    for (op, shape), impls in by_case.items():
        fused, eager = impls["fused"], impls["eager"]
        verdicts.append(
            {
                "dtype": result["dtype"],
                "op": op,
                "shape": shape,
                "fused_ms": fused["fwd_bwd_ms"],
                "eager_ms": eager["fwd_bwd_ms"],
                "speedup": eager["fwd_bwd_ms"] / fused["fwd_bwd_ms"],
                "fused_err": fused["max_err"],
                "eager_err": eager["max_err"],
                "ok": fused["max_err"] <= 2 * eager["max_err"] + floor,
            }
        )
    return verdicts


def summarise_kernels(output: str, out: Path, step: Step) -> str:
    path = Path(step.command[step.command.index("--json") + 1])
    step.rows = kernel_verdicts(json.loads(path.read_text()))
    bad = [r for r in step.rows if not r["ok"]]
    speedups = ", ".join(f"{r['op'].split('_')[-1]} {r['shape'].split()[-1]} x{r['speedup']:.2f}" for r in step.rows)
    return f"{len(step.rows) - len(bad)}/{len(step.rows)} within error bound; fused vs eager f+b: {speedups}"


def training_step_row(benchmark_json: dict) -> dict:
    """images/s and MFU (achieved FLOP/s over the measured bf16 matmul peak) of the training step."""
    (bench,) = [b for b in benchmark_json["benchmarks"] if b["extra_info"].get("provider") == "eager"]
    info = bench["extra_info"]
    return {
        "images_per_s": info["items_per_s"],
        "mfu": info["fraction_of_matmul_peak"],
        "peak_tflop_s": info["peak_matmul_gflop_s_measured"] / 1e3,
        "achieved_tflop_s": info["achieved_gflop_s"] / 1e3,
        "dtype": info.get("dtype"),
    }


def summarise_train_step(output: str, out: Path, step: Step) -> str:
    row = training_step_row(json.loads((out / "train-step.json").read_text()))
    step.rows = [row]
    return (
        f"{row['images_per_s']:.1f} images/s, {row['achieved_tflop_s']:.1f} TFLOP/s = "
        f"{100 * row['mfu']:.1f}% MFU of the measured {row['peak_tflop_s']:.0f} TFLOP/s ({row['dtype']})"
    )


def summarise_benchmarks(output: str, out: Path, step: Step) -> str:
    path = out / "benchmarks.json"
    report = subprocess.run(
        [sys.executable, "-m", "lsd", "bench-report", str(path), "--output", str(out)],
        capture_output=True,
        text=True,
    )
    groups = {b["group"] for b in json.loads(path.read_text())["benchmarks"]}
    tail = "; benchmarks.md written" if report.returncode == 0 else f"; bench-report failed: {report.stderr[-200:]}"
    return f"{summarise_pytest(output, out, step)}; {len(groups)} groups{tail}"


SUMMARIES = {
    "pytest": summarise_pytest,
    "kernels": summarise_kernels,
    "train_step": summarise_train_step,
    "benchmarks": summarise_benchmarks,
}


# -- running -------------------------------------------------------------------------------------


def run_step(step: Step, out: Path) -> None:
    """Run ``step`` under its limit; its output goes to ``out/<name>.log``."""
    start = time.perf_counter()
    log = out / f"{step.name}.log"
    # Compiled kernels, never the interpreter tests/conftest.py defaults to on CPU machines.
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(step.command, capture_output=True, text=True, timeout=step.limit_s, env=env)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        code = None
    step.seconds = time.perf_counter() - start
    log.write_text(output)
    if code is None:
        step.status, step.summary = "timeout", f"stopped at {step.limit_s} s (see {log.name})"
        return
    step.status = "ok" if code == 0 else f"exit {code}"
    try:
        step.summary = SUMMARIES[step.summarise](output, out, step)
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as err:
        step.summary = f"no result to read ({type(err).__name__}: {err}); see {log.name}"
    if step.rows and not all(r.get("ok", True) for r in step.rows):
        step.status = "FAIL"


def table(all_steps: list[Step]) -> str:
    """The markdown table printed last: one row per step."""
    lines = ["| step | status | s | result |", "|---|---|---:|---|"]
    for s in all_steps:
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.summary} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check"))
    parser.add_argument("--only", action="append", default=[], metavar="STEP", help="run only these steps")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the table; run nothing")
    args = parser.parse_args(argv)
    names = [s.name for s in steps(args.out)]
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"--only: unknown step(s) {unknown}; expected some of {names}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    all_steps = [s for s in steps(args.out) if not args.only or s.name in args.only]
    assert sum(s.limit_s for s in steps(args.out)) <= MAX_TOTAL_S
    if args.dry_run:
        for s in all_steps:
            s.status, s.summary = "dry-run", " ".join(s.command)
    else:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA GPU is visible (use --dry-run to see the commands)", file=sys.stderr)
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; logs in {args.out}", flush=True)
        for s in all_steps:
            print(f"-- {s.name} (limit {s.limit_s} s)", flush=True)
            run_step(s, args.out)
            print(f"   {s.status} in {s.seconds:.0f} s: {s.summary}", flush=True)
        (args.out / "gpu-check.json").write_text(json.dumps({"steps": [vars(s) for s in all_steps]}, indent=1))
    print(table(all_steps))
    return 0 if all(s.status in ("ok", "dry-run") for s in all_steps) else 1


if __name__ == "__main__":
    raise SystemExit(main())

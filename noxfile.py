"""Sessions: `nox -s reproduce-movi-e` (the main job), `nox -s tests`, `nox -s lint`, `nox -s benchmarks`,
`nox -s gpu` (the prepared check on a CUDA machine, in the current environment).

Every session installs the CPU build of torch==2.13.0 first (it is on local disk on our machines;
a looser requirement would pull a multi-GB CUDA build), then the project.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"


def install_project(session: nox.Session, extras: str = "") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite on CPU (Triton kernels run under TRITON_INTERPRET=1, set in conftest)."""
    install_project(session, "test")
    session.run("pytest", *(session.posargs or ["-q"]))
    if not session.posargs:  # every benchmark body once, as a test (no timing)
        session.run("pytest", "benchmarks", "--benchmark-disable", "-q")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff==0.17.6")  # pinned: formatting changes between releases
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11", name="reproduce-movi-e")
def reproduce_movi_e(session: nox.Session) -> None:
    """The MOVi-E table: `nox -s reproduce-movi-e [-- --budget smoke|cpu|paper --data DIR --checkpoint DIR ...]`.

    Without arguments: the synthetic stand-in at the cpu budget (7 to 14 minutes on 2 cores, measured),
    evaluated beside the shipped stand-in checkpoint and the k-means / grid baselines.
    Flags are those of `python reproductions/movi_e.py --help`.
    """
    install_project(session)
    session.run("python", "reproductions/movi_e.py", *session.posargs)


@nox.session(python="3.11")
def benchmarks(session: nox.Session) -> None:
    """`pytest benchmarks --benchmark-only` (extra pytest arguments after `--`)."""
    install_project(session, "test")
    session.run("pytest", "benchmarks", "--benchmark-only", *session.posargs)


@nox.session(python=False)
def gpu(session: nox.Session) -> None:
    """The prepared GPU check in the CURRENT environment (a CUDA build of torch; no venv, no CPU
    torch install): `scripts/gpu_check.sh [-- --dry-run | --only STEP]`; prints a table last."""
    session.run("bash", "scripts/gpu_check.sh", *session.posargs, external=True)

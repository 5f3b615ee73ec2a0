"""Developer sessions: `nox -s tests`, `nox -s lint`.

Every session installs the CPU build of torch==2.13.0 first (it is on local disk on our machines;
a looser requirement would pull a multi-GB CUDA build), then the project.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"


def install_project(session: nox.Session, extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite on CPU (Triton kernels run under TRITON_INTERPRET=1, set in conftest)."""
    install_project(session, "test")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff==0.17.6")  # pinned: formatting changes between releases
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")

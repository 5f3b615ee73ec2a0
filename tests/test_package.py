"""Packaging promises: `import lsd` is fast and inert; the kernels install as `lsd_kernels`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import json, socket, sys, time
def no_network(*args, **kwargs):
    raise AssertionError("network access during import")
socket.socket.connect = no_network
socket.create_connection = no_network
start = time.perf_counter()
import lsd
elapsed = time.perf_counter() - start
torch = sys.modules.get("torch")
print(json.dumps({
    "seconds": elapsed,
    "triton": "triton" in sys.modules,
    "diffusers": "diffusers" in sys.modules,
    "cuda_initialized": bool(torch is not None and torch.cuda.is_initialized()),
}))
"""


def test_import_is_fast_and_imports_no_triton_cuda_or_network():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["seconds"] < 3.0, report
    assert not report["triton"] and not report["diffusers"] and not report["cuda_initialized"], report


def test_public_api_resolves_lazily():
    import lsd

    for name in lsd.__all__:
        assert getattr(lsd, name) is not None, name
    assert "LatentSlotDiffusion" in dir(lsd)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lsd.nope  # noqa: B018


def test_kernels_are_installed_as_lsd_kernels_not_kernels(tmp_path):
    # In a fresh interpreter outside the repo, as users and diffusers' `kernels` probe see it.
    probe = (
        "import importlib.util, json, lsd_kernels; spec = importlib.util.find_spec('kernels'); "
        "print(json.dumps({'lsd_kernels': lsd_kernels.__file__, 'kernels': spec and spec.origin}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    found = json.loads(result.stdout)
    assert Path(found["lsd_kernels"]).parent.name == "kernels"  # our folder, under our name
    repo = Path(__file__).resolve().parents[1]
    # `kernels` is Hugging Face's package name: ours must never be importable under it.
    assert found["kernels"] is None or not Path(found["kernels"]).resolve().is_relative_to(repo)


def _imported_lsd_modules(folder: Path) -> dict[str, set[str]]:
    """File -> the ``lsd...`` / ``lsd_kernels...`` modules it imports (anywhere in the file)."""
    import ast

    found = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(folder.parent))] = {n for n in names if n.split(".")[0] in ("lsd", "lsd_kernels")}
    return found


def test_imports_run_one_way():
    """docs/architecture.md: kernels import no lsd; models import none of the layers above them."""
    root = Path(__file__).resolve().parents[1]
    kernels = _imported_lsd_modules(root / "kernels")
    assert {f: n for f, n in kernels.items() if any(m.split(".")[0] == "lsd" for m in n)} == {}
    above = ("lsd.training", "lsd.evaluation", "lsd.reproduction", "lsd.pipelines", "lsd.generation", "lsd.cli")
    models = _imported_lsd_modules(root / "lsd" / "models")
    upward = {f: sorted(m for m in n if m.startswith(above)) for f, n in models.items()}
    assert {f: m for f, m in upward.items() if m} == {}
    leaves = {**_imported_lsd_modules(root / "lsd" / "data"), **_imported_lsd_modules(root / "lsd" / "metrics")}
    upward = {f: sorted(m for m in n if m.startswith((*above, "lsd.models"))) for f, n in leaves.items()}
    assert {f: m for f, m in upward.items() if m} == {}
    # the weights registry / fetch / lock is on the ground floor: no models, no metrics, nothing above
    weights = _imported_lsd_modules(root / "lsd" / "weights")
    upward = {
        f: sorted(m for m in n if m.startswith((*above, "lsd.models", "lsd.metrics", "lsd.data")))
        for f, n in weights.items()
    }
    assert {f: m for f, m in upward.items() if m} == {}

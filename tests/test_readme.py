"""Every Python block of README.md runs as written, in order, each in a fresh interpreter, in one
scratch folder (a later block may read what an earlier one saved, e.g. ``my-lsd``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of ``text``, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_python_blocks_are_found():
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = 2\nc = 3\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = 2\nc = 3\n"]


@pytest.mark.slow
def test_every_readme_python_block_runs_as_written(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for number, code in enumerate(blocks, start=1):
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"README.md Python block {number} failed:\n{code}\n{done.stderr[-3000:]}"

"""lsd_kernels as a package: every op the triton backend needs is there, and importing the
package itself pulls in no Triton (op modules import it on first use)."""

from __future__ import annotations

import subprocess
import sys

import lsd_kernels


def test_no_required_op_is_missing():
    assert lsd_kernels.missing_ops() == []


def test_importing_the_package_imports_no_triton():
    code = "import sys, lsd_kernels; lsd_kernels.missing_ops(); print('triton' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

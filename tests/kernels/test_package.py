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


def test_the_ops_import_torch_and_triton_only():
    """lsd_kernels stands alone: its ops and references import neither lsd nor diffusers (imports
    run one way: lsd.models -> lsd_kernels)."""
    code = (
        "import sys, lsd_kernels.reference, lsd_kernels.slot_attention, lsd_kernels.slot_cross_attention, "
        "lsd_kernels.bench_gpu; print(sorted({m.split('.')[0] for m in sys.modules} & {'lsd', 'diffusers', 'transformers'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_model_uses_the_kernels_reference():
    from lsd_kernels.reference import slot_attention_updates_ref

    from lsd.models import slot_attention

    assert slot_attention.slot_attention_updates_ref is slot_attention_updates_ref

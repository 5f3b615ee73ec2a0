"""The AOT compile check (lsd_kernels.aot, scripts/kernels_aot.py): it fails on a kernel that does
not compile and on one over a target's shared memory; occupancy and ptxas-log reading; the
launch planners pick per-target configs; the config shapes match the model's attention layers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lsd_kernels._common import KernelConfig, LaunchTarget
from lsd_kernels.aot import TARGETS, ctas_per_sm, parse_ptxas_log

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("kernels_aot", ROOT / "scripts" / "kernels_aot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def variant_rows():
    """Rows of tests/kernels/aot_variants.py, compiled for sm_80 and sm_90 in a child process
    (the kernels must be decorated with TRITON_INTERPRET unset)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "tests.kernels.aot_variants"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {(r["kernel"], r["target"]): r for r in json.loads(done.stdout)}


@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_a_16_bit_dot_with_k_8_fails_the_check_and_k_16_passes(variant_rows, target):
    bad, good = variant_rows[("dot-k8", target)], variant_rows[("dot-k16", target)]
    assert bad["error"].startswith("compile error") and bad["resources"] is None
    assert good["error"] == "" and good["resources"]["registers"] > 0 and good["resources"]["spill_stores"] == 0


@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_shared_memory_over_the_targets_limit_fails_the_check(variant_rows, target):
    row = variant_rows[("smem-8-stages", target)]
    limit = TARGETS[target].max_shared_per_block
    assert row["resources"]["shared"] > limit
    assert row["error"] == f"shared memory {row['resources']['shared']} B > {limit} B ({TARGETS[target].name})"


def test_ptxas_log_is_read_for_registers_and_spills():
    log = (
        "ptxas info    : Compiling entry function 'k' for 'sm_80'\n"
        "ptxas info    : Function properties for k\n"
        "    48 bytes stack frame, 40 bytes spill stores, 24 bytes spill loads\n"
        "ptxas info    : Used 255 registers, used 1 barriers, 392 bytes cmem[0]\n"
    )
    assert parse_ptxas_log(log) == (255, 40, 24)
    with pytest.raises(ValueError, match="no register"):
        parse_ptxas_log("ptxas fatal : nothing")


def test_ctas_per_sm_takes_the_tightest_limit():
    a100, h100 = TARGETS["sm_80"], TARGETS["sm_90"]
    # registers: 255 -> 256 per thread, 8 warps = 65536 registers: one block
    assert ctas_per_sm(a100, 255, 8, 0) == 1
    # warps: 32 registers x 4 warps = 4096 registers, 16 blocks by registers and by 64 warps
    assert ctas_per_sm(a100, 32, 4, 0) == 16
    # shared memory: (139264 + 1024) B per block; 167936 B per A100 SM fits one, 233472 B per H100 SM one
    assert ctas_per_sm(a100, 64, 4, 139_264) == 1 and ctas_per_sm(h100, 64, 4, 100_000) == 2
    # a block over the SM's shared memory does not fit at all
    assert ctas_per_sm(a100, 64, 4, 200_000) == 0


def test_planners_take_the_tuned_config_of_the_target_and_dtype():
    import lsd_kernels.slot_attention as sa
    import lsd_kernels.slot_cross_attention as xa

    q = torch.empty(2, 1, 24, 192, device="meta", dtype=torch.float32)
    kv = torch.empty(2, 1, 4096, 192, device="meta", dtype=torch.float32)
    for arch in (80, 90):
        call = sa.plan_forward(q, kv, kv, 1e-6, LaunchTarget(arch, 132))[0]
        config, block_c_max = sa.TUNED[("fwd", torch.float32, arch)]
        assert call.meta["BLOCK_N"] == config.block_n and call.meta["num_warps"] == config.num_warps
        assert call.meta["BLOCK_C"] == min(block_c_max, 256)
    # The interpreter (and any target not in TUNED) keeps the default launch.
    call = sa.plan_forward(q, kv, kv, 1e-6, LaunchTarget(None, None))[0]
    assert (call.meta["BLOCK_N"], call.meta["num_warps"], call.meta["BLOCK_C"]) == (sa.BLOCK_N, 8, 256)
    assert "num_stages" not in call.meta
    qx = torch.empty(2, 24, 64, 32, device="meta", dtype=torch.float32)
    kx = torch.empty(2, 24, 24, 32, device="meta", dtype=torch.float32)
    call = xa.plan_backward(qx, kx, kx, torch.empty(2, 24, 64, device="meta"), qx, 0.1, LaunchTarget(90, 132))[0]
    assert KernelConfig(call.meta["BLOCK_N"], call.meta["num_warps"]) == xa.TUNED[("bwd", torch.float32, 90, 32)]


def test_cross_attention_levels_match_the_models_attention_layers():
    """The script derives (N, heads, head dim) from the UNet config; the tiny model built from the
    same config must have exactly those cross-attention layers."""
    from lsd.configs import build_model, load_config
    from lsd.models.denoiser import _block_resolutions

    script = _load_script()
    config = load_config("tiny")
    model = build_model("tiny")
    unet = model.unet
    sides = _block_resolutions(unet)
    built = set()
    for part, blocks in (
        ("down_blocks", unet.down_blocks),
        ("mid_block", [unet.mid_block]),
        ("up_blocks", unet.up_blocks),
    ):
        for side, block in zip(sides[part], blocks, strict=True):
            for attention in getattr(block, "attentions", None) or []:
                for layer in attention.transformer_blocks:
                    attn = layer.attn2
                    built.add((side * side, attn.heads, attn.to_q.out_features // attn.heads))
    assert set(script.cross_attention_levels(config["unet"], unet.config.sample_size)) == built


def test_roofline_forward_flops_are_the_reference_ops_flops():
    """The forward FLOPs of the H200 floor table equal torch's FlopCounterMode count of the
    reference ops (the backward rows count the kernels' five products per tile)."""
    from lsd_kernels.reference import slot_attention_updates_ref, slot_cross_attention_ref
    from torch.utils.flop_counter import FlopCounterMode

    script = _load_script()
    batch, heads, slots, dim, inputs, (queries, xheads, xdim) = 2, 2, 7, 12, 50, (30, 3, 8)
    shapes = {
        "batch": batch,
        "slots": slots,
        "slot_attention": (heads, slots, dim, inputs),
        "cross_attention": [(queries, xheads, xdim)],
    }
    rows = {r["kernel"]: r for r in script.roofline(shapes=shapes)}
    with FlopCounterMode(display=False) as counter:
        slot_attention_updates_ref(
            torch.randn(batch, heads, slots, dim),
            torch.randn(batch, heads, inputs, dim),
            torch.randn(batch, heads, inputs, dim),
            1e-6,
        )
    assert rows["slot_attention.fwd"]["flops"] == counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        slot_cross_attention_ref(
            torch.randn(batch, xheads, queries, xdim),
            torch.randn(batch, xheads, slots, xdim),
            torch.randn(batch, xheads, slots, xdim),
            xdim**-0.5,
        )
    assert rows["cross_attention.fwd"]["flops"] == counter.get_total_flops()


def test_the_script_refuses_to_run_interpreted(capsys):
    """Under TRITON_INTERPRET=1 (set by tests/conftest.py) the kernels are interpreted: one clear
    line and exit status 2, before any compile."""
    assert os.environ.get("TRITON_INTERPRET") == "1"
    assert _load_script().main(["--subset", "ci"]) == 2
    assert capsys.readouterr().err.strip() == "kernels_aot: unset TRITON_INTERPRET (the check compiles for real GPUs)"

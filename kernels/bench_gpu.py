"""GPU timings of the fused ops against the eager torch reference and ``torch.compile`` of it.

Run on a CUDA machine (never imported by the package or the tests)::

    python -m lsd_kernels.bench_gpu                       # bf16, MOVi-E shapes
    python -m lsd_kernels.bench_gpu --dtype fp32 --json out.json
    python -m lsd_kernels.bench_gpu --sweep               # also sweep BLOCK_N / PROGRAMS_PER_SM

Shapes (MOVi-E): slot attention B = 32, N = 64 * 64, S = 24, H = 1, d = 192; the denoiser's
cross-attention B = 32, 24 heads, 24 slots at 32x32 (d = 8), 16x16 (d = 16) and 8x8 (d = 32).
For each op and implementation it prints forward and forward+backward times (median of
``triton.testing.do_bench``), achieved GB/s (bytes the fused kernels must move at least: inputs
read once, outputs written once) and TFLOP/s (useful FLOPs, not the padded/block-diagonal ones),
plus the largest error against an fp32 reference as a sanity check.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Case:
    op: str
    shape: str
    impl: str
    fwd_ms: float
    fwd_bwd_ms: float
    fwd_gbps: float
    fwd_bwd_gbps: float
    fwd_tflops: float
    fwd_bwd_tflops: float
    max_err: float


def _bench(fn: Callable[[], object]) -> float:
    from triton.testing import do_bench  # deferred: touches the CUDA driver

    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def _run(impl, leaves, grads) -> tuple[torch.Tensor, ...]:
    """Outputs and input gradients of ``impl``."""
    outs = impl(*leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return tuple(o.detach() for o in outs) + torch.autograd.grad(outs, leaves, grads)


def _time(impl, inputs, grads) -> tuple[float, float, tuple[torch.Tensor, ...]]:
    leaves = [x.detach().requires_grad_() for x in inputs]

    def fwd():
        with torch.no_grad():
            return impl(*leaves)

    return _bench(fwd), _bench(lambda: _run(impl, leaves, grads)), _run(impl, leaves, grads)


def _cases(op, shape, ref, fused, inputs, grads, fwd_bytes, bwd_bytes, fwd_flops, bwd_flops, compile_ref):
    ref32 = _run(ref, [x.detach().float().requires_grad_() for x in inputs], [g.float() for g in grads])
    impls = {"eager": ref, "fused": fused}
    if compile_ref:
        impls["compile(ref)"] = torch.compile(ref, dynamic=False)
    rows = []
    for name, impl in impls.items():
        fwd_ms, fwd_bwd_ms, result = _time(impl, inputs, grads)
        err = max((a.float() - b).abs().max().item() for a, b in zip(result, ref32, strict=True))
        rows.append(
            Case(
                op,
                shape,
                name,
                fwd_ms,
                fwd_bwd_ms,
                fwd_bytes / fwd_ms / 1e6,
                (fwd_bytes + bwd_bytes) / fwd_bwd_ms / 1e6,
                fwd_flops / fwd_ms / 1e9,
                (fwd_flops + bwd_flops) / fwd_bwd_ms / 1e9,
                err,
            )
        )
    return rows


def slot_attention_cases(dtype, compile_ref, batch=32, heads=1, slots=24, num_inputs=4096, dim=192, device="cuda"):
    from lsd_kernels.reference import slot_attention_updates_ref
    from lsd_kernels.slot_attention import slot_attention_updates

    gen = torch.Generator(device=device).manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, device=device, generator=gen).to(dtype)

    q, k = randn(batch, heads, slots, dim), randn(batch, heads, num_inputs, dim) * dim**-0.5
    v = randn(batch, heads, num_inputs, dim)
    grads = (randn(batch, heads, slots, dim), randn(batch, heads, num_inputs, slots))
    size = torch.finfo(dtype).bits // 8
    qs, kv, attn = batch * heads * slots * dim, batch * heads * num_inputs * dim, batch * heads * num_inputs * slots
    fwd_bytes = size * (qs + 2 * kv + attn + qs) + 4 * batch * num_inputs  # + fp32 log-sum-exp
    bwd_bytes = size * (2 * qs + 2 * kv + attn + 2 * kv + qs) + 4 * batch * num_inputs
    mnk = batch * heads * num_inputs * slots * dim
    return _cases(
        "slot_attention", f"B{batch} H{heads} S{slots} N{num_inputs} d{dim}",
        lambda q, k, v: slot_attention_updates_ref(q, k, v, 1e-6),
        lambda q, k, v: slot_attention_updates(q, k, v, 1e-6),
        (q, k, v), grads, fwd_bytes, bwd_bytes, 4 * mnk, 10 * mnk, compile_ref,
    )  # fmt: skip


def cross_attention_cases(
    dtype, compile_ref, batch=32, heads=24, slots=24, resolutions=((32, 8), (16, 16), (8, 32)), device="cuda"
):
    from lsd_kernels.reference import slot_cross_attention_ref
    from lsd_kernels.slot_cross_attention import slot_cross_attention

    gen = torch.Generator(device=device).manual_seed(0)
    rows = []
    for side, dim in resolutions:
        num_queries = side * side

        def randn(*shape):
            return torch.randn(*shape, device=device, generator=gen).to(dtype)

        q, k, v = (
            randn(batch, heads, num_queries, dim),
            randn(batch, heads, slots, dim),
            randn(batch, heads, slots, dim),
        )
        grads = (randn(batch, heads, num_queries, dim),)
        size = torch.finfo(dtype).bits // 8
        qo, kv = batch * heads * num_queries * dim, batch * heads * slots * dim
        lse = 4 * batch * heads * num_queries
        fwd_bytes = size * (2 * qo + 2 * kv) + lse
        bwd_bytes = size * (3 * qo + 4 * kv) + lse
        mnk = batch * heads * num_queries * slots * dim
        scale = dim**-0.5
        rows += _cases(
            "slot_cross_attention", f"B{batch} H{heads} N{num_queries} S{slots} d{dim}",
            lambda q, k, v, scale=scale: slot_cross_attention_ref(q, k, v, scale),
            lambda q, k, v, scale=scale: slot_cross_attention(q, k, v, scale),
            (q, k, v), grads, fwd_bytes, bwd_bytes, 4 * mnk, 10 * mnk, compile_ref,
        )  # fmt: skip
    return rows


def sweep(dtype) -> list[dict]:
    """Fused fwd+bwd times over the default launch constants (module globals, read per launch),
    the per-dtype/target ``TUNED`` configs set aside meanwhile."""
    import lsd_kernels._common as common
    import lsd_kernels.slot_attention as sa
    import lsd_kernels.slot_cross_attention as xa

    out = []
    saved = (sa.BLOCK_N, xa.BLOCK_N, common.PROGRAMS_PER_SM, sa.TUNED, xa.TUNED)
    sa.TUNED, xa.TUNED = {}, {}
    try:
        for block_n in (32, 64, 128):
            for per_sm in (1, 2, 4, 8):
                sa.BLOCK_N, xa.BLOCK_N, common.PROGRAMS_PER_SM = block_n, block_n, per_sm
                for row in slot_attention_cases(dtype, False) + cross_attention_cases(dtype, False):
                    if row.impl == "fused":
                        out.append({"BLOCK_N": block_n, "PROGRAMS_PER_SM": per_sm, **asdict(row)})
    finally:
        sa.BLOCK_N, xa.BLOCK_N, common.PROGRAMS_PER_SM, sa.TUNED, xa.TUNED = saved
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile of the reference")
    parser.add_argument("--sweep", action="store_true", help="also sweep BLOCK_N and PROGRAMS_PER_SM")
    parser.add_argument("--json", help="write all rows to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu needs a CUDA GPU")
    dtype = DTYPES[args.dtype]
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  dtype {args.dtype}")
    rows = slot_attention_cases(dtype, not args.no_compile) + cross_attention_cases(dtype, not args.no_compile)
    header = f"{'op':<22}{'shape':<30}{'impl':<14}{'fwd ms':>9}{'f+b ms':>9}{'fwd GB/s':>10}{'f+b GB/s':>10}"
    print(header + f"{'fwd TF/s':>10}{'f+b TF/s':>10}{'max err':>10}")
    for r in rows:
        print(
            f"{r.op:<22}{r.shape:<30}{r.impl:<14}{r.fwd_ms:>9.3f}{r.fwd_bwd_ms:>9.3f}{r.fwd_gbps:>10.0f}"
            f"{r.fwd_bwd_gbps:>10.0f}{r.fwd_tflops:>10.2f}{r.fwd_bwd_tflops:>10.2f}{r.max_err:>10.2e}"
        )
    result = {"device": torch.cuda.get_device_name(), "dtype": args.dtype, "rows": [asdict(r) for r in rows]}
    if args.sweep:
        result["sweep"] = sweep(dtype)
        for s in result["sweep"]:
            print(
                f"BLOCK_N={s['BLOCK_N']:<4} PROGRAMS_PER_SM={s['PROGRAMS_PER_SM']:<2} {s['shape']:<30} {s['fwd_bwd_ms']:.3f} ms"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

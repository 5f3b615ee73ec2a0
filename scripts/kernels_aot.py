#!/usr/bin/env python
"""Compile every fused kernel for A100 (sm_80) and H100/H200 (sm_90) without a GPU, at the shapes
the shipped configs launch, and print the resource table (docs/perf.md, "Compiled for A100 and
H100/H200"). Exit status 1 when a kernel does not compile or needs more shared memory than its
target has; 2 on bad usage (TRITON_INTERPRET set, unknown config).

    python scripts/kernels_aot.py                 # everything (nox -s kernels-aot)
    python scripts/kernels_aot.py --subset ci     # the CI subset (MOVi-E shapes, fp32 and bf16)
    python scripts/kernels_aot.py --configs coco --dtypes fp32 --targets sm_90

Shapes: slot attention ``(B, H, S, d, N = input_resolution²)`` from each model config with B the
batch of its ``<name>-paper`` training config, and one cross-attention shape per distinct UNet
attention level ``(N = side², H heads, d = channels / H)``, keys = slots, at the latent side
``resolution // 8`` (the VAE's downsampling), following diffusers' UNet2DConditionModel (a block's
heads are ``num_attention_heads``, else ``attention_head_dim``, per block when a list).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

#: The paper's datasets, each with a shipped model config and a ``<name>-paper`` training config.
CONFIGS = ("movi-e", "movi-c", "clevr", "clevrtex", "ffhq", "coco")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: The CI subset (``--subset ci``, under a minute on a 2-core runner): the MOVi-E shapes in fp32
#: and bf16 on both targets.
CI_SUBSET = {"configs": ["movi-e"], "dtypes": ["fp32", "bf16"]}

#: The fields of Stable Diffusion 2.1's UNet that set its attention shapes (COCO's denoiser is this
#: pretrained UNet, which is not stored here): huggingface.co/stabilityai/stable-diffusion-2-1,
#: unet/config.json.
SD21_UNET = {
    "block_out_channels": [320, 640, 1280, 1280],
    "attention_head_dim": [5, 10, 20, 20],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

#: Why a kernel still spills where it does (the table's verdict column); see docs/perf.md.
SPILL_NOTES: dict[str, str] = {}


def _per_block(value, n: int) -> list[int]:
    return list(value) if isinstance(value, list | tuple) else [value] * n


def cross_attention_levels(unet: dict, latent_side: int) -> list[tuple[int, int, int]]:
    """Distinct ``(queries N, heads H, head dim d)`` of the UNet's cross-attention layers, in the
    order down blocks, mid block, up blocks."""
    channels = unet["block_out_channels"]
    n = len(channels)
    heads = _per_block(unet.get("num_attention_heads") or unet["attention_head_dim"], n)
    levels = []
    for i, kind in enumerate(unet["down_block_types"]):  # every block but the last halves the side
        if kind.startswith("CrossAttn"):
            levels.append(((latent_side >> i) ** 2, heads[i], channels[i] // heads[i]))
    if unet.get("mid_block_type") == "UNetMidBlock2DCrossAttn":
        levels.append(((latent_side >> (n - 1)) ** 2, heads[-1], channels[-1] // heads[-1]))
    for j, kind in enumerate(unet["up_block_types"]):
        if kind.startswith("CrossAttn"):
            c, h = channels[n - 1 - j], heads[n - 1 - j]
            levels.append(((latent_side >> (n - 1 - j)) ** 2, h, c // h))
    return list(dict.fromkeys(levels))


def config_shapes(name: str) -> dict:
    """``{"batch", "slot_attention": (H, S, d, N), "cross_attention": [(N, H, d), ...], "slots"}``
    of a shipped config."""
    from lsd.configs import load_config
    from lsd.training.config import load_train_config

    config = load_config(name)
    batch = load_train_config(f"{name}-paper").train.batch_size
    sa = config["slot_attention"]
    unet = config["unet"]
    if unet.get("pretrained"):
        if unet["pretrained"] != "stabilityai/stable-diffusion-2-1":
            raise ValueError(f"config {name}: no attention shapes known for pretrained UNet {unet['pretrained']!r}")
        unet = SD21_UNET
    heads = sa["num_heads"]
    return {
        "batch": batch,
        "slots": sa["num_slots"],
        "slot_attention": (heads, sa["num_slots"], sa["slot_size"] // heads, sa["input_resolution"] ** 2),
        "cross_attention": cross_attention_levels(unet, config["resolution"] // 8),
    }


def build_cases(configs: list[str], dtypes: list[str]) -> list:
    import torch
    from lsd_kernels.aot import cross_attention_cases, slot_attention_cases

    cases, seen = [], set()
    for dtype_name in dtypes:
        dtype = getattr(torch, DTYPES[dtype_name])
        for name in configs:
            shapes = config_shapes(name)
            heads, slots, dim, inputs = shapes["slot_attention"]
            key = ("sa", shapes["batch"], *shapes["slot_attention"], dtype)
            if key not in seen:
                seen.add(key)
                cases += slot_attention_cases(name, shapes["batch"], heads, slots, dim, inputs, dtype)
            for queries, h, d in shapes["cross_attention"]:
                key = ("xa", shapes["batch"], queries, h, d, slots, dtype)
                if key not in seen:
                    seen.add(key)
                    cases += cross_attention_cases(name, shapes["batch"], h, queries, slots, d, dtype)
    return cases


#: H200 HBM3e bandwidth (NVIDIA data sheet) and the dense bf16 matmul rate measured on a lent H200.
H200_BYTES_PER_S = 4.8e12
H200_BF16_FLOP_PER_S = 790e12


def roofline(name: str = "movi-e", element_bytes: int = 2, shapes: dict | None = None) -> list[dict]:
    """Per kernel at config ``name``'s shapes (or ``shapes``, as :func:`config_shapes` returns them;
    16-bit inputs by default): the bytes it must move (inputs read once, outputs written once; the
    small fp32 partial buffers and q/k/v of the few slots left out) and its useful FLOPs (2 per
    multiply-add, unpadded), with the time each implies on an H200: the floor a measured kernel
    time compares with."""
    shapes = shapes or config_shapes(name)
    b, e = shapes["batch"], element_bytes
    heads, slots, dim, n = shapes["slot_attention"]
    hs, hd = heads * slots, heads * dim
    rows = [
        # reads k, v; writes attn (16-bit) and the row log-sum-exp (fp32); logits + weighted sum
        ("slot_attention.fwd", f"B{b} S{slots} D{hd} N{n}", b * n * (2 * hd * e + hs * e + 4), 4 * b * n * hs * dim),
        # reads k, v, lse; writes dk, dv; logits and dW recomputed, dk, dv, dq
        ("slot_attention.bwd", f"B{b} S{slots} D{hd} N{n}", b * n * (4 * hd * e + 4), 10 * b * n * hs * dim),
        (
            "slot_attention.bwd+dattn",
            f"B{b} S{slots} D{hd} N{n}",
            b * n * (4 * hd * e + hs * e + 4),
            10 * b * n * hs * dim,
        ),
    ]
    for queries, h, d in shapes["cross_attention"]:
        shape = f"B{b} H{h} N{queries} S{slots} d{d}"
        rows.append(("cross_attention.fwd", shape, b * h * queries * (2 * d * e + 4), 4 * b * h * queries * slots * d))
        rows.append(("cross_attention.bwd", shape, b * h * queries * (3 * d * e + 4), 10 * b * h * queries * slots * d))
    return [
        {
            "kernel": k,
            "shape": shape,
            "bytes": nbytes,
            "flops": flops,
            "memory_us": 1e6 * nbytes / H200_BYTES_PER_S,
            "compute_us": 1e6 * flops / H200_BF16_FLOP_PER_S,
        }
        for k, shape, nbytes, flops in rows
    ]


def format_roofline(rows: list[dict]) -> str:
    lines = [
        "| kernel | shape | MB moved | GFLOP | floor at 4.8 TB/s µs | floor at 790 TFLOP/s µs | bound |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        bound = "memory" if r["memory_us"] >= r["compute_us"] else "compute"
        lines.append(
            f"| {r['kernel']} | {r['shape']} | {r['bytes'] / 1e6:.2f} | {r['flops'] / 1e9:.3f} "
            f"| {r['memory_us']:.1f} | {r['compute_us']:.2f} | {bound} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", choices=["ci"], help="the CI subset (MOVi-E, fp32 and bf16)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "fp16", "bf16"])
    parser.add_argument("--targets", nargs="+", choices=["sm_80", "sm_90"], default=["sm_80", "sm_90"])
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="compiles at a time (default: the CPU count)"
    )
    parser.add_argument(
        "--untuned", action="store_true", help="compile the default launches (the ops' TUNED configs set aside)"
    )
    parser.add_argument(
        "--roofline",
        action="store_true",
        help="print bytes, FLOPs and H200 time floors at MOVi-E (bf16); compile nothing",
    )
    args = parser.parse_args(argv)
    if args.subset == "ci":
        args.configs, args.dtypes = CI_SUBSET["configs"], CI_SUBSET["dtypes"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.roofline:
        print(format_roofline(roofline()))
        return 0
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("kernels_aot: unset TRITON_INTERPRET (the check compiles for real GPUs)", file=sys.stderr)
        return 2
    from dataclasses import asdict

    import triton
    from triton.runtime.jit import JITFunction

    knobs = getattr(triton, "knobs", None)
    if not hasattr(JITFunction, "_pack_args") or not hasattr(getattr(knobs, "nvidia", None), "dump_ptxas_log"):
        print(f"kernels_aot: needs triton >= 3.9's JIT internals; this is triton {triton.__version__}", file=sys.stderr)
        return 2

    from lsd_kernels.aot import TARGETS, check, format_summary, format_table
    from tqdm import tqdm

    from lsd._atomic import write_text_atomic

    warnings.filterwarnings("ignore", message="TRITON_DEFAULT_FP_FUSION")
    if args.untuned:
        import lsd_kernels.slot_attention as sa
        import lsd_kernels.slot_cross_attention as xa

        sa.TUNED, xa.TUNED = {}, {}
    cases = build_cases(args.configs, args.dtypes)
    targets = [TARGETS[t] for t in args.targets]
    start = time.perf_counter()
    with tqdm(desc="compiling", unit="kernel", file=sys.stderr) as bar:
        rows = check(cases, targets, progress=bar, jobs=max(1, args.jobs))
    seconds = time.perf_counter() - start
    print(format_table(rows, SPILL_NOTES))
    print("\nWorst case per kernel, target and dtype over the shapes:\n")
    print(format_summary(rows))
    failed = [r for r in rows if not r.ok]
    spilling = [r for r in rows if r.resources is not None and r.resources.spill_stores]
    print(
        f"\n{len(rows)} kernels x targets ({bar.total} distinct compiles, {max(1, args.jobs)} at a time) in {seconds:.0f} s: {len(failed)} failed, {len(spilling)} spill "
        f"(limits: {', '.join(f'{t.name} {t.max_shared_per_block} B' for t in targets)})"
    )
    if args.json:
        write_text_atomic(args.json, json.dumps([asdict(r) for r in rows], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

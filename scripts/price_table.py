"""Print the "What a paper table costs" table of docs/perf.md (and draw docs/price.png).

Usage: ``python scripts/price_table.py [--figure docs/price.png]``; paste its output between the
``price-table`` markers in docs/perf.md. ``tests/training/test_price.py`` recounts every row from
the configs and fails when the doc falls out of step.
"""

from __future__ import annotations

import argparse
import sys

from lsd.training.price import H200_BF16_FLOP_S, TRAIN_IMAGES, UTILISATION, TablePrice, price_table

TABLES = ("movi-e", "movi-c", "clevr", "clevrtex", "ffhq", "coco")
HEADER = (
    "| table | recipe | steps x global batch | px | GFLOP/image uncached | GFLOP/image cached | FLOP ratio "
    "| H200-hours uncached | H200-hours cached | cached parts | cache build (H200-hours) | cache on disk "
    "| training images |"
)


def row(price: TablePrice) -> str:
    d = price.as_dict()
    size = price.cache_bytes / 1e9
    return (
        f"| {price.table} | `{price.train_config}` | {price.steps:,} x {price.global_batch} | {price.resolution} "
        f"| {price.flops_per_image_uncached / 1e9:.1f} | {price.flops_per_image_cached / 1e9:.1f} "
        f"| {price.flops_per_image_uncached / price.flops_per_image_cached:.2f}x "
        f"| {d['gpu_hours_uncached']:.1f} | {d['gpu_hours_cached']:.1f} | {' + '.join(price.cached_parts)} "
        f"| {d['gpu_hours_cache_build']:.2f} | {size:,.1f} GB ({price.cache_bytes_per_image * price.views / 1024:,.0f} "
        f"KiB/image, {price.views} view{'s' if price.views > 1 else ''}) | {price.train_images:,} |"
    )


def table(prices: list[TablePrice]) -> str:
    lines = [HEADER, "|" + "|".join(["---"] * (HEADER.count("|") - 1)) + "|"]
    lines += [row(p) for p in prices]
    notes = [
        f"Rates: one H200 at {UTILISATION:.0%} of {H200_BF16_FLOP_S / 1e12:.0f} TFLOP/s (bf16 dense matmul, measured).",
        "Training images: " + "; ".join(f"{t}: {n:,} ({why})" for t, (n, why) in TRAIN_IMAGES.items()) + ".",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def figure(prices: list[TablePrice], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lsd._atomic import save_figure_atomic

    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = [p.table for p in prices]
    x = range(len(prices))
    uncached = [p.as_dict()["gpu_hours_uncached"] for p in prices]
    cached = [p.as_dict()["gpu_hours_cached"] + p.as_dict()["gpu_hours_cache_build"] for p in prices]
    ax.bar([i - 0.2 for i in x], uncached, 0.4, label="uncached (the release's step)")
    ax.bar([i + 0.2 for i in x], cached, 0.4, label="cached (training + one-off cache build)")
    for i, (u, c) in enumerate(zip(uncached, cached, strict=True)):
        ax.text(i + 0.2, c, f"{u / c:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("H200-hours (counted FLOPs)")
    ax.set_xlabel("paper recipe (lsd/configs/train/<table>-paper.json)")
    ax.set_title(f"Training FLOPs of each paper recipe at {UTILISATION:.0%} of {H200_BF16_FLOP_S / 1e12:.0f} TFLOP/s")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", default=None, help="also draw the bar chart to this PNG")
    args = parser.parse_args(argv)
    prices = [price_table(t) for t in TABLES]
    sys.stdout.write(table(prices))
    if args.figure:
        figure(prices, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/perf.md's price per paper table stays in step with the configs: every row is recounted
(FLOPs on the meta device) and must read exactly as the doc does."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- price-table:start -->", "<!-- price-table:end -->"


def _script():
    spec = importlib.util.spec_from_file_location("price_table", ROOT / "scripts" / "price_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc_rows() -> dict[str, str]:
    text = (ROOT / "docs" / "perf.md").read_text()
    block = text[text.index(START) + len(START) : text.index(END)]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| ([a-z-]+) \| `.*$", block, flags=re.M)}


@pytest.mark.parametrize("table", ["movi-e", "movi-c", "clevr", "clevrtex", "ffhq", "coco"])
def test_price_row_matches_a_recount(table):
    from lsd.training.price import price_table

    assert _doc_rows()[table] == _script().row(price_table(table)), "rerun scripts/price_table.py into docs/perf.md"


def test_the_cache_halves_movi_e_flops_and_the_cached_step_has_no_encode():
    from lsd.training.price import price_table

    price = price_table("movi-e")
    assert price.flops_per_image_uncached / price.flops_per_image_cached >= 1.9  # the target
    # what the cache removes is exactly one encode of the image (the build's per-image cost)
    assert price.flops_per_image_uncached - price.flops_per_image_cached == price.cache_build_flops_per_image
    assert price.cache_bytes_per_image == 2 * 4 * 32 * 32 * 4  # mean + logvar, (4, 32, 32), float32

"""Caches of what frozen networks compute from fixed images: the VAE posterior (mean and
log-variance) and a frozen backbone's features, so that training skips those forward passes
(docs/perf.md, "Cached latents"). Below training: imports models and data, never training,
evaluation or reproduction.
"""

from lsd.cache.build import TENSORS, CacheRecipe, build_cache, open_cache
from lsd.cache.dataset import CachedItems
from lsd.cache.store import CacheError, CacheReader

__all__ = ["TENSORS", "CacheError", "CacheReader", "CacheRecipe", "CachedItems", "build_cache", "open_cache"]

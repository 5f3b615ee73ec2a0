"""Segmentation metrics (FG-ARI, mBO, mIoU), property-prediction probes and FID.

Conventions are those of docs/metrics.md and the LSD release; each module's docstring pins them:

- :mod:`lsd.metrics.ari` -- ``fg_ari`` / ``ari``: per-image foreground / all-pixel ARI, sklearn's semantics.
- :mod:`lsd.metrics.class_masks` -- ``class_label_maps``: category masks (mBO^c, mIoU^c) from instances.
- :mod:`lsd.metrics.matching` -- IoU, the release's cosine cost, Hungarian matching, ties.
- :mod:`lsd.metrics.segmentation` -- ``segmentation_scores`` (``fg_ari``, ``ari``, ``mbo``, ``miou``,
  ``mbo_image``, ``miou_image``), ``SegmentationAccumulator``, ``match_slots``.
- :mod:`lsd.metrics.probes` -- property prediction from matched slots.
- :mod:`lsd.metrics.fid` / :mod:`lsd.metrics.inception` -- Frechet distance, KID and the FID
  Inception-v3 feature extractor (``load_fid_inception``: the standard weights, docs/weights.md).

``import lsd`` does not import this package; ``import lsd.metrics`` loads torch, numpy and scipy.
"""

from lsd.metrics.ari import ari, ari_from_contingency, fg_ari
from lsd.metrics.class_masks import class_label_maps
from lsd.metrics.contingency import contingency_tables
from lsd.metrics.fid import (
    FeatureStatistics,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kid_from_features,
)
from lsd.metrics.inception import FID_WEIGHTS_FILENAME, FID_WEIGHTS_URL, InceptionFeatureExtractor, load_fid_inception
from lsd.metrics.matching import assign_slots, iou_from_contingency, release_cosine_cost
from lsd.metrics.probes import collect_matched, fit_property_probes, normalize_minmax, probe_split
from lsd.metrics.segmentation import (
    SegmentationAccumulator,
    SegmentationEvaluation,
    evaluate_segmentation,
    match_slots,
    segmentation_scores,
)

__all__ = [
    "FID_WEIGHTS_FILENAME",
    "FID_WEIGHTS_URL",
    "FeatureStatistics",
    "InceptionFeatureExtractor",
    "SegmentationAccumulator",
    "SegmentationEvaluation",
    "ari",
    "ari_from_contingency",
    "assign_slots",
    "class_label_maps",
    "collect_matched",
    "contingency_tables",
    "evaluate_segmentation",
    "feature_statistics",
    "fg_ari",
    "fid_from_features",
    "fit_property_probes",
    "kid_from_features",
    "load_fid_inception",
    "frechet_distance",
    "iou_from_contingency",
    "match_slots",
    "normalize_minmax",
    "probe_split",
    "release_cosine_cost",
    "segmentation_scores",
]

"""Segmentation metrics (FG-ARI, mBO, mIoU), property-prediction probes and FID."""

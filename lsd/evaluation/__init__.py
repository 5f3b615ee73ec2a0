"""Evaluating a trained LSD: segmentation metrics and property prediction on a dataset."""

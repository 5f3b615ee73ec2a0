"""Datasets: readers for the paper datasets (MOVi, CLEVR, CLEVRTex, FFHQ, COCO), the glob image
dataset and transforms, and the synthetic multi-object scene generator."""

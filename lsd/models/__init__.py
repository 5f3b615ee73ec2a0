"""LSD's modules: positional embeddings, slot attention, encoders, denoiser, the composite."""

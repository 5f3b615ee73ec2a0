"""diffusers pipelines over LSD models: decode slots, reconstruct images, classifier-free guidance.

:class:`LSDPipeline` is the project's one sampler (docs/generation.md).
"""

from lsd.pipelines.lsd_pipeline import (
    NULL_EMBEDDING_FILE,
    SAMPLERS,
    LSDPipeline,
    LSDPipelineOutput,
    encode_null_embedding,
    load_null_embedding,
    load_text_encoder,
    predict_clean,
    save_null_embedding,
)

__all__ = [
    "NULL_EMBEDDING_FILE",
    "SAMPLERS",
    "LSDPipeline",
    "LSDPipelineOutput",
    "encode_null_embedding",
    "load_null_embedding",
    "load_text_encoder",
    "predict_clean",
    "save_null_embedding",
]

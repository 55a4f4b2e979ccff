"""Image embeddings: `curate embed` (stage), the model registry (`models`)."""

"""Exact memory tracing without a GPU: run one real training step (or inference forward) of the
transformers model on fake CPU tensors and record the lifetime of every storage."""

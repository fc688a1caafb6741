"""A model's block structure read from its config: layer counts, attention heads and their grouping, the MLP,
norm and position kinds, and where the sparsity is (sliding-window layers, experts). Every value is the
config's own (`qkv.tools.arch.ModelSpec`) or a count derived from it, so the figures are exact."""

from __future__ import annotations

from pydantic import BaseModel, Field

from qkv.tools.arch import ModelSpec


class LayerStructure(BaseModel):
    """The layer profile of one model: how many blocks of which kind, heads and KV heads, and the sparsity."""

    layers: int = Field(description="all Transformer blocks (encoder and decoder)")
    decoder_layers: int
    encoder_layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    attention_type: str = Field(description="MHA, GQA or MQA")
    query_heads_per_kv_head: int
    intermediate: int
    mlp: str = Field(description="the activation, 'gated (…)' for a gated MLP")
    norm: str
    position: str
    vocab: int
    sliding_window: int | None = Field(description="tokens a sliding layer attends to (None: no sliding layers)")
    sliding_layers: int
    global_layers: int
    experts: int
    experts_per_token: int
    tied_embeddings: bool
    sparsity: str = Field(description="where the model is sparse, in words")
    provenance: str


def layer_structure(spec: ModelSpec, source: str) -> LayerStructure:
    """The structure of `spec` (read from the config at `source`)."""
    layers = spec.layers + spec.encoder_layers
    if spec.sliding_layers:
        sparsity = f"sliding-window attention in {spec.sliding_layers}/{layers} layers"
    elif spec.experts:
        sparsity = f"mixture of experts: {spec.experts_per_token} of {spec.experts}"
    else:
        sparsity = "dense (full attention, dense MLP)"
    return LayerStructure(
        layers=layers, decoder_layers=spec.layers if spec.kind != "encoder" else 0,
        encoder_layers=spec.encoder_layers if spec.kind == "encoder-decoder" else (
            spec.layers if spec.kind == "encoder" else 0),
        hidden=spec.hidden, heads=spec.heads, kv_heads=spec.kv_heads, head_dim=spec.head_dim,
        attention_type=spec.attention_type, query_heads_per_kv_head=spec.heads // spec.kv_heads,
        intermediate=spec.intermediate,
        mlp="gated (" + spec.activation + ")" if spec.gated_mlp else spec.activation, norm=spec.norm,
        position=spec.position, vocab=spec.vocab, sliding_window=spec.sliding_window,
        sliding_layers=spec.sliding_layers, global_layers=layers - spec.sliding_layers, experts=spec.experts,
        experts_per_token=spec.experts_per_token, tied_embeddings=spec.tied_embeddings, sparsity=sparsity,
        provenance=f"config: {source} (qkv.tools.arch.spec_from_config)")

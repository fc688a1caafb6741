"""Resolve what the user named as a model: a catalog name or alias, a local config.json, a model
folder, a GGUF file, or (only with online=True) a hub id. Returns the HF-style config dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from qkv.tools.catalog.models import find_model, get_model
from qkv.tools.errors import BadInput

Origin = Literal["catalog", "config.json", "gguf", "hub"]

# llama.cpp architecture names -> transformers model_type.
GGUF_ARCH_TO_MODEL_TYPE = {
    "llama": "llama",
    "mistral": "mistral",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "phi3": "phi3",
    "gpt2": "gpt2",
}


class ResolvedModel(BaseModel):
    """A model reference made concrete: its name, HF config and where the config came from."""

    name: str
    origin: Origin
    source: str
    config: dict[str, Any]
    gguf_params: int | None = None  # exact element count of the GGUF's tensors, when read from one
    gguf_file_bytes: int | None = None


def resolve_model(ref: str, *, online: bool = False) -> ResolvedModel:
    """Turn a user's model reference into a config; BadInput/UnknownName with choices otherwise."""
    ref = ref.strip()
    if not ref:
        raise BadInput("empty model name", expected="a catalog name such as 'llama-2-7b' (`qkv models`)")
    try:
        path = Path(ref).expanduser()
        exists = path.exists()
    except (OSError, RuntimeError):  # a name too long for the filesystem, an unknown ~user: not a path
        path, exists = Path(ref), False
    if exists:
        return _from_path(path)
    if ref.endswith((".json", ".gguf")) or ref.startswith((".", "/", "~")):
        raise BadInput(f"no such file: {ref}", expected="an existing config.json, model folder or .gguf file")
    if online and "/" in ref and find_model(ref) is None:
        return _from_hub(ref)
    entry = get_model(ref)  # UnknownName with the closest catalog names
    return ResolvedModel(name=entry.name, origin="catalog", source=entry.source, config=entry.config)


def _from_path(path: Path) -> ResolvedModel:
    if path.is_dir():
        cfg = path / "config.json"
        if cfg.is_file():
            return _from_config_file(cfg, name=path.name)
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return _from_gguf(ggufs[0])
        raise BadInput(f"folder {path} has neither config.json nor a .gguf file",
                       expected="a model folder (HF layout) or a GGUF file")
    if not path.is_file():
        raise BadInput(f"{path} is not a regular file", expected="a config.json or .gguf file")
    if path.suffix == ".gguf":
        return _from_gguf(path)
    return _from_config_file(path, name=path.parent.name or path.stem)


def _from_config_file(path: Path, name: str) -> ResolvedModel:
    try:
        cfg = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is not valid JSON ({exc})", expected="an HF config.json") from None
    if not isinstance(cfg, dict) or "model_type" not in cfg:
        raise BadInput(f"{path} has no 'model_type'", expected="an HF config.json (e.g. model_type 'llama')")
    return ResolvedModel(name=name, origin="config.json", source=str(path), config=cfg)


def _from_hub(repo_id: str) -> ResolvedModel:
    """Fetch only config.json from the hub (never weights, never remote code)."""
    try:
        from huggingface_hub import hf_hub_download

        local = hf_hub_download(repo_id, "config.json")
    except Exception as exc:
        raise BadInput(f"could not fetch config.json for '{repo_id}' from the hub ({type(exc).__name__})",
                       expected="a public hub id and a network connection") from None
    resolved = _from_config_file(Path(local), name=repo_id)
    return resolved.model_copy(update={"origin": "hub", "source": f"hub:{repo_id}"})


def _from_gguf(path: Path) -> ResolvedModel:
    """Map GGUF metadata (llama.cpp key names) onto HF config fields; count the tensors exactly."""
    from qkv.tools.gguf_meta import read_gguf_header

    header = read_gguf_header(path)  # BadInput for a file that is not GGUF
    f = header.fields

    def _field(key: str, default: Any = None) -> Any:
        return f.get(key, default)

    arch = _field("general.architecture")
    model_type = GGUF_ARCH_TO_MODEL_TYPE.get(arch or "")
    if model_type is None:
        raise BadInput(f"GGUF architecture '{arch}' is not supported", expected="one of the mapped architectures",
                       choices=sorted(GGUF_ARCH_TO_MODEL_TYPE))
    tokens = f.get("tokenizer.ggml.tokens")  # an ArrayLen: the vocabulary's size, strings skipped
    names = {t.name for t in header.tensors}
    hidden = _field(f"{arch}.embedding_length")
    heads = _field(f"{arch}.attention.head_count")
    cfg: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_hidden_layers": _field(f"{arch}.block_count"),
        "intermediate_size": _field(f"{arch}.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _field(f"{arch}.attention.head_count_kv", heads),
        "max_position_embeddings": _field(f"{arch}.context_length"),
        "vocab_size": int(tokens) if tokens is not None else _field(f"{arch}.vocab_size"),
        "rope_theta": _field(f"{arch}.rope.freq_base"),
        "rms_norm_eps": _field(f"{arch}.attention.layer_norm_rms_epsilon"),
        "tie_word_embeddings": "output.weight" not in names,
    }
    key_len = _field(f"{arch}.attention.key_length")
    if key_len:
        cfg["head_dim"] = key_len
    window = _field(f"{arch}.attention.sliding_window")
    if window:
        cfg["sliding_window"] = window
        if model_type == "gemma3_text":
            # Gemma 3: five local (sliding) layers for every global one (sliding_window_pattern 6).
            n = cfg["num_hidden_layers"]
            cfg["layer_types"] = ["full_attention" if (k + 1) % 6 == 0 else "sliding_attention" for k in range(n)]
    experts = _field(f"{arch}.expert_count")
    if experts:
        cfg["num_local_experts"] = experts
        cfg["num_experts_per_tok"] = _field(f"{arch}.expert_used_count")
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size") if not cfg.get(k)]
    if missing:
        raise BadInput(f"{path} lacks GGUF metadata for {', '.join(missing)}",
                       expected=f"'{arch}.*' keys written by llama.cpp's converter")
    return ResolvedModel(
        name=str(_field("general.name") or path.stem),
        origin="gguf",
        source=str(path),
        config=cfg,
        gguf_params=sum(t.n_elements for t in header.tensors),
        gguf_file_bytes=path.stat().st_size,
    )

"""Checks that need the machine or the data but not the model: run before any weights load, so a bad
config fails in a second with the key named, not after a minute of loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.train.config import TrainConfig
from qkv.tools.train.data import SplitRows, load_split_rows


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def check_environment(cfg: TrainConfig) -> None:
    """Impossible combinations on this machine: QLoRA / 8-bit optimizers without bitsandbytes,
    flash_attention_2 without CUDA or flash-attn, LoRA without peft, a CUDA-only chunked-loss backend."""
    if cfg.method.kind in ("lora", "qlora") and not has_package("peft"):
        raise BadInput(f"method.kind {cfg.method.kind} needs peft", expected="`pip install 'qkv[train]'`, "
                       "or method.kind: full")
    if cfg.method.kind == "qlora" and not has_package("bitsandbytes"):
        raise BadInput("method.kind qlora needs bitsandbytes (4-bit NF4 weights), which is not installed",
                       expected="`pip install bitsandbytes`, or method.kind: lora (16/32-bit frozen weights)")
    if "8bit" in cfg.optim.optimizer and not has_package("bitsandbytes"):
        raise BadInput(f"optim.optimizer {cfg.optim.optimizer} needs bitsandbytes, which is not installed",
                       expected="`pip install bitsandbytes`, or optim.optimizer: adamw")
    if cfg.model.attention == "flash_attention_2":
        if not cuda_available():
            raise BadInput("model.attention flash_attention_2 needs a CUDA GPU; this machine has none",
                           expected="model.attention: sdpa (PyTorch's fused kernel, works on CPU)")
        if not has_package("flash_attn"):
            raise BadInput("model.attention flash_attention_2 needs the flash-attn package",
                           expected="`pip install flash-attn` (builds against CUDA), or model.attention: sdpa")
    if cfg.train.loss == "chunked":
        from qkv.tools.train.loss import pick_backend

        pick_backend(cfg.train.loss_backend, cuda=cuda_available())  # a named backend that cannot run here
    if cfg.model.dtype == "float16" and not cuda_available():
        raise BadInput("model.dtype float16 trains unstably and slowly on CPU",
                       expected="model.dtype: float32 (or bfloat16) on CPU")


def check_window(cfg: TrainConfig) -> None:
    """train.seq_len within the model's context window (hard rule 1), read from its config only."""
    from qkv.tools.modelref import resolve_model

    ref = cfg.model.name
    try:
        resolved = resolve_model(ref)
    except Exception:  # a folder/GGUF the config resolver does not know: the loader will say more
        return
    window = resolved.config.get("max_position_embeddings") or resolved.config.get("n_positions")
    if window and cfg.train.seq_len > window:
        raise ContextExceeded(f"train.seq_len {cfg.train.seq_len} exceeds {ref}'s window of {window} tokens",
                              expected=f"train.seq_len <= {window}")


def check_weights(cfg: TrainConfig) -> None:
    """The weights exist (a bundled alias, a folder or a .gguf), without loading them."""
    from qkv.tools.hf_models import resolve_weights

    try:
        resolve_weights(cfg.model.name)
    except BadInput as exc:
        raise BadInput(f"model.name: {exc.what}", expected=exc.expected) from None


def check_chat_template(cfg: TrainConfig) -> None:
    if cfg.data.format != "chat":
        return
    from qkv.tools.hf_models import load_tokenizer

    tok = load_tokenizer(cfg.model.name)
    if not getattr(tok, "chat_template", None):
        raise BadInput(f"data.format chat, but {cfg.model.name}'s tokenizer has no chat template",
                       expected="data.format: prompt_response or text, or an instruction-tuned model")


def preflight(cfg: TrainConfig, base_dir: Path | None = None) -> SplitRows:
    """Every check that can run before the model loads; returns the checked data rows."""
    check_environment(cfg)
    check_window(cfg)
    rows = load_split_rows(cfg.data, base_dir, seed=cfg.run.seed)
    check_weights(cfg)
    check_chat_template(cfg)
    return rows

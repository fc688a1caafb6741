"""Load the model to train and wrap it for the chosen method (full / LoRA / QLoRA) with peft."""

from __future__ import annotations

from typing import Any

from qkv.tools.errors import BadInput
from qkv.tools.train.config import TrainConfig


def load_for_training(cfg: TrainConfig) -> tuple[Any, Any, dict[str, int]]:
    """(model in train mode, tokenizer, {'params', 'trainable_params', 'bnb_layers_guarded'}).

    QLoRA: NF4 weights through bitsandbytes, then peft.prepare_model_for_kbit_training (norms and
    embeddings to fp32, input grads for checkpointing) — or, with method.upcast_non_quantised false, the
    same preparation without the fp32 cast (`prepare_kbit`). The AVX512-BF16 repack is switched off on every
    4-bit layer here and again before each eval pass (STACK-NOTES)."""
    from transformers import set_seed

    from qkv.tools.hf_models import disable_bnb_cpu_repack, load_causal_lm

    set_seed(cfg.run.seed)  # LoRA's random A matrices: same seed, same initial adapter
    qlora = cfg.method.kind == "qlora"
    model, tok = load_causal_lm(
        cfg.model.name,
        dtype=cfg.method.compute_dtype if qlora else cfg.model.dtype,
        quantization="nf4" if qlora else "none",
        attn_implementation=cfg.model.attention,
    )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if qlora:
        model = prepare_kbit(model, upcast=cfg.method.upcast_non_quantised,
                             grad_checkpointing=cfg.train.grad_checkpointing)
    if cfg.method.kind in ("lora", "qlora"):
        model = _wrap_lora(model, cfg)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    if cfg.train.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.method.kind != "full" and hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.config.use_cache = False  # a KV cache is useless (and wasteful) while training
    guarded = disable_bnb_cpu_repack(model)
    model.train()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, tok, {"params": total, "trainable_params": trainable, "bnb_layers_guarded": guarded}


def prepare_kbit(model, *, upcast: bool, grad_checkpointing: bool):
    """peft.prepare_model_for_kbit_training, or (upcast False) the same without its fp32 cast of every
    non-quantised weight: freezing the base is then all that is left of it, because checkpointing and input
    gradients are switched on by load_for_training in both cases."""
    if upcast:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=grad_checkpointing)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def unquantised_bytes(model) -> dict[str, int]:
    """Bytes of the base weights bitsandbytes left unquantised (embeddings, LM head, norms), by dtype: what
    method.upcast_non_quantised changes. Tied weights count once; LoRA adapters are not counted."""
    out: dict[str, int] = {}
    for name, p in model.named_parameters():
        if "lora_" in name or type(p).__name__ == "Params4bit":
            continue
        key = str(p.dtype).removeprefix("torch.")
        out[key] = out.get(key, 0) + p.numel() * p.element_size()
    return out


def _wrap_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    targets: list[str] | str = cfg.method.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    lora = LoraConfig(r=cfg.method.r, lora_alpha=cfg.method.alpha, lora_dropout=cfg.method.dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if type(m).__name__.startswith("Linear")})
        raise BadInput(f"method.target_modules {cfg.method.target_modules}: {exc}".split("\n")[0],
                       choices=[*names, "all-linear"]) from None


def lora_grad_norms(model) -> dict[str, float]:
    """Gradient norm of every LoRA parameter (what the AVX512-BF16 guard test checks is non-zero)."""
    return {n: float(p.grad.norm()) if p.grad is not None else 0.0
            for n, p in model.named_parameters() if "lora_" in n and p.requires_grad}

"""Load the model to train and wrap it for the chosen method (full / LoRA / QLoRA) with peft."""

from __future__ import annotations

from typing import Any

from qkv.tools.errors import BadInput
from qkv.tools.train.config import TrainConfig


def load_for_training(cfg: TrainConfig) -> tuple[Any, Any, dict[str, int]]:
    """(model in train mode, tokenizer, {'params', 'trainable_params', 'bnb_layers_guarded'}).

    QLoRA: NF4 weights through bitsandbytes, then peft.prepare_model_for_kbit_training (norms and
    embeddings to fp32, input grads for checkpointing). The AVX512-BF16 repack is switched off on every
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
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.grad_checkpointing)
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

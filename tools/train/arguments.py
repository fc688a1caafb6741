"""qkv's training config → transformers' TrainingArguments (kept apart from run.py so that module stays
about the run itself; transformers is imported only when the arguments are built)."""

from __future__ import annotations

from pathlib import Path

from qkv.tools.train.config import TrainConfig

# qkv optimizer name → the Trainer's `optim` string (bitsandbytes 8-bit and paged variants)
HF_OPTIM = {"adamw": "adamw_torch", "adamw-8bit": "adamw_bnb_8bit", "paged-adamw": "paged_adamw_32bit",
            "paged-adamw-8bit": "paged_adamw_8bit"}


def training_args(cfg: TrainConfig, out: Path, cuda: bool, has_eval: bool):
    """The Trainer's TrainingArguments for `cfg`: schedule, optimizer, checkpoints, precision and device."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out),
        max_steps=cfg.train.max_steps if cfg.train.max_steps > 0 else -1,
        num_train_epochs=cfg.train.epochs,
        per_device_train_batch_size=cfg.train.micro_batch,
        per_device_eval_batch_size=cfg.train.micro_batch,
        gradient_accumulation_steps=cfg.train.grad_accum,
        learning_rate=cfg.optim.lr,
        lr_scheduler_type=cfg.optim.schedule,
        # transformers 5 reads a warmup_steps float below 1 as a fraction of all steps.
        warmup_steps=cfg.optim.warmup_steps or cfg.optim.warmup_ratio,
        weight_decay=cfg.optim.weight_decay,
        max_grad_norm=cfg.optim.max_grad_norm,
        optim=HF_OPTIM[cfg.optim.optimizer],
        seed=cfg.run.seed,
        logging_steps=1,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.run.eval_interval,
        save_strategy="steps",
        save_steps=cfg.run.checkpoint_interval,
        save_total_limit=None,  # QkvTrainer prunes complete checkpoints itself
        prediction_loss_only=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        bf16=cuda and cfg.model.dtype == "bfloat16" and cfg.method.kind != "qlora",
        use_cpu=not cuda,
        dataloader_pin_memory=cuda,
        dataloader_num_workers=0,
        # LoRA and full fine-tuning use every trainable weight in each forward: DDP's extra search of the
        # autograd graph for unused ones (transformers' default without checkpointing) is wasted time
        ddp_find_unused_parameters=False,
        report_to="none",
        disable_tqdm=False,
    )

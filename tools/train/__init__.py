"""Trainer: full / LoRA / QLoRA fine-tuning on transformers + peft, resumable, measured."""

"""The commented YAML presets shipped in configs/ (per method and GPU class), generated from TrainConfig so
they can never drift from the schema: `python -m qkv.tools.train.presets configs/` rewrites them, and a
test checks the checked-in files equal this output."""

from __future__ import annotations

import sys
from pathlib import Path

from qkv.tools.train.config import TrainConfig, config_from_dict, to_yaml

CPU_PILOT_RUN = {"eval_interval": 6, "checkpoint_interval": 6, "threads": 2}
CPU_PILOT_DATA = {"max_eval_samples": 8}

PRESETS: dict[str, tuple[str, dict]] = {
    "pilot-gemma3-270m-lora-cpu": (
        "CPU pilot: LoRA on the bundled Gemma 3 270M, shipped licence corpus (plain text), fp32.\n"
        "A few seconds a step on 2 quiet cores (minutes on a loaded machine); --pilot prints held-out\n"
        "perplexity before and after through the evaluator.",
        {"model": {"name": "gemma3-270m", "dtype": "float32", "attention": "sdpa"},
         "data": {"train": "bundled:licences-train.jsonl", "eval": "bundled:licences-heldout.jsonl", **CPU_PILOT_DATA},
         "method": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.05,
                    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
         "optim": {"optimizer": "adamw", "lr": 1e-3, "schedule": "cosine", "warmup_steps": 1},
         "train": {"micro_batch": 2, "grad_accum": 1, "seq_len": 64, "packing": True, "max_steps": 12},
         "run": {**CPU_PILOT_RUN, "output_dir": "runs/pilot-gemma3-270m-lora"}}),
    "pilot-gemma3-270m-qlora-cpu": (
        "CPU pilot: QLoRA (NF4 + double quant through bitsandbytes 0.50) on the bundled Gemma 3 270M.\n"
        "Compute in fp32 on CPU; the AVX512-BF16 repack trap is guarded before every eval pass.",
        {"model": {"name": "gemma3-270m", "dtype": "float32", "attention": "sdpa"},
         "data": {"train": "bundled:licences-train.jsonl", "eval": "bundled:licences-heldout.jsonl", **CPU_PILOT_DATA},
         "method": {"kind": "qlora", "r": 8, "alpha": 16, "dropout": 0.05, "double_quant": True,
                    "compute_dtype": "float32", "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
         "optim": {"optimizer": "adamw", "lr": 1e-3, "schedule": "cosine", "warmup_steps": 1},
         "train": {"micro_batch": 2, "grad_accum": 1, "seq_len": 64, "packing": True, "max_steps": 12},
         "run": {**CPU_PILOT_RUN, "output_dir": "runs/pilot-gemma3-270m-qlora"}}),
    "pilot-gemma3-270m-lora-chunked-cpu": (
        "CPU pilot: pilot-gemma3-270m-lora-cpu with the loss computed over the vocabulary 32 tokens at a time\n"
        "(train.loss: chunked; the plain-torch backend on CPU) and activation offloading on (a no-op on a\n"
        "CPU-only run). Same data, seed and steps, so the same losses, with ~0.3 GiB less peak memory.",
        {"model": {"name": "gemma3-270m", "dtype": "float32", "attention": "sdpa"},
         "data": {"train": "bundled:licences-train.jsonl", "eval": "bundled:licences-heldout.jsonl", **CPU_PILOT_DATA},
         "method": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.05,
                    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
         "optim": {"optimizer": "adamw", "lr": 1e-3, "schedule": "cosine", "warmup_steps": 1},
         "train": {"micro_batch": 2, "grad_accum": 1, "seq_len": 64, "packing": True, "max_steps": 12,
                   "loss": "chunked", "loss_chunk_tokens": 32, "loss_backend": "auto", "offload_activations": True},
         "run": {**CPU_PILOT_RUN, "output_dir": "runs/pilot-gemma3-270m-lora-chunked"}}),
    "pilot-gemma3-270m-lora-continue-cpu": (
        "CPU pilot, prompt/response format: loss on the response only (shipped continuation pairs).",
        {"model": {"name": "gemma3-270m"},
         "data": {"train": "bundled:continue-train.jsonl", "eval": "bundled:continue-heldout.jsonl",
                  "format": "prompt_response", **CPU_PILOT_DATA},
         "method": {"kind": "lora"},
         "optim": {"lr": 1e-3, "warmup_steps": 1},
         "train": {"micro_batch": 2, "seq_len": 64, "packing": True, "max_steps": 12},
         "run": {**CPU_PILOT_RUN, "output_dir": "runs/pilot-gemma3-270m-continue"}}),
    "qlora-8b-24gb": (
        "QLoRA of an 8B model on one 24 GB GPU (RTX 4090 / L4 / A10 class). Set model.name to a local\n"
        "transformers folder (e.g. a Llama-3.1-8B download). Check first: qkv vram llama-3.1-8b --method qlora "
        "--gpu rtx-4090 --seq 2048 --checkpointing",
        {"model": {"name": "/models/Llama-3.1-8B", "dtype": "bfloat16", "attention": "sdpa"},
         "data": {"train": "data/train.jsonl", "eval": "data/heldout.jsonl", "format": "prompt_response"},
         "method": {"kind": "qlora", "r": 16, "alpha": 32, "dropout": 0.05, "double_quant": True,
                    "compute_dtype": "bfloat16", "target_modules": ["all-linear"]},
         "optim": {"optimizer": "paged-adamw-8bit", "lr": 2e-4, "schedule": "cosine", "warmup_steps": 50},
         "train": {"micro_batch": 4, "grad_accum": 4, "seq_len": 2048, "packing": True,
                   "grad_checkpointing": True, "max_steps": 2000},
         "run": {"eval_interval": 200, "checkpoint_interval": 200, "output_dir": "runs/qlora-8b",
                 "gpu": "rtx-4090"}}),
    "lora-8b-80gb": (
        "LoRA (bf16 frozen weights) of an 8B model on one 80 GB GPU (A100 / H100 class); flash-attention 2\n"
        "when installed. Check: qkv vram llama-3.1-8b --method lora --gpu h100-sxm --seq 4096",
        {"model": {"name": "/models/Llama-3.1-8B", "dtype": "bfloat16", "attention": "flash_attention_2"},
         "data": {"train": "data/train.jsonl", "eval": "data/heldout.jsonl", "format": "prompt_response"},
         "method": {"kind": "lora", "r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["all-linear"]},
         "optim": {"optimizer": "adamw", "lr": 2e-4, "schedule": "cosine", "warmup_steps": 50},
         "train": {"micro_batch": 8, "grad_accum": 2, "seq_len": 4096, "packing": True, "max_steps": 2000},
         "run": {"eval_interval": 200, "checkpoint_interval": 200, "output_dir": "runs/lora-8b",
                 "gpu": "h100-sxm"}}),
    "full-1b-80gb": (
        "Full fine-tune of a ~1B model on one 80 GB GPU (bf16 weights, fp32 AdamW states: ~16 bytes/param).\n"
        "Multi-GPU: accelerate launch --config_file configs/accelerate-fsdp.yaml -m qkv.agent.cli train THIS",
        {"model": {"name": "/models/TinyLlama-1.1B", "dtype": "bfloat16", "attention": "sdpa"},
         "data": {"train": "data/train.jsonl", "eval": "data/heldout.jsonl", "format": "text"},
         "method": {"kind": "full"},
         "optim": {"optimizer": "adamw", "lr": 2e-5, "schedule": "cosine", "warmup_steps": 100,
                   "weight_decay": 0.01},
         "train": {"micro_batch": 8, "grad_accum": 4, "seq_len": 2048, "packing": True,
                   "grad_checkpointing": True, "max_steps": 3000},
         "run": {"eval_interval": 250, "checkpoint_interval": 250, "output_dir": "runs/full-1b",
                 "gpu": "a100-80gb-sxm"}}),
}


def preset(name: str) -> TrainConfig:
    """A shipped preset as a validated TrainConfig."""
    return config_from_dict(PRESETS[name][1])


def preset_yaml(name: str) -> str:
    """The commented YAML of a preset, opening with the command that runs it."""
    about, _ = PRESETS[name]
    pilot = " --pilot 12" if name.startswith("pilot") else ""
    header = f"qkv train configs/{name}.yaml{pilot}\n\n{about}"
    return to_yaml(preset(name), header=header)


def write_presets(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PRESETS:
        path = folder / f"{name}.yaml"
        path.write_text(preset_yaml(name))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_presets(Path(sys.argv[1] if len(sys.argv) > 1 else "configs")):
        print(p)

"""Trainer: full / LoRA / QLoRA fine-tuning on transformers + peft, resumable, measured.

Public API (heavy libraries load only inside the functions):
    TrainConfig, load_config, config_from_dict, to_yaml     (qkv.tools.train.config)
    preflight                                               (qkv.tools.train.preflight)
    train, prepare, execute                                 (qkv.tools.train.run)
    pilot                                                   (qkv.tools.train.pilot)
    causal_lm_loss, chunked_linear_cross_entropy            (qkv.tools.train.loss: train.loss chunked)
    probe_step                                              (qkv.tools.train.probe: one step's peak memory)
    TrainSummary, PilotResult, MemoryCheck                  (qkv.tools.train.schema)
"""

from qkv.tools.train.config import TrainConfig, config_from_dict, load_config, to_yaml

__all__ = ["TrainConfig", "config_from_dict", "load_config", "to_yaml"]

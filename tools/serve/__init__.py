"""Serving planner: tensor/pipeline parallelism, weight and KV formats, bounded prefill, per-GPU memory
and roofline latency for vLLM/SGLang, llama.cpp and transformers generate. No torch on this path."""

from qkv.tools.serve.planner import fewest_gpus, plan_serving
from qkv.tools.serve.schema import ServingPlan, ServingRequest

__all__ = ["ServingPlan", "ServingRequest", "fewest_gpus", "plan_serving"]

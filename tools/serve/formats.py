"""Which weight and KV formats each engine serves on each GPU, and why a format is refused.

Support follows the engines' documented kernel requirements (sources in SOURCES); a GPU's generation
is read from the catalog's `architecture` field."""

from __future__ import annotations

from qkv.tools.catalog.gpus import GpuSpec

SOURCES = {
    "fp8": "vLLM docs, Quantization > FP8 W8A8: native FP8 on Ada/Hopper/Blackwell (compute capability >= 8.9); "
           "Ampere runs FP8 checkpoints weight-only through FP8 Marlin kernels",
    "int4": "vLLM docs, Quantization > supported hardware: AWQ/GPTQ on Volta+ with Marlin kernels on Ampere+ "
            "(compute capability >= 8.0); Frantar et al. 2024 (Marlin)",
    "nf4": "vLLM docs, Quantization > BitsAndBytes: in-flight 4-bit loading without fused serving kernels; "
           "Dettmers et al. 2023 (QLoRA) designed NF4 for fine-tuning, not throughput",
    "gguf": "llama.cpp tools/quantize/README.md (GGUF types) and ggml backends (CPU, CUDA, Metal)",
    "kv_fp8": "vLLM docs, Quantized KV cache: fp8 (e4m3) KV on Ada/Hopper/Blackwell",
    "kv_llamacpp": "llama.cpp --cache-type-k/-v f16, q8_0, q4_0 (a quantised V cache needs flash attention)",
}


def generation(gpu: GpuSpec) -> str:
    """'volta' | 'turing' | 'ampere' | 'ada' | 'hopper' | 'blackwell' | 'cdna' | 'apple' | 'cpu' | 'unknown'."""
    arch = gpu.architecture.lower()
    for key in ("volta", "turing", "ampere", "ada", "hopper", "blackwell", "cdna", "apple"):
        if key in arch:
            return key
    return "cpu" if gpu.gpu_class == "cpu" else "unknown"


def has_bf16(gpu: GpuSpec) -> bool:
    return generation(gpu) not in ("volta", "turing")


def float_format(gpu: GpuSpec) -> str:
    """The 16-bit float the GPU computes in: bf16 from Ampere on, fp16 before (Turing/Volta lack bf16)."""
    return "bf16" if has_bf16(gpu) else "fp16"


def refusal(fmt: str, engine: str, gpu: GpuSpec) -> str | None:
    """Why `engine` cannot serve weights in `fmt` on `gpu`, or None when it can."""
    gen = generation(gpu)
    paged = engine in ("vllm", "sglang")
    gguf = fmt[:1] == "Q"
    if engine == "llama.cpp":
        return None if gguf or fmt in ("bf16", "fp16") else f"llama.cpp serves GGUF types, not {fmt}"
    if gguf:
        return f"{fmt} is a llama.cpp (GGUF) type; use --engine llama.cpp"
    if fmt == "bf16" and not has_bf16(gpu):
        return f"{gpu.architecture} has no bf16 arithmetic; serve fp16"
    if paged and fmt in ("nf4", "int8"):
        return (f"bitsandbytes {fmt} is not a serving format on {gpu.architecture}: it loads in flight without "
                "fused serving kernels; use FP8 or AWQ/GPTQ INT4 (Marlin)")
    if engine == "transformers" and fmt in ("fp8", "awq-int4", "gptq-int4"):
        return f"the transformers profile plans bf16/fp16/int8/nf4 (bitsandbytes); {fmt} is planned with vllm"
    if fmt == "fp8" and not (gpu.fp8 or gen == "ampere"):
        return f"{gpu.architecture} has no FP8 path (native from Ada/Hopper; weight-only Marlin on Ampere)"
    if fmt in ("awq-int4", "gptq-int4") and gen in ("apple", "cpu", "unknown"):
        return f"no AWQ/GPTQ CUDA kernels on {gpu.architecture}"
    return None


def kv_refusal(kv: str, engine: str, gpu: GpuSpec) -> str | None:
    """Why `engine` cannot hold the KV cache in `kv` on `gpu`, or None."""
    if engine == "llama.cpp":
        return None if kv in ("fp16", "q8_0", "q4_0") else f"llama.cpp caches K/V as f16, q8_0 or q4_0, not {kv}"
    if kv in ("q8_0", "q4_0"):
        return f"{kv} is a llama.cpp cache type"
    if kv == "bf16" and not has_bf16(gpu):
        return f"{gpu.architecture} has no bf16; cache K/V in fp16"
    if kv == "fp8" and (engine == "transformers" or not gpu.fp8):
        return "fp8 KV needs vLLM/SGLang on an FP8 GPU (Ada/Hopper/Blackwell)"
    return None


def weight_candidates(engine: str, gpu: GpuSpec) -> list[str]:
    """Weight formats in the order the planner prefers them: highest precision first."""
    if engine == "llama.cpp":
        return ["fp16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"]
    if engine == "transformers":
        return [float_format(gpu), "int8", "nf4"]
    return [float_format(gpu), "fp8", "awq-int4"]


def kv_candidates(engine: str, gpu: GpuSpec) -> list[str]:
    if engine == "llama.cpp":
        return ["fp16", "q8_0"]
    return [float_format(gpu), "fp8"]


def compute_tflops(gpu: GpuSpec, fmt: str) -> float | None:
    """The dense tensor peak a format's matmuls run at: FP8 W8A8 at the fp8 peak where the GPU has one,
    INT4 (dequantised to fp16 in Marlin) and floats at the 16-bit peak."""
    if fmt == "fp8" and gpu.fp8 and gpu.fp8_dense_tflops:
        return gpu.fp8_dense_tflops
    return gpu.bf16_dense_tflops or gpu.fp16_dense_tflops

"""Load a real transformers causal LM (and its tokenizer) from what the user named: a local model folder,
a GGUF file (dequantised by transformers), the bundled Gemma 3 270M, or a hub id when online — with an
optional LoRA adapter and optional bitsandbytes quantization. The evaluator and the trainer share it.

Dequantising a GGUF through transformers takes ~40 s and ~2.6 GB for Gemma 3 270M, so the result is
saved once as a safetensors folder under QKV_HOME (keyed by the file's size and mtime) and later loads
take about a second."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from qkv.tools.errors import BadInput

Quantization = Literal["none", "nf4", "int8"]
# Names that mean "the GGUF qkv ships" (tests, pilots and the CLI default).
BUNDLED_ALIASES = ("gemma3-270m", "gemma-3-270m", "bundled")


def resolve_weights(ref: str, *, online: bool = False) -> Path | str:
    """A folder with config.json + weights, a .gguf path, or (online) a hub id; BadInput otherwise."""
    from qkv.tools.paths import bundled_gemma_gguf

    if ref.strip().lower() in BUNDLED_ALIASES:
        return bundled_gemma_gguf()
    path = Path(ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return ggufs[0]
        raise BadInput(f"folder {path} has neither config.json nor a .gguf file",
                       expected="a transformers model folder or a GGUF file")
    if path.exists():
        raise BadInput(f"{path} is not a model", expected="a transformers model folder or a .gguf file")
    if online and "/" in ref:
        return ref
    raise BadInput(
        f"cannot load weights for '{ref}'",
        expected="a local model folder, a .gguf file, 'gemma3-270m' (bundled) or, with --online, a hub id "
                 "(catalog names carry configs only, not weights)")


def dequantized_folder(gguf: Path) -> Path:
    """A transformers folder holding the GGUF dequantised to float32 (built once, atomically)."""
    from qkv.tools.paths import qkv_home

    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    target = qkv_home() / "hf-cache" / f"{gguf.stem}-{key}"
    if (target / "config.json").is_file() and (target / ".complete").is_file():
        return target
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time (parallel test workers, a TUI and a CLI run): the others wait, then reuse it.
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").is_file() and (target / ".complete").is_file():
            return target
        return _build_dequantized(gguf, target)


def _build_dequantized(gguf: Path, target: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # transformers raises many types for a bad file
        raise BadInput(f"transformers cannot load {gguf.name}: {exc}",
                       expected="a GGUF of an architecture transformers supports (llama, qwen2, gemma3, ...)") from None
    # transformers 5 dequantises GGUF weights to plain tensors but keeps a non-serialisable "gguf"
    # quantizer marker on the model; drop it so the float weights save as ordinary safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # atomic on one filesystem: a crash never leaves a half-written cache
    return target


def load_tokenizer(ref: str, *, online: bool = False):
    """The tokenizer that goes with `ref` (fast tokenizer where one exists)."""
    from transformers import AutoTokenizer

    src = resolve_weights(ref, online=online)
    folder = dequantized_folder(src) if isinstance(src, Path) and src.suffix == ".gguf" else src
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=not online)


def load_causal_lm(
    ref: str,
    *,
    adapter: str | None = None,
    dtype: str = "float32",
    quantization: Quantization = "none",
    attn_implementation: str | None = None,
    trainable_adapter: bool = False,
    online: bool = False,
) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode. `dtype` is the compute/storage dtype of unquantized weights;
    `quantization` loads linear layers through bitsandbytes (nf4 uses double quantization)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = resolve_weights(ref, online=online)
    folder = dequantized_folder(src) if isinstance(src, Path) and src.suffix == ".gguf" else src
    torch_dtype = _torch_dtype(dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": not online}
    kwargs["attn_implementation"] = attn_implementation or "sdpa"
    if quantization != "none":
        kwargs["quantization_config"] = _bnb_config(quantization, torch_dtype)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=not online)
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot load the model from {folder}: {exc}",
                       expected="a complete transformers model folder or a supported GGUF") from None
    if adapter:
        model = _attach_adapter(model, adapter, trainable=trainable_adapter)
    model.eval()
    return model, tok


def _torch_dtype(name: str):
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise BadInput(f"unknown dtype '{name}'", choices=sorted(table))
    return table[name]


def _bnb_config(quantization: Quantization, compute_dtype):
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise BadInput("quantized loading needs bitsandbytes",
                       expected="`pip install 'qkv[train]'` (bitsandbytes>=0.45)") from None
    if quantization == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def _attach_adapter(model, adapter: str, *, trainable: bool):
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise BadInput(f"{adapter} is not a PEFT adapter folder", expected="a folder with adapter_config.json")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(path), is_trainable=trainable)


def disable_bnb_cpu_repack(model) -> int:
    """Guard the bitsandbytes AVX512-BF16 trap (STACK-NOTES): an eval-mode no_grad forward on such a CPU
    repacks 4-bit weights, after which LoRA layers above them get no gradients. Returns layers patched."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n

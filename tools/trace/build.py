"""Build the real transformers model (with PEFT adapters where asked) on the `meta` device, then
give every parameter and buffer a fake CPU tensor: shapes, dtypes and autograd are real, no memory
proportional to the model is touched."""

from __future__ import annotations

from dataclasses import dataclass

from qkv.tools.arch import ModelSpec
from qkv.tools.errors import BadInput
from qkv.tools.memory.dtypes import trained_weight_bytes
from qkv.tools.memory.schema import MemoryRequest

ATTENTION_DROPOUT_KEYS = ("attn_pdrop", "attention_dropout", "attention_probs_dropout_prob")


@dataclass
class FakeModel:
    model: object  # torch.nn.Module
    fake_mode: object  # FakeTensorMode
    dtype: object  # torch.dtype of the base weights
    quantized_linear_params: int  # base linear weights that QLoRA holds in 4 bits (adjusted analytically)


def torch_dtype(req: MemoryRequest):
    import torch

    if req.method == "inference" and req.weights in ("fp32", "fp16", "bf16"):
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[req.weights]
    if trained_weight_bytes(req.precision) == 4:  # fp32, or AMP's fp32 master weights
        return torch.float32
    return torch.float16 if req.precision == "fp16" else torch.bfloat16


def _to_fake(model, fake_mode) -> None:
    """Replace each distinct parameter and buffer once (memoised by identity): replacing per module
    would untie tied embeddings and trace a second vocab × hidden matrix."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensor

    memo: dict[int, torch.Tensor] = {}

    def fake(t: torch.Tensor, param: bool) -> torch.Tensor:
        if id(t) not in memo:
            ft = FakeTensor(fake_mode, t, torch.device("cpu"))
            memo[id(t)] = torch.nn.Parameter(ft, requires_grad=t.requires_grad) if param else ft
        return memo[id(t)]

    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = fake(p, True)
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = fake(b, False)


def _cast_input(dtype):
    def hook(module, args):
        return (args[0].to(dtype), *args[1:])

    return hook


def build_fake_model(config: dict, spec: ModelSpec, req: MemoryRequest, lora_modules: frozenset[str]) -> FakeModel:
    """The model as the job would run it: dtype, attention kernel, adapters, checkpointing, train mode."""
    import torch
    import transformers
    from torch._subclasses.fake_tensor import FakeTensorMode

    from qkv.tools.params import model_class_name

    cfg = dict(config)
    model_type = cfg.pop("model_type")
    if req.attention != "eager":
        # CPU SDPA falls back to its math kernel (which stores seq × seq scores) whenever attention
        # dropout is on; CUDA's flash and memory-efficient kernels keep only the RNG state. Tracing
        # with attention dropout 0 gives the GPU's saved tensors.
        for key in ATTENTION_DROPOUT_KEYS:
            if key in cfg:
                cfg[key] = 0.0
    dtype = torch_dtype(req)
    attn = "eager" if req.attention == "eager" else "sdpa"  # flash-attn is CUDA-only; sdpa's CPU flash kernel
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
        auto = getattr(transformers, model_class_name(spec))
        with torch.device("meta"):
            model = auto.from_config(hf_config, dtype=dtype, attn_implementation=attn)
    except ValueError as exc:
        if "attention implementation" in str(exc):
            raise BadInput(f"transformers has no '{attn}' attention for {model_type}",
                           expected="--attention eager (what transformers runs for this model)") from None
        raise BadInput(f"cannot build '{model_type}' for tracing ({exc})",
                       expected="a config transformers can instantiate") from None
    except Exception as exc:  # transformers raises many types for configs it cannot build
        raise BadInput(f"cannot build '{model_type}' for tracing ({type(exc).__name__}: {exc})",
                       expected="a config transformers can instantiate") from None

    quantized = 0
    if req.method == "inference" and req.weights == "nf4":  # 4-bit weights: bytes adjusted analytically
        quantized = sum(m.weight.numel() for n, m in model.named_modules()
                        if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head"))
    if req.method in ("lora", "qlora"):
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise BadInput("tracing LoRA/QLoRA needs peft, which is not installed",
                           expected="`pip install 'qkv[train]'` (or trace --method full / inference)") from None

        if req.method == "qlora":
            linears = [m for n, m in model.named_modules()
                       if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")]
            quantized = sum(m.weight.numel() for m in linears)
            for m in linears:  # bitsandbytes' Linear4bit casts its input to the compute dtype
                m.register_forward_pre_hook(_cast_input(dtype))
            if req.kbit_fp32_upcast:  # prepare_model_for_kbit_training: non-quantised params to fp32
                for n, p in model.named_parameters():
                    owner = model.get_submodule(n.rsplit(".", 1)[0]) if "." in n else model
                    if not isinstance(owner, torch.nn.Linear) or n.startswith("lm_head") or ".lm_head" in n:
                        p.data = p.data.to(torch.float32)
        targets = sorted({m.split(".")[-1] for m in lora_modules})
        lora = LoraConfig(r=req.lora_r, lora_alpha=req.lora_alpha or req.lora_r, lora_dropout=req.lora_dropout,
                          target_modules=targets)
        model = get_peft_model(model, lora, autocast_adapter_dtype=req.adapter_dtype == "fp32")
        if req.adapter_dtype != "fp32":
            for n, p in model.named_parameters():
                if "lora_" in n:
                    p.data = p.data.to(torch_dtype(req.model_copy(update={"precision": req.adapter_dtype})))
    if req.grad_checkpointing:
        kwargs = {"use_reentrant": False}  # the non-reentrant kind HF recommends
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    fake_mode = FakeTensorMode(allow_non_fake_inputs=False)
    _to_fake(model, fake_mode)
    if req.method == "inference":
        model.eval()
    else:
        model.train()
    return FakeModel(model=model, fake_mode=fake_mode, dtype=dtype, quantized_linear_params=quantized)

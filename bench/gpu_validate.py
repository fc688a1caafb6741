"""GPU validation of the analytic estimator and the tracer: real training steps of random-weight
models built from catalog configs, measured by the CUDA caching allocator, beside both predictions.

    python bench/gpu_validate.py            # on a CUDA machine, ~3-5 min; writes a Markdown table
    python bench/gpu_validate.py --dry-run  # anywhere: analytic and traced columns only

Per setting: torch.cuda.max_memory_allocated and max_memory_reserved over the second (steady-state)
step, against the analytic allocated peak and the traced peak / modelled reserved. Ratios, not times.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from pathlib import Path

from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.trace.run import trace_memory

SETTINGS = [
    dict(model="qwen2.5-0.5b", method="full", seq=512),
    dict(model="qwen2.5-0.5b", method="lora", seq=1024),
    dict(model="qwen2.5-0.5b", method="qlora", seq=1024),
    dict(model="qwen2.5-0.5b", method="lora", seq=2048, grad_checkpointing=True),
    dict(model="tinyllama-1.1b", method="lora", seq=1024),
    dict(model="tinyllama-1.1b", method="qlora", seq=2048),
    dict(model="tinyllama-1.1b", method="full", seq=512, precision="bf16-mixed"),
    dict(model="gemma-3-270m", method="full", seq=1024),
    dict(model="gemma-3-270m", method="lora", seq=2048, attention="eager"),
    dict(model="smollm2-135m", method="inference", seq=4096, batch=4),
]


def measure_cuda(req: MemoryRequest) -> tuple[int, int]:
    """Two real steps on the GPU; the peaks of the second."""
    import torch
    import transformers

    from qkv.tools.arch import spec_from_config
    from qkv.tools.modelref import resolve_model
    from qkv.tools.params import model_class_name
    from qkv.tools.trace.build import torch_dtype

    resolved = resolve_model(req.model)
    spec = spec_from_config(resolved.config)
    cfg = dict(resolved.config)
    model_type = cfg.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
    auto = getattr(transformers, model_class_name(spec))
    attn = "eager" if req.attention == "eager" else "sdpa"
    dtype = torch_dtype(req)
    if req.method == "qlora":
        with tempfile.TemporaryDirectory() as tmp:
            auto.from_config(hf_config, dtype=torch.bfloat16).save_pretrained(tmp)
            bnb = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=req.quant_double,
                bnb_4bit_compute_dtype=torch.bfloat16)
            model = auto.from_pretrained(tmp, quantization_config=bnb, attn_implementation=attn, device_map="cuda")
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=req.grad_checkpointing)
    else:
        model = auto.from_config(hf_config, dtype=dtype, attn_implementation=attn).cuda()
    if req.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=req.lora_r, lora_alpha=req.lora_r, target_modules=list(
            spec.default_lora_targets)))
    if req.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids = torch.randint(0, spec.vocab, (req.batch, req.seq), device="cuda")
    autocast = req.precision.endswith("-mixed") or req.method == "qlora"
    if req.method == "inference":
        model.eval()
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
    else:
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, foreach=req.foreach)
        for step in (1, 2):
            if step == 2:
                torch.cuda.reset_peak_memory_stats()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            del loss
            opt.step()
            opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    result = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="skip the GPU; print predictions only")
    parser.add_argument("--out", type=Path, default=Path("gpu-validation.json"))
    args = parser.parse_args()
    rows = []
    print("| setting | analytic GB | traced GB | measured alloc GB | analytic/measured | traced/measured "
          "| modelled reserved GB | measured reserved GB |")
    print("|---|---|---|---|---|---|---|---|")
    for setting in SETTINGS:
        req = MemoryRequest(**setting)
        analytic = estimate_memory(req).allocated_bytes
        traced = trace_memory(req)
        alloc, reserved = (0, 0) if args.dry_run else measure_cuda(req)
        name = " ".join(f"{k}={v}" for k, v in setting.items())
        vs_analytic = f"{analytic / alloc:.3f}" if alloc else "—"
        vs_traced = f"{traced.peak_bytes / alloc:.3f}" if alloc else "—"
        print(f"| {name} | {analytic / 1e9:.3f} | {traced.peak_bytes / 1e9:.3f} | {alloc / 1e9:.3f} | "
              f"{vs_analytic} | {vs_traced} | {traced.reserved_bytes / 1e9:.3f} | "
              f"{reserved / 1e9:.3f} |", flush=True)
        rows.append(dict(setting=setting, analytic=analytic, traced=traced.peak_bytes,
                         modelled_reserved=traced.reserved_bytes, measured_allocated=alloc,
                         measured_reserved=reserved))
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

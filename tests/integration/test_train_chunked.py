"""The memory fixes of the trainer on the real Gemma 3 270M (262,144-token vocabulary, tied embeddings), CPU:

1. the chunked loss equals the model's own loss, and so do the gradients (LoRA; full fine-tuning with the tied
   embedding / LM head), within 1e-5 in fp32, with -100 labels (prompt tokens, padding);
2. one training step's peak RSS falls by what the estimator's formula predicts (±25%): the standard loss keeps
   T·V·4 B of fp32 log-probs plus T·V·8 B of gradients, the chunked one C·V·12 B plus T·hidden·4 B;
3. activation offloading runs and changes nothing on CPU;
4. QLoRA with method.upcast_non_quantised false keeps the embeddings / LM head in bf16 and trains;
5. the shipped pilot config with the new options runs through the Trainer, step for step equal to the standard
   loss (gradient accumulation included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qkv.tools.train.config import config_from_dict, load_config, to_yaml

pytestmark = [pytest.mark.slow, pytest.mark.llm]

ROOT = Path(__file__).parents[2]
TOL = 1e-5
VOCAB, HIDDEN = 262_144, 640  # Gemma 3 270M


@pytest.fixture(scope="module", autouse=True)
def home(training_home):
    yield


def _raw(tmp: Path, name: str, **over) -> dict:
    raw = {
        "model": {"name": "gemma3-270m"},
        "data": {"train": "bundled:licences-train.jsonl", "eval": "bundled:licences-heldout.jsonl",
                 "max_samples": 24, "max_eval_samples": 4},
        "method": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "optim": {"lr": 2e-3, "schedule": "constant"},
        "train": {"micro_batch": 2, "seq_len": 48, "max_steps": 2},
        "run": {"seed": 3, "eval_interval": 1000, "checkpoint_interval": 1000, "output_dir": str(tmp / name)},
    }
    for section, values in over.items():
        raw[section].update(values)
    return raw


@pytest.fixture(scope="module")
def lora_model(tmp_path_factory):
    from qkv.tools.train.model import load_for_training

    cfg = config_from_dict(_raw(tmp_path_factory.mktemp("m"), "m"))
    model, tok, _ = load_for_training(cfg)
    return model, tok


def _batch(tok):
    """Two rows of licence text (64 tokens, and 40 padded to 64), the first 8 labels of each -100 (a prompt)."""
    import torch

    from qkv.tools.train.data import bundled_dir

    text = " ".join(json.loads(line)["text"] for line in (bundled_dir() / "licences-train.jsonl").open())
    ids = torch.tensor(tok(text)["input_ids"][:128]).reshape(2, 64)
    mask = torch.ones_like(ids)
    mask[1, 40:] = 0
    ids = ids.masked_fill(mask == 0, tok.pad_token_id)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :8] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss_and_grads(model, batch, chunk: int | None, names: list[str], **kw):
    from qkv.tools.train.loss import causal_lm_loss

    model.zero_grad(set_to_none=True)
    loss = model(**batch, **kw).loss if chunk is None else causal_lm_loss(model, batch, chunk_tokens=chunk, **kw)
    loss.backward()
    params = dict(model.named_parameters())
    grads = {n: params[n].grad.detach().clone() for n in names}
    model.zero_grad(set_to_none=True)
    return float(loss.detach()), grads


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def test_chunked_equals_standard_lora_and_full_finetuning_with_tied_head(lora_model):
    import torch

    model, tok = lora_model
    batch = _batch(tok)
    lora = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(lora) == 18 * 2 * 2  # A and B of q_proj and v_proj in 18 layers
    std, g_std = _loss_and_grads(model, batch, None, lora)
    for chunk in (16, 40, 1000):  # 87 scored tokens: 6 chunks of <= 15, 3 of 29, 1
        got, g = _loss_and_grads(model, batch, chunk, lora)
        assert abs(got - std) <= TOL, (chunk, got, std)
        assert _max_diff(g, g_std) <= TOL, chunk
    assert all(float(g_std[n].abs().max()) > 0 for n in lora if "lora_B" in n)
    # the Trainer's normalisation over gradient accumulation: sum / num_items_in_batch
    n_items = torch.tensor(37)
    std_n, g_std_n = _loss_and_grads(model, batch, None, lora, num_items_in_batch=n_items)
    got_n, g_n = _loss_and_grads(model, batch, 16, lora, num_items_in_batch=n_items)
    assert abs(got_n - std_n) <= TOL and _max_diff(g_n, g_std_n) <= TOL

    # full fine-tuning: every weight trains, the LM head is the embedding matrix (tied)
    base = model.get_base_model()
    assert base.lm_head.weight is base.model.embed_tokens.weight
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        names = ["base_model.model.model.embed_tokens.weight", "base_model.model.model.norm.weight",
                 "base_model.model.model.layers.17.mlp.down_proj.weight",
                 "base_model.model.model.layers.0.self_attn.k_proj.weight", lora[-1]]
        std, g_std = _loss_and_grads(model, batch, None, names)
        got, g = _loss_and_grads(model, batch, 16, names)
    finally:
        for p in frozen:
            p.requires_grad_(False)
    assert abs(got - std) <= TOL
    assert _max_diff(g, g_std) <= TOL
    print(f"\nGemma 3 270M fp32: |loss diff| {abs(got - std):.2e}, max |grad diff| {_max_diff(g, g_std):.2e}")


def test_offload_activations_runs_and_changes_nothing_on_cpu(lora_model):
    from qkv.tools.train.loss import offload_context

    model, tok = lora_model
    batch = _batch(tok)
    lora = [n for n, p in model.named_parameters() if p.requires_grad]
    plain = _loss_and_grads(model, batch, None, lora)
    with offload_context(True, cuda=False):
        model.zero_grad(set_to_none=True)
        loss = model(**batch).loss
    loss.backward()
    params = dict(model.named_parameters())
    assert float(loss) == plain[0]
    assert all(bool((params[n].grad == plain[1][n]).all()) for n in lora)
    model.zero_grad(set_to_none=True)


def _probe(tmp: Path, name: str, loss: str, seq: int, chunk: int) -> dict:
    raw = _raw(tmp, name, data={"eval": None, "max_samples": None, "max_eval_samples": None, "eval_fraction": 0.05},
               train={"micro_batch": 1, "seq_len": seq, "loss": loss, "loss_chunk_tokens": chunk}, run={"threads": 2})
    path = tmp / f"{name}.yaml"
    path.write_text(to_yaml(config_from_dict(raw)))
    # glibc's dynamic mmap threshold would keep freed heap chunks of up to 32 MiB resident, several hundred MB
    # of slack that differs between runs; a fixed 1 MiB threshold returns every tensor's pages when it is freed,
    # so the peak RSS follows the live tensor bytes
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    out = subprocess.run([sys.executable, "-m", "qkv.tools.train.probe", str(path)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_falls_by_the_predicted_amount(tmp_path):
    seq, chunk = 1024, 128
    std = _probe(tmp_path, "standard", "standard", seq, chunk)
    chk = _probe(tmp_path, "chunked", "chunked", seq, chunk)
    assert std["peak_reset"] and chk["peak_reset"] and std["tokens"] == chk["tokens"] == seq
    assert abs(std["loss"] - chk["loss"]) <= 1e-4
    # the estimator's terms (tools/memory/train.py): standard = loss log-probs (saved) T·V·4 + loss gradients
    # (transient) T·V·8; chunked = loss chunk (transient) C·V·12 + loss input gradient (saved) T·hidden·4
    predicted = seq * VOCAB * 12 - (chunk * VOCAB * 12 + seq * HIDDEN * 4)
    measured = std["peak_bytes"] - chk["peak_bytes"]
    ratio = measured / predicted
    print(f"\npeak RSS standard {std['peak_bytes'] / 2**30:.3f} GiB, chunked {chk['peak_bytes'] / 2**30:.3f} GiB, "
          f"drop {measured / 2**30:.3f} GiB, predicted {predicted / 2**30:.3f} GiB, ratio {ratio:.3f}")
    assert 0.75 <= ratio <= 1.25, (measured, predicted)


def test_qlora_keeps_embeddings_in_bf16_without_the_upcast(tmp_path):
    import torch

    from qkv.tools.train.loss import causal_lm_loss
    from qkv.tools.train.model import load_for_training, lora_grad_norms, prepare_kbit, unquantised_bytes

    cfg = config_from_dict(_raw(tmp_path, "q", method={"kind": "qlora", "compute_dtype": "bfloat16",
                                                         "upcast_non_quantised": False}))
    model, tok, _ = load_for_training(cfg)
    base = model.get_base_model()
    assert base.model.embed_tokens.weight.dtype == torch.bfloat16 and base.lm_head.weight.dtype == torch.bfloat16
    kept = unquantised_bytes(model)
    assert set(kept) == {"bfloat16"} and kept["bfloat16"] >= VOCAB * HIDDEN * 2

    batch = _batch(tok)
    loss = causal_lm_loss(model, batch, chunk_tokens=16)  # chunked loss over the bf16 head
    loss.backward()
    assert torch.isfinite(loss) and all(g > 0 for n, g in lora_grad_norms(model).items() if "lora_B" in n)
    model.zero_grad(set_to_none=True)

    prepare_kbit(base, upcast=True, grad_checkpointing=False)  # peft's recipe on the same weights
    upcast = unquantised_bytes(model)
    assert set(upcast) == {"float32"} and upcast["float32"] == 2 * kept["bfloat16"]
    print(f"\nQLoRA unquantised weights: bf16 {kept['bfloat16'] / 2**20:.0f} MiB vs fp32 upcast "
          f"{upcast['float32'] / 2**20:.0f} MiB")


def test_chunked_pilot_preset_runs_and_matches_the_standard_loss(tmp_path):
    from qkv.tools.train.metrics import read_metrics
    from qkv.tools.train.pilot import pilot

    preset = load_config(ROOT / "configs/pilot-gemma3-270m-lora-chunked-cpu.yaml")
    assert preset.train.loss == "chunked" and preset.train.offload_activations

    def run(loss: str):
        cfg = preset.model_copy(update={
            "train": preset.train.model_copy(update={"loss": loss, "grad_accum": 2}),
            "run": preset.run.model_copy(update={"output_dir": str(tmp_path / loss), "eval_interval": 2}),
            "data": preset.data.model_copy(update={"max_eval_samples": 2})})
        result = pilot(cfg, 2, sample=24, progress=False, max_tokens=64)
        rows = read_metrics(tmp_path / loss / "metrics.jsonl")
        return result, [r for r in rows if "loss" in r], [r for r in rows if "eval_loss" in r]

    chunked, rows, evals = run("chunked")
    assert chunked.steps == 2 and [r["step"] for r in rows] == [1, 2] and len(evals) == 1
    assert any("backend torch (32 tokens per chunk)" in n for n in chunked.summary.notes)
    assert any("offload_activations: no effect on a CPU-only run" in n for n in chunked.summary.notes)
    assert chunked.summary.memory.request.loss_chunk == 32
    standard, std_rows, std_evals = run("standard")
    for a, b in zip(rows, std_rows, strict=True):  # dropout 0.05 included: same seed, same masks
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    assert evals[0]["eval_loss"] == pytest.approx(std_evals[0]["eval_loss"], abs=1e-4)
    assert chunked.after.token_ppl == pytest.approx(standard.after.token_ppl, rel=1e-3)


def test_the_12gb_8k_designs_config_runs_as_a_gemma_pilot(tmp_path):
    """Issue 18's acceptance: the design for 'QLoRA Llama-3.1-8B … RTX 3060 12GB … 8k tokens' fits, and its
    training config runs with every memory option it chose (QLoRA, bf16 embeddings, chunked loss, activation
    offload, checkpointing, 8-bit AdamW): only the weights, the data and the size of the run are swapped for
    the bundled Gemma 3 270M on CPU."""
    from qkv.agent.graph.api import DesignRequest, design
    from qkv.tools.train.pilot import pilot

    r = design(DesignRequest(task="QLoRA Llama-3.1-8B for customer support chat on an RTX 3060 12GB, "
                             "conversations up to 8k tokens", llm="none"), db_path=tmp_path / "s.sqlite")
    assert r.training_config.available, r.training_config.reason
    raw = r.training_config.config
    method, train = raw["method"], raw["train"]
    assert method["kind"] == "qlora" and method["upcast_non_quantised"] is False
    assert train["loss"] == "chunked" and train["grad_checkpointing"] and train["seq_len"] == 8192
    chosen = {k: train[k] for k in ("loss", "offload_activations", "grad_checkpointing", "micro_batch")}
    raw["model"].update(name="gemma3-270m", attention="sdpa")  # the catalog name carries no weights here
    raw["data"].update(train="bundled:licences-train.jsonl", eval="bundled:licences-heldout.jsonl",
                       format="text", max_samples=24, max_eval_samples=2)
    train.update(seq_len=64, loss_chunk_tokens=16, max_steps=2, grad_accum=2)
    raw["run"].update(output_dir=str(tmp_path / "run"), gpu=None, eval_interval=2, checkpoint_interval=2)
    cfg = config_from_dict(raw)
    assert {k: getattr(cfg.train, k) for k in chosen} == chosen
    result = pilot(cfg, 2, sample=24, progress=False, max_tokens=64)
    assert result.steps == 2
    assert result.after.token_ppl < result.before.token_ppl
    assert any("chunked linear cross-entropy" in n for n in result.summary.notes)

"""The chunked linear cross-entropy (train.loss: chunked) against torch's own cross-entropy on the full logits:
loss and gradients for hidden states and head weight (trainable, frozen, tied to an embedding), -100 labels,
soft-capping, chunk sizes that do not divide the tokens; the backend choice; activation offloading's
pass-through on CPU; and the config / preflight errors of the new training options. Small tensors only: the
real Gemma 3 270M comparisons are in tests/integration/test_train_chunked.py."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from qkv.tools.errors import BadInput  # noqa: E402
from qkv.tools.train import loss as L  # noqa: E402
from qkv.tools.train.config import config_from_dict  # noqa: E402

TOL = 1e-5


def _problem(n=53, hidden=24, vocab=311, seed=0, ignore_every=4):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=g)
    w = torch.randn(vocab, hidden, generator=g) * 0.3
    t = torch.randint(0, vocab, (n,), generator=g)
    t[::ignore_every] = L.IGNORE
    return h, w, t


def _reference(h, w, t, softcap=None):
    z = h @ w.t()
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return F.cross_entropy(z.float(), t, ignore_index=L.IGNORE, reduction="sum")


def _grads(fn, h, w, t, scale, **kw):
    h = h.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    out = fn(h, w, t, **kw)
    (out * scale).backward()
    return out.detach(), h.grad, w.grad


@pytest.mark.parametrize("chunk", [1, 7, 16, 1000])
@pytest.mark.parametrize("softcap", [None, 3.0])
def test_loss_and_gradients_equal_full_cross_entropy(chunk, softcap):
    h, w, t = _problem()
    scale = 1 / 41  # the Trainer divides the summed loss by the scored-token count
    ref = _grads(_reference, h, w, t, scale, softcap=softcap)
    got = _grads(L.chunked_linear_cross_entropy, h, w, t, scale, chunk_tokens=chunk, softcap=softcap)
    assert torch.allclose(got[0], ref[0], rtol=1e-6, atol=TOL)
    assert (got[1] - ref[1]).abs().max() <= TOL
    assert (got[2] - ref[2]).abs().max() <= TOL


def test_frozen_head_gets_no_gradient_and_no_grad_mode_stores_nothing():
    h, w, t = _problem()
    hh = h.clone().requires_grad_(True)
    out = L.chunked_linear_cross_entropy(hh, w, t, chunk_tokens=8)  # w frozen, as under LoRA
    out.backward()
    assert w.grad is None and hh.grad is not None
    with torch.no_grad():
        ev = L.chunked_linear_cross_entropy(h.requires_grad_(True), w, t, chunk_tokens=8)
    assert ev.grad_fn is None and torch.allclose(ev, out.detach())


def test_tied_embedding_gets_both_gradients():
    """Gemma ties lm_head to embed_tokens: the head's gradient adds to the embedding lookup's."""
    vocab, hidden = 97, 16
    ids = torch.randint(0, vocab, (3, 11), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, :4] = L.IGNORE
    grads = []
    for chunked in (False, True):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(vocab, hidden)
        h = torch.tanh(emb(ids)).reshape(-1, hidden)
        t = F.pad(labels, (0, 1), value=L.IGNORE)[:, 1:].reshape(-1)
        if chunked:
            loss = L.chunked_linear_cross_entropy(h, emb.weight, t, chunk_tokens=5) / (t != L.IGNORE).sum()
        else:
            loss = F.cross_entropy(h @ emb.weight.t(), t, ignore_index=L.IGNORE)
        loss.backward()
        grads.append(emb.weight.grad)
    assert (grads[0] - grads[1]).abs().max() <= TOL


def test_bf16_head_matches_autograd_in_bf16():
    h, w, t = _problem(vocab=128)
    w16 = w.to(torch.bfloat16)
    ref = _grads(lambda a, b, c: F.cross_entropy((a.to(b.dtype) @ b.t()).float(), c, reduction="sum"), h, w16, t, 1.0)
    got = _grads(L.chunked_linear_cross_entropy, h, w16, t, 1.0, chunk_tokens=9)
    assert torch.allclose(got[0], ref[0], rtol=1e-4)
    assert got[2].dtype == torch.bfloat16 and got[1].dtype == torch.float32
    assert (got[1] - ref[1]).abs().max() < 2e-2 * ref[1].abs().max()  # bf16 rounding of the same sums


def test_all_ignored_chunk_contributes_nothing():
    h, w, t = _problem(n=20)
    t[:10] = L.IGNORE
    full = L.chunked_linear_cross_entropy(h, w, t, chunk_tokens=10)
    assert torch.allclose(full, _reference(h, w, t), atol=TOL)


def test_chunk_must_be_positive():
    h, w, t = _problem(n=4)
    with pytest.raises(BadInput, match="loss_chunk_tokens"):
        L.chunked_linear_cross_entropy(h, w, t, chunk_tokens=0)


def test_backend_choice(monkeypatch):
    assert L.pick_backend("auto", cuda=False) == "torch"
    assert L.pick_backend("torch", cuda=True) == "torch"
    with pytest.raises(BadInput, match="only on CUDA"):
        L.pick_backend("liger", cuda=False)
    installed: set[str] = set()
    monkeypatch.setattr(L, "backend_installed", lambda name: name in installed)
    assert L.pick_backend("auto", cuda=True, head_dtype=torch.bfloat16) == "torch"
    with pytest.raises(BadInput, match="pip install cut-cross-entropy"):
        L.pick_backend("cut-cross-entropy", cuda=True)
    installed.update({"cut-cross-entropy", "liger"})
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # pre-Ampere: CCE refuses
    assert L.pick_backend("auto", cuda=True, head_dtype=torch.bfloat16) == "liger"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert L.pick_backend("auto", cuda=True, head_dtype=torch.bfloat16) == "cut-cross-entropy"
    assert L.pick_backend("auto", cuda=True, head_dtype=torch.float32) == "liger"  # CCE wants 16-bit weights
    assert L.pick_backend("liger", cuda=True) == "liger"


def test_offload_is_a_pass_through_on_cpu():
    """save_on_cpu(pin_memory=False) on CPU tensors hands the same tensors back: identical numbers, no copy."""
    lin = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    x = torch.randn(5, 8)
    results = []
    for enabled in (False, True):
        lin.zero_grad()
        with L.offload_context(enabled, cuda=False):
            y = lin(x).square().sum()
        y.backward()
        results.append((y.detach(), [p.grad.clone() for p in lin.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1], strict=True))
    assert type(L.offload_context(True, cuda=False)).__name__ == "save_on_cpu"


BASE = {"model": {"name": "gemma3-270m"}, "data": {"train": "x.jsonl"}}


@pytest.mark.parametrize(("over", "match"), [
    ({"train": {"loss": "chunkd"}}, r"train\.loss.*'standard' or 'chunked'"),
    ({"train": {"loss": "chunked", "loss_chunk_tokens": 0}}, r"train\.loss_chunk_tokens is 0"),
    ({"train": {"loss_backend": "liger"}}, r"loss_backend liger with train\.loss standard"),
    ({"train": {"loss": "chunked"}, "method": {"target_modules": ["q_proj", "lm_head"]}}, r"lm_head"),
    ({"method": {"kind": "lora", "upcast_non_quantised": False}}, r"upcast_non_quantised false with method\.kind"),
    ({"method": {"kind": "qlora", "upcast_non_quantised": False}}, r"compute_dtype float32"),
    ({"train": {"offload_activation": True}}, r"did you mean 'offload_activations'"),
])
def test_new_options_are_validated_with_the_key_named(over, match):
    with pytest.raises(BadInput, match=match):
        config_from_dict({**BASE, **over})


def test_new_options_accept_good_values():
    cfg = config_from_dict({**BASE, "train": {"loss": "chunked", "loss_chunk_tokens": 256, "offload_activations": True},
                            "method": {"kind": "qlora", "compute_dtype": "bfloat16", "upcast_non_quantised": False}})
    assert cfg.train.loss == "chunked" and cfg.train.loss_chunk_tokens == 256 and cfg.train.offload_activations
    assert cfg.method.upcast_non_quantised is False


def test_preflight_refuses_a_cuda_only_backend_on_cpu():
    from qkv.tools.train.preflight import check_environment

    cfg = config_from_dict({**BASE, "train": {"loss": "chunked", "loss_backend": "cut-cross-entropy"}})
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BadInput, match="runs only on CUDA"):
        check_environment(cfg)


def test_estimator_request_carries_the_new_options():
    from qkv.tools.train.summary import memory_request_for

    cfg = config_from_dict({**BASE, "train": {"loss": "chunked", "loss_chunk_tokens": 512, "offload_activations": True},
                            "method": {"kind": "qlora", "compute_dtype": "bfloat16", "upcast_non_quantised": False}})
    gpu = memory_request_for(cfg, cuda=True)
    assert gpu.loss_chunk == 512 and gpu.offload_activations and gpu.kbit_fp32_upcast is False
    assert memory_request_for(cfg, cuda=False).offload_activations is False  # a no-op without a GPU
    assert memory_request_for(config_from_dict(BASE), cuda=True).loss_chunk is None

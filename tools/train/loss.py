"""The causal-LM loss without the full (tokens x vocabulary) logits: chunked linear cross-entropy.

The standard path computes `logits = lm_head(h)` for every token, upcasts to fp32, takes log-softmax and,
in backward, the gradient of both: for Gemma 3's 262,144-token vocabulary that is 1 MiB of fp32 per token
per buffer, more than the whole rest of a small model's activations. `train.loss: chunked` instead runs
the body to its last hidden state `h` and computes the loss over the vocabulary `loss_chunk_tokens` tokens
at a time, never holding more than one chunk's logits.

Backends (`train.loss_backend`, picked by `pick_backend`):
- `cut-cross-entropy` (Apple's Cut Cross-Entropy, CUDA + Triton, Ampere or newer, 16-bit weights): never
  writes logits to GPU memory at all (blockwise in SRAM); the chunk size does not apply.
- `liger` (Liger-Kernel's fused linear cross-entropy, CUDA + Triton): chunks by its own heuristic.
- `torch` (here, every device): `ChunkedLinearCrossEntropy`, in the style of Liger's fused linear
  cross-entropy but in plain torch. Per chunk of C tokens it computes the logits (in the head weight's dtype,
  as `nn.Linear` would, then fp32), the loss and, in the same pass, the gradient with respect to the chunk's
  hidden states and the head weight; only grad_h (tokens x hidden) and grad_W (vocab x hidden, only when the
  head trains) are kept for backward, which just scales them. Logits and log-probs live in two C x V fp32
  buffers allocated once; the gradient is formed in place over the log-probs: ~8 C V bytes transient (the
  estimator's 12 C V is an upper bound). The log-probs come from the same log-softmax kernel as the standard
  loss, so the two agree to the rounding of the final sum (<= 5e-7 on Gemma 3 270M). Compute is the standard
  path's: one logits matmul, one for grad_h, one for grad_W — unlike a checkpointed per-chunk loss, which
  recomputes the logits matmul in backward (for Gemma 3 270M the LM head is ~60% of the model's FLOPs, so
  that would be ~25% more compute per step).

Only tokens whose label is not -100 are scored (prompt tokens under `prompt_response`, padding, the last
position of each row): their hidden rows are gathered first, so those tokens cost no logits either.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

from qkv.tools.errors import BadInput

IGNORE = -100
BACKENDS = ("auto", "torch", "cut-cross-entropy", "liger")
_MODULE = {"cut-cross-entropy": "cut_cross_entropy", "liger": "liger_kernel"}


def backend_installed(name: str) -> bool:
    return importlib.util.find_spec(_MODULE[name]) is not None


def pick_backend(requested: str, *, cuda: bool, head_dtype: Any = None) -> str:
    """The backend that runs: `auto` takes Cut Cross-Entropy on CUDA with a 16-bit head, then Liger on CUDA,
    else the plain-torch chunked loss (the only one that runs on CPU: both libraries are Triton kernels)."""
    if requested not in BACKENDS:
        raise BadInput(f"train.loss_backend {requested!r} is unknown", choices=BACKENDS)
    if requested == "torch":
        return "torch"
    if requested == "auto":
        if not cuda:
            return "torch"
        import torch

        half = head_dtype in (None, torch.bfloat16, torch.float16)
        if half and backend_installed("cut-cross-entropy") and torch.cuda.is_bf16_supported():  # Ampere+
            return "cut-cross-entropy"
        if backend_installed("liger"):
            return "liger"
        return "torch"
    if not cuda:
        raise BadInput(f"train.loss_backend {requested} runs only on CUDA (Triton kernels); this machine has no GPU",
                       expected="train.loss_backend: auto or torch (the plain-torch chunked loss runs everywhere)")
    if not backend_installed(requested):
        package = "cut-cross-entropy" if requested == "cut-cross-entropy" else "liger-kernel"
        raise BadInput(f"train.loss_backend {requested} needs the {package} package, which is not installed",
                       expected=f"`pip install {package}`, or train.loss_backend: auto / torch")
    return requested


def _chunk_forward(hidden, weight, targets, chunk: int, softcap: float | None, need_h: bool, need_w: bool):
    """(summed loss fp32, grad_h or None, grad_W fp32 or None) for d(sum of token losses).

    Per chunk: logits -> fp32 (buffer 1) -> torch.log_softmax into buffer 2 (the very kernel F.cross_entropy
    runs, so each token's loss is bit-for-bit the standard one's; its fp32 sum over a 262k vocabulary is
    itself ~1e-5 off an fp64 reference, and a different summation would disagree with the standard path by
    that much) -> softmax - one_hot in place in buffer 2 -> grad_h, grad_W. Both buffers are allocated once."""
    import torch

    n, vocab = hidden.shape[0], weight.shape[0]
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    grad_h = torch.empty_like(hidden) if need_h else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
    # equal chunks of at most `chunk` rows: no 1..7-row remainder, for which BLAS picks a small-M kernel whose
    # fp32 sums over the vocabulary (grad_h = g @ W reduces over V) are far less accurate (3e-4 relative seen)
    size = -(-n // -(-n // chunk)) if n else 1
    logits_buf = torch.empty((size, vocab), dtype=torch.float32, device=hidden.device)
    logp_buf = torch.empty_like(logits_buf)
    for start in range(0, n, size):
        h = hidden[start:start + size].to(weight.dtype)
        t = targets[start:start + size]
        rows = h.shape[0]
        z, logp = logits_buf[:rows], logp_buf[:rows]
        if weight.dtype == torch.float32:
            torch.mm(h, weight.t(), out=z)
        else:
            z.copy_(torch.mm(h, weight.t()))  # the logits nn.Linear gives, upcast as transformers' loss does
        if softcap is not None:  # logits = cap * tanh(z / cap), as Gemma 2's modeling code applies it
            z.div_(softcap).tanh_().mul_(softcap)
        torch.log_softmax(z, 1, out=logp)
        valid = t != IGNORE
        safe_t = torch.where(valid, t, 0)[:, None]
        total -= torch.where(valid, logp.gather(1, safe_t).squeeze(1), 0.0).sum()
        if not (need_h or need_w):
            continue
        # d loss / d logits = softmax - one_hot(target), zero on ignored rows; built in place over the log-probs
        g = logp.exp_()
        if bool(valid.all()):  # causal_lm_loss passes scored rows only: no mask pass over C x V
            g.scatter_add_(1, safe_t, torch.full_like(safe_t, -1, dtype=g.dtype))
        else:
            g.scatter_add_(1, safe_t, -valid.to(g.dtype)[:, None])
            g.mul_(valid.to(g.dtype)[:, None])
        if softcap is not None:  # through the cap: d(cap tanh(x/cap))/dx = 1 - (logits/cap)^2, formed in buffer 1
            g.mul_(z.div_(softcap).square_().neg_().add_(1.0))
        g_w = g if weight.dtype == torch.float32 else g.to(weight.dtype)
        if need_h:
            grad_h[start:start + rows] = torch.mm(g_w, weight).to(hidden.dtype)
        if need_w:
            grad_w.addmm_(g.t(), h.float())  # fp32 accumulation over chunks
    return total, grad_h, grad_w


def _function():
    import torch

    class ChunkedLinearCrossEntropy(torch.autograd.Function):
        """sum over tokens of CE(h @ W.T, target); gradients formed in forward, chunk by chunk."""

        @staticmethod
        def forward(ctx, hidden, weight, targets, chunk, softcap, need_h, need_w):
            with torch.autocast(hidden.device.type, enabled=False):
                total, grad_h, grad_w = _chunk_forward(hidden, weight, targets, chunk, softcap, need_h, need_w)
            if grad_w is not None:
                grad_w = grad_w.to(weight.dtype)
            ctx.save_for_backward(grad_h, grad_w)
            return total

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_out):
            grad_h, grad_w = ctx.saved_tensors  # None where that input needs no gradient
            if grad_h is not None:
                grad_h = grad_h * grad_out.to(grad_h.dtype)
            if grad_w is not None:
                grad_w.mul_(grad_out.to(grad_w.dtype))  # in place: used once (once_differentiable)
            return grad_h, grad_w, None, None, None, None, None

    return ChunkedLinearCrossEntropy


_FN = None


def chunked_linear_cross_entropy(hidden, weight, targets, *, chunk_tokens: int, softcap: float | None = None):
    """Sum over rows of cross-entropy(hidden @ weight.T, targets) (rows with target -100 skipped), computed
    `chunk_tokens` rows at a time. hidden (N, H), weight (V, H), targets (N,) -> fp32 scalar. Differentiable
    in hidden and weight (whichever requires grad)."""
    import torch

    global _FN
    if _FN is None:
        _FN = _function()
    if chunk_tokens <= 0:
        raise BadInput(f"train.loss_chunk_tokens is {chunk_tokens}", expected="a positive number of tokens")
    grad_on = torch.is_grad_enabled()
    need_h, need_w = grad_on and hidden.requires_grad, grad_on and weight.requires_grad
    return _FN.apply(hidden, weight, targets, int(chunk_tokens), softcap, need_h, need_w)


def _library_loss(backend: str, hidden, weight, targets, softcap: float | None):
    """Summed loss through Cut Cross-Entropy or Liger (CUDA only; never reached on CPU)."""
    hidden = hidden.to(weight.dtype)
    if backend == "cut-cross-entropy":
        from cut_cross_entropy import linear_cross_entropy

        return linear_cross_entropy(hidden, weight, targets, ignore_index=IGNORE, softcap=softcap,
                                    reduction="sum").float()
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    out = liger_fused_linear_cross_entropy(hidden, weight, targets, ignore_index=IGNORE, reduction="sum",
                                           softcap=softcap)
    return (out[0] if isinstance(out, tuple) else out).float()


def causal_lm_parts(model) -> tuple[Any, Any, float | None]:
    """(body returning last_hidden_state, lm_head nn.Linear, final-logit soft-cap) of a (peft-wrapped) causal LM.
    Refuses what the chunked loss would compute differently from the model's own forward."""
    import torch

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear:
        kind = type(head).__name__ if head is not None else "none"
        raise BadInput(f"train.loss chunked needs the model's LM head to be a plain nn.Linear (found {kind}; "
                       "a LoRA adapter on lm_head replaces it)",
                       expected="method.target_modules without lm_head, or train.loss: standard")
    if head.bias is not None:
        raise BadInput("train.loss chunked does not handle an LM head with a bias",
                       expected="train.loss: standard for this model")
    config = lm.config
    for odd in ("logit_scale", "logits_scaling", "output_multiplier_scale"):
        value = getattr(config, odd, None)
        if value not in (None, 1, 1.0):
            raise BadInput(f"{type(lm).__name__} scales its logits ({odd}={value}); the chunked loss does not",
                           expected="train.loss: standard for this model")
    body = lm.base_model
    if body is lm:
        raise BadInput(f"{type(lm).__name__} has no separate decoder body to run before the LM head",
                       expected="train.loss: standard for this model")
    return body, head, getattr(config, "final_logit_softcapping", None)


def causal_lm_loss(model, inputs: dict[str, Any], *, chunk_tokens: int, backend: str = "torch",
                   num_items_in_batch: Any = None):
    """The causal-LM loss of `inputs` (input_ids, labels, attention_mask, ...) as transformers computes it
    (labels shifted left, -100 ignored; sum / num_items_in_batch when given, else the mean over scored
    tokens), without materialising the full logits."""
    import torch

    body, head, softcap = causal_lm_parts(model)
    labels = inputs["labels"]
    shift = inputs.get("shift_labels")
    if shift is None:
        shift = torch.nn.functional.pad(labels, (0, 1), value=IGNORE)[..., 1:]
    forward = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels", "num_items_in_batch")}
    hidden = body(**forward, use_cache=False).last_hidden_state
    flat_t = shift.reshape(-1).to(hidden.device)
    keep = (flat_t != IGNORE).nonzero().squeeze(1)
    h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)
    t = flat_t.index_select(0, keep)
    if backend == "torch":
        total = chunked_linear_cross_entropy(h, head.weight, t, chunk_tokens=chunk_tokens, softcap=softcap)
    else:
        total = _library_loss(backend, h, head.weight, t, softcap)
    if num_items_in_batch is not None:
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch
    return total / keep.numel()  # the mean over scored tokens (NaN when none, as F.cross_entropy gives)


def offload_context(enabled: bool, *, cuda: bool):
    """`train.offload_activations`: tensors saved for backward go to host RAM (pinned on CUDA) and come back
    in backward — torch.autograd.graph.save_on_cpu. On a CPU-only run they already live in RAM, and with
    pin_memory off the hook hands back the same tensor: no copy, no saving, identical numbers."""
    if not enabled:
        return contextlib.nullcontext()
    import torch

    return torch.autograd.graph.save_on_cpu(pin_memory=cuda)

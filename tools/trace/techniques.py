"""The memory techniques of issue 18 as a traced step runs them: the trainer's chunked cross-entropy, torch's
save_on_cpu activation offload, and the optimizer step fused into backward (torchtune's optimizer_in_bwd).

Each runs the real library code on the fake tensors; where fake CPU tensors cannot express what a GPU run does,
the gap is bridged here and said so (see docs/memory-model.md §12):
- the chunked loss has one data-dependent branch (`bool(valid.all())`), which fake tensors cannot answer; the
  tracer passes only scored tokens, so the answer is True and `AllScored` gives it;
- save_on_cpu's pack hook copies a CUDA tensor to host RAM, and its unpack hook copies it back; on fake CPU
  tensors both are no-ops, so the pack hook's copy is booked as host memory and the unpack returns a fresh
  ("device") copy, as `.to("cuda")` does."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class AllScored(TorchDispatchMode):
    """Answers the chunked loss's `bool(valid.all())` with True: every target the tracer passes is scored."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default) \
                and args and args[0].dtype == torch.bool:
            return True
        return func(*args, **(kwargs or {}))


def chunked_loss(model, ids, chunk_tokens: int):
    """The causal-LM loss through qkv.tools.train.loss's chunked linear cross-entropy: the body's last hidden
    state, shifted as transformers shifts labels (the last position has no target), then the loss C tokens at
    a time. The same autograd Function the trainer runs; never the full (tokens × vocabulary) logits."""
    from qkv.tools.train.loss import causal_lm_parts, chunked_linear_cross_entropy

    body, head, softcap = causal_lm_parts(model)
    # The trainer passes use_cache=False; on fake tensors that makes transformers' mask code see a traced (fake)
    # cache position and build a seq × seq mask (masking_utils._ignore_causal_mask_sdpa), which a real run skips.
    # The default (a DynamicCache holding the k/v that SDPA saves anyway) adds no bytes and keeps the real path.
    hidden = body(input_ids=ids).last_hidden_state
    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    targets = ids[:, 1:].reshape(-1)
    with AllScored():
        total = chunked_linear_cross_entropy(h, head.weight, targets, chunk_tokens=chunk_tokens, softcap=softcap)
    return total / targets.numel()


def offload_hooks(tracker) -> Any:
    """torch.autograd.graph.save_on_cpu(pin_memory=True) as a CUDA run does it: the pack hook's host copy is
    counted as host RAM (tracker.host), the unpack hook's copy back is a new device tensor."""
    inner = torch.autograd.graph.save_on_cpu(pin_memory=True)

    def pack(t):
        with tracker.host():
            return inner.pack_hook(t)

    def unpack(packed):
        return inner.unpack_hook(packed).clone()  # .to("cuda"): a device copy, live while its node runs

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


class InBackward:
    """torchtune's optimizer_in_bwd: one optimizer per parameter, stepped by a post-accumulate-grad hook that
    then frees the gradient, so gradients never all live at once. step()/zero_grad() are no-ops for the loop."""

    def __init__(self, params: list, make) -> None:
        self.optimizers = {p: make([p]) for p in params}

        def hook(p) -> None:
            self.optimizers[p].step()
            self.optimizers[p].zero_grad(set_to_none=True)

        for p in params:
            p.register_post_accumulate_grad_hook(hook)

    @property
    def state(self) -> dict:
        return {p: s for opt in self.optimizers.values() for p, s in opt.state.items()}

    def step(self) -> None:
        pass

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

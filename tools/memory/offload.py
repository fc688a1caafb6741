"""Activation offload as torch.autograd.graph.save_on_cpu does it (what qkv's trainer runs for
`train.offload_activations`): every tensor autograd saves inside the context is copied to host RAM when it
is saved and copied back, for its own node only, when backward reaches that node.

Traced (tools/trace/techniques.py): between forward and backward the GPU keeps no saved activation, the
checkpointed layer inputs included (non-reentrant checkpointing keeps them as autograd saved tensors, so the
hook sees them); the host holds one copy per *saved reference*: a weight saved by its matmul is copied too, and a tensor
saved by two ops (the log-probs, by log_softmax and nll_loss) is copied twice."""

from __future__ import annotations

from qkv.tools.arch import ModelSpec
from qkv.tools.inventory import TensorGroup
from qkv.tools.memory.dtypes import count
from qkv.tools.memory.schema import MemoryRequest, MemoryTerm

HOST = " (host RAM)"


def offloaded(term: MemoryTerm, req: MemoryRequest) -> MemoryTerm:
    """A saved-activation term as it is during the peak: on the GPU, or wholly in host RAM under offload (the
    name then ends in HOST, and estimate_training moves it out of the GPU's sum)."""
    if not req.offload_activations:
        return term
    return term.model_copy(update={
        "name": term.name + HOST,
        "note": "save_on_cpu: copied to host RAM when saved, back to the GPU only while its own backward node runs"})


def host_copies(spec: ModelSpec, req: MemoryRequest, groups: list[TensorGroup], loss_logprobs: int) -> list[MemoryTerm]:
    """Host RAM save_on_cpu needs beyond the activations: the weights the matmuls save for the input gradient,
    and the loss log-probs' second copy."""
    a = 4.0 if req.precision == "fp32" else 2.0
    if req.method == "qlora":
        # bitsandbytes' MatMul4Bit keeps its packed weight in ctx.tensors, which no saved-tensor hook sees:
        # only the 16-bit (autocast) LM head weight is saved through autograd.
        weights = spec.vocab * spec.hidden * 2.0 if spec.kind != "encoder" else 0.0
        what = f"LM head {spec.vocab:,} × {spec.hidden} × 2 B"
    else:
        # Under checkpointing the layers' matmuls save inside the checkpoint, whose own hooks take precedence:
        # only what runs outside it (the LM head) is copied.
        linear = 0 if req.grad_checkpointing else sum(g.numel for g in groups if g.is_linear)
        head = spec.vocab * spec.hidden if spec.kind != "encoder" else 0
        weights = (linear + head) * a
        what = f"{count(linear + head)} linear and LM-head weights × {a:g} B"
    terms = [MemoryTerm(name="weights saved by matmuls" + HOST, bytes=int(weights),
                        formula=what, note="save_on_cpu copies every saved tensor, parameters included")]
    tokens = req.batch * req.seq
    if spec.family == "llama":
        # RMSNorm's fp32 input is saved by pow and by the multiply: packed twice. Inside the layers only without
        # checkpointing (the checkpoint's own hooks save there); the final norm always.
        width = spec.hidden * spec.norms_per_layer + ((spec.q_dim + spec.kv_dim) if spec.qk_norm else 0)
        per_token = (0 if req.grad_checkpointing else spec.layers * width) + spec.hidden
        terms.append(MemoryTerm(name="RMSNorm inputs, second copy" + HOST, bytes=int(tokens * per_token * 4),
                                formula=f"{count(tokens)} tokens × {count(per_token)} norm inputs × 4 B (saved by "
                                        "pow and by mul: packed twice)"))
    if loss_logprobs:
        # Still counted on the GPU as well: backward unpacks them at its first nodes, with the loss gradients.
        terms.append(MemoryTerm(name="loss log-probs, two copies" + HOST, bytes=2 * loss_logprobs,
                                formula=f"2 × {count(loss_logprobs)} B: saved by log_softmax and by nll_loss, packed "
                                        "once each"))
    return terms

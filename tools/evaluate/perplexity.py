"""Perplexity of a loaded transformers causal LM over a text: strided sliding windows (windows.py), token
perplexity plus the tokenizer-independent bits per byte and word perplexity (lm-eval-harness definitions).

Token perplexities of two different tokenizers are NOT comparable (a tokenizer that cuts text into more,
easier tokens gets a lower token perplexity for the same model quality); compare bits per byte instead."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.evaluate.schema import PerplexityResult
from qkv.tools.evaluate.windows import check_length, plan_windows, summary_numbers

Progress = Callable[[int, int], None]  # called as progress(windows_done, windows_total)

METHOD_NOTE = ("strided sliding window (HF 'Perplexity of fixed-length models'); every token after BOS scored "
               "once; bits/byte = NLL/bytes/ln2 and word ppl = exp(NLL/words) per lm-eval-harness")
TOKENIZER_NOTE = "token perplexity depends on the tokenizer: compare bits per byte across tokenizers"


def with_bos(ids: list[int], bos: int | None) -> tuple[list[int], bool]:
    """The ids with BOS first when the model has one (then every text token is scored); both backends
    apply this one rule so they score the same tokens with the same contexts."""
    if bos is None or bos < 0:
        return ids, False
    return (ids if ids and ids[0] == bos else [bos, *ids]), True


def tokenize_for_scoring(tokenizer, text: str) -> tuple[list[int], bool]:
    """Token ids of a transformers tokenizer, BOS first when it has one."""
    return with_bos(list(tokenizer(text, add_special_tokens=True)["input_ids"]),
                    getattr(tokenizer, "bos_token_id", None))


def perplexity_of(
    model,
    tokenizer,
    text: str,
    *,
    window: int = 512,
    stride: int | None = None,
    progress: Progress | None = None,
    allow_short: bool = False,
    max_tokens: int | None = None,
    label: str = "",
) -> PerplexityResult:
    """Strided perplexity of `text` under an already-loaded transformers causal LM (mode restored after).

    stride defaults to window // 2; stride == window gives non-overlapping windows (less context per
    token, so a higher perplexity). A text shorter than one window raises BadInput unless allow_short."""
    import torch

    if not text or not text.strip():
        raise BadInput("the text to score is empty", expected="a non-empty UTF-8 text")
    ids, bos_added = tokenize_for_scoring(tokenizer, text)
    notes = [METHOD_NOTE, TOKENIZER_NOTE]
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[:max_tokens]
        text = tokenizer.decode(ids[1:] if bos_added else ids, skip_special_tokens=True)
        notes.append(f"text truncated to its first {max_tokens} tokens")
    max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if max_pos and window > max_pos:
        raise ContextExceeded(f"window {window} exceeds the model's context of {max_pos} tokens",
                              expected=f"--window <= {max_pos}")
    used_window = check_length(len(ids), window, allow_short=allow_short)
    if used_window != window:
        notes.append(f"text shorter than the window: window shrunk to {used_window} tokens")
    stride = min(stride or max(used_window // 2, 1), used_window)
    spans = plan_windows(len(ids), used_window, stride)
    if not bos_added:
        notes.append("tokenizer has no BOS: the first token is not scored")

    _guard_bnb(model)
    device = _device(model)
    nll = 0.0
    with _eval_mode(model), torch.no_grad():
        for k, span in enumerate(spans):
            window_ids = torch.tensor([ids[span.begin:span.end]], device=device)
            lo, hi = span.rows
            logits = _logits_tail(model, window_ids, keep=window_ids.shape[1] - lo)
            # logits: [keep, vocab]; row r of the tail is absolute row lo + r of the window
            rows = logits[: hi - lo].float()
            targets = torch.tensor(ids[span.first:span.last + 1], device=device)
            nll += float(torch.nn.functional.cross_entropy(rows, targets, reduction="sum"))
            if progress:
                progress(k + 1, len(spans))
    tokens = sum(s.last - s.first + 1 for s in spans)
    n_bytes, words = len(text.encode("utf-8")), len(text.split())
    return PerplexityResult(
        model=label or _model_name(model), backend="transformers", tokens=tokens, nll_sum_nats=nll,
        bytes=n_bytes, words=words, window=used_window, stride=stride, windows=len(spans), bos_added=bos_added,
        tokenizer=f"{type(tokenizer).__name__} ({len(tokenizer):,} tokens)", notes=notes,
        **summary_numbers(nll, tokens, n_bytes, words))


def _logits_tail(model, input_ids, *, keep: int):
    """Logits of the last `keep` positions, [keep, vocab] (logits_to_keep avoids a full-vocab projection of
    rows that score nothing; models without that argument compute all rows)."""
    try:
        out = model(input_ids=input_ids, logits_to_keep=keep, use_cache=False)
    except TypeError:
        out = model(input_ids=input_ids, use_cache=False)
    logits = out.logits[0]
    return logits[-keep:]


@contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _guard_bnb(model) -> None:
    """bitsandbytes 4-bit on AVX512-BF16 CPUs: an eval no_grad forward repacks weights and breaks later
    LoRA training (STACK-NOTES); switch the repack off before any forward here."""
    if any(type(m).__name__ == "Linear4bit" for m in model.modules()):
        from qkv.tools.hf_models import disable_bnb_cpu_repack

        disable_bnb_cpu_repack(model)


def _device(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        import torch

        return torch.device("cpu")


def _model_name(model) -> str:
    cfg = getattr(model, "config", None)
    return str(getattr(cfg, "_name_or_path", "") or getattr(cfg, "model_type", "") or type(model).__name__)


def compare_perplexities(results: list[PerplexityResult]) -> list[str]:
    """Notes for a report comparing several perplexity results: which measure is comparable, and why.
    Token perplexity is only comparable when every result used the same tokenizer (and text)."""
    if len(results) < 2:
        return []
    notes = []
    tokenizers = {r.tokenizer for r in results}
    if len(tokenizers) > 1:
        best = min(results, key=lambda r: r.bits_per_byte)
        notes.append("token perplexities are NOT comparable across these tokenizers (" + "; ".join(sorted(tokenizers))
                     + f"): compare bits per byte instead (lowest: {best.model}, {best.bits_per_byte:.4f})")
    if len({r.bytes for r in results}) > 1:
        notes.append("the results scored different texts (byte counts differ): no measure is comparable")
    if len({(r.window, r.stride) for r in results}) > 1:
        notes.append("window/stride differ between results: a smaller stride gives more context and lower perplexity")
    return notes

"""Perplexity of a GGUF model through llama-cpp, with the same window plan and the same BOS rule as the
transformers path (perplexity.py), so the two backends score the same tokens with the same contexts.

llama.cpp returns raw logits per position (logits_all=True); the log-softmax is done here in float64."""

from __future__ import annotations

from pathlib import Path

from qkv.tools.errors import BadInput
from qkv.tools.evaluate.perplexity import METHOD_NOTE, TOKENIZER_NOTE, Progress, with_bos
from qkv.tools.evaluate.schema import PerplexityResult
from qkv.tools.evaluate.windows import check_length, plan_windows, summary_numbers


def open_llama(path: str | Path, *, n_ctx: int, n_threads: int | None = None):
    """A llama_cpp.Llama that keeps the logits of every position (needed to score all tokens)."""
    try:
        import llama_cpp
    except ImportError:
        raise BadInput("the llama-cpp backend needs llama-cpp-python",
                       expected="`pip install 'qkv[local]'`, or --backend transformers") from None
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"GGUF file {path} not found", expected="an existing .gguf file")
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                               verbose=False, n_threads=n_threads)
    except (ValueError, RuntimeError) as exc:
        raise BadInput(f"llama.cpp cannot load {path.name}: {exc}", expected="a valid GGUF model file") from None


def tokenize_gguf(llm, text: str) -> tuple[list[int], bool]:
    """Token ids with BOS first (llama.cpp adds it when the vocabulary asks; we make sure it is there)."""
    return with_bos(list(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)), llm.token_bos())


def perplexity_gguf(
    path: str | Path,
    text: str,
    *,
    window: int = 512,
    stride: int | None = None,
    progress: Progress | None = None,
    allow_short: bool = False,
    max_tokens: int | None = None,
    n_threads: int | None = None,
    llm=None,
) -> PerplexityResult:
    """Strided perplexity of `text` under a GGUF model run by llama.cpp (pass `llm` to reuse a loaded one;
    its n_ctx must be >= window)."""
    if not text or not text.strip():
        raise BadInput("the text to score is empty", expected="a non-empty UTF-8 text")
    if llm is None:
        llm = open_llama(path, n_ctx=window, n_threads=n_threads)
        try:
            return perplexity_gguf(path, text, window=window, stride=stride, progress=progress,
                                   allow_short=allow_short, max_tokens=max_tokens, llm=llm)
        finally:
            llm.close()  # free llama.cpp's context now, not in a finaliser at interpreter exit
    if llm.n_ctx() < window:
        raise BadInput(f"the loaded model has n_ctx {llm.n_ctx()} < window {window}",
                       expected="a Llama created with n_ctx >= window")
    train_ctx = getattr(getattr(llm, "_model", None), "n_ctx_train", lambda: None)()
    if train_ctx and window > train_ctx:
        from qkv.tools.errors import ContextExceeded

        raise ContextExceeded(f"window {window} exceeds the model's training context of {train_ctx} tokens",
                              expected=f"--window <= {train_ctx}")
    ids, bos_added = tokenize_gguf(llm, text)
    notes = [METHOD_NOTE, TOKENIZER_NOTE]
    if max_tokens is not None and len(ids) > max_tokens:
        ids = ids[:max_tokens]
        text = llm.detokenize(ids[1:] if bos_added else ids).decode("utf-8", errors="replace")
        notes.append(f"text truncated to its first {max_tokens} tokens")
    used_window = check_length(len(ids), window, allow_short=allow_short)
    if used_window != window:
        notes.append(f"text shorter than the window: window shrunk to {used_window} tokens")
    stride = min(stride or max(used_window // 2, 1), used_window)
    spans = plan_windows(len(ids), used_window, stride)
    if not bos_added:
        notes.append("model has no BOS: the first token is not scored")

    nll = 0.0
    for k, span in enumerate(spans):
        llm.reset()
        llm.eval(ids[span.begin:span.end])
        lo, hi = span.rows
        nll += _nll_rows(llm.scores[lo:hi], ids[span.first:span.last + 1])
        if progress:
            progress(k + 1, len(spans))
    tokens = sum(s.last - s.first + 1 for s in spans)
    n_bytes, words = len(text.encode("utf-8")), len(text.split())
    return PerplexityResult(
        model=str(path), backend="llama-cpp", tokens=tokens, nll_sum_nats=nll, bytes=n_bytes, words=words,
        window=used_window, stride=stride, windows=len(spans), bos_added=bos_added,
        tokenizer=f"llama.cpp vocabulary ({llm.n_vocab():,} tokens)", notes=notes,
        **summary_numbers(nll, tokens, n_bytes, words))


def _nll_rows(logits, targets: list[int], chunk: int = 64) -> float:
    """−Σ log softmax(logits[i])[targets[i]] in float64, chunked to bound memory (vocab can be 262k)."""
    import numpy as np

    total = 0.0
    for i in range(0, len(targets), chunk):
        block = np.asarray(logits[i:i + chunk], dtype=np.float64)
        top = block.max(axis=1, keepdims=True)
        lse = np.log(np.exp(block - top).sum(axis=1)) + top[:, 0]
        picked = block[np.arange(block.shape[0]), targets[i:i + chunk]]
        total += float((lse - picked).sum())
    return total

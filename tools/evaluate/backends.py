"""One handle over the two ways qkv runs a model for evaluation: transformers (a model folder, a GGUF
dequantised by transformers, an optional LoRA adapter) and llama.cpp (a GGUF as it is). Both score text with
the same strided method and generate with the same SamplingPolicy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qkv.tools.errors import BadInput, QkvError
from qkv.tools.evaluate.perplexity import Progress
from qkv.tools.evaluate.schema import PerplexityResult
from qkv.tools.sampling import SamplingPolicy


def resolve_backend(model: str, backend: str, adapter: str | None) -> str:
    """auto → llama-cpp for a GGUF (or the bundled alias) without an adapter, transformers otherwise."""
    if backend != "auto":
        if backend == "llama-cpp" and adapter:
            raise BadInput("a LoRA adapter needs the transformers backend", expected="--backend transformers")
        return backend
    from qkv.tools.hf_models import BUNDLED_ALIASES

    is_gguf = model.strip().lower() in BUNDLED_ALIASES or model.endswith(".gguf") or (
        Path(model).is_dir() and not (Path(model) / "config.json").is_file() and any(Path(model).glob("*.gguf")))
    return "llama-cpp" if is_gguf and not adapter else "transformers"


class EvalModel:
    """A loaded model for scoring and generation. Use as a context manager (frees llama.cpp contexts)."""

    def __init__(self, model: str, *, backend: str = "auto", adapter: str | None = None, window: int = 512) -> None:
        self.ref = model
        self.backend = resolve_backend(model, backend, adapter)
        self.adapter = adapter
        self.window = window
        self._hf: tuple[Any, Any] | None = None
        self._llama = None  # scoring context (logits_all, n_ctx = window)
        self._gen = None  # generation backend (qkv.tools.llm)
        if self.backend == "transformers":
            from qkv.tools.hf_models import load_causal_lm, resolve_weights

            resolve_weights(model)  # a missing model fails here, before transformers is imported
            try:
                self._hf = load_causal_lm(model, adapter=adapter)
            except QkvError:
                raise
            except Exception as exc:  # a broken folder can fail deep inside transformers
                raise BadInput(f"cannot load model '{model}': {type(exc).__name__}: {exc}",
                               expected="a transformers model folder, a .gguf file or 'gemma3-270m'") from None
        else:
            self.path = self._gguf_path(model)

    @staticmethod
    def _gguf_path(model: str) -> Path:
        from qkv.tools.hf_models import resolve_weights

        src = resolve_weights(model)
        if not (isinstance(src, Path) and src.suffix == ".gguf"):
            raise BadInput(f"'{model}' is not a GGUF model", expected="--backend transformers for a model folder")
        with src.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise BadInput(f"{src} is not a GGUF file (bad magic bytes)", expected="a llama.cpp GGUF model file")
        return src

    @classmethod
    def from_loaded(cls, model, tokenizer, *, label: str = "") -> EvalModel:
        """Wrap an already-loaded transformers (model, tokenizer) pair (trainer, tests)."""
        self = cls.__new__(cls)
        self.ref, self.backend, self.adapter, self.window = label or "loaded model", "transformers", None, 512
        self._hf, self._llama, self._gen = (model, tokenizer), None, None
        return self

    @property
    def name(self) -> str:
        return self.ref + (f" + adapter {self.adapter}" if self.adapter else "")

    # ------------------------------------------------------------------------------------------ scoring
    def perplexity(self, text: str, *, window: int | None = None, stride: int | None = None,
                   allow_short: bool = False, max_tokens: int | None = None,
                   progress: Progress | None = None) -> PerplexityResult:
        window = window or self.window
        if self._hf is not None:
            from qkv.tools.evaluate.perplexity import perplexity_of

            model, tok = self._hf
            return perplexity_of(model, tok, text, window=window, stride=stride, allow_short=allow_short,
                                 max_tokens=max_tokens, progress=progress, label=self.name)
        from qkv.tools.evaluate.perplexity_gguf import open_llama, perplexity_gguf

        if self._llama is None or self._llama.n_ctx() < window:
            if self._llama is not None:
                self._llama.close()
            self._llama = open_llama(self.path, n_ctx=window)
        return perplexity_gguf(self.path, text, window=window, stride=stride, allow_short=allow_short,
                               max_tokens=max_tokens, progress=progress, llm=self._llama)

    # --------------------------------------------------------------------------------------- generation
    def generate(self, prompt: str, policy: SamplingPolicy, *, force: bool = False) -> str:
        """Continue `prompt` under a bounded policy (hard rule 3); returns only the new text."""
        policy.ensure_bounded(force=force)
        if self._hf is not None:
            return _hf_generate(*self._hf, prompt, policy)
        if self._gen is None:
            from qkv.tools.llm.base import open_backend

            self._gen = open_backend("local", model=str(self.path))
        return self._gen.complete(prompt, policy).text

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
        if self._gen is not None:
            self._gen.close()
            self._gen = None

    def __enter__(self) -> EvalModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def generation_kwargs(policy: SamplingPolicy) -> dict[str, Any]:
    """SamplingPolicy → transformers GenerationConfig fields, every knob explicit (no model default leaks in)."""
    kw: dict[str, Any] = {"max_new_tokens": policy.max_new_tokens, "repetition_penalty": policy.repetition_penalty,
                          "num_beams": policy.num_beams}
    if policy.mode == "beam":
        kw.update(do_sample=False, length_penalty=policy.length_penalty, early_stopping=True)
    elif policy.mode == "greedy":
        kw.update(do_sample=False)
    else:
        kw.update(do_sample=True, temperature=policy.temperature, top_p=policy.top_p, top_k=policy.top_k)
        if policy.min_p:
            kw["min_p"] = policy.min_p
    return kw


def _hf_generate(model, tok, prompt: str, policy: SamplingPolicy) -> str:
    import torch
    from transformers import GenerationConfig

    from qkv.tools.evaluate.perplexity import _eval_mode, _guard_bnb

    kw = generation_kwargs(policy)
    gen_cfg = GenerationConfig(**kw, bos_token_id=tok.bos_token_id,
                               eos_token_id=model.generation_config.eos_token_id,
                               pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    if policy.stop:
        gen_cfg.stop_strings = list(policy.stop)
    enc = tok(prompt, return_tensors="pt")
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and enc["input_ids"].shape[1] + (policy.max_new_tokens or 0) > max_pos:
        from qkv.tools.errors import ContextExceeded

        raise ContextExceeded(f"prompt ({enc['input_ids'].shape[1]} tokens) + max_new_tokens exceeds the "
                              f"model's {max_pos}-token window", expected="a shorter prompt or fewer new tokens")
    if policy.seed is not None:
        torch.manual_seed(policy.seed)
    _guard_bnb(model)
    device = next(model.parameters()).device
    with _eval_mode(model), torch.no_grad():
        out = model.generate(**{k: v.to(device) for k, v in enc.items()}, generation_config=gen_cfg,
                             tokenizer=tok if policy.stop else None)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    for s in policy.stop:  # stop strings are not part of the output (SamplingPolicy contract)
        cut = text.find(s)
        if cut >= 0:
            text = text[:cut]
    return text

"""The `local` backend: llama-cpp-python over any GGUF file, in this process.

The prompt is tokenized here (the model's own tokenizer) and handed to llama.cpp as token ids, so the
count the context guard checked is exactly what the model sees. Chat prompts are rendered with the
GGUF's own template (chat.py). JSON-constrained output uses a GBNF grammar built from the JSON schema."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from qkv.tools.errors import BadInput
from qkv.tools.llm.base import BackendError, Generation, GenerationStream
from qkv.tools.llm.chat import ChatTemplate, Rendered, template_from_metadata
from qkv.tools.llm.guard import GuardPolicy, fit_messages, fit_text, gate_policy, output_reserve
from qkv.tools.sampling import SamplingPolicy

DEFAULT_N_CTX = 4096  # enough for the agent's prompts; a 32k KV cache would cost ~0.6 GB for Gemma 3 270M
SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct", "default")
GEMMA_ALIASES = ("gemma3-270m", "gemma-3-270m", "gemma", "bundled")


def resolve_gguf(model: str | None) -> Path:
    """A GGUF path from a path or a bundled alias (default: SmolLM2-135M-Instruct); BadInput when the file
    is missing or is not a GGUF (checked by its magic bytes before llama.cpp sees it)."""
    from qkv.tools.paths import bundled_gemma_gguf, bundled_smollm2_gguf

    key = (model or "default").strip().lower()
    if key in SMOLLM2_ALIASES:
        return bundled_smollm2_gguf()
    if key in GEMMA_ALIASES:
        return bundled_gemma_gguf()
    path = Path(model).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if not found:
            raise BadInput(f"folder {path} holds no .gguf file", expected="a GGUF file or a folder with one")
        path = found[0]
    if not path.is_file():
        raise BadInput(f"GGUF file {path} does not exist",
                       expected="a path to a .gguf file, or a bundled model",
                       choices=[SMOLLM2_ALIASES[0], GEMMA_ALIASES[0]])
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise BadInput(f"{path} is not a GGUF file (starts with {magic!r}, not b'GGUF')",
                       expected="a llama.cpp GGUF model file")
    return path


def _load(path: Path, n_ctx: int, n_threads: int | None):
    try:
        import llama_cpp
    except ImportError as exc:
        raise BadInput("llama-cpp-python is not installed",
                       expected="`pip install 'qkv[local]'` (compiles llama.cpp, ~10 min on 2 cores)") from exc
    from llama_cpp._utils import suppress_stdout_stderr

    try:
        # verbose=False still lets llama.cpp print a few context-creation lines (Gemma's SWA cache note)
        # straight to fd 2; silence them so `qkv generate` output is only the answer and qkv's own notes.
        with suppress_stdout_stderr(disable=False):
            return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                   n_threads_batch=n_threads, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise BadInput(f"llama.cpp cannot load {path.name}: {exc}",
                       expected="an intact GGUF file of an architecture llama.cpp supports") from None


def sampling_kwargs(policy: SamplingPolicy) -> dict[str, Any]:
    """SamplingPolicy → llama-cpp-python's create_completion arguments (every knob set explicitly, so no
    llama.cpp default such as min_p=0.05 applies behind the policy's back)."""
    if policy.num_beams > 1:
        raise BadInput("beam search is not available in the llama.cpp backend",
                       expected="num_beams 1 (greedy or sampling)")
    return {
        "temperature": policy.temperature,
        "top_p": policy.top_p,
        "top_k": policy.top_k,
        "min_p": policy.min_p,
        "typical_p": 1.0,
        "repeat_penalty": policy.repetition_penalty,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "stop": list(policy.stop),
        "seed": policy.seed,
    }


def grammar_for(response_format: dict | None):
    """A llama.cpp GBNF grammar for `{"type": "json_object", "schema": S}`, OpenAI's
    `{"type": "json_schema", "json_schema": {"schema": S}}`, or bare `{"type": "json_object"}` (any JSON)."""
    if not response_format or response_format.get("type") == "text":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
    elif kind == "json_object":
        schema = response_format.get("schema")
    else:
        raise BadInput(f"unknown response_format type {kind!r}", choices=["text", "json_object", "json_schema"])
    if schema is None:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(schema))
    # llama-cpp-python's schema converter lets raw control characters (a newline...) into JSON strings,
    # which strict JSON forbids; use upstream llama.cpp's character class instead.
    gbnf = gbnf.replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')
    return LlamaGrammar.from_string(gbnf, verbose=False)


class LocalBackend:
    """llama.cpp in-process. One model per backend; calls are serialised by a lock (llama.cpp contexts are
    not thread-safe)."""

    kind = "local"

    def __init__(self, model: str | None = None, *, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        self.path = resolve_gguf(model)
        self.model = self.path.name
        self.n_threads = n_threads
        self._lock = threading.Lock()
        self._llm = _load(self.path, n_ctx or DEFAULT_N_CTX, n_threads)
        trained = self._llm._model.n_ctx_train()
        if n_ctx and n_ctx > trained:
            self.close()
            raise BadInput(f"n_ctx {n_ctx} exceeds the {trained}-token window {self.model} was trained with",
                           expected=f"n_ctx <= {trained} (going beyond needs a stated context extension)")
        if not n_ctx and trained < DEFAULT_N_CTX:  # a model trained on less than the default: use its window
            self._llm.close()
            self._llm = _load(self.path, trained, n_threads)
        self.context_window = self._llm.n_ctx()
        self.trained_window = trained
        m = self._llm._model
        eos, bos = self._llm.token_eos(), self._llm.token_bos()
        self.template: ChatTemplate = template_from_metadata(
            self._llm.metadata, bos=m.token_get_text(bos) if bos != -1 else "",
            eos=m.token_get_text(eos) if eos != -1 else "")

    # -- tokens -------------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` alone (no BOS), with the model's tokenizer."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0

    def _prompt_ids(self, text: str, *, add_bos: bool = True) -> list[int]:
        # What llama-cpp-python itself does for a string prompt: BOS (if the model wants one) + special
        # tokens parsed, so `complete(prompt)` and `Llama.create_completion(prompt)` see the same ids.
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _chat_ids(self, r: Rendered) -> list[int]:
        return self._prompt_ids(r.prompt, add_bos=not r.added_special)

    # -- generation ---------------------------------------------------------------------------------
    def _prepare_text(self, prompt: str, policy: SamplingPolicy, guard: GuardPolicy | None):
        guard = guard or GuardPolicy()
        forced, warnings = gate_policy(policy, guard)
        reserve = output_reserve(policy, self.context_window, guard)
        text, n, note = fit_text(prompt, window=self.context_window, reserve=reserve,
                                 count=lambda t: len(self._prompt_ids(t)), guard=guard, model=self.model)
        return self._prompt_ids(text), [], None, forced, warnings, note, n

    def _prepare_chat(self, messages: list[dict], policy: SamplingPolicy, guard: GuardPolicy | None,
                      response_format: dict | None = None):
        guard = guard or GuardPolicy()
        forced, warnings = gate_policy(policy, guard)
        reserve = output_reserve(policy, self.context_window, guard)
        msgs, n, note = fit_messages(
            messages, window=self.context_window, reserve=reserve,
            count_chat=lambda ms: len(self._chat_ids(self.template.render(ms))),
            count=self.count_tokens, guard=guard, model=self.model)
        rendered = self.template.render(msgs)
        if not self.template.has_template:
            warnings.append(f"{self.model} has no chat template: used the {self.template.source}")
        return (self._chat_ids(rendered), rendered.stop, grammar_for(response_format), forced, warnings, note, n)

    def _kwargs(self, policy: SamplingPolicy, ids: list[int], extra_stop: list[str], grammar) -> dict[str, Any]:
        kw = sampling_kwargs(policy)
        kw["stop"] = kw["stop"] + [s for s in extra_stop if s not in kw["stop"]]
        kw["max_tokens"] = policy.max_new_tokens or (self.context_window - len(ids))
        kw["grammar"] = grammar
        return kw

    def _generation(self, *, text: str, prompt_tokens: int, completion_tokens: int, finish: str,
                    policy: SamplingPolicy, forced: bool, warnings: list[str], note: str | None, t0: float,
                    template: str | None) -> Generation:
        return Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          finish_reason=finish or "stop", policy_used=policy.describe(), truncation=note,
                          forced=forced, warnings=warnings, template=template, backend=self.kind, model=self.model,
                          context_window=self.context_window, seconds=time.perf_counter() - t0)

    def _run(self, prepared, policy: SamplingPolicy, template: str | None) -> Generation:
        t0 = time.perf_counter()
        ids, stop, grammar, forced, warnings, note, _n = prepared
        with self._lock:
            out = self._call(ids, **self._kwargs(policy, ids, stop, grammar))
        choice, usage = out["choices"][0], out["usage"]
        return self._generation(text=choice["text"], prompt_tokens=usage["prompt_tokens"],
                                completion_tokens=usage["completion_tokens"], finish=choice["finish_reason"],
                                policy=policy, forced=forced, warnings=warnings, note=note, t0=t0,
                                template=template)

    def _call(self, ids: list[int], **kw):
        try:
            return self._llm.create_completion(ids, **kw)
        except (ValueError, RuntimeError) as exc:  # llama.cpp decode failures surface as these
            raise BackendError(f"llama.cpp failed while generating with {self.model}: {exc}") from None

    def _stream(self, prepared, policy: SamplingPolicy, template: str | None) -> GenerationStream:
        ids, stop, grammar, forced, warnings, note, n = prepared

        def pieces() -> Generator[str, None, Generation]:
            t0 = time.perf_counter()
            parts: list[str] = []
            finish = "stop"
            with self._lock:
                for chunk in self._call(ids, stream=True, **self._kwargs(policy, ids, stop, grammar)):
                    choice = chunk["choices"][0]
                    if choice["text"]:
                        parts.append(choice["text"])
                        yield choice["text"]
                    finish = choice.get("finish_reason") or finish
            text = "".join(parts)
            # Streamed chunks carry no usage; the generated text re-tokenized is the completion count.
            return self._generation(text=text, prompt_tokens=len(ids), completion_tokens=self.count_tokens(text),
                                    finish=finish, policy=policy, forced=forced, warnings=warnings, note=note,
                                    t0=t0, template=template)

        return GenerationStream(pieces(), policy_used=policy.describe(), truncation=note, prompt_tokens=n)

    def complete(self, prompt: str, policy: SamplingPolicy, *, guard: GuardPolicy | None = None) -> Generation:
        """Continue `prompt` (raw text, no chat template) under the policy, within the window."""
        return self._run(self._prepare_text(prompt, policy, guard), policy, None)

    def stream_complete(self, prompt: str, policy: SamplingPolicy, *,
                        guard: GuardPolicy | None = None) -> GenerationStream:
        """Continue `prompt`, yielding text pieces as they are decoded."""
        return self._stream(self._prepare_text(prompt, policy, guard), policy, None)

    def chat(self, messages: list[dict], policy: SamplingPolicy, *, guard: GuardPolicy | None = None,
             response_format: dict | None = None) -> Generation:
        """Answer a conversation through the GGUF's chat template (or the stated plain fallback)."""
        prepared = self._prepare_chat(messages, policy, guard, response_format)
        return self._run(prepared, policy, self.template.source)

    def stream_chat(self, messages: list[dict], policy: SamplingPolicy, *,
                    guard: GuardPolicy | None = None) -> GenerationStream:
        """Answer a conversation, yielding text pieces as they are decoded."""
        return self._stream(self._prepare_chat(messages, policy, guard), policy, self.template.source)

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.close()

    def __repr__(self) -> str:
        threads = self.n_threads or os.cpu_count()
        return f"LocalBackend({self.model}, n_ctx={self.context_window}, threads={threads})"

"""The `openai` backend: any OpenAI-compatible HTTP endpoint (llama-server, vLLM, Ollama,
llama-cpp-python's server), spoken with httpx; streaming is parsed from Server-Sent Events.

At start the endpoint is checked (GET /v1/models) so a wrong URL fails at once with a clear error,
the model id is picked (or checked), the server's tokenizer endpoint is found (llama-cpp-python
`/extras/tokenize`, llama-server or vLLM `/tokenize`) so the context guard counts with the model's own
tokenizer, and the context window is read (llama-server `/props`, vLLM `max_model_len`) unless given.
A server that offers no tokenizer is counted by UTF-8 bytes, a stated upper bound."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from typing import Any

from qkv.tools.errors import BadInput, UnknownName, closest
from qkv.tools.llm.base import BackendError, Generation, GenerationStream
from qkv.tools.llm.guard import GuardPolicy, fit_messages, fit_text, gate_policy, output_reserve
from qkv.tools.sampling import SamplingPolicy

# Tokens a chat template adds per message (role header, separators) and in total (answer header, default
# system prompt). The server's template is not visible over HTTP: these are measured once from `usage`
# (see _template_overhead); the constants are the fallback for a server that reports no usage.
PER_MESSAGE_OVERHEAD = 8
REPLY_OVERHEAD = 8


def _split_url(url: str) -> tuple[str, str]:
    """(root, api) for a base URL given with or without the trailing /v1."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise BadInput(f"endpoint URL {url!r} has no http:// or https:// scheme",
                       expected="e.g. http://127.0.0.1:8080/v1")
    root = base[:-3] if base.endswith("/v1") else base
    return root, root + "/v1"


class OpenAIBackend:
    """An OpenAI-compatible server. `flavor` records which server it is (it decides which non-standard
    sampling fields and which structured-output form the server understands)."""

    kind = "openai"

    def __init__(self, url: str | None, *, model: str | None = None, n_ctx: int | None = None,
                 timeout: float = 120.0, api_key: str | None = None) -> None:
        import httpx

        if not url:
            raise BadInput("no OpenAI-compatible endpoint URL given",
                           expected="--url or QKV_LLM_URL, e.g. http://127.0.0.1:8080/v1")
        self.url = url
        self.root, self.api = _split_url(url)
        key = api_key or os.environ.get("QKV_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # connect fails fast (a dead endpoint); read waits for slow CPU servers but never forever.
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0), headers=headers)
        self._overhead: tuple[int, int] | None = None
        try:
            ids = self._model_ids()
            self.model = self._pick_model(model, ids)
            self.flavor, self._tokenize_route = self._probe_tokenizer()
            self.context_window = n_ctx or self._probe_window()
        except BaseException:
            self._http.close()
            raise

    # -- start-up checks ----------------------------------------------------------------------------
    def _request(self, method: str, url: str, **kw):
        import httpx

        try:
            return self._http.request(method, url, **kw)
        except httpx.TransportError as exc:
            raise BadInput(f"cannot reach the OpenAI-compatible endpoint at {self.url} ({type(exc).__name__}: "
                           f"{exc})", expected="a running server (llama-server, vLLM, Ollama, "
                           "python -m llama_cpp.server) at QKV_LLM_URL / --url") from None

    def _model_ids(self) -> list[str]:
        r = self._request("GET", self.api + "/models")
        if r.status_code != 200:
            raise BadInput(f"{self.api}/models answered HTTP {r.status_code}: {r.text[:200]}",
                           expected="an OpenAI-compatible server (GET /v1/models lists its models)")
        try:
            return [m["id"] for m in r.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadInput(f"{self.api}/models did not return an OpenAI model list: {r.text[:200]}",
                           expected="an OpenAI-compatible server") from None

    def _pick_model(self, model: str | None, ids: list[str]) -> str:
        if model is None:
            if not ids:
                raise BadInput(f"{self.url} serves no model", expected="a server with a model loaded")
            return ids[0]
        if ids and model not in ids:
            raise UnknownName(f"the endpoint at {self.url} does not serve model '{model}'",
                              choices=closest(model, ids) or ids)
        return model

    def _probe_tokenizer(self) -> tuple[str, tuple[str, str] | None]:
        """(flavor, (route, input field)) of the first tokenizer endpoint that answers."""
        probes = [("llama-cpp-python", "/extras/tokenize", "input"),
                  ("llama-server", "/tokenize", "content"),
                  ("vllm", "/tokenize", "prompt")]
        for flavor, route, field in probes:
            try:
                r = self._http.post(self.root + route, json={field: "probe", "model": self.model})
                if r.status_code == 200 and isinstance(r.json().get("tokens"), list):
                    return flavor, (route, field)
            except Exception:  # any failure (refused route, HTML error page) just means "not this flavor"
                continue
        return "openai", None

    def _probe_window(self) -> int:
        r = self._http.get(self.root + "/props")
        if r.status_code == 200:
            props = r.json()
            n = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            if n:
                return int(n)
        r = self._http.get(self.api + "/models")
        for m in r.json().get("data", []):
            if m.get("id") == self.model and m.get("max_model_len"):
                return int(m["max_model_len"])
        raise BadInput(f"the endpoint at {self.url} does not report its context window",
                       expected="n_ctx / --n-ctx / QKV_LLM_CTX set to the server's context size "
                                "(hard rule 1: qkv never guesses the window)")

    # -- tokens -------------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` with the server's tokenizer; UTF-8 bytes (an upper bound) if it has none."""
        if not text:
            return 0
        if self._tokenize_route is None:
            return len(text.encode("utf-8"))
        route, field = self._tokenize_route
        r = self._request("POST", self.root + route, json={field: text, "model": self.model})
        if r.status_code != 200:
            raise BackendError(f"{self.root}{route} answered HTTP {r.status_code}: {r.text[:200]}")
        return len(r.json()["tokens"])

    def _template_overhead(self) -> tuple[int, int]:
        """(tokens per message, fixed tokens) the server's chat template adds, measured once from the
        `usage.prompt_tokens` of two 1-token probes (1 and 3 messages); constants if usage is missing.
        The fixed part includes a default system prompt some templates inject (SmolLM2 does), so a
        conversation that brings its own system message is over-counted, never under-counted."""
        if self._overhead is None:
            self._overhead = (PER_MESSAGE_OVERHEAD, REPLY_OVERHEAD)
            probe = "probe"
            one = [{"role": "user", "content": probe}]
            three = [*one, {"role": "assistant", "content": probe}, {"role": "user", "content": probe}]
            try:
                p1, p3 = (self._post("/chat/completions", {"model": self.model, "messages": m, "max_tokens": 1,
                                                           "temperature": 0.0})["usage"]["prompt_tokens"]
                          for m in (one, three))
            except (BackendError, KeyError, TypeError):
                return self._overhead
            c = self.count_tokens(probe)
            per = max(0, (p3 - p1) // 2 - c)
            self._overhead = (per, max(0, p1 - c - per))
        return self._overhead

    def _count_chat(self, messages: list[dict]) -> int:
        per, fixed = self._template_overhead()
        return sum(self.count_tokens(m["content"]) + per for m in messages) + fixed

    # -- request bodies -----------------------------------------------------------------------------
    def _sampling_body(self, policy: SamplingPolicy, max_tokens: int) -> dict[str, Any]:
        if policy.num_beams > 1:
            raise BadInput("beam search is not part of the OpenAI-compatible API", expected="num_beams 1")
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": policy.temperature,
                                "top_p": policy.top_p}
        if policy.stop:
            body["stop"] = list(policy.stop)
        if policy.seed is not None:
            body["seed"] = policy.seed
        if self.flavor != "openai":  # servers that take the non-standard knobs; set them all explicitly
            body.update(top_k=policy.top_k, min_p=policy.min_p)
            penalty = "repetition_penalty" if self.flavor == "vllm" else "repeat_penalty"
            body[penalty] = policy.repetition_penalty
        return body

    def _response_format(self, response_format: dict | None) -> dict | None:
        """Translate to the form this server enforces: llama-cpp-python takes `json_object` + `schema`,
        the others OpenAI's `json_schema`."""
        if not response_format or response_format.get("type") == "text":
            return None
        kind = response_format.get("type")
        if kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            name = (response_format.get("json_schema") or {}).get("name", "response")
        elif kind == "json_object":
            schema, name = response_format.get("schema"), "response"
        else:
            raise BadInput(f"unknown response_format type {kind!r}", choices=["text", "json_object", "json_schema"])
        if schema is None:
            return {"type": "json_object"}
        if self.flavor == "llama-cpp-python":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}

    # -- generation ---------------------------------------------------------------------------------
    def _prepare(self, policy: SamplingPolicy, guard: GuardPolicy | None, *, prompt: str | None = None,
                 messages: list[dict] | None = None):
        guard = guard or GuardPolicy()
        forced, warnings = gate_policy(policy, guard)
        reserve = output_reserve(policy, self.context_window, guard)
        if messages is not None:
            from qkv.tools.llm.chat import _check_messages

            _check_messages(messages)
            payload, n, note = fit_messages(messages, window=self.context_window, reserve=reserve,
                                            count_chat=self._count_chat, count=self.count_tokens, guard=guard,
                                            model=self.model)
        else:
            payload, n, note = fit_text(prompt or "", window=self.context_window, reserve=reserve,
                                        count=lambda t: self.count_tokens(t) + 1, guard=guard, model=self.model)
        if self._tokenize_route is None:
            warnings.append("the server has no tokenizer endpoint: prompt tokens bounded by UTF-8 bytes")
        max_tokens = policy.max_new_tokens or max(1, self.context_window - n)
        return payload, n, note, forced, warnings, max_tokens

    def _post(self, path: str, body: dict) -> dict:
        r = self._request("POST", self.api + path, json=body)
        if r.status_code != 200:
            raise BackendError(f"{self.api}{path} answered HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    def _generation(self, *, text: str, n: int, usage: dict | None, finish: str | None, policy: SamplingPolicy,
                    forced: bool, warnings: list[str], note: str | None, t0: float, template: str | None
                    ) -> Generation:
        usage = usage or {}
        return Generation(
            text=text, prompt_tokens=usage.get("prompt_tokens") or n,
            completion_tokens=usage.get("completion_tokens") or self.count_tokens(text),
            finish_reason=finish or "stop", policy_used=policy.describe(), truncation=note, forced=forced,
            warnings=warnings, template=template, backend=self.kind, model=self.model,
            context_window=self.context_window, seconds=time.perf_counter() - t0)

    def complete(self, prompt: str, policy: SamplingPolicy, *, guard: GuardPolicy | None = None) -> Generation:
        """Continue raw text via /v1/completions."""
        t0 = time.perf_counter()
        text, n, note, forced, warnings, max_tokens = self._prepare(policy, guard, prompt=prompt)
        out = self._post("/completions", {**self._sampling_body(policy, max_tokens), "prompt": text})
        choice = out["choices"][0]
        return self._generation(text=choice.get("text") or "", n=n, usage=out.get("usage"),
                                finish=choice.get("finish_reason"), policy=policy, forced=forced,
                                warnings=warnings, note=note, t0=t0, template=None)

    def chat(self, messages: list[dict], policy: SamplingPolicy, *, guard: GuardPolicy | None = None,
             response_format: dict | None = None) -> Generation:
        """Answer a conversation via /v1/chat/completions (the server applies its chat template)."""
        t0 = time.perf_counter()
        msgs, n, note, forced, warnings, max_tokens = self._prepare(policy, guard, messages=messages)
        body = {**self._sampling_body(policy, max_tokens), "messages": msgs}
        fmt = self._response_format(response_format)
        if fmt:
            body["response_format"] = fmt
        out = self._post("/chat/completions", body)
        choice = out["choices"][0]
        return self._generation(text=(choice.get("message") or {}).get("content") or "", n=n,
                                usage=out.get("usage"), finish=choice.get("finish_reason"), policy=policy,
                                forced=forced, warnings=warnings, note=note, t0=t0, template="server")

    def _sse(self, path: str, body: dict, piece: str) -> Generator[tuple[str, str | None, dict | None]]:
        """(text piece, finish_reason, usage) from a streamed response; BackendError if it breaks off."""
        import httpx

        got = 0
        try:
            with self._http.stream("POST", self.api + path, json={**body, "stream": True}) as r:
                if r.status_code != 200:
                    r.read()
                    raise BackendError(f"{self.api}{path} answered HTTP {r.status_code}: {r.text[:300]}")
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue  # SSE comments / keep-alive pings / event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    choices = event.get("choices") or [{}]
                    c = choices[0]
                    text = (c.get("delta") or {}).get("content") if piece == "delta" else c.get("text")
                    got += 1
                    yield text or "", c.get("finish_reason"), event.get("usage")
        except httpx.TransportError as exc:
            raise BackendError(f"the stream from {self.url} broke off after {got} events ({type(exc).__name__}: "
                               f"{exc}): the server closed the connection or died mid-generation") from None
        except json.JSONDecodeError as exc:
            raise BackendError(f"the stream from {self.url} sent malformed JSON after {got} events: {exc}") from None
        raise BackendError(f"the stream from {self.url} ended after {got} events without [DONE]: "
                           "the server stopped mid-generation")

    def _stream(self, path: str, body: dict, piece: str, *, n: int, note: str | None, forced: bool,
                warnings: list[str], policy: SamplingPolicy, template: str | None) -> GenerationStream:
        def pieces() -> Generator[str, None, Generation]:
            t0 = time.perf_counter()
            parts: list[str] = []
            finish, usage = None, None
            for text, fin, use in self._sse(path, body, piece):
                finish, usage = fin or finish, use or usage
                if text:
                    parts.append(text)
                    yield text
            return self._generation(text="".join(parts), n=n, usage=usage, finish=finish, policy=policy,
                                    forced=forced, warnings=warnings, note=note, t0=t0, template=template)

        return GenerationStream(pieces(), policy_used=policy.describe(), truncation=note, prompt_tokens=n)

    def stream_complete(self, prompt: str, policy: SamplingPolicy, *,
                        guard: GuardPolicy | None = None) -> GenerationStream:
        """Continue raw text, streamed."""
        text, n, note, forced, warnings, max_tokens = self._prepare(policy, guard, prompt=prompt)
        body = {**self._sampling_body(policy, max_tokens), "prompt": text}
        return self._stream("/completions", body, "text", n=n, note=note, forced=forced, warnings=warnings,
                            policy=policy, template=None)

    def stream_chat(self, messages: list[dict], policy: SamplingPolicy, *,
                    guard: GuardPolicy | None = None) -> GenerationStream:
        """Answer a conversation, streamed."""
        msgs, n, note, forced, warnings, max_tokens = self._prepare(policy, guard, messages=messages)
        body = {**self._sampling_body(policy, max_tokens), "messages": msgs}
        return self._stream("/chat/completions", body, "delta", n=n, note=note, forced=forced, warnings=warnings,
                            policy=policy, template="server")

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.url}, model={self.model}, flavor={self.flavor}, n_ctx={self.context_window})"


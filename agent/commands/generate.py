"""`qkv generate`: local quantized generation (llama.cpp over a GGUF) or an OpenAI-compatible endpoint,
always under a stated, bounded sampling policy and the context guard."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json, validated

if TYPE_CHECKING:
    from rich.console import Console

    from qkv.tools.llm.api import GenerateRequest
    from qkv.tools.llm.base import Generation
    from qkv.tools.llm.guard import GuardPolicy
    from qkv.tools.sampling import SamplingPolicy

SCHEMAS.update({
    "generate-request": "qkv.tools.llm.api:GenerateRequest",
    "generate": "qkv.tools.llm.base:Generation",
})


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="the text to answer or continue ('-' reads stdin)")],
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="GGUF file, or smollm2 (default) | gemma3-270m; with --llm openai: the model id")]
    = None,
    llm: Annotated[str | None, typer.Option(help="local | openai | none (default $QKV_LLM or local)")] = None,
    url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL (default $QKV_LLM_URL)")] = None,
    mode: Annotated[str, typer.Option(help="auto | chat | complete (auto: chat if the model has a template)")]
    = "auto",
    system: Annotated[str | None, typer.Option(help="system message (chat mode)")] = None,
    temperature: Annotated[float | None, typer.Option(help="0 = greedy [default 0.7]")] = None,
    top_p: Annotated[float | None, typer.Option(help="nucleus mass kept, 1 = off [default 0.9]")] = None,
    top_k: Annotated[int | None, typer.Option(help="keep the k most likely tokens, 0 = off [default 40]")] = None,
    min_p: Annotated[float | None, typer.Option(help="drop tokens below min_p × p(max), 0 = off")] = None,
    repetition_penalty: Annotated[float | None, typer.Option(help="1 = off")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="hard cap on generated tokens [default 256]")] = None,
    unbounded: Annotated[bool, typer.Option("--unbounded", help="no max-new-tokens (needs --force)")] = False,
    stop: Annotated[list[str] | None, typer.Option(help="stop string (repeatable)")] = None,
    seed: Annotated[int | None, typer.Option(help="RNG seed: the same seed gives the same text")] = None,
    context: Annotated[str, typer.Option(
        help="when prompt + max-new-tokens exceeds the window: head_tail | sliding | strict (fail)")] = "head_tail",
    n_ctx: Annotated[int | None, typer.Option(help="context window in tokens (local default 4096)")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for llama.cpp")] = None,
    force: Annotated[bool, typer.Option("--force", help="run an unbounded sampling policy anyway (reported)")]
    = False,
    stream: Annotated[bool, typer.Option("--stream", help="print tokens as they are decoded")] = False,
    json: JsonOpt = False,
) -> None:
    """Generate text with a local GGUF model (llama.cpp) or an OpenAI-compatible server.

    The sampling policy in effect is always printed, and generation refuses to run unbounded (no
    max-new-tokens, or sampling with neither top-p < 1 nor top-k > 0) unless --force. A prompt that does
    not fit the window is truncated by the stated --context strategy (and the note says so), or fails
    with --context strict.

    Examples:
      qkv generate "Explain grouped-query attention in one sentence." --seed 1
      qkv generate "The capital of France is" -m gemma3-270m --temperature 0 --max-new-tokens 16 --stream
      qkv generate "hi" --llm openai --url http://127.0.0.1:8080/v1 --top-k 20
    """
    from qkv.tools.llm.api import GenerateRequest

    if prompt == "-":
        prompt = sys.stdin.read()
    policy = _policy(temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens, seed, stop, unbounded)
    guard = _guard(context, force)
    req = validated(GenerateRequest, prompt=prompt, llm=llm, model=model, url=url, n_ctx=n_ctx, n_threads=threads,
                    mode=mode, system=system, policy=policy, guard=guard)
    err = console().__class__(stderr=True)
    if stream and not json:
        result = _stream(req, err)
    else:
        from qkv.tools.llm.api import generate as run_generate

        result = run_generate(req)
        if json:
            emit_json(result)
            return
        sys.stdout.write(result.text + "\n")
        if result.truncation:
            err.print(f"[yellow]context guard: {result.truncation}[/]")
    _report(result, err)


def _policy(temperature: float | None, top_p: float | None, top_k: int | None, min_p: float | None,
            repetition_penalty: float | None, max_new_tokens: int | None, seed: int | None,
            stop: list[str] | None, unbounded: bool) -> SamplingPolicy:
    """The sampling policy from the knobs given (the others keep the policy's defaults)."""
    from qkv.tools.sampling import SamplingPolicy

    knobs = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "min_p": min_p,
             "repetition_penalty": repetition_penalty, "max_new_tokens": max_new_tokens, "seed": seed,
             "stop": stop or None}
    fields = {k: v for k, v in knobs.items() if v is not None}
    if unbounded:
        fields["max_new_tokens"] = None
    return validated(SamplingPolicy, **fields)


def _guard(context: str, force: bool) -> GuardPolicy:
    """The context guard: the --context strategy (head-tail or head_tail), checked against the known ones."""
    from qkv.tools.llm.guard import STRATEGIES, GuardPolicy

    strategy = context.replace("-", "_")
    if strategy not in STRATEGIES:
        from qkv.tools.errors import UnknownName, closest

        raise UnknownName(f"unknown --context strategy '{context}'",
                          choices=closest(strategy, STRATEGIES) or STRATEGIES)
    return validated(GuardPolicy, strategy=strategy, force=force)


def _stream(req: GenerateRequest, err: Console) -> Generation:
    """--stream: the policy and any truncation on stderr first, then each piece on stdout as it is decoded."""
    from qkv.tools.llm.api import generate_stream

    pieces = generate_stream(req)
    err.print(f"[dim]policy: {pieces.policy_used}[/]")
    if pieces.truncation:
        err.print(f"[yellow]context guard: {pieces.truncation}[/]")
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return pieces.result


def _report(result: Generation, err: Console) -> None:
    """The warnings and the one-line summary (backend, policy, tokens, speed) on stderr."""
    for w in result.warnings:
        err.print(f"[yellow]warning: {w}[/]")
    rate = result.completion_tokens / result.seconds if result.seconds > 0 else 0.0
    err.print(f"[dim]{result.backend}:{result.model} · policy: {result.policy_used} · "
              f"{result.prompt_tokens} prompt + {result.completion_tokens} new tokens "
              f"of {result.context_window} · finish {result.finish_reason} · {result.seconds:.2f} s "
              f"({rate:.1f} tok/s)[/]")

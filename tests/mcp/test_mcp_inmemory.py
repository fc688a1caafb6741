"""The MCP server through the SDK's real client, in memory: every tool, resource and prompt; results equal
the CLI's --json (or the tool function's output) for the same input; bad calls are tool errors and the
server keeps serving."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from qkv.agent.mcp_tools import TOOLS, ToolBindError, ToolSpec, bind, bound_tools
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.memory.verdict import fit_report
from qkv.tools.params import ParamCountRequest, param_count

from .conftest import cli_json, run_client


def call(server, name: str, args: dict | None = None, **kw):
    return run_client(server, lambda c: c.call_tool(name, args or {}, **kw))


def test_lists_each_tool_with_its_pydantic_schemas(server):
    listed = run_client(server, lambda c: c.list_tools()).tools
    ready = bound_tools()
    # Every registry row binds and is served, in table order: none is skipped.
    assert [t.name for t in listed] == [b.spec.name for b in ready] == [s.name for s in TOOLS]
    assert {"params", "vram", "vram_trace", "doctor"} <= {t.name for t in listed}
    for tool, bound in zip(listed, ready, strict=True):
        # No second definition: the wire schemas are the pydantic models' own JSON schemas.
        if bound.request is not None:
            assert tool.input_schema == bound.request.model_json_schema()
        assert tool.output_schema == bound.result.model_json_schema(mode="serialization")
        assert tool.description and tool.annotations.read_only_hint



@pytest.mark.parametrize(("target", "why"), [
    ("qkv.tools.no_such_module:fn", "cannot import its target qkv.tools.no_such_module:fn"),
    ("qkv.tools.params:no_such_function", "cannot import its target qkv.tools.params:no_such_function"),
    ("qkv.tools.errors:closest", "its target qkv.tools.errors:closest does not return a pydantic model"),
])
def test_a_row_that_cannot_bind_raises_naming_the_row_and_its_target(target, why):
    row = ToolSpec(name="broken", target=target, title="a broken row")
    with pytest.raises(ToolBindError, match="MCP tool row 'broken': ") as info:
        bind(row)
    assert why in str(info.value)
    with pytest.raises(ToolBindError, match="'broken'"):
        bound_tools((TOOLS[0], row))

def test_params_equals_cli_json(server, qkv_home, mcp_root):
    for model in ("llama-2-7b", str(mcp_root / "tiny-llama")):
        result = call(server, "params", {"model": model})
        assert not result.is_error, result.content
        assert result.structured_content == cli_json("params", model, home=qkv_home)
    assert call(server, "params", {"model": "tiny-llama"}).structured_content["total"] == \
        param_count(ParamCountRequest(model=str(mcp_root / "tiny-llama"))).total  # relative to the root


def test_vram_equals_cli_json(server, qkv_home):
    args = {"model": "llama-2-7b", "method": "qlora", "gpu": "rtx-4090", "seq": 1024}
    result = call(server, "vram", args)
    assert not result.is_error, result.content
    cli = cli_json("vram", "llama-2-7b", "--method", "qlora", "--gpu", "rtx-4090", "--seq", "1024", home=qkv_home)
    assert result.structured_content == cli
    assert result.structured_content["estimate"]["fit"]["fits"] is True


def test_vram_inference_equals_function(server):
    args = {"model": "mistral-7b", "method": "inference", "weights": "Q4_K_M", "seq": 8192, "gpu": "rtx-3060-12gb"}
    result = call(server, "vram", args)
    assert result.structured_content == json.loads(fit_report(MemoryRequest(**args)).model_dump_json())


def test_doctor_equals_function(server):
    from qkv.tools.doctor import run_doctor

    result = call(server, "doctor")
    assert result.structured_content == run_doctor().model_dump(mode="json")


def test_catalog_resources_equal_cli_json(server, qkv_home):
    from qkv.tools.catalog.summary import ModelSummary, summarize_models

    async def read(c):
        uris = [str(r.uri) for r in (await c.list_resources()).resources]
        return uris, [json.loads((await c.read_resource(u)).contents[0].text) for u in uris]

    uris, (models, gpus) = run_client(server, read)
    assert uris == ["qkv://catalog/models", "qkv://catalog/gpus"]
    assert gpus == cli_json("gpus", home=qkv_home)
    assert models == json.loads(TypeAdapter(list[ModelSummary]).dump_json(summarize_models()))


def test_persona_prompt_carries_the_task(server):
    async def body(c):
        listed = (await c.list_prompts()).prompts
        got = await c.get_prompt("researcher", {"task": "legal summarisation on one 24 GB GPU"})
        return listed, got

    listed, got = run_client(server, body)
    assert [p.name for p in listed] == ["researcher"]
    text = got.messages[0].content.text
    assert "legal summarisation on one 24 GB GPU" in text and "sampling" in text


def _bad_calls(root: Path) -> list[tuple[str, dict, str]]:
    """(tool, arguments, text the error must contain): each kind of bad call the acceptance names."""
    outside = root.parent / "outside" / "config.json"
    escape = root / "escape"
    if not escape.exists():
        escape.symlink_to(root.parent / "outside")
    fifo = root / "pipe.json"
    if not fifo.exists():
        os.mkfifo(fifo)
    return [
        ("vram", {"model": 7}, "valid string"),  # malformed: wrong type
        ("vram", {"method": "qlora"}, "model"),  # malformed: missing required field
        ("vram", {"model": "llama-2-7b", "method": "dpo"}, "method"),  # not one of the choices
        ("vram", {"model": "llama-2-7b", "batch": 0}, "positive integer"),  # the request's own validator
        ("params", {"model": "llama-2-7x"}, "did you mean: llama-2-7b"),  # unknown catalog name
        ("doctor", {"verbose": True}, "unknown argument 'verbose'"),
        ("params", {"model": str(outside)}, "outside the allowed roots"),  # path escape, absolute
        ("params", {"model": "../outside/config.json"}, "outside the allowed roots"),  # path escape, relative
        ("params", {"model": "escape/config.json"}, "symlink that escapes"),  # symlink escape
        ("params", {"model": "pipe.json"}, "FIFO"),  # would block a reader forever
        ("params", {"model": "x" * 5000}, "5,000 characters"),  # oversized string
        ("vram", {"model": "llama-2-7b", "method": "lora", "lora_targets": ["q_proj"] * 1000}, "1,000 items"),
        ("vram", {"model": "llama-2-7b", "seq": 10**15}, "magnitude"),  # oversized integer
        ("params", {"model": "llama-2-7b", "trust_remote_code": True}, "never enabled"),
        ("params", {"model": "meta-llama/Llama-3.3-70B", "online": True}, "online lookups are off"),
        # the design's narration model is a file path too: checked against the roots before anything opens it
        ("design", {"task": "summarise contracts with a 7B model", "llm": "local", "llm_model": str(outside)},
         "outside the allowed roots"),
        # a QkvError raised inside a long tool's worker is a tool error, not a crash
        ("design", {"task": "summarise contracts with a 7B model", "gpu": "toaster"}, "toaster"),
    ]


def test_bad_calls_are_tool_errors_and_the_server_keeps_serving(server, mcp_root):
    async def body(c):
        seen = []
        for name, args, expected in _bad_calls(mcp_root):
            bad = await c.call_tool(name, args)
            good = await c.call_tool("params", {"model": "llama-2-7b"})  # a valid call right after each
            seen.append((name, args, expected, bad, good))
        return seen

    for name, args, expected, bad, good in run_client(server, body):
        assert bad.is_error, (name, args)
        assert expected in bad.content[0].text, (name, bad.content[0].text)
        assert not good.is_error and good.structured_content["total"] == 6_738_415_616


def test_device_file_refused(mcp_root):
    from qkv.agent.mcp_safety import Sandbox
    from qkv.agent.mcp_server import build_server

    server = build_server(Sandbox.from_dirs([mcp_root, "/dev"]))
    bad = call(server, "params", {"model": "/dev/null"})
    assert bad.is_error and "device file" in bad.content[0].text
    assert not call(server, "params", {"model": "gpt2"}).is_error


@pytest.mark.slow
def test_vram_trace_reports_progress_and_equals_function(server, mcp_root):
    from qkv.tools.trace.compare import compare_trace

    updates: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    args = {"model": "tiny-llama", "method": "lora", "seq": 64}
    result = call(server, "vram_trace", args, progress_callback=on_progress)
    assert not result.is_error, result.content
    expected = json.loads(compare_trace(MemoryRequest(**{**args, "model": str(mcp_root / "tiny-llama")}))
                          .model_dump_json())
    got = result.structured_content
    got["traced"].pop("seconds"), expected["traced"].pop("seconds")  # wall time of each run
    assert got == expected
    assert updates and updates[0][1] == "vram_trace: started" and updates[-1][1] == "vram_trace: done"
    assert [p for p, _ in updates] == sorted(p for p, _ in updates)

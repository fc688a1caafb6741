"""Strict input over MCP, through the SDK's real client in memory: every tool refuses an unknown argument
and names the one meant, documented aliases work, a boolean is never a number, fixed value sets are
enums, the two crashes of the first-use report are one-line errors, and descriptions and errors speak in
argument names (no CLI flags, no Python internals). Every bad call is followed by a valid call that
succeeds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qkv.agent.mcp_tools import bound_tools

from .conftest import TINY_LLAMA, run_client

VALID = ("params", {"model": "gpt2"})  # the call made after every bad one
GPT2_TOTAL = 124_439_808


@pytest.fixture(scope="module")
def files(mcp_root: Path) -> Path:
    """Small text files and a binary file inside the allowed root."""
    folder = mcp_root / "strict"
    folder.mkdir(exist_ok=True)
    (folder / "preds.txt").write_text("the cat sat on the mat\nthe contract ends in May\n")
    (folder / "refs.txt").write_text("the cat sat on a mat\nthe agreement ends in May\n")
    (folder / "corpus.txt").write_text("The lessee shall indemnify the lessor against all claims.\n" * 20)
    (folder / "random.bin").write_bytes(bytes(range(256)) * 8)  # 0x80 at byte 128 is not UTF-8
    return folder


def minimal_args(files: Path) -> dict[str, dict]:
    """One valid argument set per tool: the row's own `example`, with the file arguments pointed at this
    test's files (paths relative to the allowed root)."""
    from qkv.agent.mcp_tools import TOOLS

    args = {spec.name: dict(spec.example) for spec in TOOLS}
    args["audit"]["corpus"] = ["strict/corpus.txt"]
    args["evaluate"].update(predictions="strict/preds.txt", references="strict/refs.txt")
    return args


def text(result) -> str:
    return result.content[0].text


def bad_then_good(server, calls: list[tuple[str, dict]]) -> list:
    """Each call, then the valid call; asserts the valid call succeeded every time."""

    async def body(c):
        out = []
        for name, args in calls:
            bad = await c.call_tool(name, args)
            good = await c.call_tool(*VALID)
            assert not good.is_error and good.structured_content["total"] == GPT2_TOTAL, (name, args)
            out.append(bad)
        return out

    return run_client(server, body)


def one_line_error(result, *needles: str) -> str:
    assert result.is_error, result.structured_content
    msg = text(result)
    assert "\n" not in msg and "Error executing tool" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# ------------------------------------------------------------------------------------------- unknown keys
def test_every_tool_refuses_an_unknown_argument_and_names_its_arguments(server, files):
    args = minimal_args(files)
    ready = bound_tools()
    assert {b.spec.name for b in ready} <= set(args)
    calls = [(b.spec.name, {**args[b.spec.name], "zz_unknown": 1}) for b in ready]
    for (name, _), result in zip(calls, bad_then_good(server, calls), strict=True):
        msg = one_line_error(result, "unknown argument 'zz_unknown'", f"{name} takes:")
        assert "online" not in msg.split("takes:")[1], msg  # hidden arguments are not advertised


@pytest.mark.parametrize(("tool", "args", "meant"), [
    ("hparams", {"model": "llama-3.1-8b", "methd": "qlora"}, "did you mean 'method'?"),
    ("audit", {"tokenizers": ["gpt2"], "corpus": ["strict/corpus.txt"], "samples": 1}, "did you mean 'sample'?"),
    ("vram", {"model": "llama-3.1-8b", "gpu": "rtx-4090", "num_gpu": 8}, "did you mean 'gpus'?"),
    ("scale", {"compute": 1e21}, "did you mean 'flops'?"),
    ("context", {"model": "llama-2-7b", "tokens": 9000, "kv_cache_dtyp": "fp8"}, "did you mean 'kv_dtype'?"),
    ("params", {"model": "llama-2-7b", "trust_remote": True}, "unknown argument 'trust_remote'"),
    ("sampling_check", {"policy": {"temprature": 0.7}}, "did you mean 'policy.temperature'?"),
    ("sampling_check", {"policy": {}, "top_p": 0.9}, "did you mean 'policy.top_p'?"),
    # a path argument answers to its own name only: the sandbox checks paths by that name
    ("params", {"model_name_or_path": "../outside/config.json"}, "did you mean 'model'?"),
])
def test_unknown_argument_names_the_one_meant(server, files, tool, args, meant):
    (result,) = bad_then_good(server, [(tool, args)])
    one_line_error(result, "unknown argument", meant)


def test_two_spellings_of_one_argument_are_refused(server):
    (result,) = bad_then_good(server, [("profile", {"model": "gpt2", "seq": 512, "seq_len": 1024})])
    one_line_error(result, "'seq' and 'seq_len' are the same argument")


# ------------------------------------------------------------------------------------------------- aliases
def test_gradient_checkpointing_is_never_ignored(server):
    """Hugging Face's spelling either means grad_checkpointing or is refused naming it."""
    base = {"model": "llama-3.1-8b", "method": "lora", "seq": 4096, "gpu": "rtx-4090"}

    async def body(c):
        return (await c.call_tool("vram", {**base, "grad_checkpointing": True}),
                await c.call_tool("vram", {**base, "gradient_checkpointing": True}),
                await c.call_tool("vram", base))

    ours, theirs, plain = run_client(server, body)
    assert ours.structured_content["estimate"]["request"]["grad_checkpointing"] is True
    assert ours.structured_content["estimate"]["total_bytes"] < plain.structured_content["estimate"]["total_bytes"]
    if theirs.is_error:
        one_line_error(theirs, "did you mean 'grad_checkpointing'?")
    else:
        assert theirs.structured_content == ours.structured_content


def test_seq_len_is_computed_at_its_value_or_refused(server):
    async def body(c):
        return (await c.call_tool("vram", {"model": "llama-3.1-8b", "seq_len": 65536}),
                await c.call_tool("vram", {"model": "llama-3.1-8b", "seq": 65536}),
                await c.call_tool("profile", {"model": "llama-3.1-8b", "seq_len": 65536}),
                await c.call_tool("profile", {"model": "llama-3.1-8b", "seq": 65536}))

    vram_alias, vram_seq, profile_alias, profile_seq = run_client(server, body)
    assert vram_seq.structured_content["estimate"]["request"]["seq"] == 65536
    if vram_alias.is_error:
        one_line_error(vram_alias, "did you mean 'seq'?")
    else:
        assert vram_alias.structured_content == vram_seq.structured_content
    assert not profile_alias.is_error, text(profile_alias)  # a documented alias of profile's seq
    assert profile_alias.structured_content == profile_seq.structured_content


@pytest.mark.parametrize(("tool", "alias", "canonical"), [
    ("context", {"model": "llama-2-7b", "max_seq_length": 16000, "batch_size": 2, "kv_cache_dtype": "fp8"},
     {"model": "llama-2-7b", "tokens": 16000, "batch": 2, "kv_dtype": "fp8"}),
    ("scale", {"flops": 1e21, "gpu": "h100-sxm", "num_gpus": 8}, {"flops": 1e21, "gpu": "h100-sxm", "gpus": 8}),
    ("size", {"params": 1e9, "vocab_size": 50_000, "context_length": 8192, "tie_word_embeddings": False},
     {"params": 1e9, "vocab": 50_000, "context": 8192, "tie_embeddings": False}),
    ("hparams", {"model": "llama-2-7b", "sequence_length": 4096}, {"model": "llama-2-7b", "seq": 4096}),
])
def test_documented_aliases_equal_the_argument(server, tool, alias, canonical):
    async def body(c):
        return await c.call_tool(tool, alias), await c.call_tool(tool, canonical)

    got, expected = run_client(server, body)
    assert not got.is_error, text(got)
    assert got.structured_content == expected.structured_content


def test_aliases_are_documented_in_the_schema(server):
    tools = {t.name: t for t in run_client(server, lambda c: c.list_tools()).tools}
    assert "seq_len" in tools["profile"].input_schema["properties"]["seq"]["description"]
    assert "num_gpus" in tools["scale"].input_schema["properties"]["gpus"]["description"]
    assert "batch_size" in tools["context"].input_schema["properties"]["batch"]["description"]


# ------------------------------------------------------------------------------------- types and choices
def test_a_boolean_is_never_a_number(server):
    calls = [("vram", {"model": "llama-3.1-8b", "seq": True}),
             ("profile", {"model": "gpt2", "seq": True}),
             ("scale", {"flops": True}),
             ("sampling_check", {"policy": {"top_k": False}})]
    expected = ["argument 'seq' is true", "argument 'seq' is true", "argument 'flops' is true",
                "argument 'policy.top_k' is false"]
    for result, needle in zip(bad_then_good(server, calls), expected, strict=True):
        one_line_error(result, needle, "not a boolean")


def test_context_extension_is_one_of_the_known_methods(server):
    (result,) = bad_then_good(server, [("vram", {"model": "llama-3.1-8b", "seq": 65536,
                                                 "context_extension": "magic"})])
    one_line_error(result, "context_extension", "'yarn'")
    ok = run_client(server, lambda c: c.call_tool("vram", {"model": "llama-2-7b", "seq": 8192,
                                                           "context_extension": "yarn"}))
    assert not ok.is_error, text(ok)


def test_options_that_cannot_work_over_mcp_are_not_offered(server):
    tools = {t.name: t for t in run_client(server, lambda c: c.list_tools()).tools}
    for tool in tools.values():
        assert "online" not in tool.input_schema.get("properties", {}), tool.name
    assert "interactive" not in tools["design"].input_schema["properties"]
    (result,) = bad_then_good(server, [("design", {"task": "summarise contracts", "interactive": True})])
    one_line_error(result, "'interactive' is not available over MCP", "assumptions")


# ---------------------------------------------------------------------------------------------- crashes
def test_zero_heads_in_an_inline_config_is_a_clear_error(server):
    zero = {**TINY_LLAMA, "hidden_size": 0, "num_attention_heads": 0}
    odd = {**TINY_LLAMA, "hidden_size": 250}
    calls = [("profile", {"model": "proposed", "config": zero}),
             ("profile", {"model": "proposed", "config": {**TINY_LLAMA, "num_key_value_heads": 0}}),
             ("context", {"model": "proposed", "tokens": 4096, "config": odd})]
    bad = bad_then_good(server, calls)
    one_line_error(bad[0], "config field 'hidden_size' is 0", "positive integer")
    one_line_error(bad[1], "config field 'num_key_value_heads' is 0")
    one_line_error(bad[2], "hidden_size 250 is not divisible by num_attention_heads 4")
    ok = run_client(server, lambda c: c.call_tool("profile", {"model": "proposed", "config": TINY_LLAMA}))
    assert not ok.is_error and ok.structured_content["layers"][0]["kv_heads"] == 2


def test_a_binary_file_is_a_clear_error(server, files):
    calls = [("evaluate", {"predictions": "strict/random.bin", "references": "strict/refs.txt"}),
             ("evaluate", {"predictions": "strict/preds.txt", "references": "strict/random.bin"})]
    for result in bad_then_good(server, calls):
        one_line_error(result, "random.bin is not UTF-8 text at byte 128")
    ok = run_client(server, lambda c: c.call_tool("evaluate", minimal_args(files)["evaluate"]))
    assert not ok.is_error, text(ok)


# ---------------------------------------------------------------------------------------------- wording
CLI_OR_PYTHON = re.compile(r"(?<![\w-])--[a-z]|\breq\.|db_path|thread_id|progress\(|`qkv [a-z]|"
                           r"\bqkv (gpus|models)\b|'-' for stdin|the MCP tool")


def test_descriptions_are_written_for_a_calling_model(server):
    tools = run_client(server, lambda c: c.list_tools()).tools
    for tool in tools:
        for where in (tool.description, json.dumps(tool.input_schema)):
            hit = CLI_OR_PYTHON.search(where)
            assert hit is None, (tool.name, where[max(0, hit.start() - 80):hit.end() + 40])
        assert len(tool.description) > 120, tool.name  # what it answers and when, not a title
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        props = tool.input_schema.get("properties", {})
        if "gpu" in props:
            assert "qkv://catalog/gpus" in tool.description + json.dumps(props["gpu"]), tool.name
        if "model" in props and tool.name not in ("perplexity",):
            assert "qkv://catalog/models" in tool.description + json.dumps(props["model"]), tool.name


def test_schemas_state_the_real_limits_and_the_valid_names(server):
    from qkv.tools.tokenizer.load import shipped_names

    tools = {t.name: t.input_schema["properties"] for t in run_client(server, lambda c: c.list_tools()).tools}
    assert tools["perplexity"]["window"]["maximum"] == 8192  # what the server enforces, not 131,072
    assert tools["vram_trace"]["seq"]["maximum"] == 32768 and tools["vram_trace"]["batch"]["maximum"] == 64
    assert "maximum" not in tools["vram"]["seq"]
    for tool, name in [("profile", "seq"), ("context", "tokens"), ("context", "batch"), ("scale", "gpus"),
                       ("hparams", "seq"), ("design", "gpus")]:
        assert tools[tool][name]["minimum"] == 1, (tool, name)
    assert {"summarisation", "chat", "code", "qa"} <= set(tools["sampling"]["task"]["enum"])
    assert {"yarn", "linear", "llama3"} <= set(tools["vram"]["context_extension"]["anyOf"][0]["enum"])
    audit_tokenizers = tools["audit"]["tokenizers"]["description"]
    assert all(name in audit_tokenizers for name in shipped_names())
    assert tools["sampling_check"]["task"]["description"] and tools["sampling"]["task"]["description"]


@pytest.mark.parametrize(("tool", "args", "words"), [
    ("scale", {"gpus": 2}, "exactly one of flops, params or tokens"),
    ("scale", {"flops": 1e21, "gpus": 0}, "gpus is 0"),
    ("context", {"model": "llama-2-7b", "tokens": 0}, "tokens is 0"),
    ("size", {"params": 5}, "params is 5"),
    ("vram", {"model": "llama-2-7b", "gpus": -1}, "gpus is -1"),
    ("vram", {"model": "llama-2-7b", "gpu": "toaster"}, "qkv://catalog/gpus"),
    ("hparams", {"model": "llama-2-7b", "params": 7e9}, "exactly one of a model or params"),
    ("perplexity", {"window": 64}, "give exactly one of text and text_file"),
    ("design", {"task": "summarise contracts", "llm_model": "gemma3-270m"}, "llm is none"),
])
def test_errors_name_arguments_not_cli_flags(server, tool, args, words):
    (result,) = bad_then_good(server, [(tool, args)])
    msg = one_line_error(result, words)
    assert not re.search(r"(?<![\w-])--[a-z]", msg) and "`qkv " not in msg, msg


def test_the_prompt_argument_is_described(server):
    (prompt,) = run_client(server, lambda c: c.list_prompts()).prompts
    assert prompt.arguments[0].name == "task" and "in words" in prompt.arguments[0].description


def test_request_models_are_strict_at_the_source_too():
    """Python callers and the CLI build the same request models: an unknown key is an error there too, and
    the MCP input model is a subclass, so the tool function still receives its own request type."""
    from pydantic import ValidationError

    from qkv.tools.knowledge.context_rules import ContextRequest
    from qkv.tools.knowledge.hparams import HparamRequest
    from qkv.tools.knowledge.layer_profile import ProfileRequest
    from qkv.tools.knowledge.scaling import ScaleRequest
    from qkv.tools.knowledge.sizing import SizeRequest
    from qkv.tools.params import ParamCountRequest
    from qkv.tools.tokenizer.schema import AuditRequest

    for model, args in [(ParamCountRequest, {"model": "gpt2"}), (ProfileRequest, {"model": "gpt2"}),
                        (ContextRequest, {"model": "gpt2", "tokens": 10}), (ScaleRequest, {"flops": 1e21}),
                        (SizeRequest, {"params": 1e9}), (HparamRequest, {"params": 7e9}),
                        (AuditRequest, {"tokenizers": ["gpt2"], "corpus": ["x.txt"]})]:
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            model(**args, zz_unknown=1)
    assert ProfileRequest(model="gpt2", seq_len=4096).seq == 4096  # a documented alias
    bound = {b.spec.name: b for b in bound_tools()}
    assert isinstance(bound["profile"].request.model_validate({"model": "gpt2"}), ProfileRequest)

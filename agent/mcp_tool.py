"""The SDK tool that wraps one registry row: size limits → the client's MCP roots, when it sends them (they
narrow the allowed roots) → path checks (off the event loop) → the tool's pydantic request → the tool
function, in a worker thread or, for the long tools, in the worker process (mcp_process). A QkvError or a
bad argument becomes a tool error (`is_error`), never a dead server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from qkv.agent.mcp_process import WorkerSlot, run_in_worker
from qkv.agent.mcp_roots import client_roots, declares_roots
from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_tools import BoundTool
from qkv.tools.errors import BadInput, QkvError, validation_summary

log = logging.getLogger("qkv.mcp")

# Files whose lines come back in the result word for word: only term-like lines are accepted.
ECHOED_FILES: Mapping[str, tuple[str, ...]] = {"audit": ("terms",)}


class QkvTool(Tool):
    """An SDK tool whose call validates with the qkv request model and runs the qkv function.

    The SDK's own argument model is bypassed on purpose: the request model's validators raise QkvError
    (with the valid choices), which must reach the caller as a readable tool error."""

    bound: Any = Field(exclude=True)  # BoundTool
    sandbox: Any = Field(exclude=True)  # Sandbox: the server's roots
    slot: Any = Field(exclude=True)  # WorkerSlot shared by the worker tools, or None for in-thread tools
    timeout: float | None = Field(default=None, exclude=True)  # seconds, worker tools only
    use_client_roots: bool = Field(default=True, exclude=True)

    def limits(self, arguments: dict[str, Any]) -> None:
        if not isinstance(arguments, dict):
            raise BadInput("arguments must be a JSON object", expected="an object of named arguments")
        self.sandbox.check_arguments(arguments, caps=self.bound.spec.caps)

    def checked(self, arguments: dict[str, Any]) -> tuple[BaseModel, dict[str, Any]]:
        self.limits(arguments)
        return self.prepare(arguments, self.sandbox)

    def limits_and_reads_files(self, arguments: dict[str, Any]) -> bool:
        """Size limits, then whether any argument names a file (so the client's roots matter for this call)."""
        self.limits(arguments)
        bound: BoundTool = self.bound
        for name, kind in bound.spec.paths.items():
            value = arguments.get(name)
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and self.sandbox.names_a_path(v, kind) for v in values):
                return True
        return False

    def prepare(self, arguments: dict[str, Any], sandbox: Sandbox) -> tuple[BaseModel, dict[str, Any]]:
        """Raw JSON arguments → path checks (values replaced by the checked real paths; globs expanded
        inside the roots) → the tool's pydantic request. Returns the request and the checked arguments
        (what the worker process validates again: request models built at run time do not pickle)."""
        bound: BoundTool = self.bound
        args = dict(arguments)
        for name, kind in bound.spec.paths.items():
            if name not in bound.request.model_fields or args.get(name) is None:
                continue
            value = args[name]
            if isinstance(value, str):
                args[name] = sandbox.check_ref(value, kind, name)
            elif isinstance(value, list):  # file lists may hold globs: expanded inside the roots, each checked
                expanded: list[Any] = []
                for i, v in enumerate(value):  # a non-string item stays, for the request model to refuse
                    expanded += sandbox.check_pattern(v, kind, f"{name}[{i}]") if isinstance(v, str) else [v]
                if len(expanded) > sandbox.limits.max_list:
                    raise BadInput(f"{name} names {len(expanded):,} files once its globs are expanded",
                                   expected=f"at most {sandbox.limits.max_list}")
                args[name] = expanded
        for name in ECHOED_FILES.get(bound.spec.name, ()):
            if isinstance(args.get(name), str):
                sandbox.check_terms_file(args[name], name)
        return bound.request.model_validate(args), args

    def check_then_call(self, arguments: dict[str, Any]) -> tuple[str, Any]:
        """Checks and the tool call in one worker-thread hop, for the in-thread tools when the client's roots
        play no part (the common, cheap case): ("checks" | "call", exception) or ("ok", result)."""
        try:
            request, _ = self.checked(arguments)
        except Exception as exc:
            return "checks", exc
        try:
            return "ok", self.bound.call(request)
        except Exception as exc:
            return "call", exc

    async def run(self, arguments: dict[str, Any], context: Context, convert_result: bool = False) -> Any:
        # Checks touch the disk (globs, folder walks), so they run off the event loop like the tools.
        roots_matter = self.use_client_roots and declares_roots(context)
        if self.slot is None and not roots_matter:
            stage, value = await anyio.to_thread.run_sync(self.check_then_call, arguments)
            if stage == "checks":
                raise self._check_error(value) from value
            if stage == "call":
                err = self._call_error(value)
                raise err from (None if err is value else value)
            result = value
        else:
            try:
                sandbox = self.sandbox
                if roots_matter and await anyio.to_thread.run_sync(self.limits_and_reads_files, arguments):
                    roots = await client_roots(context)
                    if isinstance(roots, InputRequiredResult):  # 2026-07-28: the client answers, then retries
                        return roots
                    if roots is not None:
                        sandbox = sandbox.narrowed(roots)
                    request, args = await anyio.to_thread.run_sync(self.prepare, arguments, sandbox)
                else:
                    request, args = await anyio.to_thread.run_sync(self.checked, arguments)
            except Exception as exc:
                raise self._check_error(exc) from exc
            try:
                if self.slot is not None:
                    result = await run_in_worker(self.bound, self.slot, self.timeout, args, context)
                else:
                    result = await anyio.to_thread.run_sync(self.bound.call, request)
            except ToolError:
                raise
            except Exception as exc:
                raise self._call_error(exc) from exc
        if isinstance(result, CallToolResult):  # from the worker: already in its wire form
            return result if convert_result else result.structured_content
        return self.fn_metadata.convert_result(result) if convert_result else result

    def _check_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ValidationError):
            return ToolError(f"{self.name}: invalid arguments: {validation_summary(exc)}")
        if isinstance(exc, QkvError):
            return ToolError(f"{self.name}: {exc}")
        # a bug in the checks: logged, and nothing of it shown to the caller
        log.error("checking the arguments of %s failed", self.name, exc_info=exc)
        return UnexpectedToolError(f"Error executing tool {self.name}")

    def _call_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ToolError):
            return exc
        if isinstance(exc, QkvError):
            return ToolError(f"{self.name}: {exc}")
        log.error("tool %s crashed", self.name, exc_info=exc)  # the traceback to stderr, a generic error out
        return UnexpectedToolError(f"Error executing tool {self.name}")



def make_tool(bound: BoundTool, sandbox: Sandbox, slot: WorkerSlot | None, *, timeout: float | None = None,
              use_client_roots: bool = True) -> QkvTool:
    """Wrap a bound qkv function as an SDK Tool: schemas from its pydantic models, our own `run`."""
    args_model = create_model(f"{bound.spec.name}Arguments", __base__=ArgModelBase)
    args_model.model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)
    meta = FuncMetadata(arg_model=args_model, output_schema=bound.output_schema(), output_model=bound.result)
    return QkvTool(
        fn=bound.fn, name=bound.spec.name, title=bound.spec.title, description=bound.description,
        parameters=bound.input_schema(), fn_metadata=meta, is_async=False, context_kwarg=None,
        annotations=ToolAnnotations(title=bound.spec.title, read_only_hint=True, destructive_hint=False,
                                    open_world_hint=False),
        bound=bound, sandbox=sandbox, slot=slot, timeout=timeout, use_client_roots=use_client_roots)

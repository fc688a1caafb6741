"""The transports: streamable HTTP (behind an optional bearer token) and stdio, where a line that is not
JSON-RPC gets -32700 / -32600 instead of silence."""

from __future__ import annotations

import hmac
import logging
from contextlib import suppress

import anyio
from mcp.server import MCPServer
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

log = logging.getLogger("qkv.mcp")

DEFAULT_SESSION_IDLE_S = 300.0  # an HTTP session with no request in flight for this long is closed
DEFAULT_MAX_SESSIONS = 200  # open HTTP sessions at once (each costs ~0.6 MiB); more get 503


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` (else 401). The scheme
    is case-insensitive and may be followed by more than one space (RFC 6750 / RFC 9110); the token is
    compared in constant time."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def authorized(self, header: bytes) -> bool:
        scheme, _, credentials = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self.authorized(got):
                body = b'{"error": "unauthorized", "detail": "missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, *, host: str = "127.0.0.1", token: str | None = None,
             session_idle_timeout: float | None = DEFAULT_SESSION_IDLE_S,
             max_sessions: int | None = DEFAULT_MAX_SESSIONS):
    """The streamable-HTTP ASGI app at /mcp, behind the bearer check when a token is given. Sessions with
    no request in flight for `session_idle_timeout` seconds are closed (their id then answers 404)."""
    app = server.streamable_http_app(host=host, streamable_http_path="/mcp",
                                     session_idle_timeout=session_idle_timeout, max_sessions=max_sessions)
    return BearerAuth(app, token) if token else app


def serve_http(server: MCPServer, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
               log_level: str = "warning", session_idle_timeout: float | None = DEFAULT_SESSION_IDLE_S,
               max_sessions: int | None = DEFAULT_MAX_SESSIONS) -> None:
    """Serve streamable HTTP until interrupted (uvicorn logs to stderr)."""
    import uvicorn

    app = http_app(server, host=host, token=token, session_idle_timeout=session_idle_timeout,
                   max_sessions=max_sessions)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), lifespan="on")
    log.warning("qkv MCP server on http://%s:%d/mcp%s", host, port, " (bearer token required)" if token else "")
    uvicorn.Server(config).run()


# ------------------------------------------------------------------------------------------------ stdio
class AnswerUnparsable:
    """The stdio read stream, answering what the SDK would drop silently: a line that is not JSON (or that
    its parser refuses: integers of thousands of digits, nesting thousands deep) gets a -32700 parse error,
    and JSON that is not one JSON-RPC message (a batch array, a request without a method) gets a -32600
    invalid request, both with id null as JSON-RPC 2.0 asks. Without this the client waits forever."""

    def __init__(self, inner, write_stream) -> None:
        self._inner = inner
        self._write = write_stream

    @property
    def last_context(self):
        return getattr(self._inner, "last_context", None)

    async def receive(self):
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            await self._answer(item)

    async def _answer(self, exc: Exception) -> None:
        parse = isinstance(exc, ValidationError) and any(e["type"] == "json_invalid" for e in exc.errors())
        error = (ErrorData(code=PARSE_ERROR, message="Parse error: the line is not JSON this server can read")
                 if parse else ErrorData(code=INVALID_REQUEST, message="Invalid Request: not a JSON-RPC 2.0 "
                                         "request, notification or response (batches are not supported)"))
        log.info("unreadable message on stdin: %s", error.message)
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._write.send(SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error)))

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


async def _serve_stdio(server: MCPServer) -> None:
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async drives, with the read stream wrapped
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(AnswerUnparsable(read_stream, write_stream), write_stream,
                           lowlevel.create_initialization_options())


def serve_stdio(server: MCPServer) -> None:
    """Serve over stdin/stdout until the client closes stdin."""
    anyio.run(_serve_stdio, server)

"""The client's MCP roots: whether a client declares them, and fetching them mid-call (a roots/list request
on handshake-era connections, an input-required round trip on 2026-07-28 ones) so that they can narrow the
server's allowed roots for one call."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse

import anyio
from mcp.server.mcpserver.context import Context
from mcp_types import InputRequiredResult, ListRootsRequest, ListRootsResult
from mcp_types.version import is_version_at_least

log = logging.getLogger("qkv.mcp")

ROOTS_TIMEOUT_S = 5.0  # a client that declares roots but does not answer roots/list in time: server roots apply
ROOTS_KEY = "qkv/roots"  # the input-request key of roots/list on 2026-07-28 connections


def declares_roots(context: Context) -> bool:
    """Whether the client declared the roots capability (so its roots may narrow the server's)."""
    try:
        caps = context.client_capabilities
    except Exception:  # no request context: a direct Python call
        return False
    return caps is not None and caps.roots is not None


async def client_roots(context: Context) -> list[Path] | InputRequiredResult | None:
    """The client's MCP roots as local folders; None when it sends none usable (the server's roots then
    apply). Handshake-era connections (≤ 2025-11-25) get a roots/list request mid-call; on 2026-07-28
    connections (where roots are deprecated but still served) the call first returns an input-required
    result asking for them, and the client retries with its answer. Non-`file:` roots are ignored."""
    try:
        version = context.protocol_version
        if version is not None and is_version_at_least(version, "2026-07-28"):
            answer = (context.input_responses or {}).get(ROOTS_KEY)
            if answer is None:
                return InputRequiredResult(input_requests={ROOTS_KEY: ListRootsRequest()})
            listed = ListRootsResult.model_validate(answer.model_dump(mode="json", by_alias=True, exclude_none=True))
        else:
            with anyio.fail_after(ROOTS_TIMEOUT_S), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # roots are deprecated in 2026-07-28, not in the era used here
                listed = await context.session.list_roots()
    except Exception as exc:
        log.info("client roots unavailable (%s: %s); the server's roots apply", type(exc).__name__, exc)
        return None
    uris = [urlparse(str(r.uri)) for r in listed.roots]
    return [Path(unquote(u.path)) for u in uris if u.scheme == "file" and u.netloc in ("", "localhost")]


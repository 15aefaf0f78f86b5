"""Who is calling: the bearer token of a request, checked against the token file, and its body size.

Shared by the /v1 routes (a FastAPI dependency, `Caller`) and the /mcp router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from runtime.errors import BodyTooLarge
from runtime.server.tokens import LOCAL, Scope, TokenStore


@dataclass(frozen=True)
class ServiceOptions:
    tokens: TokenStore | None = None  # None: no authentication (the CLI allows it on loopback only)
    mcp: bool = True  # mount the MCP server at /mcp
    mcp_idle_timeout: float = 600.0  # an MCP client's sandboxes unused this long are destroyed
    host: str = "127.0.0.1"  # the bind address, for the MCP transport's Host-header check
    cleanup_interval: float | None = 3600.0  # the orphan cleanup job's period (None: not run here)


class Unauthorized(Exception):
    """No token, or not a known one."""


def authenticate(tokens: TokenStore | None, authorization: str | None) -> Scope:
    if tokens is None:
        return LOCAL
    scheme, _, presented = (authorization or "").partition(" ")
    scope = tokens.authenticate(presented.strip() if scheme.lower() == "bearer" else None)
    if scope is None:
        raise Unauthorized
    return scope


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


async def caller(request: Request) -> Scope:
    """The authenticated scope of the request, its body within the scope's limit."""
    options: ServiceOptions = request.app.state.options
    scope = authenticate(options.tokens, request.headers.get("authorization"))
    length = request.headers.get("content-length")
    if (length and length.isdigit() and int(length) > scope.max_body_bytes) or (
            request.method in ("POST", "PUT") and len(await request.body()) > scope.max_body_bytes):
        raise BodyTooLarge(f"request body over this token's limit of {scope.max_body_bytes} bytes")
    return scope


Caller = Annotated[Scope, Depends(caller)]

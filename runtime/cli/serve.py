"""`theappapp-sandbox serve`, `mcp` and `token add|list|revoke`: the sandbox as a service (needs the `server` extra)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

from runtime.errors import ConfigError

MISSING_EXTRA = "the service needs the server extra: pip install 'theappapp-sandbox[server]'"


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser(
        "serve", help="serve the HTTP API (/v1, /healthz, /metrics) and MCP (/mcp)",
        description="Serve the sandbox over HTTP: the API under /v1 (OpenAPI at /openapi.json), the MCP "
        "server at /mcp (streamable HTTP), /healthz and /metrics. Every call needs a bearer token from "
        "--tokens; without --tokens it binds to loopback only and trusts every local caller.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8420, help="port (default 8420; 0 picks a free one)")
    serve.add_argument("--tokens", metavar="FILE", type=Path, help="the token file (`token add` writes it)")
    serve.add_argument("--no-mcp", action="store_true", help="do not serve MCP at /mcp")
    serve.add_argument("--mcp-idle-timeout", type=float, default=600.0, metavar="SECONDS",
                       help="destroy an MCP client's sandboxes after this long unused (default 600)")
    serve.add_argument("--cleanup-interval", type=float, default=3600.0, metavar="SECONDS",
                       help="run the orphan cleanup job this often (default 3600; 0: not in this process)")
    serve.set_defaults(handler=cmd_serve)

    mcp = sub.add_parser(
        "mcp", help="an MCP server on stdin/stdout (for Claude Desktop, Cursor, agent SDKs)",
        description="Serve MCP on stdio with the local user's rights. With THEAPPAPP_TOKEN set (and --tokens "
        "or THEAPPAPP_TOKENS naming the token file) the token's project scope and limits apply. Sandboxes "
        "are destroyed when the client disconnects.",
    )
    mcp.add_argument("--tokens", metavar="FILE", type=Path, help="the token file THEAPPAPP_TOKEN is checked in")
    mcp.set_defaults(handler=cmd_mcp)

    token = sub.add_parser("token", help="manage the service's bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    add = token_sub.add_parser(
        "add", help="create a token, print it once, store its hash",
        description="Create a bearer token scoped to project ids matching PATTERN (fnmatch: team-*, demo), "
        "print it once on stdout and store only its SHA-256 in FILE (created with mode 0600).",
    )
    add.add_argument("--tokens", metavar="FILE", type=Path, required=True, help="the token file")
    add.add_argument("--projects", metavar="PATTERN", action="append", required=True,
                     help="project ids the token may use (repeatable)")
    add.add_argument("--name", help="a name for the token (default: token-N)")
    add.add_argument("--max-tasks", type=int, metavar="N", help="live tasks at once (default: no limit)")
    add.add_argument("--max-timeout", type=float, metavar="SECONDS", help="longest command timeout allowed")
    add.add_argument("--max-body", type=int, metavar="BYTES", help="largest request body (default 64 MiB)")
    add.set_defaults(handler=cmd_token_add)
    listing = token_sub.add_parser("list", help="the stored tokens' names and scopes (never the tokens)")
    listing.add_argument("--tokens", metavar="FILE", type=Path, required=True, help="the token file")
    listing.set_defaults(handler=cmd_token_list)
    revoke = token_sub.add_parser(
        "revoke", help="remove a token by name",
        description="Remove the token NAME from FILE. A running `serve` refuses it from its next call on "
        "(the file is re-read when it changes); the tasks it made run on until destroyed or expired. The "
        "name is kept as revoked, never given to a new token (the service knows a token's tasks by its "
        "name). A running `mcp` checked its THEAPPAPP_TOKEN at start.",
    )
    revoke.add_argument("--tokens", metavar="FILE", type=Path, required=True, help="the token file")
    revoke.add_argument("name", metavar="NAME", help="the token's name, as `token list` shows it")
    revoke.set_defaults(handler=cmd_token_revoke)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.tokens is None and not is_loopback(args.host):
        parser.error(f"serve: refusing to listen on {args.host} without --tokens: anyone who can reach it "
                     "could run code; create tokens with `theappapp-sandbox token add`")
    try:
        import uvicorn

        from runtime.sandbox.manager import ContainerManager
        from runtime.server.auth import ServiceOptions
        from runtime.server.broker import TaskBroker
        from runtime.server.http_api import create_app
        from runtime.server.tokens import TokenStore
    except ImportError as err:
        print(f"error: {MISSING_EXTRA} ({err})", file=sys.stderr)
        return 1
    tokens = TokenStore(args.tokens) if args.tokens is not None else None
    if tokens is not None and not len(tokens):
        print(f"warning: {args.tokens} has no tokens yet: every call is refused until `token add`",
              file=sys.stderr)
    try:  # first, so a taken port is said at once, before the manager starts
        sock = listening_socket(args.host, args.port)
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 1
    options = ServiceOptions(tokens=tokens, mcp=not args.no_mcp, mcp_idle_timeout=args.mcp_idle_timeout,
                             host=args.host, cleanup_interval=args.cleanup_interval or None)
    app = create_app(TaskBroker(ContainerManager()), options)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    host, port = sock.getsockname()[:2]
    # An empty token file still authenticates (it refuses every call): the banner says whose tokens.
    auth = f"tokens from {args.tokens}" if tokens is not None else "no authentication (loopback)"
    print(f"serving on http://{host}:{port} (API /v1, docs /docs, MCP /mcp); {auth}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=30, timeout_graceful_shutdown=10)
    # Server.run, not asyncio.run(serve()): it runs the loop uvicorn's config picks (uvloop when installed);
    # asyncio.run would always use the standard loop.
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound here (so --port 0 can be reported), with the TCP protocol named: asyncio turns Nagle off only on
    sockets whose proto is IPPROTO_TCP, and with Nagle on a keep-alive response waits for the client's
    delayed ACK (measured: +40 ms per request)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def cmd_mcp(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from runtime.sandbox.manager import ContainerManager
        from runtime.server.broker import TaskBroker
        from runtime.server.mcp_tools import run_stdio
        from runtime.server.tokens import LOCAL, TokenStore
    except ImportError as err:
        print(f"error: {MISSING_EXTRA} ({err})", file=sys.stderr)
        return 1
    scope = LOCAL
    token = os.environ.get("THEAPPAPP_TOKEN")
    if token:
        path = args.tokens or (Path(os.environ["THEAPPAPP_TOKENS"]) if os.environ.get("THEAPPAPP_TOKENS") else None)
        if path is None:
            parser.error("mcp: THEAPPAPP_TOKEN is set: name the token file with --tokens or THEAPPAPP_TOKENS")
        found = TokenStore(path).authenticate(token)
        if found is None:
            raise ConfigError(f"THEAPPAPP_TOKEN is not a token of {path}")
        scope = found
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # stdout carries the protocol
    asyncio.run(run_stdio(TaskBroker(ContainerManager()), scope))
    return 0


def cmd_token_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from runtime.ops.listing import table
    from runtime.server.tokens import read_tokens

    stored = read_tokens(args.tokens)
    if not stored:
        print(f"no tokens in {args.tokens}", file=sys.stderr)
        return 0
    rows = [(t.scope.name, ",".join(t.scope.projects), _or_none(t.scope.max_tasks), _or_none(t.scope.max_timeout),
             str(t.scope.max_body_bytes)) for t in stored]
    print(table(("NAME", "PROJECTS", "MAX TASKS", "MAX TIMEOUT", "MAX BODY"), rows))
    return 0


def _or_none(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def cmd_token_revoke(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from runtime.server.tokens import revoke_token

    revoke_token(args.tokens, args.name)
    print(f"revoked {args.name!r} in {args.tokens}", file=sys.stderr)
    return 0


def cmd_token_add(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from runtime.server.tokens import DEFAULT_MAX_BODY, Scope, add_token, token_names

    taken = token_names(args.tokens)  # (revoked names too: never given again)
    name = args.name or next(f"token-{n}" for n in range(1, len(taken) + 2) if f"token-{n}" not in taken)
    scope = Scope(name, tuple(args.projects), args.max_tasks, args.max_timeout, args.max_body or DEFAULT_MAX_BODY)
    token = add_token(args.tokens, scope)
    print(token)
    print(f"stored the hash of {name!r} (projects {', '.join(args.projects)}) in {args.tokens}; "
          "the token is shown only now", file=sys.stderr)
    return 0

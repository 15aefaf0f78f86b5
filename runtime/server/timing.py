"""`Server-Timing: sandbox;dur=<ms>`: how long a request spent in the sandbox manager's own call.

A client subtracts it from what it measured to get what the HTTP path itself costs (client, network,
server, auth, validation) without the engine's noise: a create's ~400 ms vary by tens of ms from one
to the next, far more than the few ms the service adds (`benchmarks/bench_server.py` reports both).
Wall time: under concurrent load it includes the event loop's time on other requests. Streamed answers
send their headers before the work, so they carry none.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_spent: ContextVar[list[float] | None] = ContextVar("theappapp_manager_seconds", default=None)


@contextlib.contextmanager
def in_manager() -> Iterator[None]:
    """Count the block's wall time as the manager's, for the request being served (if any)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        spent = _spent.get()
        if spent is not None:
            spent.append(time.perf_counter() - t0)


class ServerTiming:
    """Adds the header to every response whose handler spent time in the manager before answering."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        spent: list[float] = []
        token = _spent.set(spent)

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and spent:
                header = (b"server-timing", f"sandbox;dur={sum(spent) * 1000:.3f}".encode())
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            _spent.reset(token)

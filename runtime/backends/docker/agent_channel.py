"""One container's sandbox agent, over the container's attach stream: requests multiplexed by id.

Everything that arrives is untrusted — code in the sandbox can write into the agent's stdout,
or replace the agent — so it can break only this channel: a malformed or oversized frame, a
reply for a request nobody made, or more output than a request allows ends the channel with
a reason (`broken`), and every waiting request learns it at once. Memory stays bounded: a
reply queue takes at most its request's allowance, and frames are at most 1 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from runtime.agent.sandbox_agent import MAX_PAYLOAD, VERSION, FrameBuffer, ProtocolError, encode
from runtime.backends.docker.hijack import STDERR, ExecConnection, attach
from runtime.errors import (
    FileMissing,
    InvalidPath,
    InvalidRequest,
    SandboxError,
    SandboxFailure,
)

log = logging.getLogger(__name__)
HELLO_TIMEOUT = 10.0  # seconds: the agent is a Python start away once the container runs
SLACK = 64 * 1024  # per reply queue, beyond the request's own allowance (headers, the exit frame)
Reply = tuple[dict[str, Any], bytes]


class AgentLost(SandboxFailure):
    """The channel to the agent ended (the stream closed, or the agent broke the protocol)."""


def raise_for(header: dict[str, Any]) -> None:
    """An agent's `error` frame as the SandboxError a caller expects."""
    kind, message = str(header.get("kind")), str(header.get("message", "the sandbox agent refused"))
    raise {"InvalidPath": InvalidPath, "FileMissing": FileMissing, "InvalidRequest": InvalidRequest}.get(
        kind, SandboxFailure
    )(message)


@dataclass
class _Request:
    allowance: int
    queue: asyncio.Queue[Reply | None] = field(default_factory=asyncio.Queue)
    queued: int = 0


class AgentChannel:
    def __init__(self, container_id: str, conn: ExecConnection) -> None:
        self.container_id = container_id
        self.broken: str | None = None
        self._conn = conn
        self._ids = itertools.count(1)
        self._requests: dict[int, _Request] = {}
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, endpoint: tuple[str, str | int], api_version: str, container_id: str,
                   timeout: float = HELLO_TIMEOUT) -> AgentChannel:
        """Attach and greet; `AgentLost` if the agent does not answer in time or speaks another version."""
        channel = cls(container_id, await attach(endpoint, api_version, container_id))
        channel._reader = asyncio.get_running_loop().create_task(channel._read())
        try:
            hello = await channel.call({"op": "hello"}, timeout)
        except (AgentLost, TimeoutError) as err:
            await channel.close()
            raise AgentLost(f"the sandbox agent did not answer: {err or 'no hello in time'}") from err
        if hello.get("version") != VERSION:
            await channel.close()
            raise AgentLost(f"the image's sandbox agent speaks version {hello.get('version')}, this runtime "
                            f"{VERSION}: rebuild the image (nox -s build)")
        return channel

    # -- reading ----------------------------------------------------------------------------------

    async def _read(self) -> None:
        frames = FrameBuffer()
        try:
            while (item := await self._conn.next_chunk()) is not None:
                stream, data = item
                if stream == STDERR:  # the agent writes frames only to stdout; a crash's traceback goes here
                    log.warning("sandbox agent of %s wrote to stderr: %r", self.container_id[:12], data[-500:])
                    continue
                for header, payload in frames.feed(data):
                    self._dispatch(header, payload)
                if frames.pending > MAX_PAYLOAD * 2:
                    raise ProtocolError("a frame larger than the protocol allows")
        except ProtocolError as err:
            self._break(f"the sandbox agent broke the protocol ({err})")
        except Exception as err:  # never let a hostile stream take the manager down
            self._break(f"reading from the sandbox agent failed: {err!r}")
        else:
            self._break("the sandbox agent's stream ended")

    def _dispatch(self, header: dict[str, Any], payload: bytes) -> None:
        rid = header.get("id")
        request = self._requests.get(rid) if isinstance(rid, int) else None
        if request is None:
            if header.get("type") == "error" and rid is None:
                self._break(f"the sandbox agent gave up on the stream: {header.get('message')}")
            return  # an answer to nobody (a finished request, or forged): dropped
        request.queued += len(payload)
        if request.queued > request.allowance + SLACK:
            self._break(f"the sandbox agent sent more than request {rid} allows")
            return
        request.queue.put_nowait((header, payload))

    def hung_up(self) -> bool:
        """Broken, or its stream ended where the reader has not looked yet (a container removed just now)."""
        return self.broken is not None or self._conn.hung_up()

    def abandon(self, reason: str) -> None:
        """Stop using the channel (the agent stalled): later calls go through the engine's exec."""
        self._break(reason)

    def _break(self, reason: str, *, expected: bool = False) -> None:
        if self.broken is None:
            self.broken = reason
            log.log(logging.DEBUG if expected else logging.WARNING, "sandbox agent channel of %s closed: %s",
                    self.container_id[:12], reason)
        for request in self._requests.values():
            request.queue.put_nowait(None)
        self._conn.abort()

    # -- requests ---------------------------------------------------------------------------------

    async def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if self.broken is not None:
            raise AgentLost(self.broken)
        async with self._send_lock:
            try:
                await self._conn.write(encode(header, payload))
            except (ConnectionError, OSError) as err:
                self._break(f"cannot write to the sandbox agent: {err}")
                raise AgentLost(self.broken or str(err)) from err

    async def start(self, header: dict[str, Any], payload: bytes = b"", allowance: int = SLACK) -> int:
        """Send a request; its replies queue up (at most `allowance` payload bytes) for `replies`."""
        rid = next(self._ids)
        self._requests[rid] = _Request(allowance)
        try:
            await self.send({**header, "id": rid}, payload)
        except BaseException:
            self._requests.pop(rid, None)
            raise
        return rid

    async def reply(self, rid: int, timeout: float | None = None) -> Reply:
        """The next reply to `rid`; `AgentLost` if the channel ends first, TimeoutError past `timeout`."""
        request = self._requests[rid]
        if not request.queue.empty():
            item = request.queue.get_nowait()
        else:
            async with asyncio.timeout(timeout):  # unlike wait_for, no task per wait
                item = await request.queue.get()
        if item is None:
            request.queue.put_nowait(None)  # every later wait learns it too
            raise AgentLost(self.broken or "the sandbox agent's channel closed")
        request.queued -= len(item[1])
        return item

    def finish(self, rid: int) -> None:
        self._requests.pop(rid, None)

    async def call(self, header: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """One request, one answer (its `error` raised as the matching SandboxError)."""
        rid = await self.start(header)
        try:
            answer, _ = await self.reply(rid, timeout)
        finally:
            self.finish(rid)
        if answer.get("type") == "error":
            raise_for(answer)
        return answer

    async def replies(self, rid: int, until: tuple[str, ...]) -> AsyncIterator[Reply]:
        """Replies to `rid` up to and including the first of a type in `until` (an error raises)."""
        while True:
            header, payload = await self.reply(rid)
            if header.get("type") == "error":
                raise_for(header)
            yield header, payload
            if header.get("type") in until:
                return

    # -- files ------------------------------------------------------------------------------------

    async def write_files(self, files: dict[str, bytes]) -> None:
        """Every file sent in ≤1 MiB chunks, then every answer awaited: the first error raises."""
        pending = []
        for path, content in files.items():
            rid = next(self._ids)
            self._requests[rid] = _Request(SLACK)
            pending.append(rid)
            chunks = [content[i:i + MAX_PAYLOAD] for i in range(0, len(content), MAX_PAYLOAD)] or [b""]
            for i, chunk in enumerate(chunks):
                await self.send({"op": "write", "id": rid, "path": path, "last": i == len(chunks) - 1}, chunk)
        failure: SandboxError | None = None
        for rid in pending:
            try:
                header, _ = await self.reply(rid)
                if header.get("type") == "error" and failure is None:
                    try:
                        raise_for(header)
                    except SandboxError as err:
                        failure = err
            finally:
                self.finish(rid)
        if failure is not None:
            raise failure

    async def read_file(self, path: str, limit: int) -> bytes:
        rid = await self.start({"op": "read", "path": path, "limit": limit}, allowance=limit)
        data = bytearray()
        try:
            async for _header, payload in self.replies(rid, ("done",)):
                data += payload
                if len(data) > limit:
                    raise InvalidPath(f"{path!r} is over the {limit}-byte limit")
        finally:
            self.finish(rid)
        return bytes(data)

    async def list_files(self, path: str) -> tuple[list[list[Any]], bool]:
        rid = await self.start({"op": "list", "path": path}, allowance=MAX_PAYLOAD)
        try:
            async for header, payload in self.replies(rid, ("entries",)):
                entries = json.loads(payload)
                if not isinstance(entries, list):
                    raise AgentLost("the sandbox agent sent a listing that is not a list")
                return entries, bool(header.get("truncated"))
        finally:
            self.finish(rid)
        raise AgentLost("the sandbox agent sent no listing")

    async def close(self) -> None:
        self._break("closed by the manager", expected=True)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

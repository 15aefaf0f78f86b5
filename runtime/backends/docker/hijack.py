"""Start an exec over a raw, hijacked engine connection and read its multiplexed output.

Why not docker-py's `exec_start(socket=True)`: its HTTP layer reads the response
headers through a buffered file, so output bytes that arrive in the same read as the
headers can be lost, and the socket is blocking. Here the upgrade is done by hand on an
asyncio stream: nothing is lost, reads are natively async and cancellable, the
StreamReader's limit applies back-pressure (the caller's memory stays bounded), and
stdin can be half-closed so the command sees EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
from typing import Any

from runtime.errors import EngineError, EngineUnavailable, SandboxGone

STDOUT, STDERR = 1, 2
_READ = 64 * 1024


class ExecConnection:
    """One exec's attached stream: frames out, stdin in."""

    def __init__(self, exec_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.exec_id = exec_id
        self._reader = reader
        self._writer = writer
        self._stream = 0
        self._left = 0  # bytes left in the current frame

    async def next_chunk(self) -> tuple[int, bytes] | None:
        """(STDOUT|STDERR, bytes) or None at end of stream. Safe to cancel and call again."""
        while self._left == 0:
            try:
                header = await self._reader.readexactly(8)
            except asyncio.IncompleteReadError:
                return None
            except (ConnectionError, OSError):
                return None
            self._stream, self._left = header[0], int.from_bytes(header[4:8], "big")
        try:
            data = await self._reader.read(min(self._left, _READ))
        except (ConnectionError, OSError):
            return None
        if not data:
            return None
        self._left -= len(data)
        return self._stream, data

    async def send_stdin(self, data: bytes) -> None:
        """Write all of `data`, then half-close so the command reads EOF."""
        try:
            if data:
                self._writer.write(data)
                await self._writer.drain()
            if self._writer.can_write_eof():
                self._writer.write_eof()
        except (ConnectionError, OSError):
            pass  # the command exited without reading everything: not an error

    async def write(self, data: bytes) -> None:
        """Send bytes on the stream (an attached container's stdin), keeping it open."""
        self._writer.write(data)
        await self._writer.drain()

    def hung_up(self) -> bool:
        """The engine closed the stream (its container's main process ended), or the connection is going,
        even if `next_chunk` has not read that far yet: a poll of the socket, nothing consumed."""
        transport = self._writer.transport
        sock = transport.get_extra_info("socket")
        if transport.is_closing() or sock is None:
            return True
        poller = select.poll()
        # (POLLRDHUP is Linux's: elsewhere a closed peer shows once the reader has read the EOF.)
        poller.register(sock.fileno(), getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))

    def abort(self) -> None:
        """Drop the connection now, unsent data and all."""
        self._writer.transport.abort()

    async def close(self, grace: float = 1.0) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), grace)


async def _connect(endpoint: tuple[str, str | int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, address = endpoint
    try:
        if kind == "unix":
            return await asyncio.open_unix_connection(str(address))
        host, _, port = str(address).rpartition(":")
        return await asyncio.open_connection(host, int(port))
    except OSError as err:
        raise EngineUnavailable(f"cannot connect to the Docker engine: {err}") from err


async def _send(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, body: bytes | None,
    connection: str,
) -> tuple[int, dict[str, str]]:
    """Write one request, read the status and headers of the answer."""
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: {connection}\r\n"
    if connection == "Upgrade":
        head += "Upgrade: tcp\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode("ascii") + b"\r\n" + (body or b""))
    try:
        await writer.drain()
        status_line = await reader.readline()
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
    except (ConnectionError, OSError) as err:
        writer.close()
        raise EngineUnavailable(f"the Docker engine dropped a request: {err}") from err
    parts = status_line.decode("latin-1").split(" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str], limit: int = 1 << 20) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = bytearray()
        while len(data) <= limit:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            data += await reader.readexactly(size)
            await reader.readline()
        return bytes(data)
    if "content-length" in headers:
        return await reader.readexactly(min(int(headers["content-length"]), limit))
    return await reader.read(limit)


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", raw.decode("utf-8", "replace")))
    except (ValueError, AttributeError):
        return raw.decode("utf-8", "replace")


async def api_call(
    endpoint: tuple[str, str | int], method: str, path: str, payload: Any = None
) -> tuple[int, Any]:
    """One JSON request to the engine over a fresh connection: (status, decoded body or message).

    Used on the exec path instead of docker-py: no thread hop and no HTTP-library overhead,
    which is most of the manager's per-exec cost over a bare exec.
    """
    reader, writer = await _connect(endpoint)
    try:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        status, headers = await _send(reader, writer, method, path, body, "close")
        try:
            raw = await _body(reader, headers)
        except (asyncio.IncompleteReadError, ValueError, ConnectionError, OSError) as err:
            raise EngineUnavailable(f"the Docker engine sent a broken answer to {method} {path}: {err}") from err
    finally:
        writer.close()
    if 200 <= status < 300:
        return status, json.loads(raw) if raw.strip() else None
    return status, _message(raw)


async def start_exec(endpoint: tuple[str, str | int], api_version: str, exec_id: str) -> ExecConnection:
    """POST /exec/{id}/start with an Upgrade, and return the attached connection."""
    reader, writer = await _connect(endpoint)
    body = b'{"Detach":false,"Tty":false}'
    status, headers = await _send(reader, writer, "POST", f"/v{api_version}/exec/{exec_id}/start", body, "Upgrade")
    if status in (101, 200):
        return ExecConnection(exec_id, reader, writer)
    try:
        raw = await asyncio.wait_for(_body(reader, headers, 65536), 2.0)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        raw = b""
    writer.close()
    message = _message(raw)
    if status == 404:
        raise SandboxGone(f"the sandbox is gone: exec {exec_id[:12]} vanished with its container ({message})")
    if status == 409:
        raise SandboxGone(f"the sandbox is gone: its container is not running ({message})")
    raise EngineError(f"exec start failed with HTTP {status}: {message}")


async def attach(endpoint: tuple[str, str | int], api_version: str, container_id: str) -> ExecConnection:
    """POST /containers/{id}/attach with an Upgrade: the container's main process's stdin in, its output out.

    Attaching shows only what the process writes from now on; detaching leaves its stdin open
    (the container is created with OpenStdin and not StdinOnce), so another attach continues.
    """
    reader, writer = await _connect(endpoint)
    path = f"/v{api_version}/containers/{container_id}/attach?stream=1&stdin=1&stdout=1&stderr=1"
    status, headers = await _send(reader, writer, "POST", path, None, "Upgrade")
    if status in (101, 200):
        return ExecConnection(container_id, reader, writer)
    try:
        raw = await asyncio.wait_for(_body(reader, headers, 65536), 2.0)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        raw = b""
    writer.close()
    message = _message(raw)
    if status in (404, 409):
        raise SandboxGone(f"the sandbox is gone: cannot attach to its container ({message})")
    raise EngineError(f"attach failed with HTTP {status}: {message}")

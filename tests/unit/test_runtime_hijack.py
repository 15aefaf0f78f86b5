"""The raw exec stream against a fake engine on a unix socket: framing, no lost bytes, stdin EOF, errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from runtime.backends.docker.hijack import STDERR, STDOUT, ExecConnection, api_call, start_exec
from runtime.errors import EngineError, EngineUnavailable, SandboxGone

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


async def _serve(tmp_path: Path, handler: Handler) -> tuple[asyncio.AbstractServer, str]:
    path = str(tmp_path / "engine.sock")
    return await asyncio.start_unix_server(handler, path), path


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    line = next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length"))
    length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def test_output_sent_with_the_headers_is_not_lost_and_stdin_gets_eof(tmp_path: Path) -> None:
    got_stdin = asyncio.get_running_loop().create_future()

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        assert request.startswith(b"POST /v1.41/exec/EXEC1/start HTTP/1.1") and b"Upgrade: tcp" in request
        # Headers and the first frames in one write: a buffered HTTP client would swallow them.
        head = b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n\r\n"
        writer.write(head + frame(STDOUT, b"early ") + frame(STDERR, b"E"))
        got_stdin.set_result(await reader.read())  # until our half-close
        writer.write(frame(STDOUT, b"x" * 200_000) + frame(STDOUT, b"\xff\x00end"))
        await writer.drain()
        writer.close()

    server, path = await _serve(tmp_path, engine)
    async with server:
        conn = await start_exec(("unix", path), "1.41", "EXEC1")
        await conn.send_stdin(b"input bytes")
        chunks = []
        while (item := await conn.next_chunk()) is not None:
            chunks.append(item)
        await conn.close()
    assert await got_stdin == b"input bytes"
    out = b"".join(d for s, d in chunks if s == STDOUT)
    assert out == b"early " + b"x" * 200_000 + b"\xff\x00end"
    assert [d for s, d in chunks if s == STDERR] == [b"E"]
    assert max(len(d) for _, d in chunks) <= 64 * 1024  # read in bounded pieces


@pytest.mark.parametrize(
    ("status", "error"), [(404, SandboxGone), (409, SandboxGone), (500, EngineError)]
)
async def test_engine_refusals_become_sandbox_errors(tmp_path: Path, status: int, error: type[Exception]) -> None:
    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        body = b'{"message":"nope"}'
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    server, path = await _serve(tmp_path, engine)
    async with server:
        with pytest.raises(error, match="nope"):
            await start_exec(("unix", path), "1.41", "EXEC1")


async def test_no_engine_is_engine_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable):
        await start_exec(("unix", str(tmp_path / "absent.sock")), "1.41", "EXEC1")


@pytest.mark.parametrize("chunked", [False, True])
async def test_api_call_decodes_json_with_either_framing(tmp_path: Path, chunked: bool) -> None:
    seen: list[bytes] = []

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        body = b'{"Id": "abc", "Running": false}'
        if chunked:
            writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n")
            rest = f"{len(body) - 5:x}\r\n".encode() + body[5:]
            writer.write(b"5\r\n" + body[:5] + b"\r\n" + rest + b"\r\n0\r\n\r\n")
        else:
            writer.write(f"HTTP/1.1 201 Created\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    server, path = await _serve(tmp_path, engine)
    async with server:
        status, body = await api_call(("unix", path), "POST", "/v1.41/containers/c1/exec", {"Cmd": ["true"]})
    assert (status, body) == (201, {"Id": "abc", "Running": False})
    assert seen[0].startswith(b"POST /v1.41/containers/c1/exec HTTP/1.1") and seen[0].endswith(b'{"Cmd": ["true"]}')


async def test_api_call_returns_the_engines_message_on_refusal(tmp_path: Path) -> None:
    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"message":"No such container: c1"}'
        writer.write(f"HTTP/1.1 404 Not Found\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    server, path = await _serve(tmp_path, engine)
    async with server:
        assert await api_call(("unix", path), "GET", "/v1.41/exec/e/json") == (404, "No such container: c1")


async def test_a_stream_the_engine_closed_is_seen_hung_up_before_the_reader_gets_to_it() -> None:
    ours, engine_side = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    conn = ExecConnection("attach", reader, writer)
    engine_side.sendall(b"\x01\x00\x00\x00\x00\x00\x00\x02hi")  # a frame nobody has read yet
    assert not conn.hung_up()
    engine_side.close()  # the container was removed: the engine ends the attach stream
    # Nothing awaited since: the loop has not fed the reader its EOF, and the unread frame is still there.
    assert conn.hung_up()
    assert await conn.next_chunk() == (STDOUT, b"hi")
    assert await conn.next_chunk() is None
    conn.abort()

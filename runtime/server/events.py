"""Server-sent events of output: an event per chunk (`stdout`/`stderr`, UTF-8 decoded across chunk edges),
then, for a command, its `result`; a failure mid-stream is an `error` event (the status line was sent)."""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator

from runtime.errors import SandboxError
from runtime.sandbox.execution import ExecStream, OutputChunk
from runtime.server import schemas


async def output_events(chunks: AsyncIterator[OutputChunk]) -> AsyncIterator[bytes]:
    decoders = {"stdout": codecs.getincrementaldecoder("utf-8")("replace"),
                "stderr": codecs.getincrementaldecoder("utf-8")("replace")}
    try:
        async for chunk in chunks:
            text = decoders[chunk.stream].decode(chunk.data)
            if text:
                yield sse(chunk.stream, {"data": text})
    except SandboxError as err:
        yield sse("error", {"error": type(err).__name__, "detail": str(err)})


async def exec_events(stream: ExecStream) -> AsyncIterator[bytes]:
    async for event in output_events(aiter(stream)):
        yield event
        if event.startswith(b"event: error"):
            return
    if stream.result is not None:
        yield sse("result", schemas.ExecOut.of(stream.result).model_dump())


def sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()

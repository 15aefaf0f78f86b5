"""The shell session's end-marker scanning, without a shell: what arrives, in any chunking."""

from __future__ import annotations

import pytest

from runtime.sandbox.sessions import MARK, _Stream

NONCE = b"0f" * 16
MARKER = MARK + NONCE + b":"


def _fed(chunks: list[bytes], cap: int = 1 << 20) -> _Stream:
    stream = _Stream(cap)
    for chunk in chunks:
        stream.add(chunk, MARKER)
    return stream


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_the_marker_is_found_however_the_output_is_cut(size: int) -> None:
    whole = b"line one\nline two\n\n" + MARKER + b"42\n" + b"next"  # the shell's newline before the marker
    stream = _fed([whole[i:i + size] for i in range(0, len(whole), size)])
    assert stream.final == b"line one\nline two\n" and stream.status == 42
    assert bytes(stream.buf) == b"next"  # what came after belongs to what comes next


def test_a_marker_with_another_nonce_is_output() -> None:
    forged = MARK + b"ab" * 16 + b":0\n"
    stream = _fed([b"x" + forged + b"y\n"])
    assert stream.final is None
    out, dropped = stream.take(MARKER)
    assert out == b"x" + forged + b"y\n" and not dropped


def test_a_partial_marker_is_held_back_from_a_still_running_result() -> None:
    stream = _fed([b"progress 50%\n\n" + MARKER[:5]])
    out, _ = stream.take(MARKER)
    assert out == b"progress 50%\n"  # the newline before a possible marker waits with it
    stream.add(MARKER[5:] + b"0\n", MARKER)
    assert stream.final == b"" and stream.status == 0


def test_a_flood_is_capped_and_its_marker_still_found() -> None:
    stream = _fed([b"x" * 100_000 for _ in range(50)] + [b"\n" + MARKER + b"0\n"], cap=10_000)
    assert stream.status == 0
    out, dropped = stream.take(MARKER)
    assert len(out) == 10_000 and dropped
    assert len(stream.buf) == 0


def test_a_newline_handed_out_before_its_marker_came_does_not_hide_the_marker() -> None:
    stream = _fed([b"out\n"])
    assert stream.take(MARKER) == (b"out\n", False)  # a still-running read
    stream.add(MARKER + b"0\n", MARKER)
    assert stream.final == b"" and stream.status == 0

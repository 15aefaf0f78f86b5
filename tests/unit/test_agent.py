"""The sandbox agent, run here as the images run it (`python3 -I -S sandbox-agent.pyc`: bytecode compiled as
their Dockerfile compiles it), spoken to over
its stdin and stdout: exec with streaming, caps, stdin and timeouts that kill the whole tree;
files with the workspace's path rules; and the framing, including what garbage does to it."""

from __future__ import annotations

import asyncio
import json
import os
import py_compile
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runtime import labels
from runtime.agent import sandbox_agent as agent
from runtime.agent.sandbox_agent import FrameBuffer, ProtocolError, encode
from runtime.backends.docker.agents import runs_agent
from runtime.backends.docker.hostconfig import agent_command

AGENT = Path(agent.__file__)
FLAGS = ("-I", "-S")  # as `hostconfig.agent_command` starts it
Frame = tuple[dict[str, Any], bytes]


class Client:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.frames = FrameBuffer()
        self.pending: list[tuple[dict[str, Any], bytes]] = []
        self.next_id = 1

    async def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode(header, payload))
        await self.proc.stdin.drain()

    async def frame(self, timeout: float = 10.0) -> tuple[dict[str, Any], bytes]:
        assert self.proc.stdout is not None
        while not self.pending:
            data = await asyncio.wait_for(self.proc.stdout.read(65536), timeout)
            assert data, "the agent closed its stdout"
            self.pending += self.frames.feed(data)
        return self.pending.pop(0)

    async def until(self, rid: int, kinds: tuple[str, ...], timeout: float = 10.0) -> list[Frame]:
        got = []
        deadline = time.monotonic() + timeout
        while True:
            header, payload = await self.frame(max(0.01, deadline - time.monotonic()))
            if header.get("id") == rid:
                got.append((header, payload))
                if header["type"] in kinds:
                    return got

    async def run(self, argv: list[str], **extra: Any) -> tuple[dict[str, Any], bytes, bytes]:
        rid = self.next_id
        self.next_id += 1
        stdin = extra.pop("stdin_data", None)
        await self.send({"op": "exec", "id": rid, "argv": argv, "timeout": 10, "cap": 1 << 20,
                         "stdin": stdin is not None, **extra})
        if stdin is not None:
            await self.send({"op": "stdin", "id": rid}, stdin)
            await self.send({"op": "stdin_close", "id": rid})
        frames = await self.until(rid, ("exit", "error"), timeout=float(extra.get("timeout", 10)) + 10)
        out = b"".join(p for h, p in frames if h["type"] == "out" and h["stream"] == 1)
        err = b"".join(p for h, p in frames if h["type"] == "out" and h["stream"] == 2)
        return frames[-1][0], out, err


@pytest.fixture
async def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws.resolve()


# The agent as the images start it, and as a kernel without pidfd_open (gVisor may lack it) would:
# children then reaped on SIGCHLD.
WITHOUT_PIDFD = (
    "import os, runpy, sys; del os.pidfd_open; sys.argv = [sys.argv[1]]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.fixture(scope="module")
def agent_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's bytecode, made by the same `py_compile` call as the images' Dockerfile."""
    code = tmp_path_factory.mktemp("agent") / "sandbox-agent.pyc"
    py_compile.compile(str(AGENT), cfile=str(code), doraise=True)
    return code


async def _start(workspace: Path, code: Path, *, pidfd: bool = True) -> Client:
    argv = [sys.executable, *FLAGS, str(code)] if pidfd else [sys.executable, *FLAGS, "-c", WITHOUT_PIDFD, str(code)]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "THEAPPAPP_WORKSPACE": str(workspace)}, cwd=str(workspace),
    )
    c = Client(proc)
    await c.send({"op": "hello", "id": 0})
    header, _ = await c.frame()
    assert header == {"type": "hello", "id": 0, "version": agent.VERSION, "pid": proc.pid}
    return c


async def _stop(c: Client) -> None:
    assert c.proc.stdin is not None
    c.proc.stdin.close()
    try:
        await asyncio.wait_for(c.proc.wait(), 10)
    except TimeoutError:
        c.proc.kill()
        await c.proc.wait()


@pytest.fixture
async def client(workspace: Path, agent_code: Path) -> AsyncIterator[Client]:
    c = await _start(workspace, agent_code)
    yield c
    await _stop(c)


@pytest.fixture
async def client_without_pidfd(workspace: Path, agent_code: Path) -> AsyncIterator[Client]:
    c = await _start(workspace, agent_code, pidfd=False)
    yield c
    await _stop(c)


def test_frames_round_trip_and_split_anywhere() -> None:
    data = encode({"op": "exec", "id": 1}, b"\x00payload") + encode({"op": "ping", "id": 2})
    for cut in range(len(data)):
        buffer = FrameBuffer()
        frames = buffer.feed(data[:cut]) + buffer.feed(data[cut:])
        assert frames == [({"op": "exec", "id": 1}, b"\x00payload"), ({"op": "ping", "id": 2}, b"")]
        assert buffer.pending == 0


@pytest.mark.parametrize(
    "raw",
    [
        agent.PREFIX.pack(agent.MAX_HEADER + agent.MAX_PAYLOAD + 10, 5),  # oversized: refused before it is read
        agent.PREFIX.pack(10, agent.MAX_HEADER + 1),
        agent.PREFIX.pack(3, 5) + b"xxxxx",  # header longer than the frame
        agent.PREFIX.pack(4, 4) + b"nope",  # not JSON
        agent.PREFIX.pack(2, 2) + b"[]",  # JSON, not an object
    ],
)
def test_malformed_or_oversized_frames_are_refused(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameBuffer().feed(raw)


HEADERS: list[object] = [
    {"op": "exec", "id": 7, "argv": ["/bin/sh", "-c", "echo \"$HOME\" \\ \t"], "env": {"A": "ü€𝄞"}},
    {"nested": [[], {}, [1, -2, 3.5, 1e300, -0.0, 10**30], {"k": None, "t": True, "f": False}]},
    ["\x00\x1f\x7f control", "\ud800 lone surrogate", ""],
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")},
    "a string", 12, None,
]


@pytest.mark.parametrize("value", HEADERS)
def test_the_header_codec_writes_and_reads_what_json_does(value: object) -> None:
    """The agent's codec is CPython's C JSON codec without `json`'s import cost: same text, same values."""
    text = agent.dumps(value)
    assert text == json.dumps(value, separators=(",", ":"))
    assert json.dumps(agent.loads(text.encode())) == json.dumps(json.loads(text))  # NaN != NaN: compare as text


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"a":1} {}', b'{"a":1}x', b" {}", b'{"a":"\x01"}', b'"\xff"', b"[" * 100_000 + b"]" * 100_000],
)
def test_the_header_codec_refuses_what_is_not_one_json_value(data: bytes) -> None:
    with pytest.raises(ValueError):
        agent.loads(data)


def test_the_header_codec_refuses_what_json_cannot_write() -> None:
    with pytest.raises(TypeError, match="bytes is not JSON serializable"):
        agent.dumps({"payload": b"x"})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        agent.dumps(loop)
    assert agent.dumps([1, 2]) == "[1,2]"  # a failed call leaves nothing behind for the next


def test_a_header_nested_too_deeply_is_malformed_not_a_crash() -> None:
    head = b'{"a":' * 9_000 + b"1" + b"}" * 9_000  # within MAX_HEADER
    with pytest.raises(ProtocolError, match="nested too deeply"):
        FrameBuffer().feed(agent.PREFIX.pack(len(head), len(head)) + head)


def test_the_agent_starts_without_the_modules_that_made_its_start_slow(agent_code: Path) -> None:
    """Every container pays the agent's imports: `re`, `enum`, `collections` and the rest cost it ~16 ms of
    CPU on a 2-core host (benchmarks/bench_agent.py, section 7), for nothing it uses."""
    done = subprocess.run([sys.executable, *FLAGS, "-X", "importtime", str(agent_code), "--version"],
                          capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert {"os", "_json", "select"} <= imported  # the report is read right, or this test proves nothing
    heavy = {"re", "enum", "collections", "functools", "json", "socket", "signal", "selectors", "threading",
             "queue", "typing", "asyncio", "site"}
    assert not imported & heavy, sorted(imported & heavy)


def test_a_frame_too_large_is_never_encoded() -> None:
    with pytest.raises(ProtocolError):
        encode({"op": "write"}, b"x" * (agent.MAX_PAYLOAD + 1))


async def test_exec_streams_output_and_reports_the_exit(client: Client) -> None:
    exit_, out, err = await client.run(["/bin/bash", "-c", "echo out; echo err >&2; exit 3"])
    assert (out, err, exit_["code"], exit_["signal"], exit_["timed_out"]) == (b"out\n", b"err\n", 3, None, False)
    exit_, out, _ = await client.run(["/bin/bash", "-c", "kill -KILL $$"])
    assert (exit_["code"], exit_["signal"]) == (137, 9)
    exit_, _, err = await client.run(["no-such-program-anywhere"])
    assert exit_["code"] == 127 and b"no-such-program" in err


async def test_env_cwd_and_stdin_with_half_close(client: Client, workspace: Path) -> None:
    (workspace / "sub").mkdir()
    exit_, out, _ = await client.run(["/bin/bash", "-c", "pwd; echo $GREETING; wc -c"],
                                     env={"GREETING": "hi"}, cwd=str(workspace / "sub"), stdin_data=b"12345")
    assert exit_["code"] == 0 and out == f"{workspace}/sub\nhi\n5\n".encode()
    _, out, _ = await client.run(["/bin/bash", "-c", "echo $THEAPPAPP_EXEC"])
    assert out.strip(), "every command carries its marker"


async def test_a_working_directory_that_is_missing_or_a_file_is_refused_as_such(
    client: Client, workspace: Path
) -> None:
    (workspace / "file").write_text("x")
    cases = (("nowhere", "FileMissing", "does not exist"), ("file", "InvalidPath", "is not a directory"))
    for cwd, kind, says in cases:
        answer, _, _ = await client.run(["/bin/echo", "hi"], cwd=str(workspace / cwd))
        assert answer["type"] == "error" and answer["kind"] == kind, answer
        assert f"working directory {cwd!r} {says}" in answer["message"], "not read as the command missing"


async def test_output_past_the_cap_is_counted_not_sent(client: Client) -> None:
    exit_, out, _ = await client.run(["/bin/bash", "-c", "head -c 100000 /dev/zero"], cap=1000)
    assert len(out) == 1000 and exit_["out_bytes"] == 100000 and exit_["truncated"]


async def test_a_timeout_kills_everything_the_command_started_and_keeps_partial_output(client: Client) -> None:
    script = (
        "echo started; "
        "setsid sleep 301 & "  # its own session
        "(nohup sleep 302 >/dev/null 2>&1 &) ; "  # double-forked, no pipes held
        "python3 -c 'import os,time\nif os.fork()==0:\n os.setsid()\n if os.fork()==0:\n  time.sleep(303)' & "
        "trap '' TERM; sleep 304"
    )
    t0 = time.monotonic()
    exit_, out, _ = await client.run(["/bin/bash", "-c", script], timeout=1.5)
    assert exit_["timed_out"] and out == b"started\n" and time.monotonic() - t0 < 1.5 + 2
    await asyncio.sleep(0.2)
    survivors = [p for p in _sleepers() if p[1] in ("sleep 301", "sleep 302", "sleep 304") or "time.sleep(303)" in p[1]]
    assert survivors == []


async def test_a_finished_command_leaves_its_background_processes_alone(client: Client) -> None:
    exit_, _, _ = await client.run(["/bin/bash", "-c", "nohup sleep 311 >/dev/null 2>&1 & echo $!"])
    assert exit_["code"] == 0
    for _ in range(100):  # on a busy machine the child may still be on its way to exec sleep
        leftover = [pid for pid, cmd in _sleepers() if cmd == "sleep 311"]
        if leftover:
            break
        await asyncio.sleep(0.02)
    assert leftover, "a background process outlives the exec that started it, as under docker exec"
    for pid in leftover:
        os.kill(pid, 9)


async def test_concurrent_commands_are_multiplexed_on_one_stream(client: Client) -> None:
    rids = list(range(100, 150))
    for rid in rids:
        await client.send({"op": "exec", "id": rid, "argv": ["/bin/bash", "-c", f"sleep 0.$((RANDOM % 3)); echo {rid}"],
                           "timeout": 20, "cap": 1 << 20})
    outputs: dict[int, bytes] = {}
    codes: dict[int, int] = {}
    while len(codes) < len(rids):
        header, payload = await client.frame(20)
        if header["type"] == "out":
            outputs[header["id"]] = outputs.get(header["id"], b"") + payload
        elif header["type"] == "exit":
            codes[header["id"]] = header["code"]
    assert all(outputs[rid] == f"{rid}\n".encode() and codes[rid] == 0 for rid in rids)


async def test_files_write_read_list_under_the_workspace_rules(client: Client, workspace: Path) -> None:
    big = os.urandom(3 * agent.MAX_PAYLOAD + 17)
    chunks = [big[i:i + agent.MAX_PAYLOAD] for i in range(0, len(big), agent.MAX_PAYLOAD)]
    for i, chunk in enumerate(chunks):
        await client.send({"op": "write", "id": 7, "path": "deep/dir/big.bin", "last": i == len(chunks) - 1}, chunk)
    assert (await client.until(7, ("done", "error")))[-1][0]["type"] == "done"
    assert (workspace / "deep/dir/big.bin").read_bytes() == big
    await client.send({"op": "read", "id": 8, "path": "deep/dir/big.bin", "limit": 64 << 20})
    frames = await client.until(8, ("done", "error"))
    assert b"".join(p for h, p in frames if h["type"] == "data") == big and frames[-1][0]["size"] == len(big)
    await client.send({"op": "list", "id": 9, "path": "deep"})
    ((header, payload),) = await client.until(9, ("entries", "error"))
    assert [e[:2] for e in json.loads(payload)] == [["dir", "dir"]] and header["truncated"] is False

    (workspace / "inside").symlink_to(workspace / "deep/dir/big.bin")
    (workspace / "outside").symlink_to("/etc")
    await client.send({"op": "read", "id": 10, "path": "inside", "limit": 64 << 20})
    assert (await client.until(10, ("done", "error")))[-1][0]["type"] == "done"  # a link inside is followed
    cases = [
        ({"op": "read", "path": "outside/passwd", "limit": 1 << 20}, "InvalidPath"),
        ({"op": "write", "path": "outside/evil", "last": True}, "InvalidPath"),
        ({"op": "read", "path": "../etc/passwd", "limit": 1 << 20}, "InvalidPath"),
        ({"op": "read", "path": "/etc/passwd", "limit": 1 << 20}, "InvalidPath"),
        ({"op": "read", "path": "nope.txt", "limit": 1 << 20}, "FileMissing"),
        ({"op": "read", "path": "deep", "limit": 1 << 20}, "InvalidPath"),
        ({"op": "read", "path": "deep/dir/big.bin", "limit": 10}, "InvalidPath"),
        ({"op": "list", "path": "outside"}, "InvalidPath"),
        ({"op": "write", "path": "deep", "last": True}, "InvalidPath"),
    ]
    for rid, (request, kind) in enumerate(cases, start=20):
        await client.send({**request, "id": rid})
        (error,) = await client.until(rid, ("error", "done", "entries"))
        assert error[0]["type"] == "error" and error[0]["kind"] == kind, (request, error)
    assert not Path("/etc/evil").exists()


@pytest.mark.parametrize(
    "garbage",
    [
        agent.PREFIX.pack(50 << 20, 7) + b"garbage",  # a prefix past the limits
        # Framed right, but not JSON: the agent's own codec refuses it (in a process that has never
        # imported `json`, as in every container) with the message json would give.
        agent.PREFIX.pack(10, 10) + b'{"a":"\x01"}',
        agent.PREFIX.pack(6, 6) + b'{"a" 1',
    ],
)
async def test_garbage_on_stdin_stops_the_agent_listening_but_it_stays_alive(client: Client, garbage: bytes) -> None:
    assert client.proc.stdin is not None
    client.proc.stdin.write(garbage + encode({"op": "ping", "id": 5}))
    await client.proc.stdin.drain()
    header, _ = await client.frame()
    assert header["type"] == "error" and header["kind"] == "ProtocolError", header
    assert "SystemError" not in header["message"]
    with pytest.raises(TimeoutError):  # stopped listening: the ping after the garbage gets no pong
        await asyncio.wait_for(client.frame(), 0.3)
    await asyncio.sleep(0.2)
    assert client.proc.returncode is None  # alive: the container keeps running for the fallback


def test_the_health_socket_is_named_after_the_pid_namespace_and_falls_back_without_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Containers sharing a network namespace share its abstract sockets: each agent's name must be its own."""
    monkeypatch.setattr(agent.os, "readlink", lambda path: "pid:[4026532001]" if path == "/proc/self/ns/pid" else "")
    assert agent.health_socket() == "\0theappapp-sandbox-agent-pid:[4026532001]"

    def no_proc(path: str) -> str:
        raise FileNotFoundError(path)

    monkeypatch.setattr(agent.os, "readlink", no_proc)
    assert agent.health_socket() == agent.HEALTH_SOCKET


async def test_the_health_check_asks_the_running_agent(client: Client, agent_code: Path) -> None:
    done = await asyncio.create_subprocess_exec(sys.executable, *FLAGS, str(agent_code), "health")
    assert await done.wait() == 0


def _sleepers() -> list[tuple[int, str]]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            if cmd.startswith(("sleep 3", "python3 -c")):
                found.append((int(name), cmd))
    return found


async def test_a_background_process_holding_the_output_does_not_hold_the_command(client: Client) -> None:
    t0 = time.monotonic()
    exit_, out, _ = await client.run(["/bin/bash", "-c", "sleep 321 & echo started"])
    took = time.monotonic() - t0
    assert exit_["code"] == 0 and out == b"started\n" and took < agent.EXIT_DRAIN + 1.5
    holders = [pid for pid, cmd in _sleepers() if cmd == "sleep 321"]
    assert holders, "the background process lives on, its output drained"
    for pid in holders:
        os.kill(pid, 9)


async def test_a_lease_nobody_renews_ends_the_agent_and_one_given_up_does_not(client: Client) -> None:
    await client.send({"op": "lease", "id": 50, "seconds": 1.5})
    assert (await client.until(50, ("leased",)))[-1][0]["type"] == "leased"
    for _ in range(3):  # renewed by any frame
        await asyncio.sleep(0.7)
        await client.send({"op": "ping", "id": 51})
    assert client.proc.returncode is None
    await client.send({"op": "lease", "id": 52, "seconds": 0})  # handed over to a task: no lease
    await asyncio.sleep(2.5)
    assert client.proc.returncode is None
    await client.send({"op": "lease", "id": 53, "seconds": 1.0})
    t0 = time.monotonic()
    assert await asyncio.wait_for(client.proc.wait(), 5) == 0 and time.monotonic() - t0 < 3


async def test_without_pidfd_children_are_reaped_on_sigchld(client_without_pidfd: Client) -> None:
    client = client_without_pidfd
    exit_, out, _ = await client.run(["/bin/bash", "-c", "echo hi; exit 4"])
    assert (exit_["code"], out) == (4, b"hi\n")
    for i in range(20):  # exiting together: one SIGCHLD may stand for several children
        await client.send({"op": "exec", "id": 200 + i, "argv": ["/bin/bash", "-c", f"sleep 0.{i % 3}; exit {i}"],
                           "timeout": 20})
    codes: dict[int, int] = {}
    while len(codes) < 20:
        header, _ = await client.frame(20)
        if header["type"] == "exit":
            codes[header["id"] - 200] = header["code"]
    assert codes == {i: i for i in range(20)}
    exit_, _, _ = await client.run(["/bin/bash", "-c", "sleep 305"], timeout=0.5)
    assert exit_["timed_out"] and exit_["signal"] == 9


async def test_cancel_ends_a_command_as_timed_out(client: Client) -> None:
    await client.send({"op": "exec", "id": 60, "argv": ["/bin/bash", "-c", "echo go; sleep 306"], "timeout": 30})
    started, (_, payload) = await client.until(60, ("out",))
    assert started[0]["type"] == "started" and started[0]["pid"] > 1  # the command's pid, first
    assert payload == b"go\n"
    t0 = time.monotonic()
    await client.send({"op": "cancel", "id": 60})
    exit_ = (await client.until(60, ("exit",)))[-1][0]
    assert exit_["timed_out"] and exit_["signal"] == 9 and time.monotonic() - t0 < 2
    assert not [pid for pid, cmd in _sleepers() if cmd == "sleep 306"]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_output_nobody_reads_stops_being_read_and_the_agent_stays_small(client: Client) -> None:
    # The manager stops reading; the command writes without end. Past the high-water mark the agent
    # stops reading the command's pipes (which then block the command), instead of buffering it all.
    before = _rss(client.proc.pid)
    await client.send({"op": "exec", "id": 70, "argv": ["/bin/bash", "-c", "yes flood"], "timeout": 30,
                       "cap": 1 << 40})
    await asyncio.sleep(2.0)
    grown = _rss(client.proc.pid) - before
    assert grown < 4 * agent.HIGH_WATER, f"the agent grew by {grown} bytes with nobody reading"
    await client.send({"op": "cancel", "id": 70})
    got = await client.until(70, ("exit",), timeout=30)  # reading again: the rest arrives, then the end
    assert got[-1][0]["timed_out"] and sum(len(p) for h, p in got if h["type"] == "out") > agent.HIGH_WATER


async def test_a_signal_reaches_the_commands_process_group(client: Client) -> None:
    script = "trap 'echo got-int; exit 5' INT; echo ready; sleep 307 & wait"
    await client.send({"op": "exec", "id": 61, "argv": ["/bin/bash", "-c", script], "timeout": 30})
    assert (await client.until(61, ("out",)))[-1][1] == b"ready\n"
    await client.send({"op": "signal", "id": 61, "signal": 2})
    frames = await client.until(61, ("exit",))
    assert b"got-int\n" in b"".join(p for h, p in frames if h["type"] == "out")
    assert frames[-1][0]["code"] == 5
    await client.send({"op": "exec", "id": 62, "argv": ["/bin/sleep", "5"], "timeout": 30})
    await client.send({"op": "signal", "id": 62, "signal": 999})
    error = (await client.until(62, ("error",)))[-1][0]
    assert error["kind"] == "InvalidRequest" and "signal" in error["message"]
    await client.send({"op": "cancel", "id": 62})
    await client.until(62, ("exit",))


async def test_commands_get_the_default_sigpipe_as_from_a_shell(client: Client) -> None:
    # Python ignores SIGPIPE; a command that inherited that would print "Broken pipe" and exit 1.
    _exit, out, err = await client.run(["/bin/bash", "-c", "yes | head -1; echo \"${PIPESTATUS[*]}\""])
    assert out == b"y\n141 0\n" and b"Broken pipe" not in err, (out, err)


def test_a_descriptor_closed_and_reused_in_one_round_does_not_run_the_new_callback() -> None:
    loop = agent.Loop()
    calls: list[str] = []
    (r1, w1), (r2, w2) = os.pipe(), os.pipe()
    os.write(w1, b"x")
    os.write(w2, b"x")
    made: list[int] = []

    def swap(mine: int, other: int) -> None:
        calls.append("old")
        if made:
            return
        loop.unwatch(other)
        os.close(other)
        r3, w3 = os.pipe()  # the lowest free number: the one just closed
        made.extend((r3, w3))
        loop.watch(r3, agent.READABLE, lambda: calls.append("new"))
        loop.unwatch(mine)
        loop.running = False

    loop.watch(r1, agent.READABLE, lambda: swap(r1, r2))
    loop.watch(r2, agent.READABLE, lambda: swap(r2, r1))
    loop.run()
    assert made[0] in (r1, r2)  # the number was reused, or the test proves nothing
    assert calls == ["old"]
    for fd in (w1, w2, *made, r1 if made[0] == r2 else r2):
        os.close(fd)


async def test_a_pty_exec_runs_on_its_own_controlling_terminal_and_resizes(client: Client) -> None:
    script = "echo ctty=$(ps -o tty= -p $$); stty size; read line; stty size; echo \"read $line\""
    await client.send({"op": "exec", "id": 63, "argv": ["/bin/bash", "-c", script], "timeout": 30,
                       "stdin": True, "pty": {"rows": 30, "cols": 100}})
    seen = b""
    while b"30 100" not in seen:
        header, payload = await client.frame(10)
        if header.get("id") == 63 and header["type"] == "out":
            seen += payload
    assert b"ctty=pts/" in seen  # its controlling terminal, not only its stdin
    await client.send({"op": "resize", "id": 63, "rows": 40, "cols": 120})
    await client.send({"op": "stdin", "id": 63}, b"hello\n")
    frames = await client.until(63, ("exit",))
    rest = b"".join(p for h, p in frames if h["type"] == "out")
    assert b"40 120" in rest and b"read hello" in rest and frames[-1][0]["code"] == 0


async def test_an_agent_started_with_a_lease_ends_unless_renewed(agent_code: Path, tmp_path: Path) -> None:
    """`--lease`: a container made in the background ends even if its manager dies before a first frame."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *FLAGS, str(agent_code), "--lease", "1", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "THEAPPAPP_WORKSPACE": str(tmp_path)}, cwd=str(tmp_path),
    )
    t0 = time.monotonic()
    assert await asyncio.wait_for(proc.wait(), 5) == 0 and time.monotonic() - t0 < 3


@pytest.mark.parametrize(
    ("cmd", "stdin", "runs"),
    [
        (agent_command("/opt/a.pyc"), True, True),
        (["/usr/bin/python3", "-I", "/opt/a.pyc"], True, True),  # made before the agent ran with -S
        (agent_command("/opt/a.pyc", lease=15), True, True),  # a spare handed over: its lease is renewable
        ([*agent_command("/opt/a.pyc"), "--verbose", "1"], True, False),
        (agent_command("/opt/a.pyc"), False, False),  # no stdin for the manager's attach stream
        (["sleep", "infinity"], True, False),
        (agent_command("/opt/other.pyc"), True, False),
    ],
)
def test_a_container_runs_the_agent_only_as_the_runtime_starts_it(cmd: list[str], stdin: bool, runs: bool) -> None:
    attrs = {"Config": {"Labels": {labels.IMAGE_AGENT: "/opt/a.pyc"}, "OpenStdin": stdin, "Cmd": cmd}}
    assert runs_agent(attrs) is runs

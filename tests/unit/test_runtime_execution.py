"""Exec requests are validated before anything runs; output capture is bounded."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runtime.backends.docker.exec import KILLER_SCRIPT, Capture, ExecTarget, Executor
from runtime.config import RuntimeConfig
from runtime.errors import EngineUnavailable, InvalidIdentifier, InvalidPath, SandboxError
from runtime.sandbox.execution import ExecRequest, ExecStream

CONFIG = RuntimeConfig.load(env={"THEAPPAPP_INSTALLATION_ID": "x"}, max_output_bytes=8, default_timeout=5)


def test_capture_keeps_the_cap_and_counts_the_rest() -> None:
    capture = Capture(8)
    for piece in (b"abc", b"defgh", b"ijk", b"\xff"):
        capture.add(piece)
    assert bytes(capture.kept) == b"abcdefgh" and capture.total == 12 and capture.truncated
    assert Capture(8).truncated is False
    partial = Capture(3)
    partial.add("é€".encode())  # cut inside a character: decoded with a replacement, never an error
    assert partial.text() == "é\ufffd"


def test_shell_request_defaults_and_conversions() -> None:
    request = ExecRequest.shell(CONFIG, "echo $A", stdin="é", env={"A": 1}, workdir="sub")  # type: ignore[dict-item]
    assert request.argv == ("/bin/bash", "-c", "echo $A") and request.timeout == 5 and request.max_output_bytes == 8
    assert request.stdin == "é".encode() and request.env == {"A": "1"} and request.workdir == "/workspace/sub"
    assert request.user == "1000:1000"
    assert ExecRequest.shell(CONFIG, "true").workdir == "/workspace"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"env": {"A B": "x"}}, InvalidIdentifier),
        ({"env": {"1A": "x"}}, InvalidIdentifier),
        ({"env": {"A": "x\0y"}}, InvalidIdentifier),
        ({"workdir": "/etc"}, InvalidPath),
        ({"workdir": "../x"}, InvalidPath),
        ({"timeout": 0}, SandboxError),
    ],
)
def test_bad_requests_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ExecRequest.shell(CONFIG, "true", **kwargs)  # type: ignore[arg-type]


def test_commands_with_nul_are_refused() -> None:
    with pytest.raises(SandboxError):
        ExecRequest.shell(CONFIG, "echo \0")


def test_killer_uses_builtins_only_so_it_runs_when_no_pid_is_left() -> None:
    # No command substitution or external programs: each would need a fork ($(( )) is arithmetic).
    assert not re.search(r"\$\((?!\()|`", KILLER_SCRIPT)
    for external in ("ps ", "grep", "awk", "seq", "xargs", "pkill"):
        assert external not in KILLER_SCRIPT


class _SilentConnection:
    """A healthy command that prints nothing for a long while."""

    exec_id = "e1"

    async def next_chunk(self) -> None:
        await asyncio.sleep(3600)

    async def close(self, grace: float = 1.0) -> None:
        return None


def _silent_executor(answer: Any) -> Executor:
    """An executor whose exec prints nothing and whose engine answers inspects with `answer` (or raises it)."""
    engine = SimpleNamespace(api_timeout=60.0, api_version="1.41", endpoint=lambda: ("unix", "/nonexistent"))
    executor = Executor(engine, "1000:1000")  # type: ignore[arg-type]

    async def start(target: ExecTarget, request: ExecRequest) -> _SilentConnection:
        return _SilentConnection()

    async def api(method: str, path: str, payload: Any = None, deadline: float | None = None) -> tuple[int, Any]:
        if isinstance(answer, BaseException):
            raise answer
        await asyncio.sleep(min(answer, deadline or 60.0))  # an engine slower than the caller's deadline
        if answer > (deadline or 60.0):
            raise EngineUnavailable("no answer in time")
        return 200, {"State": {"Running": True}}

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    executor._start = start  # type: ignore[method-assign, assignment]
    executor._api = api  # type: ignore[method-assign]
    executor.kill_all = nothing  # type: ignore[method-assign]
    executor._exit_code = nothing  # type: ignore[method-assign]
    return executor


@pytest.mark.parametrize("answer", [EngineUnavailable("engine restarting"), 20.0])
async def test_an_unanswered_liveness_check_neither_kills_the_exec_nor_outlasts_its_timeout(answer: Any) -> None:
    executor = _silent_executor(answer)
    target = ExecTarget("c1", None, host_kill=False)  # no cgroup to read, not runc or crun here: the inspect path
    request = ExecRequest.shell(CONFIG, "sleep 100", timeout=2.5)
    stream = ExecStream(lambda _cid, req, finish: executor.chunks(target, req, finish), "c1", request)
    started = time.monotonic()
    result = await stream.collect()
    assert result.timed_out and time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("true", ("true",)),
        ("ls -la /tmp", ("ls", "-la", "/tmp")),
        ("python3 -c 'print(1)'", ("python3", "-c", "print(1)")),
        ('node -e "console.log(1)"', ("node", "-e", "console.log(1)")),
        ("pytest -q tests/ --maxfail=1", ("pytest", "-q", "tests/", "--maxfail=1")),
    ],
)
def test_a_command_of_plain_words_runs_without_a_shell(command: str, argv: tuple[str, ...]) -> None:
    assert ExecRequest.shell(CONFIG, command).argv == argv


@pytest.mark.parametrize(
    "command",
    ["echo $HOME", 'echo "$x"', "ls *", "true; true", "echo a > f", "a | b", "cd /tmp", "exit 3", "A=1 env",
     "kill %1", "~/bin/x", "echo \\n", "x\ny", "(true)", "echo `id`", "for i in 1; do :; done", "date +%s", "  "],
)
def test_anything_a_shell_would_expand_or_interpret_goes_through_the_shell(command: str) -> None:
    assert ExecRequest.shell(CONFIG, command).argv == ("/bin/bash", "-c", command)


def test_long_or_pathological_command_lines_are_simply_left_to_the_shell() -> None:
    # Word runs broken by a metacharacter at the end: a nested-quantifier regex would backtrack for ever.
    tsc = "tsc --pretty false --target es2022 --module commonjs --skipLibCheck --types node main.ts >&2 && node main.js"
    assert ExecRequest.shell(CONFIG, tsc).argv[:2] == ("/bin/bash", "-c")
    assert ExecRequest.shell(CONFIG, "echo " + "a " * 5000).argv[:2] == ("/bin/bash", "-c")  # over the length cap


def test_the_host_side_killer_finds_processes_in_a_child_cgroup_on_v2(tmp_path: Path) -> None:
    """crun under systemd on cgroup v2 runs the container in `<scope>/container`: the scope's own list is
    empty. Real processes stand in for the container's; the lowest pid is spared as its keeper."""
    import subprocess

    from runtime.backends.docker.cgroups import ContainerCgroup
    from runtime.backends.docker.exec import host_kill

    scope = tmp_path / "docker-c1.scope"
    (scope / "container").mkdir(parents=True)
    (scope / "cgroup.freeze").write_text("0")
    (scope / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    (scope / "cgroup.procs").write_text("")
    children = [subprocess.Popen(["sleep", "30"]) for _ in range(3)]
    try:
        (scope / "container" / "cgroup.procs").write_text("".join(f"{c.pid}\n" for c in children))
        host_kill(ContainerCgroup(2, scope, scope, scope), rounds=1)
        keeper = min(children, key=lambda c: c.pid)
        for child in children:
            if child is not keeper:
                assert child.wait(timeout=5) == -9  # SIGKILLed
        assert keeper.poll() is None and (scope / "cgroup.freeze").read_text() == "0"  # spared, and thawed
    finally:
        for child in children:
            child.kill()
            child.wait()

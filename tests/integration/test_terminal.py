"""A terminal in a sandbox: a real pty, so sizes, colours and a REPL work; and `theappapp-sandbox shell`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import docker
import pytest

from runtime import labels
from runtime.sandbox.handle import Sandbox
from runtime.sandbox.manager import ContainerManager
from runtime.sandbox.terminal import Terminal

from .conftest import INSTALLATION
from .test_cli import cli

pytestmark = pytest.mark.integration


async def _until(terminal: Terminal, seen: bytearray, text: bytes, timeout: float = 20) -> None:
    """Read what the terminal shows into `seen` until `text` is in it."""

    async def read() -> None:
        async for data in terminal:
            seen.extend(data)
            if text in seen:
                return
        raise AssertionError(f"the terminal ended before showing {text!r}: {bytes(seen)[-500:]!r}")

    await asyncio.wait_for(read(), timeout)


async def test_a_terminal_has_a_size_colours_a_repl_and_an_exit_code(
    manager: ContainerManager, sandbox: Sandbox
) -> None:
    terminal = await manager.open_terminal(sandbox.task_id, cols=100, rows=30)
    seen = bytearray()
    await terminal.write("tty; stty size\n")
    await _until(terminal, seen, b"30 100")
    assert b"/dev/pts/" in seen
    await terminal.resize(120, 40)
    await terminal.write("stty size; ls --color=always /\n")
    await _until(terminal, seen, b"40 120")
    await _until(terminal, seen, b"\x1b[01;34m")  # ls colours directories: it sees a terminal
    await terminal.write("python3 -q\n")
    await _until(terminal, seen, b">>> ")
    await terminal.write("6 * 7\n")
    await _until(terminal, seen, b"42")
    await terminal.write("exit()\n")
    await terminal.write("exit 3\n")
    async for data in terminal:  # to its end
        seen.extend(data)
    assert terminal.closed and terminal.exit_code == 3


async def test_ctrl_c_reaches_the_foreground_program(manager: ContainerManager, sandbox: Sandbox) -> None:
    terminal = await manager.open_terminal(sandbox.task_id)
    seen = bytearray()
    await terminal.write("sleep 300\n")
    await asyncio.sleep(1.0)
    await terminal.write(b"\x03")  # the line discipline turns it into SIGINT for the foreground job
    await terminal.write("echo after-$?\n")  # the interactive shell is back, and says how sleep ended
    await _until(terminal, seen, b"after-130")
    await terminal.close()
    assert terminal.closed


def test_the_shell_command_runs_a_terminal_in_a_fresh_sandbox_and_removes_it(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    before = _volumes(docker_client)
    done = cli("shell", "python", tmp=tmp_path, stdin="echo hi-from-$((6 * 7))\nexit 4\n")
    assert "hi-from-42" in done.stdout, done.stderr
    assert done.returncode == 4, done.stderr
    assert _volumes(docker_client) == before  # its throwaway volume went with it


def _volumes(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list(filters={"label": [f"{labels.INSTALLATION}={INSTALLATION}"]})}

"""`theappapp-sandbox shell LANG`: an interactive terminal in a fresh sandbox, removed on exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import uuid
from typing import Any

from runtime.config import RuntimeConfig


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    shell = sub.add_parser(
        "shell", help="an interactive terminal in a fresh sandbox, removed on exit",
        description="Open a shell on a real terminal in a new sandbox of LANG (vim, top, a REPL and colours "
        "work); the sandbox is removed when the shell exits. Exits with the shell's exit code.",
    )
    shell.add_argument("language", metavar="LANG", help="a registry language or alias (python, node, java, …)")
    shell.add_argument("--network", choices=("sandbox", "none"), help="sandbox (default: isolated egress) or none")
    shell.add_argument("--project", metavar="ID",
                       help="open this project's persistent volume (kept); default: a throwaway volume")
    shell.set_defaults(handler=cmd_shell)


def cmd_shell(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return asyncio.run(_shell(args))


async def _shell(args: argparse.Namespace) -> int:
    from runtime.sandbox.manager import ContainerManager

    overrides: dict[str, Any] = {"pool_enabled": False, "destroy_in_background": False}  # one task, then exit
    if args.network:
        overrides["network"] = args.network
    manager = ContainerManager(RuntimeConfig.load(**overrides))
    lang = manager.registry.resolve(args.language)  # UnknownLanguage before any engine work
    unique = uuid.uuid4().hex[:10]
    task_id, project_id = f"shell-{unique}", args.project or f"shell-{unique}"
    code: int | None = None
    try:
        await manager.startup()
        await manager.create_container(task_id, project_id, lang.name)
        try:
            cols, rows = shutil.get_terminal_size()
            terminal = await manager.open_terminal(task_id, cols, rows)
            code = await _attach(terminal)
        finally:
            await manager.destroy_container(task_id)
            if args.project is None:  # the throwaway project's volume goes with it
                await manager.delete_project_volume(project_id)
    finally:
        await manager.shutdown()
    return code or 0


async def _attach(terminal: object) -> int | None:
    """This process's terminal, raw, wired to the sandbox's until its shell exits."""
    from runtime.sandbox.terminal import Terminal

    assert isinstance(terminal, Terminal)
    loop = asyncio.get_running_loop()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = None
    if os.isatty(stdin):
        import termios
        import tty

        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)

    def typed() -> None:
        data = os.read(stdin, 4096)
        with contextlib.suppress(Exception):  # the terminal closed meanwhile: its output loop ends
            if data:
                terminal.send(data)
            else:  # our input ended (a pipe): so does the shell's
                loop.remove_reader(stdin)
                terminal.send(b"\x04")

    try:
        loop.add_reader(stdin, typed)
    except PermissionError:  # a regular file (or /dev/null) cannot be polled: send it all now
        with contextlib.suppress(Exception):
            terminal.send(sys.stdin.buffer.read() + b"\x04")
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGWINCH, lambda: terminal.set_size(*shutil.get_terminal_size()))
    try:
        async for data in terminal:
            os.write(stdout, data)
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(stdin)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGWINCH)
        if saved is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
    return terminal.exit_code

"""One command in a sandbox, as engine-neutral data: the request, its output chunks, its result.

How a command is run (and killed on timeout, and its output capped) is a backend's job;
`ExecStream` only hands the caller the backend's chunks and keeps the result.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from runtime.config import RuntimeConfig
from runtime.errors import InvalidIdentifier, InvalidRequest
from runtime.sandbox.interactive import Interactive
from runtime.sandbox.paths import under_workspace

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Characters no shell treats specially in an unquoted word.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:,+@=-")
_EXPANDS_IN_DOUBLE_QUOTES = frozenset("$`\\!")
_DIRECT_MAX = 4096  # longer command lines gain nothing measurable from skipping the shell


def _only_words(command: str) -> bool:
    """Plain words, blanks, single-quoted strings and double-quoted strings with nothing to expand.

    A scan, not a regular expression: linear in the command's length whatever it holds.
    """
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if c in _PLAIN or c in " \t":
            i += 1
        elif c in "'\"":
            end = command.find(c, i + 1)
            if end < 0 or (c == '"' and not _EXPANDS_IN_DOUBLE_QUOTES.isdisjoint(command[i + 1:end])):
                return False
            i = end + 1
        else:
            return False
    return True


# Words that are shell syntax or builtins with no program of the same behaviour.
_SHELL_ONLY = frozenset({
    ".", ":", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete",
    "compopt", "continue", "coproc", "declare", "dirs", "disown", "do", "done", "elif", "else", "enable",
    "esac", "eval", "exec", "exit", "export", "fc", "fg", "fi", "for", "function", "getopts", "hash", "help",
    "history", "if", "in", "jobs", "let", "local", "logout", "mapfile", "popd", "pushd", "read", "readarray",
    "readonly", "return", "select", "set", "shift", "shopt", "source", "suspend", "then", "time", "times",
    "trap", "type", "typeset", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
})


def direct_argv(command: str) -> tuple[str, ...] | None:
    """The argv a shell would run for `command`, when running it needs no shell at all; else None.

    Spawning a shell costs more than a small command itself (`bash -c true`: ~2.5 ms of a ~3 ms
    round trip here), and for a command line of plain words and literal quotes the shell would
    only split it and exec the program. Anything it could expand, redirect, glob, chain or
    assign (and its own builtins) still goes through the configured shell.
    """
    if len(command) > _DIRECT_MAX or not _only_words(command):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or not words[0] or "=" in words[0] or words[0] in _SHELL_ONLY:
        return None
    return tuple(words)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None  # None when it could not be known (e.g. still dying after a timeout)
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False  # some output went past the cap and was dropped
    stdout_bytes: int = 0  # everything the command wrote, kept or not
    stderr_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class OutputChunk:
    stream: Literal["stdout", "stderr"]
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True)
class ExecRequest:
    argv: tuple[str, ...]
    timeout: float
    max_output_bytes: int
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/workspace"
    stdin: bytes | None = None
    user: str = "1000:1000"
    # Input while it runs (sessions, background processes): stdin stays open until closed there.
    interactive: Interactive | None = field(default=None, compare=False)
    terminal: tuple[int, int] | None = None  # (cols, rows): run on a pseudo-terminal of that size

    @classmethod
    def shell(
        cls,
        config: RuntimeConfig,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        stdin: str | bytes | None = None,
        max_output_bytes: int | None = None,
        interactive: Interactive | None = None,
        terminal: tuple[int, int] | None = None,
    ) -> ExecRequest:
        """`command` through the configured shell, checked: bad values raise before any engine call."""
        if not isinstance(command, str) or "\0" in command:
            raise InvalidRequest("command must be a string without NUL bytes")
        env = dict(env or {})
        for name, value in env.items():
            if not _ENV_NAME.fullmatch(name) or "\0" in str(value):
                raise InvalidIdentifier(f"invalid environment variable {name!r}")
        limits, workspace = config.limits, config.security.workspace
        timeout = limits.default_timeout if timeout is None else timeout
        if timeout <= 0:
            raise InvalidRequest("timeout must be positive")
        return cls(
            argv=direct_argv(command) or (*limits.shell, command),
            timeout=timeout,
            max_output_bytes=limits.max_output_bytes if max_output_bytes is None else max_output_bytes,
            env={k: str(v) for k, v in env.items()},
            workdir=under_workspace(workspace, workdir if workdir is not None else workspace),
            stdin=stdin.encode("utf-8", "surrogateescape") if isinstance(stdin, str) else stdin,
            user=config.security.user,
            interactive=interactive,
            terminal=terminal,
        )


class Runner(Protocol):
    """What runs a request: a backend's `exec`."""

    def __call__(
        self, container_id: str, request: ExecRequest, finish: Callable[[ExecResult], None]
    ) -> AsyncIterator[OutputChunk]: ...


class ExecStream:
    """Output chunks as they arrive (`async for`); `result` once the stream is exhausted."""

    def __init__(
        self,
        run: Runner,
        container_id: str,
        request: ExecRequest,
        on_done: Callable[[ExecResult], None] | None = None,
    ) -> None:
        self._run, self._container_id, self._request, self._on_done = run, container_id, request, on_done
        self.result: ExecResult | None = None
        self._iter: AsyncIterator[OutputChunk] | None = None

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        if self._iter is None:
            self._iter = self._run(self._container_id, self._request, self._finish)
        return self._iter

    def _finish(self, result: ExecResult) -> None:
        self.result = result
        if self._on_done is not None:
            self._on_done(result)

    async def collect(self) -> ExecResult:
        """Run to the end, keeping only the capped output (the result)."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

"""Running a snippet: which file it goes in, what command runs it, and what comes back.

`ContainerManager.run_code` uses these; they need no engine, so they are tested alone.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.errors import InvalidPath, ValidationFailed
from runtime.registry import Language, Registry
from runtime.sandbox.execution import ExecResult
from runtime.sandbox.paths import relative_parts
from runtime.validation.findings import Finding

if TYPE_CHECKING:
    from runtime.sandbox.operations import TaskOperations
    from runtime.validation import CodeValidator

# The file name goes into the registry's shell command unquoted ({file}, {stem}), so it is
# limited to characters the shell never interprets. Other names are refused, not quoted.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")

@dataclass(frozen=True)
class RunResult:
    """What `run_code` did: the execution, plus the validator's findings (which never blocked it)."""

    exec: ExecResult
    findings: tuple[Finding, ...]
    filename: str  # relative to /workspace
    command: str

    @property
    def exit_code(self) -> int | None:
        return self.exec.exit_code

    @property
    def stdout(self) -> str:
        return self.exec.stdout

    @property
    def stderr(self) -> str:
        return self.exec.stderr

    @property
    def ok(self) -> bool:
        return self.exec.ok


def default_filename(language: Language, code: str) -> str:
    """`main<ext>`, or what the language's `source_file` makes of the code (Java: `<PublicClass>.java`)."""
    if language.source_file is None:
        return f"main{language.extension}"
    return language.source_file.name_for(code, language.extension)


def check_filename(filename: str) -> str:
    """The normalised relative path, or `InvalidPath`: inside /workspace and shell-inert."""
    parts = relative_parts(filename)
    for part in parts:
        if not _SAFE_NAME.fullmatch(part):
            raise InvalidPath(
                f"file name {filename!r}: use letters, digits and '_', '.', '+', '-' (not first) in each part, "
                "since it is put into the language's run command"
            )
    return "/".join(parts)


class CodeRunner:
    """`run_code`: validate, write, run. Holds the validator (made on first use, replaceable, e.g. strict)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.validator: CodeValidator | None = None

    async def run(
        self,
        manager: TaskOperations,
        task_id: str,
        code: str,
        filename: str | None,
        *,
        strict: bool,
        timeout: float | None,
        env: Mapping[str, str] | None,
        stdin: str | bytes | None,
    ) -> RunResult:
        """Write `code` into /workspace, validate it, run it with the language's command.

        The findings come back with the result and never stop the run, unless `strict`:
        then error-severity findings raise `ValidationFailed` before anything is written.
        The default file is `main<ext>` unless the language names its files otherwise.
        """
        from runtime.validation import CodeValidator, blocking
        from runtime.validation.validator import CHILD_PROCESS_FROM

        lang = self.registry.resolve(manager.task_info(task_id).language)
        # The default name comes from the code (Java: its class): checked like a given one, it goes into a shell line.
        name = check_filename(filename if filename is not None else default_filename(lang, code))
        if self.validator is None:
            self.validator = CodeValidator(self.registry)
        validate = functools.partial(self.validator.validate, code, lang.name, filename=name)
        # A 1 KB snippet validates in well under a millisecond; only big files go to a thread
        # (their syntax check runs in the validator's child process, outside the GIL).
        findings = await asyncio.to_thread(validate) if len(code) >= CHILD_PROCESS_FROM else validate()
        errors = blocking(findings)
        if strict and errors:
            raise ValidationFailed(
                f"{len(errors)} error(s) in {name}: " + "; ".join(str(f) for f in errors[:3]), tuple(findings)
            )
        await manager.write_files(task_id, {name: code})
        command = lang.command_for(name)
        result = await manager.exec_command(task_id, command, timeout=timeout, env=env, stdin=stdin)
        return RunResult(result, tuple(findings), name, command)

    def close(self) -> None:
        if self.validator is not None:
            self.validator.close()  # its syntax-check process, if a large file started one

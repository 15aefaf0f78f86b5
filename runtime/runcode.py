"""Running a snippet: which file it goes in, what command runs it, and what comes back.

`ContainerManager.run_code` uses these; they need no engine, so they are tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.errors import InvalidPath
from runtime.execution import ExecResult
from runtime.paths import relative_parts
from runtime.registry import Language
from runtime.validation.findings import Finding

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

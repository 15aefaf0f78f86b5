"""Running a snippet: which file it goes in, what command runs it, and what comes back.

`ContainerManager.run_code` uses these; they need no engine, so they are tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.errors import InvalidPath
from runtime.registry import Language
from runtime.sandbox.execution import ExecResult
from runtime.sandbox.paths import relative_parts
from runtime.validation.findings import Finding

# The file name goes into the registry's shell command unquoted ({file}, {stem}), so it is
# limited to characters the shell never interprets. Other names are refused, not quoted.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")

# Java needs the public class in a file of the same name (javac enforces it; the source
# launcher runs the first class), so the default file is named after that class.
_JAVA_PUBLIC_TYPE = re.compile(
    r"^[ \t]*public\s+(?:(?:final|abstract|sealed|strictfp)\s+)*(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)",
    re.MULTILINE,
)
_JAVA_ANY_CLASS = re.compile(r"^[ \t]*(?:(?:final|abstract)\s+)*class\s+([A-Za-z_$][\w$]*)", re.MULTILINE)


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
    """`main<ext>`, except Java: `<PublicClass>.java` (falling back to the first class, then Main)."""
    if language.extension == ".java":
        match = _JAVA_PUBLIC_TYPE.search(code) or _JAVA_ANY_CLASS.search(code)
        return f"{match.group(1) if match else 'Main'}.java"
    return f"main{language.extension}"


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

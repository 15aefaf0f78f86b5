"""What the validator reports: one `Finding` per problem, located by line and column."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    """One problem in the code. `line` and `column` are 1-based; 0 means not known (line 0: the whole file)."""

    rule_id: str
    severity: Severity
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}" if self.line else "-"
        return f"{where} {self.severity} [{self.rule_id}] {self.message}"


class LineIndex:
    """Maps character offsets to 1-based (line, column); built once per text, on first use."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] | None = None

    def position(self, offset: int) -> tuple[int, int]:
        if self._starts is None:
            # offsets where each line starts (one past the end too, which bisect never returns)
            self._starts = [0, *itertools.accumulate(len(line) + 1 for line in self._text.split("\n"))]
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

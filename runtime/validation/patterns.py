"""Per-language dangerous patterns (declared in languages.yaml), matched fast and outside comments.

Python's `re` finds a literal or a small first-character set quickly, but a pattern
that opens with `\\b` or a lookbehind is tried at every offset (about 15x slower on a
1 MB file). So each pattern gets a weaker "scout": the same regex with the leading
zero-width assertion of each top-level branch removed. The scout finds candidates; the
full pattern confirms each one at that offset, where its assertions still see the
characters before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from runtime.registry import Pattern
from runtime.validation.findings import Finding, LineIndex
from runtime.validation.lexical import CodeMask

_GLOBAL_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")
_LEADING_ASSERTION = re.compile(r"^(?:\\b|\(\?<[!=](?:\\.|\[(?:\\.|[^\]\\])*\]|[^()\\\[])*\))+")


def _top_level_branches(regex: str) -> list[str] | None:
    """Split on top-level `|`; None when the text is too unusual to split safely."""
    branches, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if regex.startswith("]", i + 1) or regex.startswith("^]", i + 1):
                i += 2 if regex[i + 1] == "]" else 3
                continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            branches.append(regex[start:i])
            start = i + 1
        i += 1
    if depth != 0 or in_class:
        return None
    branches.append(regex[start:])
    return branches


def scout_for(regex: str) -> re.Pattern[str] | None:
    """A regex matching wherever `regex` matches (and maybe more), but found faster; None if no gain."""
    flags_match = _GLOBAL_FLAGS.match(regex)
    flags = flags_match.group(0) if flags_match else ""
    body = regex[len(flags):]
    branches = _top_level_branches(body)
    if branches is None:
        return None
    stripped = [_LEADING_ASSERTION.sub("", b, count=1) for b in branches]
    if stripped == branches or any(not b for b in stripped):
        return None
    try:
        return re.compile(flags + "|".join(stripped))
    except re.error:
        return None


@dataclass(frozen=True)
class CompiledPattern:
    pattern: Pattern
    rule_id: str
    full: re.Pattern[str]
    scout: re.Pattern[str] | None

    @classmethod
    def of(cls, pattern: Pattern, language: str) -> CompiledPattern:
        return cls(pattern, f"pattern.{language}.{pattern.id}", re.compile(pattern.regex), scout_for(pattern.regex))

    def matches(self, text: str) -> Iterator[re.Match[str]]:
        """Like `full.finditer(text)`, via the scout when there is one."""
        if self.scout is None:
            yield from self.full.finditer(text)
            return
        pos, end = 0, len(text)
        search, match = self.scout.search, self.full.match
        while pos <= end:
            candidate = search(text, pos)
            if candidate is None:
                return
            start = candidate.start()
            found = match(text, start)
            if found is not None:
                yield found
                pos = max(found.end(), start + 1)
            else:
                pos = start + 1


def scan_patterns(
    text: str,
    patterns: tuple[CompiledPattern, ...],
    mask: CodeMask | None,
    lines: LineIndex,
    per_rule_limit: int,
) -> list[Finding]:
    findings: list[Finding] = []
    for compiled in patterns:
        count = 0
        for m in compiled.matches(text):
            if mask is not None and mask.hidden(m.start()):
                continue
            line, column = lines.position(m.start())
            pattern = compiled.pattern
            findings.append(Finding(compiled.rule_id, pattern.severity, line, column, pattern.message))
            count += 1
            if count >= per_rule_limit:
                break
    return findings

"""Per-language dangerous patterns (declared in languages.yaml), matched fast and outside comments.

Python's `re` finds a literal or a small first-character set quickly, but a pattern
that opens with `\\b` or a lookbehind is tried at every offset (about 15x slower on a
1 MB file). So each pattern gets a weaker "scout": the same regex with the leading
zero-width assertion of each top-level branch removed. The scout finds candidates; the
full pattern confirms each one at that offset, where its assertions still see the
characters before it.

Better still, when every branch of a pattern opens with a literal (`os.system`, `eval`,
`Marshal.load`), those literals are found with `str.find`, which is close to memchr speed:
a pattern whose literals do not occur costs a fraction of a millisecond per megabyte.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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


_sre_parser: Any
_sre_constants: Any
try:  # the stdlib's own regex parser: private, so its absence only costs speed
    _sre_parser = importlib.import_module("re._parser")
    _sre_constants = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover
    _sre_parser = _sre_constants = None

_MAX_LITERALS = 64


def _prefixes(items: Sequence[tuple[Any, Any]]) -> list[str] | None:
    """Literal text every match of this sequence starts with, one string per alternative."""
    c = _sre_constants
    out = [""]
    for op, av in items:
        if op is c.LITERAL:
            out = [p + chr(av) for p in out]
            continue
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT) and out == [""]:
            continue  # a leading zero-width assertion: the full pattern re-checks it
        if op is c.BRANCH:
            inner: list[str] = []
            for branch in av[1]:
                sub = _prefixes(branch.data)
                if sub is None:
                    return None
                inner += sub
            out = [p + q for p in out for q in inner]
        elif op is c.SUBPATTERN and not av[1] and not av[2]:  # a group without scoped flags
            sub = _prefixes(av[3].data)
            if sub is None:
                return None
            out = [p + q for p in out for q in sub]
        break
    return out if len(out) <= _MAX_LITERALS else None


def literal_starts(regex: str) -> tuple[tuple[str, ...], bool] | None:
    """(literals, ignore_case) such that every match of `regex` starts with one of the literals,
    or None when some branch does not start with a distinctive literal."""
    if _sre_parser is None:
        return None
    try:
        parsed = _sre_parser.parse(regex)
    except re.error:
        return None
    prefixes = _prefixes(parsed.data)
    if not prefixes:
        return None
    for prefix in prefixes:  # too common to be worth it: empty, or a single letter or digit
        if not prefix or (len(prefix) < 2 and prefix.replace("_", "a").isalnum()):
            return None
    ignore_case = bool(parsed.state.flags & _sre_constants.SRE_FLAG_IGNORECASE)
    literals = {p.casefold() for p in prefixes} if ignore_case else set(prefixes)
    return tuple(sorted(literals)), ignore_case


def _literal_candidates(haystack: str, literals: tuple[str, ...]) -> list[int]:
    positions: set[int] = set()
    for literal in literals:
        find = haystack.find
        i = find(literal)
        while i != -1:
            positions.add(i)
            i = find(literal, i + 1)
    return sorted(positions)


@dataclass(frozen=True)
class CompiledPattern:
    pattern: Pattern
    rule_id: str
    full: re.Pattern[str]
    scout: re.Pattern[str] | None
    literals: tuple[tuple[str, ...], bool] | None

    @classmethod
    def of(cls, pattern: Pattern, language: str) -> CompiledPattern:
        regex, rule_id = pattern.regex, f"pattern.{language}.{pattern.id}"
        return cls(pattern, rule_id, re.compile(regex), scout_for(regex), literal_starts(regex))

    def matches(self, text: str, lowered: str | None = None) -> Iterator[re.Match[str]]:
        """`lowered`: `text.casefold()` if it has the same length (lets case-insensitive literals be used)."""
        return iter_matches(self.full, self.scout, text, literals=self.literals, lowered=lowered)


def iter_matches(
    full: re.Pattern[str],
    scout: re.Pattern[str] | None,
    text: str,
    scout_text: str | None = None,
    literals: tuple[tuple[str, ...], bool] | None = None,
    lowered: str | None = None,
) -> Iterator[re.Match[str]]:
    """Like `full.finditer(text)`, but faster: candidates come from `literals` (see
    `literal_starts`; case-insensitive ones are looked up in `lowered`), else from `scout`
    (searched in `scout_text`). Both stand-in texts must have the same offsets as `text`."""
    if literals is not None and (not literals[1] or lowered is not None):
        haystack = lowered if literals[1] and lowered is not None else text
        last_end = 0
        for start in _literal_candidates(haystack, literals[0]):
            if start < last_end:
                continue
            found = full.match(text, start)
            if found is not None:
                yield found
                last_end = max(found.end(), start + 1)
        return
    if scout is None:
        yield from full.finditer(text)
        return
    haystack = text if scout_text is None else scout_text
    pos, end = 0, len(text)
    search, match = scout.search, full.match
    while pos <= end:
        candidate = search(haystack, pos)
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
    lowered: str | None = None
    if any(c.literals is not None and c.literals[1] for c in patterns):
        lowered = text.casefold()
        lowered = lowered if len(lowered) == len(text) else None
    for compiled in patterns:
        count = 0
        for m in compiled.matches(text, lowered):
            if mask is not None and mask.hidden(m.start()):
                continue
            line, column = lines.position(m.start())
            pattern = compiled.pattern
            findings.append(Finding(compiled.rule_id, pattern.severity, line, column, pattern.message))
            count += 1
            if count >= per_rule_limit:
                break
    return findings

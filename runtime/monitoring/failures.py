"""Why an execution failed, read from its exit status and the tail of its stderr.

Outcomes: ok, timeout, oom, disk_full (the project's disk quota was hit), syntax_error (syntax or
compile error), missing_module
(module, package, gem, class or required file not found), runtime_error (an uncaught
exception; `error_type` names it: Python exception class, Node error name, Java
exception, Go panic, Ruby and PHP error class), exit_nonzero (anything else).

How each language reports its failures is declared in languages.yaml (`failures:`): this
module only applies those rules. The running language's rules come first; every other
language's follow (in registry order), since a task may run any program; then the generic
checks below, which know no language.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from runtime.registry import FailureRule, Language, Registry, get_registry

Outcome = Literal[
    "ok", "timeout", "oom", "disk_full", "syntax_error", "missing_module", "runtime_error", "exit_nonzero",
]
OUTCOMES: tuple[Outcome, ...] = (
    "ok", "timeout", "oom", "disk_full", "syntax_error", "missing_module", "runtime_error", "exit_nonzero",
)
# The C library's words for a full filesystem (ENOSPC: the project's quota) and a quota (EDQUOT), which
# every runtime repeats (Python, Java, Go, Ruby, PHP; node as its code ENOSPC): checked before any
# language's rules, which would call it an OSError or an IOException.
_DISK_FULL = re.compile(r"(?i:no space left on device)|\bENOSPC\b|(?i:disk quota exceeded)|\bEDQUOT\b")
TAIL_CHARS = 8192  # the rules read this much of the end of stderr: a few regex searches stay cheap
_TYPE_MAX = 120


@dataclass(frozen=True)
class Failure:
    outcome: Outcome
    error_type: str | None = None


def apply_rule(rule: FailureRule, tail: str) -> Failure | None:
    """The failure `rule` reads in `tail`, or None when it does not apply."""
    if rule.compiled_requires is not None and rule.compiled_requires.search(tail) is None:
        return None
    if rule.last_match:
        found = None
        for found in rule.compiled.finditer(tail):  # noqa: B007 - the last one is wanted
            pass
    else:
        found = rule.compiled.search(tail)
    if found is None:
        return None
    # The first group that captured text names the error (a rule's alternatives each capture
    # it in a group of their own); without one, the rule's literal type.
    error_type = next((g for g in found.groups() if g), None) or rule.error_type
    if error_type and rule.strip_prefix:
        error_type = error_type.removeprefix(rule.strip_prefix)
    outcome = rule.outcome
    if error_type:
        outcome = next((o for pattern, o in rule.compiled_outcomes if pattern.fullmatch(error_type)), outcome)
    return Failure(outcome, error_type[:_TYPE_MAX] if error_type else None)


def _rules(languages: Mapping[str, Language], own: Language | None) -> Iterator[FailureRule]:
    """The rules in the order they are tried: the language's own, then every other language's."""
    if own is not None:
        yield from (r for r in own.failures if not r.only_own)
    for language in languages.values():
        if language is not own:
            yield from (r for r in language.failures if not r.only_own)


def _signal_name(exit_code: int) -> str | None:
    if 128 < exit_code < 128 + 65:
        try:
            return signal.Signals(exit_code - 128).name
        except ValueError:
            return None
    return None


def classify(
    language: str,
    exit_code: int | None,
    timed_out: bool,
    oom_killed: bool,
    stderr_tail: str,
    registry: Registry | None = None,
) -> Failure:
    """The outcome of one execution of `language` (a registry name). Cheap: a few regex searches
    over a few KiB, with the rules compiled when `registry` (default: `get_registry()`) loaded."""
    settled = _without_stderr(exit_code, timed_out, oom_killed)
    if settled is not None:
        return settled
    languages = (registry if registry is not None else get_registry()).languages
    return _from_stderr(languages, language, exit_code, stderr_tail[-TAIL_CHARS:])


def classify_without_rules(exit_code: int | None, timed_out: bool, oom_killed: bool, stderr_tail: str) -> Failure:
    """As `classify`, with the generic checks only: for when no registry can be read."""
    settled = _without_stderr(exit_code, timed_out, oom_killed)
    return settled if settled is not None else _from_stderr({}, "", exit_code, stderr_tail[-TAIL_CHARS:])


def _without_stderr(exit_code: int | None, timed_out: bool, oom_killed: bool) -> Failure | None:
    if timed_out:
        return Failure("timeout")
    if oom_killed:
        return Failure("oom", "oom-killed")
    if exit_code == 0:
        return Failure("ok")
    return None


def _from_stderr(languages: Mapping[str, Language], language: str, exit_code: int | None, tail: str) -> Failure:
    full = _DISK_FULL.search(tail)
    if full is not None:
        return Failure("disk_full", "EDQUOT" if "quot" in full.group().lower() else "ENOSPC")
    own = languages.get(language)
    for rule in _rules(languages, own):
        found = apply_rule(rule, tail)
        if found is not None:
            return found
    if exit_code is None:
        return Failure("exit_nonzero", "no exit code")
    if exit_code == 127 or "command not found" in tail:
        return Failure("exit_nonzero", "command not found")
    name = _signal_name(exit_code)
    if name is not None:
        return Failure("exit_nonzero", name)
    for rule in own.failures if own is not None else ():
        found = apply_rule(rule, tail) if rule.only_own else None
        if found is not None:
            return found
    return Failure("exit_nonzero", f"exit status {exit_code}")

"""Why an execution failed, read from its exit status and the tail of its stderr.

Outcomes: ok, timeout, oom, syntax_error (syntax or compile error), missing_module
(module, package, gem, class or required file not found), runtime_error (an uncaught
exception; `error_type` names it: Python exception class, Node error name, Java
exception, Go panic, Ruby and PHP error class), exit_nonzero (anything else).
Each language's rules come first for its own executions; the others are tried after,
since a task may run any program.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["ok", "timeout", "oom", "syntax_error", "missing_module", "runtime_error", "exit_nonzero"]
OUTCOMES: tuple[Outcome, ...] = (
    "ok", "timeout", "oom", "syntax_error", "missing_module", "runtime_error", "exit_nonzero",
)
_TYPE_MAX = 120


@dataclass(frozen=True)
class Failure:
    outcome: Outcome
    error_type: str | None = None


def _f(outcome: Outcome, error_type: str | None) -> Failure:
    return Failure(outcome, error_type[:_TYPE_MAX] if error_type else None)


# --- Python -------------------------------------------------------------------------------
# An exception line: "Name: message" or a bare class-like name ("KeyboardInterrupt", "pkg.Error").
_PY_LAST = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Z_]\w*)(?::\s.*)?$|^((?:[A-Za-z_]\w*\.)*\w+): .*$")
_PY_GROUP = re.compile(r"^\s*\| ((?:Base)?ExceptionGroup): ", re.M)
_PY_SYNTAX = {"SyntaxError", "IndentationError", "TabError"}
_PY_MISSING = re.compile(r"^(ModuleNotFoundError|ImportError): (?:No module named|cannot import name)", re.M)


def _python(tail: str) -> Failure | None:
    missing = _PY_MISSING.search(tail)
    if missing:
        return _f("missing_module", missing.group(1))
    group = _PY_GROUP.search(tail)
    if group:
        return _f("runtime_error", group.group(1))
    if "Traceback (most recent call last):" not in tail and not re.search(r"^\w*Error\b", tail, re.M):
        return None
    # The exception is the last unindented "Name: message" line (after the frames, which are indented).
    for line in reversed(tail.rstrip().splitlines()):
        if not line or line[0].isspace():
            continue
        m = _PY_LAST.match(line)
        if m is None:
            continue
        name = m.group(1) or m.group(2)
        if name in {"Traceback", "During", "The"}:
            continue
        name = name.removeprefix("__main__.")
        if name in _PY_SYNTAX:
            return _f("syntax_error", name)
        if name == "MemoryError":
            return _f("oom", name)
        return _f("runtime_error", name)
    return None


# --- Node.js ------------------------------------------------------------------------------
_NODE_OOM = re.compile(r"JavaScript heap out of memory|Allocation failed - process out of memory")
_NODE_MISSING = re.compile(
    r"code: '(MODULE_NOT_FOUND|ERR_MODULE_NOT_FOUND)'|^Error \[(ERR_MODULE_NOT_FOUND)\]|^Error: (Cannot find module)",
    re.M,
)
_NODE_ERROR = re.compile(
    r"^(?:Uncaught )?([A-Z][\w$]*(?:Error|Exception)|Error|UnhandledPromiseRejection)(?: \[(\w+)\])?(?::|$)", re.M
)
_NODE_THROWN_VALUE = "(Use `node --trace-uncaught ...` to show where the exception was thrown)"
_TSC = re.compile(r"^\S+\(\d+,\d+\): error (TS\d+):", re.M)


def _node(tail: str) -> Failure | None:
    if _NODE_OOM.search(tail):
        return _f("oom", "heap out of memory")
    missing = _NODE_MISSING.search(tail)
    if missing:
        return _f("missing_module", missing.group(1) or missing.group(2) or "MODULE_NOT_FOUND")
    tsc = _TSC.search(tail)
    if tsc:
        return _f("syntax_error", tsc.group(1))
    if _NODE_THROWN_VALUE in tail:  # `throw "text"`: not an Error object, so no name
        return _f("runtime_error", "thrown value")
    err = _NODE_ERROR.search(tail)
    if err:
        name = err.group(1)
        return _f("syntax_error" if name == "SyntaxError" else "runtime_error", name)
    return None


# --- Java ---------------------------------------------------------------------------------
_JAVA_MISSING_PKG = re.compile(r"^\S+\.java:\d+: error: (?:package \S+ does not exist|cannot access )", re.M)
_JAVA_COMPILE = re.compile(r"^\S+\.java:\d+: error: |^error: compilation failed", re.M)
_JAVA_EXCEPTION = re.compile(
    r"^Exception in thread \"[^\"]*\" ([\w$.]+)|^Caused by: ([\w$.]+)"
    r"|^(?:Error: )?([a-z]\w*(?:\.\w+)+(?:Error|Exception))\b",
    re.M,
)


def _java(tail: str) -> Failure | None:
    if _JAVA_MISSING_PKG.search(tail):
        return _f("missing_module", "package not found")
    if _JAVA_COMPILE.search(tail):
        return _f("syntax_error", "compile error")
    m = _JAVA_EXCEPTION.search(tail)
    if m:
        name = next(g for g in m.groups() if g)
        if name.endswith("OutOfMemoryError"):
            return _f("oom", name)
        if name.endswith(("ClassNotFoundException", "NoClassDefFoundError")):
            return _f("missing_module", name)
        return _f("runtime_error", name)
    return None


# --- Go -----------------------------------------------------------------------------------
_GO_MISSING = re.compile(
    r"cannot find package|no required module provides package|is not in (?:GOROOT|std)|missing go\.sum entry"
)
_GO_COMPILE = re.compile(r"^# [\w./-]+$|^\S+\.go:\d+:\d+: ", re.M)
_GO_OOM = re.compile(r"^fatal error: runtime: out of memory", re.M)
_GO_PANIC = re.compile(r"^panic: (?:(runtime error: [a-z][a-z ]*[a-z]))?", re.M)
_GO_FATAL = re.compile(r"^fatal error: (.+)$", re.M)


def _go(tail: str) -> Failure | None:
    if _GO_OOM.search(tail):
        return _f("oom", "runtime: out of memory")
    panic = _GO_PANIC.search(tail)
    if panic:
        return _f("runtime_error", panic.group(1) or "panic")
    fatal = _GO_FATAL.search(tail)
    if fatal:
        return _f("runtime_error", f"fatal error: {fatal.group(1)}")
    if _GO_MISSING.search(tail):
        return _f("missing_module", "package not found")
    if _GO_COMPILE.search(tail):
        return _f("syntax_error", "compile error")
    return None


# --- Ruby ---------------------------------------------------------------------------------
_RUBY_ERROR = re.compile(r"^\S.*?:(?:\d+:)?in [`'][^']*': .*?\(([A-Z]\w*(?:::[A-Z]\w*)*)\)$", re.M)
_RUBY_SYNTAX = re.compile(r"syntax errors? found|syntax error,.*\(SyntaxError\)|^\S+:\d+: syntax error", re.M)
_RUBY_MISSING = re.compile(r"cannot load such file -- |Could not find gem|Gem::MissingSpecError|Bundler::GemNotFound")


def _ruby(tail: str) -> Failure | None:
    if _RUBY_SYNTAX.search(tail):
        return _f("syntax_error", "SyntaxError")
    if _RUBY_MISSING.search(tail):
        return _f("missing_module", "LoadError")
    m = _RUBY_ERROR.search(tail)
    if m:
        name = m.group(1)
        return _f("oom" if name == "NoMemoryError" else "runtime_error", name)
    return None


# --- PHP ----------------------------------------------------------------------------------
_PHP_PARSE = re.compile(r"(?:PHP )?Parse error: ")
_PHP_MEMORY = re.compile(r"Allowed memory size of \d+ bytes exhausted|Out of memory \(allocated")
_PHP_MISSING = re.compile(r"Failed opening required|Class \"[^\"]+\" not found|Interface \"[^\"]+\" not found")
_PHP_UNCAUGHT = re.compile(r"(?:PHP )?Fatal error: +Uncaught ([\w\\]+)")
_PHP_FATAL = re.compile(r"(?:PHP )?Fatal error: ")


def _php(tail: str) -> Failure | None:
    if _PHP_PARSE.search(tail):
        return _f("syntax_error", "ParseError")
    if _PHP_MEMORY.search(tail):
        return _f("oom", "memory exhausted")
    missing = _PHP_MISSING.search(tail)
    if missing:
        text = missing.group(0)
        return _f("missing_module", "require failed" if text.startswith("Failed") else "class not found")
    uncaught = _PHP_UNCAUGHT.search(tail)
    if uncaught:
        return _f("runtime_error", uncaught.group(1))
    if _PHP_FATAL.search(tail):
        return _f("runtime_error", "FatalError")
    return None


# --- C# and PowerShell (not in the list; cheap to recognise) -----------------------
_CS_COMPILE = re.compile(r"error (CS\d{4}):")
_CS_UNHANDLED = re.compile(r"Unhandled exception\. ([\w.]+(?:Exception|Error))")
_PS_PARSER = re.compile(r"^ParserError:|ParseException", re.M)
_PS_EXCEPTION = re.compile(r"^(\w*Exception|Write-Error|\w+Error):", re.M)


def _csharp(tail: str) -> Failure | None:
    compile_error = _CS_COMPILE.search(tail)
    if compile_error:
        return _f("syntax_error", compile_error.group(1))
    unhandled = _CS_UNHANDLED.search(tail)
    if unhandled:
        name = unhandled.group(1)
        return _f("oom" if name.endswith("OutOfMemoryException") else "runtime_error", name)
    return None


def _powershell(tail: str) -> Failure | None:
    if _PS_PARSER.search(tail):
        return _f("syntax_error", "ParserError")
    m = _PS_EXCEPTION.search(tail)
    return _f("runtime_error", m.group(1)) if m else None


CLASSIFIERS: dict[str, Callable[[str], Failure | None]] = {
    "python": _python,
    "node": _node,
    "java": _java,
    "go": _go,
    "ruby": _ruby,
    "php": _php,
    "csharp": _csharp,
    "powershell": _powershell,
}

_GO_EXIT_STATUS = re.compile(r"^exit status (\d+)\s*\Z", re.M)


def _signal_name(exit_code: int) -> str | None:
    if 128 < exit_code < 128 + 65:
        try:
            return signal.Signals(exit_code - 128).name
        except ValueError:
            return None
    return None


def classify(
    language: str, exit_code: int | None, timed_out: bool, oom_killed: bool, stderr_tail: str
) -> Failure:
    """The outcome of one execution. Cheap: a few regex searches over a few KiB."""
    if timed_out:
        return Failure("timeout")
    if oom_killed:
        return Failure("oom", "oom-killed")
    if exit_code == 0:
        return Failure("ok")
    tail = stderr_tail[-8192:]
    primary = CLASSIFIERS.get(language)
    order = [primary] if primary else []
    order += [c for name, c in CLASSIFIERS.items() if name != language]
    for classifier in order:
        if classifier is None:
            continue
        found = classifier(tail)
        if found is not None:
            return found
    if exit_code is None:
        return Failure("exit_nonzero", "no exit code")
    if exit_code == 127 or "command not found" in tail:
        return Failure("exit_nonzero", "command not found")
    name = _signal_name(exit_code)
    if name is not None:
        return Failure("exit_nonzero", name)
    go_status = _GO_EXIT_STATUS.search(tail) if language == "go" else None
    if go_status:  # `go run` exits 1 and reports the program's own status last
        return Failure("exit_nonzero", f"exit status {go_status.group(1)}")
    return Failure("exit_nonzero", f"exit status {exit_code}")

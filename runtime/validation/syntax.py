"""Syntax errors with their location, by the checker a language's `syntax:` names in languages.yaml:
a compiler built in here (CPython's for Python), or a tree-sitter grammar.

A checker is named by a string, the same in this process and on the child process's wire
(syntax_process): a key of `COMPILERS`, or a grammar as `module:function`. tree-sitter and its
grammar wheels are an optional extra (`pip install theappapp-sandbox[validate]`); without them
those languages get an info finding saying the syntax was not checked, never an exception.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable
from typing import Any

from runtime.registry import grammar_spec
from runtime.validation.findings import Finding

INSTALL_HINT = "pip install 'theappapp-sandbox[validate]'"

_SNIPPET = 24
MAX_WARNINGS = 50  # Python syntax warnings reported per file, as the validator's per-rule limit
_PYTHON_LOCK = threading.Lock()


def check_python(code: str) -> list[Finding]:
    """CPython's own verdict: compile (never run) the code; SyntaxWarnings become warnings."""
    findings: list[Finding] = []
    # catch_warnings swaps process-wide state: two threads interleaving it could leave warnings
    # captured into a dead list for good. compile() holds the GIL anyway, so the lock costs nothing.
    with _PYTHON_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compile(code, "<code>", "exec", dont_inherit=True)
        except SyntaxError as err:
            kind = type(err).__name__
            findings.append(Finding("syntax.error", "error", err.lineno or 0, err.offset or 0, f"{kind}: {err.msg}"))
        except (ValueError, RecursionError, MemoryError) as err:
            # null bytes (ValueError on 3.11) or nesting too deep for the compiler
            findings.append(Finding("syntax.error", "error", 0, 0, f"cannot compile: {type(err).__name__}: {err}"))
    warned = [w for w in caught if issubclass(w.category, SyntaxWarning)]
    for w in warned[:MAX_WARNINGS]:
        findings.append(Finding("syntax.warning", "warning", w.lineno or 0, 0, str(w.message)))
    if len(warned) > MAX_WARNINGS:  # bounded: 1 MB of `x is 1` would be 150,000 of them
        findings.append(Finding("syntax.warning", "info", 0, 0, f"{len(warned) - MAX_WARNINGS} more syntax warnings"))
    return findings


# Checkers built in, by the name `syntax: {compiler: ...}` gives (registry.SyntaxCompiler).
COMPILERS: dict[str, Callable[[str], list[Finding]]] = {"python": check_python}


class TreeSitterChecker:
    """Parses with tree-sitter grammars loaded on first use; reports the first few error nodes."""

    def __init__(self, max_errors: int = 3) -> None:
        self.max_errors = max_errors
        self._languages: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _language(self, grammar: str) -> Any:
        with self._lock:
            if grammar not in self._languages:
                self._languages[grammar] = self._load(grammar)
            return self._languages[grammar]

    @staticmethod
    def _load(grammar: str) -> Any:
        """The tree-sitter language of `module:function` (or `module`), None if it cannot be loaded."""
        try:
            # grammar_spec refuses anything but a dotted module name and a function name: nothing else is imported
            module_name, _, function = grammar_spec(grammar).partition(":")
            tree_sitter = importlib.import_module("tree_sitter")
            module = importlib.import_module(module_name)
            return tree_sitter.Language(getattr(module, function)())
        except (ImportError, AttributeError, TypeError, ValueError):
            return None

    def available(self, grammar: str) -> bool:
        return self._language(grammar) is not None

    def check(self, code: str, grammar: str) -> list[Finding] | None:
        """Findings for `code` by `grammar` (`module:function`), or None when it is not installed."""
        parsed = self.parse(code, grammar)
        return None if parsed is None else self.findings(*parsed)

    def parse(self, code: str, grammar: str) -> tuple[Any, bytes] | None:
        """The syntax tree and the bytes it indexes, or None when the grammar is not installed.

        Apart from `check`, so a caller can drop the tree (about a tenth of the parse time
        for a large file) after it has handed the findings on.
        """
        language = self._language(grammar)
        if language is None:
            return None
        source = code.encode("utf-8", "surrogatepass")
        return importlib.import_module("tree_sitter").Parser(language).parse(source), source

    def findings(self, tree: Any, source: bytes) -> list[Finding]:
        if not tree.root_node.has_error:
            return []
        return [self._finding(node, source) for node in self._error_nodes(tree.root_node)]

    def _error_nodes(self, root: Any) -> list[Any]:
        found: list[Any] = []
        stack = [root]
        while stack and len(found) < self.max_errors:
            node = stack.pop()
            if node.is_missing or node.is_error:
                found.append(node)
            elif node.has_error:
                stack.extend(reversed(node.children))
        return found

    @staticmethod
    def _finding(node: Any, source: bytes) -> Finding:
        row, byte_column = node.start_point
        line_start = node.start_byte - byte_column
        column = len(source[line_start : node.start_byte].decode("utf-8", "replace")) + 1
        if node.is_missing:
            message = f"missing {node.type!r}"
        else:
            text = source[node.start_byte : node.end_byte].decode("utf-8", "replace").strip().split("\n", 1)[0]
            message = f"unexpected {text[:_SNIPPET]!r}" if text else "syntax error"
            if node.end_point[0] > row:  # error recovery swallowed several lines; say how far
                message += f" (the unparsable region runs to line {node.end_point[0] + 1})"
        return Finding("syntax.error", "error", row + 1, column, message)

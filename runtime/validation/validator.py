"""`CodeValidator`: what is worth knowing about a piece of code before running it."""

from __future__ import annotations

import threading

from runtime.errors import ValidationFailed
from runtime.registry import Language, Registry, get_registry
from runtime.validation.findings import Finding, LineIndex
from runtime.validation.lexical import CodeMask
from runtime.validation.patterns import CompiledPattern, scan_patterns
from runtime.validation.secrets import scan_secrets
from runtime.validation.syntax import INSTALL_HINT, TreeSitterChecker, check_python, grammar_for

MAX_CODE_BYTES = 1024 * 1024  # 1 MiB
PER_RULE_LIMIT = 50  # findings of one rule in one file: enough to act on, bounded on huge files

_ORDER = {"error": 0, "warning": 1, "info": 2}


class CodeValidator:
    """Checks code for dangerous patterns, syntax errors, size and hardcoded secrets.

    `validate` returns findings and never blocks, unless `strict=True`: then any
    error-severity finding raises `ValidationFailed` (which carries the findings).
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        strict: bool = False,
        max_bytes: int = MAX_CODE_BYTES,
        syntax: TreeSitterChecker | None = None,
    ) -> None:
        self.registry = registry if registry is not None else get_registry()
        self.strict = strict
        self.max_bytes = max_bytes
        self._syntax = syntax if syntax is not None else TreeSitterChecker()
        self._patterns: dict[str, tuple[CompiledPattern, ...]] = {}
        self._lock = threading.Lock()

    def patterns_for(self, language: Language) -> tuple[CompiledPattern, ...]:
        with self._lock:
            compiled = self._patterns.get(language.name)
            if compiled is None:
                compiled = tuple(CompiledPattern.of(p, language.name) for p in language.dangerous_patterns)
                self._patterns[language.name] = compiled
            return compiled

    def validate(self, code: str, language: str, *, filename: str | None = None) -> list[Finding]:
        """Findings sorted by position; `language` is a registry name or alias (`UnknownLanguage` otherwise)."""
        lang = self.registry.resolve(language)
        findings: list[Finding] = []
        text = code
        # More characters than allowed bytes is over for sure: no need to encode a huge string.
        size = None if len(code) > self.max_bytes else len(code.encode("utf-8", "surrogatepass"))
        oversized = size is None or size > self.max_bytes
        if oversized:
            amount = f"{size} bytes" if size is not None else f"{len(code)} characters"
            findings.append(
                Finding(
                    "size.limit", "error", 0, 0,
                    f"code is {amount}, over the {self.max_bytes}-byte limit; only the first "
                    f"{self.max_bytes} characters were scanned and the syntax was not checked",
                )
            )
            text = code[: self.max_bytes]
        lines = LineIndex(text)
        findings += scan_patterns(text, self.patterns_for(lang), CodeMask(text, lang.name), lines, PER_RULE_LIMIT)
        findings += scan_secrets(text, lines, PER_RULE_LIMIT)
        if not oversized:
            findings += self._check_syntax(code, lang, language, filename)
        findings.sort(key=lambda f: (f.line, f.column, _ORDER[f.severity], f.rule_id))
        if self.strict:
            errors = [f for f in findings if f.severity == "error"]
            if errors:
                summary = "; ".join(str(f) for f in errors[:3])
                raise ValidationFailed(f"{len(errors)} error(s) in {lang.name} code: {summary}", tuple(findings))
        return findings

    def _check_syntax(self, code: str, lang: Language, requested: str, filename: str | None) -> list[Finding]:
        if lang.name == "python":
            return check_python(code)
        grammar = grammar_for(lang.name, requested, filename)
        if grammar is None:
            message = f"no syntax checker for {lang.name}; syntax not checked"
            return [Finding("syntax.unsupported", "info", 0, 0, message)]
        result = self._syntax.check(code, grammar)
        if result is None:
            return [
                Finding(
                    "syntax.unavailable", "info", 0, 0,
                    f"tree-sitter grammar for {grammar} is not installed; syntax not checked ({INSTALL_HINT})",
                )
            ]
        return result


def blocking(findings: list[Finding]) -> list[Finding]:
    """The findings strict mode would refuse to run: those of error severity."""
    return [f for f in findings if f.severity == "error"]

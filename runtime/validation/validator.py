"""`CodeValidator`: what is worth knowing about a piece of code before running it."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

from runtime.errors import ValidationFailed
from runtime.registry import Language, Registry, get_registry
from runtime.validation.findings import Finding, LineIndex
from runtime.validation.lexical import CodeMask
from runtime.validation.patterns import CompiledPattern, scan_patterns
from runtime.validation.secrets import scan_secrets
from runtime.validation.syntax import COMPILERS, INSTALL_HINT, TreeSitterChecker
from runtime.validation.syntax_process import DEFAULT_TIMEOUT, SyntaxProcess

MAX_CODE_BYTES = 1024 * 1024  # 1 MiB
PER_RULE_LIMIT = 50  # findings of one rule in one file: enough to act on, bounded on huge files
# From this size the syntax check runs in a child process (see syntax_process): below it the
# parse takes under about 10 ms, less than handing the code over would save.
CHILD_PROCESS_FROM = 64 * 1024

log = logging.getLogger(__name__)

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
        child_process_from: int | None = CHILD_PROCESS_FROM,
        syntax_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """`child_process_from`: code of at least this many characters has its syntax checked in a
        child process, beside the scan and outside this process's GIL, within `syntax_timeout`
        seconds (then a `syntax.timeout` warning); None checks everything in this process."""
        self.registry = registry if registry is not None else get_registry()
        self.strict = strict
        self.max_bytes = max_bytes
        self.child_process_from = child_process_from
        self.syntax_timeout = syntax_timeout
        self._syntax = syntax if syntax is not None else TreeSitterChecker()
        self._process: SyntaxProcess | None = None
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
        checker = None if oversized or lang.syntax is None else lang.syntax.checker_for(language, filename)
        pending = self._start_in_child(checker, code) if checker is not None else None
        lines = LineIndex(text)
        findings += scan_patterns(text, self.patterns_for(lang), CodeMask(text, lang.lexer), lines, PER_RULE_LIMIT)
        findings += scan_secrets(text, lines, PER_RULE_LIMIT)
        if not oversized:
            findings += self._syntax_findings(code, lang, checker, pending)
        findings.sort(key=lambda f: (f.line, f.column, _ORDER[f.severity], f.rule_id))
        if self.strict:
            errors = [f for f in findings if f.severity == "error"]
            if errors:
                summary = "; ".join(str(f) for f in errors[:3])
                raise ValidationFailed(f"{len(errors)} error(s) in {lang.name} code: {summary}", tuple(findings))
        return findings

    def close(self) -> None:
        """Stop the syntax checker's child process, if one was started (a later large check starts another)."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            process.close()

    def _start_in_child(self, checker: str, code: str) -> Future[list[Finding] | None] | None:
        """The child's future answer, or None to check here: small code, or no child to be had."""
        if self.child_process_from is None or len(code) < self.child_process_from:
            return None
        with self._lock:
            if self._process is None:
                self._process = SyntaxProcess(self.syntax_timeout)
            process = self._process
        try:
            return process.submit(checker, code)
        except (OSError, RuntimeError) as err:  # cannot start one, or closed meanwhile
            log.warning("syntax checker process unavailable (%s); checking in this process", err)
            return None

    def _syntax_findings(
        self, code: str, lang: Language, checker: str | None, pending: Future[list[Finding] | None] | None
    ) -> list[Finding]:
        if checker is None:
            message = f"no syntax checker for {lang.name}; syntax not checked"
            return [Finding("syntax.unsupported", "info", 0, 0, message)]
        result = pending.result() if pending is not None else self._check_here(checker, code)
        if result is None:
            return [
                Finding(
                    "syntax.unavailable", "info", 0, 0,
                    f"tree-sitter grammar {checker} is not installed; syntax not checked ({INSTALL_HINT})",
                )
            ]
        return result

    def _check_here(self, checker: str, code: str) -> list[Finding] | None:
        compiler = COMPILERS.get(checker)
        return compiler(code) if compiler is not None else self._syntax.check(code, checker)


def blocking(findings: list[Finding]) -> list[Finding]:
    """The findings strict mode would refuse to run: those of error severity."""
    return [f for f in findings if f.severity == "error"]

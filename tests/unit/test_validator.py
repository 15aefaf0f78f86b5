"""CodeValidator as a whole: size limit, strict mode, ordering, unknown languages."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.errors import SandboxError, UnknownLanguage, ValidationFailed
from runtime.registry import get_registry
from runtime.validation import MAX_CODE_BYTES, CodeValidator, Finding, blocking


@pytest.fixture(scope="module")
def validator() -> CodeValidator:
    return CodeValidator(get_registry())


def test_finding_is_frozen() -> None:
    finding = Finding("x", "info", 1, 1, "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.line = 2  # type: ignore[misc]


def test_clean_code_has_no_findings(validator: CodeValidator) -> None:
    assert validator.validate("def add(a, b):\n    return a + b\n", "python") == []


def test_oversized_code_is_a_finding_and_skips_syntax() -> None:
    validator = CodeValidator(get_registry(), max_bytes=64)
    code = "eval(x)\n" + "def broken(:\n" * 20
    findings = validator.validate(code, "python")
    rules = [f.rule_id for f in findings]
    assert rules[0] == "size.limit" and findings[0].severity == "error"
    assert "pattern.python.eval-exec" in rules  # the prefix is still scanned
    assert "syntax.error" not in rules


def test_one_mebibyte_limit_by_default(validator: CodeValidator) -> None:
    assert MAX_CODE_BYTES == 1024 * 1024
    at_limit = "#" * (MAX_CODE_BYTES - 1) + "\n"
    assert validator.validate(at_limit, "python") == []
    over = validator.validate(at_limit + "x = 1\n", "python")
    assert [f.rule_id for f in over] == ["size.limit"]


def test_size_counts_utf8_bytes_not_characters() -> None:
    validator = CodeValidator(get_registry(), max_bytes=10)
    assert [f.rule_id for f in validator.validate("s = 'ééé'", "python")] == ["size.limit"]  # 9 chars, 12 bytes


def test_warnings_never_block_even_in_strict_mode() -> None:
    strict = CodeValidator(get_registry(), strict=True)
    findings = strict.validate("import subprocess\nsubprocess.run(['ls'])\n", "python")
    assert findings and blocking(findings) == []


def test_strict_mode_raises_on_errors_with_the_findings() -> None:
    strict = CodeValidator(get_registry(), strict=True)
    with pytest.raises(ValidationFailed) as caught:
        strict.validate("def f(:\n", "python")
    assert isinstance(caught.value, SandboxError)
    assert [f.rule_id for f in caught.value.findings] == ["syntax.error"]


def test_default_mode_returns_errors_without_raising(validator: CodeValidator) -> None:
    findings = validator.validate("def f(:\n", "python")
    assert [f.severity for f in blocking(findings)] == ["error"]


def test_findings_are_sorted_by_position(validator: CodeValidator) -> None:
    code = "x = 1\nimport subprocess\ny = eval(s)\nos.system(c)\n"
    findings = validator.validate(code, "python")
    assert [(f.line, f.column) for f in findings] == sorted((f.line, f.column) for f in findings)
    assert len(findings) == 3


def test_unknown_language_is_the_registry_error(validator: CodeValidator) -> None:
    with pytest.raises(UnknownLanguage):
        validator.validate("x", "cobol")


def test_findings_per_rule_are_bounded(validator: CodeValidator) -> None:
    findings = validator.validate("eval(x)\n" * 500, "python")
    assert 0 < len(findings) <= 50


def test_str_of_a_finding_is_one_line() -> None:
    assert str(Finding("pattern.python.eval-exec", "warning", 3, 9, "m")) == "3:9 warning [pattern.python.eval-exec] m"


def test_line_index_maps_offsets_to_lines_and_columns() -> None:
    from runtime.validation.findings import LineIndex

    text = "ab\ncd\n\nef"
    index = LineIndex(text)
    assert [index.position(text.index(c)) for c in "abcdef"] == [(1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2)]
    assert index.position(6) == (3, 1)  # the empty line

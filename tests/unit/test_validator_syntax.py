"""Syntax errors are reported with their location for every registry language."""

from __future__ import annotations

from typing import get_args

import pytest

from runtime.registry import SyntaxCompiler, get_registry
from runtime.validation import CodeValidator, Finding
from runtime.validation.syntax import COMPILERS, TreeSitterChecker

# language -> (broken code, line of the first error)
BROKEN: dict[str, tuple[str, int]] = {
    "python": ("def f(x):\n    return x +\n", 2),
    "node": ("function f(x) {\n  return x +;\n}\n", 2),
    "java": ("public class A {\n    void f() {\n        int x = ;\n    }\n}\n", 3),
    "go": ("package main\n\nfunc main() {\n\tx := (1 + \n}\n", 4),
    "ruby": ('x = 1\nputs "a" }\n', 2),
    "php": ("<?php\n$x = 1;\n$y = ($x + ;\n", 3),
    "csharp": ("class A {\n    void F() {\n        int x = ;\n    }\n}\n", 3),
    "powershell": ("$x = 1\nif ($x {\n  Write-Output 1\n}\n", 2),
}


@pytest.fixture(scope="module")
def validator() -> CodeValidator:
    return CodeValidator(get_registry())


def syntax_errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule_id == "syntax.error"]


def grammar_of(language: str) -> str | None:
    """The tree-sitter grammar the registry names for `language` (`module:function`), if any."""
    syntax = get_registry().languages[language].syntax
    return syntax.checker_for(language) if syntax is not None and syntax.grammar is not None else None


def need_grammar(language: str) -> None:
    grammar = grammar_of(language)
    if grammar and not TreeSitterChecker().available(grammar):
        pytest.skip(f"tree-sitter grammar {grammar} not installed (extra `validate`)")


def test_every_registry_language_has_a_syntax_checker_and_a_broken_example() -> None:
    languages = get_registry().languages
    assert all(lang.syntax is not None for lang in languages.values())
    assert set(languages) <= set(BROKEN)


@pytest.mark.parametrize("language", sorted(BROKEN))
def test_syntax_error_is_located(validator: CodeValidator, language: str) -> None:
    need_grammar(language)
    code, line = BROKEN[language]
    errors = syntax_errors(validator.validate(code, language))
    assert errors, f"no syntax error found in broken {language} code"
    assert errors[0].line == line and errors[0].column >= 1 and errors[0].severity == "error"


@pytest.mark.parametrize("language", sorted(get_registry().languages))
def test_hello_snippet_is_clean(validator: CodeValidator, language: str) -> None:
    need_grammar(language)
    assert validator.validate(get_registry().languages[language].hello.code, language) == []


def test_python_error_names_the_exception_class(validator: CodeValidator) -> None:
    (error,) = syntax_errors(validator.validate("if True:\nprint(1)\n", "python"))
    assert error.message.startswith("IndentationError") and error.line == 2


def test_python_compile_stage_errors_are_caught(validator: CodeValidator) -> None:
    (error,) = syntax_errors(validator.validate("x = 1\nreturn x\n", "python"))
    assert "'return' outside function" in error.message and error.line == 2


def test_python_syntax_warning_becomes_a_warning(validator: CodeValidator) -> None:
    findings = validator.validate("x = 1\nif x is 1:\n    pass\n", "python")
    assert [(f.rule_id, f.severity, f.line) for f in findings] == [("syntax.warning", "warning", 2)]


def test_python_null_byte_is_a_finding_not_a_crash(validator: CodeValidator) -> None:
    assert syntax_errors(validator.validate("x = 1\0\n", "python"))


def test_typescript_alias_uses_the_typescript_grammar(validator: CodeValidator) -> None:
    need_grammar("node")
    typed = "let n: number = 1;\n"
    assert syntax_errors(validator.validate(typed, "js"))
    assert not syntax_errors(validator.validate(typed, "typescript"))
    assert not syntax_errors(validator.validate(typed, "node", filename="main.ts"))


def test_column_counts_characters_not_bytes(validator: CodeValidator) -> None:
    need_grammar("node")
    (error, *_) = syntax_errors(validator.validate('const s = "é"; let = ;\n', "node"))
    assert error.line == 1 and error.column >= 16  # 'let' starts at character 16; UTF-8 bytes would say 17


class _NoGrammars(TreeSitterChecker):
    @staticmethod
    def _load(grammar: str) -> None:
        return None


@pytest.mark.parametrize("language", sorted(name for name in get_registry().languages if grammar_of(name)))
def test_missing_grammar_gives_an_info_finding(language: str) -> None:
    validator = CodeValidator(get_registry(), syntax=_NoGrammars())
    code, _ = BROKEN[language]
    findings = validator.validate(code, language)
    assert [f.rule_id for f in findings if f.rule_id.startswith("syntax.")] == ["syntax.unavailable"]
    assert all(f.severity == "info" for f in findings if f.rule_id == "syntax.unavailable")


@pytest.mark.parametrize(
    "grammar", ["tree_sitter_no_such_grammar:language", "tree_sitter_java:no_such_function", "os.path; import x"]
)
def test_grammar_modules_that_fail_to_import_are_unavailable(grammar: str) -> None:
    assert TreeSitterChecker().check("class A {", grammar) is None


def test_multi_line_error_region_says_where_it_ends(validator: CodeValidator) -> None:
    need_grammar("ruby")
    (error, *_) = syntax_errors(validator.validate("def f(x)\n  x = 1 +* 2\nend\n", "ruby"))
    assert error.line == 1 and "runs to line 3" in error.message


def test_concurrent_python_checks_keep_their_own_warnings(validator: CodeValidator) -> None:
    import threading
    import warnings

    results: list[list[str]] = []

    def work() -> None:
        for _ in range(50):
            results.append([f.rule_id for f in validator.validate("x = 1\nif x is 1:\n    pass\n", "python")])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [["syntax.warning"]] * 200
    with warnings.catch_warnings(record=True) as caught:  # the process's own warnings still work afterwards
        warnings.simplefilter("always")
        warnings.warn("still delivered", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["still delivered"]


def test_every_compiler_the_schema_allows_is_built_in() -> None:
    assert set(COMPILERS) == set(get_args(SyntaxCompiler))

"""Failure classification on real stderr (captured from the built images, see data/) and on
hand-written samples for cases that are hard to provoke in a test run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.monitoring.failures import OUTCOMES, classify

SAMPLES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "failure_samples.json").read_text())


@pytest.mark.parametrize("sample", SAMPLES, ids=[f"{s['language']}-{s['case']}" for s in SAMPLES])
def test_real_stderr_is_classified(sample: dict[str, Any]) -> None:
    failure = classify(sample["language"], sample["exit_code"], False, False, sample["stderr"])
    assert failure.outcome == sample["outcome"]
    if sample["error_type"] is not None:
        assert failure.error_type == sample["error_type"]
    else:
        assert failure.error_type == "exit status 3"


def test_samples_cover_every_language_of_the_issue_and_every_failure_outcome() -> None:
    assert {s["language"] for s in SAMPLES} >= {"python", "node", "java", "go", "ruby", "php"}
    assert {s["outcome"] for s in SAMPLES} >= set(OUTCOMES) - {"ok", "timeout"}


@pytest.mark.parametrize(
    ("language", "exit_code", "stderr", "outcome", "error_type"),
    [
        ("node", 134, "<--- Last few GCs --->\nFATAL ERROR: Reached heap limit Allocation failed - "
         "JavaScript heap out of "
         "memory\n", "oom", "heap out of memory"),
        ("node", 2, "main.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'.\n",
         "syntax_error", "TS2322"),
        ("node", 1, "/tmp/x.js:1\nthrow new RangeError('too big')\n^\n\nRangeError: too big\n    at Object.<anonymous>",
         "runtime_error", "RangeError"),
        ("go", 2, "fatal error: runtime: out of memory\n\nruntime stack:\n", "oom", "runtime: out of memory"),
        ("go", 1, "main.go:3:8: no required module provides package github.com/x/y; to add it:\n"
         "\tgo get github.com/x/y\n",
         "missing_module", "package not found"),
        ("go", 1, "panic: assignment to entry in nil map\n\ngoroutine 1 [running]:\n", "runtime_error", "panic"),
        ("java", 1, "Exception in thread \"main\" java.lang.StackOverflowError\n\tat Main.f(Main.java:3)\n",
         "runtime_error", "java.lang.StackOverflowError"),
        ("java", 1, "Error: Could not find or load main class Foo\nCaused by: java.lang.ClassNotFoundException: Foo\n",
         "missing_module", "java.lang.ClassNotFoundException"),
        ("ruby", 1, "main.rb:1:in `<main>': failed to allocate memory (NoMemoryError)\n", "oom", "NoMemoryError"),
        ("python", 1, "Traceback (most recent call last):\n  File \"m.py\", line 1, in <module>\n"
         "    import numpy\nImportError: cannot import name 'x' from 'numpy'\n", "missing_module", "ImportError"),
        ("python", 1, "Traceback (most recent call last):\n  File \"m.py\", line 3, in <module>\n"
         "__main__.ConfigError: bad\n", "runtime_error", "ConfigError"),
        ("python", 1, "Traceback (most recent call last):\n  File \"m.py\", line 3, in <module>\n"
         "requests.exceptions.ConnectionError: refused\n", "runtime_error", "requests.exceptions.ConnectionError"),
        ("csharp", 1, "Program.cs(3,1): error CS1002: ; expected [/tmp/cs-run/cs-run.csproj]\n",
         "syntax_error", "CS1002"),
        ("csharp", 134, "Unhandled exception. System.DivideByZeroException: Attempted to divide by zero.\n",
         "runtime_error", "System.DivideByZeroException"),
        ("powershell", 1, "ParserError: /tmp/x.ps1:1\nLine |\n   1 |  if ($x {\n", "syntax_error", "ParserError"),
        ("python", 139, "", "exit_nonzero", "SIGSEGV"),
        ("python", 127, "sh: 1: pyhton3: not found\n", "exit_nonzero", "command not found"),
        ("python", 2, "usage: x [-h]\nx: error: the following arguments are required: n\n", "exit_nonzero",
         "exit status 2"),
    ],
)
def test_hand_written_samples(language: str, exit_code: int, stderr: str, outcome: str, error_type: str) -> None:
    failure = classify(language, exit_code, False, False, stderr)
    assert (failure.outcome, failure.error_type) == (outcome, error_type)


def test_timeout_wins_over_everything() -> None:
    assert classify("python", 137, True, True, "MemoryError\n").outcome == "timeout"


def test_oom_flag_wins_over_stderr() -> None:
    assert classify("python", 137, False, True, "").outcome == "oom"


def test_exit_zero_is_ok_even_with_stderr() -> None:
    failure = classify("python", 0, False, False, "Traceback (most recent call last):\nValueError: handled\n")
    assert (failure.outcome, failure.error_type) == ("ok", None)


def test_other_languages_rules_apply_to_programs_run_from_another_image() -> None:
    # A Python task that shells out to node: the node rules still name the error.
    node_err = "/tmp/x.js:1\n\nTypeError: x is not a function\n    at Object.<anonymous> (/tmp/x.js:1:1)\n"
    assert classify("python", 1, False, False, node_err).error_type == "TypeError"


def test_error_type_is_bounded() -> None:
    failure = classify("python", 1, False, False, "Traceback (most recent call last):\n" + "E" * 500 + "Error: x\n")
    assert failure.error_type is not None and len(failure.error_type) <= 120

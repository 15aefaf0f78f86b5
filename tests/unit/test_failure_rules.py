"""The failure-rule mechanism on made-up languages: each field of a rule does what its doc says,
and rules are tried in the documented order (own, others in registry order, generic, own-only)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from runtime.monitoring.failures import Failure, classify
from runtime.registry import DEFAULT_REGISTRY_PATH, Registry, parse_registry

RAW: dict[str, Any] = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())


def registry_of(**failures: list[dict[str, Any]]) -> Registry:
    """A registry whose only languages are copies of python's entry with these failure rules."""
    data = copy.deepcopy(RAW)
    template = data["languages"]["python"]
    data["languages"] = {
        name: {**copy.deepcopy(template), "aliases": [], "failures": rules} for name, rules in failures.items()
    }
    return parse_registry(data)


def failure(registry: Registry, language: str, stderr: str, exit_code: int | None = 1) -> tuple[str, str | None]:
    found: Failure = classify(language, exit_code, False, False, stderr, registry)
    return found.outcome, found.error_type


def test_error_type_is_the_first_group_that_captured_else_the_literal() -> None:
    registry = registry_of(toy=[{"regex": r"^E(?:: (\w+)|(\d+)|!)", "outcome": "runtime_error", "error_type": "E"}])
    assert failure(registry, "toy", "E: Boom\n") == ("runtime_error", "Boom")
    assert failure(registry, "toy", "E42\n") == ("runtime_error", "42")
    assert failure(registry, "toy", "E!\n") == ("runtime_error", "E")


def test_last_match_takes_the_last_occurrence_and_requires_gates_the_rule() -> None:
    rule = {"regex": r"^(\w+Error)", "outcome": "runtime_error", "last_match": True, "requires": "^Traceback"}
    registry = registry_of(toy=[rule])
    assert failure(registry, "toy", "Traceback\nKeyError\nValueError\n") == ("runtime_error", "ValueError")
    assert failure(registry, "toy", "KeyError\nValueError\n") == ("exit_nonzero", "exit status 1")


def test_prefix_is_stripped_before_the_type_picks_its_outcome() -> None:
    rule = {
        "regex": r"^([\w.]+): ",
        "outcome": "runtime_error",
        "strip_prefix": "app.",
        "outcome_by_type": {"Syntax.*": "syntax_error", "SyntaxWarning|.*Memory": "oom"},
    }
    registry = registry_of(toy=[rule])
    assert failure(registry, "toy", "app.SyntaxError: x\n") == ("syntax_error", "SyntaxError")
    assert failure(registry, "toy", "NoMemory: x\n") == ("oom", "NoMemory")
    assert failure(registry, "toy", "SyntaxWarning: x\n") == ("syntax_error", "SyntaxWarning")  # first wins
    assert failure(registry, "toy", "MemoryErrorX: x\n") == ("runtime_error", "MemoryErrorX")  # whole type


def test_own_rules_come_first_then_the_others_in_registry_order() -> None:
    registry = registry_of(
        first=[{"regex": "boom", "outcome": "runtime_error", "error_type": "first's"}],
        second=[{"regex": "boom", "outcome": "oom", "error_type": "second's"}],
    )
    assert failure(registry, "second", "boom\n") == ("oom", "second's")
    assert failure(registry, "first", "boom\n") == ("runtime_error", "first's")
    assert failure(registry, "not-in-the-registry", "boom\n") == ("runtime_error", "first's")


def test_only_own_rules_apply_to_their_language_after_the_generic_checks() -> None:
    registry = registry_of(
        launcher=[{"regex": r"^(status \d+)\Z", "outcome": "exit_nonzero", "only_own": True}], other=[]
    )
    assert failure(registry, "launcher", "status 3") == ("exit_nonzero", "status 3")
    assert failure(registry, "other", "status 3") == ("exit_nonzero", "exit status 1")
    assert failure(registry, "launcher", "status 3", exit_code=139) == ("exit_nonzero", "SIGSEGV")
    assert failure(registry, "launcher", "status 3", exit_code=None) == ("exit_nonzero", "no exit code")
    assert failure(registry, "launcher", "sh: command not found\nstatus 3") == ("exit_nonzero", "command not found")


def test_a_long_error_type_is_cut_to_a_bounded_length() -> None:
    registry = registry_of(toy=[{"regex": r"^(X+)$", "outcome": "runtime_error"}])
    outcome, error_type = failure(registry, "toy", "X" * 500 + "\n")
    assert outcome == "runtime_error" and error_type == "X" * 120


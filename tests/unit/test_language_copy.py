"""The registry's promise, proved: a language is its languages.yaml entry and nothing else.

For every language, a copy of its entry under another name (`copy-of-<name>`, without the
aliases, which are unique) must behave exactly like the original wherever no Docker is
needed: run commands, file naming, failure classification, validator findings, resources.
A fact still keyed by a language's name in Python would make its copy differ. The reverse
is checked too: python's entry without its `syntax`, `failures` and `lexer` sections loses
those behaviours, even under its own name, so nothing in Python supplies them instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.monitoring.failures import Failure, classify
from runtime.registry import DEFAULT_REGISTRY_PATH, Language, Registry, parse_registry
from runtime.sandbox.runcode import default_filename
from runtime.validation import CodeValidator, Finding
from tests.unit.test_validator_patterns import EXAMPLES, INERT
from tests.unit.test_validator_syntax import BROKEN

RAW: dict[str, Any] = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())
NAMES = sorted(RAW["languages"])
SAMPLES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "failure_samples.json").read_text(encoding="utf-8")
)
SECRET = 'aws_key = "AKIA2OGYBAH6RTEXAMPL"\n'  # flagged in any language's code
JAVA_PUBLIC_CLASS = "import java.util.*;\n\npublic final class Greeter {\n  public static void main(String[] a) {}\n}\n"


def copy_of(name: str) -> str:
    return f"copy-of-{name}"


def entry_copy(name: str) -> dict[str, Any]:
    """The entry as a new language would write it: the same YAML, no aliases (they are unique),
    so neither any syntax override chosen by an alias."""
    entry = copy.deepcopy(RAW["languages"][name])
    entry["aliases"] = []
    if isinstance(entry.get("syntax"), dict):
        entry["syntax"].pop("by_alias", None)
    return entry


def registry_with(languages: dict[str, dict[str, Any]]) -> Registry:
    data = copy.deepcopy(RAW)
    data["languages"] = languages
    return parse_registry(data)


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Every language of languages.yaml, and a copy of each."""
    return registry_with({**RAW["languages"], **{copy_of(n): entry_copy(n) for n in NAMES}})


@pytest.fixture(scope="module")
def validator(registry: Registry) -> CodeValidator:
    return CodeValidator(registry, child_process_from=None)


@pytest.fixture(scope="module")
def child_validator(registry: Registry) -> Iterator[CodeValidator]:
    validator = CodeValidator(registry, child_process_from=0)  # every syntax check over the child's wire
    yield validator
    validator.close()


def pair(registry: Registry, name: str) -> tuple[Language, Language]:
    return registry.languages[name], registry.languages[copy_of(name)]


def extensions(language: Language) -> list[str]:
    dialects = language.syntax.by_extension if language.syntax is not None else {}
    return [language.extension, *language.run_by_extension, *dialects]


# --- running files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_copy_runs_each_of_its_extensions_with_the_same_command(registry: Registry, name: str) -> None:
    original, duplicate = pair(registry, name)
    for extension in [original.extension, *original.run_by_extension]:
        for filename in (f"main{extension}", f"src/app/Tool{extension}"):
            assert duplicate.command_for(filename) == original.command_for(filename), filename


@pytest.mark.parametrize("name", NAMES)
def test_copy_names_a_snippets_file_the_same_way(registry: Registry, name: str) -> None:
    original, duplicate = pair(registry, name)
    snippets = [original.hello.code, JAVA_PUBLIC_CLASS, "", *(lang.hello.code for lang in registry.languages.values())]
    for code in snippets:
        assert default_filename(duplicate, code) == default_filename(original, code)


def test_copy_of_java_names_the_file_after_its_public_class(registry: Registry) -> None:
    assert default_filename(registry.languages[copy_of("java")], JAVA_PUBLIC_CLASS) == "Greeter.java"
    assert default_filename(registry.languages[copy_of("java")], "int x = 1;") == "Main.java"


# --- failure classification ---------------------------------------------------------------


def classified(registry: Registry, language: str, exit_code: int | None, stderr: str) -> Failure:
    return classify(language, exit_code, False, False, stderr, registry)


@pytest.mark.parametrize("name", NAMES)
def test_copy_classifies_every_captured_failure_like_the_original(registry: Registry, name: str) -> None:
    for sample in SAMPLES:  # any language's stderr: a task may run any program
        args = (sample["exit_code"], sample["stderr"])
        assert classified(registry, copy_of(name), *args) == classified(registry, name, *args), sample["case"]


@pytest.mark.parametrize("name", sorted({s["language"] for s in SAMPLES}))
def test_copy_reads_its_own_samples_as_they_were_captured(registry: Registry, name: str) -> None:
    for sample in (s for s in SAMPLES if s["language"] == name):
        failure = classified(registry, copy_of(name), sample["exit_code"], sample["stderr"])
        expected_type = sample["error_type"] if sample["error_type"] is not None else "exit status 3"
        assert (failure.outcome, failure.error_type) == (sample["outcome"], expected_type), sample["case"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("exit_code", "stderr"),
    [(None, ""), (127, ""), (2, "sh: 1: tool: command not found\n"), (139, ""), (3, ""), (1, "exit status 4\n")],
)
def test_copy_falls_back_to_the_same_generic_outcomes(
    registry: Registry, name: str, exit_code: int | None, stderr: str
) -> None:
    original = classified(registry, name, exit_code, stderr)
    assert classified(registry, copy_of(name), exit_code, stderr) == original
    assert original.outcome == "exit_nonzero"


# --- the validator ------------------------------------------------------------------------


def snippets(name: str) -> list[str]:
    """Dangerous calls in code, in comments and in strings, a syntax error, a secret."""
    examples = [text for (lang, _), pair_ in EXAMPLES.items() if lang == name for text in pair_]
    inert = [INERT[name], "\n".join(examples[::2]) + INERT[name]] if name in INERT else []
    broken = [BROKEN[name][0]] if name in BROKEN else []
    return [RAW["languages"][name]["hello"]["code"], *examples, *inert, *broken, SECRET + "\n".join(examples)]


def as_original(findings: list[Finding], name: str) -> list[Finding]:
    """The copy's findings with its name in pattern rule ids (`pattern.<language>.<id>`) put back."""
    prefix, original = f"pattern.{copy_of(name)}.", f"pattern.{name}."
    return [
        Finding(original + f.rule_id.removeprefix(prefix), *(f.severity, f.line, f.column, f.message))
        if f.rule_id.startswith(prefix) else f
        for f in findings
    ]


@pytest.mark.parametrize("name", NAMES)
def test_copy_gets_the_same_validator_findings(registry: Registry, validator: CodeValidator, name: str) -> None:
    original = registry.languages[name]
    seen: set[str] = set()
    for code in snippets(name):
        for filename in (None, default_filename(original, code), *(f"main{e}" for e in extensions(original))):
            expected = validator.validate(code, name, filename=filename)
            assert as_original(validator.validate(code, copy_of(name), filename=filename), name) == expected
            seen |= {f.rule_id.split(".")[0] if f.rule_id.startswith(("pattern.", "secret.")) else f.rule_id
                     for f in expected}
    # The snippets exercised what they are for: patterns, secrets and a syntax verdict.
    assert {"pattern", "secret"} <= seen and seen & {"syntax.error", "syntax.unavailable"}


@pytest.mark.parametrize("name", sorted(INERT))
def test_copy_masks_comments_and_strings_like_the_original(validator: CodeValidator, name: str) -> None:
    findings = validator.validate(INERT[name], copy_of(name))
    assert not [f for f in findings if f.rule_id.startswith("pattern.")]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_copy_sends_the_same_checker_to_the_syntax_child_process(child_validator: CodeValidator, name: str) -> None:
    code = BROKEN[name][0]
    expected = child_validator.validate(code, name)
    assert as_original(child_validator.validate(code, copy_of(name)), name) == expected
    assert any(f.rule_id.startswith("syntax.") for f in expected)


# --- what the runtime gives the container --------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_copy_has_the_same_resources_env_and_cache(registry: Registry, name: str) -> None:
    original, duplicate = pair(registry, name)
    assert registry.resources_for(duplicate) == registry.resources_for(original)
    assert duplicate.env == original.env
    assert duplicate.cache == original.cache
    assert duplicate.image == f"theappapp-{copy_of(name)}"  # only the name differs: its own image


# --- the reverse: without the sections, the behaviours are gone ----------------------------


def stripped_python() -> dict[str, Any]:
    entry = copy.deepcopy(RAW["languages"]["python"])
    for section in ("syntax", "failures", "lexer"):
        del entry[section]
    return entry


@pytest.mark.parametrize("name", ["python", copy_of("python")])
def test_python_without_its_sections_loses_what_they_gave(name: str) -> None:
    # Alone in the registry: no other language's failure rules to fall back on.
    registry = registry_with({name: stripped_python()})
    validator = CodeValidator(registry, child_process_from=None)

    broken = validator.validate(BROKEN["python"][0], name)
    assert [f.rule_id for f in broken if f.rule_id.startswith("syntax.")] == ["syntax.unsupported"]

    commented = validator.validate('# eval(x)\ns = "os.system(1)"\n', name)  # no lexer: nothing is masked
    patterns = {f.rule_id for f in commented if f.rule_id.startswith("pattern.")}
    assert patterns == {f"pattern.{name}.eval-exec", f"pattern.{name}.os-command"}

    for sample in (s for s in SAMPLES if s["language"] == "python"):
        failure = classified(registry, name, sample["exit_code"], sample["stderr"])
        if sample["outcome"] == "disk_full":  # the C library's words, read for every language alike
            assert failure == Failure("disk_full", "ENOSPC")
            continue
        assert failure == Failure("exit_nonzero", f"exit status {sample['exit_code']}"), sample["case"]

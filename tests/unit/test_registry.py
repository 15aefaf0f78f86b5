"""The registry model: the real languages.yaml loads, and bad input is rejected by name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from runtime.errors import RegistryError, UnknownLanguage
from runtime.registry import DEFAULT_REGISTRY_PATH, load_registry, parse_registry, registry_json_schema

SEED_LANGUAGES = {"python", "node", "java", "go", "ruby", "php", "csharp", "powershell"}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())
    return data


def broken(raw: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(raw)


def test_real_registry_declares_all_eight_seed_languages_with_tools() -> None:
    registry = load_registry()
    assert set(registry.languages) == SEED_LANGUAGES
    tools = {name: {c.name for c in lang.tools} for name, lang in registry.languages.items()}
    assert {"numpy", "pandas", "pytest", "black", "flake8", "mypy"} <= tools["python"]
    assert {"typescript", "jest", "eslint", "prettier"} <= tools["node"]
    assert {"maven", "gradle"} <= tools["java"]
    assert {"rspec", "rails"} <= tools["ruby"]
    assert "composer" in tools["php"]
    assert registry.languages["go"].version == "1.21"
    assert registry.languages["php"].version == "8.2"


def test_unreachable_sources_are_checksummed_downloads() -> None:
    registry = load_registry()
    downloads = {c.name: c.install.download for lang in registry.languages.values() for c in lang.components
                 if c.install.download is not None}
    assert set(downloads) == {"gradle", "dotnet-sdk", "pwsh"}
    assert downloads["gradle"] is not None and downloads["gradle"].optional
    assert all(d is not None and d.digest for d in downloads.values())


def test_aliases_resolve_and_unknown_language_lists_known_ones() -> None:
    registry = load_registry()
    assert registry.resolve("py").name == "python"
    assert registry.resolve("JS").name == "node"
    assert registry.resolve("pwsh").name == "powershell"
    with pytest.raises(UnknownLanguage, match="unknown language 'cobol'; known: csharp, go"):
        registry.resolve("cobol")


def test_resources_fall_back_to_defaults() -> None:
    registry = load_registry()
    python = registry.resources_for(registry.resolve("python"))
    assert python.memory == "1g"
    assert python.pids == registry.defaults.pids


def test_missing_field_is_named_with_its_path(raw: dict[str, Any]) -> None:
    data = broken(raw)
    del data["languages"]["node"]["tools"][1]["check"]
    with pytest.raises(RegistryError, match=r"languages\.node\.tools\[1\]\.check: field required$"):
        parse_registry(data)


def test_unknown_key_is_rejected(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["go"]["compiler_flags"] = "-O2"
    with pytest.raises(RegistryError, match=r"languages\.go\.compiler_flags: unknown field"):
        parse_registry(data)


def test_wrong_type_is_rejected(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["python"]["resources"]["pids"] = "many"
    with pytest.raises(RegistryError, match=r"languages\.python\.resources\.pids: expected integer, got str 'many'"):
        parse_registry(data)


def test_boolean_is_not_accepted_as_a_number(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["defaults"]["pids"] = True
    with pytest.raises(RegistryError, match=r"defaults\.pids"):
        parse_registry(data)


def test_duplicate_alias_is_rejected(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["ruby"]["aliases"] = ["rb", "py"]
    with pytest.raises(RegistryError, match=r"languages\.ruby\.aliases: 'py' is already used by 'python'"):
        parse_registry(data)


def test_unknown_suite_and_undeclared_apt_suite_are_rejected(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["php"]["suite"] = "sid"
    with pytest.raises(RegistryError, match=r"languages\.php\.suite: unknown suite 'sid'"):
        parse_registry(data)
    data = broken(raw)
    data["languages"]["go"]["toolchain"][0]["install"]["apt_suite"] = "trixie-backports"
    with pytest.raises(RegistryError, match=r"languages\.go\.toolchain\[0\]\.install\.apt_suite"):
        parse_registry(data)


def test_download_needs_a_well_formed_checksum(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["java"]["tools"][1]["install"]["download"]["sha256"] = "abc"
    with pytest.raises(RegistryError, match=r"languages\.java\.tools\[1\]\.install\.download: checksum must be 64"):
        parse_registry(data)


def test_component_needs_exactly_one_install_source(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["python"]["tools"][0]["install"]["npm"] = ["left-pad"]
    with pytest.raises(RegistryError, match=r"languages\.python\.tools\[0\]\.install: exactly one install source"):
        parse_registry(data)


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "languages.yaml"
    bad.write_text("schema_version: 1\nlanguages: [unclosed\n")
    with pytest.raises(RegistryError, match=r"languages\.yaml: line \d+, column \d+: not valid YAML"):
        load_registry(bad)


def test_exported_schema_validates_the_real_file_and_rejects_a_typo(raw: dict[str, Any]) -> None:
    schema = registry_json_schema()
    jsonschema.validate(raw, schema)
    data = broken(raw)
    data["languages"]["node"]["extention"] = ".js"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_command_for_picks_the_run_by_extension_and_fills_base_and_stem() -> None:
    registry = load_registry()
    node = registry.languages["node"]
    assert node.command_for("app/main.js") == "node app/main.js"
    ts = node.command_for("app/main.ts")
    assert "tsc " in ts and " app/main.ts " in ts and ts.endswith("&& node app/main.js")
    assert registry.languages["java"].command_for("Main.java") == "java Main.java"
    assert registry.languages["python"].command_for("noext") == "python3 noext"


@pytest.mark.parametrize("extension", ["ts", ".js"])
def test_run_by_extension_must_be_another_dotted_extension(raw: dict[str, Any], extension: str) -> None:
    data = broken(raw)
    data["languages"]["node"]["run_by_extension"] = {extension: "node {file}"}
    with pytest.raises(RegistryError, match="run_by_extension"):
        parse_registry(data)


@pytest.mark.parametrize("path", ["cache", "/", "/tmp/go", "/workspace/.cache", "/home/sandbox/.cache", "/home"])
def test_cache_path_must_be_absolute_and_clear_of_the_other_mounts(raw: dict[str, Any], path: str) -> None:
    data = broken(raw)
    data["languages"]["go"]["cache"]["path"] = path
    with pytest.raises(RegistryError, match="cache"):
        parse_registry(data)


def test_command_for_a_dot_file_keeps_its_whole_name_as_base_and_stem() -> None:
    from dataclasses import replace

    node = load_registry().languages["node"]
    probe = replace(node, run="echo {file} {stem} {base}", compile=None)
    assert probe.command_for("src/.hidden") == "echo src/.hidden .hidden src/.hidden"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("regex", "(unclosed", r"languages\.go\.failures\[1\]: regex: bad regex"),
        ("requires", "[z-a]", r"languages\.go\.failures\[1\]: requires: bad regex"),
        ("outcome_by_type", {"(": "oom"}, r"languages\.go\.failures\[1\]: outcome_by_type '\(': bad regex"),
        ("outcome", "crashed", r"languages\.go\.failures\[1\]\.outcome: expected one of"),
    ],
)
def test_bad_failure_rule_fails_at_load_with_its_path(raw: dict[str, Any], key: str, value: Any, message: str) -> None:
    data = broken(raw)
    data["languages"]["go"]["failures"][1][key] = value
    with pytest.raises(RegistryError, match=message):
        parse_registry(data)


def test_failure_rule_must_say_where_its_error_type_comes_from(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["go"]["failures"][1] = {"regex": "^panic: ", "outcome": "runtime_error"}
    with pytest.raises(RegistryError, match=r"languages\.go\.failures\[1\]: regex: capture the error type"):
        parse_registry(data)


@pytest.mark.parametrize(
    ("syntax", "message"),
    [
        ({"grammar": "tree_sitter_java", "compiler": "python"}, r"languages\.java\.syntax: syntax is exactly one of"),
        ({}, r"languages\.java\.syntax: syntax is exactly one of"),
        ({"compiler": "javac"}, r"languages\.java\.syntax\.compiler: expected one of 'python'"),
        ({"grammar": "tree-sitter-java"}, r"languages\.java\.syntax: grammar 'tree-sitter-java': expected `module`"),
        ({"grammar": "tree_sitter_java", "by_extension": {"jav": "tree_sitter_java"}}, "must start with a dot"),
        ({"grammar": "tree_sitter_java", "by_alias": {"kotlin": "tree_sitter_kotlin"}},
         r"languages\.java\.syntax\.by_alias: 'kotlin' is not one of this language's aliases"),
    ],
)
def test_bad_syntax_checker_fails_at_load_with_its_path(raw: dict[str, Any], syntax: Any, message: str) -> None:
    data = broken(raw)
    data["languages"]["java"]["syntax"] = syntax
    with pytest.raises(RegistryError, match=message):
        parse_registry(data)


def test_syntax_checker_follows_the_file_extension_then_the_alias() -> None:
    node = load_registry().languages["node"]
    assert node.syntax is not None
    typescript = "tree_sitter_typescript:language_typescript"
    assert node.syntax.checker_for("node") == "tree_sitter_javascript:language"
    assert node.syntax.checker_for("node", "lib/main.mts") == typescript
    assert node.syntax.checker_for(" TS ", "main.js") == typescript
    assert node.syntax.checker_for("js", "main.js") == "tree_sitter_javascript:language"


@pytest.mark.parametrize(
    ("source_file", "message"),
    [
        ({"name_from": ["class (\\w+"]}, r"languages\.java\.source_file: name_from\[0\]: bad regex"),
        ({"name_from": ["class \\w+"]}, r"languages\.java\.source_file: name_from\[0\]: the regex must capture"),
        ({"default": "$(id)"}, r"languages\.java\.source_file: default: '\$\(id\)' must be"),
    ],
)
def test_bad_source_file_rule_fails_at_load_with_its_path(raw: dict[str, Any], source_file: Any, message: str) -> None:
    data = broken(raw)
    data["languages"]["java"]["source_file"] = source_file
    with pytest.raises(RegistryError, match=message):
        parse_registry(data)


@pytest.mark.parametrize("path", ["/opt/packages", "/workspace", "/workspace/", "/workspace/.", "relative/dir",
                                  "/workspace/../etc"])
def test_packages_path_must_lie_in_the_project_volume(raw: dict[str, Any], path: str) -> None:
    data = broken(raw)
    data["languages"]["python"]["packages"]["path"] = path
    with pytest.raises(RegistryError, match="packages"):
        parse_registry(data)


def test_packages_bin_must_be_relative(raw: dict[str, Any]) -> None:
    data = broken(raw)
    data["languages"]["python"]["packages"]["bin"] = ["/usr/bin"]
    with pytest.raises(RegistryError, match="bin"):
        parse_registry(data)


def test_packages_environment_fills_in_the_path_and_puts_bin_first_on_path() -> None:
    from runtime.registry import Packages

    packages = Packages(path="/workspace/.p/x", env={"HOME_OF_X": "{path}", "X_PATH": "{path}/lib:${X_PATH}"},
                        bin=["bin", "vendor/bin"])
    assert packages.environment() == {
        "HOME_OF_X": "/workspace/.p/x",
        "X_PATH": "/workspace/.p/x/lib:${X_PATH}",
        "PATH": "/workspace/.p/x/bin:/workspace/.p/x/vendor/bin:${PATH}",
    }


def test_every_language_that_installs_packages_declares_where() -> None:
    # The images whose tools install packages (pip, npm, gem, composer, go) name a per-project place.
    for name in ("python", "node", "ruby", "php", "go"):
        packages = load_registry().languages[name].packages
        assert packages is not None and packages.path.startswith("/workspace/"), name

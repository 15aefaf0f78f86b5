"""Build planning: dependency order, content hashes that change when (and only when) they must."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from builder.plan import BuildInputError, plan_images, select_languages
from builder.render import render
from runtime.errors import UnknownLanguage
from runtime.registry import Component, load_registry


def test_bases_come_before_the_languages_that_need_them() -> None:
    registry = load_registry()
    plans = plan_images(registry, render(registry), select_languages(registry, ["ruby", "go"]), None)
    assert [p.key for p in plans] == ["base-bookworm", "base-trixie", "go", "ruby"]
    assert plans[2].parent == "base-bookworm" and plans[3].parent == "base-trixie"
    assert plans[2].tags == ("1.21", "latest")


def test_unknown_language_is_an_error_and_aliases_work() -> None:
    registry = load_registry()
    assert [lang.name for lang in select_languages(registry, ["js", "py"])] == ["python", "node"]
    with pytest.raises(UnknownLanguage):
        select_languages(registry, ["klingon"])


def test_content_hash_is_stable_and_follows_its_inputs(tmp_path: Path) -> None:
    registry = load_registry()
    rendered = render(registry)
    [base, python] = plan_images(registry, rendered, select_languages(registry, ["python"]), None)
    assert python.content_hash("p1") == python.content_hash("p1")
    assert python.content_hash("p1") != python.content_hash("p2"), "a new base must rebuild its languages"
    edited = dataclasses.replace(python, dockerfile=python.dockerfile + "# changed\n")
    assert edited.content_hash("p1") != python.content_hash("p1")
    assert python.language is not None
    changed_check = dataclasses.replace(
        python.language, toolchain=(Component(**{**python.language.toolchain[0].__dict__, "expect": "Python 3.12"}),)
    )
    assert dataclasses.replace(python, language=changed_check).content_hash("p1") != python.content_hash("p1")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    [base_with_ca, _] = plan_images(registry, rendered, select_languages(registry, ["python"]), ca)
    assert base_with_ca.content_hash("d") != base.content_hash("d"), "the baked CA is part of the base"


def test_unreadable_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    registry = load_registry()
    with pytest.raises(BuildInputError, match="cannot read the extra CA certificate"):
        plan_images(registry, render(registry), select_languages(registry, []), tmp_path / "absent.crt")


def test_hash_tags_of_bases_name_their_suite_so_pruning_one_spares_the_other() -> None:
    registry = load_registry()
    plans = plan_images(registry, render(registry), select_languages(registry, ["python", "node"]), None)
    prefixes = {p.key: p.hash_tag_prefix for p in plans}
    assert prefixes["base-bookworm"] == "h-bookworm-" and prefixes["base-trixie"] == "h-trixie-"
    assert not prefixes["base-bookworm"].startswith(prefixes["base-trixie"])


def test_check_output_without_a_final_newline_is_still_framed() -> None:
    from builder.checks import _parse, _script

    registry = load_registry()
    script = _script(registry.resolve("java"), "M", set())
    assert "rc=$?\necho\necho M end $rc" in script
    parsed = _parse("M begin maven\nApache Maven 3\x1b[0m\nM end 0\nM begin hello\nhello, world\n\nM end 0\n", "M")
    assert [(r.name, r.passed, r.output) for r in parsed] == [
        ("maven", True, "Apache Maven 3\x1b[0m"),
        ("hello", True, "hello, world"),
    ]

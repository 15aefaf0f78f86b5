"""Rendering: generated/ is current, strict about missing values, and a language is YAML alone."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from builder import render as render_module
from builder.render import AGENT_SOURCE, GENERATED, HEADER, TEMPLATES, render, stale_files, write
from runtime.registry import DEFAULT_REGISTRY_PATH, load_registry, parse_registry


def test_generated_directory_matches_a_fresh_render() -> None:
    stale = stale_files(render(load_registry()), GENERATED)
    assert stale == [], f"generated/ is out of date ({stale}): run `nox -s render` and commit"


def test_stale_check_notices_an_edited_and_an_extra_file(tmp_path: Path) -> None:
    rendered = render(load_registry())
    write(rendered, tmp_path)
    assert stale_files(rendered, tmp_path) == []
    (tmp_path / "languages" / "go.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "leftover.txt").write_text("x")
    assert stale_files(rendered, tmp_path) == ["languages/go.Dockerfile", "leftover.txt"]
    write(rendered, tmp_path)
    assert stale_files(rendered, tmp_path) == []
    assert not (tmp_path / "leftover.txt").exists()


def test_every_generated_file_says_do_not_edit() -> None:
    for name, text in render(load_registry()).files.items():
        if name.endswith(".json"):
            continue
        if name == "base/sandbox-agent.py":  # copied, not rendered: says so, and is the very file
            assert text.startswith("# DO NOT EDIT: a copy of runtime/agent/sandbox_agent.py")
            assert text.split("\n", 1)[1] == AGENT_SOURCE.read_text(encoding="utf-8")
            continue
        if name.startswith("services/") and not name.endswith(".Dockerfile"):  # a service's own file, copied
            assert text == (TEMPLATES / name).read_text(encoding="utf-8"), name
            continue
        assert HEADER in text.splitlines()[:3], name


def test_a_missing_template_value_fails_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    original = render_module._common

    def without_header(registry: Any) -> dict[str, Any]:
        values = original(registry)
        del values["header"]
        return values

    monkeypatch.setattr(render_module, "_common", without_header)
    with pytest.raises(jinja2.UndefinedError, match="header"):
        render(load_registry())


def test_a_new_language_needs_only_a_yaml_entry() -> None:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())
    data["languages"]["lua"] = {
        "display_name": "Lua",
        "version": "5.4",
        "suite": "bookworm",
        "extension": ".lua",
        "run": "lua5.4 {file}",
        "toolchain": [{"name": "lua", "install": {"apt": ["lua5.4"]}, "check": "lua5.4 -v", "expect": "Lua 5.4"}],
        "hello": {"code": 'print("hello, world")', "expect": "hello, world"},
    }
    rendered = render(parse_registry(copy.deepcopy(data)))
    dockerfile = rendered.language_dockerfile("lua")
    assert "FROM ${BASE_IMAGE}" in dockerfile and "lua5.4" in dockerfile
    assert "theappapp-lua:5.4" in rendered.files["build-all.sh"]


def test_apt_packages_from_another_suite_are_installed_with_target_release() -> None:
    go = render(load_registry()).language_dockerfile("go")
    assert "-t bookworm-backports" in go
    assert "golang-1.21-go" in go


def test_downloads_go_through_the_checksumming_fetcher() -> None:
    java = render(load_registry()).language_dockerfile("java")
    assert "theappapp-fetch gradle" in java and "sha256sum" in java and " true " in java


def test_build_all_script_is_valid_bash() -> None:
    script = render(load_registry()).files["build-all.sh"]
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_images_end_as_the_sandbox_user() -> None:
    """Language images as the sandbox user; a service image as its own user, never root."""
    registry = load_registry()
    for name, text in render(registry).files.items():
        if name.endswith(".Dockerfile"):
            users = [line for line in text.splitlines() if line.startswith("USER ")]
            service = registry.services.get(name.removeprefix("services/").removesuffix(".Dockerfile"))
            wanted = f"USER {service.user}" if service and name.startswith("services/") else "USER 1000:1000"
            assert users[-1] == wanted and not users[-1].startswith("USER 0"), name

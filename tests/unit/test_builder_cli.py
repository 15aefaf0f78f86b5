"""Bad input to the builder: one clear line, a non-zero exit, nothing built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from builder.render import PROJECT_ROOT


def run_builder(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=120, check=False,
    )


def test_unknown_language_says_which_and_what_exists() -> None:
    done = run_builder("build", "klingon")
    assert done.returncode == 2
    assert done.stdout.strip().splitlines() == [
        "error: unknown language 'klingon'; known: csharp, go, java, node, php, powershell, python, ruby"
    ]


def test_malformed_registry_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "languages.yaml"
    bad.write_text("schema_version: 1\nbase: {packages: []}\nsuites: {}\ndefaults: {}\nlanguages: {x: 3}\n")
    done = run_builder("build", env={"THEAPPAPP_REGISTRY": str(bad)})
    assert done.returncode == 2
    assert done.stdout.strip().splitlines() == ["error: languages.yaml: languages.x: expected a mapping, got int 3"]


def test_engine_not_running_is_one_line_with_the_fix(tmp_path: Path) -> None:
    done = run_builder("build", "python", env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert done.returncode == 2
    lines = done.stdout.strip().splitlines()
    assert lines == ["error: Docker engine is not reachable: start one with "
                     "`bash scripts/start-docker-engine.sh` (or set DOCKER_HOST)"], lines


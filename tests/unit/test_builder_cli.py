"""Bad input to the builder: one clear line, a non-zero exit, nothing built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        "error: unknown language 'klingon'; known: csharp, go, java, node, php, powershell, python, ruby; "
        "services: egress-proxy"
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
    (line,) = done.stdout.strip().splitlines()
    assert line.startswith("error: Docker engine is not reachable (DOCKER_HOST=") and "does not run" in line
    assert line.endswith("start one with `bash scripts/start-docker-engine.sh` (or set DOCKER_HOST)")



def test_with_no_engine_the_build_starts_one_as_root_and_then_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from docker.errors import DockerException

    from builder import engine

    answers = iter([DockerException("no socket"), "client"])

    def client(timeout: int) -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    ran: list[list[str]] = []

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "start-docker-engine: engine ready\n", "")

    said: list[str] = []
    monkeypatch.setattr(engine, "_client", client)
    monkeypatch.setattr(engine, "can_start_engine", lambda: None)
    assert engine.connect(say=said.append, run=run) == "client"
    assert ran == [["bash", str(engine.START_SCRIPT)]]
    assert said[0].startswith("no Docker engine answers") and "engine ready" in said[-1]


def test_an_engine_this_process_cannot_start_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from docker.errors import DockerException

    from builder import engine
    from runtime.errors import EngineUnavailable

    def client(timeout: int) -> object:
        raise DockerException("no socket")

    monkeypatch.setattr(engine, "_client", client)
    assert "DOCKER_HOST=tcp://elsewhere:2375" in str(engine.can_start_engine({"DOCKER_HOST": "tcp://elsewhere:2375"}))
    with pytest.raises(EngineUnavailable, match="turned off"):
        engine.connect(start=False)

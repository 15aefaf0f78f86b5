"""scripts/start-docker-engine.sh against stand-in `docker`/`dockerd` commands.

The stand-ins let the test create the awkward states (engine up, stale pid file and
socket, an engine that never answers) without touching the real engine.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from builder.render import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "start-docker-engine.sh"

FAKE_DOCKER = """#!/bin/bash
case "$1" in
  info) [ -f "$STATE/running" ] ;;
  version) echo fake-engine ;;
esac
"""
# Writes its pid where --pidfile says, then answers `docker info` (unless told to be broken).
FAKE_DOCKERD = """#!/bin/bash
echo "dockerd $*" >> "$STATE/calls"
[ "$2" != "" ] && echo $$ > "$2"
[ -f "$STATE/broken" ] && exit 1
touch "$STATE/running"
sleep 30
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the script starts dockerd and so needs root")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("dockerd", FAKE_DOCKERD)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STATE": str(tmp_path),
        "DOCKERD_PIDFILE": str(tmp_path / "docker.pid"),
        "DOCKERD_SOCKET": str(tmp_path / "docker.sock"),
        "DOCKERD_LOG": str(tmp_path / "dockerd.log"),
        "DOCKERD_WAIT_SECONDS": "5",
    }


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_running_engine_means_nothing_to_do(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "running").touch()
    done = run(env)
    assert done.returncode == 0
    assert "already running" in done.stdout
    assert not (tmp_path / "calls").exists(), "dockerd must not be started twice"


def test_stale_pid_file_and_socket_are_recovered(env: dict[str, str], tmp_path: Path) -> None:
    exited = subprocess.Popen(["true"])
    exited.wait()  # reaped: its pid now names no process
    (tmp_path / "docker.pid").write_text(f"{exited.pid}\n")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "docker.sock"))  # a socket file nobody listens on
    stale.close()
    done = run(env)
    assert done.returncode == 0, done.stderr
    assert "removing stale pid file" in done.stdout
    assert "removing stale socket" in done.stdout
    assert "engine ready (fake-engine)" in done.stdout
    assert (tmp_path / "calls").read_text().count("dockerd") == 1


def test_engine_that_never_answers_fails_with_one_line(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "broken").touch()
    done = run({**env, "DOCKERD_WAIT_SECONDS": "2"})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("start-docker-engine: dockerd did not answer within 2s"), lines

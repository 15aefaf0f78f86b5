"""Connecting to the Docker engine, starting a local one first when none answers.

A newcomer's first command (`nox -s build`) must work on a machine where no engine runs
yet: as root on this machine, the builder runs `scripts/start-docker-engine.sh` (install
Debian's docker.io if needed, start dockerd, wait for it) and connects then. Anywhere
else — not root, or DOCKER_HOST naming another engine — it says how to start one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping

import docker
from docker.errors import DockerException

from builder.render import PROJECT_ROOT
from runtime.errors import ENGINE_START_HINT, EngineUnavailable

START_SCRIPT = PROJECT_ROOT / "scripts" / "start-docker-engine.sh"


def _client(timeout: int) -> docker.DockerClient:
    client = docker.from_env(timeout=timeout)
    client.ping()
    return client


def can_start_engine(environ: Mapping[str, str] | None = None) -> str | None:
    """Why this process cannot start a local engine itself, or None when it can."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return f"DOCKER_HOST={env['DOCKER_HOST']} names an engine this machine does not run"
    if os.geteuid() != 0:
        return "starting one needs root: run `bash scripts/start-docker-engine.sh` as root"
    if not START_SCRIPT.is_file():
        return f"{START_SCRIPT.name} is not in this checkout"
    return None


def connect(
    timeout: int = 600, *, start: bool = True, say: Callable[[str], None] = print,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> docker.DockerClient:
    """A client whose engine answered a ping, starting a local engine first if allowed; else `EngineUnavailable`."""
    try:
        return _client(timeout)
    except DockerException as err:
        first = err
    why_not = can_start_engine() if start else "starting one was turned off (--no-engine-start)"
    if why_not is not None:
        raise EngineUnavailable(f"Docker engine is not reachable ({why_not}); {ENGINE_START_HINT}") from first
    say("no Docker engine answers: starting one with scripts/start-docker-engine.sh")
    done = run(["bash", str(START_SCRIPT)], capture_output=True, text=True, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        say(f"  {line}")
    if done.returncode != 0:
        raise EngineUnavailable(f"could not start a Docker engine (the script exited {done.returncode})") from first
    try:
        return _client(timeout)
    except DockerException as err:
        raise EngineUnavailable(f"the engine started but does not answer: {err}") from err

"""Connecting to the Docker engine, with one clear line when it is not there."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from runtime.errors import ENGINE_START_HINT, EngineUnavailable


def connect(timeout: int = 600) -> docker.DockerClient:
    """A client whose engine answered a ping; `EngineUnavailable` otherwise."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as err:
        raise EngineUnavailable(f"Docker engine is not reachable: {ENGINE_START_HINT}") from err
    return client

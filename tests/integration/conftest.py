"""Shared fixtures for tests against the real Docker engine.

The engine is shared with other test runs: everything created here carries this
session's installation id (labels) or a unique name, and teardown removes only that.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import docker
import pytest
from docker.errors import DockerException

from runtime import labels
from runtime.config import RuntimeConfig
from runtime.manager import ContainerManager
from runtime.registry import Language, get_registry

SESSION = uuid.uuid4().hex[:10]
INSTALLATION = f"test-{SESSION}"
# Set before any manager exists, so every container and volume of this session is labelled with it.
os.environ["THEAPPAPP_INSTALLATION_ID"] = INSTALLATION
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled here
NETWORK = f"theappapp-test-{SESSION}"


def engine_or_skip() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except DockerException:
        pytest.skip("no Docker engine reachable: start one with `bash scripts/start-docker-engine.sh`")
    return client


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = engine_or_skip()
    yield client
    ours = {"label": [f"{labels.INSTALLATION}={INSTALLATION}"]}
    for container in client.containers.list(all=True, filters=ours):
        container.remove(force=True)
    for volume in client.volumes.list(filters=ours):
        volume.remove(force=True)
    try:
        from runtime.network import remove_sandbox_network

        remove_sandbox_network(client, NETWORK)
    except (ImportError, DockerException):
        pass
    client.close()


@pytest.fixture(scope="session")
def installation_id() -> str:
    return INSTALLATION


def image_or_skip(client: docker.DockerClient, language: str) -> Language:
    lang = get_registry().resolve(language)
    ref = f"{lang.image}:latest"
    if not client.images.list(name=ref):
        pytest.skip(f"image {ref} is not built on this engine (build it with `nox -s build -- {lang.name}`)")
    return lang


@pytest.fixture
def python_image(docker_client: docker.DockerClient) -> Language:
    return image_or_skip(docker_client, "python")


@pytest.fixture
def unique() -> str:
    """A short id, unique in this session: use it in task and project ids."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def runtime_config(docker_client: docker.DockerClient) -> RuntimeConfig:
    return RuntimeConfig.load(network_name=NETWORK)


@pytest.fixture
async def manager(runtime_config: RuntimeConfig, python_image: Language) -> AsyncIterator[ContainerManager]:
    """A started manager on this session's network; everything it created is destroyed after the test."""
    mgr = ContainerManager(runtime_config)
    await mgr.startup()
    yield mgr
    await mgr.shutdown()
